"""The evaluation's HTML report: per-split accuracy bars for every method, example crops with the
object's box drawn at the true (green) and estimated (red) pose, and the worst failures."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping

import numpy as np
import torch

import data3d
import geom3d
from aware3d_utils import atomic_save, atomic_write_text

__all__ = ["write_report", "draw_pose", "box_corners", "save_figure", "page_head"]

_EDGES = [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7), (6, 7)]


def box_corners(mesh: geom3d.Mesh) -> torch.Tensor:
    """(8, 3) corners of the mesh's axis-aligned bounding box (the order `draw_pose` expects)."""
    lo, hi = mesh.vertices.amin(0), mesh.vertices.amax(0)
    return torch.stack([torch.stack([(hi if i & 4 else lo)[0], (hi if i & 2 else lo)[1], (hi if i & 1 else lo)[2]])
                        for i in range(8)])




def save_figure(out: str | os.PathLike, name: str, picture: np.ndarray, caption: str) -> str:
    """Write `picture` (H, W, 3) uint8 atomically as <out>/images/<name>.png; the page's <figure> for it
    (`caption` is HTML-escaped here)."""
    from PIL import Image

    path = os.path.join(out, "images", f"{name}.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_save(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
    return (f"<figure><img src='images/{os.path.basename(path)}'><figcaption>{html.escape(caption)}"
            f"</figcaption></figure>")


def page_head(title: str, css: str = "") -> str:
    """The start of a report page: doctype, title and the shared style (plus `css`)."""
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em} .bar{height:12px;background:#1f77b4}"
            ".bar.baseline{background:#d62728} figure{display:inline-block;margin:4px;font-size:12px}"
            f"td{{padding:2px 8px}}{css}</style>")


def draw_pose(image: torch.Tensor, corners: torch.Tensor, viewpoints: Mapping[str, Mapping]) -> np.ndarray:
    """The image (3, H, W) in [0, 1] as uint8 (H, W, 3) with the box `corners` (8, 3) drawn at each
    viewpoint; `viewpoints` maps a colour name to a viewpoint mapping (image pixels)."""
    from PIL import Image, ImageDraw

    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    H, W = arr.shape[:2]
    pil = Image.fromarray(arr).resize((W * 2, H * 2), Image.NEAREST)
    draw = ImageDraw.Draw(pil)
    for colour, vp in viewpoints.items():
        if vp is None or not all(math.isfinite(float(vp[k])) for k in ("azimuth", "elevation", "theta", "distance")):
            continue
        cam = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                          focal=vp["focal"], viewport=vp["viewport"],
                                          principal=(vp["px"], vp["py"]), image_size=(H, W))
        uv, z = cam.project(corners.to(cam.dtype), return_depth=True)
        if (z <= 0).any():
            continue
        pts = [(float(u) * 2 + 0.5, float(v) * 2 + 0.5) for u, v in uv]
        for a, b in _EDGES:
            draw.line([pts[a], pts[b]], fill=colour, width=2)
    return np.asarray(pil)


def _bars(metrics: Mapping) -> str:
    rows = []
    present = {k for m in metrics.values() for per in m.values() for k in per}
    for key, label in (("acc_pi6", "Acc@π/6"), ("acc_pi18", "Acc@π/18"), ("cls_acc", "classification"),
                       ("azimuth_pi6", "azimuth within 30°"), ("flip_rate", "front/back flips (azimuth within 30° "
                                                                             "of the opposite)")):
        if key not in present:
            continue
        rows.append(f"<h3>{label}</h3><table>")
        splits = sorted({s for m in metrics.values() for s in m})
        for split in splits:
            for method, per in metrics.items():
                if split not in per:
                    continue
                value = per[split].get(key)
                value = 0.0 if value is None else value
                rows.append(f"<tr><td>{html.escape(split)}</td><td>{html.escape(method)}</td>"
                            f"<td><div class='bar {html.escape(method)}' style='width:{300 * value:.0f}px'></div></td>"
                            f"<td>{100 * value:.1f}% (n={per[split]['n']})</td></tr>")
        rows.append("</table>")
    if "elevation_bias_deg" in present:
        rows.append("<h3>elevation bias (median of estimated − true, degrees)</h3><table>")
        for method, per in metrics.items():
            cells = "".join(f"<td>{html.escape(s)}: {v['elevation_bias_deg']:+.1f}°</td>" for s, v in per.items()
                            if v.get("elevation_bias_deg") is not None)
            rows.append(f"<tr><td>{html.escape(method)}</td>{cells}</tr>")
        rows.append("</table>")
    return "\n".join(rows)


def _figure(out: str, name: str, dataset: data3d.ObjectDataset, row: dict, model) -> str:
    item = dataset[row["item"]]
    gt = dict(zip(data3d.VIEWPOINT_KEYS, item["viewpoint"].tolist()))
    est = dict(row["viewpoint"])
    if not math.isfinite(float(est.get("distance", float("nan")))):  # the baseline estimates rotation only
        est.update(distance=gt["distance"], focal=gt["focal"], viewport=gt["viewport"], px=gt["px"], py=gt["py"])
    bank = getattr(model, "bank", None)  # estimators that fit meshes (NeMo's) have a bank
    mesh = bank.mesh(row["category"]) if bank is not None else None
    if mesh is None:
        obj = dataset.records[int(item["record_index"])].objects[int(item["object_index"])]
        bounds = obj.extra.get("mesh_bounds") or [[-0.5] * 3, [0.5] * 3]  # datagen records carry the mesh's box
        mesh = geom3d.cuboid_mesh(bounds[0], bounds[1], 30)
    picture = draw_pose(item["image"], box_corners(mesh), {"lime": gt, "red": est})
    caption = (f"{row['category']} → {row['predicted']}, {math.degrees(row['error']):.1f}°, {row['split']}")
    return save_figure(out, f"{name}_{row['item']:05d}", picture, caption)


def write_report(out: str, metrics: Mapping, rows: Mapping[str, tuple], models: Mapping, examples: int = 8) -> str:
    """report.html in `out` (see the module docstring); returns its path."""
    parts = [page_head("nemo evaluation"), "<h1>Evaluation</h1>", "<h2>Per split</h2>", _bars(metrics),
             "<p>Boxes: green at the true pose, red at the estimate.</p>"]
    for name, (method_rows, dataset) in rows.items():
        if not method_rows:
            continue
        parts.append(f"<h2>{html.escape(name)}: examples</h2>")
        step = max(1, len(method_rows) // max(1, examples))
        for row in method_rows[::step][:examples]:
            parts.append(_figure(out, name, dataset, row, models[name]))
        parts.append(f"<h2>{html.escape(name)}: worst failures</h2>")
        worst = sorted(method_rows, key=lambda r: -r["error"] if math.isfinite(r["error"]) else -math.inf)
        for row in worst[: max(1, examples // 2)]:
            parts.append(_figure(out, name, dataset, row, models[name]))
    path = os.path.join(out, "report.html")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
