"""The demo dataset: a small randomised dataset from the procedural library (no files, no weights)."""

from __future__ import annotations

import os
from pathlib import Path

from .config import DatagenConfig, load_config
from .pipeline import generate

__all__ = ["DEMO_CATEGORIES", "demo_config", "run_demo_dataset"]

#: the procedural categories of `aware3d demo` and of the demo dataset (PASCAL3D+ names)
DEMO_CATEGORIES = ("car", "aeroplane", "chair", "bus", "sofa", "tvmonitor")


def demo_config(categories=DEMO_CATEGORIES, samples_per_category: int = 6, image_size: int = 160) -> DatagenConfig:
    """A small randomised dataset from the procedural library (no files, no weights needed); each
    category is seen through its default viewpoint preset (docs/datagen.md)."""
    return load_config({
        "seed": 0,
        "image_size": image_size,
        "samples_per_category": samples_per_category,
        "occlusion": ["none", "L2"],
        "assets": [{"type": "procedural", "categories": list(categories), "count": 3}],
        "writer": {"chunk_size": 16},
    })


def run_demo_dataset(out_folder: str | os.PathLike, progress: bool = False, categories=DEMO_CATEGORIES) -> Path:
    """Generate the demo dataset (`demo_config`) in `out_folder` (resuming a partial one) and write
    its HTML preview; returns the folder (the preview is `<folder>/preview.html`)."""
    out = Path(out_folder)
    generate(demo_config(categories), out, progress=progress)
    return out
