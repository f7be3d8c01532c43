"""geom3d.gl: the OpenGL renderer against ray casting, the rasterizer and hand-derived images."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

import geom3d
from geom3d import Cameras, Mesh, intrinsics_matrix, sample_texture
from geom3d.errors import GeometryError
from geom3d.gl import EMPTY_DEPTH, GLRender, RenderOptions, gl_available, render_gl
from geom3d.raster import interpolate, rasterize
from geom3d.raycasting import raycast

needs_gl = pytest.mark.skipif(not gl_available(), reason="no headless EGL OpenGL context can be created here")
pytestmark = [pytest.mark.gl, needs_gl]


# ---------------------------------------------------------------------------------------- helpers
def orbit_cameras(mesh: Mesh, image_size=(240, 320), dtype=torch.float64, n=3) -> Cameras:
    """Cameras around the mesh's box centre, at 1.6 × its longest side, the object filling the view."""
    lo, hi = mesh.bounds().double()
    centre, extent = (lo + hi) / 2, float((hi - lo).max())
    az = torch.tensor([0.3, 2.2, 4.0, 5.3][:n], dtype=torch.float64)
    el = torch.tensor([0.35, -0.2, 0.8, 0.1][:n], dtype=torch.float64)
    eye = centre + 1.6 * extent * torch.stack([el.cos() * az.sin(), -el.cos() * az.cos(), el.sin()], -1)
    focal = 0.45 * min(image_size) / math.tan(math.asin(0.5 / 1.6))
    return Cameras.look_at(eye, centre, up=(0.0, 0.0, 1.0), focal=focal, image_size=image_size).to(dtype=dtype)


def canonical_faces(mesh: Mesh) -> torch.Tensor:
    """Each face's smallest-index twin with the same three corner positions (duplicated faces are
    the same surface: either may be reported)."""
    tri = mesh.vertices.double()[mesh.faces].numpy()
    corners = np.sort(tri.view([("x", float), ("y", float), ("z", float)]).reshape(-1, 3), axis=1)
    keys = corners.view(float).reshape(-1, 9)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return torch.as_tensor(first[inverse.reshape(-1)])


def agreement(face_a, depth_a, face_b, depth_b, canon):
    """(fraction of pixels whose coverage differs, fraction of co-covered pixels with the same face,
    max relative depth difference where the face is the same)."""
    ma, mb = face_a >= 0, face_b >= 0
    both = ma & mb
    same = both & (canon[face_a.clamp_min(0)] == canon[face_b.clamp_min(0)])
    rel = ((depth_a.double() - depth_b.double()).abs() / depth_b.double().clamp_min(1e-12))[same]
    return ((ma != mb).double().mean().item(), same.sum().item() / max(1, both.sum().item()),
            rel.max().item() if rel.numel() else 0.0)


def real_mesh(shared_data, name: str) -> Mesh:
    paths = {"bunny": "meshes/bunny.ply", "teapot": "meshes/teapot.obj", "car": "pascal3d_cad/car/01.off",
             "chair": "pascal3d_cad/chair/01.off"}
    if name == "cuboid":
        cars = [Mesh.load(shared_data / f"pascal3d_cad/car/0{i}.off") for i in (1, 3)]
        return geom3d.cuboid_from_meshes(cars)
    return Mesh.load(shared_data / paths[name])


def quad(corners, uvs=None, colors=None, texture=None) -> Mesh:
    """Two triangles over four corners (counter-clockwise seen from the camera)."""
    return Mesh(torch.as_tensor(corners, dtype=torch.float32), torch.tensor([[0, 1, 2], [0, 2, 3]]),
                vertex_colors=colors, uvs=uvs, texture=texture)


def frontal_camera(h=40, w=60, f=50.0, dtype=torch.float64) -> Cameras:
    K = intrinsics_matrix(f, f, (w - 1) / 2, (h - 1) / 2, dtype=dtype)
    return Cameras(K, torch.eye(3, dtype=dtype), torch.zeros(3, dtype=dtype), (h, w))


