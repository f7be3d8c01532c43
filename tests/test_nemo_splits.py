"""nemo.splits: OOD test splits from a datagen training config (occlusion levels, unseen CAD shapes,
high elevations, kornia corruptions), tagged so that evaluation reports each split."""

import math

import pytest

import data3d
from nemo.data import split_of
from nemo.splits import make_ood_splits

TRAIN = {"seed": 2, "image_size": 64, "samples_per_category": 2, "occlusion": ["none"],
         "assets": [{"type": "procedural", "categories": ["car"], "count": 2}]}


def test_ood_splits(tmp_path):
    made = make_ood_splits(TRAIN, tmp_path, splits=["occlusion", "unseen_cad", "high_elevation", "fog", "noise",
                                                    "seen_cad"])
    assert set(made) == {"occlusion", "unseen_cad", "high_elevation", "fog", "noise", "seen_cad"}
    seen = data3d.load_records(made["seen_cad"])  # the training shapes at other viewpoints
    assert {split_of(r, r.objects[0]) for r in seen} == {"seen_cad"}
    assert {r.objects[0].cad_id for r in seen} == {"car/0000", "car/0001"}
    occ = data3d.load_records(made["occlusion"])
    assert sorted({split_of(r, r.objects[0]) for r in occ}) == ["L1", "L2", "L3", "clean"]
    cad = data3d.load_records(made["unseen_cad"])
    assert {split_of(r, r.objects[0]) for r in cad} == {"unseen_cad"}
    assert {r.objects[0].cad_id for r in cad}.isdisjoint({"car/0000", "car/0001"})  # other shapes than training
    high = data3d.load_records(made["high_elevation"])
    assert all(math.radians(59.9) <= r.objects[0].viewpoint.elevation <= math.radians(85.1) for r in high)
    clean = {r.objects[0].viewpoint.azimuth: r for r in occ if split_of(r, r.objects[0]) == "clean"}
    for kind in ("fog", "noise"):
        records = data3d.load_records(made[kind])
        assert len(records) == len(clean) and {split_of(r, r.objects[0]) for r in records} == {kind}
        r = records[0]
        original = clean[r.objects[0].viewpoint.azimuth]
        a = data3d.load_image(r.image_path)
        b = data3d.load_image(original.image_path)
        assert a.shape == b.shape and float((a - b).abs().mean()) > 0.02  # really corrupted
        assert r.objects[0].viewpoint == original.objects[0].viewpoint  # same annotation
    again = make_ood_splits(TRAIN, tmp_path, splits=["occlusion"])  # a rerun keeps one shard per folder
    assert len(data3d.load_records(again["occlusion"])) == len(occ)


@pytest.mark.realdata
def test_unseen_cad_split_of_a_cad_folder_holds_the_excluded_models(tmp_path, shared_data):
    train = {"seed": 2, "image_size": 32, "samples_per_category": 3, "occlusion": ["none"],
             "assets": [{"type": "off", "root": str(shared_data / "pascal3d_cad"), "categories": ["car", "sofa"],
                         "exclude": ["car/03", "sofa/0[45]"]}]}
    made = make_ood_splits(train, tmp_path, splits=["unseen_cad"])
    cad = data3d.load_records(made["unseen_cad"])
    assert {r.objects[0].cad_id for r in cad} <= {"car/03", "sofa/04", "sofa/05"}
    assert {r.objects[0].category for r in cad} == {"car", "sofa"}
    assert not make_ood_splits({**train, "assets": [{**train["assets"][0], "exclude": []}]}, tmp_path / "none",
                               splits=["unseen_cad"])  # nothing held out, no split
