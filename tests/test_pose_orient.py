"""The orientation check of the generated sets (pose.orient): a set generated half a turn off is aligned
by the merge like any other (its features are self-consistent), so only its source image can tell; the
check's margins and decision by hand, and a training run that turns the annotated image's set back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

import data3d
import pose
from data3d.procedural import make
from datagen.novel_view import RenderSynthesizer
from pose.merge import merge_sets
from pose.orient import check_sources, decide, orientation_margins
from pose.sets import _write_png, object_bbox, relative_pose_of

LAYOUT = pose.CylinderLayout(12, 2, 1)


def _sets_of_one_object(n: int, turned: set[int], seed: int = 0):
    """(features (n, V, D), seen (n, V), frames (n,)): one object's unit vertex features seen in n set frames
    turned by random whole shifts, the sets in `turned` a further half turn (a flipped generation)."""
    gen = torch.Generator().manual_seed(seed)
    obj = F.normalize(torch.randn(LAYOUT.num_vertices, 16, generator=gen), dim=-1)
    frames = torch.randint(0, LAYOUT.segments, (n,), generator=gen)
    feats = []
    for s in range(n):
        k = int(frames[s]) + (LAYOUT.segments // 2 if s in turned else 0)
        noisy = pose.shift_features(obj, LAYOUT, -k) + 0.3 * torch.randn(LAYOUT.num_vertices, 16, generator=gen)
        feats.append(F.normalize(noisy, dim=-1))
    return torch.stack(feats), torch.ones(n, LAYOUT.num_vertices), frames


def test_a_set_turned_half_a_turn_is_aligned_by_its_features_like_any_other():
    """Why the check asks the sources and not the features: whatever the turned sets (the reference set
    among them), the merge aligns every set's features exactly, and a turned set's straight-minus-half-
    turn margin against the others is as large as an upright set's."""
    turned = {0, 3, 4}
    feats, seen, frames = _sets_of_one_object(8, turned)
    result = merge_sets(feats, seen, LAYOUT)
    assert result.aligned == 8
    half = LAYOUT.segments // 2
    # every set lands on the object's features: shift_s − shift_r = true frame difference (turns included)
    truth = [(int(frames[s]) + (half if s in turned else 0)) % LAYOUT.segments for s in range(8)]
    r = result.reference
    for s in range(8):
        assert (int(result.shifts[s]) - int(result.shifts[r])) % LAYOUT.segments == (truth[s] - truth[r]) % 12
    upright = [float(result.flip_margins[s]) for s in range(8) if s not in turned]
    flipped = [float(result.flip_margins[s]) for s in turned]
    assert min(flipped) > 0.5 * min(upright) > 0  # no front/back signal in the features


def test_margins_and_decision_by_hand():
    """Sources fitted where their frames put them (−shift·step), except the turned sets' (k of n, the
    annotated image's set among them), which are fitted half a turn away, with ±30° of fit noise."""
    rng = np.random.default_rng(1)
    n, turned = 10, [0, 3, 7]
    shifts = torch.tensor(rng.integers(0, LAYOUT.segments, n))
    fitted = -shifts.double() * LAYOUT.step + torch.tensor(rng.uniform(-0.5, 0.5, n))
    fitted[turned] += math.pi
    margins = orientation_margins(fitted, shifts, LAYOUT)
    assert torch.allclose(margins[1], torch.cos(fitted[1] + shifts[1] * LAYOUT.step).double())
    assert (margins[turned] < -0.8).all() and (np.delete(margins.numpy(), turned) > 0.8).all()
    assert decide(margins, annotated=0) == {"turned": turned, "checked": 10, "unreliable": False,
                                            "reference_turned": True}
    assert decide(margins, annotated=1)["reference_turned"] is False  # another set's turn changes no frame
    assert decide(margins, annotated=None)["reference_turned"] is False  # the annotated image is no source
    # a rejected set (shift −1) and an unfitted source (NaN) are not checked
    shifts[3] = -1
    fitted[5] = float("nan")
    margins = orientation_margins(fitted, shifts, LAYOUT)
    assert margins[3].isnan() and margins[5].isnan()
    assert decide(margins, annotated=3) == {"turned": [0, 7], "checked": 8, "unreliable": False,
                                            "reference_turned": False}
    # half or more turned: flips are assumed a minority, so the check is not trusted and corrects nothing
    fitted = -shifts.double() * LAYOUT.step + math.pi
    fitted[[1, 2, 4, 6]] -= math.pi
    shifts[3] = 2
    decision = decide(orientation_margins(fitted, shifts, LAYOUT), annotated=0)
    assert decision["turned"] == [0, 3, 5, 7, 8, 9] and decision["unreliable"] and not decision["reference_turned"]


