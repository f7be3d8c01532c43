"""Pose metrics as reported by PASCAL3D+, ObjectNet3D, ImageNet3D and NeMo.

The pose error is the geodesic angle between predicted and true rotations,
‖logm(R_predᵀ R_gt)‖_F / √2 (the viewpoint's diag(1, −1, −1) cancels). A prediction with NaN
counts as a failure: its error is NaN, it misses every accuracy threshold, and the median treats
it as the largest possible error (π).
"""

from __future__ import annotations

import math

import torch

from .dtypes import as_float_tensors
from .rotations import geodesic_distance

__all__ = ["pose_error", "pose_accuracy", "pose_metrics"]


def pose_error(R_pred, R_gt) -> torch.Tensor:
    """Geodesic error in radians, (..., 3, 3) x (..., 3, 3) -> (...); NaN where a pose has NaN.

    Batch shapes broadcast; the result has the promoted floating dtype of the two inputs.
    """
    return geodesic_distance(R_pred, R_gt)


def pose_accuracy(errors, threshold: float = math.pi / 6) -> float:
    """Fraction of errors below `threshold` (radians); NaN errors count as failures."""
    (errors,) = as_float_tensors(errors)
    errors = errors.reshape(-1)
    if errors.numel() == 0:
        return float("nan")
    return float((errors.nan_to_num(nan=math.inf) < threshold).double().mean())


def pose_metrics(errors) -> dict[str, float]:
    """{'acc_pi_6', 'acc_pi_18', 'median_deg', 'count', 'failed'} from errors in radians (any
    shape, any numeric type; computed in float64 and returned as Python numbers)."""
    (errors,) = as_float_tensors(errors, dtype=torch.float64)
    errors = errors.reshape(-1)
    failed = int(torch.isnan(errors).sum())
    filled = errors.nan_to_num(nan=math.pi)
    median = float(torch.quantile(filled, 0.5)) if errors.numel() else float("nan")
    return {
        "acc_pi_6": pose_accuracy(errors, math.pi / 6),
        "acc_pi_18": pose_accuracy(errors, math.pi / 18),
        "median_deg": math.degrees(median),
        "count": int(errors.numel()),
        "failed": failed,
    }
