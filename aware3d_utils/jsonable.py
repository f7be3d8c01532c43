"""Data as strict JSON / YAML: one sanitiser for manifests, metrics, configs and checkpoint metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

__all__ = ["plain"]


def plain(value):
    """`value` as plain Python that `json.dumps(allow_nan=False)` and `yaml.safe_dump` accept:
    mappings to dicts with string keys, tuples to lists, tensors / numpy arrays to (nested) lists,
    numpy / torch scalars to numbers, paths to strings, and NaN / infinities to None (strict JSON
    has no NaN: e.g. the cut of a category that keeps nothing is written as null)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist) and getattr(value, "ndim", 0) > 0:
        return plain(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
