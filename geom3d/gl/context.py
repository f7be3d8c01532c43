"""Headless EGL contexts: one `GLRenderer` per thread (an EGL context is current in one thread),
made on first use, remade after a fork, released with its thread; and the one-time warning
when none can be made and `render_gl` falls back to the rasterizer."""

from __future__ import annotations

import logging
import os
import threading

from aware3d_utils import require

__all__ = ["NoContext", "create_context", "default_renderer", "gl_available", "warn_fallback"]

log = logging.getLogger(__name__)

thread_state = threading.local()
warned_fallback = False
_warn_lock = threading.Lock()


class NoContext(RuntimeError):
    """No headless EGL OpenGL context can be made here."""


def create_context():
    """A fresh standalone moderngl context on EGL; NoContext (with the reason) when there is none."""
    moderngl = require("moderngl")
    try:
        return moderngl.create_context(standalone=True, backend="egl")
    except Exception as exc:  # no EGL, no driver, no display device: every reason means "fall back"
        raise NoContext(f"cannot create a headless EGL OpenGL context: {type(exc).__name__}: {exc}") from exc


def gl_available() -> bool:
    """True when an EGL OpenGL context can be made in this process (tried once, then remembered)."""
    try:
        default_renderer()
    except (NoContext, ImportError):
        return False
    return True


def default_renderer():
    """This thread's `GLRenderer`; raises NoContext / ImportError (every time) when it cannot be made."""
    from .renderer import GLRenderer  # the renderer makes its context through this module

    pid = os.getpid()
    state = getattr(thread_state, "renderer", None)
    if state is not None and state.pid == pid:
        if state.failure is not None:  # a fresh exception each time: a cached one would keep its traceback
            raise state.failure[0](state.failure[1])
        return state.renderer
    try:
        renderer = GLRenderer()
    except (NoContext, ImportError) as exc:
        thread_state.renderer = _ThreadRenderer(pid, None, (type(exc), str(exc)))
        raise
    thread_state.renderer = _ThreadRenderer(pid, renderer, None)
    return renderer


class _ThreadRenderer:
    """This thread's renderer (or why it could not be made); released when the thread ends and its
    thread-local state is dropped, so short-lived threads do not leak contexts."""

    def __init__(self, pid: int, renderer, failure: tuple | None):
        self.pid, self.renderer, self.failure = pid, renderer, failure

    def __del__(self, _getpid=os.getpid):  # bound now: at interpreter exit `os` may already be gone
        if self.renderer is not None and self.pid == _getpid():
            try:
                self.renderer.release()
            except Exception:  # interpreter shutdown: GL may already be gone
                pass


def warn_fallback(exc: Exception) -> None:
    """Log, once per process, that rendering falls back to the rasterizer and why."""
    global warned_fallback
    with _warn_lock:
        if not warned_fallback:
            log.warning("render_gl: %s; rendering with geom3d.rasterize instead (slower)", exc)
            warned_fallback = True
