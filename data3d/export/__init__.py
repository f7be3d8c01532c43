"""Records out to the formats other tools read: COCO, BOP and KITTI (docs/data3d.md, "Export").

    from data3d.export import export_records
    export_records(data3d.load_records("runs/ds"), "ds_coco", "coco")
    export_records({"val": recs}, "p3d_bop", "bop", cad_root="PASCAL3D+_release1.1/CAD")

One module per format (`coco`, `bop`, `kitti`); this one checks the arguments, runs the writer and
writes `export_manifest.json` (what was written, what was skipped and why). A record that cannot be
exported (a missing image or mask, a mask of the wrong size) is skipped and counted, or raises
`AnnotationError` naming the file with `strict=True`. Every file is written atomically, into a new or
empty folder (files of an earlier export would mix with the new ones); the export is written beside it
and renamed into place at the end, so a run that stops (strict, a full disk) leaves no half-written folder.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

from .common import ExportLog, split_groups, write_json

__all__ = ["FORMATS", "export_records"]

FORMATS = ("coco", "bop", "kitti")
MANIFEST = "export_manifest.json"


def export_records(records, out: str | os.PathLike, format: str, *, split: str = "train", strict: bool = False,
                   images: bool = True, cad_root=None, mm_per_unit: float = 1000.0, metres_per_unit: float = 1.0,
                   max_ray_angle: float = math.radians(45.0)) -> dict:
    """Write `records` (a list of `ImageRecord`, named `split`, or {split: records}) to `out` in
    `format` ("coco", "bop", "kitti"); returns the manifest (also written to out/export_manifest.json).

    images: copy the images beside the annotations (BOP and KITTI as PNG; COCO keeps JPEGs); with False
        only the annotations are written and COCO's `file_name` is the record's image path.
    cad_root: the `<category>/NN.off` CAD folder of records from CAD collections (pascal3d, imagenet3d,
        objectnet3d); procedural records rebuild their mesh. BOP's models and KITTI's box sizes need it.
    mm_per_unit: millimetres per object unit (BOP; default 1000: one unit is a metre).
    metres_per_unit: metres per object unit (KITTI; default 1).
    max_ray_angle: KITTI skips (and counts) objects whose upright camera would see them further than
        this off its optical axis (radians; default 45°).
    """
    if format not in FORMATS:
        raise ValueError(f"export: format must be one of {', '.join(FORMATS)}, got {format!r}")
    for name, value in (("mm_per_unit", mm_per_unit), ("metres_per_unit", metres_per_unit)):
        if not (math.isfinite(float(value)) and float(value) > 0):  # inf would end in a half-written export
            raise ValueError(f"export: {name} must be a finite number > 0, got {value!r}")
    if not 0 < float(max_ray_angle) <= math.pi / 2:
        raise ValueError(f"export: max_ray_angle must be in (0, π/2] radians, got {max_ray_angle!r}")
    groups = split_groups(records, split)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the export folder is a file")
    if out.is_dir() and any(out.iterdir()):  # files of an earlier export would mix with this one's
        raise ValueError(f"{out}: the export folder is not empty (choose a new folder or remove it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.export-tmp"  # renamed to `out` once complete
    work.mkdir()
    try:
        manifest = _export(groups, work, format, strict, images, cad_root, mm_per_unit, metres_per_unit,
                           max_ray_angle)
        os.rename(work, out)  # onto an empty folder too (POSIX rename)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _export(groups, out: Path, format, strict, images, cad_root, mm_per_unit, metres_per_unit, max_ray_angle) -> dict:
    log = ExportLog(strict, images)
    if format == "coco":
        from .coco import write_coco

        summary = write_coco(groups, out, log)
    elif format == "bop":
        from .bop import write_bop

        summary = write_bop(groups, out, log, cad_root=cad_root, mm_per_unit=mm_per_unit)
    else:
        from .kitti import write_kitti

        summary = write_kitti(groups, out, log, cad_root=cad_root, metres_per_unit=metres_per_unit,
                              max_ray_angle=max_ray_angle)
    manifest = {"format": format, "splits": {k: v for k, v in summary.items() if k in groups},
                "records": {k: len(v) for k, v in groups.items()},
                "images_copied": bool(images), "skipped": dict(log.skipped), "problems": log.problems}
    if format == "bop":
        manifest["models"] = summary["models"]
        manifest["mm_per_unit"] = float(mm_per_unit)
    if format == "kitti":
        manifest["metres_per_unit"] = float(metres_per_unit)
        manifest["max_ray_angle_deg"] = math.degrees(max_ray_angle)
    write_json(out / MANIFEST, manifest)
    return manifest