class _Fits:
    """A stand-in for the merged model: estimate_pose answers each image with a preset azimuth, read from
    the image's first pixel (the set index)."""

    def __init__(self, azimuths):
        self.azimuths, self.calls = azimuths, 0

    def estimate_pose(self, images, K=None, categories=None):
        self.calls += 1
        assert K.shape == (len(images), 3, 3) and categories == ["car"] * len(images)
        out = []
        for image in images:
            a = self.azimuths[int(image[0, 0, 0])]
            vp = data3d.Viewpoint(azimuth=a % (2 * math.pi), elevation=0.1, theta=0.0, distance=3.0, focal=1.0,
                                  viewport=64.0, px=1.5, py=1.5)
            out.append(type("R", (), {"viewpoint": vp})())
        return out


def test_check_sources_fits_every_checked_source():
    shifts = torch.tensor([2, 5, -1, 0, 7])
    azimuths = [-2 * LAYOUT.step, -5 * LAYOUT.step + math.pi, 0.0, 0.1, -7 * LAYOUT.step]
    sources = [0, 1, 2, None, 4]  # set 3 has no source; set 2 was rejected by the merge

    def crops(records):
        return {"image": torch.stack([torch.full((3, 4, 4), float(r)) for r in records]),
                "cameras": type("C", (), {"K": torch.eye(3).expand(len(records), 3, 3)})()}

    model = _Fits(azimuths)
    found = check_sources(model, sources, shifts, LAYOUT, "car", crops)
    assert model.calls == 1
    assert found["fitted"][[2, 3]].isnan().all()
    assert found["margins"][[0, 4]].tolist() == pytest.approx([1.0, 1.0])
    assert float(found["margins"][1]) == pytest.approx(-1.0)
    assert decide(found["margins"], annotated=1) == {"turned": [1], "checked": 3, "unreliable": False,
                                                     "reference_turned": True}


SIZE = 64
CONFIG = {"nemo": {"threads": 1, "data": {"crop_size": [SIZE, SIZE], "batch_size": 8},
                   "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 16, 32, 32], "embedding_size": 16,
                                "decoder_width": 16, "feature_dim": 16},
                   "bank": {"clutter_size": 64}, "optim": {"lr": 3e-3, "warmup_steps": 2},
                   "train": {"steps": 6, "log_every": 3},
                   "pose": {"azimuths": 4, "elevations": 1, "thetas": 1, "steps": 2, "keep": 1}},
          "pose": {"retrieval": {"steps": 2}, "merge": {"orient": True}}}


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("orient")
    mesh = make("car", seed=1)
    render = RenderSynthesizer(backend="raster")
    records = []
    for i, a in enumerate((0.3, 2.0, 4.1)):
        vp = {"azimuth": a, "elevation": 0.2, "theta": 0.0, "distance": 3.0, "focal": 1.0, "viewport": SIZE * 2.2,
              "px": (SIZE - 1) / 2, "py": (SIZE - 1) / 2}
        image = render.render(mesh, [vp], (SIZE, SIZE))[0]
        path = root / "src" / f"src{i}.png"
        path.parent.mkdir(exist_ok=True)
        _write_png(path, image)
        obj = data3d.ObjectAnnotation("car", object_bbox(image), data3d.Viewpoint(**vp), cad_source="procedural",
                                      cad_id="car/0001")
        records.append(data3d.ImageRecord(path, (SIZE, SIZE), (obj,)))
    data3d.save_records(records, root / "src", shard="000000")
    data3d.save_records(records[:1], root / "ref", shard="000000")
    cylinder = pose.cylinder_params([mesh], segments=12, rows=2, rings=1)
    views = pose.sources_from_records(records, {records[0].objects[0].mesh_ref: mesh})
    pose.generate_sets(views, render, pose.default_relative_poses(4, (0.0,)), root / "sets", category="car",
                       cylinder=cylinder, report=False)
    return root, records


