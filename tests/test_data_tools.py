"""`aware3d data stats` and `aware3d data show`: hand-counted statistics, a drawing whose projected
model is checked against geom3d's rasterizer, and the CLI's outputs and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import data3d
from aware3d.cli import main as cli_main
from data3d.show import draw_record, find_record, record_mesh
from data3d.stats import dataset_stats, format_stats, write_stats_report
from geom3d import raster


def _record(path, category, azimuth_deg, elevation_deg=10.0, distance=2.5, occlusion=0, truncated=False,
            size=(120, 160), **extra):
    h, w = size
    if not path.exists():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)
    vp = data3d.Viewpoint(azimuth=math.radians(azimuth_deg), elevation=math.radians(elevation_deg), theta=0.0,
                          distance=distance, focal=0.1, viewport=1000.0, px=(w - 1) / 2, py=(h - 1) / 2)
    obj = data3d.ObjectAnnotation(category=category, bbox=(40.0, 30.0, 120.0, 90.0), viewpoint=vp,
                                  cad_source="procedural", cad_id=f"{category}/0000", occlusion=occlusion,
                                  truncated=truncated)
    return data3d.ImageRecord(path, size, (obj,), extra=extra)


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "ds" / "images"
    images.mkdir(parents=True)
    recs = [_record(images / f"{i}.png", cat, az, occlusion=occ, truncated=tr, sample_id=f"s{i}")
            for i, (cat, az, occ, tr) in enumerate([("car", 10, 0, False), ("car", 100, 1, True),
                                                    ("chair", 200, 0, False), ("car", 355, 2, False)])]
    data3d.save_records(recs, tmp_path / "ds")
    return tmp_path / "ds"


def test_stats_count_what_the_records_hold(folder, tmp_path):
    recs = data3d.load_records(folder)
    stats = dataset_stats({"train": recs[:3], "val": recs[3:]})
    assert stats.by_split == {"train": {"images": 3, "objects": 3}, "val": {"images": 1, "objects": 1}}
    assert stats.by_category == {"car": 3, "chair": 1} and stats.by_occlusion == {"0": 2, "1": 1, "2": 1}
    assert (stats.truncated, stats.truncation_known, stats.truncation_rate) == (1, 4, 0.25)
    az = next(h for h in stats.histograms if h.name == "azimuth")
    # 30° bins: 10° -> bin 0, 100° -> 3, 200° -> 6, 355° -> 11
    assert az.counts == tuple(int(i in (0, 3, 6, 11)) for i in range(12)) and az.edges[0] == 0 and az.edges[-1] == 360
    el = next(h for h in stats.histograms if h.name == "elevation")
    assert el.counts[6] == 4  # 10° lies in [0°, 15°)
    text = format_stats(stats)
    assert "4 images, 4 objects" in text and "truncated: 1 of 4 objects (25.0%)" in text
    paths = write_stats_report(stats, tmp_path / "report")
    assert json.loads(paths["json"].read_text())["by_category"] == {"car": 3, "chair": 1}
    assert Image.open(paths["png"]).size[0] > 300 and "<table>" in paths["html"].read_text()


def test_show_projects_the_model_where_the_rasterizer_does(folder):
    recs = data3d.load_records(folder)
    index, rec = find_record(recs, "s2")
    assert index == 2 and find_record(recs, "2.png")[0] == 2 and find_record(recs, "-1")[0] == 3
    with pytest.raises(data3d.AnnotationError, match="no record has the id"):
        find_record(recs, "nope")
    rec = _record(folder / "images" / "near.png", "car", 200, distance=1.4)
    obj = rec.objects[0]
    mesh = record_mesh(obj)
    assert mesh is not None and mesh.num_faces > 0  # the procedural library rebuilds it from the mesh_ref
    cams = obj.viewpoint.to_cameras(rec.image_size, dtype=torch.float64)
    frags = raster.rasterize((mesh.vertices.double(), mesh.faces), cams.reshape(1))
    silhouette = (frags.pix_to_face[0] >= 0).numpy()
    near = cv2.dilate(silhouette.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)

    def agreement(record):
        drawn = draw_record(record, min_size=1)
        assert drawn.shape == (120, 160, 3)
        r, g, b = (drawn[..., k].astype(float) for k in range(3))
        painted = (b > 40) & (r < 40) & (g > 0.6 * b)  # the model's fill and outline (0, 200, 255) on black
        covered = (drawn.max(-1) > 30) & silhouette  # the model, the axes over it
        return covered.sum() / silhouette.sum(), (painted & near).sum() / painted.sum()

    recall, precision = agreement(rec)
    assert recall > 0.97 and precision > 0.97, (recall, precision)
    turned = dataclasses.replace(rec, objects=(dataclasses.replace(
        obj, viewpoint=dataclasses.replace(obj.viewpoint, azimuth=obj.viewpoint.azimuth + 1.2)),))
    assert agreement(turned)[1] < 0.9  # a wrong azimuth shows
    big = draw_record(rec)  # enlarged 3× (nearest) to at least 384 px, the camera with it
    assert big.shape == (360, 480, 3)
    r, g, b = (big[..., k].astype(float) for k in range(3))
    painted = (b > 40) & (r < 40) & (g > 0.6 * b)
    around = cv2.resize(near.astype(np.uint8), (480, 360), interpolation=cv2.INTER_NEAREST).astype(bool)
    # the camera was enlarged with the image: 3² times the area (less the axes), in the same place
    assert (painted & around).sum() / painted.sum() > 0.97 and painted.sum() > 6 * silhouette.sum()


def test_cli_stats_and_show(folder, tmp_path, capsys):
    assert cli_main(["data", "stats", str(folder), "--out", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    assert "car" in out and (tmp_path / "st" / "stats.html").is_file() and (tmp_path / "st" / "stats.png").is_file()
    assert cli_main(["data", "show", str(folder), "--id", "s1", "--out", str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size == (480, 360)
    # a user's mistake is one line, exit code 2
    assert cli_main(["data", "show", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing: no such folder" in err and "Traceback" not in err
    assert cli_main(["data", "stats", str(folder), "--pascal3d", str(folder)]) == 2
    assert "exactly one of" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["data", "stats", str(empty)]) == 2
    assert "holds no record shards" in capsys.readouterr().err
