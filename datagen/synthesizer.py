"""The novel-view synthesizer interface: relative poses, the source view and `NovelViewSynthesizer`.

A relative pose is (Δpolar, Δazimuth, Δradius): the camera moves on a sphere around the object
centre, the polar angle measured from the object's up axis (so Δpolar = −Δelevation: a positive
Δpolar lowers the camera), the azimuth about the up axis in the PASCAL3D+ sense (the camera centre
turns counter-clockwise seen from above, as Zero-1-to-3's atan2(y, x)), the radius in object units.
Angles in radians. `relative_pose_from_elevation` converts from Δelevation; `target_viewpoint` is the
camera a relative pose moves a viewpoint to.

The synthesizers themselves: `datagen.zero123` (Zero-1-to-3) and `datagen.render_synthesizers`
(exact and degraded renders); `datagen.novel_view` gathers them and `make_synthesizer`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["NovelViewSynthesizer", "SourceView", "relative_pose_from_elevation", "as_relative_poses",
           "target_viewpoint", "APPEARANCES"]

# what the render synthesizers draw on the surface: the source image carried over (as a generator
# does) or the mesh's own colours (grey for an untextured CAD model)
APPEARANCES = ("source", "mesh")


def relative_pose_from_elevation(d_elevation, d_azimuth, d_radius=0.0) -> np.ndarray:
    """(N, 3) relative poses (Δpolar, Δazimuth, Δradius) from elevation changes (from the horizon, radians):
    the polar angle is measured from the up axis, so Δpolar = −Δelevation."""
    e, a, r = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in
                                    (d_elevation, d_azimuth, d_radius)))
    return np.stack([-e, a, r], axis=-1)


def as_relative_poses(relative_poses) -> np.ndarray:
    """(N, 3) float64 (Δpolar, Δazimuth, Δradius) from a (3,) or (N, 3) array-like; ValueError otherwise."""
    poses = np.asarray(relative_poses, dtype=np.float64)
    if poses.ndim == 1:
        poses = poses[None]
    if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) == 0:
        raise ValueError(f"relative poses must have shape (N, 3) = (Δpolar, Δazimuth, Δradius), got {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise ValueError("relative poses contain NaN or infinite values")
    return poses


@dataclass(frozen=True)
class SourceView:
    """The source of a generated set: image (H, W, 3) uint8, and for the render synthesizers the object's
    mesh (`geom3d.Mesh`, in its object frame) and the source camera's viewpoint (a mapping with azimuth,
    elevation, theta, distance, focal, viewport, px, py, as `data3d.Viewpoint`). `name` names it in errors."""

    image: np.ndarray
    mesh: object | None = None
    viewpoint: Mapping | None = None
    name: str = "source image"

    def checked_image(self) -> np.ndarray:
        img = np.asarray(self.image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 8:
            raise ValueError(f"{self.name}: the image must be (H, W, 3) uint8 of at least 8x8 pixels, "
                             f"got {img.shape} {img.dtype}")
        return img


def target_viewpoint(viewpoint: Mapping, relative_pose) -> dict:
    """The viewpoint (same keys) of the camera moved by one relative pose (Δpolar, Δazimuth, Δradius):
    azimuth + Δazimuth, elevation − Δpolar, distance + Δradius; θ, focal and principal point kept."""
    dp, da, dr = (float(x) for x in np.asarray(relative_pose, dtype=np.float64).reshape(3))
    out = {k: float(viewpoint[k]) for k in ("azimuth", "elevation", "theta", "distance", "focal", "viewport",
                                            "px", "py")}
    out["azimuth"] = (out["azimuth"] + da) % (2 * math.pi)
    out["elevation"] = out["elevation"] - dp
    out["distance"] = out["distance"] + dr
    if out["distance"] <= 0:
        raise ValueError(f"relative pose {relative_pose}: the camera distance {out['distance']:.3g} is not positive")
    return out


class NovelViewSynthesizer(ABC):
    """An object image + relative poses -> one (H, W, 3) uint8 image per pose (see the module docstring)."""

    name: str = "synthesizer"

    @abstractmethod
    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        """Images of the source's object seen from `relative_poses` ((N, 3) Δpolar, Δazimuth, Δradius);
        the same seed gives the same images."""

    def describe(self) -> dict:
        """JSON-serialisable settings, for manifests."""
        return {"synthesizer": self.name}

    def plan_sets(self, seeds) -> None:
        """Told the seeds of every set of one collection before any is synthesized (`pose.generate_sets`
        calls it): a synthesizer whose failures are drawn over the collection, not per set, fixes them
        here. Nothing by default."""
        return None
