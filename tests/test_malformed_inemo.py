"""Malformed input to `aware3d nemo incremental | incremental-summary | splits` (the table and its
rules: tests/_malformed.py; `nemo train | eval | pose`: tests/test_malformed_nemo.py)."""

from __future__ import annotations

import json
import math

import pytest
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
from _malformed import (
    OK,
    E,
    _copy_records,
    _copy_run,
    _pre,
    check_case,
    incremental,
    live_lock,
    manifest,
    nothing,
    same_random_state_afterwards,  # noqa: F401  (autouse)
    with_manifest,
    write,
)


def _inc_run(t, name, results=None, seed=0, methods=("finetune",), value=0.5):
    """A finished `aware3d nemo incremental` run folder as the summary reads it (manifest, config, results)."""
    results = results or {m: {"per_task": [{"pose_acc_pi6": 0.4, "pose_acc_pi6_predicted": 0.3}],
                               "average_incremental_accuracy_by_split": {"clean": value, "L2": value},
                               "forgetting_by_split": {"clean": 0.1, "L2": 0.1}} for m in methods}
    with_manifest("nemo.incremental", name, f"methods: [finetune]\nseed: {seed}\n")(None, t)
    (t / name / "manifest.json").write_text(json.dumps({"kind": "nemo.incremental", "status": "complete",
                                                        "step": 1}))
    (t / name / "incremental.json").write_text(json.dumps(results))
    return str(t / name)


def _summary(*runs, extra=()):
    """nemo incremental-summary over runs built by `runs` (each (t) -> folder)."""
    return lambda w, t: ["nemo", "incremental-summary", *[r(t) for r in runs], *extra]


def _splits(t, *extra):
    return ["nemo", "splits", "--config", str(t / "no.yaml"), "--out", str(t / "s"), *extra]


_BAD_TASK = {"finetune": {"per_task": [5], "average_incremental_accuracy_by_split": {"clean": 0.5},
                          "forgetting_by_split": {"clean": 0.1}}}
_BAD_SPLITS = {"finetune": {"per_task": [{}], "average_incremental_accuracy_by_split": 5, "forgetting_by_split": {}}}


