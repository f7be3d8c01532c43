"""Loaders on fixture trees written in each release's published layout, with the real CAD models.

The fixtures (test_data3d_fixtures.py) compute every stored bbox with the toolbox's own projection
formula in MATLAB 1-based pixels (or the ImageNet3D/NeMo preprocessing arithmetic); here the CAD
model is projected with the camera the loader built, and the two must agree.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from test_data3d_fixtures import (
    IMAGENET3D_OBJECTS,
    PASCAL_OBJECTS,
    box_of,
    build_imagenet3d,
    build_imagenet3d_preprocessed,
    build_nemo,
    build_objectnet3d,
    build_occluded,
    build_pascal3d,
    imagenet3d_object,
    imagenet3d_preprocess,
    iou,
    read_off,
    write_image,
)

import data3d
from data3d import AnnotationError

pytestmark = pytest.mark.realdata


def projected_box(obj, cad_root) -> np.ndarray:
    v, _ = read_off(cad_root / obj.category / f"{obj.cad_index:02d}.off")
    cams = obj.viewpoint.to_cameras(obj.image_size, torch.float64)
    return box_of(cams.project(torch.tensor(v)).numpy())


@pytest.fixture(scope="module")
def pascal(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("PASCAL3D+_release1.1")
    return root, build_pascal3d(root, shared_data / "pascal3d_cad"), shared_data / "pascal3d_cad"


# ----------------------------------------------------------------------------- PASCAL3D+ raw
def test_pascal3d_raw_every_field(pascal):
    root, expected, cad = pascal
    recs = data3d.load_pascal3d(root, split="val", subset="imagenet", strict=True)
    assert sorted(r.image_path.stem for r in recs) == sorted(o[0] for o in PASCAL_OBJECTS)
    # per image: one fine annotation kept, one coarse-only (distance 0) skipped, the person ignored
    assert dict(recs.skipped) == {"distance<=0": len(PASCAL_OBJECTS)}
    for r in recs:
        e = expected[r.image_path.stem]
        assert r.image_size == e["size"] and r.annotation_path.suffix == ".mat" and r.image_path.is_file()
        (o,) = r.objects
        v = o.viewpoint
        assert o.category == e["category"] and o.cad_index == e["cad_index"] and o.cad_source == "pascal3d"
        assert math.isclose(v.azimuth, math.radians(e["azimuth"]) % (2 * math.pi), abs_tol=1e-12)
        assert math.isclose(v.elevation, math.radians(e["elevation"]), abs_tol=1e-12)
        assert math.isclose(v.theta, math.radians(e["theta"]), abs_tol=1e-12)
        assert (v.distance, v.focal, v.viewport) == (e["distance"], 1.0, 2000.0)
        assert (v.px, v.py) == (e["px"] - 1, e["py"] - 1)  # MATLAB 1-based -> 0-based
        np.testing.assert_allclose(o.bbox, e["bbox_matlab"] - 1, atol=1e-9)
        assert (o.occlusion, o.truncated, o.difficult) == (1, False, False) and o.extra == {"view": "Frontal"}
        assert iou(projected_box(o, cad), o.bbox) >= 0.95


def test_pascal3d_pascal_subset_and_category_filter(pascal):
    root, expected, cad = pascal
    recs = data3d.load_pascal3d(root, split="val", subset="pascal", categories=["car"], strict=True)
    assert [r.image_path.name for r in recs] == ["2008_000027.jpg"]  # the -1 line is not in the split
    o = recs[0].objects[0]
    assert o.truncated is True and recs[0].image_size == (375, 500)
    assert iou(projected_box(o, cad), o.bbox) >= 0.95
    only_chairs = data3d.load_pascal3d(root, split="val", categories=["chair"])
    assert {o.category for r in only_chairs for o in r.objects} == {"chair"}
    everything = data3d.load_pascal3d(root, split=None, subset="all")
    assert len(everything) == len(PASCAL_OBJECTS) + 1
    with pytest.raises(ValueError, match="not PASCAL3D"):
        data3d.load_pascal3d(root, categories=["cup"])


def test_pascal3d_bad_annotation_is_named_or_counted(pascal, tmp_path):
    root, _, _ = pascal
    broken = tmp_path / "P"
    (broken / "Annotations" / "car_imagenet").mkdir(parents=True)
    (broken / "Annotations" / "car_imagenet" / "bad.mat").write_bytes(b"not a mat file")
    write_image(broken / "Images" / "car_imagenet" / "bad.JPEG", (20, 20))
    with pytest.raises(AnnotationError, match="bad.mat"):
        data3d.load_pascal3d(broken, split=None, strict=True)
    recs = data3d.load_pascal3d(broken, split=None)
    assert len(recs) == 0 and recs.skipped["bad_annotation"] == 1


def test_occluded_pascal3d(pascal, tmp_path):
    root, expected, cad = pascal
    occ = tmp_path / "OccludedPASCAL3D"
    cars = [o[0] for o in PASCAL_OBJECTS if o[1] == "car"]
    build_occluded(occ, root, 2, cars[:1])
    recs = data3d.load_pascal3d(root, split="val", categories=["car"], occluded_root=occ, occlusion=2, strict=True)
    assert [r.image_path.parent.name for r in recs] == ["carFGL2_BGL2"]
    o = recs[0].objects[0]
    assert o.occlusion == 2 and o.extra["occluded_flag"] == 1
    assert o.visible_fraction == pytest.approx(0.5, abs=0.01)  # the occluder covers half the object mask
    assert recs.skipped["not_in_occluded_set"] == len(cars) - 1
    with pytest.raises(ValueError, match="occluded_root"):
        data3d.load_pascal3d(root, occlusion=1)
    assert data3d.occlusion_folder_suffix("L3") == "FGL3_BGL3"
    assert data3d.occlusion_folder_suffix(0) == ""


# ----------------------------------------------------------------------------- NeMo layout
@pytest.mark.parametrize("occlusion,suffix", [(None, ""), (1, "FGL1_BGL1")])
def test_pascal3d_nemo(tmp_path, shared_data, occlusion, suffix):
    cad = shared_data / "pascal3d_cad"
    expected = build_nemo(tmp_path, cad, occ_suffix=suffix)
    recs = data3d.load_pascal3d_nemo(tmp_path, occlusion=occlusion, strict=True)
    assert len(recs) == len(PASCAL_OBJECTS) and not recs.skipped
    for r in recs:
        e = expected[r.image_path.stem]
        (o,) = r.objects
        assert r.image_size == e["size"] and o.cad_index == e["cad_index"] and o.occlusion == (occlusion or 0)
        assert math.isclose(o.viewpoint.elevation, math.radians(e["elevation"]), abs_tol=1e-12)
        # NeMo's convention: the crop shows the object as at distance 5 with focal·viewport 3000 ...
        assert o.viewpoint.focal_pixels / o.viewpoint.distance == pytest.approx(2000.0 / 5.0, rel=1e-12)
        # ... and the camera built from the npz projects the CAD model onto NeMo's own object box
        bo = e["box_obj"]  # [y0 y1 x0 x1 h w], half-open pixel ranges
        nemo_box = [bo[2], bo[0], bo[3] - 1, bo[1] - 1]
        assert iou(projected_box(o, cad), nemo_box) >= 0.95
        assert iou(projected_box(o, cad), o.bbox) >= 0.95


# ----------------------------------------------------------------------------- ObjectNet3D
def test_objectnet3d(tmp_path, shared_data):
    cad = shared_data / "imagenet3d_cad"
    expected = build_objectnet3d(tmp_path, cad)
    recs = data3d.load_objectnet3d(tmp_path, split="val", strict=True)
    assert sum(len(r.objects) for r in recs) == 3
    for r in recs:
        for o in r.objects:
            e = expected[(r.image_path.stem, o.category)]
            assert r.image_size == e["size"] and o.cad_index == e["cad_index"] and o.cad_source == "objectnet3d"
            assert o.viewpoint.viewport == 3000.0 and (o.viewpoint.px, o.viewpoint.py) == (e["px"] - 1, e["py"] - 1)
            np.testing.assert_allclose(o.bbox, e["bbox_matlab"] - 1, atol=1e-9)
            assert iou(projected_box(o, cad), o.bbox) >= 0.95
    laptops = data3d.load_objectnet3d(tmp_path, split="val", categories=["laptop"])
    assert [o.category for r in laptops for o in r.objects] == ["laptop"]
    assert data3d.cad_path(cad, "cup", 6) == cad / "cup" / "06.off"
    with pytest.raises(ValueError, match="not ObjectNet3D"):
        data3d.load_objectnet3d(tmp_path, categories=["unicorn"])


# ----------------------------------------------------------------------------- ImageNet3D
@pytest.mark.parametrize("flat", [False, True])
def test_imagenet3d_release(tmp_path, shared_data, flat):
    cad = shared_data / "imagenet3d_cad"
    expected = build_imagenet3d(tmp_path, cad, flat=flat)
    recs = data3d.load_imagenet3d(tmp_path, split=None if flat else "val", strict=True)
    # per image: status_bad and distance 0 objects are skipped and counted
    assert dict(recs.skipped) == {"status_bad": 2, "distance<=0": 2}
    assert len(recs) == len(IMAGENET3D_OBJECTS)
    for r in recs:
        e = expected[r.image_path.stem]
        (o,) = r.objects
        v = o.viewpoint
        assert r.image_size == e["size"] and o.category == e["category"] and o.cad_index == e["cad_index"]
        assert math.isclose(v.azimuth, e["azimuth"]) and math.isclose(v.elevation, e["elevation"])
        assert math.isclose(v.theta, math.remainder(e["theta"], 2 * math.pi), abs_tol=1e-12)
        assert (v.px, v.py, v.distance, v.viewport) == (e["px"], e["py"], e["distance"], 2000.0)
        assert o.status == "status_good" and o.extra == {"dense": "dense_no"} and o.cad_source == "imagenet3d"
        np.testing.assert_allclose(o.bbox, e["bbox"])
        assert iou(projected_box(o, cad), o.bbox) >= 0.95


def test_imagenet3d_bad_values_name_file_and_field(tmp_path, shared_data):
    w, h = 50, 40
    a = imagenet3d_object("bed", 1, float("nan"), 0.1, 0.0, 5.0, 20.0, 20.0, [1, 1, 30, 30], w, h)
    arr = np.empty(1, dtype=object)
    arr[:] = [a]
    (tmp_path / "annotations" / "bed").mkdir(parents=True)
    np.savez(tmp_path / "annotations" / "bed" / "x.npz", annotations=arr)
    write_image(tmp_path / "images" / "bed" / "x.JPEG", (w, h))
    with pytest.raises(AnnotationError) as info:
        data3d.load_imagenet3d(tmp_path, split=None, strict=True)
    assert info.value.path.endswith("x.npz") and info.value.field == "annotations[0].azimuth"
    assert data3d.load_imagenet3d(tmp_path, split=None).skipped == {"bad_annotation": 1}


def test_imagenet3d_older_ignore_flag(tmp_path):
    objs = [imagenet3d_object("bed", 1, 0.1, 0.1, 0.0, 5.0, 20.0, 20.0, [1, 1, 30, 30], 50, 40) for _ in range(2)]
    for o, ignore in zip(objs, (0, 1)):
        del o["object_status"]
        o["ignore"] = ignore
    arr = np.empty(2, dtype=object)
    arr[:] = objs
    (tmp_path / "bed").mkdir()
    np.savez(tmp_path / "bed" / "y.npz", annotations=arr)
    write_image(tmp_path / "bed" / "y.JPEG", (50, 40))
    recs = data3d.load_imagenet3d(tmp_path, split=None, strict=True)
    assert len(recs[0].objects) == 1 and recs.skipped == {"ignore": 1} and recs[0].objects[0].status is None


@pytest.mark.parametrize("layout", ["exp", "toolkit"])
def test_imagenet3d_preprocessed_fixes_the_padding_bug(tmp_path, shared_data, layout):
    cad = shared_data / "imagenet3d_cad"
    expected = build_imagenet3d_preprocessed(tmp_path, cad, layout=layout)
    recs = data3d.load_imagenet3d(tmp_path, split="val", strict=True)
    assert len(recs) == len(IMAGENET3D_OBJECTS)
    for r in recs:
        e = expected[r.image_path.stem]
        p = e["params"]
        (o,) = r.objects
        assert r.image_size == (512, 512) and o.cad_index == e["cad"] and o.category == e["category"]
        assert p["padding_params"][0] > 0 and p["padding_params"][1] == 0  # top padding only
        # the toolkit's own y2 (shifted by the bottom padding) misses the object ...
        proj = projected_box(o, cad)
        assert iou(proj, p["bbox"]) < 0.8
        # ... ours matches the projection, and the object box mapped by hand through resize/pad/crop
        r_, pad, crop = p["resize_rate"], p["padding_params"], p["cropping_params"]
        b = np.asarray(p["bbox_original"])
        by_hand = [r_ * (b[0] + 0.5) - 0.5 + pad[2] - crop[2], r_ * (b[1] + 0.5) - 0.5 + pad[0] - crop[0],
                   r_ * (b[2] + 0.5) - 0.5 + pad[2] - crop[2], r_ * (b[3] + 0.5) - 0.5 + pad[0] - crop[0]]
        assert iou(by_hand, o.bbox) >= 0.999 and iou(proj, o.bbox) >= 0.95


def test_imagenet3d_preprocessed_image_content_matches_the_camera(tmp_path, shared_data):
    """Paint the object's box into the original image, run the toolkit's preprocessing, and find the
    painted region in the crop where the loaded record says the object is."""
    name, cat, cad, az, el, th, d, px, py, w, h = IMAGENET3D_OBJECTS[1]
    v, _ = read_off(shared_data / "imagenet3d_cad" / cat / f"{cad:02d}.off")
    from test_data3d_fixtures import imagenet3d_project

    bbox, _ = imagenet3d_project(shared_data / "imagenet3d_cad" / cat / f"{cad:02d}.off", az, el, th, d, px, py)
    img = np.zeros((h, w, 3), dtype=np.uint8)
    x1, y1, x2, y2 = np.round(bbox).astype(int)
    img[y1:y2 + 1, x1:x2 + 1] = 255
    annot = imagenet3d_object(cat, cad, az, el, th, d, px, py, bbox, w, h)
    crop, params = imagenet3d_preprocess(img, annot)
    base = tmp_path / "val"
    for k in ("images", "annotations", "lists"):
        (base / k / cat).mkdir(parents=True)
    Image.fromarray(crop).save(base / "images" / cat / "s_00.png")
    params["name"], params["class"] = "s_00", cat
    np.savez(base / "annotations" / cat / "s_00", **params)
    (base / "lists" / cat / "mesh01.txt").write_text("s_00")
    (rec,) = data3d.load_imagenet3d(tmp_path, split="val", strict=True)
    ys, xs = np.nonzero(np.asarray(Image.open(rec.image_path))[..., 0] > 127)
    assert iou([xs.min(), ys.min(), xs.max(), ys.max()], rec.objects[0].bbox) >= 0.95


# ----------------------------------------------------------------------------- categories and bins
def test_category_lists():
    assert len(data3d.PASCAL3D_CATEGORIES) == 12
    assert len(data3d.OBJECTNET3D_CATEGORIES) == 100 == len(set(data3d.OBJECTNET3D_CATEGORIES))
    assert len(data3d.IMAGENET3D_KNOWN_CATEGORIES) == 63
    assert len(data3d.IMAGENET3D_TOOLKIT_CATEGORIES) == 187 == len(set(data3d.IMAGENET3D_TOOLKIT_CATEGORIES))
    assert len(data3d.IMAGENET3D_EXP_CATEGORIES) == 126
    assert set(data3d.PASCAL3D_CATEGORIES) <= set(data3d.OBJECTNET3D_CATEGORIES) | {"diningtable", "motorbike",
                                                                                   "sofa", "train"}
    raw = data3d.IMAGENET3D_OPEN_POSE_SPLIT
    assert set(raw["train"]) & set(raw["val"]) == {"hair_dryer"}  # as published
    split = data3d.open_pose_split()
    assert not set(split["train"]) & set(split["val"]) and len(split["val"]) == len(raw["val"]) - 1


def toolkit_bin(value, n=40):
    """imagenet3d_exp's continuous_to_bin (periodic, [0, 2π]) written out."""
    z = (value - 0.0) / (2 * np.pi - 0.0) % 1.0
    return int(np.floor(z * n)) % n


