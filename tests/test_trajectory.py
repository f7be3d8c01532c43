"""geom3d.trajectory: arcs, dolly, zoom, keyframe splines, bullet time and camera_path JSON."""

from __future__ import annotations

import json
import math

import pytest
import roma
import torch

from geom3d import Cameras, GeometryError
from geom3d.trajectory import (
    CameraPath,
    arc_path,
    bullet_time,
    camera_path_from_dict,
    camera_path_to_dict,
    dolly_path,
    keyframe_path,
    load_camera_path,
    preset_path,
    save_camera_path,
    zoom_path,
)


def _camera(dtype=torch.float64):
    return Cameras.look_at(torch.tensor([0.4, -3.0, 1.2], dtype=dtype), torch.tensor([0.1, 0.2, 0.3], dtype=dtype),
                           focal=200.0, image_size=(120, 160))


def _centre(cams):
    return -(cams.R.transpose(-1, -2) @ cams.t[..., None])[..., 0]


def test_arc_with_radius_scale_one_starts_exactly_at_the_first_camera():
    cam = _camera()
    path = arc_path(cam, 2.5, 9, yaw=math.radians(40), pitch=math.radians(-10))
    assert torch.equal(path.cameras.R[0], cam.R) and torch.equal(path.cameras.t[0], cam.t)
    assert torch.equal(path.video_time, torch.arange(9, dtype=torch.float64))


def test_arc_keeps_the_centre_in_view_at_constant_distance():
    cam = _camera()
    depth = 2.5
    centre = _centre(cam) + depth * cam.R[2]
    path = arc_path(cam, depth, 7, yaw=math.radians(90), pitch=math.radians(20), roll=math.radians(15),
                    radius_scale=1.5)
    uv, z = path.cameras.project(centre.expand(7, 1, 3), return_depth=True)
    torch.testing.assert_close(z[:, 0], torch.full((7,), 1.5 * depth, dtype=torch.float64), rtol=0, atol=1e-12)
    # the centre stays on every optical axis (principal point)
    torch.testing.assert_close(uv[:, 0], torch.tensor([[79.5, 59.5]] * 7, dtype=torch.float64), rtol=0, atol=1e-9)
    # the last camera is turned by the composed angles relative to the first
    rel = path.cameras.R[-1].T @ path.cameras.R[0]  # world turn G (as a rotation of camera frames)
    angle = float(roma.rotmat_geodesic_distance(path.cameras.R[-1], cam.R))
    assert angle > math.radians(60) and torch.allclose(rel @ rel.T, torch.eye(3, dtype=torch.float64))


