"""Closed, outward-facing mesh primitives with per-vertex colours and UVs, and the transforms that
place them.

Every primitive returns a float64 `geom3d.Mesh` whose surface is closed (watertight once vertices
at the same position are merged: seams, creases and poles carry duplicated vertices so that each
side can have its own UVs and flat shading) and whose faces wind counter-clockwise seen from
outside (positive signed volume). Colours are one RGB in [0, 1] per part.

UV convention (docs/design.md: u right, v up, v = 0 the bottom row of a texture image), per primitive:
- box, rounded box: each face (or the whole rounded surface) maps to [0, 1]^2; for box faces
  u runs right and v up as seen from outside with z up (top and bottom faces: u along +x).
- lathe, cylinder, frustum, superellipsoid: u = angle about the axis / 2π (counter-clockwise seen
  from +z, seam at +x), v = arc length along the profile (bottom 0, top 1).
- extrusion: sides u = perimeter fraction, v = height fraction; caps a planar projection.
- loft and tube: u = around the section / 2π, v = along the sections or the path; caps planar.
Seen from outside, u increases to the right of v (du × dv points outwards) on every surface.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from aware3d_utils.deprecation import renamed, renamed_arguments
from geom3d import GeometryError, Mesh

__all__ = [
    "box",
    "rounded_box",
    "superellipsoid",
    "lathe",
    "cylinder",
    "frustum",
    "extrude",
    "loft",
    "tube",
    "torus_segment",
    "translate",
    "rotate",
    "scale",
    "mirror_x",
    "cylinder_between",
    "warp",
    "recolor",
    "signed_volume",
]

Color = Sequence[float]
_GREY = (0.6, 0.6, 0.6)
_DEFAULT_CREASE = math.radians(35.0)


# ---------------------------------------------------------------------------------------- helpers
def _cos_sin(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin with values within 1e-12 of 0 or ±1 snapped, so poles and quarter turns are exact
    (coincident vertices then compare equal and their degenerate triangles are dropped)."""
    c, s = np.cos(angles), np.sin(angles)
    for x in (c, s):
        x[np.abs(x) < 1e-12] = 0.0
        x[np.abs(np.abs(x) - 1.0) < 1e-12] = np.sign(x[np.abs(np.abs(x) - 1.0) < 1e-12])
    return c, s


def _grid_faces(rows: int, cols: int, offset: int = 0) -> np.ndarray:
    """Two triangles per quad of a (rows, cols) vertex grid stored row-major: (2·(rows−1)·(cols−1), 3).

    With u along the columns and v along the rows, the triangles wind so that du × dv is the
    front side."""
    i, j = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (i * cols + j).reshape(-1) + offset
    b, c, d = a + 1, a + cols + 1, a + cols
    return np.stack([np.stack([a, b, c], 1), np.stack([a, c, d], 1)], 1).reshape(-1, 3)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed triangle surface; positive when its faces wind outwards."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def _color_array(color: Color, n: int) -> np.ndarray:
    rgb = np.asarray(color, dtype=np.float64).reshape(-1)
    if rgb.shape != (3,) or not np.all(np.isfinite(rgb)) or rgb.min() < 0 or rgb.max() > 1:
        raise GeometryError(f"a colour must be 3 values in [0, 1], got {color!r}")
    return np.tile(rgb, (n, 1))


