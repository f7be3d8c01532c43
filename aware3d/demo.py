"""`aware3d demo`: the main job on a small example, grown with every capability.

Now: build the NeMo cuboid of a category's CAD models, project the object and its cuboid from a
ring of PASCAL3D+ viewpoints with the core's cameras, and write a contact sheet plus one
annotation file per view.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

import geom3d

from .paths import shared_data_root

IMAGE_SIZE = (320, 320)


def _category_meshes(category: str) -> list[geom3d.Mesh]:
    folder = shared_data_root() / "pascal3d_cad" / category
    paths = sorted(folder.glob("*.off"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no PASCAL3D+ CAD models of {category!r} (set AWARE3D_DATA)")
    return [geom3d.Mesh.load(p) for p in paths]


def _shade(mesh: geom3d.Mesh, cameras: geom3d.Cameras, colour=(90, 140, 220)) -> np.ndarray:
    """Painter's-algorithm flat shading with OpenCV (a stand-in until the GL renderer)."""
    h, w = cameras.image_size
    image = np.full((h, w, 3), 255, np.uint8)
    uv, depth = cameras.project(mesh.vertices, return_depth=True)
    tri_uv = uv[mesh.faces].numpy()
    normals = mesh.face_normals() @ cameras.R.T  # camera frame
    centres = cameras.world_to_camera(mesh.vertices[mesh.faces].mean(1))
    facing = -(normals * centres / centres.norm(dim=-1, keepdim=True)).sum(-1)
    order = torch.argsort(depth[mesh.faces].mean(-1), descending=True).numpy()
    light = (0.25 + 0.75 * facing.abs().clamp(0, 1)).numpy()
    for f in order:
        c = tuple(int(v * light[f]) for v in colour)
        cv2.fillConvexPoly(image, np.round(tri_uv[f] * 16).astype(np.int32), c, lineType=cv2.LINE_AA, shift=4)
    return image


def _draw_box(image: np.ndarray, corners_uv: np.ndarray, colour=(0, 160, 0)) -> None:
    edges = [(0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7)]
    for a, b in edges:
        p, q = (tuple(np.round(corners_uv[i] * 16).astype(int)) for i in (a, b))
        cv2.line(image, p, q, colour, 1, cv2.LINE_AA, shift=4)


def run_demo(out: str | Path = "runs/demo", views: int = 8, category: str = "car") -> Path:
    out = Path(out)
    meshes = _category_meshes(category)
    cuboid = geom3d.cuboid_from_meshes(meshes)
    lo, hi = cuboid.bounds()
    corners = torch.stack([torch.stack([x, y, z]) for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                           for z in (lo[2], hi[2])])
    mesh = meshes[0]
    distance = 5.0
    # fit the object: its longest side spans about 60% of the image at the NeMo distance
    size = float((mesh.bounds()[1] - mesh.bounds()[0]).max())
    viewport = 0.6 * IMAGE_SIZE[1] * distance / size
    azimuths = torch.arange(views, dtype=torch.float64) * (2 * math.pi / views)
    cameras = geom3d.viewpoint_to_cameras(azimuths, math.radians(15.0), 0.0, distance, focal=1.0,
                                          viewport=viewport, image_size=IMAGE_SIZE).to(dtype=torch.float32)
    tiles = []
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for i in range(views):
        cam = cameras[i]
        image = _shade(mesh, cam)
        _draw_box(image, cam.project(corners).numpy())
        uv = cam.project(mesh.vertices)
        bbox = [float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max())]
        cv2.putText(image, f"az {math.degrees(azimuths[i]):.0f}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        vp = geom3d.cameras_to_viewpoint(cam, viewport=viewport)
        annotation = {
            "category": category,
            "cad_index": 1,
            "image_size": list(IMAGE_SIZE),
            "viewpoint": {k: float(v) for k, v in vp.items()},
            "K": cam.K.tolist(), "R": cam.R.tolist(), "t": cam.t.tolist(),
            "bbox": bbox,
            "cuboid_bounds": cuboid.bounds().tolist(),
        }
        geom3d.atomic_write_text(out / "annotations" / f"view_{i:02d}.json", json.dumps(annotation, indent=1))
        tiles.append(image)
    cols = min(4, views)
    rows = math.ceil(views / cols)
    sheet = np.full((rows * IMAGE_SIZE[0], cols * IMAGE_SIZE[1], 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * IMAGE_SIZE[0]:(r + 1) * IMAGE_SIZE[0], c * IMAGE_SIZE[1]:(c + 1) * IMAGE_SIZE[1]] = tile
    geom3d.atomic_save(out / "contact_sheet.png", lambda p: cv2.imwrite(p, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)))
    return out
