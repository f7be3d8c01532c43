"""One record drawn with its annotation, and the one box / CAD overlay drawer every picture uses.

    image = draw_record(record, cad_root="PASCAL3D+_release1.1/CAD")   # (H, W, 3) uint8 RGB

Each object: its bbox, its CAD model (or its box) projected with the record's own camera, and the
object axes (x red, y green, z blue). A wrong annotation shows at a glance: the projected model
misses the object. The mesh is found from the record's CAD reference (`record_mesh`):
`<cad_root>/<category>/NN.off` for CAD collections (pascal3d, imagenet3d, objectnet3d), the
procedural library for "procedural" records.

The box rule (`object_bounds`), the same for every drawer (`aware3d data show`, datagen's preview,
the nemo / pose reports, the 3D viewer, the KITTI export): the mesh's axis-aligned box when the mesh
is known; else the record's `extra["mesh_bounds"]` ([[x, y, z] low, [x, y, z] high]; datagen writes
it; records written before it became a list hold it as a JSON string, read the same); else none.
No box is made up: without one only the object axes are drawn, 0.15 × the object's distance long
(with a box, 0.6 × its longest side).

The drawing parts (`box_corners`, `draw_box`, `draw_axes`) take any camera and an image `scale`
(the picture is `scale` times the camera's image, pixel edges to edges: u' = scale·(u + ½) − ½).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from geom3d import Mesh, MeshError

from .errors import AnnotationError
from .images import load_image
from .record import ImageRecord, ObjectAnnotation, parse_mesh_ref

__all__ = ["record_mesh", "object_bounds", "box_corners", "draw_box", "draw_axes", "draw_object", "draw_record",
           "find_record", "CAD_COLLECTIONS", "BOX_EDGES", "AXIS_COLORS"]

CAD_COLLECTIONS = ("pascal3d", "imagenet3d", "objectnet3d")
# corner i of `box_corners` takes x from the high side when i & 4, y when i & 2, z when i & 1
BOX_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7))
AXIS_COLORS = ((230, 30, 30), (30, 200, 30), (40, 90, 255))  # x red, y green, z blue (RGB)
BOX_COLOR, MESH_COLOR = (255, 230, 0), (0, 200, 255)


def record_mesh(obj: ObjectAnnotation, cad_root=None) -> Mesh | None:
    """The mesh an object's CAD reference names, in the object frame, or None when it cannot be
    found here (no `cad_root` for a CAD collection, a ShapeNet/Objaverse model)."""
    source, category, ident = parse_mesh_ref(obj.mesh_ref)
    if source in CAD_COLLECTIONS and cad_root is not None and obj.cad_index is not None:
        from .assets import cad_path

        path = cad_path(cad_root, category, obj.cad_index)
        return Mesh.load(path) if path.is_file() else None
    if source == "procedural" and ident.isdigit():
        return _procedural_mesh(category, int(ident))
    return None


@functools.lru_cache(maxsize=16)
def _procedural_mesh(category: str, seed: int) -> Mesh:
    # meshes are immutable; a records folder shows the same few assets again and again
    from . import procedural

    return procedural.make(procedural.canonical_category(category), seed)


def object_bounds(obj: ObjectAnnotation, mesh: Mesh | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) corners (3,) float64 of the object's box in the object frame, by the module's box
    rule: the mesh's box when `mesh` is given, else `extra["mesh_bounds"]` (a list, or the JSON
    string of records written before it became one), else None (unknown: draw no box)."""
    if mesh is not None:
        lo, hi = mesh.bounds()
        return lo.double().numpy(), hi.double().numpy()
    bounds = obj.extra.get("mesh_bounds")
    if isinstance(bounds, str):
        try:
            bounds = json.loads(bounds)
        except ValueError:
            return None
    try:
        lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in bounds)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if np.isfinite(lo).all() and np.isfinite(hi).all() else None


def box_corners(lo, hi) -> np.ndarray:
    """(8, 3) float64 corners of the axis-aligned box from `lo` to `hi` (the order `BOX_EDGES` joins)."""
    lo, hi = (np.asarray(v, dtype=np.float64).reshape(3) for v in (lo, hi))
    return np.array([[(hi if i & 4 else lo)[0], (hi if i & 2 else lo)[1], (hi if i & 1 else lo)[2]] for i in range(8)])


