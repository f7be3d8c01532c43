"""The render stage: cameras for drawn viewpoints, batched renders through geom3d, and edge maps.

- `viewpoint_for(view, extent, image_size, fov, principal)`: the exact PASCAL3D+ viewpoint (a
  `data3d.Viewpoint`) of a drawn `ViewSample`: the distance scales with the object's longest side
  so that the object fills a steady fraction of the image, the focal length comes from the field
  of view, and the object origin projects to the principal point.
- `render_views(mesh, viewpoints, image_size, lights=...)`: colour, depth, mask and normals of
  every view of one mesh in one `geom3d.render_gl` call (the GL context and the uploaded mesh are
  reused across calls), as numpy arrays.
- `canny_edges` (OpenCV Canny, thresholds 100/200 as 3D-DST) and `geometry_edges` (depth and
  normal discontinuities plus the silhouette: they never fire on texture), `edge_map` for both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aware3d_utils.optional import lazy_module
from geom3d import Cameras, Mesh, fov_to_focal, viewpoint_to_cameras

from .samplers import ViewSample

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = [
    "VIEWPORT",
    "Lights",
    "RenderedViews",
    "object_extent",
    "viewpoint_for",
    "viewpoints_to_cameras",
    "render_views",
    "canny_edges",
    "geometry_edges",
    "edge_map",
    "mask_bbox",
]

#: the viewport of the viewpoints we write (PASCAL3D+'s value): focal = fx / VIEWPORT
VIEWPORT = 3000.0


@dataclass(frozen=True)
class Lights:
    """Per-view lighting for `render_views`: ambient (3,), directions (L, 3) unit vectors from the
    surface towards each light in the OpenCV camera frame, and colour × intensity (L, 3)."""

    ambient: np.ndarray
    directions: np.ndarray
    colors: np.ndarray


@dataclass
class RenderedViews:
    """numpy outputs of B views: rgb (B, H, W, 3) float32 in [0, 1], mask (B, H, W) bool,
    depth (B, H, W) float32 camera z (0 where empty), normal (B, H, W, 3) float32 camera frame
    (None when not rendered), and the `Cameras` (B,) they were rendered with."""

    rgb: np.ndarray | None
    mask: np.ndarray
    depth: np.ndarray | None
    normal: np.ndarray | None
    cameras: Cameras | None = None


def object_extent(mesh: Mesh) -> float:
    """The longest side of the mesh's bounding box (3D-DST normalises it to 1)."""
    lo, hi = mesh.bounds()
    return float((hi - lo).max())


def viewpoint_for(view: ViewSample, extent: float, image_size: Sequence[int], fov: float,
                  principal: tuple[float, float] | None = None):
    """The `data3d.Viewpoint` of a drawn view for an object of longest side `extent`.

    fov: horizontal field of view (radians) across the image width. principal: (px, py) in
    pixels (integer pixel centres); default the image centre. The camera distance is
    view.distance × extent.
    """
    from data3d.record import Viewpoint

    h, w = (int(s) for s in image_size)
    if not extent > 0:
        raise ValueError(f"object extent must be > 0, got {extent}")
    fx = fov_to_focal(fov, w)
    px, py = principal if principal is not None else ((w - 1) / 2.0, (h - 1) / 2.0)
    return Viewpoint(azimuth=view.azimuth, elevation=view.elevation, theta=view.theta,
                     distance=view.distance * extent, focal=fx / VIEWPORT, viewport=VIEWPORT, px=px, py=py)


def viewpoints_to_cameras(viewpoints: Sequence, image_size: Sequence[int]) -> Cameras:
    """`Cameras` of batch shape (B,) in float64 for a list of viewpoints: exactly the camera that
    `Viewpoint.to_cameras` rebuilds from a stored record."""
    keys = ("azimuth", "elevation", "theta", "distance", "focal", "viewport", "px", "py")
    v = torch.tensor([[vp[k] for k in keys] for vp in viewpoints], dtype=torch.float64).reshape(-1, 8)
    a, e, th, d, f, m, px, py = v.unbind(-1)
    return viewpoint_to_cameras(a, e, th, d, f, m, torch.stack([px, py], -1), image_size=tuple(image_size))


