"""Domain randomisation: object colours and procedural textures, backgrounds, lights, occluders.

Every function draws from the `numpy.random.Generator` it is given (the pipeline derives one per
sample and stage from (seed, sample id)), in a fixed order, so the same generator state gives the
same image on any machine, in any order.

- Appearance: "original" (the asset's own colours), "solid" (one colour), "noise" (a solid 3D
  value-noise texture between two colours) and "stripes" (3D stripes): the textures live in the
  object frame, so they stick to the surface from every viewpoint. `texture_albedo` evaluates them
  at the object points seen by each pixel (unprojected from the rendered depth).
- Backgrounds: coloured multi-scale value noise, gradients, solid colours, crops of images from a
  folder, or none (transparent: an RGBA image); optionally a soft contact shadow of the object's
  footprint on them (`contact_shadow`), which ground-standing objects cast in every photograph,
  and a road under the object in the camera's perspective (`ground_plane`).
- Lights: ambient plus 1-3 tinted directional lights from the camera's side.
- Occluders: random star-shaped polygons and ellipses pasted over the object, scaled by bisection
  until the hidden fraction of the object's silhouette lands in the occlusion level's range
  (OccludedPASCAL3D+: L1 20-40%, L2 40-60%, L3 60-80%); the visible mask is exact.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from aware3d_utils import IMAGE_SUFFIXES
from aware3d_utils.deprecation import renamed
from aware3d_utils.optional import lazy_module

from .render import Lights

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = [
    "APPEARANCES",
    "BACKGROUNDS",
    "choose",
    "random_color",
    "random_lights",
    "value_noise_3d",
    "texture_albedo",
    "object_points",
    "noise_2d",
    "make_background",
    "contact_shadow",
    "ground_plane",
    "Occlusion",
    "make_occluders",
    "list_images",
]

APPEARANCES = ("original", "solid", "noise", "stripes")
BACKGROUNDS = ("noise", "gradient", "solid", "image", "transparent")


def choose(rng: np.random.Generator, weights: Mapping[str, float], order: Sequence[str]) -> str:
    """One key of `weights` with probability proportional to its weight (keys taken in `order`,
    so the draw does not depend on the mapping's order)."""
    names = [k for k in order if weights.get(k, 0) > 0]
    if not names:
        raise ValueError(f"no option with a positive weight among {list(order)}")
    w = np.array([weights[k] for k in names], dtype=np.float64)
    return names[int(np.searchsorted(np.cumsum(w) / w.sum(), rng.random(), side="right").clip(0, len(names) - 1))]


def random_color(rng: np.random.Generator, saturation=(0.15, 0.9), value=(0.2, 0.95)) -> np.ndarray:
    """An RGB colour (3,) float64 in [0, 1], drawn in HSV (hue uniform)."""
    h = rng.random()
    s = saturation[0] + (saturation[1] - saturation[0]) * rng.random()
    v = value[0] + (value[1] - value[0]) * rng.random()
    return np.array(colorsys.hsv_to_rgb(h, s, v))


random_colour = renamed(random_color, "random_colour")  # the old spelling


def random_lights(rng: np.random.Generator, ambient=(0.25, 0.55), count=(1, 3), intensity=(0.3, 0.8),
                  tint: float = 0.15) -> Lights:
    """Ambient light and `count` directional lights from the camera's side (within 75° of the
    viewing axis, so the visible surfaces are lit), each tinted away from white by up to `tint`."""
    amb = ambient[0] + (ambient[1] - ambient[0]) * rng.random()
    n = int(rng.integers(int(count[0]), int(count[1]) + 1))
    dirs, cols = np.zeros((n, 3)), np.zeros((n, 3))
    cos_max = math.cos(math.radians(75.0))
    for i in range(n):
        z = 1.0 - (1.0 - cos_max) * rng.random()  # uniform on the spherical cap
        phi = 2 * math.pi * rng.random()
        r = math.sqrt(max(0.0, 1 - z * z))
        dirs[i] = (r * math.cos(phi), r * math.sin(phi), -z)  # towards the light: the camera looks along +z
        color = np.clip(1.0 + tint * (2 * rng.random(3) - 1), 0.0, None)
        cols[i] = color / color.max() * (intensity[0] + (intensity[1] - intensity[0]) * rng.random())
    return Lights(ambient=np.full(3, amb), directions=dirs, colors=cols)


# ----------------------------------------------------------------------------------- 3D textures
def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def value_noise_3d(points: np.ndarray, perm: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] at points (N, 3): random values on the integer lattice
    (hashed through `perm`, 256 entries) blended with smoothstep weights. (N,) float32."""
    p = np.asarray(points, dtype=np.float32)
    i0 = np.floor(p)
    f = p - i0
    w1 = f * f * (3.0 - 2.0 * f)  # weights of the upper corners, per axis
    w0 = 1.0 - w1
    i0 = i0.astype(np.int32)
    perm = np.asarray(perm, dtype=np.int32)
    values = np.asarray(values, dtype=np.float32)
    out = np.zeros(len(p), np.float32)
    for dx, wx in ((0, w0[:, 0]), (1, w1[:, 0])):
        hx = perm[(i0[:, 0] + dx) & 255]
        for dy, wy in ((0, w0[:, 1]), (1, w1[:, 1])):
            hy = perm[(hx + i0[:, 1] + dy) & 255]
            wxy = wx * wy
            out += wxy * (w0[:, 2] * values[perm[(hy + i0[:, 2]) & 255]]
                          + w1[:, 2] * values[perm[(hy + i0[:, 2] + 1) & 255]])
    return out


def object_points(depth: np.ndarray, mask: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Object-frame points (N, 3) seen by the covered pixels (row-major order of `mask`), from
    the camera depth (H, W) and the OpenCV camera (K (3, 3), world -> camera R (3, 3), t (3,))."""
    v, u = np.nonzero(mask)
    z = depth[v, u].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    cam = np.stack([x, y, z], 1)
    return (cam - t) @ R  # R^T (X_cam - t), row vectors


def texture_albedo(rng: np.random.Generator, kind: str, points: np.ndarray, extent: float) -> np.ndarray:
    """Base colours (N, 3) in [0, 1] for object points (N, 3) under appearance `kind`
    ("solid", "noise" or "stripes"); `extent` (the object's size) sets the texture scale."""
    c1 = random_color(rng)
    if kind == "solid":
        return np.broadcast_to(c1, (len(points), 3)).copy()
    c2 = random_color(rng)
    rot = _random_rotation(rng)
    p = (points / max(extent, 1e-12)) @ rot.T
    if kind == "noise":
        perm = rng.permutation(256)
        values = rng.random(256)
        freq = 3.0 + 9.0 * rng.random()
        n, amp, norm = np.zeros(len(p)), 1.0, 0.0
        for octave in range(3):
            n += amp * value_noise_3d(p * freq * 2**octave + 17.0 * octave, perm, values)
            norm += amp
            amp *= 0.5
        s = np.clip((n / norm - 0.5) * 2.2 + 0.5, 0.0, 1.0)
    elif kind == "stripes":
        freq = 4.0 + 12.0 * rng.random()
        phase = 2 * math.pi * rng.random()
        hardness = 1.0 + 6.0 * rng.random()
        s = 0.5 + 0.5 * np.tanh(hardness * np.sin(2 * math.pi * freq * p[:, 0] + phase))
    else:
        raise ValueError(f"unknown appearance {kind!r}; use one of {APPEARANCES[1:]}")
    return c1 * (1.0 - s[:, None]) + c2 * s[:, None]


# ----------------------------------------------------------------------------------- backgrounds
def noise_2d(rng: np.random.Generator, size: tuple[int, int], base_cells: float = 3.0, octaves: int = 4) -> np.ndarray:
    """Multi-scale value noise (H, W) float32 in [0, 1]: random grids upsampled bicubically."""
    h, w = size
    out = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        cells = base_cells * 2**octave
        gh, gw = max(2, int(round(cells * h / max(h, w))) + 1), max(2, int(round(cells * w / max(h, w))) + 1)
        grid = rng.random((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        norm += amp
        amp *= 0.5
    out /= norm
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo) if hi > lo else np.full((h, w), 0.5, np.float32)


def _ramp(size: tuple[int, int], angle: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: a linear ramp across the image along the direction `angle`."""
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    s = xx * math.cos(angle) + yy * math.sin(angle)
    return (s - s.min()) / max(float(s.max() - s.min()), 1e-6)


def _palette_map(s: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Map s (H, W) in [0, 1] through a piecewise-linear palette of colours (k, 3) -> (H, W, 3) float32.

    Through a 256-entry table with OpenCV's LUT (a step of at most 1/255 between neighbouring
    entries: invisible in 8-bit output), many times faster than interpolating every pixel."""
    k = len(colors)
    x = np.linspace(0.0, k - 1.0, 256)
    i = np.minimum(x.astype(np.int64), k - 2)
    f = (x - i)[:, None]
    c = np.asarray(colors, dtype=np.float64)
    table = (c[i] * (1 - f) + c[i + 1] * f).astype(np.float32).reshape(1, 256, 3)
    idx = cv2.convertScaleAbs(np.asarray(s, dtype=np.float32), alpha=255.0)  # rounded, saturated to uint8
    return cv2.LUT(cv2.merge([idx, idx, idx]), table)


def image_folders(value: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[str, ...]:
    """`randomization.background_images` (one folder or a list of folders) as absolute paths."""
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    return tuple(os.path.abspath(str(v)) for v in items)


def list_images(folders: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[str, ...]:
    """Image files under `folders` (one folder or several; recursive), sorted per folder in the order
    given, so a draw by index is reproducible."""
    return _list_images(image_folders(folders))


@lru_cache(maxsize=8)
def _list_images(folders: tuple[str, ...]) -> tuple[str, ...]:
    files: list[str] = []
    twice = sorted({f for f in folders if folders.count(f) > 1})
    if twice:  # its images would be drawn twice as often as the others', without a word
        raise ValueError(f"{twice[0]}: the folder is given twice; give each folder once")
    for folder in folders:
        root = Path(folder)
        if root.is_file():
            raise FileNotFoundError(f"{folder}: is a file, not a folder of images (give its folder)")
        if not root.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        found = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise FileNotFoundError(f"{folder}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files.extend(found)
    return tuple(files)


def _image_background(rng: np.random.Generator, size: tuple[int, int], folder,
                      unreadable: list[str] | None = None) -> np.ndarray:
    """A crop of the drawn image; an unreadable file is passed over for the next one in sorted
    order (so the choice stays a function of the draw) and its path appended to `unreadable`."""
    files = list_images(folder)
    start = int(rng.integers(len(files)))
    for k in range(len(files)):
        path = files[(start + k) % len(files)]
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is not None and img.size:
            break
        if unreadable is not None:
            unreadable.append(path)
    else:
        where = ", ".join(image_folders(folder))
        raise OSError(f"{where}: none of its {len(files)} background images can be read "
                      "(randomization.background_images)")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = size
    ih, iw = img.shape[:2]
    # a random crop of the output's aspect, 50-100% of the largest such crop
    scale = min(ih / h, iw / w) * (0.5 + 0.5 * rng.random())
    ch, cw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    y0 = int(rng.integers(ih - ch + 1))
    x0 = int(rng.integers(iw - cw + 1))
    crop = img[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if ch > h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp).astype(np.float32) / 255.0


def make_background(rng: np.random.Generator, kind: str, size: tuple[int, int],
                    image_folder: str | None = None, unreadable: list[str] | None = None) -> np.ndarray | None:
    """A background (H, W, 3) float32 in [0, 1] of `kind`; None for "transparent". Image files
    that cannot be read are passed over and appended to `unreadable`."""
    h, w = size
    if kind == "transparent":
        return None
    if kind == "solid":
        return np.broadcast_to(random_color(rng).astype(np.float32), (h, w, 3)).copy()
    if kind == "gradient":
        c1, c2 = random_color(rng), random_color(rng)
        return _palette_map(_ramp((h, w), 2 * math.pi * rng.random()), np.stack([c1, c2]))
    if kind == "noise":
        colors = np.stack([random_color(rng) for _ in range(3)])
        s = noise_2d(rng, size, base_cells=2.0 + 6.0 * rng.random())
        return _palette_map(s, colors)
    if kind == "image":
        if not image_folder:
            raise ValueError("an image background needs randomization.background_images")
        return _image_background(rng, size, image_folder, unreadable)
    raise ValueError(f"unknown background {kind!r}; use one of {BACKGROUNDS}")


def contact_shadow(background: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray, bounds,
                   darkness: float, softness: float = 0.15) -> np.ndarray:
    """`background` (H, W, 3) darkened under the object: the footprint of its box (the rectangle at
    the lowest z of `bounds` [[lo], [hi]], z up, 8% larger) projected by the OpenCV camera (K, R, t:
    object -> camera), filled, blurred by a Gaussian of `softness` × the footprint's projected size,
    and multiplied in as 1 − darkness × coverage. Unchanged when a corner is behind the camera.

    Rendered objects float over their backgrounds; real cars, chairs and sofas stand on a ground that
    is darkest where they touch it, which is visible between the wheels and legs and under the body."""
    (x0, y0, z0), (x1, y1, _) = np.asarray(bounds, dtype=np.float64)
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, 0.54 * (x1 - x0), 0.54 * (y1 - y0)
    corners = np.array([[cx + sx * hx, cy + sy * hy, z0] for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    K, R, t = (np.asarray(x, dtype=np.float64) for x in (K, R, t))
    cam = corners @ R.T + t
    if (cam[:, 2] <= 1e-9).any():
        return background
    uv = cam[:, :2] / cam[:, 2:] @ K[:2, :2].T + K[:2, 2]
    h, w = background.shape[:2]
    hull = cv2.convexHull(uv.astype(np.float32))
    cover = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(cover, np.round(hull * 16).astype(np.int32), 1.0, lineType=cv2.LINE_AA, shift=4)
    sigma = softness * math.sqrt(max(float(cv2.contourArea(hull)), 0.0))
    if sigma > 0.3:
        cover = cv2.GaussianBlur(cover, (0, 0), sigma)
    return background * (1.0 - float(darkness) * cover)[..., None]


def ground_plane(background: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray, bounds,
                 rng: np.random.Generator, fade: float | None = None) -> np.ndarray:
    """`background` (H, W, 3) with a ground under the object drawn in the camera's perspective:
    every pixel whose ray (OpenCV camera K, R, t: object -> camera) meets the plane at the lowest z
    of `bounds` (z up) in front of the camera shows a road there, blended into the background with
    distance (weight exp(−distance / fade), fade drawn as 8-40 object sizes unless given), so the
    road vanishes into the picture before its horizon. The road: grey asphalt of value noise at a
    metric scale (the object's size is its unit), with dashed lane markings along the object's long
    axis y in half of the draws. Pixels above the horizon are unchanged, and so is everything when
    the camera is below the ground.

    A pasted photograph puts a car in front of whatever the photograph shows, at any height; cars
    in street scenes stand on a road that recedes towards a horizon above them, at the angle the
    camera's elevation sets."""
    (x0, y0, z0), (x1, y1, z1) = np.asarray(bounds, dtype=np.float64)
    size = max(x1 - x0, y1 - y0, z1 - z0, 1e-9)
    K, R, t = (np.asarray(x, dtype=np.float64) for x in (K, R, t))
    h, w = background.shape[:2]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    d = rays.reshape(-1, 3) @ R  # object-frame ray directions (R^T d, row vectors)
    centre = -R.T @ t  # the camera centre in the object frame
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (z0 - centre[2]) / d[:, 2]
        hit = np.isfinite(s) & (s > 0)
    # the draws, all before any early return, so they do not depend on the view
    grey = rng.uniform(0.18, 0.55)
    tint = 1.0 + rng.uniform(-0.06, 0.06, size=3)
    contrast = rng.uniform(0.05, 0.25)
    perm, values = rng.permutation(256), rng.random(256)
    fade = float(fade) if fade is not None else rng.uniform(8.0, 40.0)
    markings = rng.random() < 0.5
    lane, offset = rng.uniform(0.7, 0.9), rng.uniform(-0.15, 0.15)  # lanes ~3.5 m wide for a 4.5 m car
    period, dash = rng.uniform(1.5, 3.0), rng.uniform(0.3, 0.6)  # dash period and its painted fraction
    paint = np.array([0.92, 0.92, 0.88]) if rng.random() < 0.8 else np.array([0.90, 0.75, 0.20])
    side_lanes = rng.integers(0, 3, size=2)  # lanes beside the object's, on its left and right
    # beyond 7 fade lengths the road's weight is below 0.1%: those pixels keep the background
    with np.errstate(invalid="ignore"):
        hit &= s * np.linalg.norm(d, axis=1) < 7.0 * fade * size
    if centre[2] <= z0 or not hit.any():  # a camera under the ground sees no road
        return background
    p = centre + s[hit, None] * d[hit]  # ground points (N, 3), z = z0
    dist = np.linalg.norm(p - centre, axis=1) / size
    q = np.stack([p[:, 0], p[:, 1], np.zeros(len(p))], 1) / size
    n, amp, norm = np.zeros(len(q)), 1.0, 0.0
    for octave, freq in enumerate((1.5, 6.0, 24.0)):
        n += amp * value_noise_3d(q * freq + 13.0 * octave, perm, values)
        norm += amp
        amp *= 0.6
    shade = grey * (1.0 + contrast * (2.0 * n / norm - 1.0))
    road = np.clip(shade[:, None] * tint, 0.0, 1.0)
    if markings:
        across = (q[:, 0] - offset) / lane + 0.5  # the object in the lane between lines 0 and 1
        line = np.abs(across - np.round(across)) * lane < 0.02  # lines ~18 cm wide on a 4.5 m car
        k = np.round(across)  # lines k = 0 and 1 bound the object's lane; a road has a few lanes
        on = line & (k >= -side_lanes[0]) & (k <= 1 + side_lanes[1]) & (((q[:, 1] / period) % 1.0) < dash)
        # a line narrower than a pixel is drawn at its share of the pixel, not as a full dot
        depth = (p[on] @ R.T + t)[:, 2]
        cover = np.clip(0.04 * size * K[0, 0] / depth, 0.0, 1.0)[:, None]
        road[on] = cover * paint + (1.0 - cover) * road[on]
    weight = np.exp(-dist / fade)[:, None]
    out = background.reshape(-1, 3).astype(np.float32, copy=True)
    out[hit] = (weight * road + (1.0 - weight) * out[hit]).astype(np.float32)
    return out.reshape(background.shape)


# ----------------------------------------------------------------------------------- occluders
@dataclass
class Occlusion:
    """Occluders over one image: mask (H, W) bool of occluder pixels, their colours rgb (H, W, 3)
    float32, and the hidden fraction of the object's silhouette."""

    mask: np.ndarray
    rgb: np.ndarray
    hidden_fraction: float


def _shape_outline(rng: np.random.Generator) -> np.ndarray:
    """A random star-shaped outline around the origin, radius ≈ 1: (k, 2) float64.

    Star-shaped about its centre, so scaling it about the centre gives nested shapes and the
    hidden fraction grows monotonically with the scale (what the bisection needs)."""
    if rng.random() < 0.4:  # an ellipse
        k = 48
        ang = np.linspace(0, 2 * math.pi, k, endpoint=False)
        ax = 0.5 + 0.5 * rng.random()
        pts = np.stack([np.cos(ang), ax * np.sin(ang)], 1)
    else:  # a polygon with random radii
        k = int(rng.integers(3, 9))
        ang = np.sort(rng.random(k)) * 2 * math.pi
        rad = 0.55 + 0.45 * rng.random(k)
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    rot = 2 * math.pi * rng.random()
    c, s = math.cos(rot), math.sin(rot)
    return pts @ np.array([[c, s], [-s, c]])


def _fill(outlines: list[tuple[np.ndarray, np.ndarray]], scale: float, size: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(size, np.uint8)
    for centre, pts in outlines:  # one call per shape: a multi-contour fillPoly would cancel overlaps
        poly = np.round((centre + scale * pts) * 16).astype(np.int32)
        cv2.fillPoly(canvas, [poly], 1, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def make_occluders(rng: np.random.Generator, mask: np.ndarray, hidden: tuple[float, float], *,
                   shapes=(1, 3), attempts: int = 30) -> Occlusion | None:
    """Occluders hiding a fraction of `mask` (H, W) bool drawn uniformly from `hidden` = (lo, hi).

    Each attempt places 1-3 random shapes centred on object pixels and bisects their common
    scale until the hidden fraction is within 1% of the target; the first attempt that lands in
    [lo, hi] wins. Returns None when no attempt succeeds (the sample is skipped and counted).
    """
    area = int(mask.sum())
    if area == 0:
        return None
    lo, hi = hidden
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    target = lo + (hi - lo) * rng.random()
    diag = math.hypot(h, w)
    for _ in range(int(attempts)):
        n = int(rng.integers(int(shapes[0]), int(shapes[1]) + 1))
        outlines = []
        for _ in range(n):
            j = int(rng.integers(area))
            centre = np.array([xs[j], ys[j]], dtype=np.float64) + rng.random(2) - 0.5
            outlines.append((centre, _shape_outline(rng)))
        s_lo, s_hi = 0.0, 2.0 * diag
        occ, frac = None, 0.0
        for _ in range(20):
            mid = 0.5 * (s_lo + s_hi)
            cand = _fill(outlines, mid, (h, w))
            f = float((cand & mask).sum()) / area
            if f < target:
                s_lo = mid
            else:
                s_hi = mid
            if abs(f - target) < 0.01:
                occ, frac = cand, f
                break
        if occ is None:
            occ = _fill(outlines, s_hi, (h, w))
            frac = float((occ & mask).sum()) / area
        if lo <= frac <= hi:
            return Occlusion(mask=occ, rgb=_occluder_texture(rng, (h, w)), hidden_fraction=frac)
    return None


def _occluder_texture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Occluder colours: coloured noise with a soft shading gradient, so occluders read as objects."""
    colors = np.stack([random_color(rng) for _ in range(2)])
    tex = _palette_map(noise_2d(rng, size, base_cells=4.0 + 8.0 * rng.random(), octaves=3), colors)
    return tex * (0.7 + 0.3 * _ramp(size, 2 * math.pi * rng.random())[..., None])
