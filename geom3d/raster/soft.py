"""A soft silhouette (SoftRas, Liu et al. 2019) for gradients at silhouette edges.

Each face f gives pixel p the probability D_f(p) = sigmoid(δ · d²(p, f) / σ), where d is the
distance in pixels from the pixel centre to the edges of the face's projection and δ = +1 inside,
−1 outside; faces combine as 1 − Π_f (1 − D_f). log(1 − D) = −softplus(δ d² / σ) keeps the product
stable. Only pixels within the distance where D_f < eps are visited (binned like the visibility
pass), so the cost grows with the faces' size, not with faces × pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..cameras import Cameras
from ..errors import GeometryError
from .binning import pixel_boxes, plan_bins
from .edges import intrinsics_parts
from .inputs import prepare

__all__ = ["soft_silhouette"]

CHUNK_CANDIDATES = 1 << 17


def soft_silhouette(mesh, cameras: Cameras, image_size=None, *, sigma: float = 1.0, eps: float = 1e-4,
                    cull_backfaces: bool = False, near: float = 1e-3) -> torch.Tensor:
    """Soft silhouettes (*S, H, W) in [0, 1], differentiable w.r.t. vertices and cameras.

    Mesh, cameras, image_size, batching and dtypes as `rasterize`. sigma: sharpness in squared
    pixels (an edge blurs over about ±3·√sigma pixels); eps: contributions below eps are skipped.
    Faces with a corner at camera depth < near are left out (no clipping here), as are faces
    degenerate on screen. As sigma → 0 the result tends to the hard mask `rasterize(...).mask`.

    Beside `antialias` (which blends the colours of a hard render across silhouette edges), this is
    the other route to silhouette gradients: every edge gets a smooth coverage ramp whose gradient
    moves the vertices (compare it with a target mask, or use it as alpha over a background).
    """
    if not sigma > 0:
        raise GeometryError(f"soft_silhouette: sigma must be positive, got {sigma}")
    if not 0 < eps < 0.5:
        raise GeometryError(f"soft_silhouette: eps must lie in (0, 0.5), got {eps}")
    inp = prepare(mesh, cameras, image_size, who="soft_silhouette")
    B, F_, V = inp.batch, inp.num_faces, inp.num_vertices
    H, W = inp.image_size
    corners = inp.verts_cam.reshape(B * V, 3)[inp.corner_rows()]  # (B, F, 3, 3), with grad
    fx, s, cx, fy, cy = (p[:, None, None] for p in intrinsics_parts(inp.K))
    x, y, z = corners.unbind(-1)
    zc = z.clamp_min(near)
    uv = torch.stack([(fx * (x / zc) + s * (y / zc)) + cx, fy * (y / zc) + cy], dim=-1)  # (B, F, 3, 2)

    with torch.no_grad():
        p = uv.detach()
        e1, e2 = p[..., 1, :] - p[..., 0, :], p[..., 2, :] - p[..., 0, :]
        area = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
        keep = (z.detach() >= near).all(-1) & (area != 0) & torch.isfinite(area)
        if cull_backfaces:
            keep &= area < 0  # facing the camera (for triangles in front of it)
        margin = math.sqrt(sigma * math.log((1.0 - eps) / eps))
        x0, x1, y0, y1, on_image = pixel_boxes(p[..., 0].amin(-1) - margin, p[..., 0].amax(-1) + margin,
                                               p[..., 1].amin(-1) - margin, p[..., 1].amax(-1) + margin, (H, W))
        inst = (keep & on_image).reshape(-1).nonzero().squeeze(1)
        flat = lambda t: t.reshape(-1)[inst]  # noqa: E731
        x0, y0, width, height = flat(x0), flat(y0), flat(x1) - flat(x0) + 1, flat(y1) - flat(y0) + 1
        order, plan = plan_bins(width, height, torch.zeros_like(width, dtype=torch.bool), (H, W), CHUNK_CANDIDATES)
        inst, x0, y0 = inst[order], x0[order], y0[order]
        orient = torch.sign(area.reshape(-1)[inst])
        row_base = torch.div(inst, F_, rounding_mode="floor") * H
        steps = torch.arange(max(H, W), device=uv.device)

    tri = uv.reshape(B * F_, 3, 2)[inst].permute(2, 1, 0)  # (2 uv, 3 corners, n), with grad
    log_empty = torch.zeros(B * H * W, dtype=uv.dtype, device=uv.device)  # Σ_f log(1 − D_f)
    for bn in plan:
        sl = slice(bn.start, bn.stop)
        # windows shifted to lie inside the image: every candidate is a real pixel
        cols = x0[sl].clamp_max(W - bn.width) + steps[:bn.width, None]  # (Sw, n)
        rows = y0[sl].clamp_max(H - bn.height) + steps[:bn.height, None]  # (Sh, n)
        qx, qy = cols.to(uv.dtype)[None], rows.to(uv.dtype)[:, None]  # (1, Sw, n), (Sh, 1, n)
        t = tri[:, :, sl]
        dist2, inside = None, None
        for k in range(3):
            ax, ay = t[0, k], t[1, k]
            ex, ey = t[0, (k + 1) % 3] - ax, t[1, (k + 1) % 3] - ay
            wx, wy = qx - ax, qy - ay
            along = ((wx * ex + wy * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0)
            d2 = (wx - along * ex) ** 2 + (wy - along * ey) ** 2  # to the segment
            with torch.no_grad():
                side = (ex * wy - ey * wx) * orient[sl] >= 0
            dist2 = d2 if dist2 is None else torch.minimum(dist2, d2)
            inside = side if inside is None else inside & side
        contrib = -F.softplus(torch.where(inside, dist2, -dist2) / sigma)  # log(1 − D)
        pixel = ((row_base[sl] + rows) * W)[:, None] + cols  # (Sh, Sw, n)
        log_empty = log_empty.index_add(0, pixel.reshape(-1), contrib.reshape(-1))
    if not plan:  # no face reaches the image: zero silhouette, still part of the graph (zero gradients)
        log_empty = log_empty + 0.0 * uv.sum()
    return (-torch.expm1(log_empty)).reshape(*inp.batch_shape, H, W)
