"""The `aware3d` command: one subcommand per capability, `--help` everywhere.

Adding a subcommand: append `(name, module, one-line help)` to COMMANDS. The module exposes
`add_parser(subparsers)`, which adds the parser called `name` (its options, its description) and
sets `func=handler` on it; `handler(args) -> int` is the exit code. Only the module of the command
being run is imported, so `aware3d --help` does not pay for torch. A handler reports a user's
mistake by raising (ValueError, OSError, ImportError, or the project's own errors, which derive
from ValueError): `main` prints it as one line naming the command, and `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "aware3d.demo", "run the main job on a small built-in example"),
    ("datagen", "datagen.cli", "generate a 3D-annotated image dataset (3D-DST)"),
    ("data", "aware3d.cli_data", "inspect a records folder or a dataset: statistics, annotated images"),
    ("orbit4d", "aware3d.cli_orbit4d", "camera redirection of a monocular video through a 4D proxy (FreeOrbit4D)"),
    ("nemo", "aware3d.cli_nemo", "neural mesh models: train, evaluate, estimate pose (NeMo)"),
    ("pose", "aware3d.cli_pose", "pose without pose labels: generated views, neural meshes, one shot (Tian et al.)"),
    ("view", "aware3d.cli_view", "look at a records folder, an orbit4d run or an evaluation in 3D (browser)"),
]

# the exceptions that mean "the input or the environment is wrong", not "the code is wrong"
USER_ERRORS = (ValueError, OSError, ImportError)


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not an option; the top-level options take no value)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None, *, load_all: bool = False) -> argparse.ArgumentParser:
    """The parser; the full parser of `command` (every command with `load_all`), the others as
    names with their one-line help."""
    parser = argparse.ArgumentParser(prog="aware3d", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    sub.required = True
    for name, module, help_text in COMMANDS:
        if load_all or name == command:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def bounded(kind: type, low: float, high: float):
    """An argparse type: a finite `kind` (int or float) in [low, high], an error naming the bounds
    otherwise (a count beyond `high` would only make a run that never ends)."""
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def one_line(exc: BaseException, args: argparse.Namespace | None = None) -> str:
    """An error as one line; an OSError that names no file (a full disk) names the run's output folder."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None and not exc.filename:  # not one the code raised itself
        out = getattr(args, "out", None)
        if out:
            text += f" (writing to {out})"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _chosen_command(argv)
    debug = "--debug" in argv[: argv.index(command)] if command in argv else "--debug" in argv
    try:
        parser = build_parser(command)
    except ImportError as exc:  # the command's module needs an optional dependency
        if debug:
            raise
        print(f"aware3d {command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"aware3d {args.command}: error: {one_line(exc, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"aware3d {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
