"""The HTML reports of the label-free pipeline, so a person can look at what it made.

    write_sets_report("sets/")              # sets/report.html + sets/images/*.png
    write_run_report("runs/pose", "sets/")  # runs/pose/report.html (`pose.train` writes it)

The training run's report: the loss curve, the merge (per set: its source, shift as a rotation,
alignment margin, flip margin, and whether it was aligned or rejected, and why) and the one-shot
calibration, from the run's canonicalisation.json.

The sets report:
Per set: its source image, a strip of its generated views, each with the set's neural cylinder's box
drawn at the view's camera in the set's frame (so a wrong relative pose or distance shows as a box
that does not sit on the object) and its relative pose (Δpolar, Δazimuth, Δradius) in the caption;
the views kept and the views dropped (no object left). At the top: the synthesizer's settings, the
relative poses, and the skipped sources with their reasons. The page and figure helpers are nemo's
(`nemo.report`), as the evaluation report's.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import numpy as np

import data3d
from aware3d_utils import atomic_write_text
from nemo.report import box_corners, draw_pose, page_head, save_figure

from .mesh import neural_cylinder
from .sets import load_sets, read_summary, relative_pose_of

__all__ = ["write_sets_report", "write_run_report"]


def _strip(count: int, max_views: int) -> list[int]:
    """Indices of at most `max_views` views out of `count`, evenly spread, the source (0) always first."""
    if count <= max_views:
        return list(range(count))
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, max_views)})


def _view_figure(out: Path, record, corners, name: str) -> str:
    obj = record.objects[0]
    image = data3d.load_image(record.image_path)
    picture = draw_pose(image, corners, {"orange": dict(obj.viewpoint)})
    dp, da, dr = relative_pose_of(obj)
    caption = "source" if (dp, da, dr) == (0.0, 0.0, 0.0) else (
        f"Δp {math.degrees(dp):+.0f}°, Δa {math.degrees(da):.0f}°, Δr {dr:+.2f}")
    return save_figure(out, name, picture, caption)


def write_sets_report(folder: str | os.PathLike, max_views: int = 12) -> Path:
    """Write <folder>/report.html (see the module docstring) for a folder of `generate_sets`; its path."""
    folder = Path(folder)
    summary = read_summary(folder)
    entries = {e["id"]: e for e in summary["sets"]}
    mesh, _ = neural_cylinder(**summary["cylinder"])
    corners = box_corners(mesh)
    views = sum(e["views"] for e in entries.values())
    dropped = sum(e.get("dropped_views", 0) for e in entries.values())
    synth = ", ".join(f"{k}={v}" for k, v in summary["synthesizer"].items())
    parts = [page_head("generated sets", ".set{margin-bottom:1.5em} img{width:160px}"),
             f"<h1>Generated sets: {html.escape(summary['category'])}</h1>",
             f"<p>{len(entries)} sets, {views} views kept, {dropped} views dropped (no object), "
             f"{len(summary['skipped'])} sources skipped. Synthesizer: {html.escape(synth)}. "
             f"Assumed source elevation {math.degrees(summary['source_elevation']):.1f}°; "
             f"{len(summary['relative_poses'])} relative poses per source.</p>",
             "<p>Orange: the box of the set's neural cylinder at the view's camera in the set's frame.</p>"]
    if summary["skipped"]:
        parts.append("<h2>Skipped sources</h2><table>")
        parts += [f"<tr><td>{html.escape(s['source'])}</td><td>{html.escape(s['reason'])}</td></tr>"
                  for s in summary["skipped"]]
        parts.append("</table>")
    for s in load_sets(folder):
        entry = entries[s.id]
        parts.append(f"<div class='set'><h2>{html.escape(s.id)}</h2><p>source {html.escape(entry['source'])}: "
                     f"{entry['views']} views kept, {entry.get('dropped_views', 0)} dropped; distance "
                     f"{entry['distance']:.2f}</p>")
        for k in _strip(len(s.records), max_views):
            parts.append(_view_figure(folder, s.records[k], corners, f"{s.id}_{k:03d}"))
        parts.append("</div>")
    path = folder / "report.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path


def write_run_report(run: str | os.PathLike, sets_folder: str | os.PathLike) -> Path:
    """Write <run>/report.html (see the module docstring) for a finished `pose.train` run; its path."""
    run = Path(run)
    report = json.loads((run / "canonicalisation.json").read_text())
    summary = read_summary(sets_folder)
    shot = report["one_shot"]
    step = math.radians(shot["step_deg"])
    guard = set(report.get("flip_rejected", []))
    flips = report.get("flip_margins") or [None] * len(summary["sets"])
    parts = [page_head("pose run", "img.src{width:96px} td.bad{color:#d62728}"),
             f"<h1>Label-free pose run: {html.escape(summary['category'])}</h1>",
             f"<p>{report['aligned']} sets aligned, {report['rejected']} rejected ({len(guard)} by the front/back "
             f"guard); reference set {html.escape(report['reference_set'])}; {report['filtered_views']} generated "
             f"views dropped by the artifact filter.</p>"]
    if (run / "loss.png").exists():
        parts.append("<img src='loss.png' alt='training loss'>")
    parts.append("<h2>One shot</h2><table>")
    fits = "agreed" if shot["fit_agrees"] else "disagreed"
    rows = [("canonical rotation", f"{math.degrees(shot['rotation']):.1f}° (coarse from {shot['coarse_from']}: "
             f"{math.degrees(shot['coarse_rotation']):.1f}°; the fits {fits})"),
            ("elevation offset", f"{math.degrees(shot['elevation_offset']):.1f}° (the assumed source "
             "elevation's error)"),
            ("annotated views", f"{shot['views']} (the reference and its generated views)")]
    parts += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows]
    parts.append("</table><h2>Merge</h2><p>Rotation: the set's frame turned into the reference set's; "
                 "margin: best minus median alignment score; flip margin: score at the shift minus half a "
                 "turn away, against the other sets (near 0: the set cannot tell front from back).</p><table>"
                 "<tr><th>set</th><th>source</th><th>rotation</th><th>margin</th><th>flip margin</th><th></th></tr>")
    for entry, shift, margin, flip in zip(summary["sets"], report["shifts"], report["margins"], flips):
        source = entry["source"].split("#")[0]
        image = os.path.relpath(os.path.abspath(source), run.resolve())
        status = ("rejected: front/back guard" if entry["id"] in guard else
                  "rejected: margin" if shift < 0 else "aligned")
        rotation = "" if shift < 0 else f"{math.degrees(math.remainder(shift * step, 2 * math.pi)):.0f}°"
        flip_text = "" if flip is None else f"{flip:.3f}"
        parts.append(f"<tr><td>{html.escape(entry['id'])}</td><td><img class='src' src='{html.escape(image)}' "
                     f"alt='{html.escape(entry['id'])} source'></td><td>{rotation}</td><td>{margin:.3f}</td>"
                     f"<td>{flip_text}</td><td{'' if shift >= 0 else ' class=bad'}>{status}</td></tr>")
    parts.append("</table>")
    path = run / "report.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
