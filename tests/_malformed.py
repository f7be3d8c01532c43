"""Shared helpers of the malformed-input tables, split by command family into tests/test_malformed_nemo.py
(`aware3d nemo train | eval | pose`), tests/test_malformed_inemo.py (`nemo incremental |
incremental-summary | splits`), tests/test_malformed_pose.py (`aware3d pose generate | train | eval`),
tests/test_malformed_export_view.py (`aware3d data export`, `aware3d view`, `aware3d pose curve`,
`aware3d demo`) and tests/test_malformed_orbit4d_data.py (`aware3d orbit4d run`, `aware3d data stats |
show`), each case run through the CLI's `main()` as a hostile user would.

Every case asserts the exit code; for an error, that stderr's last line is one line naming the file or
the key and the problem (and no traceback anywhere); and what was or was not written. A case that
runs longer than `HANG_S` fails as a hang. The classes (CLASSES) follow issue 25's list: hangs,
images that explode (decompression bombs), values nobody checked, misleading messages, run
folders, values accepted and wrong later, counts that lie, the skip policy, and the plain mistakes
(missing files, malformed configs) that must stay clear errors.

The table rows `E` / `OK` (Case), their builders, the world (`build_world`) and `check_case`
live here; each test file holds its family's tables.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from aware3d.cli import main as cli_main

HANG_S = 120  # no case comes near this; one that does is a hang
CLASSES = ("hang", "bomb", "unchecked", "misleading", "runfolder", "accepted", "counts", "skip", "mistake")

NEMO = {"threads": 1, "seed": 0,
        "data": {"crop_size": [32, 32], "batch_size": 2, "prefetch_rounds": False},
        "cuboid": {"num_vertices": 40},
        "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [4, 8, 8, 8], "embedding_size": 4, "decoder_width": 8,
                     "feature_dim": 8},
        "meshes": {"type": "procedural", "count": 1},
        "bank": {"clutter_size": 16},
        "optim": {"warmup_steps": 1},
        "train": {"steps": 2, "log_every": 1, "checkpoint_every": 1},
        "pose": {"azimuths": 2, "elevations": 1, "thetas": 1, "steps": 1, "keep": 1}}
POSE = {"nemo": dict(NEMO, train={"steps": 2, "log_every": 1, "checkpoint_every": 1}),
        "pose": {"retrieval": {"steps": 1}}}


# ---------------------------------------------------------------------------------------------- fixtures
class Hang(BaseException):
    """Raised by the alarm: not an Exception, so no handler of the CLI turns it into an error line."""


def bomb_png(path: Path, width: int = 100000, height: int = 100000) -> Path:
    """A valid PNG whose header claims width × height pixels (10^10: beyond PIL's and OpenCV's limits)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def _record_images(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "images").rglob("*.png"))


def _subset(src: Path, dst: Path, keep) -> Path:
    """A records folder with its own images: the records of src whose category passes `keep`."""
    import data3d

    shutil.copytree(src, dst)
    records = data3d.load_records(dst)
    for shard in dst.glob("records-*"):
        shard.unlink()
    kept = [r for r in records if keep(r.objects[0].category)]
    for r in records:
        if r not in kept:
            Path(r.image_path).unlink()
    data3d.save_records(kept, dst, shard="000000")
    return dst


def _copy_records(src: Path, dst: Path, corrupt: int | None, how: str = "garbage") -> Path:
    """A copy of a records folder with the first `corrupt` images (None: all) broken."""
    shutil.copytree(src, dst)
    images = _record_images(dst)
    for p in images[: len(images) if corrupt is None else corrupt]:
        if how == "bomb":
            bomb_png(p)
        else:
            p.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return dst


@dataclass
class World:
    root: Path
    records: Path  # car, sofa, chair; 2 images each, 32x32
    cars: Path  # car and sofa only
    chairs: Path  # chair only
    all_bad: Path  # every image unreadable
    one_bad: Path  # one image unreadable
    one_bomb: Path  # one image a decompression bomb
    config: Path  # the tiny nemo config (categories car, sofa)
    run: Path  # a trained nemo run (car, sofa)
    sets: Path  # pose generate output (car)
    pose_run: Path  # a trained pose run
    orbit: Path  # orbit4d inputs: frames/, masks/, depth/, global_camera.json (3 frames, 48x64)
    extra: dict = field(default_factory=dict)


@pytest.fixture(autouse=True, scope="module")
def same_random_state_afterwards():
    """The runs here seed torch's global generator; later test modules draw as if this one had not run."""
    state = torch.random.get_rng_state()
    yield
    torch.random.set_rng_state(state)


