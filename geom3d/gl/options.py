"""What `render_gl` returns (`GLRender`) and the options it renders with (`RenderOptions`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import GeometryError
from ..texture import TEXTURE_FILTERS

__all__ = ["EMPTY_DEPTH", "RENDER_OUTPUTS", "GLRender", "RenderOptions", "check_outputs"]

EMPTY_DEPTH = 0.0  # depth where no face is hit (camera z of a hit is always > 0)
RENDER_OUTPUTS = ("rgb", "depth", "mask", "normal", "face_id")


@dataclass(frozen=True, eq=False)
class GLRender:
    """`render_gl`'s images for views of batch shape (...); an output not asked for is None.

    rgb (..., H, W, 3) in [0, 1]; depth (..., H, W) camera z (EMPTY_DEPTH = 0 where empty); mask
    (..., H, W) bool; normal (..., H, W, 3) unit shading normal (0 where empty); face_id
    (..., H, W) int64, the visible face (−1 where empty)."""

    rgb: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    normal: torch.Tensor | None = None
    face_id: torch.Tensor | None = None


@dataclass(frozen=True, eq=False)
class RenderOptions:
    """Everything `render_gl` renders with besides the mesh, the cameras and the outputs.

    See `render_gl` for the meaning of each field; the defaults here are render_gl's defaults.
    Checked on construction: a bad value raises GeometryError naming the option.
    """

    ambient: object = 0.45
    light_directions: object = None
    light_colors: object = None
    light_intensities: object = None
    light_frame: str = "camera"
    base_color: object = 0.7
    background: object = 0.0
    background_image: object = None
    shading: str = "flat"
    normal_frame: str = "camera"
    texture_filter: str = "linear"
    near: float | None = None
    far: float | None = None
    cull_backfaces: bool = False
    antialias: int = 0
    exact_face_id: bool = True

    def __post_init__(self) -> None:
        for name, value, choices in (("shading", self.shading, ("flat", "smooth")),
                                     ("normal_frame", self.normal_frame, ("camera", "world")),
                                     ("light_frame", self.light_frame, ("camera", "world")),
                                     ("texture_filter", self.texture_filter, TEXTURE_FILTERS)):
            if value not in choices:
                raise GeometryError(f"{name} must be one of {choices}, got {value!r}")
        for name, value in (("near", self.near), ("far", self.far)):
            if value is not None and not float(value) > 0:
                raise GeometryError(f"{name} must be > 0, got {value}")
        if self.near is not None and self.far is not None and not float(self.near) < float(self.far):
            raise GeometryError(f"need near < far, got near={self.near}, far={self.far}")
        if int(self.antialias or 0) < 0:
            raise GeometryError(f"antialias must be a number of samples >= 0, got {self.antialias}")

    def lighting_arguments(self) -> dict:
        """The light options, as `geom3d.shading.resolve_lighting` takes them."""
        return {"ambient": self.ambient, "light_directions": self.light_directions,
                "light_colors": self.light_colors, "light_intensities": self.light_intensities,
                "light_frame": self.light_frame, "base_color": self.base_color, "background": self.background}


def check_outputs(outputs: Sequence[str]) -> tuple[str, ...]:
    """The requested outputs in RENDER_OUTPUTS order; GeometryError naming any unknown one."""
    if isinstance(outputs, str):
        outputs = (outputs,)
    unknown = [o for o in outputs if o not in RENDER_OUTPUTS]
    if unknown:
        raise GeometryError(f"unknown render outputs {unknown}; choose from {RENDER_OUTPUTS}")
    return tuple(o for o in RENDER_OUTPUTS if o in outputs)
