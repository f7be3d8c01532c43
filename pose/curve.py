"""Accuracy against the generator's front/back flip rate p: for each p, generated sets from the same
sources with `datagen.novel_view.CorrelatedFailureSynthesizer` at that rate, a `pose` training run and
its evaluation (pose, the one-shot retrieval baselines and, given, supervised NeMo) on instance-
disjoint test records and, given, on real photographs (evaluation only).

    results = pose.flip_curve(sources, "runs/ref", test_records, "runs/pose/curve", config,
                              rates=(0.0, 0.1, 0.2, 0.3), category="car", cylinder=cylinder)

Layout of `out`: p0.00/sets (the generated sets), p0.00/run (the pose run), p0.00/eval (nemo's
evaluation files and instances.json), p0.00/real (the same on the real records), generation.json
(how the sets are generated: a later call with other settings is refused, not mixed in), curve.json
({"rates", "synthesizer", "results": {p: {"test": metrics, "real": metrics}}, "flips": {p:
{"flipped_sets", "annotated_set", "turned_sets", "frame_turned_back", "check_unreliable"}}}) and
curve.md (Acc@π/6 per method, rate and split, then per rate the sets the synthesizer flipped (the
benchmark's truth, never read by training), the set of the annotated image and the sets the run's
orientation check turned). Each part is resumed: finished sets and evaluations are kept, a run
resumes from its checkpoint, so a killed curve continues with the same command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from aware3d_utils import atomic_write_text

from .errors import PoseError
from .sets import read_summary

__all__ = ["flip_curve", "curve_markdown"]


def _tag(p: float) -> str:
    return f"p{p:.2f}"


def flip_curve(sources: Sequence, reference, test_records: Sequence, out: str | os.PathLike, config: Mapping | None,
               *, rates: Sequence[float] = (0.0, 0.1, 0.2, 0.3), category: str, cylinder: Mapping,
               relative_poses=None, synthesizer: Mapping | None = None, source_elevation: float = 0.2,
               seed: int = 0, backgrounds: str = "sources", supervised_run=None, real_records: Sequence = (),
               require_disjoint: bool = True, progress: bool = False) -> dict:
    """Run the curve (see the module docstring). sources: `SetSource`s (with meshes: the render
    synthesizers draw the true CAD); reference: the one-shot annotated record (or records folder),
    from an instance the test does not show (checked with `require_disjoint`); synthesizer: options
    of `CorrelatedFailureSynthesizer` other than flip_rate."""
    from datagen.novel_view import CorrelatedFailureSynthesizer

    from .sets import default_relative_poses, generate_sets, set_seeds
    from .training import train

    if not rates:
        raise PoseError("flip_curve: no flip rates given")
    bad = [p for p in rates if not 0.0 <= float(p) <= 1.0]
    if bad:
        raise PoseError(f"flip_curve: flip rates must be in [0, 1], got {bad}")
    poses = default_relative_poses() if relative_poses is None else relative_poses
    options = dict(synthesizer or {})
    if "flip_rate" in options:
        raise PoseError("flip_curve: the synthesizer's flip_rate is the curve's variable; give `rates`")
    out = Path(out)
    described = {k: v for k, v in CorrelatedFailureSynthesizer(flip_rate=0.0, **options).describe().items()
                 if k != "flip_rate"}
    _same_generation(out, {"category": category, "sources": len(sources), "relative_poses": poses,
                           "source_elevation": source_elevation, "seed": seed, "backgrounds": backgrounds,
                           "synthesizer": described})
    results: dict = {}
    flips: dict = {}
    for p in rates:
        folder = out / _tag(float(p))
        synth = CorrelatedFailureSynthesizer(flip_rate=float(p), **options)
        if not (folder / "sets" / "sets.json").is_file():
            generate_sets(sources, synth, poses, folder / "sets", category=category, cylinder=cylinder,
                          source_elevation=source_elevation, seed=seed, backgrounds=backgrounds, progress=progress)
        run = train(folder / "sets", reference, folder / "run", config, progress=progress)
        entry = {"test": _evaluated(run.path, test_records, folder / "eval", supervised_run, require_disjoint,
                                    progress)}
        if real_records:
            entry["real"] = _evaluated(run.path, real_records, folder / "real", supervised_run, False, progress)
        results[f"{float(p):.2f}"] = entry
        flips[f"{float(p):.2f}"] = _flips(synth, folder, set_seeds(len(sources), seed))
        _write(out, rates, described, results, flips)
    return json.loads((out / "curve.json").read_text())


def _same_generation(out: Path, settings: Mapping) -> None:
    """Record how the sets are generated (generation.json) on the first call; a PoseError naming the
    settings that differ when a later call into the same `out` would generate with others, since the
    rates' finished sets are reused as they are (a curve whose points came from different sets)."""
    import numpy as np

    settings = {k: np.asarray(v, dtype=np.float64).round(9).tolist() if k == "relative_poses" else v
                for k, v in settings.items()}
    settings = json.loads(json.dumps(settings))  # as it reads back
    file = out / "generation.json"
    if file.is_file():
        try:
            before = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise PoseError(f"cannot be read as JSON ({exc})", file) from None
        differ = sorted(k for k in set(settings) | set(before) if settings.get(k) != before.get(k))
        if differ:
            raise PoseError(f"its sets were generated with other settings ({', '.join(differ)} differ; e.g. "
                            f"--azimuths, --polar-deg or the synthesizer's flags); give a new --out, or the same "
                            "settings to resume", out)
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(settings, indent=1) + "\n")


