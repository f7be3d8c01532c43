"""Exact face ids at pixel centres next to shared edges, in float64 numpy (`refine_face_ids`).

llvmpipe snaps vertices to 1/256 pixel, so GL may give a pixel centre within ~1/512 pixel of an
edge to the face across it; ray casting and `geom3d.rasterize` decide exactly. This settles such
pixels by walking across edges (`neighbours_opposite_corners`) until the face containing the ray is found.
"""

from __future__ import annotations

import numpy as np
import torch

from ..cameras import Cameras

__all__ = ["neighbours_opposite_corners", "refine_face_ids"]


def neighbours_opposite_corners(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """For each face and corner k, the face sharing the edge opposite corner k, or −1: (F, 3).
    (Not `geom3d.raster.antialiasing.neighbours_across_edges`, which numbers edge k from corner k to
    k + 1, matches vertex indices, not positions, and gives −1 where more than two faces meet.)

    Vertices at the same position count as one (meshes split at seams or into per-face corners
    still connect). At an edge of more than two faces, one of the others is named."""
    _, canon = np.unique(v.numpy(), axis=0, return_inverse=True)
    f = torch.from_numpy(canon.reshape(-1))[faces]
    a, b = f[:, [1, 2, 0]], f[:, [2, 0, 1]]
    n_vertices = int(canon.max()) + 1 if canon.size else 1
    key = (torch.minimum(a, b) * n_vertices + torch.maximum(a, b)).reshape(-1)
    # a degenerate edge (both ends at one position) pairs with nothing
    key = torch.where(a.reshape(-1) == b.reshape(-1), -1 - torch.arange(key.numel()), key)
    order = torch.sort(key, stable=True).indices
    sk = key[order]
    partner = torch.full_like(key, -1)
    same = sk[1:] == sk[:-1]
    partner[order[:-1][same]] = order[1:][same]
    partner[order[1:][same]] = order[:-1][same]
    return torch.where(partner >= 0, torch.div(partner, 3, rounding_mode="floor"), -1).reshape(-1, 3)


def _edge_planes(corners: np.ndarray) -> np.ndarray:
    """Row k = X_{k+1} × X_{k+2} for camera-space triangles (..., 3, 3) [corner, xyz]: a ray r
    crosses the triangle's plane at barycentric coordinates b_k ∝ row_k · r."""
    return np.stack([np.cross(corners[..., (k + 1) % 3, :], corners[..., (k + 2) % 3, :]) for k in range(3)],
                    axis=-2)


def _barycentrics(planes: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (N, 3) of rays (x, y, 1) in triangles given by their edge planes
    (N, 3, 3), up to a positive factor per row (the ray is inside iff all are >= 0)."""
    w = planes[:, :, 0] * x[:, None] + planes[:, :, 1] * y[:, None] + planes[:, :, 2]
    return w * np.sign(w.sum(-1))[:, None]


def refine_face_ids(face: torch.Tensor, cams: Cameras, gpu, depth: torch.Tensor | None = None,
                     rounds: int = 2) -> torch.Tensor:
    """Settle pixels whose centre lies next to an edge shared by two faces exactly, in float64.

    llvmpipe snaps vertices to 1/256 pixel, so a pixel centre within ~1/512 pixel of an edge may
    go to the face across it. For each covered pixel, the barycentric coordinates of its ray in
    the GL face are checked; one outside the face walks to the neighbour across the edge it
    violates most (at most `rounds` steps) and takes the first face that contains the ray. The
    depth of such pixels (if given, updated in place) becomes the camera z of the ray's hit on
    the new face. numpy, not torch: one thread does this best on shared cores.

    face (B, H, W) int64 GL face ids (−1 empty), cams of batch shape (B,), gpu a `GPUMesh` (its
    CPU vertices, faces and edge neighbours); returns the settled ids (B, H, W)."""
    ids = face.numpy().copy()
    B, h, w = ids.shape
    view, row, col = np.nonzero(ids >= 0)
    if view.size == 0:
        return face
    v, faces = gpu.vertices.double().numpy(), gpu.faces.numpy()
    n_faces, n_vertices = faces.shape[0], v.shape[0]
    R, t, K = (x.detach().double().cpu().numpy() for x in (cams.R, cams.t, cams.K))
    verts_cam = v @ R.transpose(0, 2, 1) + t[:, None, :]  # (B, V, 3)
    Kinv = np.linalg.inv(K)
    # ray K⁻¹ (u, v, 1) of each pixel centre (camera z = 1)
    yn = row * Kinv[view, 1, 1] + Kinv[view, 1, 2]
    xn = col * Kinv[view, 0, 0] + row * Kinv[view, 0, 1] + Kinv[view, 0, 2]
    current = ids[view, row, col]
    table = verts_cam.reshape(-1, 3)

    def planes_of(face_ids, views):
        return _edge_planes(table[faces[face_ids] + (views * n_vertices)[:, None]])

    if view.size > B * n_faces:  # cheaper to tabulate every face of every view once
        planes = _edge_planes(verts_cam[:, faces]).reshape(B * n_faces, 3, 3)[view * n_faces + current]
    else:
        planes = planes_of(current, view)
    bary = _barycentrics(planes, xn, yn)
    neighbours = gpu.neighbours().numpy()
    todo, cand = np.arange(view.size), current.copy()
    for step in range(rounds + 1):
        inside = (bary >= 0).all(-1)
        found = inside & (cand != current[todo])
        moved = todo[found]
        if moved.size:
            current[moved] = cand[found]
            if depth is not None:
                corners = table[faces[current[moved]] + (view[moved] * n_vertices)[:, None]]
                normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
                ray = np.stack([xn[moved], yn[moved], np.ones(moved.size)], -1)
                z = (corners[:, 0] * normal).sum(-1) / (normal * ray).sum(-1)  # the rays have z = 1
                depth[view[moved], row[moved], col[moved]] = torch.from_numpy(z).to(depth.dtype)
        still = ~inside
        if step == rounds or not still.any():
            break
        todo, cand, bary = todo[still], cand[still], bary[still]
        nxt = neighbours[cand, bary.argmin(-1)]
        ok = nxt >= 0
        todo, cand = todo[ok], nxt[ok]
        bary = _barycentrics(planes_of(cand, view[todo]), xn[todo], yn[todo])
    ids[view, row, col] = current
    return torch.from_numpy(ids)
