"""A training run's folder: resolved config, manifest, JSON-lines log, safetensors checkpoints,
metrics, curves and an HTML report. Shared shape for every trainer (nemo, the 2D baseline, pose):

    run/
      config.yaml            the resolved config (every key, defaults filled in)
      manifest.json          kind, status, versions, step reached, checkpoint names
      log.jsonl              one JSON object per logged step ({"step": …, "loss": …, "lr": …})
      checkpoints/step_00000200.safetensors   tensors + JSON metadata (the step, the config)
      metrics.json, report.html, loss.png     written by evaluation / at the end of training

Every file is written atomically; a killed run resumes from its last checkpoint (`latest_checkpoint`)
and `truncate_log` drops log lines past it so nothing is duplicated.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import yaml

from aware3d_utils import atomic_save, atomic_write_text

from .errors import NemoError

__all__ = ["RunFolder", "line_plot_png"]

_CKPT_PREFIX, _CKPT_SUFFIX = "step_", ".safetensors"


class RunFolder:
    """The run folder at `path` (created on first write)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def exists(self) -> bool:
        return self.config_path.is_file()

    @contextlib.contextmanager
    def lock(self, what: str = "training run"):
        """The folder's lock (datagen's `FolderLock`): `with run.lock(): ...` refuses a second live
        process writing the same run folder, and takes over the lock of a killed one. A folder the
        lock created and nothing else filled (the run failed at once) is removed again."""
        from datagen.lock import FolderLock

        created = not self.path.exists()
        try:
            with FolderLock(self.path, what=what):
                yield self
        finally:
            if created and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()

    def refuse_inputs(self, inputs) -> None:
        """A NemoError when the run folder is one of the run's input folders or holds records shards
        (a dataset): a run writes config.yaml, logs and checkpoints there and would mix them in."""
        here = os.path.realpath(self.path)
        for item in inputs:
            if isinstance(item, (str, os.PathLike)) and os.path.realpath(item) == here:
                raise NemoError(f"--out is also an input ({item}); give the run its own folder", self.path)
        if self.path.is_dir() and any(self.path.glob("records-*")):
            raise NemoError("--out holds records shards (a dataset); give the run its own folder", self.path)

    def start_fresh(self) -> None:
        """Before a run starts at step 0 in a folder without checkpoints: drop the log lines and the
        manifest a run killed before its first checkpoint left, so no step is logged twice."""
        self.log_path.unlink(missing_ok=True)
        (self.path / "manifest.json").unlink(missing_ok=True)

    # ------------------------------------------------------------------ config, manifest, json
    def write_config(self, config: Mapping) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(_plain(config), sort_keys=False))

    def read_config(self) -> dict:
        if not self.config_path.is_file():
            raise NemoError("not a run folder (config.yaml is missing)", self.path)
        from .config import read_yaml

        try:
            data = read_yaml(self.config_path.read_text())
        except (yaml.YAMLError, ValueError) as exc:
            raise NemoError(f"config.yaml is not valid YAML: {exc}", self.config_path) from exc
        if not isinstance(data, dict):
            raise NemoError("config.yaml must hold a mapping", self.config_path)
        return data

    def write_json(self, name: str, data) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / name
        atomic_write_text(path, json.dumps(_plain(data), indent=2, allow_nan=False) + "\n")
        return path

    def read_json(self, name: str):
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise NemoError(f"{name} is missing", self.path) from None
        except json.JSONDecodeError as exc:
            raise NemoError(f"not valid JSON: {exc}", path) from exc

    def update_manifest(self, **fields) -> dict:
        """Merge fields into manifest.json (created with versions and the start time on first use)."""
        path = self.path / "manifest.json"
        manifest = self.read_json("manifest.json") if path.is_file() else {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        }
        manifest.update(fields)
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.write_json("manifest.json", manifest)
        return manifest

    # ------------------------------------------------------------------ log
    def log(self, record: Mapping) -> None:
        """Append one JSON line (flushed and synced, so a kill loses at most the line being written)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_plain(record), allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read_log(self) -> list[dict]:
        """The logged records; a torn last line (a kill mid-write) is ignored."""
        if not self.log_path.is_file():
            return []
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_log(self, step: int) -> None:
        """Keep only log records with step ≤ `step` (records without a step are kept)."""
        kept = [r for r in self.read_log() if r.get("step", -1) <= step]
        atomic_write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in kept))

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every complete checkpoint, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        out = []
        for p in self.checkpoint_dir.glob(f"{_CKPT_PREFIX}*{_CKPT_SUFFIX}"):
            digits = p.name[len(_CKPT_PREFIX):-len(_CKPT_SUFFIX)]
            if digits.isdigit():
                out.append((int(digits), p))
        return sorted(out)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def save_checkpoint(self, step: int, tensors: Mapping[str, torch.Tensor], meta: Mapping | None = None,
                        keep: int = 2) -> Path:
        """Write checkpoints/step_<step>.safetensors (tensors + JSON metadata), keep the newest `keep`."""
        from safetensors.torch import save_file

        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"{_CKPT_PREFIX}{int(step):08d}{_CKPT_SUFFIX}"
        flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        metadata = {"step": str(int(step)), "meta": json.dumps(_plain(dict(meta or {})))}
        atomic_save(path, lambda tmp: save_file(flat, tmp, metadata=metadata))
        for _, old in self.checkpoints()[:-max(1, keep)]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, meta) of a checkpoint (the latest by default)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        if path is None:
            latest = self.latest_checkpoint()
            if latest is None:
                raise NemoError("the run has no checkpoint", self.checkpoint_dir)
            path = latest[1]
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as fh:
                metadata = fh.metadata() or {}
        except (SafetensorError, OSError) as exc:
            raise NemoError(f"cannot read the checkpoint: {exc}", path) from exc
        meta = json.loads(metadata.get("meta", "{}"))
        meta["step"] = int(metadata.get("step", meta.get("step", 0)))
        return tensors, meta


def _plain(value):
    """Config / JSON data as plain Python (tuples to lists, tensors and numpy scalars to numbers, NaN to None)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def line_plot_png(path: str | os.PathLike, series: Mapping[str, Sequence[tuple[float, float]]], title: str = "",
                  size: tuple[int, int] = (640, 360)) -> Path:
    """A simple line chart of named (x, y) series as a PNG (PIL only; no plotting library needed)."""
    from PIL import Image, ImageDraw

    W, H = size
    left, right, top, bottom = 60, 20, 30, 40
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    points = [(float(x), float(y)) for s in series.values() for x, y in s if math.isfinite(float(y))]
    draw.text((left, 8), title, fill="black")
    if points:
        x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
        y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

        def xy(x, y):
            return (left + (x - x0) / (x1 - x0) * (W - left - right),
                    H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom))

        draw.rectangle([left, top, W - right, H - bottom], outline="black")
        for k in range(5):
            yv = y0 + (y1 - y0) * k / 4
            _, yy = xy(x0, yv)
            draw.line([left - 4, yy, left, yy], fill="black")
            draw.text((4, yy - 6), f"{yv:.3g}", fill="black")
        draw.text((left, H - bottom + 6), f"{x0:g}", fill="black")
        draw.text((W - right - 40, H - bottom + 6), f"{x1:g}", fill="black")
        colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
        for i, (name, s) in enumerate(series.items()):
            pts = [xy(float(x), float(y)) for x, y in s if math.isfinite(float(y))]
            colour = colours[i % len(colours)]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            elif pts:
                draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
            draw.text((W - right - 150, top + 4 + 14 * i), name, fill=colour)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))
    return path
