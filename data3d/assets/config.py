"""`asset_source(config)`: build an asset source from a plain mapping (a YAML/JSON config block).

    asset_source({"type": "shapenet", "root": "/data/ShapeNetCore.v2", "categories": ["car", "chair"]})
    asset_source({"type": "procedural", "categories": ["car", "mug"], "count": 5})

Keys per type (unknown keys and bad values raise AssetError naming the key):
    common:      type (required), root, categories, allow_missing_textures,
                 include, exclude (asset-id glob patterns, e.g. exclude: [car/03] holds a CAD model out)
    procedural:  count, seeds, part_colors          (no root; part_colors: {part: [[r,g,b] low, [r,g,b] high]})
    off:         name                               (root: a CAD folder or a release root)
    shapenet:    version, synsets, category, up, front, normalize
    objaverse:   uids, uid_categories, category, up, front, normalize   (root default ~/.objaverse)
    folder:      category, category_from_folder, up, front, normalize
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import AssetError
from .base import AssetSource
from .folder import FolderSource
from .objaverse import ObjaverseSource
from .off import OffCadSource
from .procedural_source import ProceduralSource
from .shapenet import ShapeNetSource

__all__ = ["asset_source", "SOURCE_TYPES"]

SOURCE_TYPES = {
    "procedural": (ProceduralSource, {"count", "seeds", "part_colors"}),
    "off": (OffCadSource, {"name"}),
    "shapenet": (ShapeNetSource, {"version", "synsets", "category", "up", "front", "normalize"}),
    "objaverse": (ObjaverseSource, {"uids", "uid_categories", "category", "up", "front", "normalize"}),
    "folder": (FolderSource, {"category", "category_from_folder", "up", "front", "normalize"}),
}
_COMMON = {"type", "root", "categories", "allow_missing_textures", "include", "exclude"}
_BOOL_KEYS = {"normalize", "allow_missing_textures", "category_from_folder"}


MAX_PROCEDURAL = 10000  # procedural shapes a category: beyond, listing them alone takes hours


def asset_source(config: Mapping[str, Any]) -> AssetSource:
    """The asset source a config block describes (see the module docstring)."""
    if not isinstance(config, Mapping):
        raise AssetError(f"asset source config must be a mapping, got {type(config).__name__}")
    kind = config.get("type")
    if kind not in SOURCE_TYPES:
        raise AssetError(f"asset source key 'type': must be one of {sorted(SOURCE_TYPES)}, got {kind!r}")
    cls, extra = SOURCE_TYPES[kind]
    allowed = _COMMON | extra
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise AssetError(f"asset source ({kind}): unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    kwargs = {k: v for k, v in config.items() if k not in ("type", "include", "exclude")}
    if kind == "procedural":
        if kwargs.pop("root", None) is not None:
            raise AssetError("asset source (procedural): key 'root' is not used by procedural assets")
    elif kind != "objaverse" and kwargs.get("root") is None:
        raise AssetError(f"asset source ({kind}): key 'root' is required")
    cats = kwargs.get("categories")
    if cats is not None and (isinstance(cats, str) or not all(isinstance(c, str) for c in cats)):
        raise AssetError(f"asset source ({kind}): key 'categories' must be a list of names, got {cats!r}")
    for key in _BOOL_KEYS & set(kwargs):
        if not isinstance(kwargs[key], bool):
            raise AssetError(f"asset source ({kind}): key {key!r} must be true or false, got {kwargs[key]!r}")
    if "count" in kwargs and (not isinstance(kwargs["count"], int) or isinstance(kwargs["count"], bool)
                              or kwargs["count"] < 1):
        raise AssetError(f"asset source ({kind}): key 'count' must be a positive integer, got {kwargs['count']!r}")
    if kind == "procedural" and kwargs.get("count", 0) > MAX_PROCEDURAL:  # each shape is built when listed
        raise AssetError(f"asset source (procedural): key 'count' must be ≤ {MAX_PROCEDURAL} shapes a category, "
                         f"got {kwargs['count']}")
    try:
        return cls(**kwargs).select(config.get("include"), config.get("exclude"))
    except ValueError as exc:
        raise AssetError(f"asset source ({kind}): {exc}") from exc
