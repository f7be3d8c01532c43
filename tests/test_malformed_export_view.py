"""Malformed input to `aware3d data export`, `aware3d view`, `aware3d pose curve` and `aware3d demo` (the
table and its rules: tests/_malformed.py).

`view` serves until Ctrl-C: its error rows fail before a server starts; its OK rows run with the serve
loop replaced, for that one run, by one that stops the server at once and says "served" (`_served`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
from _malformed import (
    OK,
    E,
    _copy_run,
    _pre,
    check_case,
    cli_main,
    live_lock,
    nothing,
    same_random_state_afterwards,  # noqa: F401  (autouse)
    write,
)

pytest.importorskip("viser", reason="viser is not installed (pip install 'aware3d[view]')")


# ---------------------------------------------------------------------------------------------- builders
def _records_json(src: Path, dst: Path, edit=None) -> Path:
    """The records of `src` as one JSON shard in `dst` (their images stay in src), the shard's document
    passed through edit(doc) first."""
    import data3d

    shard = data3d.save_records(list(data3d.load_records(src)), dst, shard="x", format="json")
    if edit is not None:
        doc = json.loads(shard.read_text())
        edit(doc)
        shard.write_text(json.dumps(doc))
    return dst


def _first(part: str, key: str, value):
    """An edit: the first record's (part "record"), its first object's ("object") or that object's
    viewpoint's ("viewpoint") `key` set to `value`."""
    def edit(doc):
        record = doc["records"][0]
        target = {"record": record, "object": record["objects"][0],
                  "viewpoint": record["objects"][0]["viewpoint"]}[part]
        target[key] = value
    return edit


def export(w, t, *extra, src=None, fmt="coco") -> list[str]:
    return ["data", "export", str(src or w.records), "--format", fmt, "--out", str(t / "ex"), *extra]


def _export_edited(edit, *extra, fmt="coco"):
    return lambda w, t: export(w, t, *extra, src=_records_json(w.records, t / "recs", edit), fmt=fmt)


def _exported(t) -> dict:
    return json.loads((t / "ex" / "export_manifest.json").read_text())


def _no_export(w, t) -> bool:
    """No export folder and no export left half-written beside it."""
    return not (t / "ex").exists() and not [p for p in t.iterdir() if p.name.startswith(".ex.")]


def _eval_folder(w) -> Path:
    """A nemo evaluation of the world's run on the cars (predictions.jsonl, meshes.npz), made once."""
    folder = w.root / "view_eval"
    if not (folder / "predictions.jsonl").is_file():
        assert cli_main(["nemo", "eval", "--run", str(w.run), "--data", str(w.cars), "--out", str(folder),
                         "--no-progress"]) == 0
    return folder


def _orbit_run(w) -> Path:
    """An orbit4d run of the world's clip (2 output frames), made once."""
    folder = w.root / "view_orbit"
    if not (folder / "cameras.json").is_file():
        assert cli_main(["orbit4d", "run", "--frames", str(w.orbit / "frames"), "--masks", str(w.orbit / "masks"),
                         "--depth", str(w.orbit / "depth"), "--cameras", str(w.orbit / "global_camera.json"),
                         "--out", str(folder), "--num-output-frames", "2"]) == 0
    return folder


def _edited_predictions(edit, *extra):
    """view of a copy of the evaluation folder whose predictions.jsonl rows went through edit(rows) (a
    str or bytes result is written as it is)."""
    def build(w, t):
        shutil.copytree(_eval_folder(w), t / "ev")
        file = t / "ev" / "predictions.jsonl"
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        result = edit(rows)
        if isinstance(result, bytes):
            file.write_bytes(result)
        else:
            file.write_text(result if isinstance(result, str) else "\n".join(json.dumps(r) for r in rows) + "\n")
        return ["view", str(t / "ev"), *extra]
    return build


def _row0(key, value):
    def edit(rows):
        rows[0][key] = value
    return edit


