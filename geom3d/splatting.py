"""Z-buffer splatting of coloured point clouds: `splat` renders points as discs (or squares) of a
given radius in pixels, the nearest point winning each pixel, for cameras of any batch shape;
`splat_index` is its z-buffer alone (depth and winning point), for one cloud or several layers.

One `scatter_reduce(amin)` per cloud over an int64 key resolves the z-buffer: the key holds the
point's float32 depth bits in its high 32 bits (positive floats order like their bit patterns)
and the point index in the low 32, so the smallest key is the nearest point, ties going to the
lower index. The footprint is then a minimum over shifted copies of that nearest-pixel image.

Speed (all per view, in place, on buffers allocated once per call): each cloud is laid out as
(3, N) once per call, which makes the projection one BLAS product (about 2x faster than on the
(N, 3) view, and the same sums); points with z <= near become NaN before the division, so they and non-finite points all
land in a dump ring outside the image and no mask is needed; the index half of every key is
written once per call; and the empty key's halves read as index −1 and depth NaN (→ 0), so the
winner's index and depth are two strided copies of the z-buffer.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch

from .cameras import Cameras
from .dtypes import broadcast_shapes, common_float_dtype
from .errors import GeometryError
from .pixels import parse_image_size
from .pointcloud import as_colors

__all__ = ["SPLAT_EMPTY_DEPTH", "SplatResult", "splat", "splat_footprint", "splat_index"]

SPLAT_EMPTY_DEPTH = 0.0  # depth where no point lands (as geom3d.gl's EMPTY_DEPTH)
_NO_HIT = torch.iinfo(torch.int64).max  # halves: index 0xFFFFFFFF (= −1 as int32), depth 0x7FFFFFFF (NaN)
# which int32 half of an int64 key holds the index and which the depth bits
_LOW, _HIGH = (0, 1) if sys.byteorder == "little" else (1, 0)


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


def _source_rows(batch_of_input: torch.Size, batch: torch.Size) -> list[int]:
    """For each view of the flattened result batch, the row of the flattened input it reads:
    broadcasting by index, so that a cloud shared by many cameras is never copied."""
    n_in = math.prod(batch_of_input)
    rows = torch.arange(n_in).reshape(batch_of_input).expand(batch)
    return rows.reshape(-1).tolist()


def _as_clouds(points, who: str) -> list[torch.Tensor]:
    """The layers of `points` (one tensor or a sequence of them), each checked to be (..., N, 3)."""
    layers = list(points) if isinstance(points, (list, tuple)) else [points]
    if not layers:
        raise GeometryError(f"{who}: no point clouds given")
    out = []
    for layer in layers:
        pts = torch.as_tensor(layer)
        if pts.ndim < 2 or pts.shape[-1] != 3:
            raise GeometryError(f"{who}: points must be (N, 3) or (..., N, 3), got {tuple(pts.shape)}")
        out.append(pts)
    if sum(p.shape[-2] for p in out) >= 2**31:
        raise GeometryError(f"{who} handles fewer than 2**31 points")
    return out


def _broadcast_batch(who: str, cameras: Cameras, *shapes: torch.Size) -> torch.Size:
    try:
        return broadcast_shapes(cameras.batch_shape, *shapes)
    except RuntimeError:
        raise GeometryError(f"{who}: the batch shapes of the cameras {tuple(cameras.batch_shape)} and the "
                            f"clouds {[tuple(s) for s in shapes]} do not broadcast") from None


class _Layer:
    """One cloud's per-call workspace: its points as (3, N) per source row, the projection
    buffer, pixel indices and keys whose index halves (offset + 0 … N−1) are written once."""

    def __init__(self, points: torch.Tensor, batch: torch.Size, offset: int, dtype: torch.dtype):
        self.n = points.shape[-2]
        self.rows = _source_rows(points.shape[:-2], batch)
        self.points = points.detach().reshape(math.prod(points.shape[:-2]), self.n, 3)
        self.dtype = dtype
        self._row, self._cloud = None, None
        device = points.device
        self.proj = torch.empty(3, self.n, dtype=dtype, device=device)
        self.pix = torch.empty(self.n, dtype=torch.int64, device=device)
        self.key = torch.empty(self.n, dtype=torch.int64, device=device)
        halves = self.key.view(torch.int32).view(self.n, 2)
        halves[:, _LOW] = torch.arange(offset, offset + self.n, dtype=torch.int32, device=device)
        self.depth_bits = self.key.view(torch.float32).view(self.n, 2)[:, _HIGH]

    def cloud(self, view: int) -> torch.Tensor:
        """(3, N) points of the row this view reads, laid out once per run of views on that row
        (no copy at all for the transpose of a contiguous (3, N) tensor)."""
        row = self.rows[view]
        if row != self._row:
            self._row, self._cloud = row, self.points[row].to(self.dtype).T.contiguous()
        return self._cloud


def _scatter_nearest(layer: _Layer, view: int, P: torch.Tensor, near_key: torch.Tensor, near: float,
                     ring: int, h: int, w: int) -> None:
    """amin of the layer's keys into `near_key` ((H + 2 ring)·(W + 2 ring),) at each point's
    nearest pixel, under the projection P (3, 4) = K [R | t] in the layer's dtype."""
    proj = layer.proj
    torch.matmul(P[:, :3], layer.cloud(view), out=proj)
    proj.add_(P[:, 3:])  # rows: u z, v z, z
    z = proj[2]
    # points with z <= near (or NaN) get z = NaN: their u, v become NaN, then the dump ring below.
    # Non-finite points need no test: an infinite coordinate makes u z, v z infinite or NaN too
    # (times a zero coefficient it is NaN), so u, v are NaN or ±inf, which land in the dump ring.
    torch.nn.functional.threshold_(z, near, math.nan)
    uv = proj[:2]
    torch.div(uv, z, out=uv)
    uv.round_().nan_to_num_(nan=-ring)
    # nearest pixels clamped into a ring one pixel beyond the footprint's reach: points out there
    # land where no footprint reaches back into the image
    u, v = uv[0].clamp_(-ring, w - 1 + ring), uv[1].clamp_(-ring, h - 1 + ring)
    wp = w + 2 * ring
    torch.add(u, v, alpha=wp, out=u).add_(ring * wp + ring)  # exact: integers below 2**24
    layer.pix.copy_(u)
    layer.depth_bits.copy_(z)  # float32 depth bits above the index (cast from float64 if need be)
    near_key.scatter_reduce_(0, layer.pix, layer.key, "amin")


