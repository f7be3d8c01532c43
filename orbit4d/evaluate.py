"""Alignment accuracy against known object poses (synthetic scenes).

The canonical frame is only defined up to a similarity, so errors are relative to frame 0:
the true canonical → world map of frame f is G_f = P_f · P_0⁻¹ · A_0 (P the true object →
world poses, A_0 the estimate of frame 0). Per frame: the rotation error is the geodesic angle
between R(A_f) R(A_0)ᵀ and R(P_f) R(P_0)ᵀ, the scale ratio s(A_f) / s(A_0), and the translation
error the RMS distance between A_f(X) and G_f(X) over the canonical points X, divided by the
object size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from geom3d.align import Sim3

__all__ = ["AlignmentErrors", "alignment_errors"]


@dataclass(frozen=True)
class AlignmentErrors:
    """Per frame (T,): rotation_deg, scale_ratio, translation_rel; scale (T,), the estimate's own
    scale (1 when the canonical is in world units, as the model-free one is); and summaries."""

    rotation_deg: np.ndarray
    scale_ratio: np.ndarray
    translation_rel: np.ndarray
    scale: np.ndarray

    def summary(self) -> dict:
        return {"rotation_max_deg": float(self.rotation_deg.max()), "rotation_median_deg": float(
            np.median(self.rotation_deg)), "scale_spread": float(np.abs(self.scale_ratio - 1).max()),
            "translation_max_rel": float(self.translation_rel.max()),
            "translation_median_rel": float(np.median(self.translation_rel)),
            "scale_error": float(np.abs(self.scale - 1).max())}


def alignment_errors(estimate: Sim3, truth: Sim3, canonical: torch.Tensor, object_size: float,
                     reference: int = 0) -> AlignmentErrors:
    """Errors of canonical → world estimates (T,) against true object → world poses (T,)."""
    est, tru = estimate.to(dtype=torch.float64), truth.to(dtype=torch.float64)
    a0, p0 = est[reference], tru[reference]
    rel_est = est.R @ a0.R.T
    rel_true = tru.R @ p0.R.T
    rot = torch.rad2deg(roma.rotmat_geodesic_distance(rel_est, rel_true)).numpy()
    scale = (est.scale / a0.scale).numpy()
    g = tru.compose(Sim3(p0.scale, p0.R, p0.t).inverse().compose(a0))  # batched G_f
    x = canonical.double()
    diff = est.apply(x[None]) - g.apply(x[None])
    trans = (diff.pow(2).sum(-1).mean(-1).sqrt() / object_size).numpy()
    return AlignmentErrors(rot, scale, trans, est.scale.numpy())
