"""iNeMo's parts: task splits, bank growth, the latent partition, the positional regulariser,
distillation over every old class and the exemplar memory's budget and isolation."""

import math

import pytest
import torch
import torch.nn.functional as F

import data3d
import geom3d
from nemo import MeshBank, NemoError
from nemo.incremental import (
    ExemplarMemory,
    class_centres,
    distillation_loss,
    etf_centres,
    herding_order,
    old_class_memory,
    partition_features,
    pose_aware_order,
    positional_loss,
    split_tasks,
    spread_centres,
    tasks_from_config,
)
from nemo.incremental.latent import nearest_centre
from nemo.incremental.metrics import summarise_method

PASCAL12 = ["aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "diningtable", "motorbike", "sofa",
            "train", "tvmonitor"]


# ---------------------------------------------------------------- tasks
def test_pascal_4x3_seeded_and_complete():
    a = split_tasks(PASCAL12, 4, order_seed=7)
    assert [len(t) for t in a] == [3, 3, 3, 3] and sorted(c for t in a for c in t) == sorted(PASCAL12)
    assert a == split_tasks(PASCAL12, 4, order_seed=7)
    assert a != split_tasks(PASCAL12, 4, order_seed=8)
    assert split_tasks(PASCAL12, 4, order_seed=None)[0] == PASCAL12[:3]


def test_from_half_and_objectnet_presets():
    names = [f"c{i}" for i in range(100)]
    ten = tasks_from_config({"preset": "objectnet3d_10x10", "order_seed": 1}, names)
    assert [len(t) for t in ten] == [10] * 10
    half = tasks_from_config({"preset": "objectnet3d_half"}, names)
    assert [len(t) for t in half] == [50, 10, 10, 10, 10, 10]
    assert [len(t) for t in split_tasks(PASCAL12, 4, first=6)] == [6, 2, 2, 1, 1]  # remainder goes early
    given = tasks_from_config({"tasks": 2, "order": PASCAL12[::-1]}, PASCAL12)
    assert given[0] == PASCAL12[::-1][:6]
    with pytest.raises(NemoError, match="tasks.bogus"):
        tasks_from_config({"tasks": 2, "bogus": 1}, PASCAL12)
    with pytest.raises(NemoError, match="cannot fill"):
        split_tasks(PASCAL12[:3], 4)


# ---------------------------------------------------------------- bank growth
def test_bank_grows_and_keeps_old_classes():
    car, sofa = data3d.procedural.make("car"), data3d.procedural.make("sofa")
    cub = {c: geom3d.cuboid_from_meshes([m], num_vertices=60) for c, m in (("car", car), ("sofa", sofa))}
    bank = MeshBank({"car": cub["car"]}, feature_dim=8, clutter_size=16)
    before = bank.vertex_features("car").clone()
    clutter = bank.clutter.clone()
    new = F.normalize(torch.randn(cub["sofa"].num_vertices, 8), dim=-1)
    bank.add_category("sofa", cub["sofa"], new)
    assert bank.categories == ["car", "sofa"]
    # re-padding re-normalises: equal up to rounding
    assert torch.allclose(bank.vertex_features("car"), before, atol=1e-6)
    assert torch.allclose(bank.clutter, clutter, atol=1e-6)
    assert torch.allclose(bank.vertex_features("sofa"), new)
    assert torch.equal(bank.mesh("car").vertices, cub["car"].vertices)


# ---------------------------------------------------------------- latent space
@pytest.mark.parametrize("K,D", [(2, 4), (12, 16), (17, 16), (12, 128)])
def test_etf_pairwise_cosines(K, D):
    E = etf_centres(K, D, seed=3)
    assert E.shape == (K, D)
    gram = E @ E.T
    assert torch.allclose(gram.diagonal(), torch.ones(K, dtype=E.dtype), atol=1e-12)
    off = gram[~torch.eye(K, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, -1.0 / (K - 1)), atol=1e-10)


