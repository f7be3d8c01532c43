"""Procedural assets (data3d.procedural): primitives, validity, determinism, frame, alignment, renders."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import trimesh

from data3d import procedural
from data3d.procedural import primitives as prim
from geom3d import GeometryError, pixel_grid, viewpoint_to_cameras

CATEGORIES = procedural.CATEGORIES
REQUIRED = ("car", "chair", "table", "aeroplane", "bottle", "mug", "sofa", "monitor")
N_STYLES = {  # seeds 0..N-1 go through every style of the category once (the style cycles with the seed)
    "car": 5, "chair": 6, "table": 6, "aeroplane": 4, "bottle": 4, "mug": 4, "sofa": 5, "monitor": 5, "bus": 4,
    "bicycle": 3, "motorbike": 4, "boat": 4, "train": 3,
}
SEEDS = (0, 1, 2, 3, 7)


@functools.cache
def asset(category: str, seed: int) -> procedural.ProceduralAsset:
    return procedural.generate(category, seed)


@functools.cache
def mesh(category: str, seed: int):
    return asset(category, seed).mesh()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _closed_and_outward(m) -> tuple[bool, bool, float]:
    """(watertight, winding consistent, signed volume) of a mesh once coincident vertices merge."""
    tm = trimesh.Trimesh(_np(m.vertices), m.faces.numpy(), process=False)
    tm.merge_vertices()
    return tm.is_watertight, tm.is_winding_consistent, prim.signed_volume(_np(m.vertices), m.faces.numpy())


def _areas(m) -> np.ndarray:
    v, f = _np(m.vertices), m.faces.numpy()
    return np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1) / 2


def _surface_area(m) -> float:
    return float(_areas(m).sum())


# ----------------------------------------------------------------------------------------------- primitives
PRIMITIVES = {
    "box": lambda: prim.box((0.3, 0.5, 0.7)),
    "box_divided": lambda: prim.box((0.3, 0.5, 0.7), divisions=(2, 3, 4)),
    "rounded_box": lambda: prim.rounded_box((0.4, 0.6, 0.3), 0.05),
    "superellipsoid": lambda: prim.superellipsoid((0.2, 0.3, 0.4), 0.4, 0.7),
    "cylinder": lambda: prim.cylinder(0.2, 0.5),
    "frustum": lambda: prim.frustum(0.3, 0.1, 0.4),
    "cone": lambda: prim.frustum(0.3, 0.0, 0.4),
    "lathe_cup": lambda: prim.lathe([(0, 0), (1, 0), (1, 2), (0.9, 2), (0.9, 0.1), (0, 0.1)]),
    "extrude_L": lambda: prim.extrude([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)], 0.5),
    "loft": lambda: prim.loft(np.array([[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]],
                                        [[0.2, 0.2, 1], [0.8, 0.2, 1], [0.8, 0.8, 1], [0.2, 0.8, 1]]], float)),
    "tube": lambda: prim.tube([(0, 0, 0), (1, 0, 0), (1, 1, 0.5), (1, 1, 2)], 0.1),
    "torus": lambda: prim.torus_segment(1.0, 0.2),
    "torus_arc": lambda: prim.torus_segment(1.0, 0.2, -2.0, 2.0),
    "cylinder_between": lambda: prim.cylinder_between((0, 0, 0), (1, 2, -1), 0.1),
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_closed_outward_and_attributed(name):
    m = PRIMITIVES[name]()
    watertight, consistent, volume = _closed_and_outward(m)
    assert watertight and consistent
    assert volume > 0
    tm = trimesh.Trimesh(_np(m.vertices), m.faces.numpy())
    assert volume == pytest.approx(tm.volume, rel=1e-9)  # trimesh's own volume agrees
    assert _areas(m).min() > 1e-9
    assert m.vertex_colors.shape == (m.num_vertices, 3) and m.uvs.shape == (m.num_vertices, 2)
    assert float(m.uvs.min()) >= 0 and float(m.uvs.max()) <= 1
    assert m.vertices.dtype == torch.float64


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_uvs_run_right_and_up_seen_from_outside(name):
    """du × dv points outwards on every face with a non-degenerate UV triangle."""
    m = PRIMITIVES[name]()
    v, f, uv = _np(m.vertices), m.faces.numpy(), _np(m.uvs)
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    d1, d2 = uv[f[:, 1]] - uv[f[:, 0]], uv[f[:, 2]] - uv[f[:, 0]]
    det = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    ok = np.abs(det) > 1e-9
    assert ok.mean() > 0.9
    # [e1 e2] = [dP/du dP/dv] @ [[d1u d2u], [d1v d2v]]
    inv = np.stack([np.stack([d2[:, 1], -d2[:, 0]], 1), np.stack([-d1[:, 1], d1[:, 0]], 1)], 1)[ok]
    inv /= det[ok, None, None]
    D = np.stack([e1[ok], e2[ok]], 2) @ inv
    normal = np.cross(e1[ok], e2[ok])
    assert (np.einsum("ij,ij->i", np.cross(D[:, :, 0], D[:, :, 1]), normal) > 0).all()


def test_box_volume_area_and_bounds_exact():
    m = prim.box((0.3, 0.5, 0.7))
    _, _, volume = _closed_and_outward(m)
    assert volume == pytest.approx(0.3 * 0.5 * 0.7, rel=1e-12)
    assert _surface_area(m) == pytest.approx(2 * (0.15 + 0.35 + 0.21), rel=1e-12)
    np.testing.assert_allclose(_np(m.bounds()), [[-0.15, -0.25, -0.35], [0.15, 0.25, 0.35]], atol=1e-15)


@pytest.mark.parametrize("segments", [8, 32, 128])
def test_cylinder_volume_and_area(segments):
    r, h = 0.2, 0.5
    m = prim.cylinder(r, h, segments=segments)
    _, _, volume = _closed_and_outward(m)
    polygon = segments / 2 * math.sin(2 * math.pi / segments) * r * r  # inscribed regular polygon
    side = segments * 2 * r * math.sin(math.pi / segments) * h
    assert volume == pytest.approx(polygon * h, rel=1e-12)
    assert _surface_area(m) == pytest.approx(2 * polygon + side, rel=1e-12)
    if segments == 128:  # and the analytic solid, up to faceting
        assert volume == pytest.approx(math.pi * r * r * h, rel=2e-3)
        assert _surface_area(m) == pytest.approx(2 * math.pi * r * r + 2 * math.pi * r * h, rel=2e-3)


def test_frustum_volume_matches_prismatoid_formula():
    r0, r1, h, n = 0.3, 0.1, 0.4, 32
    a0, a1 = (n / 2 * math.sin(2 * math.pi / n) * r * r for r in (r0, r1))
    _, _, volume = _closed_and_outward(prim.frustum(r0, r1, h, segments=n))
    assert volume == pytest.approx(h / 3 * (a0 + a1 + math.sqrt(a0 * a1)), rel=1e-12)


def test_rounded_box_matches_minkowski_sum_volume():
    size, r = np.array([0.4, 0.6, 0.3]), 0.05
    m = prim.rounded_box(size, r, segments=12)
    inner = size - 2 * r
    exact = (np.prod(inner) + 2 * r * (inner[0] * inner[1] + inner[1] * inner[2] + inner[0] * inner[2])
             + math.pi * r * r * inner.sum() + 4 / 3 * math.pi * r**3)
    _, _, volume = _closed_and_outward(m)
    assert volume == pytest.approx(exact, rel=2e-3)
    np.testing.assert_allclose(_np(m.bounds()), [-size / 2, size / 2], atol=1e-12)  # flat faces at the size


def test_torus_and_extrusion_volumes():
    _, _, v_torus = _closed_and_outward(prim.torus_segment(1.0, 0.2, segments=96, tube_segments=32))
    assert v_torus == pytest.approx(2 * math.pi**2 * 1.0 * 0.2**2, rel=1e-2)
    _, _, v_l = _closed_and_outward(PRIMITIVES["extrude_L"]())
    assert v_l == pytest.approx(3.0 * 0.5, rel=1e-12)  # non-convex L: 3 unit squares × depth
    _, _, v_cup = _closed_and_outward(prim.lathe([(0, 0), (1, 0), (1, 2), (0.9, 2), (0.9, 0.1), (0, 0.1)],
                                                 segments=256))
    assert v_cup == pytest.approx(math.pi * (1.0 * 2 - 0.81 * 1.9), rel=1e-3)


def test_mirror_keeps_faces_outward_and_cylinder_between_reaches_its_points():
    m = prim.mirror_x(prim.translate(PRIMITIVES["extrude_L"](), (1.0, 0.0, 0.0)))
    _, consistent, volume = _closed_and_outward(m)
    assert consistent and volume == pytest.approx(1.5, rel=1e-12)
    assert float(m.vertices[:, 0].max()) <= 0.0 + 1e-12
    c = prim.cylinder_between((0.0, 0.0, 0.0), (0.0, 0.0, -1.0), 0.1)
    np.testing.assert_allclose(_np(c.bounds())[:, 2], [-1.0, 0.0], atol=1e-12)


def test_primitives_reject_bad_parameters():
    with pytest.raises(GeometryError, match="positive"):
        prim.box((1.0, 0.0, 1.0))
    with pytest.raises(GeometryError, match="radius"):
        prim.rounded_box((1.0, 1.0, 0.2), 0.2)
    with pytest.raises(GeometryError, match="r, z"):
        prim.lathe([(0.0, 0.0)])
    with pytest.raises(GeometryError, match="≥ 0"):
        prim.lathe([(0.0, 0.0), (-1.0, 1.0), (0.0, 1.0)])
    with pytest.raises(GeometryError, match="zero area"):
        prim.extrude([(0, 0), (1, 0), (2, 0)], 1.0)
    with pytest.raises(GeometryError, match="colour"):
        prim.box((1, 1, 1), colour=(1.2, 0.0, 0.0))


# ----------------------------------------------------------------------------------------------- categories
def test_category_names_and_aliases():
    assert set(REQUIRED) <= set(CATEGORIES)
    assert {"bus", "boat", "bicycle", "motorbike", "train"} <= set(CATEGORIES)
    assert set(procedural.PASCAL3D_NAMES.values()) == {
        "aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "diningtable", "motorbike", "sofa", "train",
        "tvmonitor"}
    for alias, name in (("diningtable", "table"), ("tvmonitor", "monitor"), ("cup", "mug"), ("Airplane", "aeroplane")):
        assert procedural.canonical_category(alias) == name
    a, b = procedural.make("diningtable", 4), procedural.make("table", 4)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.faces, b.faces)
    assert torch.equal(procedural.make("tvmonitor", 2).vertices, procedural.make("monitor", 2).vertices)
    assert torch.equal(procedural.make("cup", 1).vertices, procedural.make("mug", 1).vertices)


def test_bad_category_and_seed_are_clear_errors():
    with pytest.raises(ValueError, match="unknown category 'giraffe'"):
        procedural.make("giraffe", 0)
    for seed in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed"):
            procedural.make("car", seed)
    with pytest.raises(ValueError, match="size"):
        procedural.make("car", 0, size=0.0)


@pytest.mark.parametrize("category", CATEGORIES)
def test_valid_mesh_frame_and_scale(category):
    for seed in SEEDS:
        m = mesh(category, seed)
        v = _np(m.vertices)
        assert np.isfinite(v).all()
        assert m.faces.min() >= 0 and m.faces.max() < m.num_vertices
        assert _areas(m).min() > 1e-10  # no degenerate triangles, even in float32
        assert 150 <= m.num_faces <= 6000
        c, uv = _np(m.vertex_colors), _np(m.uvs)
        assert c.shape == (len(v), 3) and uv.shape == (len(v), 2)
        assert c.min() >= 0 and c.max() <= 1 and uv.min() >= 0 and uv.max() <= 1
        lo, hi = v.min(0), v.max(0)
        assert (hi - lo).max() == pytest.approx(1.0, abs=1e-6)  # longest side exactly 1
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)  # bounding box centred at the origin
        assert m.vertices.dtype == torch.float32 and m.source == f"procedural:{category}:{seed}"


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_part_is_closed_and_outward(category):
    for seed in (0, 1):
        for part in asset(category, seed).parts:
            watertight, consistent, volume = _closed_and_outward(part.mesh)
            assert watertight and consistent and volume > 0, f"{category} {seed}: part {part.name}"


@pytest.mark.parametrize("category", CATEGORIES)
def test_deterministic_and_varied(category):
    a, b = procedural.make(category, 5), procedural.make(category, 5)
    for x, y in ((a.vertices, b.vertices), (a.faces, b.faces), (a.vertex_colors, b.vertex_colors), (a.uvs, b.uvs)):
        assert torch.equal(x, y)  # bit-identical
    c = procedural.make(category, 5 + N_STYLES[category])  # same style, other seed: other proportions
    assert a.vertices.shape != c.vertices.shape or not torch.equal(a.vertices, c.vertices)
    extents = np.array([np.ptp(_np(mesh(category, s).vertices), axis=0) for s in range(N_STYLES[category])])
    assert np.ptp(extents, axis=0).max() > 0.02  # the styles differ visibly in proportions
    styles = {asset(category, s).params["style"] for s in range(N_STYLES[category])}
    assert len(styles) >= min(3, N_STYLES[category])


@pytest.mark.parametrize("category", ["car", "chair", "mug"])
def test_size_and_dtype_options(category):
    m1 = procedural.make(category, 2, dtype=torch.float64)
    m2 = procedural.make(category, 2, size=0.6, dtype=torch.float64)
    assert m1.vertices.dtype == torch.float64
    np.testing.assert_allclose(_np(m2.vertices), 0.6 * _np(m1.vertices), atol=1e-12)
    np.testing.assert_allclose(_np(m1.vertices), _np(mesh(category, 2).vertices), atol=1e-6)


# ----------------------------------------------------------------------------------------------- alignment
def _centroid(a, name) -> np.ndarray:
    return _np(a.part(name).vertices).mean(0)


def _bounds(a, name) -> np.ndarray:
    return _np(a.part(name).bounds())


def _floor(a) -> float:
    return float(_np(a.mesh().vertices)[:, 2].min())


@pytest.mark.parametrize("seed", range(5))
def test_car_front_is_minus_y_and_up_is_z(seed):
    a = asset("car", seed)
    assert _centroid(a, "headlight")[1] < -0.4 and _centroid(a, "grille")[1] < -0.4
    assert _centroid(a, "taillight")[1] > 0.4
    assert _bounds(a, "wheel")[0, 2] == pytest.approx(_floor(a), abs=1e-6)  # tyres touch the ground
    assert _centroid(a, "roof")[2] > _centroid(a, "body")[2] > _centroid(a, "wheel")[2]
    # the windscreen leans back: the cabin's foremost point is at its bottom
    cabin = _np(a.part("cabin").vertices)
    front = cabin[cabin[:, 1] <= cabin[:, 1].min() + 1e-6]
    assert front[:, 2].max() < cabin[:, 2].mean()
    # headlights sit left and right of the centre plane (+x is the image's right at azimuth 0)
    xs = sorted(_np(p.mesh.vertices)[:, 0].mean() for p in a.parts if p.name == "headlight")
    assert xs[0] < -0.1 and xs[1] > 0.1


@pytest.mark.parametrize("seed", range(6))
def test_chair_back_at_plus_y_and_legs_on_the_floor(seed):
    a = asset("chair", seed)
    seat, back = _centroid(a, "seat"), _centroid(a, "back")
    assert back[1] > seat[1] + 0.05 and back[2] > seat[2]
    support = [n for n in ("leg", "caster") if n in a.part_names()]
    assert min(_bounds(a, n)[0, 2] for n in support) == pytest.approx(_floor(a), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_sofa_back_at_plus_y(seed):
    a = asset("sofa", seed)
    assert _centroid(a, "back")[1] > _centroid(a, "seat_cushion")[1] + 0.05
    assert _centroid(a, "back_cushion")[1] > _centroid(a, "seat_cushion")[1]
    assert _bounds(a, "base")[1, 2] < _bounds(a, "back")[1, 2]


@pytest.mark.parametrize("seed", range(6))
def test_table_top_above_its_support(seed):
    a = asset("table", seed)
    lo, hi = _bounds(a, "top")
    assert hi[2] == pytest.approx(float(_np(a.mesh().vertices)[:, 2].max()), abs=1e-6)  # the top is highest
    assert hi[0] - lo[0] >= hi[1] - lo[1] - 1e-6  # the long side runs along x, as in PASCAL3D+
    support = [n for n in ("leg", "pedestal", "foot") if n in a.part_names()]
    assert min(_bounds(a, n)[0, 2] for n in support) == pytest.approx(_floor(a), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_monitor_screen_faces_minus_y(seed):
    a = asset("monitor", seed)
    screen = a.part("screen")
    n, area = _np(screen.face_normals()), _areas(screen)
    front = n[:, 1] < -0.99
    assert area[front].sum() > 0.3 * area.sum()  # a thin panel: its largest face looks along −y
    front_y = _np(screen.vertices)[screen.faces.numpy()[front]][..., 1].mean()
    assert front_y < _bounds(a, "housing")[0, 1]  # standing proud of the housing's front


@pytest.mark.parametrize("seed", range(4))
def test_aeroplane_nose_at_min_y_and_fin_up_at_the_back(seed):
    a = asset("aeroplane", seed)
    v = _np(a.mesh().vertices)
    fus = _bounds(a, "fuselage")
    assert fus[0, 1] == pytest.approx(v[:, 1].min(), abs=0.03)  # the nose (or propeller) is foremost
    fin = _centroid(a, "fin")
    assert fin[1] > 0.2 and fin[2] > _centroid(a, "fuselage")[2]
    top = max(_bounds(a, "fin")[1, 2], _bounds(a, "stabiliser")[1, 2])  # fin, or a T-tail on it
    assert top == pytest.approx(v[:, 2].max(), abs=1e-6)
    wing = _bounds(a, "wing")
    assert wing[1, 0] - wing[0, 0] > 0.5  # the wings span x


@pytest.mark.parametrize("seed", range(4))
def test_small_objects_alignment(seed):
    bottle = asset("bottle", seed)
    assert _bounds(bottle, "cap")[1, 2] == pytest.approx(0.5, abs=1e-6)  # cap on top, bottle upright
    np.testing.assert_allclose(_bounds(bottle, "body")[:, :2].mean(0), 0.0, atol=1e-6)  # round about z
    mug = asset("mug", seed)
    assert _centroid(mug, "handle")[0] > 0.2  # the handle on the +x side
    bus = asset("bus", seed)
    assert _centroid(bus, "windscreen")[1] < min(-0.3, _centroid(bus, "door")[1]) and _centroid(bus, "door")[0] > 0
    boat = asset("boat", seed)
    hull = _np(boat.part("hull").vertices)
    bow = hull[hull[:, 1] <= hull[:, 1].min() + 1e-6]
    np.testing.assert_allclose(bow[:, 0], 0.0, atol=1e-6)  # knife-edge bow at −y
    assert abs(_bounds(boat, "hull")[1, 1] - 0.5) < 1e-6 or boat.params["style"] == "sailboat"


@pytest.mark.parametrize("seed", range(4))
def test_two_wheelers_and_train_alignment(seed):
    bike = asset("bicycle", seed)
    assert _centroid(bike, "handlebar")[1] < _centroid(bike, "saddle")[1]
    assert _centroid(bike, "chainring")[0] > 0  # drive side on the right
    assert _bounds(bike, "wheel")[0, 2] == pytest.approx(_floor(bike), abs=1e-6)
    moto = asset("motorbike", seed)
    assert _centroid(moto, "headlight")[1] < _centroid(moto, "engine")[1] - 0.1 < 0
    assert _centroid(moto, "taillight")[1] > 0.3
    assert _centroid(moto, "exhaust")[0] > 0
    train = asset("train", seed % 3)
    assert _centroid(train, "headlight")[1] < -0.4 and _centroid(train, "windscreen")[1] < -0.2
    assert _bounds(train, "wheel")[0, 2] == pytest.approx(_floor(train), abs=1e-6)


# ----------------------------------------------------------------------------------------------- renders
def _cast(m, azimuth, elevation, size=64, distance=3.0):
    """Ray-cast (trimesh/Embree) a mesh through the PASCAL3D+ viewpoint camera: (face id map (-1 = miss),
    the projected vertices (V, 2))."""
    cam = viewpoint_to_cameras(azimuth, elevation, 0.0, distance, 1.0, size * 2.0, image_size=(size, size))
    cam = cam.to(dtype=torch.float64)
    grid = pixel_grid((size, size), dtype=torch.float64).reshape(-1, 2)
    points = _np(cam.unproject_points(grid, torch.ones(len(grid), dtype=torch.float64)))
    centre = _np(cam.camera_centres())
    dirs = points - centre
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    tm = trimesh.Trimesh(_np(m.vertices), m.faces.numpy(), process=False)
    hit = tm.ray.intersects_first(np.repeat(centre[None], len(dirs), 0), dirs)
    return hit.reshape(size, size), _np(cam.project(m.vertices.double()))


def _rasterise(m, projected, size=64) -> np.ndarray:
    """An independent silhouette: every projected triangle, sampled at the pixel centres (integer
    coordinates, docs/design.md) by edge functions."""
    img = np.zeros((size, size), bool)
    for t in projected[m.faces.numpy()]:
        x0, y0 = np.maximum(np.ceil(t.min(0)), 0).astype(int)
        x1, y1 = np.minimum(np.floor(t.max(0)), size - 1).astype(int)
        if x1 < x0 or y1 < y0:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        p = np.stack([xs, ys], -1).astype(np.float64)
        a, b = t, np.roll(t, -1, axis=0)  # the three edges a[k] -> b[k]
        e = [(b[k, 0] - a[k, 0]) * (p[..., 1] - a[k, 1]) - (b[k, 1] - a[k, 1]) * (p[..., 0] - a[k, 0])
             for k in range(3)]
        inside = ((e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0)) | ((e[0] <= 0) & (e[1] <= 0) & (e[2] <= 0))
        img[ys[inside], xs[inside]] = True
    return img


@pytest.mark.parametrize("category", CATEGORIES)
def test_renders_non_empty_inside_the_image_and_agrees_with_rasterisation(category):
    m = mesh(category, 1)
    for az, el in ((0.0, 15.0), (45.0, 15.0), (90.0, 15.0), (200.0, 30.0)):
        hit, projected = _cast(m, math.radians(az), math.radians(el))
        sil = hit >= 0
        assert sil.sum() > 40, f"{category} az={az}: empty render"
        rows, cols = np.nonzero(sil)
        assert rows.min() > 0 and cols.min() > 0 and rows.max() < 63 and cols.max() < 63  # not cut off
        raster = _rasterise(m, projected)  # the same pixel centres, sampled by projecting the triangles
        assert (sil != raster).sum() <= 2, f"{category} az={az}: ray casting and rasterisation disagree"


FRONT_PARTS = {"car": ("headlight", "taillight"), "bus": ("windscreen", "taillight"), "monitor": ("screen", None),
               "motorbike": ("headlight", "taillight"), "train": ("headlight", "taillight")}


@pytest.mark.parametrize("category", sorted(FRONT_PARTS))
def test_azimuth_zero_sees_the_front(category):
    """Through geom3d's viewpoint camera: azimuth 0 sees the front parts and not the rear ones;
    azimuth π the other way round."""
    front, rear = FRONT_PARTS[category]
    for seed in range(3):
        a = asset(category, seed)
        names = np.array([name for name, start, end in a.part_face_ranges() for _ in range(end - start)])
        seen = {}
        for az in (0.0, math.pi):
            hit, _ = _cast(a.mesh(), az, math.radians(10), size=160, distance=2.5)
            seen[az] = set(names[hit[hit >= 0]])
        assert front in seen[0.0] and front not in seen[math.pi], f"{category} {seed}"
        if rear is not None:
            assert rear in seen[math.pi] and rear not in seen[0.0], f"{category} {seed}"


def test_part_colors_recolor_only_the_named_parts_per_seed():
    """`part_colors` of the procedural source: each asset's named parts take one colour drawn on the
    line from low to high from its seed; every other vertex keeps the library's colour; bad boxes name the key."""
    from data3d.assets import asset_source
    from data3d.errors import AssetError

    box = {"headlight": [[0.2, 0.3, 0.4], [0.5, 0.6, 0.7]]}
    plain = asset_source({"type": "procedural", "categories": ["car"], "count": 3})
    tinted = asset_source({"type": "procedural", "categories": ["car"], "count": 3, "part_colors": box})
    drawn = []
    for seed, (a, b) in enumerate(zip(plain.assets, tinted.assets)):
        m0, m1 = plain.load(a), tinted.load(b)
        ranges = procedural.generate("car", seed).part_face_ranges()
        lamp = torch.zeros(m0.num_vertices, dtype=torch.bool)
        for name, f0, f1 in ranges:
            if name == "headlight":
                lamp[m0.faces[f0:f1].flatten()] = True
        assert lamp.any() and torch.equal(m0.vertices, m1.vertices)
        assert torch.equal(m0.vertex_colors[~lamp], m1.vertex_colors[~lamp])  # the rest untouched
        lamp_rgb = m1.vertex_colors[lamp]
        assert torch.allclose(lamp_rgb, lamp_rgb[:1].expand_as(lamp_rgb))  # one colour for both lamps
        assert (lamp_rgb[0] >= torch.tensor([0.2, 0.3, 0.4]) - 1e-6).all()
        assert (lamp_rgb[0] <= torch.tensor([0.5, 0.6, 0.7]) + 1e-6).all()
        assert not torch.allclose(lamp_rgb[0], m0.vertex_colors[lamp][0])  # the library's bright lamp is gone
        assert torch.equal(tinted.load(b).vertex_colors, m1.vertex_colors)  # the same seed, the same colour
        t = (lamp_rgb[0] - torch.tensor([0.2, 0.3, 0.4])) / 0.3  # on the line from low to high: one t
        assert torch.allclose(t, t[:1].expand(3), atol=1e-5)
        drawn.append(lamp_rgb[0])
    assert not torch.allclose(drawn[0], drawn[1])  # seeds differ
    for bad, match in (({"headlight": [[0, 0, 0]]}, "part_colors.headlight"),
                       ({"headlight": [[0.5, 0, 0], [0.4, 1, 1]]}, "low ≤ high"),
                       ({"headlight": [[0, 0, 0], [1, 1, 2]]}, "≤ 1"), ("red", "part_colors")):
        with pytest.raises(AssetError, match=match):
            asset_source({"type": "procedural", "categories": ["car"], "count": 1, "part_colors": bad})
