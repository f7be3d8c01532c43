"""One test over every pose estimator (timm-style): NeMo, the 2D baseline, pose's canonical and
retrieval models and iNeMo's per-task models, each built tiny with random weights, keep the
`methodkit.PoseEstimator` contract (result types, lengths, frozen results, K and categories honoured)
and `nemo.evaluate` takes each of them."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

import data3d
import nemo
from methodkit import PoseEstimator, PoseEvaluation, PoseResult, evaluate_poses
from nemo.backbone import FeatureNet, backbone_config_from_dict
from nemo.baseline import BaselineNet
from nemo.data import category_meshes
from nemo.incremental.loop import _as_model
from pose.model import CanonicalModel, RetrievalModel

SIZE = 64
TINY = {
    "data": {"crop_size": [SIZE, SIZE], "batch_size": 4},
    "cuboid": {"num_vertices": 100},
    "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 32], "embedding_size": 8, "decoder_width": 16,
                 "feature_dim": 16},
    "meshes": {"type": "procedural", "count": 1},
    "bank": {"clutter_size": 32},
    "pose": {"azimuths": 4, "elevations": 1, "thetas": 1, "steps": 1, "keep": 1},
}
CATS = ["car", "sofa"]




def _config(categories, method="nemo"):
    return nemo.resolve_config(dict(TINY, categories=list(categories), method=method))


def _nemo_parts(categories):
    torch.manual_seed(0)
    config = _config(categories)
    net = FeatureNet(backbone_config_from_dict(config["backbone"]))
    bank = nemo.MeshBank(category_meshes(config, categories), feature_dim=16, seed=0, clutter_size=32)
    return net, bank, config


def _baseline_net(n):
    torch.manual_seed(1)
    return BaselineNet(backbone_config_from_dict(_config(CATS, "baseline")["backbone"]), n)


def build(name: str):
    if name == "nemo":
        return nemo.NemoModel(*_nemo_parts(CATS)[:2], _config(CATS), CATS)
    if name == "baseline":
        return nemo.BaselineModel(_baseline_net(2), _config(CATS, "baseline"), CATS)
    if name == "canonical":
        net, bank, config = _nemo_parts(["car"])
        return CanonicalModel(net, bank, config, ["car"], azimuth_offset=0.3, elevation_offset=0.1)
    if name == "retrieval":
        net, _, config = _nemo_parts(["car"])
        with torch.no_grad():
            database = F.normalize(net(torch.rand(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2)))
                                   .flatten(1), dim=-1)
        angles = torch.tensor([[0.1 * i, 0.05 * i, 0.0] for i in range(5)])
        return RetrievalModel(net, database, angles, config, ["car"])
    ncfg = _config(CATS)
    if name == "inemo":
        net, bank, _ = _nemo_parts(CATS)
        return _as_model(net, bank, ncfg, CATS, False)
    # replay2d: the head holds a class budget of 3, two of them seen
    net = _baseline_net(3)
    means = torch.randn(2, int(net.encoder.channels[-1]), generator=torch.Generator().manual_seed(3))
    return _as_model(net, None, ncfg, CATS, True, means if name == "replay2d_nearest_mean" else None)


NAMES = ["nemo", "baseline", "canonical", "retrieval", "inemo", "replay2d_linear", "replay2d_nearest_mean"]


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Two images, one object each (a car, a sofa), with true viewpoints in their own pixels."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(0)
    out = []
    for i, category in enumerate(CATS):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(path)
        vp = data3d.Viewpoint(azimuth=0.5 + i, elevation=0.2, theta=0.0, distance=5.0, focal=1.0, viewport=200.0,
                              px=48.0, py=40.0)
        obj = data3d.ObjectAnnotation(category, (20.0, 15.0, 75.0, 65.0), vp)
        out.append(data3d.ImageRecord(path, (80, 96), (obj,)))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_estimator_keeps_the_contract(name, images, records, tmp_path):
    model = build(name)
    assert isinstance(model, PoseEstimator)
    B = images.shape[0]
    own = model.estimate_pose(images)
    assert isinstance(own, list) and len(own) == B
    for r in own:
        assert isinstance(r, PoseResult) and isinstance(r.viewpoint, data3d.Viewpoint)
        assert r.category in model.categories and isinstance(r.score, float) and math.isfinite(r.score)
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.score = 0.0
        # no intrinsics: focal 2·max(H, W), the rotation-only methods keep the image centre
        assert r.viewpoint.focal * r.viewpoint.viewport == pytest.approx(2.0 * SIZE, rel=1e-5)
        if r.rotation_only:
            assert (r.viewpoint.px, r.viewpoint.py) == ((SIZE - 1) / 2, (SIZE - 1) / 2)
            assert math.isnan(r.to_dict()["viewpoint"]["distance"])
        else:
            assert r.loss is not None and r.score == pytest.approx(1.0 - r.loss)
        assert r.to_dict() == {"category": r.category, "viewpoint": r.viewpoint_dict(), "score": r.score}
    # the given categories are the results' (one image alone, as (3, H, W), is a batch of one)
    given = [model.categories[-1], model.categories[0], model.categories[-1]]
    assert [r.category for r in model.estimate_pose(images, categories=given)] == given
    [single] = model.estimate_pose(images[0], categories=given[:1])
    assert single.category == given[0]
    with pytest.raises(ValueError, match="categories"):
        model.estimate_pose(images, categories=["no such category"] * B)
    # K is honoured: every result's camera has the given focal length (per image, or one K for all)
    K = torch.tensor([[[90.0 + 10 * b, 0.0, 30.0], [0.0, 90.0 + 10 * b, 33.0], [0.0, 0.0, 1.0]] for b in range(B)])
    with_k = model.estimate_pose(images, K=K, categories=given)
    for b, r in enumerate(with_k):
        assert r.viewpoint.focal * r.viewpoint.viewport == pytest.approx(90.0 + 10 * b, rel=1e-5)
        if r.rotation_only:
            assert (r.viewpoint.px, r.viewpoint.py) == (30.0, 33.0)
    assert model.estimate_pose(images, K=K[0], categories=given)[0] == with_k[0]
    # the evaluation through the contract, and nemo.evaluate
    evaluated = evaluate_poses(model, images, given, K, pose_predicted=True)
    assert len(evaluated) == B and all(isinstance(e, PoseEvaluation) for e in evaluated)
    assert [e.pose.category for e in evaluated] == given
    assert all(e.predicted in model.categories and isinstance(e.predicted_pose, PoseResult) for e in evaluated)
    metrics = nemo.evaluate({name: model}, records, tmp_path / "eval", report_examples=1, pose_predicted=True)
    known = [r for r in records if r.objects[0].category in model.categories]
    assert metrics[name]["clean"]["n"] == len(known)
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [row["category"] for row in rows] == [r.objects[0].category for r in known]


def test_the_canonical_model_reports_nemos_fit_less_its_offsets(images):
    """CanonicalModel is NemoModel with the `calibrate_fit` extension point overridden: the same fits,
    azimuth and elevation less the one-shot offsets."""
    net, bank, config = _nemo_parts(["car"])
    plain = nemo.NemoModel(net, bank, config, ["car"]).estimate_pose(images)
    moved = CanonicalModel(net, bank, config, ["car"], azimuth_offset=0.3, elevation_offset=0.1).estimate_pose(images)
    for p, m in zip(plain, moved):
        assert m.viewpoint.azimuth == pytest.approx((p.viewpoint.azimuth - 0.3) % (2 * math.pi))
        assert m.viewpoint.elevation == pytest.approx(p.viewpoint.elevation - 0.1)
        assert (m.viewpoint.theta, m.viewpoint.distance, m.score) == (p.viewpoint.theta, p.viewpoint.distance, p.score)


@pytest.mark.parametrize("name", ["nemo", "baseline"])
def test_test_time_mirroring_is_equivariant_under_a_flip(name, images):
    """With `pose.mirror` a crop and its mirror image are estimated as one pair, so the estimate of the
    flipped crop is the estimate of the crop mirrored (`Viewpoint.mirrored`: azimuth −a, theta −θ,
    px -> W − 1 − px). A random network is not flip-equivariant on its own, so without the option (or
    with a wrong mirror transform) the two disagree."""
    model = build(name)
    K = torch.tensor([[70.0, 0.0, 27.0], [0.0, 70.0, 35.0], [0.0, 0.0, 1.0]])  # off-centre: px must mirror
    K_flipped = K.clone()
    K_flipped[0, 2] = SIZE - 1 - K[0, 2]
    cats = ["car"] * images.shape[0]

    def both():
        return model.estimate_pose(images, cats, K), model.estimate_pose(images.flip(-1), cats, K_flipped)

    plain, plain_flipped = both()
    model.config = dataclasses.replace(model.config, pose=dataclasses.replace(model.config.pose, mirror=True))
    mirrored, mirrored_flipped = both()
    gaps = []
    for r, f in zip(mirrored, mirrored_flipped):
        expected = r.viewpoint.mirrored(SIZE)
        assert f.category == r.category and f.score == pytest.approx(r.score, abs=1e-5)
        for key in ("azimuth", "theta"):
            assert math.remainder(getattr(f.viewpoint, key) - getattr(expected, key), 2 * math.pi) == \
                pytest.approx(0.0, abs=1e-4)
        for key in ("elevation", "px", "py", "distance"):
            assert getattr(f.viewpoint, key) == pytest.approx(getattr(expected, key), abs=1e-4, nan_ok=True)
    for r, f in zip(plain, plain_flipped):
        expected = r.viewpoint.mirrored(SIZE)
        gaps.append(abs(math.remainder(f.viewpoint.azimuth - expected.azimuth, 2 * math.pi))
                    + abs(f.viewpoint.elevation - expected.elevation) + abs(f.score - r.score))
    assert max(gaps) > 1e-3  # without mirroring the flipped crops' estimates are not their mirror images
    # the mirrored run keeps, per crop, one of its two estimates (the crop's own or its mirror's, mirrored back)
    if name == "nemo":
        for m, p, pf in zip(mirrored, plain, plain_flipped):
            candidates = [p.viewpoint, pf.viewpoint.mirrored(SIZE)]
            assert any(abs(math.remainder(m.viewpoint.azimuth - c.azimuth, 2 * math.pi)) < 1e-4
                       and abs(m.viewpoint.theta - c.theta) < 1e-4 for c in candidates)
            assert m.score == pytest.approx(max(p.score, pf.score), abs=1e-5)


def test_nemo_evaluate_refuses_what_is_not_an_estimator(records, tmp_path):
    with pytest.raises(nemo.NemoError, match="not a pose estimator"):
        nemo.evaluate({"x": object()}, records, tmp_path)


def test_pose_result_is_a_read_only_mapping_in_the_old_dict_form():
    vp = data3d.Viewpoint(azimuth=1.0, elevation=0.1, theta=0.0, distance=1.0, focal=100.0, viewport=1.0, px=3.0,
                          py=4.0)
    r = PoseResult(vp, "car", 0.5, rotation_only=True)
    assert dict(r) == r.to_dict() and r["category"] == "car" and math.isnan(r["viewpoint"]["distance"])
    assert PoseResult(dict(vp), "car", 0.5).viewpoint == vp  # a viewpoint mapping becomes a Viewpoint
    with pytest.raises(KeyError):
        r["loss"]
