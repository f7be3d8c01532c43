"""What the three writers share: the object table of a set of records (ids, cameras, masks, depth),
the images copied beside the annotations, mesh lookup, skip-and-count, and the export manifest."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from aware3d_utils import atomic_save, atomic_write_text

from ..errors import AnnotationError
from ..images import load_mask
from ..record import ImageRecord, ObjectAnnotation

__all__ = ["ExportLog", "object_camera", "object_masks", "copy_image", "write_json", "write_png", "split_groups",
           "mask_bbox", "category_ids", "mesh_ids"]

log = logging.getLogger("data3d.export")


class ExportLog:
    """Counts of what an export wrote and skipped (by reason), with the messages of the first skips."""

    def __init__(self, strict: bool, images: bool = True):
        self.strict = strict
        self.images = images  # copy the images beside the annotations
        self.skipped: Counter = Counter()
        self.problems: list[str] = []
        self.written: Counter = Counter()

    def skip(self, reason: str, error: Exception | str) -> None:
        """Raise in strict mode; else count the skip and keep its one-line message."""
        if self.strict:
            raise error if isinstance(error, Exception) else AnnotationError(str(error))
        self.skipped[reason] += 1
        message = " ".join(str(error).split())
        if len(self.problems) < 200:
            self.problems.append(f"{reason}: {message}")
        log.warning("skipped (%s): %s", reason, message)


def split_groups(records, split: str) -> dict[str, list[ImageRecord]]:
    """{split: records} from a list of records (named `split`) or a mapping of splits."""
    if isinstance(records, Mapping):
        groups = {str(k): list(v) for k, v in records.items()}
    else:
        groups = {split: list(records)}
    for name, recs in groups.items():
        if not name or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
            raise ValueError(f"export: split name {name!r} is not a folder name")
        for i, r in enumerate(recs):
            if not isinstance(r, ImageRecord):
                raise TypeError(f"export: split {name!r} item {i} is a {type(r).__name__}, not an ImageRecord")
    return groups


def object_camera(obj: ObjectAnnotation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K (3, 3), R (3, 3), t (3,)) float64 of an object's camera: object -> camera `X = R·x + t`."""
    import torch

    v = obj.viewpoint
    f = v.focal_pixels
    K = np.array([[f, 0.0, v.px], [0.0, f, v.py], [0.0, 0.0, 1.0]])
    R = v.rotation(dtype=torch.float64).numpy()
    return K, R, np.array([0.0, 0.0, v.distance])


def object_masks(record: ImageRecord, index: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(full silhouette, visible part) (H, W) bool of object `index`, from the record's mask files
    (datagen writes `extra["mask_path"]` and, under occluders, `extra["visible_mask_path"]`; the
    visible part is the whole silhouette without it); (None, None) where the record has none. Files
    belong to the record, so only a one-object record's masks are used."""
    path = record.extra.get("mask_path")
    if not path or len(record.objects) != 1 or index != 0:
        return None, None
    full = load_mask(path, record.image_size).numpy()
    visible_path = record.extra.get("visible_mask_path")
    visible = load_mask(visible_path, record.image_size).numpy() if visible_path else full
    if (visible & ~full).any():
        raise AnnotationError("the visible mask covers pixels outside the object's mask", visible_path,
                              "visible_mask_path")
    return full, visible


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) pixel indices (inclusive) of a mask's pixels, None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _png_colour_type(path: Path) -> int | None:
    """The colour type of an 8-bit PNG (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA) from its
    header; None for anything else (not a PNG, 16-bit)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 26 or head[24] != 8:
        return None
    return head[25]


def copy_image(src: Path, dst_stem: Path, keep_jpeg: bool, enabled: bool = True, size=None) -> Path:
    """The record's image as an 8-bit RGB (or grey) file `dst_stem` + suffix, written atomically:
    PNG without alpha and (with keep_jpeg) JPEG are copied byte for byte, anything else (RGBA, palette,
    another format) is decoded and saved as PNG. AnnotationError naming `src` when it is not readable
    or, given the record's `size` (H, W), when its header says another size (the annotations would not
    fit it; a decompression bomb's header is caught here too, before a byte-for-byte copy).
    With `enabled` False nothing is written and `src` is returned (after those checks)."""
    src = Path(src)
    if not src.is_file():
        raise AnnotationError("image file not found", src)
    if size is not None:
        from ..images import check_image_size

        check_image_size(src, size, field="image_size")
    if not enabled:
        return src
    suffix = src.suffix.lower()
    colour_type = _png_colour_type(src) if suffix == ".png" else None
    if colour_type in (0, 2) or (keep_jpeg and suffix in (".jpg", ".jpeg")):
        dst = dst_stem.with_suffix(".png" if colour_type is not None else ".jpg")
        atomic_save(dst, lambda tmp: shutil.copyfile(src, tmp))
        return dst
    from ..images import _decode, _open

    with _open(src) as im:
        try:
            pixels = _decode(im if im.mode == "L" else im.convert("RGB"), src)
        except (OSError, ValueError, SyntaxError) as exc:
            raise AnnotationError(f"pixel data cannot be decoded: {exc}", src) from None
    dst = dst_stem.with_suffix(".png")
    write_png(dst, pixels if pixels.ndim == 2 else pixels[..., ::-1])  # OpenCV writes BGR
    return dst


def write_png(path: Path, array: np.ndarray) -> None:
    """A uint8 / uint16 (H, W) or uint8 BGR (H, W, 3) array as a PNG, atomically (zlib level 1: fast;
    PNG is lossless at every level)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"{path}: cannot encode the PNG")
    atomic_save(path, lambda tmp: Path(tmp).write_bytes(buf.tobytes()))


def write_json(path: Path, doc, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(doc, indent=indent, allow_nan=False) + "\n")


def category_ids(groups: Mapping[str, Iterable[ImageRecord]]) -> dict[str, int]:
    """1-based ids of the categories present, in name order."""
    names = sorted({o.category for recs in groups.values() for r in recs for o in r.objects})
    return {name: i + 1 for i, name in enumerate(names)}


def mesh_ids(groups: Mapping[str, Iterable[ImageRecord]]) -> dict[str, int]:
    """1-based ids of the distinct CAD references (`mesh_ref`), in name order; records without a CAD
    reference share one id per category (':car/')."""
    refs = sorted({o.mesh_ref for recs in groups.values() for r in recs for o in r.objects})
    return {ref: i + 1 for i, ref in enumerate(refs)}
