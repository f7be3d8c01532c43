"""`aware3d demo`: the main job on a small example, grown with every capability.

1. For several procedural categories: build the category's NeMo cuboid from a few procedural
   models, render one model with the GL renderer from a ring of PASCAL3D+ viewpoints (shaded
   colour with the cuboid drawn from the camera, depth, mask), write a contact sheet and one
   data3d record per view (the records folder `annotations/`).
2. Generate a small 3D-DST dataset from the procedural library (randomised mode) with its HTML
   preview.
3. Train a small NeMo and the 2D baseline on fresh procedural renders (a few CPU minutes) and
   evaluate both on that dataset (`nemo/eval/metrics.json`, `report.html`).
4. Re-render a short synthetic video along a 30° orbit with orbit4d (`orbit4d/run/report.html`).
At the end it prints the `aware3d view` commands that open these outputs in 3D.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import torch

import aware3d_utils
import data3d
import geom3d
from data3d.show import box_corners, draw_box
from datagen import DEMO_CATEGORIES
from methodkit.cli import folder_path

from .cli import bounded

IMAGE_SIZE = (160, 160)
DISTANCE = 5.0
CUBOID_SEEDS = range(4)


def _depth_image(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.full(depth.shape + (3,), 255, np.uint8)
    if mask.any():
        d = depth[mask]
        scaled = (depth - d.min()) / max(float(d.max() - d.min()), 1e-6)
        coloured = cv2.applyColorMap((255 * (1 - scaled)).clip(0, 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
        out[mask] = coloured[mask][:, ::-1]
    return out


def _label(image: np.ndarray, text: str) -> None:
    cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)


def render_category_sheet(category: str, views: int, out: Path) -> tuple[np.ndarray, list]:
    """Three rows (shaded colour with the cuboid, depth, mask) of `views` tiles for one category,
    and one record per view; writes each view's image to `out/annotations/images/`."""
    canonical = data3d.procedural.canonical_category(category)
    meshes = [data3d.procedural.make(canonical, seed) for seed in CUBOID_SEEDS]
    cuboid = geom3d.cuboid_from_meshes(meshes)
    corners = box_corners(*cuboid.bounds())
    cuboid.save(out / "cuboids" / f"{category}.off")  # NeMo keeps one cuboid mesh per category
    mesh = meshes[0]
    # the longest side (1 for procedural models) spans about 80% of the image at the NeMo distance
    viewport = 0.8 * IMAGE_SIZE[1] * DISTANCE / float((mesh.bounds()[1] - mesh.bounds()[0]).max())
    azimuths = torch.arange(views, dtype=torch.float64) * (2 * math.pi / views)
    cameras = geom3d.viewpoint_to_cameras(azimuths, math.radians(20.0), 0.0, DISTANCE, 1.0, viewport,
                                          image_size=IMAGE_SIZE).to(dtype=torch.float32)
    rendered = geom3d.render_gl(mesh, cameras, background=(1.0, 1.0, 1.0), outputs=("rgb", "depth", "mask"))
    rows, records = [[], [], []], []
    for i in range(views):
        cam = cameras[i]
        rgb = (rendered.rgb[i].numpy() * 255).round().astype(np.uint8)
        mask = rendered.mask[i].numpy()
        draw_box(rgb, cam, corners, (0, 170, 0))
        _label(rgb, f"{category} az {math.degrees(azimuths[i]):.0f}")
        depth = _depth_image(rendered.depth[i].numpy(), mask)
        mask_img = np.where(mask[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)
        for row, tile in zip(rows, (rgb, depth, mask_img)):
            row.append(tile)
        ys, xs = np.nonzero(mask)
        bbox = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
        # the mesh reference datagen writes for this asset: procedural:<category>/0000 (the seed), no cad_index
        record = data3d.ImageRecord(
            image_path=out / "annotations" / "images" / f"{category}_{i:02d}.png", image_size=IMAGE_SIZE,
            objects=[data3d.ObjectAnnotation(
                category=category, bbox=bbox, viewpoint=data3d.Viewpoint.from_cameras(cam, viewport=viewport),
                cad_index=None, cad_source="procedural", cad_id=f"{category}/0000")])
        aware3d_utils.atomic_save(record.image_path,
                                  lambda p, im=rgb: cv2.imwrite(p, cv2.cvtColor(im, cv2.COLOR_RGB2BGR)))
        records.append(record)
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0), records


