"""Generated sets: each unannotated source image + its synthesized views, as data3d records in the set's frame.

    sets = generate_sets(sources, synthesizer, relative_poses, "sets/", category="car", cylinder=mesh)

A set's frame is the source camera's: the source sits at azimuth 0, elevation `source_elevation`
(an assumption: Zero-1-to-3 orbits about the object's up axis and needs the source elevation, which
an unannotated image does not give), θ 0, and the distance at which the category's neural cylinder
spans the source's bounding box. View i is at (Δazimuth_i, source_elevation − Δpolar_i, 0,
distance + Δradius_i) with the source's intrinsics. Records carry `extra = {"set", "frame":
"source_camera", "relative_pose", "synthesizer"}`; view 0 is the source itself. `relative_pose` is
the view's [Δpolar, Δazimuth, Δradius] as three numbers (sets written before held it as a JSON
string; `relative_pose_of` reads both). Layout:

    sets/sets.json            every set: id, source, category, views; skipped sources with reasons
    sets/report.html, images/ the sets to look at (`pose.report`)
    sets/<set id>/view_000.png, records-000000.npz
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import data3d
import geom3d
from aware3d_utils import atomic_save, atomic_write_text
from datagen.novel_view import NovelViewSynthesizer, SourceView, as_relative_poses
from datagen.writer import encode_png

from .errors import PoseError
from .mesh import neural_cylinder

__all__ = ["SetSource", "GeneratedSet", "generate_sets", "set_seeds", "load_sets", "default_relative_poses",
           "estimate_distance", "object_bbox", "SETS_FRAME", "relative_pose_of", "is_source_view"]

log = logging.getLogger(__name__)
SETS_FRAME = "source_camera"


@dataclass(frozen=True)
class SetSource:
    """One unannotated source: the `SourceView` (mesh and true viewpoint only for the render
    synthesizers), its known intrinsics (focal, viewport, px, py) and the object's bbox (x1, y1, x2, y2).
    instance: the object's instance (`mesh_ref`) when known, recorded in sets.json so that an
    evaluation can check that its test instances are not among the sources'."""

    view: SourceView
    intrinsics: Mapping
    bbox: tuple[float, float, float, float]
    instance: str | None = None


@dataclass(frozen=True)
class GeneratedSet:
    """A set on disk: id, its folder, its records (view 0 the source)."""

    id: str
    folder: Path
    records: list


def default_relative_poses(azimuths: int = 8, polars: Sequence[float] = (0.0,)) -> np.ndarray:
    """(N, 3) relative poses: `azimuths` evenly spaced Δazimuth (0 excluded) × Δpolar values, Δradius 0."""
    out = [[p, 2 * math.pi * k / (azimuths + 1), 0.0] for p in polars for k in range(1, azimuths + 1)]
    return np.asarray(out, dtype=np.float64)


def object_bbox(image: np.ndarray, background=(255, 255, 255), tolerance: int = 12):
    """(x1, y1, x2, y2) of the pixels that differ from a uniform background, or None when there are none."""
    diff = np.abs(image.astype(np.int16) - np.asarray(background, np.int16)).max(-1) > tolerance
    ys, xs = np.nonzero(diff)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def object_free_background(image: np.ndarray, bbox) -> np.ndarray | None:
    """The largest strip of `image` (H, W, 3) beside the object's bbox (left, right, above or below it),
    or None when every strip is thinner than 1/8 of the image: clutter without the object (a whole
    source image would paste a second object behind the generated one)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in bbox)
    strips = [image[:, : max(x1, 0)], image[:, min(x2 + 1, w):], image[: max(y1, 0)], image[min(y2 + 1, h):]]
    thick = [min(s.shape[0], s.shape[1]) for s in strips]
    best = int(np.argmax([s.shape[0] * s.shape[1] if t >= max(h, w) / 8 else 0 for s, t in zip(strips, thick)]))
    return strips[best] if thick[best] >= max(h, w) / 8 else None


def replace_white_background(image: np.ndarray, background: np.ndarray, tolerance: int = 12) -> np.ndarray:
    """The image with its near-white pixels taken from `background` (resized to the image's size)."""
    import cv2

    h, w = image.shape[:2]
    bg = cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA) if background.shape[:2] != (h, w) else background
    white = (np.abs(image.astype(np.int16) - 255).max(-1) <= tolerance)[..., None]
    return np.where(white, bg, image).astype(np.uint8)


