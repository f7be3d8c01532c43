"""orbit4d geometry: depth cleaning, RTS smoothing, box baseline, pixel-synchronised pairs, and
the alignment accuracy on a synthetic 4D scene with noisy depth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch

from geom3d import Cameras
from geom3d.align import Sim3
from orbit4d.alignment import box_fit, correspondences
from orbit4d.depth import clean_depth
from orbit4d.evaluate import alignment_errors
from orbit4d.pipeline import Orbit4DInputs, Orbit4DOptions, reconstruct_and_align
from orbit4d.smoothing import rts_smooth, smooth_transforms
from orbit4d.synthetic import add_depth_noise, make_scene


def _plane_depth(h=40, w=50):
    v, u = np.mgrid[0:h, 0:w]
    return (3.0 + 0.01 * u + 0.02 * v).astype(np.float32)


def test_clean_depth_keeps_planes_and_removes_outliers_and_noise():
    d = _plane_depth()
    exact = clean_depth(d)
    kept = exact.depth > 0
    assert kept[2:-2, 2:-2].all() and not kept[:2].any()
    np.testing.assert_allclose(exact.depth[kept], d[kept], rtol=2e-6)  # a plane is its own local mean
    noisy = add_depth_noise(d, 0.02, 0.1, seed=3)
    c = clean_depth(noisy)
    m = c.depth > 0
    raw_err = np.abs(noisy / d - 1)[3:-3, 3:-3]
    err = np.abs(c.depth[m] / d[m] - 1)
    assert err.max() < 0.03 < raw_err.max()  # every outlier gone
    assert np.std(c.depth[m] / d[m]) < np.std(raw_err) / 3
    step = d.copy()
    step[:, 25:] += 1.0  # a depth edge: the pixels on it are dropped, the others keep their own side's plane
    c = clean_depth(step)
    assert (c.depth[:, 24:26] == 0).all()
    m = c.depth > 0
    np.testing.assert_allclose(c.depth[m], step[m], rtol=1e-5)


def test_rts_smoother_equals_the_batch_least_squares_solution():
    """The RTS smoother is the exact MAP estimate of its linear-Gaussian model: solve that
    model's least squares directly and compare."""
    rng = np.random.default_rng(0)
    T, q, r = 12, 1e-3, 1e-2
    z = np.cumsum(rng.normal(0, 0.1, T)) + rng.normal(0, 0.1, T)
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = q * np.array([[1 / 3, 0.5], [0.5, 1.0]])
    Qi = np.linalg.inv(Q)
    n = 2 * T
    A = np.zeros((n, n))
    b = np.zeros(n)
    P0i = np.diag([1 / r, 1.0])  # the prior the filter starts from: x0 ~ N([z0, 0], diag(r, 1))
    A[:2, :2] += P0i
    b[:2] += P0i @ np.array([z[0], 0.0])
    for k in range(T):
        A[2 * k, 2 * k] += 1 / r
        b[2 * k] += z[k] / r
        if k:
            J = np.zeros((2, n))
            J[:, 2 * k:2 * k + 2] = np.eye(2)
            J[:, 2 * k - 2:2 * k] = -F
            A += J.T @ Qi @ J
    x = np.linalg.solve(A, b).reshape(T, 2)
    np.testing.assert_allclose(rts_smooth(z, q, r), x[:, 0], rtol=0, atol=1e-9)


def test_smooth_transforms_reduces_rotation_noise():
    gen = torch.Generator().manual_seed(1)
    T = 30
    angles = torch.linspace(0, 1.0, T, dtype=torch.float64)
    truth = roma.rotvec_to_rotmat(torch.stack([0 * angles, 0 * angles, angles], -1))
    noise = roma.rotvec_to_rotmat(0.02 * torch.randn(T, 3, generator=gen, dtype=torch.float64))
    noisy = Sim3(torch.ones(T, dtype=torch.float64), noise @ truth, torch.zeros(T, 3, dtype=torch.float64))
    smooth = smooth_transforms(noisy)
    before = roma.rotmat_geodesic_distance(noisy.R, truth).mean()
    after = roma.rotmat_geodesic_distance(smooth.R, truth).mean()
    assert after < 0.6 * before


