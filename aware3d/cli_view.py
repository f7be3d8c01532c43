"""`aware3d view <path>`: an interactive 3D viewer in the browser (viser) for a records folder, an
orbit4d run or a nemo / pose evaluation folder (the kind is recognised from the files).

    aware3d view runs/demo/dataset                       # prints the URL; Ctrl-C stops it
    aware3d view runs/demo/orbit4d/run --port 8080
    aware3d view runs/demo/nemo/eval --screenshot eval.png   # one view in headless Chromium, then exit

records: every object's camera frustum with its image around the object's mesh (object frame,
z up), filtered by category and split. orbit4d: background and foreground clouds (a slider over
the input frames), the input cameras with their frames, the target path with the scaffold frame
on each target camera. evaluation: per example the image with the fitted mesh at the true (green)
and the estimated (red) pose, seen from the image's camera.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import bounded

__all__ = ["add_parser"]

#: the options that act with one kind of folder only: (dest, flag, the kind, its default)
KIND_OPTIONS = (("cad_root", "--cad-root", "records", None), ("max_objects", "--max-objects", "records", 400),
                ("max_points", "--max-points", "orbit4d", 200_000), ("method", "--method", "poses", None),
                ("example", "--example", "poses", 0))


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("view", help="look at a records folder, an orbit4d run or an evaluation in 3D (browser)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a records folder (or shard file), an orbit4d run folder or an evaluation folder")
    p.add_argument("--kind", choices=("records", "orbit4d", "poses"), help="the folder's kind (default: recognised)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=bounded(int, 0, 65535), default=0, help="port (default: 0, a free one)")
    p.add_argument("--screenshot", metavar="PNG", help="render one view in headless Chromium to this PNG and exit")
    p.add_argument("--camera", metavar="X,Y,Z[:LX,LY,LZ[:FOV]]",
                   help="the screenshot's (and the initial) camera position, look-at point and vertical field of "
                        "view in degrees, in the scene's world (default: a view chosen for the kind)")
    p.add_argument("--size", metavar="WxH", help="--screenshot: its size in pixels (default: 960x720)")
    p.add_argument("--cad-root", help="records: the CAD folder (<category>/NN.off) of real records' models")
    p.add_argument("--max-objects", type=bounded(int, 1, 10**9),
                   help="records: draw at most this many objects, spread over the folder (default: 400)")
    p.add_argument("--max-points", type=bounded(int, 1, 10**9),
                   help="orbit4d: points per cloud at most (random subset; default: 200000)")
    p.add_argument("--method", help="evaluation: the method shown first (default: the first in the file)")
    p.add_argument("--example", type=int, help="evaluation: the example shown first (default: 0)")
    p.set_defaults(func=run)
    return p


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r}: expected WxH, e.g. 960x720") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"--size {text!r}: width and height must lie in [16, 4096]")
    return h, w


def _check_options(args: argparse.Namespace, kind: str) -> None:
    """An error for an option that would be ignored (another kind's, --size without --screenshot) or that
    names no folder, or a --screenshot that is no new PNG; the others' defaults filled in."""
    for dest, flag, wanted, default in KIND_OPTIONS:
        if getattr(args, dest) is None:
            setattr(args, dest, default)
        elif kind != wanted:
            raise ValueError(f"{flag} only acts with --kind {wanted} ({args.path} is viewed as {kind})")
    if args.cad_root is not None and not Path(args.cad_root).is_dir():  # not a silent fall-back to the cuboid
        raise FileNotFoundError(f"--cad-root {args.cad_root}: no such folder")
    if args.size is not None and not args.screenshot:
        raise ValueError("--size only acts with --screenshot")
    if args.screenshot:
        shot = Path(args.screenshot)
        if shot.suffix.lower() != ".png":  # the picture is a PNG whatever its name
            raise ValueError(f"--screenshot {shot}: the picture is written as PNG; give a .png path")
        if shot.is_dir():
            raise ValueError(f"--screenshot {shot}: is a folder; give a .png file path")


def run(args: argparse.Namespace) -> int:
    from aware3d.view import (
        ViewCamera,
        check_host,
        detect_kind,
        find_chromium,
        open_scene,
        screenshot,
        serve_forever,
        stop_server,
        url_of,
    )

    kind = args.kind or detect_kind(args.path)
    _check_options(args, kind)
    size = _size(args.size or "960x720")
    check_host(args.host, "--host")  # viser would wait for ever on an address it cannot listen on
    if args.screenshot:
        find_chromium()  # fail before building the scene
    options = {"records": {"cad_root": args.cad_root, "max_objects": args.max_objects},
               "orbit4d": {"max_points": args.max_points},
               "poses": {"method": args.method, "example": args.example}}[kind]
    server, home, summary, kind, _ = open_scene(args.path, kind, host=args.host, port=args.port, **options)
    try:  # the server's threads would keep the process alive after a Ctrl-C that escapes
        camera = ViewCamera.parse(args.camera, home) if args.camera else home
        if args.camera:
            server.initial_camera.position, server.initial_camera.look_at = camera.position, camera.look_at
            server.initial_camera.fov = camera.fov
        for line in summary:
            print(f"{kind}: {line}")
    except BaseException:
        stop_server(server)
        raise
    if args.screenshot:
        try:
            screenshot(server, camera, args.screenshot, size=size)
        finally:
            stop_server(server)
        print(f"wrote {args.screenshot}")
        return 0
    serve_forever(server, say=lambda line: print(line, flush=True),
                  banner=f"aware3d view: open {url_of(server)} in a browser (Ctrl-C stops)")
    return 0
