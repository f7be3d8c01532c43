"""One sample, from its render to what is written: the image, the files beside it, its occlusion
levels and its records.

Pure functions of their arguments (the random generators are passed in), so the worker only
orchestrates: `compose_image` paints the object over its background, `map_files` encodes the mask,
depth, normals and edges, `occlusion_variant` pastes the occluders of one level, and
`sample_record` builds the data3d record of one image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aware3d_utils.deprecation import renamed, renamed_arguments
from aware3d_utils.optional import lazy_module

from .randomize import make_occluders, object_points, texture_albedo

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["Look", "LoadedAsset", "to_u8", "object_color", "compose_image", "quantise_depth", "map_files",
           "OcclusionVariant", "occlusion_variant", "encode_image", "is_truncated", "sample_record",
           "DEPTH_LEVELS"]

#: the largest depth of a view is stored as this uint16 value (headroom below 65535)
DEPTH_LEVELS = 65000.0


@dataclass(frozen=True)
class Look:
    """The appearance draws of one sample: principal point (px, py), appearance and background kinds, lights."""

    principal: tuple[float, float]
    appearance: str
    background: str
    lights: object


@dataclass(frozen=True)
class LoadedAsset:
    """A loaded asset: its mesh, the same geometry without colours (for procedural textures), the
    longest side of its box, its box [[lo], [hi]] and its vertices (V, 3) float64 (for framing)."""

    mesh: object
    plain: object
    extent: float
    bounds: list
    vertices: np.ndarray


def to_u8(image: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] to uint8, rounded to nearest, saturated above (OpenCV: several times numpy's speed).
    Every image here is built from non-negative parts (convertScaleAbs would mirror negatives)."""
    return cv2.convertScaleAbs(np.asarray(image, dtype=np.float32), alpha=255.0)


def object_color(views, b: int, look: Look, extent: float, texture_rng: np.random.Generator) -> np.ndarray:
    """The object's colour image (H, W, 3) float32 of view `b` (black where empty): the render, or
    the render times a procedural 3D texture evaluated at the object points each pixel sees."""
    rgb = views.rgb[b]
    if look.appearance == "original":
        return rgb
    mask = views.mask[b]
    cams = views.cameras
    K, R, t = (x[b].numpy() for x in (cams.K, cams.R, cams.t))
    pts = object_points(views.depth[b], mask, K, R, t)
    albedo = texture_albedo(texture_rng, look.appearance, pts, extent)
    out = np.zeros_like(rgb)
    out[mask] = rgb[mask] * albedo.astype(np.float32)
    return out


@renamed_arguments(colour="color")
def compose_image(color: np.ndarray, mask: np.ndarray, background: np.ndarray | None) -> np.ndarray:
    """The object (H, W, 3) over `background` (H, W, 3), or over black when there is none (transparent)."""
    return np.where(mask[..., None], color, 0.0 if background is None else background)


object_colour = renamed(object_color, "object_colour")  # the old spelling


def quantise_depth(depth: np.ndarray) -> tuple[np.ndarray, float]:
    """(H, W) camera z -> uint16 levels and the scale back: z = value × scale, in the units of the
    mesh (CAD units; the procedural library's longest side is 1). The view's largest depth maps to
    DEPTH_LEVELS, so the relative step is 1/65000 of it."""
    scale = max(float(depth.max()), 1e-12) / DEPTH_LEVELS
    return np.rint(depth / scale).astype(np.uint16), scale


def map_files(category: str, sid: str, views, b: int, save: Sequence[str],
              edges: np.ndarray | None) -> tuple[dict[str, np.ndarray], dict]:
    """The per-view files beside the image (relative path -> array) and the record keys naming them:
    the mask always; depth, normals and edges (an (H, W, 3) edge map) when `save` lists them."""
    mask = views.mask[b]
    files: dict[str, np.ndarray] = {f"masks/{category}/{sid}.png": mask}
    extra: dict = {"mask_path": f"masks/{category}/{sid}.png"}
    if "depth" in save:
        levels, scale = quantise_depth(views.depth[b])
        files[f"depth/{category}/{sid}.png"] = levels
        extra.update(depth_path=f"depth/{category}/{sid}.png", depth_scale=scale)
    if "normal" in save:
        n = views.normal[b]
        files[f"normals/{category}/{sid}.png"] = np.where(
            mask[..., None], np.rint((n * 0.5 + 0.5) * 255), 0).clip(0, 255).astype(np.uint8)
        extra["normal_path"] = f"normals/{category}/{sid}.png"
    if "edges" in save and edges is not None:
        files[f"edges/{category}/{sid}.png"] = edges[..., 0]
        extra["edges_path"] = f"edges/{category}/{sid}.png"
    return files, extra


@dataclass(frozen=True)
class OcclusionVariant:
    """One occlusion level: the image (H, W, 3) float, the visible mask and the occluders' mask (None at none)."""

    image: np.ndarray
    visible: np.ndarray
    occluders: np.ndarray | None


def occlusion_variant(image: np.ndarray, mask: np.ndarray, level: str, hidden: tuple[float, float],
                      rng: np.random.Generator, shapes: Sequence[int], attempts: int) -> OcclusionVariant | None:
    """Occluders pasted over the object so that a fraction in `hidden` of it is covered; None when
    `attempts` tries miss the range."""
    if level == "none":
        return OcclusionVariant(image, mask, None)
    occ = make_occluders(rng, mask, hidden, shapes=shapes, attempts=attempts)
    if occ is None:
        return None
    return OcclusionVariant(np.where(occ.mask[..., None], occ.rgb, image), mask & ~occ.mask, occ.mask)


def encode_image(variant: OcclusionVariant, mask: np.ndarray, transparent: bool) -> np.ndarray:
    """uint8 RGB, or RGBA when transparent (alpha covers the object and the occluders)."""
    if not transparent:
        return to_u8(variant.image)
    alpha = mask if variant.occluders is None else (mask | variant.occluders)
    return np.concatenate([to_u8(variant.image), alpha[..., None].astype(np.uint8) * 255], axis=2)


def is_truncated(mask: np.ndarray) -> bool:
    """The object touches the image border (part of it may be outside)."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def sample_record(path: Path, image_size, *, category: str, bbox, viewpoint, asset, asset_key: str, level: int,
                  visible: float, truncated: bool, bounds, view_index: int, caption: str | None, extra: Mapping):
    """The data3d record of one written image (one object). The CAD reference follows data3d's rule
    (`mesh_ref_for`): source = the asset's collection ("pascal3d" for the PASCAL3D+ CAD folder),
    cad_id = the asset id, cad_index only for `<category>/NN.off` collections."""
    from data3d import ImageRecord, ObjectAnnotation

    obj = ObjectAnnotation(
        category=category, bbox=bbox, viewpoint=viewpoint, cad_index=asset.cad_index,
        cad_source=str(asset.meta.get("collection", asset.source)), cad_id=str(asset.id), occlusion=level,
        visible_fraction=min(1.0, max(0.0, visible)), truncated=truncated, caption=caption,
        extra={"asset": asset_key, "view_index": int(view_index),
               "mesh_bounds": [[float(x) for x in row] for row in bounds]})
    return ImageRecord(image_path=path, image_size=image_size, objects=(obj,), extra=dict(extra))
