"""The PASCAL3D+ viewpoint: hand-derived projections, the original MATLAB formula, the inverse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch

import geom3d
from geom3d import GeometryError

F64 = torch.float64


def _cam(a, e, th, d=5.0, principal=(100.0, 50.0), size=(101, 201), viewport=3000.0, focal=1.0):
    return geom3d.viewpoint_to_cameras(torch.tensor(a, dtype=F64), e, th, d, focal, viewport, principal, size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_front_view_projection_by_hand(dtype):
    # a = e = θ = 0: camera at (0, −d, 0) looking along +y; x right, z up in the image.
    cam = geom3d.viewpoint_to_cameras(torch.tensor(0.0, dtype=dtype), 0.0, 0.0, 5.0, 1.0, 3000.0, (100.0, 50.0),
                                      (101, 201))
    pts = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0, 0, 0.1], [0, 1.0, 0], [0.1, -1.0, 0]], dtype=dtype)
    uv, z = cam.project(pts, return_depth=True)
    assert uv.dtype == dtype
    expected_uv = torch.tensor([[100.0, 50.0], [160.0, 50.0], [100.0, -10.0], [100.0, 50.0], [175.0, 50.0]],
                               dtype=dtype)
    torch.testing.assert_close(uv, expected_uv, atol=1e-3, rtol=0)
    torch.testing.assert_close(z, torch.tensor([5.0, 5, 5, 6, 4], dtype=dtype))
    torch.testing.assert_close(cam.camera_centres(), torch.tensor([0.0, -5.0, 0.0], dtype=dtype), atol=1e-6, rtol=0)


def test_side_top_and_inplane_views_by_hand():
    # a = π/2: camera on +x looking towards −x; the object's +y (its back) is to the right.
    cam = _cam(math.pi / 2, 0.0, 0.0)
    uv, z = cam.project(torch.tensor([[0.0, 0.1, 0.0], [0.5, 0.0, 0.0]], dtype=F64), return_depth=True)
    torch.testing.assert_close(uv[0], torch.tensor([160.0, 50.0], dtype=F64))
    torch.testing.assert_close(z, torch.tensor([5.0, 4.5], dtype=F64))
    # e = π/2: camera above, looking down; x right and the front (−y) at the bottom of the image.
    cam = _cam(0.0, math.pi / 2, 0.0)
    uv = cam.project(torch.tensor([[0.1, 0.0, 0.0], [0.0, -0.1, 0.0]], dtype=F64))
    torch.testing.assert_close(uv, torch.tensor([[160.0, 50.0], [100.0, 110.0]], dtype=F64))
    # θ = π/2: the image turns counter-clockwise on screen, so the point on the right goes up.
    cam = _cam(0.0, 0.0, math.pi / 2)
    uv = cam.project(torch.tensor([[0.1, 0.0, 0.0]], dtype=F64))
    torch.testing.assert_close(uv[0], torch.tensor([100.0, -10.0], dtype=F64))


def _pascal3d_matlab_projection(x3d, a, e, theta, d, f, viewport, px, py):
    """The PASCAL3D+ toolkit's projection, written out independently in numpy (its steps, not ours)."""
    C = np.array([d * math.cos(e) * math.sin(a), -d * math.cos(e) * math.cos(a), d * math.sin(e)])
    a, e = -a, -(math.pi / 2 - e)
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    R = Rx @ Rz
    P = np.diag([viewport * f, viewport * f, -1.0]) @ np.hstack([R, -R @ C[:, None]])
    x = P @ np.vstack([x3d.T, np.ones(len(x3d))])
    x = x[:2] / x[2]
    R2d = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    x = (R2d @ x).T
    return np.stack([x[:, 0] + px, -x[:, 1] + py], axis=1)


def test_matches_the_pascal3d_toolkit_formula():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (50, 3))
    for _ in range(20):
        a, e, th = rng.uniform(0, 2 * math.pi), rng.uniform(-1.4, 1.4), rng.uniform(-math.pi, math.pi)
        d, f, px, py = rng.uniform(2, 10), rng.uniform(0.5, 2), rng.uniform(0, 500), rng.uniform(0, 400)
        cam = geom3d.viewpoint_to_cameras(torch.tensor(a, dtype=F64), e, th, d, f, 3000.0, (px, py), (400, 500))
        ours = cam.project(torch.from_numpy(pts)).numpy()
        np.testing.assert_allclose(ours, _pascal3d_matlab_projection(pts, a, e, th, d, f, 3000.0, px, py),
                                   rtol=1e-9, atol=1e-7)


