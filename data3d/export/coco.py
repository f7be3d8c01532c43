"""COCO instances files from records: images, categories, boxes, segmentations, and our 3D fields.

Layout: `<out>/annotations/instances_<split>.json` and the images in `<out>/<split>/NNNNNN.<ext>`.
Pixel coordinates: ours have integer pixel centres, COCO's pixel i covers [i, i + 1), so our box
(x1, y1, x2, y2) of pixel indices is COCO's `[x1, y1, x2 − x1 + 1, y2 − y1 + 1]`.
Segmentation: the visible mask as compressed RLE where the record has mask files (datagen), else the
box as a 4-point polygon; `area` is the visible mask's pixel count, else the box's area.
The RLE string is COCO's (cocodataset/cocoapi common/maskApi.c, rleEncode and rleToString): runs over the
column-major mask starting with a run of zeros, each run after the second stored as the difference to
the run two before, in 5-bit groups with a continuation bit, offset by 48.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from ..errors import AnnotationError
from .common import ExportLog, category_ids, copy_image, mask_bbox, object_camera, object_masks, write_json

__all__ = ["write_coco", "rle_encode", "coco_box"]


def rle_encode(mask: np.ndarray) -> dict:
    """COCO's compressed RLE {"size": [H, W], "counts": str} of an (H, W) bool mask."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    flat = mask.reshape(-1, order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    chars = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return {"size": [int(h), int(w)], "counts": "".join(chars)}


def coco_box(bbox) -> list[float]:
    """Our (x1, y1, x2, y2) (pixel centres) as COCO's [x, y, width, height] (pixel edges)."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [x1, y1, x2 - x1 + 1.0, y2 - y1 + 1.0]


def _fields_3d(obj, K, R, t) -> dict:
    out = {"viewpoint": obj.viewpoint.as_dict(),
           "camera": {"K": K.tolist(), "R": R.tolist(), "t": t.tolist()},
           "mesh_ref": obj.mesh_ref}
    for key in ("cad_index", "occlusion", "visible_fraction", "truncated", "difficult"):
        value = getattr(obj, key)
        if value is not None:
            out[key] = value
    return out


def write_coco(groups: dict, out: Path, log: ExportLog) -> dict:
    """Write one instances file per split; returns {split: {"images", "objects", "file"}}."""
    cats = category_ids(groups)
    categories = [{"id": i, "name": name, "supercategory": "object"} for name, i in cats.items()]
    summary = {}
    for split, records in groups.items():
        images, annotations = [], []
        for index, record in enumerate(records):
            try:
                anns = []
                for j, obj in enumerate(record.objects):
                    K, R, t = object_camera(obj)
                    full, visible = object_masks(record, j)
                    box = coco_box(obj.bbox)
                    ann = {"id": 0, "image_id": index + 1, "category_id": cats[obj.category], "bbox": box,
                           "iscrowd": 0}
                    if visible is not None:
                        ann["segmentation"] = rle_encode(visible)
                        ann["area"] = float(visible.sum())
                        vb = mask_bbox(visible)
                        ann["bbox_visible"] = coco_box(vb) if vb is not None else None
                        ann["segmentation_kind"] = "visible_mask"
                    else:
                        x, y, w, h = box
                        ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
                        ann["area"] = w * h
                        ann["segmentation_kind"] = "box"
                    ann.update(_fields_3d(obj, K, R, t))
                    anns.append(ann)
                dst = copy_image(record.image_path, out / split / f"{index:06d}", keep_jpeg=True, enabled=log.images,
                                 size=record.image_size)
            except AnnotationError as exc:
                log.skip("bad_record", exc if exc.path else exc.with_path(record.image_path))
                continue
            h, w = record.image_size
            images.append({"id": index + 1, "file_name": dst.name if log.images else str(dst), "width": int(w),
                           "height": int(h), "aware3d_image_path": str(record.image_path)})
            for ann in anns:
                ann["id"] = len(annotations) + 1
                annotations.append(ann)
        doc = {"info": {"description": f"aware3d export ({split})", "version": "1.0",
                        "date_created": datetime.date.today().isoformat()},
               "licenses": [], "images": images, "annotations": annotations, "categories": categories}
        path = out / "annotations" / f"instances_{split}.json"
        write_json(path, doc, indent=None)
        summary[split] = {"images": len(images), "objects": len(annotations), "file": str(path.relative_to(out))}
    return summary
