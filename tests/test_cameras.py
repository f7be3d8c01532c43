"""Cameras: projection against kornia and Open3D, unprojection, image-space edits, validation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

import geom3d
from aware3d_utils import available
from geom3d import Cameras, GeometryError

F64 = torch.float64


def random_cameras(n, dtype=torch.float32, seed=0, size=(120, 160)):
    g = torch.Generator().manual_seed(seed)
    R = geom3d.random_rotations(n, generator=g, dtype=dtype)
    t = torch.randn(n, 3, generator=g, dtype=dtype)
    t[:, 2] += 6.0
    f = torch.rand(n, 2, generator=g, dtype=dtype) * 200 + 100
    c = torch.rand(n, 2, generator=g, dtype=dtype) * torch.tensor([size[1], size[0]], dtype=dtype)
    K = geom3d.intrinsics_matrix(f[:, 0], f[:, 1], c[:, 0], c[:, 1])
    return Cameras(K, R, t, size)


def _points_in_front(cams: Cameras, n: int, seed: int) -> torch.Tensor:
    """World points (B, n, 3) that every camera sees at depth 2-10 inside its image (well conditioned)."""
    g = torch.Generator().manual_seed(seed)
    h, w = cams.image_size
    uv = torch.rand(*cams.batch_shape, n, 2, generator=g, dtype=cams.dtype) * torch.tensor([w, h], dtype=cams.dtype)
    depth = torch.rand(*cams.batch_shape, n, generator=g, dtype=cams.dtype) * 8 + 2
    return cams.unproject_points(uv - 0.5, depth)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_matches_kornia(dtype):
    kornia = pytest.importorskip("kornia")
    cams = random_cameras(4, dtype)
    pts = _points_in_front(cams, 500, seed=2)
    uv = cams.project(pts)
    assert uv.shape == (4, 500, 2) and uv.dtype == dtype
    E = torch.eye(4, dtype=dtype).repeat(4, 1, 1)
    E[:, :3, :3], E[:, :3, 3] = cams.R, cams.t
    cam_pts = kornia.geometry.linalg.transform_points(E, pts)
    expected = kornia.geometry.camera.project_points(cam_pts, cams.K[:, None])
    # pixels are O(10^2): float32 agrees to a few ulps of that, float64 to ~1e-12 px
    if dtype == torch.float32:
        torch.testing.assert_close(uv, expected, rtol=1e-5, atol=1e-3)
    else:
        torch.testing.assert_close(uv, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unproject_matches_kornia_and_round_trips(dtype):
    kornia = pytest.importorskip("kornia")
    cams = random_cameras(3, dtype, seed=1)
    g = torch.Generator().manual_seed(3)
    uv = torch.rand(3, 400, 2, generator=g, dtype=dtype) * 100
    depth = torch.rand(3, 400, generator=g, dtype=dtype) * 5 + 1
    world = cams.unproject_points(uv, depth)
    cam_pts = kornia.geometry.camera.unproject_points(uv, depth[..., None], cams.K[:, None])
    torch.testing.assert_close(cams.world_to_camera(world), cam_pts, rtol=1e-4, atol=1e-4)
    uv_back, z_back = cams.project(world, return_depth=True)
    torch.testing.assert_close(uv_back, uv, rtol=0, atol=1e-3 if dtype == torch.float32 else 1e-9)
    torch.testing.assert_close(z_back, depth, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not available("open3d"), reason="open3d is not installed")
def test_unproject_matches_open3d_depth_to_points_and_raycasting_rays():
    import open3d as o3d

    cam = random_cameras(1, F64, seed=2, size=(24, 32))[0]
    depth = np.random.default_rng(0).uniform(1, 3, (24, 32)).astype(np.float32)
    ours = cam.unproject(torch.from_numpy(depth).double()).reshape(-1, 3).numpy()
    # Open3D's legacy depth -> point cloud uses integer pixel centres and K as is.
    K = cam.K.numpy()
    intr = o3d.camera.PinholeCameraIntrinsic(32, 24, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    extrinsic = np.eye(4)
    extrinsic[:3, :3], extrinsic[:3, 3] = cam.R.numpy(), cam.t.numpy()
    pcd = o3d.geometry.PointCloud.create_from_depth_image(o3d.geometry.Image(depth), intr, extrinsic,
                                                          depth_scale=1.0, depth_trunc=1e9, stride=1)
    np.testing.assert_allclose(np.asarray(pcd.points), ours, rtol=1e-5, atol=1e-5)
    # Open3D's raycasting rays (+½ centres) through geom3d.cameras_to_open3d pass our pixel centres.
    o3d_args = geom3d.cameras_to_open3d(cam)
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        o3d.core.Tensor(o3d_args["intrinsic_matrix"].numpy()), o3d.core.Tensor(o3d_args["extrinsic_matrix"].numpy()),
        o3d_args["width_px"], o3d_args["height_px"]).numpy()
    points = torch.from_numpy(rays[..., :3] + 2.0 * rays[..., 3:]).double()
    uv = cam.project(points.reshape(-1, 3)).reshape(24, 32, 2)
    torch.testing.assert_close(uv, geom3d.pixel_grid((24, 32), dtype=F64), rtol=0, atol=2e-4)  # float32 rays


def test_batch_broadcasting_and_dtype():
    cams = random_cameras(5, F64)
    assert cams.project(torch.randn(7, 3, dtype=F64)).shape == (5, 7, 2)
    assert cams.project(torch.randn(5, 7, 3, dtype=F64)).shape == (5, 7, 2)
    assert cams.camera_centres().shape == (5, 3)
    assert len(cams) == 5 and cams[1:3].batch_shape == (2,)
    grid = cams.reshape(5, 1).expand(5, 2)
    assert grid.project(torch.randn(4, 3, dtype=F64)).shape == (5, 2, 4, 2)
    torch.testing.assert_close(cams.camera_centres(), cams.unproject_points(
        torch.zeros(5, 1, 2, dtype=F64), torch.zeros(5, 1, dtype=F64))[:, 0])
    assert Cameras.cat([cams, cams]).batch_shape == (10,)


def test_unproject_depth_map_lands_on_pixel_centres():
    cam = random_cameras(1, F64, seed=4, size=(6, 9))[0]
    depth = torch.rand(6, 9, dtype=F64) + 1
    pts = cam.unproject(depth)
    assert pts.shape == (6, 9, 3)
    uv, z = cam.project(pts.reshape(-1, 3), return_depth=True)
    torch.testing.assert_close(uv.reshape(6, 9, 2), geom3d.pixel_grid((6, 9), dtype=F64))
    torch.testing.assert_close(z.reshape(6, 9), depth)
    with pytest.raises(GeometryError, match="does not match"):
        cam.unproject(torch.ones(5, 9, dtype=F64))


def test_look_at():
    eye = torch.tensor([3.0, -4.0, 2.0], dtype=F64)
    target = torch.tensor([0.5, 0.2, -0.1], dtype=F64)
    cam = Cameras.look_at(eye, target, up=(0, 0, 1), focal=100.0, image_size=(50, 80))
    torch.testing.assert_close(cam.camera_centres(), eye)
    torch.testing.assert_close(cam.project(target[None])[0], torch.tensor([39.5, 24.5], dtype=F64))
    above = cam.project((target + torch.tensor([0, 0, 0.3], dtype=F64))[None])[0]
    assert above[1] < 24.5  # up in the world is up in the image
    with pytest.raises(GeometryError, match="parallel"):
        Cameras.look_at([0.0, 0.0, 5.0], [0.0, 0.0, 0.0], up=(0, 0, 1), focal=10.0)


def _blob(size, centre, sigma=2.0):
    v, u = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    return np.exp(-((u - centre[0]) ** 2 + (v - centre[1]) ** 2) / (2 * sigma**2))


def _centroid(image):
    v, u = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float64)
    return np.array([(u * image).sum() / image.sum(), (v * image).sum() / image.sum()])


@pytest.mark.parametrize("new_size", [(60, 80), (240, 320), (90, 200)])
def test_resize_matches_opencv_resampling(new_size):
    """A blob drawn at a projected point lands, after cv2.resize, where the resized camera projects it."""
    cam = Cameras.look_at([0.3, -5.0, 1.0], [0, 0, 0], focal=150.0, image_size=(120, 160)).to(dtype=F64)
    point = torch.tensor([[0.21, 0.1, -0.17]], dtype=F64)
    uv = cam.project(point)[0].numpy()
    image = _blob((120, 160), uv, sigma=4.0)
    resized = cv2.resize(image, (new_size[1], new_size[0]), interpolation=cv2.INTER_LINEAR)
    expected = cam.resize(new_size).project(point)[0].numpy()
    np.testing.assert_allclose(_centroid(resized), expected, atol=0.02)


def test_crop_and_pad_move_the_principal_point():
    cam = Cameras.look_at([0.3, -5.0, 1.0], [0, 0, 0], focal=150.0, image_size=(120, 160)).to(dtype=F64)
    pts = torch.randn(20, 3, dtype=F64, generator=torch.Generator().manual_seed(5)) * 0.3
    # a point seen at pixel (64.3, 36.7), well inside the crop below
    pts[0] = cam.unproject_points(torch.tensor([[64.3, 36.7]], dtype=F64), torch.tensor([5.0], dtype=F64))[0]
    uv = cam.project(pts)
    cropped = cam.crop(left=30, top=12, height=50, width=70)
    assert cropped.image_size == (50, 70)
    torch.testing.assert_close(cropped.project(pts), uv - torch.tensor([30.0, 12.0], dtype=F64))
    padded = cam.pad(left=5, top=7, right=1, bottom=2)
    assert padded.image_size == (129, 166)
    torch.testing.assert_close(padded.project(pts), uv + torch.tensor([5.0, 7.0], dtype=F64))
    # the same crop of an image array moves a blob by the same offset
    image = _blob((120, 160), uv[0].numpy())
    crop = image[12:62, 30:100]
    assert crop.sum() > 0.99 * image.sum()
    np.testing.assert_allclose(_centroid(crop), cropped.project(pts[:1])[0].numpy(), atol=0.05)


@pytest.mark.parametrize("field,value,message", [
    ("K", [[100.0, 0, 10], [0, 0.0, 10], [0, 0, 1]], "focal"),
    ("K", [[100.0, 0, 10], [0, 100.0, 10], [0, 0, 0]], "last row"),
    ("K", [[float("nan"), 0, 10], [0, 100.0, 10], [0, 0, 1]], "NaN"),
    ("R", [[1.0, 0, 0], [0, 1, 0], [0, 0, -1]], "rotation"),
    ("R", [[1.0, 0.2, 0], [0, 1, 0], [0, 0, 1]], "rotation"),
    ("t", [0.0, float("inf"), 1.0], "t contains"),
])
def test_invalid_cameras_raise(field, value, message):
    args = {"K": torch.tensor([[100.0, 0, 10], [0, 100, 10], [0, 0, 1]]), "R": torch.eye(3), "t": torch.zeros(3)}
    args[field] = torch.tensor(value)
    with pytest.raises(GeometryError, match=message):
        Cameras(args["K"], args["R"], args["t"], (20, 20))
    with pytest.raises(GeometryError, match="image_size"):
        Cameras(torch.eye(3), torch.eye(3), torch.zeros(3), (0, 10))


def test_fov_to_focal():
    assert math.isclose(geom3d.fov_to_focal(math.radians(90), 200), 100.0)


def _camera_of(p: torch.Tensor, size=(30, 40)) -> Cameras:
    """p = (fx, fy, cx, cy, skew, rotation vector (3), t (3)) -> a camera, differentiably."""
    K = geom3d.intrinsics_matrix(p[0], p[1], p[2], p[3])
    K = K + p[4] * torch.tensor([[0.0, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=p.dtype)
    return Cameras(K, geom3d.axis_angle_to_matrix(p[5:8]), p[8:11], size)


P0 = [80.0, 90.0, 19.0, 14.5, 0.7, 0.2, -0.4, 0.3, 0.1, -0.2, 5.0]


def test_project_and_unproject_gradcheck():
    p = torch.tensor(P0, dtype=F64, requires_grad=True)
    g = torch.Generator().manual_seed(4)
    pts = (torch.randn(6, 3, generator=g, dtype=F64) * 0.5).requires_grad_()
    uv = (torch.rand(5, 2, generator=g, dtype=F64) * 30).requires_grad_()
    depth = (torch.rand(5, generator=g, dtype=F64) * 3 + 2).requires_grad_()
    dmap = (torch.rand(3, 4, generator=g, dtype=F64) + 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, x: _camera_of(p).project(x, return_depth=True), (p, pts))
    assert torch.autograd.gradcheck(lambda p, x, z: _camera_of(p).unproject_points(x, z), (p, uv, depth))
    assert torch.autograd.gradcheck(lambda p, z: _camera_of(p, (3, 4)).unproject(z), (p, dmap))
    assert torch.autograd.gradcheck(lambda p: _camera_of(p).crop(2.0, 3.0, 10, 12).resize((20, 24)).K, (p,))
