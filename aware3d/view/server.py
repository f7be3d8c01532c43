"""The viser server, the interactive loop and headless screenshots through Debian's Chromium.

Screenshot: a headless Chromium (SwiftShader's WebGL on a CPU machine) opens the viewer page; once
it has connected, the server asks that page for a render from the chosen camera
(`viser.ClientHandle.get_render`: three.js draws the scene the page holds and sends the pixels
back). The scene's messages travel before the request on the same websocket, so the render shows
the scene; renders are repeated until two in a row agree, so textures still being decoded are in.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from aware3d_utils import atomic_save, require

from .common import ViewCamera

__all__ = ["start_server", "check_host", "find_chromium", "screenshot", "serve_forever", "stop_server", "url_of",
           "CHROMIUM_FLAGS"]

log = logging.getLogger(__name__)

# Headless Chromium without network chatter, first-run pages or a GPU; WebGL through SwiftShader.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--force-device-scale-factor=1",
                  "--disable-crash-reporter", "--disable-breakpad", "--enable-logging=stderr",
                  "--disable-features=OptimizationGuideModelDownloading,OptimizationHints,OnDeviceModelPerformanceParams")


def check_host(host: str, name: str = "host") -> None:
    """An OSError naming `name` when `host` cannot be resolved or listened on: viser tries a thousand
    ports on it and then waits for ever."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"{name} {host}: cannot be resolved ({getattr(exc, 'strerror', None) or exc})") from None
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind((address[0], 0))
        except OSError as exc:
            raise OSError(f"{name} {host}: cannot listen on it ({exc.strerror or exc})") from None


def start_server(host: str = "127.0.0.1", port: int = 0):
    """A viser server on `host` (port 0: a free port the system picks, a busy one: the next free one);
    its banner is not printed."""
    viser = require("viser", "view")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be in [0, 65535], got {port}")
    check_host(host)
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host=host, port=port, verbose=False)
    return server


def url_of(server) -> str:
    return f"http://{server.get_host()}:{server.get_port()}/"


def stop_server(server) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        server.stop()


def serve_forever(server, say=print, banner: str | None = None) -> None:
    """Serve until Ctrl-C (or SIGTERM), then stop the server cleanly. `banner` (the URL line) is
    said only once Ctrl-C is caught here: a Ctrl-C that came between an earlier print and this loop
    would escape, and the server's threads would keep the process alive."""
    import signal

    def _terminate(signum, frame):  # a plain `kill` stops as cleanly as Ctrl-C
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGINT too: a process started in the background of a script inherits SIGINT ignored, and
        # Python then never raises KeyboardInterrupt, so `kill -INT` would not stop the viewer
        previous = (signal.signal(signal.SIGTERM, _terminate), signal.signal(signal.SIGINT, signal.default_int_handler))
    try:
        if banner is not None:
            say(banner)
        while True:
            time.sleep(0.25)
    except KeyboardInterrupt:
        say("stopping the viewer")
    finally:
        stop_server(server)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])


def find_chromium() -> str:
    """The Chromium executable: $AWARE3D_CHROMIUM, else `chromium` / `chromium-browser` /
    `google-chrome` on PATH; FileNotFoundError saying how to install it otherwise."""
    given = os.environ.get("AWARE3D_CHROMIUM")
    if given:
        if shutil.which(given):
            return shutil.which(given)
        raise FileNotFoundError(f"AWARE3D_CHROMIUM={given} is not an executable")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("headless Chromium is needed for --screenshot but was not found; install Debian's "
                            "'chromium' package (scripts/system-deps.sh does, as root) or set AWARE3D_CHROMIUM")


def _last_words(log_file: Path) -> str:
    """The page's uncaught script errors from Chromium's log, else its last lines."""
    lines = log_file.read_text(errors="replace").strip().splitlines() if log_file.exists() else []
    errors = [line for line in lines if "Uncaught" in line]
    return " | ".join(errors[-2:] or lines[-3:])


def _wait(event: threading.Event, proc: subprocess.Popen, timeout: float, what: str, log_file: Path) -> None:
    end = time.monotonic() + timeout
    while not event.wait(0.1):
        if proc.poll() is not None:
            raise RuntimeError(f"Chromium exited (code {proc.returncode}) before {what}: {_last_words(log_file)}")
        if time.monotonic() > end:
            raise TimeoutError(f"headless Chromium did not {what} within {timeout:.0f} s")


def _end_browser(proc: subprocess.Popen) -> None:
    """Stop Chromium and its helper processes (its own process group, started for it)."""
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue


def screenshot(server, camera: ViewCamera, out: str | os.PathLike | None = None, size=(720, 960),
               timeout: float = 90.0, background=(255, 255, 255)) -> np.ndarray:
    """Render the server's scene from `camera` in headless Chromium: (H, W, 3) uint8 RGB on
    `background` (the scene's own transparent background filled), written to `out` (PNG) if given."""
    chromium = find_chromium()
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ValueError(f"screenshot size {w}x{h} is too small")
    clients: list = []
    connected = threading.Event()

    def on_connect(client) -> None:
        clients.append(client)
        connected.set()

    server.on_client_connect(on_connect)
    with tempfile.TemporaryDirectory(prefix="aware3d-chromium-") as profile:
        log_file = Path(profile) / "chromium.log"
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/data", f"--window-size={w},{h}", url_of(server)]
        with open(log_file, "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        try:
            _wait(connected, proc, timeout, "open the viewer page", log_file)
            client = clients[0]
            client.flush()
            pose = {"wxyz": camera.wxyz(), "position": np.asarray(camera.position, dtype=np.float64),
                    "fov": float(camera.fov)}
            end = time.monotonic() + timeout
            previous = None
            while True:
                remaining = max(1.0, end - time.monotonic())
                try:
                    image = client.get_render(h, w, **pose, transport_format="png", timeout=remaining)
                except RuntimeError as exc:  # the page went away: say what its script or Chromium said
                    raise RuntimeError(f"screenshot: {exc} Chromium: {_last_words(log_file)}") from None
                if previous is not None and np.array_equal(previous, image):
                    break
                if time.monotonic() > end:
                    log.warning("screenshot: the render still changed after %.0f s; keeping the last", timeout)
                    break
                previous = image
                time.sleep(0.3)
        finally:
            _end_browser(proc)
    rgb = image[..., :3].astype(np.float32)
    alpha = image[..., 3:4].astype(np.float32) / 255.0 if image.shape[-1] == 4 else 1.0
    picture = (rgb * alpha + np.asarray(background, np.float32) * (1.0 - alpha) + 0.5).astype(np.uint8)
    if out is not None:
        from PIL import Image

        atomic_save(out, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
    return picture
