"""One record drawn with its annotation: the image, each object's bbox, its CAD model (or the mesh
bounds' cuboid) projected with the record's own camera, and the object axes (x red, y green, z blue).

    image = draw_record(record, cad_root="PASCAL3D+_release1.1/CAD")   # (H, W, 3) uint8 RGB

A wrong annotation shows at a glance: the projected model misses the object. The mesh is found from
the record's CAD reference: `<cad_root>/<category>/NN.off` for CAD collections (pascal3d, imagenet3d,
objectnet3d), the procedural library for "procedural" records; otherwise the cuboid of
`extra["mesh_bounds"]` (datagen writes it) is drawn, else the axes only.
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

__all__ = ["record_mesh", "draw_object", "draw_record", "find_record", "CAD_COLLECTIONS"]

CAD_COLLECTIONS = ("pascal3d", "imagenet3d", "objectnet3d")
_CUBE_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4), (0, 4), (1, 5), (2, 6), (3, 7))


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


def _bounds(obj: ObjectAnnotation, mesh: Mesh | None):
    if mesh is not None:
        lo, hi = mesh.bounds()
        return lo.double().numpy(), hi.double().numpy()
    bounds = obj.extra.get("mesh_bounds")
    if isinstance(bounds, str):  # datagen wrote it as a JSON string before it became a list
        try:
            bounds = json.loads(bounds)
        except ValueError:
            bounds = None
    try:
        lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in bounds)
        return lo, hi
    except (TypeError, ValueError):
        return None


def draw_object(image: np.ndarray, obj: ObjectAnnotation, mesh: Mesh | None = None) -> np.ndarray:
    """Draw one object's annotation on an RGB image (H, W, 3) uint8 of the object's image size:
    the projected mesh (filled at 40%, outlined), else the bounds' cuboid, the axes and the bbox."""
    import cv2

    out = image.copy()
    cam = obj.viewpoint.to_cameras(obj.image_size or image.shape[:2], dtype=torch.float64)

    def project(points: np.ndarray):
        uv, z = cam.project(torch.from_numpy(np.asarray(points, dtype=np.float64)), return_depth=True)
        return np.round(uv.numpy() * 16).astype(np.int64), z.numpy()  # 4 bits of sub-pixel precision

    bounds = _bounds(obj, mesh)
    if mesh is not None:
        uv, z = project(mesh.vertices.double().numpy())
        faces = mesh.faces.numpy()
        front = faces[(z[faces] > 1e-6).all(axis=1)]
        # keep coordinates inside OpenCV's int range: clip far outliers (a vertex near the camera plane)
        tris = np.clip(uv[front], -(1 << 24), 1 << 24).astype(np.int32)
        if len(tris):
            overlay = out.copy()
            cv2.fillPoly(overlay, list(tris), (0, 200, 255), lineType=cv2.LINE_AA, shift=4)
            silhouette = np.zeros(out.shape[:2], np.uint8)
            cv2.fillPoly(silhouette, list(tris), 255, shift=4)
            out = cv2.addWeighted(overlay, 0.4, out, 0.6, 0)
            contours, _ = cv2.findContours(silhouette, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, (0, 200, 255), 1, cv2.LINE_AA)
    elif bounds is not None:
        lo, hi = bounds
        corners = np.array([[x, y, zz] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for zz in (lo[2], hi[2])])
        uv, z = project(corners)
        if (z > 0).all():
            for a, b in _CUBE_EDGES:
                cv2.line(out, tuple(map(int, uv[a])), tuple(map(int, uv[b])), (255, 230, 0), 1, cv2.LINE_AA, shift=4)
    length = 0.6 * float(np.max(bounds[1] - bounds[0])) if bounds is not None else 0.15 * obj.viewpoint.distance
    uv, z = project(np.array([[0, 0, 0], [length, 0, 0], [0, length, 0], [0, 0, length]], dtype=np.float64))
    if (z > 0).all():
        for k, colour in enumerate(((230, 30, 30), (30, 200, 30), (40, 90, 255))):
            cv2.arrowedLine(out, tuple(map(int, uv[0])), tuple(map(int, uv[k + 1])), colour, 2, cv2.LINE_AA,
                            shift=4, tipLength=0.15)
    x1, y1, x2, y2 = (int(round(v)) for v in obj.bbox)
    cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 255), 1)
    vp = obj.viewpoint
    label = (f"{obj.category} az {math.degrees(vp.azimuth) % 360:.0f} el {math.degrees(vp.elevation):.0f} "
             f"th {math.degrees(vp.theta):.0f} d {vp.distance:.2f}")
    cv2.putText(out, label, (max(x1, 2), max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
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
