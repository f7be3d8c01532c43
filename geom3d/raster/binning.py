"""Binning triangles by the size of their pixel boxes, so that each bin is one tensor op.

A bin holds triangles whose pixel box fits in a window of Sh × Sw pixels. Window sides come from
{1, 2, 3, 4, 6, 8, 12, ...} (at most 1.5× too large per side), capped at the image size, so a
window can always be placed inside the image over its box. Bins too small to be worth an op of
their own are merged into a larger bin that holds their window (`MERGE_CANDIDATES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["box_sizes", "pixel_boxes", "Bin", "plan_bins"]

# A bin costs ~15 tensor ops (~0.1 ms on a CPU core), about as much as this many candidate pixels:
# a bin adding fewer wasted candidates than this to a larger bin is merged into it.
MERGE_CANDIDATES = 16384


def box_sizes(limit: int) -> list[int]:
    """Window sides 1, 2, 3, 4, 6, 8, 12, 16, ... below `limit`, then `limit` itself."""
    sizes, k = [1, 2, 3], 4
    while sizes[-1] < limit:
        sizes += [k, k * 3 // 2]
        k *= 2
    return sorted({min(s, limit) for s in sizes})


def pixel_boxes(umin, umax, vmin, vmax, image_size, slack: float = 2e-3):
    """Integer pixel boxes [x0, x1] × [y0, y1] (inclusive, int64) of the pixel centres inside
    projected extents, clipped to the image, and whether each box is non-empty.

    `slack` (pixels) widens the box so that rounding of the projected corners never drops a pixel
    centre that the edge functions count as covered.
    """
    H, W = image_size
    x0 = torch.ceil(umin.clamp(-2.0, W + 1.0) - slack).clamp_min(0)
    x1 = torch.floor(umax.clamp(-2.0, W + 1.0) + slack).clamp_max(W - 1)
    y0 = torch.ceil(vmin.clamp(-2.0, H + 1.0) - slack).clamp_min(0)
    y1 = torch.floor(vmax.clamp(-2.0, H + 1.0) + slack).clamp_max(H - 1)
    ok = (x0 <= x1) & (y0 <= y1)
    return x0.long(), x1.long(), y0.long(), y1.long(), ok


def _size_classes(sizes: list[int], device) -> torch.Tensor:
    """Lookup table: box side (0..max) -> index of the smallest window side holding it."""
    return torch.searchsorted(torch.tensor(sizes, device=device), torch.arange(sizes[-1] + 1, device=device))


@dataclass
class Bin:
    """Instances order[start:stop] share one Sh × Sw window; `clip`: some cross the near plane."""

    start: int
    stop: int
    height: int
    width: int
    clip: bool


def plan_bins(width: torch.Tensor, height: torch.Tensor, clip: torch.Tensor, image_size, budget: int,
              merge: int = MERGE_CANDIDATES) -> tuple[torch.Tensor, list[Bin]]:
    """Group boxes of `width`, `height` (n,) (≥ 1, within the image) into bins.

    Returns `order` (n,), a permutation that makes every bin a contiguous run, and the bins, each
    split so that its candidate count (instances × Sh × Sw) stays within `budget` where possible.
    """
    H, W = image_size
    sizes_h, sizes_w = box_sizes(H), box_sizes(W)
    nh, nw = len(sizes_h), len(sizes_w)
    device = width.device
    ch = _size_classes(sizes_h, device).index_select(0, height)
    cw = _size_classes(sizes_w, device).index_select(0, width)
    key = (clip.long() * nh + ch) * nw + cw
    counts = torch.bincount(key, minlength=2 * nh * nw).tolist()

    classes = [(k, count, sizes_h[(k // nw) % nh], sizes_w[k % nw], k >= nh * nw)
               for k, count in enumerate(counts) if count]
    classes.sort(key=lambda c: (-c[2] * c[3], -c[4]))  # largest windows first, clipping bins first
    targets: list[list] = []  # [keys, count, sh, sw, clip]
    for k, count, sh, sw, clipping in classes:
        hosts = [t for t in targets if t[2] >= sh and t[3] >= sw and (t[4] or not clipping)]
        host = min(hosts, key=lambda t: t[2] * t[3], default=None)
        if host is not None and count * (host[2] * host[3] - sh * sw) <= merge:
            host[0].append(k)
            host[1] += count
        else:
            targets.append([[k], count, sh, sw, clipping])

    lut = torch.zeros(2 * nh * nw, dtype=torch.long)
    for i, t in enumerate(targets):
        lut[t[0]] = i
    order = torch.argsort(lut.to(device)[key], stable=True)
    bins, start = [], 0
    for _, count, sh, sw, clipping in targets:
        step = max(1, budget // (sh * sw))
        for lo in range(start, start + count, step):
            bins.append(Bin(lo, min(lo + step, start + count), sh, sw, clipping))
        start += count
    return order, bins
