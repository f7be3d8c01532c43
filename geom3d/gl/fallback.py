"""`render_gl`'s outputs without OpenGL: `geom3d.rasterize` + `geom3d.interpolate`, shaded by
`geom3d.shading.shade` and textured by `geom3d.sample_texture` (used where no EGL context can be
made, or with backend="raster"). Runs on the mesh's device, so a CUDA mesh renders on the GPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..cameras import Cameras
from ..dtypes import common_float_dtype
from ..mesh import Mesh
from ..shading import LightingOptions, shade
from ..texture import sample_texture
from .batching import render_batched
from .options import EMPTY_DEPTH, RENDER_OUTPUTS, GLRender, RenderOptions

__all__ = ["render_raster", "pixel_rays"]


def render_raster(mesh, cameras: Cameras, image_size=None, *, outputs: Sequence[str] = RENDER_OUTPUTS,
                  options: RenderOptions | None = None) -> GLRender:
    """`render_gl`'s outputs computed with the PyTorch rasterizer (no OpenGL).

    The same shading model as the GL shader; textures are sampled as OpenGL does (repeat wrap,
    texel centres at (k + ½)/size, bilinear or nearest; "mipmap" falls back to bilinear).
    `near`/`far`, `exact_face_id` (the rasterizer is exact already) and `antialias` are ignored
    (the rasterizer clips at its own near plane); back-face culling is applied when asked.
    """
    return render_batched(draw_raster, mesh, cameras, image_size, outputs, options, "render_gl")


def draw_raster(mesh: Mesh, cams: Cameras, want: tuple[str, ...], options: RenderOptions,
                lighting: LightingOptions, bg_image: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The fallback's draw for cameras (B,): outputs (B, H, W, ...) on the mesh's device."""
    from .. import raster  # the differentiable rasterizer (pure PyTorch)

    device = mesh.vertices.device
    dtype = common_float_dtype(mesh.vertices, cams.R)
    cams = cams.to(device=device, dtype=dtype)
    B = cams.R.shape[0]
    h, w = cams.image_size
    verts = mesh.vertices.detach().to(dtype)
    with torch.no_grad():
        # culled faces are dropped before the depth test, so a front face behind them shows
        frags = raster.rasterize((verts, mesh.faces), cams, cull_backfaces=options.cull_backfaces)
        face = frags.pix_to_face.reshape(B, h, w).to(torch.int64)
        mask = face >= 0
        out: dict[str, torch.Tensor] = {}
        if "mask" in want:
            out["mask"] = mask
        if "face_id" in want:
            out["face_id"] = face
        if "depth" in want:
            out["depth"] = torch.where(mask, frags.depth.reshape(B, h, w), torch.full((), EMPTY_DEPTH, dtype=dtype,
                                                                                   device=device))
        if "rgb" in want or "normal" in want:
            n = _shading_normals(Mesh(verts, mesh.faces), frags, face, cams, options.shading)  # camera frame
            if "normal" in want:
                nn = n if options.normal_frame == "camera" else torch.einsum("bji,bhwj->bhwi", cams.R.to(n.dtype), n)
                out["normal"] = torch.where(mask[..., None], nn, torch.zeros_like(nn))
            if "rgb" in want:
                out["rgb"] = shade(_base_colors(mesh, frags, lighting, options.texture_filter, dtype), n, mask,
                                   lighting, bg_image)
    return out


def pixel_rays(cams: Cameras) -> torch.Tensor:
    """Direction K⁻¹ (u, v, 1) of each pixel centre in the camera frame: (B, H, W, 3) float64."""
    h, w = cams.image_size
    K = cams.K.double()
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=K.device),
                          torch.arange(w, dtype=torch.float64, device=K.device), indexing="ij")
    uv1 = torch.stack([u, v, torch.ones_like(u)], -1)
    return torch.einsum("bij,hwj->bhwi", torch.linalg.inv(K), uv1)


def _shading_normals(mesh: Mesh, frags, face: torch.Tensor, cams: Cameras, shading: str) -> torch.Tensor:
    """Unit shading normals (B, H, W, 3) in the camera frame, turned towards the camera (float32)."""
    from .. import raster

    R = cams.R.double()
    mesh64 = mesh.to(dtype=torch.float64)
    n_face = torch.einsum("bij,bhwj->bhwi", R, mesh64.face_normals()[face.clamp_min(0)])
    side = torch.where((n_face * pixel_rays(cams)).sum(-1, keepdim=True) > 0, -1.0, 1.0).to(torch.float64)
    if shading == "smooth":
        vn = mesh64.vertex_normals().to(mesh.vertices.dtype)
        n = raster.interpolate(frags, vn).reshape(face.shape + (3,)).double()
        n = torch.einsum("bij,bhwj->bhwi", R, n)
        length = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
        n = torch.where(length > 0, n / length.clamp_min(1e-300), n_face)
    else:
        n = n_face
    return (side * n).float()


def _base_colors(mesh: Mesh, frags, lighting: LightingOptions, texture_filter: str, dtype) -> torch.Tensor:
    """The unlit colour at every pixel (B, H, W, 3): the UV texture, else vertex colours, else base_color."""
    from .. import raster

    B, h, w = frags.pix_to_face.shape
    if mesh.has_texture:
        uv = raster.interpolate(frags, mesh.uvs.detach().to(dtype)).reshape(B, h, w, 2)
        return sample_texture(mesh.texture, uv, texture_filter).float()
    if mesh.vertex_colors is not None:
        return raster.interpolate(frags, mesh.vertex_colors.detach().to(dtype)).reshape(B, h, w, 3)
    return lighting.base_color.float().to(frags.pix_to_face.device).expand(B, h, w, 3)