CASES = [
    E("splits-config-missing", "mistake", lambda w, t: ["nemo", "splits", "--config", str(t / "no.yaml"), "--out",
                                                        str(t / "s")], ["no.yaml"], nothing("s")),
    E("splits-samples-0", "unchecked", lambda w, t: ["nemo", "splits", "--config", str(t / "no.yaml"), "--out",
                                                     str(t / "s"), "--samples", "0"], ["--samples"], nothing("s")),
    E("inc-threads-0", "unchecked", lambda w, t: incremental(w, t, "--set", "threads=0"), ["'threads'"],
      nothing("inc")),
    E("inc-steps-negative", "unchecked", lambda w, t: incremental(w, t, "--set", "steps.first=-1"),
      ["'steps.first'"], nothing("inc")),
    E("inc-nemo-log-every-0", "unchecked", lambda w, t: incremental(w, t, "--set", "nemo.train.log_every=0"),
      ["'nemo' block", "'train.log_every'"], nothing("inc")),
    E("inc-nemo-device-cuda", "unchecked", lambda w, t: incremental(w, t, "--set", "nemo.device=cuda"),
      ["'device'", "CUDA"], nothing("inc")),
    E("inc-nemo-temperature-nan", "unchecked", lambda w, t: incremental(w, t, "--set", "nemo.loss.temperature=.nan"),
      ["'loss.temperature'", "finite"], nothing("inc")),
    E("inc-positional-temperature-nan", "unchecked",
      lambda w, t: incremental(w, t, "--set", "positional.temperature=.nan"), ["'positional.temperature'", "finite"],
      nothing("inc")),
    E("inc-distillation-weight-inf", "unchecked", lambda w, t: incremental(w, t, "--set", "distillation.weight=.inf"),
      ["'distillation.weight'", "finite"], nothing("inc")),
    E("inc-method-unknown", "mistake", lambda w, t: incremental(w, t, "--set", "methods=[icarl]"), ["'methods'"],
      nothing("inc")),
    E("inc-eval-batch-0", "unchecked", lambda w, t: incremental(w, t, "--set", "eval.batch_size=0"),
      ["'eval.batch_size'"], nothing("inc")),
    E("inc-train-missing", "mistake", lambda w, t: incremental(w, t, train=t / "notrain"), ["notrain"]),
    E("inc-train-and-test-share-images", "mistake", lambda w, t: incremental(w, t, test=w.cars),
      ["share 4 images"]),
    E("inc-every-training-image-unreadable", "skip",
      lambda w, t: incremental(w, t, train=_copy_records(w.cars, t / "bad_train", None)),
      ["no readable training image", "4 unreadable"]),
    E("inc-out-locked", "runfolder", _pre(lambda w, t: live_lock(t, "inc"), incremental),
      ["being written by another training run", ".lock"]),
    OK("inc-one-unreadable-image-is-a-counted-skip", "skip",
       lambda w, t: incremental(w, t, "--set", "nemo.data.crop_size=[64, 64]",  # 1x1 maps at 32: batch norm
                                train=_copy_records(w.cars, t / "one_bad_train", 1)),  # needs 2 crops then
       lambda w, t: manifest(t / "inc")["skipped"] == {"unreadable_train_image": 1, "unreadable_test_image": 0}
       and manifest(t / "inc")["status"] == "complete"),
    E("inc-out-holds-a-nemo-run", "misleading", _pre(_copy_run("run", "inc"), incremental),
      ["holds a NeMo run", "not a class-incremental run", "new --out"]),
    E("inc-a-method-twice", "accepted", lambda w, t: incremental(w, t, "--set", "methods=[finetune, finetune]"),
      ["'methods'", "twice"], nothing("inc")),
    E("inc-distillation-temperature-denormal", "unchecked",
      lambda w, t: incremental(w, t, "--set", "distillation.temperature=1e-320"),
      ["'distillation.temperature'", "0.0001"], nothing("inc")),
    E("inc-a-task-of-one-object-at-crop-32", "bomb", lambda w, t: incremental(w, t),
      ["finetune task 0", "1 training object", "batch norm", "crop ≥ 64"],
      lambda w, t: not (t / "inc" / "incremental.json").exists()),
    E("inc-nemo-crop-unbounded", "hang", lambda w, t: incremental(w, t, "--set", "nemo.data.crop_size=[99968, 99968]"),
      ["'nemo' block", "'data.crop_size'"], nothing("inc")),
    E("splits-samples-unbounded", "hang",
      lambda w, t: ["nemo", "splits", "--config", str(t / "no.yaml"), "--out", str(t / "s"), "--samples", "10000000"],
      ["--samples", "[1, 1e+06]"], nothing("s")),
    E("splits-out-is-a-file", "runfolder",
      _pre(lambda w, t: write(t, "s", "x"), lambda w, t: ["nemo", "splits", "--config", str(t / "no.yaml"), "--out",
                                                           str(t / "s")]), ["s", "names a file"]),
    # nemo incremental-summary: what the table averages, and what it counts
    E("summary-per-task-not-mappings", "bomb", _summary(lambda t: _inc_run(t, "a", _BAD_TASK)),
      ["incremental.json", "'per_task' must be a list of mappings"]),
    E("summary-splits-not-a-mapping", "bomb", _summary(lambda t: _inc_run(t, "a", _BAD_SPLITS)),
      ["incremental.json", "must map splits to numbers"]),
    E("summary-value-nan", "unchecked", _summary(lambda t: _inc_run(t, "a", value=math.nan),
                                                 lambda t: _inc_run(t, "b", seed=1)),
      ["a/incremental.json", "finite number", "nan"]),
    E("summary-one-seed-twice", "counts", _summary(lambda t: _inc_run(t, "a"), lambda t: _inc_run(t, "b", value=0.7)),
      ["b: has the seed and config of", "different seeds"]),
    E("summary-no-common-method", "misleading",
      _summary(lambda t: _inc_run(t, "a"), lambda t: _inc_run(t, "b", seed=1, methods=("lwf",))),
      ["share no method"]),
    E("summary-split-twice", "counts", _summary(lambda t: _inc_run(t, "a"), lambda t: _inc_run(t, "b", seed=1),
                                                extra=("--splits", "clean", "clean")), ["--splits", "given twice"]),
    E("summary-run-is-a-file", "misleading", _summary(lambda t: str(write(t, "f.txt", "x"))),
      ["f.txt", "is a file, not a run folder"]),
    E("summary-out-is-a-folder", "runfolder",
      _summary(lambda t: _inc_run(t, "a"), lambda t: _inc_run(t, "b", seed=1), extra=("--out", ".")),
      ["--out", "is a folder"]),
    # nemo splits: its flags named (make_ood_splits or randomization.background_images before)
    E("splits-unknown-split", "misleading", lambda w, t: _splits(t, "--splits", "clean"),
      ["--splits", "unknown split 'clean'", "occlusion"], nothing("s")),
    E("splits-split-twice", "counts", lambda w, t: _splits(t, "--splits", "fog", "fog"), ["--splits", "given twice"],
      nothing("s")),
    E("splits-unseen-background-without-images", "accepted",  # was: exit 0, nothing made, nothing said
      lambda w, t: _splits(t, "--splits", "unseen_background"), ["--background-images"], nothing("s")),
    E("splits-background-images-unused", "accepted",
      lambda w, t: _splits(t, "--splits", "fog", "--background-images", str(t)),
      ["--background-images only acts with the unseen_background split"], nothing("s")),
    E("splits-background-images-a-file", "misleading",
      lambda w, t: _splits(t, "--background-images", str(write(t, "a.png", "x"))),
      ["--background-images", "a.png", "is a file"], nothing("s")),
    OK("splits-high-elevation-of-a-dst-config", "accepted",  # the split drops the dst keys it does not read
       lambda w, t: (write(t, "dst.yaml", json.dumps({"seed": 0, "image_size": 32, "samples_per_category": 1,
                                                        "occlusion": ["none"], "sampler": {"polar_mean": 80.0},
                                                        "assets": [{"type": "procedural", "categories": ["car"],
                                                                    "count": 1}]})),
                     ["nemo", "splits", "--config", str(t / "dst.yaml"), "--out", str(t / "s"), "--splits",
                      "high_elevation"])[1],
       lambda w, t: (t / "s" / "high_elevation").is_dir(), ["high_elevation:"]),
    E("summary-out-inside-a-run", "runfolder",
      lambda w, t: ["nemo", "incremental-summary", _inc_run(t, "a"), _inc_run(t, "b", seed=1), "--out",
                    str(t / "a" / "incremental.json")],
      ["lies inside the run folder"], lambda w, t: "per_task" in (t / "a" / "incremental.json").read_text()),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_incremental_input(case, malformed_world, tmp_path, capsys, monkeypatch):
    check_case(case, malformed_world, tmp_path, capsys, monkeypatch)