def _angle_diff(x, y):
    return geom3d.wrap_angle(x - y).abs()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_inverse_round_trip(dtype, tol):
    g = torch.Generator().manual_seed(1)
    n = 2000
    a = torch.rand(n, generator=g, dtype=F64) * 2 * math.pi
    e = (torch.rand(n, generator=g, dtype=F64) * 2 - 1) * (math.pi / 2 - 0.05)
    th = (torch.rand(n, generator=g, dtype=F64) * 2 - 1) * math.pi
    d = torch.rand(n, generator=g, dtype=F64) * 10 + 0.5
    f = torch.rand(n, generator=g, dtype=F64) + 0.5
    px = torch.rand(n, generator=g, dtype=F64) * 300
    cam = geom3d.viewpoint_to_cameras(a.to(dtype), e.to(dtype), th.to(dtype), d.to(dtype), f.to(dtype), 3000.0,
                                      (px.to(dtype), 20.0), (300, 300))
    vp = geom3d.cameras_to_viewpoint(cam)
    assert vp["azimuth"].dtype == dtype
    assert (_angle_diff(vp["azimuth"].double(), a) < tol).all()
    assert (vp["elevation"].double() - e).abs().max() < tol
    assert (_angle_diff(vp["theta"].double(), th) < tol).all()
    torch.testing.assert_close(vp["distance"].double(), d, rtol=tol, atol=0)
    torch.testing.assert_close(vp["focal"].double(), f, rtol=tol, atol=0)
    torch.testing.assert_close(vp["px"].double(), px, rtol=0, atol=tol * 300)
    assert (vp["azimuth"] >= 0).all() and (vp["azimuth"] < 2 * math.pi).all()
    assert (vp["theta"] > -math.pi).all() and (vp["theta"] <= math.pi).all()


@pytest.mark.parametrize("pole", [1.0, -1.0])
@pytest.mark.parametrize("gap", [1e-3, 1e-6, 1e-9])
def test_inverse_near_the_poles(pole, gap):
    g = torch.Generator().manual_seed(2)
    a = torch.rand(200, generator=g, dtype=F64) * 2 * math.pi
    th = (torch.rand(200, generator=g, dtype=F64) * 2 - 1) * math.pi
    e = torch.full_like(a, pole * (math.pi / 2 - gap))
    vp = geom3d.cameras_to_viewpoint(geom3d.viewpoint_to_cameras(a, e, th, 3.0, image_size=(64, 64)))
    # elevation exact; azimuth and θ individually to the conditioning 1e-16 / cos e; the pair rebuilds R
    assert (vp["elevation"] - e).abs().max() < 1e-12
    assert (_angle_diff(vp["azimuth"], a) < 1e-15 / gap + 1e-12).all()
    assert (_angle_diff(vp["theta"], th) < 1e-15 / gap + 1e-12).all()
    R_back = geom3d.viewpoint_to_rotation(vp["azimuth"], vp["elevation"], vp["theta"])
    assert geom3d.geodesic_distance(R_back, geom3d.viewpoint_to_rotation(a, e, th)).max() < 1e-12


def test_exactly_at_a_pole_azimuth_is_zero_and_rotation_is_kept():
    R = geom3d.viewpoint_to_rotation(torch.tensor(1.2, dtype=F64), math.pi / 2, 0.7)
    vp = geom3d.rotation_to_viewpoint(R)
    assert float(vp["azimuth"]) == 0.0
    torch.testing.assert_close(vp["theta"], torch.tensor(0.7 - 1.2, dtype=F64))
    rebuilt = geom3d.viewpoint_to_rotation(vp["azimuth"], vp["elevation"], vp["theta"])
    assert geom3d.geodesic_distance(rebuilt, R) < 1e-12


@pytest.mark.parametrize("kwargs,message", [
    ({"distance": 0.0}, "distance"),
    ({"distance": -1.0}, "distance"),
    ({"distance": float("nan")}, "distance"),
    ({"azimuth": float("nan")}, "azimuth"),
    ({"focal": 0.0}, "focal"),
    ({"viewport": -3.0}, "viewport"),
])
def test_degenerate_viewpoints_raise(kwargs, message):
    args = {"azimuth": 0.1, "elevation": 0.2, "theta": 0.0, "distance": 5.0, "focal": 1.0, "viewport": 3000.0}
    args.update(kwargs)
    with pytest.raises(GeometryError, match=message):
        geom3d.viewpoint_to_cameras(**args, image_size=(10, 10))
    with pytest.raises(GeometryError, match="image_size"):
        geom3d.viewpoint_to_cameras(0.0, 0.0, 0.0, 5.0)


