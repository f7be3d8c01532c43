"""KITTI object labels from records, and the KITTI → PASCAL3D+ viewpoint conversion they invert.

The conversion (the one `../shared/data/real_pose_dev` was made with, reproduced to 1e-12 on its
KITTI records, see tests/test_data3d_export.py): a KITTI label gives the box centre
`X = location − (0, h/2, 0)` in camera 0's rectified frame; camera 2 sees it at `X2 = X + K⁻¹·P2[:, 3]`.
The object frame (z up, front −y) maps to the camera as `R = Ry(rotation_y)·M`, with
`M = [[0, −1, 0], [0, 0, −1], [1, 0, 0]]` (KITTI's object x, the heading, is our front −y; its y is
down). A virtual camera turned by the smallest rotation `Q` that takes the ray `X2/|X2|` onto the optical
axis sees the object at `(0, 0, |X2|)` with rotation `Q·R`, whose (azimuth, elevation, theta) is the
viewpoint; focal = fx, viewport 1, (px, py) = the projection of X2 by P2, distance = |X2| / metres per
object unit.

The inverse, for any record: `Q·Ry(ry)·M = R_v` has exactly one solution with the object in front
(`viewpoint_to_kitti`): Q is a rotation about an axis in the image plane, i.e. the xy block of
`R_v·Mᵀ·Ry(ry)ᵀ` is symmetric, which fixes ry (one equation `W10·cos ry + W12·sin ry = W01`, always
solvable); the ray is `u = Qᵀ·z`, the box centre `|X|·u` and the camera's principal point
`(px − f·ux/uz, py − f·uy/uz)`. The image is then taken as seen by that camera (exact for the rotation;
the record's image is the virtual camera's, which differs by a homography that grows with the ray's
angle, so objects whose ray is more than `max_ray_angle` off the axis are skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geom3d import GeometryError

from ..errors import AnnotationError
from ..record import Viewpoint

__all__ = ["KITTI_TO_OBJECT", "kitti_to_viewpoint", "viewpoint_to_kitti", "KittiPose", "format_label_line",
           "format_calib", "kitti_occlusion", "write_kitti"]

#: object frame (x right, y back, z up; front −y) -> KITTI object frame (x heading, y down, z)
KITTI_TO_OBJECT = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def _ry(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _to_axis(u: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the unit vector u onto (0, 0, 1) (Rodrigues; u_z > −1)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(u, z)
    s, c = float(np.linalg.norm(axis)), float(u @ z)
    if s < 1e-15:
        return np.eye(3)
    k = axis / s
    A = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + s * A + (1.0 - c) * (A @ A)


def _rotation_to_angles(R: np.ndarray) -> tuple[float, float, float]:
    import torch

    from geom3d import rotation_to_viewpoint

    v = rotation_to_viewpoint(torch.as_tensor(R, dtype=torch.float64))
    return float(v["azimuth"]), float(v["elevation"]), float(v["theta"])


def kitti_to_viewpoint(location, dimensions, rotation_y: float, P2, metres_per_unit: float = 1.0) -> Viewpoint:
    """The PASCAL3D+ viewpoint of a KITTI label (location: bottom centre (x, y, z) in metres in the
    rectified camera 0 frame; dimensions: (h, w, l) metres; P2: (3, 4)). `metres_per_unit`: the object
    unit in metres (real_pose_dev used the car's length / its CAD's length 0.914)."""
    P2 = np.asarray(P2, dtype=np.float64).reshape(3, 4)
    K = P2[:, :3]
    if abs(K[0, 0] - K[1, 1]) > 1e-9 * abs(K[0, 0]) or abs(K[0, 1]) > 1e-12:
        raise AnnotationError(f"P2 must have fx = fy and no skew, got {K.tolist()}", field="P2")
    h = float(dimensions[0])
    X = np.asarray(location, dtype=np.float64) - np.array([0.0, h / 2.0, 0.0]) + np.linalg.solve(K, P2[:, 3])
    dist = float(np.linalg.norm(X))
    if not X[2] > 0:
        raise AnnotationError(f"the object centre {X.tolist()} is not in front of the camera", field="location")
    R_v = _to_axis(X / dist) @ _ry(float(rotation_y)) @ KITTI_TO_OBJECT
    a, e, th = _rotation_to_angles(R_v)
    return Viewpoint(azimuth=a, elevation=e, theta=th, distance=dist / float(metres_per_unit), focal=float(K[0, 0]),
                     viewport=1.0, px=float(K[0, 0] * X[0] / X[2] + K[0, 2]), py=float(K[1, 1] * X[1] / X[2] + K[1, 2]))


@dataclass(frozen=True)
class KittiPose:
    """The KITTI view of one viewpoint: rotation_y and alpha (radians, (−π, π]), the box centre
    (3,) in metres in the camera frame, the camera K (3, 3) and the ray's angle off the optical axis."""

    rotation_y: float
    alpha: float
    centre: np.ndarray
    K: np.ndarray
    ray_angle: float


