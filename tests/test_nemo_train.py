"""nemo training: the schedule, the contrastive loss against a hand computation, a short run that
lowers the loss into a complete run folder, exact resume after a stop, config errors, and
load → estimate_pose → evaluate for NeMo and the 2D baseline side by side."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

import data3d
import geom3d
import nemo
from nemo.bank import MeshBank
from nemo.config import merge as merge_config
from nemo.contrastive import VertexTargets, contrastive_loss, plain_contrastive_ce

TINY = {
    "data": {"crop_size": [64, 64], "batch_size": 8, "prefetch_rounds": False},
    "cuboid": {"num_vertices": 150},
    "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 32], "embedding_size": 8, "decoder_width": 16,
                 "feature_dim": 16},
    "meshes": {"type": "procedural", "count": 2},
    "bank": {"clutter_size": 64},
    "optim": {"lr": 3e-3, "warmup_steps": 3},
    "train": {"steps": 10, "log_every": 1, "checkpoint_every": 5},
    "pose": {"azimuths": 8, "elevations": 2, "thetas": 1, "steps": 5, "keep": 2},
}




@pytest.fixture(scope="module")
def records_folder(tmp_path_factory):
    from datagen.config import load_config
    from datagen.pipeline import generate

    out = tmp_path_factory.mktemp("nemo_data") / "ds"
    cfg = load_config({"seed": 3, "image_size": 64, "samples_per_category": 4, "occlusion": ["none", "L2"],
                       "assets": [{"type": "procedural", "categories": ["car", "sofa"], "count": 2}],
                       "writer": {"chunk_size": 16}})
    generate(cfg, out, progress=False)
    return out


def test_learning_rate_warms_up_then_decays():
    optim = dict(nemo.DEFAULTS["optim"], lr=1.0, warmup_steps=4, min_lr_ratio=0.0)
    lrs = [nemo.learning_rate(s, optim, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == pytest.approx(1.0) and lrs[12] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] < 0.05
    steps = dict(optim, schedule="steps", milestones=[0.5], gamma=0.1)
    assert nemo.learning_rate(9, steps, 20) == 1.0 and nemo.learning_rate(10, steps, 20) == pytest.approx(0.1)


def test_contrastive_loss_matches_hand_computation():
    mesh = geom3d.Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]))
    feats = F.normalize(torch.randn(3, 4), dim=-1)
    clutter = F.normalize(torch.randn(2, 4), dim=-1)
    bank = MeshBank({"a": mesh}, {"a": feats}, clutter)
    x = F.normalize(torch.randn(1, 3, 4), dim=-1)
    uv = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]]])  # vertices 0 and 1 are neighbours
    visible = torch.tensor([[True, True, False]])
    noise = F.normalize(torch.randn(1, 2, 4), dim=-1)
    t = VertexTargets(torch.tensor([0]), uv, visible, x, noise, torch.tensor([[True, False]]))
    loss, info = contrastive_loss(t, bank, temperature=0.1, radius=5.0, clutter_weight=0.01, clutter_regulariser=0.5)
    expect = []
    for i, others in ((0, [2]), (1, [2])):  # the neighbour is not a negative
        logits = [x[0, i] @ feats[i] / 0.1] + [x[0, i] @ feats[j] / 0.1 for j in others]
        logits += [x[0, i] @ c / 0.1 + math.log(0.01) for c in clutter]
        expect.append(-(logits[0] - torch.logsumexp(torch.stack(logits), 0)))
    reg = (noise[0, 0] @ feats.T).mean()
    assert info["contrastive"] == pytest.approx(float(sum(expect) / 2), rel=1e-5)
    assert float(loss) == pytest.approx(float(sum(expect) / 2 + 0.5 * reg), rel=1e-5)


def test_contrastive_loss_and_gradient_match_the_plain_formulation():
    gen = torch.Generator().manual_seed(0)
    meshes = {c: geom3d.Mesh(torch.randn(n, 3, generator=gen), torch.tensor([[0, 1, 2]]))
              for c, n in (("a", 30), ("b", 21))}
    bank = MeshBank(meshes, feature_dim=8, clutter_size=50, seed=1)
    B, V = 3, bank.features.shape[1]
    x = F.normalize(torch.randn(B, V, 8, generator=gen), dim=-1).requires_grad_(True)
    uv = torch.rand(B, V, 2, generator=gen) * 64
    visible = (torch.rand(B, V, generator=gen) < 0.6) & bank.vertex_mask()[torch.tensor([0, 1, 1])]
    t = VertexTargets(torch.tensor([0, 1, 1]), uv, visible, x, F.normalize(torch.randn(B, 4, 8), dim=-1),
                      torch.ones(B, 4, dtype=torch.bool))
    loss, info = contrastive_loss(t, bank, temperature=0.07, radius=10.0, clutter_weight=5e-3, clutter_regulariser=0.0)
    (grad,) = torch.autograd.grad(loss, x)
    plain = plain_contrastive_ce(t, bank, 0.07, 10.0, 5e-3)
    (plain_grad,) = torch.autograd.grad(plain, x)
    assert info["contrastive"] == pytest.approx(float(plain.detach()), rel=1e-5)
    assert torch.allclose(grad, plain_grad, atol=1e-6, rtol=1e-4)
    assert grad[~visible].abs().max() == 0 and grad[visible].abs().sum() > 0


def test_training_lowers_loss_and_fills_run_folder(records_folder, tmp_path):
    run = nemo.train([records_folder], tmp_path / "run", TINY)
    log = run.read_log()
    assert [r["step"] for r in log] == list(range(1, 11))
    losses = [r["loss"] for r in log]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert len({round(r["lr"], 8) for r in log}) > 5  # the schedule really changes the rate
    for name in ("config.yaml", "manifest.json", "loss.png", "log.jsonl"):
        assert (run.path / name).is_file(), name
    assert run.read_json("manifest.json")["status"] == "complete"
    assert [s for s, _ in run.checkpoints()] == [5, 10]
    assert run.read_config()["categories"] == ["car", "sofa"]


def test_all_class_negatives_train_with_every_category_as_negatives(records_folder, tmp_path, monkeypatch):
    import importlib

    nemo_train = importlib.import_module("nemo.training")  # the module of the function nemo.train
    calls = []
    real = nemo_train.contrastive_loss
    monkeypatch.setattr(nemo_train, "contrastive_loss",
                        lambda *a, **kw: calls.append(kw.get("other_classes")) or real(*a, **kw))
    short = dict(TINY, train=dict(TINY["train"], steps=3))
    own = nemo.train([records_folder], tmp_path / "own", short).read_log()
    both = nemo.train([records_folder], tmp_path / "all", merge_config(short, {"loss": {"negatives": "all_classes"}}))
    assert calls == [False] * 3 + [True] * 3
    # the same first batch and network: the other category's vertices only add to the normaliser
    assert both.read_log()[0]["loss"] > own[0]["loss"]


def test_resume_after_stop_matches_uninterrupted_run(records_folder, tmp_path):
    straight = nemo.train([records_folder], tmp_path / "a", TINY)
    stopped = nemo.train([records_folder], tmp_path / "b", TINY, stop_after=5)
    assert stopped.read_json("manifest.json")["status"] == "stopped"
    with open(stopped.log_path, "a") as fh:  # a step logged after the checkpoint, lost by the "kill"
        fh.write(json.dumps({"step": 6, "loss": 0.0}) + "\n")
    resumed = nemo.train([records_folder], tmp_path / "b", TINY)
    assert [r["step"] for r in resumed.read_log()] == list(range(1, 11))
    a, _ = straight.load_checkpoint()
    b, _ = resumed.load_checkpoint()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), atol=1e-5), k
    with pytest.raises(nemo.NemoError, match="another config"):
        nemo.train([records_folder], tmp_path / "b", dict(TINY, seed=5))


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(nemo.NemoError, match="'loss.temprature'"):
        nemo.resolve_config({"loss": {"temprature": 0.1}})
    with pytest.raises(nemo.NemoError, match="'data.rescale'"):
        nemo.resolve_config({"data": {"rescale": "zoom"}})
    with pytest.raises(nemo.NemoError, match="multiples of 32"):
        nemo.resolve_config({"data": {"crop_size": [60, 64]}})
    bad = tmp_path / "c.yaml"
    bad.write_text("train: {steps: many}\n")
    with pytest.raises(nemo.NemoError, match="c.yaml.*'train.steps'"):
        nemo.load_config(bad)


def test_load_estimate_and_evaluate_side_by_side(records_folder, tmp_path):
    from nemo.data import load_record_folders

    nemo_run = nemo.train([records_folder], tmp_path / "nemo", TINY)
    base_run = nemo.train([records_folder], tmp_path / "base", dict(TINY, method="baseline", baseline={"steps": 14}))
    assert base_run.read_json("manifest.json")["step"] == 14  # baseline.steps, not train.steps (10)
    model, baseline = nemo.load(nemo_run.path), nemo.load(base_run.path)
    images = torch.rand(2, 3, 64, 64)
    for m in (model, baseline):
        out = m.estimate_pose(images)
        assert len(out) == 2 and out[0]["category"] in ("car", "sofa")
        assert {"azimuth", "elevation", "theta"} <= set(out[0]["viewpoint"]) and math.isfinite(out[0]["score"])
    fitted = model.estimate_pose(images, ["sofa", "car"])
    assert [r["category"] for r in fitted] == ["sofa", "car"]
    records = load_record_folders([records_folder])
    metrics = nemo.evaluate({"nemo": model, "baseline": baseline}, records, tmp_path / "eval", report_examples=2)
    assert set(metrics) == {"nemo", "baseline"}
    for per in metrics.values():
        assert set(per) == {"clean", "L2"}
        for s in per.values():
            assert {"acc_pi6", "acc_pi18", "median_deg", "cls_acc", "n"} <= set(s) and s["n"] == 8
            assert 0 <= s["acc_pi18"] <= s["acc_pi6"] <= 1
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == metrics
    assert (tmp_path / "eval" / "report.html").is_file() and list((tmp_path / "eval" / "images").glob("*.png"))
    # what viewers read: the record's true viewpoint, the estimate in the full image's pixels, the fitted meshes
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    by_image = {str(r.image_path): r for r in records}
    for row in rows:
        obj = by_image[row["image"]].objects[row["object_index"]]
        assert row["truth"] == pytest.approx(obj.viewpoint.as_dict()) and row["mesh_ref"] == obj.mesh_ref
        assert all(row["image_viewpoint"][k] == row["viewpoint"][k] for k in ("azimuth", "elevation", "theta"))
    meshes = np.load(tmp_path / "eval" / "meshes.npz")
    assert set(meshes) == {f"nemo/{c}/{k}" for c in model.categories for k in ("vertices", "faces")}
    np.testing.assert_array_equal(meshes["nemo/car/vertices"], model.bank.mesh("car").vertices.cpu().numpy())


def test_on_the_fly_rounds_and_resume(tmp_path):
    """A datagen config as data: each epoch renders a new round (seed + epoch); a stopped run resumes in
    the right round and matches the uninterrupted one; the cuboids come from the rendered assets."""
    source = {"seed": 4, "image_size": 64, "samples_per_category": 4, "occlusion": ["none"],
              "assets": [{"type": "procedural", "categories": ["car"], "count": 1}]}
    cfg = dict(TINY, train={"steps": 3, "log_every": 1, "checkpoint_every": 1})  # 4 images, batch 8: 1 step/epoch
    # the uninterrupted run renders each next round in the background; the stopped one does not
    straight = nemo.train([source], tmp_path / "a", dict(cfg, data=dict(TINY["data"], prefetch_rounds=True)))
    assert straight.read_json("manifest.json")["on_the_fly"] is True
    assert sorted(p.name for p in (straight.path / "fresh").iterdir()) == ["round_00001", "round_00002"]
    first = {r.image_path.name for r in data3d.load_records(straight.path / "fresh" / "round_00002")}
    second = {r.image_path.name for r in data3d.load_records(straight.path / "fresh" / "round_00001")}
    assert first.isdisjoint(second)  # fresh viewpoints every round
    nemo.train([source], tmp_path / "b", cfg, stop_after=2)
    resumed = nemo.train([source], tmp_path / "b", cfg)
    a, _ = straight.load_checkpoint()
    b, _ = resumed.load_checkpoint()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), atol=1e-5), k


def _ddp_worker(rank, world, port, data, out):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    seen = {}
    update = MeshBank.update_vertices

    def spy(self, *args, **kwargs):  # remember this process's bank
        seen["bank"] = self
        return update(self, *args, **kwargs)

    MeshBank.update_vertices = spy
    cfg = dict(TINY, data=dict(TINY["data"], batch_size=4), train={"steps": 3, "log_every": 1, "checkpoint_every": 3})
    nemo.train([data], out, cfg)
    torch.save({"features": seen["bank"].features, "clutter": seen["bank"].clutter}, f"{out}.rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_cpu_processes_on_gloo(records_folder, tmp_path):
    """torchrun-style DDP with two CPU processes: one run folder (rank 0), gradients averaged, and the
    mesh bank identical on both ranks (checked through the clutter FIFO and vertex features)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(records_folder), str(tmp_path / "ddp")), nprocs=2, join=True)
    run = nemo.RunFolder(tmp_path / "ddp")
    assert [r["step"] for r in run.read_log()] == [1, 2, 3]
    tensors, meta = run.load_checkpoint()
    assert meta["step"] == 3 and run.read_json("manifest.json")["status"] == "complete"
    ranks = [torch.load(f"{tmp_path / 'ddp'}.rank{r}.pt") for r in (0, 1)]
    assert torch.equal(ranks[0]["features"], ranks[1]["features"])
    assert torch.equal(ranks[0]["clutter"], ranks[1]["clutter"])
    assert torch.allclose(tensors["bank.clutter"], ranks[0]["clutter"])


