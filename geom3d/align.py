"""Aligning point sets: similarity transforms (Sim(3)), weighted Umeyama, RANSAC and ICP.

- `Sim3`: X' = s·R·X + t, batched over any leading shape, with apply / inverse / compose.
- `umeyama(source, target, weights)`: the least-squares Sim(3) (or rigid, or fixed-scale) fit of
  corresponding points, through roma's `rigid_points_registration` (weights applied once, in the
  weighted means and the weighted cross-covariance; the rotation is a proper one, det +1, even
  when the best orthogonal fit is a reflection). Batched over (...).
- `ransac_sim3(source, target, threshold)`: robust Sim(3) from correspondences with outliers:
  minimal 3-point hypotheses solved as one batch, MSAC scoring, refits on the consensus set.
- `icp(source, target)`: point-to-point or point-to-plane ICP (nearest neighbours by a scipy
  k-d tree), from an initial Sim3, rigid or with scale.

Degenerate inputs (fewer than 3 weighted points, collinear or coincident points, NaN) raise
GeometryError naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .dtypes import as_float_tensors, broadcast_shapes
from .errors import GeometryError
from .rotations import _roma

__all__ = ["Sim3", "umeyama", "ransac_sim3", "RansacResult", "icp", "IcpResult", "estimate_normals"]


# ---------------------------------------------------------------------------------------- Sim3
@dataclass(frozen=True)
class Sim3:
    """A similarity transform X' = scale·R·X + t: scale (...), R (..., 3, 3), t (..., 3)."""

    scale: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor

    def __post_init__(self):
        scale, R, t = as_float_tensors(self.scale, self.R, self.t)
        if R.shape[-2:] != (3, 3) or t.shape[-1:] != (3,):
            raise GeometryError(f"Sim3 needs R (..., 3, 3) and t (..., 3), got {tuple(R.shape)}, {tuple(t.shape)}")
        shape = broadcast_shapes(scale.shape, R.shape[:-2], t.shape[:-1])
        object.__setattr__(self, "scale", scale.expand(shape))
        object.__setattr__(self, "R", R.expand(*shape, 3, 3))
        object.__setattr__(self, "t", t.expand(*shape, 3))

    @property
    def batch_shape(self) -> torch.Size:
        return self.scale.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.R.dtype

    @classmethod
    def identity(cls, batch_shape=(), dtype=None, device=None) -> Sim3:
        dtype = dtype or torch.get_default_dtype()
        eye = torch.eye(3, dtype=dtype, device=device).expand(*batch_shape, 3, 3)
        return cls(torch.ones(batch_shape, dtype=dtype, device=device), eye,
                   torch.zeros(*batch_shape, 3, dtype=dtype, device=device))

    @classmethod
    def from_matrix(cls, matrix) -> Sim3:
        """From (..., 4, 4) [[s·R, t], [0, 1]] (s > 0)."""
        (m,) = as_float_tensors(matrix)
        if m.shape[-2:] != (4, 4):
            raise GeometryError(f"Sim3.from_matrix needs (..., 4, 4), got {tuple(m.shape)}")
        sR = m[..., :3, :3]
        scale = torch.linalg.det(sR).clamp_min(0).pow(1.0 / 3.0)
        if not bool((scale > 0).all()):
            raise GeometryError("Sim3.from_matrix: the 3×3 block is not a positive similarity")
        return cls(scale, sR / scale[..., None, None], m[..., :3, 3])

    def matrix(self) -> torch.Tensor:
        """(..., 4, 4) homogeneous matrix."""
        m = torch.zeros(*self.batch_shape, 4, 4, dtype=self.dtype, device=self.R.device)
        m[..., :3, :3] = self.scale[..., None, None] * self.R
        m[..., :3, 3] = self.t
        m[..., 3, 3] = 1
        return m

    def apply(self, points) -> torch.Tensor:
        """Points (..., N, 3) to s·R·X + t (..., N, 3); batch dims broadcast."""
        p, s, R, t = as_float_tensors(points, self.scale, self.R, self.t)  # the dtype rule: promote
        return s[..., None, None] * (p @ R.transpose(-1, -2)) + t[..., None, :]

    def inverse(self) -> Sim3:
        Rt = self.R.transpose(-1, -2)
        inv_s = 1.0 / self.scale
        return Sim3(inv_s, Rt, -inv_s[..., None] * (Rt @ self.t[..., None])[..., 0])

    def compose(self, other: Sim3) -> Sim3:
        """self ∘ other: apply `other` first, then `self`."""
        return Sim3(self.scale * other.scale, self.R @ other.R,
                    self.scale[..., None] * (self.R @ other.t[..., None])[..., 0] + self.t)

    def __getitem__(self, index) -> Sim3:
        return Sim3(self.scale[index], self.R[index], self.t[index])

    def to(self, device=None, dtype=None) -> Sim3:
        return Sim3(self.scale.to(device=device, dtype=dtype), self.R.to(device=device, dtype=dtype),
                    self.t.to(device=device, dtype=dtype))


