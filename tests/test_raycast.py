"""geom3d.raycast: rays through integer pixel centres, depth as camera z, Embree and Open3D agreeing
with each other, with a hand-derived scene and with Open3D's own pinhole rays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geom3d
from aware3d_utils import available
from geom3d import GeometryError
from geom3d.raycasting import camera_rays, raycast

F64 = torch.float64
BACKENDS = ["embree"] + (["open3d"] if available("open3d") else [])


def _cameras(size=(30, 40), dtype=F64) -> geom3d.Cameras:
    return geom3d.viewpoint_to_cameras(torch.tensor([0.4, 2.1], dtype=dtype), torch.tensor([0.3, -0.2], dtype=dtype),
                                       torch.tensor([0.0, 0.2], dtype=dtype), 2.5, 1.0, 60.0, image_size=size)


def test_rays_go_through_integer_pixel_centres():
    cams = _cameras()
    origins, dirs = camera_rays(cams)
    assert origins.shape == dirs.shape == (2, 30, 40, 3)
    torch.testing.assert_close(origins[:, 0, 0], cams.camera_centres())
    # camera-space z of every direction is 1, and a point along the ray projects to its pixel
    dz = (dirs @ cams.R[:, None].transpose(-1, -2))[..., 2]
    torch.testing.assert_close(dz, torch.ones_like(dz))
    points = (origins + 3.0 * dirs).reshape(2, -1, 3)
    uv = cams.project(points)
    grid = geom3d.pixel_grid((30, 40), dtype=F64).reshape(1, -1, 2).expand(2, -1, -1)
    torch.testing.assert_close(uv, grid, atol=1e-9, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_square_at_known_depth(backend):
    # A square facing the camera at z = 2 whose sides lie half-way between pixel centres.
    K = geom3d.intrinsics_matrix(10.0, 10.0, 4.0, 3.0, dtype=F64)
    cam = geom3d.Cameras(K, torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64), (8, 10))
    # pixels u in [1.5, 6.5], v in [0.5, 4.5] -> x = (u − 4)·z/10
    corners = torch.tensor([[1.5, 0.5], [6.5, 0.5], [6.5, 4.5], [1.5, 4.5]], dtype=F64)
    xy = (corners - torch.tensor([4.0, 3.0], dtype=F64)) * 2.0 / 10.0
    vertices = torch.cat([xy, torch.full((4, 1), 2.0, dtype=F64)], 1)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    hits = raycast((vertices, faces), cam, backend=backend)
    expected = torch.zeros(8, 10, dtype=torch.bool)  # an unbatched camera: no batch dimension
    expected[1:5, 2:7] = True
    assert torch.equal(hits.pix_to_face >= 0, expected)
    torch.testing.assert_close(hits.depth[expected], torch.full((20,), 2.0, dtype=F64), atol=1e-6, rtol=0)
    assert (hits.depth[~expected] == 0).all()
    # the diagonal from corner 0 to corner 2 splits the faces: above it face 0, below face 1
    v, u = torch.meshgrid(torch.arange(8.0), torch.arange(10.0), indexing="ij")
    above = (v - 0.5) * 5.0 < (u - 1.5) * 4.0
    assert (hits.pix_to_face[expected & above] == 0).all()
    assert (hits.pix_to_face[expected & ~above] == 1).all()


def test_backends_agree_on_a_procedural_mesh():
    if len(BACKENDS) < 2:
        pytest.skip("open3d is not installed")
    mesh = geom3d.cuboid_mesh([-0.4, -0.3, -0.2], [0.4, 0.3, 0.2], 500)
    cams = _cameras((60, 80))
    a, b = raycast(mesh, cams, backend="embree"), raycast(mesh, cams, backend="open3d")
    covered = (a.pix_to_face >= 0) & (b.pix_to_face >= 0)
    assert ((a.pix_to_face >= 0) ^ (b.pix_to_face >= 0)).float().mean() <= 1e-3
    assert (a.pix_to_face == b.pix_to_face)[covered].float().mean() >= 0.999
    torch.testing.assert_close(a.depth[covered], b.depth[covered], rtol=1e-5, atol=0)


@pytest.mark.realdata
@pytest.mark.skipif(not available("open3d"), reason="open3d is not installed")
def test_matches_open3d_pinhole_rays_with_shifted_principal_point(shared_data):
    # Open3D shoots pixel (j, i) through (j + ½, i + ½); cameras_to_open3d moves K by +½ to match.
    import open3d as o3d

    mesh = geom3d.Mesh.load(shared_data / "meshes" / "teapot.obj").normalized()[0]
    cams = _cameras((45, 60))
    ours = raycast(mesh, cams, backend="open3d")
    o3d_args = geom3d.cameras_to_open3d(cams)
    K, E = o3d_args["intrinsic_matrix"], o3d_args["extrinsic_matrix"]
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.numpy()), o3d.core.Tensor(mesh.faces.numpy().astype(np.uint32)))
    for b in range(2):
        rays = scene.create_rays_pinhole(o3d.core.Tensor(K[b].numpy()), o3d.core.Tensor(E[b].numpy()), 60, 45)
        ans = scene.cast_rays(rays)
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        prim[~np.isfinite(ans["t_hit"].numpy())] = -1
        agree = (torch.as_tensor(prim) == ours.pix_to_face[b]).float().mean()
        assert agree >= 0.999
        # same hit points: their rays are not ours (other origin scaling), but the camera z must match
        hit = ours.pix_to_face[b] >= 0
        r = torch.as_tensor(rays.numpy()).to(F64)
        t = torch.as_tensor(ans["t_hit"].numpy()).to(F64)
        points = r[..., :3] + t[..., None] * r[..., 3:]
        depth = cams[b].world_to_camera(points[hit])[..., 2]
        torch.testing.assert_close(depth, ours.depth[b][hit], rtol=1e-5, atol=0)


def test_batched_meshes_and_dtype():
    base = geom3d.cuboid_mesh([-0.3, -0.3, -0.3], [0.3, 0.3, 0.3], 200)
    vertices = torch.stack([base.vertices, base.vertices * 0.5])
    cam = _cameras()[0].to(dtype=torch.float32)
    hits = raycast((vertices, base.faces), cam)
    assert hits.depth.dtype == torch.float32 and hits.pix_to_face.shape == (2, 30, 40)
    assert (hits.pix_to_face[1] >= 0).sum() < (hits.pix_to_face[0] >= 0).sum()
    alone = raycast((vertices[1], base.faces), cam)
    assert torch.equal(alone.pix_to_face, hits.pix_to_face[1])


def test_bad_input():
    cams = _cameras()
    with pytest.raises(GeometryError, match="unknown backend"):
        raycast(geom3d.cuboid_mesh([0, 0, 0], [1, 1, 1], 50), cams, backend="optix")
    with pytest.raises(GeometryError, match="empty"):
        raycast((torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)), cams)
    with pytest.raises(GeometryError, match="NaN"):
        raycast((torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, float("nan"), 0]]), torch.tensor([[0, 1, 2]])), cams)
    with pytest.raises(GeometryError, match="face indices"):
        raycast((torch.rand(3, 3), torch.tensor([[0, 1, 5]])), cams)
    with pytest.raises(GeometryError, match="Mesh, a PaddedMeshes or a"):
        raycast(42, cams)
