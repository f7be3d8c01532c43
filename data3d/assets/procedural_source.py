"""The procedural asset library as an asset source: `data3d.procedural.make(category, seed)`.

The library (data3d/procedural/) builds meshes in the PASCAL3D+ object frame, so the transform is
the identity. It is imported when first needed, so this module works (and reports a clear error)
without it.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..errors import AssetError
from .base import IDENTITY, Asset, AssetSource

__all__ = ["ProceduralSource"]


def _library():
    try:
        return importlib.import_module("data3d.procedural")
    except ImportError as exc:
        raise AssetError(f"the procedural asset library (data3d.procedural) cannot be imported: {exc}") from exc


class ProceduralSource(AssetSource):
    """`count` assets per category with seeds 0..count−1 (or the given `seeds`); id "<category>/<seed>".

    categories: default every category of `data3d.procedural.CATEGORIES`. Aliases are accepted
    (e.g. PASCAL3D+'s "diningtable", "tvmonitor"); the asset keeps the name asked for, so records
    carry the category name of the benchmark they will be evaluated on.

    part_colors: {part name: [[r, g, b] low, [r, g, b] high]} (in [0, 1]): each asset gives that part a
    colour on the line from low to high (low + t·(high − low), t uniform, drawn from its seed and the part's
    name), so the same asset always gets the same colour and no hue outside the line appears (e.g.
    headlights from dark grey glass to bright lamps, where the library gives every car the same bright
    ones). Parts an asset lacks are ignored.
    """

    type = "procedural"

    def __init__(self, categories: Sequence[str] | None = None, count: int = 10, seeds: Sequence[int] | None = None,
                 root=None, allow_missing_textures: bool = False, part_colors: Mapping | None = None):
        super().__init__(None, None, allow_missing_textures)
        self.part_colors = _check_part_colors(part_colors)
        lib = _library()
        cats = list(lib.CATEGORIES if categories is None else categories)
        try:
            self._builders = {c: lib.canonical_category(c) for c in cats}
        except ValueError as exc:
            raise AssetError(str(exc)) from None
        if seeds is None:
            if int(count) < 1:
                raise AssetError(f"procedural count must be ≥ 1, got {count}")
            seeds = range(int(count))
        self.procedural_categories, self.seeds = cats, [int(s) for s in seeds]
        if self.part_colors:
            self._check_part_names()

    def _check_part_names(self) -> None:
        """Every part_colors name is a part of at least one of the source's assets (a name none has, such as a
        typo, would recolour nothing without a word). Assets are built seed by seed until every name is seen,
        so a valid config builds a few; only a name that no asset has costs a pass over all of them."""
        generate = _library().generate
        wanted, seen = set(self.part_colors), set()
        for seed in self.seeds:
            for category in self.procedural_categories:
                seen.update(generate(self._builders[category], seed).part_names())
                if wanted <= seen:
                    return
        missing = sorted(wanted - seen)
        cats = ", ".join(self.procedural_categories)
        raise AssetError(f"key 'part_colors.{missing[0]}': no asset of the source ({cats}, {len(self.seeds)} seeds) "
                         f"has a part of that name; their parts: {', '.join(sorted(seen))}")

    def _scan(self) -> Iterator[Asset]:
        for category in self.procedural_categories:
            for seed in self.seeds:
                yield Asset(id=f"{category}/{seed:04d}", category=category, source=self.type, path=None,
                            loader=_loader(self._builders[category], seed, self.part_colors),
                            to_object_frame=IDENTITY.clone(), meta={"seed": seed})


def _loader(category: str, seed: int, part_colors: dict):
    if not part_colors:
        make = _library().make
        return lambda: make(category, seed)
    generate = _library().generate
    return lambda: generate(category, seed).with_part_colors(drawn_part_colors(part_colors, seed)).mesh()


def drawn_part_colors(part_colors: Mapping, seed: int) -> dict[str, tuple[float, float, float]]:
    """Each part's colour for one asset seed: low + t·(high − low) with t uniform in [0, 1], drawn from
    (seed, the part name's CRC-32), so it does not depend on which other parts are listed."""
    out = {}
    for name, (low, high) in part_colors.items():
        t = np.random.default_rng([int(seed), zlib.crc32(name.encode())]).uniform()
        out[name] = tuple(float(lo + t * (hi - lo)) for lo, hi in zip(low, high))
    return out


def _check_part_colors(part_colors) -> dict:
    if part_colors is None:
        return {}
    if not isinstance(part_colors, Mapping):
        raise AssetError(f"key 'part_colors' must map part names to [[r, g, b] low, [r, g, b] high], "
                         f"got {part_colors!r}")
    out = {}
    for name, box in part_colors.items():
        where = f"key 'part_colors.{name}'"  # the source's own prefix is added by whoever reports it
        if not isinstance(name, str) or not name:
            raise AssetError(f"key 'part_colors': part names are strings, got {name!r}")
        try:
            if isinstance(box, (str, bytes)) or any(isinstance(x, bool) for v in box for x in v):
                raise TypeError  # a string, or true / false read as 1 / 0
            low, high = (np.asarray(v, dtype=np.float64) for v in box)
        except (TypeError, ValueError):
            raise AssetError(f"{where} must be [[r, g, b] low, [r, g, b] high], got {box!r}") from None
        if low.shape != (3,) or high.shape != (3,) or not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise AssetError(f"{where} must be [[r, g, b] low, [r, g, b] high], got {box!r}")
        if (low < 0).any() or (high > 1).any() or (low > high).any():
            raise AssetError(f"{where} needs 0 ≤ low ≤ high ≤ 1 per channel, got {box!r}")
        out[str(name)] = (low.tolist(), high.tolist())
    return out
