"""The deforming canonical model: one complete cloud deformed into every frame.

FreeOrbit4D completes every frame on its own (generated views per frame). Here one complete
cloud (a keyframe's partial cloud completed with generated views, `orbit4d.completion`) is
carried through the video by a non-rigid registration, so the sides no frame sees move with the
sides the frames see, without generating views for every frame.

**Embedded deformation graph** (Sumner, Schmid and Pauly 2007): nodes g_j (K, 3) spread over
the cloud (voxel centres snapped to the nearest cloud point, spacing `node_spacing`), each with a
rotation R_j and a position p_j; a point x with its k nearest nodes and weights
w_j = (1 − d_j / d_{k+1})² (normalised) goes to x' = Σ_j w_j (R_j (x − g_j) + p_j). Node edges
join nodes closer than `edge_radius` × spacing (so two legs side by side stay unlinked).

**Energy per frame** (as-rigid-as-possible on the graph, with a temporal term):

    E = Σ_i c_i ‖x'_i − y_i‖²  +  α Σ_(j,k) ‖(p_k − p_j) − R_j (g_k − g_j)‖²  +  β Σ_j ‖p_j − p̂_j‖²

minimised by alternating a global step (the p's for fixed R's: one K×K linear system, three
right-hand sides) and a local step (each R_j the Procrustes rotation of its edges and its data
points, batched SVD), as ARAP does. p̂ is the constant-velocity prediction from the two previous
frames (the temporal smoothness term). α and β are scaled by the number of data pairs, so their
balance does not depend on the image size.

**Pixel-synchronised correspondences** (y_i), two kinds:
- *projective*: each deformed point projected into the frame, paired with the frame's own
  surface point on the same camera ray (`orbit4d.alignment.correspondences`: bilinear depth,
  depth agreement within a tolerance, so hidden points drop out);
- *flow*: each point visible in the previous frame (under the previous frame's solved
  deformation) is carried to this frame by dense optical flow (OpenCV DIS, forward–backward
  consistent within `flow_check` pixels, landing on the mask) and paired with this frame's surface
  point at that pixel: the lateral motion that depth alone does not see.

**Canonical refinement**: after tracking, each canonical point's residuals to its projective
partners (over all frames where it was visible) are rotated back into the canonical by its
blended node rotation and their median is added to the point (frames' depth noise averages out
over the video; points never seen keep the completion's position); the deformation is then
re-applied.

Tracking runs from the keyframe forwards, then backwards.

**Silhouette consistency** (`Silhouette`): a deformed point that projects off a frame's (1-pixel
dilated) mask where the frame's depth shows nothing nearer that could hide it contradicts the
frame (its camera sees past the point); `orbit4d.dynamic.deforming_proxy` leaves such points out
of that frame's proxy, and can pull them onto the silhouette during the tracking (off by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from geom3d import Cameras

__all__ = ["DeformationGraph", "build_graph", "NonRigidTrack", "track_nonrigid", "FlowCache", "flow_scale_for",
           "Silhouette"]


@dataclass(frozen=True)
class DeformationGraph:
    """nodes (K, 3) rest positions; edges (E, 2) node pairs (both directions); point_nodes
    (M, k) and point_weights (M, k): each cloud point's nodes and blending weights."""

    nodes: np.ndarray
    edges: np.ndarray
    point_nodes: np.ndarray
    point_weights: np.ndarray

    def deform(self, points: np.ndarray, R: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Deformed points (M, 3) for node rotations R (K, 3, 3) and positions p (K, 3)."""
        g = self.nodes[self.point_nodes]  # (M, k, 3)
        local = np.einsum("mkab,mkb->mka", R[self.point_nodes], points[:, None, :] - g) + p[self.point_nodes]
        return np.einsum("mk,mka->ma", self.point_weights, local)

    def point_rotations(self, R: np.ndarray) -> np.ndarray:
        """(M, 3, 3): each point's blended node rotation projected back onto SO(3)."""
        M = np.einsum("mk,mkab->mab", self.point_weights, R[self.point_nodes])
        U, _, Vt = np.linalg.svd(M)
        D = np.ones((len(M), 3))
        D[:, 2] = np.sign(np.linalg.det(U @ Vt))
        return (U * D[:, None, :]) @ Vt


def build_graph(points, node_spacing: float, *, k: int = 4, edge_radius: float = 1.6) -> DeformationGraph:
    """The deformation graph of a cloud (M, 3) (module docstring)."""
    from scipy.spatial import cKDTree

    pts = np.asarray(points, np.float64)
    if len(pts) < k + 1:
        raise ValueError(f"build_graph: the cloud has {len(pts)} points, fewer than {k + 1}")
    keys = np.floor(pts / node_spacing).astype(np.int64)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    centres = np.zeros((inv.max() + 1, 3))
    np.add.at(centres, inv, pts)
    centres /= np.bincount(inv)[:, None]
    tree = cKDTree(pts)
    nodes = pts[np.unique(tree.query(centres, k=1)[1])]
    ntree = cKDTree(nodes)
    kk = min(k + 1, len(nodes))
    d, idx = ntree.query(pts, k=kk)
    dmax = d[:, -1:] + 1e-12
    w = (1 - d[:, :k] / dmax) ** 2 + 1e-8
    w /= w.sum(1, keepdims=True)
    pairs = ntree.query_pairs(edge_radius * node_spacing, output_type="ndarray")
    # every node keeps at least its two nearest neighbours (a sparse spot of the cloud stays linked)
    _, near = ntree.query(nodes, k=min(3, len(nodes)))
    extra = np.stack([np.repeat(np.arange(len(nodes)), near.shape[1] - 1), near[:, 1:].reshape(-1)], 1)
    both = np.concatenate([pairs, extra, pairs[:, ::-1], extra[:, ::-1]])
    edges = np.unique(both[both[:, 0] != both[:, 1]], axis=0)
    return DeformationGraph(nodes, edges, idx[:, :k], w)


def _procrustes(S: np.ndarray) -> np.ndarray:
    """Rotations R (K, 3, 3) maximising trace(R S) for S (K, 3, 3) = Σ a bᵀ (a source, b target)."""
    U, _, Vt = np.linalg.svd(S)
    D = np.ones((len(S), 3))
    D[:, 2] = np.sign(np.linalg.det(Vt.transpose(0, 2, 1) @ U.transpose(0, 2, 1)))
    return (Vt.transpose(0, 2, 1) * D[:, None, :]) @ U.transpose(0, 2, 1)


def _scatter(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Σ of values (n, ...) into rows (size, ...) by index (n,) (np.bincount per component: many
    times faster than np.add.at)."""
    flat = values.reshape(len(values), -1)
    out = np.stack([np.bincount(index, flat[:, c], minlength=size) for c in range(flat.shape[1])], 1)
    return out.reshape((size,) + values.shape[1:])


def _solve(graph: DeformationGraph, points, R, p, idx, targets, weights, p_hat, *, alpha, beta, iterations):
    """Local–global ARAP iterations on the graph (module docstring); returns (R, p)."""
    from scipy.linalg import cho_factor, cho_solve

    K = len(graph.nodes)
    g = graph.nodes
    j, k = graph.edges[:, 0], graph.edges[:, 1]
    n_data = max(float(weights.sum()), 1.0)
    a = alpha * n_data / max(len(graph.edges), 1)
    b = beta * n_data / K
    pn, pw = graph.point_nodes[idx], graph.point_weights[idx]  # (n, k)
    cw = pw * weights[:, None]
    # W^T C W (K, K) from the data points' node weights, and the graph Laplacian Dᵀ D, by one bincount each
    pair_index = (pn[:, :, None] * K + pn[:, None, :]).reshape(-1)
    WtCW = np.bincount(pair_index, (cw[:, :, None] * pw[:, None, :]).reshape(-1), minlength=K * K).reshape(K, K)
    DtD = np.bincount(np.concatenate([j * K + j, k * K + k, j * K + k, k * K + j]),
                      np.concatenate([np.ones(2 * len(j)), -np.ones(2 * len(j))]), minlength=K * K).reshape(K, K)
    factor = cho_factor(WtCW + a * DtD + b * np.eye(K))
    x = points[idx]
    flat_nodes = pn.reshape(-1)
    # the data part of each node's S = Σ cw (x − g_j)(y − p_j)ᵀ, expanded so that only p changes per
    # iteration: A_j − g_j Y_jᵀ − X_j p_jᵀ + W_j g_j p_jᵀ with the sums A = Σ cw x yᵀ, X = Σ cw x,
    # Y = Σ cw y, W = Σ cw over the (point, node) pairs of node j, computed once
    flat_cw = cw.reshape(-1)
    W_n = np.bincount(flat_nodes, flat_cw, minlength=K)
    X_n = _scatter(flat_nodes, (cw[:, :, None] * x[:, None, :]).reshape(-1, 3), K)
    Y_n = _scatter(flat_nodes, (cw[:, :, None] * targets[:, None, :]).reshape(-1, 3), K)
    xy = np.einsum("na,nb->nab", x, targets)  # (n, 3, 3)
    A_n = _scatter(flat_nodes, (cw[:, :, None, None] * xy[:, None]).reshape(-1, 3, 3), K)
    S_data = A_n - np.einsum("ja,jb->jab", g, Y_n)
    for _ in range(iterations):
        # global: positions for fixed rotations
        # Σ_k w_k R_j (x − g_j) = (Σ_k w_k R_j) x − Σ_k w_k R_j g_j
        Rw = np.einsum("nk,nkc->nc", pw, R.reshape(K, 9)[pn]).reshape(-1, 3, 3)
        Rg = np.einsum("jab,jb->ja", R, g)
        bvec = np.einsum("nab,nb->na", Rw, x) - np.einsum("nk,nka->na", pw, Rg[pn])
        res = (targets - bvec) * weights[:, None]
        r_e = np.einsum("eab,eb->ea", R[j], g[k] - g[j])  # (E, 3): wanted p_k − p_j
        rhs = (_scatter(flat_nodes, (pw[:, :, None] * res[:, None, :]).reshape(-1, 3), K)
               + _scatter(k, a * r_e, K) - _scatter(j, a * r_e, K) + b * p_hat)
        p = cho_solve(factor, rhs)
        # local: rotations for fixed positions (edges, and the data points each node carries)
        S = _scatter(j, a * np.einsum("ea,eb->eab", g[k] - g[j], p[k] - p[j]), K)
        S += S_data + np.einsum("ja,jb->jab", W_n[:, None] * g - X_n, p)
        R = _procrustes(S)
    return R, p


FLOW_MAX_SIDE = 416  # frames larger than this get their flow at a coarser scale (FlowCache, scale=None)


def flow_scale_for(size) -> float:
    """The automatic flow scale for frames of size (H, W): 1 up to `FLOW_MAX_SIDE` pixels on the
    longest side, else FLOW_MAX_SIDE / longest side (480×832 → 0.5)."""
    return min(1.0, FLOW_MAX_SIDE / max(size))


class FlowCache:
    """Dense optical flow between frames, computed on demand and kept: `flow(a, b)` (H, W, 2)
    float32 (du, dv) from frame a to frame b (OpenCV DIS, finer than its medium preset: every
    pyramid level down to full resolution, 8-pixel patches at stride 2), computed on the box
    around both frames' masks grown by `margin` pixels (zero elsewhere: only the subject's
    pixels are read). scale: the box is resized by this factor (area averaging) before the flow,
    and the flow brought back (bilinear, vectors divided by the factor); None: `flow_scale_for`
    the frames' size (1 up to 416 pixels on the longest side). keep=False hands each flow out once
    and forgets it (the tracking reads every pair once; at 480×832 a kept flow is 3.2 MB, and the
    tracking of 45 frames reads about 260). A kept flow is held compactly: the box only, at the
    flow's scale (the zeros around it and the resizing back are redone on every `flow` call, the
    same operations in the same order: the flow handed out is bit for bit the one computed; at
    480×832 about 0.2 MB for the orbit4d scene instead of 3.2 MB). `held` and `nbytes` count the kept
    flows and their bytes; `evict(keep)` forgets every kept flow for which keep((a, b)) is false.
    `prefetch(pairs)` computes flows
    ahead on one background thread (OpenCV releases the GIL), in the order given, while the
    caller works: the 2-worker pipeline of the tracking; `close()` stops it."""

    def __init__(self, frames: np.ndarray, masks: np.ndarray, margin: int = 24, scale: float | None = None,
                 keep: bool = True):
        self.frames, self.masks, self.margin, self.cache, self.keep = frames, masks, margin, {}, keep
        self.scale = flow_scale_for(masks.shape[1:]) if scale is None else float(scale)
        if not 0 < self.scale <= 1:
            raise ValueError(f"FlowCache: scale must be in (0, 1], got {self.scale}")
        self.dis = self._make_dis()
        self.pending, self.pool = {}, None

    @staticmethod
    def _make_dis():
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis.setFinestScale(0)
        dis.setPatchSize(8)
        dis.setPatchStride(2)
        dis.setGradientDescentIterations(25)
        dis.setVariationalRefinementIterations(10)
        return dis

    def prefetch(self, pairs) -> None:
        """Start computing the flows of `pairs` [(a, b), ...] on a background thread, in order."""
        from concurrent.futures import ThreadPoolExecutor

        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1)
            self.worker_dis = self._make_dis()  # a DIS object is not shared between threads
        for ab in pairs:
            ab = (int(ab[0]), int(ab[1]))
            if ab not in self.cache and ab not in self.pending:
                self.pending[ab] = self.pool.submit(self._compute, ab[0], ab[1], self.worker_dis)

    def close(self) -> None:
        if self.pool is not None:
            for fut in self.pending.values():
                fut.cancel()
            self.pool.shutdown(wait=True)
            self.pool, self.pending = None, {}

    @property
    def held(self) -> int:
        return len(self.cache)

    @property
    def nbytes(self) -> int:
        return sum(fl.nbytes for _, fl in self.cache.values() if fl is not None)

    def evict(self, keep) -> None:
        """Forget the kept flows (a, b) for which keep((a, b)) is false (asked again: recomputed)."""
        for ab in [ab for ab in self.cache if not keep(ab)]:
            del self.cache[ab]

    def flow(self, a: int, b: int) -> np.ndarray:
        packed = self.cache.get((a, b))
        if packed is None:
            fut = self.pending.pop((a, b), None)
            packed = fut.result() if fut is not None else self._compute(a, b, self.dis)
            if self.keep:
                self.cache[(a, b)] = packed
        return self._expand(*packed)

    def _expand(self, box, fl) -> np.ndarray:
        h, w = self.masks.shape[1:]
        out = np.zeros((h, w, 2), np.float32)
        if fl is None:
            return out
        r0, r1, c0, c1 = box
        if self.scale < 1:
            small = (fl.shape[1], fl.shape[0])
            # bilinear resizing maps pixel edges to edges (u' = s·(u + ½) − ½); the vectors scale back
            fl = cv2.resize(fl, (c1 - c0, r1 - r0), interpolation=cv2.INTER_LINEAR)
            # the factors as float64 numbers (the product in float64, then float32), as computed before
            # the flows were packed: the same bits
            fl[..., 0] *= np.float64(c1 - c0) / small[0]
            fl[..., 1] *= np.float64(r1 - r0) / small[1]
        out[r0:r1, c0:c1] = fl
        return out

    def _compute(self, a: int, b: int, dis):
        """The flow packed: ((r0, r1, c0, c1) the box, the DIS flow on it at the flow's scale), or
        (None, None) where neither mask has a pixel."""
        h, w = self.masks.shape[1:]
        rows, cols = np.nonzero(self.masks[a] | self.masks[b])
        if not rows.size:
            return None, None
        r0, r1 = max(rows.min() - self.margin, 0), min(rows.max() + self.margin + 1, h)
        c0, c1 = max(cols.min() - self.margin, 0), min(cols.max() + self.margin + 1, w)
        ga = cv2.cvtColor(np.ascontiguousarray(self.frames[a][r0:r1, c0:c1]), cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(np.ascontiguousarray(self.frames[b][r0:r1, c0:c1]), cv2.COLOR_RGB2GRAY)
        if self.scale < 1:
            small = (max(int(round((c1 - c0) * self.scale)), 8), max(int(round((r1 - r0) * self.scale)), 8))
            fl = dis.calc(cv2.resize(ga, small, interpolation=cv2.INTER_AREA),
                          cv2.resize(gb, small, interpolation=cv2.INTER_AREA), None)
        else:
            fl = dis.calc(ga, gb, None)
        return (int(r0), int(r1), int(c0), int(c1)), fl


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return cv2.remap(img.astype(np.float32), u.astype(np.float32).reshape(-1, 1), v.astype(np.float32).reshape(-1, 1),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0).reshape(len(u), -1)


def _projective(world, depth, camera, tolerance, smooth: float = 0.05):
    """Indices (n,) and same-ray partners (n, 3) of the deformed points `world` (M, 3) visible in a
    frame, as `orbit4d.alignment.correspondences` pairs them: the bilinear depth at the
    projection (all four pixels with depth, no depth edge), unprojected at the same sub-pixel
    position, kept where the depths agree within `tolerance`."""
    d = np.asarray(depth, np.float64)
    h, w = d.shape
    uv, z = camera.project(torch.from_numpy(world), return_depth=True)
    uv, z = uv.numpy(), z.numpy()
    u, v = uv[:, 0], uv[:, 1]
    inside = np.nonzero((z > 0) & (u >= 0) & (v >= 0) & (u < w - 1) & (v < h - 1))[0]
    u, v, z = u[inside], v[inside], z[inside]
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    q = np.stack([d[v0, u0], d[v0, u0 + 1], d[v0 + 1, u0], d[v0 + 1, u0 + 1]], -1)
    ok = (q > 0).all(-1) & (q.max(-1) <= (1 + smooth) * q.min(-1))
    dz = (q * np.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], -1)).sum(-1)
    ok &= np.abs(dz - z) <= tolerance
    target = camera.unproject_points(torch.from_numpy(uv[inside][ok]), torch.from_numpy(dz[ok])).numpy()
    return inside[ok], target


def _flow_pairs(prev_world, prev_depth, prev_cam, depth, camera, flow_ab, flow_ba, tolerance, check,
                inset=None):
    """Points visible in the previous frame carried by the flow onto this frame's surface.
    inset: (prev_dist, dist, pixels): keep only pairs whose pixel in the previous frame and
    whose landing pixel lie at least `pixels` inside the subject's mask (prev_dist, dist (H, W):
    each pixel's distance to the nearest pixel off the mask): the flow near a mask edge is
    dragged towards the static background's (zero) motion."""
    idx, _ = _projective(prev_world, prev_depth, prev_cam, tolerance)
    if len(idx) == 0:
        return idx, np.zeros((0, 3))
    uv = prev_cam.project(torch.from_numpy(prev_world[idx])).numpy()
    fw = _bilinear(flow_ab, uv[:, 0], uv[:, 1])
    uv2 = uv + fw
    bw = _bilinear(flow_ba, uv2[:, 0], uv2[:, 1])
    ok = np.linalg.norm(fw + bw, axis=1) < check
    h, w = depth.shape
    ok &= (uv2[:, 0] >= 0) & (uv2[:, 1] >= 0) & (uv2[:, 0] < w - 1) & (uv2[:, 1] < h - 1)
    u0, v0 = np.floor(uv2[:, 0]).astype(int), np.floor(uv2[:, 1]).astype(int)
    u0, v0 = np.clip(u0, 0, w - 2), np.clip(v0, 0, h - 2)
    q = np.stack([depth[v0, u0], depth[v0, u0 + 1], depth[v0 + 1, u0], depth[v0 + 1, u0 + 1]], -1)
    ok &= (q > 0).all(-1) & (q.max(-1) <= 1.05 * q.min(-1))
    if inset is not None:
        prev_dist, dist, pixels = inset
        ph, pw = prev_dist.shape
        pu = np.clip(np.round(uv[:, 0]).astype(np.int64), 0, pw - 1)
        pv = np.clip(np.round(uv[:, 1]).astype(np.int64), 0, ph - 1)
        ok &= (prev_dist[pv, pu] >= pixels) & (dist[np.clip(np.round(uv2[:, 1]).astype(np.int64), 0, h - 1),
                                                    np.clip(np.round(uv2[:, 0]).astype(np.int64), 0, w - 1)] >= pixels)
    fu, fv = uv2[:, 0] - u0, uv2[:, 1] - v0
    z = (q * np.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], -1)).sum(-1)
    target = camera.unproject_points(torch.from_numpy(uv2[ok]), torch.from_numpy(z[ok])).numpy()
    return idx[ok], target


