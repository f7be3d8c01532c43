"""nemo.centernet: the COCO CenterNet as `--detector` (decoding checked on hand-made heatmaps; the real
model, when `make pretrained` has fetched it, on the photograph of docs/nemo.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
from test_tfjs import write_graph

from nemo.centernet import COCO_CLASSES, CocoDetector, coco_class, decode_heatmaps
from nemo.errors import NemoError

ROOT = Path(__file__).resolve().parents[1]


def _maps():
    heat = torch.zeros(80, 8, 8)
    heat[2, 3, 5] = 0.9          # a car peak
    heat[2, 3, 6] = 0.8          # its neighbour: not a 3 × 3 maximum
    heat[2, 7, 0] = 0.4          # a second car, below the threshold used
    heat[0, 1, 1] = 0.95         # a person
    sides = torch.zeros(4, 8, 8)
    sides[:, 3, 5] = torch.tensor([4.0, 2.0, 6.0, 8.0])   # left, top, right, bottom (input pixels)
    return heat, sides


def test_decoding_keeps_peaks_of_the_wanted_classes_and_places_the_box_around_the_cell():
    heat, sides = _maps()
    found = decode_heatmaps(heat, sides, [2], threshold=0.5, scale=(2.0, 3.0))
    # cell (y 3, x 5) at stride 4 is input pixel (20, 12): box (20-4, 12-2, 20+6, 12+8), then × (2, 3)
    assert found == [((32.0, 30.0, 52.0, 60.0), 2, pytest.approx(0.9))]
    assert [c for _, c, _ in decode_heatmaps(heat, sides, [0, 2], 0.3, (1.0, 1.0))] == [0, 2, 2]


def test_labels_are_coco_names_or_their_pascal3d_spelling():
    assert COCO_CLASSES[coco_class("car")] == "car" and COCO_CLASSES[coco_class("aeroplane")] == "airplane"
    assert COCO_CLASSES[coco_class("tvmonitor")] == "tv" and COCO_CLASSES[coco_class("Sofa")] == "couch"
    with pytest.raises(NemoError, match="'gizmo' is not one of them"):
        coco_class("gizmo")


def test_the_detector_answers_like_the_transformers_pipeline(tmp_path):
    from PIL import Image

    nodes = [{"name": "tower_0/keypoints", "op": "Identity", "input": ["x"], "attr": {}},
             {"name": "tower_0/wh", "op": "Identity", "input": ["x"], "attr": {}}]
    detector = CocoDetector(write_graph(tmp_path, nodes, {}))
    heat, sides = _maps()
    seen = {}

    def network(x):  # stands in for the graph: records what it is given, answers the hand-made maps
        seen["x"] = x
        return heat[None], sides[None]

    detector.graph = network
    image = Image.fromarray(np.full((100, 1024, 3), 255, np.uint8))        # W 1024, H 100
    found = detector(image, candidate_labels=["car"], threshold=0.5)
    assert seen["x"].shape == (1, 3, 512, 512) and float(seen["x"].max()) == 255.0
    assert found == [{"box": {"xmin": 32.0, "ymin": 10 * 100 / 512, "xmax": 52.0, "ymax": 20 * 100 / 512},
                      "label": "car", "score": pytest.approx(0.9)}]
    with pytest.raises(NemoError, match="not a file"):
        CocoDetector(tmp_path / "none.json")


MODEL = ROOT / "pretrained" / "centernet" / "centernet.json"


@pytest.mark.skipif(not MODEL.is_file(), reason="make pretrained has not fetched the CenterNet")
def test_the_fetched_centernet_finds_the_car_of_the_docs_photograph():
    import data3d
    from nemo.photo import detect

    image = data3d.load_image(ROOT.parent / "shared" / "data" / "photos" / "voc2008_000531_car.jpg")
    cars = detect(image, str(MODEL), ["car"], threshold=0.3)
    assert len(cars) == 1
    (x0, y0, x1, y1), (a0, b0, a1, b1) = cars[0].box, (246, 155, 465, 238)   # the box drawn by hand
    inter = max(0, min(x1, a1) - max(x0, a0)) * max(0, min(y1, b1) - max(y0, b0))
    assert inter / ((x1 - x0) * (y1 - y0) + (a1 - a0) * (b1 - b0) - inter) > 0.9