def test_angle_bins_match_the_toolkit_and_round_trip():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-7, 14, 500), [0.0, 2 * np.pi, -1e-12, np.pi, -np.pi / 2]])
    ours = data3d.angle_to_bin(values)
    assert ours.dtype == np.int64 and ours.min() >= 0 and ours.max() <= 39
    assert [int(b) for b in ours] == [toolkit_bin(v) for v in values]
    assert [data3d.angle_to_bin(float(v)) for v in values[:20]] == [toolkit_bin(v) for v in values[:20]]
    t = data3d.angle_to_bin(torch.tensor(values))
    assert t.dtype == torch.int64 and t.tolist() == ours.tolist()
    bins = np.arange(40)
    np.testing.assert_array_equal(data3d.angle_to_bin(data3d.bin_to_angle(bins)), bins)
    err = np.abs(np.remainder(data3d.bin_to_angle(ours) - values + np.pi, 2 * np.pi) - np.pi)
    assert err.max() <= np.pi / 40 + 1e-12
    assert data3d.angle_to_bin(-0.1) == 39  # negative elevations land in the top bins
    vp = data3d.bins_to_viewpoint((0, 39, 20))
    assert vp["elevation"] < 0 and data3d.viewpoint_to_bins(vp) == (0, 39, 20)
    assert data3d.angle_to_bin(np.array([-1.0, 7.0]), border="clamp").tolist() == [0, 39]