def build_world(root: Path) -> World:
    """The inputs every table's cases start from, built under `root` (the session fixture
    `malformed_world` of tests/conftest.py builds it once, with one torch thread)."""
    from datagen.config import load_config
    from datagen.pipeline import generate
    from orbit4d.demo import write_inputs
    from orbit4d.synthetic import make_scene

    records = root / "records"
    generate(load_config({"seed": 0, "image_size": 32, "samples_per_category": 2, "occlusion": ["none"],
                          "assets": [{"type": "procedural", "categories": ["car", "sofa", "chair"], "count": 1}]}),
             records, progress=False)
    cars = _subset(records, root / "cars", lambda c: c != "chair")
    chairs = _subset(records, root / "chairs", lambda c: c == "chair")
    config = root / "nemo.yaml"
    config.write_text(yaml.safe_dump(dict(NEMO, categories=["car", "sofa"])))
    run = root / "run"
    assert cli_main(["nemo", "train", "--data", str(records), "--out", str(run), "--config", str(config),
                     "--no-progress"]) == 0
    sets = root / "sets"
    assert cli_main(["pose", "generate", "--images", str(cars), "--category", "car", "--out", str(sets),
                     "--azimuths", "2", "--polar-deg", "0", "--segments", "12", "--backgrounds", "white",
                     "--no-progress"]) == 0
    pose_cfg = root / "pose.yaml"
    pose_cfg.write_text(yaml.safe_dump(POSE))
    pose_run = root / "pose_run"
    assert cli_main(["pose", "train", "--sets", str(sets), "--reference", str(cars), "--out", str(pose_run),
                     "--config", str(pose_cfg), "--no-progress"]) == 0
    orbit = write_inputs(make_scene(3, (48, 64), turn_degrees=10.0), root / "orbit")
    w = World(root, records, cars, chairs, _copy_records(records, root / "all_bad", None),
              _copy_records(records, root / "one_bad", 1), _copy_records(records, root / "one_bomb", 1, "bomb"),
              config, run, sets, pose_run, orbit, {"pose_cfg": pose_cfg})
    return w


# ---------------------------------------------------------------------------------------------- helpers
def nemo_train(w: World, t: Path, *extra: str, data: Path | None = None, out: str = "out") -> list[str]:
    return ["nemo", "train", "--data", str(data or w.records), "--out", str(t / out), "--config", str(w.config),
            "--no-progress", *extra]


def nemo_eval(w: World, t: Path, *extra: str, run: Path | None = None, data: Path | None = None) -> list[str]:
    return ["nemo", "eval", "--run", str(run or w.run), "--data", str(data or w.cars), "--out", str(t / "eval"),
            "--no-progress", *extra]


def nemo_pose(w: World, t: Path, *extra: str, images: list | None = None, run: Path | None = None) -> list[str]:
    images = [str(p) for p in (images or _record_images(w.records)[:1])]
    return ["nemo", "pose", "--run", str(run or w.run), "--images", *images, "--out", str(t / "pose"), *extra]


def incremental(w: World, t: Path, *extra: str, train: Path | None = None, test: Path | None = None,
                config: dict | None = None) -> list[str]:
    cfg = {"methods": ["finetune"], "tasks": {"tasks": 2}, "steps": {"first": 1, "later": 1},
           "instance_disjoint": False,  # the test copies show the training instances
           "exemplars": {"budget": 2}, "eval": {"batch_size": 4},
           "nemo": {k: v for k, v in NEMO.items() if k not in ("threads", "seed", "train")}}
    path = t / "inc.yaml"
    path.write_text(yaml.safe_dump(config or cfg))
    return ["nemo", "incremental", "--config", str(path), "--out", str(t / "inc"), "--train",
            str(train or w.cars), "--test", str(test or w.extra.setdefault("inc_test", _inc_test(w))),
            "--no-progress", *extra]


def _inc_test(w: World) -> Path:
    """A test folder for incremental runs that shares no image with w.cars (its own copies)."""
    import data3d

    folder = w.root / "inc_test"
    if not folder.exists():
        shutil.copytree(w.cars, folder)
        recs = data3d.load_records(folder)
        for r in recs:  # the copies are other files: the run refuses shared images
            assert Path(r.image_path).is_file()
    return folder


def pose_generate(w: World, t: Path, *extra: str, images: Path | None = None) -> list[str]:
    return ["pose", "generate", "--images", str(images or w.cars), "--category", "car", "--out", str(t / "sets"),
            "--azimuths", "2", "--polar-deg", "0", "--segments", "12", "--backgrounds", "white", "--no-progress",
            *extra]


def pose_train(w: World, t: Path, *extra: str, sets: Path | None = None, out: str = "prun") -> list[str]:
    return ["pose", "train", "--sets", str(sets or w.sets), "--reference", str(w.cars), "--out", str(t / out),
            "--config", str(w.extra["pose_cfg"]), "--no-progress", *extra]


def orbit(w: World, t: Path, *extra: str, frames: Path | None = None, out: str = "orbit",
          cameras: bool = True) -> list[str]:
    given = ["--cameras", str(w.orbit / "global_camera.json")] if cameras else ["--static-camera"]
    return ["orbit4d", "run", "--frames", str(frames or w.orbit / "frames"), "--masks", str(w.orbit / "masks"),
            "--depth", str(w.orbit / "depth"), *given, "--out", str(t / out), *extra]


