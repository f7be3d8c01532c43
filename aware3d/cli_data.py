"""`aware3d data`: look at a dataset, or export it to COCO, BOP or KITTI.

    aware3d data stats runs/ds                       # a records folder (datagen output, save_records)
    aware3d data stats --pascal3d PASCAL3D+_release1.1 --split train,val --out p3d_stats
    aware3d data show runs/ds --id 79fc66bcb10a7454 --out sample.png
    aware3d data show --pascal3d PASCAL3D+_release1.1 --id <image name> --cad-root PASCAL3D+_release1.1/CAD
    aware3d data export --format coco --in runs/ds --out ds_coco
    aware3d data export --format bop --pascal3d P3D --split val --cad-root P3D/CAD --out p3d_bop

`stats` prints counts per split, category and occlusion level, viewpoint histograms and the
truncation rate, and writes stats.json, stats.png and stats.html to --out. `show` writes one
record's image with its bbox, its projected CAD model (or cuboid) and object axes. `export` writes
the records as a COCO instances file, a BOP dataset or KITTI object labels (docs/data3d.md, "Export").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from methodkit.cli import add_out

from .cli import bounded

__all__ = ["add_parser"]

# --<flag>: (loader name in data3d, what it reads, whether it takes a split)
_LOADERS = {
    "pascal3d": ("load_pascal3d", "a raw PASCAL3D+ release", True),
    "pascal3d-nemo": ("load_pascal3d_nemo", "NeMo's preprocessed PASCAL3D+", False),
    "imagenet3d": ("load_imagenet3d", "an ImageNet3D release (or its preprocessed crops)", True),
    "objectnet3d": ("load_objectnet3d", "an ObjectNet3D release", True),
    "dst3d": ("load_dst3d", "a 3D-DST release (annotation/NNN.npy per model)", False),
}


def _source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("records", nargs="?", help="a records folder (records-*.npz|json shards) or one shard file")
    p.add_argument("--in", dest="records_in", metavar="RECORDS", help="the same as the RECORDS argument")
    for flag, (_, what, _) in _LOADERS.items():
        p.add_argument(f"--{flag}", metavar="ROOT", help=f"read {what} instead")
    p.add_argument("--split",
                   help="split(s), comma separated, or 'all': for the loaders that have them (default: val), and for "
                        "a records folder the records' extra['split'] tags (default: all)")
    p.add_argument("--categories", help="comma-separated categories to read (default: all)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("data", help="inspect a records folder or a dataset: statistics, annotated images",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="data_command", metavar="<stats|show|export>")
    sub.required = True
    stats = sub.add_parser("stats", help="counts, viewpoint histograms, truncation rate (table, PNG, HTML)",
                           description="Counts per split, category and occlusion level, viewpoint histograms "
                                       "(azimuth, elevation, in-plane, distance) and the truncation rate.")
    _source_arguments(stats)
    add_out(stats, "folder for stats.json/png/html (default: data-stats)", folder=True, default="data-stats")
    stats.set_defaults(func=run_stats)
    show = sub.add_parser("show", help="one record's image with its box, projected CAD or cuboid and axes",
                          description="Draw one record: its bbox, the CAD model projected with its camera "
                                      "(or the mesh bounds' cuboid) and the object axes (x red, y green, z blue).")
    _source_arguments(show)
    show.add_argument("--id", help="a sample id, an image name or an index (default: the first record)")
    show.add_argument("--cad-root", help="the CAD folder (<category>/NN.off) of real records' models")
    add_out(show, "the PNG to write (default: show-<image name>.png here)", required=False)
    show.set_defaults(func=run_show)
    export = sub.add_parser("export", help="write the records as COCO, BOP or KITTI files",
                            description="Write the records as a COCO instances file (boxes, masks as RLE, our 3D "
                                        "fields as extra keys), a BOP dataset (poses in mm, models, masks, depth) "
                                        "or KITTI object labels and calib files; export_manifest.json in --out "
                                        "counts what was written and skipped.")
    _source_arguments(export)
    export.add_argument("--format", required=True, choices=("coco", "bop", "kitti"), help="the format to write")
    add_out(export, "the folder to write", folder=True)
    export.add_argument("--split-name",
                        help="the split name of a records folder's records (COCO instances_<name>.json, BOP and "
                             "KITTI <name>/ folders; default: train); loaders keep their --split names")
    export.add_argument("--cad-root", help="bop, kitti: the CAD folder (<category>/NN.off) of real records' models "
                                           "(BOP models, KITTI box sizes)")
    export.add_argument("--mm-per-unit", type=bounded(float, 0, 1e9),
                        help="BOP: millimetres per object unit (default: 1000, one unit = one metre)")
    export.add_argument("--metres-per-unit", type=bounded(float, 0, 1e6),
                        help="KITTI: metres per object unit (default: 1)")
    export.add_argument("--max-ray-angle-deg", type=bounded(float, 0, 90),
                        help="KITTI: skip objects seen further than this off the optical axis, in degrees, in "
                             "(0, 90] (default: 45)")
    export.add_argument("--no-images", action="store_true",
                        help="write the annotations only (COCO's file_name is then the record's image path)")
    export.add_argument("--strict", action="store_true",
                        help="stop at the first bad record (default: skip it and count it in the manifest)")
    export.set_defaults(func=run_export)
    return parser


def _read(args) -> dict:
    """{split: records} from the arguments (a records folder or exactly one --<dataset> ROOT)."""
    import data3d

    chosen = [flag for flag in _LOADERS if getattr(args, flag.replace("-", "_")) is not None]
    if args.records is not None and args.records_in is not None:
        raise ValueError("give the records folder once (as an argument or with --in)")
    args.records = args.records if args.records is not None else args.records_in
    if len(chosen) + (args.records is not None) != 1:
        raise ValueError("give a records folder or exactly one of " + ", ".join(f"--{f}" for f in _LOADERS))
    categories = [c.strip() for c in args.categories.split(",") if c.strip()] if args.categories else None
    if args.categories is not None and not categories:
        raise ValueError(f"--categories {args.categories!r} names no category")
    if args.records is not None:
        return {Path(args.records).name or "records": _filter_records(data3d.load_records(args.records), args.records,
                                                                      categories, args.split)}
    flag = chosen[0]
    name, _, has_split = _LOADERS[flag]
    loader = getattr(data3d, name)
    root = getattr(args, flag.replace("-", "_"))
    kwargs = {}
    if categories:
        kwargs["categories"] = categories
    if not has_split:
        if args.split not in (None, "all"):
            raise ValueError(f"--split: {name[5:]} has no splits (got {args.split!r})")
        return {flag: loader(root, **kwargs)}
    split = args.split or "val"
    splits = [None] if split == "all" else [s.strip() for s in split.split(",") if s.strip()]
    return {s or "all": loader(root, split=s, **kwargs) for s in splits}


def _filter_records(records, where, categories, split):
    """The records (and objects) of `categories` and of the splits named in `split` (the records'
    extra['split'] tags; 'all' or None: every record); naming what is absent is an error."""
    from dataclasses import replace

    from data3d.record import RecordList

    original = records
    if categories:
        present = {o.category for r in records for o in r.objects}
        missing = sorted(set(categories) - present)
        if missing:
            raise ValueError(f"{where}: --categories {missing} not in the records (they hold {sorted(present)})")
        wanted = set(categories)
        kept = []
        for r in records:
            objects = tuple(o for o in r.objects if o.category in wanted)
            if objects:
                kept.append(r if len(objects) == len(r.objects) else replace(r, objects=objects))
        records = kept
    if split not in (None, "all"):
        names = {s.strip() for s in split.split(",") if s.strip()}
        tags = {str((r.extra or {}).get("split")) for r in records if (r.extra or {}).get("split") is not None}
        if not tags:
            raise ValueError(f"{where}: --split {split!r}: the records carry no split tags (extra['split']); "
                             "leave --split out")
        missing = sorted(names - tags)
        if missing:
            raise ValueError(f"{where}: --split {missing} not in the records (their splits: {sorted(tags)})")
        records = [r for r in records if str((r.extra or {}).get("split")) in names]
    return RecordList(records, getattr(original, "skipped", None))


def run_stats(args) -> int:
    from data3d.stats import dataset_stats, format_stats, write_stats_report

    groups = _read(args)
    stats = dataset_stats(groups)
    print(format_stats(stats))
    paths = write_stats_report(stats, args.out, title="aware3d data stats: " + ", ".join(groups))
    print(f"wrote {paths['png']} and {paths['html']}")
    return 0


def run_show(args) -> int:
    import cv2

    from aware3d_utils import atomic_save
    from data3d.show import draw_record, find_record

    if args.cad_root is not None and not Path(args.cad_root).is_dir():  # not a silent fall-back to the cuboid
        raise FileNotFoundError(f"--cad-root {args.cad_root}: no such folder")
    records = [r for group in _read(args).values() for r in group]
    index, record = find_record(records, args.id)
    image = draw_record(record, cad_root=args.cad_root)
    out = Path(args.out) if args.out else Path(f"show-{record.image_path.stem}.png")
    ok, buf = cv2.imencode(".png", image[..., ::-1].copy())
    if not ok:
        raise OSError(f"{out}: cannot encode the picture")
    atomic_save(out, lambda tmp: Path(tmp).write_bytes(buf.tobytes()))
    objs = ", ".join(f"{o.category} ({o.mesh_ref})" for o in record.objects)
    print(f"record {index}: {record.image_path} — {objs}\nwrote {out}")
    return 0


#: export's options that act with some formats only: (dest, flag, the formats, its default)
EXPORT_OPTIONS = (("mm_per_unit", "--mm-per-unit", ("bop",), 1000.0),
                  ("metres_per_unit", "--metres-per-unit", ("kitti",), 1.0),
                  ("max_ray_angle_deg", "--max-ray-angle-deg", ("kitti",), 45.0),
                  ("cad_root", "--cad-root", ("bop", "kitti"), None))


def _export_options(args) -> None:
    """An error for an option given with a format it does not act with (it would be ignored without a
    word), or out of its range; the others' defaults filled in."""
    for dest, flag, formats, default in EXPORT_OPTIONS:
        if getattr(args, dest) is None:
            setattr(args, dest, default)
        elif args.format not in formats:
            raise ValueError(f"{flag} only acts with --format {' or '.join(formats)} (got --format {args.format})")
    for dest, flag, _, _ in EXPORT_OPTIONS[:3]:  # bounded() lets 0 through: a scale or an angle of 0 is nothing
        if not getattr(args, dest) > 0:
            raise ValueError(f"{flag} must be > 0, got {getattr(args, dest):g}")
    if args.cad_root is not None and not Path(args.cad_root).is_dir():  # not a silent export without models
        problem = "is a file, not a folder" if Path(args.cad_root).exists() else "no such folder"
        raise FileNotFoundError(f"--cad-root {args.cad_root}: {problem}")


