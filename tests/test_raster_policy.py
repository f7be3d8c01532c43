"""The API policy at geom3d.raster's entry points (docs/geom3d.md): the dtype rule (floating inputs,
cameras included, promote to their common dtype; numbers, lists, numpy and integer tensors are
accepted, integers becoming the default float) and the batch rule (cameras of batch shape (),
(B,) or (M, P) give results of that leading shape), on every device present."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geom3d
from geom3d import GeometryError
from geom3d.raster import (
    antialias,
    fragments_for_faces,
    interpolate,
    interpolate_sparse,
    pad_meshes,
    rasterize,
    soft_silhouette,
    vertex_visibility,
    visible_faces,
)

F32, F64 = torch.float32, torch.float64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SIZE = (12, 16)


def _box(dtype=F32):
    mesh = geom3d.cuboid_mesh([-0.3, -0.4, -0.2], [0.3, 0.4, 0.2], 40)
    return mesh.vertices.to(dtype), mesh.faces


def _cameras(shape=(), dtype=F32) -> geom3d.Cameras:
    n = int(np.prod(shape)) if shape else 1
    azimuth = torch.linspace(0.3, 5.5, n, dtype=dtype).reshape(shape)
    return geom3d.viewpoint_to_cameras(azimuth, 0.3, 0.05, 2.2, 1.0, 20.0, image_size=SIZE)


# ---------------------------------------------------------------- dtypes
# (vertex dtype, camera dtype) -> result dtype; int64 vertices are whole numbers (a 2-unit box)
DTYPE_PAIRS = [(F32, F32, F32), (F32, F64, F64), (F64, F32, F64), (F64, F64, F64), (torch.int64, F32, F32),
               (torch.int64, F64, F64)]


def _vertices(dtype):
    v, f = _box(F64)
    return ((v * 5).round().to(dtype) if dtype == torch.int64 else v.to(dtype)), f


@pytest.mark.parametrize(("vertex_dtype", "camera_dtype", "expected"), DTYPE_PAIRS)
def test_results_take_the_promoted_dtype(vertex_dtype, camera_dtype, expected):
    v, f = _vertices(vertex_dtype)
    cams = _cameras((2,), camera_dtype)
    if vertex_dtype == torch.int64:  # whole-number box of half-size 2: move the cameras back
        cams = geom3d.viewpoint_to_cameras(torch.tensor([0.3, 2.0], dtype=camera_dtype), 0.3, 0.05, 9.0, 1.0, 20.0,
                                           image_size=SIZE)
    fr = rasterize((v, f), cams)
    assert fr.mask.any()
    assert fr.depth.dtype == expected and fr.bary.dtype == expected
    assert fragments_for_faces((v, f), cams, pix_to_face=fr.pix_to_face).depth.dtype == expected
    assert soft_silhouette((v, f), cams).dtype == expected
    seen = vertex_visibility((v, f), cams)
    assert seen.uv.dtype == expected and seen.depth.dtype == expected and seen.visible.dtype == torch.bool
    assert antialias(fr.mask[..., None].float(), fr, (v, f), cams).dtype == expected
    # float64 cameras never become float32: the depth matches the float64 computation to float64 precision
    if expected == F64:
        exact = cams.to(dtype=F64).world_to_camera(v.to(F64))[..., 2]
        torch.testing.assert_close(seen.depth, exact, rtol=1e-14, atol=0)


@pytest.mark.parametrize(("attribute_dtype", "bary_dtype", "expected"),
                         [(F32, F32, F32), (F64, F32, F64), (F32, F64, F64), (torch.int64, F32, F32),
                          (torch.int64, F64, F64)])
def test_interpolate_promotes_attributes_and_barycentrics(attribute_dtype, bary_dtype, expected):
    v, f = _box(bary_dtype)
    fr = rasterize((v, f), _cameras((2,), bary_dtype))
    attributes = torch.arange(v.shape[0] * 2).reshape(-1, 2).to(attribute_dtype)
    assert interpolate(fr, attributes).dtype == expected
    assert interpolate(fr, attributes, channels_first=True).dtype == expected
    assert interpolate_sparse(fr, attributes).values.dtype == expected
    table = attributes[None].expand(3, -1, -1)
    assert interpolate(fr, table, torch.tensor([2, 0])).dtype == expected


def test_numbers_lists_and_numpy_are_accepted():
    corners = [[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]]
    cam = geom3d.Cameras(geom3d.intrinsics_matrix(10.0, 10.0, 7.5, 5.5), torch.eye(3), torch.zeros(3), SIZE)
    reference = rasterize((torch.tensor(corners), torch.tensor([[0, 1, 2]])), cam)
    for mesh in [(corners, [[0, 1, 2]]), (np.array(corners), np.array([[0, 1, 2]], dtype=np.int32)),
                 (np.array(corners, dtype=np.float64), [[0, 1, 2]])]:
        fr = rasterize(mesh, cam)
        assert torch.equal(fr.pix_to_face, reference.pix_to_face)
        assert fr.depth.dtype == torch.promote_types(torch.as_tensor(mesh[0]).dtype, F32)
    whole = rasterize(([[-1, -1, 4], [1, -1, 4], [0, 1, 4]], [[0, 1, 2]]), cam)  # integer vertices
    assert whole.depth.dtype == F32 and whole.mask.any()
    values = interpolate(reference, [[1.0], [2.0], [3.0]])
    assert values.shape == (*SIZE, 1) and values[reference.mask].min() >= 1
    with pytest.raises(GeometryError, match="faces must be an integer"):
        rasterize((corners, [[0.0, 1.0, 2.0]]), cam)
    with pytest.raises(GeometryError, match="real numbers"):
        rasterize((torch.ones(3, 3, dtype=torch.bool), [[0, 1, 2]]), cam)


def test_pad_meshes_promotes():
    a, fa = _box(F32)
    b, fb = _box(F64)
    bank = pad_meshes([(a, fa), (b[:20], fb[fb.max(1).values < 20])])
    assert bank.vertices.dtype == F64 and bank.faces.dtype == torch.int64
    assert bank.vertex_counts.tolist() == [a.shape[0], 20]


# ---------------------------------------------------------------- batch shapes
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_results_have_the_cameras_batch_shape(shape, device):
    v, f = (x.to(device) for x in _box())
    cams = _cameras(shape).to(device=device)
    fr = rasterize((v, f), cams)
    H, W = SIZE
    assert fr.batch_shape == shape and fr.pix_to_face.shape == (*shape, H, W)
    assert fr.depth.shape == (*shape, H, W) and fr.bary.shape == (*shape, H, W, 3)
    assert fr.depth.device.type == device
    assert visible_faces((v, f), cams).shape == (*shape, H, W)
    assert soft_silhouette((v, f), cams).shape == (*shape, H, W)
    seen = vertex_visibility((v, f), cams)
    assert seen.uv.shape == (*shape, v.shape[0], 2) and seen.visible.shape == (*shape, v.shape[0])
    features = torch.randn(v.shape[0], 5, device=device)
    assert interpolate(fr, features).shape == (*shape, H, W, 5)
    assert interpolate(fr, features, channels_first=True).shape == (*shape, 5, H, W)
    assert interpolate_sparse(fr, features).to_dense().shape == (*shape, H, W, 5)
    assert antialias(interpolate(fr, features), fr, (v, f), cams).shape == (*shape, H, W, 5)
    # every view equals its camera rendered alone
    flat = cams.reshape(-1)
    for b in range(flat.batch_shape[0]):
        alone = rasterize((v, f), flat[b])
        assert torch.equal(alone.pix_to_face, fr.pix_to_face.reshape(-1, H, W)[b])
        torch.testing.assert_close(vertex_visibility((v, f), flat[b]).uv, seen.uv.reshape(-1, v.shape[0], 2)[b])


def test_cameras_index_batch_dimensions_only():
    cams = _cameras((2, 3))
    v, f = _box()
    fr = rasterize((v, f), cams)
    assert torch.equal(rasterize((v, f), cams[1]).pix_to_face, fr.pix_to_face[1])
    assert torch.equal(rasterize((v, f), cams[:, 2]).pix_to_face, fr.pix_to_face[:, 2])


def test_meshes_pair_with_the_first_camera_dimension():
    v, f = _box()
    meshes = torch.stack([v, 0.8 * v])
    for shape, expected in [((), (2,)), ((2,), (2,)), ((1, 3), (2, 3)), ((2, 3), (2, 3))]:
        fr = rasterize((meshes, f), _cameras(shape))
        assert fr.batch_shape == expected
        assert vertex_visibility((meshes, f), _cameras(shape)).visible.shape == (*expected, v.shape[0])
        assert soft_silhouette((meshes, f), _cameras(shape)).shape == (*expected, *SIZE)
    with pytest.raises(GeometryError, match="batch sizes do not match"):
        rasterize((meshes, f), _cameras((3,)))
    with pytest.raises(GeometryError, match="batch sizes do not match"):
        rasterize((meshes, torch.stack([f, f, f])), _cameras((2,)))