def estimate_distance(mesh: geom3d.Mesh, intrinsics: Mapping, elevation: float, bbox, image_size,
                      azimuth: float = 0.0) -> float:
    """The distance at which the mesh, seen at (`azimuth`, `elevation`, θ 0), spans the bbox's larger side."""
    side = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) + 1.0
    d = 10.0 * float(mesh.vertices.norm(dim=-1).max())
    for _ in range(3):  # the projected size is nearly ∝ 1/d: a few fixed-point steps converge
        cams = geom3d.viewpoint_to_cameras(azimuth, elevation, 0.0, d, focal=float(intrinsics["focal"]),
                                           viewport=float(intrinsics["viewport"]),
                                           principal=(float(intrinsics["px"]), float(intrinsics["py"])),
                                           image_size=image_size)
        uv = cams.project(mesh.vertices)
        span = float((uv.amax(0) - uv.amin(0)).max()) + 1.0
        d *= span / side
    return d


def _write_png(path: Path, image: np.ndarray) -> None:
    data = encode_png(image)
    atomic_save(path, lambda tmp: Path(tmp).write_bytes(data))


def set_seeds(count: int, seed: int = 0) -> list[int]:
    """The synthesizer seed of each of `count` sets generated with `seed` (`generate_sets`): set i's is
    seed·1000003 + i."""
    return [int(seed) * 1000003 + i for i in range(count)]


