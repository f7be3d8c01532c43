"""`aware3d nemo incremental`: class-incremental neural mesh models (iNeMo) and their baselines
(see docs/inemo.md). Added to `aware3d nemo` by aware3d/cli_nemo.py; imports torch only when it runs."""

from __future__ import annotations

import argparse


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
    inc.add_argument("--config", help="YAML config (keys: docs/inemo.md; omitted: the defaults)")
    inc.add_argument("--out", required=True, help="run folder")
    inc.add_argument("--train", action="append", metavar="FOLDER", help="training records folder (repeatable; "
                     "replaces the config's train_data)")
    inc.add_argument("--test", action="append", metavar="FOLDER", help="test records folder (repeatable; "
                     "replaces the config's test_data)")
    inc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one config key, e.g. --set steps.later=100 or --set nemo.data.batch_size=8")
    inc.add_argument("--no-progress", action="store_true", help="no progress bars")
    inc.set_defaults(func=run_incremental_command)


def run_incremental_command(args: argparse.Namespace) -> int:
    from nemo.incremental import load_incremental_config, run_incremental
    from nemo.incremental.report import table_markdown

    overrides = list(args.set)
    config = load_incremental_config(args.config, overrides)
    if args.train:
        config["train_data"] = list(args.train)
    if args.test:
        config["test_data"] = list(args.test)
    results = run_incremental(config, args.out, progress=not args.no_progress)
    print(table_markdown(results), end="")
    print(f"results: {args.out}/incremental.json; report: {args.out}/report.html")
    return 0
