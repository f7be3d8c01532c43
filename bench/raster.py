"""Benchmark geom3d.raster: NeMo-size feature renders (forward + backward) and 640×480 depth.

1. NeMo size: a cuboid of ~1,100 vertices / 1,850 faces, an 80 × 100 feature map with 128 channels
   per vertex, B views of one mesh at random poses. One step = rasterize + interpolate a (V, 128)
   feature tensor that requires grad, loss = Σ output · target, backward (and the renderer alone:
   output.backward(target), without the loss's passes over the output). Compared with a naive
   dense baseline measured in the same run (every face against every pixel with torch
   broadcasting, chunked; gather-based interpolation), and with `interpolate`'s plain-gather variant.
2. Depth of a ~10k-face mesh at 640 × 480: `rasterize` forward against Open3D's RaycastingScene
   (scene built once, rays built once; only the cast is timed) on the same mesh and camera.
3. Per-image features under images × hypotheses (NeMo's pose search: 8 images × 36 hypotheses, a
   1,000-vertex cuboid, 128-d features (8, V, 128), a 40 × 48 map): `interpolate` reading the
   table through its view → row index, against expanding the features to (288, V, 128) first;
   forward + backward of the interpolation (fragments precomputed), time and the extra peak
   memory of one step (peak RSS of a fresh process, above its level after setup).

Prints markdown tables. Times are medians of repeated runs (wall clock); on a shared machine
ratios measured in the same run matter more than absolute numbers. `--quick` for a smoke run.
The (B, 80, 100, 128) output is 65 MB at batch 16, so glibc's default of returning large blocks to
the system (and faulting them in again on every call) weighs heavily; the allocator settings in
effect are printed (e.g. GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=<big>).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aware3d_utils  # noqa: E402
import geom3d  # noqa: E402
from aware3d.paths import shared_data_root  # noqa: E402
from geom3d.raster import interpolate, interpolate_sparse, rasterize  # noqa: E402
from geom3d.raster.inputs import prepare  # noqa: E402
from geom3d.raster.interpolation import interpolate_gather  # noqa: E402
from geom3d.raster.visibility import visible_faces_of  # noqa: E402
from geom3d.raycasting import camera_rays  # noqa: E402

RETAIN_MEMORY = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
FEATURE_SIZE = (80, 100)
CHANNELS = 128


STAT = {"value": statistics.median}  # set from --stat


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Median (or, with --stat min, best) wall time of fn() in seconds."""
    return timed_together({"fn": fn}, reps, warmup)["fn"]


