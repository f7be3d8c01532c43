"""A run's folder, the same for every method: resolved config, manifest, JSON-lines log, safetensors
checkpoints, metrics, curves and an HTML report.

    run/
      config.yaml            the resolved config (every key, defaults filled in)
      manifest.json          kind, status, step, created, updated, versions, data (the inputs:
                             `MANIFEST_KEYS`), then what the method records (categories, skipped
                             samples, ...)
      log.jsonl              one JSON object per logged step ({"step": …, "loss": …, "lr": …})
      checkpoints/step_00000200.safetensors   tensors + JSON metadata (the step, the trainer's state);
                             the key layout is `methodkit.trainer`'s (`state_tensors`)
      metrics.json, report.html, loss.png     written by evaluation / at the end of training

Every file is written atomically; a killed run resumes from its last checkpoint (`latest_checkpoint`)
and `truncate_log` drops log lines past it so nothing is duplicated (`filter_log` by any rule).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import yaml

from aware3d_utils import atomic_save, atomic_write_text, plain
from aware3d_utils.lock import FolderLock

from .config import ConfigObject, read_yaml

__all__ = ["RunFolder", "RunError", "MANIFEST_KEYS", "RUN_STATUSES", "KIND_NAMES", "check_manifest"]

_CKPT_PREFIX, _CKPT_SUFFIX = "step_", ".safetensors"

#: the keys every run's manifest.json holds, and their types
MANIFEST_KEYS = {"kind": str, "status": str, "step": int, "created": str, "updated": str, "versions": dict,
                 "data": list}
#: a run's status: training ("running"), ended early by `stop_after` or a kill ("stopped"), or done
RUN_STATUSES = ("running", "stopped", "complete")


class RunError(ValueError):
    """A broken run folder or bad input to a run; the message names the file or argument. Method
    packages raise their own subclass (`nemo.NemoError`)."""

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(message if path is None else f"{path}: {message}")


def check_manifest(manifest: Mapping, where="manifest.json") -> None:
    """A RunError naming the key when `manifest` lacks one of `MANIFEST_KEYS`, holds the wrong type,
    or an unknown status."""
    for key, kind in MANIFEST_KEYS.items():
        if key not in manifest:
            raise RunError(f"the manifest has no {key!r}", where)
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise RunError(f"manifest {key!r} must be a {kind.__name__}, got {manifest[key]!r}", where)
    if manifest["status"] not in RUN_STATUSES:
        raise RunError(f"manifest 'status' must be one of {RUN_STATUSES}, got {manifest['status']!r}", where)


#: what a folder of each manifest kind holds, in the words of the errors that refuse it
KIND_NAMES = {"nemo.nemo": "a NeMo run (aware3d nemo train)",
              "nemo.baseline": "a 2D baseline run (aware3d nemo train)",
              "pose.labelfree": "a label-free pose run (aware3d pose train)",
              "nemo.incremental": "a class-incremental run (aware3d nemo incremental)",
              "nemo.incremental.task": "a task of a class-incremental run", "orbit4d": "an orbit4d run",
              "datagen": "a datagen dataset (aware3d datagen)"}


class RunFolder:
    """The run folder at `path` (created on first write).

    `error` is the exception type its checks raise (a `RunError`; a method package sets its own
    subclass, e.g. `nemo.RunFolder` raises `nemo.NemoError`). config.yaml is read with the one YAML 1.2
    reader every config goes through (`methodkit.config.read_yaml`)."""

    error: type[RunError] = RunError
    read_yaml = staticmethod(read_yaml)

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
        """The folder's lock (`aware3d_utils.lock.FolderLock`, datagen's): `with run.lock(): ...` refuses a
        second live process writing the same run folder, and takes over the lock of a killed one. A
        folder the lock created and nothing else filled (the run failed at once) is removed again."""

        created = not self.path.exists()
        try:
            with FolderLock(self.path, what=what):
                yield self
        finally:
            if created and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()

    def refuse_inputs(self, inputs) -> None:
        """An error when the run folder is one of the run's input folders or holds records shards
        (a dataset): a run writes config.yaml, logs and checkpoints there and would mix them in."""
        here = os.path.realpath(self.path)
        for item in inputs:
            if isinstance(item, (str, os.PathLike)) and os.path.realpath(item) == here:
                raise self.error(f"--out is also an input ({item}); give the run its own folder", self.path)
        if self.path.is_dir() and any(self.path.glob("records-*")):
            raise self.error("--out holds records shards (a dataset); give the run its own folder", self.path)

    def refuse_other_kind(self, kinds, what: str, given: str = "out") -> None:
        """An error when the folder holds another kind of thing than a run of `kinds` (manifest kinds): a run
        whose manifest.json names another kind, or records shards (a dataset) and no checkpoint; a folder
        without either passes (its config decides). what: the run expected ("NeMo run"); given: "out" (the
        folder to write: "holds ..., use a new --out") or "run" (the run to read: "is ...")."""
        kind = None
        try:
            kind = json.loads((self.path / "manifest.json").read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            pass
        if isinstance(kind, str) and kind not in kinds:
            found = KIND_NAMES.get(kind, f"a run of kind {kind!r}")
        elif kind is None and self.path.is_dir() and any(self.path.glob("records-*")) and not self.checkpoints():
            found = "a records folder (a dataset)"
        else:
            return
        if given == "out":
            raise self.error(f"holds {found}, not a {what}; use a new --out", self.path)
        raise self.error(f"is {found}, not a {what}", self.path)

    def start_fresh(self) -> None:
        """Before a run starts at step 0 in a folder without checkpoints: drop the log lines and the
        manifest a run killed before its first checkpoint left, so no step is logged twice."""
        self.log_path.unlink(missing_ok=True)
        (self.path / "manifest.json").unlink(missing_ok=True)

    # ------------------------------------------------------------------ config, manifest, json
    def write_config(self, config) -> None:
        """config.yaml: a config mapping or a config object (`ConfigObject`, stored as its `to_dict`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        config = config.to_dict() if isinstance(config, ConfigObject) else config
        atomic_write_text(self.config_path, yaml.safe_dump(plain(config), sort_keys=False))

    def read_config(self) -> dict:
        if not self.config_path.is_file():
            raise self.error("not a run folder (config.yaml is missing)", self.path)
        try:
            data = self.read_yaml(self.config_path.read_text())
        except (yaml.YAMLError, ValueError) as exc:
            raise self.error(f"config.yaml is not valid YAML: {exc}", self.config_path) from exc
        if not isinstance(data, dict):
            raise self.error("config.yaml must hold a mapping", self.config_path)
        return data

    def write_json(self, name: str, data) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / name
        atomic_write_text(path, json.dumps(plain(data), indent=2, allow_nan=False) + "\n")
        return path

    def read_json(self, name: str):
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise self.error(f"{name} is missing", self.path) from None
        except json.JSONDecodeError as exc:
            raise self.error(f"not valid JSON: {exc}", path) from exc

    def begin(self, kind: str, config: Mapping, data: list, **fields) -> dict:
        """A run that starts at step 0: drop what a run killed before its first checkpoint left
        (`start_fresh`), write config.yaml and a new manifest (kind, status "running", step 0, the
        input folders `data`, fields)."""
        self.start_fresh()
        self.write_config(config)
        return self.update_manifest(kind=kind, status="running", step=0, data=list(data), **fields)

    def update_manifest(self, **fields) -> dict:
        """Merge fields into manifest.json (created with versions and the start time on first use);
        `MANIFEST_KEYS` says which keys every run's manifest holds."""
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
            fh.write(json.dumps(plain(record), allow_nan=False) + "\n")
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
        self.filter_log(lambda r: r.get("step", -1) <= step)

    def filter_log(self, keep: Callable[[dict], bool]) -> None:
        """Rewrite the log with the records `keep` accepts (e.g. iNeMo drops the tasks it trains again)."""
        kept = [r for r in self.read_log() if keep(r)]
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
        metadata = {"step": str(int(step)), "meta": json.dumps(plain(dict(meta or {})))}
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
                raise self.error("the run has no checkpoint", self.checkpoint_dir)
            path = latest[1]
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as fh:
                metadata = fh.metadata() or {}
        except (SafetensorError, OSError) as exc:
            raise self.error(f"cannot read the checkpoint: {exc}", path) from exc
        meta = json.loads(metadata.get("meta", "{}"))
        meta["step"] = int(metadata.get("step", meta.get("step", 0)))
        return tensors, meta