def _served(build):
    """A view argv whose run serves for no time: the serve loop, for this one run, says "served" and stops
    the server (it puts the real loop back first)."""
    def run(w, t):
        import aware3d.view as view
        from aware3d.view import stop_server

        real = view.serve_forever

        def once(server, say=print, banner=None):
            view.serve_forever = real
            say("served")
            stop_server(server)

        view.serve_forever = once
        return build(w, t)
    return run


def _other_cars(w, t) -> Path:
    """Test records of a car instance (procedural car/0001) that the curve's sources and reference
    (car/0000) do not show; the images are the world's."""
    def edit(doc):
        doc["records"] = [r for r in doc["records"] if r["objects"][0]["category"] == "car"]
        for r in doc["records"]:
            r["objects"][0]["cad_id"] = "car/0001"
    return _records_json(w.cars, t / "test", edit)


def curve(w, t, *extra, reference=None, data=None, category="car") -> list[str]:
    return ["pose", "curve", "--images", str(w.cars), "--reference", str(reference or w.cars),
            "--data", str(data or _other_cars(w, t)), "--category", category, "--config", str(w.extra["pose_cfg"]),
            "--out", str(t / "curve"), "--rates", "0", "--azimuths", "2", "--polar-deg", "0", "--segments", "12",
            "--backgrounds", "white", "--no-progress", *extra]


def demo(w, t, *extra, out="demo") -> list[str]:
    return ["demo", "--out", str(t / out), "--no-dataset", "--no-orbit4d", "--views", "2", "--categories", "car",
            *extra]


def _no_curve_point(w, t) -> bool:
    return not (t / "curve" / "p0.00").exists()