def test_init_and_extra_loss_hooks(records_folder, tmp_path):
    """Reuse points for iNeMo / label-free pose: start from a given (network, bank) and add a loss term."""
    from nemo.training import build_model

    config = nemo.resolve_config(dict(TINY, categories=["car", "sofa"], train={"steps": 3, "log_every": 1,
                                                                               "checkpoint_every": 3}))
    net, bank = build_model(config, ["car", "sofa"])
    bank.features[0, 0] = F.normalize(torch.ones(16), dim=0)
    calls = []

    def extra(step, batch, features, targets, bank_):
        assert bank_ is bank and features.shape[1] == 16
        calls.append(step)
        return features.mean() * 0 + 2.0, {"extra": 2.0}

    run = nemo.train([records_folder], tmp_path / "run", config, init=(net, bank), extra_loss=extra)
    log = run.read_log()
    assert calls == [0, 1, 2] and all(r["extra"] == 2.0 for r in log)
    assert all(r["loss"] == pytest.approx(r["contrastive"] + 0.1 * r["regulariser"] + 2.0, rel=1e-5) for r in log)
    with pytest.raises(nemo.NemoError, match="initial bank"):
        nemo.train([records_folder], tmp_path / "bad", config, init=(net, MeshBank({"car": bank.mesh("car")})))


