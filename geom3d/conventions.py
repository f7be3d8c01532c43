"""Converters between aware3d's cameras (OpenCV axes, integer pixel centres) and other conventions.

One named function per direction. Every `cameras_to_X(cameras)` returns a dict of keyword
arguments that `X_to_cameras` accepts, so `X_to_cameras(**cameras_to_X(c))` gives `c` back; the
keys are the target's own names where it has them (Blender's `resolution_x`, Open3D's
`intrinsic_matrix` / `width_px`, COLMAP's `width`, nerfstudio's `camera_to_worlds`). Tensors keep
the cameras' batch shape and dtype; the inverses follow geom3d's dtype rule (geom3d.dtypes).

| convention | camera axes | pixel centres | what it holds |
|---|---|---|---|
| OpenGL | x right, y up, z back | NDC edges at the image border | view + projection matrices |
| PyTorch3D | x left, y up, z forward, row vectors | NDC, +0.5 | R, T, focal, principal (NDC or screen) |
| Blender | x right, y up, z back | +0.5 (shift from the centre) | matrix_world, lens, sensor, shift |
| Open3D raycasting, nerfstudio | OpenCV / OpenGL | +0.5 | intrinsic, extrinsic / camera_to_world |
| COLMAP | OpenCV | +0.5 | qvec (w, x, y, z), tvec, PINHOLE params |
"""

from __future__ import annotations

import torch

from .cameras import Cameras, intrinsics_matrix
from .dtypes import as_float_tensors
from .errors import GeometryError
from .pixels import parse_image_size
from .rotations import matrix_to_quat_wxyz, quat_wxyz_to_matrix

__all__ = [
    "cameras_to_opengl", "opengl_to_cameras",
    "cameras_to_pytorch3d", "pytorch3d_to_cameras",
    "cameras_to_blender", "blender_to_cameras",
    "cameras_to_open3d", "open3d_to_cameras",
    "cameras_to_nerfstudio", "nerfstudio_to_cameras",
    "cameras_to_colmap", "colmap_to_cameras",
]


def _flip(R: torch.Tensor, signs) -> torch.Tensor:
    """diag(signs) @ R for a (..., 3, k) tensor."""
    s = torch.tensor(signs, dtype=R.dtype, device=R.device)
    return R * s[:, None]


