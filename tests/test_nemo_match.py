"""nemo.match_categories: classification by feature matching, NOVUM's mean rule and iNeMo's peak rule."""

import math

import pytest
import torch
import torch.nn.functional as F

import geom3d
import nemo

E = torch.eye(4)


def _two_class_bank():
    """Category a's vertices all carry e0, b's all e1; the clutter memory is {e2, e3}."""
    mesh = geom3d.cuboid_mesh((-1, -0.5, -0.3), (1, 0.5, 0.3), 30)
    V = mesh.num_vertices
    return nemo.MeshBank({"a": mesh, "b": mesh}, {"a": E[0].expand(V, 4), "b": E[1].expand(V, 4)},
                         clutter=E[2:4].clone())


def test_hand_values_occluded_object():
    # One pixel shows b cleanly (e1); three occluder pixels (0.8 e0 + 0.6 e3) resemble a and clutter.
    bank = _two_class_bank()
    occluder = 0.8 * E[0] + 0.6 * E[3]
    maps = torch.stack([E[1], occluder, occluder, occluder], dim=1).reshape(1, 4, 1, 4)
    mean = nemo.match_categories(maps, bank, "mean")
    # clutter centre (e2 + e3)/√2: occluder pixels score a: 0.8 − 0.6/√2, b: 0; the b pixel b: 1
    a = 3 * (0.8 - 0.6 / math.sqrt(2)) / 4
    assert torch.allclose(mean, torch.tensor([[a, 0.25]]), atol=1e-6)
    assert mean.argmax().item() == 0  # the mean rule is misled by the occluder
    peak = nemo.match_categories(maps, bank, "peak")
    # b pixel: 1 − 0 − (1 − 1) for b, 0 − 0 − 0 for a; occluders: a 0.8 − 0.6 − 0.2 = 0, b −0.8
    assert torch.allclose(peak, torch.tensor([[0.0, 1.0]]), atol=1e-6)
    assert peak.argmax().item() == 1


def _loop_scores(maps, bank, rule):
    """Both rules pixel by pixel in plain Python (the independent reference)."""
    B, D, h, w = maps.shape
    M = len(bank.categories)
    out = torch.zeros(B, M)
    centre = F.normalize(bank.clutter.mean(0), dim=0)
    for b in range(B):
        per_pixel = []
        for p in range(h * w):
            f = maps[b, :, p // w, p % w]
            s = [max(float(bank.vertex_features(c)[v] @ f) for v in range(bank.vertex_features(c).shape[0]))
                 for c in bank.categories]
            per_pixel.append((s, float(centre @ f), max(float(k @ f) for k in bank.clutter)))
        for m in range(M):
            if rule == "mean":
                out[b, m] = sum(max(0.0, s[m] - cc) for s, cc, _ in per_pixel) / (h * w)
            else:
                vals = []
                for s, _, cb in per_pixel:
                    top = sorted(s, reverse=True)
                    vals.append(s[m] - cb - (1 - (top[0] - top[1])))
                out[b, m] = max(vals)
    return out


@pytest.mark.parametrize("rule", ["mean", "peak"])
def test_rules_equal_a_pixel_loop(rule):
    gen = torch.Generator().manual_seed(3)
    meshes = {c: geom3d.cuboid_mesh((-1, -0.5, -0.3), (1, 0.5, 0.3), n) for c, n in (("a", 20), ("b", 40), ("c", 30))}
    bank = nemo.MeshBank(meshes, feature_dim=6, clutter=torch.randn(7, 6, generator=gen), seed=1)
    maps = F.normalize(torch.randn(2, 6, 3, 4, generator=gen), dim=1)
    assert torch.allclose(nemo.match_categories(maps, bank, rule), _loop_scores(maps, bank, rule), atol=1e-5)


def test_one_category_and_bad_rule():
    mesh = geom3d.cuboid_mesh((-1, -1, -1), (1, 1, 1), 30)
    bank = nemo.MeshBank({"a": mesh}, feature_dim=4, clutter=E[2:4].clone())
    maps = F.normalize(torch.randn(2, 4, 2, 2), dim=1)
    assert nemo.match_categories(maps, bank, "peak").shape == (2, 1)
    with pytest.raises(nemo.NemoError, match="rule must be one of"):
        nemo.match_categories(maps, bank, "median")
    with pytest.raises(nemo.NemoError, match="classify.match_rule"):
        nemo.resolve_config({"classify": {"match_rule": "median"}})


def test_negatives_key_is_checked_where_it_cannot_apply():
    from nemo.incremental.config import resolve_incremental_config
    from pose.config import resolve_pose_config

    assert nemo.resolve_config({})["loss"]["negatives"] == "own_class"
    with pytest.raises(nemo.NemoError, match="loss.negatives"):
        nemo.resolve_config({"loss": {"negatives": "everything"}})
    with pytest.raises(ValueError, match="own_class"):  # pose's bank rows are sets of one category
        resolve_pose_config({"nemo": {"loss": {"negatives": "all_classes"}}})
    with pytest.raises(nemo.NemoError, match="nemo.loss.negatives"):  # the run's own `negatives` decides
        resolve_incremental_config({"negatives": "own_class", "nemo": {"loss": {"negatives": "all_classes"}}})
    resolved = resolve_incremental_config({})
    # iNeMo's released negatives: every latent slot; nemo's loss holds the bank's part of them
    assert resolved["negatives"] == "all_slots" and resolved["nemo"]["loss"]["negatives"] == "all_classes"
    assert resolve_incremental_config(resolved) == resolved  # a stored, resolved config resolves again