def test_unreadable_images_are_skipped_and_counted(records_folder, tmp_path):
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(records_folder, folder)
    broken = sorted((folder / "images").rglob("*.png"))[:2]
    for path in broken:
        path.write_bytes(b"not a png")
    cfg = dict(TINY, train={"steps": 3, "log_every": 1, "checkpoint_every": 3})
    run = nemo.train([folder], tmp_path / "run", cfg)
    manifest = run.read_json("manifest.json")
    assert manifest["status"] == "complete" and sum(manifest["skipped"].values()) >= 1
    from nemo.data import load_record_folders

    nemo.evaluate({"nemo": nemo.load(run.path)}, load_record_folders([folder]), tmp_path / "eval", classify_fit=False,
                  report_examples=1)
    assert json.loads((tmp_path / "eval" / "skipped.json").read_text()) == {"nemo": 2}
    per = json.loads((tmp_path / "eval" / "metrics.json").read_text())["nemo"]
    assert sum(s["n"] for s in per.values()) == 14


def test_demo_trains_both_and_compares(records_folder, tmp_path):
    from nemo.demo import run_nemo_demo, summary

    metrics = run_nemo_demo(records_folder, tmp_path / "demo", ["car", "sofa"], steps=1, samples_per_category=4)
    assert set(metrics) == {"nemo", "baseline"} and set(metrics["nemo"]) == {"clean", "L2"}
    text = summary(metrics)
    assert "clean (n=8) Acc@pi/6: nemo" in text and "baseline" in text
    assert (tmp_path / "demo" / "eval" / "report.html").is_file()