def test_box_fit_is_exact_without_rotation_and_blind_to_it():
    from geom3d import DepthPoints

    gen = torch.Generator().manual_seed(2)
    can = torch.rand(200, 3, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 0.5, 0.3], dtype=torch.float64)
    moved = Sim3(1.3, torch.eye(3, dtype=torch.float64), torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    turned = Sim3(1.0, roma.rotvec_to_rotmat(torch.tensor([0, 0, 0.7], dtype=torch.float64)), torch.zeros(3))
    frames = [DepthPoints(t.apply(can), None, torch.zeros(200, dtype=torch.long), torch.zeros(200, 2, dtype=torch.long))
              for t in (moved, turned)]
    fit = box_fit(can, frames)
    torch.testing.assert_close(fit[0].apply(can), moved.apply(can), rtol=0, atol=1e-12)
    assert torch.equal(fit.R[1], torch.eye(3, dtype=torch.float64))  # R = I by construction


def test_pixel_synchronised_pairs_lie_on_one_ray():
    cam = Cameras.look_at(torch.tensor([0.0, -3.0, 0.5], dtype=torch.float64), (0.0, 0.0, 0.0), (0, 0, 1),
                          focal=60.0, image_size=(48, 64))
    d = _plane_depth(48, 64).astype(np.float64) * 0 + 3.0  # a fronto-parallel wall at z = 3
    wall = cam.unproject(torch.from_numpy(d))
    can = wall.reshape(-1, 3)[::7] + 0.001  # canonical points near the wall, off the pixel centres
    src, dst = correspondences(can, Sim3.identity(dtype=torch.float64), torch.from_numpy(d), cam, tolerance=0.05)
    assert src.shape[0] > 100
    uv_s, uv_d = cam.project(src), cam.project(dst)
    torch.testing.assert_close(uv_s, uv_d, rtol=0, atol=1e-9)
    hidden = correspondences(can + 0.5 * cam.R[2], Sim3.identity(dtype=torch.float64), torch.from_numpy(d), cam,
                             tolerance=0.05)[0]
    assert hidden.shape[0] == 0  # 0.5 behind the wall: not visible, no pairs


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.02])
def test_alignment_accuracy_with_noisy_depth_and_a_rotating_camera(noise):
    scene = make_scene(16, (240, 320), turn_degrees=45.0)
    depth = add_depth_noise(scene.depth, noise, 0.10, seed=1)
    inputs = Orbit4DInputs(scene.frames, scene.names, scene.masks, depth, scene.cameras)
    geo = reconstruct_and_align(inputs, Orbit4DOptions())
    can = geo["canonical"].points
    ours = alignment_errors(geo["smoothed"], scene.object_poses, can, scene.object_size)
    box = alignment_errors(geo["box"], scene.object_poses, can, scene.object_size)
    print(f"\nnoise {noise}: ours {ours.summary()}\n  box baseline {box.summary()}")
    assert ours.rotation_deg.max() <= 2.5 and np.median(ours.rotation_deg) <= 1.0
    assert np.abs(ours.scale - 1).max() <= 0.02
    assert ours.translation_rel.max() <= 0.02
    assert box.rotation_deg.max() > 10 * ours.rotation_deg.max()
    assert math.isfinite(box.translation_rel.max())


def test_cameras_estimated_from_the_background_follow_the_true_motion():
    """PnP on background feature matches (exact depth): poses relative to the first camera."""
    from orbit4d.camera_model import estimate_cameras

    scene = make_scene(12, (240, 320), turn_degrees=45.0)
    est = estimate_cameras(scene.frames, scene.depth, scene.masks, scene.cameras.K[0].numpy())
    tru = scene.cameras.to(dtype=torch.float64)
    rel_R = tru.R @ tru.R[0].T
    rel_t = tru.t - (rel_R @ tru.t[0][:, None])[..., 0]
    rot = torch.rad2deg(roma.rotmat_geodesic_distance(est.R, rel_R))
    travel = float(rel_t.norm(dim=-1).max())
    err = (est.t - rel_t).norm(dim=-1)
    print(f"\ncamera estimation: rotation max {float(rot.max()):.2f}°, translation max {float(err.max()):.3f} "
          f"of {travel:.2f} travel")
    assert float(rot.max()) < 3.0 and float(err.max()) < 0.2 * travel
    assert torch.equal(est.R[0], torch.eye(3, dtype=torch.float64))  # world = the first camera


def test_icp_refinement_keeps_an_exact_alignment_exact():
    scene = make_scene(6, (96, 128), turn_degrees=20.0)
    inputs = Orbit4DInputs(scene.frames, scene.names, scene.masks, scene.depth, scene.cameras)
    geo = reconstruct_and_align(inputs, Orbit4DOptions(refine_icp=True, smooth=False))
    err = alignment_errors(geo["fit"].transforms, scene.object_poses, geo["canonical"].points, scene.object_size)
    assert err.rotation_deg.max() < 1.5 and err.translation_rel.max() < 0.02


