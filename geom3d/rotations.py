"""Rotations: what roma does well comes from roma; the rest is small and numerically careful.

All functions take any leading batch shape and follow geom3d's dtype rule (geom3d.dtypes):
tensors, numpy arrays, lists or numbers in; two inputs are promoted to their common floating
dtype; a single input keeps its floating dtype (integers become float32).
Quaternions follow roma's XYZW order unless a name says otherwise (`quat_wxyz_*`).
"""

from __future__ import annotations

import math

import torch

from .dtypes import as_float_tensors
from .errors import GeometryError


def _roma():
    """roma, imported on first use: importing it pulls in torch's compiler stack (torch._dynamo,
    sympy: seconds of start-up) that `import geom3d` and the paths never rotating through roma skip."""
    import roma

    return roma

__all__ = [
    "geodesic_distance",
    "random_rotations",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "quat_wxyz_to_matrix",
    "matrix_to_quat_wxyz",
    "project_to_rotation",
    "rotation_residual",
    "check_rotation",
    "rotation_about_z",
    "rotation_about_x",
    "rotation_about_y",
]


def geodesic_distance(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle of `R1ᵀ R2` in radians, in [0, π]: (..., 3, 3) x (..., 3, 3) -> (...).

    Equal to ‖logm(R1ᵀR2)‖_F / √2. Computed as atan2(sin, cos) of the relative rotation, which is
    accurate near 0 *and* near π (arccos of the trace loses half the digits near 0, and the
    arcsin-of-chord form used by roma loses them near π). NaN in gives NaN out.
    """
    R1, R2 = as_float_tensors(R1, R2)
    _check_matrices(R1, "R1")
    _check_matrices(R2, "R2")
    rel = R1.transpose(-1, -2) @ R2
    cos = (rel[..., 0, 0] + rel[..., 1, 1] + rel[..., 2, 2] - 1.0) * 0.5
    skew = torch.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]],
        dim=-1,
    )
    sin = 0.5 * torch.linalg.vector_norm(skew, dim=-1)
    return torch.atan2(sin, cos)


def random_rotations(*shape: int, generator: torch.Generator | None = None, dtype=torch.float32,
                     device=None) -> torch.Tensor:
    """Rotations drawn uniformly (Haar measure) from SO(3): (*shape, 3, 3).

    Normalised Gaussian quaternions are uniform on S³; roma's `random_rotmat` does the same but
    takes no generator, and reproducible sampling matters for data generation.
    """
    q = torch.randn(*shape, 4, generator=generator, dtype=dtype, device=device)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return _roma().unitquat_to_rotmat(q)


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """The continuous 6D representation (Zhou et al. 2019) to rotations: (..., 6) -> (..., 3, 3).

    The 6 numbers are the first two *columns* of the matrix, orthonormalised by Gram-Schmidt.
    """
    (x,) = as_float_tensors(x)
    if x.shape[-1] != 6:
        raise GeometryError(f"6D rotations need a last dimension of 6, got shape {tuple(x.shape)}")
    return _roma().special_gramschmidt(x.reshape(*x.shape[:-1], 2, 3).transpose(-1, -2))


def matrix_to_rotation_6d(R: torch.Tensor) -> torch.Tensor:
    """Rotations to the 6D representation (first two columns): (..., 3, 3) -> (..., 6)."""
    (R,) = as_float_tensors(R)
    _check_matrices(R, "R")
    return R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (axis × angle) to matrices: (..., 3) -> (..., 3, 3)."""
    (rotvec,) = as_float_tensors(rotvec)
    _check_vectors(rotvec, 3, "rotation vectors")
    return _roma().rotvec_to_rotmat(rotvec)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Matrices to rotation vectors, angle in [0, π]: (..., 3, 3) -> (..., 3)."""
    (R,) = as_float_tensors(R)
    _check_matrices(R, "R")
    return _roma().rotmat_to_rotvec(R)


def quat_wxyz_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions in (w, x, y, z) order (COLMAP, Blender) to matrices: (..., 4) -> (..., 3, 3)."""
    (q,) = as_float_tensors(q)
    _check_vectors(q, 4, "quaternions (w, x, y, z)")
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return _roma().unitquat_to_rotmat(torch.cat([q[..., 1:], q[..., :1]], dim=-1))


def matrix_to_quat_wxyz(R: torch.Tensor) -> torch.Tensor:
    """Matrices to unit quaternions in (w, x, y, z) order with w ≥ 0: (..., 3, 3) -> (..., 4)."""
    (R,) = as_float_tensors(R)
    _check_matrices(R, "R")
    q = _roma().rotmat_to_unitquat(R)
    q = torch.cat([q[..., 3:], q[..., :3]], dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def project_to_rotation(M: torch.Tensor) -> torch.Tensor:
    """The nearest rotation (Frobenius norm) to any 3×3 matrix, via SVD: (..., 3, 3) -> (..., 3, 3)."""
    (M,) = as_float_tensors(M)
    _check_matrices(M, "M")
    return _roma().special_procrustes(M)


def rotation_residual(R: torch.Tensor) -> torch.Tensor:
    """How far a matrix is from SO(3): max |RᵀR − I|, or ∞ when det ≤ 0: (..., 3, 3) -> (...)."""
    (R,) = as_float_tensors(R)
    _check_matrices(R, "R")
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    residual = (R.transpose(-1, -2) @ R - eye).abs().amax(dim=(-1, -2))
    return torch.where(torch.linalg.det(R) > 0, residual, torch.full_like(residual, math.inf))


def default_rotation_tolerance(dtype: torch.dtype) -> float:
    """Tolerance on RᵀR − I for `check_rotation`: loose enough for chained float32 products."""
    return 1e-6 if dtype == torch.float64 else 1e-3 if dtype == torch.float32 else 1e-2


def check_rotation(R: torch.Tensor, name: str = "R", atol: float | None = None) -> None:
    """Raise GeometryError unless every matrix in `R` (..., 3, 3) is a finite proper rotation."""
    (R,) = as_float_tensors(R)
    _check_matrices(R, name)
    R = R.detach()
    if not torch.isfinite(R).all():
        raise GeometryError(f"{name} contains NaN or infinite values")
    atol = default_rotation_tolerance(R.dtype) if atol is None else atol
    residual = rotation_residual(R.double() if R.dtype != torch.float64 else R)
    if R.numel() and residual.max() > atol:
        worst = residual.max().item()
        raise GeometryError(
            f"{name} is not a rotation matrix: max |RᵀR − I| = {worst:.3g} (tolerance {atol:g})"
            if math.isfinite(worst) else f"{name} is not a rotation matrix: det(R) ≤ 0 (a reflection?)"
        )


def _check_matrices(M: torch.Tensor, name: str) -> None:
    if M.ndim < 2 or M.shape[-2:] != (3, 3):
        raise GeometryError(f"{name} must have shape (..., 3, 3), got {tuple(M.shape)}")


def _check_vectors(v: torch.Tensor, size: int, what: str) -> None:
    if v.ndim < 1 or v.shape[-1] != size:
        raise GeometryError(f"{what} must have shape (..., {size}), got {tuple(v.shape)}")


def _axis_rotation(angle: torch.Tensor, axis: int) -> torch.Tensor:
    (angle,) = as_float_tensors(angle)
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 2:
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    elif axis == 0:
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    else:
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)


def rotation_about_z(angle: torch.Tensor) -> torch.Tensor:
    """Rz(φ) = [[cos φ, −sin φ, 0], [sin φ, cos φ, 0], [0, 0, 1]]: (...) -> (..., 3, 3)."""
    return _axis_rotation(angle, 2)


def rotation_about_x(angle: torch.Tensor) -> torch.Tensor:
    """Rx(ψ) = [[1, 0, 0], [0, cos ψ, −sin ψ], [0, sin ψ, cos ψ]]: (...) -> (..., 3, 3)."""
    return _axis_rotation(angle, 0)


def rotation_about_y(angle: torch.Tensor) -> torch.Tensor:
    """Ry(ψ) = [[cos ψ, 0, sin ψ], [0, 1, 0], [−sin ψ, 0, cos ψ]]: (...) -> (..., 3, 3)."""
    return _axis_rotation(angle, 1)