def _wrap(angle: float) -> float:
    """(−π, π]."""
    out = math.remainder(angle, 2.0 * math.pi)
    return math.pi if out == -math.pi else out


def viewpoint_to_kitti(viewpoint: Viewpoint, metres_per_unit: float = 1.0) -> KittiPose:
    """Invert `kitti_to_viewpoint` (see the module's docstring): the upright pose and camera whose
    conversion gives back `viewpoint`'s rotation, projection of the origin and distance."""
    R_v = viewpoint.rotation(dtype=_float64()).numpy()
    W = R_v @ KITTI_TO_OBJECT.T
    amp, phase = math.hypot(W[1, 0], W[1, 2]), math.atan2(W[1, 2], W[1, 0])
    best = None
    if amp > 1e-15:
        spread = math.acos(max(-1.0, min(1.0, W[0, 1] / amp)))
        candidates = (phase + spread, phase - spread)
    else:  # W10 = W12 = 0: W01 = ±1 too, any ry solves; the ray then lies along ±x (never in front)
        candidates = (0.0,)
    for ry in candidates:
        Q = W @ _ry(ry).T
        u = Q[2, :]
        if best is None or u[2] > best[1][2]:
            best = (ry, u)
    ry, u = best
    if not u[2] > 1e-9:
        raise AnnotationError("no upright KITTI pose puts this object in front of the camera", field="viewpoint")
    f = viewpoint.focal_pixels
    centre = u * viewpoint.distance * float(metres_per_unit)
    K = np.array([[f, 0.0, viewpoint.px - f * u[0] / u[2]], [0.0, f, viewpoint.py - f * u[1] / u[2]], [0.0, 0.0, 1.0]])
    ry = _wrap(ry)
    alpha = _wrap(ry - math.atan2(centre[0], centre[2]))
    return KittiPose(ry, alpha, centre, K, math.acos(max(-1.0, min(1.0, float(u[2])))))


def _float64():
    import torch

    return torch.float64


# ----------------------------------------------------------------------------- files
def format_label_line(kind: str, truncated: float, occluded: int, alpha: float, bbox, dimensions, location,
                      rotation_y: float) -> str:
    """One line of a KITTI `label_2` file (type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry),
    with more digits than KITTI's two (readers split on spaces, so any float parses)."""
    nums = [f"{float(truncated):.2f}", str(int(occluded)), f"{alpha:.8f}", *(f"{v:.6f}" for v in bbox),
            *(f"{v:.8f}" for v in dimensions), *(f"{v:.8f}" for v in location), f"{rotation_y:.8f}"]
    return " ".join([kind, *nums])


def format_calib(K: np.ndarray) -> str:
    """A KITTI calib file whose P0..P3 are all [K | 0] (one camera), R0_rect = I, the LiDAR / IMU
    transforms identity (there is no LiDAR)."""
    P = np.hstack([np.asarray(K, dtype=np.float64), np.zeros((3, 1))])
    eye34 = np.hstack([np.eye(3), np.zeros((3, 1))])

    def row(name, m):
        return f"{name}: " + " ".join(f"{x:.12e}" for x in np.asarray(m).reshape(-1))

    lines = [row(f"P{i}", P) for i in range(4)]
    lines += [row("R0_rect", np.eye(3)), row("Tr_velo_to_cam", eye34), row("Tr_imu_to_velo", eye34)]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the writer
def _object_size(obj, cad_root, log, cache: dict) -> np.ndarray | None:
    """(size_x, size_y, size_z) in object units of the box centred at the object origin that holds
    the mesh (its own box when the mesh is centred, as PASCAL3D+ CADs and the procedural library
    are); from the CAD, else datagen's `extra["mesh_bounds"]`; None when unknown. A CAD that cannot be
    read is counted (`unreadable_model`) once."""
    from ..show import object_bounds, record_mesh

    ref = obj.mesh_ref
    if ref not in cache:
        try:
            cache[ref] = record_mesh(obj, cad_root)
        except (GeometryError, OSError, ValueError) as exc:
            cache[ref] = None
            log.skip("unreadable_model", AnnotationError(f"CAD {ref}: {exc}"))
    bounds = object_bounds(obj, cache[ref])
    if bounds is None:
        return None
    lo, hi = bounds
    return 2.0 * np.maximum(np.abs(lo), np.abs(hi))


