"""Fixed-seed training fingerprints of every method that trains through methodkit's trainer (issue 22):
nemo (method nemo and the 2D baseline, with a stop + resume), pose (label-free training with the artifact
filter, refinement and the reference encoder). Prints the logged losses (every key but the timing) and a
sha256 of each final checkpoint's tensors; run it before and after a change to the training code and diff
the outputs:

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/same_results_trainer.py > after.txt
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

TINY = {
    "threads": 1,
    "data": {"crop_size": [64, 64], "batch_size": 8, "prefetch_rounds": False},
    "cuboid": {"num_vertices": 150},
    "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 32], "embedding_size": 8, "decoder_width": 16,
                 "feature_dim": 16},
    "meshes": {"type": "procedural", "count": 2},
    "bank": {"clutter_size": 64},
    "optim": {"lr": 3e-3, "warmup_steps": 3},
    "train": {"steps": 10, "log_every": 1, "checkpoint_every": 4},
}
POSE = {"nemo": {"threads": 1, "data": {"crop_size": [64, 64], "batch_size": 8},
                 "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 32], "embedding_size": 8,
                              "decoder_width": 16, "feature_dim": 16},
                 "bank": {"clutter_size": 64}, "optim": {"lr": 3e-3, "warmup_steps": 3},
                 "train": {"steps": 10, "log_every": 1, "checkpoint_every": 4},
                 "pose": {"azimuths": 8, "elevations": 2, "thetas": 1, "steps": 3, "keep": 1}},
        "pose": {"refine": {"steps": 4}, "retrieval": {"steps": 5}}}


def digest(run) -> str:
    tensors, meta = run.load_checkpoint()
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().numpy().tobytes())
    return h.hexdigest()


def show(name: str, run) -> None:
    print(f"== {name}")
    for record in run.read_log():
        print(json.dumps({k: v for k, v in record.items() if k != "images_per_s"}, sort_keys=True))
    print("checkpoint sha256", digest(run))


def main() -> None:
    torch.set_num_threads(1)
    import data3d
    import nemo
    import pose
    from data3d.procedural import make
    from datagen.config import load_config
    from datagen.novel_view import RenderSynthesizer
    from datagen.pipeline import generate
    from pose.sets import _write_png, object_bbox

    root = Path(tempfile.mkdtemp(prefix="same_results_"))
    generate(load_config({"seed": 3, "image_size": 64, "samples_per_category": 4, "occlusion": ["none", "L2"],
                          "assets": [{"type": "procedural", "categories": ["car", "sofa"], "count": 2}],
                          "writer": {"chunk_size": 16}}), root / "ds", progress=False)
    show("nemo", nemo.train([root / "ds"], root / "nemo", TINY))
    nemo.train([root / "ds"], root / "nemo_parts", TINY, stop_after=5)
    show("nemo stopped at 5 and resumed", nemo.train([root / "ds"], root / "nemo_parts", TINY))
    base = dict(TINY, method="baseline")
    show("baseline", nemo.train([root / "ds"], root / "baseline", base))

    size, mesh = 64, make("car", seed=1)
    render = RenderSynthesizer(backend="raster")
    rng = np.random.default_rng(0)
    sources = []
    (root / "src").mkdir()
    for i, (a, e) in enumerate(zip(rng.uniform(0, 2 * math.pi, 3), rng.uniform(0.1, 0.3, 3))):
        vp = {"azimuth": float(a), "elevation": float(e), "theta": 0.0, "distance": 3.0, "focal": 1.0,
              "viewport": size * 2.2, "px": (size - 1) / 2, "py": (size - 1) / 2}
        image = render.render(mesh, [vp], (size, size))[0]
        path = root / "src" / f"src{i:03d}.png"
        _write_png(path, image)
        obj = data3d.ObjectAnnotation("car", object_bbox(image), data3d.Viewpoint(**vp), cad_source="procedural",
                                      cad_id="car/0001")
        sources.append(data3d.ImageRecord(path, (size, size), (obj,)))
    data3d.save_records(sources, root / "src", shard="000000")
    data3d.save_records([sources[0]], root / "ref", shard="000000")
    cylinder = pose.cylinder_params([mesh], segments=36, rows=6, rings=2)
    views = pose.sources_from_records(sources, {sources[0].objects[0].mesh_ref: mesh})
    pose.generate_sets(views, render, pose.default_relative_poses(6, (0.0, -0.25)), root / "sets", category="car",
                       cylinder=cylinder)
    run = pose.train(root / "sets", root / "ref", root / "pose", POSE)
    show("pose", run)
    show("pose refine", nemo.RunFolder(root / "pose" / "refine" / "run"))
    _, meta = run.load_checkpoint()
    print("pose report", json.dumps(meta["pose"], sort_keys=True))
    pose.train(root / "sets", root / "ref", root / "pose_parts", POSE, stop_after=3)
    pose.train(root / "sets", root / "ref", root / "pose_parts", POSE, stop_after=5)
    show("pose stopped at 3, 8 and resumed", pose.train(root / "sets", root / "ref", root / "pose_parts", POSE))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
