"""datagen render stage, edge maps and domain randomisation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import trimesh
from scipy import stats

import geom3d
from datagen.randomize import (
    APPEARANCES,
    BACKGROUNDS,
    choose,
    contact_shadow,
    ground_plane,
    make_background,
    make_occluders,
    object_points,
    random_lights,
    texture_albedo,
)
from datagen.render import (
    VIEWPORT,
    canny_edges,
    edge_map,
    geometry_edges,
    mask_bbox,
    object_extent,
    render_views,
    viewpoint_for,
    viewpoints_to_cameras,
)
from datagen.samplers import ViewSample
from datagen.writer import encode_png, sample_id
from geom3d import raster

SIZE = (96, 96)


def _cube(half=0.5, subdivisions=0) -> geom3d.Mesh:
    tm = trimesh.creation.box(extents=(2 * half,) * 3)
    for _ in range(subdivisions):
        tm = tm.subdivide()
    return geom3d.Mesh(torch.tensor(tm.vertices, dtype=torch.float32), torch.tensor(tm.faces))


FOV = math.radians(50)


def _view(az=0.6, el=0.5, th=0.0, d=2.2, size=SIZE, fov=FOV, principal=None):
    return viewpoint_for(ViewSample(az, el, th, d), 1.0, size, fov, principal)


def test_viewpoint_for_is_the_exact_camera():
    fov = math.radians(49.13)
    vp = viewpoint_for(ViewSample(1.0, 0.3, 0.2, 1.7), 0.8, (60, 80), fov, principal=(41.0, 27.5))
    assert math.isclose(vp.focal * vp.viewport, 40 / math.tan(fov / 2), rel_tol=1e-12)
    assert vp.viewport == VIEWPORT and math.isclose(vp.distance, 1.7 * 0.8, rel_tol=1e-12)
    cam = viewpoints_to_cameras([vp], (60, 80))
    # the object origin projects to the principal point, at the camera distance
    uv, z = cam.project(torch.zeros(1, 1, 3, dtype=torch.float64), return_depth=True)
    torch.testing.assert_close(uv[0, 0], torch.tensor([41.0, 27.5], dtype=torch.float64))
    assert math.isclose(float(z), 1.36, rel_tol=1e-12)
    # the stored record rebuilds this camera (to the last bit of float64 arithmetic)
    rebuilt = vp.to_cameras((60, 80), dtype=torch.float64)
    for a, b in ((rebuilt.K, cam.K[0]), (rebuilt.R, cam.R[0]), (rebuilt.t, cam.t[0])):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


def test_render_agrees_with_the_rasterizer():
    mesh = _cube(0.5)
    vps = [_view(0.6, 0.5), _view(2.0, -0.3, 0.4)]
    out = render_views(mesh, vps, SIZE)
    frags = raster.rasterize((mesh.vertices.double(), mesh.faces), viewpoints_to_cameras(vps, SIZE))
    ref = (frags.pix_to_face >= 0).numpy()
    for b in range(2):
        iou = (out.mask[b] & ref[b]).sum() / (out.mask[b] | ref[b]).sum()
        assert iou > 0.99
        both = out.mask[b] & ref[b]
        np.testing.assert_allclose(out.depth[b][both], frags.depth[b].numpy()[both], rtol=1e-4)
    assert out.rgb.shape == (2, *SIZE, 3) and out.rgb.dtype == np.float32
    assert (out.rgb[~out.mask] == 0).all()


def _cube_edge_band(vp, size, width=2):
    """Pixels within `width` of the cube's projected edges (all 12; hidden ones too, harmless)."""
    cam = viewpoints_to_cameras([vp], size)
    c = torch.tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=torch.float64)
    uv = cam.project(c)[0].numpy()
    band = np.zeros(size, np.uint8)
    for a, b in ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7)):
        cv2.line(band, tuple(np.round(uv[a] * 16).astype(int)), tuple(np.round(uv[b] * 16).astype(int)), 1,
                 2 * width + 1, cv2.LINE_8, shift=4)
    return band.astype(bool)


