"""report.html of a run: input, scaffolds (colour, depth, mask) and the painted output (when a
video model ran) side by side per sampled output frame, and an overview of the proxy from above
and behind the first camera, with the input cameras (red) and the target path (green) drawn in.
The page is written by `aware3d_utils.html`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from aware3d_utils import html as H
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


def write_report(out: Path, inputs, scaffold, depth_img, mask_img, background, foregrounds, path, counts,
                 rows: int = 6, output=None, proxy: str = "rigid") -> Path:
    """Write report/ images and report.html into the run folder `out`."""
    def png(name: str, picture) -> str:
        return H.save_png(out / "report" / name, picture).relative_to(out).as_posix()

    over = png("overview.png", overview_image(background, foregrounds[0], inputs.cameras, path.cameras))
    picks = np.unique(np.linspace(0, len(path) - 1, min(rows, len(path))).round().astype(int))
    table = []
    for i in picks:
        src = int(np.clip(round(float(path.video_time[i])), 0, len(inputs.frames) - 1))
        cells = [png(f"input_{i:05d}.png", inputs.frames[src]), png(f"rgb_{i:05d}.png", scaffold.rgb[i]),
                 png(f"depth_{i:05d}.png", depth_img[i]), png(f"mask_{i:05d}.png", mask_img[i])]
        if output is not None:
            cells.append(png(f"output_{i:05d}.png", output[i]))
        table.append([H.join([f"output {i}", H.Html("<br>"), f"input {inputs.names[src]}"], ""),
                      *(H.image(c, width=240) for c in cells)])
    videos = [("input.mp4", "input"), ("scaffold_rgb.mp4", "scaffold colour"), ("scaffold_depth.mp4", "scaffold depth"),
              ("scaffold_mask.mp4", "scaffold mask")] + ([("output.mp4", "output")] if output is not None else [])
    header = ["", "input", "colour", "depth (near bright, holes grey)", "mask (holes black)"]
    body = [H.heading("orbit4d run", 1),
            H.element("p", H.join(["Videos: ", H.join((H.link(f, t) for f, t in videos), ", "),
                                   "" if output is not None else " (no video model run)",
                                   f". Proxy ({proxy}): proxy/*.ply; cameras.json, alignment.json, "
                                   "trajectory.json."], "")),
            H.heading("Overview"),
            H.paragraph("The proxy from above and behind the first camera; red: input cameras, green: target path."),
            H.image(over), H.heading("Input and scaffolds"),
            H.table(table, header=header + (["output"] if output is not None else [])),
            H.heading("Counts"),
            H.bullet_list(f"{k}: {v if not isinstance(v, list) else len(v)}" for k, v in counts.items())]
    return H.write_page(out / "report.html", "orbit4d run", body, "td{padding:2px} img{image-rendering:pixelated}")