def _zbuffer(layers: list[_Layer], cameras: Cameras, batch: torch.Size, radius: float, shape: str,
             near: float, depth_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(depth (B, H, W), index (B, H, W) int64) for the flattened batch B = prod(batch)."""
    h, w = cameras.image_size
    device = layers[0].points.device
    offsets = splat_footprint(radius, shape)
    ring = max(max(abs(dx), abs(dy)) for dx, dy in offsets) + 1
    hp, wp = h + 2 * ring, w + 2 * ring
    camera_rows = _source_rows(cameras.batch_shape, batch)
    # P = K [R | t] maps a point to (u z, v z, z), composed in float64, used in the points' dtype
    P = cameras.to(device=device, dtype=torch.float64).projection_matrix().detach().reshape(-1, 3, 4)
    P = P.to(depth_dtype)
    B = math.prod(batch)
    depth = torch.empty(B, h, w, dtype=depth_dtype, device=device)
    index = torch.empty(B, h, w, dtype=torch.int64, device=device)
    near_key = torch.empty(hp * wp, dtype=torch.int64, device=device)
    with torch.no_grad():
        for b in range(B):
            near_key.fill_(_NO_HIT)
            for layer in layers:
                if layer.n:
                    _scatter_nearest(layer, b, P[camera_rows[b]], near_key, near, ring, h, w)
            grid = near_key.view(hp, wp)
            best = grid[ring:ring + h, ring:ring + w]
            if len(offsets) > 1:
                # per pixel the minimum over the footprint: exact, since a footprint depends only
                # on the point's nearest pixel, and the minimum of minima is the minimum
                best = best.clone()
                for dx, dy in offsets:
                    if dx or dy:
                        torch.minimum(best, grid[ring - dy:ring - dy + h, ring - dx:ring - dx + w], out=best)
            halves = best.view(torch.int32).unflatten(-1, (w, 2))
            index[b].copy_(halves[..., _LOW])  # −1 where empty: the low half of _NO_HIT
            if depth_dtype == torch.float32:  # the key holds the exact float32 depth
                depth[b].view(torch.int32).copy_(halves[..., _HIGH])
                depth[b].nan_to_num_(nan=SPLAT_EMPTY_DEPTH, posinf=math.inf, neginf=-math.inf)
            else:
                _gather_depth(layers, index[b], depth[b])
    return depth, index


def _gather_depth(layers: list[_Layer], index: torch.Tensor, out: torch.Tensor) -> None:
    """out (H, W) ← the winners' z in the layers' dtype (their projection buffers still hold it)."""
    z = torch.cat([layer.proj[2] for layer in layers])
    flat = index.reshape(-1)
    out.view(-1).copy_(z.index_select(0, flat.clamp_min(0))).masked_fill_(flat < 0, SPLAT_EMPTY_DEPTH)


def _setup(who: str, points, cameras: Cameras, image_size, extra_dtypes=()) -> tuple[list, torch.dtype]:
    """The checked clouds (layers) and the result dtype."""
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"{who}: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if image_size is not None and parse_image_size(image_size) != tuple(cameras.image_size):
        raise GeometryError(f"{who}: image_size {tuple(image_size)} differs from the cameras' {cameras.image_size}")
    clouds = _as_clouds(points, who)
    return clouds, common_float_dtype(*clouds, *extra_dtypes, cameras.R)


def _layers(clouds: list[torch.Tensor], batch: torch.Size, dtype: torch.dtype) -> list[_Layer]:
    device = clouds[0].device
    layers, offset = [], 0
    for c in clouds:
        layers.append(_Layer(c.to(device), batch, offset, dtype))
        offset += c.shape[-2]
    return layers


def splat_index(points, cameras: Cameras, image_size=None, *, radius: float = 1.0, shape: str = "disc",
                near: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """The z-buffer of `splat` alone: which point wins each pixel, and its depth.

    Args:
        points: one cloud as `splat` takes it ((N, 3) shared, or (..., N, 3) broadcasting against
            the cameras), or a sequence of such clouds (layers, e.g. a static background shared by
            all cameras and one foreground per camera), drawn into one z-buffer exactly as their
            concatenation along N would be: the index counts through the layers in order, so a
            tie between layers goes to the earlier one. Each layer broadcasts on its own. A
            cloud that is the transpose `c.T` of a contiguous (3, N) tensor of the result dtype
            is used without a copy (worth it for a large cloud splatted in many calls).
        cameras, image_size, radius, shape, near: as for `splat`.

    Returns:
        (depth (..., H, W), index (..., H, W) int64): the winner's camera z (SPLAT_EMPTY_DEPTH
        where empty) in the common floating dtype of the clouds and cameras, and its index
        (−1 where empty); leading shape broadcast(cameras, every layer).
    """
    clouds, dtype = _setup("splat_index", points, cameras, image_size)
    batch = _broadcast_batch("splat_index", cameras, *(c.shape[:-2] for c in clouds))
    depth, index = _zbuffer(_layers(clouds, batch, dtype), cameras, batch, radius, shape, near, dtype)
    h, w = cameras.image_size
    return depth.reshape(*batch, h, w), index.reshape(*batch, h, w)


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
    if isinstance(points, (list, tuple)):
        raise GeometryError("splat draws one cloud; for several layers use splat_index")
    pts = torch.as_tensor(points)
    cols = None if colors is None else torch.as_tensor(colors, device=pts.device)
    [pts], dtype = _setup("splat", pts, cameras, image_size, () if cols is None else (cols,))
    n = pts.shape[-2]
    if cols is not None and (cols.ndim < 2 or cols.shape[-2:] != (n, 3)):
        raise GeometryError(f"splat: colors must be (N, 3) or (..., N, 3) with N = {n}, got {tuple(cols.shape)}")
    batch = _broadcast_batch("splat", cameras, pts.shape[:-2], *(() if cols is None else (cols.shape[:-2],)))
    depth, index = _zbuffer(_layers([pts], batch, dtype), cameras, batch, radius, shape, near, dtype)
    h, w = cameras.image_size
    B = math.prod(batch)
    rgb = torch.empty(B, h, w, 3, dtype=dtype, device=pts.device)
    bg = torch.as_tensor(background, dtype=dtype, device=pts.device).expand(3)
    grey_bg = float(bg[0]) if bool((bg == bg[0]).all()) else None
    if cols is not None:
        color_rows = _source_rows(cols.shape[:-2], batch)
        cols = as_colors(cols, dtype, "splat").detach().reshape(math.prod(cols.shape[:-2]), n, 3)
    with torch.no_grad():
        for b in range(B):
            flat = index[b].view(-1)
            miss = flat < 0
            flat_rgb = rgb[b].view(-1, 3)
            if cols is None:
                flat_rgb.fill_(1.0)
            else:
                torch.index_select(cols[color_rows[b]], 0, flat.clamp_min(0), out=flat_rgb)
            if grey_bg is not None:
                flat_rgb.masked_fill_(miss[:, None], grey_bg)
            else:
                flat_rgb[miss] = bg
    return SplatResult(rgb=rgb.reshape(*batch, h, w, 3), depth=depth.reshape(*batch, h, w),
                       mask=(index >= 0).reshape(*batch, h, w), index=index.reshape(*batch, h, w))