def test_geometry_edges_ignore_texture_canny_does_not():
    mesh = _cube(0.5)
    vp = _view(0.7, 0.45, d=2.4)
    out = render_views(mesh, [vp], SIZE, outputs=("rgb", "depth", "mask", "normal"))
    mask, depth, normal = out.mask[0], out.depth[0], out.normal[0]
    # paint a stripe texture on the faces (a procedural texture in the object frame)
    cams = viewpoints_to_cameras([vp], SIZE)
    pts = object_points(depth, mask, *(x[0].numpy() for x in (cams.K, cams.R, cams.t)))
    rgb = np.zeros((*SIZE, 3), np.float32)
    stripes = (np.sin(2 * math.pi * 5 * (pts[:, 0] + pts[:, 1] + pts[:, 2])) > 0).astype(np.float32)
    rgb[mask] = np.stack([stripes, 0.2 + 0.6 * stripes, 1 - stripes], 1)
    band = _cube_edge_band(vp, SIZE)
    geo = geometry_edges(depth, normal, mask) > 0
    assert geo.sum() > 80
    assert (geo & ~band).sum() == 0  # only on the silhouette and the creases
    canny = canny_edges(rgb) > 0
    assert (canny & ~band).sum() > 50  # Canny fires on the stripes
    both = edge_map("both", rgb, depth, normal, mask)
    assert both.shape == (*SIZE, 3) and both.dtype == np.uint8
    np.testing.assert_array_equal(both[..., 0] > 0, geo | canny)
    # the crease between two visible faces is found although the depth is continuous there
    no_normals = geometry_edges(depth, None, mask) > 0
    assert geo.sum() > no_normals.sum() + 10


def test_canny_is_opencv_canny():
    rng = np.random.default_rng(0)
    img = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 2)
    np.testing.assert_array_equal(canny_edges(img), cv2.Canny(img, 100, 200))
    np.testing.assert_array_equal(canny_edges(img.astype(np.float32) / 255.0, 50, 90), cv2.Canny(img, 50, 90))


def test_object_points_lie_on_the_surface():
    mesh = _cube(0.5)
    vp = _view(2.5, -0.4, 0.3, 2.0)
    out = render_views(mesh, [vp], SIZE)
    cams = viewpoints_to_cameras([vp], SIZE)
    pts = object_points(out.depth[0], out.mask[0], *(x[0].numpy() for x in (cams.K, cams.R, cams.t)))
    assert len(pts) == out.mask[0].sum() > 500
    np.testing.assert_allclose(np.abs(pts).max(1), 0.5, atol=2e-5)


@pytest.mark.parametrize("kind", ["solid", "noise", "stripes"])
def test_texture_albedo_is_a_function_of_the_surface_point(kind):
    rng = np.random.default_rng(5)
    pts = rng.uniform(-0.5, 0.5, (400, 3))
    a = texture_albedo(np.random.default_rng(11), kind, pts, 1.0)
    perm = rng.permutation(400)
    b = texture_albedo(np.random.default_rng(11), kind, pts[perm], 1.0)
    np.testing.assert_array_equal(a[perm], b)  # per point, whatever the view or pixel order
    assert a.shape == (400, 3) and a.min() >= 0 and a.max() <= 1
    near = texture_albedo(np.random.default_rng(11), kind, pts + 1e-7, 1.0)
    assert np.abs(near - a).max() < 1e-3  # continuous: neighbouring pixels of a surface agree
    if kind != "solid":
        assert a.std(0).max() > 0.02  # a texture, not one colour


@pytest.mark.parametrize("level, hidden", [("L1", (0.2, 0.4)), ("L2", (0.4, 0.6)), ("L3", (0.6, 0.8))])
def test_occluders_hide_the_level_fraction(level, hidden):
    mask = np.zeros((80, 100), bool)
    cv2.ellipse(mask.view(np.uint8), (50, 40), (30, 18), 20, 0, 360, 1, -1)
    fracs = []
    for seed in range(12):
        occ = make_occluders(np.random.default_rng(seed), mask, hidden)
        assert occ is not None
        frac = (occ.mask & mask).sum() / mask.sum()
        assert hidden[0] <= frac <= hidden[1]
        assert math.isclose(occ.hidden_fraction, frac)
        assert occ.rgb.shape == (80, 100, 3)
        fracs.append(frac)
    assert np.ptp(fracs) > 0.05  # the target fraction varies over the level's range
    again = make_occluders(np.random.default_rng(3), mask, hidden)
    np.testing.assert_array_equal(again.mask, make_occluders(np.random.default_rng(3), mask, hidden).mask)
    assert make_occluders(np.random.default_rng(0), np.zeros((8, 8), bool), hidden) is None


