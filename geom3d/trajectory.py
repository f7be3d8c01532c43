"""Camera trajectories for re-rendering a video: arcs, dolly, zoom, keyframe splines, bullet time.

A `CameraPath` is a batch of N cameras (one per output frame) with the input-video time each
output frame shows (`video_time`, in input frames; a constant for bullet time).

- `arc_path`: orbit about a centre on the first camera's optical axis, `centre_depth` in front
  of it, turning by yaw (about the first camera's up axis, −y), pitch (its x axis) and roll (its
  optical axis), each swept linearly from 0; the camera keeps looking the way the first camera
  looks, turned with the orbit. `radius_scale` moves the start back along the optical axis
  (radius = radius_scale · centre_depth): with radius_scale 1 the path starts exactly at the first camera.
- `dolly_path` (along the optical axis), `zoom_path` (focal length, geometric steps).
- `keyframe_path`: Catmull-Rom positions (scipy's CubicHermiteSpline with Catmull-Rom tangents)
  and a C² rotation spline (scipy's RotationSpline), through the keyframes exactly.
- `bullet_time`: a fixed video time for every output frame.
- `camera_path_to_dict` / `camera_path_from_dict` / `save_camera_path` / `load_camera_path`: the
  FreeOrbit4D `camera_path` JSON (per output frame: `extrinsic` 3×4 world-to-camera (OpenCV),
  `intrinsic` 3×3, `timestep` (the output frame) and `video_time`; top-level `image_size` [H, W]).
- `preset_path`: named presets such as `arc_yaw_30`, `arc_pitch_-15_scale_1p5`, `dolly_0p2`, `zoom_1p5`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aware3d_utils.deprecation import renamed_arguments

from .cameras import Cameras
from .errors import GeometryError

__all__ = ["CameraPath", "arc_path", "dolly_path", "zoom_path", "keyframe_path", "bullet_time", "preset_path",
           "camera_path_to_dict", "camera_path_from_dict", "save_camera_path", "load_camera_path"]


@dataclass(frozen=True)
class CameraPath:
    """cameras: Cameras of batch shape (N,); video_time: (N,) float64 input-frame time per output frame."""

    cameras: Cameras
    video_time: torch.Tensor

    def __post_init__(self):
        if not isinstance(self.cameras, Cameras) or len(self.cameras.batch_shape) != 1:
            raise GeometryError("CameraPath needs Cameras of batch shape (N,)")
        vt = torch.as_tensor(self.video_time, dtype=torch.float64).reshape(-1)
        if vt.numel() == 1 and len(self.cameras) != 1:
            vt = vt.expand(len(self.cameras)).clone()
        if vt.shape != (len(self.cameras),) or not torch.isfinite(vt).all():
            raise GeometryError(f"CameraPath: video_time must be {len(self.cameras)} finite values")
        object.__setattr__(self, "video_time", vt)

    def __len__(self) -> int:
        return len(self.cameras)


def _first(camera: Cameras) -> Cameras:
    if not isinstance(camera, Cameras):
        raise GeometryError(f"expected a geom3d.Cameras, got {type(camera).__name__}")
    if camera.batch_shape:
        camera = camera.reshape(-1)[0]
    return camera


def _times(video_time, n: int) -> torch.Tensor:
    """(n,) float64 video times: 0..n−1 by default, a number for all frames, or n values."""
    if video_time is None:
        return torch.arange(n, dtype=torch.float64)
    vt = torch.as_tensor(video_time, dtype=torch.float64).reshape(-1)
    return vt.expand(n).clone() if vt.numel() == 1 else vt


def _count(num_frames) -> int:
    n = int(num_frames)
    if n < 1:
        raise GeometryError(f"a camera path needs at least 1 frame, got {num_frames}")
    return n


def _axis_rotation(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotations (N, 3, 3) by angles (N,) about one unit axis (3,) (Rodrigues)."""
    x, y, z = axis.unbind(-1)
    zero = torch.zeros((), dtype=axis.dtype)
    Kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero]).reshape(3, 3)
    a = angle[:, None, None]
    return torch.eye(3, dtype=axis.dtype) + torch.sin(a) * Kx + (1 - torch.cos(a)) * (Kx @ Kx)


