"""PASCAL3D+ loaders: the raw release, OccludedPASCAL3D+, and NeMo's preprocessed layout.

Raw release (PASCAL3D+_release1.1):
    Annotations/<class>_{imagenet,pascal}/<name>.mat   MATLAB `record` (see data3d.matlab)
    Images/<class>_{imagenet,pascal}/<name>.{JPEG,jpg}
    Image_sets/<class>_imagenet_{train,val}.txt        image names
    PASCAL/VOCdevkit/VOC2012/ImageSets/Main/<class>_{train,val}.txt   "<name> <±1|0>" (pascal subset)
    CAD/<class>/NN.off                                 NN = cad_index

OccludedPASCAL3D+ (Angtian/OccludedPASCAL3D): images/<class>FGL<l>_BGL<l>/<name>.JPEG (and the
other FG×BG folders), annotations/<class>FGL<l>_BGL<l>/<name>.npz with `occluder_mask` and `mask`;
poses come from the raw release's .mat files.

NeMo's preprocessed layout (Angtian/NeMo, code/dataset/CreatePascal3DNeMo.py):
    images/<class><occ>/<name>.JPEG       the object crop, rescaled so that distance·focal matches 5·3000
    annotations/<class><occ>/<name>.npz   keys below
    lists/<class><occ>/meshNN.txt         "<name>.JPEG" lines, one list per CAD model
with <occ> = "" or "FGL1_BGL1" … "FGL3_BGL3". The npz keys: name, box (crop in the rescaled padded
image, [y0 y1 x0 x1 H W]), box_ori, box_obj, cropped_kp_list, visible, occ_mask, azimuth, elevation,
theta (radians), distance, focal, viewport, principal ([px py], MATLAB 1-based, ORIGINAL image),
height, width (original image), cad_index, bbox (ORIGINAL image, MATLAB 1-based). The loader
rebuilds the crop's camera from these: scale r = float(200·distance/1000), rescaled size
(int(W·r), int(H·r)), crop origin (int(px·r) − w//2, int(py·r) − h//2) — NeMo's own arithmetic,
to the bit (distance/5 rounds differently, and int(W·r) then differs for ~0.4% of distances).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from geom3d import resize_coordinate

from .annotation_files import numeric_field, read_npz
from .categories import PASCAL3D_CATEGORIES
from .errors import AnnotationError, dataset_root
from .images import check_image_size
from .matlab import MATLAB_TO_ZERO_BASED, matlab_object, read_mat_record
from .record import ImageRecord, ObjectAnnotation, RecordList, Viewpoint

__all__ = ["load_pascal3d", "load_pascal3d_nemo", "occlusion_folder_suffix", "nemo_resize_rate", "OCCLUSION_LEVELS",
           "NEMO_CANONICAL_DISTANCE"]

OCCLUSION_LEVELS = (0, 1, 2, 3)
NEMO_CANONICAL_DISTANCE = 5.0  # NeMo rescales every object to distance 5 at focal·viewport 3000
# the file names this dataset's releases use, tried in this order for a known stem (exact case: a
# case-sensitive file system holds `.JPEG`); not aware3d_utils.IMAGE_SUFFIXES, the suffixes of any folder of images
_IMAGE_SUFFIXES = (".JPEG", ".jpg", ".jpeg", ".png", ".JPG")


def occlusion_folder_suffix(occlusion) -> str:
    """The folder suffix of an occlusion level: 0/None -> "", 1 -> "FGL1_BGL1", …; a string such as
    "FGL2_BGL3" is returned as is."""
    if occlusion in (None, 0, "", "L0"):
        return ""
    if isinstance(occlusion, str):
        text = occlusion.upper()
        if text in ("L1", "L2", "L3"):
            return f"FGL{text[1]}_BGL{text[1]}"
        if len(text) == 9 and text.startswith("FGL") and text[4:8] == "_BGL":
            return text
        raise ValueError(f"occlusion must be 0-3, 'L1'-'L3' or 'FGL<i>_BGL<j>', got {occlusion!r}")
    level = int(occlusion)
    if level not in OCCLUSION_LEVELS:
        raise ValueError(f"occlusion level must be 0, 1, 2 or 3, got {occlusion!r}")
    return f"FGL{level}_BGL{level}"


def _fg_level(suffix: str) -> int:
    return int(suffix[3]) if suffix else 0


def _categories(categories: Iterable[str] | None) -> list[str]:
    cats = list(PASCAL3D_CATEGORIES if categories is None else categories)
    unknown = [c for c in cats if c not in PASCAL3D_CATEGORIES]
    if unknown:
        raise ValueError(f"not PASCAL3D+ categories: {unknown}")
    return cats


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _find_image(folder: Path, name: str) -> Path | None:
    for suffix in _IMAGE_SUFFIXES:
        p = folder / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def _split_names(root: Path, category: str, subset: str, split: str | None) -> list[str] | None:
    """Image names of a split (None: every annotated image)."""
    if split is None:
        return None
    own = root / "Image_sets" / f"{category}_{subset}_{split}.txt"
    if own.is_file():
        return _read_lines(own)
    if subset == "pascal":
        voc = root / "PASCAL" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / f"{category}_{split}.txt"
        if voc.is_file():
            names = []
            for line in _read_lines(voc):
                parts = line.split()
                if len(parts) == 1 or int(parts[-1]) != -1:  # -1: the class is absent from the image
                    names.append(parts[0])
            return names
    raise AnnotationError(f"no image list for {category} {subset} {split}", own)


def _visible_fraction(npz_path: Path) -> float | None:
    """1 − |occluder ∩ object| / |object| from an OccludedPASCAL3D+ per-image annotation, if present."""
    if not npz_path.is_file():
        return None
    z = read_npz(npz_path)
    if "occluder_mask" not in z or "mask" not in z:
        return None
    occ = np.asarray(z["occluder_mask"]).astype(bool)
    obj = np.asarray(z["mask"])
    if obj.dtype.kind not in "biuf":
        raise AnnotationError(f"must be a numeric mask, got dtype {obj.dtype}", npz_path, "mask")
    obj = obj > (10 if obj.dtype == np.uint8 else 0.5)  # the toolkit thresholds its JPEG masks at 10
    if obj.ndim == 3:
        obj = obj.any(axis=-1)
    if occ.shape != obj.shape or not obj.any():
        return None
    return float(1.0 - np.logical_and(occ, obj).sum() / obj.sum())


def load_pascal3d(root, split: str | None = "val", subset: str = "imagenet",
                  categories: Sequence[str] | None = None, occluded_root=None, occlusion=None,
                  strict: bool = False) -> RecordList:
    """Records of the raw PASCAL3D+ release.

    split: "train", "val" or None (every annotated image). subset: "imagenet", "pascal" or "all".
    categories: a subset of the 12 (default: all those present). Only objects of the folder's own class are kept,
    so an image annotated under two classes yields each object once.
    occluded_root + occlusion (1-3 or "FGL<i>_BGL<j>"): read the OccludedPASCAL3D+ images instead,
    with the raw poses; images missing at that level are skipped ("not_in_occluded_set").
    Objects without a fine viewpoint (distance 0), or not pose-annotated, are skipped and counted
    in `.skipped`; a malformed annotation file raises AnnotationError naming it (or, with
    strict=False, is skipped and counted as "bad_annotation").
    """
    root = dataset_root(root, "a PASCAL3D+ release", "Annotations")
    subsets = ("imagenet", "pascal") if subset == "all" else (subset,)
    if any(s not in ("imagenet", "pascal") for s in subsets):
        raise ValueError(f"subset must be 'imagenet', 'pascal' or 'all', got {subset!r}")
    suffix = occlusion_folder_suffix(occlusion)
    if suffix and occluded_root is None:
        raise ValueError("occlusion > 0 needs occluded_root (the OccludedPASCAL3D+ folder)")
    out = RecordList()
    for category in _categories(categories):
        for sub in subsets:
            ann_dir = root / "Annotations" / f"{category}_{sub}"
            img_dir = root / "Images" / f"{category}_{sub}"
            if not ann_dir.is_dir():
                if categories is not None and subset != "all":
                    raise AnnotationError(f"no annotations for {category!r} ({sub})", ann_dir)
                continue  # a partial copy of the release: load what is there
            if suffix:
                img_dir = Path(occluded_root) / "images" / f"{category}{suffix}"
            names = _split_names(root, category, sub, split)
            if names is None:
                names = sorted(p.stem for p in ann_dir.glob("*.mat"))
            for name in names:
                record = _raw_record(root, ann_dir, img_dir, name, category, suffix, occluded_root, strict,
                                     out.skipped, out.problems)
                if record is not None:
                    out.append(record)
    return out


def _raw_record(root, ann_dir: Path, img_dir: Path, name: str, category: str, suffix: str, occluded_root,
                strict: bool, skipped: Counter, problems: list) -> ImageRecord | None:
    ann_path = ann_dir / f"{name}.mat"
    image = _find_image(img_dir, name)
    if image is None:
        skipped["not_in_occluded_set" if suffix else "missing_image"] += 1
        return None
    if not ann_path.is_file():
        skipped["missing_annotation"] += 1
        return None
    try:
        _, size, raw_objects = read_mat_record(ann_path)
        if not suffix:  # OccludedPASCAL3D+ images are re-encoded crops of the same size; not re-checked
            check_image_size(image, size, ann_path, "record.imgsize")
        objects = []
        for i, raw in enumerate(raw_objects):
            if str(raw.get("class", "")) != category:
                continue
            try:
                obj = matlab_object(raw, cad_source="pascal3d", default_viewport=2000.0, skipped=skipped)
            except AnnotationError as exc:
                raise AnnotationError(exc.problem, ann_path, f"objects[{i}].{exc.field}") from None
            if obj is None:
                continue
            if suffix:
                frac = _visible_fraction(Path(occluded_root) / "annotations" / f"{category}{suffix}" / f"{name}.npz")
                obj = replace(obj, occlusion=_fg_level(suffix), visible_fraction=frac,
                              extra={**obj.extra, "occluded_flag": obj.occlusion})
            objects.append(obj)
        if not objects:
            skipped["no_usable_object"] += 1
            return None
        return ImageRecord(image_path=image, image_size=size, objects=tuple(objects), annotation_path=ann_path)
    except AnnotationError as exc:
        if strict:
            raise
        problems.append(("bad_annotation", str(exc)))
        skipped["bad_annotation"] += 1
        return None


# ----------------------------------------------------------------------------- NeMo layout
def nemo_resize_rate(distance: float) -> float:
    """NeMo's rescale factor for an annotated distance, `float(200 * distance / 1000)` as
    CreatePascal3DNeMo.py computes it (not distance/5: the two round differently)."""
    return float(200 * distance / 1000)


def _nemo_record(img_path: Path, ann_path: Path, category: str, level: int) -> ImageRecord:
    z = read_npz(ann_path)
    get = {k: numeric_field(z, k, ann_path) for k in
           ("azimuth", "elevation", "theta", "distance", "focal", "viewport", "height", "width", "cad_index")}
    principal = numeric_field(z, "principal", ann_path, 2)
    bbox = numeric_field(z, "bbox", ann_path, 4)
    box = numeric_field(z, "box", ann_path, 4)
    name = str(z["name"]) if "name" in z else img_path.stem
    distance = get["distance"]
    if not distance > 0:
        raise AnnotationError(f"must be > 0, got {distance:g}", ann_path, "distance")
    crop_h, crop_w = int(round(box[1] - box[0])), int(round(box[3] - box[2]))
    check_image_size(img_path, (crop_h, crop_w), ann_path, "box")
    height, width = int(get["height"]), int(get["width"])
    if height <= 0 or width <= 0:
        raise AnnotationError(f"must be positive, got (height, width) = ({height}, {width})", ann_path, "height")
    r = nemo_resize_rate(distance)
    rx, ry = int(width * r) / width, int(height * r) / height  # the rescaled image really is int(W·r) wide
    px_m, py_m = principal[:2]
    left = int(px_m * r) - crop_w // 2
    top = int(py_m * r) - crop_h // 2

    def to_crop_x(u_matlab):  # MATLAB 1-based original -> 0-based crop, resampling u' = s(u + ½) − ½
        return resize_coordinate(u_matlab - MATLAB_TO_ZERO_BASED, rx) - left

    def to_crop_y(v_matlab):
        return resize_coordinate(v_matlab - MATLAB_TO_ZERO_BASED, ry) - top

    try:
        viewpoint = Viewpoint(azimuth=get["azimuth"], elevation=get["elevation"], theta=get["theta"],
                              distance=distance, focal=get["focal"] * r, viewport=get["viewport"],
                              px=to_crop_x(px_m), py=to_crop_y(py_m)).wrapped()
    except AnnotationError as exc:
        raise exc.with_path(ann_path) from None
    x1, y1, x2, y2 = bbox[:4]
    bx1, by1, bx2, by2 = to_crop_x(x1), to_crop_y(y1), to_crop_x(x2), to_crop_y(y2)
    cx1, cy1 = max(bx1, 0.0), max(by1, 0.0)
    cx2, cy2 = min(bx2, crop_w - 1.0), min(by2, crop_h - 1.0)
    truncated_by_crop = (cx1, cy1, cx2, cy2) != (bx1, by1, bx2, by2)
    obj = ObjectAnnotation(
        category=category, bbox=(cx1, cy1, cx2, cy2), viewpoint=viewpoint, cad_index=get["cad_index"],
        cad_source="pascal3d", occlusion=level, truncated=truncated_by_crop or None,
        extra={"name": name, "rescale": r})
    return ImageRecord(image_path=img_path, image_size=(crop_h, crop_w), objects=(obj,), annotation_path=ann_path)


def load_pascal3d_nemo(root, categories: Sequence[str] | None = None, occlusion=None,
                       strict: bool = False) -> RecordList:
    """Records of NeMo's preprocessed PASCAL3D+ (PASCAL3D_NeMo, PASCAL3D_train_NeMo or PASCAL3D_OCC_NeMo).

    occlusion: None/0 (the plain folders) or 1-3 / "FGL<i>_BGL<j>" (the occluded folders). The
    images are NeMo's crops; each record's camera is the crop's exact camera (the true distance and
    the rescaled focal length, so distance/focal·viewport equals NeMo's 5/3000). Images listed in
    lists/<class><occ>/mesh*.txt are loaded (cad_index from the npz). Bad npz files raise
    (strict=True) or are skipped and counted.
    """
    root = dataset_root(root, "NeMo's preprocessed PASCAL3D+", "lists")
    suffix = occlusion_folder_suffix(occlusion)
    level = _fg_level(suffix)
    out = RecordList()
    for category in _categories(categories):
        folder = f"{category}{suffix}"
        list_dir = root / "lists" / folder
        if not list_dir.is_dir() and categories is None:
            continue  # a partial copy: load what is there
        if not list_dir.is_dir():
            raise AnnotationError(f"missing list folder for {category!r} (occlusion {suffix or 'none'})", list_dir)
        names: list[str] = []
        for lst in sorted(list_dir.glob("mesh*.txt")):
            names.extend(_read_lines(lst))
        for file_name in dict.fromkeys(names):  # ordered, without duplicates
            stem = os.path.splitext(file_name)[0]
            img_path = root / "images" / folder / file_name
            ann_path = root / "annotations" / folder / f"{stem}.npz"
            if not img_path.is_file() or not ann_path.is_file():
                out.skipped["missing_file"] += 1
                continue
            try:
                out.append(_nemo_record(img_path, ann_path, category, level))
            except AnnotationError as exc:
                if strict:
                    raise
                nonpositive = exc.field == "distance" and exc.problem.startswith("must be > 0")
                out.skip("distance<=0" if nonpositive else "bad_annotation", exc)
    return out

