"""An HTML preview of a generated dataset: a grid of samples with each record's annotation drawn.

For every shown image the object's 3D box (the mesh bounds stored in the record) and its object
axes (x red, y green, z blue, from the object origin) are projected with the record's own camera
by data3d's one overlay drawer (`data3d.show.draw_object`, its box rule included), so a wrong
annotation is visible at a glance. The page (`preview.html` beside the records) is one
self-contained file (`aware3d_utils.html`): thumbnails are embedded as base64 PNGs.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from aware3d_utils import html as H
from aware3d_utils.optional import lazy_module

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["draw_annotation", "write_preview", "contact_sheet"]


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
    """Draw one `ObjectAnnotation`'s box (data3d's box rule: `extra["mesh_bounds"]`, else none) and
    object axes on an RGB image (H, W, 3) uint8, shown `scale` times its size."""
    from data3d.show import draw_object

    return draw_object(image, obj, scale=scale, label=False)


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
    cells = [H.figure(H.png_data_uri(_thumbnail(r, size)), _caption(r), href=os.path.relpath(r.image_path, out.parent))
             for r in chosen]
    summary = (f"{manifest.get('images', len(records))} images, "
               f"{len(manifest.get('categories', []))} categories, mode {manifest.get('mode', '?')}, "
               f"skipped: {json.dumps(manifest.get('skipped', {}))}") if manifest else f"{len(records)} images"
    css = (f"body{{margin:16px;background:#fafafa}} .grid{{display:grid;grid-template-columns:repeat({columns}, "
           f"{size}px);gap:10px}} figure{{margin:0}} img{{width:{size}px;display:block}} figcaption{{font-size:11px}}")
    body = [H.heading(folder.name), H.paragraph(f"{summary}. Drawn from each record's camera: the object's 3D box "
                                                "(yellow), its axes (x red, y green, z blue) and the 2D box (white)."),
            H.element("div", H.join(cells), class_="grid")]
    return H.write_page(out, f"aware3d datagen preview: {folder.name}", body, css)
