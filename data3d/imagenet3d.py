"""ImageNet3D loaders (Ma et al. 2024; toolkits wufeim/imagenet3d and wufeim/imagenet3d_exp).

Release layout:
    images/<category>/<name>.JPEG
    annotations/<category>/<name>.npz    `annotations`: an object array of per-object dicts
    lists/<category>_imagenet_{train,val}.txt
    CAD/<category>/NN.off
(the Hugging Face README also shows a flat `<category>/<name>.{JPEG,npz}` copy; it is read too).
Per-object keys (README): azimuth, elevation, theta (radians, [0, 2π]), distance, viewport (int),
focal, height, width (uint16), bbox (x1, y1, x2, y2), class, px, py, principal, cad_index,
object_status ('status_good' | 'status_partially' | 'status_barely' | 'status_bad'), dense
('dense_yes' | 'dense_no'); older copies flag unusable objects with `ignore` > 0 instead.
ImageNet3D's theta is the in-plane rotation of the PASCAL3D+ formula (its render code is the
same projection), pixel coordinates are 0-based (its tools are Python), so they are used as is.

Preprocessed per-object layout (the toolkits' preprocess_data.py, one crop per object):
    <split>/{images,annotations,lists}/<category>/...          (imagenet3d_exp)
    {images,annotations,lists}/<category>_<split>/...          (imagenet3d)
npz keys: name, class, bbox, bbox_original, principal(_original), px, py, px_original, py_original,
distance, distance_original, azimuth, elevation, theta, cad_index, focal, viewport, padding_params,
cropping_params ([top, bottom, left, right, 0, 0]), resize_rate. Its `bbox` carries the toolkit's
padding bug (y2 is shifted by the BOTTOM padding instead of the top one); this loader recomputes
bbox and principal point from the *_original values and the padding/cropping parameters.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geom3d import resize_coordinate

from .annotation_files import numeric_field, read_npz
from .categories import IMAGENET3D_OPEN_POSE_SPLIT, register_categories
from .errors import AnnotationError, dataset_root
from .images import check_image_size, read_image_size
from .record import ImageRecord, ObjectAnnotation, RecordList, Viewpoint

__all__ = ["load_imagenet3d", "load_imagenet3d_preprocessed", "open_pose_split", "BAD_STATUS"]

BAD_STATUS = "status_bad"
# the file names this dataset's releases use, tried in this order for a known stem (exact case: a
# case-sensitive file system holds `.JPEG`); not aware3d_utils.IMAGE_SUFFIXES, the suffixes of any folder of images
_IMAGE_SUFFIXES = (".JPEG", ".jpg", ".jpeg", ".png")


def open_pose_split() -> dict[str, tuple[str, ...]]:
    """ImageNet3D's open-vocabulary pose split with the published overlap removed: categories listed
    as both seen (train) and unseen (val) — "hair_dryer" — are kept only in train."""
    train = IMAGENET3D_OPEN_POSE_SPLIT["train"]
    return {"train": train, "val": tuple(c for c in IMAGENET3D_OPEN_POSE_SPLIT["val"] if c not in train)}


def _find_image(folder: Path, name: str) -> Path | None:
    for s in _IMAGE_SUFFIXES:
        p = folder / f"{name}{s}"
        if p.is_file():
            return p
    return None


def _layout(root: Path, split: str | None) -> str:
    """'release', 'flat' (<category>/<name>.{JPEG,npz}) or 'preprocessed' (one crop per object)."""
    if split and (root / split / "annotations").is_dir():
        return "preprocessed"  # imagenet3d_exp: <split>/{images,annotations,lists}/<category>/
    if (root / "annotations").is_dir():
        # preprocessed lists are folders holding mesh01.txt; the release's lists are plain files
        lists = root / "lists"
        if lists.is_dir() and any(lists.glob("*/mesh*.txt")):
            return "preprocessed"
        return "release"
    if any(p.is_dir() and any(p.glob("*.npz")) for p in root.iterdir()):
        return "flat"
    raise AnnotationError("cannot be read as ImageNet3D: no annotations/ folder or <category>/*.npz in it", root)


def load_imagenet3d(root, split: str | None = "val", categories: Sequence[str] | None = None,
                    strict: bool = False) -> RecordList:
    """Records of ImageNet3D (release, flat or preprocessed layout, detected from the folders).

    split: "train", "val" (lists/<category>_imagenet_<split>.txt) or None (every annotation); a copy
        without a lists/ folder (such as the flat layout) has no splits and loads every annotation.
    categories: default every category folder present (registered as known categories).
    Objects with object_status 'status_bad' (or `ignore` > 0 in older copies), distance ≤ 0 or
    no viewpoint are skipped and counted in `.skipped` ("status_bad", "ignore", "distance<=0",
    "no_viewpoint"). A malformed file (a field of the wrong type such as distance "far", focal 0, an
    annotated size that differs from the image's header) raises AnnotationError naming the file and
    field (strict=True) or is skipped, counted as "bad_annotation" and listed in `.problems`.
    """
    root = dataset_root(root, "ImageNet3D")
    layout = _layout(root, split)
    if layout == "preprocessed":
        return load_imagenet3d_preprocessed(root, split, categories, strict)
    ann_root = root / "annotations" if layout == "release" else root
    img_root = root / "images" if layout == "release" else root
    cats = sorted(p.name for p in ann_root.iterdir() if p.is_dir()) if categories is None else list(categories)
    register_categories(cats)
    out = RecordList()
    for category in cats:
        ann_dir, img_dir = ann_root / category, img_root / category
        list_path = root / "lists" / f"{category}_imagenet_{split}.txt"
        if split is not None and list_path.is_file():
            names = [n.strip() for n in list_path.read_text().splitlines() if n.strip()]
        elif split is not None and (root / "lists").is_dir():
            raise AnnotationError(f"no image list for {category!r} split {split!r}", list_path)
        else:
            names = sorted(p.stem for p in ann_dir.glob("*.npz"))
        for name in names:
            ann_path, image = ann_dir / f"{name}.npz", _find_image(img_dir, name)
            if image is None or not ann_path.is_file():
                out.skipped["missing_file"] += 1
                continue
            try:
                record = _release_record(ann_path, image, category, out.skipped)
            except AnnotationError as exc:
                if strict:
                    raise
                out.skip("bad_annotation", exc)
                continue
            if record is not None:
                out.append(record)
    return out


def _get(d: dict, key: str, path: Path, index: int):
    if key not in d:
        raise AnnotationError("is missing", path, f"annotations[{index}].{key}")
    value = d[key]
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value.item() if isinstance(value, np.generic) else value


def _number(d: dict, key: str, path: Path, index: int, positive: bool = False) -> float:
    """A numeric field as a finite float; AnnotationError naming the file and field otherwise."""
    value = _get(d, key, path, index)
    try:
        if isinstance(value, (str, bytes, bool)):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"must be a number, got {value!r}", path, f"annotations[{index}].{key}") from None
    if not np.isfinite(out):
        raise AnnotationError(f"is {out} (NaN or infinite)", path, f"annotations[{index}].{key}")
    if positive and not out > 0:
        raise AnnotationError(f"must be > 0, got {out:g}", path, f"annotations[{index}].{key}")
    return out


def _release_record(ann_path: Path, image: Path, category: str, skipped: Counter) -> ImageRecord | None:
    z = read_npz(ann_path)
    if "annotations" not in z:
        raise AnnotationError("has no 'annotations' array", ann_path, "annotations")
    annots = list(np.atleast_1d(z["annotations"]))
    size = None
    objects = []
    for i, a in enumerate(annots):
        if not isinstance(a, dict):
            raise AnnotationError(f"must be a dict, got {type(a).__name__}", ann_path, f"annotations[{i}]")
        status = a.get("object_status")
        status = None if status is None else str(status)
        if status == BAD_STATUS:
            skipped["status_bad"] += 1
            continue
        if status is None and "ignore" in a and _number(a, "ignore", ann_path, i) > 0:
            skipped["ignore"] += 1
            continue
        if "px" not in a or "distance" not in a:
            skipped["no_viewpoint"] += 1
            continue
        distance = _number(a, "distance", ann_path, i)
        if not distance > 0:
            skipped["distance<=0"] += 1
            continue
        if size is None:
            if "height" in a and "width" in a:
                size = (int(_number(a, "height", ann_path, i)), int(_number(a, "width", ann_path, i)))
                check_image_size(image, size, ann_path, f"annotations[{i}].height/width")
            else:
                size = read_image_size(image)
        try:
            bbox = np.asarray(_get(a, "bbox", ann_path, i), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise AnnotationError(f"must hold 4 numbers, got {a['bbox']!r}", ann_path,
                                  f"annotations[{i}].bbox") from None
        try:
            viewpoint = Viewpoint(
                azimuth=_number(a, "azimuth", ann_path, i), elevation=_number(a, "elevation", ann_path, i),
                theta=_number(a, "theta", ann_path, i), distance=distance,
                focal=_number(a, "focal", ann_path, i, positive=True),
                viewport=_number(a, "viewport", ann_path, i, positive=True), px=_number(a, "px", ann_path, i),
                py=_number(a, "py", ann_path, i)).wrapped()
            extra = {k: str(a[k]) for k in ("dense",) if k in a}
            cls = str(a.get("class", category))
            if cls != category:
                extra["annotated_class"] = cls
            objects.append(ObjectAnnotation(
                category=category, bbox=tuple(bbox.tolist()), viewpoint=viewpoint,
                cad_index=_number(a, "cad_index", ann_path, i), cad_source="imagenet3d",
                status=status, caption=str(a["caption"]) if a.get("caption") is not None else None, extra=extra))
        except AnnotationError as exc:
            if exc.path is None:
                raise AnnotationError(exc.problem, ann_path, f"annotations[{i}].{exc.field}") from None
            raise
    if not objects:
        skipped["no_usable_object"] += 1
        return None
    return ImageRecord(image_path=image, image_size=size, objects=tuple(objects), annotation_path=ann_path)


# ----------------------------------------------------------------------------- preprocessed
def _preprocessed_dirs(root: Path, split: str | None, category: str):
    if split is not None and (root / split / "annotations").is_dir():
        base = root / split
        return base / "images" / category, base / "annotations" / category, base / "lists" / category
    folder = f"{category}_{split}" if split else category
    return root / "images" / folder, root / "annotations" / folder, root / "lists" / folder


def _preprocessed_categories(root: Path, split: str | None) -> list[str]:
    if split is not None and (root / split / "annotations").is_dir():
        return sorted(p.name for p in (root / split / "annotations").iterdir() if p.is_dir())
    names = [p.name for p in (root / "annotations").iterdir() if p.is_dir()]
    if split:
        names = [n[: -len(split) - 1] for n in names if n.endswith(f"_{split}")]
    return sorted(set(names))


def load_imagenet3d_preprocessed(root, split: str | None = "val", categories: Sequence[str] | None = None,
                                 strict: bool = False) -> RecordList:
    """Records of ImageNet3D preprocessed into one crop per object (either toolkit's layout).

    The camera is exact for the crop: distance_original with focal·resize_rate (the toolkit divides
    the distance instead, the same at the object centre); bbox and principal point are recomputed
    from the original values (fixing the toolkit's y2 padding bug), with the resampling map
    u' = r·(u + ½) − ½ of integer pixel centres.
    """
    root = dataset_root(root, "preprocessed ImageNet3D")
    cats = _preprocessed_categories(root, split) if categories is None else list(categories)
    register_categories(cats)
    out = RecordList()
    for category in cats:
        img_dir, ann_dir, list_dir = _preprocessed_dirs(root, split, category)
        names: list[str] = []
        for lst in sorted(list_dir.glob("*.txt")):
            names.extend(n.strip() for n in lst.read_text().splitlines() if n.strip())
        if not list_dir.is_dir():
            names = sorted(p.stem for p in ann_dir.glob("*.npz"))
        for name in dict.fromkeys(names):
            stem = os.path.splitext(name)[0]
            ann_path, image = ann_dir / f"{stem}.npz", _find_image(img_dir, stem)
            if image is None or not ann_path.is_file():
                out.skipped["missing_file"] += 1
                continue
            try:
                out.append(_preprocessed_record(ann_path, image, category))
            except AnnotationError as exc:
                if strict:
                    raise
                nonpositive = exc.field == "distance_original" and exc.problem.startswith("must be > 0")
                out.skip("distance<=0" if nonpositive else "bad_annotation", exc)
    return out


def _preprocessed_record(ann_path: Path, image: Path, category: str) -> ImageRecord:
    d = read_npz(ann_path)

    def get(key):
        return numeric_field(d, key, ann_path, size=None)

    r = float(get("resize_rate"))
    distance = float(get("distance_original"))
    if not distance > 0:
        raise AnnotationError(f"must be > 0, got {distance:g}", ann_path, "distance_original")
    pad = np.asarray(get("padding_params"), dtype=np.float64).reshape(-1)
    crop = np.asarray(get("cropping_params"), dtype=np.float64).reshape(-1)
    dx, dy = pad[2] - crop[2], pad[0] - crop[0]  # left padding − left crop, top padding − top crop

    def x_map(u):
        return resize_coordinate(u, r) + dx

    def y_map(v):
        return resize_coordinate(v, r) + dy

    h, w = read_image_size(image)
    if not float(get("focal")) > 0:
        raise AnnotationError(f"must be > 0, got {float(get('focal')):g}", ann_path, "focal")
    viewpoint = Viewpoint(azimuth=get("azimuth"), elevation=get("elevation"), theta=get("theta"),
                          distance=distance, focal=float(get("focal")) * r, viewport=get("viewport"),
                          px=x_map(float(get("px_original"))), py=y_map(float(get("py_original")))).wrapped()
    x1, y1, x2, y2 = np.asarray(get("bbox_original"), dtype=np.float64).reshape(-1)[:4]
    box = [x_map(x1), y_map(y1), x_map(x2), y_map(y2)]
    clipped = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], w - 1.0), min(box[3], h - 1.0))
    obj = ObjectAnnotation(
        category=category, bbox=clipped, viewpoint=viewpoint, cad_index=int(get("cad_index")),
        cad_source="imagenet3d", truncated=(tuple(box) != clipped) or None,
        extra={"name": str(d["name"]) if "name" in d else ann_path.stem, "resize_rate": r})
    return ImageRecord(image_path=image, image_size=(h, w), objects=(obj,), annotation_path=ann_path)