def test_spread_when_classes_exceed_dimension():
    K, D = 40, 8
    C = class_centres(K, D, seed=0, dtype=torch.float64)
    assert C.shape == (K, D) and torch.allclose(C.norm(dim=-1), torch.ones(K, dtype=C.dtype))
    off = ~torch.eye(K, dtype=torch.bool)
    rand = F.normalize(torch.randn(K, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=-1)
    assert (C @ C.T)[off].max() < (rand @ rand.T)[off].max() - 0.1  # much more even than random
    assert torch.equal(spread_centres(K, D, seed=0), spread_centres(K, D, seed=0))


def test_partition_gives_disjoint_cells():
    K, D, V = 6, 16, 300
    C = class_centres(K, D, seed=1)
    feats = [partition_features(C, k, V, seed=2) for k in range(K)]
    for k, f in enumerate(feats):
        assert f.shape == (V, D) and torch.allclose(f.norm(dim=-1), torch.ones(V), atol=1e-5)
        assert (nearest_centre(f, C) == k).all()  # every initial feature is nearest its own centre
        sims = f @ C.T
        assert (sims[:, k] > sims.masked_fill(F.one_hot(torch.tensor(k), K).bool(), -2).amax(1)).all()
    allf = torch.cat(feats)
    assert torch.unique(allf, dim=0).shape[0] == K * V  # no vector shared between classes
    # the class's draw does not depend on the other classes drawn
    assert torch.equal(partition_features(C, 3, V, seed=2), feats[3])


# ---------------------------------------------------------------- losses
def test_positional_loss_matches_hand_computation():
    C = class_centres(3, 4, seed=0)
    f = F.normalize(torch.randn(5, 4), dim=-1)
    labels = torch.tensor([0, 1, 2, 1, 0])
    T = 0.5
    expect = sum(-math.log(math.exp(float(f[i] @ C[labels[i]]) / T) /
                           sum(math.exp(float(f[i] @ C[j]) / T) for j in range(3))) for i in range(5)) / 5
    assert float(positional_loss(f, labels, C, T)) == pytest.approx(expect, rel=1e-5)
    # features at their own centre score lower than features at another's
    assert positional_loss(C[labels], labels, C, T) < positional_loss(C[(labels + 1) % 3], labels, C, T)


def _bank(classes, V=20, D=8):
    meshes = {c: geom3d.cuboid_from_meshes([data3d.procedural.make(c)], num_vertices=V) for c in classes}
    return MeshBank(meshes, feature_dim=D, clutter_size=8, seed=1)


def test_distillation_covers_every_old_class():
    old = ["car", "sofa", "chair"]
    bank = _bank(old + ["bus"])
    memory, owner = old_class_memory(bank, old)
    assert memory.shape[0] == sum(int(n) for n in bank.num_vertices[:3])
    assert set(owner.tolist()) == {0, 1, 2}
    memory = memory.clone().requires_grad_(True)
    new = F.normalize(torch.randn(7, 8), dim=-1)
    teacher = F.normalize(torch.randn(7, 8), dim=-1)
    loss = distillation_loss(new, teacher, memory, temperature=2.0, t_squared=True)  # the "divided" variant
    loss.backward()
    for k in range(3):  # every old class's vertices take part in the distribution
        assert memory.grad[owner == k].abs().sum() > 0
    assert float(distillation_loss(teacher, teacher, memory.detach())) == pytest.approx(0.0, abs=1e-6)
    # the value: KL of the softened distributions, times T²
    p = F.softmax(teacher @ memory.detach().T / 2, -1)
    q = F.softmax(new @ memory.detach().T / 2, -1)
    assert float(loss.detach()) == pytest.approx(float((p * (p.log() - q.log())).sum(-1).mean() * 4), rel=1e-5)


# ---------------------------------------------------------------- exemplars
def _records(category, n, offset=0):
    out = []
    for i in range(n):
        vp = {"azimuth": 2 * math.pi * i / n, "elevation": 0.2, "theta": 0.0, "distance": 5.0, "focal": 1.0,
              "viewport": 64.0, "px": 31.5, "py": 31.5}
        obj = data3d.ObjectAnnotation(category=category, bbox=(4.0, 4.0, 40.0, 40.0), viewpoint=vp)
        out.append(data3d.ImageRecord(image_path=f"/x/{category}_{i + offset}.png", image_size=(64, 64),
                                      objects=(obj,)))
    return out


def test_exemplar_memory_stays_in_budget_and_shrinks():
    memory = ExemplarMemory(budget=12, strategy="pose_aware", azimuth_bins=4)
    memory.add_classes({"car": _records("car", 20), "sofa": _records("sofa", 20)})
    assert len(memory) == 12 and memory.per_class() == 6
    first_car = memory.records(["car"])
    memory.add_classes({"chair": _records("chair", 20)})
    assert len(memory) <= 12 and memory.per_class() == 4
    assert memory.records(["car"]) == first_car[:4]  # shrinking keeps the highest-priority ones
    memory.add_classes({"bus": _records("bus", 20), "boat": _records("boat", 2)})
    assert len(memory) <= 12 and memory.per_class() == 2
    with pytest.raises(NemoError, match="already"):
        memory.add_classes({"car": _records("car", 3)})


def test_pose_aware_spreads_over_azimuth_and_herding_tracks_the_mean():
    az = [0.1, 0.2, 0.3, 0.4, 3.3, 3.4]
    order = pose_aware_order(az, bins=2, seed=0)
    assert sorted(order) == list(range(6)) and {order[0] < 4, order[1] < 4} == {True, False}
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [1.0, 0.1]])
    assert herding_order(x, 1) == [2]  # the point closest to the mean direction first


