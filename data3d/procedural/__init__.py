"""Procedural 3D assets that need no download: varied, recognisable, canonically aligned meshes.

`make(category, seed)` builds a `geom3d.Mesh` in the PASCAL3D+ object frame: z up, the object's
front towards −y (azimuth 0 looks at the front; +x is the object's right, to the right of the image
in that view), bounding box centred at the origin and longest side `size` (default 1.0; PASCAL3D+
CAD models have longest sides 0.6–1.0). Every vertex has a colour (V, 3) in [0, 1] and a UV (V, 2)
(u right, v up, in [0, 1], one chart per part: see `primitives`). The same seed gives bit-identical
vertices; different seeds change proportions and part choices. See docs/procedural.md.

    from data3d import procedural
    mesh = procedural.make("car", seed=3)            # a geom3d.Mesh, longest side 1
    asset = procedural.generate("diningtable", 0)   # parts, chosen parameters and the mesh
    asset.params["style"], asset.part_names()       # 'rectangular', ['top', 'leg', 'apron']
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch

from geom3d import Mesh

from .assembly import Assembly, Part, ProceduralAsset, Rng
from .craft import build_aeroplane, build_boat
from .furniture import build_chair, build_sofa, build_table
from .household import build_bottle, build_monitor, build_mug
from .twowheelers import build_bicycle, build_motorbike
from .vehicles import build_bus, build_car, build_train

__all__ = [
    "CATEGORIES",
    "ALIASES",
    "PASCAL3D_NAMES",
    "Part",
    "ProceduralAsset",
    "canonical_category",
    "generate",
    "make",
]

_BUILDERS: dict[str, Callable[[Rng, Assembly], dict]] = {
    "car": build_car,
    "chair": build_chair,
    "table": build_table,
    "aeroplane": build_aeroplane,
    "bottle": build_bottle,
    "mug": build_mug,
    "sofa": build_sofa,
    "monitor": build_monitor,
    "bus": build_bus,
    "bicycle": build_bicycle,
    "motorbike": build_motorbike,
    "boat": build_boat,
    "train": build_train,
}

#: The canonical category names, in a fixed order.
CATEGORIES: tuple[str, ...] = tuple(_BUILDERS)

#: Other names accepted for a category (PASCAL3D+, ImageNet3D and common synonyms) -> canonical name.
ALIASES: dict[str, str] = {
    "diningtable": "table",
    "dining_table": "table",
    "tvmonitor": "monitor",
    "tv": "monitor",
    "cup": "mug",
    "airplane": "aeroplane",
    "plane": "aeroplane",
    "motorcycle": "motorbike",
    "bike": "bicycle",
    "couch": "sofa",
    "automobile": "car",
    "ship": "boat",
}

#: Canonical name -> the PASCAL3D+ class name, for the categories PASCAL3D+ has.
PASCAL3D_NAMES: dict[str, str] = {
    name: {"table": "diningtable", "monitor": "tvmonitor"}.get(name, name)
    for name in ("aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "table", "motorbike",
                 "sofa", "train", "monitor")
}


def canonical_category(name: str) -> str:
    """The canonical name of a category or alias (case-insensitive); ValueError for unknown names."""
    key = str(name).strip().lower().replace(" ", "_")
    key = ALIASES.get(key, key)
    if key not in _BUILDERS:
        raise ValueError(f"procedural: unknown category {name!r}; known: {', '.join(CATEGORIES)} "
                         f"(aliases: {', '.join(sorted(ALIASES))})")
    return key


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"procedural: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def generate(category: str, seed: int = 0, *, size: float = 1.0, dtype: torch.dtype = torch.float32
             ) -> ProceduralAsset:
    """Build one object: its named parts (in the final frame and scale), the parameters the seed
    chose (style and dimensions in metres before scaling) and, through `.mesh()`, one Mesh."""
    name = canonical_category(category)
    seed = _check_seed(seed)
    if not size > 0:
        raise ValueError(f"procedural: size must be positive, got {size!r}")
    asm = Assembly()
    params = _BUILDERS[name](Rng(seed), asm)
    return asm.finish(name, seed, params, size=size, dtype=dtype)


def make(category: str, seed: int = 0, *, size: float = 1.0, dtype: torch.dtype = torch.float32) -> Mesh:
    """A procedural mesh of `category` (a canonical name or an alias such as "diningtable") for
    `seed`, in the PASCAL3D+ object frame, bounding box centred at the origin, longest side `size`,
    with per-vertex colours and UVs. Same seed, same mesh (bit for bit)."""
    return generate(category, seed, size=size, dtype=dtype).mesh()
