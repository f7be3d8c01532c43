"""Z-buffer splatting of coloured point clouds: `splat` renders points as discs (or squares) of a
given radius in pixels, the nearest point winning each pixel, for cameras of any batch shape.

One `scatter_reduce(amin)` per cloud over an int64 key resolves the z-buffer: the key holds the
point's float32 depth bits in its high 32 bits (positive floats order like their bit patterns)
and the point index in the low 32, so the smallest key is the nearest point, ties going to the
lower index. The footprint is then a minimum over shifted copies of that nearest-pixel image.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch

from .cameras import Cameras
from .dtypes import common_float_dtype
from .errors import GeometryError
from .pixels import parse_image_size
from .pointcloud import as_colors

__all__ = ["SPLAT_EMPTY_DEPTH", "SplatResult", "splat", "splat_footprint"]

SPLAT_EMPTY_DEPTH = 0.0  # depth where no point lands (as geom3d.gl's EMPTY_DEPTH)
_NO_HIT = torch.iinfo(torch.int64).max


@dataclass(frozen=True, eq=False)
class SplatResult:
    """What `splat` draws, for cameras of batch shape (...):

    rgb (..., H, W, 3) the winning point's colour (background where empty); depth (..., H, W) its
    camera z (SPLAT_EMPTY_DEPTH = 0 where empty); mask (..., H, W) bool; index (..., H, W) int64,
    the winning point's index in its cloud (−1 where empty)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor


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


def _source_rows(batch_of_input: torch.Size, batch: torch.Size) -> list[int]:
    """For each view of the flattened result batch, the row of the flattened input it reads:
    broadcasting by index, so that a cloud shared by many cameras is never copied."""
    n_in = math.prod(batch_of_input)
    rows = torch.arange(n_in).reshape(batch_of_input).expand(batch)
    return rows.reshape(-1).tolist()


def splat(points, colors, cameras: Cameras, image_size=None, *, radius: float = 1.0, shape: str = "disc",
          background=0.0, near: float = 1e-6) -> SplatResult:
    """Z-buffer splatting of point clouds under cameras of any batch shape.

    Each point is drawn at its nearest pixel (round(u), round(v)) and at the pixels around it
    given by `splat_footprint(radius, shape)`: for a disc, the offsets (dx, dy) with
    dx² + dy² <= radius², so radius < 1 draws one pixel, radius 1 a plus of 5 pixels, radius 1.5
    a 3×3 square; for a square, max(|dx|, |dy|) <= radius. Where footprints overlap, the point
    with the smallest camera z wins (depths compared in float32; ties: the lower point index).
    Points with z <= near, or non-finite, are dropped.

    Args:
        points: (N, 3) world points shared by every camera, or (..., N, 3) clouds whose batch
            dimensions broadcast against the cameras' (one cloud per camera, or per row, ...).
        colors: (N, 3) / (..., N, 3) in [0, 1] (uint8 is scaled by 1/255), or None (white).
        cameras: `Cameras` of any batch shape S.
        image_size: (H, W); defaults to `cameras.image_size` and must equal it when given.
        radius, shape: the footprint (see above); background: colour of empty pixels (a number
            or RGB); near: the smallest camera z drawn.

    Returns:
        `SplatResult` with leading shape broadcast(S, the clouds' batch shape). Floating outputs
        take the common floating dtype of points, colors and cameras (integers count as float32),
        on the points' device.
    """
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"splat: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if image_size is not None and parse_image_size(image_size) != tuple(cameras.image_size):
        raise GeometryError(f"splat: image_size {tuple(image_size)} differs from the cameras' {cameras.image_size}")
    h, w = cameras.image_size
    pts = torch.as_tensor(points)
    if pts.ndim < 2 or pts.shape[-1] != 3:
        raise GeometryError(f"splat: points must be (N, 3) or (..., N, 3), got {tuple(pts.shape)}")
    n = pts.shape[-2]
    if n >= 2**31:
        raise GeometryError("splat handles fewer than 2**31 points")
    cols = None if colors is None else torch.as_tensor(colors, device=pts.device)
    if cols is not None and (cols.ndim < 2 or cols.shape[-2:] != (n, 3)):
        raise GeometryError(f"splat: colors must be (N, 3) or (..., N, 3) with N = {n}, got {tuple(cols.shape)}")
    try:
        batch = torch.broadcast_shapes(cameras.batch_shape, pts.shape[:-2], *(() if cols is None else
                                                                              (cols.shape[:-2],)))
    except RuntimeError:
        raise GeometryError(f"splat: the batch shapes of the cameras {tuple(cameras.batch_shape)}, points "
                            f"{tuple(pts.shape[:-2])} and colors {None if cols is None else tuple(cols.shape[:-2])} "
                            "do not broadcast") from None
    device = pts.device
    dtype = common_float_dtype(pts, cols, cameras.R)
    cloud_rows = _source_rows(pts.shape[:-2], batch)
    pts = pts.detach().to(dtype).reshape(math.prod(pts.shape[:-2]), n, 3)
    color_rows = None
    if cols is not None:
        color_batch = cols.shape[:-2]
        cols = as_colors(cols, dtype, "splat").detach().reshape(math.prod(color_batch), n, 3)
        color_rows = _source_rows(color_batch, batch)
    offsets = splat_footprint(radius, shape)
    reach = max(max(abs(dx), abs(dy)) for dx, dy in offsets)
    camera_rows = _source_rows(cameras.batch_shape, batch)
    # P = K [R | t] maps a point to (u z, v z, z), composed in float64
    P = cameras.to(device=device, dtype=torch.float64).projection_matrix().detach().reshape(-1, 3, 4)
    B = math.prod(batch)

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
            cloud = pts[cloud_rows[b]]
            Pb = P[camera_rows[b]].to(dtype)
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
                torch.index_select(cols[color_rows[b]], 0, safe, out=flat_rgb)
            if grey_bg is not None:
                flat_rgb.masked_fill_(miss[:, None], grey_bg)
            else:
                flat_rgb[miss] = bg
    return SplatResult(rgb=rgb.reshape(*batch, h, w, 3), depth=depth.reshape(*batch, h, w),
                       mask=(winner >= 0).reshape(*batch, h, w), index=winner.reshape(*batch, h, w))