def timed_together(fns: dict, reps: int, warmup: int = 1) -> dict:
    """Time several functions in interleaved rounds (so that load from other processes hits them
    alike): {name: median (or best) wall time in seconds}."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: STAT["value"](t) for name, t in times.items()}


# ---------------------------------------------------------------- the naive dense baseline
def _edge(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """2D edge function of segment a→b at points p: (..., 2) each, broadcast."""
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])


def naive_render(vertices, faces, cams, features, budget: int = 1 << 22) -> torch.Tensor:
    """Feature image (B, H, W, C) by testing every face against every pixel (chunked over pixels):
    a z-buffer from screen-space barycentrics, then perspective-correct barycentrics of the winners
    recomputed with autograd and a gather-based interpolation."""
    H, W = cams.image_size
    B, F = cams.R.shape[0], faces.shape[0]
    uv, z = cams.project(vertices, return_depth=True)  # (B, V, 2), (B, V)
    tri_uv, tri_z = uv[:, faces], z[:, faces]  # (B, F, 3, 2), (B, F, 3)
    grid = geom3d.pixel_grid((H, W)).reshape(-1, 2)
    chunk = max(1, budget // (B * F))
    best = []
    with torch.no_grad():
        a, b, c = (tri_uv[:, :, k, None, :] for k in range(3))  # (B, F, 1, 2)
        area = _edge(a[..., 0, :], b[..., 0, :], c[..., 0, :])[..., None]  # (B, F, 1)
        inv_z = 1.0 / tri_z
        for p0 in range(0, H * W, chunk):
            q = grid[p0:p0 + chunk]  # (p, 2)
            l0, l1, l2 = _edge(b, c, q) / area, _edge(c, a, q) / area, _edge(a, b, q) / area  # (B, F, p)
            inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (area != 0)
            iz = l0 * inv_z[..., 0:1] + l1 * inv_z[..., 1:2] + l2 * inv_z[..., 2:3]
            iz = torch.where(inside & (iz > 0), iz, torch.zeros_like(iz))
            value, face = iz.max(dim=1)  # nearest = largest 1/z
            best.append(torch.where(value > 0, face, torch.full_like(face, -1)))
    pix_to_face = torch.cat(best, 1)  # (B, H·W)
    covered = pix_to_face >= 0
    fid = pix_to_face.clamp_min(0)
    corners = torch.gather(tri_uv, 1, fid[..., None, None].expand(-1, -1, 3, 2))  # (B, P, 3, 2), with grad
    zs = torch.gather(tri_z, 1, fid[..., None].expand(-1, -1, 3))
    q = grid.expand(B, -1, -1)
    a, b, c = corners.unbind(2)
    area = _edge(a, b, c)
    lam = torch.stack([_edge(b, c, q), _edge(c, a, q), _edge(a, b, q)], -1) / area[..., None]
    lam = lam / zs
    bary = lam / lam.sum(-1, keepdim=True) * covered[..., None]
    corner_features = features[faces[fid]]  # (B, P, 3, C)
    return (corner_features * bary[..., None]).sum(2).reshape(B, H, W, -1)


# ---------------------------------------------------------------- 1. NeMo feature render
def nemo_setup(batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mesh = geom3d.cuboid_mesh([-0.16, -0.455, -0.125], [0.16, 0.455, 0.125], 1100)  # a car-shaped cuboid
    az = torch.rand(batch, generator=gen) * 2 * math.pi
    el = torch.rand(batch, generator=gen) * 0.8 - 0.2
    th = (torch.rand(batch, generator=gen) - 0.5) * 0.2
    # PASCAL3D+ style: distance 5, focal 1, viewport 3000 at 640 × 800 -> /8 for the feature map
    cams = geom3d.viewpoint_to_cameras(az, el, th, 5.0, 1.0, 375.0, image_size=FEATURE_SIZE)
    features = torch.randn(mesh.num_vertices, CHANNELS, generator=gen).requires_grad_(True)
    target = torch.randn(batch, *FEATURE_SIZE, CHANNELS, generator=gen)
    return mesh, cams, features, target


def nemo_step(method: str, mesh, cams, features, target, with_loss: bool = True) -> None:
    """One forward + backward. with_loss: loss = Σ output · target, then backward; without: the
    renderer alone, output.backward(target) (the same gradient, without the loss's own passes)."""
    features.grad = None
    if method == "naive dense":
        out = naive_render(mesh.vertices, mesh.faces, cams, features)
    else:
        fr = rasterize((mesh.vertices, mesh.faces), cams)
        out = (interpolate if method == "raster + embedding_bag" else interpolate_gather)(fr, features)
    if with_loss:
        (out * target).sum().backward()
    else:
        out.backward(target)


METHODS = ("naive dense", "raster + gather", "raster + embedding_bag")


def bench_nemo(batch: int, reps: int, naive_per_render: dict | None) -> list[dict]:
    """Rows of the NeMo table at one batch size. The naive baseline runs at batch ≤ 16 (its cost
    is linear in the batch: every face against every pixel of every view); larger batches are
    compared with its per-render time from batch 16, passed in `naive_per_render`."""
    mesh, cams, features, target = nemo_setup(batch)
    steps = {(method, with_loss): (lambda a=(method, mesh, cams, features, target, with_loss): nemo_step(*a))
             for method in METHODS for with_loss in (True, False)}
    per_render = {}
    if naive_per_render is None:  # one run each: it takes seconds per view
        for key in [k for k in steps if k[0] == "naive dense"]:
            per_render[key] = timed(steps[key], 1, warmup=0) / batch
    fast = {k: fn for k, fn in steps.items() if k[0] != "naive dense"}
    per_render.update({k: t / batch for k, t in timed_together(fast, reps).items()})
    naive = naive_per_render if naive_per_render is not None else {
        k: per_render["naive dense", k] for k in (True, False)}
    rows = []
    for method in METHODS:
        if (method, True) not in per_render:
            continue
        loss, alone = per_render[method, True], per_render[method, False]
        rows.append({"batch": batch, "method": method, "ms_batch": 1e3 * loss * batch, "ms_render": 1e3 * loss,
                     "speedup": naive[True] / loss, "alone_render": 1e3 * alone,
                     "alone_speedup": naive[False] / alone, "naive": naive})
    return rows


def nemo_breakdown(batch: int, reps: int) -> dict[str, float]:
    """Where one step of the NeMo render goes (ms per batch, timed in interleaved rounds)."""
    from geom3d.raster.fragments import fragments_of

    mesh, cams, features, target = nemo_setup(batch)
    inp = prepare(mesh, cams)
    p2f = visible_faces_of(inp)
    fr = fragments_of(inp, p2f)
    image = interpolate(fr, features).detach().requires_grad_(True)

    def renderer():
        features.grad = None
        interpolate(rasterize((mesh.vertices, mesh.faces), cams), features).backward(target)

    def loss_alone():
        image.grad = None
        (image * target).sum().backward()

    parts = {
        "visibility pass (no grad)": lambda: visible_faces_of(inp),
        "differentiable step (depth, barycentrics)": lambda: fragments_of(inp, p2f),
        "interpolate forward (embedding_bag, zero-filled image)": lambda: interpolate(fr, features),
        "whole renderer, forward + backward of output.backward(target)": renderer,
        "the loss alone: Σ image·target, forward + backward": loss_alone,
    }
    times = timed_together(parts, reps)
    return {"covered pixels": float((p2f >= 0).float().mean()), **{k: 1e3 * t for k, t in times.items()}}


# ---------------------------------------------------------------- 3. indexed interpolation
INDEX_SIZE, INDEX_IMAGES, INDEX_HYPOTHESES = (40, 48), 8, 36
INDEX_METHODS = ("expand features to (N·P, V, C)", "index (dense image)", "index, sparse (covered pixels)")


def index_setup(seed: int = 0):
    """Fragments of 8 images × 36 hypotheses of one cuboid, per-image features (8, V, 128) that
    require grad, and the gradients to push back (dense and sparse)."""
    gen = torch.Generator().manual_seed(seed)
    mesh = geom3d.cuboid_mesh([-0.16, -0.455, -0.125], [0.16, 0.455, 0.125], 1000)
    shape = (INDEX_IMAGES, INDEX_HYPOTHESES)
    az = torch.rand(shape, generator=gen) * 2 * math.pi
    el = torch.rand(shape, generator=gen) * 0.8 - 0.2
    cams = geom3d.viewpoint_to_cameras(az, el, 0.0, 5.0, 1.0, 187.5, image_size=INDEX_SIZE)
    with torch.no_grad():
        fr = rasterize(mesh, cams)
    features = torch.randn(INDEX_IMAGES, mesh.num_vertices, CHANNELS, generator=gen).requires_grad_(True)
    target = torch.randn(*shape, *INDEX_SIZE, CHANNELS, generator=gen)
    sparse_target = torch.randn(int(fr.mask.sum()), CHANNELS, generator=gen)
    return fr, features, target, sparse_target


def index_step(method: str, fr, features, target, sparse_target) -> None:
    features.grad = None
    if method == INDEX_METHODS[0]:
        V = features.shape[1]
        expanded = features[:, None].expand(INDEX_IMAGES, INDEX_HYPOTHESES, V, CHANNELS)
        interpolate(fr, expanded.reshape(-1, V, CHANNELS)).backward(target)
    elif method == INDEX_METHODS[1]:
        interpolate(fr, features).backward(target)  # row = image: the per-leading-index rule
    else:
        interpolate_sparse(fr, features).values.backward(sparse_target)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, MB). Not getrusage: on Linux its ru_maxrss
    survives exec, so a child started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (peak memory is measured on Linux only)")


