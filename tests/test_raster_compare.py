"""geom3d.raster's render-and-compare primitives: vertex visibility against ray casting on a CAD
model, padded banks, images × hypotheses, indexed / channel-first / sparse interpolation against
the expanded path, a pose gradcheck, and antialiasing against supersampled coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_raster import F64, _identity_camera, _small_scene

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


# ---------------------------------------------------------------- render-and-compare primitives
def _vertex_visibility_by_rays(mesh: geom3d.Mesh, cams: geom3d.Cameras, tolerance: float) -> torch.Tensor:
    """Reference: a vertex is visible when the ray from the camera centre towards it (Embree) meets
    nothing before (1 − tolerance) of the way, and it projects inside the image: (B, V) bool."""
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    v = mesh.vertices.double().numpy()
    intersector = RayMeshIntersector(trimesh.Trimesh(v, mesh.faces.numpy(), process=False))
    out = []
    for b in range(cams.batch_shape[0]):
        cam = cams[b].to(dtype=F64)
        centre = cam.camera_centres().numpy()
        to_vertex = v - centre
        dist = np.linalg.norm(to_vertex, axis=1)
        tri, ray, loc = intersector.intersects_id(np.repeat(centre[None], len(v), 0), to_vertex / dist[:, None],
                                                  multiple_hits=False, return_locations=True)
        first = np.full(len(v), np.inf)
        first[ray] = np.linalg.norm(loc - centre, axis=1)
        uv, z = cam.project(torch.as_tensor(v), return_depth=True)
        H, W = cam.image_size
        inside = (z > 0) & (uv[:, 0] >= -0.5) & (uv[:, 0] < W - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < H - 0.5)
        out.append(inside & torch.as_tensor(first >= (1 - tolerance) * dist))
    return torch.stack(out)


@pytest.mark.realdata
def test_vertex_visibility_agrees_with_ray_casting_on_a_cad_model(shared_data):
    pytest.importorskip("embreex")
    mesh = geom3d.Mesh.load(shared_data / "pascal3d_cad" / "car" / "01.off")
    cams = geom3d.viewpoint_to_cameras(torch.tensor([0.4, 1.9, 3.5, 5.2]), torch.tensor([0.2, 0.5, 0.05, 0.3]),
                                       torch.tensor([0.0, 0.1, -0.1, 0.0]), 5.0, 1.0, 450.0, image_size=(120, 160))
    seen = vertex_visibility(mesh, cams, depth_tolerance=1e-2)
    assert seen.uv.shape == (4, mesh.num_vertices, 2) and seen.visible.shape == (4, mesh.num_vertices)
    torch.testing.assert_close(seen.uv, cams.project(mesh.vertices))
    torch.testing.assert_close(seen.depth, cams.world_to_camera(mesh.vertices)[..., 2])
    reference = _vertex_visibility_by_rays(mesh, cams, 1e-2)
    used = torch.zeros(mesh.num_vertices, dtype=torch.bool)
    used[mesh.faces.reshape(-1)] = True
    agree = (seen.visible == reference)[:, used].float().mean(1)
    assert (agree >= 0.97).all(), agree
    fraction = seen.visible[:, used].float().mean(1)
    assert ((fraction > 0.2) & (fraction < 0.8)).all(), fraction  # a real mix of visible and hidden
    assert not seen.visible[:, ~used].any()
    # without the occlusion test (every in-image vertex counts), agreement drops: the test has teeth
    inside = ((seen.uv >= -0.5) & (seen.uv < torch.tensor([159.5, 119.5]))).all(-1)
    assert ((inside == reference)[:, used].float().mean(1) < 0.8).all()


def test_padded_vertices_are_never_visible_and_real_ones_match_their_mesh():
    big = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 300)
    small = geom3d.cuboid_mesh([-0.2, -0.2, -0.2], [0.2, 0.2, 0.3], 120)
    colours = [torch.rand(big.num_vertices, 3), torch.rand(small.num_vertices, 3)]
    bank = pad_meshes([big, small], colours)
    assert bank.attributes.shape == (2, big.num_vertices, 3)
    torch.testing.assert_close(bank.attributes[1, : small.num_vertices], colours[1])
    assert (bank.attributes[1, small.num_vertices:] == 0).all()
    assert bank.vertex_mask.sum(1).tolist() == [big.num_vertices, small.num_vertices]
    # cameras (M meshes, P hypotheses), one looking straight at the padding's position (the origin)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([[0.3, 2.0, 4.0], [1.0, 3.0, 5.5]]), 0.3, 0.0, 2.5, 1.0, 60.0,
                                       image_size=(40, 48))
    seen = vertex_visibility(bank, cams)
    assert seen.visible.shape == (2, 3, big.num_vertices)
    assert not seen.visible[1][:, ~bank.vertex_mask[1]].any()
    centre = seen.uv[1][:, ~bank.vertex_mask[1]]  # padding projects into the image centre ...
    assert ((centre - torch.tensor([23.5, 19.5])).abs() < 1).all()  # ... and is still invisible
    for m, mesh in enumerate((big, small)):
        alone = vertex_visibility(mesh, cams[m])
        assert torch.equal(seen.visible[m][:, : mesh.num_vertices], alone.visible)
        assert alone.visible.any(-1).all() and not alone.visible.all(-1).any()
    with pytest.raises(GeometryError, match="depth_tolerance"):
        vertex_visibility(big, cams, depth_tolerance=-1.0)


def test_meshes_under_cameras_of_images_by_hypotheses():
    base = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 200)
    vertices = torch.stack([base.vertices, 0.7 * base.vertices.roll(1, dims=-1)])  # M = 2 meshes
    cams = geom3d.viewpoint_to_cameras(torch.rand(2, 3) * 6, 0.3, 0.0, 2.5, 1.0, 40.0, image_size=(24, 30))
    fr = rasterize((vertices, base.faces), cams)
    assert fr.pix_to_face.shape == (2, 3, 24, 30) and fr.bary.shape == (2, 3, 24, 30, 3)
    features = torch.randn(2, base.num_vertices, 4)  # per image (per mesh) features, no expansion
    image = interpolate(fr, features)
    for m in range(2):
        for p in range(3):
            one = rasterize((vertices[m], base.faces), cams[m, p])
            assert torch.equal(one.pix_to_face, fr.pix_to_face[m, p])
            torch.testing.assert_close(one.depth, fr.depth[m, p])
            torch.testing.assert_close(interpolate(one, features[m]), image[m, p])
    # one camera per mesh pairs too: cameras (1, P) broadcast over M, cameras () give (M,)
    assert rasterize((vertices, base.faces), cams[:1]).pix_to_face.shape == (2, 3, 24, 30)
    assert rasterize((vertices, base.faces), cams[0, 0]).pix_to_face.shape == (2, 24, 30)
    with pytest.raises(GeometryError, match="pair with the cameras' first dimension"):
        rasterize((vertices, base.faces), cams.reshape(6))


def test_interpolate_index_channels_first_and_sparse_match_the_expanded_path():
    torch.manual_seed(0)
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 150)
    cams = geom3d.viewpoint_to_cameras(torch.rand(3, 4) * 6, 0.2, 0.0, 2.5, 1.0, 40.0, image_size=(20, 26))
    fr = rasterize(mesh, cams)
    table = torch.randn(5, mesh.num_vertices, 6, dtype=F64, requires_grad=True)  # e.g. 5 categories
    index = torch.randint(0, 5, (3, 4))
    expanded = table[index]  # (3, 4, V, C): what the index path avoids materialising
    dense = interpolate(fr, table, index)
    reference = interpolate(fr, expanded)
    torch.testing.assert_close(dense, reference)
    assert dense.shape == (3, 4, 20, 26, 6) and dense.dtype == F64
    torch.testing.assert_close(interpolate(fr, table, index.reshape(12)), dense)  # flat index too
    weights = torch.randn_like(dense)
    (g_index,) = torch.autograd.grad((dense * weights).sum(), table)
    (g_expand,) = torch.autograd.grad((reference * weights).sum(), table)
    torch.testing.assert_close(g_index, g_expand)
    first = interpolate(fr, table, index, channels_first=True)
    assert first.shape == (3, 4, 6, 20, 26) and first.is_contiguous()
    torch.testing.assert_close(first, dense.movedim(-1, -3))
    (g_first,) = torch.autograd.grad((first * weights.movedim(-1, -3)).sum(), table)
    torch.testing.assert_close(g_first, g_index)
    sparse = interpolate_sparse(fr, table, index)
    assert sparse.values.shape == (int(fr.mask.sum()), 6)
    torch.testing.assert_close(sparse.to_dense(), dense)
    torch.testing.assert_close(sparse.to_dense(channels_first=True), first)
    flat_mask = fr.mask.reshape(12, 20, 26)
    assert flat_mask[sparse.view, sparse.pixel[:, 0], sparse.pixel[:, 1]].all()
    torch.testing.assert_close(dense.reshape(12, 20, 26, 6)[sparse.view, sparse.pixel[:, 0], sparse.pixel[:, 1]],
                               sparse.values)
    pixels, view, vid, bary = fr.covered()  # the same pixels with their corners, for custom scoring
    assert torch.equal(pixels, sparse.index) and torch.equal(view, sparse.view)
    rows = table.reshape(-1, 6)[vid + (index.reshape(12)[view] * mesh.num_vertices)[:, None]]  # (N, 3, C)
    torch.testing.assert_close((bary[..., None].to(F64) * rows).sum(1), sparse.values)
    # per-leading-index tables without an index (per-image features of images × hypotheses)
    per_image = torch.randn(3, mesh.num_vertices, 6)
    torch.testing.assert_close(interpolate(fr, per_image), interpolate(fr, per_image[:, None].expand(3, 4, -1, -1)))
    torch.testing.assert_close(interpolate(fr, per_image), interpolate(fr, per_image[:, None].repeat(1, 4, 1, 1)))
    leaf = per_image.clone().requires_grad_(True)
    w = weights.float()
    (g_rows,) = torch.autograd.grad((interpolate(fr, leaf) * w).sum(), leaf)
    (g_broadcast,) = torch.autograd.grad((interpolate(fr, leaf[:, None].expand(3, 4, -1, -1)) * w).sum(), leaf)
    torch.testing.assert_close(g_broadcast, g_rows)  # a broadcast (*S, V, C) table is read, not copied
    with pytest.raises(GeometryError, match="index must lie in"):
        interpolate(fr, table, torch.full((3, 4), 5))
    with pytest.raises(GeometryError, match="pass index"):
        interpolate(fr, torch.randn(5, mesh.num_vertices, 6))
    with pytest.raises(GeometryError, match="index must have shape"):
        interpolate(fr, table, index[:2])


def test_interpolate_with_index_gradcheck_float64():
    _, _, cams = _small_scene()
    tet = 1.6 * torch.tensor([[0.0, 0.0, 0.3], [0.5, -0.2, -0.1], [-0.3, 0.4, 0.0], [-0.1, -0.4, -0.2]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    p2f = rasterize((tet, faces), cams).pix_to_face
    mask = p2f >= 0
    table = torch.randn(3, 4, 2, dtype=F64, requires_grad=True)
    index = torch.tensor([2, 0])
    v = tet.clone().requires_grad_(True)

    def render(x, a):
        return interpolate(fragments_for_faces((x, faces), cams, pix_to_face=p2f), a, index, channels_first=True)

    assert torch.autograd.gradcheck(lambda x, a: render(x, a).movedim(1, -1)[mask], (v, table))
    assert torch.autograd.gradcheck(
        lambda a: interpolate_sparse(fragments_for_faces((tet, faces), cams, pix_to_face=p2f), a, index).values,
        (table,))


def test_pose_gradcheck_through_viewpoint_rasterize_interpolate():
    # gradients w.r.t. azimuth, elevation, in-plane angle and distance of a float64 render; the
    # visibility pass is piecewise constant, so no pixel centre may sit within the step of an edge
    mesh = geom3d.cuboid_mesh([-0.3, -0.4, -0.2], [0.3, 0.4, 0.2], 40)
    colours = (mesh.vertices.double() - mesh.vertices.double().amin(0)) / 0.8
    pose = torch.tensor([0.5, 0.35, 0.1, 2.2], dtype=F64, requires_grad=True)

    def render(p):
        cams = geom3d.viewpoint_to_cameras(p[0], p[1], p[2], p[3], 1.0, 18.0, image_size=(12, 14))
        return interpolate(rasterize((mesh.vertices.double(), mesh.faces), cams), colours)

    assert render(pose).abs().sum() > 0
    assert torch.autograd.gradcheck(render, (pose,))


def test_image_size_must_match_the_cameras():
    vertices, faces, cams = _small_scene(torch.float32)
    for fn in (rasterize, visible_faces, soft_silhouette, vertex_visibility):
        with pytest.raises(GeometryError, match=r"image_size \(10, 14\) differs"):
            fn((vertices, faces), cams, (10, 14))
        fn((vertices, faces), cams, cams.image_size)  # equal is fine
    with pytest.raises(GeometryError, match="mesh must be"):
        rasterize(vertices, cams)


# ---------------------------------------------------------------- antialias
def _square(centre, half, angle, z=3.0, dtype=F64):
    """A square (two triangles) seen head-on by `_identity_camera` (pixel units at depth z)."""
    c, s = math.cos(angle), math.sin(angle)
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    uv = [(centre[0] + half * (c * x - s * y), centre[1] + half * (s * x + c * y)) for x, y in corners]
    return torch.tensor([[u * z, v * z, z] for u, v in uv], dtype=dtype), torch.tensor([[0, 1, 2], [0, 2, 3]])


@pytest.mark.parametrize("angle", [0.0, 0.3, 0.7])
def test_antialias_gives_the_covered_fraction_of_each_pixel(angle):
    vertices, faces = _square((11.3, 12.6), 6.2, angle)
    cam = _identity_camera((24, 24), dtype=F64)
    fr = rasterize((vertices, faces), cam)
    hard = interpolate(fr, torch.ones(4, 1, dtype=F64))[..., 0]
    smooth = antialias(hard[..., None], fr, (vertices, faces), cam)[..., 0]
    # reference coverage: the same square rasterized at 16 × 16 samples per pixel, box-filtered
    fine = rasterize((vertices, faces), cam.resize((24 * 16, 24 * 16))).mask.double()
    coverage = fine.reshape(24, 16, 24, 16).mean((1, 3))
    hard_error, smooth_error = (hard - coverage).abs().mean(), (smooth - coverage).abs().mean()
    assert smooth_error < 0.3 * hard_error, (float(smooth_error), float(hard_error))
    assert abs(float(smooth.sum()) - (2 * 6.2) ** 2) < 0.5  # the square's area in pixels
    assert smooth.min() >= 0 and smooth.max() <= 1 + 1e-12
    assert torch.equal(smooth[~fr.mask & (coverage == 0)], torch.zeros_like(smooth[~fr.mask & (coverage == 0)]))


def test_antialias_gradients_move_silhouette_edges():
    vertices, faces = _square((9.4, 8.3), 4.2, 0.2)
    cam = _identity_camera((18, 20), dtype=F64)
    colours = torch.rand(4, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    p2f = rasterize((vertices, faces), cam).pix_to_face

    def render(v):  # visibility held fixed, as rasterize's gradient does
        fr = fragments_for_faces((v, faces), cam, pix_to_face=p2f)
        return antialias(interpolate(fr, colours), fr, (v, faces), cam)

    v = vertices.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(render, (v,), fast_mode=True)
    # the hard render of constant colours has no gradient w.r.t. positions; the antialiased one
    # pulls the square towards a target shifted 0.3 pixels to the right
    ones = torch.ones(4, 1, dtype=F64)
    shifted = vertices + torch.tensor([0.3 * 3.0, 0.0, 0.0], dtype=F64)
    fr_t = rasterize((shifted, faces), cam)
    target = antialias(interpolate(fr_t, ones), fr_t, (shifted, faces), cam)
    fr = rasterize((v, faces), cam)
    loss = ((antialias(interpolate(fr, ones), fr, (v, faces), cam) - target) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, v)
    assert (grad[:, 0] < 0).all() and grad[:, 0].abs().min() > 1e-3
    with pytest.raises(GeometryError, match="image must have shape"):
        antialias(torch.zeros(18, 20), fr, (v, faces), cam)


@pytest.mark.realdata
def test_antialias_on_a_cad_model_under_images_by_hypotheses(shared_data):
    mesh = geom3d.Mesh.load(shared_data / "pascal3d_cad" / "car" / "01.off")
    cams = geom3d.viewpoint_to_cameras(torch.tensor([[0.4, 1.9], [3.5, 5.2]]), 0.3, 0.0, 5.0, 1.0, 300.0,
                                       image_size=(60, 80))
    fr = rasterize(mesh, cams)
    colours = (mesh.vertices - mesh.vertices.amin(0)) / (mesh.vertices.amax(0) - mesh.vertices.amin(0))
    smooth = antialias(interpolate(fr, colours), fr, mesh, cams)
    assert smooth.shape == (2, 2, 60, 80, 3) and torch.isfinite(smooth).all()
    # the antialiased silhouette is nearer the true pixel coverage (8 × 8 samples per pixel)
    hard = fr.mask.float()
    soft = antialias(hard[..., None], fr, mesh, cams)[..., 0]
    fine = rasterize(mesh, cams.resize((480, 640))).mask.float()
    coverage = fine.reshape(2, 2, 60, 8, 80, 8).mean((3, 5))
    hard_error, soft_error = (hard - coverage).abs().mean(), (soft - coverage).abs().mean()
    assert soft_error < 0.8 * hard_error, (float(soft_error), float(hard_error))  # 0.69 here; 0.59-0.87 per view