def test_cameras_that_are_not_viewpoints_are_refused():
    cam = _cam(0.3, 0.2, 0.1)
    with pytest.raises(GeometryError, match="origin"):
        geom3d.cameras_to_viewpoint(cam.replace(t=cam.t + torch.tensor([0.5, 0.0, 0.0], dtype=F64)))
    K = cam.K.clone()
    K[1, 1] *= 1.1
    with pytest.raises(GeometryError, match="square"):
        geom3d.cameras_to_viewpoint(cam.replace(K=K))


def test_blender_spherical_camera_matches_3d_dst_construction():
    """3D-DST: camera at d·(sinφ cosθ, sinφ sinθ, cosφ), TRACK_TO the origin with world z up, then
    rolled by ρ about its viewing direction (rotation_vertical @ matrix_world in Blender)."""
    g = torch.Generator().manual_seed(3)
    for _ in range(30):
        theta, phi, rho, d = (torch.rand(4, generator=g, dtype=F64) * torch.tensor([6.28, 3.0, 6.0, 3.0])
                              + torch.tensor([0.0, 0.07, -3.0, 0.5])).tolist()
        eye = d * torch.tensor([math.sin(phi) * math.cos(theta), math.sin(phi) * math.sin(theta), math.cos(phi)],
                               dtype=F64)
        R_track = geom3d.look_at_rotation(eye, torch.zeros(3, dtype=F64), (0.0, 0.0, 1.0))
        forward = -eye / eye.norm()
        # camera-to-world gets Rot(forward, ρ) on the left, so world-to-camera gets Rot(forward, −ρ) on the right
        R_expected = R_track @ roma.rotvec_to_rotmat(-rho * forward)
        vp = geom3d.blender_to_viewpoint(torch.tensor(theta, dtype=F64), phi, d, rho)
        cam = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                          image_size=(8, 8))
        assert geom3d.geodesic_distance(cam.R, R_expected) < 1e-9
        torch.testing.assert_close(cam.camera_centres(), eye)
        back = geom3d.viewpoint_to_blender(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"])
        assert _angle_diff(back["theta"], torch.tensor(theta, dtype=F64)) < 1e-12
        torch.testing.assert_close(back["phi"], torch.tensor(phi, dtype=F64))
        assert _angle_diff(back["camera_rotation"], torch.tensor(rho, dtype=F64)) < 1e-12


def test_wrapping_numbers_and_tensors_agree():
    values = [0.0, -1e-20, 2 * math.pi, -math.pi, math.pi, 7.0, -7.0, 3 * math.pi, -3 * math.pi, 123.4]
    tensors = torch.tensor(values, dtype=F64)
    assert [geom3d.wrap_angle(v) for v in values] == geom3d.wrap_angle(tensors).tolist()
    assert [geom3d.wrap_azimuth(v) for v in values] == geom3d.wrap_azimuth(tensors).tolist()
    assert all(-math.pi < geom3d.wrap_angle(v) <= math.pi and 0 <= geom3d.wrap_azimuth(v) < 2 * math.pi
               for v in values)


def test_viewpoint_to_cameras_gradcheck():
    """Pose and intrinsics gradients through R, t and K (the NeMo pose fit differentiates this map)."""
    g = torch.Generator().manual_seed(5)
    angles = (torch.rand(3, 3, generator=g, dtype=F64) * torch.tensor([6.0, 1.5, 1.0], dtype=F64)
              - torch.tensor([0.0, 0.75, 0.5], dtype=F64)).requires_grad_()
    d = torch.tensor([3.0, 4.5, 6.0], dtype=F64, requires_grad=True)
    f = torch.tensor(1.2, dtype=F64, requires_grad=True)
    principal = torch.tensor([20.0, 15.0], dtype=F64, requires_grad=True)

    def cameras(angles, d, f, principal):
        c = geom3d.viewpoint_to_cameras(angles[:, 0], angles[:, 1], angles[:, 2], d, f, 50.0, principal, (30, 40))
        return c.K, c.R, c.t

    assert torch.autograd.gradcheck(cameras, (angles, d, f, principal))
