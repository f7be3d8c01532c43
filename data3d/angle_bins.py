"""Viewpoint angles as classification bins, in two schemes.

Edge at zero (`angle_to_bin`, `viewpoint_to_bins`, ...): the discretisation of ImageNet3D's
classification baselines (wufeim/imagenet3d_exp). Each of azimuth, elevation and theta is classified
into 40 bins over [0, 2π), periodically:
    bin = floor(((angle − lo) / (hi − lo) mod 1) · n) mod n,     decode(bin) = lo + (bin + ½)·(hi − lo)/n,
with n = 40, lo = 0, hi = 2π for all three angles (so a negative elevation lands in the top bins).
Decoding returns the bin centre; encode(decode(b)) = b, and |decode(encode(x)) − x| ≤ π/n mod 2π.

Centred on zero (`angles_to_centred_bins`, `centred_bins_to_angles`): datagen's K-fold filter
(3D-DST's classifier). Azimuth and theta: n equal bins around the circle, bin k centred on k·2π/n (so
the common value 0, a front view or an upright camera, is a bin's middle, not an edge); elevation: n
equal bins over [−π/2, π/2] (clipped; with an odd n, 0 is a bin centre).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["angle_to_bin", "bin_to_angle", "viewpoint_to_bins", "bins_to_viewpoint", "NUM_BINS",
           "angles_to_centred_bins", "centred_bins_to_angles"]

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


def angles_to_centred_bins(azimuth, elevation, theta, num_bins: int) -> np.ndarray:
    """Viewpoint angles (radians, arrays of shape (N,)) to bin indices (N, 3) of the zero-centred scheme
    (see the module docstring): azimuth and theta bin k centred on k·2π/num_bins, elevation num_bins
    bins over [−π/2, π/2] (clipped)."""
    w = TWO_PI / num_bins
    a = np.floor(np.mod(np.asarray(azimuth, np.float64) + w / 2, TWO_PI) / w)
    t = np.floor(np.mod(np.asarray(theta, np.float64) + w / 2, TWO_PI) / w)
    e = np.clip(np.asarray(elevation, np.float64), -math.pi / 2, math.pi / 2)
    e = np.floor((e + math.pi / 2) / math.pi * num_bins)
    return np.clip(np.stack([a, e, t], axis=-1), 0, num_bins - 1).astype(np.int64)


def centred_bins_to_angles(bins, num_bins: int) -> np.ndarray:
    """Bin indices (N, 3) of the zero-centred scheme to the bins' centre angles (N, 3): azimuth in
    [0, 2π), elevation in (−π/2, π/2), theta in (−π, π]."""
    b = np.asarray(bins, np.float64)
    w = TWO_PI / num_bins
    theta = b[..., 2] * w
    theta = np.where(theta > math.pi, theta - TWO_PI, theta)
    return np.stack([b[..., 0] * w, (b[..., 1] + 0.5) * math.pi / num_bins - math.pi / 2, theta], axis=-1)
