"""report.html of a run: input, scaffolds (colour, depth, mask) and the painted output (when a
video model ran) side by side per sampled output frame, and an overview of the proxy from above
and behind the first camera, with the input cameras (red) and the target path (green) drawn in."""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np
import torch

from aware3d_utils.atomic import atomic_save, atomic_write_text
from geom3d import Cameras, splat

__all__ = ["write_report", "overview_image"]


def _centres(cams: Cameras) -> torch.Tensor:
    c = cams.to(dtype=torch.float64)
    return -(c.R.transpose(-1, -2) @ c.t[..., None])[..., 0]


def overview_image(background, foreground, input_cameras: Cameras, path_cameras: Cameras,
                   size=(360, 480)) -> np.ndarray:
    """uint8 (H, W, 3): the proxy (background + first foreground) seen from a camera above and
    behind the scene, with camera centres as dots."""
    inp, tgt = _centres(input_cameras), _centres(path_cameras)
    pts = torch.cat([torch.as_tensor(background.points, dtype=torch.float64),
                     torch.as_tensor(foreground[0], dtype=torch.float64)])
    cols = None
    if background.colors is not None and foreground[1] is not None:
        cols = torch.cat([torch.as_tensor(background.colors, dtype=torch.float64),
                          torch.as_tensor(foreground[1], dtype=torch.float64)])
    centre = torch.as_tensor(foreground[0], dtype=torch.float64).mean(0) if len(foreground[0]) else pts.mean(0)
    R0 = input_cameras.R.reshape(-1, 3, 3)[0].double()
    forward, up = R0[2], -R0[1]
    reach = float(torch.cat([inp, tgt]).sub(centre).norm(dim=-1).max()) + 1e-6
    eye = centre - 1.6 * reach * forward + 1.6 * reach * up
    h, w = size
    cam = Cameras.look_at(eye, centre, up, focal=0.9 * w, image_size=(h, w))
    img = splat(pts, cols, cam, radius=1.0, background=0.15).rgb.reshape(h, w, 3)
    out = (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy().copy()
    for centres, colour in ((inp, (230, 40, 40)), (tgt, (40, 220, 60))):
        uv, z = cam.project(centres.to(cam.dtype)[None], return_depth=True)
        for (u, v), zz in zip(uv[0].tolist(), z[0].tolist()):
            if zz > 0 and 0 <= u < w and 0 <= v < h:
                cv2.circle(out, (int(round(u)), int(round(v))), 3, colour, -1)
    return out


def _save_png(path: Path, img: np.ndarray) -> str:
    bgr = img[..., ::-1] if img.ndim == 3 else img
    atomic_save(path, lambda tmp: cv2.imwrite(tmp, np.ascontiguousarray(bgr)))
    return path.name


def write_report(out: Path, inputs, scaffold, depth_img, mask_img, background, foregrounds, path, counts,
                 rows: int = 6, output=None) -> Path:
    """Write report/ images and report.html into the run folder `out`."""
    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    over = _save_png(folder / "overview.png", overview_image(background, foregrounds[0], inputs.cameras,
                                                             path.cameras))
    picks = np.unique(np.linspace(0, len(path) - 1, min(rows, len(path))).round().astype(int))
    body = []
    for i in picks:
        src = int(np.clip(round(float(path.video_time[i])), 0, len(inputs.frames) - 1))
        cells = [_save_png(folder / f"input_{i:05d}.png", inputs.frames[src]),
                 _save_png(folder / f"rgb_{i:05d}.png", scaffold.rgb[i]),
                 _save_png(folder / f"depth_{i:05d}.png", depth_img[i]),
                 _save_png(folder / f"mask_{i:05d}.png", mask_img[i])]
        if output is not None:
            cells.append(_save_png(folder / f"output_{i:05d}.png", output[i]))
        imgs = "".join(f'<td><img src="report/{c}" width="240"></td>' for c in cells)
        body.append(f"<tr><td>output {i}<br>input {html.escape(inputs.names[src])}</td>{imgs}</tr>")
    stats = "".join(f"<li>{html.escape(k)}: {html.escape(str(v if not isinstance(v, list) else len(v)))}</li>"
                    for k, v in counts.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>orbit4d run</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;padding:2px}} img{{image-rendering:pixelated}}</style>
</head><body><h1>orbit4d run</h1>
<p>Videos: <a href="input.mp4">input</a>, <a href="scaffold_rgb.mp4">scaffold colour</a>,
<a href="scaffold_depth.mp4">scaffold depth</a>, <a href="scaffold_mask.mp4">scaffold mask</a>{
', <a href="output.mp4">output</a>' if output is not None else ' (no video model run)'}.
Proxy: proxy/*.ply; cameras.json, alignment.json, trajectory.json.</p>
<h2>Overview</h2><p>The proxy from above and behind the first camera; red: input cameras, green: target path.</p>
<img src="report/{over}">
<h2>Input and scaffolds</h2><table><tr><th></th><th>input</th><th>colour</th><th>depth (near bright, holes grey)</th>
<th>mask (holes black)</th>{'<th>output</th>' if output is not None else ''}</tr>{''.join(body)}</table>
<h2>Counts</h2><ul>{stats}</ul></body></html>"""
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
