"""A generated view's `relative_pose` is stored as three numbers; sets written before, which hold it as
a JSON string, keep loading and training the same (pose.sets.relative_pose_of reads both)."""

from __future__ import annotations

import json
import math

import pytest

import data3d
from pose.errors import PoseError
from pose.sets import is_source_view, load_sets, relative_pose_of
from pose.training import calibration_views

POSES = [[0.0, 0.0, 0.0], [0.1, 2 * math.pi / 9, 0.0], [-0.25, 4 * math.pi / 9, 0.5]]


def _write_set(root, relative_pose):
    """A sets folder of one set (the source and two views) as generate_sets lays it out, its
    `relative_pose` written by `relative_pose` (a list -> the stored value)."""
    data3d.register_categories(["car"])
    folder = root / "set_00000"
    records = []
    for k, pose in enumerate(POSES):
        vp = data3d.Viewpoint(azimuth=pose[1] % (2 * math.pi), elevation=0.2 - pose[0], theta=0.0,
                              distance=4.0 + pose[2], focal=1.0, viewport=100.0, px=32.0, py=24.0)
        obj = data3d.ObjectAnnotation(category="car", bbox=(10.0, 8.0, 50.0, 40.0), viewpoint=vp,
                                      extra={"set": "set_00000", "frame": "source_camera",
                                             "relative_pose": relative_pose(pose)})
        records.append(data3d.ImageRecord(folder / f"view_{k:03d}.png", (48, 64), (obj,),
                                          extra={"set": "set_00000", "frame": "source_camera",
                                                 "synthesizer": "render", "source": str(root / "source.png")}))
    data3d.save_records(records, folder, shard="000000")
    (root / "sets.json").write_text(json.dumps({"category": "car", "sets": [{"id": "set_00000", "views": 3}]}))
    return load_sets(root)


@pytest.fixture
def both(tmp_path):
    new = _write_set(tmp_path / "new", lambda p: [float(x) for x in p])
    old = _write_set(tmp_path / "old", lambda p: json.dumps([float(x) for x in p]))  # before: a JSON string
    return new, old


def test_relative_pose_is_stored_as_numbers_and_the_old_string_form_reads_the_same(both):
    new, old = both
    stored_new = [r.objects[0].extra["relative_pose"] for r in new[0].records]
    stored_old = [r.objects[0].extra["relative_pose"] for r in old[0].records]
    assert stored_new == POSES and all(isinstance(x, float) for p in stored_new for x in p)
    assert all(isinstance(s, str) for s in stored_old)
    for a, b, want in zip(new[0].records, old[0].records, POSES):
        assert relative_pose_of(a.objects[0]) == relative_pose_of(b.objects[0]) == tuple(want)  # exact
    assert [is_source_view(r.objects[0]) for r in old[0].records] == [True, False, False]
    assert [is_source_view(r.objects[0]) for r in new[0].records] == [True, False, False]


def test_training_reads_an_old_sets_folder_as_a_new_one(both, tmp_path):
    """pose.train's one-shot calibration views: the same views and angles from either form."""
    new, old = both
    ref = new[0].records[0]
    ref = data3d.ImageRecord(tmp_path / "new" / "source.png", ref.image_size, ref.objects)
    views_new, angles_new = calibration_views(new, ref)
    views_old, angles_old = calibration_views(old, data3d.ImageRecord(tmp_path / "old" / "source.png",
                                                                      ref.image_size, ref.objects))
    assert len(views_new) == len(views_old) == 3
    assert angles_new.tolist() == angles_old.tolist()
    assert angles_new[1].tolist() == pytest.approx([(0.0 + POSES[1][1]), 0.2 - POSES[1][0], 0.0])


def test_a_malformed_relative_pose_is_an_error_naming_the_key():
    vp = {"azimuth": 0.0, "elevation": 0.0, "theta": 0.0, "distance": 4.0, "px": 0.0, "py": 0.0}
    for bad in ("[0.1, 0.2]", "not json", [1.0, 2.0]):
        obj = data3d.ObjectAnnotation(category="car", bbox=(0.0, 0.0, 1.0, 1.0), viewpoint=vp,
                                      extra={"relative_pose": bad})
        with pytest.raises(PoseError, match="extra.relative_pose"):  # the package error (a ValueError)
            relative_pose_of(obj)
    assert relative_pose_of(data3d.ObjectAnnotation(category="car", bbox=(0.0, 0.0, 1.0, 1.0), viewpoint=vp)) is None