def plane_through_pixels(cam: Cameras, u0, u1, v0, v1, z=2.0):
    """World corners of a fronto-parallel rectangle at depth z spanning pixel coordinates [u0, u1] × [v0, v1],
    wound counter-clockwise as seen from the camera (normal towards it)."""
    px = torch.tensor([[u0, v0], [u0, v1], [u1, v1], [u1, v0]], dtype=cam.dtype)
    return cam.unproject_points(px, torch.full((4,), z, dtype=cam.dtype)).float()


# ---------------------------------------------------------------------------------------- geometry
@pytest.mark.realdata
@pytest.mark.parametrize("name", [pytest.param("bunny", marks=pytest.mark.slow), "teapot", "car", "chair", "cuboid"])
def test_agrees_with_ray_casting_and_rasterizer(shared_data, name):
    mesh = real_mesh(shared_data, name)
    cams = orbit_cameras(mesh)
    canon = canonical_faces(mesh)
    gl = render_gl(mesh, cams, outputs=("depth", "face_id", "mask"))
    assert torch.equal(gl.mask, gl.face_id >= 0)
    assert (gl.depth[~gl.mask] == EMPTY_DEPTH).all()
    references = {backend: raycast(mesh, cams, backend=backend) for backend in ("open3d", "embree")}
    references["raster"] = rasterize(mesh, cams)
    for ref_name, ref in references.items():
        mask_diff, same_face, depth_rel = agreement(gl.face_id, gl.depth, ref.pix_to_face, ref.depth, canon)
        assert mask_diff <= 1e-3, (ref_name, mask_diff)
        assert same_face >= 0.999, (ref_name, same_face)
        assert depth_rel <= 1e-4, (ref_name, depth_rel)
    assert gl.mask.double().mean() > 0.1  # the object fills a fair part of the view


def test_pixel_centres_are_integer_coordinates():
    """A rectangle spanning u in [9.7, 20.3], v in [5.2, 15.8] covers exactly columns 10..20, rows 6..15."""
    cam = frontal_camera()
    out = render_gl(quad(plane_through_pixels(cam, 9.7, 20.3, 5.2, 15.8)), cam)
    expected = torch.zeros(40, 60, dtype=torch.bool)  # an unbatched camera: no batch dimension
    expected[6:16, 10:21] = True
    assert torch.equal(out.mask, expected)
    assert torch.allclose(out.depth[expected], torch.tensor(2.0, dtype=torch.float64), rtol=1e-6)


def test_depth_is_camera_z_of_a_tilted_plane():
    """Depth of the plane n·X = d along each pixel ray, derived by hand: z = d / (n · K⁻¹(u, v, 1))."""
    cam = frontal_camera(48, 64, 40.0)
    n, d = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64), 3.0
    # a big quad on that plane covering the whole view
    xy = torch.tensor([[-5.0, -5.0], [-5.0, 5.0], [5.0, 5.0], [5.0, -5.0]], dtype=torch.float64)
    z = (d - xy @ n[:2]) / n[2]
    corners = torch.cat([xy, z[:, None]], 1)
    out = render_gl(quad(corners.float()), cam, outputs=("depth", "mask"))
    assert out.mask.all()
    uv = geom3d.pixel_grid((48, 64), dtype=torch.float64)
    rays = torch.cat([(uv - cam.K[:2, 2]) / 40.0, torch.ones(48, 64, 1, dtype=torch.float64)], -1)
    expected = d / (rays @ n)
    assert torch.allclose(out.depth, expected, rtol=2e-6)


def test_many_views_equal_single_views_and_tile_across_framebuffers(monkeypatch):
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=300)
    cams = orbit_cameras(mesh, (30, 50), n=4)
    monkeypatch.setattr(geom3d.gl.framebuffer, "ATLAS_MAX_PIXELS", 30 * 50 * 3)  # 3 views per framebuffer: two passes
    batch = render_gl(mesh, cams)
    for b in range(4):
        single = render_gl(mesh, cams[b])
        for key in ("rgb", "mask", "normal", "face_id"):
            assert torch.equal(getattr(batch, key)[b], getattr(single, key)), key
        # 1 / w is interpolated from window coordinates: a tile's position can change the last bit
        assert torch.allclose(batch.depth[b], single.depth, rtol=1e-5, atol=0)


