"""Novel-view synthesis: an object image + relative camera poses -> images of the object from there.

One interface, `NovelViewSynthesizer.synthesize(source, relative_poses, seed)` (`datagen.synthesizer`:
the relative pose (Δpolar, Δazimuth, Δradius) convention, `SourceView`, `target_viewpoint`), and its
synthesizers, one module each, all importable from here:
- `Zero123Synthesizer` (`datagen.zero123`): Zero-1-to-3 (Liu et al. 2023) assembled from diffusers
  parts, by model id or folder in either diffusers layout; `build_tiny_zero123` saves a tiny random
  model for tests.
- `RenderSynthesizer` (`datagen.render_synthesizers`): exact relative views of the source's mesh
  through `geom3d.render_gl`.
- `DegradedRenderSynthesizer`: the same with the generator's typical faults: the rendered pose is
  off the requested one by Gaussian jitter of σ, texture noise, smooth shape deformation, blur.
  Its faults are independent per view.
- `CorrelatedFailureSynthesizer`: the degraded one plus correlated failures, as a real generator
  makes them: front/back ("Janus") flips of a whole set or of single views at a rate p, an
  elevation bias shared by every view, and an appearance that drifts across a set's views.
`make_synthesizer(kind, ...)` builds one by name.
"""

from __future__ import annotations

from .render_synthesizers import (
    FLIP_MODES,
    CorrelatedFailureSynthesizer,
    DegradedRenderSynthesizer,
    RenderSynthesizer,
    mirror_axis,
    source_textured_mesh,
)
from .synthesizer import (
    APPEARANCES,
    NovelViewSynthesizer,
    SourceView,
    as_relative_poses,
    relative_pose_from_elevation,
    target_viewpoint,
)
from .zero123 import PROJECTION_LAYOUTS, Zero123Synthesizer, build_tiny_zero123, resolve_model_folder

__all__ = [
    "NovelViewSynthesizer", "SourceView", "Zero123Synthesizer", "build_tiny_zero123", "relative_pose_from_elevation",
    "as_relative_poses", "target_viewpoint", "PROJECTION_LAYOUTS", "make_synthesizer", "APPEARANCES",
    "RenderSynthesizer", "DegradedRenderSynthesizer", "CorrelatedFailureSynthesizer", "FLIP_MODES",
    "source_textured_mesh", "mirror_axis", "resolve_model_folder",
]


def make_synthesizer(kind: str, *, model: str | None = None, device: str = "cpu", **options) -> NovelViewSynthesizer:
    """A synthesizer by name: "zero123" (model id or folder), "render", "degraded" or "correlated"
    (options as its class)."""
    if kind == "zero123":
        return Zero123Synthesizer(model or "kxic/zero123-xl", device=device, **options)
    if kind == "render":
        return RenderSynthesizer(**options)
    if kind == "degraded":
        return DegradedRenderSynthesizer(**options)
    if kind == "correlated":
        return CorrelatedFailureSynthesizer(**options)
    raise ValueError(f"synthesizer must be zero123, render, degraded or correlated, got {kind!r}")
