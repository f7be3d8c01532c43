"""`aware3d nemo train | eval | pose`: neural mesh models from the command line (see docs/nemo.md).

Registered in aware3d/cli.py. `train`'s flags that mirror config keys are generated from
`nemo.NemoConfig` (so building this parser imports nemo).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from aware3d_utils import IMAGE_SUFFIXES
from methodkit.cli import (
    add_config,
    add_no_progress,
    add_out,
    add_schema_flags,
    add_set,
    given_once,
    locked_out,
    refuse_out_among_inputs,
    schema_values,
)
from nemo.config import NemoConfig

from .cli import bounded

SEARCH_HELP = ("change the run's pose search, e.g. --set pose.elevation_range=[-10,35] (pose.* keys only: "
               "docs/nemo.md; repeatable; the baseline of nemo eval gets the same prior)")


def add_parser(sub) -> None:
    top = sub.add_parser("nemo", help="neural mesh models: train, evaluate, estimate pose (NeMo)",
                         description="NeMo: contrastive features matched to per-category neural meshes, "
                                     "render-and-compare pose estimation, and ImageNet3D's 2D baseline.")
    actions = top.add_subparsers(dest="nemo_action",
                                 metavar="<train | eval | pose | splits | incremental | incremental-summary>")
    actions.required = True
    from .cli_inemo import add_incremental_parser  # iNeMo (class-incremental), its own module

    add_incremental_parser(actions)

    tr = actions.add_parser("train", help="train NeMo (and optionally the 2D baseline) into a run folder",
                            description="Train from data3d record folders into --out (config.yaml, log.jsonl, "
                                        "checkpoints/*.safetensors, loss.png, manifest.json). A folder with a "
                                        "checkpoint resumes. --data may also be a datagen YAML config: every "
                                        "epoch then trains on a fresh round of samples rendered into "
                                        "<out>/fresh/round_<epoch> (the last two rounds are kept).")
    tr.add_argument("--data", action="append", required=True, help="records folder or datagen config (repeatable)")
    add_out(tr, "run folder", folder=True)
    add_config(tr, "YAML config (keys: docs/nemo.md; omitted: the defaults)")
    add_set(tr, "override one config key, e.g. --set train.steps=500 (repeatable)")
    add_schema_flags(tr, NemoConfig)  # --seed, --threads, --device: the config keys, after --set
    tr.add_argument("--with-baseline", action="store_true",
                    help="also train the 2D baseline on the same data into <out>/baseline "
                         "(baseline.steps steps if the config sets them, else train.steps)")
    add_no_progress(tr)
    tr.set_defaults(func=run_train)

    ev = actions.add_parser("eval", help="evaluate a run (and the baseline) on records",
                            description="Writes <out>/metrics.json as {method: {split: {acc_pi6, acc_pi18, "
                                        "median_deg, cls_acc, n}}}, metrics_per_category.json, predictions.jsonl "
                                        "and report.html. Splits come from the records (clean, L1-L3, or "
                                        "extra['split']).")
    ev.add_argument("--run", required=True, help="NeMo run folder")
    ev.add_argument("--data", action="append", required=True, help="records folder (repeatable)")
    add_out(ev, "output folder", folder=True)
    ev.add_argument("--baseline-run", help="the baseline's run folder (default: <run>/baseline when it exists)")
    ev.add_argument("--batch-size", type=bounded(int, 1, 4096), default=16)
    ev.add_argument("--jittered-boxes", action="store_true",
                    help="also evaluate crops from jittered boxes (centre ±10%%, sides ±10%%), "
                         "into <out>/jittered_boxes")
    ev.add_argument("--no-fit-classify", action="store_true",
                    help="skip classification by fitting every category (slower with many categories)")
    add_set(ev, SEARCH_HELP)
    add_no_progress(ev)
    ev.set_defaults(func=run_eval)

    sp = actions.add_parser("splits", help="generate OOD test splits next to a datagen training config",
                            description="Test splits derived from the training data's datagen config, each "
                                        "with fresh viewpoints and one change: clean/L1/L2/L3 occlusion, unseen "
                                        "CAD shapes (procedural sources: later seeds; file sources: the models "
                                        "the config's exclude list holds out), unseen textures (striped only), unseen "
                                        "backgrounds (photographs), high elevations, and the clean split with "
                                        "fog, snow, rain, motion blur or noise (kornia). Records carry "
                                        "extra['split'], so `nemo eval --data <out>/<split> ...` reports each.")
    add_config(sp, "the training data's datagen YAML config", required=True)
    add_out(sp, "folder; one records folder per split", folder=True)
    sp.add_argument("--samples", type=bounded(int, 1, 10**6),
                    help="samples per category, at most 10^6 (default: the config's)")
    sp.add_argument("--background-images", help="folder of photographs for the unseen_background split")
    sp.add_argument("--splits", nargs="+", help="a subset (default: all that the config allows)")
    sp.set_defaults(func=run_splits)

    po = actions.add_parser("pose", help="estimate category and pose of objects in photographs",
                            description="One record per image (data3d records in --out, one object per box) "
                                        "and an overlay picture with each object's box at its estimated pose. "
                                        "With --boxes or --detector every box is cropped as training crops "
                                        "objects; without, the image is scaled and padded to the run's crop "
                                        "size and the object is assumed to fill it as in training.")
    po.add_argument("--run", required=True, help="run folder")
    po.add_argument("--images", nargs="+", required=True, help="image files or folders")
    add_out(po, "output folder", folder=True)
    po.add_argument("--category", help="the category of every image (default: classify)")
    po.add_argument("--focal", type=bounded(float, 1e-3, 1e7),
                    help="focal length in pixels of the input images (> 0; default: 2·max(H, W))")
    where = po.add_mutually_exclusive_group()
    where.add_argument("--boxes", help="JSON file: {image file name: [[x0, y0, x1, y1], ...]} (pixels of the "
                                       "upright image, EXIF orientation applied; several objects per image)")
    where.add_argument("--detector", help="a zero-shot text-prompted detector from transformers (model id or "
                                          "local folder, e.g. google/owlv2-base-patch16-ensemble), prompted "
                                          "with the category, or the COCO CenterNet's model.json (make "
                                          "pretrained: pretrained/centernet/centernet.json; no model hub)")
    po.add_argument("--threshold", type=bounded(float, 0, 1),
                    help="the detector's score threshold in [0, 1] (default 0.1; only with --detector)")
    add_set(po, SEARCH_HELP)
    po.set_defaults(func=run_pose)


def _with_run(args: argparse.Namespace, command) -> int:
    """`command(args, model)` with the --run's model, under its config's torch thread count (the caller's
    comes back after)."""
    import nemo
    from aware3d_utils import torch_threads

    model = nemo.load(args.run, pose_search=args.set)
    with torch_threads(model.config.threads):
        return command(args, model)


def _box_corners(model, category: str):
    """The box drawn for an estimate: the model's mesh, else (the baseline has none) the procedural shape's."""
    import data3d
    from nemo.report import box_corners

    bank = getattr(model, "bank", None)
    return box_corners(bank.mesh(category) if bank is not None else data3d.procedural.make(category))


def _check_category(args: argparse.Namespace, model) -> None:
    if args.category is not None and args.category not in model.categories:
        raise ValueError(f"--category {args.category!r}: the run knows {model.categories}")


def train_config(args: argparse.Namespace) -> dict:
    """The resolved training config: --config, then each --set, then the schema flags (--seed ...)."""
    from nemo import load_config

    return load_config(args.config, [*args.set, schema_values(args)])


def run_train(args: argparse.Namespace) -> int:
    from nemo import train

    config = train_config(args)
    if args.with_baseline and config["method"] == "baseline":  # it would train the same baseline twice
        raise ValueError("--with-baseline: the config's method is the baseline already (method: baseline)")
    out = Path(args.out)  # nemo.train runs with the config's threads
    data = args.data  # a datagen YAML config among them: fresh samples every epoch (nemo.fresh)
    run = train(data, out, config, progress=not args.no_progress)
    method = "the 2D baseline" if config["method"] == "baseline" else "NeMo"
    print(f"{run.path}: {method} trained ({run.read_json('manifest.json')['step']} steps)")
    if args.with_baseline:
        base = train(data, out / "baseline", dict(config, method="baseline"), progress=not args.no_progress)
        print(f"{base.path}: baseline trained")
    return 0


def _metrics_line(metrics: dict) -> str:
    parts = []
    for method, per in metrics.items():
        for split, m in per.items():
            flips = f", flips {100 * m['flip_rate']:.1f}%" if "flip_rate" in m else ""
            parts.append(f"{method}/{split}: Acc@pi/6 {100 * m['acc_pi6']:.1f}%, Acc@pi/18 {100 * m['acc_pi18']:.1f}%, "
                         f"median {m['median_deg']:.1f} deg{flips}, cls {100 * m['cls_acc']:.1f}% (n={m['n']})")
    return "\n".join(parts)


def run_eval(args: argparse.Namespace) -> int:
    refuse_out_among_inputs(args.out, {"--run": args.run, "--data": args.data, "--baseline-run": args.baseline_run})
    jittered = os.path.join(args.out, "jittered_boxes")
    if args.jittered_boxes and os.path.exists(jittered) and not os.path.isdir(jittered):  # found only at the end
        raise ValueError(f"--jittered-boxes writes the folder {jittered}, which is a file; move it or give another "
                         "--out")
    with locked_out(args.out, "nemo evaluation"):
        return _with_run(args, _run_eval)


def _run_eval(args: argparse.Namespace, model) -> int:
    import nemo
    from nemo.data import load_record_folders

    models = {model.method: model}  # a baseline run's numbers are reported as the baseline's
    baseline = args.baseline_run or (os.path.join(args.run, "baseline")
                                     if os.path.isfile(os.path.join(args.run, "baseline", "config.yaml")) else None)
    if baseline and model.method == "baseline":
        raise nemo.NemoError("--run is a run of the 2D baseline; give a NeMo run with --baseline-run, or evaluate "
                             "the baseline alone without it", baseline)
    if baseline:
        models["baseline"] = nemo.load(baseline, pose_search=args.set)
        if models["baseline"].method != "baseline":  # its numbers would be reported as the baseline's
            raise nemo.NemoError(f"--baseline-run: is a run of method {models['baseline'].method!r}, not of the 2D "
                                 f"baseline (nemo train --set method=baseline, or --with-baseline)", baseline)
    counts: dict = {}
    records = load_record_folders(args.data, model.categories, counts)
    if counts.get("dropped_objects"):
        print(f"not evaluated: {sum(counts['dropped_objects'].values())} objects of categories the run does not know "
              f"({counts['dropped_objects']})")
    metrics = nemo.evaluate(models, records, args.out, batch_size=args.batch_size,
                            classify_fit=not args.no_fit_classify, progress=not args.no_progress)
    print(_metrics_line(metrics))
    print(f"metrics: {os.path.join(args.out, 'metrics.json')}; report: {os.path.join(args.out, 'report.html')}")
    if args.jittered_boxes:
        jittered = os.path.join(args.out, "jittered_boxes")
        metrics = nemo.evaluate(models, records, jittered, batch_size=args.batch_size,
                                classify_fit=not args.no_fit_classify, progress=not args.no_progress,
                                box_jitter={"shift": 0.1, "scale": 0.1})
        print("crops from jittered boxes:")
        print(_metrics_line(metrics))
        print(f"metrics: {os.path.join(jittered, 'metrics.json')}")
    return 0


def run_splits(args: argparse.Namespace) -> int:
    from nemo.splits import CORRUPTIONS, GENERATED_SPLITS, make_ood_splits

    known = list(GENERATED_SPLITS + CORRUPTIONS)
    for k, name in enumerate(args.splits or []):  # named by the flag, before the config is read
        if name not in known:
            raise ValueError(f"--splits: unknown split {name!r}; known: {', '.join(known)}")
        if name in args.splits[:k]:
            raise ValueError(f"--splits: {name!r} is given twice; give each split once")
    if args.splits and "unseen_background" in args.splits and args.background_images is None:
        raise ValueError("--splits unseen_background needs --background-images (a folder of photographs)")
    if args.background_images is not None:
        if args.splits and "unseen_background" not in args.splits:  # it would be ignored without a word
            raise ValueError("--background-images only acts with the unseen_background split (add it to --splits)")
        from datagen.randomize import list_images

        try:
            list_images(args.background_images)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--background-images: {exc}") from None
    splits = args.splits or known
    made = make_ood_splits(args.config, args.out, samples_per_category=args.samples,
                           background_images=args.background_images, splits=splits)
    for name, folder in made.items():
        print(f"{name}: {folder}")
    if args.splits:
        missed = [name for name in args.splits if name not in made]
        if missed and not made:
            raise ValueError(f"--splits: none of {missed} can be made from {args.config} (unseen_cad needs a "
                             "procedural source or an exclude list)")
        if missed:
            print(f"not made: {', '.join(missed)} (this config holds nothing out for them)")
    return 0


def _image_files(items: list[str]) -> list[Path]:
    files = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    if not files:
        raise ValueError(f"no images in {items}")
    return given_once("--images", files)  # one photo twice would be two records of it


def _overlay_names(files: list[Path]) -> dict[Path, str]:
    """Each image's overlay file name: its stem, numbered (stem_2, ...) where images of other folders share it,
    so that no overlay overwrites another."""
    names: dict[Path, str] = {}
    used: set[str] = set()
    for path in files:
        name, k = path.stem, 1
        while name in used:
            k += 1
            name = f"{path.stem}_{k}"
        used.add(name)
        names[path] = f"{name}.png"
    return names


def _read_boxes(path: str) -> dict[str, list]:
    """--boxes: {image file name (or path as given): [[x0, y0, x1, y1], ...]}."""
    import json

    from nemo import NemoError

    def unique(pairs):  # JSON keeps the last of two equal names without a word: one image's boxes would be lost
        names = [k for k, _ in pairs]
        twice = [k for i, k in enumerate(names) if k in names[:i]]
        if twice:
            raise NemoError(f"{twice[0]!r} is given twice; give each image's boxes once", path)
        return dict(pairs)

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh, object_pairs_hook=unique)
    except OSError as exc:
        raise NemoError(f"cannot read the boxes: {exc.strerror}", path) from None
    except NemoError:
        raise
    except ValueError as exc:
        raise NemoError(f"not valid JSON: {exc}", path) from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise NemoError("the boxes file must map image file names to lists of [x0, y0, x1, y1]", path)
    for name, boxes in data.items():
        if not all(isinstance(b, list) and len(b) == 4 for b in boxes):
            raise NemoError(f"{name!r}: every box is [x0, y0, x1, y1]", path)
        for k, b in enumerate(boxes):  # the values too: a NaN, a string or true would only fail (or pass) later
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in b):
                raise NemoError(f"{name!r}: box {k} must be four finite numbers [x0, y0, x1, y1], got {b!r}", path)
            if not (b[2] > b[0] and b[3] > b[1]):
                raise NemoError(f"{name!r}: box {k} must have x0 < x1 and y0 < y1, got {b!r}", path)
    return data


def _boxes_for(table: dict, path: Path, where: str = "--boxes") -> list | None:
    keys = [key for key in dict.fromkeys((str(path), path.name, path.stem)) if key in table]
    if len(keys) > 1:  # which of them would win is no rule a user could know
        raise ValueError(f"{where}: {' and '.join(repr(k) for k in keys)} both name the image {path}; give its "
                         "boxes once")
    return table[keys[0]] if keys else None


def _unused_box_names(table: dict, files: list[Path]) -> list[str]:
    """The --boxes names that name none of the images (a typo, or an image not given)."""
    used = {key for path in files for key in (str(path), path.name, path.stem)}
    return [name for name in table if name not in used]


def _orientation_note(path: Path) -> dict:
    """{"exif_orientation": k} when the file's EXIF orientation k turned the image (the record's size and
    pose are of the upright image, not of the stored pixels), else {}."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            k = int(im.getexif().get(0x0112, 1))
    except (OSError, ValueError, TypeError):
        return {}
    return {"exif_orientation": k} if 2 <= k <= 8 else {}  # 1 and values outside EXIF's 1-8 turn nothing


