"""datagen, randomised-render path: samples per second at 256² and 512², writing included.

Rows per image size (same samples, same machine, same run):
- render only: geom3d.render_gl on the samples' viewpoints in one process, nothing else (the
  baseline: the cost of the pixels themselves);
- naive loop: the same samples through the pipeline's code one by one with synchronous PNG
  writes (no writer thread), in one process;
- datagen, 1 process: `generate(..., workers=1)` (in-process, PNG encoding on a writer thread);
- datagen, 2 processes, steady: the pipeline's worker function (`_worker_chunk`) on a pool of two
  warmed-up processes (one per core; 1 torch / OpenCV / llvmpipe thread each);
- datagen, 2 processes, incl. start-up: `generate(..., workers=2)` as the CLI runs it, wall time
  including spawning the workers (their imports and GL set-up: seconds, amortised on real runs).
All in-process rows run with one torch / OpenCV thread, as the pipeline's workers do.
Goal: at least 20 samples/s at 256² on 2 cores.

The last column is the CPU time of this process per sample over the same interval (all its
threads: Python, llvmpipe's, the writer's), which other jobs on the machine barely change: on a
machine with no idle core the rate ratio follows the CPU ratio, whatever overlaps. The
two-process rows run in child processes, whose CPU is not counted there.

`--thread-cpu` prints instead CPU time per sample of each thread (render only; the in-process
datagen's main thread and its writer thread, which composes, encodes and writes), in interleaved
rounds: on a machine whose cores other jobs share, wall-clock ratios mean little, and with two
cores the longer of the two threads bounds one process's rate.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import parse_args, table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datagen.config import load_config  # noqa: E402
from datagen.pipeline import _in_process_threads, _worker_chunk, _worker_environment, generate  # noqa: E402
from datagen.worker import Worker  # noqa: E402
from datagen.writer import DatasetFolder  # noqa: E402
from geom3d.gl import render_gl  # noqa: E402

CATEGORIES = ["car", "chair", "aeroplane", "bus", "sofa", "mug"]


def _config(size: int, per_category: int):
    return load_config({
        "seed": 0, "image_size": size, "samples_per_category": per_category, "occlusion": ["none"],
        "assets": [{"type": "procedural", "categories": CATEGORIES, "count": 2}],
        "writer": {"chunk_size": 32},
    })


def _render_only(cfg, root: Path) -> float:
    """Render every sample's view with render_gl (as the pipeline draws them), nothing more."""
    w = Worker(cfg, root)
    jobs = []
    for s in w.plan.samples:
        loaded = w.load(s.asset)
        lk = w.look(s)
        jobs.append((loaded.plain if lk.appearance != "original" else loaded.mesh, w.viewpoint(s, loaded, lk), lk))
    from datagen.render import viewpoints_to_cameras

    start, cpu = time.perf_counter(), time.process_time()
    for mesh, vp, lk in jobs:
        render_gl(mesh, viewpoints_to_cameras([vp], cfg.image_size), outputs=("rgb", "depth", "mask"),
                  ambient=lk.lights.ambient, light_directions=lk.lights.directions, light_colors=lk.lights.colors)
    return len(jobs) / (time.perf_counter() - start), 1e3 * (time.process_time() - cpu) / len(jobs)


def _naive(cfg, root: Path) -> float:
    """The pipeline's per-sample code with PNGs encoded and written synchronously, chunk by chunk."""
    from datagen import writer as writer_mod

    w = Worker(cfg, root)
    original = writer_mod.ChunkWriter.__init__

    def synchronous(self, *args, **kwargs):
        kwargs["threads"] = 0
        original(self, *args, **kwargs)

    writer_mod.ChunkWriter.__init__ = synchronous
    try:
        DatasetFolder(root).prepare(cfg, w.plan.info)
        start, cpu = time.perf_counter(), time.process_time()
        for c in range(w.plan.n_chunks):
            w.run_chunk(c)
        n = len(w.plan.samples)
        return n / (time.perf_counter() - start), 1e3 * (time.process_time() - cpu) / n
    finally:
        writer_mod.ChunkWriter.__init__ = original


def _warm_worker(_: int) -> int:
    """Pool initialiser work: imports, thread limits and the GL context, before the clock starts."""
    import os

    _worker_environment()
    generate(_config(64, 1), Path(tempfile.mkdtemp(prefix="bench-warm-")), progress=False)
    time.sleep(0.5)  # hold this worker so that the other one takes the second warm-up task
    return os.getpid()


def _two_processes_steady(cfg, root: Path) -> float:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    w = Worker(cfg, root)
    DatasetFolder(root).prepare(cfg, w.plan.info)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pids = set(pool.map(_warm_worker, range(2)))
        assert len(pids) == 2, "both workers must be warm"
        start = time.perf_counter()
        futures = [pool.submit(_worker_chunk, cfg.data, str(root), c) for c in range(w.plan.n_chunks)]
        n = sum(f.result()["samples"] for f in futures)
        return n / (time.perf_counter() - start)