def test_normals_face_the_camera_and_match_the_face():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=200)
    cams = orbit_cameras(mesh, (60, 80), n=3)
    out = render_gl(mesh, cams, outputs=("normal", "face_id", "mask"))
    world = render_gl(mesh, cams, outputs=("normal",), normal_frame="world").normal
    m = out.mask
    view = torch.arange(3)[:, None, None].expand_as(m)[m]
    face_n = mesh.face_normals().double()[out.face_id[m]]
    expected = torch.einsum("nij,nj->ni", cams.R[view], face_n)
    rays = geom3d.gl.fallback.pixel_rays(cams)[m]
    expected = torch.where(((expected * rays).sum(-1) > 0)[:, None], -expected, expected)
    assert torch.allclose(out.normal[m], expected, atol=1e-5)
    assert (out.normal[~m] == 0).all()
    assert torch.allclose(torch.einsum("nji,nj->ni", cams.R[view], out.normal[m]), world[m], atol=1e-5)


def test_cull_backfaces_removes_faces_turned_away():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=200)  # outward normals
    inward = Mesh(mesh.vertices, mesh.faces[:, [0, 2, 1]])
    cams = orbit_cameras(mesh, (60, 80), n=2)
    both = render_gl(mesh, cams, outputs=("depth", "face_id"))
    culled = render_gl(mesh, cams, outputs=("depth", "face_id"), cull_backfaces=True)
    assert torch.equal(both.face_id, culled.face_id)  # a closed box: only front faces show anyway
    inside = render_gl(inward, cams, outputs=("depth", "face_id"), cull_backfaces=True)
    covered = inside.face_id >= 0
    assert covered.any()
    assert (inside.depth[covered] > both.depth[covered]).all()  # we now see the far walls
    ref = rasterize(inward, cams, cull_backfaces=True)
    assert (ref.pix_to_face != inside.face_id).double().mean() < 2e-3


# ---------------------------------------------------------------------------------------- colour
def test_vertex_colours_with_ambient_light_only_are_exact():
    """Each face its own corners, all of one colour: ambient 1 and no light give that colour exactly."""
    box = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    tri = box.vertices[box.faces].reshape(-1, 3)
    faces = torch.arange(tri.shape[0]).reshape(-1, 3)
    face_colour = torch.rand(box.num_faces, 3, generator=torch.Generator().manual_seed(0))
    mesh = Mesh(tri, faces, vertex_colors=face_colour.repeat_interleave(3, 0))
    cams = orbit_cameras(mesh, (60, 80), n=2, dtype=torch.float32)
    out = render_gl(mesh, cams, ambient=1.0, light_directions=[], background=(0.2, 0.4, 0.6))
    m = out.mask
    # exact up to float32 rounding of the barycentric weights (they sum to 1 within an ulp)
    drawn = render_gl(mesh, cams, outputs=("face_id",), exact_face_id=False).face_id
    assert torch.allclose(out.rgb[m], face_colour[drawn[m]], atol=2e-6, rtol=0)
    assert torch.equal(out.rgb[~m], torch.tensor([0.2, 0.4, 0.6]).expand(int((~m).sum()), 3))


def test_directional_lights_are_lambertian():
    cam = frontal_camera()
    mesh = Mesh(plane_through_pixels(cam, -1, 60, -1, 40), torch.tensor([[0, 1, 2], [0, 2, 3]]))
    lights = torch.tensor([[0.3, -0.4, -1.0], [-1.0, 0.0, -0.2]])
    out = render_gl(mesh, cam, base_color=(0.5, 0.6, 0.7), ambient=(0.1, 0.2, 0.1), light_directions=lights,
                    light_colors=[[1.0, 0.5, 0.25], [0.2, 1.0, 1.0]], light_intensities=[0.8, 0.5])
    n = torch.tensor([0.0, 0.0, -1.0])  # the plane faces the camera
    unit = lights / lights.norm(dim=-1, keepdim=True)
    lam = (unit @ n).clamp_min(0)
    light = torch.tensor([0.1, 0.2, 0.1]) + lam[0] * 0.8 * torch.tensor([1.0, 0.5, 0.25]) \
        + lam[1] * 0.5 * torch.tensor([0.2, 1.0, 1.0])
    expected = (torch.tensor([0.5, 0.6, 0.7]) * light).clamp(0, 1)
    assert out.mask.all()
    assert torch.allclose(out.rgb.float(), expected.expand(40, 60, 3), atol=1e-6)
    # a light from the camera frame given in the world frame instead: the same for this camera
    world = render_gl(mesh, cam, base_color=(0.5, 0.6, 0.7), ambient=(0.1, 0.2, 0.1), light_directions=lights,
                      light_colors=[[1.0, 0.5, 0.25], [0.2, 1.0, 1.0]], light_intensities=[0.8, 0.5],
                      light_frame="world")
    assert torch.allclose(world.rgb, out.rgb)


