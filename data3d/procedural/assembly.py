"""Named parts, the assembled asset, and the rule that puts it in the PASCAL3D+ frame at unit scale.

Generators build an object from parts in metres, in the PASCAL3D+ object frame (x to the object's
right as seen from its front, y towards its back, z up: the front faces −y). `Assembly.finish`
then centres the bounding box of all parts at the origin and scales the longest side to `size`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from geom3d import GeometryError, Mesh

from .primitives import mirror_x

__all__ = ["Part", "ProceduralAsset", "Assembly", "Rng"]


class Part(NamedTuple):
    """One named piece of an asset ("body", "wheel", "screen"...): several parts may share a name."""

    name: str
    mesh: Mesh


@dataclass(frozen=True, eq=False)
class ProceduralAsset:
    """A generated object: its parts (already in the final frame and scale) and the parameters the
    seed chose (style names and dimensions in metres before scaling)."""

    category: str
    seed: int
    parts: tuple[Part, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"procedural:{self.category}:{self.seed}"

    def mesh(self) -> Mesh:
        """All parts as one mesh, with per-vertex colours and UVs."""
        return replace(Mesh.concatenate([p.mesh for p in self.parts]), source=self.source)

    def part_names(self) -> list[str]:
        """The distinct part names, in order of first appearance."""
        return list(dict.fromkeys(p.name for p in self.parts))

    def part(self, name: str) -> Mesh:
        """Every part with this name, as one mesh."""
        meshes = [p.mesh for p in self.parts if p.name == name]
        if not meshes:
            raise KeyError(f"{self.source} has no part {name!r} (parts: {', '.join(self.part_names())})")
        return Mesh.concatenate(meshes)

    def with_part_colors(self, colors: Mapping[str, Any]) -> ProceduralAsset:
        """The same asset with every part of a named kind in one new colour ({part name: (r, g, b) in
        [0, 1]}; e.g. {"headlight": (0.6, 0.6, 0.62)}); names the asset lacks are ignored, since a
        category's styles differ in their parts."""
        parts = []
        for p in self.parts:
            if p.name in colors and p.mesh.vertex_colors is not None:
                rgb = torch.as_tensor(colors[p.name], dtype=p.mesh.vertex_colors.dtype)
                p = Part(p.name, replace(p.mesh, vertex_colors=rgb.expand_as(p.mesh.vertex_colors).clone()))
            parts.append(p)
        return replace(self, parts=tuple(parts))

    def part_face_ranges(self) -> list[tuple[str, int, int]]:
        """(name, first face, end face) of every part inside `mesh()`'s face list."""
        out, start = [], 0
        for p in self.parts:
            out.append((p.name, start, start + p.mesh.num_faces))
            start += p.mesh.num_faces
        return out


class Rng:
    """The seed's random choices, drawn in a fixed order so the same seed rebuilds the same object."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._g = np.random.Generator(np.random.PCG64(self.seed))

    def cycle(self, options):
        """options[seed % len(options)]: consecutive seeds go through every style in turn."""
        return options[self.seed % len(options)]

    def uniform(self, lo: float, hi: float) -> float:
        return float(self._g.uniform(lo, hi))

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi] (both included)."""
        return int(self._g.integers(lo, hi + 1))

    def choice(self, options, weights=None):
        p = None if weights is None else np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        return options[int(self._g.choice(len(options), p=p))]

    def chance(self, p: float) -> bool:
        return bool(self._g.random() < p)

    def jitter(self, color, amount: float = 0.04) -> tuple[float, float, float]:
        """A colour moved by up to `amount` per channel, kept in [0, 1]."""
        c = np.asarray(color, dtype=np.float64) + self._g.uniform(-amount, amount, 3)
        return tuple(float(x) for x in np.clip(c, 0.0, 1.0))


class Assembly:
    """Collects named parts built in metres, then moves them to the final frame and scale."""

    def __init__(self) -> None:
        self._parts: list[Part] = []

    def add(self, name: str, mesh: Mesh, mirrored: bool = False) -> None:
        """Add a part; with `mirrored`, also its mirror image through x = 0 (the other side)."""
        self._parts.append(Part(name, mesh))
        if mirrored:
            self._parts.append(Part(name, mirror_x(mesh)))

    def finish(self, category: str, seed: int, params: Mapping[str, Any], size: float = 1.0,
               dtype: torch.dtype = torch.float32) -> ProceduralAsset:
        """Centre the bounding box of all parts at the origin and scale the longest side to `size`."""
        if not self._parts:
            raise GeometryError(f"procedural {category}: no parts were built")
        verts = torch.cat([p.mesh.vertices for p in self._parts])
        lo, hi = verts.amin(0), verts.amax(0)
        s = float(size) / float((hi - lo).max())
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] *= s
        T[:3, 3] = -s * (lo + hi) / 2
        parts = tuple(Part(p.name, p.mesh.transform(T).to(dtype=dtype)) for p in self._parts)
        return ProceduralAsset(category, seed, parts, dict(params))
