"""The `aware3d` command: one subcommand per capability, `--help` everywhere."""

from __future__ import annotations

import argparse
import logging
import sys


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    out = run_demo(args.out, views=args.views, category=args.category)
    print(f"demo written to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aware3d", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    sub.required = True

    demo = sub.add_parser("demo", help="run the main job on a small built-in example",
                          description="Project an object and its NeMo cuboid from a ring of PASCAL3D+ "
                                      "viewpoints; write a contact sheet and one annotation per view.")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--views", type=int, default=8, help="number of viewpoints on the ring (default: 8)")
    demo.add_argument("--category", default="car", help="PASCAL3D+ category whose CAD models to use (default: car)")
    demo.set_defaults(func=_demo)
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
