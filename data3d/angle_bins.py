"""The angle discretisation of ImageNet3D's classification baselines (wufeim/imagenet3d_exp).

Each of azimuth, elevation and theta is classified into 40 bins over [0, 2π), periodically:
    bin = floor(((angle − lo) / (hi − lo) mod 1) · n) mod n,     decode(bin) = lo + (bin + ½)·(hi − lo)/n,
with n = 40, lo = 0, hi = 2π for all three angles (so a negative elevation lands in the top bins).
Decoding returns the bin centre; encode(decode(b)) = b, and |decode(encode(x)) − x| ≤ π/n mod 2π.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["angle_to_bin", "bin_to_angle", "viewpoint_to_bins", "bins_to_viewpoint", "NUM_BINS"]

NUM_BINS = 40
TWO_PI = 2.0 * math.pi


def angle_to_bin(angle, num_bins: int = NUM_BINS, min_value: float = 0.0, max_value: float = TWO_PI,
                 border: str = "periodic"):
    """Bin index of angles (float, numpy array or torch tensor; same kind out, integer dtype).

    border "periodic" wraps (the toolkit's setting); "clamp" clips to [min_value, max_value] and puts
    max_value in the last bin (the toolkit's clamp branch clips in the wrong units and is unused).
    """
    if border not in ("periodic", "clamp"):
        raise ValueError(f"border must be 'periodic' or 'clamp', got {border!r}")
    span = max_value - min_value
    if isinstance(angle, torch.Tensor):
        z = (angle.double() - min_value) / span
        if border == "periodic":  # remainder may round up to exactly 1.0: the modulo folds it to bin 0
            return torch.floor(torch.remainder(z, 1.0) * num_bins).long() % num_bins
        return torch.floor(z.clamp(0.0, 1.0) * num_bins).long().clamp(0, num_bins - 1)
    z = (np.asarray(angle, dtype=np.float64) - min_value) / span
    z = np.mod(z, 1.0) if border == "periodic" else np.clip(z, 0.0, 1.0)
    b = np.floor(z * num_bins).astype(np.int64)
    b = b % num_bins if border == "periodic" else np.clip(b, 0, num_bins - 1)
    return int(b) if np.ndim(angle) == 0 and not isinstance(angle, np.ndarray) else b


def bin_to_angle(bins, num_bins: int = NUM_BINS, min_value: float = 0.0, max_value: float = TWO_PI):
    """Centre angle of bins (int, numpy array or torch tensor; float out)."""
    span = max_value - min_value
    if isinstance(bins, torch.Tensor):
        return (torch.remainder(bins, num_bins).double() + 0.5) / num_bins * span + min_value
    b = np.mod(np.asarray(bins, dtype=np.int64), num_bins)
    out = (b + 0.5) / num_bins * span + min_value
    return float(out) if np.ndim(bins) == 0 and not isinstance(bins, np.ndarray) else out


def viewpoint_to_bins(viewpoint, num_bins: int = NUM_BINS) -> tuple[int, int, int]:
    """(azimuth, elevation, theta) bins of a viewpoint mapping."""
    return tuple(angle_to_bin(float(viewpoint[k]), num_bins) for k in ("azimuth", "elevation", "theta"))


def bins_to_viewpoint(bins, num_bins: int = NUM_BINS) -> dict[str, float]:
    """The bin-centre angles {azimuth, elevation, theta} of three bin indices."""
    a, e, t = (bin_to_angle(int(b), num_bins) for b in bins)
    # elevation bins above π stand for negative elevations
    return {"azimuth": a, "elevation": e - TWO_PI if e > math.pi else e, "theta": t}
