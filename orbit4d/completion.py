"""Completing the canonical foreground with generated views (FreeOrbit4D's novel-view stage).

The model-free canonical holds only what some frame saw. Here a novel-view synthesizer
(`datagen.novel_view`: Zero-1-to-3 by model id or folder, or an exact renderer in tests) shows the
object from around it, and the points those views add where the canonical has none are fused in.

1. **Reference view** (`reference_view`): one frame (the one with the largest mask) is turned into
   the object-centred image the synthesizer expects. A virtual camera with the frame camera's
   centre looks at the object's centre (the canonical's centroid placed in that frame), upright
   (its x axis orthogonal to `up`), with a focal length that makes the object fill `fill` of a
   `size`² square; since only the rotation changes, the frame warps onto it exactly by the
   homography K'·R_v·Rᵀ·K⁻¹ (mask too; white outside the mask). In an object frame O (origin the
   centre, z = up, the camera in the y–z plane on the −y side) this camera is the viewpoint
   (azimuth 0, elevation e₀, θ 0, distance d₀) of `datagen.novel_view`'s convention, so each
   relative pose (Δpolar, Δazimuth, Δradius) has a known camera (`view_cameras`):
   `target_viewpoint` → `geom3d.viewpoint_to_cameras` in O → world. Zero-1-to-3 orbits about the
   object's up, so for a run `up` is the normal of the background's dominant plane when it is a
   floor (`ground_up`), else the frame camera's image up (then e₀ ≈ 0, the orbit turns about the
   image's vertical).
2. **Generated views**: the synthesizer's images; the object is what is not white background
   (the largest connected part); depth from the run's depth estimator, cleaned and cut to the
   eroded mask as the frames' depth is (`orbit4d.reconstruct.split_depth`).
3. **Scale**: generated views are not metric. A metric estimator's depth is used as it is;
   otherwise each view's depth is scaled to the model's: the model drawn at the view's camera
   (z-buffer splat) has the view's true depth where it holds the surface the view sees and more
   where it lacks it (its far side shows), so the factor is the median ratio over the pixels near
   the ratios' low end (`_depth_scale`); the registration then fits the rest.
4. **Registration**: each view is placed like a frame (`orbit4d.alignment.align_canonical`):
   pixel-synchronised pairs between the model (the canonical plus the views already added) and
   the view's depth map, a Sim(3) inside RANSAC, from the reference frame's transform; the view's
   points are mapped into canonical coordinates by the inverse. Only model points the view shows
   at their own depth pair up, so the surfaces the canonical lacks cannot pull the fit (ICP
   would slide them onto the nearest canonical surface). Views go in order of increasing
   |Δazimuth|, so each overlaps what came before. A view is skipped (and reported) when, of the
   model points it shows within 3 thresholds of its depth, fewer than 30 or a share below
   `min_fitness` lie within one, or when its scale changes by more than `max_scale_change`.
5. **Fusion**: the registered points farther than `fill_voxels` voxels from the model are the
   ones that fill regions the canonical lacks; they are voxel-averaged and cleaned of
   statistical outliers, and appended. The canonical's own points are left untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from aware3d_utils.deprecation import renamed
from geom3d import (
    Cameras,
    GeometryError,
    depth_to_points,
    intrinsics_matrix,
    remove_statistical_outliers,
    splat,
    voxel_downsample,
)
from geom3d.align import Sim3

from .alignment import align_canonical, correspondences
from .reconstruct import split_depth

__all__ = ["DEFAULT_RELATIVE_POSES", "ReferenceView", "Completion", "reference_view", "view_cameras",
           "largest_non_white_region", "ground_up", "complete_canonical", "complete_run", "complete_with_models",
           "write_completion"]

# Δpolar, Δazimuth, Δradius: a ring around the object at the reference elevation
DEFAULT_RELATIVE_POSES = tuple((0.0, math.radians(a), 0.0) for a in (45, -45, 90, -90, 135, -135, 180))


@dataclass(frozen=True)
class ReferenceView:
    """The object-centred reference: image uint8 (S, S, 3) (white outside the object), mask bool
    (S, S), viewpoint (the virtual camera in the object frame, `datagen.novel_view` keys),
    Q (3, 3) and centre (3,) float64 with X_O = Q·(X_world − centre), camera: the virtual camera
    (world, batch shape ()), frame: the source frame's index."""

    image: np.ndarray
    mask: np.ndarray
    viewpoint: dict
    Q: torch.Tensor
    centre: torch.Tensor
    camera: Cameras
    frame: int = 0