# ---------------------------------------------------------------------------------------------- export
EXPORT = [
    E("export-format-misspelt", "mistake", lambda w, t: export(w, t, fmt="cocoo"), ["--format", "'cocoo'"],
      nothing("ex")),
    E("export-records-missing", "mistake", lambda w, t: export(w, t, src=t / "norecs"),
      ["norecs", "no such folder"], nothing("ex")),
    E("export-records-folder-empty", "mistake",
      _pre(lambda w, t: (t / "empty").mkdir(), lambda w, t: export(w, t, src=t / "empty")),
      ["empty", "holds no record shards"], nothing("ex")),
    E("export-shard-not-json", "mistake", lambda w, t: export(w, t, src=write(t, "r/records-0.json", "{").parent),
      ["records-0.json", "cannot be read as JSON"], nothing("ex")),
    E("export-record-distance-nan", "unchecked", _export_edited(_first("viewpoint", "distance", float("nan"))),
      ["records-x.json", "'objects[0].viewpoint.distance'"], nothing("ex")),
    E("export-mm-per-unit-inf", "unchecked", lambda w, t: export(w, t, "--mm-per-unit", "inf", fmt="bop"),
      ["--mm-per-unit", "got inf"], _no_export),  # was: models written, then a JSON error naming nothing
    E("export-mm-per-unit-huge", "unchecked", lambda w, t: export(w, t, "--mm-per-unit", "1e300", fmt="bop"),
      ["--mm-per-unit", "1e+09"], _no_export),  # was: a segmentation fault in the models' convex hull
    E("export-mm-per-unit-0", "unchecked", lambda w, t: export(w, t, "--mm-per-unit", "0", fmt="bop"),
      ["--mm-per-unit", "> 0"], _no_export),
    E("export-metres-per-unit-inf", "unchecked", lambda w, t: export(w, t, "--metres-per-unit", "inf", fmt="kitti"),
      ["--metres-per-unit"], _no_export),  # was: labels with inf, then a JSON error and half an export
    E("export-max-ray-angle-nan", "unchecked",
      lambda w, t: export(w, t, "--max-ray-angle-deg", "nan", fmt="kitti"), ["--max-ray-angle-deg"], _no_export),
    E("export-max-ray-angle-0", "accepted", lambda w, t: export(w, t, "--max-ray-angle-deg", "0", fmt="kitti"),
      ["--max-ray-angle-deg", "> 0"], _no_export),  # was: every object skipped, exit 0
    E("export-max-ray-angle-beyond-90", "accepted",
      lambda w, t: export(w, t, "--max-ray-angle-deg", "500", fmt="kitti"), ["--max-ray-angle-deg", "90"],
      _no_export),
    E("export-mm-per-unit-with-coco", "accepted", lambda w, t: export(w, t, "--mm-per-unit", "10"),
      ["--mm-per-unit only acts with --format bop"], _no_export),
    E("export-metres-per-unit-with-bop", "accepted", lambda w, t: export(w, t, "--metres-per-unit", "2", fmt="bop"),
      ["--metres-per-unit only acts with --format kitti"], _no_export),
    E("export-max-ray-angle-with-coco", "accepted", lambda w, t: export(w, t, "--max-ray-angle-deg", "10"),
      ["--max-ray-angle-deg only acts with --format kitti"], _no_export),
    E("export-cad-root-with-coco", "accepted", lambda w, t: export(w, t, "--cad-root", str(t)),
      ["--cad-root only acts with --format bop or kitti"], _no_export),
    E("export-cad-root-missing", "accepted", lambda w, t: export(w, t, "--cad-root", str(t / "nocad"), fmt="bop"),
      ["--cad-root", "nocad", "no such folder"], _no_export),  # was: BOP without the models, exit 0
    E("export-cad-root-a-file", "accepted",
      lambda w, t: export(w, t, "--cad-root", str(write(t, "cad.txt", "x")), fmt="kitti"),
      ["--cad-root", "cad.txt", "is a file"], _no_export),
    E("export-split-name-with-a-loader-of-splits", "accepted",
      lambda w, t: ["data", "export", "--pascal3d", str(t / "p3d"), "--format", "coco", "--out", str(t / "ex"),
                    "--split-name", "x"], ["--split-name", "--pascal3d keeps its --split names"], _no_export),
    E("export-split-name-newline", "unchecked", lambda w, t: export(w, t, "--split-name", "a\nb"),
      ["split name", "is not a folder name"], _no_export),  # was: folders named "a\nb"
    E("export-split-name-empty", "mistake", lambda w, t: export(w, t, "--split-name", ""),
      ["split name ''", "is not a folder name"], _no_export),
    E("export-split-name-a-path", "mistake", lambda w, t: export(w, t, "--split-name", "a/b"),
      ["split name 'a/b'"], _no_export),
    E("export-strict-stop-leaves-nothing", "runfolder",
      lambda w, t: export(w, t, "--strict", src=w.one_bad, fmt="bop"), [".png", "cannot be read as an image"],
      _no_export),  # was: models/ written, and the next run refused as "not empty"
    E("export-out-not-empty", "runfolder", _pre(lambda w, t: write(t, "ex/keep.txt", "mine"), export),
      ["ex", "the export folder is not empty"],
      lambda w, t: sorted(p.name for p in (t / "ex").iterdir()) == ["keep.txt"]),
    E("export-out-is-a-file", "runfolder", _pre(lambda w, t: write(t, "ex", "x"), export), ["--out", "names a file"],
      lambda w, t: (t / "ex").read_text() == "x"),
    E("export-out-is-the-records", "runfolder", lambda w, t: export(w, t)[:-2] + ["--out", str(w.records)],
      ["records", "not empty"], lambda w, t: not (w.records / "export_manifest.json").exists()),
    E("export-out-empty", "runfolder",
      lambda w, t: ["data", "export", str(w.records), "--format", "coco", "--out", ""], ["--out", "an empty path"],
      lambda w, t: not (Path.cwd() / "export_manifest.json").exists()),
    E("export-categories-absent", "counts", lambda w, t: export(w, t, "--categories", "plane"),
      ["['plane'] not in the records"], nothing("ex")),
    E("export-split-of-untagged-records", "counts", lambda w, t: export(w, t, "--split", "val"),
      ["carry no split tags"], nothing("ex")),
    E("export-records-twice", "mistake", lambda w, t: export(w, t, "--in", str(w.records)),
      ["give the records folder once"], nothing("ex")),
    OK("export-one-unreadable-image-is-a-counted-skip", "skip", lambda w, t: export(w, t, src=w.one_bad),
       lambda w, t: _exported(t)["skipped"] == {"bad_record": 1} and _exported(t)["splits"]["train"]["images"] == 5,
       ["skipped: bad_record: 1"]),
    OK("export-a-bomb-is-a-counted-skip", "bomb", lambda w, t: export(w, t, src=w.one_bomb, fmt="kitti"),
       lambda w, t: _exported(t)["skipped"].get("bad_record") == 1
       and any("too large" in p for p in _exported(t)["problems"])),  # was: copied byte for byte, counted
    OK("export-image-of-another-size-is-a-counted-skip", "counts",
       _export_edited(_first("record", "image_size", [64, 64]), fmt="kitti"),
       lambda w, t: _exported(t)["skipped"].get("bad_record") == 1
       and any("(64, 64)" in p for p in _exported(t)["problems"])),  # was: labels for a 32x32 image, counted
    OK("export-a-missing-mask-is-a-counted-skip", "skip",
       _export_edited(lambda doc: doc["records"][0]["extra"].update(mask_path="/nonexistent/m.png")),
       lambda w, t: _exported(t)["skipped"] == {"bad_record": 1}),
    OK("export-unicode-out", "mistake",
       lambda w, t: export(w, t)[:-2] + ["--out", str(t / "ëxport ☃")],
       lambda w, t: (t / "ëxport ☃" / "annotations" / "instances_train.json").is_file()
       and not [p for p in t.iterdir() if p.name.startswith(".")]),
]