@pytest.mark.parametrize("kind", BACKGROUNDS)
def test_backgrounds(kind, tmp_path):
    folder = None
    if kind == "image":
        folder = tmp_path / "bg"
        folder.mkdir()
        for i in range(3):
            img = np.full((50 + 10 * i, 70, 3), 40 * i, np.uint8)
            cv2.imwrite(str(folder / f"{i}.png"), img)
    bg = make_background(np.random.default_rng(2), kind, (48, 64), None if folder is None else str(folder))
    if kind == "transparent":
        assert bg is None
        return
    assert bg.shape == (48, 64, 3) and bg.dtype == np.float32 and bg.min() >= 0 and bg.max() <= 1
    again = make_background(np.random.default_rng(2), kind, (48, 64), None if folder is None else str(folder))
    np.testing.assert_array_equal(bg, again)
    if kind in ("noise", "gradient"):
        assert bg.std() > 0.01
    if kind == "image":
        assert np.allclose(bg, bg[0, 0])  # one of the flat images, cropped and resized
        assert round(float(bg[0, 0, 0]) * 255) in (0, 40, 80)


def test_contact_shadow_darkens_the_projected_footprint():
    # A camera straight above the object (looking down -z, image x = object x, image y = -object y):
    # the footprint of the box [-1, 1] x [-2, 2] x [0, 1] at z = 0, 8% larger, lies 5 units away
    # and projects (focal 10, principal point (50, 50)) to the rectangle x in 50 ± 2.16, y in 50 ± 4.32.
    K = np.array([[10.0, 0, 50], [0, 10.0, 50], [0, 0, 1]])
    R = np.diag([1.0, -1.0, -1.0])
    t = np.array([0.0, 0.0, 5.0])
    bg = np.full((100, 100, 3), 0.5, np.float32)
    sharp = contact_shadow(bg, K, R, t, [[-1, -2, 0], [1, 2, 1]], darkness=0.6, softness=0.0)
    np.testing.assert_allclose(sharp[50, 50], 0.5 * (1 - 0.6), atol=1e-6)  # full shadow inside
    np.testing.assert_allclose(sharp[50, 45], 0.5, atol=1e-6)  # x 45 is outside 50 ± 2.16
    np.testing.assert_allclose(sharp[53, 51], 0.2, atol=1e-6)  # y 53 is inside 50 ± 4.32
    np.testing.assert_allclose(sharp[58, 50], 0.5, atol=1e-6)
    covered = (sharp[..., 0] < 0.5 - 1e-6).sum()
    assert abs(covered - 4.32 * 8.64) < 12  # the rectangle's area, up to its anti-aliased border
    soft = contact_shadow(bg, K, R, t, [[-1, -2, 0], [1, 2, 1]], darkness=0.6, softness=0.15)
    assert 0.2 < soft[50, 50, 0] < sharp[50, 45, 0] and soft[50, 45, 0] < 0.5  # blurred: spreads out
    assert soft.sum() == pytest.approx(sharp.sum(), rel=1e-3)  # the blur moves the darkness, keeps its amount
    behind = contact_shadow(bg, K, R, np.array([0.0, 0.0, -5.0]), [[-1, -2, 0], [1, 2, 1]], darkness=0.6)
    np.testing.assert_array_equal(behind, bg)  # behind the camera: no shadow


def _camera_looking_at_origin(elevation_deg: float, distance: float, focal: float, c: float):
    """An OpenCV camera (K, R, t: object -> camera) `distance` from the origin at `elevation_deg`
    above the x-y plane (z up), azimuth 0 (on the −y side), no roll, looking at the origin."""
    e = math.radians(elevation_deg)
    centre = distance * np.array([0.0, -math.cos(e), math.sin(e)])
    forward = -centre / distance
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    R = np.stack([right, np.cross(forward, right), forward])
    return np.array([[focal, 0, c], [0, focal, c], [0, 0, 1.0]]), R, -R @ centre


