"""The NeMo cuboid: a box that covers a category's CAD models, meshed as six face grids.

NeMo replaces each category's CAD models by one cuboid whose vertices carry learned features.
Per axis the box spans the shortest interval covering a fraction (default 99%) of the pooled
vertices, so a few outlying parts (an antenna, a mirror) do not inflate it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .errors import GeometryError
from .mesh import Mesh

__all__ = ["shortest_covering_interval", "cuboid_from_meshes", "cuboid_mesh"]


def shortest_covering_interval(values: torch.Tensor, coverage: float = 0.99) -> tuple[float, float]:
    """The shortest interval [lo, hi] holding at least ceil(coverage·N) of the values (N,)."""
    if not 0 < coverage <= 1:
        raise GeometryError(f"coverage must be in (0, 1], got {coverage}")
    v = torch.sort(values.reshape(-1).double()).values
    n = v.numel()
    if n == 0:
        raise GeometryError("cannot cover an empty set of values")
    k = max(1, math.ceil(coverage * n - 1e-9))
    widths = v[k - 1:] - v[: n - k + 1]
    i = int(torch.argmin(widths))
    return float(v[i]), float(v[i + k - 1])


def _grid_counts(extent: Sequence[float], num_vertices: int) -> tuple[int, int, int]:
    """Segments per axis (about equal spacing) whose six face grids total about num_vertices."""
    def total(n):
        nx, ny, nz = (c + 1 for c in n)
        return 2 * (nx * ny + ny * nz + nx * nz)

    longest = max(extent)
    best, best_err = (1, 1, 1), math.inf
    for step in range(1, 4000):
        spacing = longest / (step * 0.05)
        n = tuple(max(1, round(e / spacing)) for e in extent)
        err = abs(total(n) - num_vertices)
        if err < best_err:
            best, best_err = n, err
        if total(n) > 2 * num_vertices:
            break
    return best


def cuboid_mesh(lo, hi, num_vertices: int = 1000) -> Mesh:
    """An axis-aligned box [lo, hi] as six independent grids (no shared edge vertices, as in
    NeMo) with about `num_vertices` vertices in total; faces wind outwards."""
    lo = torch.as_tensor(lo, dtype=torch.float64)
    hi = torch.as_tensor(hi, dtype=torch.float64)
    extent = (hi - lo).tolist()
    if min(extent) <= 0:
        raise GeometryError(f"cuboid needs positive extent on every axis, got {extent}")
    counts = _grid_counts(extent, num_vertices)
    vertices, faces, offset = [], [], 0
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3  # e_i × e_j = e_k
        gi = torch.linspace(float(lo[i]), float(hi[i]), counts[i] + 1, dtype=torch.float64)
        gj = torch.linspace(float(lo[j]), float(hi[j]), counts[j] + 1, dtype=torch.float64)
        a, b = torch.meshgrid(gi, gj, indexing="ij")
        ni, nj = a.shape
        idx = torch.arange(ni * nj).reshape(ni, nj)
        q00, q10, q11, q01 = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
        ccw = torch.cat([torch.stack([q00, q10, q11], -1).reshape(-1, 3),
                         torch.stack([q00, q11, q01], -1).reshape(-1, 3)])  # normal +e_k
        for sign, level in ((1, hi[k]), (-1, lo[k])):
            p = torch.empty(ni * nj, 3, dtype=torch.float64)
            p[:, i], p[:, j], p[:, k] = a.reshape(-1), b.reshape(-1), float(level)
            vertices.append(p)
            faces.append((ccw if sign > 0 else ccw[:, [0, 2, 1]]) + offset)
            offset += ni * nj
    return Mesh(torch.cat(vertices).float(), torch.cat(faces))


def cuboid_from_meshes(meshes: Sequence[Mesh], coverage: float = 0.99, num_vertices: int = 1000) -> Mesh:
    """NeMo's cuboid for a set of CAD models (in one object frame): per axis the shortest interval
    covering `coverage` of the pooled vertices, meshed with about `num_vertices` vertices."""
    if not meshes:
        raise GeometryError("cuboid_from_meshes needs at least one mesh")
    pooled = torch.cat([m.vertices.detach().double() for m in meshes])
    bounds = [shortest_covering_interval(pooled[:, axis], coverage) for axis in range(3)]
    lo, hi = zip(*bounds)
    return cuboid_mesh(lo, hi, num_vertices)
