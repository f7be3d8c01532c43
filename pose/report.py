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

import json
import math
import os
from pathlib import Path

import numpy as np

import data3d
from aware3d_utils import html as H
from nemo.report import box_corners, draw_pose

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
    return H.saved_figure(out, f"images/{name}.png", picture, caption)


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
    parts = [H.heading(f"Generated sets: {summary['category']}", 1),
             H.paragraph(f"{len(entries)} sets, {views} views kept, {dropped} views dropped (no object), "
                         f"{len(summary['skipped'])} sources skipped. Synthesizer: {synth}. "
                         f"Assumed source elevation {math.degrees(summary['source_elevation']):.1f}°; "
                         f"{len(summary['relative_poses'])} relative poses per source."),
             H.paragraph("Orange: the box of the set's neural cylinder at the view's camera in the set's frame.")]
    if summary["skipped"]:
        parts += [H.heading("Skipped sources"), H.table((s["source"], s["reason"]) for s in summary["skipped"])]
    for s in load_sets(folder):
        entry = entries[s.id]
        figures = [_view_figure(folder, s.records[k], corners, f"{s.id}_{k:03d}")
                   for k in _strip(len(s.records), max_views)]
        parts.append(H.element("div", H.join([
            H.heading(s.id), H.paragraph(f"source {entry['source']}: {entry['views']} views kept, "
                                         f"{entry.get('dropped_views', 0)} dropped; distance {entry['distance']:.2f}"),
            *figures]), class_="set"))
    return H.write_page(folder / "report.html", "generated sets", parts, ".set{margin-bottom:1.5em} img{width:160px}")


def write_run_report(run: str | os.PathLike, sets_folder: str | os.PathLike) -> Path:
    """Write <run>/report.html (see the module docstring) for a finished `pose.train` run; its path."""
    run = Path(run)
    report = json.loads((run / "canonicalisation.json").read_text())
    summary = read_summary(sets_folder)
    shot = report["one_shot"]
    step = math.radians(shot["step_deg"])
    guard = set(report.get("flip_rejected", []))
    flips = report.get("flip_margins") or [None] * len(summary["sets"])
    parts = [H.heading(f"Label-free pose run: {summary['category']}", 1),
             H.paragraph(f"{report['aligned']} sets aligned, {report['rejected']} rejected ({len(guard)} by the "
                         f"front/back guard); reference set {report['reference_set']}; {report['filtered_views']} "
                         "generated views dropped by the artifact filter.")]
    if (run / "loss.png").exists():
        parts.append(H.image("loss.png", alt="training loss"))
    fits = "agreed" if shot["fit_agrees"] else "disagreed"
    rows = [("canonical rotation", f"{math.degrees(shot['rotation']):.1f}° (coarse from {shot['coarse_from']}: "
             f"{math.degrees(shot['coarse_rotation']):.1f}°; the fits {fits})"),
            ("elevation offset", f"{math.degrees(shot['elevation_offset']):.1f}° (the assumed source "
             "elevation's error)"),
            ("annotated views", f"{shot['views']} (the reference and its generated views)")]
    parts += [H.heading("One shot"), H.table(rows), H.heading("Merge"),
              H.paragraph("Rotation: the set's frame turned into the reference set's; margin: best minus median "
                          "alignment score; flip margin: score at the shift minus half a turn away, against the "
                          "other sets (near 0: the set cannot tell front from back).")]
    orientation = report.get("orientation") or {}
    turned = set(orientation.get("turned") or [])
    facing = orientation.get("margins") or [None] * len(summary["sets"])
    if orientation.get("enabled"):
        note = ("the annotated image's set was turned: the frame was turned back" if orientation.get("reference_turned")
                else "not trusted (half or more turned): nothing corrected" if orientation.get("unreliable") else
                "the annotated image's set agrees with its source")
        parts.append(H.paragraph(f"Orientation check: {len(turned)} of {orientation.get('checked', 0)} sets' sources "
                                 f"disagree with their frames by half a turn ({note}). Source margin: cos(fitted − "
                                 "bookkept azimuth) of the held-out source image."))
    merge = []
    for entry, shift, margin, flip, face in zip(summary["sets"], report["shifts"], report["margins"], flips, facing):
        source = entry["source"].split("#")[0]
        image = os.path.relpath(os.path.abspath(source), run.resolve())
        status = ("rejected: front/back guard" if entry["id"] in guard else
                  "rejected: margin" if shift < 0 else "aligned, source half a turn off" if entry["id"] in turned
                  else "aligned")
        rotation = "" if shift < 0 else f"{math.degrees(math.remainder(shift * step, 2 * math.pi)):.0f}°"
        merge.append((entry["id"], H.image(image, alt=f"{entry['id']} source", class_="src"), rotation,
                      f"{margin:.3f}", "" if flip is None else f"{flip:.3f}", "" if face is None else f"{face:+.2f}",
                      status if shift >= 0 and entry["id"] not in turned else H.element("span", status, class_="bad")))
    parts.append(H.table(merge, header=("set", "source", "rotation", "margin", "flip margin", "source margin", "")))
    return H.write_page(run / "report.html", "pose run", parts, "img.src{width:96px} .bad{color:#d62728}")
