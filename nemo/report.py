"""The evaluation's HTML report: per-split accuracy bars for every method, example crops with the
object's box drawn at the true (green) and estimated (red) pose, and the worst failures.

The page is written by `aware3d_utils.html`; boxes are drawn by data3d's one overlay drawer
(`data3d.show`), with its box rule: the bank's mesh, else the record's `mesh_bounds`, else no box
(the object axes instead)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
import torch

import data3d
import geom3d
from aware3d_utils import html as H
from data3d import show

__all__ = ["write_report", "draw_pose", "box_corners"]

_CSS = ".bar{height:12px;background:#1f77b4} .bar.baseline{background:#d62728}"


def box_corners(mesh: geom3d.Mesh) -> torch.Tensor:
    """(8, 3) corners of the mesh's axis-aligned bounding box (`data3d.show.box_corners`' order, the
    one `draw_pose` expects), in the mesh's dtype."""
    lo, hi = mesh.bounds()
    return torch.as_tensor(show.box_corners(lo, hi), dtype=mesh.vertices.dtype)


def draw_pose(image: torch.Tensor, corners, viewpoints: Mapping[str, Mapping]) -> np.ndarray:
    """The image (3, H, W) in [0, 1] as uint8 (2H, 2W, 3), enlarged twice (nearest), with the box
    `corners` (8, 3) drawn at each viewpoint; `viewpoints` maps a colour name to a viewpoint mapping
    (image pixels). `corners` None (no box known): the object axes in the colour, 0.15 × the distance."""
    from PIL import ImageColor

    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    H, W = arr.shape[:2]
    out = np.ascontiguousarray(arr.repeat(2, axis=0).repeat(2, axis=1))
    for color, vp in viewpoints.items():
        if vp is None or not all(math.isfinite(float(vp[k])) for k in ("azimuth", "elevation", "theta", "distance")):
            continue
        cam = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                          focal=vp["focal"], viewport=vp["viewport"],
                                          principal=(vp["px"], vp["py"]), image_size=(H, W))
        rgb = ImageColor.getrgb(color)
        if corners is None:
            show.draw_axes(out, cam, 0.15 * float(vp["distance"]), colors=(rgb,) * 3, scale=2)
        else:
            show.draw_box(out, cam, np.asarray(corners, dtype=np.float64), rgb, thickness=2, scale=2)
    return out


def _bars(metrics: Mapping) -> str:
    parts = []
    present = {k for m in metrics.values() for per in m.values() for k in per}
    splits = sorted({s for m in metrics.values() for s in m})
    for key, label in (("acc_pi6", "Acc@π/6"), ("acc_pi18", "Acc@π/18"), ("cls_acc", "classification"),
                       ("azimuth_pi6", "azimuth within 30°"), ("flip_rate", "front/back flips (azimuth within 30° "
                                                                             "of the opposite)")):
        if key not in present:
            continue
        rows = []
        for split in splits:
            for method, per in metrics.items():
                if split not in per:
                    continue
                value = per[split].get(key)
                value = 0.0 if value is None else value
                bar = H.element("div", "", class_=f"bar {method}", style=f"width:{300 * value:.0f}px")
                rows.append((split, method, bar, f"{100 * value:.1f}% (n={per[split]['n']})"))
        parts += [H.heading(label, 3), H.table(rows)]
    if "elevation_bias_deg" in present:
        rows = [(method, *(f"{s}: {v['elevation_bias_deg']:+.1f}°" for s, v in per.items()
                           if v.get("elevation_bias_deg") is not None)) for method, per in metrics.items()]
        parts += [H.heading("elevation bias (median of estimated − true, degrees)", 3), H.table(rows)]
    return H.join(parts)


def _figure(out: str, name: str, dataset: data3d.ObjectDataset, row: dict, model) -> str:
    item = dataset[row["item"]]
    gt = dict(zip(data3d.VIEWPOINT_KEYS, item["viewpoint"].tolist()))
    est = dict(row["viewpoint"])
    if not math.isfinite(float(est.get("distance", float("nan")))):  # the baseline estimates rotation only
        est.update(distance=gt["distance"], focal=gt["focal"], viewport=gt["viewport"], px=gt["px"], py=gt["py"])
    bank = getattr(model, "bank", None)  # estimators that fit meshes (NeMo's) have a bank
    mesh = bank.mesh(row["category"]) if bank is not None else None
    obj = dataset.records[int(item["record_index"])].objects[int(item["object_index"])]
    bounds = show.object_bounds(obj, mesh)  # datagen records carry the mesh's box
    picture = draw_pose(item["image"], None if bounds is None else show.box_corners(*bounds), {"lime": gt, "red": est})
    caption = f"{row['category']} → {row['predicted']}, {math.degrees(row['error']):.1f}°, {row['split']}"
    return H.saved_figure(out, f"images/{name}_{row['item']:05d}.png", picture, caption)


def write_report(out: str, metrics: Mapping, rows: Mapping[str, tuple], models: Mapping, examples: int = 8) -> str:
    """report.html in `out` (see the module docstring); returns its path."""
    parts = [H.heading("Evaluation", 1), H.heading("Per split"), _bars(metrics),
             H.paragraph("Boxes: green at the true pose, red at the estimate.")]
    for name, (method_rows, dataset) in rows.items():
        if not method_rows:
            continue
        parts.append(H.heading(f"{name}: examples"))
        step = max(1, len(method_rows) // max(1, examples))
        for row in method_rows[::step][:examples]:
            parts.append(_figure(out, name, dataset, row, models[name]))
        parts.append(H.heading(f"{name}: worst failures"))
        worst = sorted(method_rows, key=lambda r: -r["error"] if math.isfinite(r["error"]) else -math.inf)
        for row in worst[: max(1, examples // 2)]:
            parts.append(_figure(out, name, dataset, row, models[name]))
    return str(H.write_page(os.path.join(out, "report.html"), "nemo evaluation", parts, _CSS))
