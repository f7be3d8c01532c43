"""Tiled framebuffers: all views of a call are drawn side by side into one framebuffer (one texture
per output) and read back in one go; `tile_layout` decides how many fit."""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError
from .shaders import ATTACHMENTS

__all__ = ["ATLAS_MAX_PIXELS", "ATLAS_MAX_SIDE", "TiledTarget", "tile_layout"]

ATLAS_MAX_PIXELS = 1 << 22  # views of one call are tiled into framebuffers of at most this many pixels
ATLAS_MAX_SIDE = 8192


class TiledTarget:
    """A tiled framebuffer: `tiles_x × tiles_y` views of (H, W), one texture per output.

    With `samples` > 1 the drawing goes to multisampled renderbuffers that `resolve()` averages
    into the textures (antialiased colour, coverage in alpha)."""

    def __init__(self, ctx, size: tuple[int, int], tiles: tuple[int, int], outputs: tuple[str, ...],
                 samples: int = 0):
        h, w = size
        tx, ty = tiles
        self.ctx, self.size, self.tiles, self.outputs, self.samples = ctx, size, tiles, outputs, samples
        full = (w * tx, h * ty)
        self.textures = {name: ctx.texture(full, ATTACHMENTS[name][0], dtype=ATTACHMENTS[name][1])
                         for name in outputs}
        if samples:
            self.buffers = [ctx.renderbuffer(full, ATTACHMENTS[n][0], samples=samples, dtype=ATTACHMENTS[n][1])
                            for n in outputs]
            self.depth = ctx.depth_renderbuffer(full, samples=samples)
            self.fbo = ctx.framebuffer(self.buffers, self.depth)
            self.resolved = [ctx.framebuffer([self.textures[n]]) for n in outputs]
            self.clear_fbos = {n: ctx.framebuffer([buf]) for n, buf in zip(outputs, self.buffers)}
        else:
            self.buffers, self.resolved = [], []
            self.depth = ctx.depth_renderbuffer(full)
            self.fbo = ctx.framebuffer([self.textures[n] for n in outputs], self.depth)
            # one framebuffer per attachment so that each can be cleared to its own value
            self.clear_fbos = {n: ctx.framebuffer([self.textures[n]]) for n in outputs}
        self.host = {n: np.empty((h * ty, w * tx, ATTACHMENTS[n][0]),
                                 dtype=np.int32 if ATTACHMENTS[n][1] == "i4" else np.float32) for n in outputs}

    def resolve(self) -> None:
        for name, dst in zip(self.outputs, self.resolved):
            self.ctx.copy_framebuffer(dst, self.clear_fbos[name])

    def release(self) -> None:
        for f in list(self.clear_fbos.values()) + self.resolved:
            f.release()
        self.fbo.release()
        self.depth.release()
        for t in list(self.textures.values()) + self.buffers:
            t.release()


def tile_layout(size: tuple[int, int], count: int, max_side: int) -> tuple[int, int]:
    """(tiles_x, tiles_y) of a framebuffer for `count` views of `size` (H, W): as many views as fit
    in ATLAS_MAX_PIXELS pixels and `max_side` pixels a side (the GL texture limit)."""
    h, w = size
    if h > max_side or w > max_side:
        raise GeometryError(f"image size {size} exceeds the OpenGL limit of {max_side} pixels a side")
    per_atlas = max(1, min(count, ATLAS_MAX_PIXELS // (h * w)))
    tx = max(1, min(per_atlas, max_side // w))
    ty = max(1, min(math.ceil(per_atlas / tx), max_side // h))
    return tx, ty
