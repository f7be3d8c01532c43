"""The procedural asset library as an asset source: `data3d.procedural.make(category, seed)`.

The library (data3d/procedural/) builds meshes in the PASCAL3D+ object frame, so the transform is
the identity. It is imported when first needed, so this module works (and reports a clear error)
without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence

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
    """

    type = "procedural"

    def __init__(self, categories: Sequence[str] | None = None, count: int = 10, seeds: Sequence[int] | None = None,
                 root=None, allow_missing_textures: bool = False):
        super().__init__(None, None, allow_missing_textures)
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

    def _scan(self) -> Iterator[Asset]:
        make = _library().make
        for category in self.procedural_categories:
            for seed in self.seeds:
                yield Asset(id=f"{category}/{seed:04d}", category=category, source=self.type, path=None,
                            loader=_loader(make, self._builders[category], seed), to_object_frame=IDENTITY.clone(),
                            meta={"seed": seed})


def _loader(make, category: str, seed: int):
    return lambda: make(category, seed)
