"""The incremental run's human-readable outputs: a per-task table (Markdown), accuracy against
task as a PNG, and an HTML report holding both (`aware3d_utils.html`, `aware3d_utils.figures`); and
the summary over several finished runs of one benchmark (seeds: `load_seed_runs`, `seeds_markdown`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from aware3d_utils import atomic_write_text
from aware3d_utils import html as H
from aware3d_utils.figures import line_plot_png

from ..errors import NemoError
from ..run import RunFolder

__all__ = ["write_outputs", "table_markdown", "seeds_markdown", "load_seed_runs"]


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _tables(results: Mapping[str, Mapping]) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of the per-task table and of the summary table."""
    splits = []
    for r in results.values():
        for t in r["per_task"]:
            splits.extend(s for s in t["acc_by_split"] if s not in splits)
    head = (["method", "task", "seen"] + [f"acc {s}" for s in splits]
            + ["pose π/6 (true class)", "pose π/6 (predicted class)", "old pose π/6", "rule"])
    rows = [[name, str(t["task"]), str(len(t["seen_classes"])), *(_pct(t["acc_by_split"].get(s)) for s in splits),
             _pct(t["pose_acc_pi6"]), _pct(t.get("pose_acc_pi6_predicted")), _pct(t["old_class_pose_acc_pi6"]),
             str(t.get("classifier", "–"))]
            for name, r in results.items() for t in r["per_task"]]
    summary_head = ["method"] + [x for s in splits for x in (f"AIA {s}", f"forgetting {s}")]
    summary = [[name] + [x for s in splits for x in (_pct(r["average_incremental_accuracy_by_split"].get(s)),
                                                      _pct(r["forgetting_by_split"].get(s)))]
               for name, r in results.items()]
    return [(head, rows), (summary_head, summary)]


def table_markdown(results: Mapping[str, Mapping]) -> str:
    """Per method and task: seen classes, accuracy per split, pose Acc@π/6 (true class given /
    predicted class / old classes with the true class), the matching rule chosen on validation;
    then the summary per method (average incremental accuracy and forgetting per split)."""
    return "\n\n".join("\n".join(_markdown_lines(head, rows)) for head, rows in _tables(results)) + "\n"