def generate_sets(sources: Sequence[SetSource], synthesizer: NovelViewSynthesizer, relative_poses, out,
                  *, category: str, cylinder: Mapping, source_elevation: float = 0.2, seed: int = 0,
                  backgrounds: str = "white", progress: bool = False, report: bool = True,
                  skipped_sources: Sequence[Mapping] = ()) -> list[GeneratedSet]:
    """Synthesize every source's views and write one set per source (see the module docstring).

    cylinder: the category's neural cylinder as `neural_cylinder` keyword arguments (radius, z_lo, z_hi,
    segments, rows, rings; see `pose.mesh.cylinder_params`), stored in sets.json for training.
    backgrounds: "white" (as synthesized) or "sources": the white background of every generated view is
    replaced by the background of another source image (random, seeded; its largest strip beside the
    object's box, `object_free_background`), so that the encoder learns clutter as real images show it
    and not one uniform colour (generators draw objects on white).

    A source that fails (the synthesizer raises ValueError, no object in a view) is skipped, counted
    and named in sets.json; views whose object vanished are dropped alone.
    report: also write report.html (`pose.report.write_sets_report`: every set's source and views).
    skipped_sources: sources skipped before (an unreadable image: {"source", "reason"}), listed with the others.
    """
    poses = as_relative_poses(relative_poses)
    cylinder_mesh, _ = neural_cylinder(**cylinder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data3d.register_categories([category])
    if backgrounds not in ("white", "sources"):
        raise PoseError(f"backgrounds must be 'white' or 'sources', got {backgrounds!r}")
    rng = np.random.default_rng(seed)
    seeds = set_seeds(len(sources), seed)
    plan = getattr(synthesizer, "plan_sets", None)  # NovelViewSynthesizer's hook; duck-typed ones may lack it
    if plan is not None:
        plan(seeds)  # a collection-wide failure plan (the correlated synthesizer's exact flip count)
    sets, skipped = [], [dict(s) for s in skipped_sources]
    iterator = enumerate(sources)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(sources), desc="generate", unit="set")
    for i, src in iterator:
        set_id = f"set_{i:05d}"
        try:
            images = synthesizer.synthesize(src.view, poses, seed=seeds[i])
        except ValueError as exc:
            skipped.append({"source": src.view.name, "reason": str(exc)})
            log.warning("skipping %s: %s", src.view.name, exc)
            continue
        folder = out / set_id
        folder.mkdir(exist_ok=True)
        source_image = src.view.checked_image()
        size = source_image.shape[:2]
        d0 = estimate_distance(cylinder_mesh, src.intrinsics, source_elevation, src.bbox, size)
        records, dropped = [], 0
        for k, (pose, image) in enumerate(zip(np.concatenate([np.zeros((1, 3)), poses]), [source_image] + images)):
            box = tuple(src.bbox) if k == 0 else object_bbox(image)
            if box is None:
                dropped += 1
                continue
            if k > 0 and backgrounds == "sources" and len(sources) > 1:
                other = sources[int(rng.choice([j for j in range(len(sources)) if j != i]))]
                clutter = object_free_background(other.view.checked_image(), other.bbox)
                if clutter is not None:
                    image = replace_white_background(image, clutter)
            path = folder / f"view_{k:03d}.png"
            _write_png(path, image)
            vp = data3d.Viewpoint(azimuth=float(pose[1]) % (2 * math.pi), elevation=source_elevation - float(pose[0]),
                                  theta=0.0, distance=d0 + float(pose[2]),
                                  **{key: float(src.intrinsics[key]) for key in ("focal", "viewport", "px", "py")})
            obj = data3d.ObjectAnnotation(category=category, bbox=box, viewpoint=vp,
                                          extra={"set": set_id, "frame": SETS_FRAME,
                                                 "relative_pose": [float(x) for x in pose]})
            records.append(data3d.ImageRecord(path, size, (obj,), extra={"set": set_id, "frame": SETS_FRAME,
                                                                         "synthesizer": synthesizer.name,
                                                                         "source": str(src.view.name)}))
        data3d.save_records(records, folder, shard="000000")
        sets.append({"id": set_id, "source": str(src.view.name), "category": category, "views": len(records),
                     "dropped_views": dropped, "distance": d0, "instance": src.instance})
    summary = {"category": category, "cylinder": dict(cylinder), "synthesizer": synthesizer.describe(),
               "source_elevation": source_elevation,
               "relative_poses": poses.tolist(), "sets": sets, "skipped": skipped, "seed": seed}
    atomic_write_text(out / "sets.json", json.dumps(summary, indent=1) + "\n")
    if report:
        from .report import write_sets_report

        write_sets_report(out)
    return load_sets(out)


def relative_pose_of(obj: data3d.ObjectAnnotation) -> tuple[float, float, float] | None:
    """(Δpolar, Δazimuth, Δradius) of a generated view's object (`extra["relative_pose"]`), None when
    it has none. Three numbers, or (sets written before they were stored as numbers) a JSON string
    of them; a PoseError naming the key for anything else."""
    value = obj.extra.get("relative_pose")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise PoseError(f"extra.relative_pose: {value!r} is not three numbers") from None
    try:
        dp, da, dr = (float(x) for x in value)
    except (TypeError, ValueError):
        raise PoseError(f"extra.relative_pose: {value!r} is not three numbers") from None
    return dp, da, dr


def is_source_view(obj: data3d.ObjectAnnotation) -> bool:
    """Whether a generated view's object is its set's source (relative pose all zeros)."""
    return relative_pose_of(obj) == (0.0, 0.0, 0.0)


CYLINDER_KEYS = ("radius", "z_lo", "z_hi", "segments", "rows", "rings")  # pose.mesh.neural_cylinder's arguments


def load_sets(folder: str | os.PathLike) -> list[GeneratedSet]:
    """The sets of a folder written by `generate_sets` (a PoseError naming the file when it is not one)."""
    folder = Path(folder)
    summary = read_summary(folder)
    data3d.register_categories([summary["category"]])
    return [GeneratedSet(entry["id"], folder / entry["id"], list(data3d.load_records(folder / entry["id"])))
            for entry in summary["sets"]]


