"""Point-cloud algorithms: depth maps to points (with each point's view and pixel), voxel
down-sampling and statistical outlier removal. Files: `geom3d.pointcloud_io`; splatting: `geom3d.splat`
(module `geom3d.splatting`).

- `depth_to_points`: depth maps (camera z) to a coloured world-space cloud (`Cameras.unproject`)
  that remembers where every point came from (`DepthPoints.view`, `DepthPoints.pixel`).
- `voxel_downsample`, `remove_statistical_outliers`: Open3D's algorithms, run by Open3D when it
  is installed, otherwise by the torch (+ scipy k-d tree) implementation here, which computes
  the same result (tested equal).

Every function takes `(points, colors=None, ...)`; floating inputs (cameras included) are
promoted to their common dtype (integers count as float32) and the results have that dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from aware3d_utils import available, require

from .cameras import Cameras
from .dtypes import broadcast_shapes, common_float_dtype
from .errors import GeometryError

__all__ = ["PointCloud", "DepthPoints", "depth_to_points", "voxel_downsample", "remove_statistical_outliers"]


@dataclass(frozen=True, eq=False)
class PointCloud:
    """points (N, 3), colors (N, 3) in [0, 1] or None, and index (N,) int64 or None: for a filter
    that keeps a subset of its input (`remove_statistical_outliers`), each point's input row."""

    points: torch.Tensor
    colors: torch.Tensor | None = None
    index: torch.Tensor | None = None


@dataclass(frozen=True, eq=False)
class DepthPoints:
    """A cloud back-projected from depth maps, with each point's provenance.

    points (N, 3) world coordinates; colors (N, 3) in [0, 1] or None; view (N,) int64, the flat
    (row-major) index of the point's depth map in the batch shape S of the call (0 for one map;
    `torch.unravel_index(view, S)` gives the batch coordinates); pixel (N, 2) int64, its
    (row, col). Points come view after view, pixels in row-major order."""

    points: torch.Tensor
    colors: torch.Tensor | None
    view: torch.Tensor
    pixel: torch.Tensor


def as_colors(colors, dtype: torch.dtype, who: str) -> torch.Tensor:
    """Colours as floats in [0, 1] of `dtype`: uint8 is scaled by 1/255, other types are cast."""
    c = torch.as_tensor(colors)
    if c.dtype == torch.bool or c.is_complex():
        raise GeometryError(f"{who}: colors must be numbers, got {c.dtype}")
    return c.to(dtype) / 255.0 if c.dtype == torch.uint8 else c.to(dtype)


# ---------------------------------------------------------------------------------------- depth -> points
def depth_to_points(depth, cameras: Cameras, colors=None, *, mask=None) -> DepthPoints:
    """Back-project depth maps of camera z into one world-space point cloud.

    Args:
        depth: (..., H, W) camera z, batch dimensions broadcasting against the cameras'; pixels
            with depth <= 0 or non-finite are skipped (so the 0 renderers write where empty drops out).
        cameras: `Cameras` of any batch shape; (H, W) must be their image size.
        colors: optional (..., H, W, 3), float in [0, 1] or uint8.
        mask: optional bool (..., H, W): only these pixels.

    Returns:
        `DepthPoints` (points, colors, view, pixel) in the common floating dtype of depth,
        colors and cameras, on the depth's device; differentiable with respect to depth.
    """
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"depth_to_points: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    depth = torch.as_tensor(depth)
    h, w = cameras.image_size
    if depth.ndim < 2 or depth.shape[-2:] != (h, w):
        raise GeometryError(f"depth_to_points: depth must be (..., H, W) with (H, W) = {(h, w)}, "
                            f"got {tuple(depth.shape)}")
    device = depth.device
    dtype = common_float_dtype(depth, colors, cameras.R)
    shapes = {"cameras": tuple(cameras.batch_shape), "depth": tuple(depth.shape[:-2])}
    c = m = None
    if colors is not None:
        c = as_colors(torch.as_tensor(colors, device=device), dtype, "depth_to_points")
        if c.ndim < 3 or c.shape[-3:] != (h, w, 3):
            raise GeometryError(f"depth_to_points: colors must be (..., H, W, 3) with (H, W) = {(h, w)}, "
                                f"got {tuple(c.shape)}")
        shapes["colors"] = tuple(c.shape[:-3])
    if mask is not None:
        m = torch.as_tensor(mask, device=device).to(torch.bool)
        if m.ndim < 2 or m.shape[-2:] != (h, w):
            raise GeometryError(f"depth_to_points: mask of shape {tuple(m.shape)} does not match the depth "
                                f"map {(h, w)}")
        shapes["mask"] = tuple(m.shape[:-2])
    try:
        batch = broadcast_shapes(*shapes.values())
    except RuntimeError:
        raise GeometryError(f"depth_to_points: batch shapes do not broadcast: {shapes}") from None
    d = depth.to(dtype).expand(*batch, h, w).reshape(-1, h, w)
    cams = cameras.to(device=device, dtype=dtype).expand(*batch).reshape(-1)
    world = cams.unproject(d)  # (B, H, W, 3)
    keep = torch.isfinite(d.detach()) & (d.detach() > 0)
    if m is not None:
        keep = keep & m.expand(*batch, h, w).reshape(-1, h, w)
    where = keep.nonzero()  # (N, 3): view, row, col, in row-major order
    points = world[keep]
    if c is not None:
        c = c.expand(*batch, h, w, 3).reshape(-1, h, w, 3)[keep]
    return DepthPoints(points=points, colors=c, view=where[:, 0].contiguous(), pixel=where[:, 1:].contiguous())


