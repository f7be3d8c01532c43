"""data3d's record: validation, the viewpoint <-> camera link, and the sharded NPZ/JSON format."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data3d_fixtures import matlab_project

import data3d
import geom3d
from data3d import AnnotationError, ImageRecord, ObjectAnnotation, Viewpoint


def vp(**kw) -> Viewpoint:
    base = dict(azimuth=0.4, elevation=0.2, theta=-0.1, distance=5.0, focal=1.0, viewport=2000.0, px=99.0, py=74.0)
    base.update(kw)
    return Viewpoint(**base)


def obj(**kw) -> ObjectAnnotation:
    base = dict(category="car", bbox=(10.0, 12.0, 150.0, 120.0), viewpoint=vp(), cad_index=2, cad_source="pascal3d")
    base.update(kw)
    return ObjectAnnotation(**base)


# ----------------------------------------------------------------------------- viewpoint and cameras
def test_viewpoint_is_a_mapping_accepted_by_geom3d():
    v = vp()
    assert list(v) == list(data3d.VIEWPOINT_KEYS) and len(v) == 8
    assert dict(v)["distance"] == 5.0 and v["px"] == 99.0 and "theta" in v and v.get("nope") is None
    a = v.to_cameras((150, 200), torch.float64)
    b = geom3d.viewpoint_from_mapping(v, (150, 200))
    torch.testing.assert_close(a.K, b.K.double())
    torch.testing.assert_close(a.R, b.R.double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_record_camera_reproduces_the_matlab_projection(dtype):
    """The camera of a record equals the PASCAL3D+ toolbox formula after the 1-based -> 0-based shift."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, size=(50, 3))
    az, el, th, d, px_m, py_m = 250.0, 30.0, 12.0, 6.0, 180.5, 121.0
    ref = matlab_project(pts, az, el, th, d, 1.0, px_m, py_m, 2000.0) - 1.0  # MATLAB -> 0-based
    v = Viewpoint(azimuth=math.radians(az), elevation=math.radians(el), theta=math.radians(th), distance=d,
                  focal=1.0, viewport=2000.0, px=px_m - 1, py=py_m - 1)
    uv = v.to_cameras((240, 360), dtype).project(torch.tensor(pts, dtype=dtype))
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    np.testing.assert_allclose(uv.numpy(), ref, atol=tol)


def test_mirrored_viewpoint_is_the_flipped_image():
    """Projecting x-mirrored points with the mirrored viewpoint gives u' = W − 1 − u, same v."""
    rng = np.random.default_rng(1)
    pts = torch.tensor(rng.uniform(-0.5, 0.5, size=(40, 3)))
    for az, el, th in rng.uniform(-3, 3, size=(10, 3)):
        v = vp(azimuth=az, elevation=el, theta=th)
        uv = v.to_cameras((150, 200), torch.float64).project(pts)
        m = v.mirrored(200)
        uv_m = m.to_cameras((150, 200), torch.float64).project(pts * torch.tensor([-1.0, 1.0, 1.0], dtype=pts.dtype))
        torch.testing.assert_close(uv_m[:, 0], 199.0 - uv[:, 0])
        torch.testing.assert_close(uv_m[:, 1], uv[:, 1])
        assert 0 <= m.azimuth < 2 * math.pi and m.theta == -th


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_viewpoint_from_cameras_round_trip(dtype):
    v = vp(azimuth=5.9, elevation=-0.3, theta=0.7, distance=3.5, focal=1.2, viewport=3000.0)
    back = Viewpoint.from_cameras(v.to_cameras((150, 200), dtype), viewport=3000.0)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    for k in data3d.VIEWPOINT_KEYS:
        assert back[k] == pytest.approx(v[k], abs=tol * max(1.0, abs(v[k])))
    # positional construction works as well
    rec = ImageRecord("a.png", (150, 200), (ObjectAnnotation("car", (0, 0, 5, 5), v),))
    assert rec.objects[0].category == "car"


