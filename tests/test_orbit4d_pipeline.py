"""orbit4d end to end: scaffolds vs direct renders of the true scene, the run folder, the CLI on judo."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aware3d.cli import main
from geom3d import load_point_cloud
from geom3d.trajectory import arc_path, load_camera_path
from orbit4d.pipeline import Orbit4DInputs, Orbit4DOptions, run
from orbit4d.scaffold import HOLE_GREY, depth_to_image, render_scaffold
from orbit4d.synthetic import make_scene, render_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene(10, (96, 128), turn_degrees=40.0)


@pytest.fixture(scope="module")
def result(scene, tmp_path_factory):
    inputs = Orbit4DInputs(scene.frames, scene.names, scene.masks, scene.depth, scene.cameras)
    return run(inputs, tmp_path_factory.mktemp("orbit4d") / "run",
               Orbit4DOptions(trajectory="arc_yaw_30", num_output_frames=6))


def test_scaffold_depth_matches_a_direct_render_at_novel_cameras(scene, result):
    """Given depth and cameras: the scaffold at novel cameras (an arc 25° / −10° away) against the
    true scene rendered there, the object at its true pose at the frame shown."""
    background = load_point_cloud(result.out / "proxy" / "background.ply").points
    fgs = [(result.smoothed[i].apply(result.canonical.double()), None) for i in range(len(scene.names))]
    centre = float(np.median(scene.depth[0][scene.masks[0]]))
    frames = [0, 2, 4, 6, 9]
    path = arc_path(scene.cameras[0], centre, 5, yaw=math.radians(25), pitch=math.radians(-10), video_time=frames)
    sc = render_scaffold(background, None, fgs, path)
    obj = scene.object_poses[torch.tensor(frames)].apply(scene.object_mesh[0].double()[None])
    _, truth, truth_mask = render_scene(scene.object_mesh, scene.ground_mesh, obj, path.cameras)
    both = (sc.depth > 0) & (truth > 0)
    coverage = both.sum() / (truth > 0).sum()
    rel = np.abs(sc.depth[both] - truth[both]) / truth[both]
    fg = both & truth_mask
    fg_rel = np.abs(sc.depth[fg] - truth[fg]) / truth[fg]
    print(f"scaffold vs direct render: median rel. depth error {np.median(rel):.4f} (object {np.median(fg_rel):.4f}),"
          f" coverage {coverage:.3f}")
    assert np.median(rel) <= 0.01
    assert coverage > 0.6
    assert np.median(fg_rel) <= 0.02  # the moving object, placed by the alignment


def test_depth_image_uses_global_percentiles():
    d = np.zeros((2, 4, 4), np.float32)
    d[0, :2] = 1.0
    d[1, :2] = 3.0
    img = depth_to_image(d)
    assert (img[:, 2:] == HOLE_GREY).all()
    assert img[0, 0, 0] == 255 and img[1, 0, 0] == 16  # near bright in the first frame, far dark in the second


def test_run_folder(scene, result):
    res = result
    out = res.out
    for rel in ["proxy/background.ply", "proxy/canonical.ply", "proxy/foreground/00009.ply", "cameras.json",
                "alignment.json", "trajectory.json", "scaffold/rgb/00005.png", "scaffold/depth/00000.png",
                "scaffold/mask/00003.png", "scaffold_rgb.mp4", "scaffold_depth.mp4", "scaffold_mask.mp4",
                "report.html", "manifest.json", "report/overview.png"]:
        assert (out / rel).is_file(), rel
    align = json.loads((out / "alignment.json").read_text())
    assert set(align) >= {"sim3_ransac", "box_fit"}
    f3 = align["sim3_ransac"]["frames"][3]
    assert f3["frame"] == "00003" and len(f3["R"]) == 3 and len(f3["t"]) == 3 and f3["inliers"] > 0
    path = load_camera_path(out / "trajectory.json")
    assert len(path) == 6
    assert torch.allclose(path.cameras.R[0], scene.cameras.R[0]) and torch.allclose(path.cameras.t[0],
                                                                                     scene.cameras.t[0])
    assert "input" in (out / "report.html").read_text()


def test_run_folder_has_the_shape_every_method_writes(result):
    """manifest.json in methodkit's schema, config.yaml the resolved options, log.jsonl one line per stage."""
    from methodkit import RunFolder, check_manifest

    folder = RunFolder(result.out)
    manifest = folder.read_json("manifest.json")
    check_manifest(manifest)
    assert manifest["kind"] == "orbit4d" and manifest["status"] == "complete" and manifest["data"] == []
    assert manifest["frames"] == [f"{i:05d}" for i in range(10)] and manifest["counts"] == result.counts
    log = folder.read_log()
    assert [r["step"] for r in log] == list(range(1, manifest["step"] + 1))
    assert [r["stage"] for r in log] == list(result.times) == list(manifest["times_s"])
    assert {"alignment", "scaffold rendering", "writing scaffolds"} <= set(result.times)
    assert all(r["wall_s"] >= 0 and r["cpu_s"] >= 0 for r in log)
    options = Orbit4DOptions.from_mapping(folder.read_config())
    assert options == Orbit4DOptions(trajectory="arc_yaw_30", num_output_frames=6)
    assert not (result.out / ".lock").exists()