# ---------------------------------------------------------------------------------------- filters
def _as_cloud(points, colors, name: str):
    """(points (N, 3), colors (N, 3) or None) checked, in their common floating dtype."""
    pts = torch.as_tensor(points)
    dtype = common_float_dtype(pts, colors)
    pts = pts.to(dtype)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise GeometryError(f"{name}: points must be (N, 3), got {tuple(pts.shape)}")
    if not torch.isfinite(pts).all():
        raise GeometryError(f"{name}: points contain NaN or infinite values")
    if colors is not None:
        colors = as_colors(torch.as_tensor(colors, device=pts.device), dtype, name)
        if colors.shape != pts.shape:
            raise GeometryError(f"{name}: colors must be (N, 3) like the points, got {tuple(colors.shape)}")
    return pts, colors


def _use_open3d(backend: str | None) -> bool:
    backend = backend or "auto"
    if backend not in ("auto", "open3d", "torch"):
        raise GeometryError(f"backend must be 'auto', 'open3d' or 'torch', got {backend!r}")
    if backend == "open3d":
        require("open3d")
        return True
    return backend == "auto" and available("open3d")


def _voxel_keys(pts64: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Open3D's voxel index of each point, (N, 3) int64: floor((p − (min − s/2)) / s), in float64."""
    lo = pts64.amin(0) - voxel_size * 0.5
    hi = pts64.amax(0) + voxel_size * 0.5
    if voxel_size * (2**31 - 1) < float((hi - lo).max()):
        raise GeometryError(f"voxel_size {voxel_size} is too small for the extent of the cloud")
    return torch.floor((pts64 - lo) / voxel_size).to(torch.int64)


def voxel_downsample(points, colors=None, *, voxel_size: float, backend: str | None = None) -> PointCloud:
    """Average the points (and colours) falling in each cube of side `voxel_size`, as Open3D's
    `PointCloud.voxel_down_sample` does: the grid starts at min(points) − voxel_size/2, a point p
    lies in voxel floor((p − origin) / voxel_size) (float64), and each voxel's output is the
    float64 mean of its points, in input order.

    Open3D returns voxels in hash-map order; both back ends here sort them by voxel index
    (x, then y, then z), so the two give the same output.

    Args:
        points: (N, 3); colors: (N, 3) or None; voxel_size: the cube side; backend: "auto"
            (Open3D when installed), "open3d" or "torch".

    Returns:
        `PointCloud` (points (M, 3), colors (M, 3) or None, index None) in the common dtype.
    """
    pts, cols = _as_cloud(points, colors, "voxel_downsample")
    voxel_size = float(voxel_size)
    if not voxel_size > 0:
        raise GeometryError(f"voxel_downsample: voxel_size must be positive, got {voxel_size}")
    if pts.shape[0] == 0:
        return PointCloud(pts.clone(), None if cols is None else cols.clone())
    pts64 = pts.detach().double().cpu()
    keys = _voxel_keys(pts64, voxel_size)
    if _use_open3d(backend):
        o3d = require("open3d")
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts64.numpy()))
        if cols is not None:
            cloud.colors = o3d.utility.Vector3dVector(cols.detach().double().cpu().numpy())
        lo = (pts64.amin(0) - voxel_size * 0.5).numpy()
        hi = (pts64.amax(0) + voxel_size * 0.5).numpy()
        # the traced variant reports which input points made each output point: that is how we
        # learn each output's voxel and order them as the torch version does
        down, _, traces = cloud.voxel_down_sample_and_trace(voxel_size, lo, hi, False)
        first = torch.as_tensor([np.asarray(tr)[0] for tr in traces], dtype=torch.int64)
        order = _lexsort(keys[first])
        out_pts = torch.from_numpy(np.asarray(down.points))[order]
        out_cols = torch.from_numpy(np.asarray(down.colors))[order] if cols is not None else None
    else:
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)  # sorted lexicographically
        m = unique.shape[0]
        counts = torch.bincount(inverse, minlength=m).to(torch.float64)
        out_pts = _ordered_sum(pts64, inverse, m) / counts[:, None]
        out_cols = None
        if cols is not None:
            out_cols = _ordered_sum(cols.detach().double().cpu(), inverse, m) / counts[:, None]
    out_pts = out_pts.to(dtype=pts.dtype, device=pts.device)
    if out_cols is not None:
        out_cols = out_cols.to(dtype=pts.dtype, device=pts.device)
    return PointCloud(out_pts, out_cols)