# ---------------------------------------------------------------------------------------------- view
VIEW = [
    E("view-path-missing", "mistake", lambda w, t: ["view", str(t / "nothing")], ["nothing", "no such file or folder"]),
    E("view-empty-folder", "mistake", _pre(lambda w, t: (t / "e").mkdir(), lambda w, t: ["view", str(t / "e")]),
      ["not a records folder"]),
    E("view-kind-misspelt", "mistake", lambda w, t: ["view", str(w.records), "--kind", "record"], ["--kind"]),
    E("view-port-negative", "hang", lambda w, t: ["view", str(w.records), "--port", "-1"],
      ["--port", "[0, 65535]"]),  # was: viser's thread died, the command waited for ever
    E("view-port-beyond", "hang", lambda w, t: ["view", str(w.records), "--port", "70000"], ["--port"]),
    E("view-host-unresolvable", "hang", lambda w, t: ["view", str(w.records), "--host", "no.such.host.invalid"],
      ["--host no.such.host.invalid", "cannot be resolved"]),
    E("view-host-not-this-machine", "hang", lambda w, t: ["view", str(w.records), "--host", "203.0.113.7"],
      ["--host 203.0.113.7", "cannot listen on it"]),
    E("view-max-objects-0", "unchecked", lambda w, t: ["view", str(w.records), "--max-objects", "0"],
      ["--max-objects"]),  # was: an empty scene, a NaN median
    E("view-max-objects-negative", "misleading", lambda w, t: ["view", str(w.records), "--max-objects", "-3"],
      ["--max-objects"]),  # was: numpy's "Number of samples, -3, must be non-negative."
    E("view-max-points-0", "unchecked", lambda w, t: ["view", str(w.records), "--max-points", "0"],
      ["--max-points"]),
    E("view-size-without-screenshot", "accepted", lambda w, t: ["view", str(w.records), "--size", "100x100"],
      ["--size only acts with --screenshot"]),
    E("view-camera-nan", "unchecked", lambda w, t: ["view", str(w.records), "--camera", "nan,0,0"],
      ["--camera", "finite"]),
    E("view-camera-looks-at-itself", "unchecked", lambda w, t: ["view", str(w.records), "--camera", "1,1,1:1,1,1"],
      ["--camera", "coincide"]),
    E("view-cad-root-missing", "accepted", lambda w, t: ["view", str(w.records), "--cad-root", str(t / "nocad")],
      ["--cad-root", "nocad", "no such folder"]),
    E("view-max-points-of-records", "accepted", lambda w, t: ["view", str(w.records), "--max-points", "10"],
      ["--max-points only acts with --kind orbit4d", "viewed as records"]),
    E("view-method-of-records", "accepted", lambda w, t: ["view", str(w.records), "--method", "nemo"],
      ["--method only acts with --kind poses"]),
    E("view-example-of-records", "accepted", lambda w, t: ["view", str(w.records), "--example", "1"],
      ["--example only acts with --kind poses"]),
    E("view-max-objects-of-an-evaluation", "accepted",
      lambda w, t: ["view", str(_eval_folder(w)), "--max-objects", "5"],
      ["--max-objects only acts with --kind records"]),
    E("view-screenshot-not-png", "misleading",
      lambda w, t: ["view", str(w.records), "--screenshot", str(t / "s.jpg")], ["--screenshot", "s.jpg", ".png"],
      nothing("s.jpg")),  # was: PNG bytes in s.jpg
    E("view-screenshot-over-a-shard", "runfolder",
      _pre(lambda w, t: shutil.copytree(w.cars, t / "c"),
           lambda w, t: ["view", str(t / "c"), "--screenshot", str(t / "c" / "records-000000.npz")]),
      ["--screenshot", "records-000000.npz"],
      lambda w, t: len(__import__("data3d").load_records(t / "c")) == 4),  # was: the shard replaced by a PNG
    E("view-example-beyond", "mistake", lambda w, t: ["view", str(_eval_folder(w)), "--example", "99"],
      ["--example 99", "examples 0 to 3"]),
    E("view-method-unknown", "mistake", lambda w, t: ["view", str(_eval_folder(w)), "--method", "nope"],
      ["predictions.jsonl", "no method 'nope'"]),
    E("view-prediction-truth-not-a-mapping", "unchecked", _edited_predictions(_row0("truth", 5)),
      ["predictions.jsonl", "line 1", "'truth' must be a viewpoint mapping"]),  # was: a TypeError traceback
    E("view-prediction-truth-without-azimuth", "unchecked",
      _edited_predictions(lambda rows: rows[0]["truth"].pop("azimuth")),
      ["predictions.jsonl", "line 1", "'truth.azimuth'"]),  # was: a KeyError traceback
    E("view-prediction-truth-nan", "misleading",
      _edited_predictions(lambda rows: rows[0]["truth"].update(distance=float("nan"))),
      ["predictions.jsonl", "'truth.distance' must be a finite number"]),  # was: "distance contains NaN ..."
    E("view-prediction-estimate-null", "unchecked", _edited_predictions(_row0("image_viewpoint", None)),
      ["predictions.jsonl", "'image_viewpoint'"]),
    E("view-prediction-image-not-a-string", "unchecked", _edited_predictions(_row0("image", 5)),
      ["predictions.jsonl", "'image' must be a string"]),
    E("view-prediction-method-a-list", "unchecked", _edited_predictions(_row0("method", [1])),
      ["predictions.jsonl", "'method' must be a string"]),  # was: "unhashable type: 'list'" traceback
    E("view-prediction-not-an-object", "misleading", _edited_predictions(lambda rows: "[1, 2]\n"),
      ["predictions.jsonl", "line 1 is not a JSON object"]),  # was: "written by an older aware3d"
    E("view-predictions-not-text", "misleading", _edited_predictions(lambda rows: b"\xff\xfe garbage"),
      ["predictions.jsonl", "cannot be read as text"]),  # was: the codec's message, no file
    E("view-meshes-npz-garbage", "misleading",
      _pre(lambda w, t: (shutil.copytree(_eval_folder(w), t / "ev"), write(t, "ev/meshes.npz", "garbage")),
           lambda w, t: ["view", str(t / "ev")]), ["meshes.npz", "cannot be read as .npz"]),
    E("view-orbit-cameras-garbage", "mistake",
      _pre(lambda w, t: (shutil.copytree(_orbit_run(w), t / "o"), write(t, "o/cameras.json", "{")),
           lambda w, t: ["view", str(t / "o")]), ["cameras.json", "cannot be read as JSON"]),
    OK("view-records", "mistake", _served(lambda w, t: ["view", str(w.records)]), None,
       ["6 of 6 objects", "served"]),
    OK("view-a-bomb-is-a-frustum-without-image", "bomb", _served(lambda w, t: ["view", str(w.one_bomb)]), None,
       ["1 images could not be read", "served"]),  # was: OpenCV's size assertion as a traceback
    OK("view-orbit-manifest-frames-not-a-list", "unchecked",
       _served(_pre(lambda w, t: (shutil.copytree(_orbit_run(w), t / "o"),
                                  write(t, "o/manifest.json", json.dumps({"frames": 5}))),
                    lambda w, t: ["view", str(t / "o")])), None,
       ["3 input cameras", "served"]),  # was: "'int' object is not iterable" traceback
    OK("view-evaluation", "mistake", _served(lambda w, t: ["view", str(_eval_folder(w))]), None,
       ["4 predictions of nemo", "served"]),
    OK("view-estimate-without-distance", "accepted",
       _served(_edited_predictions(lambda rows: rows[0]["image_viewpoint"].update(distance=None))), None,
       ["4 predictions", "served"]),  # drawn at the true distance (was: float(None), a traceback)
]

