"""ShapeNetCore v1 and v2 layouts.

    v1: <root>/<synset>/<model id>/model.obj                     (+ model.mtl, images/)
    v2: <root>/<synset>/<model id>/models/model_normalized.obj   (+ .mtl, .json, binvox; images/ beside models/)
The root may also be one synset folder, a folder of model folders, or a single model folder.

Canonical axes (checked on the shipped models, see docs/data3d.md): both versions have +Y up;
v2's front faces −Z (the aeroplane a0d3a490…'s nose is at −z, its tail fin at +z) and v1's
faces +X (the RenderForCNN v1 chair's backrest is at −x), i.e. v2 = v1 turned 90° about +Y.
So v2 -> object frame is (x, y, z) -> (−x, z, y) and v1 is (x, y, z) -> (−z, −x, y).
Per-model exceptions exist in ShapeNet; override with `up` / `front`.
Synset names come from <root>/taxonomy.json when present, else `SHAPENET_SYNSETS`. Models outside a
synset folder (a folder of model folders, as both ShapeNet sets in ../shared/data are) have no
synset: their category is `category` (default "unknown"), and a `categories` filter that matches
none of them is an error saying so. Models are normalised by default (bounding box centred, longest
side 1), as 3D-DST does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from geom3d import Mesh

from ..categories import SHAPENET_SYNSETS, normalize_category
from ..errors import AssetError
from .base import Asset, AssetSource, axes_to_object_frame

__all__ = ["ShapeNetSource", "SHAPENET_AXES"]

SHAPENET_AXES = {"v1": ("+y", "+x"), "v2": ("+y", "-z")}  # (up, front)
_SYNSET = re.compile(r"^\d{8}$")
_MODEL_FILES = (("v2", Path("models") / "model_normalized.obj"), ("v1", Path("model.obj")))


def _load_taxonomy(root: Path) -> dict[str, str]:
    path = root / "taxonomy.json"
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {e["synsetId"]: str(e["name"]) for e in entries if "synsetId" in e and "name" in e}


class ShapeNetSource(AssetSource):
    """ShapeNetCore models; category = normalised synset name ("trash bin" -> "trash_bin").

    categories: names or synset ids to keep. version: "v1", "v2" or None (per model, from the
    file present). category: the category of models found outside a synset folder (default
    "unknown"). up / front: override the canonical axes. normalize: centre and scale to unit
    longest side, as 3D-DST does (default True; v2's model_normalized has a unit diagonal instead).
    """

    type = "shapenet"

    def __init__(self, root, categories=None, version: str | None = None, synsets=None, category: str = "unknown",
                 up: str | None = None, front: str | None = None, normalize: bool = True,
                 allow_missing_textures: bool = False):
        super().__init__(root, None, allow_missing_textures)
        if self.root is None or not self.root.is_dir():
            raise AssetError(f"{root}: ShapeNet folder does not exist")
        if version not in (None, "v1", "v2"):
            raise AssetError(f"shapenet version must be 'v1' or 'v2', got {version!r}")
        self.version, self.normalize = version, bool(normalize)
        self.default_category = normalize_category(category)
        self.up, self.front = up, front
        names = dict(SHAPENET_SYNSETS)
        names.update(_load_taxonomy(self.root))
        if synsets is not None:
            names.update(json.loads(Path(synsets).read_text()) if not isinstance(synsets, dict) else synsets)
        # the first of the taxonomy's names ("car,auto,automobile,machine,motorcar") is the category
        self.synset_names = {k: normalize_category(str(v).split(",")[0]) for k, v in names.items()}
        # and all of them are tags, e.g. for prompts
        self.synset_tags = {k: tuple(t.strip() for t in str(v).split(",") if t.strip()) for k, v in names.items()}
        if categories is not None:
            wanted = {self.synset_names.get(str(c), normalize_category(c)) for c in categories}
            self.category_filter = wanted

    def _model_file(self, model_dir: Path) -> tuple[str, Path] | None:
        for version, rel in _MODEL_FILES:
            if self.version in (None, version) and (model_dir / rel).is_file():
                return version, model_dir / rel
        return None

    def _model_dirs(self) -> Iterator[tuple[str | None, Path]]:
        """(synset or None, model folder) for every candidate model folder under the root."""
        root = self.root
        if self._model_file(root) is not None:
            yield (root.parent.name if _SYNSET.match(root.parent.name) else None), root
            return
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            if _SYNSET.match(child.name) and self._model_file(child) is None:
                for model in sorted(p for p in child.iterdir() if p.is_dir()):
                    yield child.name, model
            else:
                yield (root.name if _SYNSET.match(root.name) else None), child

    def _scan(self) -> Iterator[Asset]:
        unfiled, kept = 0, 0
        for synset, model_dir in self._model_dirs():
            category = self.synset_names.get(synset, synset) if synset else self.default_category
            unfiled += synset is None
            if not self._wanted(category):
                continue
            kept += 1
            found = self._model_file(model_dir)
            ident = f"{synset}/{model_dir.name}" if synset else model_dir.name
            if found is None:
                self._skip(ident, "no_model_file", f"{model_dir}: no models/model_normalized.obj or model.obj")
                continue
            version, path = found
            up, front = SHAPENET_AXES[version]
            yield Asset(id=ident, category=category, source=self.type, path=path, loader=_loader(path),
                        to_object_frame=axes_to_object_frame(self.up or up, self.front or front),
                        normalize=self.normalize, meta={"version": version, "synset": synset,
                                                        "tags": self.synset_tags.get(synset, ()) if synset else ()})
        if kept == 0 and unfiled and self.category_filter is not None:
            raise AssetError(
                f"{self.root}: its {unfiled} model folder(s) are not inside synset folders (<synset>/<model>/), so "
                f"their category is {self.default_category!r} (the 'category' key) and 'categories' "
                f"{sorted(self.category_filter)} matches none of them; set category: <name> for this folder")


def _loader(path: Path):
    return lambda: Mesh.load(path)
