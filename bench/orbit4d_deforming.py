"""orbit4d on a moving, deforming subject (orbit4d.articulated): the 4D proxy against the true
surface of every frame, seen and never-seen surface apart, for (a) the rigid pipeline,
(b) per-frame completion with the exact render synthesizer, (c) per-frame completion with a
degraded synthesizer, (d) the deforming canonical model; scaffold depth at a 30° novel camera;
temporal flicker; CPU time of the stages.

    python bench/orbit4d_deforming.py --threads 1                 # the acceptance table
    python bench/orbit4d_deforming.py --threads 1 --methods deforming --steps-per-cycle 12 --swing 30 --turn 60
    python bench/orbit4d_deforming.py --threads 1 --timing-only --frames 45 --size 480x832
    python bench/orbit4d_deforming.py --threads 1 --timing-only --frames 45 --size 480x832 --workers 2

--workers 2 computes the deforming model's optical flows on a second thread while its solves run
(the numbers are the same); the wall time then says what two cores give, and the load average is
printed beside it (on a shared machine the wall time is only meaningful when the load is low).
"""

from __future__ import annotations

import argparse
import math
import time

import _common  # noqa: F401  (puts the repository root first on sys.path)
import numpy as np
import torch
from _common import table

from geom3d.trajectory import arc_path
from orbit4d.articulated import make_deforming_scene, surface_samples
from orbit4d.dynamic import MeshViewSynthesizer, deforming_proxy, per_frame_proxy, rigid_proxy
from orbit4d.pipeline import Orbit4DInputs
from orbit4d.scaffold import render_scaffold
from orbit4d.surface_eval import depth_errors, flicker, surface_scores
from orbit4d.synthetic import add_depth_noise


def novel_cameras(scene, yaw_degrees: float):
    """Per frame: the frame's camera turned `yaw_degrees` about the animal's centre (its depth)."""
    cams = []
    for f in range(len(scene.names)):
        centre = float(np.median(scene.depth[f][scene.masks[f]]))
        cams.append(arc_path(scene.cameras[f], centre, 2, yaw=math.radians(yaw_degrees)).cameras[1])
    from geom3d import Cameras

    return Cameras(torch.stack([c.K for c in cams]), torch.stack([c.R for c in cams]),
                   torch.stack([c.t for c in cams]), scene.cameras.image_size)


def scaffold_depth(scene, background, proxies, cams, see_through: int = 0):
    """(median relative depth error, coverage) of the scaffold at `cams` (one per frame), and on
    the animal's own pixels; see_through: render_scaffold's see-through filling window (0: none)."""
    from geom3d.trajectory import CameraPath

    T = len(proxies)
    path = CameraPath(cams, torch.arange(T, dtype=torch.float64))
    sc = render_scaffold(background.points, background.colors,
                         [(torch.as_tensor(p, dtype=torch.float32), None) for p in proxies], path,
                         see_through=see_through)
    _, true_depth, true_mask = scene.render(cams, np.arange(T))
    return depth_errors(sc.depth, true_depth), depth_errors(sc.depth, true_depth, true_mask)


