"""Per-vertex visibility: which mesh vertices a camera sees, with their projections (NeMo's training
needs both to pick the vertex features each pixel must match).

A vertex is visible when it lies in front of the near plane, projects inside the image, belongs to
a non-degenerate face (so padding of a `PaddedMeshes` bank never counts), and is not occluded at
its projection. Occlusion is read from the z-buffer of the visibility pass: the face covering the
pixel nearest to the vertex's projection occludes it when that face is not one of the vertex's own
faces and its plane, met by the ray through the vertex, lies nearer than (1 − depth_tolerance) ×
the vertex depth. Intersecting the covering face's plane along the vertex's own ray (rather than
reading the depth at the pixel centre) makes the test exact on slanted surfaces, where the depth
changes within a pixel; the ray to the vertex is X_v / z_v, so no unprojection is needed. A pixel
that no face covers occludes nothing. Disagreement with exact ray casting is confined to vertices
within about half a pixel of an occluding silhouette.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras import Cameras
from ..errors import GeometryError
from .edges import cross_rows, intrinsics_parts
from .inputs import RasterInputs, prepare
from .visibility import visible_faces_of

__all__ = ["VertexVisibility", "vertex_visibility"]


@dataclass(frozen=True, eq=False)
class VertexVisibility:
    """Per view (batch shape S) and vertex:

    uv (*S, V, 2): pixel coordinates (u, v) = (column, row) of the projection (OpenCV, integer
        pixel centres), differentiable w.r.t. vertices and cameras; meaningless where depth ≤ 0.
    depth (*S, V): camera z of the vertex, differentiable.
    visible (*S, V) bool: in front of the near plane, inside the image, part of a face and not occluded.
    """

    uv: torch.Tensor
    depth: torch.Tensor
    visible: torch.Tensor

    def __repr__(self) -> str:
        return (f"VertexVisibility(batch_shape={tuple(self.visible.shape[:-1])}, vertices={self.visible.shape[-1]}, "
                f"visible={int(self.visible.sum())})")


def _referenced(inp: RasterInputs) -> torch.Tensor:
    """(V,) or (B, V) bool: vertices that are a corner of some face with three distinct corners."""
    faces = inp.faces
    proper = (faces[..., 0] != faces[..., 1]) & (faces[..., 1] != faces[..., 2]) & (faces[..., 0] != faces[..., 2])
    V = inp.num_vertices
    if faces.ndim == 2:
        used = torch.zeros(V, dtype=torch.bool, device=faces.device)
        used[faces[proper].reshape(-1)] = True
        return used
    M = faces.shape[0]
    rows = (faces + (torch.arange(M, device=faces.device) * V)[:, None, None])[proper]
    used = torch.zeros(M * V, dtype=torch.bool, device=faces.device)
    used[rows.reshape(-1)] = True
    return used.view(M, V).index_select(0, inp.mesh_index)


def vertex_visibility(mesh, cameras: Cameras, image_size=None, *, depth_tolerance: float = 1e-2,
                      near: float = 1e-3, cull_backfaces: bool = False) -> VertexVisibility:
    """Projections and visibility of every vertex: a `VertexVisibility` of batch shape S.

    Mesh, cameras, image_size, batching and dtypes as `rasterize` (a `PaddedMeshes` bank or M
    meshes under cameras (M, P) included). depth_tolerance: relative depth slack (≥ 0); an occluder
    must lie nearer than (1 − depth_tolerance) × the vertex's depth. near, cull_backfaces: as
    `rasterize` (culled faces occlude nothing).
    """
    depth_tolerance = float(depth_tolerance)
    if not 0 <= depth_tolerance < 1:
        raise GeometryError(f"vertex_visibility: depth_tolerance must lie in [0, 1), got {depth_tolerance}")
    near = float(near)
    if not near > 0:
        raise GeometryError(f"near must be positive, got {near}")
    inp = prepare(mesh, cameras, image_size, who="vertex_visibility")
    B, V = inp.batch, inp.num_vertices
    H, W = inp.image_size
    X = inp.verts_cam  # (B, V, 3), with grad
    fx, s, cx, fy, cy = (p[:, None] for p in intrinsics_parts(inp.K))
    x, y, z = X.unbind(-1)
    xn, yn = x / z, y / z
    uv = torch.stack([(fx * xn + s * yn) + cx, fy * yn + cy], dim=-1)

    with torch.no_grad():
        pix_to_face = visible_faces_of(inp, cull_backfaces=cull_backfaces, near=near).reshape(B, H * W)
        u, v = uv.detach().unbind(-1)
        zd = z.detach()
        inside = (zd >= near) & (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
        col = torch.where(inside, torch.floor(u + 0.5), 0).long().clamp(0, W - 1)
        row = torch.where(inside, torch.floor(v + 0.5), 0).long().clamp(0, H - 1)
        face = pix_to_face.gather(1, row * W + col)  # (B, V): the face covering the nearest pixel
        covered = inside & (face >= 0)
        view = torch.arange(B, device=face.device)[:, None].expand(B, V)
        fid = face.clamp_min(0)
        corners = inp.faces[fid] if inp.faces.ndim == 2 else inp.faces[inp.mesh_index[view], fid]  # (B, V, 3)
        own = (corners == torch.arange(V, device=face.device)[:, None]).any(-1)
        # depth of the covering face's plane along the ray through the vertex: (X0 · N) / (d · N), d = X_v / z_v
        P = X.detach().reshape(B * V, 3).index_select(0, (corners + (view * V)[..., None]).reshape(-1))
        P = P.view(B, V, 3, 3).permute(3, 2, 0, 1)  # (xyz, corner, B, V)
        normal = cross_rows(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0])
        den = normal[0] * xn.detach() + normal[1] * yn.detach() + normal[2]
        plane = (P[0, 0] * normal[0] + P[1, 0] * normal[1] + P[2, 0] * normal[2]) / den
        occluded = covered & ~own & (plane > 0) & (plane < (1.0 - depth_tolerance) * zd)
        visible = inside & ~occluded & _referenced(inp)

    S = inp.batch_shape
    return VertexVisibility(uv.reshape(*S, V, 2), z.reshape(*S, V), visible.reshape(*S, V))