def test_a_rerun_replaces_a_run_written_before_the_shared_run_folder(scene, tmp_path):
    """A folder with the manifest orbit4d wrote before (options and counts, no kind) and a longer
    scaffold is an earlier orbit4d run: replaced whole, in the new shape."""
    out = tmp_path / "run"
    (out / "scaffold" / "rgb").mkdir(parents=True)
    (out / "scaffold" / "rgb" / "00099.png").write_bytes(b"an old frame")
    (out / "manifest.json").write_text(json.dumps({"options": {"fps": 10.0}, "counts": {"output_frames": 100}}))
    inputs = Orbit4DInputs(scene.frames[:3], scene.names[:3], scene.masks[:3], scene.depth[:3], scene.cameras[:3],
                           sources=["frames/", "masks/"])
    run(inputs, out, Orbit4DOptions(trajectory="static", num_output_frames=2))
    assert sorted(p.name for p in (out / "scaffold" / "rgb").iterdir()) == ["00000.png", "00001.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "orbit4d" and manifest["data"] == ["frames/", "masks/"] and "options" not in manifest


@pytest.mark.realdata
@pytest.mark.slow
def test_cli_smoke_on_judo(shared_data, tmp_path):
    """The real judo frames and palette masks (one 853 px wide) with a depth stand-in: a ground
    plane receding upwards, the masked person 1 m in front of it."""
    from PIL import Image

    frames_dir, masks_dir = shared_data / "video" / "judo" / "frames", shared_data / "video" / "judo" / "masks"
    names = sorted(p.stem for p in frames_dir.glob("*.jpg"))[:3]
    first = np.asarray(Image.open(masks_dir / "00000.png")) > 0
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    h, w = first.shape
    ground = (6.0 - 3.0 * np.arange(h) / h)[:, None] * np.ones((1, w))
    for name in names:
        np.save(depth_dir / f"{name}.npy", np.where(first, ground - 1.0, ground).astype(np.float32))
    out = tmp_path / "run"
    code = main(["orbit4d", "run", "--frames", str(frames_dir), "--masks", str(masks_dir), "--depth", str(depth_dir),
                 "--max-frames", "3", "--trajectory", "arc_yaw_15", "--out", str(out)])
    assert code == 0
    for rel in ["proxy/background.ply", "cameras.json", "alignment.json", "trajectory.json", "scaffold/rgb/00002.png",
                "scaffold_rgb.mp4", "report.html", "manifest.json"]:
        assert (out / rel).is_file(), rel
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("nearest masked frame" in w for w in manifest["warnings"])  # 00001, 00002 have no mask file
    assert main(["orbit4d", "run", "--frames", str(frames_dir), "--masks", str(masks_dir), "--out",
                 str(tmp_path / "x"), "--max-frames", "2"]) == 2  # no depth: a one-line error


def test_cli_on_a_synthetic_scene_written_to_disk(tmp_path):
    """Frames, palette masks, depth arrays and a global_camera.json on disk; the trajectory a
    camera_path JSON (bullet time at frame 2); the video stage with a tiny random WanVACE."""
    import cv2

    pytest.importorskip("diffusers")
    from geom3d.trajectory import bullet_time, save_camera_path
    from orbit4d.demo import write_inputs
    from orbit4d.video import tiny_wan_vace

    sc = make_scene(6, (64, 96), turn_degrees=20.0)
    write_inputs(sc, tmp_path, object_id=3)
    centre = float(np.median(sc.depth[0][sc.masks[0]]))
    save_camera_path(tmp_path / "path.json", bullet_time(arc_path(sc.cameras[0], centre, 4, yaw=0.3), 2))
    out = tmp_path / "run"
    model = tiny_wan_vace(tmp_path / "tiny-wan-vace")  # a random WanVACE pipeline, loaded by path
    code = main(["orbit4d", "run", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                 "--object-id", "3", "--depth", str(tmp_path / "depth"), "--cameras",
                 str(tmp_path / "global_camera.json"), "--trajectory", str(tmp_path / "path.json"), "--out", str(out),
                 "--video-model", str(model), "--video-steps", "2", "--prompt", "an object turning"])
    assert code == 0
    painted = sorted((out / "output").glob("*.png"))
    assert len(painted) == 4 and (out / "output.mp4").is_file()
    assert cv2.imread(str(painted[0])).shape == (64, 96, 3)
    assert "output.mp4" in (out / "report.html").read_text()
    path = load_camera_path(out / "trajectory.json")
    assert len(path) == 4 and bool((path.video_time == 2).all())
    cams = json.loads((out / "cameras.json").read_text())
    assert cams["image_size"] == [64, 96] and set(sc.names) <= set(cams)
    assert len(list((out / "scaffold" / "depth").glob("*.png"))) == 4
    manifest = json.loads((out / "manifest.json").read_text())  # the inputs, as the run folder's data
    assert manifest["data"] == [str(tmp_path / n) for n in ("frames", "masks", "depth", "global_camera.json")]
    assert "video model" in manifest["times_s"] and manifest["video_model"] == str(model)


def test_demo_orbit_writes_inputs_and_a_run(tmp_path):
    from orbit4d.demo import run_demo_orbit

    run_dir = run_demo_orbit(tmp_path / "orbit4d", frames=4, image_size=(48, 64))
    assert (run_dir / "report.html").is_file() and (run_dir / "scaffold_rgb.mp4").is_file()
    assert (tmp_path / "orbit4d" / "input" / "global_camera.json").is_file()
    assert len(list((tmp_path / "orbit4d" / "input" / "depth").glob("*.npy"))) == 4


def test_a_second_live_run_into_the_folder_is_refused(scene, tmp_path):
    import os
    import socket

    from aware3d_utils.lock import FolderLockedError

    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))  # a live process
    inputs = Orbit4DInputs(scene.frames[:2], scene.names[:2], scene.masks[:2], scene.depth[:2], scene.cameras[:2])
    with pytest.raises(FolderLockedError, match=f"pid {os.getppid()}.*lock .lock"):
        run(inputs, out, Orbit4DOptions(trajectory="static"))
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
