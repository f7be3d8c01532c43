"""`aware3d view`: folder recognition, the pose helpers, nemo's crop → image viewpoint, the server's
start and clean stop, and a screenshot from headless Chromium that shows the mesh where it projects.

The browser test needs Debian's chromium (scripts/system-deps.sh installs it): without it the test
skips locally and fails under CI=true, like the real-data tests.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import data3d
import geom3d

viser = pytest.importorskip("viser", reason="viser is not installed (pip install 'aware3d[view]')")

from aware3d.view import ViewCamera, detect_kind, open_scene, screenshot, stop_server  # noqa: E402
from aware3d.view.common import camera_pose, frustum_scale, matrix_to_wxyz, vertical_fov  # noqa: E402

H, W = 72, 96


def _records_folder(root: Path, n: int = 2) -> Path:
    """n records of the procedural car 0 seen from around it (data3d finds its mesh by mesh_ref)."""
    records = []
    for i in range(n):
        vp = data3d.Viewpoint(azimuth=0.4 + 2.0 * i, elevation=0.35, theta=0.0, distance=3.0, focal=1.0,
                              viewport=110.0, px=(W - 1) / 2, py=(H - 1) / 2)
        image = np.full((H, W, 3), 180, np.uint8)
        path = root / "images" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
        records.append(data3d.ImageRecord(
            image_path=path, image_size=(H, W), extra={"split": "val"} if i else {},  # one without a split
            objects=[data3d.ObjectAnnotation(category="car", bbox=(5, 5, 90, 66), viewpoint=vp,
                                             cad_source="procedural", cad_id="car/0000")]))
    data3d.save_records(records, root, shard="t", format="json")
    return root


def _chromium_or_skip() -> None:
    if shutil.which(os.environ.get("AWARE3D_CHROMIUM", "chromium")) is None:
        reason = "headless Chromium is missing (Debian's 'chromium'; scripts/system-deps.sh installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def test_folders_are_recognised(tmp_path):
    records = _records_folder(tmp_path / "recs", 1)
    assert detect_kind(records) == "records"
    assert detect_kind(records / "records-t.json") == "records"
    (tmp_path / "splits" / "clean").mkdir(parents=True)
    shutil.copytree(records, tmp_path / "splits" / "clean", dirs_exist_ok=True)
    assert detect_kind(tmp_path / "splits") == "records"
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "predictions.jsonl").write_text("")
    assert detect_kind(tmp_path / "eval") == "poses"
    (tmp_path / "run" / "proxy").mkdir(parents=True)
    (tmp_path / "run" / "cameras.json").write_text("{}")
    assert detect_kind(tmp_path / "run") == "orbit4d"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a records folder"):
        detect_kind(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        detect_kind(tmp_path / "nowhere")


def test_camera_pose_places_a_geom3d_camera_as_viser_expects():
    """A viser node (wxyz, position) is the camera → world map: applying it to a point's camera
    coordinates gives back the world point (quaternion rotation written out by hand)."""
    angles = torch.tensor([0.7, 0.3, 0.2], dtype=torch.float64)
    cam = geom3d.viewpoint_to_cameras(*angles, 4.0, 1.0, 100.0, image_size=(H, W))
    R, t = cam.R.numpy(), cam.t.numpy()
    wxyz, position = camera_pose(R, t)
    X = np.array([0.3, -0.2, 0.5])
    Xc = R @ X + t
    w, v = wxyz[0], wxyz[1:]
    rotated = Xc + 2 * w * np.cross(v, Xc) + 2 * np.cross(v, np.cross(v, Xc))  # q · Xc · q*
    np.testing.assert_allclose(rotated + position, X, atol=1e-12)
    fov, aspect = vertical_fov(cam.K.numpy(), (H, W))
    assert math.isclose(math.tan(fov / 2) * 100.0, H / 2) and math.isclose(aspect, W / H)
    # the frustum's image plane depth, from viser's normalisation (scale / cbrt(tan² · aspect / 3))
    y = math.tan(fov / 2)
    assert math.isclose(frustum_scale(fov, aspect, 2.5) / (y * y * aspect / 3) ** (1 / 3), 2.5)
    assert np.allclose(matrix_to_wxyz(np.eye(3)), [1, 0, 0, 0])


def test_crop_viewpoint_goes_back_to_the_full_image():
    """nemo.evaluate stores the estimate in the full image's pixels: a point projected with the
    estimate in the crop, mapped back through the crop's pixel map, lands where the converted
    estimate projects it in the full image."""
    from nemo.evaluation import crop_to_image_viewpoint

    truth = data3d.Viewpoint(azimuth=0.5, elevation=0.2, theta=0.1, distance=5.0, focal=1.0, viewport=300.0,
                             px=70.0, py=40.0)
    image = torch.zeros(3, 120, 160)
    view = data3d.warp_object(data3d.ObjectView(image, truth, (40.0, 20.0, 110.0, 70.0)), (64, 64), 0.6, "bbox")
    crop_truth = view.viewpoint.as_dict()
    back = crop_to_image_viewpoint(crop_truth, crop_truth, truth)
    assert math.isclose(back["focal"] * back["viewport"], truth.focal * truth.viewport)
    assert math.isclose(back["px"], truth.px) and math.isclose(back["py"], truth.py)
    assert all(math.isclose(back[k], truth[k]) for k in ("azimuth", "elevation", "theta", "distance"))
    estimate = dict(crop_truth, azimuth=0.8, elevation=0.1, distance=4.0, px=crop_truth["px"] + 3.0, py=30.0)
    full = crop_to_image_viewpoint(estimate, crop_truth, truth)
    s = crop_truth["focal"] * crop_truth["viewport"] / (truth.focal * truth.viewport)
    x0 = s * (truth.px + 0.5) - 0.5 - crop_truth["px"]
    y0 = s * (truth.py + 0.5) - 0.5 - crop_truth["py"]
    point = torch.tensor([[0.3, -0.2, 0.4]], dtype=torch.float64)

    def project(vp, size):
        cam = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"], vp["focal"],
                                          vp["viewport"], principal=(vp["px"], vp["py"]), image_size=size)
        return cam.to(dtype=torch.float64).project(point)[0].numpy()

    u_crop = project(estimate, (64, 64))
    u_full = project(full, (120, 160))
    np.testing.assert_allclose(s * (u_full + 0.5) - 0.5 - np.array([x0, y0]), u_crop, atol=1e-9)


def test_viewer_prints_its_url_serves_the_page_and_stops_on_ctrl_c(tmp_path):
    folder = _records_folder(tmp_path / "recs", 1)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "aware3d", "view", str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        assert url, f"no URL printed; stderr: {proc.stderr.read()[-500:] if proc.poll() is not None else ''}"
        page = urllib.request.urlopen(url, timeout=30).read().decode("utf-8", "replace")
        assert "<html" in page.lower()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-500:]
    assert "stopping the viewer" in out


def _silhouette(mesh: geom3d.Mesh, camera: ViewCamera, size) -> np.ndarray:
    """Where the mesh covers a (H, W) image seen from `camera` (vertical fov, centred principal
    point, OpenCV axes), worked out here from the look-at definition."""
    h, w = size
    P, L, U = (np.asarray(v, dtype=np.float64) for v in (camera.position, camera.look_at, camera.up))
    z = (L - P) / np.linalg.norm(L - P)
    x = np.cross(z, U)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    f = (h / 2) / math.tan(camera.fov / 2)
    V = mesh.vertices.double().numpy() - P
    cam = np.stack([V @ x, V @ y, V @ z], axis=1)
    uv = np.stack([f * cam[:, 0] / cam[:, 2] + (w - 1) / 2, f * cam[:, 1] / cam[:, 2] + (h - 1) / 2], axis=1)
    mask = np.zeros((h, w), np.uint8)
    for tri in mesh.faces.numpy():
        cv2.fillPoly(mask, [np.round(uv[tri] * 16).astype(np.int32)], 1, shift=4)
    return mask.astype(bool)


@pytest.mark.slow
def test_screenshot_in_headless_chromium_shows_the_mesh_where_it_projects(tmp_path):
    _chromium_or_skip()
    folder = _records_folder(tmp_path / "recs", 2)
    size = (180, 240)
    camera = ViewCamera((1.2, -2.2, 1.0), (0.1, 0.0, 0.05), (0.0, 0.0, 1.0), math.radians(40.0))
    server, home, summary, kind, _ = open_scene(folder, show_cameras=False)  # only the mesh is drawn
    try:
        assert kind == "records" and "meshes found for 1 of 1" in " ".join(summary)
        picture = screenshot(server, camera, tmp_path / "shot.png", size=size, timeout=120)
    finally:
        stop_server(server)
    assert picture.shape == (*size, 3) and (tmp_path / "shot.png").is_file()
    drawn = np.abs(picture.astype(int) - 255).max(-1) > 12  # differs from the white background
    expected = _silhouette(data3d.procedural.make("car", 0), camera, size)
    assert expected.sum() > 500  # the mesh covers a good part of the view
    inner = cv2.erode(expected.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outer = cv2.dilate(expected.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert drawn[inner].mean() > 0.97, "the mesh is missing where it projects"
    assert drawn[~outer].mean() < 0.01, "something is drawn where the mesh does not project"
    iou = (drawn & expected).sum() / (drawn | expected).sum()
    assert iou > 0.9, iou


def _eval_folder(root: Path) -> tuple[Path, data3d.Viewpoint]:
    """An evaluation folder as nemo.evaluate writes it, by hand: one image showing the procedural
    car's silhouette at the true pose, one prediction 0.5 rad off in azimuth."""
    truth = data3d.Viewpoint(azimuth=0.6, elevation=0.3, theta=0.0, distance=3.0, focal=1.0, viewport=110.0,
                             px=(W - 1) / 2, py=(H - 1) / 2)
    cam = truth.to_cameras((H, W), dtype=torch.float64)
    frags = geom3d.rasterize(data3d.procedural.make("car", 0), cam)
    mask = (frags.pix_to_face >= 0).numpy()
    image = np.full((H, W, 3), 200, np.uint8)
    image[mask] = (200, 90, 30)  # BGR on disk
    root.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "car.png"), image)
    estimate = dict(truth.as_dict(), azimuth=truth.azimuth + 0.5)
    row = {"method": "nemo", "error": 0.5, "category": "car", "predicted": "car", "viewpoint": estimate,
           "split": "clean", "image": str(root / "car.png"), "item": 0, "object_index": 0,
           "mesh_ref": "procedural:car/0000", "truth": truth.as_dict(), "image_viewpoint": estimate}
    (root / "predictions.jsonl").write_text(json.dumps(row) + "\n")
    return root, truth


