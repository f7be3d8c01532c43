"""Oracle feature maps: a bank's own features rendered at known poses (tests and benchmarks).

The object's pixels hold the normalised interpolated vertex features, every other pixel a random
unit feature; `occlude` replaces that fraction of the object's pixels by random unit features.
A perfect backbone would produce such maps, so `fit_pose` must recover the poses from them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import geom3d

from .bank import MeshBank, random_unit

__all__ = ["oracle_feature_maps", "random_viewpoints"]


def random_viewpoints(n: int, generator: torch.Generator, distance=(4.5, 5.5), elevation=(-0.4, 0.9),
                      theta=(-0.4, 0.4)) -> dict[str, torch.Tensor]:
    """n random viewpoints: azimuth uniform on [0, 2π), the rest uniform on the given ranges."""
    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    return {"azimuth": uniform(0.0, 2 * math.pi), "elevation": uniform(*elevation), "theta": uniform(*theta),
            "distance": uniform(*distance)}


@torch.no_grad()
def oracle_feature_maps(bank: MeshBank, categories, cameras: geom3d.Cameras, generator: torch.Generator,
                        occlude: float = 0.0) -> torch.Tensor:
    """Feature maps (B, D, h, w) of the bank's categories (B names) seen by cameras of batch (B,)."""
    index = bank.index(categories)
    fragments = geom3d.rasterize((bank.vertices[index], bank.faces[index]), cameras)
    rendered = F.normalize(geom3d.interpolate(fragments, bank.features[index]), dim=-1)  # (B, h, w, D)
    B, h, w, D = rendered.shape
    noise = random_unit(B * h * w, D, generator).reshape(B, h, w, D)
    mask = fragments.mask
    if occlude > 0:
        mask = mask & (torch.rand(B, h, w, generator=generator) >= occlude)
    out = torch.where(mask[..., None], rendered, noise)
    return out.permute(0, 3, 1, 2).contiguous()
