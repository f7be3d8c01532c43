"""Errors raised by data3d.

Every error names the file (when there is one) and the field that was wrong, so that a batch job
can log it as a skip reason without more context.
"""

from __future__ import annotations

from pathlib import Path

from geom3d.errors import GeometryError

__all__ = ["AnnotationError", "AssetError", "dataset_root"]


class AnnotationError(GeometryError):
    """An annotation that cannot be used: NaN, a bbox outside the image, distance ≤ 0, an unknown
    category, a missing or malformed field. `path` is the file it came from (or None), `field` the
    field at fault (or None)."""

    def __init__(self, problem: str, path=None, field: str | None = None):
        self.path = None if path is None else str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        what = f"field {field!r}: " if field else ""
        super().__init__(f"{where}{what}{problem}")

    def with_path(self, path) -> AnnotationError:
        """The same error, now naming `path` (used when a record learns which file it came from)."""
        if self.path is not None:
            return self
        return AnnotationError(self.problem, path, self.field)


class AssetError(GeometryError):
    """A 3D asset source that cannot be used at all (a missing root folder, a bad config key).
    A single broken asset is not an error: sources skip it and count the reason."""


def dataset_root(root, dataset: str, marker: str | None = None) -> Path:
    """`root` as a Path after checking it is a `dataset` folder (holding `marker`/ when given).

    Every loader words a wrong root the same way: '<root>: cannot be read as <dataset>: no such folder'
    or '...: no <marker>/ folder in it'."""
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(f"cannot be read as {dataset}: no such folder", root)
    if marker is not None and not (root / marker).is_dir():
        raise AnnotationError(f"cannot be read as {dataset}: no {marker}/ folder in it", root)
    return root
