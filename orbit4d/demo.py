"""A short orbit of a synthetic scene, for `aware3d demo` (`run_demo_orbit(out)`).

Writes the scene as ordinary inputs (`input/frames`, `input/masks` palette PNGs, `input/depth`
.npy, `input/global_camera.json`), so the same run can be repeated with the command line, and
runs the pipeline on them along a 30° yaw arc into `run/` (report.html there).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .io import write_cameras
from .pipeline import Orbit4DOptions, load_inputs, run
from .synthetic import make_scene

__all__ = ["run_demo_orbit", "write_inputs"]


def write_inputs(scene, folder: str | Path, object_id: int = 1) -> Path:
    """Write a `SyntheticScene` as run inputs: frames/ PNG, masks/ palette PNG (label
    `object_id`), depth/ .npy and global_camera.json under `folder`."""
    src = Path(folder)
    for sub in ("frames", "masks", "depth"):
        (src / sub).mkdir(parents=True, exist_ok=True)
    palette = [0, 0, 0] * object_id + [255, 64, 64]
    for i, name in enumerate(scene.names):
        cv2.imwrite(str(src / "frames" / f"{name}.png"), cv2.cvtColor(scene.frames[i], cv2.COLOR_RGB2BGR))
        label = Image.fromarray(np.where(scene.masks[i], object_id, 0).astype(np.uint8), mode="P")
        label.putpalette(palette + [0] * (768 - len(palette)))
        label.save(src / "masks" / f"{name}.png")
        np.save(src / "depth" / f"{name}.npy", scene.depth[i])
    write_cameras(src / "global_camera.json", scene.cameras, scene.names)
    return src


def run_demo_orbit(out: str | Path = "runs/demo/orbit4d", frames: int = 12, image_size=(120, 160),
                   trajectory: str = "arc_yaw_30") -> Path:
    """Write the inputs and the run folder under `out`; returns the run folder."""
    out = Path(out)
    src = write_inputs(make_scene(frames, image_size, turn_degrees=40.0), out / "input")
    inputs = load_inputs(src / "frames", src / "masks", src / "depth", src / "global_camera.json")
    return run(inputs, out / "run", Orbit4DOptions(trajectory=trajectory)).out
