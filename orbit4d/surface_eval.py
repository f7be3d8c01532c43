"""Proxy accuracy against a true surface: Chamfer distance and F-score, split into the surface
some frame saw and the surface no frame saw; scaffold depth against direct renders.

`surface_scores(proxy, truth, seen, threshold)`: proxy points P (M, 3) against dense samples S
(N, 3) of the true surface labelled seen / never-seen. Distances go both ways by nearest
neighbour (scipy's cKDTree): d(p) from each proxy point to the samples, d(s) from each sample to
the proxy. A split L (seen or never-seen) holds the samples labelled L and the proxy points whose
nearest sample is labelled L. Per split: precision = share of its proxy points with
d(p) < threshold, recall = share of its samples with d(s) < threshold, F = 2PR / (P + R) (0 when
either is 0, or when the split has no proxy point), Chamfer = (mean d(p) + mean d(s)) / 2 over
the split (the sample-to-proxy half alone where the split holds no proxy point). The samples
must be dense against the threshold (their spacing adds to d(p)).

`flicker(proxies, truths)`: the temporal consistency of a sequence of proxies: per material
sample (the same point of the true surface in every frame), the distance to the proxy in
consecutive frames; flicker = mean |d_f(s) − d_{f−1}(s)|: a proxy whose error field jumps between
frames (completed sides regenerated per frame) flickers, one that moves with the surface does not.

`depth_errors(scaffold_depth, true_depth)`: median relative depth error where both cover a
pixel, and the coverage (share of truly covered pixels the scaffold covers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SurfaceScores", "surface_scores", "flicker", "depth_errors"]


@dataclass(frozen=True)
class SurfaceScores:
    """Per split ("seen", "never_seen", "all"): f_score, precision, recall, chamfer (world units)."""

    f_score: dict
    precision: dict
    recall: dict
    chamfer: dict


def _f(p: float, r: float) -> float:
    return 0.0 if p <= 0 or r <= 0 else 2 * p * r / (p + r)


def surface_scores(proxy, truth, seen, threshold: float) -> SurfaceScores:
    """See the module docstring. proxy (M, 3), truth (N, 3), seen (N,) bool; threshold in world units."""
    from scipy.spatial import cKDTree

    P = np.asarray(proxy, np.float64).reshape(-1, 3)
    S = np.asarray(truth, np.float64).reshape(-1, 3)
    seen = np.asarray(seen, bool).reshape(-1)
    if len(S) != len(seen) or len(S) == 0:
        raise ValueError(f"surface_scores: {len(S)} true samples but {len(seen)} labels")
    if len(P):
        d_p, nn = cKDTree(S).query(P, k=1)
        d_s, _ = cKDTree(P).query(S, k=1)
        p_seen = seen[nn]
    else:
        d_p, p_seen, d_s = np.zeros(0), np.zeros(0, bool), np.full(len(S), np.inf)
    out = {"f_score": {}, "precision": {}, "recall": {}, "chamfer": {}}
    for name, s_sel, p_sel in (("seen", seen, p_seen), ("never_seen", ~seen, ~p_seen),
                               ("all", np.ones(len(S), bool), np.ones(len(P), bool))):
        if not s_sel.any():
            for k in out:
                out[k][name] = float("nan")
            continue
        rec = float((d_s[s_sel] < threshold).mean())
        prec = float((d_p[p_sel] < threshold).mean()) if p_sel.any() else 0.0
        out["precision"][name], out["recall"][name] = prec, rec
        out["f_score"][name] = _f(prec, rec) if p_sel.any() else 0.0
        s_mean = float(np.mean(np.minimum(d_s[s_sel], 1e9)))
        out["chamfer"][name] = (float(d_p[p_sel].mean()) + s_mean) / 2 if p_sel.any() else s_mean
    return SurfaceScores(**out)


def flicker(proxies, truths) -> float:
    """Mean |d_f(s) − d_{f−1}(s)| over material samples s and consecutive frames (module
    docstring). proxies: T clouds (M_f, 3); truths: (T, N, 3) the same samples in every frame."""
    from scipy.spatial import cKDTree

    d = np.stack([cKDTree(np.asarray(p, np.float64)).query(np.asarray(s, np.float64), k=1)[0]
                  for p, s in zip(proxies, truths)])
    return float(np.abs(np.diff(d, axis=0)).mean()) if len(d) > 1 else 0.0


def depth_errors(scaffold_depth: np.ndarray, true_depth: np.ndarray, region=None) -> tuple[float, float]:
    """(median relative depth error where both cover, coverage of the truly covered pixels);
    depth 0 = empty; region (…, H, W) bool restricts both (e.g. the true object's pixels)."""
    sd, td = np.asarray(scaffold_depth), np.asarray(true_depth)
    truth = td > 0 if region is None else (td > 0) & region
    both = truth & (sd > 0)
    if not truth.any():
        return float("nan"), float("nan")
    err = float(np.median(np.abs(sd[both] - td[both]) / td[both])) if both.any() else float("nan")
    return err, float(both.sum() / truth.sum())
