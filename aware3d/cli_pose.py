"""`aware3d pose generate | train | eval | curve`: the label-free pose estimator from the command line (docs/pose.md).

Registered in aware3d/cli.py. `train`'s flags that mirror nemo config keys are generated from
`nemo.NemoConfig` (so building this parser imports nemo).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

from aware3d_utils import IMAGE_SUFFIXES
from methodkit.cli import (
    add_config,
    add_no_progress,
    add_out,
    add_schema_flags,
    add_set,
    int_type,
    locked_out,
    refuse_out_among_inputs,
    schema_values,
)
from nemo.config import NemoConfig

from .cli import bounded

log = logging.getLogger("aware3d.pose")


def add_parser(sub) -> None:
    top = sub.add_parser("pose", help="pose without pose labels: generated views, neural meshes, one shot",
                         description="A category-level pose estimator learned from novel views of unannotated "
                                     "images (Zero-1-to-3 or render synthesizers) and a single annotated image.")
    actions = top.add_subparsers(dest="pose_action", metavar="<generate | train | eval | curve>")
    actions.required = True

    ge = actions.add_parser("generate", help="generated sets from unannotated images",
                            description="Writes <out>/sets.json, one folder of view images + data3d records "
                                        "per source, viewpoints in the source camera's frame, and report.html "
                                        "(every set's source and views, skipped sources). --images is a "
                                        "records folder (datagen output; labels ignored except by the render "
                                        "synthesizers, which stand in for the generator) or, for zero123, a "
                                        "folder of object images on a white background.")
    ge.add_argument("--images", required=True, help="records folder or image folder")
    ge.add_argument("--category", required=True, help="the images' category")
    ge.add_argument("--synthesizer", choices=("zero123", "render", "degraded", "correlated"), default="degraded",
                    help="correlated: the degraded renders plus front/back flips, an elevation bias and "
                         "appearance drift (--flip-rate, --flip-mode, --elevation-bias-deg, --appearance-drift)")
    ge.add_argument("--model", help="zero123: model id or folder (default kxic/zero123-xl)")
    ge.add_argument("--device", default="cpu")
    ge.add_argument("--assets", help="YAML asset source block, or a list of blocks, for the category's meshes "
                                     "(the cylinder's extent; the render synthesizers' CAD models); default: "
                                     "procedural assets")
    add_out(ge, "sets folder", folder=True)
    ge.add_argument("--azimuths", type=bounded(int, 1, 360), default=11,
                    help="Δazimuth values per polar step (evenly spaced; 1-360)")
    ge.add_argument("--polar-deg", type=bounded(float, -89, 89), action="append",
                    help="Δpolar values in degrees (default 0 and -15)")
    ge.add_argument("--source-elevation-deg", type=bounded(float, -89, 89), default=11.5,
                    help="assumed elevation of every source")
    ge.add_argument("--sigma-deg", type=bounded(float, 0, 180),
                    help="degraded, correlated: pose jitter σ in degrees (default 10)")
    _correlated_arguments(ge)
    ge.add_argument("--appearance", choices=("source", "mesh"),
                    help="render synthesizers: source (default) carries the source image's appearance onto the "
                         "CAD surface, as a generator does; mesh draws the CAD model's own (grey) material")
    ge.add_argument("--steps", type=bounded(int, 1, 1000), help="zero123: denoising steps (default 50)")
    ge.add_argument("--segments", type=bounded(int, 3, 720), default=36, help="neural cylinder: vertices per ring")
    ge.add_argument("--max-sources", type=bounded(int, 1, 10**9), help="use at most this many sources")
    ge.add_argument("--backgrounds", choices=("white", "sources"), default="sources",
                    help="sources (default): paste every generated view onto another source image, so the encoder "
                         "learns clutter (measured: it also fixed 180° flips in the merge); white: as synthesized")
    ge.add_argument("--seed", type=int_type(0, 2**32 - 1), default=0)
    add_no_progress(ge)
    ge.set_defaults(func=run_generate)

    tr = actions.add_parser("train", help="train from generated sets and one annotated image",
                            description="Writes the run folder (config.yaml, manifest.json, log.jsonl, "
                                        "checkpoints/, loss.png, canonicalisation.json: sets aligned/rejected, "
                                        "the orientation check (sets whose source says they were generated "
                                        "half a turn off), the one-shot rotation; report.html: the same per "
                                        "set, with its "
                                        "source). A killed run resumes from its last checkpoint "
                                        "when started again with the same --out.")
    tr.add_argument("--sets", required=True, help="sets folder from `aware3d pose generate`")
    tr.add_argument("--reference", required=True, help="records folder whose first record is the annotated image")
    add_out(tr, "run folder", folder=True)
    add_config(tr, "YAML config: {nemo: <nemo config keys>, pose: {filter, merge, refine, retrieval}} "
                   "(docs/pose.md)")
    add_set(tr, "override one config key, e.g. --set nemo.seed=1 or --set pose.merge.flip_ratio=0.5 (repeatable)")
    tr.add_argument("--steps", type=bounded(int, 1, 10**9), help="override nemo.train.steps")
    add_schema_flags(tr, NemoConfig, prefix="nemo.")  # --seed, --threads, --device: nemo.seed ...
    add_no_progress(tr)
    tr.set_defaults(func=run_train)

    ev = actions.add_parser("eval", help="evaluate pose, one-shot retrieval (and supervised NeMo) on records",
                            description="Writes <out>/metrics.json as {method: {split: {acc_pi6, acc_pi18, "
                                        "median_deg, cls_acc, n}}} for pose, oneshot_retrieval and, with "
                                        "--supervised-run, nemo_supervised; plus nemo's report.html.")
    ev.add_argument("--run", required=True, help="pose run folder")
    ev.add_argument("--data", required=True, help="records folder with ground truth")
    add_out(ev, "output folder", folder=True)
    ev.add_argument("--supervised-run", help="a NeMo run trained with labels (aware3d nemo train)")
    ev.add_argument("--allow-seen-instances", action="store_true",
                    help="allow test records that show the one-shot reference's or a source's instance (by "
                         "default an error: the test must be instance-disjoint; instances.json records them)")
    add_no_progress(ev)
    ev.set_defaults(func=run_eval)

    cu = actions.add_parser("curve", help="accuracy against the generator's front/back flip rate p",
                            description="For each --rates p: generated sets from --images with the correlated "
                                        "synthesizer at flip rate p, a pose run (--config), and its evaluation "
                                        "on --data (instance-disjoint, checked) and, given, --real-data "
                                        "(real photographs, evaluation only). Writes <out>/p0.20/{sets,run,eval,"
                                        "real}, curve.json and curve.md; resumes when run again.")
    cu.add_argument("--images", required=True, help="records folder of the unannotated sources (datagen output)")
    cu.add_argument("--reference", required=True, help="records folder whose first record is the one-shot image "
                    "(an instance that --data does not show)")
    cu.add_argument("--data", required=True, help="test records folder (instances disjoint from the sources')")
    cu.add_argument("--real-data", help="records folder of real photographs, e.g. ../shared/data/real_pose_dev")
    cu.add_argument("--category", required=True)
    cu.add_argument("--assets", help="YAML asset source block for the category's meshes (as generate)")
    add_config(cu, "pose train YAML config (as train)")
    add_set(cu, "pose train config override")
    add_out(cu, "curve folder", folder=True)
    cu.add_argument("--rates", type=bounded(float, 0, 1), nargs="+", default=[0.0, 0.1, 0.2, 0.3],
                    help="flip rates p")
    cu.add_argument("--azimuths", type=bounded(int, 1, 360), default=11)
    cu.add_argument("--polar-deg", type=bounded(float, -89, 89), action="append")
    cu.add_argument("--source-elevation-deg", type=bounded(float, -89, 89), default=11.5)
    cu.add_argument("--sigma-deg", type=bounded(float, 0, 180), default=5.0, help="pose jitter σ in degrees")
    _correlated_arguments(cu, rate=False)
    cu.add_argument("--appearance", choices=("source", "mesh"), default="source")
    cu.add_argument("--segments", type=bounded(int, 3, 720), default=36)
    cu.add_argument("--max-sources", type=bounded(int, 1, 10**9))
    cu.add_argument("--backgrounds", choices=("white", "sources"), default="sources")
    cu.add_argument("--supervised-run", help="a NeMo run trained with labels, evaluated beside")
    cu.add_argument("--seed", type=int_type(0, 2**32 - 1), default=0)
    add_no_progress(cu)
    cu.set_defaults(func=run_curve)


#: generate's options that act with some synthesizers only: (dest, flag, the synthesizers, its default)
SYNTHESIZER_OPTIONS = (("sigma_deg", "--sigma-deg", ("degraded", "correlated"), 10.0),
                       ("appearance", "--appearance", ("render", "degraded", "correlated"), "source"),
                       ("flip_rate", "--flip-rate", ("correlated",), 0.2),
                       ("flip_mode", "--flip-mode", ("correlated",), "set"),
                       ("elevation_bias_deg", "--elevation-bias-deg", ("correlated",), 5.0),
                       ("appearance_drift", "--appearance-drift", ("correlated",), 0.03),
                       ("model", "--model", ("zero123",), None), ("steps", "--steps", ("zero123",), None))


def _correlated_arguments(parser, rate: bool = True) -> None:
    """The correlated synthesizer's options; for `generate` (rate=True) without defaults, so that one given
    with another synthesizer is an error (`_synthesizer_options`), for `curve` with them."""
    given = {d: (None if rate else default) for d, _, _, default in SYNTHESIZER_OPTIONS}
    if rate:
        parser.add_argument("--flip-rate", type=bounded(float, 0, 1), help="correlated: front/back flip rate p "
                                                                           "(default 0.2)")
    parser.add_argument("--flip-mode", choices=("set", "view"), default=given["flip_mode"],
                        help="correlated: flip whole sets or single views (default set)")
    parser.add_argument("--elevation-bias-deg", type=bounded(float, -89, 89), default=given["elevation_bias_deg"],
                        help="correlated: elevation bias (degrees; default 5)")
    parser.add_argument("--appearance-drift", type=bounded(float, 0, 1), default=given["appearance_drift"],
                        help="correlated: std of the colour random walk across a set's views (default 0.03)")


def _synthesizer_options(args: argparse.Namespace) -> None:
    """An error for an option given with a synthesizer it does not act with (it would be ignored without a
    word); the others' defaults filled in."""
    for dest, flag, synthesizers, default in SYNTHESIZER_OPTIONS:
        if getattr(args, dest) is None:
            setattr(args, dest, default)
        elif args.synthesizer not in synthesizers:
            raise ValueError(f"{flag} only acts with --synthesizer {' or '.join(synthesizers)} (got --synthesizer "
                             f"{args.synthesizer})")


