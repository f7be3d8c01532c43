"""geom3d.pointcloud and geom3d.splat: depth -> points with provenance, z-buffer splatting, voxel
down-sampling, statistical outliers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import geom3d
from aware3d_utils import available
from geom3d import Cameras, Mesh, intrinsics_matrix
from geom3d.errors import GeometryError
from geom3d.gl import gl_available, render_gl
from geom3d.pointcloud import depth_to_points, remove_statistical_outliers, voxel_downsample
from geom3d.raster import rasterize
from geom3d.splatting import splat, splat_footprint

needs_open3d = pytest.mark.skipif(not available("open3d"), reason="open3d is not installed")


def two_cameras(h=20, w=24, dtype=torch.float64) -> Cameras:
    eye = torch.tensor([[0.2, -3.0, 0.5], [2.5, 1.0, 1.2]], dtype=dtype)
    return Cameras.look_at(eye, torch.zeros(3, dtype=dtype), focal=14.0, image_size=(h, w))


def brute_force_splat(points, colours, cams, radius, shape):
    """The splatting rule written as plain loops: each point covers the footprint around its nearest
    pixel; the smallest (float32 depth, index) wins."""
    B = len(cams)
    h, w = cams.image_size
    offsets = splat_footprint(radius, shape)
    index = torch.full((B, h, w), -1, dtype=torch.int64)
    best = [[[None] * w for _ in range(h)] for _ in range(B)]
    uv, z = cams.to(dtype=torch.float64).project(points.double()[None].expand(B, -1, 3), return_depth=True)
    for b in range(B):
        for n in range(points.shape[0]):
            if not z[b, n] > 1e-6:
                continue
            key = (float(np.float32(z[b, n])), n)
            cu, cv = int(torch.round(uv[b, n, 0])), int(torch.round(uv[b, n, 1]))
            for dx, dy in offsets:
                x, y = cu + dx, cv + dy
                if 0 <= x < w and 0 <= y < h and (best[b][y][x] is None or key < best[b][y][x]):
                    best[b][y][x] = key
                    index[b, y, x] = n
    hit = index >= 0
    depth = torch.where(hit, z.gather(1, index.clamp_min(0).reshape(B, -1)).reshape(B, h, w), 0.0)
    rgb = torch.where(hit[..., None], colours[index.clamp_min(0)], 0.0)
    return index, depth, rgb


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("radius,shape", [(0.5, "disc"), (1.0, "disc"), (1.5, "disc"), (2.3, "disc"),
                                          (1.0, "square"), (0.0, "square")])
def test_splat_matches_brute_force(dtype, radius, shape):
    g = torch.Generator().manual_seed(7)
    points = (torch.rand(400, 3, generator=g) * 2 - 1).to(dtype)
    points[:5] = torch.tensor([0.2, -3.5, 0.5], dtype=dtype)  # behind the first camera
    colours = torch.rand(400, 3, generator=g).to(dtype)
    cams = two_cameras(dtype=dtype)
    out = splat(points, colours, cams, radius=radius, shape=shape)
    index, depth, rgb = brute_force_splat(points, colours, cams, radius, shape)
    assert torch.equal(out.index, index)
    assert torch.equal(out.mask, index >= 0)
    assert out.depth.dtype == dtype and out.rgb.dtype == dtype
    assert torch.allclose(out.depth, depth.to(dtype), rtol=1e-6, atol=0)
    assert torch.equal(out.rgb, rgb.to(dtype))


def test_footprints():
    assert splat_footprint(0.5) == ((0, 0),)
    assert set(splat_footprint(1.0)) == {(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)}
    assert len(splat_footprint(1.5)) == 9 and len(splat_footprint(1.0, "square")) == 9
    assert len(splat_footprint(2.0)) == 13
    with pytest.raises(GeometryError):
        splat_footprint(-1.0)
    with pytest.raises(GeometryError):
        splat_footprint(1.0, "star")


def test_nearest_point_wins_and_ties_go_to_the_lower_index():
    K = intrinsics_matrix(10.0, 10.0, 4.0, 4.0, dtype=torch.float64)
    cam = Cameras(K, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), (9, 9))
    # all four project to pixel (4, 4); points 1 and 2 tie at z = 2, point 3 is nearest at z = 1.5
    points = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.5]], dtype=torch.float64)
    colours = torch.eye(4, 3, dtype=torch.float64)
    out = splat(points, colours, cam, radius=0.5)
    assert out.index[4, 4] == 3 and out.depth[4, 4] == 1.5
    out = splat(points[:3], colours[:3], cam, radius=0.5)
    assert out.index[4, 4] == 1 and out.mask.sum() == 1
    assert torch.equal(out.rgb[4, 4], colours[1])
    # a point whose nearest pixel lies just outside the image still covers its neighbour inside
    edge = splat(torch.tensor([[0.49, 0.0, 1.0]], dtype=torch.float64), None, cam, radius=1.0, background=0.25)
    assert edge.mask.sum() == 1 and edge.index[4, 8] == 0
    assert torch.equal(edge.rgb[4, 8], torch.ones(3, dtype=torch.float64))
    assert (edge.rgb[0, 0] == 0.25).all()
    tinted = splat(points, colours, cam, radius=0.5, background=(0.1, 0.2, 0.3))
    assert torch.equal(tinted.rgb[0, 0], torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    assert torch.equal(tinted.rgb[4, 4], colours[3])


def test_per_camera_clouds_and_batch_shapes():
    g = torch.Generator().manual_seed(3)
    cams = two_cameras()
    clouds = torch.rand(2, 200, 3, generator=g, dtype=torch.float64) - 0.5
    cols = torch.rand(2, 200, 3, generator=g, dtype=torch.float64)
    both = splat(clouds, cols, cams, radius=1.0)
    for b in range(2):
        one = splat(clouds[b], cols[b], cams[b], radius=1.0)
        for key in ("index", "depth", "rgb", "mask"):
            assert torch.equal(getattr(both, key)[b], getattr(one, key))
    with pytest.raises(GeometryError, match="broadcast"):
        splat(torch.rand(3, 10, 3), None, cams)
    with pytest.raises(GeometryError, match="points"):
        splat(torch.rand(10, 2), None, cams)
    with pytest.raises(GeometryError, match="colors"):
        splat(clouds[0], torch.rand(5, 3), cams)
    with pytest.raises(GeometryError, match="image_size"):
        splat(clouds[0], None, cams, image_size=(5, 5))


def orbit(mesh: Mesh, image_size=(96, 128), n=2, dtype=torch.float32) -> Cameras:
    lo, hi = mesh.bounds().double()
    centre, extent = (lo + hi) / 2, float((hi - lo).max())
    az = torch.tensor([0.4, 2.5][:n], dtype=torch.float64)
    eye = centre + 1.8 * extent * torch.stack([az.sin(), -az.cos(), torch.full_like(az, 0.5)], -1)
    return Cameras.look_at(eye, centre, focal=0.9 * image_size[1], image_size=image_size).to(dtype=dtype)


def assert_round_trip(depth, rgb, cams):
    cloud = depth_to_points(depth, cams, rgb)
    points, colours = cloud.points, cloud.colors
    mask = depth > 0
    assert points.shape[0] == int(mask.sum())
    # provenance: each point names its view and pixel, and sits on that pixel's ray at its depth
    assert torch.equal(torch.stack([cloud.view, *cloud.pixel.unbind(-1)], -1), mask.nonzero())
    assert torch.equal(colours, rgb[cloud.view, cloud.pixel[:, 0], cloud.pixel[:, 1]])
    for b in range(len(cams)):
        sel = mask[b]
        start = int(mask[:b].sum())
        pts = points[start:start + int(sel.sum())]
        one = splat(pts, colours[start:start + int(sel.sum())], cams[b], radius=0.5)
        assert torch.equal(one.mask, sel)
        assert torch.allclose(one.depth[sel], depth[b][sel], rtol=1e-5, atol=0)
        assert torch.equal(one.rgb[sel], rgb[b][sel])
        assert torch.equal(one.index[sel], torch.arange(int(sel.sum())))  # row-major order
        # with larger splats, nearer points may cover a pixel; never a farther one
        wide = splat(pts, None, cams[b], radius=1.5)
        assert (wide.mask >= sel).all()
        assert (wide.depth[sel] <= depth[b][sel] * (1 + 1e-6)).all()


def test_depth_map_round_trip_through_the_rasterizer():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=300)
    cams = orbit(mesh)
    frags = rasterize(mesh, cams)
    rgb = torch.rand(2, 96, 128, 3, generator=torch.Generator().manual_seed(0))
    assert_round_trip(frags.depth, rgb, cams)


@pytest.mark.gl
@pytest.mark.realdata
@pytest.mark.skipif(not gl_available(), reason="no headless EGL OpenGL context can be created here")
def test_depth_map_round_trip_through_gl_on_a_real_mesh(shared_data):
    mesh = Mesh.load(shared_data / "meshes/bunny.ply")
    cams = orbit(mesh)
    out = render_gl(mesh, cams, outputs=("rgb", "depth"))
    assert_round_trip(out.depth, out.rgb, cams)


@needs_open3d
def test_depth_to_points_matches_open3d():
    import open3d as o3d

    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=300)
    cams = orbit(mesh, (60, 80), n=1)
    depth = rasterize(mesh, cams).depth[0]
    points = depth_to_points(depth, cams[0]).points
    # Open3D's legacy back-projection puts pixel centres at integers, like us
    K = cams.K[0].double().numpy()
    intrinsic = o3d.camera.PinholeCameraIntrinsic(80, 60, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    extrinsic = np.eye(4)
    extrinsic[:3, :3], extrinsic[:3, 3] = cams.R[0].double().numpy(), cams.t[0].double().numpy()
    cloud = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(depth.numpy().astype(np.float32)), intrinsic, extrinsic, depth_scale=1.0, depth_trunc=1e9)
    assert torch.allclose(points.double(), torch.from_numpy(np.asarray(cloud.points)), atol=1e-5)


def test_depth_to_points_mask_colours_and_errors():
    cam = Cameras(intrinsics_matrix(5.0, 5.0, 1.5, 1.0), torch.eye(3), torch.zeros(3), (3, 4))
    depth = torch.tensor([[1.0, 0.0, 2.0, float("nan")], [1.0, 1.0, 1.0, 1.0], [3.0, -1.0, 1.0, 1.0]])
    rgb = torch.arange(36, dtype=torch.uint8).reshape(3, 4, 3)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    cloud = depth_to_points(depth, cam, rgb, mask=mask)
    points, colours = cloud.points, cloud.colors
    keep = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1]], dtype=torch.bool)
    assert points.shape == (5, 3)
    assert torch.equal(colours, rgb[keep].float() / 255)
    assert torch.allclose(points[:, 2], depth[keep])
    # pixel (row 0, column 2) at depth 2: x = (2 - 1.5) / 5 · 2, y = (0 - 1) / 5 · 2
    assert torch.allclose(points[1], torch.tensor([0.2, -0.4, 2.0]))
    with pytest.raises(GeometryError, match="depth"):
        depth_to_points(torch.ones(4, 4), cam)
    assert torch.equal(cloud.pixel, keep.nonzero()) and (cloud.view == 0).all()
    with pytest.raises(GeometryError, match="colors"):
        depth_to_points(depth, cam, torch.zeros(3, 4))
    with pytest.raises(GeometryError, match="broadcast"):
        depth_to_points(torch.ones(2, 3, 4), cam.expand(3))


def test_depth_to_points_provenance_over_a_batch_of_views():
    # cameras of batch shape (2, 3); each point projects back to its own view's pixel at its depth
    g = torch.Generator().manual_seed(5)
    cams = two_cameras(10, 12).reshape(2, 1).expand(2, 3)
    cams = cams.replace(t=cams.t + 0.1 * torch.randn(2, 3, 3, generator=g, dtype=torch.float64))
    depth = 2.0 + torch.rand(2, 3, 10, 12, generator=g, dtype=torch.float64)
    depth[0, 1, :5] = 0.0  # empty pixels drop out
    mask = torch.rand(10, 12, generator=g) > 0.3  # one mask shared by every view
    cloud = depth_to_points(depth, cams, mask=mask)
    keep = (depth > 0) & mask
    assert cloud.points.shape == (int(keep.sum()), 3) and cloud.colors is None
    assert cloud.view.dtype == torch.int64 and cloud.pixel.dtype == torch.int64
    i, j = torch.unravel_index(cloud.view, (2, 3))
    uv, z = cams[i, j].project(cloud.points[:, None], return_depth=True)
    assert torch.allclose(uv[:, 0], cloud.pixel.flip(-1).double(), atol=1e-9)
    assert torch.allclose(z[:, 0], depth[i, j, cloud.pixel[:, 0], cloud.pixel[:, 1]], rtol=1e-12)
    # one depth map under three cameras: the views broadcast
    shared = depth_to_points(depth[0, 0], cams[0])
    assert shared.points.shape[0] == 3 * int((depth[0, 0] > 0).sum()) and set(shared.view.tolist()) == {0, 1, 2}


@settings(max_examples=25, deadline=None)
@given(st.floats(0.2, 20.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.integers(0, 2**31 - 1))
def test_depth_to_points_projects_back_to_its_pixels(z, ax, ay, seed):
    g = torch.Generator().manual_seed(seed)
    R = geom3d.axis_angle_to_matrix(torch.tensor([ax, ay, 0.3], dtype=torch.float64))
    cam = Cameras(intrinsics_matrix(30.0, 28.0, 7.3, 5.1, dtype=torch.float64), R,
                  torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), (12, 16))
    depth = z * (0.5 + torch.rand(12, 16, generator=g, dtype=torch.float64))
    points = depth_to_points(depth, cam).points
    uv, d = cam.project(points, return_depth=True)
    assert torch.allclose(uv, geom3d.pixel_grid((12, 16), dtype=torch.float64).reshape(-1, 2), atol=1e-8)
    assert torch.allclose(d, depth.reshape(-1), rtol=1e-12)


# ---------------------------------------------------------------------------------------- filters
def _pair(cloud):
    return cloud.points, cloud.colors


def _triple(cloud):
    return cloud.points, cloud.colors, cloud.index


def noisy_cloud(n=3000, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    surface = torch.randn(n, 3, generator=g, dtype=torch.float64)
    surface = surface / surface.norm(dim=1, keepdim=True)
    outliers = (torch.rand(n // 50, 3, generator=g, dtype=torch.float64) - 0.5) * 6
    pts = torch.cat([surface, outliers, surface[:10]])  # 10 exact duplicates
    cols = torch.rand(pts.shape[0], 3, generator=g, dtype=torch.float64)
    return pts.to(dtype), cols.to(dtype)


@needs_open3d
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("voxel", [0.05, 0.13, 1.0])
def test_voxel_downsample_torch_equals_open3d(dtype, voxel):
    import open3d as o3d

    pts, cols = noisy_cloud(dtype=dtype)
    p_t, c_t = _pair(voxel_downsample(pts, cols, voxel_size=voxel, backend="torch"))
    p_o, c_o = _pair(voxel_downsample(pts, cols, voxel_size=voxel, backend="open3d"))
    assert p_t.dtype == dtype and c_t.dtype == dtype
    assert torch.equal(p_t, p_o) and torch.equal(c_t, c_o)
    # and against Open3D's plain voxel_down_sample (its own output order), in float64
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.double().numpy()))
    cloud.colors = o3d.utility.Vector3dVector(cols.double().numpy())
    ref = cloud.voxel_down_sample(voxel)
    ref_p, ref_c = np.asarray(ref.points), np.asarray(ref.colors)
    p64, c64 = _pair(voxel_downsample(pts.double(), cols.double(), voxel_size=voxel, backend="torch"))
    order = np.lexsort(ref_p.T[::-1])
    mine = np.lexsort(p64.numpy().T[::-1])
    assert np.array_equal(ref_p[order], p64.numpy()[mine])
    assert np.array_equal(ref_c[order], c64.numpy()[mine])


def test_voxel_downsample_by_hand():
    # grid origin = min − s/2 = (−0.5, −0.5, −0.5) for s = 1: points 0 and 1 share voxel (0, 0, 0)
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.4, 0.2, 0.0], [1.0, 0.0, 0.0], [0.1, 2.0, 0.0]], dtype=torch.float64)
    cols = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    p, c = _pair(voxel_downsample(pts, cols, voxel_size=1.0, backend="torch"))
    assert torch.allclose(p, torch.tensor([[0.2, 0.1, 0.0], [0.1, 2.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(c, torch.tensor([[0.5, 0.5, 0], [1.0, 1.0, 1.0], [0, 0, 1.0]], dtype=torch.float64))
    p, c = _pair(voxel_downsample(pts, voxel_size=1.0, backend="torch"))
    assert c is None and p.shape == (3, 3)
    with pytest.raises(GeometryError, match="voxel_size"):
        voxel_downsample(pts, voxel_size=0.0)
    with pytest.raises(GeometryError, match="NaN"):
        voxel_downsample(torch.tensor([[float("nan"), 0.0, 0.0]]), voxel_size=1.0)
    with pytest.raises(GeometryError, match="backend"):
        voxel_downsample(pts, voxel_size=1.0, backend="pcl")


@needs_open3d
@pytest.mark.parametrize("k,ratio", [(20, 2.0), (8, 0.5), (1, 1.0), (5000, 1.5)])
def test_statistical_outliers_torch_equals_open3d(k, ratio):
    pts, cols = noisy_cloud(1500)
    p_t, c_t, idx_t = _triple(remove_statistical_outliers(pts, cols, nb_neighbors=k, std_ratio=ratio, backend="torch"))
    p_o, c_o, idx_o = _triple(remove_statistical_outliers(pts, cols, nb_neighbors=k, std_ratio=ratio, backend="open3d"))
    assert torch.equal(idx_t, idx_o)
    assert torch.equal(p_t, pts[idx_t]) and torch.equal(c_t, cols[idx_t])
    if k == 20:  # the scattered outliers go, most of the sphere stays
        n_surface = 1500
        assert (idx_t >= n_surface).sum() < (idx_t < n_surface).sum() / 100
        assert (idx_t < n_surface).sum() > 0.9 * n_surface


def test_statistical_outliers_by_hand():
    # a unit grid of 9 points and one far point; k = 2 (self + nearest)
    grid = torch.stack(torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij"), -1).reshape(-1, 2)
    pts = torch.cat([torch.cat([grid, torch.zeros(9, 1)], 1), torch.tensor([[10.0, 10.0, 0.0]])]).double()
    kept = remove_statistical_outliers(pts, nb_neighbors=2, std_ratio=1.0, backend="torch").index
    # mean distances: 0.5 for grid points, ≈ 5.657 for the far one (its nearest is (2, 2))
    d = np.array([0.5] * 9 + [np.hypot(8, 8) / 2])
    threshold = d.mean() + 1.0 * d.std(ddof=1)
    assert d[-1] > threshold
    assert torch.equal(kept, torch.arange(9))
    with pytest.raises(GeometryError, match="positive"):
        remove_statistical_outliers(pts, nb_neighbors=0, std_ratio=1.0)


def test_splat_of_an_empty_cloud_is_an_empty_image():
    cam = geom3d.Cameras(geom3d.intrinsics_matrix(20.0, 20.0, 15.5, 15.5), torch.eye(3), torch.zeros(3), (32, 32))
    for points, cams in ((torch.zeros(0, 3), cam), (torch.zeros(2, 0, 3), cam.expand(2))):
        out = splat(points, None, cams)
        assert out.rgb.shape[-3:] == (32, 32, 3) and not out.mask.any() and (out.index == -1).all()


def test_depth_to_points_is_differentiable_in_depth():
    cam = Cameras(intrinsics_matrix(5.0, 6.0, 1.5, 1.0, dtype=torch.float64), torch.eye(3, dtype=torch.float64),
                  torch.tensor([0.1, 0.0, 0.2], dtype=torch.float64), (3, 4))
    depth = (1.0 + torch.rand(3, 4, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d: depth_to_points(d, cam).points, (depth,))


def test_clouds_save_and_load_as_point_clouds(tmp_path):
    cam = Cameras(intrinsics_matrix(5.0, 5.0, 1.5, 1.0), torch.eye(3), torch.zeros(3), (3, 4))
    rgb = torch.arange(36, dtype=torch.uint8).reshape(3, 4, 3)
    cloud = depth_to_points(torch.full((3, 4), 2.0), cam, rgb)
    geom3d.save_point_cloud(tmp_path / "cloud.ply", cloud)
    back = geom3d.load_point_cloud(tmp_path / "cloud.ply")
    assert isinstance(back, geom3d.PointCloud) and torch.equal(back.points, cloud.points)
    assert torch.equal((back.colors * 255).round().to(torch.uint8), rgb.reshape(-1, 3))
    with pytest.raises(geom3d.MeshError, match="colors"):
        geom3d.save_point_cloud(tmp_path / "bad.ply", cloud.points, torch.zeros(2, 3))