def test_evaluation_scene_and_its_errors(tmp_path):
    folder, _ = _eval_folder(tmp_path / "eval")
    server, home, summary, kind, _ = open_scene(folder)
    stop_server(server)
    assert kind == "poses" and "showing nemo example 0" in summary[0]
    assert home.position == (0.0, 0.0, 0.0) and home.look_at[2] == 6.0  # the image's camera, the image at 2·distance
    with pytest.raises(ValueError, match="no method 'x'"):
        open_scene(folder, method="x")
    row = json.loads((folder / "predictions.jsonl").read_text())
    del row["truth"]
    (folder / "predictions.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=r"line 1 has no truth \(written by an older aware3d"):
        open_scene(folder)


def test_demo_prints_viewer_commands_for_the_outputs_it_wrote(tmp_path):
    from aware3d.demo import viewer_commands

    out = tmp_path / "demo"
    _records_folder(out / "dataset", 1)
    (out / "orbit4d" / "run" / "proxy").mkdir(parents=True)
    (out / "orbit4d" / "run" / "cameras.json").write_text("{}")
    (out / "nemo" / "eval").mkdir(parents=True)  # no predictions yet: no command
    assert viewer_commands(out) == [f"aware3d view {out / 'dataset'}", f"aware3d view {out / 'orbit4d' / 'run'}"]


@pytest.mark.slow
def test_orbit4d_scene_from_a_small_run(tmp_path):
    from orbit4d.demo import run_demo_orbit

    run = run_demo_orbit(tmp_path / "orbit", frames=3, image_size=(48, 64))
    from aware3d.view.orbit import CURRENT_COLOUR
    from geom3d.trajectory import load_camera_path

    server, home, summary, kind, controls = open_scene(run)
    try:  # the sliders: one foreground cloud and one highlighted input camera per frame
        controls["input frame"].value = 2
        assert [h.visible for h in controls["foregrounds"]] == [False, False, True]
        assert [tuple(h.color) == CURRENT_COLOUR for h in controls["inputs"]] == [False, False, True]
        video_time = load_camera_path(run / "trajectory.json").video_time.tolist()
        last = len(controls["targets"]) - 1
        controls["target frame"].value = last
        assert controls["input frame"].value == min(2, round(video_time[last]))
        assert tuple(controls["targets"][last].color) == CURRENT_COLOUR
    finally:
        stop_server(server)
    assert kind == "orbit4d"
    assert summary[0] == "3 input cameras, 3 target cameras"
    assert "foreground per frame (3 frames)" in summary and any(s.startswith("background ") for s in summary)
    cams = json.loads((run / "cameras.json").read_text())
    ext = np.asarray(cams[json.loads((run / "manifest.json").read_text())["frames"][0]]["extrinsic"])
    centre = -ext[:, :3].T @ ext[:, 3]
    # the first view stands behind the first input camera, looking past it at the foreground
    to_look = np.asarray(home.look_at) - np.asarray(home.position)
    assert np.dot(to_look, np.asarray(home.look_at) - centre) > 0


def test_meshes_of_a_datagen_folder_are_found_through_its_asset_config(tmp_path):
    """A mesh_ref that data3d's lookup cannot resolve alone (a mesh folder's asset) is found through
    the asset sources of the records folder's config.yaml, as datagen loaded it (normalised)."""
    import trimesh

    from aware3d.view.records import MeshFinder

    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    box.apply_translation((3.0, 0.0, 0.0))
    (tmp_path / "meshes" / "car").mkdir(parents=True)
    box.export(tmp_path / "meshes" / "car" / "box.obj")
    folder = _records_folder(tmp_path / "ds", 1)
    (folder / "config.yaml").write_text(f"assets:\n  - type: folder\n    root: {tmp_path / 'meshes'}\n")
    obj = data3d.ObjectAnnotation(category="car", bbox=(5, 5, 90, 66),
                                  viewpoint=data3d.load_records(folder)[0].objects[0].viewpoint,
                                  cad_source="folder", cad_id="car/box.obj")
    assert obj.mesh_ref == "folder:car/box.obj"
    mesh = MeshFinder(folder)(obj)
    lo, hi = (b.double().numpy() for b in mesh.bounds())
    np.testing.assert_allclose(hi - lo, [1.0, 0.5, 0.25], atol=1e-6)
    np.testing.assert_allclose((hi + lo) / 2, 0.0, atol=1e-6)
    missing = data3d.ObjectAnnotation(category="car", bbox=(5, 5, 90, 66), viewpoint=obj.viewpoint,
                                      cad_source="folder", cad_id="car/none.obj")
    assert MeshFinder(folder)(missing) is None


def test_category_and_split_filters_hide_the_others(tmp_path):
    """The dropdowns act on the scene: a category or split hides the other objects' cameras and meshes
    (the callbacks run on assignment, as when a browser changes them)."""
    folder = _records_folder(tmp_path / "recs", 2)
    bus = data3d.ObjectAnnotation(category="bus", bbox=(5, 5, 90, 66),
                                  viewpoint=data3d.load_records(folder)[0].objects[0].viewpoint,
                                  cad_source="procedural", cad_id="bus/0000")
    record = data3d.ImageRecord(image_path=folder / "images" / "0.png", image_size=(H, W), objects=[bus],
                                extra={"split": "val"})
    data3d.save_records([record], folder, shard="u", format="json")
    viewer = open_scene(folder)
    try:
        c = viewer.controls
        assert c["category"].options == ("(all)", "bus", "car") and c["split"].options == ("(all)", "(none)", "val")

        def shown():
            return sorted((cat, split) for cat, split, h in c["frusta"] if h.visible), \
                sorted(ref for ref, h in c["mesh_nodes"].items() if h.visible)

        assert shown() == ([("bus", "val"), ("car", "(none)"), ("car", "val")],
                           ["procedural:bus/0000", "procedural:car/0000"])
        c["category"].value = "bus"
        assert shown() == ([("bus", "val")], ["procedural:bus/0000"])
        c["category"].value = "(all)"
        c["split"].value = "(none)"
        assert shown() == ([("car", "(none)")], ["procedural:car/0000"])
        c["cameras"].value = False
        assert shown() == ([], ["procedural:car/0000"])
    finally:
        stop_server(viewer.server)


@pytest.mark.slow
def test_evaluation_screenshot_puts_the_true_mesh_where_the_record_camera_sees_it(tmp_path):
    """Seen from the example's camera (the first view), the mesh at the true pose covers what
    geom3d's rasterizer draws with the record's camera, scaled to the screenshot (u' = 3(u + ½) − ½)."""
    _chromium_or_skip()
    folder, truth = _eval_folder(tmp_path / "eval")
    server, home, summary, kind, controls = open_scene(folder)
    try:
        controls["nodes"]["image"].visible = False
        controls["nodes"]["estimate"].visible = False
        picture = screenshot(server, home, tmp_path / "eval.png", size=(3 * H, 3 * W), timeout=120)
    finally:
        stop_server(server)
    expected = (geom3d.rasterize(data3d.procedural.make("car", 0),
                                 truth.resized(3).to_cameras((3 * H, 3 * W), dtype=torch.float64)).pix_to_face >= 0)
    expected = expected.numpy()
    drawn = np.abs(picture.astype(int) - 255).max(-1) > 12
    assert expected.sum() > 300
    iou = (drawn & expected).sum() / (drawn | expected).sum()
    assert iou > 0.9, iou
