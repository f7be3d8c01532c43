"""Fixture trees in the published release layouts for the data3d loader tests, and their self-checks.

Everything here is written independently of data3d and geom3d: the PASCAL3D+ projection is the
MATLAB toolbox's formula (project_3d.m) in MATLAB's 1-based pixel coordinates, the .mat files are
written with scipy.io.savemat in PASCAL3D+'s `record` structure, the ImageNet3D npz files hold an
object array of per-object dicts, and NeMo's / ImageNet3D's preprocessing arithmetic is re-derived
from their published code (integer truncations included).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# ----------------------------------------------------------------------------- reference formulas


def read_off(path) -> tuple[np.ndarray, np.ndarray]:
    """A minimal OFF reader (vertices (V, 3), triangles (F, 3)); independent of trimesh."""
    tokens = Path(path).read_text().split()
    assert tokens[0].upper() == "OFF"
    nv, nf = int(tokens[1]), int(tokens[2])
    v = np.array(tokens[4:4 + 3 * nv], dtype=np.float64).reshape(nv, 3)
    rest, faces, i = tokens[4 + 3 * nv:], [], 0
    for _ in range(nf):
        k = int(rest[i])
        idx = [int(t) for t in rest[i + 1:i + 1 + k]]
        faces += [[idx[0], idx[j], idx[j + 1]] for j in range(1, k - 1)]
        i += 1 + k
    return v, np.array(faces, dtype=np.int64)


def matlab_project(x3d, azimuth_deg, elevation_deg, theta_deg, distance, focal, px, py, viewport):
    """PASCAL3D+ / ObjectNet3D toolbox projection (project_3d.m), MATLAB 1-based pixels: (N, 2)."""
    a, e, th = (math.radians(v) for v in (azimuth_deg, elevation_deg, theta_deg))
    C = np.array([distance * math.cos(e) * math.sin(a), -distance * math.cos(e) * math.cos(a),
                  distance * math.sin(e)])
    a, e = -a, -(math.pi / 2 - e)
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
    Rx = np.array([[1.0, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    R = Rx @ Rz
    M = viewport
    P = np.diag([M * focal, M * focal, -1.0]) @ np.hstack([R, (-R @ C)[:, None]])
    x = P @ np.hstack([x3d, np.ones((len(x3d), 1))]).T
    x = x[:2] / x[2:3]
    R2d = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    x = (R2d @ x).T
    x[:, 1] = -x[:, 1]
    return x + np.array([px, py])


def box_of(points) -> np.ndarray:
    return np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()])


def iou(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


# ----------------------------------------------------------------------------- MATLAB record files


def _object_array(objects: list[dict]) -> np.ndarray:
    """A MATLAB struct array (1, N) from dicts that share their keys."""
    keys = list(objects[0])
    arr = np.zeros((1, len(objects)), dtype=[(k, object) for k in keys])
    for i, o in enumerate(objects):
        for k in keys:
            arr[0, i][k] = o[k]
    return arr


def mat_viewpoint(azimuth, elevation, theta, distance, px, py, focal=1.0, viewport=2000.0):
    """A PASCAL3D+ viewpoint struct (degrees; MATLAB pixels)."""
    return {"azimuth_coarse": float(round(azimuth / 15.0) * 15.0 % 360), "elevation_coarse": float(round(elevation)),
            "azimuth": float(azimuth), "elevation": float(elevation), "distance": float(distance),
            "focal": float(focal), "px": float(px), "py": float(py), "theta": float(theta), "error": 0.0,
            "interval_azimuth": 0.0, "interval_elevation": 0.0, "num_anchor": 10.0, "viewport": float(viewport)}


def write_record_mat(path: Path, filename: str, size_wh, objects: list[dict]) -> None:
    """A PASCAL3D+-style annotation: record.filename, record.imgsize = [W H 3], record.objects."""
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"filename": filename, "folder": "fixture", "source": {"database": "fixture"},
              "imgsize": np.array([size_wh[0], size_wh[1], 3], dtype=np.float64), "database": "fixture",
              "segmented": 0.0, "objects": _object_array(objects)}
    savemat(str(path), {"record": record})


def mat_object(cls, bbox_matlab, viewpoint, cad_index, truncated=0, occluded=0, difficult=0):
    return {"class": cls, "view": "Frontal", "bbox": np.asarray(bbox_matlab, dtype=np.float64),
            "bndbox": {"xmin": float(bbox_matlab[0]), "ymin": float(bbox_matlab[1]), "xmax": float(bbox_matlab[2]),
                       "ymax": float(bbox_matlab[3])},
            "orglabel": 1.0, "truncated": float(truncated), "occluded": float(occluded),
            "difficult": float(difficult), "cad_index": float(cad_index),
            "viewpoint": viewpoint if viewpoint is not None else np.zeros((0, 0))}


def write_image(path: Path, size_wh, color=(40, 80, 120)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((size_wh[1], size_wh[0], 3), dtype=np.uint8)
    img[:] = color
    Image.fromarray(img).save(path)


def projected_object(cad_file, azimuth, elevation, theta, distance, px, py, viewport=2000.0, focal=1.0):
    """(MATLAB-pixel bbox, vertices) of a CAD model seen from a viewpoint (degrees, MATLAB pixels)."""
    v, _ = read_off(cad_file)
    pts = matlab_project(v, azimuth, elevation, theta, distance, focal, px, py, viewport)
    return box_of(pts), v


# ----------------------------------------------------------------------------- PASCAL3D+ release

# (image name, category, cad index, azimuth°, elevation°, theta°, distance, px, py, image W, H)
PASCAL_OBJECTS = [
    ("n02958343_1", "car", 1, 30.0, 12.0, -4.0, 5.5, 211.0, 160.0, 420, 320),
    ("n02958343_2", "car", 3, 200.0, 25.0, 8.0, 7.0, 150.0, 121.0, 300, 240),
    ("n03001627_1", "chair", 4, 310.0, 18.0, 2.0, 9.0, 160.0, 150.0, 320, 300),
    ("n02691156_1", "aeroplane", 1, 95.0, 8.0, 15.0, 6.0, 240.0, 130.0, 480, 260),
]


def build_pascal3d(root: Path, cad_root: Path) -> dict:
    """A PASCAL3D+ release tree; returns {name: expected values} for the checks."""
    expected = {}
    for name, cat, cad, az, el, th, d, px, py, w, h in PASCAL_OBJECTS:
        bbox, _ = projected_object(cad_root / cat / f"{cad:02d}.off", az, el, th, d, px, py)
        assert bbox[0] >= 1 and bbox[2] <= w and bbox[1] >= 1 and bbox[3] <= h, (name, bbox)
        objs = [mat_object(cat, bbox, mat_viewpoint(az, el, th, d, px, py), cad, occluded=1)]
        # a second, coarse-only annotation (distance 0) and an object of another class
        objs.append(mat_object(cat, [5, 5, 40, 40], mat_viewpoint(45, 10, 0, 0.0, 20, 20), 1))
        objs.append(mat_object("person", [10, 10, 50, 60], None, 0))
        write_record_mat(root / "Annotations" / f"{cat}_imagenet" / f"{name}.mat", f"{name}.JPEG", (w, h), objs)
        write_image(root / "Images" / f"{cat}_imagenet" / f"{name}.JPEG", (w, h))
        expected[name] = dict(category=cat, cad_index=cad, azimuth=az, elevation=el, theta=th, distance=d,
                              px=px, py=py, bbox_matlab=bbox, size=(h, w))
    for cat in {o[1] for o in PASCAL_OBJECTS}:
        names = [o[0] for o in PASCAL_OBJECTS if o[1] == cat]
        sets = root / "Image_sets"
        sets.mkdir(parents=True, exist_ok=True)
        (sets / f"{cat}_imagenet_val.txt").write_text("\n".join(names) + "\n")
        (sets / f"{cat}_imagenet_train.txt").write_text("")
    # one PASCAL VOC image annotated for the car class
    bbox, _ = projected_object(cad_root / "car" / "01.off", 60.0, 5.0, 0.0, 8.0, 250.0, 180.0)
    write_record_mat(root / "Annotations" / "car_pascal" / "2008_000027.mat", "2008_000027.jpg", (500, 375),
                     [mat_object("car", bbox, mat_viewpoint(60.0, 5.0, 0.0, 8.0, 250.0, 180.0), 1, truncated=1)])
    write_image(root / "Images" / "car_pascal" / "2008_000027.jpg", (500, 375))
    main = root / "PASCAL" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    (main / "car_val.txt").write_text("2008_000027  1\n2008_000099 -1\n")
    expected["2008_000027"] = dict(category="car", bbox_matlab=bbox, size=(375, 500), truncated=True)
    return expected


def build_occluded(occ_root: Path, pascal_root: Path, level: int, names: list[str]) -> None:
    """OccludedPASCAL3D+ images and per-image annotations (occluder_mask, mask) for some images."""
    for name in names:
        rec = next(o for o in PASCAL_OBJECTS if o[0] == name)
        cat, w, h = rec[1], rec[9], rec[10]
        folder = f"{cat}FGL{level}_BGL{level}"
        write_image(occ_root / "images" / folder / f"{name}.JPEG", (w, h), color=(200, 10, 10))
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255  # the object
        occ = np.zeros((h, w), dtype=bool)
        occ[h // 4: h // 2, w // 4: 3 * w // 4] = True  # covers the top half of the object
        ann = occ_root / "annotations" / folder
        ann.mkdir(parents=True, exist_ok=True)
        np.savez(ann / f"{name}.npz", source=str(pascal_root / name), occluder_mask=occ, mask=mask,
                 box=np.array([h // 4, 3 * h // 4, w // 4, 3 * w // 4, h, w]))


# ----------------------------------------------------------------------------- NeMo layout


def nemo_crop(img: np.ndarray, bbox_matlab, principal_matlab, distance, out_shape):
    """NeMo's CreatePascal3DNeMo arithmetic: (cropped image, box_obj [y0 y1 x0 x1 h w], box [..])."""
    import cv2

    r = float(200 * distance / 1000)
    h, w = img.shape[:2]
    img = cv2.resize(img, dsize=(int(w * r), int(h * r)))
    center = (np.array(principal_matlab)[::-1] * r).astype(int)  # (y, x)
    oh, ow = out_shape
    pad = ((max(oh // 2 - center[0], 0), max(oh // 2 + center[0] - img.shape[0], 0)),
           (max(ow // 2 - center[1], 0), max(ow // 2 + center[1] - img.shape[1], 0)), (0, 0))
    img = np.pad(img, pad, mode="constant")
    y0 = center[0] - oh // 2 + pad[0][0]
    x0 = center[1] - ow // 2 + pad[1][0]
    crop = img[y0:y0 + oh, x0:x0 + ow]
    # the object box: BboxTools truncates the MATLAB box to ints, scales with int(), shifts, clips
    bx0, by0, bx1, by1 = (int(v) for v in bbox_matlab)
    ob = [int(by0 * r) + pad[0][0] - y0, int(by1 * r) + pad[0][0] - y0,
          int(bx0 * r) + pad[1][0] - x0, int(bx1 * r) + pad[1][0] - x0]
    ob = [max(ob[0], 0), min(ob[1], oh), max(ob[2], 0), min(ob[3], ow), oh, ow]
    box = [y0, y0 + oh, x0, x0 + ow, img.shape[0], img.shape[1]]
    return crop, np.array(ob, dtype=np.float32), np.array(box, dtype=np.float32)


def build_nemo(root: Path, cad_root: Path, occ_suffix: str = "") -> dict:
    """PASCAL3D_NeMo-style folders for the PASCAL_OBJECTS; returns the expected values per name."""
    expected = {}
    out_shape = (448, 448)
    for name, cat, cad, az, el, th, d, px, py, w, h in PASCAL_OBJECTS:
        bbox, _ = projected_object(cad_root / cat / f"{cad:02d}.off", az, el, th, d, px, py)
        img = np.full((h, w, 3), 90, dtype=np.uint8)
        crop, box_obj, box = nemo_crop(img, bbox, (px, py), d, out_shape)
        folder = f"{cat}{occ_suffix}"
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(root / "images" / folder / f"{name}.JPEG")
        bbox_ori = [int(bbox[1]), int(bbox[3]), int(bbox[0]), int(bbox[2]), h, w]
        np.savez(root / "annotations" / folder / name, name=name, box=box, box_ori=np.array(bbox_ori, np.float32),
                 box_obj=box_obj, cropped_kp_list=np.zeros((0, 2)), visible=np.zeros(0), occ_mask=None,
                 azimuth=math.radians(az), elevation=math.radians(el), theta=math.radians(th), distance=d,
                 focal=1.0, principal=np.array([px, py]), viewport=2000.0, height=h, width=w, cad_index=cad,
                 bbox=np.asarray(bbox))
        lists = root / "lists" / folder
        lists.mkdir(parents=True, exist_ok=True)
        for k in range(1, 11):
            f = lists / f"mesh{k:02d}.txt"
            prev = f.read_text() if f.is_file() else ""
            f.write_text(prev + (f"{name}.JPEG\n" if k == cad else ""))
        expected[name] = dict(category=cat, cad_index=cad, azimuth=az, elevation=el, theta=th, distance=d,
                              box_obj=box_obj, size=out_shape, bbox_matlab=bbox, px=px, py=py)
    return expected


# ----------------------------------------------------------------------------- ObjectNet3D


def build_objectnet3d(root: Path, cad_root: Path) -> dict:
    """ObjectNet3D tree (flat Annotations/, Images/, Image_sets/) with two images, three classes."""
    items = {
        "n03797390_11": [("cup", 6, 40.0, 20.0, 3.0, 14.0, 150.0, 160.0)],
        "n03642767_7": [("laptop", 4, 330.0, 30.0, -6.0, 12.0, 150.0, 130.0),
                        ("keyboard", 5, 10.0, 45.0, 0.0, 15.0, 290.0, 220.0)],
    }
    size = {"n03797390_11": (300, 320), "n03642767_7": (420, 300)}
    expected = {}
    for name, objs in items.items():
        w, h = size[name]
        mats = []
        for cat, cad, az, el, th, d, px, py in objs:
            bbox, _ = projected_object(cad_root / cat / f"{cad:02d}.off", az, el, th, d, px, py, viewport=3000.0)
            assert bbox[0] >= 1 and bbox[2] <= w and bbox[1] >= 1 and bbox[3] <= h, (cat, bbox)
            mats.append(mat_object(cat, bbox, mat_viewpoint(az, el, th, d, px, py, viewport=3000.0), cad))
            expected[(name, cat)] = dict(cad_index=cad, azimuth=az, elevation=el, theta=th, distance=d, px=px,
                                         py=py, bbox_matlab=bbox, size=(h, w))
        write_record_mat(root / "Annotations" / f"{name}.mat", f"{name}.JPEG", (w, h), mats)
        write_image(root / "Images" / f"{name}.JPEG", (w, h))
    sets = root / "Image_sets"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "val.txt").write_text("\n".join(items) + "\n")
    (sets / "train.txt").write_text("")
    return expected


# ----------------------------------------------------------------------------- ImageNet3D


def imagenet3d_object(cat, cad, az, el, th, d, px, py, bbox, w, h, status="status_good", viewport=2000):
    return {"azimuth": az, "elevation": el, "theta": th, "distance": d, "viewport": viewport, "focal": 1.0,
            "height": np.uint16(h), "width": np.uint16(w), "bbox": np.asarray(bbox, dtype=np.float64),
            "class": cat, "px": px, "py": py, "principal": np.array([px, py]), "cad_index": cad,
            "object_status": status, "dense": "dense_no"}


def imagenet3d_project(cad_file, az, el, th, d, px, py, viewport=2000.0):
    """ImageNet3D's render_utils.proj2d (radians, 0-based pixels, focal 1): bbox and points."""
    v, _ = read_off(cad_file)
    pts = matlab_project(v, math.degrees(az), math.degrees(el), math.degrees(th), d, 1.0, px, py, viewport)
    return box_of(pts), v


# (name, category, cad, azimuth, elevation, theta (radians), distance, px, py, W, H)
IMAGENET3D_OBJECTS = [
    ("n02818832_13", "bed", 1, 0.7, 0.3, 6.2, 7.0, 160.0, 120.0, 320, 240),
    ("n02828884_5", "bench", 3, 2.5, 0.25, 0.1, 5.0, 200.0, 150.0, 400, 300),
]


def build_imagenet3d(root: Path, cad_root: Path, flat: bool = False) -> dict:
    expected = {}
    for name, cat, cad, az, el, th, d, px, py, w, h in IMAGENET3D_OBJECTS:
        bbox, _ = imagenet3d_project(cad_root / cat / f"{cad:02d}.off", az, el, th, d, px, py)
        objs = [imagenet3d_object(cat, cad, az, el, th, d, px, py, bbox, w, h),
                imagenet3d_object(cat, cad, az, el, th, d, px, py, bbox, w, h, status="status_bad"),
                imagenet3d_object(cat, cad, az, el, th, 0.0, px, py, bbox, w, h, status="status_partially")]
        arr = np.empty(len(objs), dtype=object)
        arr[:] = objs
        img_dir = root / cat if flat else root / "images" / cat
        ann_dir = root / cat if flat else root / "annotations" / cat
        ann_dir.mkdir(parents=True, exist_ok=True)
        np.savez(ann_dir / f"{name}.npz", annotations=arr)
        write_image(img_dir / f"{name}.JPEG", (w, h))
        expected[name] = dict(category=cat, cad_index=cad, azimuth=az, elevation=el, theta=th, distance=d, px=px,
                              py=py, bbox=bbox, size=(h, w))
        if not flat:
            lists = root / "lists"
            lists.mkdir(parents=True, exist_ok=True)
            (lists / f"{cat}_imagenet_val.txt").write_text(name + "\n")
            (lists / f"{cat}_imagenet_train.txt").write_text("")
    return expected


def imagenet3d_preprocess(img, annot, out_h=512, out_w=512, target_distance=4.0):
    """The toolkits' preprocess_data.py with --center_and_resize, bug included (y2 += bottom padding)."""
    import cv2

    raw_dist = annot["distance"]
    r = raw_dist / target_distance
    img = cv2.resize(img, dsize=(int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_CUBIC)
    bbox_new = np.asarray(annot["bbox"], dtype=np.float64) * r
    cx, cy = int(annot["px"] * r), int(annot["py"] * r)
    pad = ((max(out_h // 2 - cy, 0), max(out_h // 2 + cy - img.shape[0], 0)),
           (max(out_w // 2 - cx, 0), max(out_w // 2 + cx - img.shape[1], 0)), (0, 0))
    img = np.pad(img, pad, mode="constant")
    bbox_new[0] += pad[1][0]
    bbox_new[2] += pad[1][0]
    bbox_new[1] += pad[0][0]
    bbox_new[3] += pad[0][1]  # the published bug: should be pad[0][0]
    crop = ((max(cy - out_h // 2, 0), max(img.shape[0] - cy - out_h // 2, 0)),
            (max(cx - out_w // 2, 0), max(img.shape[1] - cx - out_w // 2, 0)), (0, 0))
    img = img[crop[0][0]:crop[0][0] + out_h, crop[1][0]:crop[1][0] + out_w]
    bbox_new[[0, 2]] -= crop[1][0]
    bbox_new[[1, 3]] -= crop[0][0]
    params = dict(bbox=bbox_new, bbox_original=annot["bbox"], principal=np.array([out_w / 2, out_h / 2]),
                  principal_original=annot["principal"], px=out_w / 2, py=out_h / 2,
                  px_original=annot["px"], py_original=annot["py"], distance=raw_dist / r,
                  distance_original=raw_dist, azimuth=annot["azimuth"], elevation=annot["elevation"],
                  theta=annot["theta"], cad_index=annot["cad_index"], focal=annot["focal"],
                  viewport=annot["viewport"],
                  padding_params=np.array([pad[0][0], pad[0][1], pad[1][0], pad[1][1], 0, 0]),
                  cropping_params=np.array([crop[0][0], crop[0][1], crop[1][0], crop[1][1], 0, 0]), resize_rate=r)
    return img, params


def build_imagenet3d_preprocessed(root: Path, cad_root: Path, layout: str = "exp") -> dict:
    """Per-object crops as the toolkits write them; layout "exp" (<split>/images/<cat>) or "toolkit"
    (images/<cat>_<split>)."""
    expected = {}
    for name, cat, cad, az, el, th, d, px, _, w, _ in IMAGENET3D_OBJECTS:
        # the object high in a tall image: the crop needs top padding but no bottom padding, which
        # is where the toolkit's y2 bug shows (it adds the bottom padding to y2)
        py, h = 80.0, 400
        bbox, _ = imagenet3d_project(cad_root / cat / f"{cad:02d}.off", az, el, th, d, px, py)
        annot = imagenet3d_object(cat, cad, az, el, th, d, px, py, bbox, w, h)
        img = np.full((h, w, 3), 70, dtype=np.uint8)
        crop, params = imagenet3d_preprocess(img, annot)
        sample = f"{name}_00"
        if layout == "exp":
            dirs = [root / "val" / k / cat for k in ("images", "annotations", "lists")]
        else:
            dirs = [root / k / f"{cat}_val" for k in ("images", "annotations", "lists")]
        for p in dirs:
            p.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(dirs[0] / f"{sample}.JPEG")
        params["name"], params["class"] = sample, cat
        np.savez(dirs[1] / sample, **params)
        (dirs[2] / "mesh01.txt").write_text(sample)
        expected[sample] = dict(category=cat, params=params, size=crop.shape[:2], cad=cad, annot=annot)
    return expected


# ----------------------------------------------------------------------------- Objaverse cache


def build_objaverse_cache(home: Path, glbs: dict[str, Path], lvis: dict[str, list[str]] | None) -> Path:
    """~/.objaverse/hf-objaverse-v1/glbs/000-000/<uid>.glb as symlinks to real GLBs (+ LVIS categories)."""
    base = home / ".objaverse" / "hf-objaverse-v1"
    group = base / "glbs" / "000-000"
    group.mkdir(parents=True, exist_ok=True)
    for uid, src in glbs.items():
        (group / f"{uid}.glb").symlink_to(src)
    if lvis is not None:
        with gzip.open(base / "lvis-annotations.json.gz", "wt") as fh:
            json.dump(lvis, fh)
    return home / ".objaverse"


# ----------------------------------------------------------------------------- self-checks


def test_matlab_projection_reference_values():
    """The reference formula against hand-derived values: azimuth 0, elevation 0, theta 0 looks at
    the front from −y; +x projects to the right of the principal point, +z above it (smaller v)."""
    pts = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.1]])
    uv = matlab_project(pts, 0.0, 0.0, 0.0, 5.0, 1.0, 100.0, 50.0, 2000.0)
    np.testing.assert_allclose(uv[0], [100.0, 50.0], atol=1e-9)
    np.testing.assert_allclose(uv[1], [100.0 + 2000.0 * 0.1 / 5.0, 50.0], atol=1e-9)
    np.testing.assert_allclose(uv[2], [100.0, 50.0 - 2000.0 * 0.1 / 5.0], atol=1e-9)
    # theta = 90°: the +x point turns to screen-up: counter-clockwise on screen
    uv = matlab_project(pts, 0.0, 0.0, 90.0, 5.0, 1.0, 100.0, 50.0, 2000.0)
    np.testing.assert_allclose(uv[1], [100.0, 50.0 - 40.0], atol=1e-9)


@pytest.mark.realdata
def test_off_reader_matches_trimesh(shared_data):
    import trimesh

    v, f = read_off(shared_data / "pascal3d_cad" / "car" / "01.off")
    tm = trimesh.load(shared_data / "pascal3d_cad" / "car" / "01.off", process=False)
    np.testing.assert_allclose(v, tm.vertices, atol=1e-6)
    assert len(f) == len(tm.faces)

