"""Malformed input to `aware3d pose generate | train | eval` (the table and its rules:
tests/_malformed.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
from _malformed import (
    OK,
    POSE,
    E,
    _copy_records,
    _copy_run,
    _pre,
    _subset,
    bomb_png,
    check_case,
    live_lock,
    manifest,
    nothing,
    pose_generate,
    pose_train,
    same_random_state_afterwards,  # noqa: F401  (autouse)
    write,
)

POSE_GENERATE = [
    E("generate-azimuths-unbounded", "hang", lambda w, t: pose_generate(w, t, "--azimuths", "100000"),
      ["--azimuths", "[1, 360]"], nothing("sets")),
    E("generate-azimuths-0", "unchecked", lambda w, t: pose_generate(w, t, "--azimuths", "0"), ["--azimuths"],
      nothing("sets")),
    E("generate-segments-2", "unchecked", lambda w, t: pose_generate(w, t, "--segments", "2"), ["--segments"],
      nothing("sets")),
    E("generate-steps-0", "unchecked", lambda w, t: pose_generate(w, t, "--steps", "0"), ["--steps"], nothing("sets")),
    E("generate-polar-nan", "unchecked", lambda w, t: pose_generate(w, t, "--polar-deg", "nan"), ["--polar-deg"],
      nothing("sets")),
    E("generate-sigma-negative", "unchecked", lambda w, t: pose_generate(w, t, "--sigma-deg", "-1"), ["--sigma-deg"],
      nothing("sets")),
    E("generate-source-elevation-100", "unchecked", lambda w, t: pose_generate(w, t, "--source-elevation-deg", "100"),
      ["--source-elevation-deg"], nothing("sets")),
    E("generate-max-sources-0", "unchecked", lambda w, t: pose_generate(w, t, "--max-sources", "0"),
      ["--max-sources"], nothing("sets")),
    E("generate-model-for-a-render-synthesizer", "accepted", lambda w, t: pose_generate(w, t, "--model", "x"),
      ["--model only acts with --synthesizer zero123"], nothing("sets")),
    E("generate-steps-for-a-render-synthesizer", "accepted", lambda w, t: pose_generate(w, t, "--steps", "20"),
      ["--steps only acts with --synthesizer zero123"], nothing("sets")),
    E("generate-flip-rate-2", "unchecked", lambda w, t: pose_generate(w, t, "--synthesizer", "correlated",
                                                                   "--flip-rate", "2"), ["--flip-rate"],
      nothing("sets")),
    E("curve-rates-nan", "unchecked",
      lambda w, t: ["pose", "curve", "--images", str(w.cars), "--reference", str(w.cars), "--data", str(w.cars),
                    "--category", "car", "--out", str(t / "curve"), "--rates", "nan"], ["--rates"], nothing("curve")),
    E("generate-device-cuda", "unchecked", lambda w, t: pose_generate(w, t, "--device", "cuda"),
      ["--device", "CUDA"], nothing("sets")),
    E("generate-images-missing", "mistake", lambda w, t: pose_generate(w, t, images=t / "nope"),
      ["nope", "no such folder"], nothing("sets")),
    E("generate-assets-missing", "mistake", lambda w, t: pose_generate(w, t, "--assets", str(t / "a.yaml")),
      ["a.yaml"], nothing("sets")),
    E("generate-assets-not-a-mapping", "mistake",
      lambda w, t: pose_generate(w, t, "--assets", str(write(t, "a.yaml", "- 1\n"))), ["a.yaml", "mapping"],
      nothing("sets")),
    E("generate-render-without-records", "mistake",
      lambda w, t: pose_generate(w, t, "--synthesizer", "render", images=write(t, "imgs/a.txt", "").parent),
      ["needs a records folder"], nothing("sets")),
    E("generate-every-source-unreadable", "skip",
      lambda w, t: pose_generate(w, t, images=_copy_records(w.cars, t / "bad", None)),
      ["no usable source", "4 skipped", "bad"], nothing("sets")),
    E("generate-zero123-only-a-bomb", "bomb",
      lambda w, t: pose_generate(w, t, "--synthesizer", "zero123",
                                 images=bomb_png(write(t, "photos/x.txt", "").parent / "big.png").parent),
      ["no usable source", "1 skipped", "big.png"], nothing("sets")),
    OK("generate-one-unreadable-source-is-a-counted-skip", "skip",
       lambda w, t: pose_generate(w, t, images=_copy_records(w.cars, t / "one_bad", 1)),
       lambda w, t: len(json.loads((t / "sets" / "sets.json").read_text())["skipped"]) == 1
       and len(json.loads((t / "sets" / "sets.json").read_text())["sets"]) == 1,
       ["1 sets", "1 sources skipped"]),
]


def _sets_with_a_bad_view(w, t):
    shutil.copytree(w.sets, t / "sets")
    view = sorted((t / "sets").glob("set_*/view_001.png"))[0]
    view.write_bytes(b"junk")


POSE_TRAIN = [
    E("ptrain-steps-0", "unchecked", lambda w, t: pose_train(w, t, "--steps", "0"), ["--steps"], nothing("prun")),
    E("ptrain-flip-ratio-nan", "unchecked", lambda w, t: pose_train(w, t, "--set", "pose.merge.flip_ratio=.nan"),
      ["'pose.merge.flip_ratio'", "finite"], nothing("prun")),
    E("ptrain-min-margin-nan", "unchecked", lambda w, t: pose_train(w, t, "--set", "pose.merge.min_margin=.nan"),
      ["'pose.merge.min_margin'"], nothing("prun")),
    E("ptrain-rounds-0", "unchecked", lambda w, t: pose_train(w, t, "--set", "pose.merge.rounds=0"),
      ["'pose.merge.rounds'"], nothing("prun")),
    E("ptrain-filter-after-2", "unchecked", lambda w, t: pose_train(w, t, "--set", "pose.filter.after=2"),
      ["'pose.filter.after'"], nothing("prun")),
    E("ptrain-filter-enabled-3", "unchecked", lambda w, t: pose_train(w, t, "--set", "pose.filter.enabled=3"),
      ["'pose.filter.enabled'"], nothing("prun")),
    E("ptrain-refine-steps-negative", "unchecked", lambda w, t: pose_train(w, t, "--set", "pose.refine.steps=-1"),
      ["'pose.refine.steps'"], nothing("prun")),
    E("ptrain-unknown-pose-key", "mistake", lambda w, t: pose_train(w, t, "--set", "pose.merge.guard=1"),
      ["pose.merge.guard"], nothing("prun")),
    E("ptrain-nemo-azimuths-0", "accepted", lambda w, t: pose_train(w, t, "--set", "nemo.pose.azimuths=0"),
      ["'nemo.pose.azimuths'", "≥ 1"], nothing("prun")),
    E("ptrain-nemo-threads-0", "unchecked", lambda w, t: pose_train(w, t, "--set", "nemo.threads=0"),
      ["'nemo.threads'"], nothing("prun")),
    E("ptrain-nemo-device-cuda", "unchecked", lambda w, t: pose_train(w, t, "--set", "nemo.device=cuda"),
      ["'nemo.device'", "CUDA"], nothing("prun")),
    E("ptrain-top-level-unknown", "mistake", lambda w, t: pose_train(w, t, "--set", "train.steps=3"),
      ["unknown top-level keys ['train']"], nothing("prun")),
    E("ptrain-sets-missing", "mistake", lambda w, t: pose_train(w, t, sets=t / "nosets"), ["nosets"]),
    E("ptrain-reference-missing", "mistake",
      lambda w, t: ["pose", "train", "--sets", str(w.sets), "--reference", str(t / "noref"), "--out",
                    str(t / "prun"), "--no-progress"], ["noref"]),
    E("ptrain-out-locked", "runfolder", _pre(lambda w, t: live_lock(t, "prun"), pose_train),
      ["being written by another training run"]),
    E("ptrain-out-is-the-sets", "runfolder",
      lambda w, t: ["pose", "train", "--sets", str(w.sets), "--reference", str(w.cars), "--out", str(w.sets),
                    "--no-progress"], ["--out is also an input"], lambda w, t: not (w.sets / "checkpoints").exists()),
    E("ptrain-out-holds-a-nemo-run", "misleading", _pre(_copy_run("run", "prun"), pose_train),
      ["prun", "not a pose run", "new --out"]),
    OK("ptrain-one-unreadable-view-is-a-counted-skip", "skip",
       _pre(_sets_with_a_bad_view, lambda w, t: pose_train(w, t, sets=t / "sets")),
       lambda w, t: manifest(t / "prun")["skipped"] == {"unreadable_view": 1}
       and manifest(t / "prun")["status"] == "complete"),
    E("ptrain-reference-of-another-category", "accepted",
      lambda w, t: ["pose", "train", "--sets", str(w.sets), "--reference",
                    str(_subset(w.records, t / "sofas", lambda c: c == "sofa")), "--out", str(t / "prun"),
                    "--config", str(w.extra["pose_cfg"]), "--no-progress"],
      ["sofas", "the reference shows a 'sofa', the sets a 'car'"]),
    E("peval-an-unfinished-run", "misleading",
      _pre(lambda w, t: __import__("pose").train(w.sets, w.cars, t / "pu", POSE, stop_after=1),
           lambda w, t: ["pose", "eval", "--run", str(t / "pu"), "--data", str(w.cars), "--out", str(t / "pe"),
                         "--no-progress", "--allow-seen-instances"]), ["pu", "not finished", "aware3d pose train"],
      nothing("pe")),
    E("peval-a-nemo-run", "misleading",
      lambda w, t: ["pose", "eval", "--run", str(w.run), "--data", str(w.cars), "--out", str(t / "pe"),
                    "--no-progress"], ["not a pose run"], nothing("pe")),
    E("peval-data-missing", "mistake",
      lambda w, t: ["pose", "eval", "--run", str(w.pose_run), "--data", str(t / "nodata"), "--out", str(t / "pe"),
                    "--no-progress"], ["nodata"], nothing("pe")),
]


CASES = POSE_GENERATE + POSE_TRAIN


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_method_input(case, malformed_world, tmp_path, capsys, monkeypatch):
    check_case(case, malformed_world, tmp_path, capsys, monkeypatch)
