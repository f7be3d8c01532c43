"""Shapes several generators share: wheels, superellipse sections, airfoils, side-view extrusions."""

from __future__ import annotations

import math

import numpy as np

from aware3d_utils.deprecation import renamed_arguments
from geom3d import Mesh

from . import palette
from .primitives import cylinder, extrude, lathe, rotate, translate

__all__ = ["wheel", "superellipse_loop", "airfoil_loop", "side_extrusion"]


@renamed_arguments(hub_colour="hub_color", tyre_colour="tyre_color")
def wheel(radius: float, width: float, hub_color, hub_ratio: float = 0.62, tyre_color=palette.TYRE,
          segments: int = 28) -> list[tuple[str, Mesh]]:
    """A tyre (rounded shoulders) and a slightly proud hub, axis along x, centred at the origin."""
    c = min(0.25 * width, 0.18 * radius)
    h = width / 2
    prof = [(0.0, -h), (radius - c, -h), (radius, -h + c), (radius, h - c), (radius - c, h), (0.0, h)]
    tyre = rotate(lathe(prof, tyre_color, segments), "y", math.pi / 2)
    hub = rotate(cylinder(radius * hub_ratio, width + 0.02 * radius, hub_color, segments), "y", math.pi / 2)
    return [("tyre", tyre), ("hub", hub)]


def superellipse_loop(half_width: float, z_bottom: float, z_top: float, y: float, exponent: float = 4.0,
                      points: int = 24) -> np.ndarray:
    """A closed cross-section (points, 3) in the plane y = const: |x/a|^n + |(z − zc)/b|^n = 1."""
    t = np.linspace(0.0, 2 * math.pi, points, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / exponent
    x = half_width * np.sign(c) * np.abs(c) ** e
    zc, b = (z_top + z_bottom) / 2, (z_top - z_bottom) / 2
    z = zc + b * np.sign(s) * np.abs(s) ** e
    return np.stack([x, np.full_like(x, y), z], 1)


def airfoil_loop(chord: float, thickness: float, points: int = 16) -> np.ndarray:
    """A symmetric NACA-style section (points, 2): (distance from the leading edge along the chord,
    thickness offset), closed trailing edge."""
    k = points // 2
    beta = np.linspace(0.0, math.pi, k + 1)
    s = (1 - np.cos(beta)) / 2  # clustered at both edges
    yt = 5 * thickness * (0.2969 * np.sqrt(s) - 0.1260 * s - 0.3516 * s**2 + 0.2843 * s**3 - 0.1036 * s**4)
    upper = np.stack([s, yt], 1)
    lower = np.stack([s[::-1], -yt[::-1]], 1)[1:-1]
    loop = np.concatenate([upper, lower], 0) * [chord, chord]
    return loop


@renamed_arguments(colour="color")
def side_extrusion(profile_yz, width: float, color, centre_x: float = 0.0) -> Mesh:
    """Extrude a side-view polygon of (y, z) points across x (width), centred at `centre_x`."""
    m = extrude(profile_yz, width, color)
    # the extrusion's (x, y, z) become (y, z, x): a cyclic permutation, so a rotation
    m = m.transform(np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0, 0, 0, 1.0]]))
    return translate(m, (centre_x, 0.0, 0.0)) if centre_x else m

