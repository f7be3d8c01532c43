"""A mesh's vertex buffers and texture on a GL context (`GPUMesh`), uploaded once and reused while
the mesh's tensors are unchanged (`version_key`)."""

from __future__ import annotations

import numpy as np
import torch

from aware3d_utils import require

from ..errors import GeometryError, MeshError
from ..mesh import Mesh
from ..texture import TEXTURE_FILTERS
from .face_ids import neighbours_opposite_corners

__all__ = ["GPUMesh", "version_key"]


def version_key(mesh: Mesh) -> tuple:
    """Identifies the mesh's current tensors: a changed (or replaced) tensor means a re-upload."""
    parts = []
    for t in (mesh.vertices, mesh.faces, mesh.vertex_colors, mesh.uvs, mesh.texture):
        parts.append(None if t is None else (id(t), t._version, t.data_ptr()))
    return tuple(parts)


class GPUMesh:
    """A mesh's buffers and textures on the GL context; vertex arrays are made per program.

    Two layouts: indexed (shared vertices + index buffer: the cheapest for depth and face index)
    and per corner (three vertices per face carrying the face's index and normal, made on first
    use: what colour and normals need)."""

    def __init__(self, ctx, mesh: Mesh):
        v = mesh.vertices.detach().cpu()
        faces = mesh.faces.detach().cpu()
        where = mesh.source or "mesh"
        if faces.shape[0] == 0:
            raise MeshError(where, "has no faces to render")
        if not torch.isfinite(v).all():
            raise MeshError(where, "vertices contain NaN or infinite values")
        if int(faces.max()) >= 2**31 - 1:
            raise MeshError(where, "too many vertices for 32-bit indices")
        self.num_faces = int(faces.shape[0])
        self.ctx = ctx
        self.key = version_key(mesh)
        self.bounds = torch.stack([v.amin(0), v.amax(0)]).double() if len(v) else torch.zeros(2, 3)
        self.buffers: dict[str, object] = {"position": ctx.buffer(_f4(v))}
        self.ibo = ctx.buffer(faces.to(torch.int32).contiguous().numpy().tobytes())
        self.has_color = mesh.vertex_colors is not None
        self.has_uv = mesh.has_texture
        self.vertices, self.faces = v, faces  # on the CPU, as uploaded
        self._colors = mesh.vertex_colors.detach().cpu() if self.has_color else None
        self._uvs = mesh.uvs.detach().cpu() if self.has_uv else None
        self._mesh64: Mesh | None = None  # a float64 copy for the normals, made on first use
        self._neighbours: torch.Tensor | None = None
        self._texture = None
        self._texture_src = mesh.texture if self.has_uv else None
        self._texture_filter = None
        self.corner_buffers: dict[str, object] = {}
        self.vaos: dict[tuple, object] = {}

    def mesh64(self) -> Mesh:
        if self._mesh64 is None:
            self._mesh64 = Mesh(self.vertices.double(), self.faces)
        return self._mesh64

    def neighbours(self) -> torch.Tensor:
        """(F, 3): the face across the edge opposite each corner (−1 on a border), by position."""
        if self._neighbours is None:
            self._neighbours = neighbours_opposite_corners(self.vertices, self.faces)
        return self._neighbours

    def _corner_buffer(self, name: str):
        """Per-corner (3F rows) arrays, made on first use."""
        if name not in self.corner_buffers:
            flat = self.faces.reshape(-1)
            if name == "position":
                data = _f4(self.vertices[flat])
            elif name == "face":
                data = torch.arange(self.num_faces, dtype=torch.int32).repeat_interleave(3).numpy().tobytes()
            elif name == "face_normal":
                data = _f4(self.mesh64().face_normals().repeat_interleave(3, 0))
            elif name == "color":
                data = _f4(self._colors[flat])
            elif name == "uv":
                data = _f4(self._uvs[flat])
            elif name == "normal":
                data = _f4(self.mesh64().vertex_normals()[flat])
            else:
                raise KeyError(name)
            self.corner_buffers[name] = self.ctx.buffer(data)
        return self.corner_buffers[name]

    def texture(self, filter_mode: str):
        moderngl = require("moderngl")
        if self._texture is None:
            img = self._texture_src.cpu().numpy()
            h, w = img.shape[:2]
            # row 0 of the image goes to t = 0; the shader samples at t = 1 - v (v up, as geom3d.Mesh)
            self._texture = self.ctx.texture((w, h), 3, np.ascontiguousarray(img).tobytes(), alignment=1)
            self._texture.repeat_x = self._texture.repeat_y = True
        if filter_mode != self._texture_filter:
            if filter_mode == "mipmap":
                self._texture.build_mipmaps()
                self._texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
                self._texture.anisotropy = 16.0
            elif filter_mode == "linear":
                self._texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
                self._texture.anisotropy = 1.0
            elif filter_mode == "nearest":
                self._texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
                self._texture.anisotropy = 1.0
            else:
                raise GeometryError(f"texture_filter must be one of {TEXTURE_FILTERS}, got {filter_mode!r}")
            self._texture_filter = filter_mode
        return self._texture

    def vao(self, program, variant: tuple):
        """The vertex array binding this mesh's buffers to `program` (a VAO belongs to one program)."""
        key = (variant, program.glo)
        if key not in self.vaos:
            if "PER_CORNER" in variant:
                content = [(self._corner_buffer("position"), "3f", "in_position")]
                wanted = [("face", "1i", "in_face"), ("face_normal", "3f", "in_face_normal"),
                          ("color", "3f", "in_color"), ("uv", "2f", "in_uv"), ("normal", "3f", "in_normal")]
                # only what the compiled program kept (unused inputs are optimised away)
                content += [(self._corner_buffer(n), f, a) for n, f, a in wanted if a in program]
                self.vaos[key] = self.ctx.vertex_array(program, content)
            else:
                self.vaos[key] = self.ctx.vertex_array(program, [(self.buffers["position"], "3f", "in_position")],
                                                       index_buffer=self.ibo, index_element_size=4)
        return self.vaos[key]

    def release(self) -> None:
        for vao in self.vaos.values():
            vao.release()
        for buf in list(self.buffers.values()) + list(self.corner_buffers.values()):
            buf.release()
        self.ibo.release()
        if self._texture is not None:
            self._texture.release()


def _f4(t: torch.Tensor) -> bytes:
    return t.detach().to(torch.float32).contiguous().numpy().tobytes()
