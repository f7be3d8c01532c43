"""Differentiable edge antialiasing of a rasterized image (the idea of nvdiffrast's `antialias`,
Laine et al. 2020, written in PyTorch).

A hard rasterization is piecewise constant in the vertex positions: moving a silhouette edge
changes which pixel centres are covered, never the colours, so the image has no gradient there.
Antialiasing blends the two pixels on either side of a silhouette edge by how far the edge lies
between their centres, which makes the colours a smooth function of the edge's position.

For every pair of horizontally or vertically adjacent pixels showing different faces (or a face
and the background), start at the face of the nearer pixel (the front face) and follow the segment
between the two pixel centres across the edges it shares with faces that continue the surface on
screen (`neighbours_across_edges`), until it leaves through a silhouette edge: a boundary edge, or one
where the neighbouring face folds back behind it (both on the same side of the edge on screen,
whatever the winding). t in [0, 1] is where the segment crosses that edge. An edge beyond the
midpoint (t > ½) covers part of the other pixel, which moves towards the front colour by t − ½; an
edge before it (t < ½) leaves part of the front pixel uncovered, which moves towards the other
colour by ½ − t. For an axis-parallel edge this is exactly the covered fraction of the pixel's
area. Each edge is handled by the pairs across it: horizontal pairs for edges steeper than 45°,
vertical pairs for flatter ones, so no edge is blended twice; a pixel blended from several sides
stays within the range of the colours it mixes. t is computed from the projected corners with
autograd, so gradients reach vertices and cameras (and, through the blended colours, whatever
made the image). Segments whose walk needs more than a few faces are left unblended.
"""

from __future__ import annotations

import torch

from ..cameras import Cameras
from ..errors import GeometryError
from .edges import intrinsics_parts
from .fragments import Fragments
from .inputs import prepare

__all__ = ["antialias"]


def _screen_corners(inp, near: float):
    """Projected corners uv (B·F, 3, 2) with grad, and whether every corner is in front of `near`
    (B·F,), for the faces of every view."""
    B, V = inp.batch, inp.num_vertices
    corners = inp.verts_cam.reshape(B * V, 3)[inp.corner_rows()]  # (B, F, 3, 3)
    fx, s, cx, fy, cy = (p[:, None, None] for p in intrinsics_parts(inp.K))
    x, y, z = corners.unbind(-1)
    zc = z.clamp_min(near)
    uv = torch.stack([(fx * (x / zc) + s * (y / zc)) + cx, fy * (y / zc) + cy], dim=-1)
    return uv.reshape(-1, 3, 2), (z.detach() >= near).all(-1).reshape(-1)


def neighbours_across_edges(faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """The face across each edge: (..., F, 3) int64 for faces (..., F, 3), edge k running from
    corner k to corner k + 1; −1 on a boundary edge (or where more than two faces meet). Edges are
    matched by vertex index: a seam (two vertices at one position) counts as a boundary.
    (`geom3d.gl.face_ids.neighbours_opposite_corners` welds positions and numbers edges by the
    opposite corner.)"""
    flat = faces.reshape(-1, faces.shape[-2], 3)
    out = torch.full_like(flat, -1)
    for m, f in enumerate(flat):
        a, b = f, f.roll(-1, dims=1)
        key = (torch.minimum(a, b) * num_vertices + torch.maximum(a, b)).reshape(-1)  # (3F,) edge ids
        k, order = torch.sort(key, stable=True)
        starts = torch.ones_like(k, dtype=torch.bool)
        starts[1:] = k[1:] != k[:-1]
        run = torch.cumsum(starts.long(), 0) - 1
        first = (starts & (torch.bincount(run)[run] == 2)).nonzero().squeeze(1)  # runs of exactly two
        i, j = order[first], order[first + 1]
        nb = out[m].view(-1)
        nb[i] = torch.div(j, 3, rounding_mode="floor")
        nb[j] = torch.div(i, 3, rounding_mode="floor")
    return out.reshape(faces.shape)


def _leaving(tri: torch.Tensor, start: torch.Tensor, end: torch.Tensor):
    """Where the line start → end (n, 2) leaves triangles tri (n, 3, 2) (Cyrus–Beck clipping
    against the three inside-positive edge functions): t (n,) (inf if never) and the edge (n,)."""
    a, d = tri, tri.roll(-1, dims=1) - tri  # edge k runs from corner k to corner k + 1
    area = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) \
        - (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])
    sign = torch.sign(area)[:, None]

    def edge(p):  # (n, 3)
        w = p[:, None, :] - a
        return sign * (d[..., 0] * w[..., 1] - d[..., 1] * w[..., 0])

    e0, e1 = edge(start), edge(end)
    leaving = e1 < e0
    t = torch.where(leaving, e0 / torch.where(leaving, e0 - e1, torch.ones_like(e0)), torch.full_like(e0, float("inf")))
    t_out, k = t.min(dim=1)
    return torch.where(area != 0, t_out, torch.full_like(t_out, float("inf"))), k


