"""The dataset folder: sample ids, deterministic PNGs, atomic per-sample writes, chunk shards,
the manifest, and resume.

Layout of an output folder (paths in records are relative to it):

    manifest.json                 the run-folder keys every method's manifest holds (kind "datagen",
                                  status, step = samples done, created, updated, versions, data:
                                  `methodkit.MANIFEST_KEYS`), then counts, skips by reason, broken
                                  assets, config hash, completeness
    config.yaml                   the resolved config the folder was made with
    records-c000000.npz           one data3d record shard per chunk (data3d.load_records reads them)
    images/<category>/<id>.png    the image (RGBA where the background is transparent)
    masks/<category>/<id>.png     the object's full silhouette (amodal), 0/255
    masks/<category>/<id>_L2_visible.png   the visible part under occluders (occluded levels only)
    depth/, normals/, edges/      optional extras (render.save)
    chunks/c000000.json           a finished chunk's summary (the completion marker)
    .partial/c000000/<id>.json    per-sample results of a chunk in progress

Resume. Every file appears atomically (temporary file + rename). A sample's JSON in `.partial/`
is written after its images, and a chunk's shard and summary after all its samples, so a run
killed at any moment leaves whole files only; a re-run skips finished chunks and finished
samples and redoes the rest, which (every random draw coming from (seed, sample id)) gives
exactly the bytes an uninterrupted run writes (the manifest's too, but for its created and updated
times).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from aware3d_utils import atomic_write, atomic_write_text
from aware3d_utils.optional import lazy_module

from .config import ConfigError, DatagenConfig

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["sample_id", "chunk_name", "encode_png", "DatasetFolder", "ChunkWriter", "MANIFEST_KIND"]

log = logging.getLogger(__name__)

MANIFEST_KIND = "datagen"  # the manifest's kind (`methodkit.MANIFEST_KEYS`)
MANIFEST_VERSION = 2
_OLD_FORMAT = "aware3d.datagen"  # version 1 manifests said {"format": this}, "environment" for "versions"
# temporaries atomic_write leaves beside the dataset's top-level files when a run is killed mid-write
_ROOT_TEMPORARIES = (".config.yaml.*.tmp", ".manifest.json.*.tmp", ".preview.html.*.tmp")


def environment() -> dict[str, str]:
    """Versions that decide the bytes a run writes (the manifest's versions, compared on resume)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:  # the installed distribution's version (importing the aware3d package would cycle through its CLI)
        ours = version("aware3d")
    except PackageNotFoundError:
        ours = "unknown"
    return {"aware3d": ours, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def sample_id(seed: int, asset_id: str, view_index: int) -> str:
    """A stable 16-hex-digit id of a viewpoint sample: a hash of (seed, asset id, view index)."""
    text = f"{int(seed)}\x1f{asset_id}\x1f{int(view_index)}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def chunk_name(index: int) -> str:
    return f"c{int(index):06d}"


def encode_png(image: np.ndarray, compression: int = 3) -> bytes:
    """PNG bytes of an image: (H, W) uint8/uint16/bool, (H, W, 3) RGB or (H, W, 4) RGBA uint8.

    OpenCV's encoder with a fixed zlib level writes no timestamp or other varying chunk, so the
    same pixels always give the same bytes.
    """
    img = np.asarray(image)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


class DatasetFolder:
    """An output folder: its config check, chunk bookkeeping and the manifest."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(root))

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def summary_path(self, chunk: int) -> Path:
        return self.root / "chunks" / f"{chunk_name(chunk)}.json"

    def partial_dir(self, chunk: int) -> Path:
        return self.root / ".partial" / chunk_name(chunk)

    def chunk_done(self, chunk: int) -> bool:
        return self.summary_path(chunk).is_file()

    def read_manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError("", f"{self.manifest_path}: unreadable manifest ({exc})") from None

    def prepare(self, config: DatagenConfig, plan_info: dict) -> None:
        """Start or resume a run here: a folder made with another config is an error; a new one
        gets config.yaml and a first (empty) manifest. Sets plan_info["environment"] (the versions
        the run started with; a resume under other versions logs a warning) and plan_info["created"]."""
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = self.read_manifest()
        if manifest is not None:
            if manifest.get("kind") != MANIFEST_KIND and manifest.get("format") != _OLD_FORMAT:
                raise ConfigError("", f"{self.manifest_path} is not a datagen manifest; choose another --out folder")
            if manifest.get("config_hash") not in config.accepted_hashes:
                raise ConfigError("", f"{self.root} holds a run made with a different config (hash "
                                      f"{str(manifest.get('config_hash'))[:12]}, this config {config.hash[:12]}); "
                                      "resume it with its own config.yaml or write to a new --out folder")
            started = manifest.get("versions", manifest.get("environment", {}))
            changed = {k: (started.get(k), v) for k, v in environment().items() if started.get(k) != v}
            if changed:
                log.warning("%s was started with other versions (%s); resumed samples may differ in their last "
                            "bits from those written before", self.root,
                            ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
            plan_info["environment"] = started  # the manifest keeps the versions the run started with
            # and its start: a version 1 manifest has none; config.yaml is written once, when the folder starts
            plan_info["created"] = manifest.get("created") or _utc(os.path.getmtime(self.root / "config.yaml"))
            for pattern in _ROOT_TEMPORARIES:  # left by a kill during a top-level write
                for p in self.root.glob(pattern):
                    p.unlink(missing_ok=True)
            return
        plan_info["environment"] = environment()
        plan_info["created"] = _utc()
        atomic_write_text(self.root / "config.yaml",
                          f"# aware3d datagen config, hash {config.hash}\n" + config.to_yaml())
        self.write_manifest(config, plan_info)

    def chunk_summaries(self) -> dict[int, dict]:
        out = {}
        folder = self.root / "chunks"
        if folder.is_dir():
            for p in sorted(folder.glob("c*.json")):
                try:
                    out[int(p.stem[1:])] = json.loads(p.read_text())
                except (ValueError, OSError):
                    continue  # not ours, or being replaced right now
        return out

    def write_manifest(self, config: DatagenConfig, plan_info: Mapping, running: bool = True) -> dict:
        """Aggregate the finished chunks into manifest.json (atomically) and return it. Its status:
        "complete" once every chunk is done, else "running" (`running`: a process works on it) or
        "stopped" (the writing process ended first: its shard is done, or it was stopped).

        Written again by every process that finishes chunks; rewritten until the set of finished
        chunks it saw is still the set on disk, so concurrent shard processes converge. `updated`
        changes only with the content (a re-run of a finished folder rewrites the same bytes).
        """
        while True:
            summaries = self.chunk_summaries()
            manifest = _manifest(config, plan_info, summaries, running)
            try:
                before = json.loads(self.manifest_path.read_text())
            except (OSError, ValueError):
                before = {}
            if before.get("kind") == MANIFEST_KIND:
                manifest["created"] = before.get("created", manifest["created"])  # the first process's start
                if {**before, "updated": None} == {**manifest, "updated": None}:
                    manifest["updated"] = before["updated"]
            try:
                atomic_write_text(self.manifest_path, json.dumps(manifest, indent=1, sort_keys=False) + "\n")
            except FileNotFoundError:  # another process resuming here removed our temporary: write again
                continue
            if set(self.chunk_summaries()) == set(summaries):
                return manifest


def _utc(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _inputs(config: DatagenConfig) -> list[str]:
    """What a run reads, for the manifest's data: each asset source's root (its type where it has none:
    procedural, objaverse's cache), the background photographs and the records match_dataset matches."""
    found = [str(e["root"]) if e.get("root") else e["type"] for e in config.assets]
    r = config.randomization
    if r.background.get("image", 0) > 0 and r.background_images:
        images = r.background_images
        found += [str(p) for p in (images if isinstance(images, list) else [images])]
    for block in (config["sampler"], *config.sampler.per_category.values()):
        if block.get("records"):
            found.append(str(block["records"]))
    return list(dict.fromkeys(found))


def _manifest(config: DatagenConfig, plan_info: Mapping, summaries: Mapping[int, dict], running: bool) -> dict:
    written: Counter = Counter()
    by_level: Counter = Counter()
    skipped: Counter = Counter(plan_info.get("skipped", {}))
    broken: dict = dict(plan_info.get("broken_assets", {}))
    samples = 0
    for _, s in sorted(summaries.items()):
        written.update(s.get("written", {}))
        by_level.update(s.get("levels", {}))
        skipped.update(s.get("skipped", {}))
        broken.update(s.get("broken_assets", {}))
        samples += int(s.get("samples", 0))
    n_chunks = int(plan_info.get("chunks", 0))
    complete = len(summaries) == n_chunks
    return {
        "kind": MANIFEST_KIND,
        "status": "complete" if complete else "running" if running else "stopped",
        "step": samples,
        "created": str(plan_info.get("created") or _utc()),
        "updated": _utc(),
        "versions": dict(plan_info.get("environment", {})),
        "data": _inputs(config),
        "version": MANIFEST_VERSION,
        "config_hash": config.hash,
        "seed": config.seed,
        "mode": config.mode,
        "image_size": list(config.image_size),
        "occlusion": list(config.occlusion),
        "categories": list(plan_info.get("categories", [])),
        "assets": dict(plan_info.get("assets", {})),
        "planned_samples": int(plan_info.get("samples", 0)),
        "planned_images": int(plan_info.get("samples", 0)) * len(config.occlusion),
        "chunks": n_chunks,
        "chunks_done": len(summaries),
        "complete": complete,  # status == "complete" (datagen's readers use it)
        "samples_done": samples,  # = step
        "images": int(sum(written.values())),
        "images_per_category": dict(sorted(written.items())),
        "images_per_level": dict(sorted(by_level.items())),
        "skipped": dict(sorted(skipped.items())),
        "broken_assets": dict(sorted(broken.items())),
    }


class ChunkWriter:
    """Writes one chunk: per-sample files and results now, the record shard and summary at the end.

    `done` maps the sample keys already finished (from an interrupted run) to their results.
    PNG encoding and file writes (and, through `add_later`, composing the sample) run on `threads`
    background threads (OpenCV and numpy release the GIL), overlapping with the rendering of the
    next samples; at most `max_pending` samples wait.
    """

    def __init__(self, folder: DatasetFolder, chunk: int, *, compression: int = 3, fmt: str = "npz",
                 threads: int = 1, max_pending: int = 16):
        self.folder, self.chunk = folder, chunk
        self.compression, self.fmt = compression, fmt
        self.partial = folder.partial_dir(chunk)
        self.resumed = self.partial.is_dir()  # an interrupted run started this chunk
        self.partial.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, dict] = {}
        for p in self.partial.glob("*.json"):
            try:
                self.done[p.stem] = json.loads(p.read_text())
            except (ValueError, OSError):
                p.unlink(missing_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="datagen-writer") \
            if threads > 0 else None
        self._pending: list[Future] = []
        self._max_pending = max_pending

    def remove_stale_temporaries(self, keys, categories) -> None:
        """Delete the temporary files an interrupted run left for this chunk: those of its samples
        (recognised by name in the category folders) and of its shard and summary."""
        keys = set(keys)
        root = self.folder.root
        name = chunk_name(self.chunk)
        folders = [root / sub / cat for sub in ("images", "masks", "depth", "normals", "edges") for cat in categories]
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for e in entries:  # atomic_write's temporaries: ".<id>[_level...].png.<random>.tmp"
                if e.name.startswith(".") and ".tmp" in e.name and e.name[1:].split(".", 1)[0].split("_", 1)[0] in keys:
                    Path(e.path).unlink(missing_ok=True)
        for pattern in (f".records-{name}.*", f"chunks/.{name}.*"):
            for p in root.glob(pattern):
                if ".tmp" in p.name:
                    p.unlink(missing_ok=True)

    def add(self, key: str, files: Mapping[str, np.ndarray], result: dict) -> None:
        """Write the sample's files (relative path -> image array) and then its result
        ({"records": [record dicts], "skipped": {reason: count}, ...})."""
        self._submit(self._write, key, dict(files), result)

    def add_later(self, key: str, make: Callable[[], tuple[Mapping[str, np.ndarray], dict]]) -> None:
        """As `add` with the (files, result) that `make()` returns, called on the writer's thread
        (so composing a sample overlaps with rendering the next); `make` must not raise for a
        sample that is merely bad (it returns that sample's skip)."""
        self._submit(self._make_and_write, key, make)

    def _submit(self, fn, *args) -> None:
        if self._pool is None:
            fn(*args)
            return
        while len(self._pending) >= self._max_pending:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(fn, *args))

    def _make_and_write(self, key: str, make) -> None:
        files, result = make()
        self._write(key, files, result)

    def _write(self, key: str, files: Mapping[str, np.ndarray], result: dict) -> None:
        for rel, image in files.items():
            _write_bytes(self.folder.root / rel, encode_png(image, self.compression))
        text = json.dumps(result, sort_keys=True, allow_nan=False)
        atomic_write_text(self.partial / f"{key}.json", text)
        self.done[key] = json.loads(text)  # exactly what a resumed run reads back

    def flush(self) -> None:
        while self._pending:
            self._pending.pop(0).result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def finish(self, keys: list[str], extra: Mapping | None = None) -> dict:
        """Every sample in `keys` is done: write the record shard (in `keys` order) and the summary."""
        from data3d.storage import record_from_dict, save_records

        self.close()
        missing = [k for k in keys if k not in self.done]
        if missing:
            raise RuntimeError(f"chunk {chunk_name(self.chunk)}: samples {missing[:3]} were never written")
        records, written, levels, skipped, broken = [], Counter(), Counter(), Counter(), {}
        for k in keys:
            res = self.done[k]
            broken.update(res.get("broken_assets", {}))
            for d in res.get("records", []):
                records.append(record_from_dict(d, self.folder.root))
                written[d["objects"][0]["category"]] += 1
                levels[d.get("extra", {}).get("occlusion_level", "none")] += 1
            skipped.update(res.get("skipped", {}))
        shard = save_records(records, self.folder.root, shard=chunk_name(self.chunk), format=self.fmt)
        summary = {"chunk": self.chunk, "shard": shard.name, "samples": len(keys), "written": dict(written),
                   "levels": dict(levels), "skipped": dict(skipped), "broken_assets": broken, **dict(extra or {})}
        atomic_write_text(self.folder.summary_path(self.chunk), json.dumps(summary, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(self.partial, ignore_errors=True)
        return summary
