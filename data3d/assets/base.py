"""Assets (3D models) and the sources that find them.

An `Asset` is cheap: an id, a category, the source's name, the file, a lazy loader and the 4×4
transform into the PASCAL3D+ object frame (z up, front towards −y, +x to the right of the image
at azimuth 0). `asset.load()` returns the mesh in that frame.

An `AssetSource` scans a folder once and lists its assets; files that cannot be assets (a model
folder without its model file) are skipped at scan time, meshes that turn out broken (unreadable,
empty, a texture the material names but that is missing) when loaded with `source.load(asset)`.
Both are counted in `source.skipped` by reason and listed in `source.problems`; nothing raises.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from geom3d import Mesh, MeshError

from ..categories import register_categories

__all__ = ["Asset", "AssetSource", "axes_to_object_frame", "IDENTITY", "GLTF_TO_OBJECT", "parse_axis"]

_AXES = {"x": 0, "y": 1, "z": 2}


def parse_axis(text: str) -> torch.Tensor:
    """'+y', '-z', 'x' -> a unit vector (3,) float64."""
    t = str(text).strip().lower()
    sign = -1.0 if t.startswith("-") else 1.0
    axis = t.lstrip("+-")
    if axis not in _AXES:
        raise ValueError(f"an axis must be one of ±x, ±y, ±z, got {text!r}")
    v = torch.zeros(3, dtype=torch.float64)
    v[_AXES[axis]] = sign
    return v


def axes_to_object_frame(up: str = "+z", front: str = "-y") -> torch.Tensor:
    """The rotation (as a 4×4 transform, float64) taking a model whose up axis is `up` and whose
    front faces `front` into the PASCAL3D+ frame (up +z, front −y).

    R maps up -> e_z and front -> −e_y, hence up × front -> e_x: its rows are up × front, −front, up.
    """
    u, f = parse_axis(up), parse_axis(front)
    if abs(float(u @ f)) > 0.5:
        raise ValueError(f"up {up!r} and front {front!r} must be different axes")
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.stack([torch.linalg.cross(u, f), -f, u])
    return T


IDENTITY = torch.eye(4, dtype=torch.float64)
# glTF 2.0: +Y up, the asset's front faces +Z (the spec's convention): (x, y, z) -> (x, −z, y)
GLTF_TO_OBJECT = axes_to_object_frame("+y", "+z")


@dataclass(frozen=True, eq=False)
class Asset:
    """One 3D model of a source.

    id: unique within its source. category: its class name. source: the source type ("shapenet",
    "objaverse", "off", "folder", "procedural"). path: its file (None for generated assets).
    to_object_frame: (4, 4) float64, model -> PASCAL3D+ object frame. normalize: after that
    rotation, centre the bounding box and scale its longest side to 1, as 3D-DST does (the default
    of the ShapeNet, Objaverse and folder sources, whose files put the origin and the scale anywhere;
    never for CAD models that annotations refer to). `load(return_transform=True)` also returns the
    full file -> object-frame transform. cad_index: 1-based index for `NN.off`.
    """

    id: str
    category: str
    source: str
    path: Path | None
    loader: Callable[[], Mesh] = field(repr=False)
    to_object_frame: torch.Tensor = field(default_factory=lambda: IDENTITY.clone(), repr=False)
    normalize: bool = False
    cad_index: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self, return_transform: bool = False):
        """The mesh in the PASCAL3D+ object frame (and, if asked, the 4×4 transform applied)."""
        mesh = self.loader()
        T = self.to_object_frame.to(torch.float64)
        if not torch.equal(T, IDENTITY):
            mesh = mesh.transform(T.to(mesh.vertices.dtype))
        if self.normalize:
            mesh, N = mesh.normalized()
            T = N.to(torch.float64) @ T
        return (mesh, T) if return_transform else mesh


def _reason(exc: MeshError) -> str:
    text = exc.problem.lower()
    if "not found" in text:
        return "missing_file"
    if "empty" in text or "no geometry" in text or "no triangle" in text:
        return "empty_mesh"
    if "cannot be read" in text or "unknown mesh format" in text:
        return "unreadable"
    return "invalid_mesh"


class AssetSource:
    """Base of the asset sources: scan once, list assets, load them skipping broken ones.

    Subclasses implement `_scan()` yielding assets and calling `_skip(id, reason, detail)` for
    things that cannot be assets. `allow_missing_textures`: keep meshes whose material names a
    missing texture (rendered with material colours) instead of skipping them.
    """

    type = "base"

    def __init__(self, root=None, categories=None, allow_missing_textures: bool = False):
        self.root = None if root is None else Path(root).expanduser()
        self.category_filter = None if categories is None else {str(c) for c in categories}
        self.allow_missing_textures = bool(allow_missing_textures)
        self.skipped: Counter = Counter()
        self.problems: list[tuple[str, str]] = []
        self.include: tuple[str, ...] | None = None  # asset-id glob patterns (`select`)
        self.exclude: tuple[str, ...] = ()
        self._assets: list[Asset] | None = None

    def select(self, include=None, exclude=None) -> AssetSource:
        """Keep only assets whose id matches a glob pattern of `include` (all when None) and none of
        `exclude` (e.g. exclude=["car/03", "chair/0[89]"] holds CAD models out of training, and the
        same patterns as `include` make the unseen-CAD test set). Returns self, before the scan."""
        for name, patterns in (("include", include), ("exclude", exclude)):
            if patterns is not None and (isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns)):
                raise ValueError(f"{name} must be a list of asset-id patterns, got {patterns!r}")
        self.include = None if include is None else tuple(include)
        self.exclude = tuple(exclude or ())
        self._assets = None
        return self

    def _selected(self, asset_id: str) -> bool:
        if self.include is not None and not any(fnmatch.fnmatchcase(asset_id, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(asset_id, p) for p in self.exclude)

    # -- scanning
    def _scan(self) -> Iterator[Asset]:
        raise NotImplementedError

    def _skip(self, ident: str, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        self.problems.append((ident, f"{reason}: {detail}" if detail else reason))

    def _wanted(self, category: str) -> bool:
        return self.category_filter is None or category in self.category_filter

    @property
    def assets(self) -> list[Asset]:
        if self._assets is None:
            found = [a for a in self._scan() if self._wanted(a.category) and self._selected(a.id)]
            register_categories({a.category for a in found})
            self._assets = found
        return self._assets

    def __iter__(self) -> Iterator[Asset]:
        return iter(self.assets)

    def __len__(self) -> int:
        return len(self.assets)

    @property
    def categories(self) -> list[str]:
        return sorted({a.category for a in self.assets})

    def by_category(self, category: str) -> list[Asset]:
        return [a for a in self.assets if a.category == category]

    # -- loading
    def load(self, asset: Asset) -> Mesh | None:
        """`asset.load()`, or None (reason counted in `skipped`, message in `problems`) when broken."""
        try:
            mesh = asset.load()
        except MeshError as exc:
            self._skip(asset.id, _reason(exc), str(exc))
            return None
        except Exception as exc:  # a generator or loader bug must not stop a batch job either
            self._skip(asset.id, "load_failed", f"{type(exc).__name__}: {exc}")
            return None
        if mesh.num_faces == 0:
            self._skip(asset.id, "empty_mesh", str(asset.path or asset.id))
            return None
        missing = [w for w in mesh.warnings if "missing" in w]
        if missing and not self.allow_missing_textures:
            self._skip(asset.id, "missing_texture", f"{asset.path}: " + "; ".join(missing))
            return None
        return mesh

    def iter_loaded(self) -> Iterator[tuple[Asset, Mesh]]:
        """(asset, mesh) for every asset that loads; broken ones are skipped and counted."""
        for asset in self.assets:
            mesh = self.load(asset)
            if mesh is not None:
                yield asset, mesh

    def summary(self) -> str:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (f"{self.type} source {self.root}: {len(self)} assets in {len(self.categories)} categories; "
                f"skipped: {skipped}")

    def __repr__(self) -> str:
        n = "?" if self._assets is None else len(self._assets)
        return f"{type(self).__name__}(root={str(self.root)!r}, assets={n})"
