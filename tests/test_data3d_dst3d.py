"""3D-DST's released labels: a fixture written in their format (annotation/NNN.npy dicts with
Blender's camera, RGBA renders) is loaded into our convention; points projected with Blender's own
camera model (matrix_world, lens / sensor width) must land where the record's camera puts them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import data3d
from data3d import AnnotationError

RENDER = 512
LENS, SENSOR = 35.0, 32.0


def track_to(theta, phi, dist):
    """Blender's camera matrix_world for a camera at d·(sin φ cos θ, sin φ sin θ, cos φ) tracking the
    origin with −Z forward and +Y up (TRACK_TO, UP_Y): columns right, up, back, location."""
    c = dist * np.array([math.sin(phi) * math.cos(theta), math.sin(phi) * math.sin(theta), math.cos(phi)])
    back = c / np.linalg.norm(c)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    M = np.eye(4)
    M[:3, 0], M[:3, 1], M[:3, 2], M[:3, 3] = right, up, back, c
    return M


def blender_project(M, points, width):
    """Pixel centres (0-based, integer centres) of world points seen by Blender's camera `M`."""
    cam = (np.linalg.inv(M) @ np.c_[points, np.ones(len(points))].T).T[:, :3]
    f = LENS / SENSOR * width
    depth = -cam[:, 2]
    return np.stack([width / 2 + f * cam[:, 0] / depth - 0.5, width / 2 - f * cam[:, 1] / depth - 0.5], 1)


def write_sample(model_dir, index, theta, phi, distance, source, shape_id, generated=None, **over):
    for sub in ("image_render", "annotation"):
        (model_dir / sub).mkdir(parents=True, exist_ok=True)
    rgba = np.zeros((RENDER, RENDER, 4), np.uint8)
    rgba[200:300, 150:350] = (90, 120, 200, 255)  # the object's silhouette: columns 150..349, rows 200..299
    Image.fromarray(rgba).save(model_dir / "image_render" / f"{index:03d}.png")
    if generated:
        (model_dir / "image_generated").mkdir(exist_ok=True)
        Image.fromarray(np.full((generated, generated, 3), 128, np.uint8)).save(
            model_dir / "image_generated" / f"{index:03d}_00.png")
    annot = {"theta": theta, "phi": phi, "dist": distance, "camera_rotation": 0.0, "principal": np.array([256, 256]),
             "source": source, "shape_id": shape_id, "rendering_scale": 0.8, "rendering_offset": np.zeros(3),
             "azimuth": 0.0, "elevation": 0.0, "pose_sampling": 3, "strength": 1,
             "matrix_world": track_to(theta, phi, distance), "focal_length": LENS, "sensor_width": SENSOR,
             "sensor_height": 24.0, **over}
    np.save(model_dir / "annotation" / f"{index:03d}", annot)


@pytest.fixture
def release(tmp_path):
    write_sample(tmp_path / "02958343" / "1a2b", 0, -math.pi / 2, math.pi / 3, 1.6, "shapenet", "1a2b", generated=256)
    write_sample(tmp_path / "n02690373" / "uid9", 0, 0.0, math.pi / 2, 2.0, "objaverse", "uid9", generated=256)
    write_sample(tmp_path / "n02690373" / "uid9", 1, 2.0, 1.1, 1.3, "objaverse", "uid9", generated=256)
    return tmp_path


def test_dst3d_labels_convert_to_our_convention(release):
    recs = data3d.load_dst3d(release, strict=True)
    assert len(recs) == 3 and recs.skipped == {}
    by = {(r.objects[0].cad_id, r.annotation_path.stem): r for r in recs}
    # hand values: Blender θ = 0 (camera on +x) is PASCAL3D+ azimuth π/2; φ = π/2 is elevation 0
    side = by[("uid9", "000")].objects[0]
    assert side.viewpoint.azimuth == pytest.approx(math.pi / 2) and side.viewpoint.elevation == pytest.approx(0.0)
    # ShapeNet faces Blender's +Y: θ = −π/2 (camera on −y, the front arc) sees the model's back, a = π
    back = by[("1a2b", "000")].objects[0]
    assert back.viewpoint.azimuth == pytest.approx(math.pi) and back.viewpoint.elevation == pytest.approx(math.pi / 6)
    assert back.category == "car" and back.mesh_ref == "shapenet:car/1a2b" and side.category == "n02690373"
    # intrinsics: fx = 35/32 · 512, principal point at the image centre; bbox from the render's alpha
    assert side.viewpoint.focal_pixels == pytest.approx(560.0) and side.viewpoint.px == pytest.approx(255.5)
    assert side.bbox == (150.0, 200.0, 349.0, 299.0)


@pytest.mark.parametrize("source", ["shapenet", "objaverse"])
def test_record_cameras_project_like_blender(release, source):
    recs = data3d.load_dst3d(release, strict=True)
    world_to_object = np.diag([-1.0, -1.0, 1.0]) if source == "shapenet" else np.eye(3)
    points = np.random.default_rng(0).uniform(-0.4, 0.4, (50, 3))
    for r in recs:
        obj = r.objects[0]
        if obj.cad_source != source:
            continue
        annot = np.load(r.annotation_path, allow_pickle=True).item()
        expected = blender_project(annot["matrix_world"], points, RENDER)
        cams = obj.viewpoint.to_cameras(r.image_size, dtype=torch.float64)
        ours = cams.project(torch.from_numpy(points @ world_to_object.T))
        np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6)


def test_generated_images_get_the_rescaled_camera_and_box(release):
    recs = data3d.load_dst3d(release, image_folder="image_generated", image_suffix="_00", strict=True)
    obj = recs[0].objects[0]
    assert recs[0].image_size == (256, 256) and recs[0].image_path.name == "000_00.png"
    assert obj.viewpoint.focal_pixels == pytest.approx(280.0) and obj.viewpoint.px == pytest.approx(127.5)
    # u' = ½(u + ½) − ½: columns 150..349 become 74.75..174.25
    assert obj.bbox == pytest.approx((74.75, 99.75, 174.25, 149.25))


def test_malformed_dst3d_annotations_are_skipped_or_raise(release):
    model = release / "n02690373" / "uid9"
    write_sample(model, 2, 0.5, 1.0, 1.5, "objaverse", "uid9", dist="far")
    write_sample(model, 3, 0.5, 1.0, 1.5, "objaverse", "uid9", matrix_world=track_to(0.9, 1.0, 1.5))
    (model / "annotation" / "004.npy").write_bytes(b"")
    (model / "image_render" / "004.png").write_bytes((model / "image_render" / "000.png").read_bytes())
    recs = data3d.load_dst3d(release)
    assert len(recs) == 3 and recs.skipped == {"bad_annotation": 3}
    text = " ".join(p for _, p in recs.problems)
    assert "002.npy: field 'dist'" in text and "003.npy: field 'matrix_world'" in text and "004.npy" in text
    with pytest.raises(AnnotationError, match="002.npy: field 'dist'"):
        data3d.load_dst3d(release, strict=True)
    with pytest.raises(AnnotationError, match="cannot be read as a 3D-DST release: no such folder"):
        data3d.load_dst3d(release / "missing")
