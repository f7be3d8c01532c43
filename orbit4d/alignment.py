"""Aligning the canonical foreground to every frame: X_world = s·R·X_can + t.

`align_canonical` (the method): per frame, pixel-synchronised 3D–3D correspondences pair each
canonical point that is visible in the frame's camera under the current estimate (splatted with
geom3d.splat: the z-buffer winner of its pixel) with the frame's own unprojected point at the
same pixel. A Sim(3) inside RANSAC (geom3d.align.ransac_sim3) is fitted to those pairs; the
pairing and fit are repeated a few times (the pairs depend on the estimate). One scale is
shared by all frames (a free scale per frame is poorly constrained by one partial view): a first
pass estimates per-frame scales, their inlier-weighted median is fixed, a second pass fits R, t
with it. An optional point-to-plane ICP refines each frame at the fixed scale.

`box_fit` (a bounding-box baseline in the spirit of the released tool, not its rule nor its
problem): R = I, the scale from the ratio of the clouds' bounding-box diagonals, the
translation from the boxes' centres. The released rule, on the problem it solves (a frame's
completed cloud onto the same frame's partial cloud), is `orbit4d.box_rule`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geom3d import Cameras, DepthPoints, GeometryError
from geom3d.align import Sim3, icp, ransac_sim3

from .reconstruct import single_threaded

__all__ = ["FrameFit", "align_canonical", "box_fit", "correspondences", "refine_with_flow", "stack_sim3"]


@dataclass(frozen=True)
class FrameFit:
    """transforms: Sim3 (T,) canonical → world; pairs (T,) the correspondences found in the last round;
    inliers (T,) int, counted in the even subset of at most `max_pairs` (6000) that RANSAC fitted, so the
    inlier share is inliers / min(pairs, max_pairs)."""

    transforms: Sim3
    inliers: np.ndarray
    pairs: np.ndarray


def stack_sim3(items: list[Sim3]) -> Sim3:
    return Sim3(torch.stack([x.scale for x in items]), torch.stack([x.R for x in items]),
                torch.stack([x.t for x in items]))


def correspondences(canonical: torch.Tensor, transform: Sim3, depth: torch.Tensor, camera: Cameras, *,
                    tolerance: float, smooth: float = 0.05):
    """Pixel-synchronised pairs (canonical points (K, 3), frame points (K, 3)) for one frame.

    Each canonical point is moved by `transform` and projected into the frame; where the
    frame's depth map (H, W) has depth at all four pixels around the projection (agreeing within
    `smooth`, relative: no depth edge), the depth is interpolated bilinearly and unprojected at
    the same sub-pixel position. The pair is kept when the two camera depths agree within
    `tolerance` (world units): points hidden behind the frame's surface drop out. Both points
    lie on one camera ray, so the pairing carries no in-image offset (a z-buffer winner per
    pixel would: it favours the near side of each pixel on slanted surfaces)."""
    h, w = depth.shape
    world = transform.apply(canonical)
    uv, z = camera.project(world, return_depth=True)
    u, v = uv[:, 0], uv[:, 1]
    inside = (z > 0) & (u >= 0) & (v >= 0) & (u < w - 1) & (v < h - 1)
    u, v, z, idx = u[inside], v[inside], z[inside], inside.nonzero()[:, 0]
    u0, v0 = u.floor().long(), v.floor().long()
    fu, fv = u - u0, v - v0
    d = depth.to(u.dtype)
    q = torch.stack([d[v0, u0], d[v0, u0 + 1], d[v0 + 1, u0], d[v0 + 1, u0 + 1]], -1)  # (K, 4)
    ok = (q > 0).all(-1) & (q.amax(-1) <= (1 + smooth) * q.amin(-1))
    wts = torch.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], -1)
    dz = (q * wts).sum(-1)
    ok &= (dz - z).abs() <= tolerance
    target = camera.unproject_points(uv[inside][ok], dz[ok])
    return canonical[idx[ok]], target


def _fit_frame(canonical, transform, depth, camera, *, threshold, scale, rounds, seed, max_pairs=6000):
    fit, inl, pairs = transform, 0, 0
    for r in range(rounds):
        # the first round accepts larger depth gaps: the initial estimate may be off
        src, dst = correspondences(canonical, fit, depth, camera, tolerance=threshold * (3 if r == 0 else 1))
        pairs = src.shape[0]
        if pairs < 10:
            break
        if pairs > max_pairs:  # an even subset: the fit's precision is limited by the depth noise, not the count
            keep = torch.linspace(0, pairs - 1, max_pairs).long()
            src, dst = src[keep], dst[keep]
        try:
            res = ransac_sim3(src, dst, threshold, scale=scale, iterations=64, seed=seed)
        except GeometryError:
            break
        fit, inl = res.transform, res.num_inliers
    return fit, inl, pairs


@single_threaded()
def align_canonical(canonical: torch.Tensor, depth, frames: list[DepthPoints], cameras: Cameras, init: Sim3, *,
                    threshold: float, rounds: int = 2, shared_scale: bool = True, refine_icp: bool = False,
                    icp_distance: float | None = None, seed: int = 0) -> FrameFit:
    """Fit canonical → world per frame from the initial estimates `init` (T,) (see the module docstring).

    depth: (T, H, W) the frames' cleaned foreground depth (0 elsewhere); frames: the same as
    clouds (for the ICP refinement); threshold: RANSAC inlier distance in world units. Frames
    with too few pairs keep `init`."""
    canonical = canonical.double()
    depth = torch.as_tensor(np.asarray(depth)).double()
    cams = cameras.to(dtype=torch.float64)
    T = len(frames)
    fits, inliers, pairs = [], np.zeros(T, dtype=np.int64), np.zeros(T, dtype=np.int64)
    for f in range(T):
        fit, inliers[f], pairs[f] = _fit_frame(canonical, init[f], depth[f], cams[f], threshold=threshold,
                                               scale=True, rounds=rounds, seed=seed + f)
        fits.append(fit)
    if shared_scale:
        scales = torch.stack([x.scale for x in fits]).numpy()
        w = inliers.astype(np.float64)
        order = np.argsort(scales)
        cum = np.cumsum(w[order])
        s = float(scales[order][np.searchsorted(cum, cum[-1] / 2)]) if cum[-1] > 0 else 1.0
        for f in range(T):
            start = Sim3(s, fits[f].R, fits[f].t)
            fits[f], inliers[f], pairs[f] = _fit_frame(canonical, start, depth[f], cams[f], threshold=threshold,
                                                       scale=s, rounds=max(1, rounds - 1), seed=seed + f)
    if refine_icp:
        distance = icp_distance or 2 * threshold
        for f in range(T):
            if frames[f].points.shape[0] < 10:
                continue
            s = fits[f].scale
            # frame points → canonical at the fixed scale (partial onto complete: every point has a partner)
            try:
                res = icp(frames[f].points, canonical, fits[f].inverse(), method="point_to_plane",
                          max_distance=distance / float(s), max_iterations=20)
            except GeometryError:  # no pairs within reach: keep the RANSAC fit
                continue
            fits[f] = res.transform.inverse()
    return FrameFit(stack_sim3(fits), inliers, pairs)


def box_fit(canonical: torch.Tensor, frames: list[DepthPoints]) -> Sim3:
    """The bounding-box baseline (R = I): Sim3 (T,) canonical → world. Empty frames get s = 1, t = 0."""
    lo, hi = canonical.double().amin(0), canonical.double().amax(0)
    c_can, d_can = (lo + hi) / 2, (hi - lo).norm()
    items = []
    for fr in frames:
        if fr.points.shape[0] < 3:
            items.append(Sim3(1.0, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
            continue
        p = fr.points.double()
        flo, fhi = p.amin(0), p.amax(0)
        s = (fhi - flo).norm() / d_can
        items.append(Sim3(s, torch.eye(3, dtype=torch.float64), (flo + fhi) / 2 - s * c_can))
    return stack_sim3(items)


def _local_refit(src, dst, weights, start: Sim3, threshold: float, *, iterations: int = 3) -> Sim3:
    """Sim(3) at `start`'s scale refitted on the pairs within `threshold` of `start` (weighted
    Umeyama, repeated `iterations` times from the refit): the robust step of the flow refinement
    when the estimate is already close (no random hypotheses)."""
    from geom3d.align import umeyama

    cur, th2 = start, threshold * threshold
    for _ in range(iterations):
        inl = ((cur.apply(src) - dst) ** 2).sum(-1) < th2
        if int(inl.sum()) < 10:
            break
        try:
            cur = umeyama(src[inl], dst[inl], weights[inl], scale=start.scale)
        except GeometryError:
            break
    return cur


@single_threaded()
def refine_with_flow(canonical: torch.Tensor, transforms: Sim3, frames: np.ndarray, depth, cameras: Cameras, *,
                     threshold: float, passes: int = 3, rounds: int = 2, hops=(1, 2, 4), flow_weight: float = 3,
                     flow_check: float = 1.0, max_pairs: int = 12000, solver: str = "refit",
                     flow_scale: float | None = None, flow_budget_mb: float = 256, seed: int = 0,
                     masks: np.ndarray | None = None, edge_pixels: float = 0.0,
                     _flows_held: list | None = None) -> Sim3:
    """Refine canonical → world transforms (T,) with texture: per frame a Sim(3) at the
    transforms' (shared) scale on the same-ray pairs of `correspondences` plus *flow pairs*:
    canonical points visible in another frame (under its current transform) carried by dense
    optical flow (OpenCV DIS, `orbit4d.deform.FlowCache`, forward–backward checked to `flow_check`
    pixels) onto this frame's surface, from the frames `hops` before it (pass 1, frames 1…T−1 in
    order, frame 0 kept) and `hops` before and after it (later passes, every frame). Each flow pair
    weighs `flow_weight` times a same-ray pair. Same-ray pairs alone hold a smooth object's turn
    poorly (they pair points on the same camera ray, so a surface sliding along itself costs
    nothing: the turn drifts); the flow follows the texture, which does not slide.

    solver: "refit" (default) refits on the pairs within `threshold` of the current estimate
    (weighted Umeyama, three times per round: the estimate of `align_canonical` is already close);
    "ransac" fits a Sim(3) RANSAC (64 hypotheses) per round (the first version, with passes=3,
    rounds=3: on bench/orbit4d_rigid_scenes.py 5 of 7 scenes within the bounds against 6 of 7, at
    about 5× the refinement's CPU). flow_scale: the flow's image scale (`FlowCache`; None: automatic).
    flow_budget_mb: the flows are kept (compactly, `FlowCache`) for the later passes while they
    hold at most this many MB; past it, after each frame the flows that the rest of the current
    pass does not read are forgotten, and a later pass computes them again (the same flows: the
    result does not change, only the time; 0: always, at most 2·Σhops + 2·len(hops) flows held,
    20 for the default hops, at the cost of computing every flow once per pass). The 45-frame
    480×832 run holds about 50 MB (docs/orbit4d.md). _flows_held: the test's probe (the number of
    flows held at the end of each frame, before the eviction, is appended). masks (T, H, W) bool:
    the subject's masks; with them and edge_pixels > 0, flow pairs come only from pixels at least
    `edge_pixels` (at the flow's scale; the DIS patch is 8) inside the mask in both frames: nearer
    the edge the flow is dragged towards the static background's zero motion (0, the default: no
    such limit; docs/orbit4d.md, "Robust rigid alignment", for what it did).
    frames uint8 (T, H, W, 3), depth (T, H, W) the cleaned foreground depth (0 elsewhere)."""
    from .deform import FlowCache, _flow_pairs

    if solver not in ("refit", "ransac"):
        raise ValueError(f"refine_with_flow: solver must be 'refit' or 'ransac', got {solver!r}")
    X = canonical.double()
    fg = np.asarray(depth, np.float64)
    cams = cameras.to(dtype=torch.float64)
    T = len(fg)
    flows = FlowCache(frames, fg > 0, scale=flow_scale)
    dist = None
    if masks is not None and edge_pixels > 0:  # each pixel's distance to the mask's edge (flow pairs keep off it)
        from scipy.ndimage import distance_transform_edt

        dist = [distance_transform_edt(np.asarray(m, bool)) for m in masks]
        inset_px = edge_pixels / flows.scale  # the flow's patches are edge_pixels wide at the flow's scale
    est = [transforms[f].to(dtype=torch.float64) for f in range(T)]
    for p in range(passes):
        steps = hops if p == 0 else tuple(hops) + tuple(-h for h in hops)
        for f in (range(1, T) if p == 0 else range(T)):
            cur = est[f]
            # the flow pairs depend on the other frames' transforms only, fixed during this frame's rounds
            flow_src, flow_dst, flow_w = [], [], []
            for hop in steps:
                g = f - hop
                if not 0 <= g < T:
                    continue
                idx, y = _flow_pairs(est[g].apply(X).numpy(), fg[g], cams[g], fg[f], cams[f], flows.flow(g, f),
                                     flows.flow(f, g), threshold, flow_check,
                                     inset=None if dist is None else (dist[g], dist[f], inset_px))
                # RANSAC counts a flow pair flow_weight times (its sampling and scoring see the copies)
                copies = int(flow_weight) if solver == "ransac" else 1
                flow_src += [X[torch.from_numpy(idx)]] * copies
                flow_dst += [torch.from_numpy(y)] * copies
                flow_w += [torch.full((len(idx),), float(flow_weight) if copies == 1 else 1.0,
                                      dtype=torch.float64)] * copies
            for r in range(rounds):
                src, dst = correspondences(X, cur, torch.from_numpy(fg[f]), cams[f],
                                           tolerance=threshold * (3 if r == 0 else 1))
                ones = torch.ones(len(src), dtype=torch.float64)
                srcs, dsts, wts = [src] + flow_src, [dst] + flow_dst, [ones] + flow_w
                S, D, W = torch.cat(srcs), torch.cat(dsts), torch.cat(wts)
                if S.shape[0] < 10:
                    break
                if S.shape[0] > max_pairs:
                    keep = torch.linspace(0, S.shape[0] - 1, max_pairs).long()
                    S, D, W = S[keep], D[keep], W[keep]
                if solver == "refit":
                    cur = _local_refit(S, D, W, cur, threshold)
                    continue
                try:
                    cur = ransac_sim3(S, D, threshold, scale=est[f].scale, iterations=64, seed=seed + f).transform
                except GeometryError:
                    break
            est[f] = cur
            if _flows_held is not None:
                _flows_held.append(flows.held)
            if flows.nbytes > flow_budget_mb * 2**20:
                # the rest of this pass reads the pairs of frames > f only (pass 1: (f − h, f);
                # later passes: (f, f ± h)): a pair whose later frame is ≤ f is done for this pass
                flows.evict(lambda ab, f=f: max(ab) > f)
    return stack_sim3(est)
