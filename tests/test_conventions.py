"""Converters to OpenGL, PyTorch3D, Blender, Open3D, nerfstudio and COLMAP: round trips and meaning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import geom3d
from geom3d import Cameras, GeometryError

F64 = torch.float64

unit = st.floats(-1.0, 1.0, allow_nan=False)


@st.composite
def cameras(draw, square=False, skew=False):
    q = torch.tensor([draw(unit) for _ in range(4)], dtype=F64)
    if q.norm() < 1e-3:
        q = torch.tensor([1.0, 0, 0, 0], dtype=F64)
    R = geom3d.quat_wxyz_to_matrix(q)
    t = torch.tensor([draw(st.floats(-3, 3)), draw(st.floats(-3, 3)), draw(st.floats(0.5, 9))], dtype=F64)
    h, w = draw(st.integers(8, 600)), draw(st.integers(8, 600))
    fx = draw(st.floats(20, 3000))
    fy = fx if square else draw(st.floats(20, 3000))
    cx, cy = draw(st.floats(-50, w + 50)), draw(st.floats(-50, h + 50))
    K = geom3d.intrinsics_matrix(fx, fy, cx, cy, dtype=F64)
    if skew:
        K[0, 1] = draw(st.floats(-5.0, 5.0))
    return Cameras(K, R, t, (h, w))


def assert_same(a: Cameras, b: Cameras):
    assert a.image_size == b.image_size
    torch.testing.assert_close(a.K, b.K, rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(a.R, b.R, rtol=0, atol=1e-9)
    torch.testing.assert_close(a.t, b.t, rtol=0, atol=1e-9)


# (to, from, what the cameras must satisfy): every pair round-trips as X_to_cameras(**cameras_to_X(c))
CONVERTERS = {
    "opengl": (geom3d.cameras_to_opengl, geom3d.opengl_to_cameras, {"skew": True}),
    "pytorch3d": (geom3d.cameras_to_pytorch3d, geom3d.pytorch3d_to_cameras, {}),
    "blender": (geom3d.cameras_to_blender, geom3d.blender_to_cameras, {"square": True}),
    "open3d": (geom3d.cameras_to_open3d, geom3d.open3d_to_cameras, {"skew": True}),
    "nerfstudio": (geom3d.cameras_to_nerfstudio, geom3d.nerfstudio_to_cameras, {}),
    "colmap": (geom3d.cameras_to_colmap, geom3d.colmap_to_cameras, {}),
}


@pytest.mark.parametrize("name", sorted(CONVERTERS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_through_keyword_arguments(name, data):
    to, back, needs = CONVERTERS[name]
    cam = data.draw(cameras(**needs))
    assert_same(back(**to(cam)), cam)


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_round_trip_keeps_batch_shape_and_dtype(name):
    to, back, needs = CONVERTERS[name]
    g = torch.Generator().manual_seed(3)
    R = geom3d.random_rotations(2, 3, generator=g, dtype=torch.float32)
    fx = 300.0 + 50 * torch.rand(2, 3, generator=g)
    fy = fx if needs.get("square") else fx * 1.1
    K = geom3d.intrinsics_matrix(fx, fy, 31.5, 23.5)
    cam = Cameras(K, R, torch.tensor([0.1, -0.2, 4.0]), (48, 64))
    out = back(**to(cam))
    assert out.batch_shape == (2, 3) and out.dtype == torch.float32 and out.image_size == (48, 64)
    torch.testing.assert_close(out.K, cam.K, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.R, cam.R, rtol=0, atol=1e-5)
    assert back(**to(cam.to(dtype=F64))).dtype == F64


def _camera_from_parameters(p: torch.Tensor, image_size=(40, 56)) -> Cameras:
    """p = (f, cx, cy, rotation vector (3), t (3)): a differentiable family of square-pixel cameras."""
    K = geom3d.intrinsics_matrix(p[0], p[0] * 1.0, p[1], p[2])
    return Cameras(K, geom3d.axis_angle_to_matrix(p[3:6]), p[6:9], image_size)


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_converters_gradcheck(name):
    to, back, _ = CONVERTERS[name]
    p = torch.tensor([90.0, 27.0, 20.5, 0.3, -0.2, 0.5, 0.1, -0.3, 4.0], dtype=F64, requires_grad=True)

    def forward(p):
        return tuple(v for v in to(_camera_from_parameters(p)).values() if isinstance(v, torch.Tensor))

    def there_and_back(p):
        c = back(**to(_camera_from_parameters(p)))
        return c.K, c.R, c.t

    assert torch.autograd.gradcheck(forward, (p,))
    assert torch.autograd.gradcheck(there_and_back, (p,))


def _points(cam, n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    cam_pts = torch.rand(n, 3, generator=g, dtype=F64) * torch.tensor([2, 2, 5.0], dtype=F64) - torch.tensor(
        [1, 1, -1.0], dtype=F64)
    return cam.camera_to_world(cam_pts)


@settings(max_examples=30, deadline=None)
@given(cameras(skew=True))
def test_opengl_matrices_project_to_our_pixels(cam):
    pts = _points(cam)
    gl = geom3d.cameras_to_opengl(cam, near=0.1, far=50.0)
    view, proj = gl["view"], gl["projection"]
    clip = torch.cat([pts, torch.ones(len(pts), 1, dtype=F64)], 1) @ (proj @ view).T
    ndc = clip[:, :3] / clip[:, 3:]
    h, w = cam.image_size
    # NDC x = −1 / +1 at the left / right image edge (u = −½ / W − ½); NDC y = +1 at the top edge
    u = (ndc[:, 0] + 1) / 2 * w - 0.5
    v = (1 - ndc[:, 1]) / 2 * h - 0.5
    torch.testing.assert_close(torch.stack([u, v], 1), cam.project(pts), rtol=1e-9, atol=1e-6)
    assert ((ndc[:, 2] > -1) & (ndc[:, 2] < 1)).all()


@settings(max_examples=30, deadline=None)
@given(cameras())
def test_pytorch3d_parameters_follow_pytorch3d_conventions(cam):
    """X_view = X_world @ R + T with +x left, +y up; NDC scaled by min(H, W)/2; screen pixel centres at +½."""
    p = geom3d.cameras_to_pytorch3d(cam)
    pts = _points(cam)
    view = pts @ p["R"] + p["T"]
    h, w = cam.image_size
    s = min(h, w) / 2
    x_ndc = p["focal_length"][0] * view[:, 0] / view[:, 2] + p["principal_point"][0]
    y_ndc = p["focal_length"][1] * view[:, 1] / view[:, 2] + p["principal_point"][1]
    u = w / 2 - x_ndc * s - 0.5  # NDC +x is to the left
    v = h / 2 - y_ndc * s - 0.5  # NDC +y is up
    torch.testing.assert_close(torch.stack([u, v], 1), cam.project(pts), rtol=1e-9, atol=1e-6)


def test_blender_matrix_world_and_3d_dst_intrinsics():
    # 3D-DST renders 512×512 with a 35 mm lens on a 32 mm sensor, principal point at the centre
    M = torch.eye(4, dtype=F64)
    M[:3, 3] = torch.tensor([0.0, -2.0, 0.0], dtype=F64)
    M[:3, :3] = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=F64)  # looking along +y, z up
    cam = geom3d.blender_to_cameras(M, 35.0, 32.0, 0.0, 0.0, resolution_x=512, resolution_y=512)
    torch.testing.assert_close(cam.K, geom3d.intrinsics_matrix(560.0, 560.0, 255.5, 255.5, dtype=F64))
    vp = geom3d.cameras_to_viewpoint(cam)  # the front view of the PASCAL3D+ frame
    assert abs(float(vp["azimuth"])) < 1e-12 and abs(float(vp["elevation"])) < 1e-12
    assert abs(float(vp["theta"])) < 1e-12 and float(vp["distance"]) == pytest.approx(2.0)


def test_colmap_quaternion_order_and_half_pixel():
    cam = Cameras(geom3d.intrinsics_matrix(100.0, 110.0, 20.0, 30.0, dtype=F64),
                  geom3d.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.5], dtype=F64)),
                  torch.tensor([1.0, 2.0, 3.0], dtype=F64), (64, 48))
    c = geom3d.cameras_to_colmap(cam)
    torch.testing.assert_close(c["qvec"], torch.tensor([np.cos(0.25), 0, 0, np.sin(0.25)], dtype=F64))
    torch.testing.assert_close(c["params"], torch.tensor([100.0, 110.0, 20.5, 30.5], dtype=F64))
    with pytest.raises(GeometryError, match="pinhole"):
        geom3d.colmap_to_cameras(**{**c, "model": "OPENCV_FISHEYE"})


def test_converters_refuse_what_they_cannot_represent():
    K = geom3d.intrinsics_matrix(100.0, 120.0, 10.0, 10.0)
    cam = Cameras(K, torch.eye(3), torch.tensor([0.0, 0, 2]), (20, 20))
    with pytest.raises(GeometryError, match="square"):
        geom3d.cameras_to_blender(cam)
    with pytest.raises(GeometryError, match="near"):
        geom3d.cameras_to_opengl(cam, near=1.0, far=0.5)
