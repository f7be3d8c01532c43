"""The PASCAL3D+ / ImageNet3D / NeMo viewpoint, and 3D-DST's Blender spherical coordinates.

A viewpoint is (azimuth a, elevation e, in-plane theta θ, distance d) in radians, plus the
intrinsics (focal f, viewport M, principal point (px, py)). In the object frame (z up, front
towards −y) the camera sits at `C = d·(cos e·sin a, −cos e·cos a, sin e)` and looks at the origin:

    R = diag(1, −1, −1) · Rz(θ) · Rx(e − π/2) · Rz(−a),   t = −R·C = (0, 0, d),
    K = [[M·f, 0, px], [0, M·f, py], [0, 0, 1]].

This reproduces the PASCAL3D+ projection. Azimuth 0 looks at the object's front with +x to the
right of the image; positive θ turns the projected object counter-clockwise on screen.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np
import torch

from .cameras import Cameras, intrinsics_matrix
from .dtypes import as_float_tensors
from .errors import GeometryError
from .pixels import parse_image_size
from .rotations import rotation_about_x, rotation_about_z

__all__ = [
    "viewpoint_to_rotation",
    "viewpoint_to_cameras",
    "cameras_to_viewpoint",
    "rotation_to_viewpoint",
    "blender_to_viewpoint",
    "viewpoint_to_blender",
    "wrap_angle",
    "wrap_azimuth",
    "viewpoint_from_mapping",
]

TWO_PI = 2.0 * math.pi


def _number_or_tensor(x):
    """A Python float for a number (data3d keeps plain numbers), else a floating tensor."""
    if isinstance(x, numbers.Real) and not isinstance(x, torch.Tensor):
        return float(x)
    return as_float_tensors(x)[0]


def wrap_angle(x: torch.Tensor | float) -> torch.Tensor | float:
    """Wrap angles to (−π, π] (a Python number for a number, else a tensor)."""
    x = _number_or_tensor(x)
    if isinstance(x, float):
        return x - TWO_PI * math.ceil((x - math.pi) / TWO_PI)
    return x - TWO_PI * torch.ceil((x - math.pi) / TWO_PI)


def wrap_azimuth(x: torch.Tensor | float) -> torch.Tensor | float:
    """Wrap angles to [0, 2π) (float rounding can otherwise give exactly 2π); numbers or tensors."""
    x = _number_or_tensor(x)
    if isinstance(x, float):
        y = math.fmod(x, TWO_PI)
        y = y + TWO_PI if y < 0 else y
        return 0.0 if y >= TWO_PI else y
    y = torch.remainder(x, TWO_PI)
    return torch.where(y >= TWO_PI, y - TWO_PI, y)


def _flip_yz(R: torch.Tensor) -> torch.Tensor:
    """diag(1, −1, −1) @ R without a matmul."""
    return torch.cat([R[..., :1, :], -R[..., 1:, :]], dim=-2)


def viewpoint_to_rotation(azimuth, elevation, theta) -> torch.Tensor:
    """World -> camera rotation (OpenCV) of a viewpoint: (...) -> (..., 3, 3).

    `R = diag(1, −1, −1) · Rz(θ) · Rx(e − π/2) · Rz(−a)`. In the image, increasing θ rotates the
    projected object counter-clockwise as seen on screen (y down): Rz(θ) in the flipped frame is
    Rz(−θ) in the OpenCV camera frame.
    """
    a, e, th = torch.broadcast_tensors(*as_float_tensors(azimuth, elevation, theta))
    R = rotation_about_z(th) @ rotation_about_x(e - math.pi / 2) @ rotation_about_z(-a)
    return _flip_yz(R)


def _check_positive(name: str, value: torch.Tensor) -> None:
    if not torch.isfinite(value).all():
        raise GeometryError(f"{name} contains NaN or infinite values")
    if (value <= 0).any():
        raise GeometryError(f"{name} must be positive, got min {value.min().item():g}")


def viewpoint_to_cameras(azimuth, elevation, theta, distance, focal=1.0, viewport=3000.0,
                         principal=None, image_size=None) -> Cameras:
    """A PASCAL3D+ viewpoint (radians) to `Cameras`; all values broadcast, batch shape (...).

    principal: (px, py) in pixels, with integer pixel centres: a pair of numbers or tensors, or
    one tensor / array (..., 2); defaults to the image centre ((W − 1)/2, (H − 1)/2).
    image_size: (H, W), required. The result has the promoted dtype of all the values given.
    Raises GeometryError for distance ≤ 0, non-positive focal or viewport, or NaN.
    """
    if image_size is None:
        raise GeometryError("viewpoint_to_cameras needs image_size=(H, W)")
    h, w = parse_image_size(image_size)
    if principal is None:
        principal = ((w - 1) / 2.0, (h - 1) / 2.0)
    if isinstance(principal, (torch.Tensor, np.ndarray)):
        if principal.shape[-1:] != (2,):
            raise GeometryError(f"principal must be (px, py) or (..., 2), got shape {tuple(principal.shape)}")
        px, py = principal[..., 0], principal[..., 1]
    else:
        try:
            px, py = principal
        except (TypeError, ValueError):
            raise GeometryError(f"principal must be (px, py), got {principal!r}") from None
    a, e, th, d, f, m, px, py = torch.broadcast_tensors(
        *as_float_tensors(azimuth, elevation, theta, distance, focal, viewport, px, py))
    for name, value in (("azimuth", a), ("elevation", e), ("theta", th), ("principal point", px),
                        ("principal point", py)):
        if not torch.isfinite(value).all():
            raise GeometryError(f"{name} contains NaN or infinite values")
    _check_positive("distance", d)
    _check_positive("focal", f)
    _check_positive("viewport", m)
    R = viewpoint_to_rotation(a, e, th)
    zero = torch.zeros_like(d)
    t = torch.stack([zero, zero, d], dim=-1)  # = −R·C exactly, since R maps C/d to (0, 0, −1)
    K = intrinsics_matrix(m * f, m * f, px, py)
    return Cameras(K, R, t, (h, w), check=False)


def rotation_to_viewpoint(R: torch.Tensor) -> dict[str, torch.Tensor]:
    """Recover (azimuth, elevation, theta) from world -> camera rotations (..., 3, 3).

    Ranges: azimuth in [0, 2π), elevation in [−π/2, π/2], theta in (−π, π].
    Near the poles (|e| → π/2) only θ − a (top) or θ + a (bottom) is determined; azimuth is taken
    from the camera direction and θ from the well-conditioned combination, so the angles always
    rebuild the same rotation. Exactly at a pole the azimuth is defined as 0.
    """
    (R,) = as_float_tensors(R)
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise GeometryError(f"R must have shape (..., 3, 3), got {tuple(R.shape)}")
    Rf = _flip_yz(R)  # = Rz(θ) Rx(e − π/2) Rz(−a)
    c = Rf[..., 2, :]  # = C / d = (cos e sin a, −cos e cos a, sin e)
    horizontal = torch.hypot(c[..., 0], c[..., 1])
    elevation = torch.atan2(c[..., 2], horizontal)
    at_pole = horizontal <= torch.finfo(R.dtype).eps
    azimuth = torch.where(at_pole, torch.zeros_like(horizontal), torch.atan2(c[..., 0], -c[..., 1]))
    A00, A01, A10, A11 = Rf[..., 0, 0], Rf[..., 0, 1], Rf[..., 1, 0], Rf[..., 1, 1]
    theta_minus_a = torch.atan2(A10 - A01, A00 + A11)  # (1 + sin e)·(cos, sin)(θ − a)
    theta_plus_a = torch.atan2(A10 + A01, A00 - A11)  # (1 − sin e)·(cos, sin)(θ + a)
    theta = torch.where(elevation >= 0, theta_minus_a + azimuth, theta_plus_a - azimuth)
    return {"azimuth": wrap_azimuth(azimuth), "elevation": elevation, "theta": wrap_angle(theta)}


def cameras_to_viewpoint(cameras: Cameras, viewport: float = 3000.0, atol: float = 1e-4
                         ) -> dict[str, torch.Tensor]:
    """Invert `viewpoint_to_cameras`: a mapping with azimuth, elevation, theta, distance, focal,
    viewport, px, py (tensors of the cameras' batch shape and dtype).

    The cameras must be of the form the viewpoint describes: square pixels, no skew, and the
    object origin on the optical axis (t = (0, 0, d) with d > 0, up to `atol`·d); otherwise a
    GeometryError says which condition fails. focal·viewport is fx; the split uses `viewport`.
    """
    K, t = cameras.K, cameras.t
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    if not torch.allclose(fx, fy, rtol=1e-5, atol=0.0) or (K[..., 0, 1].abs() > 1e-6 * fx).any():
        raise GeometryError("cameras_to_viewpoint: the viewpoint needs square pixels (fx == fy) and no skew")
    d = t[..., 2]
    if (d <= 0).any():
        raise GeometryError("cameras_to_viewpoint: the object origin is behind the camera (t_z ≤ 0)")
    off_axis = torch.linalg.vector_norm(t[..., :2], dim=-1)
    if (off_axis > atol * d).any():
        raise GeometryError(
            "cameras_to_viewpoint: the camera does not look at the object origin (t is not along z); "
            "a PASCAL3D+ viewpoint cannot represent it"
        )
    angles = rotation_to_viewpoint(cameras.R)
    m = torch.full_like(fx, float(viewport))
    return {**angles, "distance": d, "focal": fx / m, "viewport": m, "px": K[..., 0, 2], "py": K[..., 1, 2]}


def blender_to_viewpoint(theta, phi, distance, camera_rotation=0.0) -> dict[str, torch.Tensor]:
    """3D-DST's Blender spherical camera to a PASCAL3D+ viewpoint.

    3D-DST places the camera at d·(sin φ cos θ, sin φ sin θ, cos φ) (θ: azimuth from +x about +z,
    φ: polar angle from +z), points it at the origin with world z up in the image (TRACK_TO,
    −Z forward, Y up), then rolls it by `camera_rotation` about its viewing direction.
    Equating camera centres gives a = θ + π/2, e = π/2 − φ, and the roll is the in-plane θ.
    """
    th, ph, d, roll = torch.broadcast_tensors(*as_float_tensors(theta, phi, distance, camera_rotation))
    return {"azimuth": wrap_azimuth(th + math.pi / 2), "elevation": math.pi / 2 - ph,
            "theta": wrap_angle(roll), "distance": d}


def viewpoint_to_blender(azimuth, elevation, theta, distance) -> dict[str, torch.Tensor]:
    """A PASCAL3D+ viewpoint to 3D-DST's Blender spherical camera (inverse of `blender_to_viewpoint`).

    Returns theta in [0, 2π), phi in [0, π], distance and camera_rotation in (−π, π].
    """
    a, e, th, d = torch.broadcast_tensors(*as_float_tensors(azimuth, elevation, theta, distance))
    return {"theta": wrap_azimuth(a - math.pi / 2), "phi": math.pi / 2 - e, "distance": d,
            "camera_rotation": wrap_angle(th)}


def viewpoint_from_mapping(v: Mapping, image_size) -> Cameras:
    """`viewpoint_to_cameras` on a mapping with keys azimuth, elevation, theta, distance and
    optionally focal, viewport, px, py (the output of `cameras_to_viewpoint`)."""
    principal = (v["px"], v["py"]) if "px" in v and "py" in v else None
    return viewpoint_to_cameras(v["azimuth"], v["elevation"], v["theta"], v["distance"],
                                v.get("focal", 1.0), v.get("viewport", 3000.0), principal, image_size)