def index_peak_child(method: str) -> None:
    """Run in a fresh process: print the extra peak RSS (MB) of one step above the setup's."""
    data = index_setup()
    before = _peak_rss_mb()
    index_step(method, *data)
    print(_peak_rss_mb() - before)


def bench_index(reps: int, threads: int) -> list[dict]:
    data = index_setup()
    fr = data[0]
    times = timed_together({m: (lambda m=m: index_step(m, *data)) for m in INDEX_METHODS}, reps)
    rows = []
    for method in INDEX_METHODS:
        out = subprocess.run([sys.executable, __file__, "--index-peak", method, "--threads", str(threads)],
                             capture_output=True, text=True, check=True)
        rows.append({"method": method, "ms": 1e3 * times[method], "peak_mb": float(out.stdout.split()[-1])})
    base = rows[0]
    for r in rows:
        r["time_ratio"] = base["ms"] / r["ms"]
        r["memory_ratio"] = base["peak_mb"] / max(r["peak_mb"], 1e-9)
    rows[0]["covered"] = float(fr.mask.float().mean())
    return rows


# ---------------------------------------------------------------- 2. depth at 640 × 480
def depth_mesh() -> tuple[geom3d.Mesh, str]:
    path = shared_data_root() / "meshes" / "fandisk.obj"
    if path.is_file():
        return geom3d.Mesh.load(path).normalized()[0], "fandisk.obj"
    import trimesh

    sphere = trimesh.creation.uv_sphere(radius=0.5, count=[72, 72])
    return geom3d.Mesh.from_trimesh(sphere), "uv sphere"