# ---------------------------------------------------------------------------------------------- pose curve
CURVE = [
    E("curve-set-bad-value", "accepted", lambda w, t: curve(w, t, "--set", "nemo.train.steps=0"),
      ["'train.steps'"], nothing("curve")),  # was: the first rate's sets generated, then the error
    E("curve-set-unknown-key", "accepted", lambda w, t: curve(w, t, "--set", "pose.nope=1"), ["'pose.nope'"],
      nothing("curve")),
    E("curve-reference-missing", "mistake", lambda w, t: curve(w, t, reference=t / "noref"),
      ["noref", "no such folder"], nothing("curve")),  # was: after the first rate's sets
    E("curve-reference-unreadable", "accepted", lambda w, t: curve(w, t, reference=w.all_bad),
      [".png", "cannot be read as an image"], nothing("curve")),  # was: after the first rate's training
    E("curve-reference-of-another-category", "accepted", lambda w, t: curve(w, t, reference=w.chairs),
      ["--reference", "'chair', not a 'car'"], nothing("curve")),
    E("curve-data-of-another-category", "accepted", lambda w, t: curve(w, t, data=w.chairs),
      ["--data", "chairs", "no record of category 'car'"], nothing("curve")),  # was: after training
    E("curve-data-shows-the-reference", "accepted", lambda w, t: curve(w, t, data=w.cars),
      ["--data", "procedural:car/0000", "instance-disjoint"], nothing("curve")),  # was: after training
    E("curve-real-data-of-another-category", "accepted", lambda w, t: curve(w, t, "--real-data", str(w.chairs)),
      ["--real-data", "no record of category 'car'"], nothing("curve")),
    E("curve-supervised-run-missing", "mistake", lambda w, t: curve(w, t, "--supervised-run", str(t / "nosup")),
      ["nosup", "not a run folder"], nothing("curve")),  # was: after training
    E("curve-supervised-run-a-pose-run", "misleading",
      lambda w, t: curve(w, t, "--supervised-run", str(w.pose_run)), ["pose_run", "not a NeMo run"],
      nothing("curve")),
    E("curve-out-holds-a-nemo-run", "runfolder", _pre(_copy_run("run", "curve"), curve),
      ["--out", "holds a run (manifest.json), not a flip curve"], _no_curve_point),  # was: p0.00/ inside the run
    E("curve-out-locked", "runfolder", _pre(lambda w, t: live_lock(t, "curve"), curve),
      ["being written by another pose curve", ".lock"], _no_curve_point),  # was: no lock at all
    E("curve-config-missing", "mistake",
      lambda w, t: [str(t / "no.yaml") if a == str(w.extra["pose_cfg"]) else a for a in curve(w, t)],
      ["no.yaml", "config file not found"], nothing("curve")),
    E("curve-category-absent", "mistake", lambda w, t: curve(w, t, category="plane"),
      ["no usable source of category 'plane'"], nothing("curve")),
    E("curve-every-source-unreadable", "skip",
      lambda w, t: ["pose", "curve", "--images", str(w.all_bad)] + curve(w, t)[4:],
      ["all_bad", "no usable source", "6 skipped"], nothing("curve")),
    OK("curve-one-rate", "accepted", curve,
       lambda w, t: list(json.loads((t / "curve" / "curve.json").read_text())["results"]) == ["0.00"],
       ["(1 rates)"]),
]