def test_nemo_crop_uses_nemos_resize_rate_to_the_pixel(tmp_path):
    # distance 0.7: d/5 = 0.13999999999999999 but NeMo's float(200·d/1000) = 0.14, so int(W·r) and
    # int(px·r) differ by one. Hand-derived with r = 0.14, W = 500, H = 400, MATLAB principal (300, 200),
    # a 64 × 64 crop: rescaled size (70, 56), crop origin (int(42.0) − 32, int(28.0) − 32) = (10, −4),
    # px = (70/500)·(300 − 1 + ½) − ½ − 10 = 31.43, py = (56/400)·(200 − 1 + ½) − ½ + 4 = 31.43.
    assert 0.7 / 5 != 0.14 and data3d.pascal3d.nemo_resize_rate(0.7) == 0.14
    for sub in ("images", "annotations", "lists"):
        (tmp_path / sub / "car").mkdir(parents=True)
    write_image(tmp_path / "images" / "car" / "n1.JPEG", (64, 64))
    np.savez(tmp_path / "annotations" / "car" / "n1.npz", name="n1", box=np.array([0, 64, 0, 64, 400, 500.0]),
             azimuth=0.5, elevation=0.1, theta=0.0, distance=0.7, focal=1.0, viewport=3000.0,
             principal=np.array([300.0, 200.0]), height=400, width=500, cad_index=1,
             bbox=np.array([250.0, 150.0, 350.0, 250.0]))
    (tmp_path / "lists" / "car" / "mesh01.txt").write_text("n1.JPEG\n")
    (rec,) = data3d.load_pascal3d_nemo(tmp_path, categories=["car"], strict=True)
    vp = rec.objects[0].viewpoint
    assert vp.px == pytest.approx(31.43, abs=1e-9) and vp.py == pytest.approx(31.43, abs=1e-9)
    assert vp.focal == pytest.approx(0.14, rel=1e-15) and rec.objects[0].extra["rescale"] == 0.14
    # the bbox follows the same map: (70/500)·(250 − ½) − ½ − 10 = 24.43
    assert rec.objects[0].bbox[0] == pytest.approx(24.43, abs=1e-9)
