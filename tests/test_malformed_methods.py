"""Malformed input to the method commands, table-driven: `aware3d nemo train | eval | pose | splits |
incremental`, `aware3d pose generate | train | eval`, `aware3d orbit4d run` and `aware3d data stats |
show`, each case run through the CLI's `main()` as a hostile user would.

Every case asserts the exit code; for an error, that stderr's last line is one line naming the file or
the key and the problem (and no traceback anywhere); and what was or was not written. A case that
runs longer than `HANG_S` fails as a hang. The classes (CLASSES) follow issue 25's list: hangs,
images that explode (decompression bombs), values nobody checked, misleading messages, run
folders, values accepted and wrong later, counts that lie, the skip policy, and the plain mistakes
(missing files, malformed configs) that must stay clear errors.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
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


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    from datagen.config import load_config
    from datagen.pipeline import generate
    from orbit4d.demo import write_inputs
    from orbit4d.synthetic import make_scene

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("malformed_methods")
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
    yield w
    torch.set_num_threads(before)


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

NEMO_SPLITS_INC = [
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
]

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

CASES = NEMO_TRAIN + NEMO_EVAL + NEMO_POSE + NEMO_SPLITS_INC + POSE_GENERATE + POSE_TRAIN + ORBIT + DATA


def _run(argv, capsys) -> tuple[int, str, str]:
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


def test_the_table_is_big_and_every_class_is_tested():
    assert len(CASES) >= 100, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.cls for c in CASES} == set(CLASSES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_method_input(case, world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    argv = case.build(world, tmp_path)
    capsys.readouterr()
    code, out, err = _run(argv, capsys)
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


def test_debug_shows_the_traceback(world, tmp_path):
    import nemo

    with pytest.raises(nemo.NemoError, match="'threads' must be ≥ 1"):
        cli_main(["--debug", *_setv(world, tmp_path, "threads=0")])


def test_counts_by_class():
    """The table's size per class (the report quotes it)."""
    counts = {c: sum(case.cls == c for case in CASES) for c in CLASSES}
    assert sum(counts.values()) == len(CASES) and all(counts.values()), counts


def test_meshes_override_merges_within_one_source_type():
    from nemo.config import DEFAULTS, merge

    assert merge(DEFAULTS, {"meshes": {"count": 5}})["meshes"] == {"type": "procedural", "count": 5}
    off = merge(merge(DEFAULTS, {"meshes": {"type": "off"}}), {"meshes": {"root": "/cad"}})
    assert off["meshes"] == {"type": "off", "root": "/cad"}  # `count` of the procedural default is gone
    assert math.isfinite(1.0)
