"""BOP datasets from records (thodan/bop_toolkit docs/bop_datasets_format.md, the BOP-scenewise format).

Layout (units: millimetres, `mm_per_unit` of them per object unit):

    <out>/models/obj_NNNNNN.ply, models_info.json     the CADs the records use (where found)
    <out>/<split>/<scene>/rgb/IMID.png                 8-bit RGB
                         depth/IMID.png                16-bit, `depth_scale` in scene_camera.json gives mm
                         mask/IMID_GTID.png, mask_visib/IMID_GTID.png   0/255 (where the records have masks)
                         scene_camera.json, scene_gt.json, scene_gt_info.json
    <out>/aware3d_objects.json                          obj_id -> mesh_ref, the model's centring offset

Poses: BOP's `cam_R_m2c`, `cam_t_m2c` map model to camera in OpenCV axes, our cameras' convention, so
R is the record's and t = (t_record + R·c)·mm_per_unit, where c is the centre of the model's box:
BOP's model origin is the centre of its 3D box (format description, "Coordinate systems"), so the
model is written shifted by −c. Objects of one record whose cameras differ (PASCAL3D+ gives each object its own
principal point) become separate BOP images of the same picture, since `cam_K` is per image.
`bbox_obj`/`bbox_visib` are (x, y, w, h) with w = x_max − x_min, as the toolkit's `misc.calc_2d_bbox`
computes them from masks; without masks both are the record's box and the pixel counts and
`visib_fract` are −1 (unknown), unless the record knows its visible fraction.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from aware3d_utils import atomic_save
from geom3d import GeometryError

from ..errors import AnnotationError
from ..images import load_depth
from .common import ExportLog, copy_image, mask_bbox, mesh_ids, object_camera, object_masks, write_json, write_png

__all__ = ["write_bop", "IMAGES_PER_SCENE", "bop_box"]

IMAGES_PER_SCENE = 1000


def bop_box(x1, y1, x2, y2) -> list:
    """(x, y, w, h) as bop_toolkit_lib.misc.calc_2d_bbox: w = x2 − x1 (pixel indices)."""
    return [x1, y1, x2 - x1, y2 - y1]


def _ply_text(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> str:
    head = ["ply", "format ascii 1.0", "comment aware3d export, millimetres", f"element vertex {len(vertices)}",
            "property float x", "property float y", "property float z",
            "property float nx", "property float ny", "property float nz",
            f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    import io

    buf = io.StringIO()
    np.savetxt(buf, np.hstack([vertices, normals]), fmt="%.6f")
    np.savetxt(buf, np.hstack([np.full((len(faces), 1), 3), faces]).astype(np.int64), fmt="%d")
    return "\n".join(head) + "\n" + buf.getvalue()


def _diameter(vertices: np.ndarray) -> float:
    """The largest distance between two vertices (over the convex hull's vertices)."""
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    pts = vertices
    if len(pts) > 4:
        try:
            pts = pts[ConvexHull(pts).vertices]
        except Exception:  # flat or degenerate: every vertex
            pts = vertices
    return float(pdist(pts).max()) if len(pts) > 1 else 0.0


def _write_models(refs: dict[str, int], meshes: dict, out: Path, mm: float) -> tuple[dict, dict]:
    """models/obj_*.ply and models_info.json for the meshes found; returns (info, centre per obj_id)."""
    from aware3d_utils import atomic_write_text

    info, centres = {}, {}
    for ref, obj_id in refs.items():
        mesh = meshes.get(ref)
        if mesh is None:
            continue
        v = mesh.vertices.double().numpy()
        lo, hi = v.min(axis=0), v.max(axis=0)
        c = (lo + hi) / 2.0
        vm = (v - c) * mm
        normals = mesh.vertex_normals().double().numpy()
        atomic_write_text(out / "models" / f"obj_{obj_id:06d}.ply", _ply_text(vm, mesh.faces.numpy(), normals))
        size = (hi - lo) * mm
        info[str(obj_id)] = {"diameter": _diameter(vm), "min_x": float(-size[0] / 2), "min_y": float(-size[1] / 2),
                             "min_z": float(-size[2] / 2), "size_x": float(size[0]), "size_y": float(size[1]),
                             "size_z": float(size[2])}
        centres[obj_id] = c
    if info:
        write_json(out / "models" / "models_info.json", info)
    return info, centres


def _camera_groups(record) -> list[list[int]]:
    """Object indices grouped by identical intrinsics (one BOP image each)."""
    groups: dict[tuple, list[int]] = {}
    for j, obj in enumerate(record.objects):
        v = obj.viewpoint
        groups.setdefault((v.focal_pixels, v.px, v.py), []).append(j)
    return list(groups.values()) or [[]]


def write_bop(groups: dict, out: Path, log: ExportLog, *, cad_root=None, mm_per_unit: float = 1000.0) -> dict:
    from ..show import record_mesh

    mm = float(mm_per_unit)
    if not mm > 0:
        raise ValueError(f"export: mm_per_unit must be > 0, got {mm_per_unit!r}")
    refs = mesh_ids(groups)
    meshes, missing = {}, set()
    for recs in groups.values():
        for r in recs:
            for o in r.objects:
                ref = o.mesh_ref
                if ref in meshes or ref in missing:
                    continue
                try:
                    mesh = record_mesh(o, cad_root)
                except (GeometryError, OSError, ValueError) as exc:  # a broken CAD: the pose stays, without a model
                    log.skip("unreadable_model", AnnotationError(f"CAD {ref}: {exc}"))
                    mesh = None
                if mesh is None:
                    missing.add(ref)
                else:
                    meshes[ref] = mesh
    info, centres = _write_models(refs, meshes, out, mm)
    objects_doc = {str(i): {"mesh_ref": ref, "has_model": str(i) in info,
                            "centre_offset_mm": (centres[i] * mm).tolist() if i in centres else [0.0, 0.0, 0.0]}
                   for ref, i in refs.items()}
    write_json(out / "aware3d_objects.json", {"mm_per_unit": mm, "objects": objects_doc})
    summary = {}
    for split, records in groups.items():
        scenes: dict[int, dict] = {}
        n_images = n_objects = 0
        for record in records:
            for members in _camera_groups(record):
                scene_id, im_id = divmod(n_images, IMAGES_PER_SCENE)
                scene_dir = out / split / f"{scene_id:06d}"
                try:
                    entry = _image_entry(record, members, refs, centres, mm, scene_dir, im_id, log.images)
                except AnnotationError as exc:
                    log.skip("bad_record", exc if exc.path else exc.with_path(record.image_path))
                    continue
                scene = scenes.setdefault(scene_id, {"camera": {}, "gt": {}, "info": {}})
                for key in ("camera", "gt", "info"):
                    scene[key][str(im_id)] = entry[key]
                n_images += 1
                n_objects += len(members)
        for scene_id, scene in scenes.items():
            scene_dir = out / split / f"{scene_id:06d}"
            write_json(scene_dir / "scene_camera.json", scene["camera"])
            write_json(scene_dir / "scene_gt.json", scene["gt"])
            write_json(scene_dir / "scene_gt_info.json", scene["info"])
        summary[split] = {"images": n_images, "objects": n_objects, "scenes": len(scenes)}
    summary["models"] = {"written": len(info), "missing": sorted(missing)}
    return summary


def _image_entry(record, members, refs, centres, mm, scene_dir: Path, im_id: int, images: bool) -> dict:
    """Write one BOP image (rgb, depth, masks) and return its scene_camera / scene_gt / scene_gt_info entries."""
    K = object_camera(record.objects[members[0]])[0] if members else None
    gts, infos, masks = [], [], []
    for j in members:
        obj = record.objects[j]
        _, R, t = object_camera(obj)
        obj_id = refs[obj.mesh_ref]
        c = centres.get(obj_id, np.zeros(3))
        gts.append({"obj_id": obj_id, "cam_R_m2c": R.reshape(-1).tolist(), "cam_t_m2c": ((t + R @ c) * mm).tolist()})
        full, visible = object_masks(record, j)
        if full is not None:
            fb, vb = mask_bbox(full), mask_bbox(visible)
            n_all, n_vis = int(full.sum()), int(visible.sum())
            infos.append({"bbox_obj": bop_box(*fb) if vb is not None else [-1, -1, -1, -1],
                          "bbox_visib": bop_box(*vb) if vb is not None else [-1, -1, -1, -1],
                          "px_count_all": n_all, "px_count_visib": n_vis, "px_count_valid": -1,
                          "visib_fract": n_vis / n_all if n_all else 0.0})
            masks.append((full, visible))
        else:
            box = bop_box(*obj.bbox)
            frac = obj.visible_fraction
            infos.append({"bbox_obj": box, "bbox_visib": box, "px_count_all": -1, "px_count_visib": -1,
                          "px_count_valid": -1, "visib_fract": -1.0 if frac is None else float(frac)})
            masks.append(None)
    camera = {"cam_K": (K if K is not None else np.eye(3)).reshape(-1).tolist(), "depth_scale": 1.0}
    depth_path = record.extra.get("depth_path") if len(record.objects) == 1 else None
    if depth_path:  # checked (16-bit, the record's size, a positive scale) before anything is written
        scale = record.extra.get("depth_scale")
        depth = load_depth(depth_path, scale if scale is not None else float("nan"), record.image_size)
        camera["depth_scale"] = float(scale) * mm
        valid = depth.numpy() > 0
        for info, m in zip(infos, masks):
            if m is not None:
                info["px_count_valid"] = int((m[0] & valid).sum())
    copy_image(record.image_path, scene_dir / "rgb" / f"{im_id:06d}", keep_jpeg=False, enabled=images,
               size=record.image_size)
    if depth_path:  # the 16-bit levels unchanged; depth_scale turns them into mm
        src = Path(depth_path)
        atomic_save(scene_dir / "depth" / f"{im_id:06d}.png", lambda tmp: shutil.copyfile(src, tmp))
    for gt_id, m in enumerate(masks):
        if m is not None:
            write_png(scene_dir / "mask" / f"{im_id:06d}_{gt_id:06d}.png", m[0].astype(np.uint8) * 255)
            write_png(scene_dir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png", m[1].astype(np.uint8) * 255)
    return {"camera": camera, "gt": gts, "info": infos}
