"""A plain folder of mesh files (any of geom3d.MESH_SUFFIXES, searched recursively).

Category: `category` when given, else the first-level subfolder a file sits in (with
`category_from_folder=True`), else "unknown". Axes: `up` / `front` when given; otherwise glTF files
use glTF's convention (+Y up, front +Z) and every other format is taken to be in the PASCAL3D+
frame already (z up, front −y). Meshes are normalised by default (bounding box centred at the
origin, longest side 1, as 3D-DST does): a file's origin can be anywhere (suzanne.obj's is off
its centre), and a camera aimed at the origin would otherwise miss the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from geom3d import MESH_SUFFIXES, Mesh

from ..categories import normalize_category
from ..errors import AssetError
from .base import GLTF_TO_OBJECT, IDENTITY, Asset, AssetSource, axes_to_object_frame

__all__ = ["FolderSource"]


class FolderSource(AssetSource):
    type = "folder"

    def __init__(self, root, categories=None, category: str | None = None, category_from_folder: bool = True,
                 up: str | None = None, front: str | None = None, normalize: bool = True,
                 allow_missing_textures: bool = False):
        super().__init__(root, categories, allow_missing_textures)
        if self.root is None or not self.root.is_dir():
            raise AssetError(f"{root}: mesh folder does not exist")
        self.fixed_category = None if category is None else normalize_category(category)
        self.category_from_folder = bool(category_from_folder)
        self.normalize = bool(normalize)
        self.override = None if up is None and front is None else axes_to_object_frame(up or "+z", front or "-y")

    def _category(self, path: Path) -> str:
        if self.fixed_category is not None:
            return self.fixed_category
        rel = path.relative_to(self.root)
        if self.category_from_folder and len(rel.parts) > 1:
            return normalize_category(rel.parts[0])
        return "unknown"

    def _scan(self) -> Iterator[Asset]:
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in MESH_SUFFIXES or path.name.startswith("."):
                continue
            if self.override is not None:
                T = self.override
            else:
                T = GLTF_TO_OBJECT if path.suffix.lower() in (".glb", ".gltf") else IDENTITY
            ident = path.relative_to(self.root).as_posix()
            yield Asset(id=ident, category=self._category(path), source=self.type, path=path,
                        loader=_loader(path), to_object_frame=T.clone(), normalize=self.normalize)


def _loader(path: Path):
    return lambda: Mesh.load(path)
