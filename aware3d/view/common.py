"""What the three scenes share: poses in viser's terms, the viewer camera, images for frusta.

viser's cameras (frusta, the viewer camera, `get_render`) follow OpenCV: x right, y down, z forward,
the vertical field of view in radians; a node's pose is (wxyz, position), its local → parent map. So
a geom3d camera (world → camera `X_cam = R X + t`) is the node with rotation Rᵀ and position −Rᵀt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aware3d_utils.deprecation import renamed

__all__ = ["ViewCamera", "matrix_to_wxyz", "camera_pose", "look_at_rotation", "vertical_fov", "frustum_scale",
           "load_thumbnail", "PALETTE", "color_of"]

# distinct colours (RGB) for categories / methods
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def color_of(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


colour_of = renamed(color_of, "colour_of")  # the old spelling


def matrix_to_wxyz(R) -> np.ndarray:
    """The unit quaternion (w, x, y, z) of a rotation matrix (3, 3) (w ≥ 0)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


def camera_pose(R, t) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) of the viser node of a world → camera pose (R (3, 3), t (3,))."""
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    return matrix_to_wxyz(R.T), -R.T @ t


def look_at_rotation(position, look_at, up) -> np.ndarray:
    """Camera → world rotation (3, 3) of an OpenCV camera at `position` looking at `look_at`, with
    `up` (world) pointing up on screen (so the camera's y axis points along −up)."""
    position, look_at, up = (np.asarray(v, dtype=np.float64).reshape(3) for v in (position, look_at, up))
    z = look_at - position
    if np.linalg.norm(z) < 1e-12:
        raise ValueError("the viewer camera's position and look-at point coincide")
    z /= np.linalg.norm(z)
    y = -up - np.dot(-up, z) * z
    if np.linalg.norm(y) < 1e-9:  # looking along `up`: any perpendicular will do
        y = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=1)


def vertical_fov(K, image_size) -> tuple[float, float]:
    """(vertical field of view in radians, aspect W / H) of intrinsics K (3, 3) for an image (H, W)."""
    K = np.asarray(K, dtype=np.float64)
    h, w = image_size
    return 2.0 * math.atan2(h / 2.0, float(K[1, 1])), (w * float(K[1, 1])) / (h * float(K[0, 0]))


def frustum_scale(fov: float, aspect: float, depth: float) -> float:
    """The `scale` of `viser.add_camera_frustum` whose image plane lies at `depth` (viser normalises
    the frustum to unit volume: its depth is scale / cbrt(tan(fov/2)² · aspect / 3))."""
    y = math.tan(fov / 2.0)
    return depth * (y * y * aspect / 3.0) ** (1.0 / 3.0)


@dataclass(frozen=True)
class ViewCamera:
    """A viewer camera: position and look-at point in the scene's world, the world's up direction,
    the vertical field of view in radians."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov: float = math.radians(50.0)

    def wxyz(self) -> np.ndarray:
        return matrix_to_wxyz(look_at_rotation(self.position, self.look_at, self.up))

    @staticmethod
    def parse(text: str, default: ViewCamera) -> ViewCamera:
        """'px,py,pz[:lx,ly,lz[:fov_degrees]]' over a default camera."""
        parts = text.split(":")
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"--camera {text!r}: expected 'x,y,z[:lx,ly,lz[:fov_degrees]]'")
        try:
            position = tuple(float(v) for v in parts[0].split(","))
            look_at = tuple(float(v) for v in parts[1].split(",")) if len(parts) > 1 else default.look_at
            fov = math.radians(float(parts[2])) if len(parts) > 2 else default.fov
        except ValueError:
            raise ValueError(f"--camera {text!r}: the values must be numbers") from None
        if len(position) != 3 or len(look_at) != 3:
            raise ValueError(f"--camera {text!r}: a position and a look-at point have 3 values each")
        if not all(math.isfinite(v) for v in (*position, *look_at)):
            raise ValueError(f"--camera {text!r}: the values must be finite")
        if position == tuple(float(v) for v in look_at):
            raise ValueError(f"--camera {text!r}: the position and the look-at point coincide")
        if not 0.0 < fov < math.pi:
            raise ValueError(f"--camera {text!r}: the field of view must lie in (0, 180) degrees")
        return ViewCamera(position, look_at, default.up, fov)


def load_thumbnail(path: str | Path, max_side: int) -> np.ndarray | None:
    """An image file as (h, w, 3|4) uint8, shrunk (area) so its longer side is at most `max_side`;
    None when it cannot be read (the caller says so)."""
    import cv2

    try:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV's size limit (a header claiming too many pixels)
        image = None
    if image is None:
        return None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    else:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:
        image = (image / max(1, np.iinfo(image.dtype).max) * 255).astype(np.uint8)
    h, w = image.shape[:2]
    k = max_side / max(h, w)
    if k < 1:
        image = cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)
