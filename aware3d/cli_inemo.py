"""`aware3d nemo incremental`: class-incremental neural mesh models (iNeMo) and their baselines
(see docs/inemo.md). Added to `aware3d nemo` by aware3d/cli_nemo.py; its flags that mirror config keys
are generated from `IncrementalConfig`."""

from __future__ import annotations

import argparse
import os

from methodkit.cli import add_config, add_no_progress, add_out, add_schema_flags, add_set, schema_values
from nemo.incremental.config import IncrementalConfig


def add_incremental_parser(actions) -> None:
    """Add the `incremental` action to the `aware3d nemo` subparsers."""
    inc = actions.add_parser(
        "incremental", help="class-incremental training (iNeMo) with finetune / joint / 2D-replay baselines",
        description="Learns the classes task by task (config 'tasks'), for every method in 'methods' (inemo, "
                    "finetune, joint, replay2d), evaluating after every task on the test objects of all classes "
                    "seen so far. Writes <out>/incremental.json ({method: {per_task: [{seen_classes, acc, "
                    "acc_by_split, pose_acc_pi6 (true class), pose_acc_pi6_predicted (predicted class), "
                    "old_class_pose_acc_pi6, classifier, validation, rules, ...}], average_incremental_accuracy, "
                    "forgetting}}), validation.json (the split carved from the training records, on which the "
                    "matching rule is chosen), incremental.md (the per-task table), accuracy.png, report.html, "
                    "and per method and task a nemo run folder (<out>/<method>/task_<t>, loadable with nemo.load). "
                    "The test must show no training instance (instance_disjoint); seen_cad_data is reported as "
                    "the seen_cad splits.")
    add_config(inc, "YAML config (keys: docs/inemo.md; omitted: the defaults)")
    add_out(inc, "run folder", folder=True)
    inc.add_argument("--train", action="append", metavar="FOLDER", help="training records folder (repeatable; "
                     "replaces the config's train_data)")
    inc.add_argument("--test", action="append", metavar="FOLDER", help="test records folder (repeatable; "
                     "replaces the config's test_data)")
    add_set(inc, "override one config key, e.g. --set steps.later=100 or --set nemo.data.batch_size=8")
    add_schema_flags(inc, IncrementalConfig)  # --seed, --threads: the config keys, after --set
    add_no_progress(inc, "no progress bars")
    inc.set_defaults(func=run_incremental_command)

    summary = actions.add_parser(
        "incremental-summary", help="mean ± sd over finished incremental runs (seeds) of one benchmark",
        description="Reads each run folder's incremental.json and prints, per method, the mean ± sample "
                    "standard deviation over the runs of the average incremental accuracy and the forgetting "
                    "per split and of the last task's pose Acc@π/6 (predicted class, true class). Names the "
                    "config keys other than seeds in which the runs differ.")
    summary.add_argument("runs", nargs="+", metavar="RUN", help="finished `aware3d nemo incremental` run folder")
    summary.add_argument("--splits", nargs="+", metavar="SPLIT", help="only these splits (default: all), "
                         "e.g. --splits clean L2 L3 seen_cad")
    summary.add_argument("--out", metavar="FILE", help="also write the table to this Markdown file")
    summary.set_defaults(func=run_summary_command)


def incremental_config(args: argparse.Namespace) -> dict:
    """The resolved config: --config, then each --set, then the schema flags (--seed, --threads)."""
    from nemo.incremental import load_incremental_config

    return load_incremental_config(args.config, [*args.set, schema_values(args)])


def run_incremental_command(args: argparse.Namespace) -> int:
    from nemo.incremental import run_incremental
    from nemo.incremental.report import table_markdown

    config = incremental_config(args)
    if args.train:
        config["train_data"] = list(args.train)
    if args.test:
        config["test_data"] = list(args.test)
    results = run_incremental(config, args.out, progress=not args.no_progress)
    print(table_markdown(results), end="")
    print(f"results: {args.out}/incremental.json; report: {args.out}/report.html")
    return 0


def run_summary_command(args: argparse.Namespace) -> int:
    from aware3d_utils import atomic_write_text
    from nemo import NemoError
    from nemo.incremental.report import load_seed_runs, seeds_markdown

    if args.out is not None:  # checked before anything is read: a table over a run's own files would destroy it
        out = os.path.realpath(args.out)
        if os.path.isdir(out):
            raise NemoError(f"--out {args.out} is a folder; give the Markdown file's name")
        for run in args.runs:
            if os.path.commonpath([out, os.path.realpath(run)]) == os.path.realpath(run):
                raise NemoError(f"--out {args.out} lies inside the run folder {run}; write the table elsewhere")
    twice = [s for k, s in enumerate(args.splits or []) if s in args.splits[:k]]
    if twice:  # its columns would be shown twice
        raise NemoError(f"--splits: {twice[0]!r} is given twice; give each split once")
    results, differ = load_seed_runs(args.runs)
    if args.splits:
        known = {s for r in results.values() for m in r.values() for s in m["average_incremental_accuracy_by_split"]}
        unknown = [s for s in args.splits if s not in known]
        if unknown:
            raise NemoError(f"--splits: no split {unknown[0]!r} in the runs (they have {', '.join(sorted(known))})")
    text = seeds_markdown(results, args.splits)
    if differ:
        text += f"\nthe runs also differ in: {', '.join(differ)}\n"
    print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
    return 0
