"""Fast, non-differentiable mesh rendering with OpenGL on a headless EGL context (moderngl).

`render_gl(mesh, cameras)` renders colour, camera depth, normals, face index and mask for a batch
of cameras in one call. It is what data generation uses: the context, shader programs and
framebuffers are made once per thread and reused, a mesh is uploaded once (and again only when its
tensors change), and all views of a call are drawn into one tiled framebuffer that is read back
in one go. On a CPU machine the context runs on Mesa's llvmpipe.

Conventions (docs/design.md). The cameras go through `cameras_to_opengl`, which maps the image
rectangle edges to NDC edges, so GL samples every pixel at its centre (u, v) = (column, row):
the renderer agrees pixel for pixel with `geom3d.rasterize` and with ray casting.

Outputs (a frozen `GLRender`, fields None when not requested; S = the cameras' batch shape):

- ``rgb`` (S, H, W, 3) in [0, 1]: base colour (vertex colours, a UV texture, or ``base_color``)
  times (ambient + Lambertian directional lights), over the background colour or image.
- ``depth`` (S, H, W): camera z (OpenCV, the distance along the optical axis, not along the ray);
  ``EMPTY_DEPTH`` (0) where nothing is hit.
- ``mask`` (S, H, W) bool: a face covers the pixel centre.
- ``normal`` (S, H, W, 3): unit shading normal (the face normal, or interpolated vertex normals
  with ``shading="smooth"``) of the side of the face that the camera sees (for flat shading,
  n · ray <= 0 along the pixel's ray), in the OpenCV camera frame by default (x right, y down,
  z forward), or in the world frame with ``normal_frame="world"``; 0 where empty.
- ``face_id`` (S, H, W) int64: index of the visible face, −1 where empty.

Where no EGL context can be made (or with ``backend="raster"`` / ``AWARE3D_GL_BACKEND=raster``) the
same outputs come from `geom3d.rasterize` + `geom3d.interpolate`, with a warning logged once.

Modules: `render` (the entry point), `options` (`RenderOptions`, `GLRender`), `batching` (mesh
passing, batch and dtype rules), `context` (per-thread EGL contexts), `renderer` (`GLRenderer`),
`gpu_mesh` (uploaded meshes), `framebuffer` (tiled framebuffers), `shaders` (GLSL), `face_ids`
(exact face ids at shared edges), `fallback` (the rasterizer path). The shading model is
`geom3d.shading`'s and the texture sampler `geom3d.texture`'s, shared with the fallback.
"""

from __future__ import annotations

from .context import gl_available
from .fallback import render_raster
from .options import EMPTY_DEPTH, RENDER_OUTPUTS, GLRender, RenderOptions
from .render import render_gl
from .renderer import GLRenderer

__all__ = ["render_gl", "render_raster", "GLRender", "RenderOptions", "GLRenderer", "gl_available", "EMPTY_DEPTH",
           "RENDER_OUTPUTS"]