def test_exemplars_never_enter_evaluation():
    train = _records("car", 10)
    memory = ExemplarMemory(budget=4)
    memory.add_classes({"car": train})
    memory.check_disjoint(_records("car", 10, offset=100))  # other images: fine
    with pytest.raises(NemoError, match="exemplar appears in the evaluation"):
        memory.check_disjoint(_records("car", 10, offset=100) + [memory.records()[0]])


def test_forgetting_and_average_incremental_accuracy():
    def row(task, seen, acc_by_class, acc):
        return {"task": task, "seen_classes": seen, "acc_by_split": {"clean": acc, "all": acc},
                "acc_by_class": {c: {"clean": a, "all": a} for c, a in acc_by_class.items()}}

    per_task = [row(0, ["a"], {"a": 1.0}, 1.0), row(1, ["a", "b"], {"a": 0.8, "b": 0.6}, 0.7),
                row(2, ["a", "b", "c"], {"a": 0.5, "b": 0.6, "c": 0.9}, 0.6)]
    s = summarise_method(per_task)
    assert s["average_incremental_accuracy"] == pytest.approx((1.0 + 0.7 + 0.6) / 3)
    assert s["forgetting"] == pytest.approx(((1.0 - 0.5) + (0.6 - 0.6)) / 2)
    assert summarise_method(per_task[:1])["forgetting"] is None


# ---------------------------------------------------------------- CIM compression
def test_compressed_exemplar_keeps_the_object_and_costs_less(tmp_path):
    import numpy as np
    from PIL import Image

    from nemo.incremental.compress import compress_record, compressed_bytes, full_bytes, silhouette_or_box

    gen = torch.Generator().manual_seed(0)
    pixels = (torch.rand(32, 40, 3, generator=gen) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    mask = torch.zeros(32, 40, dtype=torch.bool)
    mask[8:20, 10:30] = True
    Image.fromarray(mask.numpy().astype("uint8") * 255).save(tmp_path / "a_mask.png")
    vp = {"azimuth": 0.0, "elevation": 0.2, "theta": 0.0, "distance": 5.0, "focal": 1.0, "viewport": 64.0,
          "px": 20.0, "py": 16.0}
    obj = data3d.ObjectAnnotation(category="car", bbox=(10.0, 8.0, 29.0, 19.0), viewpoint=vp)
    record = data3d.ImageRecord(image_path=tmp_path / "a.png", image_size=(32, 40), objects=(obj,),
                                extra={"mask_path": str(tmp_path / "a_mask.png")})
    assert torch.equal(silhouette_or_box(record), mask)
    small = compress_record(record, tmp_path / "out", 4, "a")
    out = torch.from_numpy(np.asarray(Image.open(small.image_path)).copy())
    original = torch.from_numpy(pixels)
    assert torch.equal(out[mask], original[mask])  # the object is exact
    assert (out[~mask].float() - original[~mask].float()).abs().mean() > 20  # the noise background is smoothed
    assert small.extra["exemplar_source"] == str(tmp_path / "a.png")
    cost = compressed_bytes(mask, 4)
    assert cost == 3 * 240 + 3 * 8 * 10 + 160 and cost < full_bytes(record) / 3
    # at equal bytes the compressed memory holds more exemplars, within its budget
    records = _records("car", 20)
    full = ExemplarMemory(budget=4 * full_bytes(records[0]), cost=full_bytes)
    packed = ExemplarMemory(budget=4 * full_bytes(records[0]), cost=lambda r: full_bytes(r) // 3)
    full.add_classes({"car": records})
    packed.add_classes({"car": records})
    assert len(full) == 4 and len(packed) == 12 and packed.used() <= packed.budget


def test_bank_contrastive_loss_adds_other_classes_as_negatives():
    from nemo.contrastive import VertexTargets, contrastive_loss
    from nemo.incremental.losses import bank_contrastive_loss

    tri = geom3d.Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]))
    quad = geom3d.Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]),
                       torch.tensor([[0, 1, 2], [1, 3, 2]]))
    gen = torch.Generator().manual_seed(0)
    fa = F.normalize(torch.randn(3, 4, generator=gen), dim=-1)
    fb = F.normalize(torch.randn(4, 4, generator=gen), dim=-1)
    clutter = F.normalize(torch.randn(2, 4, generator=gen), dim=-1)
    x = F.normalize(torch.randn(1, 4, 4, generator=gen), dim=-1)  # image features at the (padded) 4 vertices
    uv = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [50.0, 50.0], [0.0, 0.0]]])
    visible = torch.tensor([[True, True, False, False]])
    noise = F.normalize(torch.randn(1, 2, 4, generator=gen), dim=-1)
    t = VertexTargets(torch.tensor([0]), uv, visible, x, noise, torch.tensor([[True, False]]))
    args = dict(temperature=0.1, radius=5.0, clutter_weight=0.01, clutter_regulariser=0.5)
    alone = MeshBank({"a": tri}, {"a": fa}, clutter)
    # one class: the same as NeMo's own-class loss
    t3 = VertexTargets(t.index, uv[:, :3], visible[:, :3], x[:, :3], noise, t.clutter_valid)
    mine, theirs = bank_contrastive_loss(t3, alone, **args)[0], contrastive_loss(t3, alone, **args)[0]
    assert float(mine) == pytest.approx(float(theirs), rel=1e-5)
    both = MeshBank({"a": tri, "b": quad}, {"a": fa, "b": fb}, clutter)
    _, info = bank_contrastive_loss(t, both, **args)
    expect = []
    for i in (0, 1):  # own negatives: vertex 2 (vertex 0/1 are neighbours); plus all 4 of class b, plus clutter
        logits = [x[0, i] @ fa[i] / 0.1, x[0, i] @ fa[2] / 0.1] + [x[0, i] @ fb[j] / 0.1 for j in range(4)]
        logits += [x[0, i] @ c / 0.1 + math.log(0.01) for c in clutter]
        expect.append(-(logits[0] - torch.logsumexp(torch.stack(logits), 0)))
    assert info["contrastive"] == pytest.approx(float(sum(expect) / 2), rel=1e-5)


