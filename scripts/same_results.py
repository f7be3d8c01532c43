"""Fixed-seed fingerprints of every method, to show a refactor changes no result.

    python scripts/same_results.py --out /tmp/sr_before > before.json
    ... change the code ...
    python scripts/same_results.py --out /tmp/sr_after --compare before.json

Runs, with one torch thread and fixed seeds, on tiny procedural data (procedural cars and sofas:
seeds 0-1 train, 2-3 test):
- datagen: two small record folders (a digest of every record and image byte);
- nemo: NeMo and the 2D baseline, 12 steps each, then nemo.evaluate on the test folder;
- pose: generated sets from the render synthesizer (a stand-in for Zero-1-to-3), 12 steps, pose.evaluate;
- incremental: two tasks of iNeMo, fine-tuning and replay2d, 3 steps a task.
It prints one JSON object: the logged losses, a digest of each final checkpoint's tensors and the
metrics. With --compare it exits 1 naming every entry that differs. The models are tiny and random:
these numbers say nothing about accuracy, only whether the code computes the same things.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from aware3d_utils import torch_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _tiny() -> dict:
    """tests/test_nemo_train.py's tiny nemo config (one copy of it), 12 steps on one thread."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_nemo_train import TINY

    return dict(TINY, threads=1, train=dict(TINY["train"], steps=12))


TINY = _tiny()


def _digest_tensors(path: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    # order-free over the key names: a refactor may rename the layout, not the numbers
    parts = sorted(hashlib.sha256(t.to(torch.float64).numpy().tobytes() if t.is_floating_point()
                                  else t.numpy().tobytes()).hexdigest()
                   for key, t in tensors.items() if not key.startswith("optim."))
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]


def _run_summary(path: Path) -> dict:
    logs = [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines() if line.strip()]
    ckpts = sorted((path / "checkpoints").glob("*.safetensors"))
    return {"losses": [round(r["loss"], 6) for r in logs if "loss" in r],
            "checkpoint": _digest_tensors(ckpts[-1]) if ckpts else None}


def _round(value):
    if isinstance(value, dict):  # wall times differ from run to run
        return {k: _round(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else str(value)
    return value


def datagen_part(out: Path) -> dict:
    import data3d
    from datagen.config import load_config
    from datagen.pipeline import generate

    digests = {}
    for name, seed, seeds in (("train", 3, [0, 1]), ("test", 4, [2, 3])):
        cfg = load_config({"seed": seed, "image_size": 64, "samples_per_category": 6, "occlusion": ["none"],
                           "assets": [{"type": "procedural", "categories": ["car", "sofa"], "seeds": seeds}],
                           "writer": {"chunk_size": 16}})
        generate(cfg, out / name, progress=False)
        h = hashlib.sha256()
        for r in sorted(data3d.load_records(out / name), key=lambda r: str(r.image_path)):
            for o in r.objects:
                h.update(json.dumps([o.category, list(map(float, o.bbox)), o.viewpoint.as_dict(), o.mesh_ref],
                                    sort_keys=True).encode())
            h.update(Path(r.image_path).read_bytes())
        digests[name] = h.hexdigest()[:16]
    return digests


def nemo_part(out: Path) -> dict:
    import data3d
    import nemo

    result = {}
    runs = {"nemo": nemo.train([out / "train"], out / "nemo", TINY),
            "baseline": nemo.train([out / "train"], out / "baseline", dict(TINY, method="baseline"))}
    for name, run in runs.items():
        result[name] = _run_summary(run.path)
    models = {name: nemo.load(run.path) for name, run in runs.items()}
    metrics = nemo.evaluate(models, data3d.load_records(out / "test"), out / "eval", report_examples=0)
    result["metrics"] = _round(metrics)
    return result


def pose_part(out: Path) -> dict:
    import data3d
    import pose
    from data3d.procedural import make
    from datagen.render_synthesizers import RenderSynthesizer

    records = sorted((r for r in data3d.load_records(out / "train") if r.objects[0].category == "car"),
                     key=lambda r: str(r.image_path))[:3]
    data3d.save_records([records[0]], out / "ref", shard="000000")
    meshes = {r.objects[0].mesh_ref: make("car", seed=int(r.objects[0].mesh_ref.rsplit("/", 1)[-1]))
              for r in records}
    cylinder = pose.cylinder_params(list(meshes.values()), segments=36, rows=6, rings=2)
    views = pose.sources_from_records(records, meshes)
    pose.generate_sets(views, RenderSynthesizer(backend="raster"), pose.default_relative_poses(6, (0.0, -0.25)),
                       out / "sets", category="car", cylinder=cylinder)
    config = {"nemo": dict(TINY, train={"steps": 12, "log_every": 1, "checkpoint_every": 5}),
              "pose": {"retrieval": {"steps": 6}}}
    run = pose.train(out / "sets", out / "ref", out / "pose", config)
    test = [r for r in data3d.load_records(out / "test") if r.objects[0].category == "car"]
    metrics = pose.evaluate(run.path, test, out / "pose_eval")
    return {"run": _run_summary(run.path), "metrics": _round(metrics)}


def incremental_part(out: Path) -> dict:
    from nemo.incremental import run_incremental

    config = {"train_data": [str(out / "train")], "test_data": [str(out / "test")], "tasks": {"tasks": 2},
              "steps": {"first": 3, "later": 3}, "exemplars": {"budget": 2}, "nemo": TINY,
              "eval": {"batch_size": 8}, "validation": {"fraction": 0.0},
              "methods": ["inemo", "finetune", "replay2d"]}
    results = run_incremental(config, out / "incremental")
    return _round(json.loads(json.dumps(results)))


PARTS = {"datagen": datagen_part, "nemo": nemo_part, "pose": pose_part, "incremental": incremental_part}


def _differences(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'after' if k not in a else 'before'}")
            else:
                out += _differences(a[k], b[k], f"{where}.{k}")
        return out
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="a new scratch folder")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    parser.add_argument("--compare", type=Path, help="a JSON this script printed before: exit 1 on any difference")
    args = parser.parse_args(argv)
    np.random.seed(0)
    out = {}
    with torch_threads(1):
        for name in args.parts.split(","):
            if name != "datagen" and not (args.out / "train").is_dir():
                out["datagen"] = datagen_part(args.out)
            if name in out:
                continue
            out[name] = PARTS[name](args.out)
    print(json.dumps(out, indent=1, sort_keys=True))
    if args.compare:
        before = json.loads(args.compare.read_text())
        diffs = [d for k in out for d in _differences(before.get(k), out[k], k)]
        for d in diffs:
            print("DIFFERS", d, file=sys.stderr)
        print(f"{len(diffs)} differences", file=sys.stderr)
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