def bench_depth(reps: int, size=(480, 640)) -> dict:
    o3d = aware3d_utils.require("open3d")
    mesh, name = depth_mesh()
    cam = geom3d.Cameras.look_at(torch.tensor([0.9, -1.2, 0.7]), focal=500.0, image_size=size)
    with torch.no_grad():
        fr = rasterize((mesh.vertices, mesh.faces), cam)
    origins, dirs = camera_rays(cam.reshape(1))
    rays = o3d.core.Tensor(torch.cat([origins, dirs], -1)[0].float().numpy())

    def build():
        scene = o3d.t.geometry.RaycastingScene(nthreads=torch.get_num_threads())
        scene.add_triangles(o3d.core.Tensor(mesh.vertices.numpy()),
                            o3d.core.Tensor(mesh.faces.numpy().astype(np.uint32)))
        return scene

    scene = build()
    threads = torch.get_num_threads()

    def raster_forward():
        with torch.no_grad():
            rasterize((mesh.vertices, mesh.faces), cam)

    t = timed_together({"raster": raster_forward, "cast": lambda: scene.cast_rays(rays, nthreads=threads),
                        "built": lambda: build().cast_rays(rays, nthreads=threads)}, reps)
    raster, cast, built = t["raster"], t["cast"], t["built"]
    hit = scene.cast_rays(rays, nthreads=threads)["primitive_ids"].numpy().astype(np.int64)
    agree = float((torch.as_tensor(hit.astype(np.int64)) == fr.pix_to_face.where(fr.mask, 4294967295)).float()
                  .mean())
    return {"mesh": f"{name} ({mesh.num_faces} faces)", "covered": float(fr.mask.float().mean()),
            "raster": raster, "open3d cast": cast, "open3d build + cast": built, "agreement": agree}


