"""Objaverse GLBs, from the `objaverse` package's cache or any folder of GLBs, without network.

Cache layout of the `objaverse` package (BASE_PATH = ~/.objaverse):
    ~/.objaverse/hf-objaverse-v1/glbs/<group>/<uid>.glb          e.g. glbs/000-023/<uid>.glb
    ~/.objaverse/hf-objaverse-v1/lvis-annotations.json.gz         {category: [uid, …]} (if downloaded)
A plain folder works too: <root>/<category>/<uid>.glb or <root>/<uid>.glb.

Categories: a `uid_categories` mapping (or JSON file) when given, in either layout, `{uid: category}`
or LVIS's own `{category: [uid, ...]}` (detected; anything else is an AssetError), else the LVIS
annotations in the cache when present, else the GLB's parent folder unless it is a cache group ("000-023"), else
`category` (default "unknown"). Axes: glTF's (+Y up, front +Z), i.e. (x, y, z) -> (x, −z, y);
Objaverse models are not all front-aligned, which 3D-DST fixes per model with extra azimuths.
Models are normalised (centred, longest side 1) by default: their scales are arbitrary.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from geom3d import Mesh

from ..categories import normalize_category
from ..errors import AssetError
from .base import GLTF_TO_OBJECT, Asset, AssetSource, axes_to_object_frame

__all__ = ["ObjaverseSource", "DEFAULT_OBJAVERSE_ROOT", "uid_category_map"]

DEFAULT_OBJAVERSE_ROOT = Path("~/.objaverse")
_GROUP = re.compile(r"^\d{3}-\d{3}$")
_VERSIONED = "hf-objaverse-v1"


class ObjaverseSource(AssetSource):
    """Objaverse assets (id = uid). uids: keep only these. See the module docstring for categories."""

    type = "objaverse"

    def __init__(self, root=None, categories=None, uids=None, uid_categories: Mapping | str | None = None,
                 category: str = "unknown", up: str | None = None, front: str | None = None,
                 normalize: bool = True, allow_missing_textures: bool = False):
        super().__init__(DEFAULT_OBJAVERSE_ROOT if root is None else root, categories, allow_missing_textures)
        if not self.root.is_dir():
            raise AssetError(f"{self.root}: Objaverse folder does not exist (nothing is downloaded here)")
        self.uids = None if uids is None else {str(u) for u in uids}
        self.default_category, self.normalize = normalize_category(category), bool(normalize)
        self.transform = GLTF_TO_OBJECT.clone() if up is None and front is None else \
            axes_to_object_frame(up or "+y", front or "+z")
        self.versioned = self.root / _VERSIONED if (self.root / _VERSIONED).is_dir() else self.root
        self.uid_categories = self._categories_by_uid(uid_categories)

    def _categories_by_uid(self, given) -> dict[str, str]:
        if given is not None:
            return uid_category_map(given)
        lvis = self.versioned / "lvis-annotations.json.gz"
        if lvis.is_file():
            try:
                with gzip.open(lvis, "rt") as fh:
                    by_category = json.load(fh)
                return {uid: normalize_category(cat) for cat, uids in by_category.items() for uid in uids}
            except (OSError, ValueError) as exc:
                self._skip(str(lvis), "bad_annotations", str(exc))
        return {}

    def _candidates(self, glb_root: Path) -> list[Path]:
        """GLB files to consider: with `uids` and the cache's object-paths.json.gz, only those files
        (no walk over a large cache); otherwise every file under the root."""
        paths_file = self.versioned / "object-paths.json.gz"
        if self.uids is not None and paths_file.is_file():
            try:
                with gzip.open(paths_file, "rt") as fh:
                    rel = json.load(fh)
            except (OSError, ValueError) as exc:
                self._skip(str(paths_file), "bad_annotations", str(exc))
            else:
                out = []
                for uid in sorted(self.uids):
                    path = self.versioned / rel[uid] if uid in rel else None
                    if path is None or not path.is_file():
                        self._skip(uid, "missing_file", "not in the local cache (nothing is downloaded)")
                    else:
                        out.append(path)
                return out
        return sorted(glb_root.rglob("*"))

    def _scan(self) -> Iterator[Asset]:
        glb_root = self.versioned / "glbs" if (self.versioned / "glbs").is_dir() else self.root
        for path in self._candidates(glb_root):
            if path.suffix.lower() not in (".glb", ".gltf") or not path.is_file() or path.name.startswith("."):
                continue
            uid = path.stem
            if self.uids is not None and uid not in self.uids:
                continue
            parent = path.parent.name
            category = self.uid_categories.get(uid) or (
                normalize_category(parent) if path.parent != glb_root and not _GROUP.match(parent)
                else self.default_category)
            yield Asset(id=uid, category=category, source=self.type, path=path, loader=_loader(path),
                        to_object_frame=self.transform.clone(), normalize=self.normalize)


def uid_category_map(given) -> dict[str, str]:
    """{uid: category} from a mapping or JSON file in either layout: {uid: category} or LVIS's
    {category: [uid, ...]}. Anything else raises AssetError naming the file (or the mapping's key)."""
    where = str(given) if isinstance(given, (str, Path)) else "uid_categories"
    if isinstance(given, (str, Path)):
        path = Path(given).expanduser()
        try:
            text = gzip.open(path, "rt").read() if path.suffix == ".gz" else path.read_text()
            given = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AssetError(f"{where}: uid_categories cannot be read as JSON: {exc}") from None
    if not isinstance(given, Mapping) or not given:
        raise AssetError(f"{where}: uid_categories must be a non-empty JSON object, "
                         f"{{uid: category}} or {{category: [uid, ...]}}")
    values = list(given.values())
    if all(isinstance(v, str) for v in values):  # {uid: category}
        return {str(k): normalize_category(v) for k, v in given.items()}
    if all(isinstance(v, (list, tuple)) and all(isinstance(u, str) for u in v) for v in values):  # LVIS
        out: dict[str, str] = {}
        for cat, uids in given.items():
            for uid in uids:
                if uid in out and out[uid] != normalize_category(cat):
                    raise AssetError(f"{where}: uid {uid!r} is listed under two categories, "
                                     f"{out[uid]!r} and {cat!r}")
                out[uid] = normalize_category(cat)
        return out
    first = type(values[0])
    bad = next((k for k, v in given.items() if not (isinstance(v, str) or isinstance(v, (list, tuple)) and all(
        isinstance(u, str) for u in v)) or isinstance(v, str) != issubclass(first, str)), None)
    raise AssetError(f"{where}: uid_categories must map every uid to a category name ({{uid: category}}) or every "
                     f"category to a list of uids (LVIS, {{category: [uid, ...]}}); key {bad!r} breaks that")


def _loader(path: Path):
    return lambda: Mesh.load(path)
