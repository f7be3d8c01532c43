"""The `aware3d` command: one subcommand per capability, `--help` everywhere."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import DEMO_CATEGORIES


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    out = run_demo(args.out, views=args.views, categories=args.categories, dataset=not args.no_dataset)
    print(f"demo written to {out}: contact_sheet.png, annotations/"
          + ("" if args.no_dataset else ", dataset/preview.html"))
    return 0


def _datagen(args: argparse.Namespace) -> int:
    """`aware3d datagen`: generate or resume a dataset (the sub-actions filter / preview below)."""
    from datagen.config import DEFAULT_CONFIG_PATH, load_config, parse_override

    if args.print_defaults:  # the file itself: every key with its comment
        print(DEFAULT_CONFIG_PATH.read_text(), end="")
        return 0
    if not args.out:
        raise ValueError("--out is required (the dataset folder; an existing one is resumed)")
    overrides: dict = {}
    for text in args.set or []:
        overrides = _deep_merge(overrides, parse_override(text))
    config = load_config(args.config, overrides=overrides or None)
    from datagen.pipeline import generate
    from datagen.preview import write_preview

    manifest = generate(config, args.out, shard=args.shard, workers=args.workers, ray=args.ray,
                        ray_address=args.ray_address, progress=not args.no_progress)
    skipped = ", ".join(f"{k}: {v}" for k, v in manifest["skipped"].items()) or "none"
    state = "complete" if manifest["complete"] else f"{manifest['chunks_done']}/{manifest['chunks']} chunks"
    print(f"{args.out}: {manifest['images']} images ({state}); skipped: {skipped}")
    if manifest["complete"] and not args.no_preview:
        print(f"preview: {write_preview(args.out)}")
    return 0


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _datagen_filter(args: argparse.Namespace) -> int:
    """`aware3d datagen filter`: 3D-DST's K-fold consistency filter (datagen.filtering.filter_dataset)."""
    from datagen.config import read_yaml

    try:
        from datagen.filtering import filter_dataset
    except ImportError as exc:
        raise ImportError(f"datagen.filtering is not available: {exc}") from exc
    options = {"k": args.k, "keep_ratio": args.keep_ratio, "loss_threshold": args.loss_threshold,
               "max_mads": args.max_mads, "progress": not args.no_progress}
    options = {k: v for k, v in options.items() if v is not None}
    for text in args.option or []:
        if "=" not in text:
            raise ValueError(f"--option expects name=value, got {text!r}")
        name, value = text.split("=", 1)
        options[name.strip()] = read_yaml(value)
    if args.out is not None and os.path.abspath(args.out) == os.path.abspath(args.input):
        raise ValueError("--out must differ from --in (load_records reads every shard of a folder)")
    try:
        result = filter_dataset(args.input, out=args.out, **options)
    except TypeError as exc:  # an --option the filter does not take
        raise ValueError(f"datagen filter: {exc}") from None
    summary = result.summary()
    print(f"kept {summary['kept']} of {summary['samples']} samples; scores in {os.path.join(args.input, 'kcf')}"
          + (f"; kept records in {args.out}" if args.out else ""))
    return 0


def _datagen_preview(args: argparse.Namespace) -> int:
    from datagen.preview import write_preview

    print(write_preview(args.input, max_images=args.max_images))
    return 0


def _add_datagen(sub) -> None:
    gen = sub.add_parser(
        "datagen", help="generate a 3D-annotated image dataset (3D-DST)",
        description="Render CAD models at sampled viewpoints and write images with exact 3D annotations "
                    "(data3d records): domain-randomised renders, or ControlNet images from edge maps. "
                    "Re-running on a folder that holds a partial run resumes it. "
                    "Sub-actions: `aware3d datagen filter ...`, `aware3d datagen preview ...`.")
    gen.add_argument("--config", help="YAML config (keys: see --print-defaults / docs/datagen.md); "
                                      "omitted: the defaults")
    gen.add_argument("--out", help="dataset folder (created, or resumed when it holds a partial run)")
    gen.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override one config key, e.g. --set samples_per_category=10 (repeatable)")
    gen.add_argument("--shard", metavar="K/N", help="run only chunks c with c %% N == K (e.g. 0/4)")
    gen.add_argument("--workers", type=_positive_int,
                     help="worker processes on this machine (default: config `workers`)")
    gen.add_argument("--ray", action="store_true", help="run the chunks as Ray tasks")
    gen.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.add_argument("--no-preview", action="store_true", help="do not write preview.html at the end")
    gen.add_argument("--print-defaults", action="store_true", help="print the default config and exit")
    gen.set_defaults(func=_datagen)
    actions = gen.add_subparsers(dest="datagen_action", metavar="[filter | preview]")
    flt = actions.add_parser("filter", help="K-fold consistency filter over a generated dataset",
                             description="3D-DST's K-fold consistency filter: train a pose classifier on K-1 "
                                         "folds, score the held-out fold, keep samples by a keep ratio per "
                                         "category, a loss threshold or a robust outlier rule. Writes "
                                         "<in>/kcf/scores.json and kept.txt (datagen.filtering.filter_dataset; "
                                         "every option in docs/datagen-generation.md).")
    flt.add_argument("--in", dest="input", required=True, help="dataset folder (data3d records)")
    flt.add_argument("--out", help="a new folder for the kept records (their image paths point into --in)")
    flt.add_argument("--k", type=int, help="number of folds (default 5)")
    flt.add_argument("--keep-ratio", type=float, help="fraction kept per category")
    flt.add_argument("--loss-threshold", type=float, help="keep samples whose held-out loss is below this")
    flt.add_argument("--max-mads", type=float, help="keep samples within this many MADs of the category median")
    flt.add_argument("--option", action="append", metavar="NAME=VALUE",
                     help="another keyword argument of kfold_filter, value in YAML (e.g. epochs=20; repeatable)")
    flt.add_argument("--no-progress", action="store_true", help="no progress bar")
    flt.set_defaults(func=_datagen_filter)
    pre = actions.add_parser("preview", help="(re)write preview.html of a dataset folder")
    pre.add_argument("--in", dest="input", required=True, help="dataset folder")
    pre.add_argument("--max-images", type=int, default=48, help="images in the grid (default 48)")
    pre.set_defaults(func=_datagen_preview)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aware3d", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    sub.required = True

    demo = sub.add_parser("demo", help="run the main job on a small built-in example",
                          description="Render procedural objects of several categories and their NeMo cuboids "
                                      "from a ring of PASCAL3D+ viewpoints with the GL renderer (contact sheet with "
                                      "shaded colour, depth and mask; one annotation per view), then generate a "
                                      "small 3D-DST dataset with an HTML preview.")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--views", type=int, default=8, help="viewpoints on the ring per category (default: 8)")
    demo.add_argument("--categories", nargs="+", default=list(DEMO_CATEGORIES), metavar="NAME",
                      help=f"procedural categories (default: {' '.join(DEMO_CATEGORIES)})")
    demo.add_argument("--no-dataset", action="store_true", help="skip the 3D-DST dataset step")
    demo.set_defaults(func=_demo)

    _add_datagen(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"aware3d {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