def render_views(mesh: Mesh, viewpoints: Sequence, image_size: Sequence[int], *, lights: Sequence[Lights] | None = None,
                 outputs: Sequence[str] = ("rgb", "depth", "mask", "normal"), shading: str = "flat",
                 base_color: float | Sequence[float] = 0.7, backend: str | None = None) -> RenderedViews:
    """Render `mesh` from every viewpoint in one `geom3d.render_gl` call (black background).

    lights: one `Lights` per view (they may hold different numbers of lights: the shorter ones
    are padded with lights of zero intensity); None uses render_gl's default light.
    """
    from geom3d.gl import render_gl

    cams = viewpoints_to_cameras(viewpoints, image_size)
    options: dict = {"shading": shading, "base_color": base_color, "background": 0.0}
    if lights is not None:
        if len(lights) != len(viewpoints):
            raise ValueError(f"render_views: {len(lights)} light setups for {len(viewpoints)} views")
        n = max(1, max(len(lt.directions) for lt in lights))
        dirs = np.zeros((len(lights), n, 3))
        dirs[..., 2] = -1.0  # padding lights point at the camera with zero intensity
        cols = np.zeros((len(lights), n, 3))
        for i, lt in enumerate(lights):
            dirs[i, : len(lt.directions)] = lt.directions
            cols[i, : len(lt.colors)] = lt.colors
        options.update(ambient=np.stack([np.broadcast_to(lt.ambient, 3) for lt in lights]),
                       light_directions=dirs, light_colors=cols, light_intensities=1.0)
    out = render_gl(mesh, cams, outputs=tuple(outputs), backend=backend, **options)

    def arr(name):
        value = getattr(out, name)  # a GLRender: outputs not asked for are None
        return None if value is None else value.numpy()

    rgb = arr("rgb")
    return RenderedViews(rgb=None if rgb is None else rgb.astype(np.float32, copy=False), mask=arr("mask"),
                         depth=None if arr("depth") is None else arr("depth").astype(np.float32, copy=False),
                         normal=None if arr("normal") is None else arr("normal").astype(np.float32, copy=False),
                         cameras=cams)


# ----------------------------------------------------------------------------------- edges
def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def canny_edges(image: np.ndarray, low: float = 100, high: float = 200) -> np.ndarray:
    """OpenCV Canny edges of an RGB image (H, W, 3) (uint8, or float in [0, 1]): (H, W) uint8 in {0, 255}.

    The grey conversion is OpenCV's (as the ControlNet Canny annotator feeds it RGB directly,
    cv2.Canny on a 3-channel image uses the largest channel gradient; we do the same).
    """
    img = _to_uint8(image)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    return cv2.Canny(np.ascontiguousarray(img), float(low), float(high))


def geometry_edges(depth: np.ndarray, normal: np.ndarray | None, mask: np.ndarray, *, depth_threshold: float = 0.05,
                   normal_threshold: float = math.radians(35.0)) -> np.ndarray:
    """Edges from geometry alone (H, W) uint8 in {0, 255}: the silhouette, depth discontinuities
    (relative jump > depth_threshold between 4-neighbours) and creases (angle between neighbouring
    normals > normal_threshold, radians). Texture and lighting cannot create them.

    depth (H, W) camera z (0 where empty), normal (H, W, 3) unit normals or None, mask (H, W) bool.
    An edge between two pixels is drawn on the nearer one (the occluding side), so outlines are
    one pixel wide.
    """
    mask = np.asarray(mask, dtype=bool)
    depth = np.asarray(depth, dtype=np.float32)
    edges = np.zeros(mask.shape, dtype=bool)
    cos_t = math.cos(normal_threshold)
    for axis in (0, 1):
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        ma, mb = mask[a], mask[b]
        da, db = depth[a], depth[b]
        both = ma & mb
        near = np.minimum(da, db)
        jump = both & (np.abs(da - db) > depth_threshold * np.maximum(near, 1e-12))
        crease = np.zeros_like(jump)
        if normal is not None:
            dot = (normal[a] * normal[b]).sum(-1)
            crease = both & (dot < cos_t)
        silhouette = ma != mb
        cut = jump | crease | silhouette
        # mark the pixel on the near / covered side
        on_a = cut & (ma & (~mb | (da <= db)))
        on_b = cut & (mb & (~ma | (db < da)))
        edges[a] |= on_a
        edges[b] |= on_b
    return edges.astype(np.uint8) * 255


def edge_map(method: str, rgb: np.ndarray, depth: np.ndarray | None = None, normal: np.ndarray | None = None,
             mask: np.ndarray | None = None, *, canny_low: float = 100, canny_high: float = 200,
             depth_threshold: float = 0.05, normal_threshold: float = math.radians(35.0)) -> np.ndarray:
    """The edge map a config asks for, as an (H, W, 3) uint8 image (ControlNet's condition format).

    method: "canny" (on `rgb`), "geometry" (needs depth and mask; normals optional) or "both".
    """
    if method not in ("canny", "geometry", "both"):
        raise ValueError(f"edges.method must be canny, geometry or both, got {method!r}")
    out = None
    if method in ("canny", "both"):
        out = canny_edges(rgb, canny_low, canny_high)
    if method in ("geometry", "both"):
        if depth is None or mask is None:
            raise ValueError("geometry edges need the depth and the mask")
        geo = geometry_edges(depth, normal, mask, depth_threshold=depth_threshold, normal_threshold=normal_threshold)
        out = geo if out is None else np.maximum(out, geo)
    return np.repeat(out[..., None], 3, axis=2)


def mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x1, y1, x2, y2) of the covered pixel centres (integer pixel centres), None when empty."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])
