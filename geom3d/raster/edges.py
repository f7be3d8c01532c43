"""The homogeneous triangle formulas, and the small helpers that compute them exactly.

For a triangle with camera-space corners X0, X1, X2 and the ray d = K⁻¹ (u, v, 1) of pixel (u, v)
(so d_z = 1), the ray meets the triangle's plane at P = z·d with

    E_i = d · (X_j × X_k)   for (i, j, k) = (0, 1, 2), (1, 2, 0), (2, 0, 1),
    λ_i = E_i / Σ E,        z = det(X0, X1, X2) / (d · N),   N = (X1 − X0) × (X2 − X0) = Σ (X_j × X_k).

λ are the perspective-correct barycentric coordinates and z the camera depth (the differentiable
step, `fragments`, evaluates these). Each E_i is linear in (u, v), and the ray hits the triangle
in front of the camera exactly when every E_i has the sign of det (homogeneous rasterization,
Olano & Greer 1997): no perspective division, so the visibility pass uses these planes for
triangles that cross the near plane and clips them per pixel by the test z ≥ near.

Exact ties: an edge shared by two triangles appears as X_j × X_k in one and X_k × X_j in the
other. `cross_rows` and `pixel_plane` are odd functions computed by separate elementwise torch
kernels (no fused multiply-add), so the two edge values are exact negatives of each other and the
top-left rule gives a pixel centre lying exactly on the edge to exactly one of them.
"""

from __future__ import annotations

import torch

__all__ = ["cross_rows", "pixel_plane", "intrinsics_parts"]


def cross_rows(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """a × b for planar vectors (3, ...) (components first): the three components, each (...)."""
    return a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]


def intrinsics_parts(K: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(fx, s, cx, fy, cy) of K (..., 3, 3), each (...)."""
    return K[..., 0, 0], K[..., 0, 1], K[..., 0, 2], K[..., 1, 1], K[..., 1, 2]


def pixel_plane(P: torch.Tensor, fx, s, cx, fy, cy) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coefficients (a, b, c), each (...), with P · K⁻¹ (u, v, 1) = a·u + b·v + c, for P (..., 3).

    The intrinsics broadcast against P[..., 0]. Odd in P, bit for bit.
    """
    px, py, pz = P.unbind(-1)
    a = px / fx
    b = (py - a * s) / fy
    c = (pz - a * cx) - b * cy
    return a, b, c
