"""A records folder in 3D: every object's camera frustum with its image, around the object's mesh.

The world is the object frame (z up, front towards −y; docs/design.md), so the cameras of all
objects of a category surround one place: the dataset's camera spread at a glance. Meshes are
found from each object's `mesh_ref` (data3d's lookup, `data3d.show.record_mesh`: the procedural
library, `<cad_root>/<category>/NN.off` for CAD collections), else through the asset sources of a
datagen folder's `config.yaml`; an object whose mesh is not found shows the cuboid of its
`extra["mesh_bounds"]` (wireframe) when it has one (data3d's box rule, `data3d.show.object_bounds`);
where no object has either, the object frame's axes mark the object. Dropdowns filter by category and split.

Splits: a record's `extra["split"]`, else the name of the sub-folder it was read from (a folder of
records folders, as `aware3d nemo splits` writes), else "(none)". The dropdowns' "(all)" shows all.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import ViewCamera, camera_pose, color_of, frustum_scale, load_thumbnail, vertical_fov

__all__ = ["is_records_folder", "load_record_groups", "MeshFinder", "build_records_scene"]

log = logging.getLogger(__name__)

NO_SPLIT, ALL = "(none)", "(all)"  # a split name no record gives; the dropdowns' "everything"


def _has_shards(folder: Path) -> bool:
    return any(folder.glob("records-*.npz")) or any(folder.glob("records-*.json"))


def is_records_folder(path: Path) -> bool:
    """A shard file, a folder of shards, or a folder whose sub-folders hold shards."""
    if path.is_file():
        return path.suffix in (".npz", ".json") and path.name.startswith("records-")
    if not path.is_dir():
        return False
    return _has_shards(path) or any(p.is_dir() and _has_shards(p) for p in path.iterdir())


def load_record_groups(path: str | Path) -> dict[str, list]:
    """{group name: records}: one group "(none)" for a shard file or a folder of shards, else one per
    sub-folder holding shards (its name)."""
    import data3d

    path = Path(path)
    if path.is_file() or _has_shards(path):
        return {NO_SPLIT: list(data3d.load_records(path))}
    groups = {p.name: list(data3d.load_records(p)) for p in sorted(path.iterdir()) if p.is_dir() and _has_shards(p)}
    if not groups:
        raise ValueError(f"{path}: holds no record shards (records-<name>.npz|json), nor do its sub-folders")
    return groups


class MeshFinder:
    """An object's mesh (in its object frame) by its `mesh_ref`, cached; None when not found.

    Looks in order at data3d's lookup (`record_mesh`: procedural, `cad_root` CAD folders) and the
    asset sources of `config.yaml` in the records folder (datagen writes it)."""

    def __init__(self, folder: Path, cad_root=None):
        self.folder, self.cad_root = folder if folder.is_dir() else folder.parent, cad_root
        self.cache: dict[str, object] = {}
        self._assets = None
        self.problems: list[str] = []

    def _asset_index(self) -> dict:
        if self._assets is None:
            self._assets = {}
            config = self.folder / "config.yaml"
            if config.is_file():
                import yaml

                import data3d

                try:
                    blocks = (yaml.safe_load(config.read_text()) or {}).get("assets") or []
                    for block in blocks if isinstance(blocks, list) else [blocks]:
                        source = data3d.asset_source(block)
                        for a in source:
                            ref = data3d.mesh_ref_for(str(a.meta.get("collection", a.source)), a.category, a.id,
                                                      a.cad_index)
                            self._assets.setdefault(ref, (source, a))
                except Exception as exc:  # a config this version cannot read: no asset lookup, said once
                    self.problems.append(f"{config}: asset sources not usable ({type(exc).__name__}: {exc})")
        return self._assets

    def __call__(self, obj):
        ref = obj.mesh_ref
        if ref in self.cache:
            return self.cache[ref]
        from data3d.show import record_mesh

        mesh = None
        try:
            mesh = record_mesh(obj, self.cad_root)
        except (OSError, ValueError) as exc:
            self.problems.append(f"{ref}: {exc}")
        if mesh is None:
            found = self._asset_index().get(ref)
            if found is not None:
                try:
                    mesh = found[0].load(found[1])
                except (OSError, ValueError) as exc:
                    self.problems.append(f"{ref}: {exc}")
        self.cache[ref] = mesh
        return mesh


@dataclass
class _Entry:
    index: int
    category: str
    split: str
    ref: str
    handle: object = None


def _bounds_box(obj):
    """A trimesh box of the object's `mesh_bounds` (data3d's box rule), or None without one."""
    import trimesh

    from data3d.show import object_bounds

    bounds = object_bounds(obj)
    if bounds is None:
        return None
    lo, hi = bounds
    box = trimesh.creation.box(extents=hi - lo)
    box.apply_translation((lo + hi) / 2)
    return box


def build_records_scene(server, path: str | Path, *, cad_root=None, max_objects: int = 400, image_side: int = 160,
                        show_images: bool = True, show_cameras: bool = True):
    """Fill `server` with the records' cameras, images and meshes and the filter GUI; returns
    (home ViewCamera, summary lines, controls: the GUI handles and scene nodes by name). `show_cameras`
    is the "cameras" checkbox's first state."""
    path = Path(path)
    groups = load_record_groups(path)
    items = [(group, r, o) for group, recs in groups.items() for r in recs for o in r.objects]
    if not items:
        raise ValueError(f"{path}: the records hold no objects")
    total = len(items)
    if total > max_objects:  # evenly spread over the folder, so every part of it shows
        keep = np.unique(np.linspace(0, total - 1, max_objects).round().astype(int))
        items = [items[i] for i in keep]
    finder = MeshFinder(path, cad_root)
    distances = np.array([o.viewpoint.distance for _, _, o in items], dtype=np.float64)
    median = float(np.median(distances))
    depth = 0.22 * median
    categories = sorted({o.category for _, _, o in items})
    cat_color = {c: color_of(i) for i, c in enumerate(categories)}
    scene = server.scene
    scene.set_up_direction("+z")
    entries: list[_Entry] = []
    missing_images = 0
    for i, (group, record, obj) in enumerate(items):
        split = str(record.extra.get("split") or group)
        cam = obj.cameras
        wxyz, position = camera_pose(cam.R.double().numpy(), cam.t.double().numpy())
        fov, aspect = vertical_fov(cam.K.double().numpy(), record.image_size)
        image = load_thumbnail(record.image_path, image_side) if show_images else None
        if show_images and image is None:
            missing_images += 1
        handle = scene.add_camera_frustum(
            f"/cameras/{i:05d}", fov=fov, aspect=aspect, scale=frustum_scale(fov, aspect, depth),
            color=cat_color[obj.category], image=image, wxyz=wxyz, position=position,
            thickness=0.01 * depth)
        entries.append(_Entry(i, obj.category, split, obj.mesh_ref, handle))
    meshes: dict[str, object] = {}
    for _, _, obj in items:
        ref = obj.mesh_ref
        if ref in meshes:
            continue
        mesh = finder(obj)
        name = f"/meshes/{len(meshes):03d}"
        color = cat_color[obj.category]
        if mesh is not None:
            meshes[ref] = scene.add_mesh_simple(name, mesh.vertices.float().numpy(),
                                                mesh.faces.numpy().astype(np.uint32), color=color, side="double")
        else:
            box = _bounds_box(obj)
            meshes[ref] = None if box is None else scene.add_mesh_simple(
                name, np.asarray(box.vertices, np.float32), np.asarray(box.faces, np.uint32), color=color,
                wireframe=True)
    found = sum(1 for ref in meshes if finder.cache.get(ref) is not None)
    if all(handle is None for handle in meshes.values()):  # nothing marks the object: its axes (x red, y green, z blue)
        scene.add_frame("/object_axes", axes_length=0.15 * median, axes_radius=0.006 * median)
    splits = sorted({e.split for e in entries})

    gui = server.gui
    gui.add_markdown(f"**records** `{path.name}`  \n{len(items)} of {total} objects, {len(categories)} categories, "
                     f"{len(splits)} splits; meshes found for {found} of {len(meshes)} CAD references")
    # viser's dropdowns reject repeated options (the page's script stops): ALL is never a category or split
    category_box = gui.add_dropdown("category", (ALL, *[c for c in categories if c != ALL]), initial_value=ALL)
    split_box = gui.add_dropdown("split", (ALL, *[s for s in splits if s != ALL]), initial_value=ALL)
    cameras_box = gui.add_checkbox("cameras", show_cameras)
    meshes_box = gui.add_checkbox("meshes", True)

    def refresh(_=None) -> None:
        wanted_cat, wanted_split = category_box.value, split_box.value
        refs = set()
        for e in entries:
            on = (wanted_cat in (ALL, e.category)) and (wanted_split in (ALL, e.split))
            e.handle.visible = on and cameras_box.value
            if on:
                refs.add(e.ref)
        for ref, handle in meshes.items():
            if handle is not None:
                handle.visible = meshes_box.value and ref in refs

    for box in (category_box, split_box, cameras_box, meshes_box):
        box.on_update(refresh)
    refresh()

    # home: the object from the front-left, above, far enough to take in the nearer cameras
    az, el = math.radians(-35.0), math.radians(25.0)
    r = 1.6 * median
    home = ViewCamera((r * math.cos(el) * math.sin(az), -r * math.cos(el) * math.cos(az), r * math.sin(el)),
                      (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), math.radians(50.0))
    summary = [f"{len(items)} of {total} objects ({', '.join(categories)}), splits {', '.join(splits)}",
               f"meshes found for {found} of {len(meshes)} CAD references"]
    if missing_images:
        summary.append(f"{missing_images} images could not be read (frusta without image)")
    summary += finder.problems[:5]
    controls = {"category": category_box, "split": split_box, "cameras": cameras_box, "meshes": meshes_box,
                "frusta": [(e.category, e.split, e.handle) for e in entries], "mesh_nodes": meshes}
    return home, summary, controls