def _asset_sources(path: str | None, category: str) -> list:
    """The asset sources of a YAML file: one block or a list of blocks (as datagen's `assets`)."""
    import yaml

    import data3d
    from datagen.config import read_yaml  # YAML 1.2, as datagen: `type: off` is the OFF source
    from methodkit.config import yaml_error_text

    blocks = [{"type": "procedural", "count": 3}]
    if path:
        try:
            loaded = read_yaml(Path(path).read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the asset sources: {getattr(exc, 'strerror', None) or exc}") \
                from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {yaml_error_text(exc)}") from None
        blocks = loaded if isinstance(loaded, list) else [loaded]
        if not blocks or not all(isinstance(b, dict) for b in blocks):
            raise ValueError(f"{path}: an asset source block (a mapping) or a list of them is needed")
    return [data3d.asset_source(dict(b, categories=[category])) for b in blocks]


def _image_sources(folder: Path, category: str, limit, skipped: list):
    import cv2

    from datagen.novel_view import SourceView
    from pose.sets import SetSource, object_bbox

    out = []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    for p in files:
        try:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        except cv2.error as exc:  # OpenCV's size limit (a header claiming too many pixels)
            image = None
            reason = " ".join(str(exc).split())
        else:
            reason = "cannot be read as an image"
        if image is None:  # one unreadable source is a counted skip, as in every batch command
            skipped.append({"source": str(p), "reason": reason})
            log.warning("skipping %s: %s", p, reason)
            continue
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        box = object_bbox(image)
        if box is None:
            skipped.append({"source": str(p), "reason": "no object on a white background found"})
            continue
        h, w = image.shape[:2]
        out.append(SetSource(SourceView(image, name=str(p)),
                             {"focal": 2.0 * max(h, w), "viewport": 1.0, "px": (w - 1) / 2, "py": (h - 1) / 2}, box))
    return out


