"""Framing: the smallest camera distance at which the whole object is in the image.

A viewpoint looks at the object origin, so in its camera frame a vertex X sits at
`R·X + (0, 0, d)` (R from azimuth, elevation and in-plane angle alone) and projects to
`u = fx·x/(z + d) + px`, `v = fy·y/(z + d) + py`. Each image bound is then linear in d per
vertex: `u >= lo` holds for `d >= fx·x/(lo − px) − z` (lo < px) and `u <= hi` for
`d >= fx·x/(hi − px) − z` (hi > px). The largest of these over every vertex and the four bounds is
the fit distance. The projected triangles lie in the convex hull of the projected vertices, so at
that distance no pixel centre outside `[margin, W − 1 − margin] × [margin, H − 1 − margin]` is
covered: with a margin of at least one pixel the mask never touches the border.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from geom3d import viewpoint_to_rotation

__all__ = ["fit_distance", "margin_pixels"]


def margin_pixels(margin: float, image_size: Sequence[int]) -> float:
    """The border kept free (pixels): `margin` × the shorter image side, at least one pixel."""
    return max(1.0, float(margin) * min(int(s) for s in image_size))


def fit_distance(vertices: np.ndarray, viewpoint, image_size: Sequence[int], margin_px: float = 1.0) -> float:
    """The smallest distance at which every vertex (V, 3) projects at least `margin_px` inside the
    image (H, W) through `viewpoint` (its angles, focal·viewport and principal point; its own
    distance is ignored); inf when the principal point itself lies in the margin (no distance fits)."""
    h, w = (int(s) for s in image_size)
    lo_u, hi_u, lo_v, hi_v = margin_px, w - 1 - margin_px, margin_px, h - 1 - margin_px
    px, py = float(viewpoint.px), float(viewpoint.py)
    if not (lo_u < px < hi_u and lo_v < py < hi_v):
        return math.inf
    f = float(viewpoint.focal) * float(viewpoint.viewport)
    angles = torch.tensor([viewpoint.azimuth, viewpoint.elevation, viewpoint.theta], dtype=torch.float64)
    R = viewpoint_to_rotation(*angles).numpy()  # float64 throughout: the fit is exact to rounding
    cam = np.asarray(vertices, dtype=np.float64) @ R.T  # (V, 3), before adding (0, 0, d)
    x, y, z = cam[:, 0], cam[:, 1], cam[:, 2]
    bounds = np.stack([f * x / (lo_u - px), f * x / (hi_u - px), f * y / (lo_v - py), f * y / (hi_v - py)]) - z
    return float(bounds.max())
