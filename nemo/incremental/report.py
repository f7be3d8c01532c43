"""The incremental run's human-readable outputs: a per-task table (Markdown), accuracy against
task as a PNG, and an HTML report holding both."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from aware3d_utils import atomic_write_text

from ..run import line_plot_png

__all__ = ["write_outputs", "table_markdown"]


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def table_markdown(results: Mapping[str, Mapping]) -> str:
    """Per method and task: seen classes, accuracy per split, pose Acc@π/6 (true class given /
    predicted class / old classes with the true class), the matching rule chosen on validation;
    then the summary per method (average incremental accuracy and forgetting per split)."""
    splits = []
    for r in results.values():
        for t in r["per_task"]:
            splits.extend(s for s in t["acc_by_split"] if s not in splits)
    head = (["method", "task", "seen"] + [f"acc {s}" for s in splits]
            + ["pose π/6 (true class)", "pose π/6 (predicted class)", "old pose π/6", "rule"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        for t in r["per_task"]:
            cells = [name, str(t["task"]), str(len(t["seen_classes"]))]
            cells += [_pct(t["acc_by_split"].get(s)) for s in splits]
            cells += [_pct(t["pose_acc_pi6"]), _pct(t.get("pose_acc_pi6_predicted")),
                      _pct(t["old_class_pose_acc_pi6"]), str(t.get("classifier", "–"))]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| method | " + " | ".join(f"AIA {s} | forgetting {s}" for s in splits) + " |",
              "|---|" + "---|---|" * len(splits)]
    for name, r in results.items():
        cells = [f"{_pct(r['average_incremental_accuracy_by_split'].get(s))} | "
                 f"{_pct(r['forgetting_by_split'].get(s))}" for s in splits]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(out: str | Path, results: Mapping[str, Mapping], tasks: Sequence[Sequence[str]]) -> None:
    """incremental.md, accuracy.png and report.html in `out`."""
    out = Path(out)
    table = table_markdown(results)
    atomic_write_text(out / "incremental.md", table)
    series = {name: [(t["task"], t["acc"]) for t in r["per_task"] if t["acc"] is not None]
              for name, r in results.items()}
    line_plot_png(out / "accuracy.png", series, "accuracy over the classes seen, against task")
    rows = "".join(f"<li>task {i}: {html.escape(', '.join(t))}</li>" for i, t in enumerate(tasks))
    page = ["<!doctype html><meta charset='utf-8'><title>incremental run</title>",
            "<style>body{font-family:sans-serif;margin:2em} td,th{padding:2px 8px}</style>",
            "<h1>Class-incremental neural mesh models</h1>", f"<h2>Tasks</h2><ul>{rows}</ul>",
            "<h2>Accuracy against task</h2><img src='accuracy.png' alt='accuracy against task'>",
            "<h2>Per task</h2>", _markdown_tables_html(table)]
    atomic_write_text(out / "report.html", "\n".join(page) + "\n")


def _markdown_tables_html(text: str) -> str:
    parts, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                rows.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
            continue
        if rows:
            head, body = rows[0], rows[1:]
            parts.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body) + "</table>")
            rows = []
    return "\n".join(parts)
