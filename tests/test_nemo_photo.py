"""From photographs to poses (nemo.photo, `aware3d nemo pose --boxes/--detector`) and the real-image
evaluation's extra numbers (flip rate, elevation bias, jittered boxes)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from PIL import Image
from test_nemo_train import TINY

import data3d
import nemo
from aware3d.cli import main
from nemo.contrastive import contrastive_loss, neighbour_radius, vertex_targets
from nemo.evaluation import summarise
from nemo.photo import crop_boxes, detect, to_photo_pixels

DATAGEN = {"seed": 1, "image_size": 64, "samples_per_category": 4, "occlusion": ["none"],
           "assets": [{"type": "procedural", "categories": ["car"], "count": 1}]}


def _row(az, el, az_gt, el_gt=0.0):
    return {"error": 0.1, "cls_correct": True, "viewpoint": {"azimuth": az, "elevation": el},
            "azimuth_gt": az_gt, "elevation_gt": el_gt}


def test_summarise_flip_rate_and_elevation_bias():
    d = math.radians
    rows = [_row(d(10), d(12), d(350), d(2)),    # 20° off across 0: right azimuth
            _row(d(185), d(0), d(0), d(5)),      # 175° off: a front/back flip
            _row(d(100), d(30), d(280), d(0)),   # 180° off: a flip
            _row(d(90), d(8), d(0), d(0))]       # 90° off: neither
    m = summarise(rows)
    assert m["azimuth_pi6"] == 0.25 and m["flip_rate"] == 0.5
    # estimated − true elevations: 10, −5, 30, 8 → median of the middle two (8, 10) by torch: the lower, 8
    assert m["elevation_bias_deg"] == pytest.approx(8.0)


def test_neighbour_radius_relative_to_the_object():
    bbox = torch.tensor([[10.0, 10.0, 59.0, 29.0], [0.0, 0.0, 19.0, 99.0]])
    r = neighbour_radius(0.1, "object", (128, 128), bbox)
    torch.testing.assert_close(r, torch.tensor([5.0, 10.0]))
    assert neighbour_radius(0.1875, "crop", (128, 96), bbox) == 24.0
    # a per-image radius equal everywhere gives the scalar radius's loss; a different one changes it
    mesh = data3d.procedural.make("car", 0)
    import geom3d

    bank = nemo.MeshBank({"car": geom3d.cuboid_from_meshes([mesh], num_vertices=120)}, feature_dim=16, clutter_size=32)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([0.3, 2.0]), 0.2, 0.0, 3.0, focal=1.0, viewport=200.0,
                                       image_size=(64, 64))
    feats = torch.nn.functional.normalize(torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    t = vertex_targets(feats, cams, bank, torch.tensor([0, 0]), 8, 5, torch.Generator().manual_seed(1))
    a, _ = contrastive_loss(t, bank, radius=12.0)
    b, _ = contrastive_loss(t, bank, radius=torch.tensor([12.0, 12.0]))
    c, _ = contrastive_loss(t, bank, radius=torch.tensor([12.0, 0.0]))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_photo_crops_round_trip_through_object_dataset(tmp_path):
    """A box cropped by nemo.photo gives the same pixels as ObjectDataset's crop of a record with that
    box, and a viewpoint in that crop maps back to the photo's pixels exactly."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 90, 160, generator=gen)
    path = tmp_path / "photo.png"
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(path)
    image = data3d.load_image(path)
    config = nemo.resolve_config(dict(TINY, data=dict(TINY["data"], crop_size=[64, 64])))
    model = nemo.NemoModel(torch.nn.Identity(), None, config, ["car"])
    box, f = (100.0, 30.0, 140.0, 60.0), 300.0
    true = data3d.Viewpoint(azimuth=1.0, elevation=0.2, theta=0.05, distance=9.0, focal=f, viewport=1.0,
                            px=121.3, py=47.8)
    record = data3d.ImageRecord(image_path=path, image_size=(90, 160),
                                objects=(data3d.ObjectAnnotation(category="car", bbox=box, viewpoint=true),))
    item = nemo.data.object_dataset([record], config, ["car"], train=False)[0]
    crops, K = crop_boxes(model, image, [box, (0, 0, 50, 80)], "car", focal=f)
    assert crops.shape == (2, 3, 64, 64)
    torch.testing.assert_close(crops[0], item["image"])
    in_crop = dict(zip(data3d.VIEWPOINT_KEYS, item["viewpoint"].tolist()))
    back = to_photo_pixels(in_crop, K[0], f, (120.0, 45.0))  # the virtual camera looked at the box centre
    for key in ("azimuth", "elevation", "theta", "distance", "px", "py"):
        assert back[key] == pytest.approx(getattr(true, key), abs=1e-6)
    assert back["focal"] * back["viewport"] == pytest.approx(f)
    with pytest.raises(nemo.NemoError, match="box 0"):
        crop_boxes(model, image, [(5, 5, 5, 9)], "car")
    with pytest.raises(nemo.NemoError, match="outside"):
        crop_boxes(model, image, [(200, 5, 250, 9)], "car")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("photo")
    (root / "datagen.yaml").write_text(yaml.safe_dump(DATAGEN))
    assert main(["datagen", "--config", str(root / "datagen.yaml"), "--out", str(root / "data"), "--no-progress"]) == 0
    config = dict(TINY, meshes={"type": "procedural", "count": 1}, train={"steps": 2, "log_every": 1,
                                                                        "checkpoint_every": 2})
    nemo.train([root / "data"], root / "run", config)
    return root