def run_demo(out: str | Path = "runs/demo", views: int = 8, categories=DEMO_CATEGORIES, dataset: bool = True,
             nemo_steps: int = 0, orbit: bool = False) -> Path:
    """Write `contact_sheet.png`, `annotations/` (a data3d records folder: `records-demo.json` and
    `images/*.png`; `data3d.load_records(out / "annotations")` reads it), `cuboids/*.off` and (with
    `dataset`) the small 3D-DST dataset `dataset/` with `dataset/preview.html` under `out`.
    With `nemo_steps` > 0 (and `dataset`), NeMo and the baseline train that many steps each into
    `nemo/` and are evaluated on `dataset/`; with `orbit`, orbit4d's synthetic orbit runs into `orbit4d/`."""
    out = Path(out)
    sheets, records = [], []
    for c in categories:
        sheet, recs = render_category_sheet(c, views, out)
        sheets.append(sheet)
        records += recs
    data3d.save_records(records, out / "annotations", shard="demo", format="json")
    width = max(s.shape[1] for s in sheets)
    sheet = np.concatenate([np.pad(s, ((0, 8), (0, width - s.shape[1]), (0, 0)), constant_values=255)
                            for s in sheets], axis=0)
    aware3d_utils.atomic_save(out / "contact_sheet.png",
                              lambda p: cv2.imwrite(p, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)))
    if dataset:
        import datagen

        datagen.run_demo_dataset(out / "dataset", categories=categories)
        if nemo_steps > 0:
            from nemo.demo import run_nemo_demo, summary

            metrics = run_nemo_demo(out / "dataset", out / "nemo", list(categories), steps=nemo_steps)
            print("NeMo vs the 2D baseline on the demo dataset (nemo/eval/report.html):")
            print(summary(metrics))
    if orbit:
        from orbit4d.demo import run_demo_orbit

        run_demo_orbit(out / "orbit4d")
    return out


def add_parser(sub) -> None:
    """`aware3d demo` (registered in aware3d/cli.py)."""
    demo = sub.add_parser("demo", help="run the main job on a small built-in example",
                          description="Render procedural objects of several categories and their NeMo cuboids "
                                      "from a ring of PASCAL3D+ viewpoints with the GL renderer (contact sheet with "
                                      "shaded colour, depth and mask; one annotation per view), generate a "
                                      "small 3D-DST dataset of the same categories with an HTML preview, train a "
                                      "small NeMo and the 2D baseline and compare them on that dataset, and "
                                      "re-render a synthetic video along an orbit with orbit4d.")
    demo.add_argument("--out", default="runs/demo", type=folder_path, help="output folder (default: runs/demo)")
    demo.add_argument("--views", type=bounded(int, 1, 360), default=8,
                      help="viewpoints on the ring per category (1-360; default: 8)")
    demo.add_argument("--categories", nargs="+", default=list(DEMO_CATEGORIES), metavar="NAME",
                      help=f"procedural categories (default: {' '.join(DEMO_CATEGORIES)})")
    demo.add_argument("--no-dataset", action="store_true", help="skip the 3D-DST dataset step (and NeMo's)")
    demo.add_argument("--nemo-steps", type=bounded(int, 0, 10**9), metavar="N",
                      help="training steps for NeMo and for the 2D baseline (default: 200, a few CPU minutes); "
                           "0 skips the NeMo step")
    demo.add_argument("--no-orbit4d", action="store_true", help="skip the orbit4d step")
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.nemo_steps is not None and args.no_dataset:  # NeMo trains on the dataset: it would be ignored
        raise ValueError("--nemo-steps only acts without --no-dataset (NeMo trains and is evaluated on the dataset)")
    args.nemo_steps = 200 if args.nemo_steps is None else args.nemo_steps
    twice = sorted({c for c in args.categories if args.categories.count(c) > 1})
    if twice:  # one category's files would be written twice, its records counted twice
        raise ValueError(f"--categories: {twice} given twice; give each category once")
    for c in args.categories:  # all of them before the first category's files are written
        try:
            data3d.procedural.canonical_category(c)
        except ValueError as exc:
            raise ValueError(f"--categories: {exc}") from None
    out = run_demo(args.out, views=args.views, categories=args.categories, dataset=not args.no_dataset,
                   nemo_steps=args.nemo_steps, orbit=not args.no_orbit4d)
    parts = ["contact_sheet.png", "annotations/"]
    if not args.no_dataset:
        parts.append("dataset/preview.html")
        if args.nemo_steps:
            parts.append("nemo/eval/report.html")
    if not args.no_orbit4d:
        parts.append("orbit4d/run/report.html")
    print(f"demo written to {out}: " + ", ".join(parts))
    commands = viewer_commands(out)
    if commands:
        print("look at them in 3D in a browser (each prints its URL; Ctrl-C stops it):")
        print("\n".join(f"  {c}" for c in commands))
    return 0


def viewer_commands(out: str | Path) -> list[str]:
    """`aware3d view` commands for the demo's outputs that exist in `out` (records folders, the
    evaluation, the orbit4d run)."""
    import shlex

    from aware3d.view import detect_kind

    out = Path(out)
    commands = []
    for part in ("annotations", "dataset", "nemo/eval", "orbit4d/run"):
        folder = out / part
        try:
            detect_kind(folder)
        except (OSError, ValueError):
            continue
        commands.append(f"aware3d view {shlex.quote(str(folder))}")
    return commands
