"""Reading the fields of annotation files (NPZ / NPY dictionaries) with errors naming file and field."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import AnnotationError

__all__ = ["read_npz", "numeric_field"]


def read_npz(path: Path) -> dict:
    """Every array of an npz file; AnnotationError naming it when the file is empty or corrupt."""
    try:
        with np.load(path, allow_pickle=True) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # numpy raises EOFError, BadZipFile, ValueError, UnpicklingError ... for bad files
        raise AnnotationError(f"cannot be read as an .npz file: {type(exc).__name__}: {exc}", path) from None


def numeric_field(d: Mapping, key: str, path, size: int | None = 1):
    """d[key] as finite float64 values: a float when `size` is 1, else the flat array (at least `size`
    values; any number when None, a float when there is one). AnnotationError naming file and key."""
    if key not in d:
        raise AnnotationError("is missing", path, key)
    try:
        value = np.asarray(d[key], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise AnnotationError(f"must be numeric, got {d[key]!r}", path, key) from None
    if size is not None and value.size < size:
        raise AnnotationError(f"must hold {size} number(s), got {value.size}", path, key)
    if not np.isfinite(value).all():
        raise AnnotationError("holds NaN or infinite values", path, key)
    if size == 1 or (size is None and value.size == 1):
        return float(value[0])
    return value
