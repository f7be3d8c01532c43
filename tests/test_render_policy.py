"""The API policy at the renderers' and point functions' entry points (docs/geom3d.md): render_gl
(GL and its rasterizer fallback), raycast, splat and depth_to_points follow the dtype rule
(floating inputs, cameras included, promote to their common dtype; integers become float32), the
batch rule (cameras of batch shape S give results of leading shape S; M meshes pair with the
first camera dimension) and take a mesh as a `Mesh` or a (vertices, faces) pair alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geom3d
from geom3d import GeometryError, depth_to_points, raycast, render_gl, splat

F32, F64 = torch.float32, torch.float64
SIZE = (12, 16)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BACKENDS = ["raster"] + (["gl"] if geom3d.gl_available() else [])
DTYPE_PAIRS = [(F32, F32, F32), (F32, F64, F64), (F64, F32, F64), (F64, F64, F64), (torch.int64, F32, F32),
               (torch.int64, F64, F64)]


def _box() -> geom3d.Mesh:
    return geom3d.cuboid_mesh([-0.3, -0.4, -0.2], [0.3, 0.4, 0.2], 40)


def _cameras(shape=(), dtype=F32, distance=2.2) -> geom3d.Cameras:
    n = int(np.prod(shape)) if shape else 1
    azimuth = torch.linspace(0.3, 5.5, n, dtype=dtype).reshape(shape)
    return geom3d.viewpoint_to_cameras(azimuth, 0.3, 0.05, distance, 1.0, 20.0, image_size=SIZE)


def _vertices(dtype):
    """The box in `dtype`; int64 vertices are whole numbers (a box of half-size 2, seen from 9)."""
    v = _box().vertices.double()
    return ((v * 5).round().to(dtype) if dtype == torch.int64 else v.to(dtype)), _box().faces


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("vertex_dtype", "camera_dtype", "expected"), DTYPE_PAIRS)
def test_render_gl_promotes(backend, vertex_dtype, camera_dtype, expected):
    v, f = _vertices(vertex_dtype)
    cams = _cameras((2,), camera_dtype, 9.0 if vertex_dtype == torch.int64 else 2.2)
    out = render_gl((v, f), cams, backend=backend)
    assert out.mask.any()
    assert out.rgb.dtype == out.depth.dtype == out.normal.dtype == expected
    assert out.face_id.dtype == torch.int64 and out.mask.dtype == torch.bool


@pytest.mark.parametrize(("vertex_dtype", "camera_dtype", "expected"), DTYPE_PAIRS)
def test_raycast_promotes(vertex_dtype, camera_dtype, expected):
    v, f = _vertices(vertex_dtype)
    hits = raycast((v, f), _cameras((2,), camera_dtype, 9.0 if vertex_dtype == torch.int64 else 2.2))
    assert (hits.pix_to_face >= 0).any() and hits.depth.dtype == expected


@pytest.mark.parametrize(("point_dtype", "camera_dtype", "expected"), DTYPE_PAIRS)
def test_splat_and_depth_to_points_promote(point_dtype, camera_dtype, expected):
    cams = _cameras((2,), camera_dtype, 9.0)
    points = (torch.rand(200, 3, generator=torch.Generator().manual_seed(0)) * 4 - 2).round().to(point_dtype)
    out = splat(points, None, cams)
    assert out.mask.any() and out.depth.dtype == out.rgb.dtype == expected
    # depth maps: float32 or float64, uint8 colours never count
    depth = torch.full((2, *SIZE), 3.0, dtype=F32 if point_dtype == torch.int64 else point_dtype)
    cloud = depth_to_points(depth, cams, torch.zeros(*SIZE, 3, dtype=torch.uint8))
    assert cloud.points.dtype == cloud.colors.dtype == torch.promote_types(depth.dtype, camera_dtype)


def test_float64_cameras_keep_float64_depths():
    """A float64 camera 1e4 units away: float32 would lose the millimetre."""
    K = geom3d.intrinsics_matrix(20.0, 20.0, 7.5, 5.5, dtype=F64)
    cam = geom3d.Cameras(K, torch.eye(3, dtype=F64), torch.tensor([0.0, 0.0, 1e4], dtype=F64), SIZE)
    depth = torch.full(SIZE, 1e4 + 1e-3, dtype=F64)
    cloud = depth_to_points(depth, cam)
    assert cloud.points.dtype == F64 and torch.allclose(cloud.points[:, 2], torch.full((1,), 1e-3, dtype=F64))
    out = splat(cloud.points.float(), None, cam, radius=0.5)
    assert out.depth.dtype == F64 and out.mask.all()


# ---------------------------------------------------------------- batch shapes
@pytest.mark.parametrize("shape", [(), (2,), (2, 3)])
def test_results_have_the_cameras_batch_shape(shape):
    mesh, cams = _box(), _cameras(shape)
    for backend in BACKENDS:
        out = render_gl(mesh, cams, backend=backend, outputs=("rgb", "depth", "face_id"))
        assert out.rgb.shape == (*shape, *SIZE, 3) and out.depth.shape == (*shape, *SIZE)
        assert out.mask is None and out.normal is None  # not asked for
    hits = raycast(mesh, cams)
    assert hits.pix_to_face.shape == hits.depth.shape == (*shape, *SIZE)
    reference = geom3d.rasterize(mesh, cams)
    assert (hits.pix_to_face != reference.pix_to_face).float().mean() < 0.01
    cloud = depth_to_points(reference.depth, cams)
    assert cloud.points.shape[0] == int(reference.mask.sum())
    views = cams.reshape(-1)
    rows = cloud.view
    uv = views[rows].project(cloud.points[:, None])[:, 0]
    assert torch.allclose(uv, cloud.pixel.flip(-1).float(), atol=1e-3)
    splats = splat(cloud.points, None, cams, radius=0.5)
    assert splats.mask.shape == (*shape, *SIZE) and (splats.mask >= reference.mask).all()


def test_meshes_pair_with_the_first_camera_dimension():
    """(M, V, 3) vertices under cameras (M, P): row m shows mesh m, as rendering it alone does."""
    mesh = _box()
    vertices = torch.stack([mesh.vertices, 0.6 * mesh.vertices])
    cams = _cameras((2, 3))
    hits = raycast((vertices, mesh.faces), cams)
    for backend in BACKENDS:
        out = render_gl((vertices, mesh.faces), cams, backend=backend, outputs=("depth", "face_id"))
        assert out.face_id.shape == (2, 3, *SIZE)
        for m in range(2):
            alone = render_gl((vertices[m], mesh.faces), cams[m], backend=backend, outputs=("depth", "face_id"))
            assert torch.equal(out.face_id[m], alone.face_id)
        assert (out.face_id != hits.pix_to_face).float().mean() < 0.01
    # a padded bank of different meshes: face ids index each mesh's own faces
    small = geom3d.cuboid_mesh([-0.1, -0.1, -0.1], [0.1, 0.1, 0.1], 20)
    bank = geom3d.pad_meshes([mesh, small])
    out = render_gl(bank, _cameras(), outputs=("face_id",))
    assert out.face_id.shape == (2, *SIZE) and int(out.face_id[1].max()) < small.num_faces
    assert torch.equal(raycast(bank, _cameras()).pix_to_face[1], raycast(small, _cameras()).pix_to_face)
    with pytest.raises(GeometryError, match="batch"):
        render_gl((torch.stack([mesh.vertices] * 3), mesh.faces), _cameras((2,)))


# ---------------------------------------------------------------- mesh passing and canvas
def test_a_mesh_and_its_vertices_and_faces_render_alike():
    mesh, cams = _box(), _cameras((2,))
    for backend in BACKENDS:
        a = render_gl(mesh, cams, backend=backend)
        b = render_gl((mesh.vertices, mesh.faces), cams, backend=backend)
        for key in geom3d.gl.RENDER_OUTPUTS:
            assert torch.equal(getattr(a, key), getattr(b, key)), (backend, key)
    assert torch.equal(raycast(mesh, cams).depth, raycast((mesh.vertices, mesh.faces), cams).depth)
    for call in (lambda: render_gl(42, cams), lambda: raycast("mesh", cams)):
        with pytest.raises(GeometryError, match="Mesh"):
            call()


def test_image_size_must_be_the_cameras_canvas():
    mesh, cams = _box(), _cameras((2,))
    assert render_gl(mesh, cams, SIZE, outputs=("mask",)).mask.shape == (2, *SIZE)
    for call in (lambda: render_gl(mesh, cams, (13, 16)), lambda: raycast(mesh, cams, (13, 16)),
                 lambda: splat(torch.zeros(1, 3), None, cams, (12, 17))):
        with pytest.raises(GeometryError, match="image_size"):
            call()


@pytest.mark.parametrize("device", DEVICES)
def test_outputs_on_the_inputs_device(device):
    mesh = _box().to(device=device)
    cams = _cameras((2,)).to(device=device)
    out = render_gl(mesh, cams, backend="raster")
    assert out.rgb.device.type == out.face_id.device.type == device
    cloud = depth_to_points(out.depth, cams, out.rgb)
    assert cloud.points.device.type == cloud.view.device.type == device
    assert splat(cloud.points, cloud.colors, cams).rgb.device.type == device
    assert raycast(mesh, cams).depth.device.type == device


def test_sample_texture_promotes_and_is_differentiable():
    tex = torch.rand(4, 6, 3, dtype=F64, requires_grad=True)
    uv = torch.rand(5, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, u: geom3d.sample_texture(t, u, "linear"), (tex, uv))
    texels = torch.randint(0, 256, (4, 6, 3), dtype=torch.uint8)
    assert geom3d.sample_texture(texels, uv.float()).dtype == F32
    assert geom3d.sample_texture(texels, uv).dtype == F64
    assert geom3d.sample_texture(texels.float(), uv.float(), "nearest").dtype == F32
    with pytest.raises(GeometryError, match="texture_filter"):
        geom3d.sample_texture(texels, uv, "cubic")
