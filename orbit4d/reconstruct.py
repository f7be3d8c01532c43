"""The 4D proxy's parts: static background, per-frame partial foreground, canonical foreground.

- `split_depth`: clean each depth map (orbit4d.depth) and split it into a foreground part (mask
  eroded by `margin` pixels) and a background part (outside the mask dilated by `margin`), so
  that no cleaning window and no flying pixel mixes the object with what is behind it.
- `fuse_background`: unproject the background parts of all frames (geom3d.depth_to_points),
  then voxel down-sampling and statistical outlier removal (geom3d, Open3D's algorithms).
- `partial_foregrounds`: one world-space `DepthPoints` per frame, with each point's (row, col).
- `build_canonical`: the model-free complete foreground. Each frame's partial cloud is
  registered into a growing model by point-to-plane ICP, initialised from the temporal chain
  (the previous frame's pose advanced by the last frame-to-frame motion): global feature
  matching flips near-symmetric objects by 180°, a chain does not. The registered clouds are
  fused (voxel average, outlier removal) in the canonical frame: frame 0's world frame moved to
  the centroid of frame 0's partial cloud. Each frame's chain pose (canonical → world) is kept
  as the initial estimate for `orbit4d.alignment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from aware3d_utils import torch_threads
from geom3d import (
    Cameras,
    DepthPoints,
    GeometryError,
    PointCloud,
    depth_to_points,
    remove_statistical_outliers,
    voxel_downsample,
)
from geom3d.align import Sim3, icp

from .depth import clean_depth

__all__ = ["single_threaded", "split_depth", "fuse_background", "partial_foregrounds", "Canonical", "build_canonical",
           "fuse_canonical", "foreground_voxel_size",
           "auto_voxel_size"]


def single_threaded():
    """`aware3d_utils.torch_threads(1)` (a context manager, or a decorator): the per-frame solves
    here are thousands of small tensor operations, where thread hand-offs cost more than they
    save (and oversubscribed cores make them stall); the previous thread count is restored."""
    return torch_threads(1)


def split_depth(depth: np.ndarray, masks: np.ndarray, *, margin: int = 3, clean: bool = True, window: int = 5):
    """(foreground depth (T, H, W), background depth (T, H, W)), 0 = unused.

    The foreground is cleaned with the local plane fit inside the mask's bounding box; the
    background, which only feeds a voxel average, with the median alone (`clean_depth`)."""
    fg, bg = np.zeros_like(depth), np.zeros_like(depth)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    pad = margin + window + 2
    for i in range(len(depth)):
        raw = np.where(np.isfinite(depth[i]) & (depth[i] > 0), depth[i], 0).astype(np.float32)
        m = masks[i].astype(np.uint8)
        inner = cv2.erode(m, kernel).astype(bool)
        outer = cv2.dilate(m, kernel).astype(bool)
        d_fg, d_bg = raw, raw
        if clean:
            d_bg = clean_depth(raw, window=window, average=False).depth
            d_fg = np.zeros_like(raw)
            rows, cols = np.nonzero(inner)
            if rows.size:
                r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, raw.shape[0])
                c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, raw.shape[1])
                d_fg[r0:r1, c0:c1] = clean_depth(raw[r0:r1, c0:c1], window=window).depth
        fg[i] = np.where(inner, d_fg, 0)
        bg[i] = np.where(~outer, d_bg, 0)
    return fg, bg


def foreground_voxel_size(partials: list[DepthPoints], voxel_size: float, samples: int = 100) -> float:
    """The voxel of the canonical cloud: `voxel_size`, but at least 1/`samples` of the object's
    typical bounding-box diagonal (a close-up object would otherwise give millions of points)."""
    diags = [float((p.points.amax(0) - p.points.amin(0)).norm()) for p in partials if p.points.shape[0] > 10]
    return max(float(voxel_size), float(np.median(diags)) / samples if diags else 0.0)


def auto_voxel_size(depth: np.ndarray, cameras: Cameras, pixels: float = 1.5) -> float:
    """A voxel of about `pixels` pixel footprints at the median depth."""
    z = float(np.median(depth[depth > 0])) if (depth > 0).any() else 1.0
    f = float(cameras.fx.reshape(-1).median())
    return pixels * z / f


def fuse_background(frames: np.ndarray, bg_depth: np.ndarray, cameras: Cameras, *, voxel_size: float | None = None,
                    nb_neighbors: int = 16, std_ratio: float = 2.0, max_points: int = 300_000) -> PointCloud:
    """The static background fused over frames: (points (N, 3), colors (N, 3)) in world coordinates.

    At most about `max_points` raw points are unprojected: frames evenly spread over the video
    (the first and last included), each at a pixel stride when one frame alone has more."""
    voxel_size = voxel_size or auto_voxel_size(bg_depth, cameras, 1.0)
    T = len(bg_depth)
    per_frame = max(1.0, float((bg_depth > 0).sum()) / T)
    stride = max(1, int(np.ceil(np.sqrt(per_frame / max_points))))
    use = np.unique(np.linspace(0, T - 1, int(np.clip(max_points * stride**2 // per_frame, 1, T))).round().astype(int))
    sub_cams = cameras[torch.from_numpy(use)]
    if stride > 1:  # keep every stride-th pixel; the cameras of the sub-sampled grid map pixel (i, j) to (s·i, s·j)
        scale = torch.diag(torch.tensor([1.0 / stride, 1.0 / stride, 1.0], dtype=sub_cams.dtype))
        K = scale @ sub_cams.K
        h, w = bg_depth[0][::stride, ::stride].shape
        sub_cams = Cameras(K, sub_cams.R, sub_cams.t, (h, w), check=False)
    d = np.ascontiguousarray(bg_depth[use][:, ::stride, ::stride])
    rgb = np.ascontiguousarray(frames[use][:, ::stride, ::stride])
    pts = depth_to_points(torch.from_numpy(d), sub_cams, torch.from_numpy(rgb))
    if pts.points.shape[0] == 0:
        return PointCloud(torch.zeros(0, 3), torch.zeros(0, 3))
    cloud = voxel_downsample(pts.points, pts.colors, voxel_size=voxel_size)
    if cloud.points.shape[0] > nb_neighbors:
        cloud = remove_statistical_outliers(cloud.points, cloud.colors, nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    return cloud


def partial_foregrounds(frames: np.ndarray, fg_depth: np.ndarray, cameras: Cameras) -> list[DepthPoints]:
    """One world-space cloud per frame (float64), with pixels (row, col)."""
    out = []
    cams = cameras.to(dtype=torch.float64)
    for i in range(len(fg_depth)):
        out.append(depth_to_points(torch.from_numpy(fg_depth[i]).double(), cams[i], torch.from_numpy(frames[i])))
    return out


@dataclass(frozen=True)
class Canonical:
    """points (M, 3) / colors (M, 3) in canonical coordinates; chain: Sim3 (T,) canonical → world
    per frame (the chain registration's estimate); fitness (T,) of each frame's registration."""

    points: torch.Tensor
    colors: torch.Tensor | None
    chain: Sim3
    fitness: np.ndarray


def _register(source: torch.Tensor, model: torch.Tensor, init: Sim3, distance: float, method: str,
              schedule=(10.0, 4.0, 3.0)) -> tuple[Sim3, float]:
    """ICP of a frame's cloud (world) onto the model (canonical), coarse to fine. The finest
    pairing distance stays at several voxels: with noisy depth a tight cut-off truncates the
    residuals on one side and biases the fit."""
    T, fit = init, 0.0
    for scale in schedule:
        res = icp(source, model, T, method=method, max_distance=scale * distance, max_iterations=20,
                  tolerance=1e-6)
        T, fit = res.transform, res.fitness
    return T, fit


@single_threaded()
def build_canonical(partials: list[DepthPoints], *, voxel_size: float, min_points: int = 30,
                    nb_neighbors: int = 16, std_ratio: float = 2.0, method: str = "point_to_point",
                    max_icp_points: int = 4000) -> Canonical:
    """Register and fuse the partial foreground clouds over frames (see the module docstring).

    Frames with fewer than `min_points` points, or whose registration finds no pairs, keep their
    chain prediction, add nothing and get fitness 0."""
    T = len(partials)
    first = next((i for i, p in enumerate(partials) if p.points.shape[0] >= min_points), None)
    if first is None:
        raise ValueError(f"no frame has {min_points} foreground points with depth: check the masks and depth")
    c0 = partials[first].points.mean(0)
    to_world = [None] * T  # canonical → world per frame
    to_world[first] = Sim3(torch.ones((), dtype=torch.float64), torch.eye(3, dtype=torch.float64), c0)
    fitness = np.zeros(T)
    fitness[first] = 1.0
    model = voxel_downsample(partials[first].points - c0, None, voxel_size=voxel_size).points
    model_size = model.shape[0]
    order = list(range(first + 1, T)) + list(range(first - 1, -1, -1))
    for f in order:
        step = 1 if f > first else -1
        prev, prev2 = to_world[f - step], to_world[f - 2 * step] if 0 <= f - 2 * step < T else None
        if prev2 is None:  # no velocity yet: move by the shift of the clouds' centroids
            shift = partials[f].points.mean(0) - partials[f - step].points.mean(0) \
                if partials[f].points.shape[0] and partials[f - step].points.shape[0] else torch.zeros(3)
            guess = Sim3(prev.scale, prev.R, prev.t + shift.to(prev.t.dtype))
        else:
            guess = prev.compose(prev2.inverse()).compose(prev)  # constant velocity
        pts = partials[f].points
        if pts.shape[0] > max_icp_points:  # an even subset is enough to register, and bounds the k-d tree queries
            pts = pts[torch.linspace(0, pts.shape[0] - 1, max_icp_points).long()]
        if pts.shape[0] < min_points:
            to_world[f] = guess
            continue
        try:
            inv, fit = _register(pts, model, guess.inverse(), voxel_size, method)
        except GeometryError:  # nothing within reach of the model: keep the prediction, fuse nothing
            to_world[f] = guess
            continue
        to_world[f], fitness[f] = inv.inverse(), fit
        model = torch.cat([model, inv.apply(pts)])
        if model.shape[0] > 1.5 * model_size:  # re-voxelise only when the model has grown by half
            model = voxel_downsample(model, None, voxel_size=voxel_size).points
            model_size = model.shape[0]
    chain = Sim3(torch.stack([t.scale for t in to_world]), torch.stack([t.R for t in to_world]),
                 torch.stack([t.t for t in to_world]))
    cloud = fuse_canonical(partials, chain, voxel_size=voxel_size, use=fitness > 0, nb_neighbors=nb_neighbors,
                           std_ratio=std_ratio)
    return Canonical(cloud.points, cloud.colors, chain, fitness)


def fuse_canonical(partials: list[DepthPoints], to_world: Sim3, *, voxel_size: float, use=None,
                   nb_neighbors: int = 16, std_ratio: float = 2.0, max_points_per_frame: int = 30_000) -> PointCloud:
    """The partial clouds mapped into the canonical frame by to_world⁻¹ (T,), voxel-averaged and
    cleaned of statistical outliers; `use` (T,) bool picks the frames (default all)."""
    inv = to_world.inverse()
    pts, cols = [], []
    for f, part in enumerate(partials):
        if (use is None or use[f]) and part.points.shape[0]:
            keep = slice(None)
            if part.points.shape[0] > max_points_per_frame:  # an even subset: the voxels average anyway
                keep = torch.linspace(0, part.points.shape[0] - 1, max_points_per_frame).long()
            pts.append(inv[f].apply(part.points[keep].double()))
            cols.append(None if part.colors is None else part.colors[keep])
    if not pts:
        raise ValueError("no frame contributes foreground points to the canonical cloud")
    colors = None if any(c is None for c in cols) else torch.cat(cols)
    cloud = voxel_downsample(torch.cat(pts), colors, voxel_size=voxel_size)
    if cloud.points.shape[0] > nb_neighbors:
        cloud = remove_statistical_outliers(cloud.points, cloud.colors, nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    return cloud