@renamed_arguments(center_depth="centre_depth")
def arc_path(first_camera: Cameras, centre_depth: float, num_frames: int, *, yaw: float = 0.0, pitch: float = 0.0,
             roll: float = 0.0, radius_scale: float = 1.0, video_time=None) -> CameraPath:
    """An orbit starting at (or, radius_scale > 1, behind) the first camera; angles in radians.

    Frame i of N turns by (yaw, pitch, roll)·i/(N−1) about the centre C0 + centre_depth·f0
    (C0 the first camera's centre, f0 its viewing direction). The turn composes yaw (about the
    first camera's up axis) ∘ pitch (its x axis) ∘ roll (its optical axis), all through the centre;
    each camera's orientation is the first camera's, turned the same way.
    """
    cam = _first(first_camera)
    n = _count(num_frames)
    depth, scale = float(centre_depth), float(radius_scale)
    if not (depth > 0 and math.isfinite(depth)) or not (scale > 0 and math.isfinite(scale)):
        raise GeometryError(f"arc_path: centre_depth and radius_scale must be positive, got {centre_depth}, "
                            f"{radius_scale}")
    R0, dtype = cam.R, cam.R.dtype
    C0 = -(R0.T @ cam.t)
    right, up, forward = R0[0], -R0[1], R0[2]  # the first camera's axes in world coordinates
    centre = C0 + depth * forward
    start = centre - scale * depth * forward
    tau = torch.linspace(0.0, 1.0, n, dtype=dtype) if n > 1 else torch.zeros(1, dtype=dtype)
    G = (_axis_rotation(up, yaw * tau) @ _axis_rotation(right, pitch * tau) @ _axis_rotation(forward, roll * tau))
    positions = centre + (G @ (start - centre))  # (N, 3)
    R = R0 @ G.transpose(-1, -2)  # camera-to-world rotation G·R0ᵀ, transposed
    t = -(R @ positions[..., None])[..., 0]
    if scale == 1.0:  # exactly the first camera at frame 0 (no round-off through the centre)
        R[0], t[0] = R0, cam.t
    cams = Cameras(cam.K.expand(n, 3, 3), R, t, cam.image_size, check=False)
    return CameraPath(cams, _times(video_time, n))


def dolly_path(first_camera: Cameras, distance: float, num_frames: int, *, video_time=None) -> CameraPath:
    """Move along the first camera's optical axis by `distance` (positive: forwards), linearly."""
    cam = _first(first_camera)
    n = _count(num_frames)
    steps = torch.linspace(0.0, float(distance), n, dtype=cam.dtype) if n > 1 else torch.zeros(1, dtype=cam.dtype)
    # a forward move by d shifts camera coordinates by −d along z
    t = cam.t - steps[:, None] * torch.tensor([0.0, 0.0, 1.0], dtype=cam.dtype)
    return CameraPath(Cameras(cam.K.expand(n, 3, 3), cam.R.expand(n, 3, 3), t, cam.image_size, check=False),
                      _times(video_time, n))


def zoom_path(first_camera: Cameras, factor: float, num_frames: int, *, video_time=None) -> CameraPath:
    """Scale the focal length from 1× to `factor`× in equal ratios (principal point kept)."""
    cam = _first(first_camera)
    n = _count(num_frames)
    if not float(factor) > 0:
        raise GeometryError(f"zoom_path: factor must be positive, got {factor}")
    ratio = torch.as_tensor(float(factor), dtype=cam.dtype) ** (torch.linspace(0, 1, n, dtype=cam.dtype)
                                                                  if n > 1 else torch.zeros(1, dtype=cam.dtype))
    K = cam.K.expand(n, 3, 3).clone()
    K[:, 0, 0] *= ratio
    K[:, 0, 1] *= ratio
    K[:, 1, 1] *= ratio
    return CameraPath(Cameras(K, cam.R.expand(n, 3, 3), cam.t.expand(n, 3), cam.image_size, check=False),
                      _times(video_time, n))