def _plain_bank_ce(targets, bank, temperature, radius, clutter_weight):
    """The bank loss written the plain way: one (B, V, M·V + K) logit tensor and a cross-entropy."""
    feats, index, vis = targets.features, targets.index, targets.visible
    B, V, D = feats.shape
    M = bank.features.shape[0]
    logits = (feats @ bank.features.reshape(M * V, D).T / temperature).reshape(B, V, M, V)
    near = (torch.cdist(targets.uv, targets.uv) <= radius) & ~torch.eye(V, dtype=torch.bool)
    excluded = (~bank.vertex_mask())[None, None].expand(B, V, M, V).clone()
    excluded[torch.arange(B), :, index] |= near
    logits = logits.masked_fill(excluded, -1e4).reshape(B, V, M * V)
    clutter = feats @ bank.clutter.T / temperature + math.log(clutter_weight)
    target = (index[:, None] * V + torch.arange(V)).expand(B, V)
    return F.cross_entropy(torch.cat([logits, clutter], dim=-1)[vis], target[vis])


@pytest.mark.parametrize("classes", [1, 3])
def test_bank_contrastive_loss_and_gradient_match_the_plain_formulation(classes):
    from nemo.contrastive import VertexTargets
    from nemo.incremental.losses import bank_contrastive_loss

    gen = torch.Generator().manual_seed(classes)
    counts = [30, 21, 26][:classes]  # unequal: the bank pads
    meshes = {f"c{i}": geom3d.Mesh(torch.randn(n, 3, generator=gen), torch.tensor([[0, 1, 2]]))
              for i, n in enumerate(counts)}
    bank = MeshBank(meshes, feature_dim=8, clutter_size=50, seed=1)
    index = torch.tensor([0, classes - 1, classes - 1, 0])
    B, V = 4, bank.features.shape[1]
    x = F.normalize(torch.randn(B, V, 8, generator=gen), dim=-1).requires_grad_(True)
    uv = torch.rand(B, V, 2, generator=gen) * 64
    visible = (torch.rand(B, V, generator=gen) < 0.6) & bank.vertex_mask()[index]
    t = VertexTargets(index, uv, visible, x, F.normalize(torch.randn(B, 4, 8, generator=gen), dim=-1),
                      torch.ones(B, 4, dtype=torch.bool))
    loss, info = bank_contrastive_loss(t, bank, temperature=0.07, radius=10.0, clutter_weight=5e-3,
                                       clutter_regulariser=0.0)
    (grad,) = torch.autograd.grad(loss, x)
    plain = _plain_bank_ce(t, bank, 0.07, 10.0, 5e-3)
    (plain_grad,) = torch.autograd.grad(plain, x)
    assert info["contrastive"] == pytest.approx(float(plain.detach()), rel=1e-5)
    assert torch.allclose(grad, plain_grad, atol=1e-6, rtol=1e-4)
    assert grad[~visible].abs().max() == 0 and grad[visible].abs().sum() > 0
