"""orbit4d: per-stage times of the geometric stages (45 frames at 480×832), scaffold fps, and the
alignment accuracy at 1 / 2 / 3 % depth noise (10 % outliers) against the bounding-box baseline.

Synthetic scene (orbit4d.synthetic): a textured object moving and turning over a textured
ground, a moving and turning camera, exact depth / masks / cameras; the depth gets noise.
"""

from __future__ import annotations

import math
import time

import _common  # noqa: F401  (puts the repository root first on sys.path)
import numpy as np
import torch
from _common import parse_args, table

from geom3d.trajectory import arc_path
from orbit4d.evaluate import alignment_errors
from orbit4d.pipeline import Orbit4DInputs, Orbit4DOptions, reconstruct_and_align
from orbit4d.scaffold import render_scaffold
from orbit4d.synthetic import add_depth_noise, make_scene


def stages(frames: int, size) -> None:
    t = time.perf_counter()
    scene = make_scene(frames, size, turn_degrees=60.0)
    print(f"scene: {frames} frames at {size[0]}×{size[1]} rendered in {time.perf_counter() - t:.1f} s (not counted)")
    depth = add_depth_noise(scene.depth, 0.02, 0.10, seed=1)
    inputs = Orbit4DInputs(scene.frames, scene.names, scene.masks, depth, scene.cameras)
    geo = reconstruct_and_align(inputs, Orbit4DOptions())
    rows = [[k, v, geo["cpu_times"][k]] for k, v in geo["times"].items()]
    total, cpu = sum(geo["times"].values()), sum(geo["cpu_times"].values())
    rows.append(["**total**", total, cpu])
    print(table(["stage", "wall s", "CPU s"], rows))
    print(f"goal <= 30 s: {'met' if total <= 30 else 'not met'} (wall), {'met' if cpu <= 30 else 'not met'} (CPU); "
          f"background {geo['background'].points.shape[0]} points, canonical {geo['canonical'].points.shape[0]} points")

    can, sm, bg = geo["canonical"], geo["smoothed"], geo["background"]
    fgs = [(sm[i].apply(can.points.double()).float(), can.colors) for i in range(frames)]
    centre = float(np.median(scene.depth[0][scene.masks[0]]))
    path = arc_path(scene.cameras[0], centre, frames, yaw=math.radians(40))
    rows = []
    target = 1_000_000
    reps = max(1, math.ceil(target / max(bg.points.shape[0], 1)))
    gen = torch.Generator().manual_seed(0)
    dense = torch.cat([bg.points.float()] + [bg.points.float() + 0.002 * torch.randn(bg.points.shape, generator=gen)
                                               for _ in range(reps - 1)])[:target]
    dense_cols = bg.colors.float().repeat(reps, 1)[:target]
    for name, pts, cols in (("proxy as built", bg.points, bg.colors), ("about 1M points", dense, dense_cols)):
        render_scaffold(pts, cols, fgs, path, radius=0.5)  # warm-up
        t, c = time.perf_counter(), time.process_time()
        render_scaffold(pts, cols, fgs, path, radius=0.5)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        rows.append([name, pts.shape[0] + can.points.shape[0], frames, dt, frames / dt, frames / dc])
    print()
    print(table(["scaffold", "points", "frames", "wall s", "fps (wall)", "fps (CPU)"], rows))


def accuracy(frames: int, size) -> None:
    scene = make_scene(frames, size, turn_degrees=45.0)
    rows = []
    for noise in (0.01, 0.02, 0.03):
        depth = add_depth_noise(scene.depth, noise, 0.10, seed=1)
        geo = reconstruct_and_align(Orbit4DInputs(scene.frames, scene.names, scene.masks, depth, scene.cameras))
        can = geo["canonical"].points
        for name, tr in (("sim3 ransac + smoothing", geo["smoothed"]), ("sim3 ransac", geo["fit"].transforms),
                         ("box fit (released)", geo["box"])):
            e = alignment_errors(tr, scene.object_poses, can, scene.object_size).summary()
            rows.append([f"{noise:.0%}", name, e["rotation_max_deg"], e["rotation_median_deg"], e["scale_error"],
                         e["translation_max_rel"]])
    print(table(["noise", "method", "rot max °", "rot median °", "scale err", "trans max / size"], rows))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if args.quick:
        stages(8, (120, 208))
        accuracy(8, (120, 160))
    else:
        stages(45, (480, 832))
        print()
        accuracy(16, (240, 320))


if __name__ == "__main__":
    main()
