"""Scaffold rendering: the 4D proxy seen along a camera path, with geom3d.splat.

Per output frame i, the static background and the foreground of input frame
round(video_time[i]) are splatted under camera i into one z-buffer (two layers of
`geom3d.splat_index`, the nearer point winning each pixel, the background on a tie).
Outputs: colour, depth and mask (pixels the proxy covers; holes are what the video model must
paint). `depth_to_image` normalises depth with the global 1st/99th percentiles over all frames
(near bright, holes grey), so brightness means the same depth in every frame. Files: PNG frames
and MP4s, written atomically by a small thread pool (`write_scaffold` writes a run's six outputs
at once).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from aware3d_utils.atomic import atomic_save
from geom3d.splatting import splat_index
from geom3d.trajectory import CameraPath

__all__ = ["Scaffold", "render_scaffold", "fill_see_through", "depth_to_image", "write_frames", "write_video",
           "write_scaffold", "HOLE_GREY"]

HOLE_GREY = 128


@dataclass(frozen=True)
class Scaffold:
    """rgb uint8 (N, H, W, 3); depth float32 (N, H, W) camera z (0 = hole); mask bool (N, H, W)
    covered pixels; foreground bool (N, H, W) pixels won by the foreground."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    foreground: np.ndarray


def _packed_colors(colors, n: int) -> torch.Tensor:
    """(n,) int32: each point's uint8 RGB (what a frame shows: round(255·clamp(c, 0, 1)) in
    float32, white for None) packed in one 4-byte word, so a frame's colours are one 1-D gather."""
    rgba = torch.zeros(n, 4, dtype=torch.uint8)
    if colors is None:
        rgba[:, :3] = 255
    else:
        c = torch.as_tensor(colors)
        rgba[:, :3] = c if c.dtype == torch.uint8 else (c.to(torch.float32).clamp(0, 1) * 255).round().to(torch.uint8)
    return rgba.view(torch.int32).view(n)


def _foreground_stack(foregrounds: list, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The foreground clouds of these input frames as one (B, M, 3) float32 stack and their
    packed colours (B, M), shorter clouds padded with NaN points (which splatting drops)."""
    m = max(int(foregrounds[f][0].shape[0]) for f in frames)
    pts = torch.full((len(frames), m, 3), math.nan, dtype=torch.float32)
    cols = torch.zeros(len(frames), m, dtype=torch.int32)
    for j, f in enumerate(frames):
        p, c = foregrounds[f]
        k = int(p.shape[0])
        pts[j, :k] = torch.as_tensor(p, dtype=torch.float32)
        cols[j, :k] = _packed_colors(c, k)
    return pts, cols


def fill_see_through(rgb: np.ndarray, depth: np.ndarray, foreground: np.ndarray, *, window: int = 5,
                     gap: float = 0.03) -> int:
    """Cover the foreground pixels where a completed cloud's far side shows through the gaps of its
    near side (one pixel per point leaves gaps), in place, for one frame: rgb (H, W, 3), depth (H, W),
    foreground (H, W) bool. A foreground pixel is see-through when more than half of the foreground
    pixels of its `window` × `window` neighbourhood are nearer by more than `gap` (relative depth);
    it takes the depth and colour of the nearest of them. An isolated far pixel amid a near surface
    is replaced; the edge of a far region beside a near one (a leg in front of the body) is not, as
    at most half its neighbours are nearer. Returns the number of pixels replaced."""
    if window < 3 or window % 2 == 0:
        raise ValueError(f"fill_see_through: window must be an odd number >= 3, got {window}")
    h, w = depth.shape
    r = window // 2
    d = np.where(foreground, depth, 0).astype(np.float32)
    pad = np.pad(d, r)
    pad_rgb = np.pad(rgb, ((r, r), (r, r), (0, 0)))
    covered = np.zeros((h, w), np.int32)
    nearer = np.zeros((h, w), np.int32)
    best = np.full((h, w), np.inf, np.float32)
    best_rgb = np.zeros_like(rgb)
    limit = d * (1 - gap)
    for dy in range(window):
        for dx in range(window):
            if dy == r and dx == r:
                continue
            nd = pad[dy:dy + h, dx:dx + w]
            has = nd > 0
            covered += has
            closer = has & (nd < limit)
            nearer += closer
            take = closer & (nd < best)
            best[take] = nd[take]
            best_rgb[take] = pad_rgb[dy:dy + h, dx:dx + w][take]
    fix = (d > 0) & (2 * nearer > covered) & np.isfinite(best)
    depth[fix] = best[fix]
    rgb[fix] = best_rgb[fix]
    return int(fix.sum())


def render_scaffold(background_points, background_colors, foregrounds: list, path: CameraPath, *,
                    radius: float = 0.5, chunk: int = 4, see_through: int = 0) -> Scaffold:
    """Render the proxy along `path`.

    background_points (N, 3) / background_colors (N, 3) or None; foregrounds: per input frame a
    (points (M, 3), colors (M, 3) or None) pair in world coordinates (empty clouds allowed).
    Colours are floats in [0, 1] or uint8.

    Per output frame the background and that frame's foreground go into one z-buffer
    (`geom3d.splat_index` with two layers): the same pixels, depths and colours as splatting
    them apart and keeping the nearer (the background on a tie), in one pass. see_through: 0
    (default) leaves the pixels as splatted; an odd window size (5) fills the pixels where the
    foreground's far side shows through gaps of its near side (`fill_see_through`).
    """
    cams = path.cameras.to(dtype=torch.float32)
    n, (h, w) = len(path), cams.image_size
    frame = np.clip(np.round(path.video_time.numpy()), 0, max(len(foregrounds) - 1, 0)).astype(int)
    rgb = np.empty((n, h, w, 3), np.uint8)
    depth = np.empty((n, h, w), np.float32)
    fgmask = np.empty((n, h, w), bool)
    # laid out as (3, N) once for every chunk (splat_index takes the transpose without a copy)
    bg_pts = torch.as_tensor(background_points).to(torch.float32).T.contiguous().T
    nb = bg_pts.shape[0]
    has_fg = bool(foregrounds) and any(int(foregrounds[f][0].shape[0]) for f in set(frame.tolist()))
    # colour table: [hole grey, background points, the current frame's foreground points]
    grey = torch.full((1, 4), HOLE_GREY, dtype=torch.uint8).view(torch.int32).view(1)
    bg_table = torch.cat([grey, _packed_colors(background_colors, nb)])
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        layers = [bg_pts]
        if has_fg:
            fg_pts, fg_cols = _foreground_stack(foregrounds, frame[start:stop])
            layers.append(fg_pts)
            table = torch.cat([bg_table, fg_cols[0]])
        dep, idx = splat_index(layers, cams[start:stop], radius=radius)
        for j in range(stop - start):
            i = start + j
            if has_fg:
                table[1 + nb:] = fg_cols[j]
            packed = (table if has_fg else bg_table).index_select(0, (idx[j] + 1).view(-1))  # −1 (hole) → grey
            torch.from_numpy(rgb[i]).copy_(packed.view(torch.uint8).view(h, w, 4)[..., :3])
            torch.from_numpy(depth[i]).copy_(dep[j])
            torch.ge(idx[j], nb, out=torch.from_numpy(fgmask[i]))
            if see_through and has_fg:
                fill_see_through(rgb[i], depth[i], fgmask[i], window=see_through)
    return Scaffold(rgb, depth, depth > 0, fgmask)


def depth_to_image(depth: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W): depth between the global 1st and 99th percentiles of the covered pixels
    mapped to 255 (near) … 16 (far), clipped; holes (depth 0) HOLE_GREY."""
    valid = depth > 0
    out = np.full(depth.shape, HOLE_GREY, np.uint8)
    d = depth[valid]  # the arithmetic below runs on covered pixels only
    if not d.size:
        return out
    lo, hi = np.percentile(d, [1, 99])
    span = max(float(hi - lo), 1e-12)
    # 16 + 239 (1 − clip((d − lo) / span, 0, 1)), rounded: the same operations in place
    v = np.subtract(d, lo, dtype=np.result_type(d, lo))
    v /= span
    np.clip(v, 0, 1, out=v)
    np.subtract(1.0, v, out=v)
    v *= 239
    v += 16
    out[valid] = v.round(out=v).astype(np.uint8)
    return out


def _writers() -> ThreadPoolExecutor:
    """A small pool for image and video files: OpenCV's encoders release the GIL, so files are
    compressed on every core while the caller waits (bounded: at most this many at once)."""
    return ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="scaffold-writer")