def _markdown_lines(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def write_outputs(out: str | Path, results: Mapping[str, Mapping], tasks: Sequence[Sequence[str]]) -> None:
    """incremental.md, accuracy.png and report.html in `out`."""
    out = Path(out)
    atomic_write_text(out / "incremental.md", table_markdown(results))
    series = {name: [(t["task"], t["acc"]) for t in r["per_task"] if t["acc"] is not None]
              for name, r in results.items()}
    line_plot_png(out / "accuracy.png", series, "accuracy over the classes seen, against task")
    body = [H.heading("Class-incremental neural mesh models", 1), H.heading("Tasks"),
            H.bullet_list(f"task {i}: {', '.join(t)}" for i, t in enumerate(tasks)),
            H.heading("Accuracy against task"), H.image("accuracy.png", alt="accuracy against task"),
            H.heading("Per task"), *(H.table(rows, header=head) for head, rows in _tables(results))]
    H.write_page(out / "report.html", "incremental run", body)


def _mean_sd(values: Sequence[float | None]) -> str:
    """'mean ± sd' in % over the runs (sample standard deviation), '–' if any run lacks the value."""
    if not values or any(v is None for v in values):
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * mean:.1f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


def seeds_markdown(runs: Mapping[str, Mapping[str, Mapping]], splits: Sequence[str] | None = None) -> str:
    """The summary over several runs of one benchmark (seeds): per method, the mean ± sample standard
    deviation over the runs of the average incremental accuracy and the forgetting per split, and of
    the last task's pose Acc@π/6 with the predicted class and with the true class. `runs` maps a run's
    name to its incremental.json; only methods present in every run are shown; `splits` picks the
    splits (default: every split of the runs)."""
    results = list(runs.values())
    methods = [m for m in results[0] if all(m in r for r in results)]
    if splits is None:
        splits = []
        for r in results:
            for m in methods:
                splits.extend(s for s in r[m]["average_incremental_accuracy_by_split"] if s not in splits)
    head = (["method"] + [f"AIA {s}" for s in splits] + [f"forgetting {s}" for s in splits]
            + ["pose π/6, predicted class", "pose π/6, true class"])
    rows = []
    for m in methods:
        per = [r[m] for r in results]
        last = [p["per_task"][-1] for p in per]
        rows.append([m, *(_mean_sd([p["average_incremental_accuracy_by_split"].get(s) for p in per]) for s in splits),
                     *(_mean_sd([p["forgetting_by_split"].get(s) for p in per]) for s in splits),
                     _mean_sd([t.get("pose_acc_pi6_predicted") for t in last]),
                     _mean_sd([t.get("pose_acc_pi6") for t in last])])
    lines = [f"runs: {', '.join(runs)} (mean ± sample sd over {len(runs)}; % after the last task for pose)", "",
             *_markdown_lines(head, rows)]
    return "\n".join(lines) + "\n"


def _flat(tree, prefix=""):
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _checked_results(results, where: Path) -> dict:
    """`results` (an incremental.json) when it holds what the summary reads; else a NemoError naming
    the file and the first thing missing."""
    if not isinstance(results, dict) or not results:
        raise RunFolder.error("must map each method to its results", where)
    for method, r in results.items():
        keys = ("per_task", "average_incremental_accuracy_by_split", "forgetting_by_split")
        missing = [k for k in keys if not isinstance(r, dict) or k not in r]
        if missing or not isinstance(r["per_task"], list) or not r["per_task"]:
            raise RunFolder.error(f"{method!r} has no {(missing or ['per_task'])[0]!r} the summary can read", where)
        if not all(isinstance(t, dict) for t in r["per_task"]):
            raise RunFolder.error(f"{method!r}: 'per_task' must be a list of mappings", where)
        last = r["per_task"][-1]
        values = {f"per_task[-1].{k}": last.get(k) for k in ("pose_acc_pi6", "pose_acc_pi6_predicted")}
        for key in keys[1:]:
            if not isinstance(r[key], dict):
                raise RunFolder.error(f"{method!r}: {key!r} must map splits to numbers", where)
            values.update({f"{key}.{split}": v for split, v in r[key].items()})
        for key, v in values.items():  # what the table averages: a number (null: the run lacks it)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise RunFolder.error(f"{method!r}: {key} must be a finite number or null, got {v!r}", where)
    return results


def _resolved(config: dict) -> dict:
    from .config import resolve_incremental_config

    try:
        return resolve_incremental_config(config)
    except NemoError:
        return config


def load_seed_runs(paths: Sequence[str | Path]) -> tuple[dict[str, dict], list[str]]:
    """The incremental.json of each finished run folder in `paths` (keyed by the path as given) and
    the dotted config keys, other than seeds, in which the runs differ (compared after resolving, so a
    key absent from a config.yaml written before the key existed counts as its default; a config that no
    longer resolves is compared as written, an absent key as null). A `NemoError` names the
    folder when one is not a finished `aware3d nemo incremental` run, or a folder is given twice."""
    if len({str(Path(p).resolve()) for p in paths}) != len(paths):
        raise RunFolder.error("the same run folder is given twice; each run must count once")
    results, configs = {}, []
    for path in paths:
        if Path(path).exists() and not Path(path).is_dir():
            raise RunFolder.error("is a file, not a run folder of aware3d nemo incremental", path)
        run = RunFolder(path)
        run.refuse_other_kind(("nemo.incremental",), "class-incremental run", given="run")
        manifest = run.read_json("manifest.json")
        if manifest.get("status") != "complete":
            raise run.error(f"the run has not finished (status {manifest.get('status')!r}); run its command "
                            "again to resume it", run.path)
        results[str(path)] = _checked_results(run.read_json("incremental.json"), run.path / "incremental.json")
        configs.append(_flat(_resolved(run.read_config())))
    keys = sorted(set().union(*configs))
    differ = [k for k in keys if k.split(".")[-1] != "seed" and len({repr(c.get(k)) for c in configs}) > 1]
    if not differ:  # the same config and the same seed: one run twice, not two samples of the spread
        seen: dict[str, str] = {}
        for path, config in zip(paths, configs):
            seed = repr(config.get("seed"))
            if seed in seen:
                raise RunFolder.error(f"has the seed and config of {seen[seed]} ({config.get('seed')}); the mean ± sd "
                                      "is over runs of different seeds", path)
            seen[seed] = str(path)
    common = [m for m in next(iter(results.values())) if all(m in r for r in results.values())]
    if not common:
        raise RunFolder.error(f"the runs share no method (they have {[sorted(r) for r in results.values()]}); the "
                              "summary compares each method over the runs")
    return results, differ
