"""aware3d's own record files: a folder of shards, each an NPZ or a JSON file.

    folder/
        records-000000.npz        one shard (any name `records-<name>.npz|.json`)
        records-worker3-17.json   shards from several writers live side by side
        images/...                (usually) the images the records point to

A writer appends by writing a new shard (`save_records(records, folder)` picks the next free
number; parallel writers pass distinct `shard=` names). Shards are written atomically (temporary
hidden file + rename), so a reader sees whole shards or none. `load_records(folder)` reads every
shard in name order. Image paths inside the folder are stored relative to it, others absolute.
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
        out["extra"] = dict(record.extra)
    return out


def _object_from_dict(d: dict) -> ObjectAnnotation:
    return ObjectAnnotation(
        category=d["category"], bbox=tuple(d["bbox"]), viewpoint=Viewpoint(**d["viewpoint"]),
        cad_index=d.get("cad_index"), extra=d.get("extra", {}), **{k: d[k] for k in _OPTIONAL if k in d})


def record_from_dict(d: dict, folder: str | os.PathLike | None = None) -> ImageRecord:
    """Inverse of `record_to_dict`."""
    base = Path(folder) if folder is not None else None
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
    return ImageRecord(image_path=image_path, image_size=tuple(d["image_size"]), objects=tuple(objects),
                       annotation_path=ann, extra=d.get("extra", {}))


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
        "record_extra": strings(json.dumps(dict(r.extra)) if r.extra else "" for r in records),
        "object_offsets": offsets,
        "category": strings(o.category for o in objects),
        "bbox": np.array([o.bbox for o in objects], dtype=np.float64).reshape(-1, 4),
        "viewpoint": np.array([[o.viewpoint[k] for k in VIEWPOINT_KEYS] for o in objects],
                              dtype=np.float64).reshape(-1, len(VIEWPOINT_KEYS)),
        "cad_index": np.array([o.cad_index or 0 for o in objects], dtype=np.int64),  # 0 = none
        "object_meta": strings(json.dumps(_object_meta(o), allow_nan=False) for o in objects),
    }


# ----------------------------------------------------------------------------- reading
def _from_arrays(z, folder: Path, path: Path) -> list[ImageRecord]:
    if str(z["format"]) != FORMAT_NAME:
        raise AnnotationError(f"not an {FORMAT_NAME} file (format {str(z['format'])!r})", path, "format")
    if int(z["version"]) > FORMAT_VERSION:
        raise AnnotationError(f"written by a newer aware3d (version {int(z['version'])})", path, "version")
    offsets = z["object_offsets"]
    cats, boxes, vps, cads, metas = z["category"], z["bbox"], z["viewpoint"], z["cad_index"], z["object_meta"]
    records = []
    for i, image_path in enumerate(z["image_path"]):
        objects = []
        for j in range(int(offsets[i]), int(offsets[i + 1])):
            meta = json.loads(str(metas[j])) if str(metas[j]) else {}
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
            d["extra"] = json.loads(extra)
        records.append(record_from_dict(d, folder))
    return records


def _shard_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _SHARD.match(p.name))


def _categories_in_arrays(z) -> list[str]:
    return sorted(set(z["category"].tolist()))


def load_records(folder: str | os.PathLike) -> RecordList:
    """Every record of every shard in `folder` (or of one shard file), in shard-name order.

    Categories found in the files are registered (they were valid when written). A malformed
    shard raises AnnotationError naming the file.
    """
    folder = Path(folder)
    if folder.is_file():
        files, base = [folder], folder.parent
    elif folder.is_dir():
        files, base = _shard_files(folder), folder
    else:
        raise AnnotationError("no such folder or shard file", folder)
    out = RecordList()
    for path in files:
        try:
            if path.suffix == ".json":
                doc = json.loads(path.read_text())
                if doc.get("format") != FORMAT_NAME:
                    raise AnnotationError(f"not an {FORMAT_NAME} file", path, "format")
                register_categories({o["category"] for r in doc["records"] for o in r.get("objects", [])})
                recs = [record_from_dict(r, base) for r in doc["records"]]
            else:
                with np.load(path, allow_pickle=False) as z:
                    register_categories(_categories_in_arrays(z))
                    recs = _from_arrays(z, base, path)
        except AnnotationError as exc:
            raise exc.with_path(path) from None
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise AnnotationError(f"cannot be read: {type(exc).__name__}: {exc}", path) from exc
        out.extend(recs)
    return out