def test_fresh_round_waits_for_a_renderer_still_holding_it(tmp_path):
    """A killed run's background renderer may still hold a round's lock: the resumed run waits."""
    import threading
    import time

    from datagen.lock import FolderLock
    from nemo.fresh import FreshData

    source = {"seed": 4, "image_size": 64, "samples_per_category": 2, "occlusion": ["none"],
              "assets": [{"type": "procedural", "categories": ["car"], "count": 1}]}
    fresh = FreshData(source, tmp_path / "fresh")
    fresh.round_folder(0).mkdir(parents=True)
    held = threading.Event()

    def hold():
        with FolderLock(fresh.round_folder(0)):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    start = time.perf_counter()
    records = fresh.records(0)
    thread.join()
    assert len(records) == 2 and time.perf_counter() - start >= 1.0


def test_vertex_targets_with_an_object_mask_keep_positives_on_the_object_and_clutter_off_it():
    from nemo.contrastive import vertex_targets

    mesh = geom3d.cuboid_mesh((-0.5, -0.3, -0.2), (0.5, 0.3, 0.2), 200)
    bank = MeshBank({"box": mesh}, feature_dim=8, seed=0)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([0.6, 2.0]), torch.tensor([0.3, 0.2]), torch.zeros(2),
                                       torch.full((2,), 3.0), focal=3.0 * 64, viewport=1.0, image_size=(64, 64))
    feats = F.normalize(torch.randn(2, 8, 8, 8), dim=1)
    index = torch.zeros(2, dtype=torch.long)
    plain = vertex_targets(feats, cams, bank, index, 8, 30, torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[:, :, :32] = True  # the "object" is the left half of the image
    masked = vertex_targets(feats, cams, bank, index, 8, 30, torch.Generator().manual_seed(0), object_mask=mask)
    left = plain.uv[..., 0].round() < 32
    assert torch.equal(masked.visible, plain.visible & left)
    assert 0 < int(masked.visible.sum()) < int(plain.visible.sum())
    # clutter comes only from cells the mask does not touch, and now also from inside the cuboid's silhouette
    silhouette = geom3d.rasterize(mesh, cams).mask
    cells = F.max_pool2d(silhouette[:, None].float(), 8)[:, 0].reshape(2, -1) > 0
    flat = feats.reshape(2, 8, 64).transpose(1, 2)
    hits = (masked.clutter[:, :, None, :] - flat[:, None]).abs().sum(-1) < 1e-5  # (B, N, cells)
    taken = hits[masked.clutter_valid]  # each valid clutter sample is one cell
    cell_ids = taken.float().argmax(-1)
    image_of = torch.arange(2)[:, None].expand_as(masked.clutter_valid)[masked.clutter_valid]
    assert bool((cell_ids % 8 >= 4).all())  # columns 4..7: the right half
    assert bool(cells[image_of, cell_ids].any())  # some inside the cuboid's silhouette


def test_training_with_object_masks_reads_the_records_masks(records_folder, tmp_path):
    steps = {"steps": 2, "log_every": 1, "checkpoint_every": 2}
    plain = nemo.train([records_folder], tmp_path / "a", dict(TINY, train=steps))
    masked = nemo.train([records_folder], tmp_path / "b", dict(TINY, train=steps, loss={"object_mask": True}))
    assert masked.read_config()["loss"]["object_mask"] is True
    first = [run.read_log()[0]["visible"] for run in (plain, masked)]
    assert 0 < first[1] < first[0]  # the same first batch: fewer positives on the objects than on the cuboids


def test_baseline_decodes_inside_the_pose_prior():
    """8 bins of 45°: an out-of-range most likely bin gives way to the best bin overlapping the range, and
    the bin centre is clamped into the range (hand-derived); no bounds: the plain argmax."""
    from nemo.baseline import decode_bins

    logits = torch.full((1, 3, 8), -5.0)
    logits[0, 0, 3] = 1.0                               # azimuth: bin 3, centre 157.5°
    logits[0, 1, 2], logits[0, 1, 0] = 4.0, 2.0         # elevation: bin 2 (90–135°) beats bin 0 (0–45°)
    logits[0, 2, 7], logits[0, 2, 1] = 3.0, 1.0         # theta: bin 7 (−45–0°) beats bin 1 (45–90°)
    free = decode_bins(logits)[0]
    assert math.degrees(free["elevation"]) == pytest.approx(112.5)
    bounds = ((math.radians(-10), math.radians(35)), (math.radians(-12), math.radians(12)))
    prior = decode_bins(logits, bounds)[0]
    assert math.degrees(prior["azimuth"]) == pytest.approx(157.5)
    assert math.degrees(prior["elevation"]) == pytest.approx(22.5)   # bin 0, inside the range
    assert math.degrees(prior["theta"]) == pytest.approx(-12.0)      # bin 7's centre −22.5° clamped to −12°
    logits[0, 1, 0] = -9.0                              # now bin 7 (−45–0°, overlapping [−10, 35]) wins
    assert math.degrees(decode_bins(logits, bounds)[0]["elevation"]) == pytest.approx(-10.0)