def keyframe_path(keyframes: Cameras, num_frames: int, *, key_frames=None, video_time=None) -> CameraPath:
    """Interpolate K >= 2 keyframe cameras into `num_frames` cameras.

    key_frames: the output frame index of each keyframe (increasing; default evenly spread from 0
    to num_frames − 1). Positions: a Catmull-Rom spline (tangents (p[k+1] − p[k−1]) / (s[k+1] − s[k−1]),
    one-sided at the ends); rotations: scipy's RotationSpline (C², through the keyframes);
    intrinsics: linear. Output frames at a keyframe's index reproduce that keyframe.
    """
    from scipy.interpolate import CubicHermiteSpline, interp1d
    from scipy.spatial.transform import Rotation, RotationSpline

    if not isinstance(keyframes, Cameras) or len(keyframes.batch_shape) != 1 or len(keyframes) < 2:
        raise GeometryError("keyframe_path needs Cameras of batch shape (K,), K >= 2")
    n, k = _count(num_frames), len(keyframes)
    s = (np.linspace(0, n - 1, k) if key_frames is None else np.asarray(key_frames, dtype=np.float64))
    if s.shape != (k,) or not np.all(np.diff(s) > 0):
        raise GeometryError(f"keyframe_path: key_frames must be {k} increasing output-frame indices, got {s}")
    R = keyframes.R.detach().cpu().double().numpy()
    centres = -np.einsum("kji,kj->ki", R, keyframes.t.detach().cpu().double().numpy())
    tangents = np.empty_like(centres)
    tangents[1:-1] = (centres[2:] - centres[:-2]) / (s[2:] - s[:-2])[:, None]
    tangents[0] = (centres[1] - centres[0]) / (s[1] - s[0])
    tangents[-1] = (centres[-1] - centres[-2]) / (s[-1] - s[-2])
    out = np.clip(np.arange(n, dtype=np.float64), s[0], s[-1])
    pos = CubicHermiteSpline(s, centres, tangents, axis=0)(out)
    c2w = RotationSpline(s, Rotation.from_matrix(np.transpose(R, (0, 2, 1))))(out).as_matrix()
    Kmat = interp1d(s, keyframes.K.detach().cpu().double().numpy(), axis=0)(out)
    dtype = keyframes.dtype
    Rw2c = torch.from_numpy(np.transpose(c2w, (0, 2, 1)).copy()).to(dtype)
    t = -(Rw2c @ torch.from_numpy(pos).to(dtype)[..., None])[..., 0]
    hit = np.isin(np.arange(n), s)  # frames on a keyframe: that keyframe exactly
    for j in np.flatnonzero(hit):
        kk = int(np.flatnonzero(s == j)[0])
        Rw2c[j], t[j] = keyframes.R[kk].detach().cpu(), keyframes.t[kk].detach().cpu()
    cams = Cameras(torch.from_numpy(Kmat).to(dtype), Rw2c, t, keyframes.image_size)
    return CameraPath(cams, _times(video_time, n))


def bullet_time(path: CameraPath, video_time: float) -> CameraPath:
    """The same cameras, all showing input frame `video_time` (a frozen moment)."""
    return CameraPath(path.cameras, torch.full((len(path),), float(video_time), dtype=torch.float64))


_NUMBER = r"(-?\d+(?:p\d+)?)"


@renamed_arguments(center_depth="centre_depth")
def preset_path(name: str, first_camera: Cameras, centre_depth: float, num_frames: int, *,
                video_time=None) -> CameraPath:
    """A named preset (decimal point written 'p', as in FreeOrbit4D's trajectory names):
    `arc_<yaw|pitch|roll>_<degrees>[_scale_<radius scale>]`, `dolly_<distance>`, `zoom_<factor>`,
    `static` (the first camera held). Unknown names raise GeometryError listing the forms."""
    def num(text):
        return float(text.replace("p", "."))

    m = re.fullmatch(rf"arc_(yaw|pitch|roll)_{_NUMBER}(?:_scale_{_NUMBER})?", name)
    if m:
        angle = math.radians(num(m.group(2)))
        return arc_path(first_camera, centre_depth, num_frames, radius_scale=num(m.group(3) or "1"),
                        video_time=video_time, **{m.group(1): angle})
    m = re.fullmatch(rf"dolly_{_NUMBER}", name)
    if m:
        return dolly_path(first_camera, num(m.group(1)), num_frames, video_time=video_time)
    m = re.fullmatch(rf"zoom_{_NUMBER}", name)
    if m:
        return zoom_path(first_camera, num(m.group(1)), num_frames, video_time=video_time)
    if name == "static":
        return dolly_path(first_camera, 0.0, num_frames, video_time=video_time)
    raise GeometryError(f"unknown trajectory preset {name!r}; known forms: arc_<yaw|pitch|roll>_<deg>[_scale_<s>], "
                        "dolly_<distance>, zoom_<factor>, static (write decimal points as 'p', e.g. arc_yaw_22p5)")


