"""Reading the MATLAB `record` structs of PASCAL3D+ and ObjectNet3D (shared by both loaders).

A record .mat holds `record` with `filename`, `imgsize` = [W H D] and `objects`, a struct array whose
elements carry `class`, `bbox` = [x1 y1 x2 y2], `truncated`, `occluded`, `difficult`, `cad_index`
and `viewpoint` (azimuth, elevation, theta in DEGREES; distance; focal; px, py; viewport; the
coarse azimuth_coarse / elevation_coarse). MATLAB pixel coordinates are 1-based (the first pixel's
centre is 1), ours are 0-based (it is 0): bbox, px and py lose 1 at this border, nowhere else.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AnnotationError
from .record import ObjectAnnotation, Viewpoint

__all__ = ["read_mat_record", "matlab_object", "MATLAB_TO_ZERO_BASED"]

# Subtract from a MATLAB pixel coordinate to get docs/design.md's 0-based integer-centre coordinate.
MATLAB_TO_ZERO_BASED = 1.0


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, np.ndarray) and value.size == 0)


def _scalar(value, default=None):
    """A MATLAB scalar (possibly wrapped in arrays) as a Python number, or `default` if empty."""
    if _is_empty(value):
        return default
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return str(arr.reshape(-1)[0]) if arr.size else default
    if arr.size != 1:
        raise ValueError(f"expected a scalar, got an array of shape {arr.shape}")
    return arr.reshape(-1)[0].item()


def _text(value, default: str = "") -> str:
    if _is_empty(value):
        return default
    if isinstance(value, str):
        return value
    return str(np.asarray(value).reshape(-1)[0])


def _fields(struct) -> dict[str, Any]:
    """A scipy `mat_struct` as a dict."""
    return {name: getattr(struct, name) for name in getattr(struct, "_fieldnames", [])}


def read_mat_record(path: str | Path) -> tuple[str, tuple[int, int], list[dict[str, Any]]]:
    """(filename, (H, W), objects) of a PASCAL3D+ / ObjectNet3D annotation .mat.

    Each object is a dict of its fields; `viewpoint` is a dict too (empty when not annotated).
    Raises AnnotationError naming the file for an unreadable or malformed file.
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several types for corrupt files
        raise AnnotationError(f"cannot be read as a MATLAB file: {type(exc).__name__}: {exc}", path) from exc
    if "record" not in mat:
        raise AnnotationError("has no 'record' variable", path, "record")
    record = mat["record"]
    try:
        size = np.asarray(record.imgsize).reshape(-1)
        width, height = int(size[0]), int(size[1])
    except (AttributeError, IndexError, ValueError):
        raise AnnotationError("missing or malformed imgsize ([W H D])", path, "record.imgsize") from None
    objects_raw = getattr(record, "objects", None)
    if _is_empty(objects_raw):
        objects_raw = []
    objects_raw = np.atleast_1d(objects_raw)
    objects = []
    for obj in objects_raw:
        d = _fields(obj)
        vp = d.get("viewpoint")
        d["viewpoint"] = {} if _is_empty(vp) or not hasattr(vp, "_fieldnames") else _fields(vp)
        objects.append(d)
    return _text(getattr(record, "filename", ""), path.stem), (height, width), objects


def _number(struct: dict, key: str, default=None, where: str = "viewpoint"):
    """A numeric field as a float (None/default when empty); AnnotationError naming it when it is
    text or an array."""
    try:
        value = _scalar(struct.get(key), default)
    except ValueError as exc:
        raise AnnotationError(str(exc), field=f"{where}.{key}" if where else key) from None
    if value is None:
        return None
    if isinstance(value, str) or isinstance(value, bool):
        raise AnnotationError(f"must be a number, got {value!r}", field=f"{where}.{key}" if where else key)
    return float(value)


def matlab_object(obj: dict[str, Any], *, cad_source: str, default_viewport: float,
                  skipped: Counter) -> ObjectAnnotation | None:
    """One MATLAB object dict as an ObjectAnnotation (without image size), or None (skip, counted).

    Skip reasons: "no_viewpoint" (no viewpoint struct: not pose-annotated), "distance<=0" (only the
    coarse viewpoint was annotated; PASCAL3D+ stores distance 0 then), "bad_viewpoint" (NaN or a
    missing principal point). A field of the wrong type (text, an array) raises AnnotationError.
    """
    vp = obj["viewpoint"]
    if not vp:
        skipped["no_viewpoint"] += 1
        return None
    azimuth = _number(vp, "azimuth")
    if azimuth is None:
        azimuth = _number(vp, "azimuth_coarse")
    elevation = _number(vp, "elevation")
    if elevation is None:
        elevation = _number(vp, "elevation_coarse")
    distance = _number(vp, "distance", 0.0)
    if distance is None or not distance > 0:
        skipped["distance<=0"] += 1
        return None
    px, py = _number(vp, "px"), _number(vp, "py")
    if azimuth is None or elevation is None or px is None or py is None:
        skipped["bad_viewpoint"] += 1
        return None
    theta = _number(vp, "theta", 0.0)
    focal = _number(vp, "focal", 1.0) or 1.0  # PASCAL3D+ annotates focal 1 throughout; empty/0 is read as that
    viewport = _number(vp, "viewport", default_viewport) or default_viewport
    values = (azimuth, elevation, theta, distance, focal, viewport, px, py)
    if not all(math.isfinite(v) for v in values):
        skipped["bad_viewpoint"] += 1
        return None
    viewpoint = Viewpoint(
        azimuth=math.radians(azimuth), elevation=math.radians(elevation), theta=math.radians(theta),
        distance=distance, focal=focal, viewport=viewport,
        px=px - MATLAB_TO_ZERO_BASED, py=py - MATLAB_TO_ZERO_BASED).wrapped()
    try:
        bbox = np.asarray(obj.get("bbox"), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise AnnotationError(f"must hold 4 numbers, got {obj.get('bbox')!r}", field="bbox") from None
    if bbox.size != 4:
        raise AnnotationError(f"must hold 4 numbers, got {bbox.size}", field="bbox")
    cad_index = _number(obj, "cad_index", where="")
    extra = {}
    for key in ("view",):
        if key in obj and not _is_empty(obj[key]):
            extra[key] = _text(obj[key])
    return ObjectAnnotation(
        category=_text(obj.get("class")), bbox=tuple((bbox - MATLAB_TO_ZERO_BASED).tolist()),
        viewpoint=viewpoint, cad_index=cad_index, cad_source=cad_source,
        occlusion=_flag(obj, "occluded"), truncated=_flag(obj, "truncated"),
        difficult=_flag(obj, "difficult"), extra=extra)


def _flag(obj: dict, key: str):
    v = _number(obj, key, where="")
    return None if v is None or not math.isfinite(v) else int(v)
