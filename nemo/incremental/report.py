"""The incremental run's human-readable outputs: a per-task table (Markdown), accuracy against
task as a PNG, and an HTML report holding both (`aware3d_utils.html`, `aware3d_utils.figures`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aware3d_utils import atomic_write_text
from aware3d_utils import html as H
from aware3d_utils.figures import line_plot_png

__all__ = ["write_outputs", "table_markdown"]


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
    blocks = []
    for head, rows in _tables(results):
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


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