def box_rule_table(scene, samples, truth, depth, fg_depth, rotations_deg=(0.0, 5.0)) -> None:
    """The released alignment on the released problem: each frame's complete cloud (here the
    true surface itself, so only the alignment errs) reconstructed in the frame's camera up to a
    generator's similarity G (scale 0.5, a shift, a rotation error), with the source pointmap of
    the frame's own pixels (true depth through G) paired pixel by pixel with the scene's noisy
    partial pointmap in the scene's world, which is the first camera's frame as VGGT's is (so
    R = I also ignores the camera's turn since frame 0); placed by the box rule
    (orbit4d.box_rule, as released, raw and Kalman-smoothed) and by Sim(3) RANSAC on the same
    pairs (geom3d.align.ransac_sim3)."""
    from geom3d.align import ransac_sim3
    from orbit4d.box_rule import apply_box_rule, box_rule_fit, smooth_box_rule

    T = len(scene.names)
    cams = scene.cameras.to(dtype=torch.float64)
    tau = 0.01 * scene.object_size
    rng = np.random.default_rng(0)
    keep = rng.choice(truth.shape[1], 20_000, replace=False)
    rows = []
    for rot in rotations_deg:
        axis = np.array([0.3, 1.0, 0.2]) / np.linalg.norm([0.3, 1.0, 0.2])
        import roma

        R_err = roma.rotvec_to_rotmat(torch.from_numpy(axis * math.radians(rot))).numpy()
        s_err, t_err = 0.5, np.array([0.1, -0.05, 0.3])
        placed = {"box rule (released)": [], "box rule + Kalman (released)": [], "Sim(3) RANSAC": []}
        fits, completes, to_world = [], [], []
        R0, t0 = cams[0].R.numpy(), cams[0].t.numpy()
        for f in range(T):
            R, t = cams[f].R.numpy(), cams[f].t.numpy()
            both = (fg_depth[f] > 0) & (scene.depth[f] > 0)
            rows_i, cols_j = np.nonzero(both)
            pix = torch.from_numpy(np.stack([cols_j, rows_i], 1).astype(np.float64))
            K = cams[f].K.numpy()
            ray = np.linalg.solve(K, np.concatenate([pix.numpy(), np.ones((len(pix), 1))], 1).T).T
            # target: the scene's pointmap in its world, which for VGGT (as released) is the first camera's frame
            tgt = ((ray * fg_depth[f][both][:, None] - t) @ R) @ R0.T + t0
            src = (s_err * (ray * scene.depth[f][both][:, None]) @ R_err.T) + t_err
            complete = (s_err * ((truth[f][keep] @ R.T + t) @ R_err.T)) + t_err
            fit = box_rule_fit(src, tgt, complete)
            fits.append(fit)
            completes.append(complete)
            to_world.append((R0, t0))
            placed["box rule (released)"].append(apply_box_rule(fit, complete))
            res = ransac_sim3(torch.from_numpy(src), torch.from_numpy(tgt), 2 * tau, seed=f)
            placed["Sim(3) RANSAC"].append(res.transform.apply(torch.from_numpy(complete)).numpy())
        placed["box rule + Kalman (released)"] = smooth_box_rule(fits, completes)
        for name, clouds in placed.items():
            sc = [surface_scores((c - to_world[f][1]) @ to_world[f][0], truth[f], samples.seen, tau)
                  for f, c in enumerate(clouds)]
            rows.append([f"{rot:g}°", name] + [np.mean([s.f_score[k] for s in sc]) for k in ("seen", "never_seen")]
                        + [100 * np.mean([s.chamfer["all"] for s in sc]) / scene.object_size])
    print("\nthe released problem: a frame's complete cloud (its camera's coordinates, through a generator "
          "similarity: scale 0.5, shift, rotation error as listed) onto the same frame's partial cloud (world = "
          "the first camera's frame, as VGGT's)")
    print(table(["rotation error of the reconstruction", "alignment", "F seen", "F never-seen", "Chamfer %"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="240x320", help="HxW")
    parser.add_argument("--noise", type=float, default=0.01, help="relative depth noise (default 0.01)")
    parser.add_argument("--outliers", type=float, default=0.10)
    parser.add_argument("--methods", default="rigid,exact,degraded,deforming",
                        help="comma-separated: rigid (a), exact (b), degraded (c), deforming (d)")
    # the subject's motion (orbit4d.articulated.make_deforming_scene; the defaults are its own): other
    # settings give other scenes, e.g. the second scene of docs/orbit4d.md: --steps-per-cycle 12 --swing 30 --turn 60
    parser.add_argument("--turn", type=float, default=40.0, help="the animal's turn over the clip, degrees")
    parser.add_argument("--swing", type=float, default=25.0, help="the legs' swing amplitude, degrees")
    parser.add_argument("--steps-per-cycle", type=float, default=16.0,
                        help="frames per step cycle (fewer: faster legs)")
    parser.add_argument("--camera-sweep", type=float, default=30.0, help="the camera's sweep over the clip, degrees")
    parser.add_argument("--timing-only", action="store_true", help="the CPU-time table of (a) and (d) only")
    parser.add_argument("--box-rule-only", action="store_true", help="only the released box rule's table")
    parser.add_argument("--workers", type=int, default=1, choices=(1, 2),
                        help="2: the deforming model's flows on a second thread (pipelined with the solves)")
    args = parser.parse_args()
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        _run(args)


def _run(args) -> None:
    h, w = (int(x) for x in args.size.lower().split("x"))
    t = time.perf_counter()
    scene = make_deforming_scene(args.frames, (h, w), turn_degrees=args.turn, swing_degrees=args.swing,
                                 steps_per_cycle=args.steps_per_cycle, camera_sweep_degrees=args.camera_sweep)
    samples = surface_samples(scene, 80_000)
    truth = samples.points(scene.vertices, scene.animal.faces)
    print(f"scene: {args.frames} frames at {h}×{w}, turn {args.turn:g}°, swing {args.swing:g}°, "
          f"{args.steps_per_cycle:g} frames per step, camera sweep {args.camera_sweep:g}°, "
          f"depth noise {args.noise:.0%}, outliers {args.outliers:.0%}; "
          f"animal {scene.object_size:.2f} m (box diagonal), {samples.seen.mean():.0%} of its surface seen by some "
          f"frame; rendered in {time.perf_counter() - t:.1f} s (not counted)")
    depth = add_depth_noise(scene.depth, args.noise, args.outliers, seed=1)
    inputs = Orbit4DInputs(scene.frames, scene.names, scene.masks, depth, scene.cameras)
    methods = args.methods.split(",")
    tau = 0.01 * scene.object_size
    proxies, times = {}, {}

    if args.box_rule_only:
        from orbit4d.reconstruct import split_depth

        fg, _ = split_depth(depth, scene.masks, margin=2)
        box_rule_table(scene, samples, truth, depth, fg)
        return
    c0 = time.process_time()
    rigid, geo = rigid_proxy(inputs)
    times["(a) rigid pipeline: geometric stages"] = time.process_time() - c0
    geo_cpu = sum(geo["cpu_times"].values())
    if "rigid" in methods:
        proxies["(a) rigid"] = rigid

    def synth_for(kind):
        opts = {} if kind == "exact" else {"pose_sigma": math.radians(5.0), "texture": 0.08, "shape": 0.01,
                                          "blur": 0.8}
        return lambda f, ref: MeshViewSynthesizer((scene.vertices[f], scene.animal.faces, scene.animal.colors),
                                                  ref, seed=f, **opts)

    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    for kind, label in (("exact", "(b) per-frame, exact views"), ("degraded", "(c) per-frame, degraded views")):
        if kind in methods and not args.timing_only:
            c0 = time.process_time()
            done = per_frame_proxy(inputs, geo, synth_for(kind), up=up)
            times[label] = time.process_time() - c0
            proxies[label] = [d.points.numpy() for d in done]
    if "deforming" in methods:
        import os

        c0, w0 = time.process_time(), time.perf_counter()
        dp = deforming_proxy(inputs, geo, synth_for("exact"), up=up, workers=args.workers)
        times["(d) deforming model (keyframe completion + tracking)"] = time.process_time() - c0
        wall_d = time.perf_counter() - w0
        print(f"(d) wall {wall_d:.1f} s with {args.workers} worker(s); load average (1, 5, 15 min) "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        proxies["(d) deforming"] = dp.proxies
        print(f"deforming: keyframe {dp.keyframe}, canonical {len(dp.track.points)} points, "
              f"{len(dp.track.graph.nodes)} nodes, {len(dp.track.graph.edges) // 2} edges; completion added "
              f"{dp.completion.added} points")
    shared = sum(v for k, v in geo["cpu_times"].items() if k in ("depth cleaning", "unprojection", "background fusion"))
    print(f"\nCPU s (one thread unless --threads): geometric stages of (a) {geo_cpu:.1f} "
          f"({', '.join(f'{k} {v:.1f}' for k, v in geo['cpu_times'].items())}); shared with (d): {shared:.1f}")
    if "deforming" in methods:
        times["(d) total: shared stages + deforming model"] = shared + times[
            "(d) deforming model (keyframe completion + tracking)"]
    print(table(["stage", "CPU s"], [[k, v] for k, v in times.items()]))
    if args.timing_only:
        return
    rows, depth_rows = [], []
    cams = novel_cameras(scene, 30.0)
    never = ~samples.seen
    for name, prox in proxies.items():
        sc = [surface_scores(p, truth[f], samples.seen, tau) for f, p in enumerate(prox)]
        fs = {k: np.array([s.f_score[k] for s in sc]) for k in ("seen", "never_seen")}
        ch = {k: np.array([s.chamfer[k] for s in sc]) / scene.object_size for k in ("seen", "never_seen")}
        fl = flicker(prox, truth[:, never])
        rows.append([name, fs["seen"].mean(), fs["seen"].min(), fs["never_seen"].mean(), fs["never_seen"].min(),
                     100 * ch["seen"].mean(), 100 * ch["never_seen"].mean(), 100 * fl / scene.object_size])
        for window in (0, 5):
            (err, cov), (err_o, cov_o) = scaffold_depth(scene, geo["background"], prox, cams, see_through=window)
            depth_rows.append([name + (", see-through filled (5×5)" if window else ""), 100 * err, cov, 100 * err_o,
                               cov_o])
    print(f"\nper-frame proxy vs the true surface, mean over {args.frames} frames (F-score at 1 % of the animal's "
          f"size = {tau * 100:.1f} cm; Chamfer and flicker in % of the size)")
    print(table(["method", "F seen", "F seen min", "F never-seen", "F never-seen min", "Chamfer seen %",
                 "Chamfer never-seen %", "flicker never-seen %"], rows))
    print("\nscaffold at a 30° novel camera per frame vs the true scene rendered there")
    print(table(["method", "depth err median %", "coverage", "animal: depth err median %", "animal: coverage"],
                depth_rows))


if __name__ == "__main__":
    main()
