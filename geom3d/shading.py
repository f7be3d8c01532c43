"""The shading model every renderer here shares: ambient plus Lambertian directional lights times a
base colour, over a background colour or image.

`resolve_lighting` turns the user's light options into per-view arrays in the OpenCV camera
frame (`LightingOptions`); the GLSL fragment shader of `geom3d.gl` and the PyTorch `shade` below
evaluate the same formula, rgb = clamp(base · (ambient + Σ_l max(n · d_l, 0) · rgb_l), 0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import GeometryError

__all__ = ["MAX_LIGHTS", "LightingOptions", "resolve_lighting", "background_image", "shade", "rgb_option"]

MAX_LIGHTS = 8  # the GLSL shader's uniform arrays hold this many directional lights


@dataclass(frozen=True, eq=False)
class LightingOptions:
    """Shading and background, resolved per call (per view where B-batched).

    ambient (B, 3), light_dirs (B, L, 3) unit vectors from the surface towards each light in the
    OpenCV camera frame, light_rgb (B, L, 3) colour × intensity, base_color (3,), background (3,).
    """

    ambient: torch.Tensor
    light_dirs: torch.Tensor
    light_rgb: torch.Tensor
    base_color: torch.Tensor
    background: torch.Tensor

    def views(self, index) -> LightingOptions:
        """The lighting of some views (an index or slice into the first dimension)."""
        return LightingOptions(self.ambient[index], self.light_dirs[index], self.light_rgb[index],
                               self.base_color, self.background)


def rgb_option(value, name: str, batch: int | None = None) -> torch.Tensor:
    """A colour option as float64: a scalar (grey), (3,) or, with batch, (B, 3) -> (B, 3) or (3,)."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.ndim == 0:
        t = t.expand(3)
    if t.shape[-1:] != (3,) or t.ndim > 2 or (t.ndim == 2 and batch is None):
        raise GeometryError(f"{name} must be a number, an RGB triple or (B, 3), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t < 0).any():
        raise GeometryError(f"{name} must be finite and non-negative")
    if batch is not None:
        if t.ndim == 2 and t.shape[0] not in (1, batch):
            raise GeometryError(f"{name} has {t.shape[0]} rows for {batch} cameras")
        t = t.expand(batch, 3)
    return t


def resolve_lighting(cameras_R: torch.Tensor, ambient=0.45, light_directions=None, light_colors=None,
                      light_intensities=None, light_frame: str = "camera", base_color=0.7,
                      background=0.0) -> LightingOptions:
    """Turn the user's light options into per-view camera-frame arrays (see `render_gl`)."""
    B = cameras_R.shape[0]
    if light_directions is None:  # one light above-left of the camera, shining onto the object
        light_directions = [(-0.35, -0.55, -1.0)]
        light_frame_eff = "camera"
        if light_intensities is None:
            light_intensities = 0.6
    else:
        light_frame_eff = light_frame
    dirs = torch.as_tensor(np.asarray(light_directions, dtype=np.float64))
    if dirs.numel() == 0:  # no directional light: ambient only
        dirs = torch.zeros(1, 0, 3, dtype=torch.float64)
    if dirs.ndim == 1:
        dirs = dirs[None]
    if dirs.ndim == 2:
        dirs = dirs[None]
    if dirs.ndim != 3 or dirs.shape[-1] != 3 or dirs.shape[0] not in (1, B):
        raise GeometryError(f"light_directions must be (L, 3) or (B, L, 3), got {tuple(dirs.shape)}")
    L = dirs.shape[1]
    if L > MAX_LIGHTS:
        raise GeometryError(f"at most {MAX_LIGHTS} directional lights, got {L}")
    norm = torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    if L and (not torch.isfinite(dirs).all() or (norm == 0).any()):
        raise GeometryError("light_directions must be finite and non-zero")
    dirs = (dirs / norm.clamp_min(1e-300)).expand(B, L, 3)
    if light_frame_eff == "world":
        dirs = dirs @ cameras_R.to(torch.float64).transpose(-1, -2)
    elif light_frame_eff != "camera":
        raise GeometryError(f"light_frame must be 'camera' or 'world', got {light_frame!r}")
    colors = torch.ones(B, L, 3, dtype=torch.float64) if light_colors is None else \
        torch.as_tensor(light_colors, dtype=torch.float64)
    if colors.ndim == 1:
        colors = colors.expand(L, 3)
    colors = colors.expand(B, L, 3) if colors.ndim in (2, 3) and colors.shape[-1] == 3 else None
    if colors is None:
        raise GeometryError("light_colors must be (3,), (L, 3) or (B, L, 3)")
    inten = torch.ones(B, L, dtype=torch.float64) if light_intensities is None else \
        torch.as_tensor(light_intensities, dtype=torch.float64)
    try:
        inten = inten.expand(B, L) if inten.ndim <= 2 else None
    except RuntimeError:
        inten = None
    if inten is None:
        raise GeometryError("light_intensities must be a number, (L,) or (B, L)")
    light_rgb = colors * inten[..., None]
    if not torch.isfinite(light_rgb).all() or (light_rgb < 0).any():
        raise GeometryError("light colours and intensities must be finite and non-negative")
    return LightingOptions(
        ambient=rgb_option(ambient, "ambient", B), light_dirs=dirs.contiguous(),
        light_rgb=light_rgb.contiguous(), base_color=rgb_option(base_color, "base_color"),
        background=rgb_option(background, "background"),
    )


def background_image(image, batch: int, size: tuple[int, int]) -> torch.Tensor | None:
    """A background image (H, W, 3) or (B, H, W, 3), uint8 or float in [0, 1] -> float32 (B|1, H, W, 3)."""
    if image is None:
        return None
    t = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[1:] != (*size, 3) or t.shape[0] not in (1, batch):
        raise GeometryError(f"background_image must be (H, W, 3) or (B, H, W, 3) with (H, W) = {size}, "
                            f"got {tuple(t.shape)}")
    return t



def shade(base: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor, lighting: LightingOptions,
          background: torch.Tensor | None = None) -> torch.Tensor:
    """The shading model in PyTorch: base colours (B, H, W, 3) lit through camera-frame unit normals
    (B, H, W, 3) where `mask` (B, H, W) is set, the background colour (or `background`, an image
    (B|1, H, W, 3)) elsewhere. Computed in float32, as the shader does; on the normals' device."""
    B, h, w = mask.shape
    device = normals.device
    n = normals.float()
    light = lighting.ambient.float().to(device)[:, None, None, :].expand(B, h, w, 3)
    for i in range(lighting.light_dirs.shape[1]):
        d = lighting.light_dirs[:, i].float().to(device)[:, None, None, :]
        lam = (n * d).sum(-1, keepdim=True).clamp_min(0)
        light = light + lam * lighting.light_rgb[:, i].float().to(device)[:, None, None, :]
    rgb = (base.float() * light).clamp(0, 1)
    bg = lighting.background.float().to(device).expand(B, h, w, 3) if background is None else \
        background.to(device).expand(B, h, w, 3)
    return torch.where(mask[..., None], rgb, bg)
