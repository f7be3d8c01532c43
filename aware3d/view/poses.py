"""A nemo / pose evaluation folder in 3D (what `nemo.evaluate` writes): per example, seen from the
image's camera, the image and the fitted mesh at the true pose (green) and at the estimate (red).

The world is the example's camera frame (OpenCV: x right, y down, z forward; the camera at the
origin). The image stands at twice the object's distance, sized so that it fills the camera's field
of view exactly (from the true intrinsics), so looking from the origin the meshes lie over the image
where they project. Meshes: the method's fitted mesh (meshes.npz, its mesh bank), else the CAD of the
record's `mesh_ref` when data3d finds it, else a unit cube. Dropdowns choose the method and the
example; an estimate without distance (the 2D baseline's) is drawn at the true distance.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from .common import ViewCamera, load_thumbnail, matrix_to_wxyz, vertical_fov

__all__ = ["read_predictions", "build_poses_scene", "viewpoint_pose"]

TRUE_COLOUR, ESTIMATE_COLOUR = (40, 200, 60), (220, 40, 40)
NEEDED = ("method", "image", "category", "truth", "image_viewpoint")


VIEWPOINT_KEYS = ("azimuth", "elevation", "theta", "distance", "focal", "viewport", "px", "py")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _row_problem(row) -> str | None:
    """What makes a predictions.jsonl row undrawable (wrong types; the missing keys are said before), or None."""
    for key in ("method", "image", "category"):
        if not isinstance(row[key], str):
            return f"'{key}' must be a string, got {row[key]!r}"
    for key in ("truth", "image_viewpoint"):
        vp = row[key]
        if not isinstance(vp, dict):
            return f"'{key}' must be a viewpoint mapping, got {vp!r}"
        for name in VIEWPOINT_KEYS:
            value = vp.get(name)
            if key == "image_viewpoint" and name == "distance" and (value is None or _number(value)):
                continue  # an estimate without distance (the 2D baseline's) is drawn at the true distance
            if not (_number(value) and math.isfinite(value)):
                return f"'{key}.{name}' must be a finite number, got {value!r}"
    return None


def read_predictions(folder: Path) -> list[dict]:
    """The rows of predictions.jsonl that a viewer can draw; ValueError naming the file otherwise."""
    file = folder / "predictions.jsonl"
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: cannot be read as text ({getattr(exc, 'strerror', None) or exc})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{file}: line {n} is not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{file}: line {n} is not a JSON object")
        missing = [k for k in NEEDED if k not in row]
        if missing:
            raise ValueError(f"{file}: line {n} has no {', '.join(missing)} (written by an older aware3d; "
                             f"run the evaluation again)")
        problem = _row_problem(row)
        if problem:
            raise ValueError(f"{file}: line {n}: {problem}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{file}: holds no predictions")
    return rows


def viewpoint_pose(vp: dict, image_size):
    """(K, R, t) float64 numpy of a viewpoint mapping for an image (H, W)."""
    import geom3d

    cam = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                      focal=vp["focal"], viewport=vp["viewport"], principal=(vp["px"], vp["py"]),
                                      image_size=image_size)
    return cam.K.double().numpy(), cam.R.double().numpy(), cam.t.double().numpy()


class _Meshes:
    def __init__(self, folder: Path):
        file = folder / "meshes.npz"
        try:
            self.arrays = dict(np.load(file)) if file.is_file() else {}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{file}: cannot be read as .npz ({exc})") from None
        self.cache: dict = {}

    def __call__(self, method: str, row: dict):
        """(vertices, faces, what)"""
        key = f"{method}/{row['category']}"
        if f"{key}/vertices" in self.arrays:
            return self.arrays[f"{key}/vertices"], self.arrays[f"{key}/faces"], "fitted mesh"
        for other in sorted(k for k in self.arrays if k.endswith(f"/{row['category']}/vertices")):
            return self.arrays[other], self.arrays[other.replace("/vertices", "/faces")], \
                f"the {other.split('/')[0]} mesh"
        ref = row.get("mesh_ref")
        if ref:
            if ref not in self.cache:
                self.cache[ref] = _lookup(ref)
            if self.cache[ref] is not None:
                m = self.cache[ref]
                return m.vertices.float().numpy(), m.faces.numpy(), f"CAD {ref}"
        import trimesh

        box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
        return np.asarray(box.vertices, np.float32), np.asarray(box.faces), "unit cube (no mesh found)"


def _lookup(ref: str):
    """A mesh data3d finds for a mesh reference without a records folder (procedural models)."""
    import data3d
    from data3d.show import record_mesh

    try:
        source, category, ident = data3d.parse_mesh_ref(ref)
        data3d.register_categories([category])
        obj = data3d.ObjectAnnotation(category=category, bbox=(0, 0, 1, 1),
                                      viewpoint={"azimuth": 0, "elevation": 0, "theta": 0, "distance": 1,
                                                 "px": 0, "py": 0},
                                      cad_source=source or None, cad_id=f"{category}/{ident}" if ident else None)
        return record_mesh(obj)
    except (OSError, ValueError):
        return None


def build_poses_scene(server, folder: str | Path, *, method: str | None = None, example: int = 0,
                      image_side: int = 640):
    """Fill `server` with one example at a time and the method / example dropdowns; returns
    (home ViewCamera of the first example, summary lines, controls: the dropdowns and the current meshes)."""
    folder = Path(folder)
    rows = read_predictions(folder)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if method is not None and method not in methods:
        raise ValueError(f"{folder / 'predictions.jsonl'}: no method {method!r}; it holds {', '.join(methods)}")
    method = method or methods[0]
    by_method = {m: [r for r in rows if r["method"] == m] for m in methods}
    if not 0 <= example < len(by_method[method]):
        raise ValueError(f"--example {example}: {method} has examples 0 to {len(by_method[method]) - 1}")
    meshes = _Meshes(folder)
    scene, gui = server.scene, server.gui
    scene.set_up_direction((0.0, -1.0, 0.0))
    handles: list = []
    state: dict = {}

    def label(i: int, r: dict) -> str:
        err = r.get("error")
        err = f"{math.degrees(err):.1f}°" if isinstance(err, (int, float)) and math.isfinite(err) else "?"
        return f"{i}: {r['category']} {err} {r.get('split', '')} {Path(r['image']).name}"

    def show(m: str, i: int) -> ViewCamera:
        for h in handles:
            h.remove()
        handles.clear()
        row = by_method[m][i]
        image = load_thumbnail(row["image"], image_side)
        import cv2

        try:
            full = cv2.imread(row["image"], cv2.IMREAD_UNCHANGED)
        except cv2.error:  # OpenCV's size limit (a header claiming too many pixels)
            full = None
        if full is None:
            raise ValueError(f"{row['image']}: cannot be read as an image")
        size = full.shape[:2]
        truth = row["truth"]
        est = dict(row["image_viewpoint"])
        if est.get("distance") is None or not math.isfinite(float(est["distance"])):
            est.update(distance=truth["distance"])
        K, R_gt, t_gt = viewpoint_pose(truth, size)
        _, R_est, t_est = viewpoint_pose(est, size)
        h_, w_ = size
        D = 2.0 * float(truth["distance"])
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        fov, aspect = vertical_fov(K, size)
        if image is not None:
            if image.shape[-1] == 4:  # a transparent background shows grey
                a = image[..., 3:4].astype(np.float32) / 255.0
                image = (image[..., :3] * a + 128 * (1 - a)).astype(np.uint8)
            state["image"] = scene.add_image("/example/image", image, render_width=w_ * D / fx,
                                             render_height=h_ * D / fy,
                                             position=(((w_ - 1) / 2 - cx) * D / fx, ((h_ - 1) / 2 - cy) * D / fy, D))
            handles.append(state["image"])
        # no frustum: its lines meet at the camera, where the first view stands, and would fill it
        vertices, faces, what = meshes(m, row)
        v, f = np.asarray(vertices, np.float32), np.asarray(faces, np.uint32)
        state["truth"] = scene.add_mesh_simple("/example/truth", v, f, color=TRUE_COLOUR, opacity=0.55,
                                               wxyz=matrix_to_wxyz(R_gt), position=t_gt, side="double",
                                               visible=show_truth.value)
        state["estimate"] = scene.add_mesh_simple("/example/estimate", v, f, color=ESTIMATE_COLOUR, opacity=0.55,
                                                  wxyz=matrix_to_wxyz(R_est), position=t_est, side="double",
                                                  visible=show_estimate.value)
        handles.extend([state["truth"], state["estimate"]])
        err = row.get("error")
        err_text = f"{math.degrees(err):.1f}°" if isinstance(err, (int, float)) and math.isfinite(err) else "n/a"
        info.content = (f"**{m}**, {row['category']} → {row.get('predicted', '?')}, pose error {err_text}, "
                        f"split {row.get('split', '?')}  \n`{row['image']}`  \nmesh: {what}; "
                        f"green: true pose, red: estimate")
        return ViewCamera((0.0, 0.0, 0.0), (0.0, 0.0, D), (0.0, -1.0, 0.0), fov)

    gui.add_markdown(f"**evaluation** `{folder.name}`: {len(rows)} predictions, methods {', '.join(methods)}")
    method_box = gui.add_dropdown("method", tuple(methods), initial_value=method)
    example_box = gui.add_dropdown("example", tuple(label(i, r) for i, r in enumerate(by_method[method])),
                                   initial_value=label(example, by_method[method][example]))
    show_truth = gui.add_checkbox("true pose (green)", True)
    show_estimate = gui.add_checkbox("estimate (red)", True)
    info = gui.add_markdown("")
    home = show(method, example)

    def on_method(_=None) -> None:
        labels = tuple(label(i, r) for i, r in enumerate(by_method[method_box.value]))
        example_box.options = labels
        example_box.value = labels[0]
        show(method_box.value, 0)

    def on_example(_=None) -> None:
        i = int(str(example_box.value).split(":", 1)[0])
        if i < len(by_method[method_box.value]):
            show(method_box.value, i)

    def on_toggle(_=None) -> None:
        state["truth"].visible = show_truth.value
        state["estimate"].visible = show_estimate.value

    method_box.on_update(on_method)
    example_box.on_update(on_example)
    show_truth.on_update(on_toggle)
    show_estimate.on_update(on_toggle)
    summary = [f"{len(rows)} predictions of {', '.join(methods)}; showing {method} example {example}"]
    controls = {"method": method_box, "example": example_box, "nodes": state}  # nodes: image, truth, estimate
    return home, summary, controls