@dataclass(frozen=True)
class Completion:
    """points (M, 3) / colors (M, 3) canonical: the input canonical followed by `added` new
    points; views: one report per generated view (relative pose in degrees, status, fitness,
    scale, points added); images: the generated views (uint8 (S, S, 3)); reference."""

    points: torch.Tensor
    colors: torch.Tensor | None
    added: int
    views: list = field(default_factory=list)
    images: list = field(default_factory=list)
    reference: ReferenceView | None = None


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def view_cameras(reference: ReferenceView, relative_poses) -> Cameras:
    """Cameras (N,) (world, float64) of the views at `relative_poses` (N, 3) around the reference."""
    from datagen.novel_view import as_relative_poses, target_viewpoint
    from datagen.render import viewpoints_to_cameras

    views = [target_viewpoint(reference.viewpoint, p) for p in as_relative_poses(relative_poses)]
    cams = viewpoints_to_cameras(views, reference.image.shape[:2])
    R = cams.R @ reference.Q  # X_cam = R_O·Q·(X − c) + t_O
    t = cams.t - (R @ reference.centre)
    return Cameras(cams.K, R, t, cams.image_size)


def reference_view(frame_rgb: np.ndarray, mask: np.ndarray, camera: Cameras, centre, *, size: int = 256,
                   fill: float = 0.8, up=None, frame: int = 0) -> ReferenceView:
    """The object-centred view of one frame (see the module docstring, step 1).

    frame_rgb uint8 (H, W, 3), mask bool (H, W), camera: the frame's camera (batch shape ()),
    centre (3,): the object's centre in world coordinates; up (3,): world up, default the
    camera's image up."""
    cam = camera.to(dtype=torch.float64)
    R, t, K = cam.R.reshape(3, 3), cam.t.reshape(3), cam.K.reshape(3, 3)
    c = torch.as_tensor(centre, dtype=torch.float64).reshape(3)
    eye = -R.T @ t
    v = eye - c
    d0 = float(v.norm())
    u = _unit(-R[1] if up is None else torch.as_tensor(up, dtype=torch.float64).reshape(3))
    h = v - (v @ u) * u
    if float(h.norm()) < 1e-6 * d0:
        raise GeometryError("reference_view: the camera looks along the up axis; give another up")
    e0 = math.atan2(float(v @ u), float(h.norm()))
    y_o = -_unit(h)
    Q = torch.stack([torch.linalg.cross(y_o, u), y_o, u])
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise GeometryError(f"reference_view: frame {frame} has an empty mask")
    # the virtual camera, first with focal 1, to measure the object's extent in it
    unit = Cameras(intrinsics_matrix(1.0, 1.0, 0.0, 0.0, dtype=torch.float64), torch.eye(3, dtype=torch.float64),
                   torch.zeros(3, dtype=torch.float64), (size, size))
    viewpoint = {"azimuth": 0.0, "elevation": e0, "theta": 0.0, "distance": d0, "focal": 1.0, "viewport": 1.0,
                 "px": (size - 1) / 2, "py": (size - 1) / 2}
    R_v = view_cameras(ReferenceView(np.zeros((size, size, 3), np.uint8), mask, viewpoint, Q, c, unit),
                       [(0.0, 0.0, 0.0)]).R[0]
    rot = R_v @ R.T  # original camera coordinates → virtual camera coordinates (same centre)
    pix = torch.stack([torch.from_numpy(cols).double(), torch.from_numpy(rows).double(),
                       torch.ones(rows.size, dtype=torch.float64)])
    rays = rot @ torch.linalg.solve(K, pix)
    if float(rays[2].min()) <= 0:
        raise GeometryError(f"reference_view: the object in frame {frame} spans more than a half space around "
                            "its centre's direction")
    extent = float((rays[:2] / rays[2]).abs().max())
    focal = fill * (size / 2) / max(extent, 1e-9)
    viewpoint["focal"] = focal
    K_v = intrinsics_matrix(focal, focal, (size - 1) / 2, (size - 1) / 2, dtype=torch.float64)
    H = (K_v @ rot @ torch.linalg.inv(K)).numpy()
    image = cv2.warpPerspective(frame_rgb, H, (size, size), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    warped = cv2.warpPerspective(mask.astype(np.uint8), H, (size, size), flags=cv2.INTER_NEAREST) > 0
    image[~warped] = 255
    camera_v = Cameras(K_v, R_v, -R_v @ eye, (size, size))
    return ReferenceView(image, warped, viewpoint, Q, c, camera_v, frame)


def largest_non_white_region(image: np.ndarray, white: int = 240, erode: int = 1) -> np.ndarray:
    """bool (H, W): the largest connected region of pixels darker than `white` in some channel (after
    `erode` pixels of erosion): the object of a generated view drawn on white."""
    fg = (image.min(-1) < white).astype(np.uint8)
    if erode:
        fg = cv2.erode(fg, np.ones((2 * erode + 1,) * 2, np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros(image.shape[:2], bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


object_mask = renamed(largest_non_white_region, "object_mask")  # the old name (nemo's object_mask was another thing)


def _depth_scale(depth: np.ndarray, model_world: torch.Tensor, camera: Cameras, distance: float,
                 agree: float = 0.03) -> float:
    """The factor that brings a view's relative depth (H, W) to the model's scale. The model is a
    part of the object's surface, so where it is drawn (z-buffer) its depth is the view's true
    depth or more (a surface the model lacks shows its far side): the factor is the median ratio
    over the pixels within `agree` of the ratios' 20th percentile. With fewer than 30 such
    pixels, the median depth is set to the distance of the view's camera from the centre."""
    drawn = splat(model_world, None, camera, radius=1.0)
    both = drawn.mask.numpy() & (depth > 0)
    if both.sum() >= 30:
        ratio = drawn.depth.numpy()[both] / depth[both]
        low = np.percentile(ratio, 20)
        return float(np.median(ratio[ratio <= low * (1 + agree)]))
    return distance / float(np.median(depth[depth > 0]))


def complete_canonical(points: torch.Tensor, colors: torch.Tensor | None, to_world: Sim3, frame_rgb: np.ndarray,
                       mask: np.ndarray, camera: Cameras, synthesizer, depth_estimator, *, voxel_size: float,
                       relative_poses=DEFAULT_RELATIVE_POSES, size: int = 256, fill: float = 0.8, up=None,
                       metric_depth: bool = False, threshold_voxels: float = 3.0, min_fitness: float = 0.5,
                       max_scale_change: float = 0.2, fill_voxels: float = 2.0, seed: int = 0, frame: int = 0,
                       reference: ReferenceView | None = None) -> Completion:
    """Add generated views' points to the canonical (module docstring, steps 2–5).

    points (M, 3) / colors (M, 3): the canonical; to_world: Sim3 () canonical → world in the
    reference frame; frame_rgb / mask / camera: that frame; synthesizer: a
    `datagen.novel_view.NovelViewSynthesizer`; depth_estimator: frames uint8 (N, S, S, 3) →
    depth (N, S, S) (`orbit4d.estimators.DepthEstimator`), metric when `metric_depth`;
    threshold_voxels: the registration's RANSAC inlier distance in voxels (3: generated views
    are off their requested poses by degrees; the alignment to frames uses 2)."""
    from datagen.novel_view import SourceView, as_relative_poses

    pts = points.double()
    world = to_world.apply(pts)
    ref = reference or reference_view(frame_rgb, mask, camera, world.mean(0), size=size, fill=fill, up=up,
                                      frame=frame)
    poses = as_relative_poses(relative_poses)
    order = np.argsort(np.abs(poses[:, 1]), kind="stable")
    poses = poses[order]
    images = synthesizer.synthesize(SourceView(ref.image, viewpoint=ref.viewpoint, name=f"reference frame {frame}"),
                                    poses, seed=seed)
    images = [np.asarray(im, np.uint8) for im in images]
    depth = np.asarray(depth_estimator(np.stack(images)), np.float32)
    cams = view_cameras(ref, poses)
    model = pts
    added_pts, added_cols, reports = [], [], []
    for i, pose in enumerate(poses):
        report = {"relative_pose_deg": [round(math.degrees(float(x)), 3) for x in pose[:2]] + [float(pose[2])],
                  "status": "added", "fitness": 0.0, "scale": 1.0, "added": 0}
        reports.append(report)
        fg_mask = largest_non_white_region(images[i])
        fg, _ = split_depth(depth[i][None], fg_mask[None], margin=2)
        if (fg > 0).sum() < 30:
            report["status"] = "skipped: no object found in the generated view"
            continue
        if not metric_depth:
            fg *= _depth_scale(fg[0], to_world.apply(model), cams[i], ref.viewpoint["distance"] + float(pose[2]))
        cloud = depth_to_points(torch.from_numpy(fg[0]).double(), cams[i], torch.from_numpy(images[i]))
        init = Sim3(to_world.scale[None], to_world.R[None], to_world.t[None])
        threshold = threshold_voxels * voxel_size
        fit = align_canonical(model, fg, [cloud], cams[i:i + 1], init, threshold=threshold, shared_scale=False,
                              seed=seed + i)
        placed = fit.transforms[0]
        scale = float(placed.scale / to_world.scale)
        # agreement: of the model points the placed view shows within 3 thresholds of its depth,
        # the share within one
        view_depth = torch.from_numpy(fg[0]).double()
        pairs = [correspondences(model, placed, view_depth, cams[i], tolerance=k * threshold)[0].shape[0]
                 for k in (1, 3)]
        share = pairs[0] / max(pairs[1], 1)
        report["fitness"], report["scale"] = round(share, 4), round(scale, 4)
        if pairs[0] < 30 or share < min_fitness:
            report["status"] = f"skipped: too little agreement with the model ({pairs[0]} of {pairs[1]} pairs)"
            continue
        if abs(scale - 1.0) > max_scale_change:
            report["status"] = "skipped: registration changed the scale too much"
            continue
        registered = placed.inverse().apply(cloud.points)  # the view's world → canonical
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(model.numpy()).query(registered.numpy(), k=1)
        new = torch.from_numpy(dist > fill_voxels * voxel_size)
        report["added"] = int(new.sum())
        if report["added"]:
            added_pts.append(registered[new])
            added_cols.append(None if cloud.colors is None else cloud.colors[new])
            model = torch.cat([model, registered[new]])
    out_pts, out_cols, added = pts, colors, 0
    if added_pts:
        new_colors = None if colors is None or any(c is None for c in added_cols) else torch.cat(added_cols)
        fused = voxel_downsample(torch.cat(added_pts), new_colors, voxel_size=voxel_size)
        if fused.points.shape[0] > 16:
            fused = remove_statistical_outliers(fused.points, fused.colors, nb_neighbors=16, std_ratio=2.0)
        added = int(fused.points.shape[0])
        out_pts = torch.cat([pts, fused.points.double()])
        if colors is not None and fused.colors is not None:
            out_cols = torch.cat([colors, fused.colors.to(colors.dtype)])
        elif colors is not None:
            out_cols = None
    return Completion(out_pts, out_cols, added, reports, images, ref)


def ground_up(points, camera: Cameras, *, iterations: int = 256, tolerance: float = 0.01, min_share: float = 0.2,
              max_tilt_degrees: float = 45.0, seed: int = 0) -> torch.Tensor | None:
    """The world's up (3,) float64 from the background cloud (N, 3): the normal of the plane that
    holds the most points (RANSAC, inliers within `tolerance` × the cloud's median distance from
    the camera; refined by the inliers' least-squares plane), turned towards the camera's image
    up. None when that plane holds under `min_share` of the points or tilts more than
    `max_tilt_degrees` from the camera's up (a wall rather than a floor)."""
    pts = torch.as_tensor(points).double().reshape(-1, 3)
    cam = camera.to(dtype=torch.float64)
    R, t = cam.R.reshape(3, 3), cam.t.reshape(3)
    if pts.shape[0] < 100:
        return None
    eye = -R.T @ t
    band = tolerance * float((pts - eye).norm(dim=-1).median())
    rng = np.random.default_rng(seed)
    best, best_count = None, 0
    for _ in range(iterations):
        a, b, c = pts[torch.from_numpy(rng.choice(pts.shape[0], 3, replace=False))]
        n = torch.linalg.cross(b - a, c - a)
        if float(n.norm()) < 1e-12:
            continue
        n = n / n.norm()
        inliers = ((pts - a) @ n).abs() < band
        if int(inliers.sum()) > best_count:
            best, best_count = inliers, int(inliers.sum())
    if best is None or best_count < min_share * pts.shape[0]:
        return None
    on_plane = pts[best]
    normal = torch.linalg.svd(on_plane - on_plane.mean(0), full_matrices=False).Vh[-1]
    camera_up = -R[1]
    if float(normal @ camera_up) < 0:
        normal = -normal
    if math.degrees(math.acos(min(1.0, float(normal @ camera_up)))) > max_tilt_degrees:
        return None
    return normal


def complete_run(inputs, geo: dict, synthesizer, depth_estimator, *, up="ground", **options) -> Completion:
    """`complete_canonical` for a run: orbit4d.pipeline's inputs and `reconstruct_and_align`
    results; the reference is the frame with the largest mask, placed by its fitted transform.
    up: "ground" (the background's dominant plane, `ground_up`; the camera's up when there is no
    such floor), "camera", or a world vector."""
    frame = int(np.argmax(inputs.masks.reshape(len(inputs.masks), -1).sum(1)))
    canonical = geo["canonical"]
    if isinstance(up, str):
        if up not in ("ground", "camera"):
            raise ValueError(f"up must be 'ground', 'camera' or a vector, got {up!r}")
        up = ground_up(geo["background"].points, inputs.cameras[frame]) if up == "ground" else None
    return complete_canonical(canonical.points, canonical.colors, geo["fit"].transforms[frame], inputs.frames[frame],
                              inputs.masks[frame], inputs.cameras[frame], synthesizer, depth_estimator,
                              voxel_size=geo["voxel"], frame=frame, up=up, **options)


def complete_with_models(inputs, geo: dict, novel_view_model: str, depth_model: str, *, steps: int = 50,
                         seed: int = 0, device: str | None = None, **options) -> Completion:
    """`complete_run` with a Zero-1-to-3 synthesizer (`datagen.novel_view.Zero123Synthesizer`, by
    model id or folder) and a transformers depth model (`orbit4d.depth_model.TransformersDepth`,
    by id or folder; a metric model's depth is taken as metric)."""
    from datagen.novel_view import Zero123Synthesizer

    from .depth_model import TransformersDepth

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    synthesizer = Zero123Synthesizer(novel_view_model, device=device, steps=steps)
    depth = TransformersDepth(depth_model, device=device)
    return complete_run(inputs, geo, synthesizer, depth, metric_depth=depth.kind == "metric", seed=seed, **options)


def write_completion(folder, done: Completion) -> dict:
    """Write the reference and the generated views as PNGs under `folder` (reference/00000.png,
    views/NNNNN.png in the order of the reports); returns the JSON-ready summary (reference frame,
    points added, per-view reports)."""
    from pathlib import Path

    from .scaffold import write_frames

    folder = Path(folder)
    write_frames(folder / "reference", done.reference.image[None])
    write_frames(folder / "views", np.stack(done.images))
    return {"reference_frame": done.reference.frame, "added_points": done.added, "views": done.views}