def test_pose_command_with_boxes_and_a_detector(tiny_run, tmp_path, capsys):
    from nemo.photo import build_tiny_detector

    images = sorted((tiny_run / "data" / "images" / "car").glob("*.png"))[:2]
    boxes = {images[0].name: [[5, 5, 40, 30], [20, 20, 60, 60]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "pose"
    assert main(["nemo", "pose", "--run", str(tiny_run / "run"), "--images", *map(str, images), "--boxes",
                 str(tmp_path / "boxes.json"), "--category", "car", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 objects in 1 records" in printed and "skipped 1" in printed  # the second image has no boxes
    (record,) = data3d.load_records(out)
    assert [o.bbox for o in record.objects] == [(5, 5, 40, 30), (20, 20, 60, 60)]
    assert (out / "overlays" / f"{images[0].stem}.png").is_file()
    (tmp_path / "bad.json").write_text(json.dumps({images[0].name: [[1, 2, 3]]}))
    assert main(["nemo", "pose", "--run", str(tiny_run / "run"), "--images", str(images[0]), "--boxes",
                 str(tmp_path / "bad.json"), "--out", str(tmp_path / "x")]) == 2
    assert "bad.json" in capsys.readouterr().err
    detector = build_tiny_detector(tmp_path / "owl")
    found = detect(data3d.load_image(images[0]), str(detector), ["car"], threshold=0.0, max_boxes=3)
    assert 1 <= len(found) <= 3 and [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    assert all(0 <= d.box[0] < d.box[2] <= 63 and 0 <= d.box[1] < d.box[3] <= 63 for d in found)
    assert main(["nemo", "pose", "--run", str(tiny_run / "run"), "--images", str(images[0]), "--detector",
                 str(detector), "--threshold", "0", "--category", "car", "--out", str(tmp_path / "det")]) == 0
    (record,) = data3d.load_records(tmp_path / "det")
    assert 1 <= len(record.objects) <= 10


def test_half_turn_loss_prefers_the_true_pose_over_its_half_turn():
    """Oracle feature maps (the bank's own features rendered at a pose): the front/back term is small
    when the maps show the true pose and large when they show the object turned half a turn."""
    import geom3d
    from nemo.oracle import oracle_feature_maps

    mesh = geom3d.cuboid_mesh((-0.5, -0.22, -0.15), (0.5, 0.22, 0.15), 300)
    bank = nemo.MeshBank({"car": mesh}, feature_dim=32, seed=0)
    az = torch.tensor([0.3, 1.2, 2.8])
    gen = torch.Generator().manual_seed(0)

    def cams(a):
        return geom3d.viewpoint_to_cameras(a, 0.2, 0.05, 5.0, focal=150.0, viewport=1.0, image_size=(64, 64))

    true = cams(az)
    index = torch.zeros(3, dtype=torch.long)
    losses = {}
    for name, shown in (("true", true), ("turned", cams(az + math.pi))):
        maps = oracle_feature_maps(bank, ["car"] * 3, shown, gen)  # at full resolution: stride 1
        t = vertex_targets(maps, true, bank, index, 1, 4, gen)
        losses[name], info = nemo.contrastive.half_turn_loss(maps, true, t, bank, 1, temperature=0.1)
    assert losses["true"] < 0.05 and losses["turned"] > 2.0, losses
