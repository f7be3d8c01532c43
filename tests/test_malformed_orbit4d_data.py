"""Malformed input to `aware3d orbit4d run` and `aware3d data stats | show` (the table and its
rules: tests/_malformed.py), and the checks on the five files' tables together."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
from _malformed import (
    CLASSES,
    OK,
    E,
    _pre,
    bomb_png,
    check_case,
    cli_main,
    nothing,
    orbit,
    same_random_state_afterwards,  # noqa: F401  (autouse)
    trajectory,
    write,
)


def _used_orbit_folder(w, t):
    assert cli_main(orbit(w, t, "--num-output-frames", "4")) == 0
    assert (t / "orbit" / "scaffold" / "rgb" / "00003.png").is_file()


ORBIT = [
    E("orbit-fov-0", "unchecked", lambda w, t: orbit(w, t, "--fov", "0", cameras=False), ["--fov", "(0, 180)"],
      nothing("orbit")),
    E("orbit-fov-180", "unchecked", lambda w, t: orbit(w, t, "--fov", "180", cameras=False), ["--fov"],
      nothing("orbit")),
    E("orbit-fov-nan", "unchecked", lambda w, t: orbit(w, t, "--fov", "nan", cameras=False), ["--fov"],
      nothing("orbit")),
    E("orbit-fov-with-cameras-ignored", "accepted", lambda w, t: orbit(w, t, "--fov", "40"),
      ["--fov", "only acts without --cameras"], nothing("orbit")),
    E("orbit-static-camera-with-cameras", "accepted", lambda w, t: orbit(w, t, "--static-camera"),
      ["--static-camera", "only acts without --cameras"], nothing("orbit")),
    E("orbit-prompt-without-video-model", "accepted", lambda w, t: orbit(w, t, "--prompt", "a car"),
      ["--prompt", "--video-model"], nothing("orbit")),
    E("orbit-frames-of-a-path-file", "accepted",
      lambda w, t: orbit(w, t, "--trajectory", str(trajectory(w, t)), "--num-output-frames", "5"),
      ["--num-output-frames", "only acts with a preset path"], nothing("orbit")),
    E("orbit-point-radius-0", "unchecked", lambda w, t: orbit(w, t, "--point-radius", "0"), ["--point-radius"],
      nothing("orbit")),
    E("orbit-fps-0", "unchecked", lambda w, t: orbit(w, t, "--fps", "0"), ["--fps"], nothing("orbit")),
    E("orbit-depth-median-0", "unchecked", lambda w, t: orbit(w, t, "--depth-median", "0"), ["--depth-median"],
      nothing("orbit")),
    E("orbit-object-id-300", "unchecked", lambda w, t: orbit(w, t, "--object-id", "300"), ["--object-id"],
      nothing("orbit")),
    E("orbit-num-output-frames-0", "mistake", lambda w, t: orbit(w, t, "--num-output-frames", "0"),
      ["--num-output-frames", "must be >= 1"], nothing("orbit")),
    E("orbit-bullet-time-beyond-the-clip", "accepted", lambda w, t: orbit(w, t, "--bullet-time", "99"),
      ["--bullet-time", "beyond the input's last frame (2)"], nothing("orbit")),
    E("orbit-bullet-time-negative", "accepted", lambda w, t: orbit(w, t, "--bullet-time", "-1"), ["--bullet-time"],
      nothing("orbit")),
    E("orbit-trajectory-time-beyond-the-clip", "accepted",
      lambda w, t: orbit(w, t, "--trajectory", str(trajectory(w, t, times=(0.0, 7.0)))),
      ["path.json", "video_time runs from 0 to 7", "frames 0 to 2"], nothing("orbit")),
    E("orbit-trajectory-other-aspect", "accepted",
      lambda w, t: orbit(w, t, "--trajectory", str(trajectory(w, t, size=(64, 64)))),
      ["path.json", "64x64", "aspect ratio"], nothing("orbit")),
    OK("orbit-trajectory-other-resolution-is-scaled", "accepted",
       lambda w, t: orbit(w, t, "--trajectory", str(trajectory(w, t, size=(96, 128)))),
       lambda w, t: json.loads((t / "orbit" / "trajectory.json").read_text())["image_size"] == [48, 64]
       and cv2.imread(str(t / "orbit" / "scaffold" / "rgb" / "00001.png")).shape[:2] == (48, 64)),
    E("orbit-trajectory-missing", "mistake", lambda w, t: orbit(w, t, "--trajectory", str(t / "no.json")),
      ["no.json", "no such trajectory file"], nothing("orbit")),
    E("orbit-trajectory-not-json", "mistake",
      lambda w, t: orbit(w, t, "--trajectory", str(write(t, "bad.json", "{"))), ["bad.json"], nothing("orbit")),
    E("orbit-trajectory-unknown-preset", "mistake", lambda w, t: orbit(w, t, "--trajectory", "spiral_9"),
      ["spiral_9", "unknown trajectory preset"], nothing("orbit")),
    E("orbit-a-frame-is-a-bomb", "bomb",
      _pre(lambda w, t: (shutil.copytree(w.orbit / "frames", t / "frames"), bomb_png(t / "frames" / "00001.png")),
           lambda w, t: orbit(w, t, frames=t / "frames")),
      ["00001.png", "cannot be read as an image", "CV_IO_MAX_IMAGE_PIXELS"], nothing("orbit")),
    E("orbit-frames-missing", "mistake", lambda w, t: orbit(w, t, frames=t / "noframes"), ["noframes"],
      nothing("orbit")),
    OK("orbit-rerun-removes-the-old-runs-extra-frames", "runfolder",
       _pre(_used_orbit_folder, lambda w, t: orbit(w, t, "--num-output-frames", "2")),
       lambda w, t: sorted(p.name for p in (t / "orbit" / "scaffold" / "rgb").iterdir()) == ["00000.png", "00001.png"]
       and json.loads((t / "orbit" / "manifest.json").read_text())["counts"]["output_frames"] == 2),
    E("orbit-out-holds-something-else", "runfolder",
      _pre(lambda w, t: write(t, "orbit/proxy/mine.txt", "keep me"), orbit),
      ["orbit", "no orbit4d manifest.json", "new --out"], lambda w, t: (t / "orbit" / "proxy" / "mine.txt").is_file()),
    E("orbit-out-is-a-file", "runfolder", _pre(lambda w, t: write(t, "orbit", "x"), orbit), ["orbit", "names a file"]),
]


def _tagged_records(w, t):
    import dataclasses

    import data3d

    recs = data3d.load_records(w.records)
    tagged = [dataclasses.replace(r, extra=dict(r.extra or {}, split="train" if i % 2 else "val"))
              for i, r in enumerate(recs)]
    data3d.save_records(tagged, t / "tagged", shard="000000")


def _stats(t):
    return json.loads((t / "st" / "stats.json").read_text())


DATA = [
    OK("stats-categories-honoured-for-records", "counts",
       lambda w, t: ["data", "stats", str(w.records), "--categories", "car", "--out", str(t / "st")],
       lambda w, t: _stats(t)["by_category"] == {"car": 2}),
    OK("stats-split-honoured-for-records", "counts",
       _pre(_tagged_records, lambda w, t: ["data", "stats", str(t / "tagged"), "--split", "train", "--out",
                                           str(t / "st")]),
       lambda w, t: sum(_stats(t)["by_category"].values()) == 3),
    E("stats-categories-absent", "counts",
      lambda w, t: ["data", "stats", str(w.records), "--categories", "plane", "--out", str(t / "st")],
      ["records", "['plane'] not in the records"], nothing("st")),
    E("stats-split-on-untagged-records", "counts",
      lambda w, t: ["data", "stats", str(w.records), "--split", "train", "--out", str(t / "st")],
      ["records", "carry no split tags"], nothing("st")),
    E("stats-split-absent", "counts",
      _pre(_tagged_records, lambda w, t: ["data", "stats", str(t / "tagged"), "--split", "test", "--out",
                                          str(t / "st")]), ["['test'] not in the records"], nothing("st")),
    E("stats-folder-missing", "mistake", lambda w, t: ["data", "stats", str(t / "nodata"), "--out", str(t / "st")],
      ["nodata"], nothing("st")),
    E("show-cad-root-missing", "accepted",
      lambda w, t: ["data", "show", str(w.records), "--cad-root", str(t / "nocad"), "--out", str(t / "s.png")],
      ["--cad-root", "nocad", "no such folder"], nothing("s.png")),
    E("show-id-missing", "mistake",
      lambda w, t: ["data", "show", str(w.records), "--id", "no-such-id", "--out", str(t / "s.png")],
      ["no-such-id"], nothing("s.png")),
]

def _with_input(kind: str, edit, cameras: bool = True):
    """orbit's argv with a copy of the world's --<kind> folder (masks, depth, frames) edited: edit(sorted files)."""
    def build(w, t):
        shutil.copytree(w.orbit / kind, t / kind)
        edit(sorted((t / kind).iterdir()))
        argv = orbit(w, t, cameras=cameras)
        argv[argv.index(f"--{kind}") + 1] = str(t / kind)
        return argv
    return build


def _resize(size):
    def edit(files):
        from PIL import Image

        Image.open(files[0]).resize(size).save(files[0])
    return edit


def _modes(files):
    from PIL import Image

    for path, mode in zip(files, ["L", "RGBA", "P"]):
        Image.open(path).convert(mode).save(path)


def _sixteen_bit(files):
    from PIL import Image

    for path in files:
        Image.fromarray(np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 257).save(path)


# the second round (a held-out-style pass over the same classes)
MORE = [
    E("orbit-num-output-frames-unbounded", "hang", lambda w, t: orbit(w, t, "--num-output-frames", "100000"),
      ["--num-output-frames", "<= 2000"], nothing("orbit")),
    E("orbit-out-is-the-frames", "runfolder",
      _pre(lambda w, t: shutil.copytree(w.orbit / "frames", t / "fr"),
           lambda w, t: orbit(w, t, frames=t / "fr")[:-2] + ["--out", str(t / "fr")]),
      ["is also the --frames input"], lambda w, t: sorted(p.suffix for p in (t / "fr").iterdir()) == [".png"] * 3),
    E("orbit-mask-of-another-aspect", "accepted", _with_input("masks", _resize((10, 10))),
      ["00000.png", "mask is 10×10, frames are 64×48", "aspect ratio"], nothing("orbit")),
    E("orbit-depth-of-another-aspect", "accepted",
      _with_input("depth", lambda files: np.save(files[0], np.ones((3, 3), np.float32))),
      ["00000.npy", "depth is 3×3", "aspect ratio"], nothing("orbit")),
    E("orbit-frames-1x1", "accepted",
      _with_input("frames", lambda files: [cv2.imwrite(str(p), np.zeros((1, 1, 3), np.uint8)) for p in files],
                  cameras=False),
      ["depth is 64×48, frames are 1×1", "aspect ratio"], nothing("orbit")),
    E("orbit-depth-model-no-such-folder", "misleading",
      lambda w, t: [a for a in orbit(w, t) if a not in ("--depth", str(w.orbit / "depth"))]
      + ["--depth-model", str(t / "nodepth")], ["--depth-model", "nodepth", "no such folder"], nothing("orbit")),
    E("orbit-video-model-no-such-folder", "misleading", lambda w, t: orbit(w, t, "--video-model", str(t / "novideo")),
      ["--video-model", "novideo", "no such folder"], nothing("orbit")),
    E("orbit-video-steps-without-video-model", "accepted", lambda w, t: orbit(w, t, "--video-steps", "5"),
      ["--video-steps", "only acts with a video model"], nothing("orbit")),
    E("orbit-video-condition-without-video-model", "accepted",
      lambda w, t: orbit(w, t, "--video-condition", "depth"), ["--video-condition", "only acts with"],
      nothing("orbit")),
    E("orbit-novel-view-steps-without-its-model", "accepted", lambda w, t: orbit(w, t, "--novel-view-steps", "5"),
      ["--novel-view-steps", "--novel-view-model"], nothing("orbit")),
    E("orbit-flow-budget-without-flow-refinement", "accepted",
      lambda w, t: orbit(w, t, "--no-flow-refine", "--flow-budget-mb", "10"), ["--flow-budget-mb", "--no-flow-refine"],
      nothing("orbit")),
    OK("orbit-frames-grey-rgba-palette", "bomb", _with_input("frames", _modes),
       lambda w, t: json.loads((t / "orbit" / "manifest.json").read_text())["status"] == "complete"),
    OK("orbit-frames-16-bit", "bomb", _with_input("frames", _sixteen_bit),
       lambda w, t: json.loads((t / "orbit" / "manifest.json").read_text())["status"] == "complete"),
    E("stats-out-is-a-file", "runfolder",
      _pre(lambda w, t: write(t, "st", "x"), lambda w, t: ["data", "stats", str(w.records), "--out", str(t / "st")]),
      ["st", "names a file"], lambda w, t: (t / "st").read_text() == "x"),
]

CASES = ORBIT + DATA + MORE


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_method_input(case, malformed_world, tmp_path, capsys, monkeypatch):
    check_case(case, malformed_world, tmp_path, capsys, monkeypatch)


def _all_cases() -> list:
    from test_malformed_export_view import CASES as EXPORT_VIEW_CASES
    from test_malformed_inemo import CASES as INEMO_CASES
    from test_malformed_nemo import CASES as NEMO_CASES
    from test_malformed_pose import CASES as POSE_CASES

    return NEMO_CASES + INEMO_CASES + POSE_CASES + EXPORT_VIEW_CASES + CASES


def test_the_table_is_big_and_every_class_is_tested():
    CASES = _all_cases()  # noqa: N806
    assert len(CASES) >= 100, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.cls for c in CASES} == set(CLASSES)


def test_counts_by_class():
    """The table's size per class (the report quotes it)."""
    CASES = _all_cases()  # noqa: N806
    counts = {c: sum(case.cls == c for case in CASES) for c in CLASSES}
    assert sum(counts.values()) == len(CASES) and all(counts.values()), counts