def checker_texture(th=4, tw=8) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (th, tw, 3), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("mode,tol", [("nearest", 0.0), ("linear", 2.5 / 255)])
def test_texture_sampling_on_a_hand_made_quad(mode, tol):
    """A quad spanning the whole image with UVs (0, 0) at the bottom-left: pixel (i, j) samples
    u = (j + ½) / W, v = 1 − (i + ½) / H (perspective is affine on a fronto-parallel quad)."""
    h, w = 24, 40
    cam = frontal_camera(h, w, 30.0)
    corners = plane_through_pixels(cam, -0.5, w - 0.5, -0.5, h - 0.5)  # the image edges
    uvs = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])  # (u0, v0) top-left ... v up
    tex = checker_texture()
    out = render_gl(quad(corners, uvs=uvs, texture=tex), cam, ambient=1.0, light_directions=[],
                    texture_filter=mode)
    j, i = torch.meshgrid(torch.arange(w, dtype=torch.float64), torch.arange(h, dtype=torch.float64), indexing="xy")
    uv = torch.stack([(j + 0.5) / w, 1 - (i + 0.5) / h], -1)
    expected = sample_texture(tex, uv, mode)
    assert out.mask.all()
    assert (out.rgb - expected).abs().max() <= tol + 1e-6
    if mode == "nearest":  # each texel covers a 5 × 6 block of pixels
        assert torch.equal((out.rgb * 255).round().to(torch.uint8)[::6, ::5], tex)


def test_sample_texture_texel_centres_and_wrap():
    tex = checker_texture(2, 2)
    centre = torch.tensor([[0.25, 0.75], [0.75, 0.25], [1.25, 0.75]], dtype=torch.float64)  # (row 0, col 0), ...
    out = sample_texture(tex, centre, "linear")
    assert torch.allclose(out[0], tex[0, 0].double() / 255)
    assert torch.allclose(out[1], tex[1, 1].double() / 255)
    assert torch.allclose(out[2], tex[0, 0].double() / 255)  # repeat wrap
    mid = sample_texture(tex, torch.tensor([[0.5, 0.75]], dtype=torch.float64), "linear")[0]
    assert torch.allclose(mid, (tex[0, 0].double() + tex[0, 1].double()) / 510)


@pytest.mark.realdata
@pytest.mark.parametrize("path", ["meshes/cow_textured/cow.obj", "meshes/BoxTextured.glb"])
def test_textured_mesh_samples_the_texels_the_rasterizer_interpolates(shared_data, path):
    mesh = Mesh.load(shared_data / path)
    assert mesh.has_texture
    cams = orbit_cameras(mesh, (96, 128), n=2, dtype=torch.float32)
    out = render_gl(mesh, cams, ambient=1.0, light_directions=[], texture_filter="nearest")
    frags = rasterize(mesh, cams)
    uv = interpolate(frags, mesh.uvs)
    expected = sample_texture(mesh.texture, uv, "nearest").float()
    same = (frags.pix_to_face == out.face_id) & out.mask
    assert same.double().sum() > 0.999 * out.mask.double().sum()
    diff = (out.rgb - expected).abs().amax(-1)[same]
    # nearest sampling flips texel only where the UV sits on a texel border (float32 rounding)
    assert (diff > 1e-5).double().mean() < 0.01
    assert diff.median() < 1e-6


