"""The 4D proxy of a moving, deforming subject: three ways, measured on the same scene.

- `rigid_proxy`: today's pipeline (`orbit4d.pipeline.reconstruct_and_align`): one rigid canonical
  cloud moved by one smoothed similarity per frame (the baseline: exact for a rigid object,
  wrong for a body that bends).
- `per_frame_proxy`: FreeOrbit4D's proxy: every frame's partial foreground completed on its own
  with generated views (`orbit4d.completion.complete_canonical` with that frame as the reference
  and its own partial cloud as the model), reconstructed in the frame's camera and registered to
  it by pixel-synchronised Sim(3) RANSAC. FreeOrbit4D does this with SV4D 2.0 views and VGGT;
  here any `datagen.novel_view.NovelViewSynthesizer` with a depth estimator for its views.
- `deforming_proxy`: one keyframe completed as above, then deformed into every frame by the
  embedded deformation graph of `orbit4d.deform` (views are generated once).

`MeshViewSynthesizer` is the synthesizer of the benchmark: it renders a true mesh (the frame's
posed subject) at the requested relative poses, exactly, or with a generator's faults (pose
jitter the caller does not know about, texture noise, a smooth shape error, blur, as
`datagen.novel_view.DegradedRenderSynthesizer`), and remembers each view's depth for
`ViewDepth` (times an unknown factor per view, as a relative depth model would give).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from geom3d import voxel_downsample

# the completion's views for one frame: the ring of orbit4d.completion at the reference elevation and a
# lower ring (40° further below), which shows the belly and the legs' inner faces
FRAME_POSES = tuple((0.0, math.radians(a), 0.0) for a in (45, -45, 90, -90, 135, -135, 180)) + tuple(
    (math.radians(40.0), math.radians(a), 0.0) for a in (0, 90, -90, 180))

__all__ = ["FRAME_POSES", "MeshViewSynthesizer", "ViewDepth", "complete_frame", "rigid_proxy", "per_frame_proxy",
           "deforming_proxy", "DeformingProxy"]


class MeshViewSynthesizer:
    """Renders `mesh` = (vertices (V, 3) world, faces (F, 3), colours (V, 3)) around a reference
    (`orbit4d.completion.ReferenceView`) at relative poses; see the module docstring. pose_sigma
    (radians), texture (colour noise std), shape (displacement amplitude, fraction of the
    object's radius), blur (pixels): 0 for the exact synthesizer."""

    name = "mesh render"

    def __init__(self, mesh, reference, *, pose_sigma: float = 0.0, texture: float = 0.0, shape: float = 0.0,
                 blur: float = 0.0, seed: int = 0):
        v = torch.as_tensor(np.asarray(mesh[0]), dtype=torch.float64)
        self.vertices_o = ((v - reference.centre) @ reference.Q.T).numpy()
        self.faces, self.colors = np.asarray(mesh[1]), np.asarray(mesh[2], np.float64)
        self.pose_sigma, self.texture, self.shape, self.blur, self.seed = pose_sigma, texture, shape, blur, seed
        self.depth = {}

    def synthesize(self, source, relative_poses, seed: int = 0) -> list:
        from datagen.novel_view import as_relative_poses, target_viewpoint
        from datagen.render import viewpoints_to_cameras

        from .synthetic import render_scene

        out = []
        empty = (np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3)))
        for n, pose in enumerate(as_relative_poses(relative_poses)):
            rng = np.random.default_rng([self.seed, seed, n])
            jitter = rng.normal(0.0, self.pose_sigma, 3) if self.pose_sigma > 0 else np.zeros(3)
            view = target_viewpoint(source.viewpoint, pose + np.array([jitter[0], jitter[1], 0.0]))
            view["theta"] += float(jitter[2])
            cam = viewpoints_to_cameras([view], source.image.shape[:2])
            v, c = self.vertices_o, self.colors
            if self.shape > 0:
                radius = float(np.linalg.norm(v, axis=1).max())
                k = rng.normal(0, 2.0 / radius, (3, 3))
                v = v + self.shape * radius * np.sin(v @ k + rng.uniform(0, 2 * math.pi, 3))
            if self.texture > 0:
                c = np.clip(c + rng.normal(0, self.texture, 3) + rng.normal(0, self.texture, c.shape), 0, 1)
            rgb, depth, mask = render_scene((np.zeros((0, 3)), self.faces, c), empty, torch.from_numpy(v)[None], cam)
            image = rgb[0]
            image[~mask[0]] = 255
            if self.blur > 0:
                image = cv2.GaussianBlur(image, (0, 0), self.blur)
            self.depth[image.tobytes()] = np.where(mask[0], depth[0], 0).astype(np.float32)
            out.append(image)
        return out


