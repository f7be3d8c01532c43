"""Canonicalisation: per-set neural meshes (frames differing by unknown rotations about the up axis)
merged into one category mesh, then turned so that one annotated image fixes the canonical pose.

Alignment is a rotation search with the vertex-feature similarity: set s is turned by every shift k
of the cylinder (`pose.mesh.shift_features`, exact) and scored by the mean cosine similarity between
its shifted features and the reference's over the vertices both have seen; the best shift wins when
it beats the median shift by `min_margin` (else the set is rejected: its features say nothing about
its frame). The merged features are the normalised seen-weighted mean of the aligned sets; a second
round aligns every set to that mean, which is less noisy than any one set. The reference set is the
one whose features agree best with the others at their best shifts.

Front/back guard: a set whose features fit the other sets' mean almost as well turned by half a turn
as at its shift tells front from back no better than a guess, and a set aligned back to front blurs
the merged features of both ends (measured: such sets were the flipped ones, see docs/pose.md). Its flip
margin is its score at its shift minus its score half a turn away, against the mean of the *other*
aligned sets; a set whose flip margin is below `flip_ratio` × the median flip margin is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .mesh import CylinderLayout, shift_features

__all__ = ["MergeResult", "merge_sets", "alignment_scores", "flip_margins"]


@dataclass(frozen=True)
class MergeResult:
    """features (V, D) merged unit features in the reference frame; shifts (S,) each set's shift (−1:
    rejected); margins (S,) best minus median score; reference: the reference set's index;
    flip_margins (S,) score at the shift minus half a turn away, against the others' mean (NaN where
    not computed: rejected by the margin, or an odd number of segments); flipped: the sets the guard
    rejected."""

    features: torch.Tensor
    shifts: torch.Tensor
    margins: torch.Tensor
    reference: int
    flip_margins: torch.Tensor | None = None
    flipped: tuple[int, ...] = ()

    @property
    def aligned(self) -> int:
        return int((self.shifts >= 0).sum())

    @property
    def rejected(self) -> int:
        return int((self.shifts < 0).sum())


def alignment_scores(features: torch.Tensor, seen: torch.Tensor, target: torch.Tensor, target_seen: torch.Tensor,
                     layout: CylinderLayout) -> torch.Tensor:
    """(S, segments) score of every set (features (S, V, D), seen (S, V) weights) at every shift against a
    target (V, D) with weights (V,): the weighted mean cosine over the vertices both have seen."""
    scores = []
    for k in range(layout.segments):
        f = shift_features(features, layout, k)  # (S, V, D)
        w = shift_features(seen[..., None], layout, k)[..., 0] * target_seen  # (S, V)
        cos = (F.normalize(f, dim=-1) * F.normalize(target, dim=-1)).sum(-1)
        scores.append((cos * w).sum(-1) / w.sum(-1).clamp(min=1e-9))
    return torch.stack(scores, dim=1)


def _mean_of_aligned(features, seen, layout, shifts, exclude: int | None = None):
    """(target (V, D) unit, weights (V,)): the seen-weighted mean of the aligned sets' shifted features."""
    total_f = torch.zeros_like(features[0])
    total_w = torch.zeros_like(seen[0])
    for s in range(features.shape[0]):
        if shifts[s] < 0 or s == exclude:
            continue
        w = shift_features(seen[s, :, None], layout, int(shifts[s]))
        total_f = total_f + shift_features(features[s], layout, int(shifts[s])) * w
        total_w = total_w + w[:, 0]
    return F.normalize(total_f / total_w[:, None].clamp(min=1e-9), dim=-1), total_w


def flip_margins(features: torch.Tensor, seen: torch.Tensor, layout: CylinderLayout, shifts: torch.Tensor
                 ) -> torch.Tensor:
    """(S,) every aligned set's score at its shift minus its score half a turn away, both against the
    mean of the other aligned sets (leave-one-out, so a set does not vote for itself); NaN elsewhere."""
    out = torch.full((features.shape[0],), float("nan"))
    if layout.segments % 2:
        return out
    half = layout.segments // 2
    for s in range(features.shape[0]):
        if shifts[s] < 0 or int((shifts >= 0).sum()) < 2:
            continue
        target, weights = _mean_of_aligned(features, seen, layout, shifts, exclude=s)
        scores = alignment_scores(features[s:s + 1], seen[s:s + 1], target, weights, layout)[0]
        k = int(shifts[s])
        out[s] = scores[k] - scores[(k + half) % layout.segments]
    return out


def merge_sets(features: torch.Tensor, seen: torch.Tensor, layout: CylinderLayout, min_margin: float = 0.02,
               rounds: int = 2, flip_ratio: float = 0.0) -> MergeResult:
    """Merge per-set vertex features (S, V, D) with seen weights (S, V) (see the module docstring);
    flip_ratio 0 turns the front/back guard off."""
    S = features.shape[0]
    seen = seen.to(features.dtype)
    # reference: the set that agrees best with the others at their best shifts
    agreement = torch.zeros(S)
    for r in range(S):
        best = alignment_scores(features, seen, features[r], seen[r], layout).amax(1)
        agreement[r] = (best.sum() - best[r]) / max(S - 1, 1)
    ref = int(agreement.argmax())
    target, target_seen = features[ref], seen[ref]
    shifts = torch.zeros(S, dtype=torch.long)
    margins = torch.zeros(S)
    for _ in range(max(1, rounds)):
        scores = alignment_scores(features, seen, target, target_seen, layout)
        top, shifts = scores.max(1)
        margins = top - scores.median(1).values
        ok = margins >= min_margin
        ok[ref] = True
        shifts = torch.where(ok, shifts, torch.full_like(shifts, -1))
        target, target_seen = _mean_of_aligned(features, seen, layout, shifts)
    flips = flip_margins(features, seen, layout, shifts)
    flipped: tuple[int, ...] = ()
    computed = flips[~flips.isnan()]
    if flip_ratio > 0 and len(computed) and float(computed.median()) > 0:  # else no set tells front from back
        limit = flip_ratio * float(computed.median())
        # the reference set too: after the first round it only names the frame, the mean is the target
        flipped = tuple(s for s in range(S) if not bool(flips[s].isnan()) and float(flips[s]) < limit)
        if flipped:
            shifts = shifts.clone()
            shifts[list(flipped)] = -1
            target, target_seen = _mean_of_aligned(features, seen, layout, shifts)
    # vertices no set has seen keep the reference's (random) features
    unseen = target_seen <= 0
    merged = torch.where(unseen[:, None], F.normalize(features[ref], dim=-1), target)
    return MergeResult(merged, shifts, margins, ref, flips, flipped)