# ---------------------------------------------------------------------------------------- Umeyama
def _scale_option(scale):
    """(estimate?, fixed value or None) from scale=True / False / a number or tensor."""
    if scale is True:
        return True, None
    if scale is False or scale is None:
        return False, None
    return False, scale


def _solve(src, dst, w, scale):
    """Unchecked weighted Umeyama: src, dst (..., N, 3), w (..., N) or None."""
    estimate, fixed = _scale_option(scale)
    if fixed is not None:
        s = torch.as_tensor(fixed, dtype=src.dtype, device=src.device).expand(src.shape[:-2])
        R, t = _roma().rigid_points_registration(s[..., None, None] * src, dst, weights=w)
        return Sim3(s, R, t)
    if estimate:
        R, t, s = _roma().rigid_points_registration(src, dst, weights=w, compute_scaling=True)
        return Sim3(s, R, t)
    R, t = _roma().rigid_points_registration(src, dst, weights=w)
    return Sim3(torch.ones(src.shape[:-2], dtype=src.dtype, device=src.device), R, t)


def _check_spread(points, w, name):
    """GeometryError when the weighted points coincide or lie on one line (rotation undetermined)."""
    p, wn = points.double(), w.double() / w.double().sum(-1, keepdim=True)
    c = p - (wn[..., None] * p).sum(-2, keepdim=True)
    cov = (wn[..., None, None] * (c[..., :, None] * c[..., None, :])).sum(-3)
    ev = torch.linalg.eigvalsh(cov)  # ascending
    if bool((ev[..., -1] <= 1e-300).any()):
        raise GeometryError(f"umeyama: the {name} points all coincide")
    if bool((ev[..., -2] <= 1e-10 * ev[..., -1]).any()):
        raise GeometryError(f"umeyama: the {name} points are collinear; the rotation about their line is undetermined")


def umeyama(source, target, weights=None, *, scale=True) -> Sim3:
    """Least-squares similarity mapping `source` onto `target`: min Σ w_i ‖s·R·x_i + t − y_i‖².

    Args:
        source, target: (..., N, 3) corresponding points (any leading batch shape, broadcast).
        weights: optional (..., N) non-negative weights (normalised once; zero drops a point).
        scale: True to estimate the scale (Umeyama), False for a rigid fit (s = 1), or a fixed
            scale (a number or a (...) tensor): R and t are then fitted to s·source.

    Returns:
        Sim3 of batch shape (...), in the promoted dtype of the inputs. The rotation is proper
        (det +1) even when the point sets are mirror images.

    Raises GeometryError for mismatched shapes, NaN, fewer than 3 points of positive weight,
    or collinear / coincident points.
    """
    src, dst = as_float_tensors(source, target)
    if src.shape[-1:] != (3,) or dst.shape[-1:] != (3,) or src.ndim < 2 or dst.ndim < 2:
        raise GeometryError(f"umeyama: points must be (..., N, 3), got {tuple(src.shape)} and {tuple(dst.shape)}")
    if src.shape[-2] != dst.shape[-2]:
        raise GeometryError(f"umeyama: {src.shape[-2]} source points for {dst.shape[-2]} target points")
    shape = broadcast_shapes(src.shape[:-2], dst.shape[:-2])
    src, dst = src.expand(*shape, *src.shape[-2:]), dst.expand(*shape, *dst.shape[-2:])
    if not (torch.isfinite(src).all() and torch.isfinite(dst).all()):
        raise GeometryError("umeyama: points contain NaN or infinite values")
    if weights is None:
        w = torch.ones(src.shape[:-1], dtype=src.dtype, device=src.device)
    else:
        (w,) = as_float_tensors(weights, dtype=src.dtype)
        w = w.expand(src.shape[:-1])
        if not torch.isfinite(w).all() or bool((w < 0).any()):
            raise GeometryError("umeyama: weights must be finite and non-negative")
    if bool(((w > 0).sum(-1) < 3).any()):
        raise GeometryError("umeyama: needs at least 3 points of positive weight")
    _check_spread(src, w, "source")
    _check_spread(dst, w, "target")
    fixed = _scale_option(scale)[1]
    if fixed is not None and not bool((torch.as_tensor(fixed) > 0).all()):
        raise GeometryError(f"umeyama: a fixed scale must be positive, got {fixed}")
    return _solve(src, dst, None if weights is None else w, scale)