def _truncation(centre, R_cam, size, K, image_size) -> float:
    """The fraction of the projected 3D box's 2D box that lies outside the image."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    corners = centre + (signs * size / 2.0) @ R_cam.T
    if (corners[:, 2] <= 1e-9).any():
        return 1.0
    uv = corners @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    x1, y1 = uv.min(axis=0)
    x2, y2 = uv.max(axis=0)
    h, w = image_size
    area = (x2 - x1) * (y2 - y1)
    inside = max(0.0, min(x2, w - 0.5) - max(x1, -0.5)) * max(0.0, min(y2, h - 0.5) - max(y1, -0.5))
    return float(min(1.0, max(0.0, 1.0 - inside / area))) if area > 0 else 0.0


def kitti_occlusion(obj) -> int:
    """KITTI's occluded field (0 fully visible, 1 partly, 2 largely, 3 unknown) from our level
    (PASCAL3D+'s 0/1 flag; OccludedPASCAL3D+ / datagen levels 0–3, where 2 and 3 hide 40–80%)."""
    if obj.occlusion is None:
        return 3
    return min(int(obj.occlusion), 2)


def write_kitti(groups: dict, out, log, *, cad_root=None, metres_per_unit: float = 1.0,
                max_ray_angle: float = math.radians(45.0)) -> dict:
    """Write `<out>/<split>/{image_2,label_2,calib}/NNNNNN.*`; one frame per record (per camera, when
    the objects of a record convert to different cameras)."""
    from pathlib import Path

    from aware3d_utils import atomic_write_text

    from .common import copy_image

    out = Path(out)
    scale = float(metres_per_unit)
    if not scale > 0:
        raise ValueError(f"export: metres_per_unit must be > 0, got {metres_per_unit!r}")
    summary, meshes = {}, {}
    for split, records in groups.items():
        frame = n_objects = 0
        for record in records:
            frames: dict[tuple, list[str]] = {}
            cams: dict[tuple, np.ndarray] = {}
            try:
                for obj in record.objects:
                    try:
                        pose = viewpoint_to_kitti(obj.viewpoint, scale)
                    except AnnotationError:  # no upright pose in front of a camera: not KITTI material
                        pose = None
                    if pose is None or pose.ray_angle > max_ray_angle:
                        _off_axis(log, record, obj, pose, max_ray_angle)
                        continue
                    K = pose.K
                    key = tuple(np.round(K.reshape(-1), 6))
                    size = _object_size(obj, cad_root, log, meshes)
                    centre = pose.centre
                    ry = pose.rotation_y
                    if size is not None:
                        sx, sy, sz = size * scale
                        dims = (sz, sx, sy)  # KITTI (h, w, l): height z, width x, length y
                        location = centre + np.array([0.0, sz / 2.0, 0.0])
                        trunc = _truncation(centre, _ry(ry) @ KITTI_TO_OBJECT, size * scale, K, record.image_size)
                    else:
                        dims = (-1.0, -1.0, -1.0)
                        location = centre
                        trunc = 1.0 if obj.truncated else 0.0
                    kind = (obj.category[:1].upper() + obj.category[1:]).replace(" ", "_")  # one word
                    line = format_label_line(kind, trunc, kitti_occlusion(obj), pose.alpha, obj.bbox, dims, location,
                                             ry)
                    frames.setdefault(key, []).append(line)
                    cams[key] = K
                if not frames:
                    continue
                for key, lines in frames.items():
                    stem = f"{frame:06d}"
                    copy_image(record.image_path, out / split / "image_2" / stem, keep_jpeg=False, enabled=log.images,
                               size=record.image_size)
                    atomic_write_text(out / split / "calib" / f"{stem}.txt", format_calib(cams[key]))
                    atomic_write_text(out / split / "label_2" / f"{stem}.txt", "\n".join(lines) + "\n")
                    frame += 1
                    n_objects += len(lines)
            except AnnotationError as exc:
                log.skip("bad_record", exc if exc.path else exc.with_path(record.image_path))
        summary[split] = {"images": frame, "objects": n_objects}
    return summary


def _off_axis(log, record, obj, pose, limit) -> None:
    """Count an object that no upright camera sees in front, or sees too far off its axis (not an
    error, strict or not: KITTI labels do not make sense for it)."""
    if pose is None:
        reason, text = "kitti_no_upright_pose", "no upright camera sees it in front"
    else:
        reason = "kitti_ray_angle"
        text = f"seen {math.degrees(pose.ray_angle):.1f}° off the optical axis (limit {math.degrees(limit):.1f}°)"
    log.skipped[reason] += 1
    if len(log.problems) < 200:
        log.problems.append(f"{reason}: {record.image_path}: a {obj.category} {text}")
