"""geom3d.align: Sim3, weighted Umeyama, RANSAC and ICP against hand-made transforms and Open3D."""

from __future__ import annotations

import math

import pytest
import roma
import torch

from aware3d_utils.optional import available
from geom3d import GeometryError
from geom3d.align import Sim3, estimate_normals, icp, ransac_sim3, umeyama


def _random_sim3(gen, batch=(), dtype=torch.float64):
    R = roma.random_rotmat(batch, dtype=dtype) if not batch else roma.random_rotmat(*batch, dtype=dtype)
    s = torch.rand(batch, generator=gen, dtype=dtype) * 2 + 0.5
    t = torch.randn(*batch, 3, generator=gen, dtype=dtype) * 3
    return Sim3(s, R, t)


def _asymmetric_cloud(gen, n=400, dtype=torch.float64):
    """Points on an off-centre, unequal-sided box surface with a bump: no symmetry."""
    p = torch.rand(n, 3, generator=gen, dtype=dtype) * torch.tensor([2.0, 1.0, 0.6], dtype=dtype)
    face = torch.randint(0, 3, (n,), generator=gen)
    side = torch.randint(0, 2, (n,), generator=gen).to(dtype)
    dims = torch.tensor([2.0, 1.0, 0.6], dtype=dtype)
    p[torch.arange(n), face] = side * dims[face]
    bump = (p[:, 0] > 1.5) & (p[:, 2] > 0.59)
    p[bump, 2] += 0.3 * torch.rand(int(bump.sum()), generator=gen, dtype=dtype)
    return p


def test_sim3_inverse_compose_matrix_round_trip():
    gen = torch.Generator().manual_seed(0)
    a, b = _random_sim3(gen, (5,)), _random_sim3(gen, (5,))
    x = torch.randn(5, 7, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(a.inverse().apply(a.apply(x)), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.compose(b).apply(x), a.apply(b.apply(x)), rtol=0, atol=1e-12)
    back = Sim3.from_matrix(a.matrix())
    torch.testing.assert_close(back.matrix(), a.matrix(), rtol=0, atol=1e-12)
    hom = torch.cat([x, torch.ones(5, 7, 1, dtype=x.dtype)], -1) @ a.matrix().transpose(-1, -2)
    torch.testing.assert_close(hom[..., :3], a.apply(x), rtol=0, atol=1e-12)
    assert a[2].batch_shape == ()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_umeyama_recovers_batched_similarity(dtype, tol):
    gen = torch.Generator().manual_seed(1)
    truth = _random_sim3(gen, (4,), dtype=torch.float64)
    x = torch.randn(4, 50, 3, generator=gen, dtype=torch.float64)
    y = truth.apply(x)
    est = umeyama(x.to(dtype), y.to(dtype))
    assert est.dtype == dtype and est.batch_shape == (4,)
    torch.testing.assert_close(est.R.double(), truth.R, rtol=0, atol=tol)
    torch.testing.assert_close(est.scale.double(), truth.scale, rtol=0, atol=tol)
    torch.testing.assert_close(est.t.double(), truth.t, rtol=0, atol=tol * 10)
    assert torch.allclose(torch.linalg.det(est.R.double()), torch.ones(4, dtype=torch.float64), atol=1e-5)


def test_umeyama_integer_inputs_give_float32():
    x = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    est = umeyama(x, x)
    assert est.dtype == torch.float32
    torch.testing.assert_close(est.R, torch.eye(3))


def test_umeyama_reflection_gives_proper_rotation():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    mirrored = x * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    est = umeyama(x, mirrored)
    assert abs(float(torch.linalg.det(est.R)) - 1.0) < 1e-12


def test_umeyama_weights_act_like_repeated_points_and_zero_drops():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    y = _random_sim3(gen).apply(x) + 0.05 * torch.randn(20, 3, generator=gen, dtype=torch.float64)
    w = torch.randint(1, 4, (20,), generator=gen).to(torch.float64)
    rep = torch.repeat_interleave(torch.arange(20), w.long())
    a, b = umeyama(x, y, w), umeyama(x[rep], y[rep])
    torch.testing.assert_close(a.matrix(), b.matrix(), rtol=0, atol=1e-12)
    y_bad = y.clone()
    y_bad[0] += 100.0
    w0 = torch.ones(20, dtype=torch.float64)
    w0[0] = 0
    torch.testing.assert_close(umeyama(x, y_bad, w0).matrix(), umeyama(x[1:], y[1:]).matrix(), rtol=0, atol=1e-12)


def test_umeyama_fixed_scale_and_rigid():
    gen = torch.Generator().manual_seed(4)
    truth = _random_sim3(gen)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    est = umeyama(x, truth.apply(x), scale=float(truth.scale))
    torch.testing.assert_close(est.matrix(), truth.matrix(), rtol=0, atol=1e-10)
    rigid = Sim3(1.0, truth.R, truth.t)
    est = umeyama(x, rigid.apply(x), scale=False)
    assert float(est.scale) == 1.0
    torch.testing.assert_close(est.matrix(), rigid.matrix(), rtol=0, atol=1e-10)


@pytest.mark.skipif(not available("open3d"), reason="open3d not installed")
def test_umeyama_matches_open3d_with_noise():
    import numpy as np
    import open3d as o3d

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(60, 3, generator=gen, dtype=torch.float64)
    y = _random_sim3(gen).apply(x) + 0.1 * torch.randn(60, 3, generator=gen, dtype=torch.float64)
    est = o3d.pipelines.registration.TransformationEstimationPointToPoint(with_scaling=True)
    corr = o3d.utility.Vector2iVector(np.stack([np.arange(60)] * 2, 1))
    pa, pb = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
    pa.points, pb.points = o3d.utility.Vector3dVector(x.numpy()), o3d.utility.Vector3dVector(y.numpy())
    ref = torch.from_numpy(np.asarray(est.compute_transformation(pa, pb, corr)))
    torch.testing.assert_close(umeyama(x, y).matrix(), ref, rtol=0, atol=1e-9)


def test_umeyama_degenerate_inputs_raise():
    line = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], dtype=torch.float64)
    with pytest.raises(GeometryError, match="collinear"):
        umeyama(line, line)
    with pytest.raises(GeometryError, match="at least 3"):
        umeyama(line[:2], line[:2])
    with pytest.raises(GeometryError, match="coincide"):
        umeyama(torch.ones(5, 3), torch.randn(5, 3))
    bad = torch.randn(5, 3)
    bad[1, 1] = float("nan")
    with pytest.raises(GeometryError, match="NaN"):
        umeyama(bad, torch.randn(5, 3))
    with pytest.raises(GeometryError, match="positive weight"):
        umeyama(torch.randn(5, 3), torch.randn(5, 3), torch.tensor([1.0, 1, 0, 0, 0]))
    with pytest.raises(GeometryError, match="points"):
        umeyama(torch.randn(5, 3), torch.randn(4, 3))