# ---------------------------------------------------------------------------------------- JSON
def camera_path_to_dict(path: CameraPath) -> dict:
    """The FreeOrbit4D `camera_path` form (plain lists, float64 values)."""
    cams = path.cameras.to(dtype=torch.float64)
    ext = torch.cat([cams.R, cams.t[..., None]], -1)
    frames = []
    for i in range(len(path)):
        vt = float(path.video_time[i])
        frames.append({"output_frame": i, "timestep": i, "video_time": int(vt) if vt.is_integer() else vt,
                       "extrinsic": ext[i].tolist(), "intrinsic": cams.K[i].tolist()})
    h, w = cams.image_size
    return {"image_size": [h, w], "camera_path": frames, "metadata": {"image_size": [h, w], "coordinate_system":
                                                                     "OpenCV (x right, y down, z forward)"}}


def camera_path_from_dict(data: dict, source: str = "camera path", image_size=None, dtype=torch.float64) -> CameraPath:
    """Read the `camera_path` form; `image_size` (H, W) is used when the data names none.

    video_time comes from `video_time`, else `timestep`, else the frame's position."""
    if not isinstance(data, dict) or not isinstance(data.get("camera_path"), list) or not data["camera_path"]:
        raise GeometryError(f"{source}: expected an object with a non-empty 'camera_path' list")
    size = data.get("image_size") or (data.get("metadata") or {}).get("image_size") or image_size
    if size is None or len(size) != 2:
        raise GeometryError(f"{source}: no image_size [H, W] given")
    Ks, Rs, ts, times = [], [], [], []
    for i, frame in enumerate(data["camera_path"]):
        try:
            ext = np.asarray(frame["extrinsic"], dtype=np.float64)
            K = np.asarray(frame["intrinsic"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise GeometryError(f"{source}: frame {i} lacks a numeric 'extrinsic' / 'intrinsic' ({exc})") from None
        if ext.shape == (4, 4):
            ext = ext[:3]
        if ext.shape != (3, 4) or K.shape != (3, 3):
            raise GeometryError(f"{source}: frame {i}: extrinsic must be 3×4 and intrinsic 3×3, got "
                                f"{ext.shape}, {K.shape}")
        Ks.append(K)
        Rs.append(ext[:, :3])
        ts.append(ext[:, 3])
        times.append(float(frame.get("video_time", frame.get("timestep", i))))
    try:
        cams = Cameras(torch.tensor(np.stack(Ks), dtype=dtype), torch.tensor(np.stack(Rs), dtype=dtype),
                       torch.tensor(np.stack(ts), dtype=dtype), tuple(int(v) for v in size))
    except GeometryError as exc:
        raise GeometryError(f"{source}: {exc}") from None
    return CameraPath(cams, torch.tensor(times, dtype=torch.float64))


def save_camera_path(file: str | os.PathLike, path: CameraPath) -> None:
    """Write the `camera_path` JSON atomically."""
    from aware3d_utils.atomic import atomic_write_text

    atomic_write_text(file, json.dumps(camera_path_to_dict(path), indent=1))


def load_camera_path(file: str | os.PathLike, image_size=None, dtype=torch.float64) -> CameraPath:
    """Read a `camera_path` JSON file; errors name the file."""
    file = Path(file)
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise GeometryError(f"{file}: cannot read the camera path ({exc})") from None
    return camera_path_from_dict(data, str(file), image_size=image_size, dtype=dtype)
