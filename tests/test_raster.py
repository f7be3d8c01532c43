"""geom3d.raster: exact tie rule, agreement with Embree and Open3D ray casting on real meshes,
perspective-correct depth and barycentrics against unprojection, gradients against finite
differences, batching, near-plane clipping, back-face culling, soft silhouettes, render-and-compare,
bad input. The render-and-compare primitives (vertex visibility, padded banks, images × hypotheses,
indexed interpolation, antialias) are tested in test_raster_compare.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import geom3d
from aware3d_utils import available
from geom3d import GeometryError
from geom3d.raster import (
    fragments_for_faces,
    interpolate,
    pad_meshes,
    rasterize,
    soft_silhouette,
    visible_faces,
)
from geom3d.raster.interpolation import interpolate_gather
from geom3d.raycasting import raycast

F64 = torch.float64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _identity_camera(size, focal=1.0, principal=(0.0, 0.0), dtype=torch.float32) -> geom3d.Cameras:
    """World = camera frame; with focal 1 and principal point 0, (x, y, 1) projects to (u, v) = (x, y)."""
    K = geom3d.intrinsics_matrix(focal, focal, principal[0], principal[1], dtype=dtype)
    return geom3d.Cameras(K, torch.eye(3, dtype=dtype), torch.zeros(3, dtype=dtype), size)


def _grid_mesh(n: int, z: float = 1.0, dtype=torch.float32):
    """A flat (n × n)-cell grid at depth z with vertices on integer (x, y): every edge runs through
    pixel centres under `_identity_camera`. Cells split along alternating diagonals."""
    ys, xs = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    vertices = torch.stack([xs, ys, torch.full_like(xs, 0)], -1).reshape(-1, 3).to(dtype)
    vertices[:, 2] = z
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1
            faces += [[a, b, d], [a, d, c]] if (i + j) % 2 else [[a, b, c], [b, d, c]]
    return vertices, torch.tensor(faces)


def _fan_mesh(centre=(4.0, 4.0), radius=3.0, sides=7, z=1.0):
    """Triangles around a vertex on a pixel centre, alternating winding."""
    angles = torch.arange(sides, dtype=F64) * (2 * math.pi / sides) + 0.3
    rim = torch.stack([centre[0] + radius * torch.cos(angles), centre[1] + radius * torch.sin(angles),
                       torch.full_like(angles, z)], -1)
    vertices = torch.cat([torch.tensor([[centre[0], centre[1], z]], dtype=F64), rim])
    faces = [[0, 1 + k, 1 + (k + 1) % sides] if k % 2 else [0, 1 + (k + 1) % sides, 1 + k] for k in range(sides)]
    return vertices, torch.tensor(faces)


# ---------------------------------------------------------------- coverage and the tie rule
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_shared_edges_through_pixel_centres_cover_each_pixel_once(dtype):
    vertices, faces = _grid_mesh(6, dtype=dtype)
    cam = _identity_camera((9, 9), dtype=dtype)
    full = rasterize((vertices, faces), cam)
    # Top-left rule on the square [0, 6]²: left and top edges in, right and bottom edges out.
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[:6, :6] = True
    assert torch.equal(full.mask, expected)
    # One view per face (per-mesh faces (F, 1, 3)): every covered pixel is claimed by exactly one face.
    single = visible_faces((vertices, faces[:, None, :]), cam)
    counts = (single >= 0).sum(0)
    assert counts.max() == 1
    assert torch.equal(counts.bool(), expected)
    owner = torch.where(single >= 0, torch.arange(len(faces))[:, None, None], 0).sum(0)
    assert torch.equal(owner[expected], full.pix_to_face[expected])


def test_fan_around_a_pixel_centre_claims_it_once():
    vertices, faces = _fan_mesh()
    cam = _identity_camera((9, 9), dtype=F64)
    single = visible_faces((vertices, faces[:, None, :]), cam)
    counts = (single >= 0).sum(0)
    assert counts[4, 4] == 1  # the shared vertex itself
    assert counts.max() == 1
    assert torch.equal(counts.bool(), rasterize((vertices, faces), cam).mask)


def test_single_triangle_coverage_by_hand():
    # Right triangle (0, 0), (4, 0), (0, 4): centres with u, v ≥ 0 and u + v < 4 (the hypotenuse is a
    # right/bottom edge, so centres on it are out), plus nothing else.
    vertices = torch.tensor([[0.0, 0, 1], [4, 0, 1], [0, 4, 1]])
    cam = _identity_camera((6, 6))
    mask = rasterize((vertices, torch.tensor([[0, 1, 2]])), cam).mask
    v, u = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    assert torch.equal(mask, (u + v < 4))


def _integer_coverage(uv: np.ndarray, faces: np.ndarray, size) -> np.ndarray:
    """Per-face coverage (F, H, W) of triangles with integer pixel corners uv (V, 2), in exact
    integer arithmetic: inside when every oriented edge function is > 0, or = 0 on a left edge
    (a > 0) or a top edge (a = 0, b > 0) -- an independent statement of the rule."""
    H, W = size
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    out = np.zeros((len(faces), H, W), dtype=bool)
    for f, tri in enumerate(faces):
        p = uv[tri].astype(np.int64)
        area = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1])
        if area == 0:
            continue
        inside = np.ones((H, W), dtype=bool)
        for i in range(3):
            j, k = p[(i + 1) % 3], p[(i + 2) % 3]
            a, b = (j[1] - k[1]) * np.sign(area), (k[0] - j[0]) * np.sign(area)
            e = a * u + b * v + (j[0] * k[1] - k[0] * j[1]) * np.sign(area)
            inside &= (e > 0) | ((e == 0) & ((a > 0) | ((a == 0) & (b > 0))))
        out[f] = inside
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), spacing=st.integers(2, 5))
def test_tie_rule_matches_exact_integer_reference(seed, spacing):
    # A jittered grid with integer corners (edges through pixel centres, vertices on them) at
    # power-of-two depths, so that the corners project exactly and the rule can be evaluated in
    # integers. Exact agreement needs exactly opposite edge values on shared edges.
    rng = np.random.default_rng(seed)
    n = 4
    ys, xs = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    jitter = rng.integers(-(spacing - 1) // 2, spacing // 2 + 1, size=(2, n + 1, n + 1))
    uv = np.stack([xs * spacing + jitter[0] + 1, ys * spacing + jitter[1] + 1], -1).reshape(-1, 2)
    _, faces = _grid_mesh(n)
    faces = faces.numpy()
    flip = rng.random(len(faces)) < 0.3  # mixed winding: the rule must not depend on it
    faces[flip] = faces[flip][:, [0, 2, 1]]
    size = (n * spacing + 3, n * spacing + 3)
    expected = _integer_coverage(uv, faces, size)
    depth = 2.0 ** rng.integers(0, 3, len(uv))  # powers of two: corners still project exactly to uv
    vertices = torch.as_tensor(np.concatenate([uv * depth[:, None], depth[:, None]], 1))
    cam = _identity_camera(size, dtype=F64)
    per_face = visible_faces((vertices, torch.as_tensor(faces)[:, None, :]), cam) >= 0
    assert np.array_equal(per_face.numpy(), expected)
    # (jittered cells may fold over, so pixels can lie in two faces; the union is the full coverage)
    assert np.array_equal(rasterize((vertices, torch.as_tensor(faces)), cam).mask.numpy(), expected.any(0))


# ---------------------------------------------------------------- depth and barycentrics
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_depth_and_barycentrics_reconstruct_the_surface(dtype):
    # A tilted triangle: Σ λ_i X_i must be the point unprojected from the pixel at the depth.
    vertices = torch.tensor([[-0.6, -0.5, 0.3], [0.7, -0.3, -0.4], [0.1, 0.6, 0.5]], dtype=dtype)
    cam = geom3d.Cameras.look_at(torch.tensor([0.3, -2.5, 0.8], dtype=dtype), focal=60.0, image_size=(41, 47))
    fr = rasterize((vertices, torch.tensor([[0, 1, 2]])), cam)
    assert fr.depth.dtype == dtype and fr.bary.dtype == dtype
    mask = fr.mask
    assert mask.sum() > 200
    on_surface = (fr.bary[..., None] * vertices).sum(-2)  # (H, W, 3)
    unprojected = cam.unproject(fr.depth)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(on_surface[mask], unprojected[mask], atol=tol, rtol=0)
    assert (fr.bary[mask] >= -1e-6).all()
    torch.testing.assert_close(fr.bary[mask].sum(-1), torch.ones(int(mask.sum()), dtype=dtype))
    assert (fr.depth[~mask] == 0).all() and (fr.bary[~mask] == 0).all()
    # Depth is linear in 1/z across the screen, not z: the plane through the corners.
    normal = torch.linalg.cross(vertices[1] - vertices[0], vertices[2] - vertices[0])
    assert torch.allclose((unprojected[mask] - vertices[0]) @ normal, torch.zeros((), dtype=dtype), atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_interpolate_is_perspective_correct(dtype):
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 200)
    vertices = mesh.vertices.to(dtype)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([0.4, 2.5], dtype=dtype), 0.3, 0.1, 2.0, 1.0, 60.0,
                                       image_size=(48, 64))
    fr = rasterize((vertices, mesh.faces), cams)
    world = interpolate(fr, vertices)  # interpolated positions = the surface point of each pixel
    assert world.shape == (2, 48, 64, 3) and world.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(world[fr.mask], cams.unproject(fr.depth)[fr.mask], atol=tol, rtol=0)
    assert (world[~fr.mask] == 0).all()
    torch.testing.assert_close(interpolate_gather(fr, vertices), world)


# ---------------------------------------------------------------- agreement with ray casting
def _canonical_face_ids(mesh: geom3d.Mesh) -> torch.Tensor:
    """Face index -> the lowest index of a face with the same corner positions (CAD models repeat
    faces with both windings); index −1 maps to −1 (use as table[pix_to_face])."""
    v, f = mesh.vertices.numpy(), mesh.faces.numpy()
    _, position_id = np.unique(v, axis=0, return_inverse=True)
    key = np.sort(position_id.reshape(-1)[f], axis=1)
    _, first, which = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return torch.as_tensor(np.concatenate([first[which.reshape(-1)], [-1]]))


def _agreement_cameras(size=(120, 160)) -> geom3d.Cameras:
    vp = geom3d.viewpoint_to_cameras(torch.tensor([0.3, 2.2, 4.4]), torch.tensor([0.25, 0.6, -0.3]),
                                     torch.tensor([0.0, 0.15, -0.3]), 2.0, 1.0, 300.0, image_size=size)
    la = geom3d.Cameras.look_at(torch.tensor([[1.1, -1.3, 0.9]]), focal=170.0, image_size=size)
    return geom3d.Cameras.cat([vp, la])


def _assert_agree(fr_faces, fr_depth, hits, canon, label):
    a, b = fr_faces, hits.pix_to_face
    covered_a, covered_b = a >= 0, b >= 0
    assert (covered_a ^ covered_b).float().mean() <= 1e-3, f"{label}: coverage differs"
    both = covered_a & covered_b
    same = both & (canon[a] == canon[b])
    assert same.sum() >= 0.999 * both.sum(), f"{label}: face agreement {float(same.sum() / both.sum()):.5f}"
    rel = (fr_depth - hits.depth).abs() / hits.depth.clamp_min(1e-12)
    assert rel[same].max() <= 1e-4, f"{label}: depth differs by {float(rel[same].max()):.2e}"


def _load(shared_data, name: str) -> geom3d.Mesh:
    if name == "cuboid":
        cars = [geom3d.Mesh.load(shared_data / "pascal3d_cad" / "car" / f) for f in ("01.off", "03.off")]
        return geom3d.cuboid_from_meshes(cars)
    return geom3d.Mesh.load(shared_data / name).normalized()[0]


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["meshes/bunny.ply", "meshes/teapot.obj", "pascal3d_cad/car/01.off",
                                  "pascal3d_cad/chair/02.off", "cuboid"])
def test_agrees_with_embree_and_open3d_on_real_meshes(shared_data, name):
    mesh = _load(shared_data, name)
    cams = _agreement_cameras()
    fr = rasterize((mesh.vertices, mesh.faces), cams)
    canon = _canonical_face_ids(mesh)
    assert fr.mask.any(-1).any(-1).all()
    backends = ["embree"] + (["open3d"] if available("open3d") else [])
    for backend in backends:
        _assert_agree(fr.pix_to_face, fr.depth, raycast(mesh, cams, backend=backend), canon, f"{name} vs {backend}")


@pytest.mark.realdata
def test_agreement_in_float64_and_with_culling(shared_data):
    mesh = _load(shared_data, "meshes/teapot.obj")
    cams = _agreement_cameras((90, 120)).to(dtype=F64)
    fr = rasterize((mesh.vertices.double(), mesh.faces), cams)
    assert fr.depth.dtype == F64
    _assert_agree(fr.pix_to_face, fr.depth, raycast(mesh, cams), _canonical_face_ids(mesh), "teapot f64")
    # The teapot is not closed (open spout and lid seams), so compare culling on the closed cuboid.
    box = geom3d.cuboid_mesh([-0.3, -0.4, -0.2], [0.3, 0.4, 0.2], 600)
    plain = rasterize((box.vertices, box.faces), cams)
    culled = rasterize((box.vertices, box.faces), cams, cull_backfaces=True)
    assert torch.equal(plain.pix_to_face, culled.pix_to_face)


# ---------------------------------------------------------------- near plane and culling
def _room(size=2.0) -> geom3d.Mesh:
    """A closed box around the origin, faces winding outwards."""
    return geom3d.cuboid_mesh([-size / 2] * 3, [size / 2] * 3, 400)


def test_camera_inside_a_box_clips_at_the_near_plane():
    room = _room()
    cams = geom3d.Cameras.look_at(torch.tensor([[0.1, -0.2, 0.05], [0.0, 0.3, -0.2]]),
                                  torch.tensor([[1.0, 0.4, 0.3], [-1.0, 0.1, 0.6]]), focal=30.0,
                                  image_size=(60, 80))
    corners = cams.world_to_camera(room.vertices)[:, room.faces][..., 2]  # (B, F, 3)
    assert ((corners.amin(-1) < 0) & (corners.amax(-1) > 0)).any()  # triangles cross the camera plane
    fr = rasterize((room.vertices, room.faces), cams)
    assert fr.mask.all()  # every ray hits a wall
    hits = raycast(room, cams)
    _assert_agree(fr.pix_to_face, fr.depth, hits, torch.cat([torch.arange(room.num_faces), torch.tensor([-1])]),
                  "room")
    # Seen from inside, every face of an outward-wound box is a back face.
    assert not rasterize((room.vertices, room.faces), cams, cull_backfaces=True).mask.any()


def test_near_plane_cuts_a_triangle_per_pixel():
    # One big triangle crossing z = near: pixels whose hit is nearer than `near` are empty.
    vertices = torch.tensor([[-3.0, -2.0, 0.2], [3.0, -2.0, 0.2], [0.0, 3.0, 4.0]], dtype=F64)
    cam = _identity_camera((40, 40), focal=10.0, principal=(19.5, 19.5), dtype=F64)
    faces = torch.tensor([[0, 1, 2]])
    full = rasterize((vertices, faces), cam, near=0.1)
    cut = rasterize((vertices, faces), cam, near=1.0)
    assert full.mask.sum() > cut.mask.sum() > 0
    assert (full.depth[full.mask & ~cut.mask] < 1.0).all()
    assert (cut.depth[cut.mask] >= 1.0).all()
    torch.testing.assert_close(cut.depth[cut.mask], full.depth[cut.mask])
    # all corners behind the near plane: nothing
    assert not rasterize((vertices, faces), cam, near=5.0).mask.any()
    # corners behind the camera (z < 0) still give the right visible part
    behind = vertices.clone()
    behind[:2, 2] = -1.0
    fr = rasterize((behind, faces), cam)
    hits = raycast((behind, faces), cam.reshape(1))
    assert torch.equal(fr.mask, hits.pix_to_face[0] >= 0)
    torch.testing.assert_close(fr.depth, hits.depth[0], rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------- batching
def test_one_mesh_many_cameras_equals_one_by_one():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 300)
    cams = geom3d.viewpoint_to_cameras(torch.linspace(0, 5, 5), 0.2, 0.0, 2.5, 1.0, 80.0, image_size=(40, 52))
    batched = rasterize((mesh.vertices, mesh.faces), cams)
    assert batched.pix_to_face.shape == (5, 40, 52) and batched.bary.shape == (5, 40, 52, 3)
    for b in range(5):
        single = rasterize((mesh.vertices, mesh.faces), cams[b])
        assert torch.equal(single.pix_to_face, batched.pix_to_face[b])
        torch.testing.assert_close(single.depth, batched.depth[b])
        torch.testing.assert_close(single.bary, batched.bary[b])


def test_many_meshes_shared_and_padded_faces():
    base = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 300)
    scales = torch.tensor([1.0, 0.7, 1.3])[:, None, None]
    vertices = base.vertices * scales  # (3, V, 3), shared faces
    cam = geom3d.viewpoint_to_cameras(0.7, 0.3, 0.0, 3.0, 1.0, 80.0, image_size=(40, 52))
    batched = rasterize((vertices, base.faces), cam)
    for b in range(3):
        assert torch.equal(rasterize((vertices[b], base.faces), cam).pix_to_face, batched.pix_to_face[b])
    # meshes of different sizes, padded
    other = geom3d.cuboid_mesh([-0.2, -0.2, -0.2], [0.2, 0.2, 0.3], 120)
    bank = pad_meshes([base, other])
    assert bank.vertices.shape == (2, base.num_vertices, 3) and bank.faces.shape == (2, base.num_faces, 3)
    assert bank.vertex_counts.tolist() == [base.num_vertices, other.num_vertices]
    assert bank.face_counts.tolist() == [base.num_faces, other.num_faces]
    padded = rasterize(bank, cam)
    assert torch.equal(padded.pix_to_face[0], rasterize(base, cam).pix_to_face)
    alone = rasterize((other.vertices, other.faces), cam)
    assert torch.equal(padded.pix_to_face[1], alone.pix_to_face)
    colours = torch.stack([torch.rand(base.num_vertices, 3),
                           torch.cat([other.vertices, torch.zeros(base.num_vertices - other.num_vertices, 3)])])
    torch.testing.assert_close(interpolate(padded, colours)[1], interpolate(alone, other.vertices))


# ---------------------------------------------------------------- gradients
def _small_scene(dtype=F64):
    mesh = geom3d.cuboid_mesh([-0.3, -0.4, -0.2], [0.3, 0.4, 0.2], 40)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([0.5, 2.4], dtype=dtype), 0.4, 0.1, 2.2, 1.0, 18.0,
                                       image_size=(12, 14))
    return mesh.vertices.to(dtype), mesh.faces, cams


def test_interpolate_gradcheck_float64():
    _, _, cams = _small_scene()
    tet = 1.6 * torch.tensor([[0.0, 0.0, 0.3], [0.5, -0.2, -0.1], [-0.3, 0.4, 0.0], [-0.1, -0.4, -0.2]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    p2f = rasterize((tet, faces), cams).pix_to_face
    assert p2f.ge(0).sum() > 60 and p2f.unique().numel() >= 3  # empty and at least two faces
    torch.manual_seed(0)
    fr = fragments_for_faces((tet, faces), cams, pix_to_face=p2f)
    shared = torch.randn(4, 3, dtype=F64, requires_grad=True)
    per_view = torch.randn(2, 4, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: interpolate(fr, a), (shared,))
    assert torch.autograd.gradcheck(lambda a: interpolate(fr, a), (per_view,))
    # jointly w.r.t. vertex positions and attributes (covered pixels only: fewer backward passes)
    v = tet.clone().requires_grad_(True)
    mask = p2f >= 0
    two = shared[:, :2].detach().requires_grad_(True)
    joint = lambda x, a: interpolate(fragments_for_faces((x, faces), cams, pix_to_face=p2f), a)[mask]  # noqa: E731
    assert torch.autograd.gradcheck(joint, (v, two))
    # a larger mesh, checked along random directions
    vertices, faces, cams = _small_scene()
    fr = rasterize((vertices, faces), cams)
    attrs = torch.randn(len(vertices), 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: interpolate(fr, a), (attrs,), fast_mode=True)


def test_depth_and_feature_gradients_match_finite_differences():
    # Visibility held fixed (pix_to_face from the unperturbed mesh), gradients w.r.t. vertices and
    # cameras against central differences.
    vertices, faces, cams = _small_scene()
    p2f = rasterize((vertices, faces), cams).pix_to_face
    v = vertices.clone().requires_grad_(True)
    mask = p2f >= 0
    assert torch.autograd.gradcheck(lambda x: fragments_for_faces((x, faces), cams, pix_to_face=p2f).depth[mask], (v,))
    assert torch.autograd.gradcheck(lambda x: fragments_for_faces((x, faces), cams, pix_to_face=p2f).bary[mask], (v,))
    t = cams.t.clone().requires_grad_(True)
    moved = lambda tt: fragments_for_faces((vertices, faces), cams.replace(t=tt, check=False), pix_to_face=p2f)  # noqa: E731
    assert torch.autograd.gradcheck(lambda tt: moved(tt).depth[mask], (t,))
    # rasterize's own gradient is the same computation
    features = torch.randn(len(vertices), 4, dtype=F64)
    loss = lambda x: (interpolate(rasterize((x, faces), cams), features) ** 2).sum()  # noqa: E731
    g_raster = torch.autograd.grad(loss(v), v)[0]
    fixed = fragments_for_faces((v, faces), cams, pix_to_face=p2f)
    g_fixed = torch.autograd.grad((interpolate(fixed, features) ** 2).sum(), v)[0]
    torch.testing.assert_close(g_raster, g_fixed)


# ---------------------------------------------------------------- soft silhouette
def test_soft_silhouette_tends_to_the_mask():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 300)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([0.5, 2.0]), 0.3, 0.0, 3.0, 1.0, 60.0, image_size=(40, 50))
    mask = rasterize((mesh.vertices, mesh.faces), cams).mask
    soft = soft_silhouette((mesh.vertices, mesh.faces), cams, sigma=0.01)
    assert soft.shape == mask.shape and soft.min() >= 0 and soft.max() <= 1
    # away from the silhouette (uniform 3 × 3 neighbourhoods) the soft mask is decided
    m = mask.float()[:, None]
    uniform = (torch.nn.functional.max_pool2d(m, 3, 1, 1) == -torch.nn.functional.max_pool2d(-m, 3, 1, 1))[:, 0]
    assert (soft[uniform & ~mask] < 1e-3).all()
    assert (soft[uniform & mask] > 0.7).all()  # an interior edge gives 1 − ½·½ at worst
    assert ((soft > 0.5) == mask).float().mean() > 0.99


def test_soft_silhouette_gradient_points_towards_the_target():
    # A square at depth 3 seen head-on; the target is the same square 2 pixels to the right.
    square = torch.tensor([[-0.5, -0.5, 3.0], [0.5, -0.5, 3.0], [0.5, 0.5, 3.0], [-0.5, 0.5, 3.0]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cam = _identity_camera((32, 40), focal=30.0, principal=(17.3, 14.6), dtype=F64)
    shifted = square + torch.tensor([2.0 * 3.0 / 30.0, 0.0, 0.0], dtype=F64)
    target = rasterize((shifted, faces), cam).mask.to(F64)
    v = square.clone().requires_grad_(True)
    loss = ((soft_silhouette((v, faces), cam, sigma=1.0) - target) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, v)
    assert (grad[:, 0] < 0).all()  # every corner is pulled towards +x (to the right)
    assert grad[:, 0].abs().min() > 1e-2
    assert grad[:, 1].sum().abs() < 0.2 * grad[:, 0].sum().abs()  # hardly any net vertical pull
    step = v.detach() - 0.05 * grad / grad.norm()
    assert ((soft_silhouette((step, faces), cam, sigma=1.0) - target) ** 2).sum() < loss
    small = square.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: soft_silhouette((x, faces), cam.crop(0, 0, 10, 12), sigma=2.0),
                                    (small,))


# ---------------------------------------------------------------- render and compare
def test_render_and_compare_recovers_a_rotation():
    torch.manual_seed(0)
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 300)
    colours = (mesh.vertices - mesh.vertices.amin(0)) / (mesh.vertices.amax(0) - mesh.vertices.amin(0))
    size = (48, 48)
    true = geom3d.viewpoint_to_cameras(0.6, 0.35, 0.1, 2.6, 1.0, 50.0, image_size=size)
    target = interpolate(rasterize((mesh.vertices, mesh.faces), true), colours)
    axis = torch.nn.functional.normalize(torch.tensor([0.3, -0.8, 0.5]), dim=0)
    start = geom3d.axis_angle_to_matrix(axis * math.radians(20.0)) @ true.R
    omega = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([omega], lr=0.02)
    for _ in range(150):
        cams = true.replace(R=geom3d.axis_angle_to_matrix(omega) @ start, check=False)
        fr = rasterize((mesh.vertices, mesh.faces), cams)
        image = interpolate(fr, colours)
        loss = ((image - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = geom3d.axis_angle_to_matrix(omega.detach()) @ start
    error = math.degrees(float(geom3d.geodesic_distance(final, true.R)))
    assert error < 1.0, f"pose error {error:.2f}°"


# ---------------------------------------------------------------- devices, dtypes and errors
@pytest.mark.parametrize("device", DEVICES)
def test_devices_agree(device):
    vertices, faces, cams = _small_scene(torch.float32)
    cpu = rasterize((vertices, faces), cams)
    other = rasterize((vertices.to(device), faces.to(device)), cams.to(device=device))
    assert other.depth.device.type == device
    assert torch.equal(other.pix_to_face.cpu(), cpu.pix_to_face)
    torch.testing.assert_close(other.depth.cpu(), cpu.depth)


@pytest.mark.parametrize(
    ("vertices", "faces", "message"),
    [
        (torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), "empty"),
        (torch.rand(4, 3), torch.zeros(0, 3, dtype=torch.long), "empty"),
        (torch.tensor([[0.0, 0, 2], [1, 0, 2], [0, float("nan"), 2]]), torch.tensor([[0, 1, 2]]), "NaN"),
        (torch.rand(3, 3), torch.tensor([[0, 1, 3]]), r"face indices must lie in \[0, 3\)"),
        (torch.rand(3, 3), torch.tensor([[0, -1, 2]]), "face indices"),
        (torch.rand(3, 2), torch.tensor([[0, 1, 2]]), "vertices must have shape"),
        (torch.rand(3, 3), torch.tensor([[0.0, 1.0, 2.0]]), "integer"),
        (torch.rand(2, 3, 3), torch.tensor([[0, 1, 2]]), "batch sizes do not match"),
    ],
)
def test_bad_input_raises_geometry_error(vertices, faces, message):
    cams = geom3d.viewpoint_to_cameras(torch.zeros(3), 0.0, 0.0, 2.0, 1.0, 10.0, image_size=(8, 8))
    with pytest.raises(GeometryError, match=message):
        rasterize((vertices, faces), cams)


def test_other_bad_input():
    vertices, faces, cams = _small_scene(torch.float32)
    with pytest.raises(GeometryError, match="near"):
        rasterize((vertices, faces), cams, near=0.0)
    with pytest.raises(GeometryError, match="Cameras"):
        rasterize((vertices, faces), "camera")
    with pytest.raises(GeometryError, match="mesh 1 of the batch"):
        bad = torch.stack([vertices, vertices.clone().fill_(float("inf"))])
        rasterize((bad, faces), cams)
    fr = rasterize((vertices, faces), cams)
    with pytest.raises(GeometryError, match="attributes hold only"):
        interpolate(fr, torch.rand(3, 2))
    with pytest.raises(GeometryError, match="pix_to_face must have shape"):
        fragments_for_faces((vertices, faces), cams, pix_to_face=fr.pix_to_face[:1])
    with pytest.raises(GeometryError, match="sigma"):
        soft_silhouette((vertices, faces), cams, sigma=0.0)
    assert repr(fr).startswith("Fragments(batch_shape=(2,)")


def test_off_screen_mesh_keeps_the_graph_alive():
    """A render-and-compare loop must not crash when the object leaves the view: zero gradients."""
    cam = geom3d.Cameras(geom3d.intrinsics_matrix(20.0, 20.0, 15.5, 15.5), torch.eye(3), torch.zeros(3), (32, 32))
    faces = torch.tensor([[0, 1, 2]])
    for corners in ([[100.0, 100, 2], [101, 100, 2], [100, 101, 2]], [[0.0, 0, -2], [1, 0, -2], [0, 1, -2]]):
        verts = torch.tensor(corners, requires_grad=True)
        geom3d.soft_silhouette((verts, faces), cam).sum().backward()
        assert torch.equal(verts.grad, torch.zeros_like(verts))
    with pytest.raises(geom3d.GeometryError, match="nothing to render"):
        geom3d.rasterize((verts.detach(), faces), cam.expand(2)[:0])
