"""Orchestration: run the chunks of a plan (in-process, in worker processes or as Ray tasks),
hold the folder's lock, keep the manifest, write the preview.

The plan (`datagen.plan`) is a pure function of the config and a chunk's record shard holds its
samples in plan order, whoever ran it; every random draw comes from (seed, sample id), so the
plain loop, worker processes, Ray tasks, shards and resumed runs all write the same bytes.
A worker (`datagen.worker`) turns one chunk into files; `datagen.compose` holds one sample's steps.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path

from aware3d_utils import torch_threads
from aware3d_utils.optional import lazy_module

from .config import DatagenConfig, load_config
from .lock import FolderLock
from .plan import Plan, make_plan, parse_shard
from .worker import Worker
from .writer import DatasetFolder

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["generate", "run_chunk", "load_sample_mesh", "summary_line"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- workers
_WORKERS: dict[tuple[str, str], Worker] = {}


def _worker(config: DatagenConfig | Mapping, root: str | os.PathLike) -> Worker:
    cfg = config if isinstance(config, DatagenConfig) else load_config(config, defaults=False)
    key = (cfg.hash, os.path.abspath(root))
    if key not in _WORKERS:
        _WORKERS.clear()  # one run per process at a time
        _WORKERS[key] = Worker(cfg, root)
    return _WORKERS[key]


def run_chunk(config: DatagenConfig | Mapping, root: str | os.PathLike, chunk: int,
              on_sample: Callable[[int], None] | None = None) -> dict:
    """Produce one chunk of the dataset in `root` (resuming it if it was started); its summary."""
    return _worker(config, root).run_chunk(chunk, on_sample)


def load_sample_mesh(config: DatagenConfig | Mapping, asset_key: str):
    """The mesh (in the object frame the records refer to) of the asset `asset_key` of a config's
    plan (a record's `objects[0].extra["asset"]`); None when it is broken."""
    cfg = config if isinstance(config, DatagenConfig) else load_config(config)
    plan = make_plan(cfg)
    for pa in plan.assets:
        if pa.key == asset_key:
            return plan.sources[pa.source_index].load(pa.asset)
    raise KeyError(f"asset {asset_key!r} is not in the plan")


def _worker_environment() -> None:
    """A worker process's llvmpipe and OpenMP run one thread (set before any GL context is made)."""
    os.environ.setdefault("LP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@contextmanager
def _in_process_threads():
    """One torch / OpenCV thread inside (every path renders so), the caller's counts restored after.

    Two torch processes with two threads each on two cores ran ~30x slower than with one."""
    before_cv = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with torch_threads(1):
            yield
    finally:
        cv2.setNumThreads(before_cv)


def _worker_chunk(config_data: dict, root: str, chunk: int) -> dict:
    """One chunk in a worker process (a process pool's or ray's): one thread of everything."""
    _worker_environment()
    with _in_process_threads():
        return run_chunk(config_data, root, chunk)


# ----------------------------------------------------------------------------------- entry point
def generate(config: DatagenConfig | Mapping | str | os.PathLike, out: str | os.PathLike, *,
             shard: tuple[int, int] | str | None = None, workers: int | None = None, ray: bool = False,
             ray_address: str | None = None, progress: bool = True, preview: bool = True) -> dict:
    """Generate (or resume) the dataset a config describes in folder `out`; returns the manifest.

    shard: (k, n) or "k/n": only the chunks c with c % n == k. workers: processes on this machine
    (default: config `workers`); ray: run the chunks as Ray tasks (on `ray_address`, or a local
    instance started here and stopped afterwards; an already initialised Ray is used as is).
    preview: write `out/preview.html` once the dataset is complete.
    Raises ConfigError when `out` holds a run made with another config, FolderLockedError (an
    OSError) while another live run writes there (see datagen.lock), NotADirectoryError when
    `out` is a file.
    """
    cfg = config if isinstance(config, DatagenConfig) else load_config(config)
    shard = parse_shard(shard) if isinstance(shard, str) or shard is None else parse_shard(f"{shard[0]}/{shard[1]}")
    plan = make_plan(cfg)
    if Path(out).exists() and not Path(out).is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "--out names a file, not a dataset folder", str(out))
    with FolderLock(out, shard):
        manifest = _generate_locked(cfg, plan, DatasetFolder(out), shard, workers, ray, ray_address, progress)
    if manifest["complete"] and preview:
        from .preview import write_preview

        write_preview(out)
    if manifest["complete"] and manifest["images"] == 0 and manifest["planned_images"] > 0:
        log.warning("%s: no image was kept, every sample was skipped (%s)", out,
                    ", ".join(f"{k}: {v}" for k, v in manifest["skipped"].items()))
    return manifest


def _generate_locked(cfg: DatagenConfig, plan: Plan, folder: DatasetFolder, shard, workers, ray, ray_address,
                     progress) -> dict:
    folder.prepare(cfg, plan.info)
    chunks = plan.chunks_of_shard(shard)
    for c in chunks:  # a chunk finished just before a kill may still hold its per-sample files
        if folder.chunk_done(c) and folder.partial_dir(c).exists():
            shutil.rmtree(folder.partial_dir(c), ignore_errors=True)
    todo = [c for c in chunks if not folder.chunk_done(c)]
    n_workers = int(workers if workers is not None else cfg.workers)
    total = sum(len(plan.chunk(c)) for c in todo)
    bar = _progress(total, progress, f"datagen {folder.root.name}")
    refresh = _ManifestRefresher(folder, cfg, plan.info)
    try:
        if not todo:
            pass
        elif ray:
            _run_ray(cfg, folder, plan, todo, ray_address, n_workers, bar, refresh)
        elif n_workers > 1 and len(todo) > 1:
            _run_pool(cfg, folder, plan, todo, n_workers, bar, refresh)
        else:
            with _in_process_threads():
                worker = Worker(cfg, folder.root, plan)
                for c in todo:
                    worker.run_chunk(c, bar.update)
                    refresh()
    finally:
        bar.close()
    manifest = folder.write_manifest(cfg, plan.info, running=False)
    if manifest["complete"]:
        shutil.rmtree(folder.root / ".partial", ignore_errors=True)
    return manifest


def summary_line(out: str | os.PathLike, manifest: Mapping) -> str:
    """One line about a run: images written, whether it is complete, the skips by reason."""
    skipped = ", ".join(f"{k}: {v}" for k, v in manifest["skipped"].items()) or "none"
    state = "complete" if manifest["complete"] else f"{manifest['chunks_done']}/{manifest['chunks']} chunks"
    line = f"{out}: {manifest['images']} images ({state}); skipped: {skipped}"
    if manifest["images"] == 0 and manifest["samples_done"] > 0:
        line += "\nWARNING: no image was kept: every sample was skipped (reasons above)"
    return line


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="sample", dynamic_ncols=True)


