"""geom3d's API policy over its public non-rendering functions (docs/geom3d.md, "Dtypes and batch shapes").

Dtype rule: floating inputs (tensors, numpy arrays, the cameras' tensors) promote to their common
dtype; numbers, lists and integer tensors are weak; no floating input at all gives float32.
Batch rule: whatever takes `Cameras` accepts any batch shape and returns results with it.
The renderers test their own policy (tests/test_raster.py, test_points.py, test_gl.py).
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import data3d
import geom3d
from geom3d import Cameras, GeometryError

F32, F64 = torch.float32, torch.float64
ROOT = Path(__file__).resolve().parents[1]

# Integer-valued data, so that every input kind (integer tensors included) carries the same values.
POINTS = np.array([[1, 2, 3], [-2, 1, 4], [0, -1, 6], [3, 3, 2]], dtype=np.float64)  # (N, 3) world
PIXELS = np.array([[10, 20], [31, 5], [0, 47], [63, 24]], dtype=np.float64)  # (N, 2)
DEPTHS = np.array([2, 3, 5, 7], dtype=np.float64)  # (N,)
ROT = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)  # a quarter turn about z
ROT2 = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)  # a quarter turn about x
K = np.array([[100, 0, 32], [0, 100, 24], [0, 0, 1]], dtype=np.float64)
T = np.array([1, 0, 10], dtype=np.float64)
SIZE = (48, 64)

KINDS = ["float32", "float64", "int", "numpy64", "list"]


def cast(x: np.ndarray, kind: str):
    return {
        "float32": lambda: torch.tensor(x, dtype=F32),
        "float64": lambda: torch.tensor(x, dtype=F64),
        "int": lambda: torch.tensor(x).long(),
        "numpy64": lambda: np.array(x, dtype=np.float64),
        "list": lambda: x.tolist(),
    }[kind]()


def strong(kind: str) -> torch.dtype | None:
    return {"float32": F32, "float64": F64, "numpy64": F64}.get(kind)


def expected(*kinds: str) -> torch.dtype:
    dtypes = [d for d in map(strong, kinds) if d is not None]
    out = dtypes[0] if dtypes else F32
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    return out


def camera(kind: str) -> Cameras:
    return Cameras(cast(K, kind), cast(ROT, kind), cast(T, kind), SIZE)


# name -> (function of (data argument, other argument), data array, other builder, reference dtype pair)
def _spec():
    cam = camera
    return {
        "Cameras.project": (lambda p, c: c.project(p), POINTS, cam),
        "Cameras.world_to_camera": (lambda p, c: c.world_to_camera(p), POINTS, cam),
        "Cameras.camera_to_world": (lambda p, c: c.camera_to_world(p), POINTS, cam),
        "Cameras.camera_to_pixels": (lambda p, c: c.camera_to_pixels(p), POINTS + [0, 0, 10], cam),
        "Cameras.unproject_points": (lambda px, c: c.unproject_points(px, DEPTHS.tolist()), PIXELS, cam),
        "Cameras.unproject": (lambda d, c: c.unproject(d), np.full(SIZE, 3.0), cam),
        "Cameras.crop": (lambda left, c: c.crop(left, 2, 20, 30).K, np.array(5.0), cam),
        "Cameras()": (lambda k, r: Cameras(k, r, [0, 0, 4], SIZE).K, K, lambda kind: cast(ROT, kind)),
        "geodesic_distance": (lambda a, b: geom3d.geodesic_distance(a, b), ROT, lambda kind: cast(ROT2, kind)),
        "pose_error": (lambda a, b: geom3d.pose_error(a, b), ROT, lambda kind: cast(ROT2, kind)),
        "viewpoint_to_cameras": (lambda a, d: geom3d.viewpoint_to_cameras(a, 0, 0, d, 1, 100, image_size=SIZE).R,
                                 np.array([1.0, 2.0]), lambda kind: cast(np.array(5.0), kind)),
        "viewpoint_to_rotation": (lambda a, e: geom3d.viewpoint_to_rotation(a, e, 0), np.array([1.0, 2.0]),
                                  lambda kind: cast(np.array(1.0), kind)),
        "look_at_rotation": (lambda eye, target: geom3d.look_at_rotation(eye, target), np.array([3.0, -4.0, 2.0]),
                             lambda kind: cast(np.zeros(3), kind)),
        "intrinsics_matrix": (lambda f, c: geom3d.intrinsics_matrix(f, f, c, c), np.array(100.0),
                              lambda kind: cast(np.array(20.0), kind)),
        "blender_to_viewpoint": (lambda th, d: geom3d.blender_to_viewpoint(th, 1, d)["azimuth"], np.array(2.0),
                                 lambda kind: cast(np.array(3.0), kind)),
    }


SPECS = _spec()


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("kind_a", KINDS)
@pytest.mark.parametrize("kind_b", ["float32", "float64", "int"])
def test_dtype_rule_over_input_kinds(name, kind_a, kind_b):
    fn, data, other = SPECS[name]
    out = fn(cast(data, kind_a), other(kind_b))
    want = expected(kind_a, kind_b)
    assert isinstance(out, torch.Tensor) and out.dtype == want, (name, kind_a, kind_b, out.dtype)
    ref = fn(cast(data, "float64"), other("float64"))
    tol = 1e-12 if want == F64 else 1e-4
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


SINGLE = {
    "axis_angle_to_matrix": (geom3d.axis_angle_to_matrix, np.array([0.0, 0.0, 1.0])),
    "matrix_to_axis_angle": (geom3d.matrix_to_axis_angle, ROT),
    "quat_wxyz_to_matrix": (geom3d.quat_wxyz_to_matrix, np.array([1.0, 1.0, 0.0, 0.0])),
    "matrix_to_quat_wxyz": (geom3d.matrix_to_quat_wxyz, ROT),
    "rotation_6d_to_matrix": (geom3d.rotation_6d_to_matrix, np.array([1.0, 0, 0, 0, 1, 0])),
    "matrix_to_rotation_6d": (geom3d.matrix_to_rotation_6d, ROT),
    "project_to_rotation": (geom3d.project_to_rotation, ROT * 2),
    "rotation_residual": (geom3d.rotation_residual, ROT),
    "rotation_to_viewpoint": (lambda R: geom3d.rotation_to_viewpoint(R)["elevation"], ROT),
    "wrap_angle": (geom3d.wrap_angle, np.array([4.0, -4.0])),
    "wrap_azimuth": (geom3d.wrap_azimuth, np.array([7.0, -1.0])),
}


@pytest.mark.parametrize("name", sorted(SINGLE))
@pytest.mark.parametrize("kind", KINDS)
def test_single_input_functions_keep_floating_dtype(name, kind):
    fn, data = SINGLE[name]
    out = fn(cast(data, kind))
    assert isinstance(out, torch.Tensor) and out.dtype == expected(kind)
    torch.testing.assert_close(out.double(), fn(cast(data, "float64")), rtol=1e-6, atol=1e-6)


def test_float64_cameras_never_become_float32():
    cam = camera("float64")
    assert cam.project(torch.tensor(POINTS, dtype=F32)).dtype == F64
    assert cam.unproject(torch.ones(SIZE)).dtype == F64
    assert cam.crop(1, 1, 10, 10).dtype == F64 and cam.resize((24, 32)).dtype == F64
    assert geom3d.cameras_to_viewpoint(geom3d.viewpoint_to_cameras(
        torch.tensor(0.5, dtype=F64), 0.1, 0.2, 4.0, image_size=SIZE))["focal"].dtype == F64


def _batched_camera(shape: tuple[int, ...]) -> Cameras:
    n = int(np.prod(shape)) if shape else 1
    a = torch.linspace(0.0, 5.0, n, dtype=F64).reshape(shape)
    return geom3d.viewpoint_to_cameras(a, 0.3, 0.1, 6.0, 1.0, 100.0, image_size=SIZE)


@pytest.mark.parametrize("shape", [(), (3,), (3, 2)])
def test_batch_rule(shape):
    cams = _batched_camera(shape)
    assert cams.batch_shape == shape
    pts = torch.tensor(POINTS, dtype=F64) * 0.1
    assert cams.project(pts).shape == (*shape, 4, 2)
    assert cams.project(pts.expand(*shape, 4, 3)).shape == (*shape, 4, 2)
    assert cams.world_to_camera(pts).shape == (*shape, 4, 3)
    assert cams.unproject_points(torch.tensor(PIXELS), torch.tensor(DEPTHS)).shape == (*shape, 4, 3)
    assert cams.unproject(torch.full(SIZE, 2.0)).shape == (*shape, *SIZE, 3)
    assert cams.unproject(torch.full((*shape, *SIZE), 2.0)).shape == (*shape, *SIZE, 3)
    assert geom3d.geodesic_distance(cams.R, torch.eye(3)).shape == shape
    assert geom3d.pose_error(cams.R, cams.R).shape == shape
    assert geom3d.rotation_to_viewpoint(cams.R)["azimuth"].shape == shape
    assert geom3d.cameras_to_viewpoint(cams)["distance"].shape == shape
    assert cams.crop(1, 2, 10, 12).batch_shape == shape and cams.resize((24, 32)).batch_shape == shape
    for to, back in [(geom3d.cameras_to_opengl, geom3d.opengl_to_cameras),
                     (geom3d.cameras_to_colmap, geom3d.colmap_to_cameras)]:
        assert back(**to(cams)).batch_shape == shape
    if shape:
        # batch indexing touches the batch dimensions only
        assert cams[0].batch_shape == shape[1:]
        assert cams[..., 0].batch_shape == shape[:-1]
        torch.testing.assert_close(cams[..., -1].R, cams.R[..., -1, :, :])


def test_unproject_broadcasts_one_depth_against_batched_cameras():
    cams = _batched_camera((3,))
    depth = torch.rand(SIZE, generator=torch.Generator().manual_seed(0), dtype=F64) + 2.0
    world = cams.unproject(depth)
    for b in range(3):
        torch.testing.assert_close(world[b], cams[b].unproject(depth))
    uv, z = cams.project(world.reshape(3, -1, 3), return_depth=True)
    torch.testing.assert_close(z, depth.reshape(1, -1).expand(3, -1))
    torch.testing.assert_close(uv, geom3d.pixel_grid(SIZE, dtype=F64).reshape(1, -1, 2).expand(3, -1, 2))


def test_indexing_more_dimensions_than_the_batch_is_an_error():
    with pytest.raises(IndexError, match="batch shape"):
        _batched_camera((3,))[0, 0]
    with pytest.raises(IndexError):
        _batched_camera(())[0]


def test_non_numeric_input_is_a_geometry_error():
    with pytest.raises(GeometryError, match="expected numbers"):
        camera("float32").project("points")
    with pytest.raises(GeometryError, match="image_size"):
        geom3d.viewpoint_to_cameras(0.0, 0.0, 0.0, 5.0, image_size=(10.5, 10))
    with pytest.raises(GeometryError, match=r"\(\.\.\., N, 3\)"):
        camera("float32").project(torch.zeros(4, 2))


@pytest.mark.parametrize("package", [geom3d, data3d])
def test_all_lists_the_api_not_submodules(package):
    """`__all__` equals the names the package's __init__ imports from its modules, and holds no module."""
    init = Path(package.__file__)
    imported = {alias.asname or alias.name for node in ast.parse(init.read_text()).body
                if isinstance(node, ast.ImportFrom) and node.level == 1 for alias in node.names}
    imported = {n for n in imported if not n.startswith("_")}
    assert set(package.__all__) == imported, "add the new import's names to __all__ (or the reverse)"
    assert len(package.__all__) == len(set(package.__all__))
    for name in package.__all__:
        assert not isinstance(getattr(package, name), types.ModuleType), name
    namespace: dict = {}
    exec(f"from {package.__name__} import *", namespace)
    assert {n for n in namespace if n != "__builtins__"} == set(package.__all__)
