"""Depth-map cleaning before unprojection (in the image, before any point exists).

Raw monocular or sensor depth has per-pixel noise, isolated outliers and "flying" pixels at
depth edges; unprojected as it is, a partial foreground cloud is too rough for sub-degree
alignment. `clean_depth` does, per pixel p with raw depth d_p:

1. m = the 5×5 median of the depth map (robust to the isolated outliers),
2. the inliers of p's k×k window are its pixels q with |d_q − m_p| <= inlier_tol · m_p,
3. the cleaned depth is the value at p of the plane z = a + b·dx + c·dy least-squares fitted
   to those inliers (exact on planar patches even where an edge leaves a one-sided window;
   `average=False` keeps the median instead, with inliers judged against each pixel's own
   median: much cheaper, used for the background),
4. confidence = the window's inlier fraction; pixels below `min_confidence`, and pixels whose
   3×3 neighbourhood of medians spans a step of more than `edge_tol` (relative: a depth edge),
   are dropped (depth 0), as are pixels whose window the image border cuts.

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
                min_confidence: float = 0.5, average: bool = True) -> CleanDepth:
    """Clean a depth map (H, W) of camera z; invalid input (<= 0, non-finite) stays 0."""
    d = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    x = np.where(valid, d, 0).astype(np.float32)
    med = cv2.medianBlur(x, 5)
    # inliers of each window: its pixels within inlier_tol of the window centre's median (so a
    # window across a depth edge averages only the centre's side)
    r = int(window) // 2
    h, w = x.shape
    if not average:  # the median alone: inliers judged against each pixel's own median (box sums, fast)
        own = (valid & (np.abs(x - med) <= inlier_tol * med)).astype(np.float32)
        n_in = cv2.boxFilter(own, -1, (2 * r + 1, 2 * r + 1), normalize=False, borderType=cv2.BORDER_CONSTANT)
        return _finish(valid, med, med, n_in, r, window, edge_tol, min_confidence)
    pad = np.pad(x, r)
    # per pixel: sums over its inliers of 1, dx, dy, dx², dx·dy, dy², z, dx·z, dy·z
    sums = np.zeros((9, h, w), np.float64)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            v = pad[r + dy:r + dy + h, r + dx:r + dx + w]
            ok = (v > 0) & (np.abs(v - med) <= inlier_tol * med)
            z = np.where(ok, v, 0).astype(np.float64)
            sums += np.stack([ok, dx * ok, dy * ok, dx * dx * ok, dx * dy * ok, dy * dy * ok, z, dx * z, dy * z])
    n_in = sums[0]
    # the local plane z = a + b·dx + c·dy fitted to the inliers, evaluated at the centre (a)
    mean = sums[6] / np.maximum(n_in, 1)
    n, sx, sy, sxx, sxy, syy, sz, sxz, syz = sums.reshape(9, -1)
    A = np.stack([n, sx, sy, sx, sxx, sxy, sy, sxy, syy], -1).reshape(-1, 3, 3)
    rhs = np.stack([sz, sxz, syz], -1)
    solvable = np.linalg.det(A) > 1e-6 * np.maximum(n, 1) ** 3
    plane = mean.reshape(-1).copy()
    if solvable.any():
        plane[solvable] = np.linalg.solve(A[solvable], rhs[solvable][..., None])[:, 0, 0]
    return _finish(valid, med, plane.reshape(h, w), n_in, r, window, edge_tol, min_confidence)


def _finish(valid, med, value, n_in, r, window, edge_tol, min_confidence) -> CleanDepth:
    """Drop low-confidence pixels, depth steps and border-cut windows."""
    conf = n_in / float((2 * r + 1) ** 2)
    kernel = np.ones((3, 3), np.uint8)
    hi = cv2.dilate(np.where(med > 0, med, 0).astype(np.float32), kernel)
    lo = cv2.erode(np.where(med > 0, med, np.inf).astype(np.float32), kernel)
    step = (hi - lo) > edge_tol * med
    keep = valid & (conf >= min_confidence) & ~step & (med > 0)
    b = max(int(window), 5) // 2  # windows the image border cuts are one-sided: biased on a slope
    keep[:b], keep[-b:], keep[:, :b], keep[:, -b:] = False, False, False, False
    return CleanDepth(np.where(keep, value, 0).astype(np.float32), np.where(valid, conf, 0).astype(np.float32))