def _project(cameras, points, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates × 16 (int64, OpenCV's 4 fractional bits) of `points` in the picture `scale`
    times the camera's image, and their depths."""
    uv, z = cameras.project(torch.as_tensor(np.asarray(points, dtype=np.float64)).to(cameras.dtype),
                            return_depth=True)
    uv = (uv.double().numpy() + 0.5) * scale - 0.5
    return np.round(uv * 16).astype(np.int64), z.double().numpy()


def draw_box(image: np.ndarray, cameras, corners, color=BOX_COLOR, thickness: int = 1,
             scale: float = 1.0) -> bool:
    """Draw the box with `corners` (8, 3) (`box_corners`' order) as projected by `cameras` (one
    camera) on `image` (H, W, 3) uint8 RGB, in place. Nothing is drawn when a corner lies behind the
    camera; returns whether it was drawn."""
    import cv2

    uv, z = _project(cameras, corners, scale)
    if not (z > 0).all():
        return False
    for a, b in BOX_EDGES:
        cv2.line(image, tuple(map(int, uv[a])), tuple(map(int, uv[b])), tuple(color), thickness, cv2.LINE_AA, shift=4)
    return True


def draw_axes(image: np.ndarray, cameras, length: float, colors=AXIS_COLORS, thickness: int = 2,
              scale: float = 1.0) -> bool:
    """Draw the object frame's x, y, z axes (`length` long, from the origin) as arrows in `colors`
    on `image`, in place, when all of them lie in front of the camera; returns whether drawn."""
    import cv2

    uv, z = _project(cameras, [[0, 0, 0], [length, 0, 0], [0, length, 0], [0, 0, length]], scale)
    if not (z > 0).all():
        return False
    for k, color in enumerate(colors):
        cv2.arrowedLine(image, tuple(map(int, uv[0])), tuple(map(int, uv[k + 1])), tuple(color), thickness,
                        cv2.LINE_AA, shift=4, tipLength=0.15)
    return True


def _axes_length(obj: ObjectAnnotation, bounds) -> float:
    """The drawn axes' length: 0.6 × the box's longest side, 0.15 × the distance without a box."""
    return 0.6 * float(np.max(bounds[1] - bounds[0])) if bounds is not None else 0.15 * obj.viewpoint.distance


def draw_object(image: np.ndarray, obj: ObjectAnnotation, mesh: Mesh | None = None, *, scale: float = 1.0,
                label: bool = True) -> np.ndarray:
    """Draw one object's annotation on an RGB image (H, W, 3) uint8, `scale` times the object's
    image size: the projected mesh (filled at 40%, outlined), else the box (`object_bounds`), the
    axes, the bbox and (with `label`) the category and viewpoint in words. Returns a new image."""
    import cv2

    out = image.copy()
    size = obj.image_size or tuple(round(s / scale) for s in image.shape[:2])
    cam = obj.viewpoint.to_cameras(size, dtype=torch.float64)
    bounds = object_bounds(obj, mesh)
    if mesh is not None:
        uv, z = _project(cam, mesh.vertices.double().numpy(), scale)
        faces = mesh.faces.numpy()
        front = faces[(z[faces] > 1e-6).all(axis=1)]
        # keep coordinates inside OpenCV's int range: clip far outliers (a vertex near the camera plane)
        tris = np.clip(uv[front], -(1 << 24), 1 << 24).astype(np.int32)
        if len(tris):
            overlay = out.copy()
            cv2.fillPoly(overlay, list(tris), MESH_COLOR, lineType=cv2.LINE_AA, shift=4)
            silhouette = np.zeros(out.shape[:2], np.uint8)
            cv2.fillPoly(silhouette, list(tris), 255, shift=4)
            out = cv2.addWeighted(overlay, 0.4, out, 0.6, 0)
            contours, _ = cv2.findContours(silhouette, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, MESH_COLOR, 1, cv2.LINE_AA)
    elif bounds is not None:
        draw_box(out, cam, box_corners(*bounds), scale=scale)
    draw_axes(out, cam, _axes_length(obj, bounds), scale=scale)
    x1, y1, x2, y2 = (int(round((v + 0.5) * scale - 0.5)) for v in obj.bbox)
    cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 255), 1)
    if label:
        vp = obj.viewpoint
        text = (f"{obj.category} az {math.degrees(vp.azimuth) % 360:.0f} el {math.degrees(vp.elevation):.0f} "
                f"th {math.degrees(vp.theta):.0f} d {vp.distance:.2f}")
        cv2.putText(out, text, (max(x1, 2), max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def _scaled(obj: ObjectAnnotation, k: int) -> ObjectAnnotation:
    """The annotation of the image enlarged k times (u' = k(u + ½) − ½)."""
    box = tuple(k * (v + 0.5) - 0.5 for v in obj.bbox)
    h, w = obj.image_size
    return replace(obj, viewpoint=obj.viewpoint.resized(k), bbox=box, image_size=(h * k, w * k))


def draw_record(record: ImageRecord, cad_root=None, object_index: int | None = None,
                min_size: int = 384) -> np.ndarray:
    """The record's image (H, W, 3) uint8 RGB with every object's annotation drawn (or only
    `object_index`'s), enlarged by a whole factor (nearest) until its longer side is at least
    `min_size`. A mesh that cannot be loaded falls back to the cuboid."""
    import cv2

    image = (load_image(record.image_path).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    if image.shape[:2] != record.image_size:
        raise AnnotationError(f"image is {image.shape[:2]} (H, W), the record says {record.image_size}",
                              record.image_path, "image_size")
    k = max(1, math.ceil(min_size / max(record.image_size)))
    if k > 1:
        image = cv2.resize(image, (image.shape[1] * k, image.shape[0] * k), interpolation=cv2.INTER_NEAREST)
    objects = record.objects if object_index is None else (record.objects[object_index],)
    for obj in objects:
        if k > 1:
            obj = _scaled(obj, k)
        try:
            mesh = record_mesh(obj, cad_root)
        except (MeshError, OSError, ValueError):
            mesh = None
        image = draw_object(image, obj, mesh)
    return image


def find_record(records: Sequence[ImageRecord], ident: str | int | None = None) -> tuple[int, ImageRecord]:
    """(index, record) for `ident`: a position in the list, a datagen sample id
    (`extra["sample_id"]`), an image file name or its stem; None: the first record."""
    if not records:
        raise AnnotationError("holds no records", field="records")
    if ident is None:
        return 0, records[0]
    text = str(ident)
    for i, r in enumerate(records):
        if text in (str(r.extra.get("sample_id", "")), r.image_path.name, r.image_path.stem):
            return i, r
    if text.lstrip("-").isdigit() and -len(records) <= int(text) < len(records):
        i = int(text) % len(records)
        return i, records[i]
    raise AnnotationError(f"no record has the id {text!r} (a sample id, an image name or an index below "
                          f"{len(records)})", field="id")
