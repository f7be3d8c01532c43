"""pose: the neural cylinder (closed, wound outwards, rotations are exact vertex shifts) and the merge
of per-set features whose frames differ by unknown rotations about the up axis."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data3d.procedural import make
from data3d.procedural.primitives import signed_volume
from pose import cylinder_params, merge_sets, neural_cylinder, shift_features
from pose.mesh import shift_of_angle


def test_cylinder_is_closed_and_wound_outwards():
    mesh, layout = neural_cylinder(0.5, -0.2, 0.3, segments=24, rows=4, rings=2)
    assert mesh.vertices.shape[0] == layout.num_vertices
    f = mesh.faces.numpy()
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert set(counts.tolist()) == {2}  # every edge shared by two faces: closed
    polygon_area = 0.5 * 24 * 0.25 * math.sin(2 * math.pi / 24)
    assert signed_volume(mesh.vertices.double().numpy(), f) == pytest.approx(polygon_area * 0.5, rel=1e-5)
    v = mesh.vertices.double()[mesh.faces]
    normal = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    assert bool(((normal * v.mean(1)).sum(-1) > 0).all())  # convex about the origin: every face outwards


def test_shift_is_the_rotation_about_z():
    mesh, layout = neural_cylinder(0.4, 0.0, 0.5, segments=12, rows=2, rings=2)
    for k in (1, 5, 11):
        a = k * layout.step
        Rz = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
        moved = shift_features(mesh.vertices[None], layout, k)[0]
        torch.testing.assert_close(moved, mesh.vertices @ Rz.T, atol=1e-6, rtol=0)
    assert shift_of_angle(-layout.step, layout) == 11 and shift_of_angle(2 * math.pi + 0.4 * layout.step, layout) == 0


def test_cylinder_params_cover_the_category():
    car = make("car", seed=1)
    p = cylinder_params([car], coverage=1.0, segments=16)
    xy = car.vertices[:, :2].norm(dim=-1)
    assert p["radius"] == pytest.approx(float(xy.max()), rel=1e-5)
    assert p["z_lo"] == pytest.approx(float(car.vertices[:, 2].min()), abs=1e-6)
    assert p["z_hi"] == pytest.approx(float(car.vertices[:, 2].max()), abs=1e-6)


def test_merge_recovers_unknown_rotations_and_rejects_a_featureless_set():
    _, layout = neural_cylinder(0.5, 0.0, 1.0, segments=24, rows=3, rings=2)
    gen = torch.Generator().manual_seed(0)
    canonical = F.normalize(torch.randn(layout.num_vertices, 16, generator=gen), dim=-1)
    # set s sees the object in a frame turned by true[s] steps: its feature at φ is canonical's at φ - true·Δ
    true = [0, 5, 17, 9, 3]
    sets, seen = [], []
    for k in true:
        noisy = F.normalize(canonical + 0.5 * torch.randn(canonical.shape, generator=gen), dim=-1)
        sets.append(shift_features(noisy, layout, -k))
        mask = (torch.rand(layout.num_vertices, generator=gen) < 0.7).float()
        seen.append(mask)
    sets.append(F.normalize(torch.randn(layout.num_vertices, 16, generator=gen), dim=-1))  # no structure
    seen.append(torch.ones(layout.num_vertices))
    result = merge_sets(torch.stack(sets), torch.stack(seen), layout, min_margin=0.1)
    ref = result.reference
    assert ref < len(true)
    expected = [(k - true[ref]) % 24 for k in true]
    assert result.shifts[: len(true)].tolist() == expected
    assert result.shifts[-1] == -1 and result.aligned == len(true) and result.rejected == 1
    # the merged features are the canonical ones in the reference's frame, less noisy than any one set
    in_ref = shift_features(canonical, layout, -true[ref])
    merged_cos = (result.features * in_ref).sum(-1).mean()
    single_cos = (F.normalize(sets[ref], dim=-1) * in_ref).sum(-1).mean()
    assert merged_cos > single_cos + 0.05
    # every set tells front from back here: positive flip margins, nothing for the guard to reject
    assert bool((result.flip_margins[: len(true)] > 0.2).all()) and bool(result.flip_margins[-1].isnan())
    assert merge_sets(torch.stack(sets), torch.stack(seen), layout, 0.1, flip_ratio=0.5).flipped == ()


def test_front_back_guard_rejects_a_set_that_cannot_tell_front_from_back():
    """A set whose features repeat after half a turn fits the others as well turned back to front: its
    flip margin is about 0 (the others' about their whole score), and the guard rejects it."""
    _, layout = neural_cylinder(0.5, 0.0, 1.0, segments=24, rows=3, rings=2)
    gen = torch.Generator().manual_seed(1)
    canonical = F.normalize(torch.randn(layout.num_vertices, 16, generator=gen), dim=-1)
    true = [0, 7, 13, 20, 4]
    sets = [shift_features(F.normalize(canonical + 0.4 * torch.randn(canonical.shape, generator=gen), dim=-1),
                           layout, -k) for k in true]
    symmetric = canonical + shift_features(canonical, layout, 12)  # f(φ) = f(φ + π)
    symmetric = F.normalize(symmetric + 0.4 * torch.randn(canonical.shape, generator=gen), dim=-1)
    sets.append(shift_features(symmetric, layout, -9))
    seen = torch.ones(len(sets), layout.num_vertices)
    plain = merge_sets(torch.stack(sets), seen, layout, min_margin=0.05)
    assert plain.aligned == len(sets) and plain.flipped == ()
    flips = plain.flip_margins
    assert abs(float(flips[-1])) < 0.05 and bool((flips[:-1] > 0.25).all())
    guarded = merge_sets(torch.stack(sets), seen, layout, min_margin=0.05, flip_ratio=0.5)
    assert guarded.flipped == (len(sets) - 1,) and guarded.shifts[-1] == -1 and guarded.rejected == 1
    assert guarded.shifts[:-1].tolist() == plain.shifts[:-1].tolist()
    # the merged features are the mean of the other sets alone (all vertices seen: a plain mean)
    others = [shift_features(sets[s], layout, int(guarded.shifts[s])) for s in range(len(true))]
    expected = F.normalize(sum(others), dim=-1)
    torch.testing.assert_close(guarded.features, expected, atol=1e-5, rtol=0)


def test_config_keys_are_checked():
    from pose import resolve_pose_config

    cfg = resolve_pose_config({"nemo": {"train": {"steps": 7}}, "pose": {"merge": {"min_margin": 0.1}}})
    assert cfg["nemo"]["train"]["steps"] == 7
    assert cfg["pose"]["merge"] == {"min_margin": 0.1, "rounds": 2, "flip_ratio": 0.0, "orient": False}
    with pytest.raises(ValueError, match="pose.merge.margin"):
        resolve_pose_config({"pose": {"merge": {"margin": 0.1}}})
    with pytest.raises(ValueError, match="unknown top-level"):
        resolve_pose_config({"steps": 3})
    assert cfg["pose"]["refine"] == {"steps": 0}  # off unless asked for
    with pytest.raises(ValueError, match="pose.refine.steps"):
        resolve_pose_config({"pose": {"refine": {"steps": -1}}})


def test_white_background_is_replaced_and_the_object_kept():
    from pose.sets import object_bbox, replace_white_background

    image = np.full((20, 30, 3), 255, np.uint8)
    image[5:12, 8:20] = (200, 30, 40)
    background = np.random.default_rng(0).integers(0, 200, (40, 60, 3), dtype=np.uint8)
    out = replace_white_background(image, background)
    np.testing.assert_array_equal(out[5:12, 8:20], image[5:12, 8:20])
    assert (np.abs(out[0:4].astype(int) - 255).max(-1) > 12).all()  # no white left in the background
    assert object_bbox(image) == (8.0, 5.0, 19.0, 11.0)


def test_bad_input_is_a_pose_error_naming_what_is_wrong(tmp_path):
    import nemo
    import pose
    from pose import PoseError

    assert issubclass(PoseError, nemo.NemoError) and issubclass(PoseError, ValueError)
    with pytest.raises(PoseError, match="segments ≥ 3"):
        neural_cylinder(0.5, 0.0, 1.0, segments=2)
    with pytest.raises(PoseError, match="radius > 0"):
        neural_cylinder(0.0, 0.0, 1.0)
    with pytest.raises(PoseError, match="no meshes"):
        cylinder_params([])
    with pytest.raises(PoseError, match=f"{tmp_path}: not a generated-sets folder"):
        pose.load_sets(tmp_path)
    (tmp_path / "sets.json").write_text("{}")
    with pytest.raises(PoseError, match="sets.json: cannot be read as a sets index"):
        pose.load_sets(tmp_path)
    with pytest.raises(PoseError, match="no flip rates"):
        pose.flip_curve([], None, [], tmp_path / "curve", None, rates=(), category="car", cylinder={})
    with pytest.raises(PoseError, match="encoder must be 'baseline' or 'pose'"):
        pose.load_retrieval(tmp_path, encoder="dino")
    other = nemo.RunFolder(tmp_path / "other")
    other.write_config({"data": {}})
    with pytest.raises(PoseError, match="other: not a pose run"):
        pose.load(other.path)
    with pytest.raises(PoseError, match="config.yaml is missing"):  # the run folder's own checks
        pose.load(tmp_path / "nothing")