def test_ransac_rejects_outliers():
    gen = torch.Generator().manual_seed(6)
    truth = _random_sim3(gen)
    x = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    y = truth.apply(x) + 0.002 * torch.randn(300, 3, generator=gen, dtype=torch.float64)
    outlier = torch.rand(300, generator=gen) < 0.4
    y[outlier] = torch.randn(int(outlier.sum()), 3, generator=gen, dtype=torch.float64) * 5
    res = ransac_sim3(x, y, threshold=0.02 * float(truth.scale))
    assert res.num_inliers == int(res.inliers.sum())
    assert bool((res.inliers == ~outlier).float().mean() > 0.99)
    angle = float(roma.rotmat_geodesic_distance(res.transform.R, truth.R))
    assert math.degrees(angle) < 0.2
    assert abs(float(res.transform.scale / truth.scale) - 1) < 2e-3
    # plain least squares on the same data is far off: the test can fail
    assert math.degrees(float(roma.rotmat_geodesic_distance(umeyama(x, y).R, truth.R))) > 2


def test_ransac_fixed_scale_and_errors():
    gen = torch.Generator().manual_seed(7)
    truth = _random_sim3(gen)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    res = ransac_sim3(x, truth.apply(x), threshold=1e-6, scale=truth.scale, iterations=16)
    torch.testing.assert_close(res.transform.matrix(), truth.matrix(), rtol=0, atol=1e-9)
    with pytest.raises(GeometryError, match="at least 3"):
        ransac_sim3(x[:2], x[:2], threshold=0.1)
    with pytest.raises(GeometryError, match="threshold"):
        ransac_sim3(x, x, threshold=0)
    with pytest.raises(GeometryError, match="no hypothesis"):
        ransac_sim3(x, torch.randn(50, 3, generator=gen, dtype=torch.float64) * 100, threshold=1e-9,
                    iterations=8, refits=0)


@pytest.mark.parametrize("method", ["point_to_point", "point_to_plane"])
def test_icp_converges_from_a_perturbation(method):
    gen = torch.Generator().manual_seed(8)
    src = _asymmetric_cloud(gen)
    truth = Sim3(1.0, roma.rotvec_to_rotmat(torch.tensor([0.05, -0.08, 0.1], dtype=torch.float64)),
                 torch.tensor([0.05, -0.03, 0.04], dtype=torch.float64))
    dst = truth.apply(src)
    res = icp(src, dst, method=method, max_iterations=60, tolerance=1e-12)
    assert math.degrees(float(roma.rotmat_geodesic_distance(res.transform.R, truth.R))) < 1e-3
    torch.testing.assert_close(res.transform.t, truth.t, rtol=0, atol=1e-5)
    assert res.rmse < 1e-5 and res.fitness == 1.0


def test_icp_with_scale_and_initial_guess():
    gen = torch.Generator().manual_seed(9)
    src = _asymmetric_cloud(gen)
    truth = Sim3(1.3, roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, 1.2], dtype=torch.float64)),
                 torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64))
    init = Sim3(1.25, roma.rotvec_to_rotmat(torch.tensor([0.0, 0.05, 1.15], dtype=torch.float64)),
                torch.tensor([1.95, 0.05, 1.0], dtype=torch.float64))
    res = icp(src, truth.apply(src), init, scale=True, max_iterations=80, tolerance=0)
    torch.testing.assert_close(res.transform.matrix(), truth.matrix(), rtol=0, atol=1e-5)
    with pytest.raises(GeometryError, match="method"):
        icp(src, src, method="plane")


def test_estimate_normals_on_a_plane():
    gen = torch.Generator().manual_seed(10)
    p = torch.rand(200, 3, generator=gen, dtype=torch.float64)
    p[:, 2] = 0.5
    n = estimate_normals(p, k=10)
    torch.testing.assert_close(n[:, 2].abs(), torch.ones(200, dtype=torch.float64), rtol=0, atol=1e-9)