def _sources(args: argparse.Namespace, synthesizer: str, skipped: list):
    """(sources, the category's meshes) of `--images` (as `generate` reads them); a source whose image cannot
    be read is appended to `skipped` ({"source", "reason"}) and the others go on."""
    import data3d
    import pose

    meshes = {data3d.mesh_ref_for(str(a.meta.get("collection", a.source)), a.category, a.id, a.cad_index): m
              for source in _asset_sources(args.assets, args.category)
              for a in source.by_category(args.category) if (m := source.load(a)) is not None}
    if not meshes:
        raise ValueError(f"the asset source has no mesh of category {args.category!r}")
    folder = Path(args.images)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    has_records = any(folder.glob("records-*"))
    if has_records:
        records = list(data3d.load_records(folder))[: args.max_sources]
        sources = pose.sources_from_records(records, meshes if synthesizer != "zero123" else None, args.category,
                                            skipped=skipped)
    elif synthesizer == "zero123":
        sources = _image_sources(folder, args.category, args.max_sources, skipped)
    else:
        raise ValueError(f"{folder}: the {synthesizer} synthesizer needs a records folder (with CAD references)")
    if not sources:
        why = f" ({len(skipped)} skipped, e.g. {skipped[0]['source']}: {skipped[0]['reason']})" if skipped else ""
        raise ValueError(f"{folder}: no usable source of category {args.category!r}{why}")
    return sources, meshes


