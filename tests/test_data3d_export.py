"""`data3d.export` / `aware3d data export`: COCO, BOP and KITTI files read back by other readers.

- COCO is read by pycocotools (the format's maintained reader): boxes, RLE masks, areas, categories.
- BOP is read by the small reader below, written from the format description
  (thodan/bop_toolkit docs/bop_datasets_format.md: scene_camera/scene_gt/scene_gt_info.json keyed by
  image id, masks IMID_GTID.png, depth × depth_scale = mm, models in mm centred on their 3D box, PLY)
  and bop_toolkit_lib/misc.py calc_2d_bbox (w = x_max − x_min); bop_toolkit_lib is not on PyPI.
  Poses are checked by projecting the exported PLY with BOP's P = K·[R | t] against the original mesh
  projected by geom3d with the record's camera.
- KITTI: the KITTI → viewpoint conversion reproduces real_pose_dev's records from two public KITTI
  label lines (so it is the conversion that made them), and exported labels converted back give the
  records' viewpoints.
Sets: a tiny datagen set, the PASCAL3D+ loader fixtures (realdata: real CADs) and the real car
validation set real_pose_dev (realdata).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import data3d
from aware3d.cli import main as cli_main
from data3d.export import export_records
from data3d.export.kitti import kitti_to_viewpoint

pycocotools_coco = pytest.importorskip("pycocotools.coco", reason="pycocotools (the 'export' extra) is missing")
from pycocotools import mask as coco_mask  # noqa: E402
from test_data3d_fixtures import PASCAL_OBJECTS, build_pascal3d, read_off  # noqa: E402


# ----------------------------------------------------------------------------- sets
@pytest.fixture(scope="module")
def dst(tmp_path_factory):
    """A tiny datagen set: 2 procedural cars, each unoccluded and at occlusion L2, with masks and depth."""
    from datagen.config import load_config
    from datagen.pipeline import generate

    folder = tmp_path_factory.mktemp("dst") / "ds"
    cfg = load_config({"seed": 3, "image_size": 64, "samples_per_category": 2, "occlusion": ["none", "L2"],
                       "assets": [{"type": "procedural", "categories": ["car"], "count": 1}],
                       "render": {"save": ["mask", "depth"], "backend": "raster"}})
    manifest = generate(cfg, folder, progress=False)
    assert manifest["complete"] and manifest["images"] == 4
    return folder


@pytest.fixture(scope="module")
def pascal(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("PASCAL3D+_release1.1")
    build_pascal3d(root, shared_data / "pascal3d_cad")
    recs = data3d.load_pascal3d(root, split="val", strict=True)
    assert len(recs) == len(PASCAL_OBJECTS)
    # one image with two objects whose cameras differ (each PASCAL3D+ object has its own principal point)
    first = recs[0]
    vp = first.objects[0].viewpoint
    other = dataclasses.replace(first.objects[0], viewpoint=dataclasses.replace(vp, px=vp.px - 30.0, azimuth=1.0),
                                bbox=(20.0, 30.0, 90.0, 80.0))
    recs[0] = dataclasses.replace(first, objects=(first.objects[0], other))
    return recs, shared_data / "pascal3d_cad"


@pytest.fixture(scope="module")
def real(shared_data):
    return data3d.load_records(shared_data / "real_pose_dev")


def _mask(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img > 127


def _rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _camera(obj):
    cams = obj.viewpoint.to_cameras(obj.image_size, dtype=torch.float64)
    return cams.K.numpy(), cams.R.numpy(), cams.t.numpy()


def _close(a, b, rel=1e-6):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape and np.all(np.abs(a - b) <= rel * np.maximum(1.0, np.abs(b))), (a, b)


def _no_temporaries(out: Path):
    assert not [p for p in out.rglob(".*") if p.is_file()], "a temporary file was left behind"


# ----------------------------------------------------------------------------- COCO
def _check_coco(out: Path, records, split="train", image_dir: Path | None = None):
    coco = pycocotools_coco.COCO(str(out / "annotations" / f"instances_{split}.json"))
    assert len(coco.getImgIds()) == len(records)
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    for image_id, record in zip(sorted(coco.getImgIds()), records):
        (img,) = coco.loadImgs(image_id)
        assert (img["height"], img["width"]) == record.image_size
        image = (image_dir or out / split) / img["file_name"]
        if image_dir is None or len(records) < 20:
            np.testing.assert_array_equal(_rgb(image), _rgb(record.image_path))
        else:
            assert image.resolve() == record.image_path.resolve()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert len(anns) == len(record.objects)
        for ann, obj in zip(anns, record.objects):
            x, y, w, h = ann["bbox"]
            _close([x, y, x + w - 1, y + h - 1], obj.bbox)
            assert names[ann["category_id"]] == obj.category and ann["iscrowd"] == 0
            K, R, t = _camera(obj)
            _close(ann["camera"]["K"], K, 1e-12)
            _close(ann["camera"]["R"], R, 1e-12)
            _close(ann["camera"]["t"], t, 1e-12)
            assert ann["viewpoint"] == obj.viewpoint.as_dict() and ann["mesh_ref"] == obj.mesh_ref
            decoded = coco.annToMask(ann).astype(bool)
            if "visible_mask_path" in record.extra or "mask_path" in record.extra:
                visible = _mask(record.extra.get("visible_mask_path", record.extra["mask_path"]))
                np.testing.assert_array_equal(decoded, visible)
                assert ann["area"] == visible.sum() == coco_mask.area(ann["segmentation"])
                assert ann["visible_fraction"] == pytest.approx(visible.sum() / _mask(record.extra["mask_path"]).sum())
            else:  # the box as a polygon: pycocotools rasterises it to the box's pixels (to a pixel at the edges)
                assert ann["segmentation_kind"] == "box" and ann["area"] == pytest.approx(w * h)
                ys, xs = np.nonzero(decoded)
                assert np.abs(np.array([xs.min(), ys.min(), xs.max(), ys.max()]) - np.array(obj.bbox)).max() <= 1.0
    return coco


def test_coco_rle_matches_pycocotools_encoder():
    from data3d.export.coco import rle_encode

    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 5), (64, 48), (3, 200)]:
        for density in (0.0, 0.1, 0.5, 1.0):
            m = rng.random(shape) < density
            ours = rle_encode(m)
            theirs = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
            assert ours["counts"] == theirs["counts"].decode() and ours["size"] == list(theirs["size"])


def test_coco_datagen_round_trip(dst, tmp_path):
    records = data3d.load_records(dst)
    manifest = export_records(records, tmp_path / "coco", "coco")
    assert manifest["splits"]["train"] == {"images": 4, "objects": 4, "file": "annotations/instances_train.json"}
    assert manifest["skipped"] == {}
    _check_coco(tmp_path / "coco", records)
    _no_temporaries(tmp_path / "coco")


@pytest.mark.realdata
def test_coco_pascal3d_and_real_pose_dev(pascal, real, tmp_path):
    recs, _ = pascal
    export_records({"val": recs}, tmp_path / "p", "coco")
    coco = _check_coco(tmp_path / "p", recs, split="val")
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["aeroplane", "car", "chair"]
    export_records(real, tmp_path / "r", "coco", split="val", images=False)  # file_name: the record's image
    _check_coco(tmp_path / "r", real, split="val", image_dir=Path("/"))
    export_records(real[::40], tmp_path / "r2", "coco", split="val")  # JPEGs copied as they are
    _check_coco(tmp_path / "r2", real[::40], split="val")


# ----------------------------------------------------------------------------- BOP
def _bop_json(path: Path) -> dict:
    with open(path) as fh:
        return {int(k): v for k, v in json.load(fh).items()}


@functools.lru_cache(maxsize=8)
def _read_ply(path: Path) -> np.ndarray:
    """Vertices (N, 3) of an ASCII PLY with x y z first."""
    lines = path.read_text().splitlines()
    n = next(int(line.split()[2]) for line in lines if line.startswith("element vertex"))
    start = lines.index("end_header") + 1
    return np.array([[float(v) for v in line.split()[:3]] for line in lines[start:start + n]])


_checked_models: set[Path] = set()  # models whose info was checked (one check per model file)


def _bop_box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]  # misc.calc_2d_bbox


def _max_distance(points: np.ndarray) -> float:
    """The largest distance between two points, exactly, without a convex hull: a pair can only beat
    a known distance D when both its points lie at least D − r_max from the centroid (the triangle
    inequality), and the pairs among those few points are compared by brute force."""
    c = points.mean(axis=0)
    r = np.linalg.norm(points - c, axis=1)
    far = points[np.argmax(np.linalg.norm(points - points[0], axis=1))]
    lower = np.linalg.norm(points - far, axis=1).max()
    cand = points[r >= lower - r.max() - 1e-9]
    best = lower ** 2
    for i in range(0, len(cand), 256):
        best = max(best, float(((cand[i:i + 256, None, :] - cand[None, :, :]) ** 2).sum(-1).max()))
    return math.sqrt(best)


def _project(K, R, t, points):
    x = points @ R.T + t
    uv = x @ K.T
    return uv[:, :2] / uv[:, 2:]


def _read_bop(out: Path, split: str):
    """[(scene dir, im_id, camera, [(gt, info), ...])] in image order."""
    images = []
    for scene in sorted((out / split).iterdir()):
        cams, gts, infos = (_bop_json(scene / f"scene_{k}.json") for k in ("camera", "gt", "gt_info"))
        assert set(cams) == set(gts) == set(infos)
        for im_id in sorted(cams):
            assert len(gts[im_id]) == len(infos[im_id])
            images.append((scene, im_id, cams[im_id], list(zip(gts[im_id], infos[im_id]))))
    return images


def _check_bop_pose(out: Path, cam, gt, obj, mesh_vertices):
    """BOP's P_m2i = K·[R_m2c | t_m2c] on the exported model = geom3d's projection of the mesh."""
    K = np.array(cam["cam_K"]).reshape(3, 3)
    R = np.array(gt["cam_R_m2c"]).reshape(3, 3)
    t = np.array(gt["cam_t_m2c"])
    Kr, Rr, tr = _camera(obj)
    _close(K, Kr, 1e-12)
    _close(R, Rr, 1e-12)
    objects = json.loads((out / "aware3d_objects.json").read_text())
    entry = objects["objects"][str(gt["obj_id"])]
    assert entry["mesh_ref"] == obj.mesh_ref
    mm = objects["mm_per_unit"]
    _close(t / mm - R @ np.array(entry["centre_offset_mm"]) / mm, tr, 1e-9)
    if mesh_vertices is not None:
        ply_path = out / "models" / f"obj_{gt['obj_id']:06d}.ply"
        ply = _read_ply(ply_path)
        assert ply.shape == mesh_vertices.shape
        cams = obj.viewpoint.to_cameras(obj.image_size, dtype=torch.float64)
        expected = cams.project(torch.from_numpy(mesh_vertices)).numpy()
        _close(_project(K, R, t, ply), expected, 1e-6)
        if ply_path in _checked_models:
            return
        info = json.loads((out / "models" / "models_info.json").read_text())[str(gt["obj_id"])]
        lo, hi = ply.min(axis=0), ply.max(axis=0)
        _close([info["min_x"], info["min_y"], info["min_z"]], lo, 1e-6)
        _close([info["size_x"], info["size_y"], info["size_z"]], hi - lo, 1e-6)
        _close((lo + hi) / 2, [0, 0, 0], 1e-6)  # BOP: the origin is the 3D box's centre (in mm, to 1e-6 mm)
        assert info["diameter"] == pytest.approx(_max_distance(ply), rel=1e-6)
        _checked_models.add(ply_path)


def test_bop_datagen_round_trip(dst, tmp_path):
    from data3d import procedural

    records = data3d.load_records(dst)
    out = tmp_path / "bop"
    manifest = export_records(records, out, "bop", mm_per_unit=250.0)
    assert manifest["models"] == {"written": 1, "missing": []} and manifest["skipped"] == {}
    images = _read_bop(out, "train")
    assert len(images) == len(records)
    for (scene, im_id, cam, entries), record in zip(images, records):
        ((gt, info),) = entries
        obj = record.objects[0]
        cat, seed = obj.extra["asset"].split(":")[1].split("/")
        _check_bop_pose(out, cam, gt, obj, procedural.make(cat, int(seed)).vertices.double().numpy())
        full, visible = _mask(record.extra["mask_path"]), _mask(record.extra.get("visible_mask_path",
                                                                                   record.extra["mask_path"]))
        np.testing.assert_array_equal(_mask(scene / "mask" / f"{im_id:06d}_000000.png"), full)
        np.testing.assert_array_equal(_mask(scene / "mask_visib" / f"{im_id:06d}_000000.png"), visible)
        assert info["bbox_obj"] == _bop_box(full) and info["bbox_visib"] == _bop_box(visible)
        assert (info["px_count_all"], info["px_count_visib"]) == (full.sum(), visible.sum())
        assert info["visib_fract"] == pytest.approx(obj.visible_fraction, rel=1e-12)
        x1, y1, x2, y2 = obj.bbox  # datagen's box is the full silhouette's
        assert info["bbox_obj"] == [x1, y1, x2 - x1, y2 - y1]
        depth_mm = cv2.imread(str(scene / "depth" / f"{im_id:06d}.png"), cv2.IMREAD_UNCHANGED) * cam["depth_scale"]
        ours = cv2.imread(str(record.extra["depth_path"]), cv2.IMREAD_UNCHANGED) * record.extra["depth_scale"]
        _close(depth_mm, ours * 250.0, 1e-9)
        np.testing.assert_array_equal(_rgb(scene / "rgb" / f"{im_id:06d}.png"), _rgb(record.image_path))
    _no_temporaries(out)


@pytest.mark.realdata
def test_bop_pascal3d_models_and_cameras(pascal, tmp_path):
    recs, cad_root = pascal
    out = tmp_path / "bop"
    manifest = export_records({"val": recs}, out, "bop", cad_root=cad_root)
    refs = {o.mesh_ref for r in recs for o in r.objects}
    assert manifest["models"]["written"] == len(refs) and manifest["models"]["missing"] == []
    images = _read_bop(out, "val")
    # the record with two objects whose principal points differ is two BOP images of one picture
    assert len(images) == len(recs) + 1 and manifest["splits"]["val"]["images"] == len(recs) + 1
    objects = [o for r in recs for o in r.objects]
    pairs = [(cam, gt, info) for _, _, cam, entries in images for gt, info in entries]
    assert len(pairs) == len(objects)
    cads = {}
    for (cam, gt, info), obj in zip(pairs, objects):
        path = cad_root / obj.category / f"{obj.cad_index:02d}.off"
        v = cads[path] = cads[path] if path in cads else read_off(path)[0]
        _check_bop_pose(out, cam, gt, obj, v)
        x1, y1, x2, y2 = obj.bbox
        _close(info["bbox_obj"], [x1, y1, x2 - x1, y2 - y1], 1e-12)
        assert info["visib_fract"] == -1.0 and info["px_count_all"] == -1  # no masks: unknown


@pytest.mark.realdata
def test_bop_real_pose_dev(real, tmp_path):
    subset = real[::12]  # every split, a few of each
    out = tmp_path / "bop"
    manifest = export_records(subset, out, "bop", split="val")
    assert manifest["models"]["written"] == 0 and manifest["models"]["missing"] == [":car/"]
    images = _read_bop(out, "val")
    assert len(images) == len(subset)
    for (scene, im_id, cam, ((gt, _),)), record in zip(images, subset):
        _check_bop_pose(out, cam, gt, record.objects[0], None)
        np.testing.assert_array_equal(_rgb(scene / "rgb" / f"{im_id:06d}.png"), _rgb(record.image_path))


# ----------------------------------------------------------------------------- KITTI
# Two public KITTI object labels (training frames 000001 and 000003, label_2) and the P2 of their
# calib files; real_pose_dev's records kitti/000001/1 and kitti/000003/0 were made from them.
KITTI_LABELS = {
    "kitti/000001/1": "Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57",
    "kitti/000003/0": "Car 0.00 0 1.55 614.24 181.78 727.31 284.77 1.57 1.73 4.15 1.00 1.75 13.22 1.62",
}
KITTI_P2 = [[721.5377, 0.0, 609.5593, 44.85728], [0.0, 721.5377, 172.854, 0.2163791], [0.0, 0.0, 1.0, 0.002745884]]
CAD_LENGTH = 0.914  # real_pose_dev: distance = metres × CAD length / the car's length


def _label(line: str) -> dict:
    f = line.split()
    v = [float(x) for x in f[1:15]]
    return {"type": f[0], "truncated": v[0], "occluded": int(v[1]), "alpha": v[2], "bbox": v[3:7],
            "dimensions": v[7:10], "location": v[10:13], "rotation_y": v[13]}


def _calib_P2(path: Path) -> np.ndarray:
    rows = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return np.array([float(x) for x in rows["P2"].split()]).reshape(3, 4)


def _angles_close(a, b, tol):
    for key in ("azimuth", "elevation", "theta"):
        assert abs(math.remainder(a[key] - b[key], 2 * math.pi)) <= tol, (key, a[key], b[key])


@pytest.mark.realdata
def test_kitti_conversion_is_the_one_that_made_real_pose_dev(real):
    by_id = {r.extra["id"]: r.objects[0] for r in real}
    for ident, line in KITTI_LABELS.items():
        lab = _label(line)
        length = lab["dimensions"][2]
        v = kitti_to_viewpoint(lab["location"], lab["dimensions"], lab["rotation_y"], KITTI_P2,
                               metres_per_unit=length / CAD_LENGTH)
        ref = by_id[ident].viewpoint
        _angles_close(v, ref, 1e-12)
        for key in ("distance", "focal", "viewport", "px", "py"):
            assert v[key] == pytest.approx(ref[key], rel=1e-12), key
        assert list(by_id[ident].bbox) == lab["bbox"]


def _check_kitti(out: Path, records, split: str, metres_per_unit: float, skipped: int = 0, images: bool = True):
    """Labels converted back (with the calib's P2) give every exported object's viewpoint."""
    objects = [o for r in records for o in r.objects]
    frames = sorted((out / split / "label_2").glob("*.txt"))
    labels = [(_label(line), _calib_P2(out / split / "calib" / f.name), f.stem)
              for f in frames for line in f.read_text().splitlines()]
    assert len(labels) == len(objects) - skipped
    by_box = {tuple(np.round(o.bbox, 4)): o for o in objects}
    for lab, P2, stem in labels:
        obj = by_box[tuple(np.round(lab["bbox"], 4))]
        h = lab["dimensions"][0]
        dims = lab["dimensions"] if h > 0 else [0.0, 0.0, 0.0]  # unknown size: location is the centre
        v = kitti_to_viewpoint(lab["location"], dims, lab["rotation_y"], P2, metres_per_unit=metres_per_unit)
        _angles_close(v, obj.viewpoint, 1e-4)
        for key in ("distance", "px", "py"):
            assert v[key] == pytest.approx(obj.viewpoint[key], rel=1e-6, abs=1e-6), key
        assert v.focal_pixels == pytest.approx(obj.viewpoint.focal_pixels, rel=1e-9)
        x = lab["location"]
        assert lab["alpha"] == pytest.approx(math.remainder(lab["rotation_y"] - math.atan2(x[0], x[2]), 2 * math.pi),
                                             abs=1e-6)
        assert lab["type"] == obj.category.capitalize()
        if images:
            assert _rgb(out / split / "image_2" / f"{stem}.png").shape[:2] == obj.image_size
    return labels


@pytest.mark.realdata
def test_kitti_real_pose_dev_round_trip(real, tmp_path):
    out = tmp_path / "kitti"
    manifest = export_records(real, out, "kitti", split="training", metres_per_unit=4.2 / CAD_LENGTH, images=False)
    skipped = sum(manifest["skipped"].values())
    assert set(manifest["skipped"]) <= {"kitti_ray_angle", "kitti_no_upright_pose"}
    labels = _check_kitti(out, real, "training", 4.2 / CAD_LENGTH, skipped, images=False)
    assert not (out / "training" / "image_2").exists()
    # the frames' camera comes back: KITTI's P2 principal point for the KITTI records
    kitti_frames = [P2 for lab, P2, _ in labels if P2[0, 0] == pytest.approx(721.5377)]
    assert len(kitti_frames) >= 100
    for P2 in kitti_frames:
        _close(P2[:, :3], np.array(KITTI_P2)[:, :3], 1e-9)
    _no_temporaries(out)
    few = real[::30]
    manifest = export_records(few, tmp_path / "few", "kitti", metres_per_unit=4.2 / CAD_LENGTH)
    _check_kitti(tmp_path / "few", few, "train", 4.2 / CAD_LENGTH, sum(manifest["skipped"].values()))


def test_kitti_datagen_round_trip(dst, tmp_path):
    records = data3d.load_records(dst)
    manifest = export_records(records, tmp_path / "k", "kitti", metres_per_unit=4.0,
                              max_ray_angle=math.radians(89.0))
    assert manifest["skipped"] == {}
    labels = _check_kitti(tmp_path / "k", records, "train", 4.0)
    for (lab, _, _), record in zip(labels, records):
        lo, hi = (np.array(b) for b in record.objects[0].extra["mesh_bounds"])
        _close(lab["dimensions"], 4.0 * np.array([hi[2] - lo[2], hi[0] - lo[0], hi[1] - lo[1]]), 1e-6)
        assert lab["occluded"] == min(record.objects[0].occlusion, 2)
    strict = export_records(records, tmp_path / "k2", "kitti", max_ray_angle=math.radians(1.0))
    assert strict["skipped"] == {"kitti_ray_angle": len(records)}  # a policy skip, counted, never an error


@pytest.mark.realdata
def test_kitti_pascal3d_round_trip(pascal, tmp_path):
    recs, cad_root = pascal
    manifest = export_records({"val": recs}, tmp_path / "k", "kitti", cad_root=cad_root,
                              max_ray_angle=math.radians(89.0))
    # the aeroplane (in-plane rotation 15°) and its copy have no upright camera: counted, not written
    assert manifest["skipped"] == {"kitti_no_upright_pose": 2}
    labels = _check_kitti(tmp_path / "k", recs, "val", 1.0, skipped=2)
    for lab, _, _ in labels:  # KITTI's (h, w, l) = the CAD's z, x, y extents (PASCAL3D+ CADs are centred)
        obj = next(o for r in recs for o in r.objects if np.allclose(o.bbox, lab["bbox"], atol=1e-4))
        v, _ = read_off(cad_root / obj.category / f"{obj.cad_index:02d}.off")
        size = 2 * np.abs(v).max(axis=0)
        _close(lab["dimensions"], [size[2], size[0], size[1]], 1e-6)


# ----------------------------------------------------------------------------- bad input, CLI
def _broken_copy(dst: Path, tmp_path: Path) -> tuple[Path, list]:
    records = data3d.load_records(dst)
    bad_mask = tmp_path / "bad_mask.png"
    bad_mask.write_bytes(b"not a png")
    broken = [dataclasses.replace(records[0], image_path=tmp_path / "missing.png"),
              dataclasses.replace(records[1], extra={**records[1].extra, "mask_path": str(bad_mask)}),
              *records[2:]]
    return bad_mask, broken


@pytest.mark.parametrize("fmt", ["coco", "bop", "kitti"])
def test_bad_records_are_skipped_and_counted_or_named(dst, tmp_path, fmt):
    bad_mask, broken = _broken_copy(dst, tmp_path)
    manifest = export_records(broken, tmp_path / "out", fmt, max_ray_angle=math.radians(89.0))
    expected = 1 if fmt == "kitti" else 2  # KITTI reads no masks
    assert manifest["skipped"] == {"bad_record": expected}
    assert any("missing.png" in p for p in manifest["problems"])
    written = json.loads((tmp_path / "out" / "export_manifest.json").read_text())
    assert written["skipped"] == {"bad_record": expected}
    assert manifest["splits"]["train"]["images"] == len(broken) - expected
    _no_temporaries(tmp_path / "out")
    with pytest.raises(data3d.AnnotationError, match="missing.png"):
        export_records(broken, tmp_path / "strict", fmt, strict=True)
    if fmt != "kitti":
        with pytest.raises(data3d.AnnotationError, match="bad_mask.png"):
            export_records(broken[1:], tmp_path / "strict2", fmt, strict=True)


def test_export_needs_a_new_or_empty_folder(dst, tmp_path):
    records = data3d.load_records(dst)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.json").write_text("{}")
    with pytest.raises(ValueError, match="used: the export folder is not empty"):
        export_records(records, tmp_path / "used", "coco")
    with pytest.raises(ValueError, match="format must be one of coco, bop, kitti"):
        export_records(records, tmp_path / "new", "yolo")


@pytest.mark.realdata
@pytest.mark.parametrize("fmt", ["bop", "kitti"])
def test_unreadable_cad_is_counted_and_named(pascal, tmp_path, fmt):
    recs, _ = pascal
    recs = [r for r in recs if r.objects[0].category == "chair"]  # one small CAD keeps the test fast
    broken = tmp_path / "CAD"
    (broken / "chair").mkdir(parents=True)
    (broken / "chair" / "04.off").write_text("OFF\n3 1 0\n0 0 0\n")  # truncated
    manifest = export_records({"val": recs}, tmp_path / "out", fmt, cad_root=broken, max_ray_angle=math.radians(89))
    assert manifest["skipped"]["unreadable_model"] == 1
    assert any("pascal3d:chair/04" in p for p in manifest["problems"])
    if fmt == "bop":
        assert manifest["models"]["missing"] == ["pascal3d:chair/04"]
    with pytest.raises(data3d.AnnotationError, match="chair/04"):
        export_records({"val": recs}, tmp_path / "strict", fmt, cad_root=broken, strict=True,
                       max_ray_angle=math.radians(89))


def test_cli_export(dst, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["data", "export", "--format", "coco", "--in", str(dst), "--out", str(out),
                     "--split-name", "synthetic"]) == 0
    text = capsys.readouterr().out
    assert "synthetic: 4 images, 4 objects" in text and "skipped: none" in text
    assert (out / "annotations" / "instances_synthetic.json").is_file()
    assert cli_main(["data", "export", "--format", "bop", str(dst), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "models" / "models_info.json").is_file()
    assert cli_main(["data", "export", "--format", "kitti", "--in", str(tmp_path / "nope"), "--out",
                     str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and "no such folder" in err
    assert cli_main(["data", "export", "--format", "coco", str(dst), "--in", str(dst), "--out", str(out)]) == 2
    with pytest.raises(SystemExit):
        cli_main(["data", "export", "--format", "yolo", str(dst), "--out", str(out)])
