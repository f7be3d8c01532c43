"""One meaning per name (issue 22): no package exports a name that is also one of its submodules
(the function would hide the module: `import pkg.name as m` and `mock.patch("pkg.name.x")` would reach
the function), renamed functions and arguments still answer to their old names with a warning, and
the two neighbour tables of geom3d say which they are."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import types

import pytest
import torch

PACKAGES = ["geom3d", "data3d", "datagen", "nemo", "pose", "orbit4d", "methodkit", "aware3d_utils", "aware3d"]


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
            if info.name == "__main__":  # runs the command line
                continue
            importlib.import_module(f"{package.__name__}.{info.name}")
            value = getattr(package, info.name, None)
            if value is not None and not isinstance(value, types.ModuleType):
                hidden.append(f"{package.__name__}.{info.name} is a {type(value).__name__}, not the module")
    assert not hidden, hidden


def _public(root: str):
    """(dotted name, object) of every name in the `__all__` of every module under `root`, with the
    public methods of its classes."""
    for package in _packages(root):
        modules = [package] + [importlib.import_module(f"{package.__name__}.{i.name}")
                               for i in pkgutil.iter_modules(package.__path__) if i.name != "__main__" and not i.ispkg]
        for module in modules:
            for name in getattr(module, "__all__", []):
                obj = getattr(module, name)
                yield f"{module.__name__}.{name}", obj
                if inspect.isclass(obj):
                    yield from ((f"{module.__name__}.{name}.{k}", v) for k, v in vars(obj).items()
                                if (k == "__init__" or not k.startswith("_")) and not isinstance(v, property))


@pytest.mark.parametrize("root", PACKAGES)
def test_identifiers_spell_color_and_centre(root):
    """Names, parameters and dataclass fields of the public API (deprecated aliases aside)."""
    wrong = re.compile(r"colour|center", re.IGNORECASE)
    found = set()
    for where, obj in _public(root):
        names = [where.rsplit(".", 1)[1]]
        if dataclasses.is_dataclass(obj) and inspect.isclass(obj):
            names += [f.name for f in dataclasses.fields(obj)]
        if callable(obj):
            try:
                names += list(inspect.signature(obj).parameters)
            except (TypeError, ValueError):
                pass
        found.update(f"{where}: {n}" for n in names if wrong.search(n))
    assert not found, sorted(found)


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


def _view():
    import data3d

    vp = data3d.Viewpoint(azimuth=0.3, elevation=0.2, theta=0.0, distance=5.0, focal=1.0, viewport=100.0, px=20.0,
                          py=14.0)
    image = torch.arange(3 * 30 * 40, dtype=torch.float32).reshape(3, 30, 40) / 3600.0
    return data3d.ObjectView(image=image, bbox=(5.0, 4.0, 31.0, 22.0), viewpoint=vp)


def test_centre_is_the_spelling_and_center_still_answers_with_a_warning():
    from data3d.transforms import warp_object

    view = _view()
    new = warp_object(view, (16, 16), 1.0, centre="bbox")
    with pytest.warns(DeprecationWarning, match="center= is renamed centre="):
        old = warp_object(view, (16, 16), 1.0, center="bbox")
    assert torch.equal(new.image, old.image) and new.bbox == old.bbox
    assert not torch.equal(warp_object(view, (16, 16), 1.0, centre="principal").image, new.image)
    with pytest.raises(TypeError, match="give centre= only"):
        warp_object(view, (16, 16), 1.0, centre="bbox", center="bbox")

    import geom3d

    cam = geom3d.viewpoint_to_cameras(0.3, 0.2, 0.0, 5.0, image_size=(32, 32))
    path = geom3d.arc_path(cam, centre_depth=5.0, num_frames=4, yaw=0.5)
    with pytest.warns(DeprecationWarning, match="center_depth= is renamed centre_depth="):
        old_path = geom3d.preset_path("arc_yaw_28p6478897565412", cam, center_depth=5.0, num_frames=4)
    torch.testing.assert_close(old_path.cameras.R, path.cameras.R)

    from orbit4d.box_rule import BoxRuleFit

    fit = BoxRuleFit(1.0, 2.0, torch.zeros(3).numpy(), 0.25)
    with pytest.warns(DeprecationWarning, match="renamed centre_x"):
        assert fit.center_x == fit.centre_x == 0.25


def test_the_old_object_mask_names_warn_and_call_the_new_functions():
    import numpy as np

    from orbit4d import completion

    image = np.full((20, 20, 3), 255, np.uint8)
    image[4:12, 5:15] = 30
    with pytest.warns(DeprecationWarning, match="object_mask is renamed largest_non_white_region"):
        old = completion.object_mask(image, erode=0)
    assert np.array_equal(old, completion.largest_non_white_region(image, erode=0)) and old.sum() == 80

    from nemo.incremental import compress

    assert compress.object_mask.__wrapped__ is compress.silhouette_or_box


def test_color_is_the_spelling_and_the_colour_names_still_answer():
    import numpy as np

    from aware3d.view import common
    from data3d.procedural import primitives as P
    from datagen import compose, randomize

    new = P.box((1, 2, 3), color=(0.5, 0.25, 0.0))
    with pytest.warns(DeprecationWarning, match="colour= is renamed color="):
        old = P.box((1, 2, 3), colour=(0.5, 0.25, 0.0))
    assert torch.equal(new.vertex_colors, old.vertex_colors) and torch.equal(new.vertices, old.vertices)
    with pytest.warns(DeprecationWarning, match="recolour is renamed recolor"):
        grey = P.recolour(new, (0.5, 0.5, 0.5))
    assert torch.equal(grey.vertex_colors, P.recolor(new, colors=(0.5, 0.5, 0.5)).vertex_colors)
    with pytest.warns(DeprecationWarning):
        assert np.array_equal(randomize.random_colour(np.random.default_rng(3)),
                              randomize.random_color(np.random.default_rng(3)))
    mask = np.eye(4, dtype=bool)
    with pytest.warns(DeprecationWarning):
        assert np.array_equal(compose.compose_image(colour=np.ones((4, 4, 3)), mask=mask, background=None),
                              compose.compose_image(np.ones((4, 4, 3)), mask, None))
    with pytest.warns(DeprecationWarning):
        assert common.colour_of(5) == common.color_of(5)
