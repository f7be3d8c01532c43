"""`aware3d nemo train | eval | pose`: neural mesh models from the command line (see docs/nemo.md).

Registered in aware3d/cli.py; imports torch only when a handler runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def add_parser(sub) -> None:
    top = sub.add_parser("nemo", help="neural mesh models: train, evaluate, estimate pose (NeMo)",
                         description="NeMo: contrastive features matched to per-category neural meshes, "
                                     "render-and-compare pose estimation, and ImageNet3D's 2D baseline.")
    actions = top.add_subparsers(dest="nemo_action", metavar="<train | eval | pose | splits | incremental>")
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
    tr.add_argument("--out", required=True, help="run folder")
    tr.add_argument("--config", help="YAML config (keys: docs/nemo.md; omitted: the defaults)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one config key, e.g. --set train.steps=500 (repeatable)")
    tr.add_argument("--with-baseline", action="store_true",
                    help="also train the 2D baseline on the same data into <out>/baseline "
                         "(baseline.steps steps if the config sets them, else train.steps)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(func=run_train)

    ev = actions.add_parser("eval", help="evaluate a run (and the baseline) on records",
                            description="Writes <out>/metrics.json as {method: {split: {acc_pi6, acc_pi18, "
                                        "median_deg, cls_acc, n}}}, metrics_per_category.json, predictions.jsonl "
                                        "and report.html. Splits come from the records (clean, L1-L3, or "
                                        "extra['split']).")
    ev.add_argument("--run", required=True, help="NeMo run folder")
    ev.add_argument("--data", action="append", required=True, help="records folder (repeatable)")
    ev.add_argument("--out", required=True, help="output folder")
    ev.add_argument("--baseline-run", help="the baseline's run folder (default: <run>/baseline when it exists)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--no-fit-classify", action="store_true",
                    help="skip classification by fitting every category (slower with many categories)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=run_eval)

    sp = actions.add_parser("splits", help="generate OOD test splits next to a datagen training config",
                            description="Test splits derived from the training data's datagen config, each "
                                        "with fresh viewpoints and one change: clean/L1/L2/L3 occlusion, unseen "
                                        "CAD shapes (procedural sources: later seeds; file sources: the models "
                                        "the config's exclude list holds out), unseen textures (striped only), unseen "
                                        "backgrounds (photographs), high elevations, and the clean split with "
                                        "fog, snow, rain, motion blur or noise (kornia). Records carry "
                                        "extra['split'], so `nemo eval --data <out>/<split> ...` reports each.")
    sp.add_argument("--config", required=True, help="the training data's datagen YAML config")
    sp.add_argument("--out", required=True, help="folder; one records folder per split")
    sp.add_argument("--samples", type=int, help="samples per category (default: the config's)")
    sp.add_argument("--background-images", help="folder of photographs for the unseen_background split")
    sp.add_argument("--splits", nargs="+", help="a subset (default: all that the config allows)")
    sp.set_defaults(func=run_splits)

    po = actions.add_parser("pose", help="estimate category and pose of images",
                            description="One record per image (data3d records in --out) and an overlay "
                                        "picture with the object's box at the estimated pose. Images are "
                                        "scaled and padded to the run's crop size; the object is assumed "
                                        "to fill the image as in training.")
    po.add_argument("--run", required=True, help="run folder")
    po.add_argument("--images", nargs="+", required=True, help="image files or folders")
    po.add_argument("--out", required=True, help="output folder")
    po.add_argument("--category", help="the category of every image (default: classify)")
    po.add_argument("--focal", type=float, help="focal length in pixels of the input images (default: 2·max(H, W))")
    po.set_defaults(func=run_pose)


def _set_threads(config) -> None:
    import torch

    torch.set_num_threads(int(config["threads"]))


def run_train(args: argparse.Namespace) -> int:
    from nemo import load_config, train

    config = load_config(args.config, args.set)
    _set_threads(config)
    out = Path(args.out)
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
            parts.append(f"{method}/{split}: Acc@pi/6 {100 * m['acc_pi6']:.1f}%, Acc@pi/18 {100 * m['acc_pi18']:.1f}%, "
                         f"median {m['median_deg']:.1f} deg, cls {100 * m['cls_acc']:.1f}% (n={m['n']})")
    return "\n".join(parts)


def run_eval(args: argparse.Namespace) -> int:
    import nemo
    from nemo.data import load_record_folders

    model = nemo.load(args.run)
    _set_threads(model.config)
    models = {"nemo": model}
    baseline = args.baseline_run or (os.path.join(args.run, "baseline")
                                     if os.path.isfile(os.path.join(args.run, "baseline", "config.yaml")) else None)
    if baseline:
        models["baseline"] = nemo.load(baseline)
    records = load_record_folders(args.data, model.categories)
    metrics = nemo.evaluate(models, records, args.out, batch_size=args.batch_size,
                            classify_fit=not args.no_fit_classify, progress=not args.no_progress)
    print(_metrics_line(metrics))
    print(f"metrics: {os.path.join(args.out, 'metrics.json')}; report: {os.path.join(args.out, 'report.html')}")
    return 0


def run_splits(args: argparse.Namespace) -> int:
    from nemo.splits import CORRUPTIONS, GENERATED_SPLITS, make_ood_splits

    splits = args.splits or list(GENERATED_SPLITS + CORRUPTIONS)
    made = make_ood_splits(args.config, args.out, samples_per_category=args.samples,
                           background_images=args.background_images, splits=splits)
    for name, folder in made.items():
        print(f"{name}: {folder}")
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
    return files


def run_pose(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    import data3d
    import nemo
    from aware3d_utils import atomic_save
    from geom3d.pixels import resize_coordinate
    from nemo.report import box_corners, draw_pose

    model = nemo.load(args.run)
    _set_threads(model.config)
    Hc, Wc = model.config["data"]["crop_size"]
    out = Path(args.out)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    records, skipped = [], 0
    for path in _image_files(args.images):
        try:
            image = data3d.load_image(path)
        except data3d.AnnotationError as exc:  # one unreadable file does not stop the others
            print(f"skipped {path}: {exc}")
            skipped += 1
            continue
        H, W = image.shape[-2:]
        s = min(Hc / H, Wc / W)
        h, w = max(1, round(H * s)), max(1, round(W * s))
        canvas = torch.zeros(3, Hc, Wc)
        top, left = (Hc - h) // 2, (Wc - w) // 2
        canvas[:, top:top + h, left:left + w] = F.interpolate(image[None], size=(h, w), mode="bilinear",
                                                              antialias=True, align_corners=False)[0]
        f = (args.focal or 2.0 * max(H, W)) * s
        K = torch.tensor([[f, 0.0, left + resize_coordinate((W - 1) / 2, s)],
                          [0.0, f, top + resize_coordinate((H - 1) / 2, s)], [0.0, 0.0, 1.0]])
        result = model.estimate_pose(canvas[None], [args.category] if args.category else None, K=K)[0]
        vp = dict(result["viewpoint"])
        if model.bank is not None:
            corners = box_corners(model.bank.mesh(result["category"]))
        else:
            corners = box_corners(data3d.procedural.make(result["category"]))
            vp["distance"] = float(corners.norm(dim=-1).max()) * f / (0.35 * min(Hc, Wc))
        picture = draw_pose(canvas, corners, {"red": vp})
        atomic_save(out / "overlays" / f"{path.stem}.png",
                    lambda tmp, pic=picture: Image.fromarray(pic).save(tmp, format="PNG"))
        # back to the input image's pixels: undo the padding, then the scale
        full = dict(vp, focal=vp["focal"] / s, viewport=1.0,
                    px=resize_coordinate(vp["px"] - left, 1.0 / s), py=resize_coordinate(vp["py"] - top, 1.0 / s))
        obj = data3d.ObjectAnnotation(category=result["category"], bbox=(0.0, 0.0, W - 1.0, H - 1.0), viewpoint=full,
                                      extra={"score": float(result["score"]), "method": model.method})
        records.append(data3d.ImageRecord(image_path=path.resolve(), image_size=(H, W), objects=(obj,)))
        print(f"{path.name}: {result['category']} azimuth {vp['azimuth']:.2f} elevation {vp['elevation']:.2f} "
              f"theta {vp['theta']:.2f} (score {result['score']:.3f})")
    if records:
        data3d.save_records(records, out, shard="pose")
    print(f"{len(records)} records in {out}; overlays in {out / 'overlays'}; skipped {skipped}")
    return 0 if records else 2
