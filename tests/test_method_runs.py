"""Every method that trains through `methodkit.Trainer`: a few steps, stopped (`stop_after`, as a kill
after a checkpoint), resumed, ends bit for bit as an uninterrupted run, with one run-folder shape
(config.yaml, manifest.json of `methodkit.MANIFEST_KEYS`, log.jsonl without duplicate steps,
checkpoints with the `model.` / `optim.` key layout and the trainer's place). And the trainer alone on a
toy problem: dropped batches, an epoch ended early, and resume at every step."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
from test_nemo_train import TINY

import methodkit
from methodkit.trainer import Hooks, Trainer, learning_rate, load_state, module_state, resume_config, state_tensors
from nemo.config import merge as merge_config

# test_nemo_train's tiny NeMo, smaller still
TINY_NEMO = merge_config(TINY, {
    "threads": 1, "data": {"crop_size": [32, 32], "batch_size": 4}, "cuboid": {"num_vertices": 60},
    "backbone": {"hidden_sizes": [4, 8, 8, 8], "embedding_size": 4, "decoder_width": 8, "feature_dim": 8},
    "bank": {"clutter_size": 32}, "optim": {"warmup_steps": 2}, "train": {"steps": 6, "checkpoint_every": 2},
    "pose": {"azimuths": 4, "elevations": 1, "steps": 2, "keep": 1}})
STEPS, STOP = 6, 3


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from datagen.config import load_config
    from datagen.pipeline import generate

    out = tmp_path_factory.mktemp("method_runs") / "ds"
    generate(load_config({"seed": 3, "image_size": 48, "samples_per_category": 3, "occlusion": ["none"],
                          "assets": [{"type": "procedural", "categories": ["car", "sofa"], "count": 1}],
                          "writer": {"chunk_size": 16}}), out, progress=False)
    return out


@pytest.fixture(scope="module")
def pose_world(tmp_path_factory):
    import data3d
    import pose
    from data3d.procedural import make
    from datagen.novel_view import RenderSynthesizer
    from pose.sets import _write_png, object_bbox

    root, size, mesh = tmp_path_factory.mktemp("method_runs_pose"), 48, make("car", seed=1)
    render = RenderSynthesizer(backend="raster")
    rng = np.random.default_rng(0)
    sources = []
    (root / "src").mkdir()
    for i, (a, e) in enumerate(zip(rng.uniform(0, 2 * math.pi, 2), rng.uniform(0.1, 0.3, 2))):
        vp = {"azimuth": float(a), "elevation": float(e), "theta": 0.0, "distance": 3.0, "focal": 1.0,
              "viewport": size * 2.2, "px": (size - 1) / 2, "py": (size - 1) / 2}
        image = render.render(mesh, [vp], (size, size))[0]
        _write_png(root / "src" / f"src{i}.png", image)
        obj = data3d.ObjectAnnotation("car", object_bbox(image), data3d.Viewpoint(**vp), cad_source="procedural",
                                      cad_id="car/0001")
        sources.append(data3d.ImageRecord(root / "src" / f"src{i}.png", (size, size), (obj,)))
    data3d.save_records([sources[0]], root / "ref", shard="000000")
    views = pose.sources_from_records(sources, {sources[0].objects[0].mesh_ref: mesh})
    pose.generate_sets(views, render, pose.default_relative_poses(4, (0.0,)), root / "sets", category="car",
                       cylinder=pose.cylinder_params([mesh], segments=12, rows=3, rings=1))
    return root


def _nemo(method):
    def train(records, pose_world, out, stop_after=None):
        import nemo

        return nemo.train([records], out, dict(TINY_NEMO, method=method), stop_after=stop_after)

    return train


def _pose(records, pose_world, out, stop_after=None):
    import pose

    config = {"nemo": TINY_NEMO,
              "pose": {"retrieval": {"steps": 2}, "filter": {"after": 0.5}}}
    return pose.train(pose_world / "sets", pose_world / "ref", out, config, stop_after=stop_after)


# every method whose training runs through methodkit.Trainer: (train function, manifest kind)
METHODS = {
    "nemo": (_nemo("nemo"), "nemo.nemo"),
    "baseline": (_nemo("baseline"), "nemo.baseline"),
    "pose": (_pose, "pose.labelfree"),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_stopped_and_resumed_run_ends_as_an_uninterrupted_one(method, records, pose_world, tmp_path):
    train, kind = METHODS[method]
    whole = train(records, pose_world, tmp_path / "whole")
    stopped = train(records, pose_world, tmp_path / "parts", stop_after=STOP)
    manifest = stopped.read_json("manifest.json")
    methodkit.check_manifest(manifest)
    assert manifest["status"] == "stopped" and manifest["step"] == STOP and manifest["kind"] == kind
    assert stopped.latest_checkpoint()[0] == STOP  # a stop leaves a checkpoint where it stopped
    _, meta = stopped.load_checkpoint()
    assert {"step", "epoch", "offset", "position"} <= set(meta["train_state"]) and meta["train_state"]["step"] == STOP
    with open(stopped.log_path, "a") as fh:  # a step logged after the checkpoint, lost by a kill
        fh.write(json.dumps({"step": STOP + 1, "loss": 0.0}) + "\n")
    resumed = train(records, pose_world, tmp_path / "parts")

    for run in (whole, resumed):
        for name in ("config.yaml", "manifest.json", "log.jsonl", "loss.png"):
            assert (run.path / name).is_file(), (method, name)
        manifest = run.read_json("manifest.json")
        methodkit.check_manifest(manifest)
        assert manifest["status"] == "complete" and manifest["step"] == STEPS and manifest["kind"] == kind
        assert [r["step"] for r in run.read_log()] == list(range(1, STEPS + 1))
        assert all({"loss", "lr", "epoch"} <= set(r) for r in run.read_log())
    assert [r["loss"] for r in whole.read_log()] == [r["loss"] for r in resumed.read_log()]
    a, meta_a = whole.load_checkpoint()
    b, meta_b = resumed.load_checkpoint()
    assert meta_a["step"] == meta_b["step"] == STEPS and sorted(a) == sorted(b)
    assert any(k.startswith("model.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), (method, key)


# ---------------------------------------------------------------------- iNeMo: resumes per finished task
@pytest.fixture(scope="module")
def incremental_data(tmp_path_factory):
    """Instance-disjoint train / test record folders of two classes (procedural seeds 0 and 1)."""
    from datagen.config import load_config
    from datagen.pipeline import generate

    root = tmp_path_factory.mktemp("method_runs_incremental")
    for name, seed, seeds in (("train", 3, [0]), ("test", 4, [1])):
        generate(load_config({"seed": seed, "image_size": 48, "samples_per_category": 3, "occlusion": ["none"],
                              "assets": [{"type": "procedural", "categories": ["car", "sofa"], "seeds": seeds}],
                              "writer": {"chunk_size": 16}}), root / name, progress=False)
    return root


@pytest.mark.parametrize("method", ["inemo", "replay2d"])
def test_incremental_run_killed_in_a_task_ends_as_an_uninterrupted_one(method, incremental_data, tmp_path):
    """iNeMo's run trains each task through methodkit.Trainer and resumes per finished task (task.json
    written last): killed during task 1 (its task.json missing, a line of it logged), the rerun loads
    task 0, trains task 1 again from its start and ends bit for bit as an uninterrupted run."""
    from nemo.incremental import run_incremental

    nemo_cfg = {k: v for k, v in TINY_NEMO.items() if k != "pose"}
    config = {"train_data": [str(incremental_data / "train")], "test_data": [str(incremental_data / "test")],
              "tasks": {"tasks": 2}, "steps": {"first": 3, "later": 2}, "exemplars": {"budget": 2},
              "nemo": nemo_cfg, "eval": {"batch_size": 8}, "validation": {"fraction": 0.0}, "methods": [method]}
    whole = run_incremental(config, tmp_path / "whole")
    parts = tmp_path / "parts"
    run_incremental(config, parts)
    (parts / method / "task_1" / "task.json").unlink()  # as if killed during task 1
    with open(parts / method / "log.jsonl", "a") as fh:
        fh.write(json.dumps({"task": 1, "step": 1, "loss": 0.0}) + "\n")
    stamp = next((parts / method / "task_0" / "checkpoints").iterdir()).stat().st_mtime_ns
    resumed = run_incremental(config, parts)

    for result in (whole, resumed):
        for entry in result[method]["per_task"]:
            entry.pop("seconds")
    assert resumed == whole
    assert next((parts / method / "task_0" / "checkpoints").iterdir()).stat().st_mtime_ns == stamp  # loaded
    for out in (tmp_path / "whole", parts):
        run = methodkit.RunFolder(out)
        for name in ("config.yaml", "manifest.json", "incremental.json", "validation.json", "report.html"):
            assert (out / name).is_file(), name
        manifest = run.read_json("manifest.json")
        methodkit.check_manifest(manifest)
        assert manifest["kind"] == "nemo.incremental" and manifest["status"] == "complete" and manifest["step"] == 2
        log = methodkit.RunFolder(out / method).read_log()
        assert [(r["task"], r["step"]) for r in log] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]
        assert all({"loss", "lr", "epoch"} <= set(r) for r in log)
        for t, steps in ((0, 3), (1, 2)):
            task = methodkit.RunFolder(out / method / f"task_{t}")
            manifest = task.read_json("manifest.json")
            methodkit.check_manifest(manifest)
            assert manifest["kind"] == "nemo.incremental.task" and manifest["step"] == steps
            assert task.latest_checkpoint()[0] == steps
    losses = [[r["loss"] for r in methodkit.RunFolder(out / method).read_log()] for out in (tmp_path / "whole", parts)]
    assert losses[0] == losses[1]
    for t in (0, 1):
        a, _ = methodkit.RunFolder(tmp_path / "whole" / method / f"task_{t}").load_checkpoint()
        b, _ = methodkit.RunFolder(parts / method / f"task_{t}").load_checkpoint()
        assert sorted(a) == sorted(b) and any(k.startswith("model.") for k in a)
        assert (method == "replay2d") != any(k.startswith("bank.") for k in a)  # NeMo methods save their bank
        for key in a:
            assert torch.equal(a[key], b[key]), (method, t, key)


# ---------------------------------------------------------------------- the trainer alone
class _Toy:
    """y = 3x fitted by one weight; batch 2 of 6 samples; the batch holding sample 5 cannot be trained
    (dropped), and an epoch ends early once at step 4 (a filter, as pose's)."""

    def __init__(self):
        torch.manual_seed(0)
        self.net = torch.nn.Linear(1, 1)
        self.x = torch.linspace(-1, 1, 6)[:, None]
        self.filtered = False
        self.after = 0

    def hooks(self):
        def batches(epoch):
            return torch.randperm(6, generator=torch.Generator().manual_seed(epoch)).view(3, 2).tolist()

        def load(epoch, orders):
            for order in orders:
                yield None if 5 in order else {"image": self.x[order], "y": 3 * self.x[order]}

        def step(batch, step):
            loss = ((self.net(batch["image"]) - batch["y"]) ** 2).mean()
            return loss, {"w": float(self.net.weight.detach())}, self._after

        def before(trainer):
            if trainer.step == 4 and not self.filtered:
                self.filtered = True
                return True
            return False

        def state():
            return {"toy.after": torch.tensor([self.after])}, {"train_state": {"filtered": self.filtered}}

        return Hooks(batches, load, step, before_batch=before, state=state)

    def _after(self):
        self.after += 1


OPTIM = {"lr": 0.1, "warmup_steps": 2, "schedule": "cosine", "min_lr_ratio": 0.0, "weight_decay": 0.0}


def test_trainer_resumes_exactly_at_every_step(tmp_path):
    whole = _Toy()
    run = methodkit.RunFolder(tmp_path / "whole")
    trainer = Trainer(whole.net, whole.hooks(), OPTIM, 9, run=run, checkpoint_every=100)
    assert trainer.fit() and trainer.step == 9 and whole.after == 9
    assert trainer.position > 9  # the dropped batches count in the place, not as steps
    lrs = [r["lr"] for r in run.read_log()]
    assert lrs == [learning_rate(s, OPTIM, 9) for s in range(9)] and lrs[0] == pytest.approx(0.05)
    for stop in range(1, 9):
        folder = methodkit.RunFolder(tmp_path / f"stop{stop}")
        toy = _Toy()
        assert not Trainer(toy.net, toy.hooks(), OPTIM, 9, run=folder, checkpoint_every=100, stop_after=stop).fit()
        tensors, meta = folder.load_checkpoint()
        again = _Toy()
        load_state(again.net, tensors)
        again.filtered, again.after = meta["train_state"]["filtered"], int(tensors["toy.after"])
        resumed = Trainer(again.net, again.hooks(), OPTIM, 9, run=folder, checkpoint_every=100)
        resumed.restore(tensors, meta["train_state"])
        folder.truncate_log(resumed.step)
        assert resumed.fit()
        assert torch.equal(again.net.weight, whole.net.weight), stop
        assert resumed.position == trainer.position and again.after == 9
        assert [r["loss"] for r in folder.read_log()] == [r["loss"] for r in run.read_log()], stop


def test_a_diverged_loss_is_an_error_of_the_methods_type():
    class MyError(methodkit.RunError):
        pass

    toy = _Toy()
    hooks = toy.hooks()
    hooks.step = lambda batch, step: (torch.tensor(float("nan") if step == 1 else 1.0, requires_grad=True), {})
    with pytest.raises(MyError, match="diverged at step 1 .*lower my.lr"):
        Trainer(toy.net, hooks, OPTIM, 3, error=MyError, hint="lower my.lr").fit()


def test_a_loss_not_finite_before_any_update_does_not_blame_the_learning_rate():
    toy = _Toy()
    hooks = toy.hooks()
    hooks.step = lambda batch, step: (torch.tensor(float("nan"), requires_grad=True), {})
    with pytest.raises(methodkit.RunError, match="not finite at step 0, before any update .*not the learning rate"
                       ) as caught:
        Trainer(toy.net, hooks, OPTIM, 3, hint="lower my.lr").fit()
    assert "lower my.lr" not in str(caught.value)


def test_checkpoint_keys_round_trip():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.AdamW(net.parameters())
    net(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    tensors = state_tensors(net, optimizer)
    assert {k.split(".")[0] for k in tensors} == {"model", "optim"}
    state = module_state(tensors)
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    other = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    load_state(other, tensors)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), net.state_dict().values()))
    with pytest.raises(methodkit.RunError, match="does not fit"):
        load_state(torch.nn.Linear(2, 3), tensors)


