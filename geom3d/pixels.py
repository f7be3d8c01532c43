"""Pixel-grid helpers shared by geom3d and data3d: image sizes, pixel centres, the resize rule.

Pixel centres are at integer coordinates (the pixel in row i, column j has its centre at
(u, v) = (j, i)), so an image of width W spans [−½, W − ½].
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from .errors import GeometryError

__all__ = ["parse_image_size", "pixel_grid", "resize_coordinate"]


def parse_image_size(size, name: str = "image_size") -> tuple[int, int]:
    """(H, W) as two positive Python ints; raises GeometryError naming `name` otherwise.

    Accepts any pair of integral numbers (ints, integral floats, numpy or 0-d tensor scalars);
    3.5 or a triple is an error, not a silent truncation.
    """
    try:
        values = list(size)
    except TypeError:
        raise GeometryError(f"{name} must be (H, W), got {size!r}") from None
    if len(values) != 2:
        raise GeometryError(f"{name} must be (H, W), got {size!r}")
    out = []
    for v in values:
        if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != v or int(v) != v:
            raise GeometryError(f"{name} must be two integers (H, W), got {size!r}")
        out.append(int(v))
    h, w = out
    if h <= 0 or w <= 0:
        raise GeometryError(f"{name} must be positive, got (H, W) = ({h}, {w})")
    return h, w


def pixel_grid(image_size: Sequence[int], dtype=torch.float32, device=None) -> torch.Tensor:
    """Pixel-centre coordinates (u, v) of every pixel: (H, W, 2), u = column, v = row."""
    h, w = parse_image_size(image_size)
    v, u = torch.meshgrid(
        torch.arange(h, dtype=dtype, device=device), torch.arange(w, dtype=dtype, device=device), indexing="ij"
    )
    return torch.stack([u, v], dim=-1)


def resize_coordinate(u, scale):
    """A pixel coordinate after resampling the image by `scale`: u' = s·(u + ½) − ½.

    Pixel edges map to pixel edges (the image [−½, W − ½] becomes [−½, s·W − ½]). Numbers or
    tensors, broadcast; the same rule for principal points, keypoints and box corners.
    """
    return scale * (u + 0.5) - 0.5
