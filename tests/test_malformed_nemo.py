"""Malformed input to `aware3d nemo train | eval | pose` (the table and its rules: tests/_malformed.py;
`nemo incremental | incremental-summary | splits`: tests/test_malformed_inemo.py)."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
from _malformed import (
    NEMO,
    OK,
    E,
    _copy_records,
    _copy_run,
    _pre,
    _record_images,
    _setv,
    bomb_png,
    check_case,
    cli_main,
    exif_jpeg,
    image_of_mode,
    live_lock,
    manifest,
    nemo_eval,
    nemo_pose,
    nemo_train,
    no_config,
    nothing,
    same_random_state_afterwards,  # noqa: F401  (autouse)
    steps_logged,
    with_manifest,
    write,
)


def _killed_before_checkpoint(w, t):
    """A run folder as a kill before the first checkpoint leaves it: config.yaml, two logged steps."""
    shutil.copytree(w.run, t / "out")
    shutil.rmtree(t / "out" / "checkpoints")
    (t / "out" / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 1.0}\n')


def _checkpoints_without_config(w, t):
    import nemo

    cfg = dict(NEMO, categories=["car", "sofa"], train=dict(NEMO["train"], steps=3))
    nemo.train([w.records], t / "out", cfg, stop_after=1)
    (t / "out" / "config.yaml").unlink()


def _log_is_exact(folder: str, steps: int):
    return lambda w, t: steps_logged(t / folder) == list(range(1, steps + 1))


NEMO_TRAIN = [
    # values nobody checked
    E("train-threads-0", "unchecked", lambda w, t: _setv(w, t, "threads=0"), ["'threads'", "≥ 1"], no_config()),
    E("train-checkpoint-every-0", "unchecked", lambda w, t: _setv(w, t, "train.checkpoint_every=0"),
      ["'train.checkpoint_every'", "≥ 1"], no_config()),
    E("train-log-every-0", "unchecked", lambda w, t: _setv(w, t, "train.log_every=0"), ["'train.log_every'", "≥ 1"],
      no_config()),
    E("train-keep-checkpoints-0", "unchecked", lambda w, t: _setv(w, t, "train.keep_checkpoints=0"),
      ["'train.keep_checkpoints'"], no_config()),
    E("train-device-cuda-on-cpu-build", "unchecked", lambda w, t: _setv(w, t, "device=cuda"),
      ["'device'", "'cuda'", "no usable CUDA"], no_config()),
    E("train-device-nonsense", "unchecked", lambda w, t: _setv(w, t, "device=gpu9"), ["'device'", "gpu9"], no_config()),
    E("train-temperature-nan", "misleading", lambda w, t: _setv(w, t, "loss.temperature=.nan"),
      ["'loss.temperature'", "finite"], no_config()),
    E("train-lr-inf", "unchecked", lambda w, t: _setv(w, t, "optim.lr=.inf"), ["'optim.lr'", "finite"], no_config()),
    E("train-lr-0", "unchecked", lambda w, t: _setv(w, t, "optim.lr=0"), ["'optim.lr'"], no_config()),
    E("train-weight-decay-nan", "unchecked", lambda w, t: _setv(w, t, "optim.weight_decay=.nan"),
      ["'optim.weight_decay'", "finite"], no_config()),
    E("train-batch-size-0", "unchecked", lambda w, t: _setv(w, t, "data.batch_size=0"), ["'data.batch_size'"],
      no_config()),
    E("train-steps-0", "unchecked", lambda w, t: _setv(w, t, "train.steps=0"), ["'train.steps'"], no_config()),
    E("train-crop-not-32", "unchecked", lambda w, t: _setv(w, t, "data.crop_size=[30, 30]"), ["'data.crop_size'"],
      no_config()),
    E("train-fit-fraction-1.5", "unchecked", lambda w, t: _setv(w, t, "data.fit_fraction=1.5"),
      ["'data.fit_fraction'", "(0, 1]"], no_config()),
    E("train-flip-prob-2", "unchecked", lambda w, t: _setv(w, t, "data.flip_prob=2"), ["'data.flip_prob'"],
      no_config()),
    E("train-momentum-1.5", "unchecked", lambda w, t: _setv(w, t, "bank.momentum=1.5"), ["'bank.momentum'"],
      no_config()),
    E("train-coverage-0", "unchecked", lambda w, t: _setv(w, t, "cuboid.coverage=0"), ["'cuboid.coverage'"],
      no_config()),
    E("train-num-vertices-0", "unchecked", lambda w, t: _setv(w, t, "cuboid.num_vertices=0"),
      ["'cuboid.num_vertices'"], no_config()),
    E("train-milestones-beyond-run", "unchecked", lambda w, t: _setv(w, t, "optim.milestones=[1.5]"),
      ["'optim.milestones'"], no_config()),
    E("train-categories-a-string", "accepted", lambda w, t: _setv(w, t, "categories=car"), ["'categories'", "'car'"],
      no_config()),
    E("train-color-jitter-a-number", "accepted", lambda w, t: _setv(w, t, "data.color_jitter=5"),
      ["'data.color_jitter'"], no_config()),
    E("train-color-jitter-unknown-key", "accepted", lambda w, t: _setv(w, t, "data.color_jitter={blur: 1}"),
      ["'data.color_jitter'", "blur"], no_config()),
    E("train-clutter-per-image-0", "unchecked", lambda w, t: _setv(w, t, "loss.clutter_per_image=0"),
      ["'loss.clutter_per_image'"], no_config()),
    E("train-baseline-bins-0", "unchecked", lambda w, t: nemo_train(w, t, "--with-baseline", "--set",
                                                                    "baseline.num_bins=0"),
      ["'baseline.num_bins'"], no_config()),
    E("train-backbone-depths-0", "unchecked", lambda w, t: _setv(w, t, "backbone.depths=[0, 0, 0, 0]"),
      ["'backbone.depths'"], no_config()),
    E("train-backbone-lengths-differ", "unchecked", lambda w, t: _setv(w, t, "backbone.depths=[1, 1]"),
      ["'backbone.hidden_sizes'", "same length"], no_config()),
    E("train-feature-dim-0", "unchecked", lambda w, t: _setv(w, t, "backbone.feature_dim=0"),
      ["'backbone.feature_dim'"], no_config()),
    E("train-layer-type-unknown", "mistake", lambda w, t: _setv(w, t, "backbone.layer_type=wide"),
      ["'backbone.layer_type'", "wide"], no_config()),
    E("train-meshes-a-number", "unchecked", lambda w, t: _setv(w, t, "meshes=5"), ["'meshes'", "asset source block"],
      no_config()),
    E("train-clutter-size-huge", "hang", lambda w, t: _setv(w, t, "bank.clutter_size=1000000000"),
      ["'bank.clutter_size'", "≤"], no_config()),
    E("train-workers-1000", "unchecked", lambda w, t: _setv(w, t, "data.workers=1000"), ["'data.workers'"],
      no_config()),
    E("train-method-unknown", "mistake", lambda w, t: _setv(w, t, "method=nerf"), ["'method'", "nerf"], no_config()),
    E("train-seed-a-word", "mistake", lambda w, t: _setv(w, t, "seed=abc"), ["'seed'", "abc"], no_config()),
    E("train-threads-negative", "mistake", lambda w, t: _setv(w, t, "threads=-1"), ["'threads'"], no_config()),
    # accepted and wrong later: the pose settings a trained run uses afterwards
    E("train-pose-azimuths-0", "accepted", lambda w, t: _setv(w, t, "pose.azimuths=0"), ["'pose.azimuths'", "≥ 1"],
      no_config()),
    E("train-pose-keep-0", "accepted", lambda w, t: _setv(w, t, "pose.keep=0"), ["'pose.keep'", "≥ 1"], no_config()),
    E("train-pose-keep-beyond-grid", "accepted", lambda w, t: _setv(w, t, "pose.keep=99"),
      ["'pose.keep'", "2 initial hypotheses"], no_config()),
    E("train-pose-azimuths-unbounded", "hang", lambda w, t: _setv(w, t, "pose.azimuths=100000"),
      ["'pose.azimuths'", "≤ 360"], no_config()),
    E("train-pose-steps-0", "accepted", lambda w, t: _setv(w, t, "pose.steps=0"), ["'pose.steps'"], no_config()),
    E("train-pose-lr-nan", "unchecked", lambda w, t: _setv(w, t, "pose.lr=.nan"), ["'pose.lr'", "finite"],
      no_config()),
    E("train-pose-fill-2", "accepted", lambda w, t: _setv(w, t, "pose.fill=2"), ["'pose.fill'"], no_config()),
    E("train-pose-elevation-range-reversed", "accepted", lambda w, t: _setv(w, t, "pose.elevation_range=[35, -10]"),
      ["'pose.elevation_range'", "lo ≤ hi"], no_config()),
    E("train-pose-theta-range-one-number", "accepted", lambda w, t: _setv(w, t, "pose.theta_range=[12]"),
      ["'pose.theta_range'", "[lo, hi]"], no_config()),
    E("train-pose-elevation-range-past-pole", "accepted", lambda w, t: _setv(w, t, "pose.elevation_range=[0, 120]"),
      ["'pose.elevation_range'", "≤ 90"], no_config()),
    # messages that point the right way
    E("train-set-meshes-type-off", "misleading", lambda w, t: _setv(w, t, "meshes.type=off"),
      ["meshes", "off", "'root' is required"], no_config()),
    E("train-set-meshes-off-root-one-key-at-a-time", "misleading",
      lambda w, t: nemo_train(w, t, "--set", "meshes.type=off", "--set", f"meshes.root={t / 'no_cad'}"),
      ["meshes", "no_cad"], no_config()),
    E("train-set-without-equals", "mistake", lambda w, t: _setv(w, t, "threads"), ["--set expects key=value"]),
    E("train-set-unknown-key", "mistake", lambda w, t: _setv(w, t, "loss.temprature=1"), ["'loss.temprature'"]),
    E("train-config-missing", "mistake", lambda w, t: ["nemo", "train", "--data", str(w.records), "--out",
                                                       str(t / "out"), "--config", str(t / "nope.yaml")],
      ["nope.yaml", "cannot read the config"], no_config()),
    E("train-config-not-yaml", "mistake", lambda w, t: ["nemo", "train", "--data", str(w.records), "--out",
                                                        str(t / "out"), "--config", str(write(t, "c.yaml", "a: [1"))],
      ["c.yaml", "not valid YAML"], no_config()),
    E("train-config-not-a-mapping", "mistake",
      lambda w, t: ["nemo", "train", "--data", str(w.records), "--out", str(t / "out"), "--config",
                    str(write(t, "c.yaml", "- 1\n- 2\n"))], ["c.yaml", "must be a mapping"], no_config()),
    E("train-config-duplicate-key", "mistake",
      lambda w, t: ["nemo", "train", "--data", str(w.records), "--out", str(t / "out"), "--config",
                    str(write(t, "c.yaml", "seed: 1\nseed: 2\n"))], ["c.yaml", "duplicate key 'seed'"], no_config()),
    E("train-data-missing", "mistake", lambda w, t: nemo_train(w, t, data=t / "nowhere"), ["nowhere"], no_config()),
    E("train-data-without-records", "mistake", lambda w, t: nemo_train(w, t, data=write(t, "empty/x.txt", "").parent),
      ["empty"], no_config()),
    E("train-categories-absent-from-data", "mistake", lambda w, t: _setv(w, t, "categories=[plane]"),
      ["no records of ['plane']"], no_config()),
    # hangs
    E("train-every-image-unreadable", "hang", lambda w, t: nemo_train(w, t, data=w.all_bad),
      ["no batch of a whole epoch could be trained", "4 unreadable samples", "all_bad"]),
    E("train-every-image-a-bomb", "bomb",
      lambda w, t: nemo_train(w, t, data=_copy_records(w.records, t / "bombs", None, "bomb")),
      ["no batch of a whole epoch", "too large to decode", "bombs"]),
    # counts that lie
    E("train-same-data-twice", "counts", lambda w, t: nemo_train(w, t, "--data", str(w.records)),
      ["given twice", "records"], no_config()),
    OK("train-one-bad-image-counted-once", "counts",
       lambda w, t: nemo_train(w, t, "--set", "train.steps=4", data=w.one_bad),
       lambda w, t: manifest(t / "out")["skipped"] == {"AnnotationError": 1}
       and len(manifest(t / "out")["skipped_samples"]) == 1),
    OK("train-one-bomb-counted-once", "bomb", lambda w, t: nemo_train(w, t, "--set", "train.steps=4", data=w.one_bomb),
       lambda w, t: manifest(t / "out")["skipped"] == {"AnnotationError": 1}
       and "too large to decode" in manifest(t / "out")["skipped_samples"][0]),
    OK("train-unknown-category-objects-counted", "counts", lambda w, t: nemo_train(w, t),
       lambda w, t: manifest(t / "out")["dropped_objects"] == {"chair": 2}
       and manifest(t / "out")["train_objects"] == 4),
    # run folders
    E("train-out-locked-by-a-live-run", "runfolder", _pre(lambda w, t: live_lock(t, "out"), nemo_train),
      ["being written by another training run", f"pid {os.getppid()}", ".lock"], no_config()),
    OK("train-stale-lock-taken-over", "runfolder",
       _pre(lambda w, t: (t / "out").mkdir() or (t / "out" / ".lock").write_text('{"pid": 999999999, "host": "'
                                                                                  + os.uname().nodename + '"}'),
            nemo_train),
       lambda w, t: (t / "out" / "config.yaml").is_file() and not (t / "out" / ".lock").exists()),
    E("train-out-is-the-data", "runfolder", lambda w, t: ["nemo", "train", "--data", str(w.cars), "--out", str(w.cars),
                                                         "--config", str(w.config), "--no-progress"],
      ["--out is also an input"], lambda w, t: not (w.cars / "checkpoints").exists()),
    E("train-out-holds-a-dataset", "runfolder",
      lambda w, t: ["nemo", "train", "--data", str(w.cars), "--out", str(w.chairs), "--config", str(w.config),
                    "--no-progress"], ["chairs", "holds records shards"],
      lambda w, t: not (w.chairs / "checkpoints").exists()),
    E("train-out-is-a-file", "runfolder", lambda w, t: nemo_train(w, t, out=write(t, "afile", "x").name),
      ["afile"]),
    E("train-out-holds-another-config", "runfolder",
      _pre(_copy_run("run"), lambda w, t: _setv(w, t, "seed=5")), ["another config"]),
    OK("train-killed-before-first-checkpoint", "runfolder", _pre(_killed_before_checkpoint, nemo_train),
       _log_is_exact("out", 2)),
    OK("train-checkpoints-without-config", "runfolder",
       _pre(_checkpoints_without_config, lambda w, t: _setv(w, t, "train.steps=3")),
       lambda w, t: _log_is_exact("out", 3)(w, t) and (t / "out" / "config.yaml").is_file()),
    OK("train-resume-with-other-data-updates-manifest", "runfolder",
       _pre(_copy_run("run"), lambda w, t: nemo_train(w, t, "--set", "train.steps=3", data=w.cars)),
       lambda w, t: manifest(t / "out")["data"] == [str(w.cars)]
       and manifest(t / "out")["data_history"][0]["data"] == [str(w.records)] and _log_is_exact("out", 3)(w, t)),
    E("train-out-holds-a-pose-run", "misleading", _pre(_copy_run("pose_run"), nemo_train),
      ["label-free pose run", "not a NeMo run", "new --out"]),
    E("train-resume-corrupt-config", "runfolder",
      _pre(lambda w, t: (_copy_run("run")(w, t), write(t, "out/config.yaml", "a: [1")), nemo_train),
      ["config.yaml", "not valid YAML"]),
    E("train-resume-corrupt-checkpoint", "runfolder",
      _pre(lambda w, t: (_copy_run("run")(w, t), write(t, "out/checkpoints/step_00000009.safetensors", b"junk")),
           lambda w, t: _setv(w, t, "train.steps=12")), ["step_00000009.safetensors", "cannot read the checkpoint"]),
]

NEMO_EVAL = [
    E("eval-run-missing", "mistake", lambda w, t: nemo_eval(w, t, run=t / "norun"), ["norun", "config.yaml"],
      nothing("eval")),
    E("eval-a-pose-run", "misleading", lambda w, t: nemo_eval(w, t, run=w.pose_run),
      ["pose_run", "label-free pose run", "aware3d pose eval"], nothing("eval")),
    E("eval-run-without-checkpoint", "mistake",
      _pre(lambda w, t: (_copy_run("run", "r")(w, t), shutil.rmtree(t / "r" / "checkpoints")),
           lambda w, t: nemo_eval(w, t, run=t / "r")), ["no checkpoint"], nothing("eval")),
    E("eval-run-config-broken", "mistake",
      _pre(lambda w, t: (_copy_run("run", "r")(w, t), write(t, "r/config.yaml", "threads: 0\n")),
           lambda w, t: nemo_eval(w, t, run=t / "r")), ["config.yaml", "'threads'"], nothing("eval")),
    OK("eval-a-run-trained-on-cuda-loads-on-the-cpu", "unchecked",
       _pre(lambda w, t: (_copy_run("run", "r")(w, t),
                          write(t, "r/config.yaml", (w.run / "config.yaml").read_text().replace("device: cpu",
                                                                                              "device: cuda"))),
            lambda w, t: nemo_eval(w, t, run=t / "r")),
       lambda w, t: (t / "eval" / "metrics.json").is_file()),  # with a logged warning
    E("eval-batch-size-0", "unchecked", lambda w, t: nemo_eval(w, t, "--batch-size", "0"),
      ["--batch-size", "must be in [1"], nothing("eval")),
    E("eval-every-object-skipped", "counts", lambda w, t: nemo_eval(w, t, data=w.all_bad),
      ["every one of the 4 objects was skipped", "all_bad"],
      lambda w, t: not (t / "eval" / "metrics.json").exists()),
    E("eval-no-object-of-the-runs-categories", "mistake", lambda w, t: nemo_eval(w, t, data=w.chairs),
      ["no records of ['car', 'sofa']"], nothing("eval")),
    E("eval-same-data-twice", "counts", lambda w, t: nemo_eval(w, t, "--data", str(w.cars)), ["given twice"],
      nothing("eval")),
    OK("eval-unknown-categories-counted", "counts", lambda w, t: nemo_eval(w, t, data=w.records),
       lambda w, t: json.loads((t / "eval" / "metrics.json").read_text())["nemo"]["clean"]["n"] == 4,
       ["not evaluated: 2 objects", "'chair': 2"]),
    OK("eval-one-bomb-is-a-counted-skip", "bomb", lambda w, t: nemo_eval(w, t, data=w.one_bomb),
       lambda w, t: json.loads((t / "eval" / "skipped.json").read_text())["nemo"] == 1),
    E("eval-baseline-run-missing", "mistake", lambda w, t: nemo_eval(w, t, "--baseline-run", str(t / "nobase")),
      ["nobase"], nothing("eval")),
    E("eval-out-is-a-file", "mistake", _pre(lambda w, t: write(t, "eval", "x"), nemo_eval), ["eval"]),
    E("eval-set-a-training-key", "misleading", lambda w, t: nemo_eval(w, t, "--set", "train.steps=5"),
      ["--set", "only the pose search", "train.steps=5"], nothing("eval")),
    E("eval-set-pose-range-reversed", "accepted", lambda w, t: nemo_eval(w, t, "--set", "pose.theta_range=[9, -9]"),
      ["'pose.theta_range'", "lo ≤ hi"], nothing("eval")),
    OK("eval-set-the-pose-prior", "unchecked",
       lambda w, t: nemo_eval(w, t, "--set", "pose.elevation_range=[-10, 35]", "--set", "pose.theta_range=[-5, 5]"),
       lambda w, t: all(-10.001 <= math.degrees(r["viewpoint"]["elevation"]) <= 35.001
                        and abs(math.degrees(r["viewpoint"]["theta"])) <= 5.001
                        for r in map(json.loads, (t / "eval" / "predictions.jsonl").read_text().splitlines()))),
]

NEMO_POSE = [
    E("pose-focal-0", "accepted", lambda w, t: nemo_pose(w, t, "--focal", "0"), ["--focal", "must be in"],
      nothing("pose")),
    E("pose-focal-negative", "accepted", lambda w, t: nemo_pose(w, t, "--focal", "-5"), ["--focal"], nothing("pose")),
    E("pose-focal-nan", "unchecked", lambda w, t: nemo_pose(w, t, "--focal", "nan"), ["--focal"], nothing("pose")),
    E("pose-images-missing", "mistake", lambda w, t: nemo_pose(w, t, images=[t / "nope.png"]),
      ["no such image or folder", "nope.png"]),
    E("pose-images-empty-folder", "mistake", lambda w, t: nemo_pose(w, t, images=[write(t, "e/a.txt", "").parent]),
      ["no images in"]),
    E("pose-every-image-unreadable", "skip", lambda w, t: nemo_pose(w, t, images=[write(t, "bad.png", b"junk")]),
      ["none of the 1 images could be read"], lambda w, t: not list((t / "pose").glob("records-*"))),
    OK("pose-a-bomb-does-not-lose-the-batch", "bomb",
       lambda w, t: nemo_pose(w, t, images=[bomb_png(t / "bomb.png"), *_record_images(w.records)[:1]]),
       lambda w, t: len(__import__("data3d").load_records(t / "pose")) == 1,
       ["skipped", "bomb.png", "too large to decode", "skipped 1"]),
    E("pose-unknown-category", "mistake", lambda w, t: nemo_pose(w, t, "--category", "plane"),
      ["--category 'plane'", "the run knows ['car', 'sofa']"], nothing("pose")),
    E("pose-a-pose-run", "misleading", lambda w, t: nemo_pose(w, t, run=w.pose_run), ["label-free pose run"],
      nothing("pose")),
    OK("pose-exif-orientation", "accepted", lambda w, t: nemo_pose(w, t, images=[exif_jpeg(t / "photo.jpg", 6)]),
       lambda w, t: __import__("data3d").load_records(t / "pose")[0].image_size == (40, 24)
       and __import__("data3d").load_records(t / "pose")[0].extra == {"exif_orientation": 6}),
]

# the second round (a held-out-style pass over the same classes): values, blocks and folders the first missed
NEMO_MORE = [
    E("train-crop-unbounded", "hang", lambda w, t: _setv(w, t, "data.crop_size=[99968, 99968]"),
      ["'data.crop_size'", "≤ 2048"], no_config()),
    E("train-crop-floats", "unchecked", lambda w, t: _setv(w, t, "data.crop_size=[32.0, 32.0]"),
      ["'data.crop_size'", "multiples of 32"], no_config()),
    E("train-box-jitter-a-number", "unchecked", lambda w, t: _setv(w, t, "data.box_jitter=5"),
      ["'data.box_jitter'", "mapping"], no_config()),
    E("train-random-conv-a-word", "misleading", lambda w, t: _setv(w, t, "data.random_conv=yes"),
      ["'data.random_conv'", "mapping"], no_config()),
    E("train-degrade-prob-2", "unchecked", lambda w, t: _setv(w, t, "data.degrade={prob: 2}"),
      ["'data.degrade'", "degrade.prob"], no_config()),
    E("train-hue-beyond-half", "accepted", lambda w, t: _setv(w, t, "data.color_jitter={hue: 9}"),
      ["'data.color_jitter.hue'", "[0, 0.5]"], no_config()),
    E("train-backbone-model-no-such-folder", "misleading", lambda w, t: _setv(w, t, f"backbone.model={t / 'nomodel'}"),
      ["'backbone.model'", "nomodel", "no such folder"], no_config()),
    E("train-procedural-count-unbounded", "hang", lambda w, t: _setv(w, t, "meshes.count=100000000"),
      ["meshes", "'count'", "≤ 10000"], no_config()),
    E("train-pose-hypotheses-unbounded", "accepted",
      lambda w, t: nemo_train(w, t, "--set", "pose.azimuths=360", "--set", "pose.elevations=90", "--set",
                              "pose.thetas=90"), ["'pose.azimuths' × 'pose.elevations' × 'pose.thetas'", "≤ 100000"],
      no_config()),
    E("train-seed-beyond-64-bits", "misleading", lambda w, t: _setv(w, t, "seed=99999999999999999999999"),
      ["'seed'", "≤"], no_config()),
    E("train-seed-flag-beyond-32-bits", "unchecked", lambda w, t: nemo_train(w, t, "--seed", str(2**40)),
      ["--seed", "<= 4294967295"], no_config()),
    E("train-device-mps", "unchecked", lambda w, t: _setv(w, t, "device=mps"), ["'device'", "'mps'", "no usable MPS"],
      no_config()),
    E("train-lr-huge", "unchecked", lambda w, t: _setv(w, t, "optim.lr=1e300"), ["'optim.lr'", "(0, 10]"],
      no_config()),
    E("train-backbone-too-wide", "hang", lambda w, t: _setv(w, t, "backbone.hidden_sizes=[8192, 8192, 8192, 8192]"),
      ["'backbone.hidden_sizes'", "≤ 4096"], no_config()),
    E("train-clutter-per-image-unbounded", "accepted", lambda w, t: _setv(w, t, "loss.clutter_per_image=1000000000"),
      ["'loss.clutter_per_image'", "≤ 100000"], no_config()),
    E("train-dinov2-unbounded", "hang",
      lambda w, t: nemo_train(w, t, "--set", "backbone.kind=dinov2", "--set", "backbone.dinov2_hidden_size=8192",
                              "--set", "backbone.dinov2_layers=128"), ["'backbone.dinov2_hidden_size'", "≤ 1536"],
      no_config()),
    E("train-decoder-unbounded", "hang", lambda w, t: _setv(w, t, "backbone.decoder_width=8192"),
      ["'backbone.decoder_width'", "≤ 2048"], no_config()),
    E("train-fit-fraction-denormal", "misleading", lambda w, t: _setv(w, t, "data.fit_fraction=1e-300"),
      ["'data.fit_fraction'", "≥ 0.01"], no_config()),
    E("train-steps-unbounded", "hang", lambda w, t: _setv(w, t, "train.steps=1000000000000"),
      ["'train.steps'", "≤ 1e+09"], no_config()),
    E("train-temperature-denormal", "misleading", lambda w, t: _setv(w, t, "loss.temperature=1e-320"),
      ["'loss.temperature'", "≥ 0.0001"], no_config()),
    E("train-neighbour-radius-huge", "accepted", lambda w, t: _setv(w, t, "loss.neighbour_radius=1e30"),
      ["'loss.neighbour_radius'", "(0, 2]"], no_config()),
    E("train-one-crop-per-batch-at-32", "misleading", lambda w, t: _setv(w, t, "data.batch_size=1"),
      ["'data.batch_size'", "'data.crop_size'", "batch norm"], no_config()),
    E("train-yaml-section-empty", "mistake",
      lambda w, t: ["nemo", "train", "--data", str(w.records), "--out", str(t / "out"), "--config",
                    str(write(t, "c.yaml", "optim:\n")), "--no-progress"], ["c.yaml", "'optim' must be a mapping"],
      no_config()),
    E("train-with-baseline-for-a-baseline", "accepted",
      lambda w, t: nemo_train(w, t, "--with-baseline", "--set", "method=baseline"),
      ["--with-baseline", "method is the baseline already"], no_config()),
    E("train-out-holds-an-orbit4d-run", "misleading", _pre(with_manifest("orbit4d", "out"), nemo_train),
      ["holds an orbit4d run", "not a NeMo run", "new --out"], no_config()),
    E("train-out-holds-an-incremental-run", "misleading", _pre(with_manifest("nemo.incremental", "out"), nemo_train),
      ["holds a class-incremental run", "not a NeMo run"], no_config()),
    E("eval-baseline-run-is-a-nemo-run", "misleading", lambda w, t: nemo_eval(w, t, "--baseline-run", str(w.run)),
      ["--baseline-run", "method 'nemo'", "not of the 2D baseline"], nothing("eval")),
    E("eval-out-is-the-run", "runfolder",
      _pre(_copy_run("run", "r"), lambda w, t: ["nemo", "eval", "--run", str(t / "r"), "--data", str(w.cars), "--out",
                                                str(t / "r"), "--no-progress"]),
      ["--out", "is also the --run input"], lambda w, t: not (t / "r" / "metrics.json").exists()),
    E("eval-out-is-the-data", "runfolder",
      lambda w, t: ["nemo", "eval", "--run", str(w.run), "--data", str(w.cars), "--out", str(w.cars), "--no-progress"],
      ["is also the --data input"], lambda w, t: not (w.cars / "metrics.json").exists()),
    E("eval-run-is-a-dataset", "misleading", lambda w, t: nemo_eval(w, t, run=w.records),
      ["records", "is a datagen dataset", "not a NeMo run"], nothing("eval")),
    E("eval-run-is-an-incremental-run", "misleading",
      _pre(with_manifest("nemo.incremental", "r", "methods: [finetune]\n"), lambda w, t: nemo_eval(w, t, run=t / "r")),
      ["is a class-incremental run", "not a NeMo run"], nothing("eval")),
    E("pose-run-is-an-orbit4d-run", "misleading",
      _pre(with_manifest("orbit4d", "r", "trajectory: arc_yaw_30\n"), lambda w, t: nemo_pose(w, t, run=t / "r")),
      ["is an orbit4d run", "not a NeMo run"], nothing("pose")),
    E("eval-two-folders-show-the-same-images", "counts",
      _pre(lambda w, t: __import__("data3d").save_records(__import__("data3d").load_records(w.cars), t / "copy",
                                                          shard="000000"),
           lambda w, t: nemo_eval(w, t, "--data", str(t / "copy"))),
      ["show the same image", "count twice"], nothing("eval")),
    E("train-two-folders-show-the-same-images", "counts",
      _pre(lambda w, t: __import__("data3d").save_records(__import__("data3d").load_records(w.cars), t / "copy",
                                                          shard="000000"),
           lambda w, t: nemo_train(w, t, "--data", str(t / "copy"), data=w.cars)), ["show the same image"],
      no_config()),
    E("eval-out-locked-by-a-live-run", "runfolder", _pre(lambda w, t: live_lock(t, "eval"), nemo_eval),
      ["being written by another nemo evaluation", ".lock"], lambda w, t: not (t / "eval" / "metrics.json").exists()),
    E("pose-out-locked-by-a-live-run", "runfolder", _pre(lambda w, t: live_lock(t, "pose"), nemo_pose),
      ["being written by another nemo pose"], lambda w, t: not list((t / "pose").glob("records-*"))),
    E("pose-same-image-twice", "counts",
      lambda w, t: nemo_pose(w, t, images=[_record_images(w.records)[0], _record_images(w.records)[0]]),
      ["--images", "given twice"], nothing("pose")),
    OK("pose-same-name-in-two-folders-keeps-both-overlays", "counts",
       _pre(lambda w, t: [(t / d).mkdir() or shutil.copy(_record_images(w.records)[k], t / d / "same.png")
                          for k, d in enumerate("ab")],
            lambda w, t: nemo_pose(w, t, images=[t / "a" / "same.png", t / "b" / "same.png"])),
       lambda w, t: sorted(p.name for p in (t / "pose" / "overlays").iterdir()) == ["same.png", "same_2.png"]
       and len(__import__("data3d").load_records(t / "pose")) == 2),
    OK("pose-images-of-every-mode", "bomb",
       _pre(lambda w, t: [image_of_mode(t / f"m{k}.{'jpg' if m == 'CMYK' else 'png'}", m)
                          for k, m in enumerate(["L", "P", "RGBA", "1", "CMYK", "I;16"])],
            lambda w, t: nemo_pose(w, t, images=sorted(t.glob("m*.*")))),
       lambda w, t: len(__import__("data3d").load_records(t / "pose")) == 5,
       ["m5.png", "16-bit", "skipped 1"]),
    E("pose-threshold-without-detector", "accepted", lambda w, t: nemo_pose(w, t, "--threshold", "0.5"),
      ["--threshold only acts with --detector"], nothing("pose")),
    E("pose-detector-no-such-folder", "misleading",
      lambda w, t: nemo_pose(w, t, "--category", "car", "--detector", str(t / "nodet")),
      ["--detector", "nodet", "no such folder"], nothing("pose")),
    E("pose-threshold-nan", "unchecked", lambda w, t: nemo_pose(w, t, "--threshold", "nan"), ["--threshold"],
      nothing("pose")),
    E("pose-out-is-the-images-folder", "runfolder",
      _pre(lambda w, t: (t / "pose").mkdir() or shutil.copy(_record_images(w.records)[0], t / "pose" / "a.png"),
           lambda w, t: nemo_pose(w, t, images=[t / "pose"])),
      ["is also the --images input"], lambda w, t: sorted(p.name for p in (t / "pose").iterdir()) == ["a.png"]),
    E("pose-out-is-a-file", "runfolder", _pre(lambda w, t: write(t, "pose", "x"), nemo_pose), ["pose", "names a file"]),
]


# ---------------------------------------------------------------------------------------------- issue 25, part 1
# the keys and flags added since the last pass: backbone kinds tfjs / efficientnet, nemo pose --boxes /
# --detector, nemo incremental-summary
def _graph(t, edit=None):
    """A tiny TF.js graph model (tests/test_tfjs.py's: five stride-2 convolutions s0..s4) in t/g, its
    model.json changed by edit(spec) when given; the model.json path."""
    from test_tfjs import strided_backbone

    (t / "g").mkdir(exist_ok=True)
    path = strided_backbone(t / "g")
    if edit is not None:
        spec = json.loads(path.read_text())
        edit(spec)
        path.write_text(json.dumps(spec))
    return path


def _tfjs(*sets, edit=None, outputs="[s2, s3, s4]", kind="tfjs"):
    """nemo train with backbone.kind `kind` on the tiny graph (edited by `edit`) and these --set values."""
    def build(w, t):
        extra = ["backbone.kind=" + kind, f"backbone.model={_graph(t, edit)}", "backbone.tfjs_outputs=" + outputs]
        return nemo_train(w, t, *[a for v in [*extra, *sets] for a in ("--set", v)])
    return build


def _weight(k, key, value):
    return lambda spec: spec["weightsManifest"][0]["weights"][k].__setitem__(key, value)


def _tfjs_run_with_replaced_graph(w, t):
    """A tfjs run trained on the tiny graph, then the graph at backbone.model replaced by a wider one."""
    from test_tfjs import strided_backbone

    assert cli_main(_tfjs()(w, t)) == 0
    strided_backbone(t / "g", widths=(4, 6, 8, 10, 16))


def _box_file(table, name="boxes.json"):
    """nemo pose --boxes with `table` (a callable of the first record image's name, or JSON text)."""
    def build(w, t):
        image = _record_images(w.records)[0]
        data = table(image) if callable(table) else table
        (t / name).write_text(data if isinstance(data, str) else json.dumps(data))
        return nemo_pose(w, t, "--boxes", str(t / name))
    return build


def _no_pose_records(w, t):
    return not list((t / "pose").glob("records-*"))


NEMO_NEW = [
    # backbone.kind tfjs / efficientnet: config keys that need each other, checked before anything is written
    E("train-tfjs-without-model", "mistake", lambda w, t: nemo_train(w, t, "--set", "backbone.kind=tfjs"),
      ["'backbone.model'", "kind tfjs"], no_config()),
    E("train-efficientnet-without-model", "mistake", lambda w, t: _setv(w, t, "backbone.kind=efficientnet"),
      ["'backbone.model'", "kind efficientnet"], no_config()),
    E("train-tfjs-two-outputs", "unchecked", _tfjs(outputs="[s2, s3]"), ["'backbone.tfjs_outputs'", "three"],
      no_config()),
    E("train-tfjs-output-not-in-the-graph", "misleading", _tfjs(outputs="[s2, s3, nope]"),
      ["backbone.tfjs_outputs", "'nope'", "model.json"], no_config()),
    E("train-tfjs-input-scale-huge", "misleading", _tfjs("backbone.tfjs_input_scale=1e300"),  # was: a NaN loss
      ["'backbone.tfjs_input_scale'", "65535"], no_config()),
    E("train-tfjs-outputs-with-kind-resnet", "accepted", lambda w, t: _setv(w, t, "backbone.tfjs_outputs=[a, b, c]"),
      ["'backbone.tfjs_outputs'", "only read with backbone.kind tfjs"], no_config()),
    E("train-tfjs-input-scale-with-kind-resnet", "accepted", lambda w, t: _setv(w, t, "backbone.tfjs_input_scale=1"),
      ["'backbone.tfjs_input_scale'", "only read with backbone.kind tfjs"], no_config()),
    E("train-efficientnet-with-tfjs-outputs", "accepted", _tfjs(kind="efficientnet"),
      ["'backbone.tfjs_outputs'", "'efficientnet'"], no_config()),
    E("train-backbone-model-a-number", "unchecked", lambda w, t: _setv(w, t, "backbone.model=5"),
      ["'backbone.model'", "got 5"], no_config()),
    E("train-backbone-model-empty", "misleading", lambda w, t: _setv(w, t, "backbone.model=''"),  # was: ". is not"
      ["'backbone.model'", "got ''"], no_config()),
    E("train-resnet-given-a-model-json", "bomb",
      lambda w, t: nemo_train(w, t, "--set", f"backbone.model={_graph(t)}"),
      ["'backbone.model'", "model.json", "backbone.kind tfjs"], no_config()),
    E("train-efficientnet-one-value-per-channel", "misleading",  # was torch's "Expected more than 1 value per channel"
      _tfjs("data.batch_size=1", kind="efficientnet", outputs="null"), ["'data.batch_size'", "batch norm"],
      no_config()),
    E("train-tfjs-baseline-one-value-per-channel", "misleading", _tfjs("data.batch_size=1", "method=baseline"),
      ["'data.batch_size'", "batch norm"], no_config()),
    E("eval-jittered-boxes-folder-is-a-file", "runfolder",  # was found after the first evaluation, as [Errno 17]
      _pre(lambda w, t: write(t, "eval/jittered_boxes", "x"), lambda w, t: nemo_eval(w, t, "--jittered-boxes")),
      ["--jittered-boxes", "jittered_boxes", "is a file"], lambda w, t: not (t / "eval" / "metrics.json").exists()),
    # malformed TF.js model.json files: one line naming the file (tracebacks before)
    E("train-tfjs-manifest-entry-not-a-mapping", "mistake",
      _tfjs(edit=lambda spec: spec.__setitem__("weightsManifest", ["x"])),
      ["backbone.model", "model.json", "weightsManifest[0]"], no_config()),
    E("train-tfjs-weights-not-a-list", "mistake",
      _tfjs(edit=lambda spec: spec["weightsManifest"][0].__setitem__("weights", 5)),
      ["model.json", "weightsManifest[0]"], no_config()),
    E("train-tfjs-weight-without-name", "mistake",
      _tfjs(edit=lambda spec: spec["weightsManifest"][0]["weights"][0].pop("name")),
      ["model.json", "weightsManifest[0].weights[0]"], no_config()),
    E("train-tfjs-weight-shape-negative", "misleading", _tfjs(edit=_weight(0, "shape", [-1, 3, 3, 4])),
      ["model.json", "weight 'w0'", "shape"], no_config()),
    E("train-tfjs-quantisation-without-scale", "mistake", _tfjs(edit=_weight(0, "quantization", {"dtype": "uint8"})),
      ["model.json", "weight 'w0'", "'scale'"], no_config()),
    E("train-tfjs-node-not-a-mapping", "mistake", _tfjs(edit=lambda spec: spec["modelTopology"]["node"].append(5)),
      ["model.json", "modelTopology.node["], no_config()),
    E("train-tfjs-node-without-op", "mistake", _tfjs(edit=lambda spec: spec["modelTopology"]["node"][-1].pop("op")),
      ["model.json", "modelTopology.node["], no_config()),
    E("train-tfjs-graph-with-a-cycle", "hang",
      _tfjs(edit=lambda spec: spec["modelTopology"]["node"][-1].__setitem__("input", ["s4", "w4", "b4"])),
      ["model.json", "'s4' depends on itself"], no_config()),
    E("train-tfjs-convolution-without-kernel", "mistake",
      _tfjs(edit=lambda spec: spec["modelTopology"]["node"][-1].__setitem__("input", ["s3"])),
      ["backbone.model", "model.json", "malformed"], no_config()),
    E("train-efficientnet-foreign-state-dict", "misleading",
      lambda w, t: (__import__("torch").save({"a": __import__("torch").zeros(3)}, t / "foreign.pth"),
                    nemo_train(w, t, "--set", "backbone.kind=efficientnet", "--set",
                               f"backbone.model={t / 'foreign.pth'}"))[1],
      ["backbone.model", "foreign.pth: EfficientNet-Lite state dict: 0 stages"], no_config()),
    E("eval-tfjs-model-replaced-since-training", "bomb",
      _pre(_tfjs_run_with_replaced_graph, lambda w, t: nemo_eval(w, t, run=t / "out")),
      ["out: checkpoint does not fit the network", "size mismatch", "backbone.model", "replaced"], nothing("eval")),
    # nemo pose --boxes: the file's values, its names, boxes beyond the image
    E("pose-boxes-nan", "unchecked", _box_file(lambda i: json.dumps({i.name: [[math.nan, 2, 20, 20]]})),
      ["boxes.json", "box 0", "four finite numbers"], _no_pose_records),
    E("pose-boxes-boolean", "accepted", _box_file(lambda i: {i.name: [[True, 2, 20, 20]]}),
      ["boxes.json", "box 0", "four finite numbers"], _no_pose_records),
    E("pose-boxes-reversed", "unchecked", _box_file(lambda i: {i.name: [[20, 20, 2, 2]]}),
      ["boxes.json", "x0 < x1"], _no_pose_records),
    E("pose-boxes-name-no-image", "misleading", _box_file({"other.png": [[2, 2, 20, 20]]}),
      ["boxes.json", "names none of the --images", "'other.png'"], _no_pose_records),
    E("pose-boxes-empty-mapping", "misleading", _box_file({}), ["boxes.json", "holds no boxes"], _no_pose_records),
    E("pose-boxes-same-name-twice-in-the-file", "accepted",  # JSON keeps the last: the first boxes were lost
      _box_file(lambda i: '{"%s": [[2, 2, 20, 20]], "%s": [[1, 1, 5, 5]]}'.replace("%s", i.name)),
      ["boxes.json", "given twice"], _no_pose_records),
    E("pose-boxes-one-image-named-twice", "accepted",
      _box_file(lambda i: {i.name: [[2, 2, 20, 20]], i.stem: [[1, 1, 5, 5]]}), ["both name the image"],
      _no_pose_records),
    OK("pose-boxes-unused-name-is-said", "accepted",
       _box_file(lambda i: {i.name: [[2, 2, 20, 20]], "other.png": [[2, 2, 20, 20]]}),
       lambda w, t: len(__import__("data3d").load_records(t / "pose")) == 1, ["not used: 1 entries", "'other.png'"]),
    E("pose-boxes-partly-outside", "misleading", _box_file(lambda i: {i.name: [[-10, -10, 10, 10]]}),
      ["none of the 1 images", "the first:", "reaches beyond the 32×32 image"], _no_pose_records),  # was: <memory>
    E("pose-detector-another-graph", "misleading",
      lambda w, t: nemo_pose(w, t, "--category", "car", "--detector", str(_graph(t))),
      ["--detector", "tower_0/keypoints", "model.json"], _no_pose_records),
    E("pose-detector-model-id-offline", "misleading",  # the message said "cannot load" twice
      lambda w, t: nemo_pose(w, t, "--category", "car", "--detector", "nobody/nothing"),
      ["error: --detector: cannot load 'nobody/nothing'"], _no_pose_records),
    OK("pose-exif-orientation-out-of-range-is-not-recorded", "accepted",  # was: exif_orientation 99 in the record
       lambda w, t: nemo_pose(w, t, images=[exif_jpeg(t / "e.jpg", 99)]),
       lambda w, t: "exif_orientation" not in __import__("data3d").load_records(t / "pose")[0].extra),
]

CASES = NEMO_TRAIN + NEMO_EVAL + NEMO_POSE + NEMO_MORE + NEMO_NEW


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_method_input(case, malformed_world, tmp_path, capsys, monkeypatch):
    check_case(case, malformed_world, tmp_path, capsys, monkeypatch)


def test_debug_shows_the_traceback(malformed_world, tmp_path):
    import nemo

    with pytest.raises(nemo.NemoError, match="'threads' must be ≥ 1"):
        cli_main(["--debug", *_setv(malformed_world, tmp_path, "threads=0")])


def test_meshes_override_merges_within_one_source_type():
    from nemo.config import DEFAULTS, merge

    assert merge(DEFAULTS, {"meshes": {"count": 5}})["meshes"] == {"type": "procedural", "count": 5}
    off = merge(merge(DEFAULTS, {"meshes": {"type": "off"}}), {"meshes": {"root": "/cad"}})
    assert off["meshes"] == {"type": "off", "root": "/cad"}  # `count` of the procedural default is gone
    assert math.isfinite(1.0)
