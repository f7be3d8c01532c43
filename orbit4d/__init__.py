"""orbit4d: FreeOrbit4D, re-rendering a monocular video of a moving object along a new camera path.

Inputs (orbit4d.io) → depth cleaning (orbit4d.depth) → static background, partial foregrounds and
the model-free canonical foreground (orbit4d.reconstruct) → per-frame Sim(3) alignment on
pixel-synchronised correspondences and the released box-fit baseline (orbit4d.alignment) → RTS
smoothing (orbit4d.smoothing) → scaffolds along a geom3d.trajectory path (orbit4d.scaffold) →
the WanVACE video stage (orbit4d.video); orbit4d.pipeline runs it all into a run folder
(`aware3d orbit4d run`, docs/orbit4d.md). Optional learned stages: SAM2 mask propagation
(orbit4d.mask_model) and novel-view completion of the canonical (orbit4d.completion). Learned
estimators sit behind orbit4d.estimators;
orbit4d.synthetic makes 4D scenes with exact geometry for tests, the demo and the benchmark.
Heavy parts (diffusers, transformers) are imported only where used.
"""

from .alignment import FrameFit, align_canonical, box_fit
from .io import Orbit4DInputError, read_cameras, read_depth, read_frames, read_masks, write_cameras
from .pipeline import Orbit4DInputs, Orbit4DOptions, RunResult, load_inputs, reconstruct_and_align, run

__all__ = ["FrameFit", "align_canonical", "box_fit", "Orbit4DInputError", "read_cameras", "read_depth",
           "read_frames", "read_masks", "write_cameras", "Orbit4DInputs", "Orbit4DOptions", "RunResult",
           "load_inputs", "reconstruct_and_align", "run"]
