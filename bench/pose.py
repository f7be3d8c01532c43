"""pose benchmarks: set generation (render synthesizers; Zero-1-to-3), training and inference throughput.

    python bench/pose.py [--quick] [--threads 2]

Generation: views/s of the exact and the degraded render synthesizer with either appearance (the
CAD's material; the source's texture, its texturing included), procedural car, 128² and 256², the
rasterizer back end when no EGL context exists, and their ratio to the exact one with the material;
Zero-1-to-3 images/s at guidance 3 with the tiny random model on the CPU, and at its real architecture
(random weights, 256², 50 DDIM steps) when CUDA is available. Training: images/s of `pose.train` (tiny
ResNet, 64² crops). Inference: `estimate_pose` images/s of the trained canonical model.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the repository root first on sys.path)
import numpy as np
import torch
from _common import best_time, parse_args, table

import data3d
import pose
from data3d.procedural import make
from datagen.novel_view import (
    DegradedRenderSynthesizer,
    RenderSynthesizer,
    SourceView,
    Zero123Synthesizer,
    build_tiny_zero123,
)


def _source(mesh, size):
    vp = {"azimuth": 0.5, "elevation": 0.2, "theta": 0.0, "distance": 3.0, "focal": 1.0, "viewport": size * 2.2,
          "px": (size - 1) / 2, "py": (size - 1) / 2}
    image = RenderSynthesizer().render(mesh, [vp], (size, size))[0]
    return SourceView(image, mesh, vp)


def generation_rows(quick: bool) -> list:
    mesh = make("car", seed=1)
    poses = pose.default_relative_poses(8 if quick else 16)
    rows = []
    for size in (128,) if quick else (128, 256):
        src = _source(mesh, size)
        baseline = None
        for appearance in ("mesh", "source"):
            for synth in (RenderSynthesizer(appearance=appearance),
                          DegradedRenderSynthesizer(math.radians(10), appearance=appearance)):
                def generate(s=synth, x=src):  # a fresh source image: the textured mesh is cached per source
                    return s.synthesize(SourceView(x.image.copy(), mesh, x.viewpoint), poses)
                rate = len(poses) / best_time(generate, repeats=2 if quick else 3)
                baseline = baseline or rate
                rows.append([f"{synth.name}, {appearance} appearance", f"{size}²", "cpu", rate,
                             f"{rate / baseline:.2f}×"])
    with tempfile.TemporaryDirectory() as tmp:
        z = Zero123Synthesizer(str(build_tiny_zero123(Path(tmp) / "tiny")), steps=10, guidance=3.0, batch_size=4)
        src = SourceView(_source(mesh, 64).image)
        t = best_time(lambda: z.synthesize(src, poses[:4]), repeats=2)
        rows.append(["zero123 tiny (10 steps)", "64²", "cpu", 4 / t, ""])
        if torch.cuda.is_available() and not quick:
            folder = build_tiny_zero123(Path(tmp) / "real", real_size=True)
            z = Zero123Synthesizer(str(folder), device="cuda", steps=50, guidance=3.0, batch_size=8, dtype="float16")
            src = SourceView(_source(mesh, 256).image)
            t = best_time(lambda: z.synthesize(src, poses[:8]), repeats=2)
            rows.append(["zero123 real arch (50 steps)", "256²", "cuda fp16", 8 / t, ""])
    return rows


def train_and_infer_rows(quick: bool) -> list:
    size = 64
    mesh = make("car", seed=1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        records = []
        for i in range(4):
            src = _source(mesh, size)
            vp = dict(src.viewpoint, azimuth=float(rng.uniform(0, 2 * math.pi)))
            image = RenderSynthesizer().render(mesh, [vp], (size, size))[0]
            path = tmp / f"s{i}.png"
            pose.sets._write_png(path, image)
            obj = data3d.ObjectAnnotation("car", pose.sets.object_bbox(image), data3d.Viewpoint(**vp),
                                          cad_source="procedural", cad_id="car/0001")
            records.append(data3d.ImageRecord(path, (size, size), (obj,)))
        data3d.save_records(records[:1], tmp / "ref", shard="000000")
        sources = pose.sources_from_records(records, {records[0].objects[0].mesh_ref: mesh})
        pose.generate_sets(sources, RenderSynthesizer(), pose.default_relative_poses(6), tmp / "sets", category="car",
                           cylinder=pose.cylinder_params([mesh], segments=36, rows=6, rings=2))
        steps = 20 if quick else 60
        config = {"nemo": {"threads": torch.get_num_threads(), "data": {"crop_size": [size, size], "batch_size": 8},
                           "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 64], "embedding_size": 16,
                                        "decoder_width": 32, "feature_dim": 32},
                           "bank": {"clutter_size": 256}, "train": {"steps": steps, "log_every": 10},
                           "pose": {"azimuths": 12, "elevations": 4, "thetas": 1, "steps": 15, "keep": 2}}}
        start = time.perf_counter()
        run = pose.train(tmp / "sets", tmp / "ref", tmp / "run", config)
        total = time.perf_counter() - start
        logged = [r["images_per_s"] for r in run.read_log()][1:]
        model = pose.load(run.path)
        images = torch.stack([data3d.load_image(r.image_path) for r in records] * 4)
        t = best_time(lambda: model.estimate_pose(images, ["car"] * len(images)), repeats=2)
    return [["train (64², batch 8)", float(np.median(logged)) if logged else steps * 8 / total, f"{total:.1f} s total"],
            ["estimate_pose (64², batch 16)", len(images) / t, "grid 48 + 15 steps"]]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        _run(args)


def _run(args) -> None:
    print("## pose: set generation\n")
    print(table(["synthesizer", "size", "device", "views/s", "vs exact, mesh appearance"], generation_rows(args.quick)))
    print("\n## pose: training and inference\n")
    print(table(["what", "images/s", "note"], train_and_infer_rows(args.quick)))


if __name__ == "__main__":
    main()
