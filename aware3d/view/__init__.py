"""`aware3d view`: look at datasets and results in 3D in the browser (viser).

    aware3d view runs/demo/dataset                 # a records folder: cameras, images, meshes
    aware3d view runs/demo/orbit4d/run             # an orbit4d run: clouds, cameras, target path, scaffolds
    aware3d view runs/demo/nemo/eval               # a nemo / pose evaluation: mesh at the true and estimated pose
    aware3d view runs/demo/dataset --screenshot view.png   # one view, rendered in headless Chromium

From Python:

    viewer = open_scene("runs/demo/dataset")      # (server, home, summary, kind, controls)
    screenshot(viewer.server, viewer.home, "view.png"); stop_server(viewer.server)

Why viser: a maintained (nerfstudio's) pip-installable viewer whose wheel carries its built web
client and its HDRI files, so it works offline; OpenCV camera conventions like ours; frusta with
images, meshes, point clouds, splines and a GUI (dropdowns, sliders) from Python; and a render call
that returns what the browser drew, which the screenshot and its test use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .common import ViewCamera
from .server import check_host, find_chromium, screenshot, serve_forever, start_server, stop_server, url_of

__all__ = ["detect_kind", "open_scene", "Viewer", "ViewCamera", "screenshot", "serve_forever", "start_server",
           "stop_server", "url_of", "find_chromium", "check_host", "KINDS"]

KINDS = ("records", "orbit4d", "poses")


class Viewer(NamedTuple):
    """A running viewer: the viser server, the first view, lines describing the scene, the folder's
    kind, and the GUI handles and scene nodes by name (for scripts and tests)."""

    server: Any
    home: ViewCamera
    summary: list
    kind: str
    controls: dict


def detect_kind(path: str | Path) -> str:
    """"records" (record shards), "orbit4d" (a run folder: cameras.json with proxy/ or trajectory.json)
    or "poses" (an evaluation folder: predictions.jsonl); ValueError naming the path otherwise."""
    from .records import is_records_folder

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir() and (path / "predictions.jsonl").is_file():
        return "poses"
    if path.is_dir() and (path / "cameras.json").is_file() and ((path / "proxy").is_dir()
                                                                 or (path / "trajectory.json").is_file()):
        return "orbit4d"
    if is_records_folder(path):
        return "records"
    raise ValueError(f"{path}: not a records folder (records-*.npz|json), an orbit4d run (cameras.json and proxy/) "
                     f"or an evaluation folder (predictions.jsonl)")


def open_scene(path: str | Path, kind: str | None = None, host: str = "127.0.0.1", port: int = 0, **options):
    """Start a server and fill it with the folder's scene: a `Viewer` (server, home, summary, kind, controls).
    `options` go to the scene builder (records: cad_root, max_objects, image_side; orbit4d:
    max_points; poses: method, example)."""
    kind = kind or detect_kind(path)
    if kind == "records":
        from .records import build_records_scene as build
    elif kind == "orbit4d":
        from .orbit import build_orbit4d_scene as build
    elif kind == "poses":
        from .poses import build_poses_scene as build
    else:
        raise ValueError(f"unknown view kind {kind!r}; one of {', '.join(KINDS)}")
    server = start_server(host, port)
    try:
        home, summary, controls = build(server, Path(path), **options)
        server.initial_camera.position = home.position
        server.initial_camera.look_at = home.look_at
        server.initial_camera.up = home.up
        server.initial_camera.fov = home.fov
    except BaseException:
        stop_server(server)
        raise
    return Viewer(server, home, summary, kind, controls)