def _side(d: torch.Tensor, a: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Which side of the line a + s·d (n, 2) the corner of tri (n, 3, 2) off that line lies on (the
    sum of the three cross products: corners on the line give exactly 0)."""
    w = tri - a[:, None]
    return (d[:, None, 0] * w[..., 1] - d[:, None, 1] * w[..., 0]).sum(1)


def _walk(face, view, start, end, uv, in_front, neighbours, mesh_index, F: int, steps: int = 4):
    """Follow the segment start → end (n, 2) from the front face across edges it shares with other
    faces that continue the surface on screen, until it leaves through a silhouette edge (a boundary
    edge, or one where the neighbour folds back behind it or is clipped) within the segment. Returns per pair whether
    it did, that edge (n,) and the face it belongs to (n,)."""
    n = face.shape[0]
    silhouette = torch.zeros(n, dtype=torch.bool, device=face.device)
    edge = torch.zeros(n, dtype=torch.int64, device=face.device)
    active = (face >= 0) & in_front[view * F + face.clamp_min(0)]
    face = face.clone()
    for _ in range(steps):
        idx = active.nonzero().squeeze(1)
        if not idx.numel():
            break
        rows = view[idx] * F + face[idx]
        t, k = _leaving(uv[rows], start[idx], end[idx])
        inside_segment = t <= 1
        if neighbours.ndim == 2:
            nb = neighbours[face[idx], k]
        else:
            nb = neighbours[mesh_index[view[idx]], face[idx], k]
        nb_rows = view[idx] * F + nb.clamp_min(0)
        # the surface continues across the edge when the neighbour lies on the other side of it on
        # screen; on the same side it folds away behind the edge: a silhouette (whatever the winding)
        here, there = uv[rows], uv[nb_rows]
        a = here.gather(1, k[:, None, None].expand(-1, 1, 2))[:, 0]
        d = here.gather(1, ((k + 1) % 3)[:, None, None].expand(-1, 1, 2))[:, 0] - a
        unfolded = _side(d, a, here) * _side(d, a, there) < 0
        same_way = (nb >= 0) & in_front[nb_rows] & unfolded
        done = inside_segment & ~same_way  # leaves the surface here
        silhouette[idx[done]] = True
        edge[idx[done]] = k[done]
        moving = inside_segment & same_way
        face[idx[moving]] = nb[moving]
        active[idx[~moving]] = False
    return silhouette, edge, face


def antialias(image: torch.Tensor, fragments: Fragments, mesh, cameras: Cameras, *, near: float = 1e-3) -> torch.Tensor:
    """Blend silhouette-edge pixels of `image` (*S, H, W, C) by the edges' sub-pixel positions: (*S, H, W, C).

    image: what was rendered from `fragments` (e.g. `interpolate(fragments, colours)`), over any
        background; channels last. fragments, mesh, cameras: those of the render (the same mesh and
        cameras as given to `rasterize`). Faces with a corner nearer than `near` are not blended.
    Differentiable w.r.t. the image and, through the edge positions, the vertices and cameras.
    """
    image = torch.as_tensor(image)
    S, (H, W) = tuple(fragments.batch_shape), fragments.image_size
    if tuple(image.shape[:-1]) != (*S, H, W):
        raise GeometryError(f"antialias: image must have shape {(*S, H, W)} + (C,), got {tuple(image.shape)}")
    inp = prepare(mesh, cameras, (H, W), who="antialias")
    if tuple(inp.batch_shape) != S:
        raise GeometryError(f"antialias: fragments of batch shape {S} do not come from these cameras "
                            f"(batch shape {tuple(inp.batch_shape)})")
    B, F = inp.batch, inp.num_faces
    uv, in_front = _screen_corners(inp, near)
    dtype = torch.promote_types(image.dtype, uv.dtype) if image.is_floating_point() else uv.dtype
    flat = image.to(dtype).reshape(B * H * W, -1)
    p2f = fragments.pix_to_face.reshape(B, H, W).to(uv.device)
    depth = fragments.depth.detach().reshape(B, H, W)
    neighbours = neighbours_across_edges(inp.faces, inp.num_vertices)  # (F, 3) or (M, F, 3)
    u = uv.detach()
    out = flat
    lo, hi = flat.detach().clone(), flat.detach().clone()  # range of the colours each pixel blends
    for horizontal in (True, False):
        a = p2f[:, :, :-1] if horizontal else p2f[:, :-1, :]
        b = p2f[:, :, 1:] if horizontal else p2f[:, 1:, :]
        da = depth[:, :, :-1] if horizontal else depth[:, :-1, :]
        db = depth[:, :, 1:] if horizontal else depth[:, 1:, :]
        view, row, col = (a != b).nonzero().unbind(1)  # pairs: the first pixel of each
        fa, fb = a[view, row, col], b[view, row, col]
        za, zb = da[view, row, col], db[view, row, col]
        first_front = (fb < 0) | ((fa >= 0) & (za <= zb))
        first = torch.stack([col, row], -1).to(uv.dtype)
        second = first + torch.tensor([1.0, 0.0] if horizontal else [0.0, 1.0], dtype=uv.dtype, device=uv.device)
        front_px = torch.where(first_front[:, None], first, second)
        back_px = torch.where(first_front[:, None], second, first)
        with torch.no_grad():
            silhouette, edge, face = _walk(torch.where(first_front, fa, fb), view, front_px, back_px, u, in_front,
                                           neighbours, inp.mesh_index, F)
            dk = (u.roll(-1, dims=1) - u)[view * F + face.clamp_min(0), edge]  # direction of the edge met
            steep = dk[:, 1].abs() >= dk[:, 0].abs()
            sel = (silhouette & (steep if horizontal else ~steep)).nonzero().squeeze(1)
        if not sel.numel():
            continue
        t, _ = _leaving(uv[view[sel] * F + face[sel]], front_px[sel], back_px[sel])  # with grad: the edge's place
        t = t.clamp(0, 1)
        base = (view[sel] * H + row[sel]) * W + col[sel]
        step = 1 if horizontal else W
        front_index = torch.where(first_front[sel], base, base + step)
        back_index = torch.where(first_front[sel], base + step, base)
        front_colour, back_colour = flat[front_index], flat[back_index]
        # the edge beyond the midpoint covers part of the back pixel; before it, uncovers the front one
        towards_front = (t - 0.5).clamp_min(0)[:, None] * (front_colour - back_colour)
        towards_back = (0.5 - t).clamp_min(0)[:, None] * (back_colour - front_colour)
        out = out.index_add(0, back_index, towards_front).index_add(0, front_index, towards_back)
        for index, partner in ((back_index, front_colour), (front_index, back_colour)):
            rows = index[:, None].expand_as(partner)
            lo.scatter_reduce_(0, rows, partner.detach(), "amin")
            hi.scatter_reduce_(0, rows, partner.detach(), "amax")
    # a pixel blended from several sides (a feature thinner than a pixel, a corner) stays within
    # the colours it mixes; where-based, so pixels within range keep their whole gradient
    out = torch.where(out > hi, hi, torch.where(out < lo, lo, out))
    return out.reshape(image.shape[:-1] + (out.shape[-1],))
