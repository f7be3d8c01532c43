"""One meaning per name (issue 22): no package exports a name that is also one of its submodules
(the function would hide the module: `import pkg.name as m` and `mock.patch("pkg.name.x")` would reach
the function), renamed functions and arguments still answer to their old names with a warning, and
the two neighbour tables of geom3d say which they are."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest
import torch

PACKAGES = ["geom3d", "data3d", "datagen", "orbit4d", "methodkit", "aware3d_utils"]


def _packages(name: str):
    package = importlib.import_module(name)
    yield package
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            yield from _packages(f"{name}.{info.name}")


@pytest.mark.parametrize("root", PACKAGES)
def test_no_exported_name_hides_a_submodule(root):
    hidden = []
    for package in _packages(root):
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
            value = getattr(package, info.name, None)
            if value is not None and not isinstance(value, types.ModuleType):
                hidden.append(f"{package.__name__}.{info.name} is a {type(value).__name__}, not the module")
    assert not hidden, hidden


def test_the_two_neighbour_tables_differ_as_their_names_say():
    """Two triangles sharing the edge (1, 2), the second with its own copies of vertices 1 and 2 (a seam)."""
    from geom3d.gl.face_ids import neighbours_opposite_corners
    from geom3d.raster.antialiasing import neighbours_across_edges

    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0], [0, 1, 0]])
    shared = torch.tensor([[0, 1, 2], [1, 3, 2]])
    seam = torch.tensor([[0, 1, 2], [4, 3, 5]])
    # by position, edge opposite corner k: face 0's edge (1, 2) is opposite corner 0; face 1's opposite corner 1
    want = torch.tensor([[1, -1, -1], [-1, 0, -1]])
    assert torch.equal(neighbours_opposite_corners(v, shared), want)
    assert torch.equal(neighbours_opposite_corners(v, seam), want)  # positions welded
    # by index, edge k from corner k to k + 1: face 0's (1, 2) is edge 1; face 1's (2, 1) is edge 2
    assert torch.equal(neighbours_across_edges(shared, 6), torch.tensor([[-1, 1, -1], [-1, -1, 0]]))
    assert torch.equal(neighbours_across_edges(seam, 6), torch.full((2, 3), -1))  # a seam is a boundary