def _ordered_sum(values: torch.Tensor, groups: torch.Tensor, m: int) -> torch.Tensor:
    """Per-group sums (m, C) of values (N, C), adding each group's members in input order as
    Open3D's accumulator does (a 1-D index_add_ on the CPU runs through the index in order), so
    that the float64 rounding matches."""
    out = torch.zeros(m, values.shape[1], dtype=values.dtype)
    for c in range(values.shape[1]):
        col = torch.zeros(m, dtype=values.dtype)
        col.index_add_(0, groups, values[:, c].contiguous())
        out[:, c] = col
    return out


def _lexsort(keys: torch.Tensor) -> torch.Tensor:
    """Order of rows of an (M, 3) int tensor sorted by column 0, then 1, then 2."""
    return torch.from_numpy(np.lexsort(keys.numpy().T[::-1]).copy())


def remove_statistical_outliers(points, colors=None, *, nb_neighbors: int, std_ratio: float,
                                backend: str | None = None) -> PointCloud:
    """Open3D's statistical outlier removal.

    For each point, d̄ is the mean distance to its `nb_neighbors` nearest points (the point itself
    included, as Open3D's k-d tree search returns it). With μ the mean and σ the sample standard
    deviation (Bessel) of the positive d̄, points with 0 < d̄ < μ + std_ratio·σ are kept.

    Args:
        points: (N, 3); colors: optional (N, 3) filtered alongside; backend: "auto" (Open3D
            when installed), "open3d" or "torch" (scipy's k-d tree for the neighbours).

    Returns:
        `PointCloud` (points (M, 3), colors (M, 3) or None, index (M,) int64: the kept input
        rows, ascending).
    """
    pts, cols = _as_cloud(points, colors, "remove_statistical_outliers")
    nb_neighbors = int(nb_neighbors)
    std_ratio = float(std_ratio)
    if nb_neighbors < 1 or not std_ratio > 0:
        raise GeometryError("remove_statistical_outliers: nb_neighbors and std_ratio must be positive, "
                            f"got {nb_neighbors} and {std_ratio}")
    n = pts.shape[0]
    if n == 0:
        kept = torch.zeros(0, dtype=torch.int64)
    elif _use_open3d(backend):
        o3d = require("open3d")
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.detach().double().cpu().numpy()))
        _, idx = cloud.remove_statistical_outlier(nb_neighbors, std_ratio)
        kept = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    else:
        kept = _statistical_inliers(pts.detach().double().cpu(), nb_neighbors, std_ratio)
    kept = kept.to(pts.device)
    return PointCloud(pts[kept], None if cols is None else cols[kept], kept)


def _statistical_inliers(pts64: torch.Tensor, k: int, std_ratio: float) -> torch.Tensor:
    from scipy.spatial import cKDTree

    n = pts64.shape[0]
    k_eff = min(k, n)
    tree = cKDTree(pts64.numpy())
    dist, _ = tree.query(pts64.numpy(), k=k_eff)
    dist = torch.from_numpy(np.asarray(dist, dtype=np.float64).reshape(n, k_eff))
    # Open3D sums the square roots of squared distances in ascending order
    avg = torch.zeros(n, dtype=torch.float64)
    for j in range(k_eff):
        avg += dist[:, j]
    avg /= k_eff
    positive = avg > 0
    valid = n  # every point found neighbours
    mean = float(_seq_sum(avg[positive])) / valid
    sq = float(_seq_sum((avg[positive] - mean) ** 2))
    std = math.sqrt(sq / (valid - 1)) if valid > 1 else float("nan")
    threshold = mean + std_ratio * std
    return torch.nonzero(positive & (avg < threshold)).reshape(-1)


def _seq_sum(values: torch.Tensor) -> float:
    """Left-to-right float64 sum (std::accumulate's order)."""
    return float(np.add.accumulate(values.numpy())[-1]) if values.numel() else 0.0