class _ManifestRefresher:
    """Rewrites manifest.json while a run goes on, at most every `interval` seconds (it reads every
    chunk summary, so doing it per chunk would cost O(chunks²) on long runs)."""

    def __init__(self, folder: DatasetFolder, cfg: DatagenConfig, info: dict, interval: float = 30.0):
        import time

        self.folder, self.cfg, self.info, self.interval = folder, cfg, info, interval
        self._clock = time.monotonic
        self._last = self._clock()

    def __call__(self) -> None:
        if self._clock() - self._last >= self.interval:
            self.folder.write_manifest(self.cfg, self.info)
            self._last = self._clock()


def _run_pool(cfg, folder, plan, todo, n_workers, bar, refresh) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold a GL context
    with ProcessPoolExecutor(max_workers=min(n_workers, len(todo)), mp_context=ctx) as pool:
        pending = {pool.submit(_worker_chunk, cfg.data, str(folder.root), c): c for c in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                c = pending.pop(fut)
                fut.result()
                bar.update(len(plan.chunk(c)))
            refresh()


def _run_ray(cfg, folder, plan, todo, address, n_workers, bar, refresh) -> None:
    from aware3d_utils import require

    ray = require("ray")
    started = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": max(1, n_workers), "include_dashboard": False}
        ray.init(log_to_driver=False, **kwargs)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(_worker_chunk)
        refs = {task.remote(cfg.data, str(folder.root), c): c for c in todo}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                c = refs.pop(ref)
                ray.get(ref)
                bar.update(len(plan.chunk(c)))
            refresh()
    finally:
        if started:
            ray.shutdown()