def read_summary(folder: str | os.PathLike) -> dict:
    """sets.json of a sets folder, its keys checked (a PoseError naming the file and the key otherwise)."""
    index = Path(folder) / "sets.json"
    if not index.is_file():
        raise PoseError("not a generated-sets folder (no sets.json)", folder)
    try:
        summary = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoseError(f"cannot be read as a sets index: {exc}", index) from exc

    def bad(key: str, wanted: str, value) -> PoseError:
        return PoseError(f"{key!r} must be {wanted}, got {value!r}"[:300], index)

    if not isinstance(summary, dict):
        raise bad("sets.json", "a mapping", summary)
    for key in ("category", "sets"):
        if key not in summary:
            raise PoseError(f"cannot be read as a sets index: no {key!r}", index)
    if not isinstance(summary["category"], str) or not summary["category"]:
        raise bad("category", "a category name", summary["category"])
    cyl = summary.get("cylinder", {"radius": 1.0, "z_lo": 0.0, "z_hi": 1.0})  # training needs it (pose.training)
    if not isinstance(cyl, dict) or not {"radius", "z_lo", "z_hi"} <= set(cyl) <= set(CYLINDER_KEYS) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (k not in ("segments", "rows", "rings") or isinstance(v, int)) for k, v in cyl.items()):
        raise bad("cylinder", f"a mapping of finite numbers {list(CYLINDER_KEYS)} (radius, z_lo, z_hi required)", cyl)
    if not (cyl["radius"] > 0 and cyl["z_hi"] > cyl["z_lo"] and 3 <= cyl.get("segments", 3) <= 720
            and 1 <= cyl.get("rows", 1) <= 1000 and 0 <= cyl.get("rings", 0) <= 1000):
        raise bad("cylinder", "radius > 0, z_hi > z_lo, segments in [3, 720], rows in [1, 1000], rings in [0, 1000]",
                  cyl)
    if not isinstance(summary["sets"], list) or not all(
            isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] and "/" not in e["id"]
            and e["id"] not in (".", "..") for e in summary["sets"]):
        raise bad("sets", "a list of {id: <set folder name>, ...}", summary["sets"])
    for key, kind, wanted in (("skipped", list, "a list"), ("relative_poses", list, "a list"),
                              ("synthesizer", dict, "a mapping")):
        if key in summary and not isinstance(summary[key], kind):
            raise bad(key, wanted, summary[key])
    elevation = summary.get("source_elevation", 0.0)
    if not isinstance(elevation, (int, float)) or isinstance(elevation, bool) or not math.isfinite(elevation):
        raise bad("source_elevation", "a finite number (radians)", elevation)
    return summary


def sources_from_records(records, meshes: Mapping[str, geom3d.Mesh] | None = None, category: str | None = None,
                         skipped: list | None = None) -> list[SetSource]:
    """Sources from data3d records (e.g. datagen output), their pose labels ignored except that the render
    synthesizers, which stand in for a generator, draw with the true viewpoint and mesh: `meshes` maps a
    record's `mesh_ref` to its mesh (None for Zero-1-to-3). One source per object of `category`.
    A record whose image cannot be read is skipped: {"source", "reason"} appended to `skipped` when
    given (else the AnnotationError is raised)."""
    out = []
    for r in records:
        try:
            image = (data3d.load_image(r.image_path).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        except data3d.AnnotationError as exc:
            if skipped is None:
                raise
            skipped.append({"source": str(r.image_path), "reason": str(exc)})
            log.warning("skipping %s: %s", r.image_path, exc)
            continue
        for j, obj in enumerate(r.objects):
            if category is not None and obj.category != category:
                continue
            mesh = None if meshes is None else meshes.get(obj.mesh_ref)
            vp = obj.viewpoint
            view = SourceView(image, mesh, dict(vp) if mesh is not None else None, name=f"{r.image_path}#{j}")
            out.append(SetSource(view, {k: vp[k] for k in ("focal", "viewport", "px", "py")}, tuple(obj.bbox),
                                 instance=obj.mesh_ref))
    return out