def _homogeneous(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[[R, t], [0, 0, 0, 1]]: (..., 4, 4)."""
    top = torch.cat([R, t[..., None]], dim=-1)
    bottom = torch.zeros(*R.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def _unit(i: int, j: int, like: torch.Tensor) -> torch.Tensor:
    """The matrix unit E_ij (3, 3) in `like`'s dtype and device (out-of-place edits keep gradients)."""
    e = torch.zeros(3, 3, dtype=like.dtype, device=like.device)
    e[i, j] = 1.0
    return e


def _square_pixels(cameras: Cameras, what: str) -> None:
    if not torch.allclose(cameras.fx, cameras.fy, rtol=1e-6, atol=0.0):
        raise GeometryError(f"{what} needs square pixels (fx == fy)")


def _no_skew(cameras: Cameras, what: str) -> None:
    if (cameras.K[..., 0, 1] != 0).any():
        raise GeometryError(f"{what} cannot represent a skewed K")


# ---------------------------------------------------------------- OpenGL
def cameras_to_opengl(cameras: Cameras, near: float = 0.01, far: float = 100.0) -> dict:
    """{"view": (..., 4, 4), "projection": (..., 4, 4), "image_size": (H, W)} for OpenGL.

    view maps world to eye coordinates (x right, y up, z back). The projection maps the image
    rectangle, edges included ([−½, W − ½] × [−½, H − ½]), onto NDC [−1, 1]², with NDC y = +1 at
    image row 0: read the framebuffer back bottom-up (flip its rows) to get the image.
    """
    if not 0 < near < far:
        raise GeometryError(f"need 0 < near < far, got near={near}, far={far}")
    h, w = cameras.image_size
    view = _homogeneous(_flip(cameras.R, (1, -1, -1)), _flip(cameras.t[..., None], (1, -1, -1))[..., 0])
    K = cameras.K
    P = torch.zeros(*K.shape[:-2], 4, 4, dtype=K.dtype, device=K.device)
    P[..., 0, 0] = 2 * K[..., 0, 0] / w
    P[..., 0, 1] = -2 * K[..., 0, 1] / w
    P[..., 0, 2] = 1 - 2 * (K[..., 0, 2] + 0.5) / w
    P[..., 1, 1] = 2 * K[..., 1, 1] / h
    P[..., 1, 2] = 2 * (K[..., 1, 2] + 0.5) / h - 1
    P[..., 2, 2] = -(far + near) / (far - near)
    P[..., 2, 3] = -2 * far * near / (far - near)
    P[..., 3, 2] = -1
    return {"view": view, "projection": P, "image_size": (h, w)}


def opengl_to_cameras(view: torch.Tensor, projection: torch.Tensor, image_size) -> Cameras:
    """Inverse of `cameras_to_opengl` (near and far are dropped)."""
    view, P = as_float_tensors(view, projection)
    h, w = parse_image_size(image_size)
    fx, fy = P[..., 0, 0] * w / 2, P[..., 1, 1] * h / 2
    skew = -P[..., 0, 1] * w / 2
    cx = (1 - P[..., 0, 2]) * w / 2 - 0.5
    cy = (P[..., 1, 2] + 1) * h / 2 - 0.5
    K = intrinsics_matrix(fx, fy, cx, cy) + skew[..., None, None] * _unit(0, 1, P)
    R = _flip(view[..., :3, :3], (1, -1, -1))
    t = _flip(view[..., :3, 3:], (1, -1, -1))[..., 0]
    return Cameras(K, R, t, (h, w))


# ---------------------------------------------------------------- PyTorch3D
def cameras_to_pytorch3d(cameras: Cameras, in_ndc: bool = True) -> dict:
    """Arguments for PyTorch3D's `PerspectiveCameras` (row vectors: X_view = X_world @ R + T).

    PyTorch3D's view space has x left and y up; its screen space has pixel centres at +0.5.
    With `in_ndc` (PyTorch3D's default) focal and principal point are in NDC units of
    min(H, W) / 2; otherwise in screen pixels (pass `in_ndc=False` to PerspectiveCameras too).
    """
    _no_skew(cameras, "PyTorch3D")
    h, w = cameras.image_size
    R = _flip(cameras.R, (-1, -1, 1)).transpose(-1, -2)
    T = _flip(cameras.t[..., None], (-1, -1, 1))[..., 0]
    focal = torch.stack([cameras.fx, cameras.fy], dim=-1)
    principal = torch.stack([cameras.cx + 0.5, cameras.cy + 0.5], dim=-1)
    if in_ndc:
        scale = min(h, w) / 2.0
        centre = torch.tensor([w / 2.0, h / 2.0], dtype=focal.dtype, device=focal.device)
        focal, principal = focal / scale, -(principal - centre) / scale
    return {"R": R, "T": T, "focal_length": focal, "principal_point": principal, "image_size": (h, w),
            "in_ndc": in_ndc}


def pytorch3d_to_cameras(R, T, focal_length, principal_point, image_size, in_ndc: bool = True) -> Cameras:
    """Inverse of `cameras_to_pytorch3d`."""
    R, T, focal, principal = as_float_tensors(R, T, focal_length, principal_point)
    h, w = parse_image_size(image_size)
    if focal.shape[-1:] != (2,):
        focal = torch.stack([focal, focal], dim=-1)
    if in_ndc:
        scale = min(h, w) / 2.0
        centre = torch.tensor([w / 2.0, h / 2.0], dtype=focal.dtype, device=focal.device)
        focal, principal = focal * scale, centre - principal * scale
    K = intrinsics_matrix(focal[..., 0], focal[..., 1], principal[..., 0] - 0.5, principal[..., 1] - 0.5)
    R_cv = _flip(R.transpose(-1, -2), (-1, -1, 1))
    t_cv = _flip(T[..., None], (-1, -1, 1))[..., 0]
    return Cameras(K, R_cv, t_cv, (h, w))


# ---------------------------------------------------------------- Blender
def cameras_to_blender(cameras: Cameras, sensor_width: float = 36.0) -> dict:
    """Blender camera settings: matrix_world (camera -> world, x right, y up, z back), lens (mm),
    sensor_width (mm, sensor_fit AUTO: it spans the longer image side), shift_x, shift_y and the
    render resolution_x, resolution_y (pixels, scale 100%). Blender measures shifts from the
    image centre in units of the longer side.
    """
    _square_pixels(cameras, "Blender")
    _no_skew(cameras, "Blender")
    h, w = cameras.image_size
    side = float(max(h, w))
    rot = _flip(cameras.R, (1, -1, -1)).transpose(-1, -2)
    matrix_world = _homogeneous(rot, cameras.camera_centres())
    return {
        "matrix_world": matrix_world,
        "lens": cameras.fx * sensor_width / side,
        "sensor_width": sensor_width,
        "shift_x": ((w - 1) / 2.0 - cameras.cx) / side,
        "shift_y": (cameras.cy - (h - 1) / 2.0) / side,
        "resolution_x": w,
        "resolution_y": h,
    }


def blender_to_cameras(matrix_world, lens, sensor_width=36.0, shift_x=0.0, shift_y=0.0, *,
                       resolution_x, resolution_y) -> Cameras:
    """Inverse of `cameras_to_blender` (sensor_fit AUTO, pixel aspect 1, resolution scale 100%)."""
    M, lens, sensor_width, shift_x, shift_y = as_float_tensors(matrix_world, lens, sensor_width, shift_x, shift_y)
    h, w = parse_image_size((resolution_y, resolution_x), "(resolution_y, resolution_x)")
    side = float(max(h, w))
    f = lens * side / sensor_width
    K = intrinsics_matrix(f, f, (w - 1) / 2.0 - shift_x * side, (h - 1) / 2.0 + shift_y * side)
    R = _flip(M[..., :3, :3].transpose(-1, -2), (1, -1, -1))
    t = -(R @ M[..., :3, 3:])[..., 0]
    return Cameras(K, R, t, (h, w))


# ---------------------------------------------------------------- Open3D
def cameras_to_open3d(cameras: Cameras) -> dict:
    """The arguments of Open3D's `RaycastingScene.create_rays_pinhole`: intrinsic_matrix (..., 3, 3),
    extrinsic_matrix (..., 4, 4), width_px, height_px. Open3D casts the ray of pixel (j, i)
    through (j + ½, i + ½), so the principal point moves by +½ (wrap the matrices in
    `open3d.core.Tensor` for Open3D itself).

    (Open3D's legacy `PointCloud.create_from_depth_image` uses integer centres: give it K as is.)
    """
    h, w = cameras.image_size
    K = cameras.K + 0.5 * (_unit(0, 2, cameras.K) + _unit(1, 2, cameras.K))
    return {"intrinsic_matrix": K, "extrinsic_matrix": _homogeneous(cameras.R, cameras.t), "width_px": w,
            "height_px": h}


def open3d_to_cameras(intrinsic_matrix, extrinsic_matrix, width_px, height_px) -> Cameras:
    """Inverse of `cameras_to_open3d`."""
    K, E = as_float_tensors(intrinsic_matrix, extrinsic_matrix)
    K = K - 0.5 * (_unit(0, 2, K) + _unit(1, 2, K))
    return Cameras(K, E[..., :3, :3], E[..., :3, 3], parse_image_size((height_px, width_px), "(height_px, width_px)"))


# ---------------------------------------------------------------- nerfstudio
def cameras_to_nerfstudio(cameras: Cameras) -> dict:
    """nerfstudio's camera: camera_to_worlds (..., 3, 4) with OpenGL axes, fx, fy, cx, cy (+½ centres)."""
    _no_skew(cameras, "nerfstudio")
    h, w = cameras.image_size
    rot = _flip(cameras.R, (1, -1, -1)).transpose(-1, -2)
    c2w = torch.cat([rot, cameras.camera_centres()[..., None]], dim=-1)
    return {"camera_to_worlds": c2w, "fx": cameras.fx, "fy": cameras.fy, "cx": cameras.cx + 0.5,
            "cy": cameras.cy + 0.5, "width": w, "height": h}


def nerfstudio_to_cameras(camera_to_worlds, fx, fy, cx, cy, width, height) -> Cameras:
    """Inverse of `cameras_to_nerfstudio`."""
    c2w, fx, fy, cx, cy = as_float_tensors(camera_to_worlds, fx, fy, cx, cy)
    R = _flip(c2w[..., :3, :3].transpose(-1, -2), (1, -1, -1))
    t = -(R @ c2w[..., :3, 3:])[..., 0]
    K = intrinsics_matrix(fx, fy, cx - 0.5, cy - 0.5)
    return Cameras(K, R, t, parse_image_size((height, width), "(height, width)"))


# ---------------------------------------------------------------- COLMAP
def cameras_to_colmap(cameras: Cameras) -> dict:
    """COLMAP's image and camera entries: qvec (w, x, y, z) and tvec of world -> camera, and the
    PINHOLE model's params (fx, fy, cx, cy) with COLMAP's +½ pixel centres."""
    _no_skew(cameras, "COLMAP")
    h, w = cameras.image_size
    params = torch.stack([cameras.fx, cameras.fy, cameras.cx + 0.5, cameras.cy + 0.5], dim=-1)
    return {"qvec": matrix_to_quat_wxyz(cameras.R), "tvec": cameras.t, "model": "PINHOLE", "params": params,
            "width": w, "height": h}


def colmap_to_cameras(qvec, tvec, params, width, height, model: str = "PINHOLE") -> Cameras:
    """Inverse of `cameras_to_colmap`; also reads SIMPLE_PINHOLE (f, cx, cy)."""
    q, t, p = as_float_tensors(qvec, tvec, params)
    if model == "PINHOLE":
        fx, fy, cx, cy = p.unbind(-1)
    elif model == "SIMPLE_PINHOLE":
        fx, cx, cy = p.unbind(-1)
        fy = fx
    else:
        raise GeometryError(f"COLMAP camera model {model!r} is not a pinhole model (PINHOLE, SIMPLE_PINHOLE)")
    size = parse_image_size((height, width), "(height, width)")
    return Cameras(intrinsics_matrix(fx, fy, cx - 0.5, cy - 0.5), quat_wxyz_to_matrix(q), t, size)
