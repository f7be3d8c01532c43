"""aware3d's own record files: a folder of shards, each an NPZ or a JSON file.

    folder/
        records-000000.npz        one shard (any name `records-<name>.npz|.json`)
        records-worker3-17.json   shards from several writers live side by side
        images/...                (usually) the images the records point to

A writer appends by writing a new shard (`save_records(records, folder)` picks the next free
number; parallel writers pass distinct `shard=` names). Shards are written atomically (temporary
hidden file + rename), so a reader sees whole shards or none. `load_records(folder)` reads every
shard in name order. Image paths inside the folder are stored relative to it, others absolute; so are
record extras whose key ends in `_path` (datagen's mask_path, depth_path, ...), which load as absolute
paths.
The layout of both formats is in docs/data3d.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from aware3d_utils import atomic_save, atomic_write_text

from .categories import register_categories
from .errors import AnnotationError
from .record import VIEWPOINT_KEYS, ImageRecord, ObjectAnnotation, RecordList, Viewpoint

__all__ = ["save_records", "load_records", "record_to_dict", "record_from_dict", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "aware3d.records"
FORMAT_VERSION = 1
_SHARD = re.compile(r"^records-([A-Za-z0-9_.\-]+)\.(npz|json)$")
_OPTIONAL = ("cad_source", "cad_id", "occlusion", "visible_fraction", "truncated", "difficult", "status",
             "caption")


# ----------------------------------------------------------------------------- dict form (JSON)
def _path_out(path: Path, folder: Path) -> str:
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def _path_in(text: str, folder: Path) -> Path:
    p = Path(text)
    return p if p.is_absolute() else folder / p


def _extra_out(extra, folder: Path | None) -> dict:
    """Record extras as stored: file paths (keys ending in '_path') inside `folder` become relative."""
    out = dict(extra)
    if folder is not None:
        for k, v in out.items():
            if k.endswith("_path") and isinstance(v, str) and v and os.path.isabs(v):
                out[k] = _path_out(Path(v), folder)
    return out


def _extra_in(extra, folder: Path | None) -> dict:
    """Record extras as loaded: relative file paths (keys ending in '_path') resolved against `folder`."""
    if not isinstance(extra, dict):
        raise AnnotationError(f"must be an object, got {type(extra).__name__}", field="extra")
    out = dict(extra)
    if folder is not None:
        for k, v in out.items():
            if k.endswith("_path") and isinstance(v, str) and v and not os.path.isabs(v):
                # absolute, so that saving the record elsewhere (where relative extras are read as
                # relative to that folder) still finds the file when `folder` was cwd-relative
                out[k] = os.path.abspath(folder / v)
    return out


def _object_meta(obj: ObjectAnnotation) -> dict:
    meta = {k: getattr(obj, k) for k in _OPTIONAL if getattr(obj, k) is not None}
    if obj.extra:
        meta["extra"] = dict(obj.extra)
    return meta


def record_to_dict(record: ImageRecord, folder: str | os.PathLike | None = None) -> dict:
    """A JSON-ready dict of one record (paths relative to `folder` when inside it)."""
    base = Path(os.path.abspath(folder)) if folder is not None else None
    out = {
        "image_path": _path_out(record.image_path, base) if base else str(record.image_path),
        "image_size": list(record.image_size),
        "objects": [{"category": o.category, "bbox": list(o.bbox), "viewpoint": o.viewpoint.as_dict(),
                     **({"cad_index": o.cad_index} if o.cad_index is not None else {}), **_object_meta(o)}
                    for o in record.objects],
    }
    if record.annotation_path is not None:
        out["annotation_path"] = _path_out(record.annotation_path, base) if base else str(record.annotation_path)
    if record.extra:
        out["extra"] = _extra_out(record.extra, base)
    return out


def _object_from_dict(d: dict) -> ObjectAnnotation:
    return ObjectAnnotation(
        category=d["category"], bbox=tuple(d["bbox"]), viewpoint=Viewpoint(**d["viewpoint"]),
        cad_index=d.get("cad_index"), extra=d.get("extra", {}), **{k: d[k] for k in _OPTIONAL if k in d})


def record_from_dict(d: dict, folder: str | os.PathLike | None = None) -> ImageRecord:
    """Inverse of `record_to_dict`."""
    base = Path(folder) if folder is not None else None
    if not isinstance(d, dict) or not isinstance(d.get("image_path"), str):
        raise AnnotationError(f"must be a record with an 'image_path' string, got {d!r:.80}", field="image_path")
    image_path = _path_in(d["image_path"], base) if base else Path(d["image_path"])
    ann = d.get("annotation_path")
    if ann is not None and base:
        ann = _path_in(ann, base)
    objects = []
    for i, o in enumerate(d.get("objects", [])):
        try:
            objects.append(_object_from_dict(o))
        except AnnotationError as exc:
            raise AnnotationError(exc.problem, ann or image_path, f"objects[{i}].{exc.field}") from None
        except (KeyError, TypeError) as exc:
            raise AnnotationError(f"malformed object ({exc})", ann or image_path, f"objects[{i}]") from None
    size = d.get("image_size")
    if not isinstance(size, (list, tuple)):
        raise AnnotationError(f"must be [H, W], got {size!r}", ann or image_path, "image_size")
    return ImageRecord(image_path=image_path, image_size=tuple(size), objects=tuple(objects),
                       annotation_path=ann, extra=_extra_in(d.get("extra", {}), base))


# ----------------------------------------------------------------------------- writing
def _next_shard_name(folder: Path) -> str:
    used = [int(m.group(1)) for p in folder.glob("records-*") if (m := _SHARD.match(p.name))
            and m.group(1).isdigit()]
    return f"{(max(used) + 1) if used else 0:06d}"


def save_records(records: Iterable[ImageRecord], folder: str | os.PathLike, shard: str | None = None,
                 format: str = "npz") -> Path:
    """Write `records` as one new shard in `folder`; returns the shard's path.

    shard: the shard's name (letters, digits, `_.-`); default: the next free number. An existing
    shard of that name is replaced (atomically), which lets a resumed job rewrite its own shard.
    format: "npz" (columnar arrays, loads without pickle) or "json" (human-readable).
    """
    folder = Path(os.path.abspath(folder))
    folder.mkdir(parents=True, exist_ok=True)
    records = list(records)
    for i, r in enumerate(records):
        if not isinstance(r, ImageRecord):
            raise TypeError(f"save_records: item {i} is a {type(r).__name__}, not an ImageRecord")
    if format not in ("npz", "json"):
        raise ValueError(f"save_records: format must be 'npz' or 'json', got {format!r}")
    name = shard if shard is not None else _next_shard_name(folder)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ValueError(f"save_records: shard name {name!r} may only hold letters, digits and _.-")
    path = folder / f"records-{name}.{format}"
    if format == "json":
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
               "records": [record_to_dict(r, folder) for r in records]}
        atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    else:
        arrays = _to_arrays(records, folder)
        atomic_save(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    return path


def _to_arrays(records: list[ImageRecord], folder: Path) -> dict[str, np.ndarray]:
    objects = [o for r in records for o in r.objects]
    offsets = np.cumsum([0] + [len(r.objects) for r in records]).astype(np.int64)

    def strings(values):
        return np.array(list(values), dtype=np.str_) if values else np.zeros(0, dtype="<U1")

    return {
        "format": np.array(FORMAT_NAME), "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "image_path": strings(_path_out(r.image_path, folder) for r in records),
        "image_size": np.array([r.image_size for r in records], dtype=np.int64).reshape(-1, 2),
        "annotation_path": strings("" if r.annotation_path is None else _path_out(r.annotation_path, folder)
                                   for r in records),
        "record_extra": strings(json.dumps(_extra_out(r.extra, folder)) if r.extra else "" for r in records),
        "object_offsets": offsets,
        "category": strings(o.category for o in objects),
        "bbox": np.array([o.bbox for o in objects], dtype=np.float64).reshape(-1, 4),
        "viewpoint": np.array([[o.viewpoint[k] for k in VIEWPOINT_KEYS] for o in objects],
                              dtype=np.float64).reshape(-1, len(VIEWPOINT_KEYS)),
        "cad_index": np.array([o.cad_index or 0 for o in objects], dtype=np.int64),  # 0 = none
        "object_meta": strings(json.dumps(_object_meta(o), allow_nan=False) for o in objects),
    }


# ----------------------------------------------------------------------------- reading
# The NPZ shard's arrays: (dtype kinds, number of dimensions, length: "M" images, "M+1", "N" objects)
_NPZ_LAYOUT = {
    "format": ("U", 0, None), "version": ("iu", 0, None),
    "image_path": ("U", 1, "M"), "image_size": ("iu", 2, "M"), "annotation_path": ("U", 1, "M"),
    "record_extra": ("U", 1, "M"), "object_offsets": ("iu", 1, "M+1"), "category": ("U", 1, "N"),
    "bbox": ("f", 2, "N"), "viewpoint": ("f", 2, "N"), "cad_index": ("iu", 1, "N"), "object_meta": ("U", 1, "N"),
}
_NPZ_COLUMNS = {"image_size": 2, "bbox": 4, "viewpoint": len(VIEWPOINT_KEYS)}


def _check_npz_layout(z, path: Path) -> None:
    """The shard's structure (keys, dtypes, shapes, offsets) before any record is built."""
    missing = [k for k in _NPZ_LAYOUT if k not in z.files]
    if missing:
        raise AnnotationError(f"is not an {FORMAT_NAME} shard: arrays {missing} are missing", path, missing[0])
    if str(z["format"]) != FORMAT_NAME:
        raise AnnotationError(f"not an {FORMAT_NAME} file (format {str(z['format'])!r})", path, "format")
    arrays = {k: z[k] for k in _NPZ_LAYOUT}
    m = arrays["image_path"].shape[0] if arrays["image_path"].ndim == 1 else -1
    n = arrays["category"].shape[0] if arrays["category"].ndim == 1 else -1
    sizes = {"M": m, "M+1": m + 1, "N": n}
    for key, (kinds, ndim, length) in _NPZ_LAYOUT.items():
        a = arrays[key]
        if a.dtype.kind not in kinds or a.ndim != ndim or (length and a.shape[0] != sizes[length]) \
                or (key in _NPZ_COLUMNS and a.shape[1] != _NPZ_COLUMNS[key]):
            want = f"{length or ''}{', ' + str(_NPZ_COLUMNS[key]) if key in _NPZ_COLUMNS else ''}"
            raise AnnotationError(f"has dtype {a.dtype} and shape {a.shape}, expected kind {kinds!r} and shape "
                                  f"({want})", path, key)
    offsets = arrays["object_offsets"]
    if offsets[0] != 0 or offsets[-1] != n or (np.diff(offsets) < 0).any():
        raise AnnotationError(f"must rise from 0 to the {n} objects, got {offsets.tolist()[:8]}", path,
                              "object_offsets")