def print_index_table(reps: int, threads: int) -> None:
    print(f"### Per-image features under {INDEX_IMAGES} images × {INDEX_HYPOTHESES} hypotheses: cuboid of 1,000 "
          f"vertices, {INDEX_SIZE[0]}×{INDEX_SIZE[1]} map, {CHANNELS} channels, interpolate forward + backward\n")
    rows = bench_index(reps, threads)
    print(f"({100 * rows[0]['covered']:.1f}% of pixels covered; peak: extra max RSS of one step in a fresh process)\n")
    print("| method | ms / step | speed-up vs expand | extra peak MB | memory ratio vs expand |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['ms']:.1f} | {r['time_ratio']:.2f}× | {r['peak_mb']:.0f} | "
              f"{r['memory_ratio']:.2f}× |", flush=True)
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (batches 1 and 16, few repeats)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="statistic over repeats (min: best of, less sensitive to other load)")
    parser.add_argument("--nemo-only", action="store_true", help="only the NeMo feature-render table")
    parser.add_argument("--default-allocator-only", action="store_true",
                        help="skip the second run with glibc told to keep freed memory")
    parser.add_argument("--index-only", action="store_true", help="only the indexed-interpolation table")
    parser.add_argument("--index-peak", choices=INDEX_METHODS, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        return _run(args)


def _run(args) -> int:
    if args.index_peak:
        index_peak_child(args.index_peak)
        return 0
    STAT["value"] = min if args.stat == "min" else statistics.median
    batches = (1, 16) if args.quick else (1, 16, 144)
    reps = 3 if args.quick else 9
    settings = {k: os.environ[k] for k in ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE") if k in os.environ}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu, {args.stat} of repeats, "
          f"allocator settings: {settings or 'default'}\n")

    if not args.nemo_only:
        print_index_table(3 if args.quick else 9, args.threads)
    if args.index_only:
        return 0
    print(f"### NeMo feature render: cuboid, {FEATURE_SIZE[0]}×{FEATURE_SIZE[1]} map, {CHANNELS} channels, "
          "forward + backward\n")
    print("| batch | method | ms / batch | ms / render | vs naive | renderer alone: ms / render | vs naive |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    naive = None
    for batch in batches:
        rows = bench_nemo(batch, reps, naive if batch > 16 else None)
        if batch == 16:
            naive = rows[0]["naive"]
        for r in rows:
            print(f"| {r['batch']} | {r['method']} | {r['ms_batch']:.1f} | {r['ms_render']:.2f} | "
                  f"{r['speedup']:.1f}× | {r['alone_render']:.2f} | {r['alone_speedup']:.1f}× |", flush=True)
    print("\n(naive dense runs once per setting at batches 1 and 16; at 144 the ratios use its per-render "
          "time at batch 16, since its cost is linear in the batch)")
    print("\nBreakdown at batch 16 (ms per batch):\n")
    print("| part | ms |")
    print("|---|---:|")
    for part, value in nemo_breakdown(16, reps).items():
        print(f"| {part} | {value:.3f} |" if part == "covered pixels" else f"| {part} | {value:.1f} |")
    if args.nemo_only:
        return 0
    if "GLIBC_TUNABLES" not in os.environ and not args.default_allocator_only:
        # The (16, 80, 100, 128) output is 65 MB: glibc serves it with a fresh mapping and unmaps it on
        # free, so every step pays page faults. Telling glibc to keep freed memory (a process start-up
        # setting, hence a fresh process) shows the renderer's own cost; jemalloc/tcmalloc do the same.
        print(f"\n### The same with GLIBC_TUNABLES={RETAIN_MEMORY} (fresh process)\n", flush=True)
        again = [sys.executable, __file__, "--nemo-only", "--threads", str(args.threads), "--stat", args.stat]
        subprocess.run(again + (["--quick"] if args.quick else []), check=False,
                       env={**os.environ, "GLIBC_TUNABLES": RETAIN_MEMORY})

    print("\n### Depth at 640×480: rasterize forward vs Open3D RaycastingScene\n")
    try:
        d = bench_depth(reps=3 if args.quick else 9)
    except ImportError as exc:
        print(f"(skipped: {exc})")
        return 0
    print(f"mesh: {d['mesh']}, {100 * d['covered']:.0f}% of pixels covered, face ids agree on "
          f"{100 * d['agreement']:.2f}% of pixels\n")
    print("| renderer | ms | ratio to Open3D cast |")
    print("|---|---:|---:|")
    for name, key in (("geom3d.rasterize (forward)", "raster"), ("Open3D cast_rays", "open3d cast"),
                      ("Open3D build + cast_rays", "open3d build + cast")):
        print(f"| {name} | {1e3 * d[key]:.1f} | {d[key] / d['open3d cast']:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
