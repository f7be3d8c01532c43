"""The scaffold renderer as it was before the fast path (commit 58a0f46), kept callable so that
`bench/orbit4d.py` measures the speed-up in the same run and the tests check the fast path
against it: `splat_before` is the previous `geom3d.splat` (one z-buffer per cloud, colours
gathered from (N, 3)); `render_scaffold_reference` the previous `render_scaffold` (the
background splatted per chunk of cameras, each foreground splatted on its own, the nearer kept),
on a splat function given (the previous one, or today's `geom3d.splat`).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

from geom3d.cameras import Cameras
from geom3d.dtypes import common_float_dtype
from geom3d.splatting import SPLAT_EMPTY_DEPTH, SplatResult, splat_footprint
from geom3d.trajectory import CameraPath
from orbit4d.scaffold import HOLE_GREY, Scaffold

_NO_HIT = torch.iinfo(torch.int64).max


def _depth_index_key(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    if sys.byteorder == "little":
        pair = torch.empty(z.shape[0], 2, dtype=torch.int32, device=z.device)
        pair[:, 0] = index
        pair[:, 1] = z.view(torch.int32)
        return pair.view(torch.int64).view(-1)
    return (z.view(torch.int32).to(torch.int64) << 32) | index.to(torch.int64)


def _source_rows(batch_of_input: torch.Size, batch: torch.Size) -> list[int]:
    rows = torch.arange(math.prod(batch_of_input)).reshape(batch_of_input).expand(batch)
    return rows.reshape(-1).tolist()


def splat_before(points, colors, cameras: Cameras, *, radius: float = 1.0, shape: str = "disc",
                 background=0.0, near: float = 1e-6) -> SplatResult:
    """The previous `geom3d.splat` (float colours in [0, 1]; no argument checks)."""
    h, w = cameras.image_size
    pts = torch.as_tensor(points)
    n = pts.shape[-2]
    cols = None if colors is None else torch.as_tensor(colors, device=pts.device)
    batch = torch.broadcast_shapes(cameras.batch_shape, pts.shape[:-2], *(() if cols is None else (cols.shape[:-2],)))
    device = pts.device
    dtype = common_float_dtype(pts, cols, cameras.R)
    cloud_rows = _source_rows(pts.shape[:-2], batch)
    pts = pts.detach().to(dtype).reshape(math.prod(pts.shape[:-2]), n, 3)
    color_rows = None
    if cols is not None:
        color_batch = cols.shape[:-2]
        cols = cols.to(dtype).detach().reshape(math.prod(color_batch), n, 3)
        color_rows = _source_rows(color_batch, batch)
    offsets = splat_footprint(radius, shape)
    reach = max(max(abs(dx), abs(dy)) for dx, dy in offsets)
    camera_rows = _source_rows(cameras.batch_shape, batch)
    P = cameras.to(device=device, dtype=torch.float64).projection_matrix().detach().reshape(-1, 3, 4)
    B = math.prod(batch)
    index = torch.arange(n, dtype=torch.int32, device=device)
    ring = reach + 1
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
            proj.add_(Pb[:, 3:])
            z = proj[2]
            u = proj[0].div_(z).round_().nan_to_num_(nan=-ring).clamp_(-ring, w - 1 + ring)
            v = proj[1].div_(z).round_().nan_to_num_(nan=-ring).clamp_(-ring, h - 1 + ring)
            pix = v.add_(ring).mul_(wp).add_(u.add_(ring)).to(torch.int64)
            zf = z if z.dtype == torch.float32 else z.to(torch.float32)
            key = _depth_index_key(zf, index).masked_fill_(~(z > near), _NO_HIT)
            near_key = torch.full((hp, wp), _NO_HIT, dtype=torch.int64, device=device)
            near_key.view(-1).scatter_reduce_(0, pix, key, "amin")
            best = near_key[ring:ring + h, ring:ring + w].clone()
            for dx, dy in offsets:
                if dx or dy:
                    shifted = near_key[ring - dy:ring - dy + h, ring - dx:ring - dx + w]
                    torch.minimum(best, shifted, out=best)
            best = best.view(-1)
            miss = best == _NO_HIT
            win = winner[b].view(-1)
            torch.bitwise_and(best, 0xFFFFFFFF, out=win)
            win.masked_fill_(miss, -1)
            safe = win.clamp_min(0)
            if dtype == torch.float32:
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


def render_scaffold_reference(background_points, background_colors, foregrounds: list, path: CameraPath, *,
                              radius: float = 0.5, chunk: int = 16, splat=splat_before) -> Scaffold:
    """The previous `render_scaffold`: two splats per frame and a composite, the nearer winning
    (the background on a tie), on `splat`."""
    cams = path.cameras.to(dtype=torch.float32)
    n, (h, w) = len(path), cams.image_size
    frame = np.clip(np.round(path.video_time.numpy()), 0, max(len(foregrounds) - 1, 0)).astype(int)
    rgb = np.empty((n, h, w, 3), np.uint8)
    depth = np.zeros((n, h, w), np.float32)
    fgmask = np.zeros((n, h, w), bool)
    bg_pts = torch.as_tensor(background_points, dtype=torch.float32)
    bg_cols = None if background_colors is None else torch.as_tensor(background_colors, dtype=torch.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sub = cams[start:stop]
        bg = splat(bg_pts, bg_cols, sub, radius=radius, background=0.0)
        for j in range(stop - start):
            i = start + j
            col, dep = bg.rgb[j], bg.depth[j]
            if foregrounds:
                pts, cols = foregrounds[frame[i]]
                if pts.shape[0]:
                    fg = splat(torch.as_tensor(pts, dtype=torch.float32),
                               None if cols is None else torch.as_tensor(cols, dtype=torch.float32), sub[j],
                               radius=radius)
                    win = fg.mask & (~bg.mask[j] | (fg.depth < dep))
                    col = torch.where(win[..., None], fg.rgb, col)
                    dep = torch.where(win, fg.depth, dep)
                    fgmask[i] = win.numpy()
            rgb[i] = (col.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            depth[i] = dep.numpy()
    mask = depth > 0
    rgb[~mask] = HOLE_GREY
    return Scaffold(rgb, depth, mask, fgmask)


def depth_to_image_reference(depth: np.ndarray) -> np.ndarray:
    """The previous `depth_to_image` (the arithmetic over every pixel, then the covered ones kept)."""
    valid = depth > 0
    out = np.full(depth.shape, HOLE_GREY, np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(depth[valid], [1, 99])
    span = max(float(hi - lo), 1e-12)
    v = 1.0 - np.clip((depth - lo) / span, 0, 1)
    out[valid] = (16 + 239 * v[valid]).round().astype(np.uint8)
    return out