def _json_meta(text: str, path: Path, field: str) -> dict:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"is not valid JSON: {exc}", path, field) from None
    if not isinstance(value, dict):
        raise AnnotationError(f"must be a JSON object, got {type(value).__name__}", path, field)
    return value


def _from_arrays(z, folder: Path, path: Path) -> list[ImageRecord]:
    _check_npz_layout(z, path)
    if int(z["version"]) > FORMAT_VERSION:
        raise AnnotationError(f"written by a newer aware3d (version {int(z['version'])})", path, "version")
    offsets = z["object_offsets"]
    cats, boxes, vps, cads, metas = z["category"], z["bbox"], z["viewpoint"], z["cad_index"], z["object_meta"]
    records = []
    for i, image_path in enumerate(z["image_path"]):
        objects = []
        for j in range(int(offsets[i]), int(offsets[i + 1])):
            meta = _json_meta(str(metas[j]), path, f"object_meta[{j}]")
            d = {"category": str(cats[j]), "bbox": boxes[j].tolist(),
                 "viewpoint": dict(zip(VIEWPOINT_KEYS, vps[j].tolist())), **meta}
            if int(cads[j]) > 0:
                d["cad_index"] = int(cads[j])
            objects.append(d)
        ann = str(z["annotation_path"][i])
        extra = str(z["record_extra"][i])
        d = {"image_path": str(image_path), "image_size": z["image_size"][i].tolist(), "objects": objects}
        if ann:
            d["annotation_path"] = ann
        if extra:
            d["extra"] = _json_meta(extra, path, f"record_extra[{i}]")
        records.append(_record_from_dict_at(d, folder, path, f"image_path[{i}]"))
    return records


