"""Scaffold rendering: the 4D proxy seen along a camera path, with geom3d.splat.

Per output frame i, the static background and the foreground of input frame
round(video_time[i]) are splatted under camera i; the background is drawn for all cameras in
one batched call, each foreground cloud on its own, and the nearer of the two wins each pixel.
Outputs: colour, depth and mask (pixels the proxy covers; holes are what the video model must
paint). `depth_to_image` normalises depth with the global 1st/99th percentiles over all frames
(near bright, holes grey), so brightness means the same depth in every frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from aware3d_utils.atomic import atomic_save
from geom3d import splat
from geom3d.trajectory import CameraPath

__all__ = ["Scaffold", "render_scaffold", "depth_to_image", "write_frames", "write_video", "HOLE_GREY"]

HOLE_GREY = 128


@dataclass(frozen=True)
class Scaffold:
    """rgb uint8 (N, H, W, 3); depth float32 (N, H, W) camera z (0 = hole); mask bool (N, H, W)
    covered pixels; foreground bool (N, H, W) pixels won by the foreground."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    foreground: np.ndarray


def render_scaffold(background_points, background_colors, foregrounds: list, path: CameraPath, *,
                    radius: float = 0.5, chunk: int = 16) -> Scaffold:
    """Render the proxy along `path`.

    background_points (N, 3) / background_colors (N, 3) or None; foregrounds: per input frame a
    (points (M, 3), colors (M, 3) or None) pair in world coordinates (empty clouds allowed)."""
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


def depth_to_image(depth: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W): depth between the global 1st and 99th percentiles of the covered pixels
    mapped to 255 (near) … 16 (far), clipped; holes (depth 0) HOLE_GREY."""
    valid = depth > 0
    out = np.full(depth.shape, HOLE_GREY, np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(depth[valid], [1, 99])
    span = max(float(hi - lo), 1e-12)
    v = 1.0 - np.clip((depth - lo) / span, 0, 1)
    out[valid] = (16 + 239 * v[valid]).round().astype(np.uint8)
    return out


def write_frames(folder: str | os.PathLike, images: np.ndarray) -> list[Path]:
    """PNG frames NNNNN.png (uint8 (N, H, W, 3) RGB or (N, H, W) grey), each written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = folder / f"{i:05d}.png"
        bgr = np.ascontiguousarray(img[..., ::-1] if img.ndim == 3 else img)
        atomic_save(p, lambda tmp, bgr=bgr: cv2.imwrite(tmp, bgr))
        paths.append(p)
    return paths


def write_video(path: str | os.PathLike, images: np.ndarray, fps: float = 10.0) -> Path:
    """An MP4 (OpenCV's mp4v codec) from uint8 (N, H, W, 3) RGB or (N, H, W) grey, atomically."""
    path = Path(path)
    frames = images if images.ndim == 4 else np.repeat(images[..., None], 3, -1)
    h, w = frames.shape[1:3]

    def save(tmp):
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            return False
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
        writer.release()
        return os.path.getsize(tmp) > 0

    atomic_save(path, save)
    return path
