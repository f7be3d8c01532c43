"""The latent space reserved in advance for every class of the budget (iNeMo's initialisation).

- `class_centres(K, D)`: K unit centres, an equiangular tight frame (simplex ETF: pairwise cosine
  exactly −1/(K−1), the largest equal separation possible) when K ≤ D + 1, else a spread on the
  sphere (points pushed apart by minimising a soft maximum of their pairwise cosines);
- `partition_features(centres, k, n)`: n initial vertex features of class k drawn from its own cell
  of a real partition of the sphere: unit vectors are sampled uniformly and each is assigned to its
  nearest centre; class k keeps only those of its cell. Different classes never share a feature (the
  released code gives every class a permutation of the same random vectors), and every feature lies
  nearer its own centre than any other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aware3d_utils import torch_threads

from ..errors import NemoError

__all__ = ["class_centres", "etf_centres", "spread_centres", "partition_features", "nearest_centre",
           "latent_slots", "reserved_features", "REFERENCE_MIN_SLOTS"]

#: the released iNeMo reserves `etf_init` slots: 20 for the 12 PASCAL3D+ classes
#: (confs/dataset/Pascal3D.yaml), 100 for the 100 ObjectNet3D classes (confs/dataset/ObjectNet3D.yaml)
REFERENCE_MIN_SLOTS = 20


def etf_centres(K: int, D: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """(K, D) simplex ETF: unit vectors with pairwise cosine −1/(K−1); needs 2 ≤ K ≤ D + 1.

    The centred identity I − 11ᵀ/K has rank K − 1; its columns, written in an orthonormal basis of
    their span and normalised, are the ETF in K − 1 dimensions; a seeded random orthonormal map
    places them in D dimensions.
    """
    if not 2 <= K <= D + 1:
        raise NemoError(f"etf_centres: an ETF of {K} classes needs 2 ≤ K ≤ D + 1 = {D + 1}")
    centred = torch.eye(K, dtype=torch.float64) - 1.0 / K
    U, _, _ = torch.linalg.svd(centred)
    coords = U[:, : K - 1].T @ centred  # (K−1, K)
    coords = coords / coords.norm(dim=0, keepdim=True)
    gen = torch.Generator().manual_seed(int(seed))
    Q, _ = torch.linalg.qr(torch.randn(D, K - 1, generator=gen, dtype=torch.float64))
    return (Q @ coords).T.contiguous().to(dtype)


def spread_centres(K: int, D: int, seed: int = 0, steps: int = 500, sharpness: float = 20.0,
                   dtype=torch.float64) -> torch.Tensor:
    """(K, D) unit vectors spread over the sphere (for K > D + 1, where no ETF exists): a seeded
    random start, then Adam on logsumexp(sharpness · cosᵢⱼ) over pairs i ≠ j, a smooth maximum of
    the pairwise cosines, re-normalising after every step."""
    gen = torch.Generator().manual_seed(int(seed))
    x = F.normalize(torch.randn(K, D, generator=gen, dtype=torch.float64), dim=-1).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01)
    off = ~torch.eye(K, dtype=torch.bool)
    with torch_threads(1):  # tiny tensors: extra threads only add contention
        for _ in range(int(steps)):
            u = F.normalize(x, dim=-1)
            loss = torch.logsumexp(sharpness * (u @ u.T)[off], 0) / sharpness
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.copy_(F.normalize(x, dim=-1))
    return F.normalize(x.detach(), dim=-1).to(dtype)


def class_centres(K: int, D: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """(K, D) unit class centres: the ETF when K ≤ D + 1, else the spread (see the module docstring)."""
    K, D = int(K), int(D)
    if K < 1 or D < 1:
        raise NemoError(f"class_centres: need K ≥ 1 classes and D ≥ 1 dimensions, got {K}, {D}")
    if K == 1:
        gen = torch.Generator().manual_seed(int(seed))
        return F.normalize(torch.randn(1, D, generator=gen, dtype=torch.float64), dim=-1).to(dtype)
    if K <= D + 1:
        return etf_centres(K, D, seed).to(dtype)
    return spread_centres(K, D, seed).to(dtype)


def nearest_centre(features: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(N,) index of the nearest centre (largest cosine) of each unit feature (N, D)."""
    return (features.to(centres) @ centres.T).argmax(-1)


def partition_features(centres: torch.Tensor, k: int, n: int, seed: int = 0, chunk: int = 16384,
                       max_samples: int = 50_000_000) -> torch.Tensor:
    """(n, D) unit features of class k, uniform on its cell {x : argmax_j ⟨x, c_j⟩ = k} (see the
    module docstring). Seeded per (seed, k), so a class's features do not depend on which other
    classes are drawn. A cell covers about 1/K of the sphere, so about n·K samples are drawn."""
    centres = torch.as_tensor(centres)
    K, D = centres.shape
    if not 0 <= int(k) < K:
        raise NemoError(f"partition_features: class {k} out of range [0, {K})")
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(k))
    kept, have, drawn = [], 0, 0
    while have < n:
        if drawn > max_samples:
            raise NemoError(f"partition_features: the cell of class {k} is too small "
                            f"(only {have} of {n} features in {drawn} samples)")
        x = F.normalize(torch.randn(chunk, D, generator=gen, dtype=centres.dtype), dim=-1)
        mine = x[nearest_centre(x, centres) == int(k)]
        kept.append(mine[: n - have])
        have += kept[-1].shape[0]
        drawn += chunk
    return torch.cat(kept)[:n].contiguous()



def latent_slots(classes: int, slots: int | None = None) -> int:
    """The number of latent slots (class centres) for a budget of `classes`: `slots` when given (it
    must be ≥ classes), else max(classes, 20), which reproduces the released configs (20 slots for
    PASCAL3D+'s 12 classes, 100 for ObjectNet3D's 100)."""
    classes = int(classes)
    if slots is None:
        return max(classes, REFERENCE_MIN_SLOTS)
    if int(slots) < classes:
        raise NemoError(f"latent slots: {slots} slots cannot hold the budget's {classes} classes")
    return int(slots)


def reserved_features(centres: torch.Tensor, occupied, vertex_counts, seed: int = 0) -> torch.Tensor:
    """(R, D) the reserved vertex features of every slot not in `occupied` (bank slots): slot k gets
    `vertex_counts[k]` features of its own cell (`partition_features`, the same ones the class
    receives when it joins the bank). vertex_counts: per slot (len K) its vertex count (a future
    class's mesh size; for an unused slot the largest mesh's, as the released memory gives every
    slot `max_n` rows). Empty (0, D) when every slot is occupied."""
    centres = torch.as_tensor(centres)
    K, D = centres.shape
    if len(vertex_counts) != K:
        raise NemoError(f"reserved_features: {len(vertex_counts)} vertex counts for {K} slots")
    taken = {int(k) for k in occupied}
    parts = [partition_features(centres, k, int(vertex_counts[k]), seed) for k in range(K) if k not in taken]
    return torch.cat(parts) if parts else centres.new_zeros(0, D)