def _record_from_dict_at(d: dict, folder: Path, path: Path, where: str) -> ImageRecord:
    try:
        return record_from_dict(d, folder)
    except AnnotationError as exc:
        field = exc.field if exc.path is not None else f"{where}.{exc.field}" if exc.field else where
        raise AnnotationError(exc.problem, path, field) from None


def _check_json_layout(doc, path: Path) -> list:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise AnnotationError(f"not an {FORMAT_NAME} file", path, "format")
    if isinstance(doc.get("version"), int) and doc["version"] > FORMAT_VERSION:
        raise AnnotationError(f"written by a newer aware3d (version {doc['version']})", path, "version")
    records = doc.get("records")
    if not isinstance(records, list):
        raise AnnotationError(f"must be a list of records, got {type(records).__name__}", path, "records")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise AnnotationError(f"must be an object, got {type(r).__name__}", path, f"records[{i}]")
        for key, kind in (("image_path", str), ("image_size", list), ("objects", list)):
            if key == "objects" and key not in r:
                continue
            if not isinstance(r.get(key), kind):
                raise AnnotationError(f"must be a {kind.__name__}, got {r.get(key)!r}", path, f"records[{i}].{key}")
        for j, o in enumerate(r.get("objects", [])):
            if not isinstance(o, dict) or not isinstance(o.get("category"), str):
                raise AnnotationError("must be an object with a 'category' string", path,
                                      f"records[{i}].objects[{j}]")
    return records