class Silhouette:
    """A frame's silhouette test: the subject's mask (H, W) bool, dilated by `dilate` pixels (the
    mask's own uncertainty), and the frame's full depth (H, W) (0: none) for occlusion. A point
    of the subject that projects into the image, in front of the camera, outside the dilated mask
    and not behind the observed depth there (by more than `tolerance`: something in front may hide
    it) contradicts the frame: the camera sees past where the point is (free space), so the point
    cannot be on the subject's surface in this frame. `outside(world)` marks such points;
    `pull(world)` gives them targets on the silhouette: their own depth at the nearest pixel of the
    (undilated) mask (the silhouette term of a tracker)."""

    def __init__(self, mask: np.ndarray, depth: np.ndarray | None, camera, *, dilate: int = 1,
                 tolerance: float = 0.0):
        self.mask = np.asarray(mask, bool)
        m = self.mask.astype(np.uint8)
        self.wide = (cv2.dilate(m, np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8)) if dilate > 0 else m) > 0
        self.depth = None if depth is None else np.asarray(depth)  # (no float64 copy: a frame of 480×832 is 3 MB)
        self.camera, self.tolerance = camera.to(dtype=torch.float64), float(tolerance)
        self._nearest = None  # per pixel the nearest mask pixel (row, col), made by the first `pull`

    def _project(self, world):
        uv, z = self.camera.project(torch.from_numpy(np.asarray(world, np.float64)), return_depth=True)
        return uv.numpy(), z.numpy()

    def outside(self, world: np.ndarray) -> np.ndarray:
        """(M,) bool: the points (M, 3) the frame's silhouette rules out (class docstring)."""
        h, w = self.mask.shape
        uv, z = self._project(world)
        u, v = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
        idx = np.nonzero((z > 0) & (u >= 0) & (v >= 0) & (u < w) & (v < h))[0]
        out = np.zeros(len(uv), bool)
        bad = ~self.wide[v[idx], u[idx]]
        if self.depth is not None:
            d = self.depth[v[idx], u[idx]]
            bad &= ~((d > 0) & (d < z[idx] - self.tolerance))  # hidden behind something nearer: allowed
        out[idx[bad]] = True
        return out

    def pull(self, world: np.ndarray, reach: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices (n,) of the points outside (`outside`) and their targets (n, 3): the point's own
        depth on the ray of the nearest mask pixel; reach: only points at most this many pixels
        from the mask (None: all)."""
        idx = np.nonzero(self.outside(world))[0]
        if not self.mask.any() or not len(idx):
            return np.zeros(0, np.int64), np.zeros((0, 3))
        if self._nearest is None:  # (the mask's own pixels: themselves)
            from scipy.ndimage import distance_transform_edt

            self._nearest = distance_transform_edt(~self.mask, return_distances=False, return_indices=True)
        uv, z = self._project(np.asarray(world, np.float64)[idx])
        h, w = self.mask.shape
        u = np.clip(np.round(uv[:, 0]).astype(np.int64), 0, w - 1)
        v = np.clip(np.round(uv[:, 1]).astype(np.int64), 0, h - 1)
        near = np.stack([self._nearest[1][v, u], self._nearest[0][v, u]], 1).astype(np.float64)
        if reach is not None:
            ok = np.linalg.norm(near - uv, axis=1) <= reach
            idx, near, z = idx[ok], near[ok], z[ok]
        return idx, self.camera.unproject_points(torch.from_numpy(near), torch.from_numpy(z)).numpy()


@dataclass(frozen=True)
class NonRigidTrack:
    """points (M, 3): the (refined) canonical, in the keyframe's world coordinates; colors (M, 3)
    or None; deformed (T, M, 3): the canonical in every frame (world); graph; rotations (T, K, 3, 3),
    positions (T, K, 3): the node states; pairs (T,): data pairs used in each frame's last solve."""

    points: np.ndarray
    colors: np.ndarray | None
    deformed: np.ndarray
    graph: DeformationGraph
    rotations: np.ndarray
    positions: np.ndarray
    pairs: np.ndarray


def track_nonrigid(points, colors, keyframe: int, frames: np.ndarray, fg_depth: np.ndarray, cameras: Cameras, *,
                   node_spacing: float, tolerance: float, alpha: float = 2.0, beta: float = 0.02,
                   rounds: int = 4, iterations: int = 3, flow_weight: float = 1.0, flow_check: float = 1.0,
                   closest_weight: float = 0.0, velocity: float = 1.0, hops=(1, 2, 4),
                   refine: bool = True, settle: float = 0.0, flow_scale: float | None = None,
                   workers: int = 1, silhouettes=None, silhouette_weight: float = 1.0,
                   silhouette_reach: float | None = None) -> NonRigidTrack:
    """Deform the canonical `points` (M, 3) (world coordinates of frame `keyframe`) into every
    frame (module docstring). frames uint8 (T, H, W, 3) (for the flow), fg_depth (T, H, W) the
    cleaned foreground depth (0 elsewhere), cameras (T,); tolerance: the depth agreement of
    projective pairs (world units; the first round of each frame accepts 3×); hops: the earlier
    frames along the chain whose flow pairs enter each frame's fit; closest_weight: weight of
    nearest-frame-point pairs (0 by default: tried, they hold the model back where it was);
    velocity: how much of the last step the prediction p̂ repeats; settle: a frame's re-pairing
    rounds stop (after the second) once the deformed points move less than this (RMS, world units)
    between rounds (0: always `rounds`); flow_scale: the flow's image scale (`FlowCache`; None:
    automatic, 0.5 at 480×832); workers: 2 computes the flows ahead on a second thread while the
    solves run (the same numbers as 1); silhouettes: per frame a `Silhouette` (None: no
    silhouette term): the deformed points a frame's silhouette rules out are paired, with weight
    `silhouette_weight`, with their own depth on the ray of the nearest mask pixel (only those
    within `silhouette_reach` pixels of the mask; None: all)."""
    pts = np.asarray(points, np.float64)
    graph = build_graph(pts, node_spacing)
    T = len(fg_depth)
    cams = cameras.to(dtype=torch.float64)
    K = len(graph.nodes)
    Rs = np.zeros((T, K, 3, 3))
    Ps = np.zeros((T, K, 3))
    pairs = np.zeros(T, np.int64)
    Rs[keyframe] = np.eye(3)
    Ps[keyframe] = graph.nodes
    order_f = list(range(keyframe, T))
    order_b = list(range(keyframe, -1, -1))
    flows = FlowCache(frames, fg_depth > 0, scale=flow_scale, keep=False)  # each pair is read once
    if workers > 1:  # the flows in the order the tracking needs them, both directions
        need = []
        for order in (order_f, order_b):
            for n in range(1, len(order)):
                need += [ab for hop in hops if n - hop >= 0
                         for ab in ((order[n - hop], order[n]), (order[n], order[n - hop]))]
        flows.prefetch(need)
    deformed = np.zeros((T, len(pts), 3))
    deformed[keyframe] = pts
    from scipy.spatial import cKDTree

    clouds = [cams[f].unproject_points(torch.from_numpy(np.stack(np.nonzero(fg_depth[f])[::-1], 1).astype(np.float64)),
                                       torch.from_numpy(fg_depth[f][fg_depth[f] > 0].astype(np.float64))).numpy()
              for f in range(T)]
    trees = [cKDTree(c) if len(c) else None for c in clouds]
    # the keyframe itself: its completed cloud is in its pose; a light fit removes nothing, so keep it
    for order in (order_f, order_b):
        for n in range(1, len(order)):
            f, prev = order[n], order[n - 1]
            prev2 = order[n - 2] if n >= 2 else None
            R, p = Rs[prev].copy(), Ps[prev].copy()
            p_hat = p + velocity * (p - Ps[prev2]) if prev2 is not None else p
            fi, fy = [], []
            for hop in hops:  # pairs from earlier solved frames too: their flow errors do not add up as a chain
                if n - hop < 0:
                    continue
                src = order[n - hop]
                i, y = _flow_pairs(deformed[src], fg_depth[src], cams[src], fg_depth[f], cams[f],
                                   flows.flow(src, f), flows.flow(f, src), tolerance, flow_check)
                fi.append(i)
                fy.append(y)
            fi, fy = np.concatenate(fi), np.concatenate(fy)
            p = p_hat.copy()
            last = None
            for r in range(rounds):
                cur = graph.deform(pts, R, p)
                if settle > 0 and last is not None and r >= 2 and \
                        np.sqrt(((cur - last) ** 2).sum(1).mean()) < settle:
                    break  # the pairs have settled: another round would pair the same points
                last = cur
                pi, py = _projective(cur, fg_depth[f], cams[f], tolerance * (3 if r == 0 else 1))
                if closest_weight > 0 and len(pi):  # visible points: their nearest frame point (geometry's lateral cue)
                    d, nn = trees[f].query(cur[pi], k=1, distance_upper_bound=2 * tolerance)
                    ok = np.isfinite(d)
                    ci, cy = pi[ok], clouds[f][nn[ok]]
                else:
                    ci, cy = np.zeros(0, np.int64), np.zeros((0, 3))
                # flow pairs whose partner disagrees wildly with the current estimate are dropped after round 0
                keep = np.ones(len(fi), bool) if r == 0 else np.linalg.norm(cur[fi] - fy, axis=1) < 3 * tolerance
                idx = np.concatenate([pi, fi[keep], ci])
                tgt = np.concatenate([py, fy[keep], cy])
                if silhouettes is not None and silhouette_weight > 0:  # points the frame's silhouette rules out
                    si, sy = silhouettes[f].pull(cur, silhouette_reach)
                else:
                    si, sy = np.zeros(0, np.int64), np.zeros((0, 3))
                idx = np.concatenate([idx, si])
                tgt = np.concatenate([tgt, sy])
                wts = np.concatenate([np.ones(len(pi)), np.full(int(keep.sum()), flow_weight),
                                      np.full(len(ci), closest_weight), np.full(len(si), silhouette_weight)])
                if len(idx) < 10:
                    break
                R, p = _solve(graph, pts, R, p, idx, tgt, wts, p_hat, alpha=alpha, beta=beta, iterations=iterations)
                pairs[f] = len(idx)
            Rs[f], Ps[f] = R, p
            deformed[f] = graph.deform(pts, R, p)
    flows.close()
    if refine:
        pts = _refine(graph, pts, Rs, Ps, fg_depth, cams, tolerance)
        deformed = np.stack([graph.deform(pts, Rs[f], Ps[f]) for f in range(T)])
    cols = None if colors is None else np.asarray(colors)
    return NonRigidTrack(pts, cols, deformed, graph, Rs, Ps, pairs)


def _refine(graph, pts, Rs, Ps, fg_depth, cams, tolerance, min_views: int = 2):
    """Canonical refinement (module docstring): median back-rotated residual per point."""
    T = len(fg_depth)
    lists_i, lists_r = [], []
    for f in range(T):
        cur = graph.deform(pts, Rs[f], Ps[f])
        i, y = _projective(cur, fg_depth[f], cams[f], tolerance)
        if len(i) == 0:
            continue
        Rp = graph.point_rotations(Rs[f])[i]
        lists_i.append(i)
        lists_r.append(np.einsum("nba,nb->na", Rp, y - cur[i]))  # Rᵀ (y − x')
    if not lists_i:
        return pts
    i = np.concatenate(lists_i)
    r = np.concatenate(lists_r)
    order = np.argsort(i, kind="stable")
    i, r = i[order], r[order]
    counts = np.bincount(i, minlength=len(pts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = pts.copy()
    for q in np.nonzero(counts >= min_views)[0]:
        out[q] += np.median(r[starts[q]:starts[q] + counts[q]], axis=0)
    return out
