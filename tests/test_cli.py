"""The `aware3d` command: the registration of subcommands, `--help` everywhere, one-line errors."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from aware3d import cli


def _parsers(parser):
    """Every (prog, parser) reachable from `parser` through subcommands."""
    yield parser.prog, parser
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):
            for sub in choices.values():
                yield from _parsers(sub)


def test_every_registered_command_is_loaded_with_a_description():
    parser = cli.build_parser(load_all=True)
    progs = dict(_parsers(parser))
    for name, _, help_text in cli.COMMANDS:
        assert f"aware3d {name}" in progs and help_text
    assert "aware3d datagen preview" in progs and "aware3d datagen filter" in progs
    for prog, sub in progs.items():
        if prog != "aware3d":
            assert sub.description, f"`{prog} --help` has no description"


def test_top_level_help_imports_no_command_module():
    code = ("import sys; from aware3d import cli; cli.build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'datagen', 'data3d') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_chosen_command_is_found_after_top_level_options():
    assert cli._chosen_command(["-v", "--debug", "datagen", "--out", "x"]) == "datagen"
    assert cli._chosen_command(["--help"]) is None


@pytest.mark.parametrize("exc, expected", [
    (ValueError("bad\nvalue"), "bad value"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device (writing to runs/x)"),
    (PermissionError(errno.EACCES, "Permission denied", "runs/x/manifest.json"), "runs/x/manifest.json"),
])
def test_errors_are_one_line_and_name_a_path(exc, expected, monkeypatch, capsys):
    def fail(args):
        raise exc

    def add_parser(sub):
        p = sub.add_parser("failing", description="raises")
        p.add_argument("--out")
        p.set_defaults(func=fail)

    module = type(sys)("failing_cli")
    module.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "failing_cli", module)
    monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + [("failing", "failing_cli", "raises")])
    assert cli.main(["failing", "--out", "runs/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aware3d failing: error: ") and expected in err
    with pytest.raises(type(exc)):  # --debug: the traceback
        cli.main(["--debug", "failing", "--out", "runs/x"])