def _shard_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _SHARD.match(p.name))


def _read_shard(path: Path, base: Path) -> list[ImageRecord]:
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AnnotationError(f"cannot be read as JSON: {type(exc).__name__}: {exc}", path) from None
        records = _check_json_layout(doc, path)
        register_categories({o["category"] for r in records for o in r.get("objects", [])})
        return [_record_from_dict_at(r, base, path, f"records[{i}]") for i, r in enumerate(records)]
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # an empty file is EOFError, a corrupt one BadZipFile or ValueError
        raise AnnotationError(f"cannot be read as an .npz shard: {type(exc).__name__}: {exc}", path) from None
    try:
        with z:
            _check_npz_layout(z, path)
            register_categories(sorted(set(z["category"].tolist())))
            return _from_arrays(z, base, path)
    except AnnotationError:
        raise
    except Exception as exc:  # a member that is not a valid array (zip CRC error, truncated data)
        raise AnnotationError(f"cannot be read as an .npz shard: {type(exc).__name__}: {exc}", path) from None


def load_records(folder: str | os.PathLike) -> RecordList:
    """Every record of every shard in `folder` (or of one shard file), in shard-name order.

    Categories found in the files are registered (they were valid when written). A malformed
    shard (empty, corrupt, wrong arrays, a bad field) raises AnnotationError naming the shard and
    the field; a folder without any `records-*.npz|json` shard raises too (it holds no records).
    """
    folder = Path(folder)
    if folder.is_file():
        if folder.suffix not in (".npz", ".json"):
            raise AnnotationError("is not a record shard (an .npz or .json file)", folder)
        files, base = [folder], folder.parent
    elif folder.is_dir():
        files, base = _shard_files(folder), folder
        if not files:
            raise AnnotationError("holds no record shards (records-<name>.npz or records-<name>.json)", folder)
    else:
        raise AnnotationError("no such folder or shard file", folder)
    out = RecordList()
    for path in files:
        out.extend(_read_shard(path, base))
    return out
