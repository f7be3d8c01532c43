"""`render_gl`: the entry point, choosing the GL renderer of this thread or the rasterizer fallback."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..cameras import Cameras
from ..errors import GeometryError
from . import context
from .fallback import render_raster
from .options import RENDER_OUTPUTS, GLRender, RenderOptions

__all__ = ["render_gl", "BACKEND_ENV"]

BACKEND_ENV = "AWARE3D_GL_BACKEND"


def render_gl(mesh, cameras: Cameras, image_size=None, *, outputs: Sequence[str] = RENDER_OUTPUTS,
              backend: str | None = None, ambient=0.45, light_directions=None, light_colors=None,
              light_intensities=None, light_frame: str = "camera", base_color=0.7, background=0.0,
              background_image=None, shading: str = "flat", normal_frame: str = "camera",
              texture_filter: str = "linear", near: float | None = None, far: float | None = None,
              cull_backfaces: bool = False, antialias: int = 0, exact_face_id: bool = True) -> GLRender:
    """Render a mesh under cameras of any batch shape with OpenGL (headless EGL): a `GLRender`.

    Args:
        mesh: a `geom3d.Mesh` (colour from its UV texture, else its vertex colours, else
            base_color), or (vertices, faces) with vertices (V, 3) or (M, V, 3) and faces (F, 3) or
            (M, F, 3), or a `PaddedMeshes` bank: M meshes pair with the cameras' first batch
            dimension, as in `geom3d.rasterize`. Uploads are cached: a `Mesh` while its tensors are
            unchanged, a pair or bank while the same tensors come again unchanged (the last few).
        cameras: `Cameras` of any batch shape S; every output has leading shape S (its first
            dimension paired with M).
        image_size: (H, W), the canvas; defaults to `cameras.image_size` and must equal it.
        outputs: the subset of ("rgb", "depth", "mask", "normal", "face_id") to compute; fewer
            outputs render faster (depth only is the cheapest); the others are None.
        backend: "gl", "raster" (the PyTorch rasterizer), or None/"auto": GL, falling back to the
            rasterizer with a warning logged once when no EGL context can be made. The environment
            variable AWARE3D_GL_BACKEND sets the default.
        ambient: ambient light colour × intensity, a number, (3,) or per view (B, 3), B = prod(S).
        light_directions: (L, 3) or (B, L, 3) unit vectors from the surface towards each light
            (at most 8), in the OpenCV camera frame unless light_frame="world". Default: one light
            above-left of the camera, (−0.35, −0.55, −1.0) normalised, intensity 0.6.
        light_colors: (3,), (L, 3) or (B, L, 3); default white. light_intensities: number, (L,) or (B, L).
        light_frame: "camera" (default) or "world".
        base_color: colour of meshes without colours or texture (default 0.7 grey).
        background: background colour (default black); background_image: (H, W, 3) or
            (B, H, W, 3), uint8 or float in [0, 1].
        shading: "flat" (face normals, default: right for CAD models) or "smooth" (vertex normals).
        normal_frame: "camera" (default, OpenCV axes) or "world".
        texture_filter: "linear" (default), "nearest" or "mipmap" (trilinear + anisotropic).
        near, far: clip planes in camera z; by default they hug the mesh's bounding box.
        cull_backfaces: drop faces whose right-hand normal points away from the camera (default
            False: both sides render).
        antialias: samples per pixel (e.g. 4) for a multisampled rgb pass: smooth edges, the
            background blended by coverage. depth, mask, normal and face_id stay single-sample
            (exact at pixel centres). Default 0 (off); the fallback ignores it.
        exact_face_id: settle face_id at pixel centres next to an edge shared by two faces with
            an exact float64 test, as ray casting and the rasterizer do (llvmpipe snaps vertices
            to 1/256 pixel); depth follows the settled face, rgb and normal at those pixels
            (within ~1/512 pixel of the edge) still show the face GL drew. Default True; False
            saves the float64 pass over the covered pixels.

    Returns:
        `GLRender` (rgb, depth, mask, normal, face_id; None where not requested). Floating outputs
        take the common floating dtype of the vertices and cameras (GL computes in float32) and
        lie on the vertices' device.
    """
    options = RenderOptions(
        ambient=ambient, light_directions=light_directions, light_colors=light_colors,
        light_intensities=light_intensities, light_frame=light_frame, base_color=base_color,
        background=background, background_image=background_image, shading=shading,
        normal_frame=normal_frame, texture_filter=texture_filter, near=near, far=far,
        cull_backfaces=cull_backfaces, antialias=antialias, exact_face_id=exact_face_id)
    backend = (backend or os.environ.get(BACKEND_ENV) or "auto").lower()
    if backend not in ("auto", "gl", "raster"):
        raise GeometryError(f"backend must be 'auto', 'gl' or 'raster', got {backend!r}")
    if not isinstance(cameras, Cameras):  # before a context is made
        raise GeometryError(f"render_gl: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if backend == "raster":
        return render_raster(mesh, cameras, image_size, outputs=outputs, options=options)
    try:
        renderer = context.default_renderer()
    except (context.NoContext, ImportError) as exc:
        if backend == "gl":
            raise
        context.warn_fallback(exc)
        return render_raster(mesh, cameras, image_size, outputs=outputs, options=options)
    return renderer.render(mesh, cameras, image_size, outputs=outputs, options=options)