# ---------------------------------------------------------------------------------------- RANSAC
@dataclass(frozen=True)
class RansacResult:
    """transform: the Sim3 refitted on the consensus set; inliers (N,) bool; rmse over the inliers."""

    transform: Sim3
    inliers: torch.Tensor
    num_inliers: int
    rmse: float


def ransac_sim3(source, target, threshold: float, *, iterations: int = 256, scale=True, weights=None,
                refits: int = 2, generator: torch.Generator | None = None, seed: int = 0) -> RansacResult:
    """Robust Sim(3) from correspondences source[i] ↔ target[i] with outliers.

    All `iterations` minimal hypotheses (3 distinct correspondences each) are solved as one
    batched Umeyama; each is scored by MSAC (Σ min(r², threshold²), r the residual in target
    units); the best is refitted on its inliers (r < threshold) `refits` times (with `weights`).

    Args:
        source, target: (N, 3), N >= 3. threshold: inlier distance in target units (> 0).
        scale: as in `umeyama` (True, False or a fixed value).
        generator / seed: randomness of the samples (seed is used when no generator is given).

    Raises GeometryError when fewer than 3 correspondences, or no hypothesis has 3 inliers.
    """
    src, dst = as_float_tensors(source, target)
    if src.ndim != 2 or src.shape != dst.shape or src.shape[-1] != 3:
        raise GeometryError(f"ransac_sim3: source and target must both be (N, 3), "
                            f"got {tuple(src.shape)}, {tuple(dst.shape)}")
    n = src.shape[0]
    if n < 3:
        raise GeometryError(f"ransac_sim3: needs at least 3 correspondences, got {n}")
    if not (torch.isfinite(src).all() and torch.isfinite(dst).all()):
        raise GeometryError("ransac_sim3: points contain NaN or infinite values")
    threshold = float(threshold)
    if not threshold > 0:
        raise GeometryError(f"ransac_sim3: threshold must be positive, got {threshold}")
    if generator is None:
        generator = torch.Generator(device=src.device).manual_seed(seed)
    sample = torch.multinomial(torch.ones(iterations, n, device=src.device), 3, replacement=False,
                               generator=generator)  # (I, 3)
    hyp = _solve(src[sample], dst[sample], None, scale)  # batch (I,)
    fixed = _scale_option(scale)[1]
    if fixed is None:  # a collinear sample gives a meaningless hypothesis: keep it from winning
        bad = ~torch.isfinite(hyp.scale) | (hyp.scale <= 0)
    else:
        bad = torch.zeros(iterations, dtype=torch.bool, device=src.device)
    th2 = threshold * threshold
    best = None
    chunk = max(1, 4_000_000 // max(n, 1))  # bound the (I, N, 3) residual tensor
    costs = []
    for start in range(0, iterations, chunk):
        h = hyp[start:start + chunk]
        r2 = ((h.apply(src) - dst) ** 2).sum(-1)  # (I, N)
        costs.append(r2.nan_to_num(nan=th2).clamp_max(th2).sum(-1))
    cost = torch.cat(costs).masked_fill(bad, float("inf"))
    best = hyp[int(cost.argmin())]
    inliers = ((best.apply(src) - dst) ** 2).sum(-1) < th2
    w_all = None if weights is None else as_float_tensors(weights, dtype=src.dtype)[0]
    for _ in range(refits):
        if int(inliers.sum()) < 3:
            break
        w = inliers.to(src.dtype) if w_all is None else w_all * inliers
        try:
            refit = umeyama(src, dst, w, scale=scale)
        except GeometryError:
            break
        new_inliers = ((refit.apply(src) - dst) ** 2).sum(-1) < th2
        if int(new_inliers.sum()) < int(inliers.sum()):
            break
        best, inliers = refit, new_inliers
    count = int(inliers.sum())
    if count < 3:
        raise GeometryError(f"ransac_sim3: no hypothesis has 3 inliers within {threshold} (of {n} correspondences)")
    r2 = ((best.apply(src[inliers]) - dst[inliers]) ** 2).sum(-1)
    return RansacResult(best, inliers, count, float(r2.mean().sqrt()))


# ---------------------------------------------------------------------------------------- ICP
@dataclass(frozen=True)
class IcpResult:
    """transform: Sim3 mapping source onto target; rmse and fitness (fraction of source points
    with a neighbour within max_distance) at the last iteration; iterations run."""

    transform: Sim3
    rmse: float
    fitness: float
    iterations: int


def estimate_normals(points, k: int = 16) -> torch.Tensor:
    """Unit normals (N, 3) from the smallest-eigenvalue direction of each point's k nearest
    neighbours (sign arbitrary), as Open3D's `estimate_normals` with a KNN search."""
    from scipy.spatial import cKDTree

    (p,) = as_float_tensors(points)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 3:
        raise GeometryError(f"estimate_normals: points must be (N, 3) with N >= 3, got {tuple(p.shape)}")
    k = min(int(k), p.shape[0])
    arr = p.detach().cpu().double().numpy()
    _, idx = cKDTree(arr).query(arr, k=k)
    nb = torch.from_numpy(arr[idx])  # (N, k, 3)
    c = nb - nb.mean(1, keepdim=True)
    _, vecs = torch.linalg.eigh(c.transpose(1, 2) @ c)
    return vecs[..., 0].to(dtype=p.dtype, device=p.device)


def icp(source, target, init: Sim3 | None = None, *, method: str = "point_to_point", max_distance=None,
        max_iterations: int = 30, tolerance: float = 1e-7, scale=False, target_normals=None) -> IcpResult:
    """Iterative closest point: the transform T with T(source) ≈ target (no correspondences given).

    Each iteration pairs every transformed source point with its nearest target point (pairs
    farther than `max_distance` dropped) and solves for an update: "point_to_point" by
    `umeyama` (scale as there: False rigid, True estimated, or fixed), "point_to_plane" by the
    linearised least squares of Σ ((T x − y)·n_y)² (rigid update; `target_normals` (M, 3) or
    estimated). Stops when the rmse changes by less than `tolerance` (relative).

    Args: source (N, 3), target (M, 3), init: starting Sim3 (identity by default).
    """
    from scipy.spatial import cKDTree

    if method not in ("point_to_point", "point_to_plane"):
        raise GeometryError(f"icp: method must be 'point_to_point' or 'point_to_plane', got {method!r}")
    src, dst = as_float_tensors(source, target)
    for name, p in (("source", src), ("target", dst)):
        if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 3:
            raise GeometryError(f"icp: {name} must be (N, 3) with N >= 3, got {tuple(p.shape)}")
        if not torch.isfinite(p).all():
            raise GeometryError(f"icp: {name} points contain NaN or infinite values")
    T = Sim3.identity(dtype=src.dtype, device=src.device) if init is None else init.to(src.device, src.dtype)
    # the loop runs on small float64 numpy arrays: per-iteration torch calls on a few thousand
    # points cost more in dispatch and thread hand-offs than in arithmetic
    src_np, dst_np = src.detach().cpu().double().numpy(), dst.detach().cpu().double().numpy()
    tree = cKDTree(dst_np)
    normals = None
    if method == "point_to_plane":
        given = None if target_normals is None else as_float_tensors(target_normals, dtype=src.dtype)[0]
        normals = (estimate_normals(dst) if given is None else given).detach().cpu().double().numpy()
    bound = np.inf if max_distance is None else float(max_distance)
    s_, R_, t_ = float(T.scale), T.R.detach().cpu().double().numpy(), T.t.detach().cpu().double().numpy()
    prev = None
    rmse, fitness, done = float("inf"), 0.0, 0
    for _ in range(max_iterations):
        done += 1
        moved = s_ * src_np @ R_.T + t_
        dist, idx = tree.query(moved, distance_upper_bound=bound)
        ok = np.isfinite(dist)
        if int(ok.sum()) < 3:
            raise GeometryError(f"icp: fewer than 3 source points have a target within {max_distance}")
        x, y = moved[ok], dst_np[idx[ok]]
        rmse = float(np.sqrt(np.mean(dist[ok] ** 2)))
        fitness = float(ok.mean())
        if prev is not None and abs(prev - rmse) <= tolerance * max(prev, 1e-30):
            break
        prev = rmse
        if method == "point_to_point":
            try:
                step = umeyama(torch.from_numpy(src_np[ok]), torch.from_numpy(y), scale=scale)
            except GeometryError:
                break
            # solved from the original source: no drift from composing
            s_, R_, t_ = float(step.scale), step.R.numpy(), step.t.numpy()
        else:
            n = normals[idx[ok]]
            A = np.concatenate([np.cross(x, n), n], axis=1)  # (K, 6)
            b = ((y - x) * n).sum(1)
            try:
                sol = np.linalg.solve(A.T @ A, A.T @ b)  # the normal equations of the linearised fit
            except np.linalg.LinAlgError:
                break
            dR = _roma().rotvec_to_rotmat(torch.from_numpy(sol[:3])).numpy()
            s_, R_, t_ = s_, dR @ R_, dR @ t_ + sol[3:]
    T = Sim3(torch.tensor(s_, dtype=src.dtype, device=src.device), torch.from_numpy(R_).to(src.device, src.dtype),
             torch.from_numpy(t_).to(src.device, src.dtype))
    return IcpResult(T, rmse, fitness, done)
