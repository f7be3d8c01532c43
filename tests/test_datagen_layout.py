"""datagen's layering: no module reaches up into the `aware3d` front door (its CLI imports datagen),
siblings are imported, not loaded by name, and no module grows past one job's size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DATAGEN = Path(__file__).resolve().parents[1] / "datagen"
MODULES = sorted(DATAGEN.glob("*.py"))


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_upward_import_no_import_by_name_and_a_modest_size(path):
    text = path.read_text()
    tree = ast.parse(text)
    assert not [m for m in _imports(tree) if m == "aware3d" or m.startswith("aware3d.")], path.name
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "import_module"]
    assert not calls, f"{path.name} loads modules by name"
    assert len(text.splitlines()) <= 650, f"{path.name} has {len(text.splitlines())} lines"


def test_model_sources_are_decided_before_loading(tmp_path, monkeypatch):
    """Offline, an id that is not cached fails at once (no hub retries); a folder is used as it is."""
    from datagen.hub import pretrained_kwargs

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="backbone: cannot load 'acme/no-such-model'.*HF_HUB_OFFLINE"):
        pretrained_kwargs("acme/no-such-model", "backbone")
    with pytest.raises(FileNotFoundError, match=r"controlnet.model: cannot load '/nowhere/cn': no such folder"):
        pretrained_kwargs("/nowhere/cn", "controlnet.model")
    (tmp_path / "model").mkdir()
    assert pretrained_kwargs(str(tmp_path / "model"), "backbone") == {}