# ---------------------------------------------------------------------------------------- fallback, options
def compare_outputs(a: GLRender, b: GLRender, a_drawn_faces: torch.Tensor, rgb_tol=1e-3, normal_tol=1e-3):
    """a: GL, b: the fallback. a's rgb and normal belong to the faces GL drew (a_drawn_faces, before
    face ids are settled exactly at pixel centres next to shared edges)."""
    assert all((getattr(a, k) is None) == (getattr(b, k) is None) for k in geom3d.gl.RENDER_OUTPUTS)
    both = a.mask & b.mask
    same = both & (a.face_id == b.face_id)
    assert (a.mask != b.mask).double().mean() <= 1e-3
    assert same.double().sum() >= 0.999 * both.double().sum()
    rel = (a.depth - b.depth).abs() / b.depth.clamp_min(1e-12)
    assert rel[same].max() <= 1e-4
    drawn = same & (a_drawn_faces == b.face_id)
    assert drawn.double().sum() >= 0.995 * both.double().sum()
    assert (a.normal - b.normal).abs()[drawn].max() <= normal_tol
    assert (a.rgb - b.rgb).abs()[drawn].max() <= rgb_tol
    empty = ~a.mask & ~b.mask
    assert torch.equal(a.rgb[empty], b.rgb[empty])
    assert (a.face_id[~a.mask] == -1).all() and (b.face_id[~b.mask] == -1).all()


@pytest.mark.parametrize("shading", ["flat", "smooth"])
def test_raster_fallback_matches_gl(shading):
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=300)
    colours = torch.rand(mesh.num_vertices, 3, generator=torch.Generator().manual_seed(2))
    mesh = Mesh(mesh.vertices, mesh.faces, vertex_colors=colours)
    cams = orbit_cameras(mesh, (60, 80), n=2, dtype=torch.float32)
    options = dict(shading=shading, light_directions=[[0.2, -0.5, -1.0]], ambient=0.3, background=(0.1, 0.2, 0.3))
    gl = render_gl(mesh, cams, **options)
    drawn = render_gl(mesh, cams, outputs=("face_id",), exact_face_id=False, **options).face_id
    fallback = render_gl(mesh, cams, backend="raster", **options)
    compare_outputs(gl, fallback, drawn)