def test_flow_refinement_within_a_flow_budget_holds_few_flows_and_gives_the_same_transforms():
    """refine_with_flow(flow_budget_mb=0) forgets the flows the rest of a pass does not read (a later
    pass computes them again): at most 2·Σhops + 2·len(hops) = 20 flows held for any clip length,
    and the transforms are exactly those of the run that keeps every flow."""
    from geom3d.rotations import axis_angle_to_matrix
    from orbit4d.alignment import refine_with_flow, stack_sim3

    T = 9
    scene = make_scene(T, (60, 80), turn_degrees=30.0)
    canonical = scene.object_mesh[0].double()
    fg = np.where(scene.masks, scene.depth, 0.0)
    # the true poses, each turned by 1° about z: the refinement has something to do
    nudge = axis_angle_to_matrix(torch.tensor([0.0, 0.0, np.radians(1.0)], dtype=torch.float64))
    start = stack_sim3([Sim3(scene.object_poses[f].scale.double(), scene.object_poses[f].R.double() @ nudge,
                             scene.object_poses[f].t.double()) for f in range(T)])
    runs = {}
    for budget in (0, 1e6):
        held = []
        runs[budget] = refine_with_flow(canonical, start, scene.frames, fg, scene.cameras, threshold=0.03,
                                        flow_budget_mb=budget, _flows_held=held)
        runs[budget, "held"] = held
    assert len(runs[0, "held"]) == (T - 1) + 2 * T  # every frame of the three passes reported
    assert max(runs[0, "held"]) <= 2 * (1 + 2 + 4) + 2 * 3
    assert max(runs[1e6, "held"]) > 2 * (1 + 2 + 4) + 2 * 3  # kept: grows with the clip (every pair)
    for key in ("scale", "R", "t"):
        assert torch.equal(getattr(runs[0], key), getattr(runs[1e6], key))
    assert not torch.equal(runs[0].R, start.R)  # the refinement moved the transforms


def test_flow_budget_flag_reaches_the_refinement(monkeypatch):
    """`aware3d orbit4d run --flow-budget-mb N` (generated from Orbit4DOptions.flow_budget_mb) sets
    the option, a negative budget is an error naming the flag, and reconstruct_and_align hands the
    option to refine_with_flow (recorded by a wrapper around the real function), with the masks."""
    import orbit4d.alignment as alignment
    from aware3d.cli import build_parser
    from aware3d.cli_orbit4d import options_from_args
    from orbit4d.pipeline import Orbit4DOptionError

    parser = build_parser("orbit4d")
    base = ["orbit4d", "run", "--frames", "f", "--out", "o"]
    assert options_from_args(parser.parse_args(base + ["--flow-budget-mb", "0"])).flow_budget_mb == 0
    assert options_from_args(parser.parse_args(base + ["--flow-budget-mb", "12.5"])).flow_budget_mb == 12.5
    assert options_from_args(parser.parse_args(base)).flow_budget_mb == 256  # refine_with_flow's own default
    with pytest.raises(Orbit4DOptionError, match="--flow-budget-mb: must be a number in \\[0, "):
        Orbit4DOptions(flow_budget_mb=-1)

    seen, masks, real = [], [], alignment.refine_with_flow

    def recording(*args, **kwargs):
        seen.append(kwargs["flow_budget_mb"])
        masks.append(kwargs["masks"])
        return real(*args, **kwargs)

    monkeypatch.setattr(alignment, "refine_with_flow", recording)
    scene = make_scene(3, (48, 64), turn_degrees=10.0)
    inputs = Orbit4DInputs(scene.frames, scene.names, scene.masks, scene.depth, scene.cameras)
    reconstruct_and_align(inputs, Orbit4DOptions(flow_budget_mb=0.5, smooth=False))
    assert seen == [0.5]
    assert masks[0] is inputs.masks  # the flow pairs keep off the subject's mask edges


def test_flow_pairs_keep_off_the_mask_edge():
    """orbit4d.deform._flow_pairs with an inset: on a fronto-parallel plane seen by one camera with
    zero flow (every point pairs with itself), only the points whose pixel lies at least 4 pixels
    inside the rectangular mask (rows 10..29, columns 10..39; its distance to the nearest pixel off
    the mask is min(r − 9, 30 − r, c − 9, 40 − c), by hand) keep their pair; without the inset
    every point with four depth neighbours (bilinear depth) does."""
    from scipy.ndimage import distance_transform_edt

    from geom3d import Cameras
    from orbit4d.deform import _flow_pairs

    h, w = 40, 50
    K = torch.tensor([[40.0, 0.0, 24.5], [0.0, 40.0, 19.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    cam = Cameras(K[None], torch.eye(3, dtype=torch.float64)[None], torch.zeros(1, 3, dtype=torch.float64), (h, w))[0]
    mask = np.zeros((h, w), bool)
    mask[10:30, 10:40] = True
    depth = np.where(mask, 2.0, 0.0)
    r, c = np.nonzero(mask)
    pts = cam.unproject_points(torch.from_numpy(np.stack([c, r], 1).astype(np.float64)),
                               torch.full((len(r),), 2.0, dtype=torch.float64)).numpy()
    zero = np.zeros((h, w, 2), np.float32)
    dist = distance_transform_edt(mask)
    idx, target = _flow_pairs(pts, depth, cam, depth, cam, zero, zero, 0.05, 1.0, inset=(dist, dist, 4.0))
    inside = np.minimum.reduce([r - 9, 30 - r, c - 9, 40 - c]) >= 4
    assert set(idx.tolist()) == set(np.nonzero(inside)[0].tolist())
    np.testing.assert_allclose(target, pts[idx], atol=1e-9)
    idx_all, _ = _flow_pairs(pts, depth, cam, depth, cam, zero, zero, 0.05, 1.0)
    # every pixel whose right and lower neighbours are on the mask too (rows 10..28, columns 10..38)
    assert len(idx_all) == 19 * 29 and set(idx.tolist()) < set(idx_all.tolist())