def _evaluated(run, records, folder: Path, supervised_run, require_disjoint: bool, progress: bool) -> dict:
    from .model import evaluate

    done = folder / "metrics.json"
    if done.is_file() and (folder / "instances.json").is_file():
        return json.loads(done.read_text())
    return evaluate(run, records, folder, supervised_run=supervised_run, require_disjoint=require_disjoint,
                    progress=progress)


def _flips(synth, folder: Path, seeds) -> dict:
    """The sets the synthesizer flipped (None where the sets were written before flips were counted
    exactly, or flip per view), the annotated image's set and the sets the run turned (its
    canonicalisation.json)."""
    written = read_summary(folder / "sets")
    flipped = None
    if synth.flip_mode == "set" and written.get("synthesizer", {}).get("flip_count") == "exact per collection":
        synth.plan_sets(seeds)
        flipped = [s["id"] for s in written["sets"] if synth.failures(1, seeds[int(s["id"].split("_")[-1])])
                   ["flipped"][0]]
    canon = json.loads((folder / "run" / "canonicalisation.json").read_text())
    orientation = canon.get("orientation") or {}
    enabled = bool(orientation.get("enabled"))
    return {"flipped_sets": flipped, "annotated_set": orientation.get("annotated_set"),
            "turned_sets": orientation.get("turned") if enabled else None,
            "frame_turned_back": bool(orientation.get("reference_turned")),
            "check_unreliable": bool(orientation.get("unreliable"))}


def _write(out: Path, rates, described, results, flips) -> None:
    data = {"rates": [float(p) for p in rates], "synthesizer": described, "results": results, "flips": flips}
    atomic_write_text(out / "curve.json", json.dumps(data, indent=1) + "\n")
    atomic_write_text(out / "curve.md", curve_markdown(data))


def curve_markdown(data: Mapping) -> str:
    """Acc@π/6 (%) per method and split (rows) against the flip rate (columns)."""
    rates = list(data["results"])
    rows: dict[tuple[str, str, str], dict] = {}
    for p, entry in data["results"].items():
        for part, metrics in entry.items():
            for method, splits in metrics.items():
                for split, m in splits.items():
                    rows.setdefault((part, method, split), {})[p] = m.get("acc_pi6")
    lines = ["| data | method | split | " + " | ".join(f"p = {p}" for p in rates) + " |",
             "|---|---|---|" + "---|" * len(rates)]
    for (part, method, split), values in rows.items():
        cells = [("–" if values.get(p) is None else f"{100 * values[p]:.1f}") for p in rates]
        lines.append(f"| {part} | {method} | {split} | " + " | ".join(cells) + " |")
    notes = []
    for p, f in (data.get("flips") or {}).items():
        flipped, annotated, turned = f.get("flipped_sets"), f.get("annotated_set"), f.get("turned_sets")
        truth = "not known" if flipped is None else f"{len(flipped)} ({', '.join(flipped) or 'none'})"
        if flipped is not None and annotated is not None:
            truth += f"; the annotated image's set {annotated} " + ("was flipped" if annotated in flipped else
                                                                   "was not flipped")
        check = "not run" if turned is None else f"{len(turned)} ({', '.join(turned) or 'none'})"
        if f.get("frame_turned_back"):
            check += ", the annotated image's set among them: the frame was turned back"
        elif f.get("check_unreliable"):
            check += ", half or more of the checked sets: not trusted, nothing corrected"
        notes.append(f"- p = {p}: sets flipped by the synthesizer: {truth}; turned by the orientation check: {check}")
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"