def test_fallback_forced_by_environment(monkeypatch):
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    cams = orbit_cameras(mesh, (40, 50), n=1, dtype=torch.float32)
    calls = []
    real = geom3d.gl.render.render_raster
    monkeypatch.setattr(geom3d.gl.render, "render_raster", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setenv("AWARE3D_GL_BACKEND", "raster")
    out = render_gl(mesh, cams)
    assert calls and all(getattr(out, k) is not None for k in geom3d.gl.RENDER_OUTPUTS)


def test_fallback_when_no_context_can_be_made(monkeypatch, caplog):
    """Without EGL, render_gl rasterizes instead and warns once."""
    def no_egl():
        raise geom3d.gl.context.NoContext("cannot create a headless EGL OpenGL context: simulated")

    monkeypatch.setattr(geom3d.gl.context, "create_context", no_egl)
    monkeypatch.setattr(geom3d.gl.context, "thread_state", type(geom3d.gl.context.thread_state)())
    monkeypatch.setattr(geom3d.gl.context, "warned_fallback", False)
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    cams = orbit_cameras(mesh, (40, 50), n=1, dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger="geom3d.gl"):
        first = render_gl(mesh, cams)
        render_gl(mesh, cams)
    warnings = [r for r in caplog.records if "rasterize instead" in r.getMessage()]
    assert len(warnings) == 1
    with pytest.raises(geom3d.gl.context.NoContext):
        render_gl(mesh, cams, backend="gl")
    monkeypatch.undo()
    drawn = render_gl(mesh, cams, outputs=("face_id",), exact_face_id=False).face_id
    compare_outputs(render_gl(mesh, cams), first, drawn)


@pytest.mark.realdata
def test_textured_fallback_matches_gl(shared_data):
    mesh = Mesh.load(shared_data / "meshes/BoxTextured.glb")
    cams = orbit_cameras(mesh, (64, 80), n=2, dtype=torch.float32)
    gl = render_gl(mesh, cams, texture_filter="linear")
    drawn = render_gl(mesh, cams, outputs=("face_id",), exact_face_id=False).face_id
    fallback = render_gl(mesh, cams, backend="raster", texture_filter="linear")
    compare_outputs(gl, fallback, drawn, rgb_tol=3.0 / 255)  # llvmpipe filters with 8-bit weights


def test_float64_in_float64_out_and_output_subsets():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    cams = orbit_cameras(mesh, (30, 40), n=2, dtype=torch.float64)
    full = render_gl(mesh, cams)
    assert full.depth.dtype == torch.float64 and full.rgb.dtype == torch.float64
    assert full.face_id.dtype == torch.int64 and full.mask.dtype == torch.bool
    assert full.rgb.shape == (2, 30, 40, 3) and full.normal.shape == (2, 30, 40, 3)
    depth_only = render_gl(mesh, cams, outputs=("depth",))
    assert depth_only.depth is not None and depth_only.rgb is depth_only.mask is depth_only.face_id is None
    assert torch.allclose(depth_only.depth, full.depth, rtol=1e-5, atol=0)
    rgb_mask = render_gl(mesh, cams.to(dtype=torch.float32), outputs=("rgb", "mask"))
    assert torch.equal(rgb_mask.mask, full.mask) and rgb_mask.rgb.dtype == torch.float32


def test_background_image_and_mesh_reupload_after_in_place_change():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    cams = orbit_cameras(mesh, (30, 40), n=2, dtype=torch.float32)
    bg = torch.randint(0, 256, (30, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    out = render_gl(mesh, cams, background_image=bg)
    m = out.mask
    assert torch.equal(out.rgb[~m], (bg.float() / 255).expand(2, 30, 40, 3)[~m])
    before = render_gl(mesh, cams, outputs=("depth",)).depth
    mesh.vertices.mul_(0.5)  # in place: the cached GPU copy must be refreshed
    after = render_gl(mesh, cams, outputs=("depth",)).depth
    ref = rasterize(mesh, cams).depth
    assert not torch.equal(before, after)
    assert ((after > 0) != (ref > 0)).double().mean() < 2e-3


def test_bad_input_raises_clear_errors():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    cams = orbit_cameras(mesh, (30, 40), n=1)
    with pytest.raises(GeometryError, match="unknown render outputs"):
        render_gl(mesh, cams, outputs=("colour",))
    with pytest.raises(GeometryError, match="image_size"):
        render_gl(mesh, cams, image_size=(31, 40))
    with pytest.raises(GeometryError, match="at most 8"):
        render_gl(mesh, cams, light_directions=torch.ones(9, 3))
    with pytest.raises(GeometryError, match="shading"):
        render_gl(mesh, cams, shading="phong")
    with pytest.raises(GeometryError, match="background_image"):
        render_gl(mesh, cams, background_image=np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(GeometryError, match="backend"):
        render_gl(mesh, cams, backend="vulkan")


def test_antialiased_rgb_blends_edges_and_keeps_exact_masks():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    cams = orbit_cameras(mesh, (48, 64), n=2, dtype=torch.float32)
    options = dict(ambient=1.0, light_directions=[], base_color=(0.9, 0.6, 0.3))
    plain = render_gl(mesh, cams, background=(0.0, 0.0, 1.0), **options)
    smooth = render_gl(mesh, cams, background=(0.0, 0.0, 1.0), antialias=4, **options)
    over_image = render_gl(mesh, cams, background_image=torch.tensor([0.0, 0.0, 1.0]).expand(48, 64, 3),
                           antialias=4, **options)
    for key in ("mask", "face_id", "depth", "normal"):
        assert torch.equal(getattr(plain, key), getattr(smooth, key)), key
    m = plain.mask
    interior = m.clone()
    for shift in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        interior &= torch.roll(m, shift, (1, 2))
    assert torch.allclose(smooth.rgb[interior], plain.rgb[interior], atol=1e-6)
    # along the silhouette colour and background mix: blue rises where red falls, and they sum as
    # the coverage-weighted blend of (0.9, 0.6, 0.3) and (0, 0, 1) does
    edge = smooth.rgb[m & ~interior]
    coverage = edge[:, 0] / 0.9
    assert ((coverage > 0.01) & (coverage < 0.99)).any()
    assert torch.allclose(edge[:, 2], coverage * 0.3 + (1 - coverage), atol=1e-5)
    assert torch.allclose(over_image.rgb, smooth.rgb, atol=1e-6)


def test_render_gl_defaults_are_the_render_options_defaults():
    import dataclasses
    import inspect

    params = inspect.signature(render_gl).parameters
    fields = {f.name: f.default for f in dataclasses.fields(RenderOptions)}
    assert set(fields) <= set(params)
    assert {name: params[name].default for name in fields} == fields
    with pytest.raises(GeometryError, match="normal_frame"):
        RenderOptions(normal_frame="eye")
    # a renderer of one's own takes the options as one RenderOptions
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    cams = orbit_cameras(mesh, (30, 40), n=2)
    renderer = geom3d.gl.GLRenderer()
    try:
        own = renderer.render(mesh, cams, options=RenderOptions(ambient=1.0, light_directions=[]))
    finally:
        renderer.release()
    assert torch.equal(own.rgb, render_gl(mesh, cams, ambient=1.0, light_directions=[]).rgb)


def test_vertices_and_faces_are_uploaded_once_while_unchanged(monkeypatch):
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], num_vertices=150)
    vertices, faces = mesh.vertices.clone(), mesh.faces.clone()
    cams = orbit_cameras(mesh, (30, 40), n=2)
    uploads = []
    real = geom3d.gl.renderer.GPUMesh
    monkeypatch.setattr(geom3d.gl.renderer, "GPUMesh", lambda *a: uploads.append(1) or real(*a))
    first = render_gl((vertices, faces), cams, backend="gl", outputs=("depth",)).depth
    again = render_gl((vertices, faces), cams, backend="gl", outputs=("depth",)).depth
    assert len(uploads) == 1 and torch.equal(first, again)
    vertices.mul_(0.5)  # modified in place: drawn anew
    smaller = render_gl((vertices, faces), cams, backend="gl", outputs=("depth",)).depth
    assert len(uploads) == 2 and (smaller > 0).sum() < (first > 0).sum()


def test_bad_meshes_name_the_problem():
    nan = Mesh(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [float("nan"), 1.0, 1.0]]), torch.tensor([[0, 1, 2]]))
    with pytest.raises(geom3d.MeshError, match="NaN"):
        render_gl(nan, frontal_camera())
    empty = Mesh(torch.zeros(3, 3), torch.zeros(0, 3, dtype=torch.int64))
    with pytest.raises(geom3d.MeshError, match="no faces"):
        render_gl(empty, frontal_camera())


