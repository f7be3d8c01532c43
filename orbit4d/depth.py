"""Depth-map cleaning before unprojection (in the image, before any point exists).

Raw monocular or sensor depth has per-pixel noise, isolated outliers and "flying" pixels at
depth edges; unprojected as it is, a partial foreground cloud is too rough for sub-degree
alignment. `clean_depth` does, per pixel p with raw depth d_p:

1. m = the 5×5 median of the depth map (robust to the isolated outliers),
2. p is an inlier when |d_p − m_p| <= inlier_tol · m_p,
3. the cleaned depth is the mean of the inliers in the k×k window around p (for a planar patch
   and a symmetric window, the local plane fit's value at p, without a per-window solve),
4. confidence = the window's inlier fraction; pixels below `min_confidence`, and pixels whose
   3×3 neighbourhood of medians spans a step of more than `edge_tol` (relative: a depth edge),
   are dropped (depth 0).

Regions (foreground, background) are separated by the caller with masks eroded / dilated by
more than the window radius, so that no window mixes the two surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["clean_depth", "CleanDepth"]


@dataclass(frozen=True)
class CleanDepth:
    """depth (H, W) float32 cleaned (0 = dropped); confidence (H, W) float32 in [0, 1]."""

    depth: np.ndarray
    confidence: np.ndarray


def clean_depth(depth, *, window: int = 5, inlier_tol: float = 0.03, edge_tol: float = 0.05,
                min_confidence: float = 0.5) -> CleanDepth:
    """Clean a depth map (H, W) of camera z; invalid input (<= 0, non-finite) stays 0."""
    d = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    x = np.where(valid, d, 0).astype(np.float32)
    med = cv2.medianBlur(x, 5)
    ok = valid & (np.abs(x - med) <= inlier_tol * med)
    okf = ok.astype(np.float32)
    k = (int(window), int(window))
    n_in = cv2.boxFilter(okf, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    total = cv2.boxFilter(np.where(ok, x, 0).astype(np.float32), -1, k, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    mean = total / np.maximum(n_in, 1)
    conf = n_in / float(k[0] * k[1])
    kernel = np.ones((3, 3), np.uint8)
    med_valid = np.where(med > 0, med, np.nan).astype(np.float32)
    hi = cv2.dilate(np.nan_to_num(med_valid, nan=0.0), kernel)
    lo = cv2.erode(np.nan_to_num(med_valid, nan=np.inf), kernel)
    step = (hi - lo) > edge_tol * med
    keep = valid & (conf >= min_confidence) & ~step & (med > 0)
    return CleanDepth(np.where(keep, mean, 0).astype(np.float32), np.where(valid, conf, 0).astype(np.float32))
