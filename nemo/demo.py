"""A few-minute CPU demonstration: NeMo and the 2D baseline trained on fresh procedural renders,
evaluated side by side on a held-out records folder (e.g. the demo's 3D-DST dataset).

    metrics = nemo.demo.run_nemo_demo("runs/demo/dataset", "runs/demo/nemo", ["car", "chair"])
    print(nemo.demo.summary(metrics))

Training data come from datagen rounds with seeds ≥ 1000 (one round per epoch), so the test folder's
samples (other seeds) are never trained on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["run_nemo_demo", "summary", "demo_configs"]


def demo_configs(categories: Sequence[str], steps: int = 200, image_size: int = 128,
                 samples_per_category: int = 24) -> tuple[dict, dict]:
    """(datagen source, nemo config) of the demo: tiny ResNet, 128² crops, one thread."""
    source = {"seed": 1000, "image_size": int(image_size), "samples_per_category": int(samples_per_category),
              "occlusion": ["none"], "assets": [{"type": "procedural", "categories": list(categories), "count": 3}]}
    config = {
        "categories": sorted(categories), "threads": 1,
        "data": {"crop_size": [128, 128], "batch_size": 8},
        "cuboid": {"num_vertices": 500},
        "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128], "embedding_size": 16,
                     "decoder_width": 64, "feature_dim": 64},
        "optim": {"lr": 0.002, "warmup_steps": min(20, max(1, steps // 10))},
        "train": {"steps": int(steps), "log_every": 10, "checkpoint_every": max(1, int(steps))},
    }
    return source, config


def run_nemo_demo(test_folder: str | os.PathLike, out: str | os.PathLike, categories: Sequence[str],
                  steps: int = 200, samples_per_category: int = 24, progress: bool = False) -> dict:
    """Train NeMo and the baseline into out/nemo and out/baseline, evaluate both on `test_folder`
    into out/eval (metrics.json, report.html); returns the metrics."""
    from .data import load_record_folders
    from .evaluation import evaluate
    from .model import load
    from .training import train

    out = Path(out)
    source, config = demo_configs(categories, steps, samples_per_category=samples_per_category)
    train([source], out / "nemo", config, progress=progress)
    train([source], out / "baseline", dict(config, method="baseline"), progress=progress)
    records = load_record_folders([test_folder], config["categories"])
    return evaluate({"nemo": load(out / "nemo"), "baseline": load(out / "baseline")}, records, out / "eval",
                    classify_fit=False, report_examples=6, progress=progress)


def summary(metrics: dict) -> str:
    """One line per split: NeMo's and the baseline's Acc@π/6."""
    lines = []
    splits = sorted({s for per in metrics.values() for s in per})
    for split in splits:
        parts = [f"{m} {100 * per[split]['acc_pi6']:.0f}%" for m, per in metrics.items() if split in per]
        n = next(per[split]["n"] for per in metrics.values() if split in per)
        lines.append(f"{split} (n={n}) Acc@pi/6: " + ", ".join(parts))
    return "\n".join(lines)