def test_arc_yaw_turns_about_the_first_camera_up_axis():
    cam = _camera()
    path = arc_path(cam, 2.0, 3, yaw=math.radians(30))
    c = _centre(path.cameras)
    up = -cam.R[1]
    # the camera centres stay in the plane through the start perpendicular to the up axis
    torch.testing.assert_close((c - c[0]) @ up, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
    turn = roma.rotmat_geodesic_distance(path.cameras.R[2], cam.R)
    assert abs(math.degrees(float(turn)) - 30) < 1e-9


def test_dolly_and_zoom():
    cam = _camera()
    d = dolly_path(cam, 0.5, 6)
    torch.testing.assert_close(_centre(d.cameras)[-1] - _centre(cam), 0.5 * cam.R[2], rtol=0, atol=1e-12)
    z = zoom_path(cam, 2.0, 5)
    torch.testing.assert_close(z.cameras.fx, 200 * 2.0 ** torch.linspace(0, 1, 5, dtype=torch.float64))
    torch.testing.assert_close(z.cameras.cx, cam.cx.expand(5))


def test_keyframe_path_passes_through_keyframes_and_is_smooth():
    cam = _camera()
    keys = arc_path(cam, 2.0, 4, yaw=math.radians(60), pitch=math.radians(10)).cameras
    path = keyframe_path(keys, 16, key_frames=[0, 5, 10, 15])
    for j, kf in zip([0, 5, 10, 15], range(4)):
        torch.testing.assert_close(path.cameras.R[j], keys.R[kf], rtol=0, atol=1e-12)
        torch.testing.assert_close(path.cameras.t[j], keys.t[kf], rtol=0, atol=1e-12)
    c = _centre(path.cameras)
    step = (c[1:] - c[:-1]).norm(dim=-1)
    assert float(step.max() / step.min()) < 2.0  # no jumps between frames
    ang = roma.rotmat_geodesic_distance(path.cameras.R[1:], path.cameras.R[:-1])
    assert float(ang.max()) < math.radians(6)
    with pytest.raises(GeometryError, match="increasing"):
        keyframe_path(keys, 16, key_frames=[0, 5, 5, 15])


def test_catmull_rom_positions_match_the_closed_form():
    """Uniform Catmull-Rom midpoint: (−p0 + 9 p1 + 9 p2 − p3) / 16."""
    pts = torch.tensor([[0.0, 0, 0], [1, 0.5, 0], [2, 0, 0.3], [3, 1, 0]], dtype=torch.float64)
    R = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    keys = Cameras(torch.tensor([[100.0, 0, 50], [0, 100, 50], [0, 0, 1]], dtype=torch.float64), R,
                   -pts, (100, 100))
    path = keyframe_path(keys, 7, key_frames=[0, 2, 4, 6])
    mid = _centre(path.cameras)[3]
    torch.testing.assert_close(mid, (-pts[0] + 9 * pts[1] + 9 * pts[2] - pts[3]) / 16, rtol=0, atol=1e-12)


def test_camera_path_json_round_trip(tmp_path):
    cam = _camera()
    path = bullet_time(arc_path(cam, 2.0, 5, roll=0.3, radius_scale=1.2), 3)
    file = tmp_path / "traj.json"
    save_camera_path(file, path)
    data = json.loads(file.read_text())
    assert data["image_size"] == [120, 160] and len(data["camera_path"]) == 5
    assert len(data["camera_path"][0]["extrinsic"]) == 3 and len(data["camera_path"][0]["extrinsic"][0]) == 4
    back = load_camera_path(file)
    assert torch.equal(back.cameras.R, path.cameras.R) and torch.equal(back.cameras.t, path.cameras.t)
    assert torch.equal(back.cameras.K, path.cameras.K) and torch.equal(back.video_time, torch.full((5,), 3.0,
                                                                                                 dtype=torch.float64))
    # the released tool's keys: 'timestep' only, image size under metadata
    released = {"camera_path": [{"timestep": i, "extrinsic": f["extrinsic"], "intrinsic": f["intrinsic"]}
                                for i, f in enumerate(data["camera_path"])], "metadata": {"image_size": [120, 160]}}
    again = camera_path_from_dict(released)
    assert torch.equal(again.video_time, torch.arange(5, dtype=torch.float64))
    assert camera_path_to_dict(again)["camera_path"][2]["extrinsic"] == data["camera_path"][2]["extrinsic"]


def test_camera_path_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GeometryError, match="bad.json"):
        load_camera_path(bad)
    with pytest.raises(GeometryError, match="camera_path"):
        camera_path_from_dict({"frames": []})
    with pytest.raises(GeometryError, match="3×4"):
        camera_path_from_dict({"image_size": [2, 2], "camera_path": [{"extrinsic": [[1, 0]], "intrinsic": [[1]]}]})


def test_presets():
    cam = _camera()
    p = preset_path("arc_yaw_22p5_scale_1p0", cam, 2.0, 5)
    assert abs(math.degrees(float(roma.rotmat_geodesic_distance(p.cameras.R[-1], cam.R))) - 22.5) < 1e-9
    assert len(preset_path("dolly_-0p3", cam, 2.0, 4)) == 4
    assert isinstance(preset_path("zoom_1p5", cam, 2.0, 3), CameraPath)
    with pytest.raises(GeometryError, match="unknown trajectory preset"):
        preset_path("spiral", cam, 2.0, 3)