def _write_png(path: Path, img: np.ndarray) -> Path:
    bgr = np.ascontiguousarray(img[..., ::-1] if img.ndim == 3 else img)
    atomic_save(path, lambda tmp: cv2.imwrite(tmp, bgr))
    return path


def _submit_frames(pool: ThreadPoolExecutor, folder, images: np.ndarray) -> list[Future]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [pool.submit(_write_png, folder / f"{i:05d}.png", img) for i, img in enumerate(images)]


def write_frames(folder: str | os.PathLike, images: np.ndarray) -> list[Path]:
    """PNG frames NNNNN.png (uint8 (N, H, W, 3) RGB or (N, H, W) grey), each written atomically
    (several at once on a small thread pool)."""
    with _writers() as pool:
        return [f.result() for f in _submit_frames(pool, folder, images)]


def write_video(path: str | os.PathLike, images: np.ndarray, fps: float = 10.0) -> Path:
    """An MP4 (OpenCV's mp4v codec) from uint8 (N, H, W, 3) RGB or (N, H, W) grey, atomically."""
    path = Path(path)
    h, w = images.shape[1:3]

    def save(tmp):
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            return False
        for f in images:
            writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else np.ascontiguousarray(f[..., ::-1]))
        writer.release()
        return os.path.getsize(tmp) > 0

    atomic_save(path, save)
    return path


def write_scaffold(out: str | os.PathLike, scaffold: Scaffold, fps: float = 10.0) -> dict[str, list[Path]]:
    """The scaffold files of a run folder, all written concurrently on one small pool, each
    atomically: scaffold/{rgb,depth,mask}/NNNNN.png (depth through `depth_to_image`, mask 255 where
    covered) and scaffold_{rgb,depth,mask}.mp4. Returns {"rgb": [png paths..., mp4 path], ...}."""
    out = Path(out)
    images = {"rgb": scaffold.rgb, "depth": depth_to_image(scaffold.depth),
              "mask": np.where(scaffold.mask, 255, 0).astype(np.uint8)}
    with _writers() as pool:
        # the videos first: each is one long serial task, the frames fill the other workers
        videos = {k: pool.submit(write_video, out / f"scaffold_{k}.mp4", v, fps) for k, v in images.items()}
        frames = {k: _submit_frames(pool, out / "scaffold" / k, v) for k, v in images.items()}
        return {k: [f.result() for f in frames[k]] + [videos[k].result()] for k in images}
