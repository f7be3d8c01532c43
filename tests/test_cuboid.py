"""The NeMo cuboid: coverage per axis, vertex count, a closed outward surface, from real CAD models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import geom3d


def _brute_force_interval(values: np.ndarray, coverage: float):
    """Every window of k = ceil(coverage·n) consecutive sorted values; the narrowest wins."""
    v = np.sort(values)
    k = math.ceil(coverage * len(v))
    widths = v[k - 1:] - v[: len(v) - k + 1]
    best = int(np.argmin(widths))
    return v[best], v[best + k - 1]


def test_shortest_interval_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = np.concatenate([rng.normal(0, 1, 300), rng.uniform(5, 9, 7)])
        cov = rng.uniform(0.5, 1.0)
        lo, hi = geom3d.shortest_covering_interval(torch.from_numpy(values), cov)
        blo, bhi = _brute_force_interval(values, cov)
        assert math.isclose(hi - lo, bhi - blo, rel_tol=1e-12)
        assert ((values >= lo) & (values <= hi)).mean() >= cov


@pytest.mark.parametrize("target", [200, 1000, 3000])
def test_cuboid_mesh_is_closed_and_outward(target):
    mesh = geom3d.cuboid_mesh([-0.3, -0.8, -0.2], [0.35, 0.9, 0.25], num_vertices=target)
    assert abs(mesh.num_vertices - target) <= 0.1 * target
    tm = mesh.to_trimesh()
    tm.merge_vertices()  # the six grids share no vertices (as in NeMo); merged, they close the box
    assert tm.is_watertight and tm.is_winding_consistent
    assert math.isclose(tm.volume, 0.65 * 1.7 * 0.45, rel_tol=1e-5)  # positive: normals point outwards


@pytest.mark.realdata
@pytest.mark.parametrize("category", ["car", "chair", "aeroplane"])
def test_cuboid_from_pascal3d_cads(shared_data, category):
    meshes = [geom3d.Mesh.load(p) for p in sorted((shared_data / "pascal3d_cad" / category).glob("*.off"))]
    cuboid = geom3d.cuboid_from_meshes(meshes, coverage=0.99, num_vertices=1000)
    assert abs(cuboid.num_vertices - 1000) <= 100
    pooled = torch.cat([m.vertices for m in meshes]).double().numpy()
    lo, hi = cuboid.bounds().double().numpy()
    for axis in range(3):
        inside = ((pooled[:, axis] >= lo[axis] - 1e-6) & (pooled[:, axis] <= hi[axis] + 1e-6)).mean()
        assert inside >= 0.99
        blo, bhi = _brute_force_interval(pooled[:, axis], 0.99)
        assert math.isclose(hi[axis] - lo[axis], bhi - blo, rel_tol=1e-6)
        assert hi[axis] - lo[axis] < pooled[:, axis].max() - pooled[:, axis].min() + 1e-9
    tm = cuboid.to_trimesh()
    tm.merge_vertices()
    assert tm.is_watertight and tm.volume > 0
