"""The command-line arguments every method command shares, defined once, and flags generated from
a config schema (`methodkit.config`).

`add_out`, `add_config`, `add_set` and `add_no_progress` add `--out`, `--config`, `--set KEY=VALUE` and
`--no-progress`; `refuse_out_among_inputs` and `given_once` check the paths a command was given;
`int_type(low, high)` is the argparse type of a bounded integer;
`add_schema_flags` adds one flag per schema key whose metadata names one (`setting(..., flag=...)`:
True gives `--the-key`, a string that flag), typed from the schema (int / float / str / choices;
a bool default True gives a `--no-...` switch, False a plain switch). `schema_values(args)` gives
back the flags that were given, as a nested override tree (`{"nemo": {"seed": 3}}`) or flat
keyword arguments, so a flag is one more override on top of the file and `--set`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterable

from .config import Key, keys

__all__ = ["add_out", "add_no_progress", "add_config", "add_set", "add_schema_flags", "schema_flags", "schema_values",
           "flag_name", "int_type", "refuse_out_among_inputs", "given_once", "folder_path", "locked_out"]


def add_out(parser: argparse.ArgumentParser, help: str = "run folder", folder: bool = False, **kwargs) -> None:
    """`--out`; folder: it names a folder, so an existing file there is an argument error ("names a file")
    before anything runs, instead of an OS error from deep inside the command."""
    kwargs.setdefault("required", "default" not in kwargs)
    if folder:
        kwargs.setdefault("type", folder_path)
    parser.add_argument("--out", help=help, **kwargs)


def folder_path(text: str) -> str:
    """An argparse type: a path that is a folder or does not exist yet (not a file, not empty: "" would be
    the working folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name the folder")
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} names a file, not a folder")
    return text


def add_no_progress(parser: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    parser.add_argument("--no-progress", action="store_true", help=help)


def add_config(parser: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    parser.add_argument("--config", required=required, help=help)


def add_set(parser: argparse.ArgumentParser, help: str = "override one config key (repeatable)") -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help)


def flag_name(key: Key) -> str | None:
    """The flag of a schema key (None: it has none)."""
    flag = key.meta.get("flag")
    if not flag:
        return None
    return flag if isinstance(flag, str) else "--" + key.dotted.replace(".", "-").replace("_", "-")


def int_type(low: int | None = None, high: int | None = None):
    """An argparse type: an integer in [low, high] (None: unbounded); outside, "must be >= low, got v"."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def add_schema_flags(parser: argparse.ArgumentParser, schema: type, prefix: str = "",
                     only: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Add a flag for every key of `schema` that names one (or only those dotted keys in `only`);
    the values land in `args` under dest "config:<prefix><dotted key>" (None when not given).
    Returns [(flag, dotted key)]."""
    only = None if only is None else set(only)
    added = []
    for key in keys(schema):
        flag = flag_name(key)
        if flag is None or (only is not None and key.dotted not in only):
            continue
        dest = f"config:{prefix}{key.dotted}"
        text = (key.doc or key.dotted).replace("%", "%%")
        kwargs: dict = {"dest": dest, "default": None}
        if key.base is bool:
            kwargs.update(action="store_const", const=not key.default, help=text)
        else:
            if key.base is int:
                kwargs["type"] = int_type(key.meta.get("ge"), key.meta.get("le"))
            elif key.base is float:
                kwargs["type"] = float
            if key.meta.get("choices"):
                kwargs["choices"] = key.meta["choices"]
            if not key.meta.get("choices"):
                kwargs["metavar"] = key.meta.get("metavar") or key.dotted.rsplit(".", 1)[-1].upper()
            shown = "" if key.default in (None, "") else f"; default {key.default}"
            kwargs["help"] = f"{text} (config key {prefix}{key.dotted}{shown})"
        parser.add_argument(flag, **kwargs)
        added.append((flag, f"{prefix}{key.dotted}"))
    flags = list(parser.get_default("schema_flags") or []) + added
    parser.set_defaults(schema_flags=flags)
    return added


def schema_flags(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """The [(flag, dotted key)] that `add_schema_flags` added to `parser`."""
    return list(parser.get_default("schema_flags") or [])


def schema_values(args: argparse.Namespace, nested: bool = True) -> dict:
    """The schema flags given on the command line: a nested override tree, or (nested=False) a flat
    {dotted key: value} dict."""
    flat = {name[len("config:"):]: value for name, value in vars(args).items()
            if name.startswith("config:") and value is not None}
    if not nested:
        return flat
    tree: dict = {}
    for dotted, value in flat.items():
        *parents, last = dotted.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def refuse_out_among_inputs(out, inputs: dict) -> None:
    """A ValueError naming the flag when `--out` is one of the command's input folders ({flag: path or list
    of paths}; None skipped): its outputs would be written among them (a folder inside one is fine)."""
    here = os.path.realpath(out)
    for flag, paths in inputs.items():
        for path in paths if isinstance(paths, (list, tuple)) else [paths]:
            if path is None:
                continue
            there = os.path.realpath(path)
            if here == there:
                raise ValueError(f"--out {out} is also the {flag} input; give the outputs their own folder")


def given_once(flag: str, paths: Iterable) -> list:
    """`paths` unchanged, or a ValueError naming `flag` when one file or folder is given twice (by the same
    or another path to it): counted twice, its results would weigh double."""
    seen: dict[str, str] = {}
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            raise ValueError(f"{flag}: {path} is given twice (also as {seen[real]}); give each once")
        seen[real] = str(path)
    return list(paths)


@contextlib.contextmanager
def locked_out(out, what: str):
    """Hold `<out>/.lock` (methodkit.run.RunFolder.lock, datagen's lock) while a command writes its output
    folder: a second command writing the same folder at the same time is refused, not interleaved."""
    from .run import RunFolder

    with RunFolder(out).lock(what):
        yield