def test_resized_viewpoint_matches_cameras_resize():
    v = vp()
    a = v.resized(1.5).to_cameras((225, 300), torch.float64)
    b = v.to_cameras((150, 200), torch.float64).resize((225, 300))
    torch.testing.assert_close(a.K, b.K)
    with pytest.raises(AnnotationError, match="anisotropic"):
        v.resized(1.5, 1.4)


def test_wrapped_keeps_the_rotation():
    v = vp(azimuth=-0.5, elevation=2 * math.pi + 0.3, theta=7.0)
    w = v.wrapped()
    assert 0 <= w.azimuth < 2 * math.pi and -math.pi < w.elevation <= math.pi and -math.pi < w.theta <= math.pi
    torch.testing.assert_close(v.rotation(torch.float64), w.rotation(torch.float64))


def test_object_cameras_and_mesh_ref():
    rec = ImageRecord(image_path="img.jpg", image_size=(150, 200), objects=(obj(),))
    o = rec.objects[0]
    assert o.image_size == (150, 200) and o.cameras.image_size == (150, 200)
    assert o.mesh_ref == "pascal3d:car/02"
    assert obj(cad_id="abc", cad_index=None).mesh_ref == "pascal3d:car/abc"


def test_mesh_ref_is_one_rule_for_real_and_synthetic_records(tmp_path):
    # a real record names its CAD by cad_index, a datagen record by the asset id of the CAD folder
    (tmp_path / "car").mkdir()
    (tmp_path / "car" / "01.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    (asset,) = data3d.OffCadSource(tmp_path, name="pascal3d")
    real = obj(cad_index=1)
    synthetic = obj(cad_index=asset.cad_index, cad_source=asset.meta["collection"], cad_id=asset.id)
    assert asset.id == "car/01" and real.mesh_ref == synthetic.mesh_ref == "pascal3d:car/01"
    assert data3d.mesh_ref_for("procedural", "car", "car/0003") == "procedural:car/0003"
    assert data3d.mesh_ref_for("shapenet", "car", "02958343/1a2b") == "shapenet:car/02958343/1a2b"
    assert data3d.mesh_ref_for("pascal3d", "car", None, 12) == "pascal3d:car/12"
    assert data3d.mesh_ref_for(None, "car") == ":car/"
    assert data3d.parse_mesh_ref("shapenet:car/02958343/1a2b") == ("shapenet", "car", "02958343/1a2b")
    with pytest.raises(AnnotationError, match="mesh reference"):
        data3d.parse_mesh_ref("car01")
    with pytest.raises(AnnotationError, match="image size"):
        _ = obj().cameras


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("field,kw,match", [
    ("viewpoint.azimuth", dict(viewpoint=dict(azimuth=float("nan"), elevation=0, theta=0, distance=5, px=1, py=1)),
     "NaN"),
    ("viewpoint.distance", dict(viewpoint=dict(azimuth=0, elevation=0, theta=0, distance=0.0, px=1, py=1)), "> 0"),
    ("viewpoint.distance", dict(viewpoint=dict(azimuth=0, elevation=0, theta=0, distance=-2.0, px=1, py=1)), "> 0"),
    ("category", dict(category="spaceship_xyz"), "unknown category"),
    ("bbox", dict(bbox=(10, 20, 5, 40)), "out of order"),
    ("bbox", dict(bbox=(1.0, float("inf"), 2.0, 3.0)), "NaN or infinite"),
    ("cad_index", dict(cad_index=0), "1-based"),
    ("visible_fraction", dict(visible_fraction=1.5), r"\[0, 1\]"),
    ("occlusion", dict(occlusion=-1), "level"),
    ("object.extra.score", dict(extra={"score": float("nan")}), "NaN"),
])
def test_object_validation_names_the_field(field, kw, match):
    with pytest.raises(AnnotationError, match=match) as info:
        obj(**kw)
    assert info.value.field == field and field in str(info.value)


def test_record_validation_names_the_file_and_field():
    with pytest.raises(AnnotationError) as info:
        ImageRecord(image_path="/data/x.jpg", image_size=(100, 100), objects=(obj(),),
                    annotation_path="/data/x.mat")
    err = info.value
    assert err.path == "/data/x.mat" and err.field == "objects[0].bbox" and "outside" in str(err)
    assert str(err).startswith("/data/x.mat: field 'objects[0].bbox'")
    with pytest.raises(AnnotationError, match="image_size"):
        ImageRecord(image_path="/data/x.jpg", image_size=(0, 100))
    with pytest.raises(AnnotationError, match=r"objects\[0\]\.image_size"):
        ImageRecord(image_path="x.jpg", image_size=(150, 200), objects=(obj(image_size=(10, 10), bbox=(0, 0, 5, 5)),))
    # within one pixel of rounding slack is fine; farther is not
    ImageRecord(image_path="x.jpg", image_size=(150, 200), objects=(obj(bbox=(-1.2, -1.0, 199.9, 149.5)),))
    with pytest.raises(AnnotationError):
        ImageRecord(image_path="x.jpg", image_size=(150, 200), objects=(obj(bbox=(-3.0, 0, 10, 10)),))


def test_custom_categories_are_registered():
    with pytest.raises(AnnotationError):
        obj(category="teddy_bear_custom")
    data3d.register_categories(["teddy_bear_custom"])
    assert obj(category="teddy_bear_custom").category == "teddy_bear_custom"
    assert "teddy_bear_custom" in data3d.known_categories()


# ----------------------------------------------------------------------------- storage
names = st.sampled_from(["car", "chair", "aeroplane", "cup", "sofa"])
finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def records(draw, folder_images: bool = True):
    n = draw(st.integers(0, 3))
    out = []
    for i in range(n):
        h, w = draw(st.integers(20, 400)), draw(st.integers(20, 400))
        objects = []
        for _ in range(draw(st.integers(0, 3))):
            x1, x2 = sorted(draw(st.floats(0, w - 1, allow_nan=False)) for _ in range(2))
            y1, y2 = sorted(draw(st.floats(0, h - 1, allow_nan=False)) for _ in range(2))
            objects.append(ObjectAnnotation(
                category=draw(names), bbox=(x1, y1, x2, y2),
                viewpoint=Viewpoint(azimuth=draw(finite), elevation=draw(finite), theta=draw(finite),
                                    distance=draw(st.floats(0.01, 100)), focal=draw(st.floats(0.1, 10)),
                                    viewport=draw(st.sampled_from([2000.0, 3000.0])), px=draw(finite) * 30,
                                    py=draw(finite) * 30),
                cad_index=draw(st.none() | st.integers(1, 12)), cad_source=draw(st.none() | st.just("shapenet")),
                cad_id=draw(st.none() | st.text("abc123", min_size=1, max_size=8)),
                occlusion=draw(st.none() | st.integers(0, 3)),
                visible_fraction=draw(st.none() | st.floats(0, 1)),
                truncated=draw(st.none() | st.booleans()), difficult=draw(st.none() | st.booleans()),
                status=draw(st.none() | st.sampled_from(["status_good", "status_barely"])),
                caption=draw(st.none() | st.text(max_size=20)),
                extra=draw(st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-5, 5) | st.text(max_size=4)))))
        out.append(ImageRecord(image_path=f"images/{i:03d}.png", image_size=(h, w), objects=tuple(objects),
                               extra=draw(st.dictionaries(st.just("seed"), st.integers(0, 99)))))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=records(), fmt=st.sampled_from(["npz", "json"]))
