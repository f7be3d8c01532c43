"""Texture sampling as OpenGL does it, in PyTorch: `sample_texture` (the fallback renderer's sampler
and a public op, one of nvdiffrast's three primitives beside rasterize and interpolate).

UVs follow `geom3d.Mesh`: u to the right, v up (v = 0 is the bottom row of the image). Wrapping
repeats; texel (i, j) has its centre at (u, v) = ((j + ½)/W, 1 − (i + ½)/H), as in GL.
"""

from __future__ import annotations

import torch

from .dtypes import common_float_dtype
from .errors import GeometryError

__all__ = ["TEXTURE_FILTERS", "sample_texture"]

TEXTURE_FILTERS = ("linear", "nearest", "mipmap")


def sample_texture(texture, uv, mode: str = "linear") -> torch.Tensor:
    """Sample a texture at UVs (..., 2) with repeat wrapping: (..., C) in [0, 1].

    texture: (H, W, C) uint8 (scaled by 1/255) or float. mode: "nearest" or "linear" (bilinear
    between the four nearest texel centres; "mipmap" is treated as linear: there is no level of
    detail without screen-space derivatives). Differentiable with respect to a floating texture
    and, for "linear", the UVs. The result has the common floating dtype of a floating texture and
    the UVs (float32 for a uint8 texture and integer UVs), on the UVs' device.
    """
    if mode not in TEXTURE_FILTERS:
        raise GeometryError(f"texture_filter must be one of {TEXTURE_FILTERS}, got {mode!r}")
    uv = torch.as_tensor(uv)
    tex = torch.as_tensor(texture, device=uv.device)
    if tex.ndim != 3 or tex.shape[0] == 0 or tex.shape[1] == 0:
        raise GeometryError(f"sample_texture: texture must be (H, W, C), got {tuple(tex.shape)}")
    if uv.shape[-1:] != (2,):
        raise GeometryError(f"sample_texture: uv must be (..., 2), got {tuple(uv.shape)}")
    dtype = common_float_dtype(tex, uv)
    tex = tex.to(dtype) / 255.0 if tex.dtype == torch.uint8 else tex.to(dtype)
    uv = uv.to(dtype)
    th, tw = tex.shape[:2]
    x = uv[..., 0] * tw
    y = (1.0 - uv[..., 1]) * th
    if mode == "nearest":
        j = torch.floor(x).long().remainder(tw)
        i = torch.floor(y).long().remainder(th)
        return tex[i, j]
    x, y = x - 0.5, y - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    j0, i0 = x0.long(), y0.long()
    j1, i1 = (j0 + 1).remainder(tw), (i0 + 1).remainder(th)
    j0, i0 = j0.remainder(tw), i0.remainder(th)
    top = tex[i0, j0] * (1 - ax) + tex[i0, j1] * ax
    bottom = tex[i1, j0] * (1 - ax) + tex[i1, j1] * ax
    return top * (1 - ay) + bottom * ay