def _correlated_options(args: argparse.Namespace) -> dict:
    return {"pose_sigma": math.radians(args.sigma_deg), "flip_mode": args.flip_mode,
            "elevation_bias": math.radians(args.elevation_bias_deg), "appearance_drift": args.appearance_drift}


def run_generate(args: argparse.Namespace) -> int:
    from nemo.config import check_device

    check_device(args.device, key="--device")
    _synthesizer_options(args)  # options of one synthesizer given to another would be ignored without a word
    refuse_out_among_inputs(args.out, {"--images": args.images})
    with locked_out(args.out, "pose generate"):
        return _run_generate(args)


def _run_generate(args: argparse.Namespace) -> int:
    import numpy as np

    import pose
    from datagen.novel_view import make_synthesizer

    skipped: list = []  # sources whose image cannot be read: counted in sets.json, the others go on
    sources, meshes = _sources(args, args.synthesizer, skipped)
    options = {}
    if args.synthesizer == "zero123":
        options = {"steps": 50 if args.steps is None else args.steps}
    else:  # the render synthesizers
        options = {"appearance": args.appearance}
        if args.synthesizer == "degraded":
            options["pose_sigma"] = math.radians(args.sigma_deg)
        if args.synthesizer == "correlated":
            options.update(_correlated_options(args), flip_rate=args.flip_rate)
    synth = make_synthesizer(args.synthesizer, model=args.model, device=args.device, **options)
    polars = [math.radians(p) for p in (args.polar_deg or [0.0, -15.0])]
    cylinder = pose.cylinder_params(list(meshes.values()), segments=args.segments)
    sets = pose.generate_sets(sources, synth, pose.default_relative_poses(args.azimuths, polars), args.out,
                              category=args.category, cylinder=cylinder,
                              source_elevation=math.radians(args.source_elevation_deg), seed=args.seed,
                              backgrounds=args.backgrounds, skipped_sources=skipped,
                              progress=not args.no_progress)
    summary = json.loads((Path(args.out) / "sets.json").read_text())
    views = int(np.sum([len(s.records) for s in sets]))
    print(f"{len(sets)} sets, {views} views, {len(summary['skipped'])} sources skipped -> {args.out}")
    return 0


def _train_config(args: argparse.Namespace) -> dict:
    """The pose config as given (resolved by pose.train): --config, then each --set, then --steps and
    the schema flags (--seed ...)."""
    from methodkit.config import read_yaml_file
    from nemo.config import merge, parse_override

    config = read_yaml_file(args.config) if args.config else {}
    for override in args.set:
        config = merge(config, parse_override(override))
    if getattr(args, "steps", None) is not None:
        config = merge(config, {"nemo": {"train": {"steps": args.steps}}})
    return merge(config, schema_values(args))