class ViewDepth:
    """The depth of the synthesizer's views, each times an unknown factor (a relative depth model)."""

    def __init__(self, synthesizer: MeshViewSynthesizer):
        self.synthesizer = synthesizer

    def __call__(self, frames):
        return np.stack([self.synthesizer.depth[f.tobytes()] * (0.5 + 0.1 * i) for i, f in enumerate(frames)])


def complete_frame(frame_rgb, mask, camera, partial, synthesizer_for, *, voxel_size: float, up=None,
                   size: int = 192, seed: int = 0, relative_poses=FRAME_POSES, fill_voxels: float = 1.0,
                   depth_estimator=None, metric_depth: bool = False, frame: int = 0):
    """One frame's complete foreground, an `orbit4d.completion.Completion` (points in world):
    its partial cloud (`geom3d.DepthPoints`, world) voxel-downsampled, completed with the views
    (`relative_poses`, default `FRAME_POSES`) of the synthesizer `synthesizer_for(reference)`
    makes for that frame's reference view; view points farther than `fill_voxels` voxels from
    the model are added (1: a denser fill than the canonical completion's 2, since a single
    frame's cloud has no other frames to fill it). depth_estimator: the views' depth (frames →
    depth, metric when `metric_depth`); None: `ViewDepth` of a `MeshViewSynthesizer`."""
    from geom3d.align import Sim3

    from .completion import complete_canonical, reference_view

    cloud = voxel_downsample(partial.points.double(), partial.colors, voxel_size=voxel_size)
    ident = Sim3(torch.ones((), dtype=torch.float64), torch.eye(3, dtype=torch.float64),
                 torch.zeros(3, dtype=torch.float64))
    ref = reference_view(frame_rgb, mask, camera, cloud.points.double().mean(0), size=size, up=up, frame=frame)
    synth = synthesizer_for(ref)
    done = complete_canonical(cloud.points.double(), cloud.colors, ident, frame_rgb, mask, camera, synth,
                              ViewDepth(synth) if depth_estimator is None else depth_estimator,
                              voxel_size=voxel_size, size=size, up=up, seed=seed, reference=ref,
                              relative_poses=relative_poses, fill_voxels=fill_voxels, metric_depth=metric_depth,
                              frame=frame)
    return done


def rigid_proxy(inputs, options=None) -> tuple[list, dict]:
    """Today's pipeline: per frame the rigid canonical moved by the smoothed transform (world)."""
    from .pipeline import Orbit4DOptions, reconstruct_and_align

    geo = reconstruct_and_align(inputs, options or Orbit4DOptions())
    can = geo["canonical"].points.double()
    return [geo["smoothed"][f].apply(can).numpy() for f in range(len(inputs.names))], geo


def per_frame_proxy(inputs, geo: dict, synthesizer_for_frame, *, up=None, size: int = 192, depth_estimator=None,
                    metric_depth: bool = False, seed: int = 0) -> list:
    """FreeOrbit4D's proxy: every frame completed on its own (module docstring). geo: the
    geometric stages' results (partials, voxel); synthesizer_for_frame(f, reference) → a
    synthesizer; depth_estimator / metric_depth: the views' depth (`complete_frame`). Returns one
    `orbit4d.completion.Completion` per frame (points in world)."""
    out = []
    for f in range(len(inputs.names)):
        out.append(complete_frame(inputs.frames[f], inputs.masks[f], inputs.cameras[f], geo["partials"][f],
                                  lambda ref, f=f: synthesizer_for_frame(f, ref), voxel_size=geo["voxel"], up=up,
                                  size=size, seed=seed + f, depth_estimator=depth_estimator,
                                  metric_depth=metric_depth, frame=f))
    return out


@dataclass(frozen=True)
class DeformingProxy:
    """keyframe; completion: the keyframe's `Completion`; track: `orbit4d.deform.NonRigidTrack`
    (track.deformed (T, M, 3): the deformed canonical in every frame, world); proxies: per frame
    the proxy (M_f, 3) world: the frame's own partial cloud (voxel-averaged) where the frame sees
    the subject, the deformed canonical everywhere else; colors: per frame their colours (M_f, 3)
    in [0, 1], or None where the canonical has none."""

    keyframe: int
    completion: object
    track: object
    proxies: list
    colors: list = None


