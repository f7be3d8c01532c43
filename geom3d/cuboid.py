"""The NeMo cuboid: a box that covers a category's CAD models, meshed as six face grids.

NeMo (Wang et al. 2021) replaces each category's CAD models by one cuboid whose vertices carry
learned features. This module reproduces the rule of NeMo's `tools/CreateCuboidMesh.py`, so that
NeMo's published `CAD_single` meshes (and the vertex features of its checkpoints) line up with
ours vertex for vertex:

- bounds: per axis, with s = int(N · coverage) for the N pooled vertices (coverage 0.99), the
  narrowest window [v_i, v_{i+s}] of the sorted coordinates (the first one on ties), computed in
  the vertices' own dtype (float32 for loaded CADs, as NeMo's OFF reader);
- grid: the edge length from the box's surface area A and the target vertex count n,
  e = √(2 · A / (2n)) (about two triangles per vertex), and per axis int(extent / e + 1) samples
  `lo + linspace(0, extent, count)`;
- layout: six independent grids (no shared edge vertices) in NeMo's order z = lo, z = hi, y = lo,
  y = hi, x = lo, x = hi; on the z faces x runs fastest, on the y faces x, on the x faces y.

The faces split each grid square along NeMo's diagonal, but wind outwards consistently (NeMo's
own face list mixes the two windings and mis-indexes the z = lo face; it renders without culling,
so only the vertices matter for its features).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .dtypes import as_float_tensors
from .errors import GeometryError
from .mesh import Mesh

__all__ = ["shortest_covering_interval", "cuboid_from_meshes", "cuboid_mesh", "cuboid_grid_counts"]


def shortest_covering_interval(values, coverage: float = 0.99) -> tuple[float, float]:
    """NeMo's covering interval of the values (N,): the narrowest [v_i, v_{i+s}] of the sorted
    values with s = int(N · coverage) (capped at N − 1), the first on ties. It holds s + 1 ≥
    coverage · N of the values. Computed in the values' dtype."""
    if not 0 < coverage <= 1:
        raise GeometryError(f"coverage must be in (0, 1], got {coverage}")
    (values,) = as_float_tensors(values)
    v = torch.sort(values.detach().reshape(-1)).values
    n = v.numel()
    if n == 0:
        raise GeometryError("cannot cover an empty set of values")
    if not torch.isfinite(v).all():
        raise GeometryError("cannot cover values that contain NaN or infinity")
    s = min(int(n * coverage), n - 1)
    widths = v[s:] - v[: n - s]
    i = int(torch.argmin(widths))  # torch.argmin returns the first minimum, as numpy's
    return float(v[i]), float(v[i + s])


def cuboid_grid_counts(extent: Sequence[float], num_vertices: int = 1000) -> tuple[int, int, int]:
    """NeMo's samples per axis for a box of `extent` (w, h, d) and a target vertex count.

    At least two per axis: NeMo's formula gives one for a box thinner than an edge, which would
    leave its side faces without triangles.
    """
    w, h, d = (float(e) for e in extent)
    if min(w, h, d) <= 0:
        raise GeometryError(f"cuboid needs positive extent on every axis, got {[w, h, d]}")
    if int(num_vertices) != num_vertices or num_vertices < 8:
        raise GeometryError(f"num_vertices must be an integer >= 8, got {num_vertices}")
    area = 2.0 * (w * h + h * d + w * d)
    edge = (2.0 * area / (2.0 * num_vertices)) ** 0.5
    return tuple(max(2, int(e / edge + 1)) for e in (w, h, d))


def _grid_faces(inner: int, outer: int, flip: bool) -> torch.Tensor:
    """Two triangles per square of an (outer, inner) grid, NeMo's diagonal; normal e_inner × e_outer
    (or its opposite with `flip`): (2·(inner−1)·(outer−1), 3)."""
    r, c = torch.meshgrid(torch.arange(outer - 1), torch.arange(inner - 1), indexing="ij")
    a = (r * inner + c).reshape(-1)
    tris = torch.cat([torch.stack([a, a + 1, a + inner], -1), torch.stack([a + inner + 1, a + inner, a + 1], -1)])
    return tris[:, [0, 2, 1]] if flip else tris


def cuboid_mesh(lo, hi, num_vertices: int = 1000) -> Mesh:
    """NeMo's mesh of the axis-aligned box [lo, hi] (3,) for a target of `num_vertices` vertices
    (the result has about that many; see the module docstring for the rule and the vertex order).
    Faces wind outwards. Float32 vertices, computed in float64."""
    lo, hi = (x.double() for x in as_float_tensors(lo, hi))
    if lo.shape != (3,) or hi.shape != (3,):
        raise GeometryError(f"cuboid bounds must be (3,) each, got {tuple(lo.shape)} and {tuple(hi.shape)}")
    extent = hi - lo
    if not torch.isfinite(extent).all():
        raise GeometryError("cuboid bounds contain NaN or infinity")
    nx, ny, nz = cuboid_grid_counts(extent.tolist(), num_vertices)
    x, y, z = (lo[k] + torch.linspace(0.0, float(extent[k]), n, dtype=torch.float64)
               for k, n in enumerate((nx, ny, nz)))

    def grid(outer_axis, outer, inner_axis, inner, fixed_axis, level):
        b, a = torch.meshgrid(outer, inner, indexing="ij")  # inner runs fastest
        p = torch.empty(a.numel(), 3, dtype=torch.float64)
        p[:, inner_axis], p[:, outer_axis], p[:, fixed_axis] = a.reshape(-1), b.reshape(-1), level
        return p

    # (vertices, inner count, outer count, flip) in NeMo's order; flip makes the normal point outwards
    blocks = [
        (grid(1, y, 0, x, 2, z[0]), nx, ny, True),  # e_x × e_y = +z: flip for z = lo
        (grid(1, y, 0, x, 2, z[-1]), nx, ny, False),
        (grid(2, z, 0, x, 1, y[0]), nx, nz, False),  # e_x × e_z = −y
        (grid(2, z, 0, x, 1, y[-1]), nx, nz, True),
        (grid(2, z, 1, y, 0, x[0]), ny, nz, True),  # e_y × e_z = +x
        (grid(2, z, 1, y, 0, x[-1]), ny, nz, False),
    ]
    vertices, faces, offset = [], [], 0
    for verts, inner, outer, flip in blocks:
        vertices.append(verts)
        faces.append(_grid_faces(inner, outer, flip) + offset)
        offset += len(verts)
    return Mesh(torch.cat(vertices).float(), torch.cat(faces))


def cuboid_from_meshes(meshes: Sequence[Mesh], coverage: float = 0.99, num_vertices: int = 1000) -> Mesh:
    """NeMo's cuboid for a set of CAD models in one object frame (NeMo's `CAD_single`): per axis
    `shortest_covering_interval` of the pooled vertices, meshed by `cuboid_mesh`."""
    if not meshes:
        raise GeometryError("cuboid_from_meshes needs at least one mesh")
    pooled = torch.cat([m.vertices.detach() for m in meshes])
    bounds = [shortest_covering_interval(pooled[:, axis], coverage) for axis in range(3)]
    lo, hi = zip(*bounds)
    return cuboid_mesh(lo, hi, num_vertices)
