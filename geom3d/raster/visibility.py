"""The rasterizer's visibility pass (no gradients): which face is nearest at each pixel centre.

Face-parallel and binned. Every (view, face) pair, an "instance", gets the pixel box of its
projection, clipped to the image and to the near plane, and its three edge functions and its 1/z
as planes a·u + b·v + c in pixel coordinates: from the projected corners for triangles in front
of the near plane, by the homogeneous formulas of `edges` for triangles that cross it. Both are
written so that the two triangles of a shared edge compute exactly opposite edge values, which
makes the top-left rule exact. Instances are binned by box size (`binning`); a bin of n instances tests
candidate pixels of shape (Sh, Sw, n) -- the instance dimension innermost, so every op runs over
long contiguous rows -- and one `scatter_reduce(amax)` resolves the z-buffer on an int64 key:
the float32 bit pattern of 1/z (monotone for positive floats) in the high 32 bits and the bitwise
complement of the face index in the low 32 bits, so the nearest face wins and, at equal float32
depth, the lowest face index. Uncovered candidates get a zero high word and never win.

Coverage: a pixel centre is covered when it lies inside the triangle (a centre exactly on an edge
counts for a left or top edge only), and the hit lies at camera depth z ≥ near. Triangles that cross the near
plane are clipped there exactly (a per-pixel depth test in their bins); triangles entirely at
z < near are dropped. Degenerate triangles and triangles seen edge-on cover nothing.
"""

from __future__ import annotations

import torch

from .binning import pixel_boxes, plan_bins
from .edges import cross_rows, intrinsics_parts, pixel_plane
from .inputs import RasterInputs

__all__ = ["visible_faces_of", "clipped_extents"]

# Instances set up at once (bounds memory for large batches) and candidate pixels per tensor op.
CHUNK_INSTANCES = 1 << 16
CHUNK_CANDIDATES = 1 << 18
_EMPTY = (1 << 32) - 1  # z-buffer start: above every uncovered key, below every covered one
_LOW_BITS = 0xFFFFFFFF


def clipped_extents(corners: torch.Tensor, K: torch.Tensor, near: float):
    """Projected extents (umin, umax, vmin, vmax), each (...), of triangles (..., 3, 3) [corner,
    xyz] in camera coordinates after clipping them to z ≥ near; K broadcasts as (..., 3, 3)."""
    z = corners[..., 2]
    nxt = corners.roll(-1, dims=-2)
    zn = nxt[..., 2]
    crosses = (z - near) * (zn - near) < 0
    t = ((near - z) / torch.where(crosses, zn - z, torch.ones_like(z))).unsqueeze(-1)
    hits = corners + t * (nxt - corners)  # edge k meets z = near (where it crosses)
    points = torch.cat([corners, hits], dim=-2)  # (..., 6, 3)
    valid = torch.cat([z >= near, crosses], dim=-1)
    pz = points[..., 2].clamp_min(near)
    xn, yn = points[..., 0] / pz, points[..., 1] / pz
    fx, s, cx, fy, cy = (p[..., None] for p in intrinsics_parts(K))
    u = (fx * xn + s * yn) + cx
    v = fy * yn + cy
    inf = torch.full_like(u, float("inf"))
    return (torch.where(valid, u, inf).amin(-1), torch.where(valid, u, -inf).amax(-1),
            torch.where(valid, v, inf).amin(-1), torch.where(valid, v, -inf).amax(-1))


def _min3(a, b, c):
    return torch.minimum(torch.minimum(a, b), c)


def _max3(a, b, c):
    return torch.maximum(torch.maximum(a, b), c)


