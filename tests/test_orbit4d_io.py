"""orbit4d inputs: frames (folder, MP4), masks (binary, palette, off-by-one), depth, global_camera.json."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from geom3d import Cameras
from orbit4d.io import Orbit4DInputError, read_cameras, read_depth, read_frames, read_masks, write_cameras
from orbit4d.scaffold import write_video


def _frames(n=3, h=12, w=16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_frame_folder_and_mp4(tmp_path):
    frames = _frames()
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), f[..., ::-1])
    got, names = read_frames(tmp_path)
    assert names == ["00000", "00001", "00002"] and np.array_equal(got, frames)
    ramp = np.linspace(0, 255, 32)[None, None, :, None] * np.ones((4, 24, 32, 3))  # smooth: survives the codec
    video = ramp.astype(np.uint8)
    write_video(tmp_path / "v.mp4", video, fps=5)
    got, names = read_frames(tmp_path / "v.mp4")
    assert got.shape == video.shape and names[0] == "00000"
    assert np.abs(got.astype(float) - video).mean() < 20  # lossy codec
    with pytest.raises(Orbit4DInputError, match="nothing|no such"):
        read_frames(tmp_path / "missing")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(Orbit4DInputError, match="bad.mp4"):
        read_frames(tmp_path / "bad.mp4")


def test_palette_and_binary_masks_with_resize_and_fill(tmp_path):
    lab = np.zeros((12, 16), np.uint8)
    lab[2:6, 3:8] = 1
    lab[7:10, 9:14] = 2
    img = Image.fromarray(lab, mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    img.save(tmp_path / "00000.png")
    Image.fromarray(np.where(lab[:, :15] == 2, 255, 0).astype(np.uint8)).save(tmp_path / "00002.png")  # 15 wide
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ms = read_masks(tmp_path, ["00000", "00001", "00002"], (12, 16), object_id=None)
    text = " ".join(str(w.message) for w in caught)
    assert "resized" in text and "nearest masked frame" in text
    assert ms.resized == ("00002",) and ms.filled == ("00001",)
    assert np.array_equal(ms.masks[0], lab > 0) and np.array_equal(ms.masks[1], ms.masks[0])
    only2 = read_masks(tmp_path, ["00000"], (12, 16), object_id=2).masks[0]
    assert np.array_equal(only2, lab == 2)
    with pytest.raises(Orbit4DInputError, match="object id 7"):
        read_masks(tmp_path, ["00000"], (12, 16), object_id=7)
    with pytest.raises(Orbit4DInputError, match="no mask named"):
        read_masks(tmp_path, ["zzz"], (12, 16))
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(Orbit4DInputError, match="empty.png|every mask is empty"):
        read_masks(tmp_path, ["empty"], (12, 16))


def test_depth_arrays(tmp_path):
    np.save(tmp_path / "a.npy", np.full((4, 5), 2.0, np.float32))
    np.save(tmp_path / "b.npy", np.zeros((4, 5), np.float32))
    assert read_depth(tmp_path, ["a"], (4, 5)).shape == (1, 4, 5)
    with pytest.raises(Orbit4DInputError, match="b.npy.*no positive"):
        read_depth(tmp_path, ["b"], (4, 5))
    with pytest.raises(Orbit4DInputError, match="c.npy"):
        read_depth(tmp_path, ["c"], (4, 5))


def test_global_camera_json_round_trip(tmp_path):
    cams = Cameras.look_at(torch.tensor([[0.0, -3, 1], [0.5, -3, 1]], dtype=torch.float64), (0, 0, 0), (0, 0, 1),
                           focal=50.0, image_size=(40, 60))
    write_cameras(tmp_path / "global_camera.json", cams, ["00000", "00001"])
    data = json.loads((tmp_path / "global_camera.json").read_text())
    assert data["image_size"] == [40, 60] and len(data["00001"]["extrinsic"]) == 3
    back = read_cameras(tmp_path / "global_camera.json", ["00000", "00001"], (40, 60))
    assert torch.equal(back.R, cams.R) and torch.equal(back.t, cams.t) and torch.equal(back.K, cams.K)
    with pytest.raises(Orbit4DInputError, match="no camera for frame '00009'"):
        read_cameras(tmp_path / "global_camera.json", ["00009"], (40, 60))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        half = read_cameras(tmp_path / "global_camera.json", ["00000"], (20, 30))
    assert half.image_size == (20, 30) and abs(float(half.fx[0]) - 25.0) < 1e-12


def test_consistent_scale_undoes_per_frame_scale_drift():
    from orbit4d.depth_model import consistent_scale

    rng = np.random.default_rng(1)
    base = rng.uniform(2, 6, (1, 20, 30)).astype(np.float32)
    drift = np.array([1.0, 1.3, 0.7, 2.0], np.float32)[:, None, None]
    masks = np.zeros((4, 20, 30), bool)
    masks[:, 5:10, 5:10] = True
    scaled = base * drift
    scaled[2, 5:10, 5:10] = 50.0  # the moving object: ignored by the background ratio
    out = consistent_scale(scaled, masks)
    np.testing.assert_allclose(out[:, ~masks[0]], np.broadcast_to(base, (4, 20, 30))[:, ~masks[0]], rtol=1e-5)


def test_transformers_depth_model_through_the_cli(tmp_path):
    """A tiny random Depth Anything by path: depth for every frame, positive and finite, the
    first frame's median at --depth-median; the run completes and says the depth was estimated."""
    pytest.importorskip("transformers")
    from aware3d.cli import main
    from orbit4d.depth_model import TransformersDepth, tiny_depth_model
    from orbit4d.synthetic import make_scene

    model = tiny_depth_model(tmp_path / "tiny-depth")
    sc = make_scene(4, (48, 64), turn_degrees=10.0)
    depth = TransformersDepth(model, median_depth=4.0)(sc.frames, sc.masks)
    assert depth.shape == (4, 48, 64) and np.isfinite(depth).all() and (depth > 0).all()
    assert abs(float(np.median(depth[0])) - 4.0) < 1e-3
    for sub in ("frames", "masks"):
        (tmp_path / sub).mkdir()
    for i, name in enumerate(sc.names):
        cv2.imwrite(str(tmp_path / "frames" / f"{name}.png"), sc.frames[i][..., ::-1])
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.where(sc.masks[i], 255, 0).astype(np.uint8))
    out = tmp_path / "run"
    assert main(["orbit4d", "run", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                 "--depth-model", str(model), "--trajectory", "arc_yaw_10", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("depth estimated by" in w for w in manifest["warnings"])
    assert (out / "scaffold_rgb.mp4").is_file()