def test_ground_plane_starts_at_the_horizon_the_camera_elevation_sets():
    # Camera 3 units from the origin at elevation 10°, focal 200, principal point 50: the ground
    # plane z = −0.15 (the box's base) is below the camera, so the rays that meet it are those
    # pointing down from horizontal, at the centre column the rows below v + 0.5 = 50 − 200 tan 10°
    # = 14.73 (the horizon of a plane below the camera is the camera's own horizontal).
    K, R, t = _camera_looking_at_origin(10.0, 3.0, 200.0, 50.0)
    bounds = [[-0.2, -0.5, -0.15], [0.2, 0.5, 0.15]]
    bg = np.zeros((100, 100, 3), np.float32)
    bg[...] = (0.1, 0.9, 0.1)
    out = ground_plane(bg, K, R, t, bounds, np.random.default_rng(0), fade=1e9)
    changed = np.abs(out - bg).max(-1) > 1e-3
    horizon = 50 - 200 * math.tan(math.radians(10)) - 0.5  # 14.23: the last row above is 14
    assert not changed[: int(horizon) + 1, 50].any()
    assert changed[int(horizon) + 1:, 50].all()
    assert not changed[:14].any() and changed[15:].all()  # no roll: the horizon is one row across
    road = out[changed]
    assert road[:, 1].max() < 0.95 and np.abs(road[:, 0] - road[:, 2]).max() < 0.25  # grey (or paint), not the green
    again = ground_plane(bg, K, R, t, bounds, np.random.default_rng(0), fade=1e9)
    np.testing.assert_array_equal(out, again)  # a function of the draw
    # with a finite fade the road vanishes into the background with distance: far rows stay nearer it
    faded = ground_plane(bg, K, R, t, bounds, np.random.default_rng(0), fade=2.0)
    near, far = np.abs(faded[95] - bg[95]).mean(), np.abs(faded[16] - bg[16]).mean()
    assert far < 0.5 * near
    # a camera below the ground (elevation −30°: 1.5 units under the origin) draws no road
    Ku, Ru, tu = _camera_looking_at_origin(-30.0, 3.0, 200.0, 50.0)
    np.testing.assert_array_equal(ground_plane(bg, Ku, Ru, tu, bounds, np.random.default_rng(0)), bg)


def test_random_lights_come_from_the_camera_side():
    for seed in range(30):
        lt = random_lights(np.random.default_rng(seed), (0.2, 0.4), (1, 3), (0.3, 0.8), 0.15)
        assert 1 <= len(lt.directions) <= 3 and 0.2 <= lt.ambient[0] <= 0.4
        np.testing.assert_allclose(np.linalg.norm(lt.directions, axis=1), 1.0)
        assert (lt.directions[:, 2] <= -math.cos(math.radians(75)) + 1e-12).all()
        assert (lt.colors.max(1) >= 0.3 - 1e-12).all() and (lt.colors.max(1) <= 0.8 + 1e-12).all()


def test_choose_follows_the_weights():
    rng = np.random.default_rng(0)
    weights = {"solid": 1.0, "noise": 3.0, "stripes": 0.0, "original": 2.0}
    counts = {k: 0 for k in APPEARANCES}
    for _ in range(3000):
        counts[choose(rng, weights, APPEARANCES)] += 1
    assert counts["stripes"] == 0
    observed = [counts[k] for k in ("original", "solid", "noise")]
    assert stats.chisquare(observed, [1000, 500, 1500]).pvalue > 1e-3


@pytest.mark.parametrize("image", [
    np.arange(48 * 64 * 3, dtype=np.uint32).reshape(48, 64, 3).astype(np.uint8),
    np.arange(48 * 64 * 4, dtype=np.uint32).reshape(48, 64, 4).astype(np.uint8),
    (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 20).astype(np.uint16),
    np.eye(48, 64, dtype=bool),
])
def test_png_encoding_round_trips_and_is_deterministic(image, tmp_path):
    data = encode_png(image, 3)
    assert data == encode_png(image.copy(), 3)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    expected = image.astype(np.uint8) * 255 if image.dtype == bool else image
    np.testing.assert_array_equal(back, expected)


def test_sample_ids_and_helpers():
    a = sample_id(0, "procedural:car/0001", 3)
    assert a == sample_id(0, "procedural:car/0001", 3) and len(a) == 16
    assert len({a, sample_id(1, "procedural:car/0001", 3), sample_id(0, "procedural:car/0002", 3),
                sample_id(0, "procedural:car/0001", 4)}) == 4
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_bbox(m) == (3.0, 2.0, 8.0, 4.0)
    assert mask_bbox(np.zeros((4, 4), bool)) is None
    assert math.isclose(object_extent(_cube(0.25)), 0.5)
