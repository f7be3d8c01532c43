"""The learned stages behind small interfaces, so models can be added without touching the geometry.

A run needs per-frame depth, cameras and masks; a video model paints the final video. Each is a
Protocol. Implemented: given depth / cameras / masks (orbit4d.io; `static_cameras`), a
transformers depth model made scale-consistent over frames (orbit4d.depth_model), PnP camera
estimation from the static background (orbit4d.camera_model), SAM2 mask propagation from a
`MaskPrompt` (orbit4d.mask_model), novel-view completion of the canonical foreground with a
datagen.novel_view synthesizer (orbit4d.completion) and the WanVACE video painter (orbit4d.video).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from geom3d import Cameras, intrinsics_matrix

from .io import Orbit4DInputError

__all__ = ["DepthEstimator", "CameraEstimator", "MaskEstimator", "MaskPrompt", "VideoPainter", "static_cameras"]


class DepthEstimator(Protocol):
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) → float32 (T, H, W) metric camera z, consistent in scale over frames."""


class CameraEstimator(Protocol):
    def __call__(self, frames: np.ndarray, depth: np.ndarray, masks: np.ndarray) -> Cameras:
        """Cameras (T,) (OpenCV, world = the first camera's frame)."""


@dataclass(frozen=True)
class MaskPrompt:
    """Where the object is on one frame: a box (x0, y0, x1, y1) and/or points ((x, y), …) in
    pixels (x = column, y = row), each point's label 1 (object) or 0 (background); frame: the
    index of the prompted frame. `source` names the prompt in errors (a CLI flag)."""

    box: tuple | None = None
    points: tuple = ()
    labels: tuple = ()
    frame: int = 0
    source: str = "mask prompt"

    def __post_init__(self):
        box = None if self.box is None else tuple(float(v) for v in self.box)
        points = tuple((float(x), float(y)) for x, y in self.points)
        labels = tuple(int(v) for v in self.labels) if self.labels else (1,) * len(points)
        if box is None and not points:
            raise Orbit4DInputError(self.source, "needs a box or at least one point")
        if len(labels) != len(points) or any(v not in (0, 1) for v in labels):
            raise Orbit4DInputError(self.source, f"needs one label (1 object, 0 background) per point, got {labels}")
        values = (box or ()) + sum(points, ())
        if not all(math.isfinite(v) for v in values):
            raise Orbit4DInputError(self.source, "coordinates must be finite numbers")
        if box is not None and not (box[0] < box[2] and box[1] < box[3]):
            raise Orbit4DInputError(self.source, f"box {box} must have x0 < x1 and y0 < y1")
        if box is None and 1 not in labels:
            raise Orbit4DInputError(self.source, "without a box, at least one point must be on the object (label 1)")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels)

    @classmethod
    def parse(cls, box: str | None = None, points: str | None = None, frame: int = 0) -> MaskPrompt:
        """From CLI text: box "x0,y0,x1,y1"; points "x,y[,label];x,y[,label]…" (label 1 by default)."""
        parsed_box, pts, labels = None, [], []
        if box is not None:
            try:
                parsed_box = tuple(float(v) for v in box.split(","))
            except ValueError:
                raise Orbit4DInputError("--mask-box", f"{box!r} is not four numbers x0,y0,x1,y1") from None
            if len(parsed_box) != 4:
                raise Orbit4DInputError("--mask-box", f"{box!r} is not four numbers x0,y0,x1,y1")
        for item in (points.split(";") if points else []):
            try:
                values = [float(v) for v in item.split(",")]
            except ValueError:
                values = []
            if len(values) not in (2, 3) or (len(values) == 3 and values[2] not in (0.0, 1.0)):
                raise Orbit4DInputError("--mask-points", f"{item!r} is not x,y or x,y,label (label 0 or 1)")
            pts.append(tuple(values[:2]))
            labels.append(int(values[2]) if len(values) == 3 else 1)
        source = "--mask-box" if parsed_box is not None else "--mask-points"
        return cls(parsed_box, tuple(pts), tuple(labels), frame, source)

    def check(self, image_size, num_frames: int) -> None:
        """Orbit4DInputError unless the prompt lies inside (H, W) frames and its frame exists."""
        h, w = image_size
        if not 0 <= self.frame < num_frames:
            raise Orbit4DInputError(self.source, f"prompt frame {self.frame} is not among the {num_frames} frames")
        corners = list(self.points) + ([self.box[:2], self.box[2:]] if self.box is not None else [])
        for x, y in corners:
            if not (0 <= x <= w and 0 <= y <= h):
                raise Orbit4DInputError(self.source, f"({x:g}, {y:g}) lies outside the {w}×{h} frame")

    def describe(self) -> str:
        parts = [f"box {','.join(f'{v:g}' for v in self.box)}"] if self.box is not None else []
        parts += [f"point {x:g},{y:g} ({'object' if lab else 'background'})"
                  for (x, y), lab in zip(self.points, self.labels)]
        return f"frame {self.frame}: " + "; ".join(parts)


class MaskEstimator(Protocol):
    def __call__(self, frames: np.ndarray, prompt: MaskPrompt) -> np.ndarray:
        """uint8 (T, H, W, 3) frames and a prompt on one frame → bool (T, H, W) foreground masks."""


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
