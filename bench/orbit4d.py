"""orbit4d: per-stage times of the geometric stages (45 frames at 480×832), scaffold fps, and the
alignment accuracy at 1 / 2 / 3 % depth noise (10 % outliers) against the bounding-box baseline.

Scaffolds: the previous renderer (bench/_scaffold_before.py) and today's in the same run (speed-up,
and whether the outputs are identical), for the proxy as built and about one million points;
where each frame's time goes; and the fps with every scaffold file written.

Synthetic scene (orbit4d.synthetic): a textured object moving and turning over a textured
ground, a moving and turning camera, exact depth / masks / cameras; the depth gets noise.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import _common  # noqa: F401  (puts the repository root first on sys.path)
import numpy as np
import torch
from _common import table
from _scaffold_before import depth_to_image_reference, render_scaffold_reference

from geom3d.splatting import splat_index
from geom3d.trajectory import arc_path
from orbit4d.evaluate import alignment_errors
from orbit4d.pipeline import Orbit4DInputs, Orbit4DOptions, reconstruct_and_align
from orbit4d.scaffold import depth_to_image, render_scaffold, write_scaffold
from orbit4d.synthetic import add_depth_noise, make_scene


def geometry(frames: int, size, *, show: bool = True):
    """The synthetic scene's proxy (background, per-frame foregrounds) and an arc path; prints the
    per-stage table of the geometric stages when `show`."""
    t = time.perf_counter()
    scene = make_scene(frames, size, turn_degrees=60.0)
    print(f"scene: {frames} frames at {size[0]}×{size[1]} rendered in {time.perf_counter() - t:.1f} s (not counted)")
    depth = add_depth_noise(scene.depth, 0.02, 0.10, seed=1)
    inputs = Orbit4DInputs(scene.frames, scene.names, scene.masks, depth, scene.cameras)
    geo = reconstruct_and_align(inputs, Orbit4DOptions())
    if show:
        rows = [[k, v, geo["cpu_times"][k]] for k, v in geo["times"].items()]
        total, cpu = sum(geo["times"].values()), sum(geo["cpu_times"].values())
        rows.append(["**total**", total, cpu])
        print(table(["stage", "wall s", "CPU s"], rows))
        print(f"goal <= 30 s: {'met' if total <= 30 else 'not met'} (wall), {'met' if cpu <= 30 else 'not met'} "
              f"(CPU); background {geo['background'].points.shape[0]} points, canonical "
              f"{geo['canonical'].points.shape[0]} points")
    can, sm, bg = geo["canonical"], geo["smoothed"], geo["background"]
    fgs = [(sm[i].apply(can.points.double()).float(), can.colors) for i in range(frames)]
    centre = float(np.median(scene.depth[0][scene.masks[0]]))
    return bg, fgs, arc_path(scene.cameras[0], centre, frames, yaw=math.radians(40))


def _timed(fn, repeats: int = 2):
    """(result, best wall s, best CPU s) over `repeats` calls after one warm-up call."""
    out = fn()
    wall = cpu = math.inf
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return out, wall, cpu


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("rgb", "depth", "mask", "foreground"))


def _one_cloud(label: str, pts, cols, fgs, path, repeats: int) -> tuple[list, list, list]:
    """The rows of the three scaffold tables for one background cloud."""
    frames = len(path)
    old, old_wall, old_cpu = _timed(lambda: render_scaffold_reference(pts, cols, fgs, path, radius=0.5), repeats)
    new, wall, cpu = _timed(lambda: render_scaffold(pts, cols, fgs, path, radius=0.5), repeats)
    same = "yes" if _same(old, new) else "NO"
    speed = [[label, "previous", old_wall, frames / old_wall, frames / old_cpu, 1.0, "—"],
             [label, "now", wall, frames / wall, frames / cpu, old_cpu / cpu, same]]
    # where the time goes: the z-buffer alone (the background, then with the foreground layer)
    bg_t = pts.float().T.contiguous().T
    cams = path.cameras.to(dtype=torch.float32)
    fg_stack = torch.stack([f[0].float() for f in fgs])
    starts = range(0, frames, 4)
    _, _, z_bg = _timed(lambda: [splat_index(bg_t, cams[s:s + 4], radius=0.5) for s in starts], repeats)
    _, _, z_both = _timed(lambda: [splat_index([bg_t, fg_stack[s:s + 4]], cams[s:s + 4], radius=0.5)
                                   for s in starts], repeats)
    ms = 1e3 / frames
    breakdown = [label, z_bg * ms, (z_both - z_bg) * ms, (cpu - z_both) * ms, cpu * ms]
    with tempfile.TemporaryDirectory() as tmp:
        _, w_wall, w_cpu = _timed(lambda: write_scaffold(tmp, render_scaffold(pts, cols, fgs, path, radius=0.5)), 1)
    _, _, d_old = _timed(lambda: depth_to_image_reference(new.depth), 1)
    _, _, d_new = _timed(lambda: depth_to_image(new.depth), 1)
    writing = [label, w_wall, frames / w_wall, frames / w_cpu, d_old * ms, d_new * ms]
    return speed, breakdown, writing


def scaffolds(bg, fgs, path, repeats: int = 2) -> None:
    """Scaffold fps of the previous renderer (bench/_scaffold_before.py) and today's, measured in
    this run, for the proxy as built and about one million points; then where the time goes and
    the fps with every scaffold file written."""
    target = 1_000_000
    reps = max(1, math.ceil(target / max(bg.points.shape[0], 1)))
    gen = torch.Generator().manual_seed(0)
    dense = torch.cat([bg.points.float()] + [bg.points.float() + 0.002 * torch.randn(bg.points.shape, generator=gen)
                                               for _ in range(reps - 1)])[:target]
    dense_cols = bg.colors.float().repeat(reps, 1)[:target]
    n_fg = fgs[0][0].shape[0]
    rows, breakdown, writing = [], [], []
    for name, pts, cols in (("proxy as built", bg.points, bg.colors), ("about 1M points", dense, dense_cols)):
        s, b, w = _one_cloud(f"{name} ({pts.shape[0] + n_fg:,} points)", pts, cols, fgs, path, repeats)
        rows += s
        breakdown.append(b)
        writing.append(w)
    h, w = path.cameras.image_size
    print(f"\nscaffold along a {len(path)}-frame arc at {h}×{w}, torch threads {torch.get_num_threads()}, "
          f"best of {repeats}; load average {os.getloadavg()[0]:.1f}")
    print(table(["scaffold", "renderer", "wall s", "fps (wall)", "fps (CPU)", "speed-up (CPU)", "identical"], rows))
    print()
    print(table(["per frame, CPU ms", "z-buffer: background", "+ foreground layer", "colours, outputs",
                 "total"], breakdown))
    print()
    print(table(["with every file written (write_scaffold: 3×PNG + 3×MP4)", "wall s", "fps (wall)", "fps (CPU)",
                 "depth image before, CPU ms/frame", "now"], writing))


def accuracy(frames: int, size) -> None:
    scene = make_scene(frames, size, turn_degrees=45.0)
    rows = []
    for noise in (0.01, 0.02, 0.03):
        depth = add_depth_noise(scene.depth, noise, 0.10, seed=1)
        geo = reconstruct_and_align(Orbit4DInputs(scene.frames, scene.names, scene.masks, depth, scene.cameras))
        can = geo["canonical"].points
        for name, tr in (("sim3 ransac + smoothing", geo["smoothed"]), ("sim3 ransac", geo["fit"].transforms),
                         ("box fit (R = I, canonical onto frame)", geo["box"])):
            e = alignment_errors(tr, scene.object_poses, can, scene.object_size).summary()
            rows.append([f"{noise:.0%}", name, e["rotation_max_deg"], e["rotation_median_deg"], e["scale_error"],
                         e["translation_max_rel"]])
    print(table(["noise", "method", "rot max °", "rot median °", "scale err", "trans max / size"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and smaller images (smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--scaffold-only", action="store_true",
                        help="only the scaffold tables (the geometry still runs, untimed; no accuracy table)")
    args = parser.parse_args()
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        _run(args)


def _run(args) -> None:
    frames, size = (8, (120, 208)) if args.quick else (45, (480, 832))
    scaffolds(*geometry(frames, size, show=not args.scaffold_only), repeats=1 if args.quick else 2)
    if not args.scaffold_only:
        print()
        accuracy(8, (120, 160)) if args.quick else accuracy(16, (240, 320))


if __name__ == "__main__":
    main()