# ---------------------------------------------------------------------------------------- review fixes
def _square_on_pixel_centres(dtype=torch.float64):
    """Two triangles whose outline runs exactly through pixel centres (u in [5, 15], v in [4, 12])."""
    cam = Cameras(intrinsics_matrix(1.0, 1.0, 0.0, 0.0, dtype=dtype), torch.eye(3, dtype=dtype),
                  torch.zeros(3, dtype=dtype), (20, 30))
    verts = torch.tensor([[5.0, 4, 1], [5, 12, 1], [15, 12, 1], [15, 4, 1]])
    return Mesh(verts, torch.tensor([[0, 1, 2], [0, 2, 3]])), cam


def test_edges_through_pixel_centres_follow_the_rasterizer_top_left_rule():
    mesh, cam = _square_on_pixel_centres()
    gl = render_gl(mesh, cam, backend="gl", outputs=("face_id",)).face_id
    ra = rasterize((mesh.vertices.double(), mesh.faces), cam).pix_to_face
    assert torch.equal(gl, ra)
    rows = (ra >= 0).any(1).nonzero().flatten()
    cols = (ra >= 0).any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (4, 11, 5, 14)  # top and left kept


def test_fallback_culls_before_the_depth_test():
    """A back face in front of a front face: culling must reveal the front face, in GL and the fallback."""
    cam = Cameras(intrinsics_matrix(20.0, 20.0, 15.5, 15.5), torch.eye(3), torch.zeros(3), (32, 32))
    v = torch.tensor([[-0.3, -0.3, 2.0], [0.3, -0.3, 2.0], [0.3, 0.3, 2.0], [-0.3, 0.3, 2.0],
                      [-0.3, -0.3, 3.0], [0.3, -0.3, 3.0], [0.3, 0.3, 3.0], [-0.3, 0.3, 3.0]])
    # near square wound away from the camera (back face), far square towards it (front face)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6]])
    mesh = Mesh(v, faces)
    outs = [render_gl(mesh, cam, backend=backend, outputs=("depth", "face_id"), cull_backfaces=True)
            for backend in ("gl", "raster")]
    for out in outs:
        covered = out.face_id >= 0
        assert covered.sum() >= 16 and set(out.face_id[covered].tolist()) <= {2, 3}
        torch.testing.assert_close(out.depth[covered], torch.full_like(out.depth[covered], 3.0))
    assert torch.equal(outs[0].face_id, outs[1].face_id)


