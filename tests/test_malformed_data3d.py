# ruff: noqa: E501  (the case table keeps one case per line)
"""Malformed inputs to every data3d reader, table-driven.

Each case writes one bad file (or passes one bad argument) into an otherwise valid input and states
the outcome the rule asks for (docs/data3d.md, "Bad input"):
  ("error", type, [text, ...])   the call raises `type` and its message holds every text (the file
                                 and the field at fault);
  ("skip", reason, [text, ...])  a batch loader (strict=False) skips, counts `reason` and lists a
                                 problem holding every text; with strict=True the same input raises
                                 AnnotationError holding the texts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data3d_fixtures import mat_object, mat_viewpoint, write_image, write_record_mat

import data3d
from data3d import AnnotationError, AssetError

W, H = 60, 50


# ----------------------------------------------------------------------------- ImageNet3D (release)
def _imagenet3d(root: Path, **over) -> Path:
    a = {"azimuth": 0.5, "elevation": 0.2, "theta": 0.0, "distance": 5.0, "viewport": 2000, "focal": 1.0,
         "height": H, "width": W, "bbox": np.array([10.0, 10.0, 40.0, 40.0]), "class": "bed", "px": 30.0,
         "py": 25.0, "principal": np.array([30.0, 25.0]), "cad_index": 1, "object_status": "status_good"}
    a.update(over)
    for k in [k for k, v in a.items() if v is _DROP]:
        del a[k]
    arr = np.empty(1, dtype=object)
    arr[:] = [a]
    (root / "annotations" / "bed").mkdir(parents=True, exist_ok=True)
    np.savez(root / "annotations" / "bed" / "x.npz", annotations=arr)
    write_image(root / "images" / "bed" / "x.JPEG", (W, H))
    return root


_DROP = object()


def imagenet3d(**over):
    def run(tmp, strict):
        return data3d.load_imagenet3d(_imagenet3d(tmp, **over), split=None, strict=strict)
    return run


def imagenet3d_file(write):
    def run(tmp, strict):
        _imagenet3d(tmp)
        write(tmp / "annotations" / "bed" / "x.npz")
        return data3d.load_imagenet3d(tmp, split=None, strict=strict)
    return run


def _not_dicts(path):
    np.savez(path, annotations=np.array([1, 2]))


# ----------------------------------------------------------------------------- ImageNet3D (preprocessed)
def imagenet3d_crop(**over):
    def run(tmp, strict):
        d = {"name": "x", "azimuth": 0.5, "elevation": 0.2, "theta": 0.0, "distance_original": 5.0, "focal": 1.0,
             "viewport": 2000.0, "px_original": 30.0, "py_original": 25.0, "bbox_original": [10.0, 10.0, 40.0, 40.0],
             "cad_index": 1, "resize_rate": 1.0, "padding_params": [0, 0, 0, 0, 0, 0],
             "cropping_params": [0, 0, 0, 0, 0, 0]}
        d.update(over)
        for sub in ("images", "annotations", "lists"):
            (tmp / "val" / sub / "bed").mkdir(parents=True, exist_ok=True)
        np.savez(tmp / "val" / "annotations" / "bed" / "x.npz", **d)
        write_image(tmp / "val" / "images" / "bed" / "x.JPEG", (W, H))
        (tmp / "val" / "lists" / "bed" / "mesh01.txt").write_text("x.JPEG\n")
        return data3d.load_imagenet3d(tmp, split="val", strict=strict)
    return run


# ----------------------------------------------------------------------------- PASCAL3D+ raw / ObjectNet3D
def _mat(path: Path, size=(W, H), record=True, **vp_over):
    vp = mat_viewpoint(30.0, 10.0, 0.0, 5.0, 30.0, 25.0)
    obj_over = {k[4:]: vp_over.pop(k) for k in list(vp_over) if k.startswith("obj_")}
    vp.update(vp_over)
    obj = mat_object("car", [10, 10, 40, 40], vp, 1)
    obj.update(obj_over)
    if record:
        write_record_mat(path, path.stem, size, [obj])
    else:
        from scipy.io import savemat

        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(str(path), {"something": np.zeros(3)})


def pascal3d(write=None, **over):
    def run(tmp, strict):
        ann = tmp / "Annotations" / "car_imagenet" / "n1.mat"
        _mat(ann, **over)
        if write is not None:
            write(ann)
        write_image(tmp / "Images" / "car_imagenet" / "n1.JPEG", (W, H))
        return data3d.load_pascal3d(tmp, split=None, categories=["car"], strict=strict)
    return run


def objectnet3d(write=None, **over):
    def run(tmp, strict):
        ann = tmp / "Annotations" / "n1.mat"
        _mat(ann, **over)
        if write is not None:
            write(ann)
        write_image(tmp / "Images" / "n1.JPEG", (W, H))
        return data3d.load_objectnet3d(tmp, split=None, categories=["car"], strict=strict)
    return run


def _garbage(path):
    path.write_bytes(b"MATLAB 5.0 MAT-file, definitely broken" + bytes(range(40)))


def _empty(path):
    path.write_bytes(b"")


# ----------------------------------------------------------------------------- NeMo's PASCAL3D+
def nemo(write=None, crop=(64, 64), **over):
    def run(tmp, strict):
        d = {"name": "n1", "box": np.array([0, 64, 0, 64, 400, 500.0]), "azimuth": 0.5, "elevation": 0.1,
             "theta": 0.0, "distance": 5.0, "focal": 1.0, "viewport": 3000.0, "principal": np.array([250.0, 200.0]),
             "height": 400, "width": 500, "cad_index": 1, "bbox": np.array([230.0, 180.0, 270.0, 220.0])}
        d.update(over)
        for sub in ("images", "annotations", "lists"):
            (tmp / sub / "car").mkdir(parents=True, exist_ok=True)
        write_image(tmp / "images" / "car" / "n1.JPEG", (crop[1], crop[0]))
        np.savez(tmp / "annotations" / "car" / "n1.npz", **d)
        if write is not None:
            write(tmp / "annotations" / "car" / "n1.npz")
        (tmp / "lists" / "car" / "mesh01.txt").write_text("n1.JPEG\n")
        return data3d.load_pascal3d_nemo(tmp, categories=["car"], strict=strict)
    return run


# ----------------------------------------------------------------------------- record shards
def _good_records(tmp: Path):
    write_image(tmp / "a.png", (W, H))
    vp = data3d.Viewpoint(azimuth=0.1, elevation=0.2, theta=0.0, distance=2.0, focal=1.0, viewport=100.0, px=30.0,
                          py=25.0)
    obj = data3d.ObjectAnnotation(category="car", bbox=(10.0, 10.0, 40.0, 40.0), viewpoint=vp, cad_index=1,
                                  cad_source="pascal3d")
    return [data3d.ImageRecord(tmp / "a.png", (H, W), (obj,))]


def shard_npz(mutate):
    def run(tmp, strict):
        path = data3d.save_records(_good_records(tmp), tmp / "ds")
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        mutate(arrays)
        np.savez(path, **arrays)
        return data3d.load_records(tmp / "ds")
    return run


def shard_json(mutate):
    def run(tmp, strict):
        path = data3d.save_records(_good_records(tmp), tmp / "ds", format="json")
        doc = json.loads(path.read_text())
        changed = mutate(doc)
        path.write_text(json.dumps(changed if isinstance(changed, dict) else doc))
        return data3d.load_records(tmp / "ds")
    return run


def shard_bytes(data: bytes, suffix="npz"):
    def run(tmp, strict):
        (tmp / "ds").mkdir()
        (tmp / "ds" / f"records-000000.{suffix}").write_bytes(data)
        return data3d.load_records(tmp / "ds")
    return run


def no_shards(tmp, strict):
    (tmp / "ds" / "images").mkdir(parents=True)
    return data3d.load_records(tmp / "ds")


def _set(key, value):
    def mutate(a):
        a[key] = value
    return mutate


def _drop(key):
    def mutate(a):
        del a[key]
    return mutate


def _json_object(**over):
    def mutate(doc):
        doc["records"][0]["objects"][0].update(over)
    return mutate


# ----------------------------------------------------------------------------- ObjectDataset
def dataset(image=None, extra=None, size=(H, W), call=True, **kw):
    def run(tmp, strict):
        recs = _good_records(tmp)
        if image is not None:
            image(tmp / "a.png")
        r = recs[0]
        files = {k: str(tmp / "m.png") if v == "TMP" else v for k, v in (extra or {}).items()}  # the mask writer's file
        recs = [data3d.ImageRecord(r.image_path, size, r.objects, extra=files)]
        ds = data3d.ObjectDataset(recs, **kw)
        return ds[0] if call else ds
    return run


def _sixteen_bit(path):
    Image.fromarray(np.full((H, W), 4000, np.uint16)).save(path)


def _float_image(path):
    Image.fromarray(np.zeros((H, W), np.float32)).save(path.with_suffix(".tif"))
    path.write_bytes(path.with_suffix(".tif").read_bytes())


def _mask_file(tmp_size):
    def image(path):
        Image.fromarray(np.zeros(tmp_size, np.uint8)).save(path.parent / "m.png")
    return image


# ----------------------------------------------------------------------------- asset sources
def source(config, scan=True, setup=None):
    def run(tmp, strict):
        if setup is not None:
            setup(tmp)
        cfg = {k: (str(tmp / v[5:]) if isinstance(v, str) and v.startswith("TMP:/") else v) for k, v in config.items()}
        src = data3d.asset_source(cfg)
        if scan:
            list(src.iter_loaded())
        return src
    return run


def _mesh_folder(files):
    def setup(tmp):
        (tmp / "m").mkdir()
        for name, data in files.items():
            (tmp / "m" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "m" / name).write_bytes(data)
    return setup


def _glbs(tmp):
    (tmp / "m").mkdir()
    (tmp / "m" / "u1.glb").write_bytes(b"")


def _unfiled_shapenet(tmp):
    (tmp / "m" / "1a2b" / "models").mkdir(parents=True)
    (tmp / "m" / "1a2b" / "models" / "model_normalized.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")


# ----------------------------------------------------------------------------- 3D-DST
def dst3d(**over):
    def run(tmp, strict):
        model = tmp / "n02690373" / "uid9"
        (model / "annotation").mkdir(parents=True)
        (model / "image_render").mkdir()
        rgba = np.zeros((64, 64, 4), np.uint8)
        rgba[20:40, 10:50, 3] = 255
        Image.fromarray(rgba).save(model / "image_render" / "000.png")
        annot = {"theta": 0.3, "phi": 1.2, "dist": 1.5, "principal": np.array([32, 32]), "source": "objaverse",
                 "shape_id": "uid9", "focal_length": 35.0, "sensor_width": 32.0, **over}
        np.save(model / "annotation" / "000", annot)
        return data3d.load_dst3d(tmp, strict=strict)
    return run


def dst3d_bytes(data):
    def run(tmp, strict):
        dst3d()(tmp, strict=False)
        (tmp / "n02690373" / "uid9" / "annotation" / "000.npy").write_bytes(data)
        return data3d.load_dst3d(tmp, strict=strict)
    return run


def missing_root(loader, **kw):
    def run(tmp, strict):
        return loader(tmp / "nowhere", **kw)
    return run


E, S = "error", "skip"
CASES = {
    # ImageNet3D release: every malformed field of an object is a counted skip naming file and field
    "imagenet3d distance 'far'": (imagenet3d(distance="far"), (S, "bad_annotation", ["x.npz", "annotations[0].distance", "'far'"])),
    "imagenet3d focal 0": (imagenet3d(focal=0.0), (S, "bad_annotation", ["x.npz", "annotations[0].focal", "> 0"])),
    "imagenet3d focal missing": (imagenet3d(focal=_DROP), (S, "bad_annotation", ["x.npz", "annotations[0].focal", "missing"])),
    "imagenet3d azimuth NaN": (imagenet3d(azimuth=float("nan")), (S, "bad_annotation", ["annotations[0].azimuth", "NaN"])),
    "imagenet3d size differs from the image": (imagenet3d(height=H + 7), (S, "bad_annotation", ["x.npz", "height/width", "x.JPEG"])),
    "imagenet3d bbox of text": (imagenet3d(bbox=np.array(["a", "b", "c", "d"])), (S, "bad_annotation", ["annotations[0].bbox"])),
    "imagenet3d bbox outside the image": (imagenet3d(bbox=np.array([10.0, 10.0, 400.0, 40.0])), (S, "bad_annotation", ["x.npz", "bbox", "outside"])),
    "imagenet3d cad_index 1.5": (imagenet3d(cad_index=1.5), (S, "bad_annotation", ["annotations[0].cad_index", "1-based"])),
    "imagenet3d ignore flag 'yes'": (imagenet3d(object_status=_DROP, ignore="yes"), (S, "bad_annotation", ["annotations[0].ignore"])),
    "imagenet3d viewport -1": (imagenet3d(viewport=-1), (S, "bad_annotation", ["annotations[0].viewport"])),
    "imagenet3d empty npz": (imagenet3d_file(_empty), (S, "bad_annotation", ["x.npz", "cannot be read as an .npz"])),
    "imagenet3d annotations not dicts": (imagenet3d_file(_not_dicts), (S, "bad_annotation", ["x.npz", "annotations[0]", "dict"])),
    "imagenet3d no annotations array": (imagenet3d_file(lambda p: np.savez(p, other=np.zeros(2))), (S, "bad_annotation", ["x.npz", "'annotations'"])),
    "imagenet3d missing root": (missing_root(data3d.load_imagenet3d), (E, AnnotationError, ["nowhere", "cannot be read as ImageNet3D: no such folder"])),
    # ImageNet3D preprocessed crops
    "imagenet3d crop resize_rate text": (imagenet3d_crop(resize_rate="big"), (S, "bad_annotation", ["x.npz", "resize_rate"])),
    "imagenet3d crop focal 0": (imagenet3d_crop(focal=0.0), (S, "bad_annotation", ["x.npz", "focal", "> 0"])),
    "imagenet3d crop distance NaN": (imagenet3d_crop(distance_original=float("nan")), (S, "bad_annotation", ["x.npz", "distance_original"])),
    # PASCAL3D+ raw release
    "pascal3d corrupt mat": (pascal3d(write=_garbage), (S, "bad_annotation", ["n1.mat", "cannot be read as a MATLAB file"])),
    "pascal3d no record variable": (pascal3d(record=False), (S, "bad_annotation", ["n1.mat", "record"])),
    "pascal3d imgsize differs from the image": (pascal3d(size=(W + 5, H)), (S, "bad_annotation", ["n1.mat", "record.imgsize", "n1.JPEG"])),
    "pascal3d azimuth text": (pascal3d(azimuth="far"), (S, "bad_annotation", ["n1.mat", "objects[0].viewpoint.azimuth", "'far'"])),
    "pascal3d bbox of 3": (pascal3d(obj_bbox=np.array([1.0, 2.0, 3.0])), (S, "bad_annotation", ["n1.mat", "objects[0].bbox", "4 numbers"])),
    "pascal3d cad_index 0": (pascal3d(obj_cad_index=0.0), (S, "bad_annotation", ["n1.mat", "objects[0].cad_index"])),
    "pascal3d viewport -5": (pascal3d(viewport=-5.0), (S, "bad_annotation", ["n1.mat", "viewport"])),
    "pascal3d missing root": (missing_root(data3d.load_pascal3d), (E, AnnotationError, ["nowhere", "cannot be read as a PASCAL3D+ release"])),
    # NeMo's crops
    "nemo empty npz": (nemo(write=_empty), (S, "bad_annotation", ["n1.npz", "cannot be read as an .npz"])),
    "nemo distance text": (nemo(distance="far"), (S, "bad_annotation", ["n1.npz", "distance", "numeric"])),
    "nemo principal of 1": (nemo(principal=np.array([250.0])), (S, "bad_annotation", ["n1.npz", "principal", "2 number"])),
    "nemo crop differs from its box": (nemo(crop=(60, 64)), (S, "bad_annotation", ["n1.npz", "box", "n1.JPEG"])),
    "nemo width 0": (nemo(width=0), (S, "bad_annotation", ["n1.npz", "height", "positive"])),
    "nemo missing root": (missing_root(data3d.load_pascal3d_nemo), (E, AnnotationError, ["nowhere", "cannot be read as NeMo's preprocessed PASCAL3D+"])),
    # ObjectNet3D
    "objectnet3d corrupt mat": (objectnet3d(write=_garbage), (S, "bad_annotation", ["n1.mat", "MATLAB"])),
    "objectnet3d imgsize differs": (objectnet3d(size=(W, H + 3)), (S, "bad_annotation", ["n1.mat", "record.imgsize"])),
    "objectnet3d distance text": (objectnet3d(distance="near"), (S, "bad_annotation", ["n1.mat", "viewpoint.distance"])),
    "objectnet3d missing root": (missing_root(data3d.load_objectnet3d), (E, AnnotationError, ["nowhere", "cannot be read as an ObjectNet3D release"])),
    # record shards
    "shard: empty npz": (shard_bytes(b""), (E, AnnotationError, ["records-000000.npz", "cannot be read as an .npz shard"])),
    "shard: npz of garbage": (shard_bytes(b"PK\x03\x04 broken zip"), (E, AnnotationError, ["records-000000.npz", "npz shard"])),
    "shard: npz without bbox": (shard_npz(_drop("bbox")), (E, AnnotationError, ["records-000000.npz", "'bbox'", "missing"])),
    "shard: npz bbox of 3 columns": (shard_npz(_set("bbox", np.zeros((1, 3)))), (E, AnnotationError, ["records-000000.npz", "'bbox'", "shape"])),
    "shard: npz offsets beyond the objects": (shard_npz(_set("object_offsets", np.array([0, 2]))), (E, AnnotationError, ["records-000000.npz", "object_offsets"])),
    "shard: npz image_size of text": (shard_npz(_set("image_size", np.array([["a", "b"]]))), (E, AnnotationError, ["records-000000.npz", "'image_size'"])),
    "shard: npz object_meta not JSON": (shard_npz(_set("object_meta", np.array(["{oops"]))), (E, AnnotationError, ["records-000000.npz", "object_meta[0]", "JSON"])),
    "shard: npz of another format": (shard_npz(_set("format", np.array("other"))), (E, AnnotationError, ["records-000000.npz", "'format'"])),
    "shard: npz NaN bbox": (shard_npz(_set("bbox", np.full((1, 4), np.nan))), (E, AnnotationError, ["records-000000.npz", "bbox", "NaN"])),
    "shard: json not JSON": (shard_bytes(b"{not json", "json"), (E, AnnotationError, ["records-000000.json", "JSON"])),
    "shard: json records not a list": (shard_json(lambda d: {**d, "records": {"a": 1}}), (E, AnnotationError, ["records-000000.json", "'records'"])),
    "shard: json image_size text": (shard_json(lambda d: d["records"][0].update(image_size="big")), (E, AnnotationError, ["records-000000.json", "records[0].image_size"])),
    "shard: json object without category": (shard_json(lambda d: d["records"][0]["objects"][0].pop("category")), (E, AnnotationError, ["records-000000.json", "records[0].objects[0]"])),
    "shard: json distance -1": (shard_json(_json_object(viewpoint={"azimuth": 0, "elevation": 0, "theta": 0, "distance": -1, "focal": 1, "viewport": 100, "px": 1, "py": 1})), (E, AnnotationError, ["records-000000.json", "objects[0].viewpoint.distance"])),
    "shard: json newer version": (shard_json(lambda d: {**d, "version": 99}), (E, AnnotationError, ["records-000000.json", "'version'", "newer"])),
    "shard: json extra not an object": (shard_json(lambda d: d["records"][0].update(extra=[1, 2])), (E, AnnotationError, ["records-000000.json", "extra"])),
    "records folder without shards": (no_shards, (E, AnnotationError, ["ds", "holds no record shards"])),
    "records folder missing": (missing_root(data3d.load_records), (E, AnnotationError, ["nowhere", "no such folder"])),
    # ObjectDataset
    "dataset crop_size (-5, 64)": (dataset(crop_size=(-5, 64), call=False), (E, ValueError, ["crop_size", "(-5, 64)"])),
    "dataset crop_size 'big'": (dataset(crop_size="big", call=False), (E, ValueError, ["crop_size"])),
    "dataset 16-bit image": (dataset(image=_sixteen_bit, crop_size=(32, 32)), (E, AnnotationError, ["a.png", "'mode'", "16-bit"])),
    "dataset float image": (dataset(image=_float_image, crop_size=(32, 32)), (E, AnnotationError, ["a.png", "'mode'"])),
    "dataset corrupt image": (dataset(image=_empty, crop_size=(32, 32)), (E, AnnotationError, ["a.png", "cannot be read as an image"])),
    "dataset image of another size": (dataset(size=(H + 1, W), crop_size=(32, 32)), (E, AnnotationError, ["a.png", "image_size"])),
    "dataset mask asked, none written": (dataset(extras=["mask"]), (E, AnnotationError, ["a.png", "extra.mask_path"])),
    "dataset mask of another size": (dataset(image=_mask_file((H, W + 2)), extra={"mask_path": "TMP"}, extras=["mask"]), (E, AnnotationError, ["m.png", "image_size"])),
    "dataset depth without depth_scale": (dataset(image=_mask_file((H, W)), extra={"depth_path": "TMP"}, extras=["depth"]), (E, AnnotationError, ["m.png", "depth_scale"])),
    "dataset unknown extra": (dataset(extras=["normals"], call=False), (E, ValueError, ["extras", "normals"])),
    "dataset rescale without crop": (dataset(crop_size=None, rescale="fit", call=False), (E, ValueError, ["rescale needs a crop_size"])),
    # asset sources
    "objaverse uid_categories a list": (source({"type": "objaverse", "root": "TMP:/m", "uid_categories": {"u1": 3}}, setup=_glbs), (E, AssetError, ["uid_categories", "'u1'"])),
    "objaverse uid_categories mixed layouts": (source({"type": "objaverse", "root": "TMP:/m", "uid_categories": {"u1": "cow", "cow": ["u1"]}}, setup=_glbs), (E, AssetError, ["uid_categories", "breaks that"])),
    "shapenet categories on a folder without synsets": (source({"type": "shapenet", "root": "TMP:/m", "categories": ["car"]}, setup=_unfiled_shapenet), (E, AssetError, ["not inside synset folders", "category: <name>"])),
    "folder source missing root": (source({"type": "folder", "root": "TMP:/nowhere"}), (E, AssetError, ["nowhere", "does not exist"])),
    "folder source garbage ply": (source({"type": "folder", "root": "TMP:/m"}, setup=_mesh_folder({"a/x.ply": b"ply\nnot really\n"})), (S, "unreadable", ["x.ply"])),
    "folder source flat mesh": (source({"type": "folder", "root": "TMP:/m"}, setup=_mesh_folder({"p.obj": b"v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n"})), (S, "invalid_mesh", ["p.obj", "zero extent"])),
    "off source bad file name": (source({"type": "off", "root": "TMP:/m"}, setup=_mesh_folder({"car/01.off": b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "car/x.off": b"OFF\n"})), (S, "bad_name", ["x.off", "NN.off"])),
    # 3D-DST's release
    "dst3d dist 'far'": (dst3d(dist="far"), (S, "bad_annotation", ["000.npy", "'dist'"])),
    "dst3d source 'blender'": (dst3d(source="blender"), (S, "bad_annotation", ["000.npy", "'source'"])),
    "dst3d empty npy": (dst3d_bytes(b""), (S, "bad_annotation", ["000.npy", "cannot be read as a .npy"])),
    "dst3d missing root": (missing_root(data3d.load_dst3d), (E, AnnotationError, ["nowhere", "cannot be read as a 3D-DST release"])),
}


def _problems(result) -> list[tuple[str, str]]:
    return list(getattr(result, "problems", []))


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input(name, tmp_path):
    run, (outcome, what, texts) = CASES[name]
    if outcome == E:
        with pytest.raises(what) as info:
            run(tmp_path, strict=True)
        for text in texts:
            assert text in str(info.value), (str(info.value), text)
        return
    result = run(tmp_path, strict=False)
    skipped = result.skipped
    assert skipped.get(what, 0) >= 1, (dict(skipped), _problems(result))
    problems = " | ".join(p for _, p in _problems(result))
    for text in texts:
        assert text in problems, (problems, text)
    if isinstance(result, data3d.RecordList):  # a loader: strict turns the skip into the error
        strict_dir = tmp_path / "strict"
        strict_dir.mkdir()
        with pytest.raises(AnnotationError) as info:
            run(strict_dir, strict=True)
        for text in texts:
            assert text in str(info.value), (str(info.value), text)


def test_the_suite_covers_every_reader():
    readers = {name.split()[0].rstrip(":") for name in CASES}
    assert {"imagenet3d", "pascal3d", "nemo", "objectnet3d", "shard", "records", "dataset", "objaverse", "shapenet",
            "folder", "off", "dst3d"} <= readers
    assert len(CASES) >= 40
