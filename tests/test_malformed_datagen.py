"""Malformed input to `aware3d datagen`, table-driven: configs, asset folders, background images,
output folders and the command line. A user's mistake is one line on stderr naming the file (or
the key) and the problem, exit code 2 and no traceback; a bad item inside a batch (one broken
mesh, one unreadable background) is a counted skip, not an abort."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from aware3d.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
TINY = {"seed": 0, "image_size": 32, "samples_per_category": 1, "occlusion": ["none"],
        "assets": [{"type": "procedural", "categories": ["car"], "count": 1}]}


def _write_config(tmp: Path, text: str | dict, name: str = "cfg.yaml") -> Path:
    path = tmp / name
    path.write_text(text if isinstance(text, str) else yaml.safe_dump(text))
    return path


def _tiny(**over) -> dict:
    return {**TINY, **over}


def _run(tmp: Path, config, *extra: str, out: str = "out") -> list[str]:
    cfg = _write_config(tmp, config) if not isinstance(config, Path) else config
    return ["datagen", "--config", str(cfg), "--out", str(tmp / out), "--no-progress", "--no-preview", *extra]


def _off_folder(tmp: Path, content: bytes | None) -> Path:
    root = tmp / "cad"
    (root / "car").mkdir(parents=True)
    if content is not None:
        (root / "car" / "01.off").write_bytes(content)
    return root


def _images(tmp: Path, good: int, bad: int) -> Path:
    folder = tmp / "backgrounds"
    folder.mkdir()
    for i in range(good):
        cv2.imwrite(str(folder / f"good{i}.png"), np.full((40, 50, 3), 60 * i, np.uint8))
    for i in range(bad):
        (folder / f"bad{i}.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return folder


def _with_backgrounds(folder: Path) -> dict:
    return _tiny(samples_per_category=4, randomization={"background": {"noise": 0, "gradient": 0, "solid": 0,
                                                                        "image": 1}, "background_images": str(folder)})


def _with_backgrounds_list(folders: list) -> dict:
    return dict(_with_backgrounds(Path()), randomization={**_with_backgrounds(Path())["randomization"],
                                                          "background_images": [str(f) for f in folders]})


def _part_colors(colors: dict) -> dict:
    return _tiny(assets=[{"type": "procedural", "categories": ["car"], "count": 1, "part_colors": colors}])


def _lock(tmp: Path, pid: int) -> None:
    (tmp / "out").mkdir(exist_ok=True)
    (tmp / "out" / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


# (case id, build(tmp) -> argv, substrings the one-line error holds)
ERRORS = [
    ("config-missing", lambda t: _run(t, t / "nope.yaml"), ["nope.yaml", "config file not found"]),
    ("samples-unbounded", lambda t: _run(t, _tiny(samples_per_category=10**12)),  # the plan lists every sample
     ["cfg.yaml", "samples_per_category", "<= 1e+06"]),
    ("procedural-count-unbounded",
     lambda t: _run(t, _tiny(assets=[{"type": "procedural", "categories": ["car"], "count": 10**8}])),
     ["cfg.yaml", "assets[0]", "'count' must be ≤ 10000"]),
    ("config-is-a-folder", lambda t: _run(t, t), ["config file not found"]),
    ("config-not-yaml", lambda t: _run(t, "seed: [1, 2\nmode: x\n"), ["cfg.yaml", "not valid YAML", "line"]),
    ("config-duplicate-key", lambda t: _run(t, "seed: 1\nimage_size: 32\nseed: 2\n"),
     ["cfg.yaml", "duplicate key 'seed'", "line 3"]),
    ("config-nested-duplicate-key", lambda t: _run(t, "camera:\n  fov: 40\n  fov: 50\n"),
     ["cfg.yaml", "duplicate key 'fov'", "line 3"]),
    ("config-not-a-mapping", lambda t: _run(t, "- seed\n- 1\n"), ["cfg.yaml", "must hold a mapping"]),
    ("config-not-utf8", lambda t: _run(t, _binary_config(t)), ["bin.yaml", "cannot be read"]),
    ("config-unknown-key", lambda t: _run(t, {"sampler": {"elevation_sd": 3}}), ["cfg.yaml", "sampler.elevation_sd"]),
    ("config-string-number", lambda t: _run(t, {"samples_per_category": "ten"}),
     ["samples_per_category", "must be a number"]),
    ("config-yaml12-float", lambda t: _run(t, "camera:\n  fov: 1.0e30\n"), ["camera.fov", "must be <= 170, got 1e+30"]),
    ("config-bad-preset", lambda t: _run(t, {"sampler": {"preset": 7}}), ["sampler.preset", "presets 1-5"]),
    ("config-truncation-range", lambda t: _run(t, {"camera": {"truncation": 1.5}}), ["camera.truncation"]),
    ("offsets-unknown-asset", lambda t: _run(t, _tiny(sampler={"offsets": {"procedural:car/0099": {"azimuth": 5}}})),
     ["sampler.offsets.procedural:car/0099", "no asset", "procedural:car/0000"]),
    ("per-category-unknown", lambda t: _run(t, _tiny(sampler={"per_category": {"carr": {"preset": 3}}})),
     ["sampler.per_category.carr", "no assets of this category"]),
    ("procedural-unknown-category", lambda t: _run(t, _tiny(assets=[{"type": "procedural", "categories": ["cat"]}])),
     ["assets[0]", "cat"]),
    ("off-root-missing", lambda t: _run(t, _tiny(assets=[{"type": "off", "root": str(t / "no_cad")}])),
     ["assets[0]", "no_cad"]),
    ("off-root-empty", lambda t: _run(t, _tiny(assets=[{"type": "off", "root": str(_off_folder(t, None))}])),
     ["assets[0]", "cad", "no <category>/NN.off CAD folders found"]),
    ("shapenet-root-is-a-file", lambda t: _run(t, _tiny(assets=[{"type": "shapenet", "root": str(_file(t))}])),
     ["assets[0]", "a_file.txt"]),
    ("backgrounds-missing", lambda t: _run(t, _with_backgrounds(t / "no_bg")),
     ["randomization.background_images", "no_bg", "no such folder"]),
    ("backgrounds-empty", lambda t: _run(t, _with_backgrounds(_images(t, 0, 0))),
     ["randomization.background_images", "holds no images"]),
    ("backgrounds-all-unreadable", lambda t: _run(t, _with_backgrounds(_images(t, 0, 2))),
     ["backgrounds", "none of its 2 background images can be read"]),
    ("out-is-a-file", lambda t: (_file(t), _run(t, TINY, out="a_file.txt"))[1], ["a_file.txt", "names a file"]),
    ("out-read-only", lambda t: ["datagen", "--config", str(_write_config(t, TINY)), "--out", "/sys/aware3d-test/out",
                                 "--no-progress"], ["/sys/aware3d-test"]),
    ("out-other-config", lambda t: _second_config(t), ["different config", "write to a new --out folder"]),
    ("out-corrupt-manifest", lambda t: _corrupt_manifest(t), ["manifest.json", "unreadable manifest"]),
    ("out-locked-by-live-run", lambda t: (_lock(t, os.getppid()), _run(t, TINY))[1],
     ["being written by another datagen run", f"pid {os.getppid()}", ".lock"]),
    ("set-without-equals", lambda t: _run(t, TINY, "--set", "seed"), ["--set expects key=value"]),
    ("set-unknown-key", lambda t: _run(t, TINY, "--set", "camera.zoom=2"), ["camera.zoom", "unknown key"]),
    ("shard-malformed", lambda t: _run(t, TINY, "--shard", "2/2"), ["--shard", "0 <= k < n"]),
    ("controlnet-model-folder-missing",
     lambda t: _run(t, _tiny(mode="controlnet", controlnet={"model": str(t / "no_model"), "pipeline": "sd15"})),
     ["controlnet.model", "no_model", "no such folder"]),
    ("preview-missing-folder", lambda t: ["datagen", "preview", "--in", str(t / "nothing")], ["nothing"]),
    ("filter-folder-without-records", lambda t: ["datagen", "filter", "--in", str(t), "--no-progress"],
     ["holds no record shards"]),
    ("no-out", lambda t: ["datagen", "--config", str(_write_config(t, TINY))], ["--out is required"]),
    # issue 25, part 1: the keys added since the last pass
    ("backgrounds-folder-given-twice",  # its images would be drawn twice as often
     lambda t: _run(t, _with_backgrounds_list([_images(t, 1, 0)] * 2)), ["background_images", "given twice"]),
    ("backgrounds-list-holds-a-file",
     lambda t: _run(t, _with_backgrounds_list([_images(t, 1, 0) / "good0.png"])),
     ["randomization.background_images", "good0.png", "is a file, not a folder"]),
    ("backgrounds-list-all-unreadable", lambda t: _run(t, _with_backgrounds_list([_images(t, 0, 1)])),
     ["backgrounds: none of its 1 background images", "randomization.background_images"]),
    ("part-colors-unknown-part", lambda t: _run(t, _part_colors({"headlgiht": [[0.3] * 3, [0.9] * 3]})),
     ["assets[0]: asset source (procedural): key 'part_colors.headlgiht'", "no asset", "headlight"]),
    ("part-colors-part-of-another-category", lambda t: _run(t, _part_colors({"wing": [[0.3] * 3, [0.9] * 3]})),
     ["'part_colors.wing'", "no asset of the source (car"]),
    ("part-colors-boolean-channel", lambda t: _run(t, _part_colors({"headlight": [[True, 0, 0], [1, 1, 1]]})),
     ["assets[0]: asset source (procedural): key 'part_colors.headlight' must be"]),  # the prefix once
    ("part-colors-name-a-number", lambda t: _run(t, _part_colors({5: [[0.3] * 3, [0.9] * 3]})),
     ["'part_colors'", "part names are strings"]),
    ("shadow-darkness-without-contact-shadow", lambda t: _run(t, _tiny(randomization={"shadow_darkness": [0.1, 0.2]})),
     ["randomization.shadow_darkness", "only read with randomization.contact_shadow > 0"]),
    ("sampler-distance-range-without-jitter",
     lambda t: _run(t, _tiny(sampler={"distance_jitter": False, "distance_range": [-0.1, 0.1]})),
     ["sampler.distance_range", "only read with sampler.distance_jitter true"]),
    ("sampler-polar-mean-with-uniform-sphere",
     lambda t: _run(t, _tiny(sampler={"strategy": "uniform_sphere", "polar_mean": 45})),
     ["sampler.polar_mean", "only read by strategy dst"]),
    ("sampler-elevation-range-with-dst", lambda t: _run(t, _tiny(sampler={"elevation_range": [0, 10]})),
     ["sampler.elevation_range", "only read by strategy uniform_sphere"]),
    ("sampler-polar-sd-with-polar-uniform", lambda t: _run(t, _tiny(sampler={"polar": "uniform", "polar_sd": 10})),
     ["sampler.polar_sd", "only read with polar normal"]),
    ("sampler-per-category-polar-range-with-uniform-sphere",
     lambda t: _run(t, _tiny(sampler={"per_category": {"car": {"strategy": "uniform_sphere",
                                                               "polar_range": [0, 90]}}})),
     ["sampler.per_category.car.polar_range", "only read by strategy dst"]),
]


def _binary_config(tmp: Path) -> Path:
    path = tmp / "bin.yaml"
    path.write_bytes(b"seed: \xff\xfe\x00\x81\n")
    return path


def _file(tmp: Path) -> Path:
    path = tmp / "a_file.txt"
    path.write_text("not a folder")
    return path


def _second_config(tmp: Path) -> list[str]:
    assert cli_main(_run(tmp, TINY)) == 0
    return _run(tmp, _tiny(seed=1))


def _corrupt_manifest(tmp: Path) -> list[str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "manifest.json").write_text("{not json")
    return _run(tmp, TINY)


@pytest.mark.parametrize("case, build, expected", ERRORS, ids=[c[0] for c in ERRORS])
def test_a_users_mistake_is_one_line_naming_the_problem(case, build, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = build(tmp_path)
    capsys.readouterr()
    assert cli_main(argv) == 2, case
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1 and lines[0].startswith("aware3d datagen: error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], (case, lines[0])


def test_argument_errors_exit_2_without_traceback(tmp_path, capsys):
    for argv in (["datagen", "--workers", "0"], ["datagen", "preview", "--in", str(tmp_path), "--max-images", "-1"]):
        with pytest.raises(SystemExit) as exc:
            cli_main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "must be >= 1" in err and "Traceback" not in err


def test_full_disk_names_the_output_folder(tmp_path, capsys, monkeypatch):
    """ENOSPC carries no file name: the message names the run's output folder."""
    import datagen.writer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datagen.writer, "atomic_write_text", full)
    assert cli_main(_run(tmp_path, TINY)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"aware3d datagen: error: [Errno 28] No space left on device (writing to {tmp_path / 'out'})"


def test_debug_shows_the_traceback(tmp_path):
    from datagen.config import ConfigError

    with pytest.raises(ConfigError, match="config file not found"):
        cli_main(["--debug", *_run(tmp_path, tmp_path / "nope.yaml")])


# (case id, build(tmp) -> config, check(manifest))
SKIPS = [
    ("corrupt-off-mesh", lambda t: _tiny(assets=[{"type": "off", "root": str(_off_folder(t, b"OFF\n3 1 0\n0 0"))}]),
     lambda m: m["skipped"].get("broken_asset") == 1 and m["images"] == 0),
    ("one-unreadable-background", lambda t: _with_backgrounds(_images(t, 2, 1)),
     lambda m: m["images"] == 4 and any(k.startswith("background:") and k.endswith("bad0.jpg")
                                        for k in m["broken_assets"])),
]


@pytest.mark.parametrize("case, build, check", SKIPS, ids=[c[0] for c in SKIPS])
def test_a_bad_item_in_a_batch_is_a_counted_skip(case, build, check, tmp_path, capsys):
    assert cli_main(_run(tmp_path, build(tmp_path))) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and check(manifest), manifest
    out = capsys.readouterr().out
    if manifest["images"] == 0:  # nothing kept: said loudly, not "0 images (complete)" alone
        assert "WARNING: no image was kept" in out


@pytest.mark.parametrize("reaped", [True, False], ids=["dead", "zombie"])
def test_a_stale_lock_of_a_dead_run_is_taken_over(tmp_path, reaped):
    dead = subprocess.Popen(["true"])
    if reaped:
        dead.wait()
    else:  # killed but not yet reaped by its parent: a zombie holds its pid
        while Path(f"/proc/{dead.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            pass
    _lock(tmp_path, dead.pid)
    assert cli_main(_run(tmp_path, TINY)) == 0
    assert not (tmp_path / "out" / ".lock").exists()
    dead.wait()


def test_the_installed_command_prints_no_traceback(tmp_path):
    """The real process: `python -m aware3d datagen` on a duplicate-key config."""
    cfg = _write_config(tmp_path, "seed: 1\nseed: 2\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "aware3d", "datagen", "--config", str(cfg), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"aware3d datagen: error: {cfg}: not valid YAML: "
                                                    "duplicate key 'seed' (line 2)")


def test_a_sampler_key_read_by_a_per_category_strategy_is_kept(tmp_path, capsys):
    """The global elevation_range serves a category whose per_category block picks uniform_sphere: no error."""
    cfg = _tiny(sampler={"elevation_range": [0, 25], "per_category": {"car": {"strategy": "uniform_sphere"}}})
    assert cli_main(_run(tmp_path, cfg)) == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["images"] == 1