@pytest.mark.parametrize("reference_turned", [False, True])
def test_training_turns_the_annotated_sets_frame_back(tiny_sets, monkeypatch, reference_turned):
    """The check's verdict (stubbed: the annotated image's set, set 0, turned or not) gives the one shot's
    coarse rotation and pose's retrieval database half a turn; the baseline's database keeps the
    generated angles; the sources were the check's and no training batch's."""
    from safetensors.torch import load_file

    import pose.training as training

    root, records = tiny_sets
    seen_sources = []

    def stub(model, sources, shifts, layout, category, crops):
        seen_sources.extend(sources)
        margins = torch.tensor([-1.0 if reference_turned else 1.0, 1.0, 1.0], dtype=torch.float64)
        return {"fitted": torch.zeros(3, dtype=torch.float64), "margins": margins}

    monkeypatch.setattr(training, "check_sources", stub)
    out = root / f"run_{reference_turned}"
    pose.train(root / "sets", root / "ref", out, CONFIG, stop_after=3)  # stopped: its checkpoint holds the views
    sets = pose.load_sets(root / "sets")
    views = [r for s in sets for r in s.records]
    active = load_file(str(sorted((out / "checkpoints").glob("*.safetensors"))[-1]))["train.active"].tolist()
    sources = [j for j, r in enumerate(views) if relative_pose_of(r.objects[0]) == (0.0, 0.0, 0.0)]
    assert len(sources) == 3 and sorted(active) == [j for j in range(len(views)) if j not in sources]
    run = pose.train(root / "sets", root / "ref", out, CONFIG)  # resumed to the end
    report = run.read_json("canonicalisation.json")
    orientation = report["orientation"]
    assert orientation["enabled"] and orientation["annotated_set"] == "set_00000" and orientation["checked"] == 3
    assert orientation["reference_turned"] is reference_turned
    assert orientation["turned"] == (["set_00000"] if reference_turned else [])
    assert [r.image_path.name for r in seen_sources] == ["view_000.png"] * 3
    step = 2 * math.pi / 12
    a0 = records[0].objects[0].viewpoint["azimuth"]
    one = report["one_shot"]
    expected = -report["shifts"][0] * step - a0 + (math.pi if reference_turned else 0.0)
    assert math.remainder(one["coarse_rotation"] - expected, 2 * math.pi) == pytest.approx(0.0, abs=1e-5)
    tensors = load_file(str(sorted((run.path / "checkpoints").glob("*.safetensors"))[-1]))
    generated = [(a0 + relative_pose_of(r.objects[0])[1]) % (2 * math.pi) for r in sets[0].records[1:]]
    assert tensors["retrieval.angles"][1:, 0].tolist() == pytest.approx(generated, abs=1e-5)
    turned = [(a + (math.pi if reference_turned else 0.0)) % (2 * math.pi) for a in generated]
    assert tensors["retrieval_pose.angles"][1:, 0].tolist() == pytest.approx(turned, abs=1e-5)
    assert float(tensors["retrieval_pose.angles"][0, 0]) == pytest.approx(a0)  # the annotated image itself


def test_the_check_is_off_by_default(tiny_sets):
    root, _ = tiny_sets
    run = pose.train(root / "sets", root / "ref", root / "run_off", {**CONFIG, "pose": {"retrieval": {"steps": 2}}})
    orientation = run.read_json("canonicalisation.json")["orientation"]
    assert orientation["enabled"] is False and orientation["turned"] == [] and orientation["margins"] is None