def _generate(cfg, root: Path, workers: int) -> tuple[float, float]:
    """(samples/s, CPU ms per sample of this process: nan with worker processes)."""
    start, cpu = time.perf_counter(), time.process_time()
    m = generate(cfg, root, workers=workers, progress=False, preview=False)  # the HTML preview is not generation
    assert m["complete"], m
    n = m["samples_done"]
    return n / (time.perf_counter() - start), 1e3 * (time.process_time() - cpu) / n if workers == 1 else math.nan


def _thread_cpu_round(cfg, root: Path) -> tuple[float, float, float]:
    """(render only, datagen main thread, datagen writer thread) CPU ms per sample, one round."""
    import threading

    from datagen import writer as writer_mod

    w = Worker(cfg, root / "render")
    jobs = []
    for s in w.plan.samples:
        loaded = w.load(s.asset)
        lk = w.look(s)
        jobs.append((loaded.plain if lk.appearance != "original" else loaded.mesh, w.viewpoint(s, loaded, lk), lk))
    from datagen.render import viewpoints_to_cameras

    start = time.thread_time()
    for mesh, vp, lk in jobs:
        render_gl(mesh, viewpoints_to_cameras([vp], cfg.image_size), outputs=("rgb", "depth", "mask"),
                  ambient=lk.lights.ambient, light_directions=lk.lights.directions, light_colors=lk.lights.colors)
    render = time.thread_time() - start

    writer_cpu, lock = [0.0], threading.Lock()
    original = writer_mod.ChunkWriter._make_and_write, writer_mod.ChunkWriter._write
    inside = threading.local()

    def counted(fn):
        def wrapper(self, *a):
            if getattr(inside, "on", False):
                return fn(self, *a)
            inside.on, t0 = True, time.thread_time()
            try:
                return fn(self, *a)
            finally:
                with lock:
                    writer_cpu[0] += time.thread_time() - t0
                inside.on = False
        return wrapper

    writer_mod.ChunkWriter._make_and_write = counted(original[0])
    writer_mod.ChunkWriter._write = counted(original[1])
    try:
        w = Worker(cfg, root / "datagen")
        DatasetFolder(root / "datagen").prepare(cfg, w.plan.info)
        start = time.thread_time()
        for c in range(w.plan.n_chunks):
            w.run_chunk(c)  # its writer thread is joined at the end of each chunk
        main_cpu = time.thread_time() - start
    finally:
        writer_mod.ChunkWriter._make_and_write, writer_mod.ChunkWriter._write = original
    shutil.rmtree(root, ignore_errors=True)
    n = len(jobs)
    return 1e3 * render / n, 1e3 * main_cpu / n, 1e3 * writer_cpu[0] / n


def thread_cpu_table(sizes, tmp: Path, rounds: int) -> str:
    rows = []
    for size, per_cat in sizes:
        cfg = _config(size, per_cat)
        with _in_process_threads():
            best = [min(x) for x in zip(*(_thread_cpu_round(cfg, tmp / f"t{size}-{i}") for i in range(rounds)))]
        render, main_cpu, writer_cpu = best
        rows.append([f"{size}²", per_cat * len(CATEGORIES), render, main_cpu, writer_cpu,
                     render / max(main_cpu, writer_cpu)])
    return table(["image", "samples", "render only ms", "datagen main thread ms", "writer thread ms",
                  "render only / longer thread"], rows)


def main() -> None:
    thread_cpu = "--thread-cpu" in sys.argv
    if thread_cpu:
        sys.argv.remove("--thread-cpu")
    args = parse_args(__doc__)
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        (_thread_cpu_main if thread_cpu else _run)(args)


def _thread_cpu_main(args) -> None:
    sizes = [(256, 12 if args.quick else 48), (512, 4 if args.quick else 20)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-datagen-"))
    try:
        generate(_config(64, 1), tmp / "warm", progress=False)
        print("CPU ms per sample of each thread, best of interleaved rounds\n")
        print(thread_cpu_table(sizes, tmp, 2 if args.quick else 3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args) -> None:
    sizes = [(256, 12 if args.quick else 48), (512, 6 if args.quick else 20)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-datagen-"))
    rows = []
    try:
        # warm-up: GL context, shader compilation, imports
        generate(_config(64, 1), tmp / "warm", progress=False)
        for size, per_cat in sizes:
            cfg = _config(size, per_cat)
            n = per_cat * len(CATEGORIES)
            with _in_process_threads():
                base, base_cpu = _render_only(cfg, tmp / f"r{size}")
                naive = _naive(cfg, tmp / f"n{size}")
            results = [("render only (baseline)", (base, base_cpu)),
                       ("naive loop, synchronous writes", naive),
                       ("datagen, 1 process", _generate(cfg, tmp / f"g1-{size}", 1)),
                       ("datagen, 2 processes, steady", (_two_processes_steady(cfg, tmp / f"s2-{size}"), math.nan)),
                       ("datagen, 2 processes, incl. start-up", _generate(cfg, tmp / f"g2-{size}", 2))]
            for name, (rate, cpu) in results:
                goal = "" if size != 256 or not name.startswith("datagen") else ("yes" if rate >= 20 else "no")
                rows.append([f"{size}²", name, n, rate, rate / base, goal, cpu if math.isfinite(cpu) else ""])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(["image", "path", "samples", "samples/s", "× render only", "≥ 20/s at 256²",
                 "CPU ms/sample (this process)"], rows))
    if not math.isfinite(rows[0][3]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
