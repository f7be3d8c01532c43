"""ObjectNet3D loader (Xiang et al. 2016): the same MATLAB record scheme as PASCAL3D+, 100 classes.

Release layout:
    Annotations/<image id>.mat     one `record` per image (all objects, any class)
    Images/<image id>.JPEG
    Image_sets/{train,val,trainval,test}.txt, Image_sets/classes.txt
    CAD/off/<class>/NN.off         (some copies have CAD/<class>/NN.off)
The viewpoint angles are in degrees, pixel coordinates MATLAB 1-based, viewport 3000 by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .categories import OBJECTNET3D_CATEGORIES
from .errors import AnnotationError, dataset_root
from .images import check_image_size
from .matlab import matlab_object, read_mat_record
from .record import ImageRecord, RecordList

__all__ = ["load_objectnet3d", "objectnet3d_cad_dir"]

# the file names this dataset's releases use, tried in this order for a known stem (exact case: a
# case-sensitive file system holds `.JPEG`); not aware3d_utils.IMAGE_SUFFIXES, the suffixes of any folder of images
_IMAGE_SUFFIXES = (".JPEG", ".jpg", ".jpeg", ".png")


def objectnet3d_cad_dir(root) -> Path:
    """The folder holding `<class>/NN.off` in an ObjectNet3D copy."""
    root = Path(root)
    for cand in (root / "CAD" / "off", root / "CAD"):
        if cand.is_dir():
            return cand
    raise AnnotationError("has no CAD/off or CAD folder", root)


def load_objectnet3d(root, split: str | None = "val", categories: Sequence[str] | None = None,
                     strict: bool = False) -> RecordList:
    """Records of ObjectNet3D.

    split: "train", "val", "trainval", "test" (Image_sets/<split>.txt) or None (every annotation).
    categories: keep objects of these classes (default: all 100); images without such an object are
    dropped (not counted as skips). Objects without a fine viewpoint are skipped and counted; a
    malformed file raises (strict=True) or is skipped and counted as "bad_annotation".
    """
    root = dataset_root(root, "an ObjectNet3D release", "Annotations")
    ann_dir = root / "Annotations"
    keep = set(OBJECTNET3D_CATEGORIES if categories is None else categories)
    unknown = keep - set(OBJECTNET3D_CATEGORIES)
    if unknown:
        raise ValueError(f"not ObjectNet3D categories: {sorted(unknown)}")
    if split is None:
        names = sorted(p.stem for p in ann_dir.glob("*.mat"))
    else:
        list_path = root / "Image_sets" / f"{split}.txt"
        if not list_path.is_file():
            raise AnnotationError(f"no image list for split {split!r}", list_path)
        names = [n.strip() for n in list_path.read_text().splitlines() if n.strip()]
    out = RecordList()
    for name in names:
        ann_path = ann_dir / f"{name}.mat"
        image = next((p for s in _IMAGE_SUFFIXES if (p := root / "Images" / f"{name}{s}").is_file()), None)
        if image is None or not ann_path.is_file():
            out.skipped["missing_file"] += 1
            continue
        try:
            _, size, raw_objects = read_mat_record(ann_path)
            check_image_size(image, size, ann_path, "record.imgsize")
            objects = []
            for i, raw in enumerate(raw_objects):
                if str(raw.get("class", "")) not in keep:
                    continue
                try:
                    obj = matlab_object(raw, cad_source="objectnet3d", default_viewport=3000.0, skipped=out.skipped)
                except AnnotationError as exc:
                    raise AnnotationError(exc.problem, ann_path, f"objects[{i}].{exc.field}") from None
                if obj is not None:
                    objects.append(obj)
            if objects:
                out.append(ImageRecord(image_path=image, image_size=size, objects=tuple(objects),
                                       annotation_path=ann_path))
        except AnnotationError as exc:
            if strict:
                raise
            out.skip("bad_annotation", exc)
    return out
