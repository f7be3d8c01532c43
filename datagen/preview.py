"""An HTML preview of a generated dataset: a grid of samples with each record's annotation drawn.

For every shown image the object's 3D bounding box (the mesh bounds stored in the record, a
cuboid) and its object axes (x red, y green, z blue, from the object origin) are projected with
the record's own camera (`Viewpoint.to_cameras`), so a wrong annotation is visible at a glance.
The page (`preview.html` beside the records) is one self-contained file: thumbnails are embedded
as base64 PNGs.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from aware3d_utils import atomic_write_text

__all__ = ["draw_annotation", "write_preview", "contact_sheet"]

_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def _load_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"{path}: cannot read the image")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:  # transparent background: show it over a checkerboard
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB).astype(np.float32)
        a = img[..., 3:].astype(np.float32) / 255.0
        yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
        board = np.where(((yy // 8 + xx // 8) % 2 == 0)[..., None], 200.0, 240.0)
        img = (rgb * a + board * (1 - a)).astype(np.uint8)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def draw_annotation(image: np.ndarray, obj, scale: float = 1.0) -> np.ndarray:
    """Draw one `ObjectAnnotation`'s cuboid (from extra["mesh_bounds"], else a unit cube scaled
    by the distance) and object axes on an RGB image (H, W, 3) uint8, shown `scale` times its size."""
    cam = obj.viewpoint.to_cameras(obj.image_size, dtype=torch.float64)
    bounds = obj.extra.get("mesh_bounds")
    if bounds:
        if isinstance(bounds, str):  # datasets written before mesh_bounds became a list
            bounds = json.loads(bounds)
        lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    else:
        half = 0.25 * obj.viewpoint.distance
        lo, hi = np.full(3, -half), np.full(3, half)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    length = 0.6 * float(np.max(hi - lo))
    axes = np.array([[0, 0, 0], [length, 0, 0], [0, length, 0], [0, 0, length]], dtype=np.float64)
    pts = torch.from_numpy(np.concatenate([corners, axes]))
    uv, z = cam.project(pts, return_depth=True)
    uv = ((uv.numpy() + 0.5) * scale - 0.5)  # integer pixel centres survive the resize
    out = image.copy()

    def p(i):
        return tuple(int(round(c * 16)) for c in uv[i])

    if (z.numpy() > 0).all():
        for a, b in _EDGES:
            cv2.line(out, p(a), p(b), (255, 230, 0), 1, cv2.LINE_AA, shift=4)
        for k, colour in enumerate(((230, 30, 30), (30, 200, 30), (40, 90, 255))):
            cv2.arrowedLine(out, p(8), p(9 + k), colour, 2, cv2.LINE_AA, shift=4, tipLength=0.15)
    x1, y1, x2, y2 = ((np.asarray(obj.bbox) + 0.5) * scale - 0.5).tolist()
    cv2.rectangle(out, (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2))), (255, 255, 255), 1)
    return out


def _thumbnail(record, size: int) -> np.ndarray:
    img = _load_rgb(record.image_path)
    h, w = img.shape[:2]
    scale = size / max(h, w)
    img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    for obj in record.objects:
        img = draw_annotation(img, obj, scale)
    return img


def _caption(record) -> str:
    obj = record.objects[0]
    vp = obj.viewpoint
    deg = math.degrees
    parts = [f"{obj.category}", f"az {deg(vp.azimuth) % 360:.0f}° el {deg(vp.elevation):.0f}° θ {deg(vp.theta):.0f}°",
             f"d {vp.distance:.2f}"]
    level = record.extra.get("occlusion_level", "none")
    if level != "none":
        parts.append(f"{level}, {100 * (obj.visible_fraction or 0):.0f}% visible")
    return " · ".join(parts)


def _select(records, max_images: int) -> list:
    """Up to max_images records spread over categories and levels (round robin, in file order)."""
    groups: dict = {}
    for r in records:
        key = (r.objects[0].category if r.objects else "", r.extra.get("occlusion_level", "none"))
        groups.setdefault(key, []).append(r)
    out, i = [], 0
    while len(out) < max_images and any(i < len(g) for g in groups.values()):
        for g in groups.values():
            if i < len(g) and len(out) < max_images:
                out.append(g[i])
        i += 1
    return out


def contact_sheet(folder: str | os.PathLike, max_images: int = 24, columns: int = 6, size: int = 160) -> np.ndarray:
    """The preview grid as one RGB image (for a quick look without a browser)."""
    from data3d import load_records

    tiles = [_thumbnail(r, size) for r in _select(load_records(folder), max_images)]
    if not tiles:
        raise ValueError(f"{folder}: no records to preview")
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * size, columns * size, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * size:r * size + t.shape[0], c * size:c * size + t.shape[1]] = t
    return sheet


def write_preview(folder: str | os.PathLike, out: str | os.PathLike | None = None, *, max_images: int = 48,
                  columns: int = 6, size: int = 192) -> Path:
    """Write `preview.html` (a grid of annotated samples) beside the dataset in `folder`."""
    from data3d import load_records

    folder = Path(folder)
    out = Path(out) if out is not None else folder / "preview.html"
    records = load_records(folder)
    chosen = _select(records, max_images)
    manifest = {}
    if (folder / "manifest.json").is_file():
        manifest = json.loads((folder / "manifest.json").read_text())
    cells = []
    for r in chosen:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(_thumbnail(r, size), cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"{r.image_path}: cannot encode the thumbnail")
        data = base64.b64encode(buf.tobytes()).decode()
        rel = os.path.relpath(r.image_path, out.parent)
        cells.append(f'<figure><a href="{html.escape(rel)}"><img src="data:image/png;base64,{data}"></a>'
                     f"<figcaption>{html.escape(_caption(r))}</figcaption></figure>")
    summary = (f"{manifest.get('images', len(records))} images, "
               f"{len(manifest.get('categories', []))} categories, mode {manifest.get('mode', '?')}, "
               f"skipped: {html.escape(json.dumps(manifest.get('skipped', {})))}") if manifest else \
        f"{len(records)} images"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>aware3d datagen preview: {html.escape(folder.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; background: #fafafa; }}
.grid {{ display: grid; grid-template-columns: repeat({columns}, {size}px); gap: 10px; }}
figure {{ margin: 0; }} img {{ width: {size}px; display: block; }}
figcaption {{ font-size: 11px; color: #333; }}
</style></head><body>
<h2>{html.escape(folder.name)}</h2>
<p>{summary}. Drawn from each record's camera: the object's 3D box (yellow), its axes
(x red, y green, z blue) and the 2D box (white).</p>
<div class="grid">
{chr(10).join(cells)}
</div></body></html>
"""
    atomic_write_text(out, page)
    return out
