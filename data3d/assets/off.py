"""CAD folders of PASCAL3D+, ImageNet3D and ObjectNet3D: `<category>/NN.off`, NN = 1-based cad_index.

These models are already in the PASCAL3D+ object frame (z up, front towards −y) and at the scale
the annotated distances refer to, so the transform is the identity and nothing is normalised.
The root may be the CAD folder itself or a release root holding `CAD/` (or ObjectNet3D's `CAD/off/`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from geom3d import Mesh

from ..errors import AssetError
from .base import IDENTITY, Asset, AssetSource

__all__ = ["OffCadSource", "cad_path"]

_NN = re.compile(r"^(\d+)\.off$", re.IGNORECASE)


def _cad_root(root: Path) -> Path:
    for cand in (root / "CAD" / "off", root / "CAD", root):
        if cand.is_dir() and any(p.is_dir() and any(p.glob("*.off")) for p in cand.iterdir()):
            return cand
    raise AssetError(f"{root}: no <category>/NN.off CAD folders found (nor under CAD/ or CAD/off/)")


def cad_path(root, category: str, cad_index: int) -> Path:
    """The OFF file of a record's CAD reference: <cad root>/<category>/<NN>.off."""
    return _cad_root(Path(root)) / category / f"{int(cad_index):02d}.off"


def _collection_name(root: Path) -> str:
    """"pascal3d", "imagenet3d" or "objectnet3d" when the path says so (e.g. PASCAL3D+_release1.1/CAD), else "cad"."""
    text = str(root.resolve()).lower()
    for name in ("pascal3d", "imagenet3d", "objectnet3d"):
        if name in text:
            return name
    return "cad"


class OffCadSource(AssetSource):
    """Assets `<category>/NN` from an OFF CAD folder; `name` labels the collection ("pascal3d",
    "imagenet3d", "objectnet3d"; default: guessed from the path, else "cad") in `asset.meta["collection"]`,
    to match `ObjectAnnotation.cad_source` of the records that use these models."""

    type = "off"

    def __init__(self, root, categories=None, name: str | None = None, allow_missing_textures: bool = False):
        super().__init__(root, categories, allow_missing_textures)
        if self.root is None or not self.root.is_dir():
            raise AssetError(f"{root}: OFF CAD folder does not exist")
        self.name = name or _collection_name(self.root)
        self.cad_root = _cad_root(self.root)

    def _scan(self) -> Iterator[Asset]:
        for cat_dir in sorted(p for p in self.cad_root.iterdir() if p.is_dir()):
            if not self._wanted(cat_dir.name):
                continue
            for f in sorted(cat_dir.iterdir()):
                m = _NN.match(f.name)
                if f.suffix.lower() != ".off":
                    continue
                if m is None:
                    self._skip(f"{cat_dir.name}/{f.stem}", "bad_name", f"{f}: expected NN.off")
                    continue
                yield Asset(id=f"{cat_dir.name}/{f.stem}", category=cat_dir.name, source=self.type, path=f,
                            loader=_loader(f), to_object_frame=IDENTITY.clone(), cad_index=int(m.group(1)),
                            meta={"collection": self.name})


def _loader(path: Path):
    return lambda: Mesh.load(path)