def write(t: Path, name: str, text: str | bytes) -> Path:
    p = t / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
    return p


def steps_logged(folder: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / "log.jsonl").read_text().splitlines() if line.strip()]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def nothing(*names: str):
    """A check: none of these paths (relative to the case's tmp folder) exists."""
    return lambda w, t: all(not (t / n).exists() for n in names)


def no_config(out: str = "out"):
    return lambda w, t: not (t / out / "config.yaml").exists()


def live_lock(t: Path, out: str) -> None:
    import socket

    folder = t / out
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))


def trajectory(w: World, t: Path, size=(48, 64), times=(0.0, 1.0), name: str = "path.json") -> Path:
    from geom3d.trajectory import CameraPath, save_camera_path
    from orbit4d.io import read_cameras

    cams = read_cameras(w.orbit / "global_camera.json", ["00000", "00001"], (48, 64))
    if tuple(size) != (48, 64):
        cams = cams.resize(size)
    save_camera_path(t / name, CameraPath(cams, torch.tensor(times, dtype=torch.float64)))
    return t / name


def exif_jpeg(path: Path, orientation: int = 6, size=(40, 24)) -> Path:
    from PIL import Image

    img = Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, format="JPEG", exif=exif.tobytes())
    return path


def image_of_mode(path: Path, mode: str, size=(40, 30)) -> Path:
    """An image stored in PIL mode `mode`: "L", "P", "RGBA", "1", "CMYK" (a JPEG) or "I;16" (a 16-bit PNG)."""
    from PIL import Image

    if mode == "I;16":
        Image.fromarray(np.full((size[1], size[0]), 30000, np.uint16)).save(path)
    elif mode == "CMYK":
        Image.new("CMYK", size, (10, 200, 30, 0)).save(path, format="JPEG")
    else:
        Image.new(mode, size, {"L": 128, "P": 3, "1": 1, "RGBA": (100, 120, 140, 200)}.get(mode, 0)).save(path)
    return path


def with_manifest(kind: str, name: str, config: str | None = None):
    """A prepare step: folder `name` holding a manifest.json of a run of `kind` (another method's) and,
    given, that config.yaml text."""
    def fn(w, t):
        (t / name).mkdir(parents=True, exist_ok=True)
        (t / name / "manifest.json").write_text(json.dumps({"kind": kind, "status": "complete", "step": 1}))
        if config is not None:
            (t / name / "config.yaml").write_text(config)
    return fn


def sets_index(edit: Callable):
    """A prepare step: a copy of the world's sets folder in `sets` whose sets.json is edit(its content)
    (a str is written as it is)."""
    def fn(w, t):
        shutil.copytree(w.sets, t / "sets")
        data = edit(json.loads((t / "sets" / "sets.json").read_text()))
        (t / "sets" / "sets.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return fn


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    build: Callable  # (world, tmp) -> argv
    code: int = 2
    expect: tuple = ()  # substrings of the error line (code != 0) or of stdout (code 0)
    check: Callable | None = None  # (world, tmp) -> bool: what was or was not written


def E(id, cls, build, expect, check=None, code=2):  # noqa: N802 - a table row
    return Case(id, cls, build, code, tuple(expect), check)


def OK(id, cls, build, check, expect=()):  # noqa: N802 - a table row
    return Case(id, cls, build, 0, tuple(expect), check)


def _setv(w, t, text, out="out"):
    return nemo_train(w, t, "--set", text, out=out)


def _pre(fn, build):
    """A build that first prepares the tmp folder with fn(w, t)."""
    def run(w, t):
        fn(w, t)
        return build(w, t)
    return run


def _copy_run(src_attr: str, name: str = "out"):
    def fn(w, t):
        shutil.copytree(getattr(w, src_attr), t / name)
    return fn


def run_cli(argv, capsys) -> tuple[int, str, str]:
    def alarm(*_):
        raise Hang(f"no answer within {HANG_S} s: {' '.join(argv)}")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse's errors
            code = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return code, captured.out, captured.err



def check_case(case, world, tmp_path, capsys, monkeypatch) -> None:
    """Run one table row through the CLI's main() and check it (module docstring)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    argv = case.build(world, tmp_path)
    capsys.readouterr()
    code, out, err = run_cli(argv, capsys)
    assert "Traceback" not in out + err, (case.id, err)
    assert code == case.code, (case.id, code, out[-2000:], err[-2000:])
    if case.code != 0:
        lines = [line for line in err.splitlines()
                 if line.strip() and not line.startswith(("WARNING", "INFO", "usage:", " "))]
        assert lines and lines[-1].startswith("aware3d "), (case.id, err)
        line = lines[-1]
        assert ": error: " in line, (case.id, line)
        for text in case.expect:
            assert text in line, (case.id, text, line)
    else:
        for text in case.expect:
            assert text in out + err, (case.id, text, out, err)
    if case.check is not None:
        assert case.check(world, tmp_path), case.id
