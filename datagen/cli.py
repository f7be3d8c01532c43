"""`aware3d datagen` (generate or resume a dataset), `aware3d datagen filter` and `aware3d datagen preview`.

Registered in aware3d/cli.py; imports nothing heavy until a handler runs.
"""

from __future__ import annotations

import argparse
import os

from methodkit.cli import add_config, add_no_progress, add_out, add_set, int_type


def add_parser(sub) -> None:
    gen = sub.add_parser(
        "datagen", help="generate a 3D-annotated image dataset (3D-DST)",
        description="Render CAD models at sampled viewpoints and write images with exact 3D annotations "
                    "(data3d records): domain-randomised renders, or ControlNet images from edge maps. "
                    "Re-running on a folder that holds a partial run resumes it; a folder another run is "
                    "writing is refused. Sub-actions: `aware3d datagen filter ...`, `aware3d datagen preview ...`.")
    add_config(gen, "YAML config (keys: see --print-defaults / docs/datagen.md); omitted: the defaults")
    add_out(gen, "dataset folder (created, or resumed when it holds a partial run)", required=False)
    add_set(gen, "override one config key, e.g. --set samples_per_category=10 (repeatable)")
    gen.add_argument("--shard", metavar="K/N", help="run only chunks c with c %% N == K (e.g. 0/4)")
    gen.add_argument("--workers", type=int_type(1),
                     help="worker processes on this machine (default: config `workers`)")
    gen.add_argument("--ray", action="store_true", help="run the chunks as Ray tasks")
    gen.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local one)")
    add_no_progress(gen)
    gen.add_argument("--no-preview", action="store_true", help="do not write preview.html at the end")
    gen.add_argument("--print-defaults", action="store_true", help="print the default config and exit")
    gen.set_defaults(func=run_generate)
    actions = gen.add_subparsers(dest="datagen_action", metavar="[filter | preview]")
    flt = actions.add_parser("filter", help="K-fold consistency filter over a generated dataset",
                             description="3D-DST's K-fold consistency filter: train a pose classifier on K-1 "
                                         "folds, score the held-out fold, keep samples by a keep ratio per "
                                         "category, a loss threshold or a robust outlier rule. Writes "
                                         "<in>/kcf/scores.json and kept.txt (datagen.filtering.filter_dataset; "
                                         "every option in docs/datagen-generation.md).")
    flt.add_argument("--in", dest="input", required=True, help="dataset folder (data3d records)")
    add_out(flt, "a new folder for the kept records (their image paths point into --in)", required=False)
    flt.add_argument("--k", type=int, help="number of folds (default 5)")
    flt.add_argument("--keep-ratio", type=float, help="fraction kept per category")
    flt.add_argument("--loss-threshold", type=float, help="keep samples whose held-out loss is below this")
    flt.add_argument("--max-mads", type=float, help="keep samples within this many MADs of the category median")
    flt.add_argument("--option", action="append", metavar="NAME=VALUE",
                     help="another keyword argument of kfold_filter, value in YAML (e.g. epochs=20; repeatable)")
    add_no_progress(flt)
    flt.set_defaults(func=run_filter)
    pre = actions.add_parser("preview", help="(re)write preview.html of a dataset folder",
                             description="Write <in>/preview.html: a grid of the dataset's images with each "
                                         "record's box, projected cuboid and axes drawn, and the skip counts "
                                         "of its manifest.")
    pre.add_argument("--in", dest="input", required=True, help="dataset folder")
    pre.add_argument("--max-images", type=int_type(1), default=48, help="images in the grid (default 48)")
    pre.set_defaults(func=run_preview)


def run_generate(args: argparse.Namespace) -> int:
    from .config import DEFAULT_CONFIG_PATH, deep_merge, load_config, parse_override

    if args.print_defaults:  # the file itself: every key with its comment
        print(DEFAULT_CONFIG_PATH.read_text(), end="")
        return 0
    if not args.out:
        raise ValueError("--out is required (the dataset folder; an existing one is resumed)")
    overrides: dict = {}
    for text in args.set or []:
        overrides = deep_merge(overrides, parse_override(text))
    config = load_config(args.config, overrides=overrides or None)
    from .pipeline import generate, summary_line

    manifest = generate(config, args.out, shard=args.shard, workers=args.workers, ray=args.ray,
                        ray_address=args.ray_address, progress=not args.no_progress,
                        preview=not args.no_preview)
    print(summary_line(args.out, manifest))
    if manifest["complete"] and not args.no_preview:
        print(f"preview: {os.path.join(args.out, 'preview.html')}")
    return 0


def run_filter(args: argparse.Namespace) -> int:
    from .config import read_yaml
    from .filter_kfold import filter_dataset

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


def run_preview(args: argparse.Namespace) -> int:
    from .preview import write_preview

    print(write_preview(args.input, max_images=args.max_images))
    return 0
