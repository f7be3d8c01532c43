"""Point clouds: from depth maps, z-buffer splatting, voxel down-sampling and outlier removal.

- `depth_to_points`: a depth map (camera z) to a coloured world-space point cloud (Cameras.unproject).
- `splat`: render points as discs (or squares) of a given radius in pixels, the nearest point
  winning each pixel, for a batch of cameras. One `scatter_reduce(amin)` per footprint offset
  over an int64 key resolves the z-buffer: the key holds the point's float32 depth bits in its
  high 32 bits (positive floats order like their bit patterns) and the point index in the low 32,
  so the smallest key is the nearest point, ties going to the lower index.
- `voxel_downsample`, `remove_statistical_outliers`: Open3D's algorithms, run by Open3D when it
  is installed, otherwise by the torch (+ scipy k-d tree) implementation here, which computes
  the same result (tested equal).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

from aware3d_utils import available, require

from .cameras import Cameras
from .errors import GeometryError

__all__ = ["depth_to_points", "splat", "splat_footprint", "voxel_downsample", "remove_statistical_outliers",
           "SPLAT_EMPTY_DEPTH"]

SPLAT_EMPTY_DEPTH = 0.0  # depth where no point lands (as geom3d.gl's EMPTY_DEPTH)
_NO_HIT = torch.iinfo(torch.int64).max


# ---------------------------------------------------------------------------------------- depth -> points
def depth_to_points(depth: torch.Tensor, cameras: Cameras, rgb: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None):
    """Back-project a depth map of camera z into a world-space point cloud.

    Args:
        depth: (H, W) or (B, H, W) camera z; pixels with depth <= 0 or non-finite are skipped
            (so the 0 that renderers write where empty drops out).
        cameras: matching Cameras (unbatched, or batch B).
        rgb: optional colours (H, W, 3) / (B, H, W, 3), float in [0, 1] or uint8.
        mask: optional bool (H, W) / (B, H, W): only these pixels.

    Returns:
        (points (N, 3), colours (N, 3) or None), pixels in row-major order, view after view.
    """
    depth = torch.as_tensor(depth)
    if not depth.is_floating_point():
        depth = depth.to(cameras.dtype)
    h, w = cameras.image_size
    if depth.shape[-2:] != (h, w) or depth.ndim not in (2, 3):
        raise GeometryError(f"depth must be (H, W) or (B, H, W) with (H, W) = {(h, w)}, got {tuple(depth.shape)}")
    batched = depth.ndim == 3
    d = depth if batched else depth[None]
    cams = cameras.reshape(-1) if cameras.batch_shape else cameras.reshape(1)
    if len(cams) not in (1, d.shape[0]):
        raise GeometryError(f"{len(cams)} cameras for {d.shape[0]} depth maps")
    cams = cams.to(device=d.device, dtype=d.dtype)
    world = cams.unproject(d) if len(cams) == d.shape[0] else cams.unproject(d[:, None])[:, 0]  # (B, H, W, 3)
    keep = torch.isfinite(d) & (d > 0)
    if mask is not None:
        m = torch.as_tensor(mask, dtype=torch.bool, device=d.device)
        m = m if m.ndim == 3 else m[None]
        if m.shape[-2:] != (h, w):
            raise GeometryError(f"mask of shape {tuple(mask.shape)} does not match the depth map {(h, w)}")
        keep = keep & m
    points = world[keep]
    colours = None
    if rgb is not None:
        c = torch.as_tensor(rgb, device=d.device)
        c = c.to(d.dtype) / 255.0 if c.dtype == torch.uint8 else c.to(d.dtype)
        c = c if c.ndim == 4 else c[None]
        if c.shape[-3:] != (h, w, 3):
            raise GeometryError(f"rgb must be (H, W, 3) or (B, H, W, 3) with (H, W) = {(h, w)}, got {tuple(rgb.shape)}")
        colours = c.expand(d.shape[0], h, w, 3)[keep]
    return points, colours


# ---------------------------------------------------------------------------------------- splatting
def splat_footprint(radius: float, shape: str = "disc") -> tuple[tuple[int, int], ...]:
    """Pixel offsets (dx, dy) a splat covers around its point's nearest pixel: those with
    dx² + dy² <= radius² ("disc") or max(|dx|, |dy|) <= radius ("square"); (0, 0) always."""
    if shape not in ("disc", "square"):
        raise GeometryError(f"splat shape must be 'disc' or 'square', got {shape!r}")
    radius = float(radius)
    if not (radius >= 0 and math.isfinite(radius)):
        raise GeometryError(f"splat radius must be a non-negative number of pixels, got {radius}")
    reach = int(math.floor(radius))
    offsets = [(dx, dy) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)
               if shape == "square" or dx * dx + dy * dy <= radius * radius]
    return tuple(sorted(offsets, key=lambda o: (abs(o[0]) + abs(o[1]), o[1], o[0])))


_INDEX_CACHE: dict = {}


def _point_indices(n: int, device) -> torch.Tensor:
    """arange(n) as int32, kept for the last size and device (splatting runs per frame)."""
    key = (n, str(device))
    if key not in _INDEX_CACHE:
        _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = torch.arange(n, dtype=torch.int32, device=device)
    return _INDEX_CACHE[key]


def _depth_index_key(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """int64 keys (N,): the float32 bits of z (> 0) in the high word, the int32 index in the low."""
    if sys.byteorder == "little":  # write both 32-bit halves directly: no shifts
        pair = torch.empty(z.shape[0], 2, dtype=torch.int32, device=z.device)
        pair[:, 0] = index
        pair[:, 1] = z.view(torch.int32)
        return pair.view(torch.int64).view(-1)
    return (z.view(torch.int32).to(torch.int64) << 32) | index.to(torch.int64)


def splat(points: torch.Tensor, colours: torch.Tensor | None, cameras: Cameras, image_size=None,
          radius: float = 1.0, *, shape: str = "disc", background=0.0, near: float = 1e-6) -> dict:
    """Z-buffer splatting of a point cloud under a batch of cameras.

    Each point is drawn at its nearest pixel (round(u), round(v)) and at the pixels around it
    given by `splat_footprint(radius, shape)`: for a disc, the offsets (dx, dy) with
    dx² + dy² <= radius², so radius < 1 draws one pixel, radius 1 a plus of 5 pixels, radius 1.5
    a 3×3 square; for a square, max(|dx|, |dy|) <= radius. Where footprints overlap, the point
    with the smallest camera z wins (depths compared in float32; ties: the lower point index).
    Points with z <= near, or non-finite, are dropped.

    Args:
        points: (N, 3) world points, shared by all cameras, or (B, N, 3), one cloud per camera.
        colours: (N, 3) / (B, N, 3) in [0, 1] (uint8 is scaled), or None (rgb is then white).
        cameras: Cameras with any batch shape (flattened to B); image_size must match when given.
        background: colour of empty pixels (a number or RGB).

    Returns:
        dict with rgb (B, H, W, 3), depth (B, H, W) camera z of the winning point
        (SPLAT_EMPTY_DEPTH = 0 where empty), mask (B, H, W) bool and index (B, H, W) int64, the
        winning point's index in its cloud (−1 where empty).
    """
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if image_size is not None and tuple(int(s) for s in image_size) != tuple(cameras.image_size):
        raise GeometryError(f"image_size {tuple(image_size)} differs from the cameras' {cameras.image_size}")
    cams = cameras.reshape(-1) if cameras.batch_shape else cameras.reshape(1)
    B = len(cams)
    h, w = cams.image_size
    pts = torch.as_tensor(points)
    if not pts.is_floating_point():
        pts = pts.to(cams.dtype)
    if pts.ndim not in (2, 3) or pts.shape[-1] != 3 or (pts.ndim == 3 and pts.shape[0] not in (1, B)):
        raise GeometryError(f"points must be (N, 3) or (B, N, 3) for B = {B} cameras, got {tuple(pts.shape)}")
    pts = pts.detach().reshape(pts.shape[0] if pts.ndim == 3 else 1, pts.shape[-2], 3)
    n = pts.shape[1]
    if n >= 2**31:
        raise GeometryError("splat handles fewer than 2**31 points")
    cols = None
    if colours is not None:
        cols = torch.as_tensor(colours, device=pts.device)
        cols = cols.to(pts.dtype) / 255.0 if cols.dtype == torch.uint8 else cols.to(pts.dtype)
        if cols.ndim not in (2, 3) or cols.shape[-2:] != (n, 3) or (cols.ndim == 3 and cols.shape[0] not in (1, B)):
            raise GeometryError(f"colours must be (N, 3) or (B, N, 3) with N = {n}, got {tuple(cols.shape)}")
        cols = cols.detach().reshape(-1, n, 3)
    offsets = splat_footprint(radius, shape)
    reach = max(max(abs(dx), abs(dy)) for dx, dy in offsets)
    device, dtype = pts.device, pts.dtype
    # P = K [R | t] maps a point to (u z, v z, z), composed in float64
    P = cams.to(device=device, dtype=torch.float64).projection_matrix().detach()

    index = _point_indices(n, device)
    ring = reach + 1  # nearest pixels up to `reach` outside the image count; the ring beyond is a dump
    hp, wp = h + 2 * ring, w + 2 * ring
    rgb = torch.empty(B, h, w, 3, dtype=dtype, device=device)
    depth = torch.empty(B, h, w, dtype=dtype, device=device)
    winner = torch.empty(B, h, w, dtype=torch.int64, device=device)
    bg = torch.as_tensor(background, dtype=dtype, device=device).expand(3)
    grey_bg = float(bg[0]) if bool((bg == bg[0]).all()) else None
    proj = torch.empty(3, n, dtype=dtype, device=device)
    with torch.no_grad():
        for b in range(B):
            cloud = pts[min(b, pts.shape[0] - 1)]
            Pb = P[b].to(dtype)
            torch.matmul(Pb[:, :3], cloud.T, out=proj)
            proj.add_(Pb[:, 3:])  # rows: u z, v z, z
            z = proj[2]
            # nearest pixel, clamped into a ring one pixel beyond the footprint's reach: points
            # out there (or non-finite) land where no footprint reaches back into the image
            u = proj[0].div_(z).round_().nan_to_num_(nan=-ring).clamp_(-ring, w - 1 + ring)
            v = proj[1].div_(z).round_().nan_to_num_(nan=-ring).clamp_(-ring, h - 1 + ring)
            pix = v.add_(ring).mul_(wp).add_(u.add_(ring)).to(torch.int64)
            # the key: float32 depth bits (ordered like the depths, as z > 0) above the point
            # index; points behind the camera keep a key that never wins
            zf = z if z.dtype == torch.float32 else z.to(torch.float32)
            key = _depth_index_key(zf, index).masked_fill_(~(z > near), _NO_HIT)
            # nearest point per nearest pixel ...
            near_key = torch.full((hp, wp), _NO_HIT, dtype=torch.int64, device=device)
            near_key.view(-1).scatter_reduce_(0, pix, key, "amin")
            # ... then per pixel the minimum over the footprint: exact, since a footprint depends
            # only on the point's nearest pixel, and the minimum of minima is the minimum
            best = near_key[ring:ring + h, ring:ring + w].clone()
            for dx, dy in offsets:
                if dx or dy:
                    shifted = near_key[ring - dy:ring - dy + h, ring - dx:ring - dx + w]
                    torch.minimum(best, shifted, out=best)
            best = best.view(-1)
            hit = best != _NO_HIT
            miss = ~hit
            win = winner[b].view(-1)
            torch.bitwise_and(best, 0xFFFFFFFF, out=win)
            win.masked_fill_(miss, -1)
            safe = win.clamp_min(0)
            if dtype == torch.float32:  # the key holds the exact float32 depth
                zsel = (best >> 32).to(torch.int32).view(torch.float32)
            else:
                zsel = z.index_select(0, safe)
            depth[b].view(-1).copy_(zsel).masked_fill_(miss, SPLAT_EMPTY_DEPTH)
            flat_rgb = rgb[b].view(-1, 3)
            if cols is None:
                flat_rgb.fill_(1.0)
            else:
                torch.index_select(cols[min(b, cols.shape[0] - 1)], 0, safe, out=flat_rgb)
            if grey_bg is not None:
                flat_rgb.masked_fill_(miss[:, None], grey_bg)
            else:
                flat_rgb[miss] = bg
    return {"rgb": rgb, "depth": depth, "mask": winner >= 0, "index": winner}


# ---------------------------------------------------------------------------------------- filters
def _as_cloud(points, colours, name: str):
    pts = torch.as_tensor(points)
    if not pts.is_floating_point():
        pts = pts.to(torch.get_default_dtype())
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise GeometryError(f"{name}: points must be (N, 3), got {tuple(pts.shape)}")
    if not torch.isfinite(pts).all():
        raise GeometryError(f"{name}: points contain NaN or infinite values")
    if colours is not None:
        colours = torch.as_tensor(colours, device=pts.device)
        colours = colours.to(pts.dtype) / 255.0 if colours.dtype == torch.uint8 else colours.to(pts.dtype)
        if colours.shape != pts.shape:
            raise GeometryError(f"{name}: colours must be (N, 3) like the points, got {tuple(colours.shape)}")
    return pts, colours


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


def voxel_downsample(points: torch.Tensor, colours: torch.Tensor | None, voxel_size: float, *,
                     backend: str | None = None):
    """Average the points (and colours) falling in each cube of side `voxel_size`, as Open3D's
    `PointCloud.voxel_down_sample` does: the grid starts at min(points) − voxel_size/2, a point p
    lies in voxel floor((p − origin) / voxel_size) (float64), and each voxel's output is the
    float64 mean of its points, in input order.

    Open3D returns voxels in hash-map order; both back ends here sort them by voxel index
    (x, then y, then z), so the two give the same output.

    Args:
        points: (N, 3); colours: (N, 3) or None; backend: "auto" (Open3D when installed),
            "open3d" or "torch".

    Returns:
        (points (M, 3), colours (M, 3) or None) in the input dtype.
    """
    pts, cols = _as_cloud(points, colours, "voxel_downsample")
    voxel_size = float(voxel_size)
    if not voxel_size > 0:
        raise GeometryError(f"voxel_downsample: voxel_size must be positive, got {voxel_size}")
    if pts.shape[0] == 0:
        return pts.clone(), None if cols is None else cols.clone()
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
    return out_pts, out_cols


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


def remove_statistical_outliers(points: torch.Tensor, nb_neighbors: int, std_ratio: float, *,
                                colours: torch.Tensor | None = None, backend: str | None = None):
    """Open3D's statistical outlier removal.

    For each point, d̄ is the mean distance to its `nb_neighbors` nearest points (the point itself
    included, as Open3D's k-d tree search returns it). With μ the mean and σ the sample standard
    deviation (Bessel) of the positive d̄, points with 0 < d̄ < μ + std_ratio·σ are kept.

    Args:
        points: (N, 3); colours: optional (N, 3) filtered alongside; backend: "auto" (Open3D
            when installed), "open3d" or "torch" (scipy's k-d tree for the neighbours).

    Returns:
        (points (M, 3), colours (M, 3) or None, kept indices (M,) int64, ascending).
    """
    pts, cols = _as_cloud(points, colours, "remove_statistical_outliers")
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
    return pts[kept], (None if cols is None else cols[kept]), kept


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

