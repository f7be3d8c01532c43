"""Rotations: geodesic distance near 0 and π, uniform sampling, 6D and quaternion conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import geom3d

F64 = torch.float64


def test_geodesic_distance_matches_scipy():
    a = Rotation.random(500, random_state=0)
    b = Rotation.random(500, random_state=1)
    expected = (a.inv() * b).magnitude()
    got = geom3d.geodesic_distance(torch.from_numpy(a.as_matrix()), torch.from_numpy(b.as_matrix()))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-6, 1e-3, 1.0, math.pi - 1e-3, math.pi - 1e-6, math.pi - 1e-9, math.pi])
def test_geodesic_distance_is_accurate_near_zero_and_pi(angle):
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=F64)
    axis = axis / axis.norm()
    R1 = geom3d.random_rotations(1, generator=torch.Generator().manual_seed(0), dtype=F64)[0]
    R2 = R1 @ geom3d.axis_angle_to_matrix(axis * angle)
    got = float(geom3d.geodesic_distance(R1, R2))
    # the acos-of-trace form misses this by ~1e-8 near 0, the chord-arcsin form near π
    assert abs(got - angle) < 1e-12
    assert 0.0 <= got <= math.pi


def test_nan_rotation_gives_nan_distance():
    R = torch.eye(3, dtype=F64).clone()
    R[0, 0] = float("nan")
    assert math.isnan(float(geom3d.geodesic_distance(R, torch.eye(3, dtype=F64))))


def test_random_rotations_are_uniform():
    g = torch.Generator().manual_seed(0)
    R = geom3d.random_rotations(200_000, generator=g, dtype=F64)
    assert geom3d.rotation_residual(R).max() < 1e-12
    # Haar measure: E[R] = 0 and the angle has density (1 − cos α)/π, so E[α] = π/2 + 2/π
    assert R.mean(0).abs().max() < 0.01
    angles = geom3d.geodesic_distance(R, torch.eye(3, dtype=F64))
    assert abs(float(angles.mean()) - (math.pi / 2 + 2 / math.pi)) < 0.01
    first = geom3d.random_rotations(5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(geom3d.random_rotations(5, generator=torch.Generator().manual_seed(7)), first)


def test_6d_round_trip_and_projection():
    R = geom3d.random_rotations(100, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(geom3d.rotation_6d_to_matrix(geom3d.matrix_to_rotation_6d(R)), R)
    noisy = geom3d.matrix_to_rotation_6d(R) + 0.01 * torch.randn(100, 6, dtype=F64)
    assert geom3d.rotation_residual(geom3d.rotation_6d_to_matrix(noisy)).max() < 1e-12
    x = torch.randn(6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(geom3d.rotation_6d_to_matrix, (x,))


def test_quaternion_wxyz_matches_scipy():
    rot = Rotation.random(50, random_state=3)
    q_xyzw = rot.as_quat()
    q_wxyz = torch.from_numpy(np.concatenate([q_xyzw[:, 3:], q_xyzw[:, :3]], 1))
    torch.testing.assert_close(geom3d.quat_wxyz_to_matrix(q_wxyz), torch.from_numpy(rot.as_matrix()))
    back = geom3d.matrix_to_quat_wxyz(torch.from_numpy(rot.as_matrix()))
    assert (back[:, 0] >= 0).all()
    torch.testing.assert_close(back.abs(), q_wxyz.abs())


def test_project_to_rotation_and_check():
    M = torch.eye(3, dtype=F64) + 0.05 * torch.randn(3, 3, dtype=F64)
    R = geom3d.project_to_rotation(M)
    geom3d.check_rotation(R)
    with pytest.raises(geom3d.GeometryError, match="reflection"):
        geom3d.check_rotation(torch.diag(torch.tensor([1.0, 1.0, -1.0])))