def _finish(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, color: Color,
            orient: bool = True) -> Mesh:
    """Drop triangles with coincident corners (poles, creases), unused vertices, orient outwards
    (flipping u with the winding keeps du × dv outwards) and wrap as a float64 Mesh."""
    v = np.ascontiguousarray(vertices, dtype=np.float64).reshape(-1, 3)
    uv = np.ascontiguousarray(uvs, dtype=np.float64).reshape(-1, 2)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if not np.all(np.isfinite(v)):
        raise GeometryError("primitive has non-finite vertices (check its parameters)")
    # corners closer than a billionth of the part's size count as one point (float rounding)
    tol = 1e-9 * max(float(np.ptp(v, axis=0).max()), 1e-300)
    tri = v[f]
    same = ((np.abs(tri[:, 0] - tri[:, 1]).max(1) <= tol) | (np.abs(tri[:, 1] - tri[:, 2]).max(1) <= tol)
            | (np.abs(tri[:, 0] - tri[:, 2]).max(1) <= tol))
    f = f[~same]
    if len(f) == 0:
        raise GeometryError("primitive has no faces (zero size?)")
    used = np.unique(f)
    remap = np.full(len(v), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    v, uv, f = v[used], uv[used], remap[f]
    if orient and signed_volume(v, f) < 0:
        f = f[:, [0, 2, 1]]
        uv = np.stack([1.0 - uv[:, 0], uv[:, 1]], 1)
    return Mesh(torch.from_numpy(v), torch.from_numpy(np.ascontiguousarray(f)),
                torch.from_numpy(_color_array(color, len(v))), torch.from_numpy(np.ascontiguousarray(uv)))


def _unit_interval(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _planar_uv(points: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """UVs of points on a plane with the given outward normal: u right, v up seen from outside
    (v along the projection of +z, or of +y when the plane faces up or down), scaled to [0, 1]."""
    n = normal / max(np.linalg.norm(normal), 1e-300)
    up = np.array([0.0, 0.0, 1.0]) if abs(n[2]) < 0.9 else np.array([0.0, math.copysign(1.0, n[2]), 0.0])
    e_v = up - n * (up @ n)
    e_v /= np.linalg.norm(e_v)
    e_u = np.cross(e_v, n)
    return np.stack([_unit_interval(points @ e_u), _unit_interval(points @ e_v)], 1)


def _crease_duplicates(points: np.ndarray, closed: bool, crease_angle: float) -> np.ndarray:
    """Indices into `points` (a polyline) with every corner sharper than `crease_angle` repeated,
    so that the two sides of the corner get their own vertices."""
    n = len(points)
    out = []
    for k in range(n):
        out.append(k)
        if not closed and (k == 0 or k == n - 1):
            continue
        d0 = points[k] - points[k - 1]
        d1 = points[(k + 1) % n] - points[k]
        cos_turn = d0 @ d1 / max(np.linalg.norm(d0) * np.linalg.norm(d1), 1e-300)
        if math.acos(min(1.0, max(-1.0, cos_turn))) > crease_angle:
            out.append(k)
    return np.asarray(out)


def _arc_fraction(points: np.ndarray) -> np.ndarray:
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    return s / s[-1] if s[-1] > 0 else s


# ---------------------------------------------------------------------------------------- boxes
@renamed_arguments(colour="color")
def box(size: Sequence[float], color: Color = _GREY, divisions: Sequence[int] = (1, 1, 1)) -> Mesh:
    """Axis-aligned box centred at the origin, size (sx, sy, sz); 4 vertices per face, or a grid of
    `divisions` (nx, ny, nz) cells per axis (useful before a `warp`)."""
    sx, sy, sz = (float(s) for s in size)
    if min(sx, sy, sz) <= 0:
        raise GeometryError(f"box size must be positive, got {tuple(size)}")
    half = np.array([sx, sy, sz]) / 2
    nd = [max(1, int(d)) for d in divisions]
    x, y, z = np.eye(3)
    # (normal, u axis, v axis) with u × v = normal: seen from outside u runs right, v up
    faces_axes = [(x, y, z), (-x, -y, z), (y, -x, z), (-y, x, z), (z, x, y), (-z, x, -y)]
    vs, fs, uvs, count = [], [], [], 0
    for n, eu, ev in faces_axes:
        iu, iv = int(np.argmax(np.abs(eu))), int(np.argmax(np.abs(ev)))
        s = np.linspace(0.0, 1.0, nd[iu] + 1)
        t = np.linspace(0.0, 1.0, nd[iv] + 1)
        T, S = np.meshgrid(t, s, indexing="ij")  # rows along v, columns along u
        pts = (n * half)[None, None] + eu * ((2 * S - 1) * half[iu])[..., None] \
            + ev * ((2 * T - 1) * half[iv])[..., None]
        vs.append(pts.reshape(-1, 3))
        uvs.append(np.stack([S, T], -1).reshape(-1, 2))
        fs.append(_grid_faces(len(t), len(s), count))
        count += pts.shape[0] * pts.shape[1]
    return _finish(np.concatenate(vs), np.concatenate(fs), np.concatenate(uvs), color)


@renamed_arguments(colour="color")
def rounded_box(size: Sequence[float], radius: float, color: Color = _GREY, segments: int = 3) -> Mesh:
    """Box of size (sx, sy, sz) centred at the origin whose edges and corners are rounded with
    `radius` (a box grown by a sphere: flat faces, cylindrical edges, spherical corners).
    `segments` per quarter circle. UVs: u = longitude / 2π, v = latitude, as on a sphere."""
    half = np.asarray(size, dtype=np.float64) / 2
    r = float(radius)
    if half.shape != (3,) or half.min() <= 0:
        raise GeometryError(f"rounded box size must be 3 positive values, got {size!r}")
    if not 0 < r <= half.min():
        raise GeometryError(f"rounded box radius must be in (0, {half.min():g}], got {r:g}")
    q = max(1, int(segments))
    inner = half - r
    lat = np.concatenate([np.linspace(-math.pi / 2, 0, q + 1), np.linspace(0, math.pi / 2, q + 1)])
    sz = np.concatenate([-np.ones(q + 1), np.ones(q + 1)])
    lon = np.concatenate([np.linspace(k * math.pi / 2, (k + 1) * math.pi / 2, q + 1) for k in range(4)])
    sx = np.repeat([1.0, -1.0, -1.0, 1.0], q + 1)
    sy = np.repeat([1.0, 1.0, -1.0, -1.0], q + 1)
    # close the ring: the last column repeats the first (lon = 2π drawn at lon = 0's position)
    lon, sx, sy = np.append(lon, 2 * math.pi), np.append(sx, 1.0), np.append(sy, 1.0)
    cl, sl = _cos_sin(lat)
    co, so = _cos_sin(lon)
    co[-1], so[-1] = 1.0, 0.0
    n = np.stack([cl[:, None] * co[None], cl[:, None] * so[None],
                  np.broadcast_to(sl[:, None], (len(lat), len(lon)))], -1)
    shift = np.stack([np.broadcast_to(sx[None], n.shape[:2]) * inner[0],
                      np.broadcast_to(sy[None], n.shape[:2]) * inner[1],
                      np.broadcast_to(sz[:, None], n.shape[:2]) * inner[2]], -1)
    pts = r * n + shift
    rows, cols = pts.shape[:2]
    uv = np.stack(np.meshgrid(np.linspace(0, 1, cols), np.linspace(0, 1, rows), indexing="xy"), -1)
    faces = [_grid_faces(rows, cols)]
    # the poles became the flat bottom and top squares: one corner vertex per quarter
    corners = [k * (q + 1) for k in range(4)]
    bottom = np.array(corners)
    top = (rows - 1) * cols + np.array(corners)
    faces.append(np.array([[bottom[0], bottom[2], bottom[1]], [bottom[0], bottom[3], bottom[2]]]))
    faces.append(np.array([[top[0], top[1], top[2]], [top[0], top[2], top[3]]]))
    return _finish(pts.reshape(-1, 3), np.concatenate(faces), uv.reshape(-1, 2), color)


@renamed_arguments(colour="color")
def superellipsoid(radii: Sequence[float], e_lat: float = 1.0, e_lon: float = 1.0, color: Color = _GREY,
                   lat_segments: int = 12, lon_segments: int = 24) -> Mesh:
    """Superellipsoid with semi-axes (a, b, c) centred at the origin: exponents 1 give an
    ellipsoid, smaller ones a rounder box, larger ones a pinched shape. `e_lat` shapes the
    vertical profile, `e_lon` the horizontal section."""
    a, b, c = (float(x) for x in radii)
    if min(a, b, c) <= 0 or e_lat <= 0 or e_lon <= 0:
        raise GeometryError("superellipsoid radii and exponents must be positive")
    lat = np.linspace(-math.pi / 2, math.pi / 2, int(lat_segments) + 1)
    lon = np.linspace(0.0, 2 * math.pi, int(lon_segments) + 1)
    cl, sl = _cos_sin(lat)
    co, so = _cos_sin(lon)
    co[-1], so[-1] = co[0], so[0]

    def spow(x, e):
        return np.sign(x) * np.abs(x) ** e

    fl, fo = spow(cl, e_lat), spow(co, e_lon)
    pts = np.stack([a * fl[:, None] * fo[None], b * fl[:, None] * spow(so, e_lon)[None],
                    c * np.broadcast_to(spow(sl, e_lat)[:, None], (len(lat), len(lon)))], -1)
    rows, cols = pts.shape[:2]
    uv = np.stack(np.meshgrid(np.linspace(0, 1, cols), np.linspace(0, 1, rows), indexing="xy"), -1)
    return _finish(pts.reshape(-1, 3), _grid_faces(rows, cols), uv.reshape(-1, 2), color)


# ---------------------------------------------------------------------------------------- revolution
@renamed_arguments(colour="color")
def lathe(profile: Sequence[Sequence[float]], color: Color = _GREY, segments: int = 32,
          crease_angle: float = _DEFAULT_CREASE) -> Mesh:
    """Surface of revolution about the z axis of a profile of (r, z) points, r ≥ 0.

    The profile should start and end on the axis (r = 0) to close the solid; walk it with the
    material on its left in the (r, z) plane (e.g. up the outside, then back down the inside of a
    cup). Profile corners sharper than `crease_angle` get separate vertices (flat shading there).
    """
    p = np.asarray(profile, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
        raise GeometryError(f"lathe profile must be (P ≥ 2, 2) points (r, z), got shape {p.shape}")
    if p[:, 0].min() < 0 or not np.all(np.isfinite(p)):
        raise GeometryError("lathe profile radii must be finite and ≥ 0")
    if np.any(np.linalg.norm(np.diff(p, axis=0), axis=1) == 0):
        raise GeometryError("lathe profile has repeated consecutive points")
    rows = _crease_duplicates(p, closed=False, crease_angle=crease_angle)
    v_param = _arc_fraction(p)[rows]
    prof = p[rows]
    phi = np.linspace(0.0, 2 * math.pi, int(segments) + 1)
    c, s = _cos_sin(phi)
    c[-1], s[-1] = c[0], s[0]
    pts = np.stack([prof[:, :1] * c[None], prof[:, :1] * s[None],
                    np.broadcast_to(prof[:, 1:], (len(prof), len(phi)))], -1)
    uv = np.stack(np.meshgrid(np.linspace(0, 1, len(phi)), v_param, indexing="xy"), -1)
    return _finish(pts.reshape(-1, 3), _grid_faces(len(prof), len(phi)), uv.reshape(-1, 2), color)


@renamed_arguments(colour="color")
def frustum(r_bottom: float, r_top: float, height: float, color: Color = _GREY, segments: int = 32) -> Mesh:
    """Truncated cone about z from −height/2 to +height/2 with flat caps (either radius may be 0)."""
    if height <= 0 or r_bottom < 0 or r_top < 0 or max(r_bottom, r_top) <= 0:
        raise GeometryError("frustum needs height > 0, radii ≥ 0 and one radius > 0")
    h = height / 2
    prof = [(0.0, -h)] + ([(r_bottom, -h)] if r_bottom > 0 else []) + ([(r_top, h)] if r_top > 0 else []) + [(0.0, h)]
    return lathe(prof, color, segments)


@renamed_arguments(colour="color")
def cylinder(radius: float, height: float, color: Color = _GREY, segments: int = 32) -> Mesh:
    """Cylinder about z, centred at the origin, from −height/2 to +height/2."""
    return frustum(radius, radius, height, color, segments)


# ---------------------------------------------------------------------------------------- extrusion
def _ensure_ccw(poly: np.ndarray) -> np.ndarray:
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    if area == 0:
        raise GeometryError("polygon has zero area")
    return poly if area > 0 else poly[::-1].copy()


def triangulate_polygon(poly: np.ndarray) -> np.ndarray:
    """Ear-clipping triangulation of a simple counter-clockwise polygon (N, 2): (N − 2, 3) indices,
    each triangle counter-clockwise."""
    idx = list(range(len(poly)))
    tris = []

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    guard = 0
    while len(idx) > 3:
        n = len(idx)
        for k in range(n):
            i0, i1, i2 = idx[k - 1], idx[k], idx[(k + 1) % n]
            a, b, c = poly[i0], poly[i1], poly[i2]
            if cross(a, b, c) <= 0:
                continue  # reflex or collinear corner: not an ear
            inside = False
            for j in idx:
                if j in (i0, i1, i2):
                    continue
                p = poly[j]
                if cross(a, b, p) >= 0 and cross(b, c, p) >= 0 and cross(c, a, p) >= 0:
                    inside = True
                    break
            if not inside:
                tris.append((i0, i1, i2))
                idx.pop(k)
                break
        else:
            guard += 1
            if guard > 1:
                raise GeometryError("polygon could not be triangulated (self-intersecting?)")
            # only collinear corners are left: drop one and go on
            idx.pop(0)
    tris.append(tuple(idx))
    return np.asarray(tris, dtype=np.int64)


@renamed_arguments(colour="color")
def extrude(polygon: Sequence[Sequence[float]], depth: float, color: Color = _GREY,
            crease_angle: float = _DEFAULT_CREASE, divisions: int = 1) -> Mesh:
    """Prism of a simple polygon (N, 2) in the xy plane, from z = −depth/2 to +depth/2.

    Corners sharper than `crease_angle` get separate vertices; `divisions` rows along z (more
    before a `warp`)."""
    poly = np.asarray(polygon, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        raise GeometryError(f"extrude needs a polygon of shape (N ≥ 3, 2), got {poly.shape}")
    if depth <= 0:
        raise GeometryError(f"extrude depth must be positive, got {depth}")
    poly = _ensure_ccw(poly)
    h = depth / 2
    ring_idx = _crease_duplicates(poly, closed=True, crease_angle=crease_angle)
    ring = poly[np.append(ring_idx, ring_idx[0])]
    u = _arc_fraction(ring)
    zs = np.linspace(-h, h, max(1, int(divisions)) + 1)
    pts = np.stack([np.broadcast_to(ring[None, :, 0], (len(zs), len(ring))),
                    np.broadcast_to(ring[None, :, 1], (len(zs), len(ring))),
                    np.broadcast_to(zs[:, None], (len(zs), len(ring)))], -1)
    uv = np.stack(np.meshgrid(u, np.linspace(0, 1, len(zs)), indexing="xy"), -1)
    # walking the CCW ring with z up gives du × dv pointing outwards
    vs, fs, uvs = [pts.reshape(-1, 3)], [_grid_faces(len(zs), len(ring))], [uv.reshape(-1, 2)]
    count = pts.shape[0] * pts.shape[1]
    tris = triangulate_polygon(poly)
    for z, flip in ((-h, True), (h, False)):
        cap = np.concatenate([poly, np.full((len(poly), 1), z)], 1)
        vs.append(cap)
        uvs.append(_planar_uv(cap, np.array([0.0, 0.0, -1.0 if flip else 1.0])))
        fs.append((tris[:, [0, 2, 1]] if flip else tris) + count)
        count += len(cap)
    return _finish(np.concatenate(vs), np.concatenate(fs), np.concatenate(uvs), color)


# ---------------------------------------------------------------------------------------- loft / sweep
@renamed_arguments(colour="color")
def loft(sections: np.ndarray, color: Color = _GREY, cap_start: bool = True, cap_end: bool = True,
         closed_path: bool = False) -> Mesh:
    """Skin through closed cross-section loops (N, K, 3) (point k of every loop corresponds),
    capping the first and last loops with a fan from their centroid (loops must be star-shaped
    about it). Loops may shrink to a point (a nose or a bow). With `closed_path` the last loop
    connects back to the first (a ring, no caps)."""
    s = np.asarray(sections, dtype=np.float64)
    if s.ndim != 3 or s.shape[2] != 3 or s.shape[0] < 2 or s.shape[1] < 3:
        raise GeometryError(f"loft needs sections of shape (N ≥ 2, K ≥ 3, 3), got {s.shape}")
    if closed_path:
        s = np.concatenate([s, s[:1]], 0)
        cap_start = cap_end = False
    n, k = s.shape[:2]
    grid = np.concatenate([s, s[:, :1]], 1)  # seam column
    u = np.linspace(0.0, 1.0, k + 1)
    centres = s.mean(1)
    v = _arc_fraction(centres) if np.linalg.norm(np.diff(centres, axis=0), axis=1).sum() > 0 \
        else np.linspace(0, 1, n)
    uv = np.stack(np.meshgrid(u, v, indexing="xy"), -1)
    vs, fs, uvs = [grid.reshape(-1, 3)], [_grid_faces(n, k + 1)], [uv.reshape(-1, 2)]
    count = n * (k + 1)
    # caps wind against the adjacent row of side triangles so the surface is consistently oriented
    for row, want in ((0, cap_start), (n - 1, cap_end)):
        if not want:
            continue
        loop = s[row]
        centre = loop.mean(0)
        pts = np.concatenate([loop, centre[None]], 0)
        j = np.arange(k)
        if row == 0:
            tri = np.stack([np.full(k, k), (j + 1) % k, j], 1)
        else:
            tri = np.stack([np.full(k, k), j, (j + 1) % k], 1)
        a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
        normal = np.cross(b - a, c - a).sum(0)
        vs.append(pts)
        uvs.append(_planar_uv(pts, normal) if np.linalg.norm(normal) > 0 else np.zeros((k + 1, 2)))
        fs.append(tri + count)
        count += k + 1
    return _finish(np.concatenate(vs), np.concatenate(fs), np.concatenate(uvs), color)


def _transport_frames(path: np.ndarray, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-minimising normals and binormals along a polyline (N, 3)."""
    if closed:
        tangents = np.roll(path, -1, 0) - np.roll(path, 1, 0)
    else:
        tangents = np.gradient(path, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True).clip(1e-300)
    t0 = tangents[0]
    helper = np.array([0.0, 0.0, 1.0]) if abs(t0[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normal = np.cross(t0, helper)
    normal /= np.linalg.norm(normal)
    normals = [normal]
    for t in tangents[1:]:
        normal = normal - t * (normal @ t)
        normal /= np.linalg.norm(normal)
        normals.append(normal)
    normals = np.asarray(normals)
    return normals, np.cross(tangents, normals)


@renamed_arguments(colour="color")
def tube(path: Sequence[Sequence[float]], radius, color: Color = _GREY, segments: int = 12,
         closed: bool = False) -> Mesh:
    """A round tube of `radius` (scalar or one per point) swept along a polyline (N, 3), capped
    at the ends unless `closed` (then the path is a loop)."""
    p = np.asarray(path, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 2:
        raise GeometryError(f"tube path must be (N ≥ 2, 3), got {p.shape}")
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(p),))
    if r.min() <= 0:
        raise GeometryError("tube radius must be positive")
    normals, binormals = _transport_frames(p, closed)
    ang = np.linspace(0.0, 2 * math.pi, int(segments), endpoint=False)
    c, s = _cos_sin(ang)
    ring = c[None, :, None] * normals[:, None] + s[None, :, None] * binormals[:, None]  # (N, K, 3)
    sections = p[:, None] + r[:, None, None] * ring
    return loft(sections, color, closed_path=closed)


@renamed_arguments(colour="color")
def torus_segment(major_radius: float, minor_radius: float, start: float = 0.0, stop: float = 2 * math.pi,
                  color: Color = _GREY, segments: int = 32, tube_segments: int = 12) -> Mesh:
    """Torus (or an arc of one, capped, from angle `start` to `stop`) in the xy plane about z."""
    if not 0 < minor_radius < major_radius:
        raise GeometryError("torus needs 0 < minor_radius < major_radius")
    full = abs(stop - start) >= 2 * math.pi - 1e-12
    n = int(segments) if full else max(2, int(segments)) + 1
    ang = np.linspace(start, stop, n, endpoint=not full)
    c, s = _cos_sin(ang)
    path = np.stack([major_radius * c, major_radius * s, np.zeros_like(c)], 1)
    return tube(path, minor_radius, color, tube_segments, closed=full)


# ---------------------------------------------------------------------------------------- transforms
def _matrix(linear: np.ndarray | None = None, offset: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    M = np.eye(4)
    if linear is not None:
        M[:3, :3] = linear
    M[:3, 3] = offset
    return M


def _axis_matrix(axis: str | Sequence[float], angle: float) -> np.ndarray:
    if isinstance(axis, str):
        axis = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}[axis]
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)  # Rodrigues


def translate(mesh: Mesh, offset: Sequence[float]) -> Mesh:
    return mesh.transform(_matrix(offset=offset))


def rotate(mesh: Mesh, axis: str | Sequence[float], angle: float) -> Mesh:
    """Rotate about an axis through the origin ('x', 'y', 'z' or a vector) by `angle` (radians,
    right-hand rule)."""
    return mesh.transform(_matrix(_axis_matrix(axis, angle)))


def scale(mesh: Mesh, factors) -> Mesh:
    """Scale about the origin by a scalar or (sx, sy, sz) (a negative factor mirrors; the winding
    is flipped by `Mesh.transform` so the faces keep pointing outwards)."""
    f = np.broadcast_to(np.asarray(factors, dtype=np.float64), (3,))
    return mesh.transform(_matrix(np.diag(f)))


def mirror_x(mesh: Mesh) -> Mesh:
    """Mirror through the x = 0 plane (left ↔ right), keeping faces outward."""
    return scale(mesh, (-1.0, 1.0, 1.0))


@renamed_arguments(colour="color")
def cylinder_between(p0: Sequence[float], p1: Sequence[float], radius: float, color: Color = _GREY,
                     segments: int = 12, r1: float | None = None) -> Mesh:
    """A cylinder (or frustum, when `r1` is given for the p1 end) from point p0 to point p1."""
    a, b = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    d = b - a
    length = float(np.linalg.norm(d))
    if length <= 0:
        raise GeometryError("cylinder_between needs two distinct points")
    m = frustum(radius, radius if r1 is None else r1, length, color, segments)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, d / length)
    s, c = np.linalg.norm(axis), float(z @ d) / length
    if s < 1e-12:
        R = np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    else:
        R = _axis_matrix(axis, math.atan2(s, c))
    return m.transform(_matrix(R, (a + b) / 2))


def warp(mesh: Mesh, fn: Callable[[np.ndarray], np.ndarray]) -> Mesh:
    """Move the vertices by a smooth function (V, 3) -> (V, 3) on float64 numpy arrays (a taper, a
    bend). The function must keep orientation (no mirroring)."""
    v = mesh.vertices.detach().cpu().numpy().astype(np.float64)
    out = np.asarray(fn(v.copy()), dtype=np.float64)
    if out.shape != v.shape or not np.all(np.isfinite(out)):
        raise GeometryError("warp must return finite vertices of the same shape")
    return replace(mesh, vertices=torch.from_numpy(out).to(mesh.vertices.dtype))


@renamed_arguments(colours="colors")
def recolor(mesh: Mesh, colors) -> Mesh:
    """New per-vertex colours: one RGB, (V, 3), or a function of the vertices (V, 3) -> (V, 3)."""
    v = mesh.vertices.detach().cpu().numpy()
    c = colors(v) if callable(colors) else colors
    c = np.asarray(c, dtype=np.float64)
    c = np.broadcast_to(c, (len(v), 3)) if c.shape == (3,) else c
    if c.shape != (len(v), 3) or c.min() < 0 or c.max() > 1:
        raise GeometryError("colours must be (V, 3) or (3,) values in [0, 1]")
    return replace(mesh, vertex_colors=torch.from_numpy(np.ascontiguousarray(c)).to(mesh.vertices.dtype))


recolour = renamed(recolor, "recolour")  # the old spelling
