"""iNeMo's rules as released (issue 24): negatives over every latent slot, the released distillation
(logits × kd_reg, no T²) beside the earlier divided one, the clutter refill from the exemplar
memory, the validation split carved from the training data and the rule chosen on it, and pose with
the predicted class. Expected values are written out by hand in numpy (float64), independently of
the torch code under test."""

import math

import numpy as np
import pytest
import torch

import data3d
import geom3d
from nemo import MeshBank, NemoError
from nemo.contrastive import VertexTargets
from nemo.incremental import distillation_loss
from nemo.incremental.config import resolve_incremental_config
from nemo.incremental.latent import class_centres, latent_slots, partition_features, reserved_features
from nemo.incremental.losses import DISTILLATION_VARIANTS, bank_contrastive_loss
from nemo.incremental.validation import carve_validation


def _np_logsumexp(x):
    m = np.max(x)
    return m + math.log(np.exp(x - m).sum())


def test_negatives_run_over_future_and_unused_slots_by_hand():
    # a bank of one class "a" (3 vertices) and 2 reserved rows (a future class / an unused slot)
    tri = geom3d.Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]))
    fa = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    clutter = np.array([[0.6, 0.8, 0, 0]])
    reserved = np.array([[0, 0, 0, 1.0], [0.0, 0.6, 0, 0.8]])
    x = np.array([[[0.8, 0.6, 0, 0], [0, 0.6, 0.8, 0], [0, 0, 0, 1.0]]])  # image features at the 3 vertices
    uv = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [50.0, 50.0]]])  # vertex 0 and 1 are neighbours (radius 5)
    visible = torch.tensor([[True, True, False]])
    bank = MeshBank({"a": tri}, {"a": torch.tensor(fa, dtype=torch.float32)},
                    torch.tensor(clutter, dtype=torch.float32))
    t = VertexTargets(torch.tensor([0]), uv, visible, torch.tensor(x, dtype=torch.float32),
                      torch.tensor([[[0.0, 0, 1, 0]]]), torch.tensor([[True]]))
    T, w = 0.5, 0.01
    _, info = bank_contrastive_loss(t, bank, temperature=T, radius=5.0, clutter_weight=w, clutter_regulariser=0.0,
                                    reserved=torch.tensor(reserved, dtype=torch.float32))
    # by hand: row i's logits are its own vertex, the own-class non-neighbour (vertex 2), every
    # reserved row, and the clutter + log w; the neighbour (the other of 0/1) is masked
    expect = []
    for i in (0, 1):
        own = x[0, i] @ fa[i] / T
        logits = [own, x[0, i] @ fa[2] / T] + [x[0, i] @ r / T for r in reserved]
        logits += [x[0, i] @ c / T + math.log(w) for c in clutter]
        expect.append(_np_logsumexp(np.array(logits)) - own)
    assert info["contrastive"] == pytest.approx(float(np.mean(expect)), rel=1e-5)
    # without the reserved rows the loss is the bank-only one (the earlier `all_classes` rule)
    _, seen_only = bank_contrastive_loss(t, bank, temperature=T, radius=5.0, clutter_weight=w, clutter_regulariser=0.0)
    assert seen_only["contrastive"] < info["contrastive"]


def test_reserved_features_are_the_ones_a_class_joins_with():
    centres = class_centres(latent_slots(3), 32, seed=0)
    assert centres.shape[0] == 20  # the released PASCAL3D+ memory: etf_init 20 slots
    assert latent_slots(100) == 100 and latent_slots(3, 5) == 5
    with pytest.raises(NemoError, match="cannot hold"):
        latent_slots(12, 8)
    counts = [7, 5, 6] + [9] * 17
    res = reserved_features(centres, [0], counts, seed=4)
    assert res.shape == (5 + 6 + 9 * 17, 32)
    # class 1 (still to come) is reserved with exactly the features it joins the bank with later
    assert torch.equal(res[:5], partition_features(centres, 1, 5, seed=4))
    assert reserved_features(centres, range(20), counts).shape == (0, 32)


@pytest.mark.parametrize("variant", ["released", "divided"])
def test_distillation_variants_by_hand(variant):
    rng = np.random.default_rng(3)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    memory, new, old = unit(rng.normal(size=(6, 4))), unit(rng.normal(size=(3, 4))), unit(rng.normal(size=(3, 4)))
    v = DISTILLATION_VARIANTS[variant]
    got = float(distillation_loss(torch.tensor(new), torch.tensor(old), torch.tensor(memory), v["temperature"],
                                  t_squared=v["t_squared"]))

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    if variant == "released":  # src/models/inemo.py 252-261: log_softmax(kd_reg · cos), kd_reg = 2, no T²
        p, q = softmax(2.0 * old @ memory.T), softmax(2.0 * new @ memory.T)
        factor = 1.0
    else:  # the earlier rule: cos / 2, × 2²
        p, q = softmax(old @ memory.T / 2.0), softmax(new @ memory.T / 2.0)
        factor = 4.0
    expect = factor * np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1))
    assert got == pytest.approx(expect, rel=1e-9)


