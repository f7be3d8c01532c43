"""The neural mesh of a generated set: a closed vertical cylinder whose rotations about the up axis
by multiples of 2π/segments permute its vertices exactly.

A set's frame is the object frame turned about the up axis by the source camera's unknown azimuth,
so the per-set meshes must fit the object at any azimuth, and aligning two sets is a rotation about
z: on this cylinder that is a cyclic shift of every ring's features (`shift_features`), with no
resampling error. Vertex layout: `rows + 1` side rings, then `rings` rings on the bottom cap and
`rings` on the top cap (outer to inner), each of `segments` vertices at angles 2π·j/segments, then the
bottom and top centres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

import geom3d

from .errors import PoseError

__all__ = ["neural_cylinder", "shift_features", "cylinder_params", "CylinderLayout", "shift_of_angle"]


class CylinderLayout:
    """The vertex layout of a `neural_cylinder` (see the module docstring)."""

    def __init__(self, segments: int, rows: int, rings: int):
        if segments < 3 or rows < 1 or rings < 1:
            raise PoseError(f"neural cylinder: segments ≥ 3, rows ≥ 1, rings ≥ 1 (got {segments}, {rows}, {rings})")
        self.segments, self.rows, self.rings = int(segments), int(rows), int(rings)

    @property
    def ring_count(self) -> int:
        return self.rows + 1 + 2 * self.rings

    @property
    def num_vertices(self) -> int:
        return self.ring_count * self.segments + 2

    @property
    def step(self) -> float:
        """The rotation (radians) of one shift."""
        return 2 * math.pi / self.segments


def neural_cylinder(radius: float, z_lo: float, z_hi: float, segments: int = 48, rows: int = 8,
                    rings: int = 3) -> tuple[geom3d.Mesh, CylinderLayout]:
    """(mesh, layout): a closed cylinder about the z axis, faces wound outwards (right-hand normals out)."""
    if not (radius > 0 and z_hi > z_lo):
        raise PoseError(f"neural cylinder: need radius > 0 and z_hi > z_lo, got {radius}, {z_lo}, {z_hi}")
    layout = CylinderLayout(segments, rows, rings)
    S = layout.segments
    phi = torch.arange(S, dtype=torch.float64) * layout.step
    ring_xy = torch.stack([phi.cos(), phi.sin()], -1)  # (S, 2)
    rings_v = []
    for i in range(rows + 1):  # side, bottom to top
        z = z_lo + (z_hi - z_lo) * i / rows
        rings_v.append(torch.cat([radius * ring_xy, torch.full((S, 1), z, dtype=torch.float64)], -1))
    for z in (z_lo, z_hi):  # caps, outer to inner (the outer cap ring is inside the rim)
        for k in range(rings):
            r = radius * (rings - k) / (rings + 1)
            rings_v.append(torch.cat([r * ring_xy, torch.full((S, 1), z, dtype=torch.float64)], -1))
    centres = torch.tensor([[0.0, 0.0, z_lo], [0.0, 0.0, z_hi]], dtype=torch.float64)
    vertices = torch.cat(rings_v + [centres])

    def ring(i):
        return torch.arange(S) + i * S

    def band(a, b, outward_up: bool):
        """Quads between rings a and b (angles increasing counter-clockwise about z)."""
        a0, a1, b0, b1 = ring(a), ring(a).roll(-1), ring(b), ring(b).roll(-1)
        if outward_up:
            return torch.cat([torch.stack([a0, a1, b1], -1), torch.stack([a0, b1, b0], -1)])
        return torch.cat([torch.stack([a0, b1, a1], -1), torch.stack([a0, b0, b1], -1)])

    faces = [band(i, i + 1, True) for i in range(rows)]  # side: a below b, normals point outwards
    bottom0, top0 = rows + 1, rows + 1 + rings
    bottom_chain = [0] + list(range(bottom0, bottom0 + rings))  # rim, then inner rings
    top_chain = [rows] + list(range(top0, top0 + rings))
    for a, b in zip(bottom_chain[:-1], bottom_chain[1:]):
        faces.append(band(a, b, False))  # outer ring a, inner b: normals point down
    for a, b in zip(top_chain[:-1], top_chain[1:]):
        faces.append(band(a, b, True))
    nb, nt = layout.num_vertices - 2, layout.num_vertices - 1
    last_b, last_t = ring(bottom_chain[-1]), ring(top_chain[-1])
    faces.append(torch.stack([last_b, torch.full((S,), nb), last_b.roll(-1)], -1))
    faces.append(torch.stack([last_t, last_t.roll(-1), torch.full((S,), nt)], -1))
    return geom3d.Mesh(vertices.float(), torch.cat(faces)), layout


def shift_features(features: torch.Tensor, layout: CylinderLayout, shift: int) -> torch.Tensor:
    """Features (..., V, D) of the cylinder seen in a frame turned by shift·step about z: the result's
    vertex at angle φ holds the input's feature at φ + shift·step (X_in = Rz(shift·step) X_out)."""
    S = layout.segments
    rings = features[..., : layout.ring_count * S, :]
    shape = rings.shape
    rolled = rings.reshape(*shape[:-2], layout.ring_count, S, shape[-1]).roll(-int(shift), dims=-2)
    return torch.cat([rolled.reshape(shape), features[..., layout.ring_count * S:, :]], dim=-2)


def shift_of_angle(angle: float, layout: CylinderLayout) -> int:
    """The nearest whole shift of a rotation angle (radians), in [0, segments)."""
    return int(round(angle / layout.step)) % layout.segments


def cylinder_params(meshes: Sequence[geom3d.Mesh], coverage: float = 0.99, segments: int = 48, rows: int = 8,
                    rings: int = 3) -> dict:
    """`neural_cylinder` keyword arguments for a category: radius and height cover `coverage` of its
    assets' vertices (the category's extent, not a pose label: NeMo builds its cuboids the same way)."""
    if not meshes:
        raise PoseError("cylinder_params: no meshes")
    points = torch.cat([m.vertices.to(torch.float64) for m in meshes])
    radius = float(torch.quantile(points[:, :2].norm(dim=-1), coverage))
    lo, hi = geom3d.shortest_covering_interval(points[:, 2], coverage)
    return {"radius": radius, "z_lo": float(lo), "z_hi": float(hi), "segments": int(segments), "rows": int(rows),
            "rings": int(rings)}