def deforming_proxy(inputs, geo: dict, synthesizer_for_frame, *, keyframe: int | None = None, up=None,
                    size: int = 192, node_spacing_voxels: float = 4.0, tolerance_voxels: float = 3.0,
                    alpha: float = 2.0, beta: float = 0.005, rounds: int = 8, iterations: int = 5,
                    settle_voxels: float = 0.0, depth_estimator=None, metric_depth: bool = False, seed: int = 0,
                    silhouette_dilate: int | None = 1, silhouette_drop: bool = True, silhouette_weight: float = 0.0,
                    **track_options) -> DeformingProxy:
    """One complete keyframe deformed into every frame (module docstring); keyframe: default the
    frame with the largest mask. Node spacing and pair tolerance in foreground voxels;
    depth_estimator / metric_depth: the views' depth (`complete_frame`). Silhouette consistency
    (`orbit4d.deform.Silhouette`, the frame's mask dilated by `silhouette_dilate` pixels, its full
    depth for occlusion; None: no silhouette test): with `silhouette_drop` the deformed points a
    frame's silhouette rules out leave that frame's proxy; silhouette_weight > 0 also pulls them
    onto the silhouette during the tracking (`track_nonrigid`; 0 by default: its gain did not hold
    over scenes, docs/orbit4d.md)."""
    from .deform import Silhouette, track_nonrigid

    T = len(inputs.names)
    if keyframe is None:  # the frame that shows the most of the subject (as orbit4d.completion.complete_run)
        keyframe = int(np.argmax(inputs.masks.reshape(T, -1).sum(1)))
    done = complete_frame(inputs.frames[keyframe], inputs.masks[keyframe], inputs.cameras[keyframe],
                          geo["partials"][keyframe], lambda ref: synthesizer_for_frame(keyframe, ref),
                          voxel_size=geo["voxel"], up=up, size=size, seed=seed + keyframe,
                          depth_estimator=depth_estimator, metric_depth=metric_depth, frame=keyframe)
    v = geo["voxel"]
    sil = None if silhouette_dilate is None or not (silhouette_drop or silhouette_weight > 0) else \
        [Silhouette(inputs.masks[f], inputs.depth[f], inputs.cameras[f], dilate=silhouette_dilate,
                    tolerance=tolerance_voxels * v) for f in range(T)]
    track = track_nonrigid(done.points.numpy(), None if done.colors is None else done.colors.numpy(), keyframe,
                           inputs.frames, geo["fg_depth"], inputs.cameras, node_spacing=node_spacing_voxels * v,
                           tolerance=tolerance_voxels * v, alpha=alpha, beta=beta, rounds=rounds,
                           iterations=iterations, settle=settle_voxels * v, silhouettes=sil,
                           silhouette_weight=silhouette_weight, **track_options)
    proxies, colors = [], []
    for f in range(T):
        pts, cols = observed_and_deformed(track.deformed[f], geo["partials"][f], geo["fg_depth"][f],
                                          inputs.cameras[f], voxel_size=v, tolerance=tolerance_voxels * v,
                                          colors=track.colors, with_colors=True,
                                          silhouette=sil[f] if sil is not None and silhouette_drop else None)
        proxies.append(pts)
        colors.append(cols)
    return DeformingProxy(keyframe, done, track, proxies, colors)


def observed_and_deformed(deformed, partial, fg_depth, camera, *, voxel_size: float, tolerance: float,
                          colors=None, with_colors: bool = False, silhouette=None):
    """A frame's proxy (M, 3): its partial cloud voxel-averaged, plus the deformed canonical
    points (N, 3) the frame does not show (those on the frame's surface, within `tolerance` of
    its depth on their ray, are replaced by the observation) and its silhouette does not rule out
    (silhouette: the frame's `orbit4d.deform.Silhouette`; a point that projects outside the
    subject's dilated mask where the camera sees past it cannot be on the surface: dropped; None:
    no such test). with_colors: returns (points, colours (M, 3) in [0, 1] or None), the partial
    cloud's colours and the canonical's `colors` (N, 3)."""
    from .deform import _projective

    seen, _ = _projective(np.asarray(deformed, np.float64), fg_depth, camera.to(dtype=torch.float64), tolerance)
    keep = np.ones(len(deformed), bool)
    keep[seen] = False
    if silhouette is not None:
        keep &= ~silhouette.outside(np.asarray(deformed, np.float64))
    if partial.points.shape[0]:
        own = voxel_downsample(partial.points.double(), partial.colors if with_colors else None,
                               voxel_size=voxel_size)
        own_pts = own.points.numpy()
    else:
        own, own_pts = None, np.zeros((0, 3))
    pts = np.concatenate([own_pts, np.asarray(deformed)[keep]])
    if not with_colors:
        return pts
    if colors is None or (own is not None and own.colors is None):
        return pts, None
    own_cols = own.colors.double().numpy() if own is not None else np.zeros((0, 3))
    return pts, np.concatenate([own_cols, np.asarray(colors, np.float64)[keep]])