def test_resume_config_compares_all_but_the_free_keys(tmp_path):
    run = methodkit.RunFolder(tmp_path / "run")

    def resolve(config):
        return {"seed": 0, "train": {"steps": 5, "log_every": 1}, "categories": None, **config}

    assert resume_config(run, {"seed": 1}, resolve) == (resolve({"seed": 1}), False)
    run.write_config(resolve({"categories": ["car"]}))
    run.save_checkpoint(2, {"x": torch.zeros(1)})
    opts = {"free": ("train",), "fill": ("categories",), "extend": ("train.steps",)}
    config, resuming = resume_config(run, {"train": {"steps": 9, "log_every": 3}}, resolve, **opts)
    assert resuming and config["train"] == {"steps": 9, "log_every": 1} and config["categories"] == ["car"]
    with pytest.raises(methodkit.RunError, match="another config"):
        resume_config(run, {"seed": 2}, resolve, **opts)
    with pytest.raises(methodkit.RunError, match="another config"):
        resume_config(run, {"categories": ["sofa"]}, resolve, **opts)


def test_methodkit_imports_no_method_package():
    """methodkit sits below datagen and the methods (docs/design.md's layers): it imports none of them."""
    import ast
    from pathlib import Path

    above = {"datagen", "nemo", "pose", "orbit4d", "aware3d"}
    for path in Path(methodkit.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not {n.split(".")[0] for n in names} & above, (path.name, names)