def run_train(args: argparse.Namespace) -> int:
    import pose

    config = _train_config(args)
    run = pose.train(args.sets, args.reference, args.out, config, progress=not args.no_progress)
    report = run.read_json("canonicalisation.json")
    orientation = report.get("orientation") or {}
    turned = "" if not orientation.get("enabled") else (
        f", {len(orientation['turned'])} turned half a turn against their sources"
        + (" (the annotated image's set among them: its frame was turned back)" if orientation["reference_turned"]
           else ""))
    print(f"trained -> {run.path}: {report['aligned']} sets aligned, {report['rejected']} rejected, "
          f"{report['filtered_views']} views filtered{turned}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import data3d

    refuse_out_among_inputs(args.out, {"--run": args.run, "--data": args.data, "--supervised-run": args.supervised_run})
    records = list(data3d.load_records(args.data))
    with locked_out(args.out, "pose evaluation"):
        return _run_eval(args, records)


def _run_eval(args: argparse.Namespace, records: list) -> int:
    import pose

    metrics = pose.evaluate(args.run, records, args.out, supervised_run=args.supervised_run,
                            progress=not args.no_progress, require_disjoint=not args.allow_seen_instances)
    for method, splits in metrics.items():
        for split, m in splits.items():
            print(f"{method:18s} {split:8s} Acc@pi/6 {m['acc_pi6']:.3f}  Acc@pi/18 {m['acc_pi18']:.3f}  "
                  f"median {m['median_deg']:.1f} deg  (n={m['n']})")
    return 0


def run_curve(args: argparse.Namespace) -> int:
    refuse_out_among_inputs(args.out, {"--images": args.images, "--reference": args.reference, "--data": args.data,
                                       "--real-data": args.real_data})
    twice = sorted({p for p in args.rates if args.rates.count(p) > 1})
    if twice:  # one folder p<rate>, and one curve point, for both
        raise ValueError(f"--rates: {twice} given twice; give each rate once")
    manifest = Path(args.out) / "manifest.json"
    if manifest.is_file():  # a curve folder has none: its p<rate>/ folders would land in another run's
        raise ValueError(f"--out {args.out}: holds a run (manifest.json), not a flip curve; give the curve its own "
                         "folder")
    with locked_out(args.out, "pose curve"):
        return _run_curve(args)


def _curve_inputs(args: argparse.Namespace, sources) -> tuple[list, list]:
    """(test records, real records), with every input a rate's run would read late checked first: the
    config, the reference (readable, of --category), the test sets (of --category, instance-disjoint
    from the reference and the sources) and the supervised run (a NeMo run)."""
    import data3d
    from data3d.images import read_image_size
    from pose.config import resolve_pose_config
    from pose.model import load_supervised

    resolve_pose_config(_train_config(args))  # a bad key is an error before any set is generated
    reference = data3d.load_records(args.reference)
    if not reference or not reference[0].objects:
        raise ValueError(f"--reference {args.reference}: holds no annotated object")
    read_image_size(reference[0].image_path)  # an unreadable one-shot image: named now, not after training
    if reference[0].objects[0].category != args.category:
        raise ValueError(f"--reference {args.reference}: its first record shows a "
                         f"{reference[0].objects[0].category!r}, not a {args.category!r}")
    seen = {reference[0].objects[0].mesh_ref} | {s.instance for s in sources if s.instance}
    groups = {}
    for flag, path in (("--data", args.data), ("--real-data", args.real_data)):
        if path is None:
            groups[flag] = []
            continue
        records = list(data3d.load_records(path))
        if not any(o.category == args.category for r in records for o in r.objects):
            raise ValueError(f"{flag} {path}: holds no record of category {args.category!r}")
        shown = sorted(seen & {o.mesh_ref for r in records for o in r.objects})
        if flag == "--data" and shown:  # the evaluation would refuse them once the first run is trained
            raise ValueError(f"--data {path}: shows instances the runs see as reference or sources: {shown[:5]}; "
                             "the test must be instance-disjoint")
        groups[flag] = records
    if args.supervised_run is not None:
        load_supervised(args.supervised_run)
    return groups["--data"], groups["--real-data"]


def _run_curve(args: argparse.Namespace) -> int:
    import pose

    sources, meshes = _sources(args, "correlated", [])
    test, real = _curve_inputs(args, sources)
    polars = [math.radians(p) for p in (args.polar_deg or [0.0, -15.0])]
    options = dict(_correlated_options(args), appearance=args.appearance)
    result = pose.flip_curve(sources, args.reference, test, args.out,
                             _train_config(args), rates=args.rates, category=args.category,
                             cylinder=pose.cylinder_params(list(meshes.values()), segments=args.segments),
                             relative_poses=pose.default_relative_poses(args.azimuths, polars), synthesizer=options,
                             source_elevation=math.radians(args.source_elevation_deg), seed=args.seed,
                             backgrounds=args.backgrounds, supervised_run=args.supervised_run, real_records=real,
                             progress=not args.no_progress)
    print((Path(args.out) / "curve.md").read_text(), end="")
    print(f"results: {args.out}/curve.json ({len(result['results'])} rates)")
    return 0
