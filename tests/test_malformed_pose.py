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
    cli_main,
    live_lock,
    manifest,
    nothing,
    pose_generate,
    pose_train,
    same_random_state_afterwards,  # noqa: F401  (autouse)
    sets_index,
    with_manifest,
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


def _peval(run, data, out):
    return ["pose", "eval", "--run", str(run), "--data", str(data), "--out", str(out), "--no-progress",
            "--allow-seen-instances"]


# the second round (a held-out-style pass over the same classes)
POSE_MORE = [
    E("generate-seed-negative", "misleading", lambda w, t: pose_generate(w, t, "--seed", "-1"), ["--seed", ">= 0"],
      nothing("sets")),
    E("generate-seed-beyond-32-bits", "unchecked", lambda w, t: pose_generate(w, t, "--seed", str(2**70)),
      ["--seed", "<= 4294967295"], nothing("sets")),
    E("generate-out-is-the-images", "runfolder",
      lambda w, t: ["pose", "generate", "--images", str(w.cars), "--category", "car", "--out", str(w.cars),
                    "--azimuths", "2", "--polar-deg", "0", "--segments", "12", "--backgrounds", "white",
                    "--no-progress"],
      ["is also the --images input"], lambda w, t: not (w.cars / "sets.json").exists()),
    E("generate-out-locked-by-a-live-run", "runfolder", _pre(lambda w, t: live_lock(t, "sets"), pose_generate),
      ["being written by another pose generate", ".lock"], lambda w, t: not (t / "sets" / "sets.json").exists()),
    E("peval-out-locked-by-a-live-run", "runfolder",
      _pre(lambda w, t: live_lock(t, "pe"), lambda w, t: _peval(w.pose_run, w.cars, t / "pe")),
      ["being written by another pose evaluation"], lambda w, t: not (t / "pe" / "metrics.json").exists()),
    E("generate-out-is-a-file", "runfolder", _pre(lambda w, t: write(t, "sets", "x"), pose_generate),
      ["sets", "names a file"]),
    E("generate-flip-rate-for-degraded", "accepted", lambda w, t: pose_generate(w, t, "--flip-rate", "0.5"),
      ["--flip-rate only acts with --synthesizer correlated", "degraded"], nothing("sets")),
    E("generate-elevation-bias-for-render", "accepted",
      lambda w, t: pose_generate(w, t, "--synthesizer", "render", "--elevation-bias-deg", "10"),
      ["--elevation-bias-deg only acts with --synthesizer correlated"], nothing("sets")),
    E("generate-sigma-for-render", "accepted", lambda w, t: pose_generate(w, t, "--synthesizer", "render",
                                                                         "--sigma-deg", "3"),
      ["--sigma-deg only acts with --synthesizer degraded or correlated"], nothing("sets")),
    E("generate-appearance-for-zero123", "accepted",
      lambda w, t: pose_generate(w, t, "--synthesizer", "zero123", "--appearance", "mesh"),
      ["--appearance only acts with"], nothing("sets")),
    E("generate-assets-not-yaml", "mistake",
      lambda w, t: pose_generate(w, t, "--assets", str(write(t, "a.yaml", "a: [1"))),
      ["a.yaml", "not valid YAML"], nothing("sets")),
    E("generate-assets-count-unbounded", "hang",
      lambda w, t: pose_generate(w, t, "--assets", str(write(t, "a.yaml", "{type: procedural, count: 100000000}"))),
      ["'count'", "≤ 10000"], nothing("sets")),
    E("generate-images-a-file", "misleading", lambda w, t: pose_generate(w, t, images=write(t, "f.png", b"x")),
      ["f.png", "no such folder"], lambda w, t: not (t / "sets").exists()),
    E("ptrain-sets-index-a-list", "mistake",
      _pre(sets_index(lambda d: [1]), lambda w, t: pose_train(w, t, sets=t / "sets")),
      ["sets.json", "must be a mapping"], nothing("prun")),
    E("ptrain-sets-index-without-sets", "misleading",
      _pre(sets_index(lambda d: {k: v for k, v in d.items() if k != "sets"}),
           lambda w, t: pose_train(w, t, sets=t / "sets")), ["sets.json", "no 'sets'"], nothing("prun")),
    E("ptrain-sets-index-entries-of-wrong-type", "mistake",
      _pre(sets_index(lambda d: dict(d, sets=[5, "x"])), lambda w, t: pose_train(w, t, sets=t / "sets")),
      ["sets.json", "'sets' must be a list"], nothing("prun")),
    E("ptrain-sets-index-id-leaves-the-folder", "mistake",
      _pre(sets_index(lambda d: dict(d, sets=[dict(d["sets"][0], id="../../run")])),
           lambda w, t: pose_train(w, t, sets=t / "sets")), ["sets.json", "'sets'"], nothing("prun")),
    E("ptrain-sets-index-cylinder-nan", "unchecked",
      _pre(sets_index(lambda d: dict(d, cylinder=dict(d["cylinder"], radius=float("nan")))),
           lambda w, t: pose_train(w, t, sets=t / "sets")), ["sets.json", "'cylinder'"], nothing("prun")),
    E("ptrain-sets-index-cylinder-segments-unbounded", "hang",
      _pre(sets_index(lambda d: dict(d, cylinder=dict(d["cylinder"], segments=10**9))),
           lambda w, t: pose_train(w, t, sets=t / "sets")), ["sets.json", "'cylinder'", "[3, 720]"], nothing("prun")),
    E("ptrain-retrieval-steps-0", "accepted", lambda w, t: pose_train(w, t, "--set", "pose.retrieval.steps=0"),
      ["'pose.retrieval.steps'", "≥ 1"], nothing("prun")),
    E("ptrain-refine-steps-unbounded", "hang",
      lambda w, t: pose_train(w, t, "--set", "pose.refine.steps=1000000000000"),
      ["'pose.refine.steps'", "≤ 1e+09"], nothing("prun")),
    E("ptrain-pose-block-null", "accepted", lambda w, t: pose_train(w, t, "--set", "pose=null"),
      ["'pose' must be a mapping"], nothing("prun")),
    E("ptrain-nemo-block-a-list", "unchecked", lambda w, t: pose_train(w, t, "--set", "nemo=[1]"),
      ["'nemo' must be a mapping"], nothing("prun")),
    E("ptrain-nemo-crop-unbounded", "hang",
      lambda w, t: pose_train(w, t, "--set", "nemo.data.crop_size=[99968, 99968]"),
      ["'nemo.data.crop_size'", "≤ 2048"], nothing("prun")),
    E("ptrain-out-holds-an-incremental-run", "misleading", _pre(with_manifest("nemo.incremental", "prun"), pose_train),
      ["holds a class-incremental run", "not a pose run", "new --out"]),
    E("peval-run-is-a-dataset", "misleading", lambda w, t: _peval(w.records, w.cars, t / "pe"),
      ["records", "is a datagen dataset", "not a pose run"], nothing("pe")),
    E("peval-run-is-an-incremental-run", "misleading",
      _pre(with_manifest("nemo.incremental", "r", "methods: [finetune]\nnemo: {}\n"),
           lambda w, t: _peval(t / "r", w.cars, t / "pe")), ["is a class-incremental run", "not a pose run"],
      nothing("pe")),
    E("peval-out-is-the-run", "runfolder",
      _pre(_copy_run("pose_run", "pr"), lambda w, t: _peval(t / "pr", w.cars, t / "pr")),
      ["is also the --run input"], lambda w, t: not (t / "pr" / "metrics.json").exists()),
    E("peval-out-is-the-data", "runfolder", lambda w, t: _peval(w.pose_run, w.cars, w.cars),
      ["is also the --data input"], lambda w, t: not (w.cars / "metrics.json").exists()),
    E("curve-a-rate-twice", "counts",
      lambda w, t: ["pose", "curve", "--images", str(w.cars), "--reference", str(w.cars), "--data", str(w.chairs),
                    "--category", "car", "--out", str(t / "curve"), "--rates", "0.1", "0.1"],
      ["--rates", "[0.1] given twice"], nothing("curve")),
    E("curve-out-is-the-data", "runfolder",
      lambda w, t: ["pose", "curve", "--images", str(w.cars), "--reference", str(w.cars), "--data", str(w.chairs),
                    "--category", "car", "--out", str(w.chairs), "--rates", "0.1"],
      ["is also the --data input"], lambda w, t: not (w.chairs / "curve.json").exists()),
]


def _baseline_run(w, t):
    """A tiny 2D-baseline run (nemo train --set method=baseline) in t/base."""
    from _malformed import nemo_train

    assert cli_main(nemo_train(w, t, "--set", "method=baseline", out="base")) == 0


POSE_NEW = [  # issue 25, part 1
    E("eval-supervised-run-is-a-baseline", "misleading",  # was: the 2D baseline's numbers as nemo_supervised's
      _pre(_baseline_run, lambda w, t: ["pose", "eval", "--run", str(w.pose_run), "--data", str(w.cars), "--out",
                                        str(t / "pe"), "--supervised-run", str(t / "base"), "--allow-seen-instances",
                                        "--no-progress"]),
      ["--supervised-run", "method 'baseline'", "not a NeMo run"],
      lambda w, t: not (t / "pe" / "metrics.json").exists()),
]

CASES = POSE_GENERATE + POSE_TRAIN + POSE_MORE + POSE_NEW


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_method_input(case, malformed_world, tmp_path, capsys, monkeypatch):
    check_case(case, malformed_world, tmp_path, capsys, monkeypatch)
