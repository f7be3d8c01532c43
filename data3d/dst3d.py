"""3D-DST's released annotations (wufeim/DST3D: scripts/blender_render.py, dst3d/datasets/dst3d_pose.py).

Release layout (one folder per model, per ImageNet or ShapeNet synset):
    <root>/<synset>/<model id>/image_render/NNN.png    Blender render, RGBA on a transparent film
    <root>/<synset>/<model id>/annotation/NNN.npy      a pickled dict per image (keys below)
    <root>/<synset>/<model id>/depth/NNN.exr           (not read)
    <root>/<synset>/<model id>/<generated>/NNN_00.png  ControlNet images, when generated
The annotation dict: theta, phi (radians), dist, camera_rotation, principal ([256, 256] for the
512 × 512 render, pixel-edge coordinates), source ('shapenet' | 'objaverse'), shape_id,
rendering_scale, rendering_offset, azimuth / elevation (the model's offsets, degrees, already added
to theta / phi), pose_sampling, strength, matrix_world, modelview_matrix, projection_matrix,
focal_length (mm), sensor_width, sensor_height (mm).

Two quirks of that format, converted here:
1. **Azimuth is Blender's θ, 90° from PASCAL3D+'s.** The camera sits at
   d·(sin φ cos θ, sin φ sin θ, cos φ) in Blender's world; equating camera centres with the
   PASCAL3D+ formula gives a = θ + π/2 and e = π/2 − φ (`geom3d.blender_to_viewpoint`). 3D-DST's own
   loader uses θ as the azimuth label and π/2 − φ as the elevation.
2. **ShapeNet models face Blender's +Y.** Blender's OBJ importer turns the file's +Y up into +Z and
   its −Z into +Y, and ShapeNet v2 models face −Z: after import their front points at +Y, where
   glTF/Objaverse models (front +Z, imported to −Y) face −Y like the PASCAL3D+ frame. So a ShapeNet
   model's "front" sampling arc (presets 2 and 4, θ in [−195°, 15°]) looks at its back, and its
   object frame is Blender's turned by π about z: a = θ + π/2 + π.
Each model is centred and scaled to longest side 1 before rendering (normalize_scene), as our
asset sources do by default, so `dist` is in the same units. The bbox comes from the render's alpha.
Labels describe the model as imported (the per-model azimuth/elevation offsets are kept in `extra`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from geom3d import blender_to_viewpoint, resize_coordinate

from .annotation_files import numeric_field
from .categories import SHAPENET_SYNSETS, normalize_category, register_categories
from .errors import AnnotationError, dataset_root
from .images import read_image_size
from .record import ImageRecord, ObjectAnnotation, RecordList, Viewpoint

__all__ = ["load_dst3d", "dst3d_viewpoint", "DST3D_VIEWPORT"]

DST3D_VIEWPORT = 3000.0  # focal is stored as fx / viewport, as datagen does
# Blender world -> object frame, per source: ShapeNet models face +Y after Blender's OBJ import
_BLENDER_TO_OBJECT = {"shapenet": np.diag([-1.0, -1.0, 1.0]), "objaverse": np.eye(3)}
_ROTATION_TOLERANCE = 1e-4


def _value(annot: Mapping, key: str, path, size: int = 1):
    value = numeric_field(annot, key, path, size)
    if size > 1 and value.size != size:
        raise AnnotationError(f"must hold {size} numbers, got {value.size}", path, key)
    return value


def dst3d_viewpoint(annot: Mapping, image_size, path=None) -> Viewpoint:
    """Our viewpoint of one 3D-DST annotation dict for an image of `image_size` (H, W).

    The intrinsics are Blender's: fx = focal_length / sensor_width · W_render (horizontal sensor
    fit, W_render = 2 · principal[0]), resampled to the image's width; the principal point is the
    image centre. With `matrix_world`, the camera it holds must be the one θ, φ, dist describe
    (else AnnotationError on field 'matrix_world').
    """
    path = Path(path) if path is not None else None
    source = str(annot.get("source", "objaverse"))
    if source not in _BLENDER_TO_OBJECT:
        raise AnnotationError(f"must be 'shapenet' or 'objaverse', got {source!r}", path, "source")
    theta, phi, dist = (_value(annot, k, path) for k in ("theta", "phi", "dist"))
    if not dist > 0:
        raise AnnotationError(f"must be > 0, got {dist:g}", path, "dist")
    roll = _value(annot, "camera_rotation", path) if "camera_rotation" in annot else 0.0
    exact = [torch.tensor(v, dtype=torch.float64) for v in (theta, phi, dist, roll)]  # not float32's 1e-7
    vp = {k: float(v) for k, v in blender_to_viewpoint(*exact).items()}
    P = _BLENDER_TO_OBJECT[source]
    if source == "shapenet":
        vp["azimuth"] = (vp["azimuth"] + math.pi) % (2 * math.pi)
    h, w = image_size
    principal = _value(annot, "principal", path, 2)
    render_w = 2.0 * principal[0]
    lens, sensor = _value(annot, "focal_length", path), _value(annot, "sensor_width", path)
    if not (lens > 0 and sensor > 0 and render_w > 0):
        raise AnnotationError(f"focal_length, sensor_width and principal must be > 0, got {lens}, {sensor}, "
                              f"{principal.tolist()}", path, "focal_length")
    fx = lens / sensor * render_w * (w / render_w)
    out = Viewpoint(azimuth=vp["azimuth"], elevation=vp["elevation"], theta=vp["theta"], distance=dist,
                    focal=fx / DST3D_VIEWPORT, viewport=DST3D_VIEWPORT, px=(w - 1) / 2.0, py=(h - 1) / 2.0)
    if "matrix_world" in annot:
        M = _value(annot, "matrix_world", path, 16).reshape(4, 4)
        R_cv = np.diag([1.0, -1.0, -1.0]) @ M[:3, :3].T @ P.T  # Blender camera: −Z forward, +Y up
        ours = out.rotation().double().numpy()
        centre = P @ M[:3, 3]
        expected = -ours.T @ np.array([0.0, 0.0, dist])
        if np.abs(R_cv - ours).max() > _ROTATION_TOLERANCE or np.abs(centre - expected).max() > 1e-4 * dist:
            raise AnnotationError("the camera it holds is not the one theta, phi, dist and camera_rotation "
                                  "describe", path, "matrix_world")
    return out


def _alpha_bbox(render: Path, scale_x: float, scale_y: float):
    from PIL import Image

    try:
        with Image.open(render) as im:
            if "A" not in im.getbands():
                return None
            alpha = np.asarray(im.getchannel("A"))
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"cannot be read as an image: {exc}", render) from None
    ys, xs = np.nonzero(alpha > 0)
    if xs.size == 0:
        return None
    # pixel-centre coordinates under the resampling u' = s(u + ½) − ½
    return (resize_coordinate(float(xs.min()), scale_x), resize_coordinate(float(ys.min()), scale_y),
            resize_coordinate(float(xs.max()), scale_x), resize_coordinate(float(ys.max()), scale_y))


def _read_annotation(path: Path) -> dict:
    try:
        value = np.load(path, allow_pickle=True)
    except Exception as exc:  # EOFError, UnpicklingError, ValueError ... for bad files
        raise AnnotationError(f"cannot be read as a .npy file: {type(exc).__name__}: {exc}", path) from None
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        value = value.item()
    if not isinstance(value, dict):
        raise AnnotationError(f"must hold a dict, got {type(value).__name__}", path)
    return value


def load_dst3d(root, image_folder: str = "image_render", image_suffix: str = "",
               categories: Mapping[str, str] | Sequence[str] | None = None, strict: bool = False) -> RecordList:
    """Records of a 3D-DST release folder (see the module docstring), converted to our convention.

    image_folder / image_suffix: which images the records point to: the renders ("image_render", "")
        or the generated ones (e.g. "image_generated", "_00" for `NNN_00.png`).
    categories: synset folders to read (a list), or {synset folder: category name}; default every
        folder, named by the ShapeNet synset table when it knows the id, else by the folder name.
    Images without a render alpha (no bbox) are skipped ("no_bbox"); missing files "missing_file";
    a malformed annotation raises (strict=True) or is skipped ("bad_annotation", in `.problems`).
    """
    root = dataset_root(root, "a 3D-DST release")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if isinstance(categories, Mapping):
        names = {k: normalize_category(v) for k, v in categories.items()}
    else:
        chosen = folders if categories is None else list(categories)
        names = {f: normalize_category(SHAPENET_SYNSETS.get(f, f).split(",")[0]) for f in chosen}
    missing = [f for f in names if not (root / f).is_dir()]
    if missing:
        raise AnnotationError(f"has no synset folder(s) {missing}", root)
    register_categories(set(names.values()))
    out = RecordList()
    for synset, category in names.items():
        for model_dir in sorted(p for p in (root / synset).iterdir() if p.is_dir()):
            for ann_path in sorted((model_dir / "annotation").glob("*.npy")):
                image = model_dir / image_folder / f"{ann_path.stem}{image_suffix}.png"
                render = model_dir / "image_render" / f"{ann_path.stem}.png"
                if not image.is_file() or not render.is_file():
                    out.skip("missing_file")
                    continue
                try:
                    record = _record(ann_path, image, render, category, model_dir.name)
                except AnnotationError as exc:
                    if strict:
                        raise
                    out.skip("bad_annotation", exc)
                    continue
                if record is None:
                    out.skip("no_bbox", f"{render}: no alpha channel or an empty one")
                else:
                    out.append(record)
    return out


def _record(ann_path: Path, image: Path, render: Path, category: str, model_id: str) -> ImageRecord | None:
    annot = _read_annotation(ann_path)
    h, w = read_image_size(image)
    rh, rw = read_image_size(render)
    box = _alpha_bbox(render, w / rw, h / rh)
    if box is None:
        return None
    vp = dst3d_viewpoint(annot, (h, w), ann_path)
    extra = {"model_dir": model_id}
    for key in ("azimuth", "elevation", "pose_sampling", "strength"):
        if key in annot:
            extra[f"dst3d_{key}"] = _value(annot, key, ann_path)
    obj = ObjectAnnotation(category=category, bbox=box, viewpoint=vp, cad_source=str(annot.get("source", "objaverse")),
                           cad_id=str(annot.get("shape_id", model_id)),
                           truncated=bool(box[0] <= 0 or box[1] <= 0 or box[2] >= w - 1 or box[3] >= h - 1),
                           extra=extra)
    return ImageRecord(image_path=image, image_size=(h, w), objects=(obj,), annotation_path=ann_path)
