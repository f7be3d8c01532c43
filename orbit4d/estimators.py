"""The learned stages behind small interfaces, so models can be added without touching the geometry.

A run needs per-frame depth, cameras and masks; a video model paints the final video. Each is a
Protocol. Implemented: given depth / cameras / masks (orbit4d.io; `static_cameras`), a
transformers depth model made scale-consistent over frames (orbit4d.depth_model), PnP camera
estimation from the static background (orbit4d.camera_model) and the WanVACE video painter
(orbit4d.video). Planned: SAM2 mask propagation, the Zero-1-to-3 novel-view generator (datagen).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from geom3d import Cameras, intrinsics_matrix

__all__ = ["DepthEstimator", "CameraEstimator", "VideoPainter", "static_cameras"]


class DepthEstimator(Protocol):
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) → float32 (T, H, W) metric camera z, consistent in scale over frames."""


class CameraEstimator(Protocol):
    def __call__(self, frames: np.ndarray, depth: np.ndarray, masks: np.ndarray) -> Cameras:
        """Cameras (T,) (OpenCV, world = the first camera's frame)."""


class VideoPainter(Protocol):
    def __call__(self, scaffold_rgb: np.ndarray, hole_mask: np.ndarray, reference: np.ndarray,
                 prompt: str) -> np.ndarray:
        """Paint the final video uint8 (N, H, W, 3) from the scaffold and its holes."""


def static_cameras(num_frames: int, image_size, fov_degrees: float = 60.0) -> Cameras:
    """A camera that does not move (identity pose), horizontal field of view `fov_degrees`: the
    fallback when no cameras are given (the released tool's world is also the first camera's)."""
    h, w = image_size
    f = 0.5 * w / math.tan(math.radians(fov_degrees) / 2)
    K = intrinsics_matrix(f, f, (w - 1) / 2, (h - 1) / 2, dtype=torch.float64)
    return Cameras(K.expand(num_frames, 3, 3), torch.eye(3, dtype=torch.float64).expand(num_frames, 3, 3),
                   torch.zeros(num_frames, 3, dtype=torch.float64), (h, w))
