"""Figures for the reports, drawn with PIL only (no plotting library needed).

    line_plot_png("run/loss.png", {"loss": [(0, 1.2), (10, 0.8)]}, "training loss")
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .atomic import atomic_save

__all__ = ["line_plot_png"]


def line_plot_png(path: str | os.PathLike, series: Mapping[str, Sequence[tuple[float, float]]], title: str = "",
                  size: tuple[int, int] = (640, 360)) -> Path:
    """A simple line chart of named (x, y) series as a PNG (PIL only; no plotting library needed)."""
    from PIL import Image, ImageDraw

    W, H = size
    left, right, top, bottom = 60, 20, 30, 40
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    points = [(float(x), float(y)) for s in series.values() for x, y in s if math.isfinite(float(y))]
    draw.text((left, 8), title, fill="black")
    if points:
        x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
        y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

        def xy(x, y):
            return (left + (x - x0) / (x1 - x0) * (W - left - right),
                    H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom))

        draw.rectangle([left, top, W - right, H - bottom], outline="black")
        for k in range(5):
            yv = y0 + (y1 - y0) * k / 4
            _, yy = xy(x0, yv)
            draw.line([left - 4, yy, left, yy], fill="black")
            draw.text((4, yy - 6), f"{yv:.3g}", fill="black")
        draw.text((left, H - bottom + 6), f"{x0:g}", fill="black")
        draw.text((W - right - 40, H - bottom + 6), f"{x1:g}", fill="black")
        colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
        for i, (name, s) in enumerate(series.items()):
            pts = [xy(float(x), float(y)) for x, y in s if math.isfinite(float(y))]
            colour = colours[i % len(colours)]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            elif pts:
                draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
            draw.text((W - right - 150, top + 4 + 14 * i), name, fill=colour)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))
    return path