def test_config_defaults_follow_the_reference_and_variants_are_named():
    cfg = resolve_incremental_config({})
    assert cfg["negatives"] == "all_slots" and cfg["clutter_refill"] is True
    assert cfg["distillation"] == {"variant": "released", "weight": 2.0, "temperature": 0.5}
    assert cfg["nemo"]["loss"]["negatives"] == "all_classes"  # nemo's loss sees the bank part
    old = resolve_incremental_config({"distillation": {"variant": "divided"}, "negatives": "all_classes",
                                      "clutter_refill": False})
    assert old["distillation"] == {"variant": "divided", "weight": 10.0, "temperature": 2.0}
    assert resolve_incremental_config({"distillation": {"weight": 3.0}})["distillation"]["temperature"] == 0.5
    for bad, key in (({"distillation": {"variant": "hinton"}}, "distillation.variant"),
                     ({"negatives": "future"}, "negatives"), ({"latent": {"slots": 0}}, "latent.slots"),
                     ({"clutter_refill": "yes"}, "clutter_refill"), ({"validation": {"fraction": 1.0}},
                                                                     "validation.fraction"),
                     ({"validation": {"match_rules": ["peak", "max"]}}, "validation.match_rules")):
        with pytest.raises(NemoError, match=key.replace(".", r"\.")):
            resolve_incremental_config(bad)


def _rec(category, ident, i):
    vp = data3d.Viewpoint(azimuth=0.1 * i, elevation=0.2, theta=0.0, distance=3.0, focal=1.0, viewport=100.0,
                          px=32.0, py=32.0)
    obj = data3d.ObjectAnnotation(category=category, bbox=(4.0, 4.0, 40.0, 40.0), viewpoint=vp,
                                  cad_source="procedural", cad_id=f"{category}/{ident:04d}",
                                  extra={"asset": f"procedural:{category}/{ident:04d}"})  # a render, as datagen's
    return data3d.ImageRecord(image_path=f"/x/{category}_{ident}_{i}.png", objects=(obj,), image_size=(64, 64))


def test_validation_is_carved_by_instance_from_training_records():
    records = [_rec("car", k, i) for k in range(5) for i in range(4)] + [_rec("bus", 0, i) for i in range(10)]
    train, val, summary = carve_validation(records, ["car", "bus"], 0.2, "instance", min_instances=3, seed=0)
    assert len(train) + len(val) == len(records) and not {id(r) for r in train} & {id(r) for r in val}
    car = summary["classes"]["car"]
    assert car["by"] == "instance" and len(car["instances"]) == 1 and car["objects"] == 4
    # no training record shows a validation instance
    held = set(car["instances"])
    assert all(r.objects[0].mesh_ref not in held for r in train)
    assert all(r.objects[0].mesh_ref in held for r in val if r.objects[0].category == "car")
    bus = summary["classes"]["bus"]  # one instance: a fraction of its objects instead
    assert bus["by"] == "object" and bus["objects"] == 2
    again = carve_validation(records, ["car", "bus"], 0.2, "instance", 3, seed=0)[1]
    assert [r.image_path for r in again] == [r.image_path for r in val]  # seeded
    assert carve_validation(records, ["car", "bus"], 0.0)[1] == []


def test_photographs_are_carved_by_object_and_never_count_as_instances():
    from dataclasses import replace

    from nemo.incremental.loop import check_instances

    renders = [_rec("car", k, i) for k in range(4) for i in range(3)]
    photos = [replace(r, objects=(replace(r.objects[0], extra={}),)) for r in renders]  # no rendered asset
    _, val, summary = carve_validation(photos, ["car"], 0.25, "instance", min_instances=3)
    assert summary["classes"]["car"]["by"] == "object" and len(val) == 3
    check_instances(photos, photos, disjoint=True)  # a photo's CAD reference is not its instance
    with pytest.raises(NemoError, match="instance-disjoint"):
        check_instances(renders, renders[:1], disjoint=True)


def test_all_pools_the_test_splits_but_not_seen_cad():
    from nemo.incremental.metrics import task_entry

    m = {"clean": {"cls_acc": 0.5, "acc_pi6": 0.25, "acc_pi6_predicted": 0.2, "n": 10},
         "L2": {"cls_acc": 0.2, "acc_pi6": 0.1, "acc_pi6_predicted": 0.1, "n": 30},
         "seen_cad": {"cls_acc": 1.0, "acc_pi6": 0.9, "acc_pi6_predicted": 0.9, "n": 40}}
    per_cat = {s: {"car": dict(v)} for s, v in m.items()}
    e = task_entry(0, ["car"], ["car"], [], m, per_cat, 10, 0, 0.0)
    assert e["acc_by_split"]["all"] == pytest.approx((0.5 * 10 + 0.2 * 30) / 40)
    assert e["pose_acc_pi6_predicted_by_split"]["all"] == pytest.approx((0.2 * 10 + 0.1 * 30) / 40)
    assert e["acc_by_split"]["seen_cad"] == 1.0 and e["acc"] == 0.5 and e["pose_acc_pi6_predicted"] == 0.2
    assert e["acc_by_class"]["car"]["all"] == pytest.approx(0.275)