def test_a_second_renderer_in_the_thread_does_not_disturb_render_gl():
    mesh = geom3d.cuboid_mesh([-0.3, -0.4, -0.2], [0.3, 0.4, 0.2], 300)
    cams = orbit_cameras(mesh, (48, 64), n=2)
    before = render_gl(mesh, cams, backend="gl")
    other = geom3d.gl.GLRenderer()
    other.render(geom3d.cuboid_mesh([-1, -1, -1], [1, 1, 1], 100), cams)
    after = render_gl(mesh, cams, backend="gl")
    other.release()
    again = render_gl(mesh, cams, backend="gl")
    for key in geom3d.gl.RENDER_OUTPUTS:
        b, a, g = getattr(before, key), getattr(after, key), getattr(again, key)
        assert torch.equal(b, a) and torch.equal(b, g), key


def test_exact_face_ids_with_a_skewed_camera_match_the_rasterizer():
    mesh = geom3d.cuboid_mesh([-0.3, -0.5, -0.2], [0.3, 0.5, 0.2], 5000)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([0.4, 2.0], dtype=torch.float64), 0.3, 0.1, 2.0, 1.0, 80.0,
                                       image_size=(96, 128))
    K = cams.K.clone()
    K[..., 0, 1] = 2.0
    cams = cams.replace(K=K)
    gl = render_gl(mesh, cams, backend="gl", outputs=("face_id",)).face_id
    ra = rasterize((mesh.vertices.double(), mesh.faces), cams).pix_to_face
    covered = ra >= 0
    assert torch.equal(gl >= 0, covered)
    assert (gl[covered] == ra[covered]).double().mean() >= 0.999


def test_clip_planes_that_exclude_the_mesh_give_an_empty_view():
    cam = Cameras(intrinsics_matrix(20.0, 20.0, 15.5, 15.5), torch.eye(3), torch.zeros(3), (32, 32))
    behind = Mesh(torch.tensor([[-0.5, -0.5, -2.0], [0.5, -0.5, -2], [-0.5, 0.5, -2]]), torch.tensor([[0, 1, 2]]))
    ahead = Mesh(torch.tensor([[-0.5, -0.5, 2.0], [0.5, -0.5, 2], [-0.5, 0.5, 2]]), torch.tensor([[0, 1, 2]]))
    for mesh, options in ((behind, {}), (behind, {"far": 100.0}), (ahead, {"near": 3.0}), (ahead, {"far": 1.0})):
        assert not render_gl(mesh, cam, backend="gl", outputs=("mask",), **options).mask.any()
    assert render_gl(ahead, cam, backend="gl", outputs=("mask",), near=1.0, far=3.0).mask.any()
    with pytest.raises(GeometryError, match="near < far"):
        render_gl(ahead, cam, backend="gl", near=3.0, far=1.0)


def test_failed_context_does_not_keep_render_arguments_alive(monkeypatch):
    import gc
    import weakref

    def no_egl():
        raise geom3d.gl.context.NoContext("cannot create a headless EGL OpenGL context: simulated")

    monkeypatch.setattr(geom3d.gl.context, "create_context", no_egl)
    monkeypatch.setattr(geom3d.gl.context, "thread_state", type(geom3d.gl.context.thread_state)())
    monkeypatch.setattr(geom3d.gl.context, "warned_fallback", True)
    cam = Cameras(intrinsics_matrix(20.0, 20.0, 15.5, 15.5), torch.eye(3), torch.zeros(3), (16, 16))
    refs = []
    for _ in range(3):
        mesh = Mesh(torch.tensor([[-0.5, -0.5, 2.0], [0.5, -0.5, 2], [-0.5, 0.5, 2]]), torch.tensor([[0, 1, 2]]))
        assert render_gl(mesh, cam, outputs=("mask",)).mask.any()  # the fallback rendered it
        refs.append(weakref.ref(mesh.vertices))
        del mesh
    gc.collect()
    assert all(r() is None for r in refs)