def test_save_load_round_trip(tmp_path_factory, recs, fmt):
    folder = tmp_path_factory.mktemp("recs")
    absolute = [r.__class__(image_path=folder / r.image_path, image_size=r.image_size, objects=r.objects,
                            extra=r.extra) for r in recs]
    path = data3d.save_records(absolute, folder, format=fmt)
    assert path.name == f"records-000000.{fmt}"
    loaded = data3d.load_records(folder)
    assert list(loaded) == absolute  # dataclass equality: every field, floats bit-exact


def _simple(folder, n, start=0):
    return [ImageRecord(image_path=folder / "images" / f"{start + i}.png", image_size=(100, 120),
                        objects=(obj(bbox=(1.0, 2.0, 50.0, 60.0), viewpoint=vp(px=40.0, py=30.0)),))
            for i in range(n)]


def test_shards_append_in_order_and_paths_are_portable(tmp_path):
    folder = tmp_path / "run"
    p0 = data3d.save_records(_simple(folder, 2), folder)
    p1 = data3d.save_records(_simple(folder, 3, start=2), folder, format="json")
    p2 = data3d.save_records(_simple(folder, 1, start=5), folder, shard="worker7-0003")
    assert [p0.name, p1.name, p2.name] == ["records-000000.npz", "records-000001.json", "records-worker7-0003.npz"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left
    doc = json.loads(p1.read_text())
    assert doc["format"] == "aware3d.records" and doc["records"][0]["image_path"] == "images/2.png"
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    loaded = data3d.load_records(moved)
    assert [r.image_path.name for r in loaded] == [f"{i}.png" for i in range(6)]
    assert all(r.image_path.parent == moved / "images" for r in loaded)
    one = data3d.load_records(moved / "records-000001.json")
    assert len(one) == 3
    # rewriting a named shard replaces it (a resumed job), nothing is duplicated
    data3d.save_records(_simple(folder, 2, start=5), folder, shard="worker7-0003")
    assert len(data3d.load_records(folder)) == 7
    # an image outside the folder keeps its absolute path
    outside = ImageRecord(image_path=tmp_path / "elsewhere.png", image_size=(100, 120))
    data3d.save_records([outside], folder, format="json", shard="abs")
    assert json.loads((folder / "records-abs.json").read_text())["records"][0]["image_path"] == str(
        tmp_path / "elsewhere.png")
    with pytest.raises(ValueError, match="shard name"):
        data3d.save_records([], folder, shard="../escape")


def test_npz_shard_loads_without_pickle(tmp_path):
    p = data3d.save_records(_simple(tmp_path, 2), tmp_path)
    with np.load(p, allow_pickle=False) as z:
        assert z["viewpoint"].shape == (2, 8) and z["viewpoint"].dtype == np.float64
        assert z["bbox"].shape == (2, 4) and list(z["object_offsets"]) == [0, 1, 2]


def test_malformed_shard_names_the_file(tmp_path):
    (tmp_path / "records-000000.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="records-000000.json"):
        data3d.load_records(tmp_path)
    (tmp_path / "records-000000.json").write_text(json.dumps(
        {"format": "aware3d.records", "version": 1, "records": [
            {"image_path": "a.png", "image_size": [10, 10],
             "objects": [{"category": "car", "bbox": [0, 0, 5, 5],
                          "viewpoint": {"azimuth": 0, "elevation": 0, "theta": 0, "distance": -1, "focal": 1,
                                        "viewport": 3000, "px": 1, "py": 1}}]}]}))
    with pytest.raises(AnnotationError, match=r"objects\[0\]\.viewpoint\.distance"):
        data3d.load_records(tmp_path)
    with pytest.raises(AnnotationError, match="no such folder"):
        data3d.load_records(tmp_path / "missing")


def test_record_list_reports_skips():
    lst = data3d.RecordList([], {"status_bad": 2})
    lst.skipped["distance<=0"] += 1
    assert lst.summary() == "0 images, 0 objects; skipped: distance<=0: 1, status_bad: 2"


def test_path_extras_survive_a_resave_from_a_relative_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = Path("a")
    (src / "masks").mkdir(parents=True)
    (src / "masks" / "m.png").write_bytes(b"png")
    rec = ImageRecord(image_path=str(src / "img.jpg"), image_size=(150, 200), objects=(obj(),),
                      extra={"mask_path": "masks/m.png"})  # relative to the records folder, as datagen writes
    data3d.save_records([rec], src)
    loaded = data3d.load_records("a")  # a folder relative to the working directory
    assert Path(loaded[0].extra["mask_path"]).resolve() == (tmp_path / "a" / "masks" / "m.png").resolve()
    data3d.save_records(loaded, Path("b") / "c")  # another folder: the extra must still point at the file
    again = data3d.load_records(tmp_path / "b" / "c")
    assert Path(again[0].extra["mask_path"]).resolve() == (tmp_path / "a" / "masks" / "m.png").resolve()