# ---------------------------------------------------------------------------------------------- demo
DEMO = [
    E("demo-views-0", "bomb", lambda w, t: demo(w, t, "--views", "0"), ["--views", "[1, 360]"],
      nothing("demo")),  # was: ZeroDivisionError traceback, cuboids/ written
    E("demo-views-negative", "bomb", lambda w, t: demo(w, t, "--views", "-2"), ["--views"],
      nothing("demo")),  # was: torch's RuntimeError traceback
    E("demo-views-unbounded", "hang", lambda w, t: demo(w, t, "--views", "100000000"), ["--views"],
      nothing("demo")),
    E("demo-views-not-a-number", "mistake", lambda w, t: demo(w, t, "--views", "abc"), ["--views", "'abc'"],
      nothing("demo")),
    E("demo-nemo-steps-unbounded", "unchecked",
      lambda w, t: ["demo", "--out", str(t / "demo"), "--no-orbit4d", "--views", "2", "--categories", "car",
                    "--nemo-steps", "1000000000000"], ["--nemo-steps"], nothing("demo")),  # was: after the sheet
    E("demo-nemo-steps-without-dataset", "accepted", lambda w, t: demo(w, t, "--nemo-steps", "5"),
      ["--nemo-steps only acts without --no-dataset"], nothing("demo")),
    E("demo-category-twice", "counts", lambda w, t: demo(w, t, "--categories", "car", "car"),
      ["--categories", "['car'] given twice"], nothing("demo")),  # was: every record twice
    E("demo-category-unknown-after-a-known-one", "runfolder",
      lambda w, t: demo(w, t, "--categories", "car", "spaceship"), ["--categories", "'spaceship'"],
      nothing("demo")),  # was: the car's files written first
    E("demo-out-is-a-file", "misleading", _pre(lambda w, t: write(t, "demo", "x"), demo),
      ["--out", "names a file"], lambda w, t: (t / "demo").read_text() == "x"),  # was: "Not a directory: .../cuboids"
    E("demo-out-empty", "runfolder",
      lambda w, t: ["demo", "--out", "", "--no-dataset", "--no-orbit4d", "--views", "2", "--categories", "car"],
      ["--out", "an empty path"],
      lambda w, t: not (Path.cwd() / "contact_sheet.png").exists()),  # was: written into the working folder
    OK("demo-small", "mistake", demo,
       lambda w, t: (t / "demo" / "contact_sheet.png").is_file()
       and len(json.loads((t / "demo" / "annotations" / "records-demo.json").read_text())["records"]) == 2,
       ["aware3d view"]),
]

CASES = EXPORT + VIEW + CURVE + DEMO


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_export_view_input(case, malformed_world, tmp_path, capsys, monkeypatch):
    check_case(case, malformed_world, tmp_path, capsys, monkeypatch)