def run_pose(args: argparse.Namespace) -> int:
    if args.threshold is not None and not args.detector:  # it would be ignored without a word
        raise ValueError("--threshold only acts with --detector")
    refuse_out_among_inputs(args.out, {"--images": args.images, "--run": args.run})
    with locked_out(args.out, "nemo pose"):
        return _with_run(args, _run_pose_in_boxes if args.boxes or args.detector else _run_pose_whole_image)


def _run_pose_in_boxes(args: argparse.Namespace, model) -> int:
    import torch
    from PIL import Image

    import data3d
    import nemo
    from aware3d_utils import atomic_save
    from geom3d.pixels import resize_coordinate
    from nemo.photo import detect, estimate_in_boxes, load_detector
    from nemo.report import draw_pose

    if args.category is None and args.detector:
        raise nemo.NemoError("--detector needs --category (the text prompt)")
    _check_category(args, model)
    if args.focal is not None and not (args.focal > 0 and args.focal < float("inf")):
        raise nemo.NemoError(f"--focal must be a positive number of pixels, got {args.focal}")
    table = _read_boxes(args.boxes) if args.boxes else None
    detector = load_detector(args.detector) if args.detector else None
    files = _image_files(args.images)
    if table is not None:
        for path in files:
            _boxes_for(table, path, args.boxes)
        unused = _unused_box_names(table, files)
        if not table:
            raise nemo.NemoError("holds no boxes (an empty mapping)", args.boxes)
        if len(unused) == len(table):
            raise nemo.NemoError(f"names none of the --images ({', '.join(repr(n) for n in unused[:3])}"
                                 f"{', ...' if len(unused) > 3 else ''}); boxes are keyed by the image's file name, "
                                 "its stem or its path as given", args.boxes)
        if unused:
            print(f"not used: {len(unused)} entries of {args.boxes} name none of the --images "
                  f"({', '.join(repr(n) for n in unused[:3])}{', ...' if len(unused) > 3 else ''})")
    overlay = _overlay_names(files)
    out = Path(args.out)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    records, skipped, first_skip = [], 0, None
    for path in files:
        try:
            image = data3d.load_image(path, exif_transpose=True)  # boxes are given on the upright photo
        except data3d.AnnotationError as exc:  # one unreadable file does not stop the others
            print(f"skipped {path}: {exc}")
            skipped += 1
            first_skip = first_skip or (str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            continue
        H, W = image.shape[-2:]
        if table is not None:
            boxes = _boxes_for(table, path)
            if boxes is None:
                print(f"skipped {path}: no boxes for it in {args.boxes}")
                skipped += 1
                first_skip = first_skip or f"{path}: no boxes for it in {args.boxes}"
                continue
        else:
            boxes = [d.box for d in detect(image, detector, [args.category],
                                           threshold=0.1 if args.threshold is None else args.threshold)]
        if not boxes:
            print(f"{path.name}: no {args.category} found")
            records.append(data3d.ImageRecord(image_path=path.resolve(), image_size=(H, W), objects=(),
                                              extra=_orientation_note(path)))
            continue
        try:
            results = estimate_in_boxes(model, image, boxes, args.category, args.focal)
        except nemo.NemoError as exc:
            print(f"skipped {path}: {exc}")
            skipped += 1
            first_skip = first_skip or (str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            continue
        # the overlay at most 960 px wide: the image and the viewpoints scaled alike
        s = min(1.0, 960.0 / max(H, W))
        small = torch.nn.functional.interpolate(image[None], scale_factor=s, mode="bilinear", antialias=True,
                                                align_corners=False)[0] if s < 1 else image
        shown = {}
        objs = []
        for k, r in enumerate(results):
            vp = r.viewpoint_dict()
            corners = _box_corners(model, r.category)
            if getattr(model, "bank", None) is None:  # no distance: the procedural shape at the crop's fill
                x0, y0, x1, y1 = r.box
                vp["distance"] = float(corners.norm(dim=-1).max()) * vp["focal"] * vp["viewport"] / (
                    0.5 * max(x1 - x0, y1 - y0))
            shown[k] = (corners, dict(vp, focal=vp["focal"] * s, px=resize_coordinate(vp["px"], s),
                                      py=resize_coordinate(vp["py"], s)))
            objs.append(data3d.ObjectAnnotation(category=r.category, bbox=r.box, viewpoint=vp,
                                                extra={"score": r.score, "method": model.method}))
            print(f"{path.name} box {k}: {r.category} azimuth {vp['azimuth']:.2f} elevation {vp['elevation']:.2f} "
                  f"theta {vp['theta']:.2f} (score {r.score:.3f})")
        picture = small
        for corners, vp in shown.values():
            picture = torch.from_numpy(draw_pose(picture, corners, {"red": vp}).copy()).permute(2, 0, 1).float() / 255.0
            picture = torch.nn.functional.interpolate(picture[None], size=small.shape[-2:], mode="area")[0]
        arr = (picture.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
        atomic_save(out / "overlays" / overlay[path], lambda tmp, a=arr: Image.fromarray(a).save(tmp, format="PNG"))
        records.append(data3d.ImageRecord(image_path=path.resolve(), image_size=(H, W), objects=tuple(objs),
                                          extra=_orientation_note(path)))
    return _save_pose_records(records, out, skipped, "used", first_skip)


def _run_pose_whole_image(args: argparse.Namespace, model) -> int:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    import data3d
    from aware3d_utils import atomic_save
    from geom3d.pixels import resize_coordinate
    from nemo.report import draw_pose

    _check_category(args, model)
    Hc, Wc = model.config.data.crop_size
    files = _image_files(args.images)
    overlay = _overlay_names(files)
    out = Path(args.out)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    records, skipped, first_skip = [], 0, None
    for path in files:
        try:  # upright as the camera's EXIF orientation says (the record keeps the turned size)
            image = data3d.load_image(path, exif_transpose=True)
        except data3d.AnnotationError as exc:  # one unreadable file (or one too large) does not stop the others
            print(f"skipped {path}: {exc}")
            skipped += 1
            first_skip = first_skip or (str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            continue
        H, W = image.shape[-2:]
        s = min(Hc / H, Wc / W)
        h, w = max(1, round(H * s)), max(1, round(W * s))
        canvas = torch.zeros(3, Hc, Wc)
        top, left = (Hc - h) // 2, (Wc - w) // 2
        canvas[:, top:top + h, left:left + w] = F.interpolate(image[None], size=(h, w), mode="bilinear",
                                                              antialias=True, align_corners=False)[0]
        f = (args.focal if args.focal is not None else 2.0 * max(H, W)) * s
        K = torch.tensor([[f, 0.0, left + resize_coordinate((W - 1) / 2, s)],
                          [0.0, f, top + resize_coordinate((H - 1) / 2, s)], [0.0, 0.0, 1.0]])
        result = model.estimate_pose(canvas[None], K=K, categories=[args.category] if args.category else None)[0]
        vp = result.viewpoint_dict()
        corners = _box_corners(model, result.category)
        if getattr(model, "bank", None) is None:
            vp["distance"] = float(corners.norm(dim=-1).max()) * f / (0.35 * min(Hc, Wc))
        picture = draw_pose(canvas, corners, {"red": vp})
        atomic_save(out / "overlays" / overlay[path],
                    lambda tmp, pic=picture: Image.fromarray(pic).save(tmp, format="PNG"))
        # back to the input image's pixels: undo the padding, then the scale
        full = dict(vp, focal=vp["focal"] / s, viewport=1.0,
                    px=resize_coordinate(vp["px"] - left, 1.0 / s), py=resize_coordinate(vp["py"] - top, 1.0 / s))
        obj = data3d.ObjectAnnotation(category=result.category, bbox=(0.0, 0.0, W - 1.0, H - 1.0), viewpoint=full,
                                      extra={"score": result.score, "method": model.method})
        records.append(data3d.ImageRecord(image_path=path.resolve(), image_size=(H, W), objects=(obj,),
                                          extra=_orientation_note(path)))
        print(f"{path.name}: {result.category} azimuth {vp['azimuth']:.2f} elevation {vp['elevation']:.2f} "
              f"theta {vp['theta']:.2f} (score {result['score']:.3f})")
    return _save_pose_records(records, out, skipped, "read", first_skip)


def _save_pose_records(records: list, out: Path, skipped: int, failure: str, first_skip: str | None = None) -> int:
    """Write `nemo pose`'s records (an error when no image could be `failure`: read / used, naming the first
    image's reason) and say what."""
    import data3d

    if not records:
        first = f" (the first: {first_skip})" if first_skip else " (see the skipped lines above)"
        raise ValueError(f"none of the {skipped} images could be {failure}{first}; nothing written to {out}")
    data3d.save_records(records, out, shard="pose")
    objects = sum(len(r.objects) for r in records)
    print(f"{objects} objects in {len(records)} records in {out}; overlays in {out / 'overlays'}; skipped {skipped}")
    return 0