def run_export(args) -> int:
    import math

    from data3d.export import export_records

    _export_options(args)
    loader = next((flag for flag in _LOADERS if getattr(args, flag.replace("-", "_")) is not None), None)
    if loader is not None and _LOADERS[loader][2] and args.split_name is not None:  # it would be ignored
        raise ValueError(f"--split-name: --{loader} keeps its --split names (got --split-name {args.split_name!r})")
    groups = _read(args)
    if loader is None or not _LOADERS[loader][2]:  # a records folder, or a loader without splits
        name = "train" if args.split_name is None else args.split_name
        groups = {name: [r for recs in groups.values() for r in recs]}
    for name, recs in groups.items():
        if hasattr(recs, "summary"):
            print(f"{name}: read {recs.summary()}")
    manifest = export_records(groups, args.out, args.format, strict=args.strict, images=not args.no_images,
                              cad_root=args.cad_root,
                              mm_per_unit=args.mm_per_unit, metres_per_unit=args.metres_per_unit,
                              max_ray_angle=math.radians(args.max_ray_angle_deg))
    for name, counts in manifest["splits"].items():
        print(f"{name}: {counts['images']} images, {counts['objects']} objects")
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(manifest["skipped"].items())) or "none"
    print(f"skipped: {skipped}\nwrote {args.format.upper()} to {args.out} (see export_manifest.json)")
    return 0