def _rolled(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners j = i + 1 and k = i + 2 (mod 3) of rows (3 corners, ...), for the edge opposite i."""
    return torch.cat([x[1:], x[:1]]), torch.cat([x[2:], x[:2]])


def _oriented(a, b, c, z_planes, orient):
    """Stack edge planes (3, k) and the 1/z plane, orient the edges inside-positive, and add the
    top-left thresholds: (A, B, C) (4, k) each and thresholds (3, k)."""
    a, b, c = a * orient, b * orient, c * orient  # inside: every edge function ≥ 0
    # Top-left rule: a centre on an edge counts where the edge is a left edge (a > 0) or a top edge
    # (a = 0, b > 0); elsewhere the edge function must be > 0, i.e. ≥ the tiniest float.
    top_left = (a > 0) | ((a == 0) & (b > 0))
    threshold = (~top_left).to(a.dtype) * torch.finfo(a.dtype).tiny
    za, zb, zc = z_planes
    bad = ~(torch.isfinite(za) & torch.isfinite(zb) & torch.isfinite(zc))
    if bool(bad.any()):  # 1/z overflows (a nearly degenerate sliver): never covered
        threshold[:, bad] = float("inf")
    return torch.cat([a, za[None]]), torch.cat([b, zb[None]]), torch.cat([c, zc[None]]), threshold


def _screen_planes(S: torch.Tensor):
    """Planes of triangles in front of the near plane from their projected corners S (u, v, 1/z;
    3 corners; k): E_i = (v_j − v_k)·u + (u_k − u_j)·v + (u_j v_k − u_k v_j), and 1/z, linear on
    screen, through the corners' 1/z."""
    U, V, iz = S[0], S[1], S[2]
    (Uj, Uk), (Vj, Vk) = _rolled(U), _rolled(V)
    a, b, c = Vj - Vk, Uk - Uj, Uj * Vk - Uk * Vj  # exact negatives on a shared edge
    area = (U[1] - U[0]) * (V[2] - V[0]) - (U[2] - U[0]) * (V[1] - V[0])  # = Σ E_i
    # 1/z = 1/z_0 + Σ λ_i (1/z_i − 1/z_0), λ_i = E_i / area; its constant term taken at corner 0,
    # since Σ c_i / z_i loses most digits to cancellation (the c_i are large, area is small).
    d1, d2 = iz[1] - iz[0], iz[2] - iz[0]
    za = (a[1] * d1 + a[2] * d2) / area
    zb = (b[1] * d1 + b[2] * d2) / area
    zc = (iz[0] - za * U[0]) - zb * V[0]
    return _oriented(a, b, c, (za, zb, zc), torch.sign(area))


def _homogeneous_planes(X: torch.Tensor, K: torch.Tensor):
    """Planes of triangles X (3 xyz, 3 corners, k) in camera coordinates, K (k, 3, 3), by the
    homogeneous formulas of `edges` (valid across the near plane)."""
    Cx, Cy, Cz = cross_rows(torch.cat([X[:, 1:], X[:, :1]], 1), torch.cat([X[:, 2:], X[:, :2]], 1))  # X_j × X_k
    # N from differences: Σ C is the same plane but rounds worse for small, distant triangles
    (Nx, Ny, Nz), det = _normal_and_det(X)
    fx, s, cx, fy, cy = intrinsics_parts(K)
    a, b, c = pixel_plane(torch.stack([Cx, Cy, Cz], -1), fx, s, cx, fy, cy)  # (3, k) each
    za, zb, zc = pixel_plane(torch.stack([Nx, Ny, Nz], -1), fx, s, cx, fy, cy)
    return _oriented(a, b, c, (za / det, zb / det, zc / det), torch.sign(det))  # 1/z = (d · N) / det


def _normal_and_det(X: torch.Tensor):
    """N = (X1 − X0) × (X2 − X0) (three components) and det = X0 · N (< 0: facing the camera) of
    triangles X (3 xyz, 3 corners, k) in camera coordinates."""
    Nx, Ny, Nz = cross_rows(X[:, 1] - X[:, 0], X[:, 2] - X[:, 0])
    return (Nx, Ny, Nz), (X[0, 0] * Nx + X[1, 0] * Ny) + X[2, 0] * Nz


class _Chunk:
    """The (view, face) instances of views [b0, b1) that touch the image, binned and set up.

    Planar layout throughout (struct of arrays, instances innermost), so every op runs over long
    contiguous rows. Cheap tests (depth range, orientation, pixel box) come first; planes are made
    only for the kept instances, already in bin order: from the projected corners for triangles in
    front of the near plane, by the homogeneous formulas for the few that cross it.
    """

    def __init__(self, inp: RasterInputs, K: torch.Tensor, points: torch.Tensor, screen: torch.Tensor, b0: int,
                 b1: int, cull_backfaces: bool, near: float):
        H, W = inp.image_size
        ox, oy = _origin(inp.image_size)
        F, V = inp.num_faces, inp.num_vertices
        device = points.device
        faces = inp.view_faces(slice(b0, b1))
        faces = faces.permute(2, 0, 1) if faces.ndim == 3 else faces.T[:, None]
        offsets = (torch.arange(b0, b1, device=device) * V)[:, None]
        rows = (faces + offsets).reshape(3, -1)  # (3 corners, n): vertex rows of every instance
        n = rows.shape[1]
        S = screen.index_select(1, rows.reshape(-1)).view(4, 3, n)  # u, v, 1/z, z per corner
        U, Vv, z = S[0], S[1], S[3]
        zmin, zmax = _min3(z[0], z[1], z[2]), _max3(z[0], z[1], z[2])
        clip = zmin < near
        area = (U[1] - U[0]) * (Vv[2] - Vv[0]) - (U[2] - U[0]) * (Vv[1] - Vv[0])  # < 0: facing the camera
        keep = (zmax >= near) & (area != 0)
        if cull_backfaces:
            keep &= area < 0
        umin, umax = _min3(U[0], U[1], U[2]), _max3(U[0], U[1], U[2])
        vmin, vmax = _min3(Vv[0], Vv[1], Vv[2]), _max3(Vv[0], Vv[1], Vv[2])
        crossing = (clip & (zmax >= near)).nonzero().squeeze(1)
        if crossing.numel():  # projections of corners behind the camera mean nothing: use 3D
            X = points.index_select(1, rows[:, crossing].reshape(-1)).view(3, 3, -1)
            det = _normal_and_det(X)[1]
            keep[crossing] = (det < 0) if cull_backfaces else (det != 0)
            view = b0 + torch.div(crossing, F, rounding_mode="floor")
            ext = clipped_extents(X.permute(2, 1, 0), K[view], near)
            for full, part in zip((umin, umax, vmin, vmax), ext):
                full[crossing] = part
        x0, x1, y0, y1, on_image = pixel_boxes(umin + ox, umax + ox, vmin + oy, vmax + oy, (H, W))
        keep &= on_image

        kept = keep.nonzero().squeeze(1)
        self.width = (x1 - x0 + 1).index_select(0, kept)
        self.height = (y1 - y0 + 1).index_select(0, kept)
        self.clip = clip.index_select(0, kept)
        order, self.bins = plan_bins(self.width, self.height, self.clip, (H, W), CHUNK_CANDIDATES)
        take = kept.index_select(0, order)
        self.x0, self.y0 = torch.stack([x0, y0]).index_select(1, take)
        view = torch.div(take, F, rounding_mode="floor")
        self.row_base = (view + b0) * H
        self.low = (~(take - view * F)).to(torch.int32)  # bit pattern of 2³² − 1 − face
        self.a, self.b, self.c, self.threshold = _screen_planes(S.view(12, n).index_select(1, take).view(4, 3, -1))
        clipped = self.clip.index_select(0, order).nonzero().squeeze(1)
        if clipped.numel():
            X = points.index_select(1, rows[:, take[clipped]].reshape(-1)).view(3, 3, -1)
            for mine, theirs in zip((self.a, self.b, self.c, self.threshold),
                                    _homogeneous_planes(X, K[b0 + view[clipped]])):
                mine[:, clipped] = theirs


def _origin(image_size) -> tuple[int, int]:
    """Integer pixel near the image centre: the visibility pass measures pixel coordinates from it,
    which halves the size of u·v products in the edge functions (and their rounding)."""
    return image_size[1] // 2, image_size[0] // 2


def _screen_vertices(K: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(u, v, 1/z, z) (4, B·V) of all camera-space vertices (B, 3, V) under K (B, 3, 3); u, v, 1/z
    are meaningless where z ≤ 0."""
    fx, s, cx, fy, cy = (p[:, None] for p in intrinsics_parts(K))
    x, y, z = points.view(3, K.shape[0], -1)
    iz = 1.0 / z
    xn, yn = x * iz, y * iz
    return torch.stack([(fx * xn + s * yn) + cx, fy * yn + cy, iz, z]).view(4, -1)


@torch.no_grad()
def visible_faces_of(inp: RasterInputs, *, cull_backfaces: bool = False, near: float = 1e-3) -> torch.Tensor:
    """pix_to_face (B, H, W) int64 of a checked batch (flat views): the nearest covered face, −1
    where empty."""
    B, F = inp.batch, inp.num_faces
    H, W = inp.image_size
    device = inp.verts_cam.device
    points = inp.verts_cam.detach().reshape(B * inp.num_vertices, 3).T.contiguous()  # (3, B·V)
    ox, oy = _origin((H, W))
    K = inp.K.clone()
    K[:, 0, 2] -= ox  # pixel coordinates relative to the origin
    K[:, 1, 2] -= oy
    screen = _screen_vertices(K, points)
    buffer = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=device)
    steps = torch.arange(max(H, W), device=device)
    inv_near = 1.0 / near
    views_per_chunk = max(1, CHUNK_INSTANCES // F)

    for b0 in range(0, B, views_per_chunk):
        ch = _Chunk(inp, K, points, screen, b0, min(B, b0 + views_per_chunk), cull_backfaces, near)
        for bn in ch.bins:
            sl = slice(bn.start, bn.stop)
            sh, sw = bn.height, bn.width
            # windows of Sh × Sw pixels, shifted to lie inside the image (they still hold the box)
            cols = ch.x0[sl].clamp_max(W - sw) + steps[:sw, None]  # (Sw, n)
            rows = ch.y0[sl].clamp_max(H - sh) + steps[:sh, None]  # (Sh, n)
            au = ch.a[:, None, sl] * (cols - ox).to(ch.a.dtype)  # (4, Sw, n)
            bv = ch.b[:, None, sl] * (rows - oy).to(ch.a.dtype) + ch.c[:, None, sl]  # (4, Sh, n)
            planes = bv[:, :, None] + au[:, None]  # (4, Sh, Sw, n): three edges and 1/z
            inside = planes[:3] >= ch.threshold[:, None, None, sl]
            covered = inside[0] & inside[1] & inside[2]
            inv_z = planes[3]
            if bn.clip:
                covered &= inv_z <= inv_near
            high = inv_z.float().view(torch.int32) * covered  # 0 where uncovered
            low = ch.low[sl].expand_as(high)
            key = torch.stack([low, high], dim=-1).view(torch.int64)  # little-endian: high word second
            pixel = ((ch.row_base[sl] + rows) * W)[:, None] + cols  # (Sh, Sw, n)
            buffer.scatter_reduce_(0, pixel.reshape(-1), key.reshape(-1), "amax")

    face = _LOW_BITS - (buffer & _LOW_BITS)
    return torch.where(buffer > _EMPTY, face, -1).reshape(B, H, W)
