"""From `render_gl`'s arguments to flat batches of views, and back: mesh passing (a `Mesh`, a
(vertices, faces) pair, or M meshes as (M, V, 3) / `PaddedMeshes`), the batch rule, the dtype rule
and the output device, shared by the GL renderer and its rasterizer fallback."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

from ..cameras import Cameras
from ..dtypes import common_float_dtype
from ..errors import GeometryError
from ..mesh import Mesh
from ..pixels import parse_image_size
from ..raster.inputs import check_mesh, mesh_arrays, result_batch_shape
from ..shading import background_image, resolve_lighting
from .options import GLRender, RenderOptions, check_outputs

__all__ = ["as_mesh_rows", "render_batched"]

# draw(mesh, cameras (B,), outputs, options, lighting of the B views, background image) -> outputs (B, H, W, ...)
Draw = Callable[..., dict]


_ROW_MESHES: OrderedDict = OrderedDict()  # identity and versions of (vertices, faces) -> (inputs, rows)
_ROW_MESHES_MAX = 4
_ROW_MESHES_LOCK = threading.Lock()


def _tensor_key(x) -> tuple | None:
    return (id(x), x._version, x.data_ptr()) if isinstance(x, torch.Tensor) else None


def as_mesh_rows(mesh, who: str, remember: bool = False) -> tuple[list[Mesh], int | None]:
    """The meshes to draw and M (None for one mesh seen by every camera).

    A (vertices, faces) pair or bank becomes one `Mesh` per row. With `remember` (the GL path) the
    last few are kept while their tensors are unchanged (the same objects, not modified in place),
    so that the GL renderer's cache of uploaded meshes serves repeated calls with the same tensors."""
    if isinstance(mesh, Mesh):
        return [mesh], None
    raw = mesh_arrays(mesh, who)
    keys = tuple(_tensor_key(x) for x in raw)
    key = None if (None in keys or not remember) else keys
    if key is not None:
        with _ROW_MESHES_LOCK:
            hit = _ROW_MESHES.get(key)
            if hit is not None:
                _ROW_MESHES.move_to_end(key)
                return hit[1]
    vertices, faces = check_mesh(who, *raw)
    if vertices.ndim == 2 and faces.ndim == 2:
        rows = [Mesh(vertices, faces)], None
    else:
        M = max(x.shape[0] for x in (vertices, faces) if x.ndim == 3)
        if any(x.ndim == 3 and x.shape[0] not in (1, M) for x in (vertices, faces)):
            raise GeometryError(f"{who}: batch sizes do not match (vertices {tuple(vertices.shape)}, "
                                f"faces {tuple(faces.shape)})")

        def row(x, m):
            return x if x.ndim == 2 else x[min(m, x.shape[0] - 1)]

        rows = [Mesh(row(vertices, m), row(faces, m)) for m in range(M)], M
    if key is not None:
        with _ROW_MESHES_LOCK:
            _ROW_MESHES[key] = (raw, rows)  # holding the inputs keeps their ids from being reused
            while len(_ROW_MESHES) > _ROW_MESHES_MAX:
                _ROW_MESHES.popitem(last=False)
    return rows


def render_batched(draw: Draw, mesh, cameras: Cameras, image_size, outputs: Sequence[str],
                   options: RenderOptions | None, who: str, remember_meshes: bool = False) -> GLRender:
    """Check the arguments, draw every view of the cameras' batch shape S (its first dimension
    paired with M meshes) and return them as a `GLRender` of leading shape S, floating outputs in
    the common dtype of vertices and cameras, on the vertices' device."""
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"{who}: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if image_size is not None and parse_image_size(image_size) != tuple(cameras.image_size):
        raise GeometryError(f"{who}: image_size {tuple(image_size)} differs from the cameras' "
                            f"{cameras.image_size}; use cameras.resize / crop / pad to change the canvas")
    options = RenderOptions() if options is None else options
    if not isinstance(options, RenderOptions):
        raise GeometryError(f"{who}: options must be a RenderOptions, got {type(options).__name__}")
    want = check_outputs(outputs)
    meshes, M = as_mesh_rows(mesh, who, remember_meshes)
    shape = result_batch_shape(who, tuple(cameras.batch_shape), M)
    B = math.prod(shape)
    if B == 0:
        raise GeometryError(f"{who}: nothing to render (a batch of 0 cameras or meshes)")
    h, w = cameras.image_size
    dtype = common_float_dtype(meshes[0].vertices, cameras.R)
    device = meshes[0].vertices.device
    cams = cameras.expand(*shape).reshape(B)
    lighting = resolve_lighting(cams.R.detach().cpu(), **options.lighting_arguments())
    bg_image = background_image(options.background_image, B, (h, w))
    if M is None:
        parts = [draw(meshes[0], cams, want, options, lighting, bg_image)]
    else:  # views are grouped by mesh: row m of the first dimension sees mesh m
        P = B // M
        parts = []
        for m, one in enumerate(meshes):
            rows = slice(m * P, (m + 1) * P)
            bg = None if bg_image is None else bg_image[rows] if bg_image.shape[0] > 1 else bg_image
            parts.append(draw(one, cams[rows], want, options, lighting.views(rows), bg))
    out = {}
    for name in want:
        t = parts[0][name] if len(parts) == 1 else torch.cat([p[name] for p in parts])
        t = t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
        out[name] = t.reshape(*shape, *t.shape[1:])
    return GLRender(**out)
