"""An orbit4d run folder in 3D (the files `orbit4d.pipeline` writes):

- proxy/background.ply, and the foreground per input frame (proxy/foreground/<frame>.ply, shown
  one at a time by the "input frame" slider), else proxy/canonical.ply;
- the input cameras (cameras.json) with their frames (input.mp4) on the frusta, the slider's frame
  highlighted;
- the target path (trajectory.json): its cameras with the scaffold frame (scaffold/rgb/NNNNN.png) on
  each, and a line through their centres; the "target frame" slider highlights one and moves the input
  frame to its video time.
The world is the cameras' world; the scene's up is the input cameras' mean up (−y of OpenCV).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from .common import ViewCamera, camera_pose, frustum_scale, load_thumbnail, vertical_fov

__all__ = ["build_orbit4d_scene"]

log = logging.getLogger(__name__)

INPUT_COLOUR, TARGET_COLOUR, CURRENT_COLOUR = (31, 119, 180), (255, 127, 14), (214, 39, 40)


def _cloud(path: Path, max_points: int, rng: np.random.Generator, problems: list[str]):
    """(points (N, 3) float32, colours (N, 3) uint8) of a PLY, at most `max_points` (a random subset);
    an unreadable file gives no points and a line in `problems`."""
    from geom3d import MeshError, load_point_cloud

    try:
        cloud = load_point_cloud(path)
    except MeshError as exc:
        problems.append(str(exc))
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    pts = cloud.points.double().numpy()
    cols = (np.full(pts.shape, 0.6) if cloud.colors is None else cloud.colors.double().numpy())
    if len(pts) > max_points:
        keep = np.sort(rng.choice(len(pts), max_points, replace=False))
        pts, cols = pts[keep], cols[keep]
    return pts.astype(np.float32), (np.clip(cols, 0, 1) * 255 + 0.5).astype(np.uint8)


def _frame_names(run: Path) -> list[str]:
    manifest = run / "manifest.json"
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text())
            frames = doc.get("frames") if isinstance(doc, dict) else None
            if isinstance(frames, list) and frames and all(isinstance(f, str) for f in frames):
                return frames
        except (OSError, ValueError):  # a manifest this viewer cannot use: the cameras' frame names
            pass
    try:
        data = json.loads((run / "cameras.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{run / 'cameras.json'}: cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{run / 'cameras.json'}: must hold an object keyed by frame name")
    return [k for k in data if k != "image_size"]


def _input_frames(run: Path, count: int, side: int) -> list:
    """Thumbnails of the input video (input.mp4), or Nones."""
    import cv2

    video = run / "input.mp4"
    out = []
    if video.is_file():
        cap = cv2.VideoCapture(str(video))
        while len(out) < count:
            ok, frame = cap.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            k = min(1.0, side / max(h, w))
            frame = cv2.resize(frame, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
            out.append(np.ascontiguousarray(frame[..., ::-1]))
        cap.release()
    return out + [None] * (count - len(out))


def build_orbit4d_scene(server, run: str | Path, *, max_points: int = 200_000, image_side: int = 160):
    """Fill `server` with the run's clouds, cameras, target path and scaffolds and the sliders;
    returns (home ViewCamera, summary lines, controls: the sliders and scene nodes by name)."""
    from geom3d.trajectory import load_camera_path
    from orbit4d.io import read_cameras

    run = Path(run)
    names = _frame_names(run)
    cams = read_cameras(run / "cameras.json", names)
    rng = np.random.default_rng(0)
    scene, gui = server.scene, server.gui
    R = cams.R.double().numpy()
    t = cams.t.double().numpy()
    centres = -np.einsum("nji,nj->ni", R, t)
    up = -R[:, 1, :].mean(0)
    up = up / max(np.linalg.norm(up), 1e-12)
    scene.set_up_direction(tuple(float(v) for v in up))

    proxy = run / "proxy"
    clouds_seen, problems = [], []
    focus = None
    if (proxy / "background.ply").is_file():
        pts, cols = _cloud(proxy / "background.ply", max_points, rng, problems)
        extent = float(np.linalg.norm(np.percentile(pts, 95, 0) - np.percentile(pts, 5, 0))) if len(pts) else 1.0
        scene.add_point_cloud("/clouds/background", pts, cols, point_size=max(extent, 1e-6) / 200,
                              precision="float32")
        clouds_seen.append(f"background {len(pts)} points")
    fg_files = [proxy / "foreground" / f"{n}.ply" for n in names]
    foregrounds = []
    if fg_files and all(f.is_file() for f in fg_files):
        for i, f in enumerate(fg_files):
            pts, cols = _cloud(f, max(1, max_points // 4), rng, problems)
            foregrounds.append(scene.add_point_cloud(f"/clouds/foreground/{i:05d}", pts, cols,
                                                     point_size=_point_size(pts), visible=i == 0,
                                                     precision="float32"))
            if i == 0 and len(pts):
                focus = pts.mean(0)
        clouds_seen.append(f"foreground per frame ({len(fg_files)} frames)")
    elif (proxy / "canonical.ply").is_file():
        pts, cols = _cloud(proxy / "canonical.ply", max_points, rng, problems)
        scene.add_point_cloud("/clouds/canonical", pts, cols, point_size=_point_size(pts), precision="float32")
        focus = pts.mean(0) if len(pts) else None
        clouds_seen.append("canonical foreground (one cloud)")

    size = cams.image_size
    distances = np.linalg.norm(centres - (focus if focus is not None else centres.mean(0)), axis=1)
    depth = 0.15 * float(np.median(distances)) if len(distances) and np.median(distances) > 0 else 0.2
    frames = _input_frames(run, len(names), image_side)
    inputs = []
    for i in range(len(names)):
        wxyz, pos = camera_pose(R[i], t[i])
        fov, aspect = vertical_fov(cams.K[i].double().numpy(), size)
        inputs.append(scene.add_camera_frustum(
            f"/input/{i:05d}", fov=fov, aspect=aspect, scale=frustum_scale(fov, aspect, depth), color=INPUT_COLOUR,
            image=frames[i], wxyz=wxyz, position=pos, thickness=0.01 * depth))

    targets, video_time = [], None
    if (run / "trajectory.json").is_file():
        path = load_camera_path(run / "trajectory.json", image_size=size)
        video_time = path.video_time.double().numpy()
        pc = path.cameras
        scaffolds = sorted((run / "scaffold" / "rgb").glob("*.png"))
        tcentres = []
        for k in range(len(path)):
            Rk, tk = pc.R[k].double().numpy(), pc.t[k].double().numpy()
            wxyz, pos = camera_pose(Rk, tk)
            tcentres.append(pos)
            fov, aspect = vertical_fov(pc.K[k].double().numpy(), pc.image_size)
            image = load_thumbnail(scaffolds[k], image_side) if k < len(scaffolds) else None
            targets.append(scene.add_camera_frustum(
                f"/target/{k:05d}", fov=fov, aspect=aspect, scale=frustum_scale(fov, aspect, depth),
                color=TARGET_COLOUR, image=image, wxyz=wxyz, position=pos, thickness=0.01 * depth))
        if len(tcentres) > 1:
            scene.add_spline_catmull_rom("/target/path", np.asarray(tcentres), color=TARGET_COLOUR,
                                         thickness=0.02 * depth)

    gui.add_markdown(f"**orbit4d run** `{run.name}`  \n{len(names)} input frames, {len(targets)} target cameras; "
                     + "; ".join(clouds_seen))
    # viser's sliders need max > min: one frame still gets a slider, over [0, 1] and disabled
    frame_slider = gui.add_slider("input frame", 0, max(1, len(names) - 1), 1, 0, disabled=len(names) < 2)
    target_slider = gui.add_slider("target frame", 0, max(1, len(targets) - 1), 1, 0, disabled=len(targets) < 2)
    show_inputs = gui.add_checkbox("input cameras", True)
    show_targets = gui.add_checkbox("target path", True)

    def on_frame(_=None) -> None:
        i = min(int(frame_slider.value), len(names) - 1)
        for j, h in enumerate(foregrounds):
            h.visible = j == i
        for j, h in enumerate(inputs):
            h.color = CURRENT_COLOUR if j == i else INPUT_COLOUR
            h.visible = show_inputs.value

    def on_target(_=None) -> None:
        k = int(target_slider.value)
        for j, h in enumerate(targets):
            h.color = CURRENT_COLOUR if j == k else TARGET_COLOUR
            h.visible = show_targets.value
        if video_time is not None and len(names) > 1 and k < len(video_time):
            frame_slider.value = int(np.clip(round(float(video_time[k])), 0, len(names) - 1))

    frame_slider.on_update(on_frame)
    target_slider.on_update(on_target)
    show_inputs.on_update(on_frame)
    show_targets.on_update(on_target)
    on_frame()
    on_target()

    # home: behind and above the first input camera, looking at the foreground
    look = focus if focus is not None else centres.mean(0)
    back = centres[0] - look
    dist = float(np.linalg.norm(back)) or 1.0
    position = look + 1.8 * back + 0.6 * dist * up
    home = ViewCamera(tuple(float(v) for v in position), tuple(float(v) for v in look),
                      tuple(float(v) for v in up), math.radians(55.0))
    summary = [f"{len(names)} input cameras, {len(targets)} target cameras", *clouds_seen, *problems[:5]]
    controls = {"input frame": frame_slider, "target frame": target_slider, "foregrounds": foregrounds,
                "inputs": inputs, "targets": targets}
    return home, summary, controls


def _point_size(pts: np.ndarray) -> float:
    if len(pts) < 2:
        return 0.01
    extent = float(np.linalg.norm(pts.max(0) - pts.min(0)))
    return max(extent, 1e-6) / 150
