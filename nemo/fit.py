"""Batched render-and-compare pose fitting: B feature maps × a grid of pose hypotheses, one program.

For every image: score each pose of a grid (azimuth × elevation × in-plane θ at one distance,
centred at the principal point) without gradients, keep the `keep` best, refine their
(azimuth, elevation, θ, log-distance, 2D centre) with Adam (NeMo: lr 0.05, betas (0.4, 0.6)) and
return the pose of lowest loss met on the way. Scores and loss are `nemo.scoring`'s; the camera is
`geom3d.viewpoint_to_cameras` with the feature map's own focal length, so a result mapping rebuilds
the estimated camera of the feature map with `geom3d.viewpoint_from_mapping(result, (h, w))`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

import geom3d

from .bank import MeshBank
from .errors import NemoError
from .scoring import clutter_scores, object_scores, pose_loss, rendered_object_scores, vertex_similarity

__all__ = ["PoseGrid", "fit_pose", "pose_grid", "score_poses", "initial_distance"]

CENTRE_SCALE = 0.1  # the centre is optimised in units of 0.1·max(h, w), so one lr suits all parameters


@dataclass(frozen=True)
class PoseGrid:
    """Initial hypotheses: azimuths, elevations, thetas (radians), combined as a full product."""

    azimuths: tuple[float, ...]
    elevations: tuple[float, ...]
    thetas: tuple[float, ...]
    # ((elevation lo, hi), (theta lo, hi)) in radians: the refinement stays inside (a viewpoint prior,
    # e.g. the training sampler's); None: it moves freely
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None

    def angles(self) -> torch.Tensor:
        """(G, 3) azimuth, elevation, theta of every grid pose."""
        a, e, t = torch.meshgrid(torch.tensor(self.azimuths), torch.tensor(self.elevations),
                                 torch.tensor(self.thetas), indexing="ij")
        return torch.stack([a.reshape(-1), e.reshape(-1), t.reshape(-1)], dim=-1).float()

    def __len__(self) -> int:
        return len(self.azimuths) * len(self.elevations) * len(self.thetas)


def pose_grid(azimuths: int = 12, elevations: int = 4, thetas: int = 3, *,
              elevation_range: tuple[float, float] | None = None,
              theta_range: tuple[float, float] | None = None) -> PoseGrid:
    """NeMo's initialisation grid: azimuths over [0, 2π), elevations over [−π/6, π/3], in-plane
    angles over [−π/6, π/6] (a single value is the range's middle: 0 for θ, π/12 for elevation).

    elevation_range / theta_range (radians, lo ≤ hi): span these instead and keep the refinement
    inside them (`PoseGrid.bounds`; the range not given is NeMo's). Without either, the refinement is
    unbounded, as NeMo's."""
    def span(n, lo, hi):
        if n < 1:
            raise NemoError(f"pose_grid: counts must be ≥ 1, got {n}")
        return (0.5 * (lo + hi),) if n == 1 else tuple(lo + (hi - lo) * i / (n - 1) for i in range(n))

    bounded = elevation_range is not None or theta_range is not None
    el = tuple(float(v) for v in (elevation_range or (-math.pi / 6, math.pi / 3)))
    th = tuple(float(v) for v in (theta_range or (-math.pi / 6, math.pi / 6)))
    for name, (lo, hi) in (("elevation_range", el), ("theta_range", th)):
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise NemoError(f"pose_grid: {name} must be finite with lo ≤ hi, got {(lo, hi)}")
    az = tuple(2 * math.pi * i / azimuths for i in range(azimuths)) if azimuths >= 1 else span(azimuths, 0, 0)
    return PoseGrid(az, span(elevations, *el), span(thetas, *th), (el, th) if bounded else None)


@dataclass
class _Problem:
    """One batch's fixed data: per image the similarity table, clutter scores and its mesh."""

    feature_maps: torch.Tensor  # (B, D, h, w)
    similarity: torch.Tensor | None  # (B, h·w, Vmax) for "gather"
    clutter: torch.Tensor  # (B, h·w)
    vertices: torch.Tensor  # (B, Vmax, 3)
    faces: torch.Tensor  # (B, Fmax, 3)
    vertex_features: torch.Tensor  # (B, Vmax, D)
    focal: torch.Tensor  # (B,)
    centre: torch.Tensor  # (B, 2) principal point of K: the centre's origin
    image_size: tuple[int, int]
    scoring: str
    index: torch.Tensor  # (B,) bank rows
    cull: bool  # back-face culling (closed meshes wound outwards, as cuboids: same pixels, half the faces)

    @property
    def batch(self) -> int:
        return int(self.feature_maps.shape[0])


def _cameras(params: torch.Tensor, problem: _Problem) -> geom3d.Cameras:
    """Cameras (B, H) of parameters (B, H, 6) = (azimuth, elevation, theta, log-distance, centre x, y)."""
    B, H, _ = params.shape
    h, w = problem.image_size
    a, e, t, logd, cx, cy = params.unbind(-1)
    scale = CENTRE_SCALE * max(h, w)
    px = problem.centre[:, None, 0] + scale * cx
    py = problem.centre[:, None, 1] + scale * cy
    focal = problem.focal[:, None].expand(B, H)
    cams = geom3d.viewpoint_to_cameras(a, e, t, logd.exp(), focal=focal, viewport=1.0,
                                       principal=torch.stack([px, py], -1), image_size=(h, w))
    return cams


def score_poses(params: torch.Tensor, problem: _Problem, pix_to_face: torch.Tensor | None = None
                ) -> torch.Tensor:
    """NeMo's loss (B, H) of pose parameters (B, H, 6) (see `_cameras`); differentiable.

    pix_to_face (B, H, h, w): hold these visible faces instead of running the visibility pass.
    """
    # the B meshes pair with the cameras' first dimension: no per-hypothesis copies of the meshes
    mesh, cams = (problem.vertices, problem.faces), _cameras(params, problem)
    if pix_to_face is None:
        fragments = geom3d.rasterize(mesh, cams, cull_backfaces=problem.cull)
    else:
        fragments = geom3d.raster.fragments_for_faces(mesh, cams, pix_to_face=pix_to_face)
    if problem.scoring == "gather":
        obj = object_scores(fragments, problem.similarity)
    else:
        obj = rendered_object_scores(fragments, problem.feature_maps, problem.vertex_features)
    return pose_loss(obj, problem.clutter[:, None])


def initial_distance(bank: MeshBank, categories, focal: torch.Tensor, image_size, fill: float = 1 / 3
                     ) -> torch.Tensor:
    """(B,) distances at which each image's mesh (bounding radius about its origin) spans `fill` of
    the smaller side of an image (h, w) with focal lengths `focal` (B,) in pixels."""
    index = bank.index(categories).to(bank.device)
    radius = (bank.vertices[index].norm(dim=-1) * bank.vertex_mask()[index]).amax(dim=1)
    return focal.to(radius) * radius / (fill * min(image_size))


def _grid_fragments(bank: MeshBank, row: int, K: torch.Tensor, distance: float, angles: torch.Tensor,
                    image_size, cull: bool) -> geom3d.Fragments:
    """Fragments (G,) of bank mesh `row` at every grid pose (one distance, centred): the same for every
    image with these intrinsics, so rendered once and kept on the bank (NeMo pre-renders its grid too)."""
    cache = bank.__dict__.setdefault("_grid_cache", {})
    key = (row, tuple(round(float(v), 6) for v in K.reshape(-1)), round(float(distance), 6),
           tuple(angles.reshape(-1).tolist()), tuple(image_size), cull, str(K.device))
    if key not in cache:
        if len(cache) >= 16:
            cache.pop(next(iter(cache)))
        V, Fc = int(bank.num_vertices[row]), int(bank.num_faces[row])
        a, e, t = angles.unbind(-1)
        cams = geom3d.viewpoint_to_cameras(a, e, t, float(distance), focal=float(K[0, 0]), viewport=1.0,
                                           principal=(float(K[0, 2]), float(K[1, 2])), image_size=image_size)
        mesh = (bank.vertices[row, :V].to(K), bank.faces[row, :Fc].to(K.device))
        with torch.no_grad():
            cache[key] = geom3d.rasterize(mesh, cams.to(device=K.device), cull_backfaces=cull)
    return cache[key]


def _grid_losses(problem: _Problem, bank: MeshBank, K: torch.Tensor, d0: torch.Tensor, angles: torch.Tensor,
                 chunk: int = 8) -> torch.Tensor:
    """NeMo's loss (B, G) at every grid pose, from cached grid fragments per (category, K, distance)."""
    B, (h, w) = problem.batch, problem.image_size
    P = h * w
    out = torch.empty(B, angles.shape[0], dtype=problem.feature_maps.dtype, device=problem.feature_maps.device)
    groups: dict = {}
    for b in range(B):
        key = (int(problem.index[b]), tuple(K[b].reshape(-1).tolist()), float(d0[b]))
        groups.setdefault(key, []).append(b)
    for (row, _, distance), members in groups.items():
        frags = _grid_fragments(bank, row, K[members[0]], distance, angles, (h, w), problem.cull)
        G = frags.num_views
        if problem.scoring == "render":
            V = int(bank.num_vertices[row])
            rendered = geom3d.interpolate(frags, problem.vertex_features[members[0], :V], channels_first=True)
        else:
            covered, view, corners, bary = frags.covered()
            pixel = covered - view * P
            flat_rows = pixel[:, None] * problem.similarity.shape[-1] + corners  # (n, 3) into one image's (P·V)
            target = view * P + pixel
        for i in range(0, len(members), chunk):
            idx = torch.tensor(members[i:i + chunk], device=out.device)
            if problem.scoring == "render":
                obj = torch.einsum("gdp,bdp->bgp", rendered.reshape(G, -1, P),
                                   problem.feature_maps[idx].reshape(len(idx), -1, P))
            else:
                table = problem.similarity[idx].reshape(len(idx), -1)  # (b, P·V)
                score = (table[:, flat_rows] * bary).sum(-1)  # (b, n)
                obj = score.new_zeros(len(idx), G * P).index_copy_(1, target, score).reshape(len(idx), G, P)
            out[idx] = pose_loss(obj, problem.clutter[idx][:, None])
    return out


def _prepare(feature_maps, K, bank: MeshBank, categories, scoring: str, cull: bool = True) -> _Problem:
    if scoring not in ("gather", "render"):
        raise NemoError(f"fit_pose: scoring must be 'gather' or 'render', got {scoring!r}")
    feature_maps = torch.as_tensor(feature_maps)
    if feature_maps.ndim != 4 or not feature_maps.is_floating_point():
        raise NemoError(f"fit_pose: feature_maps must be a float (B, D, h, w) tensor, got {tuple(feature_maps.shape)}")
    B, D, h, w = feature_maps.shape
    if D != bank.feature_dim:
        raise NemoError(f"fit_pose: feature maps have {D} channels, the bank's features {bank.feature_dim}")
    if isinstance(categories, str):
        categories = [categories]
    if len(categories) != B:
        raise NemoError(f"fit_pose: {len(categories)} categories for {B} feature maps")
    K = torch.as_tensor(K, dtype=feature_maps.dtype, device=feature_maps.device)
    if K.shape == (3, 3):
        K = K.expand(B, 3, 3)
    if K.shape != (B, 3, 3):
        raise NemoError(f"fit_pose: K must have shape (3, 3) or ({B}, 3, 3), got {tuple(K.shape)}")
    fx, fy = K[:, 0, 0], K[:, 1, 1]
    if not torch.isfinite(K).all() or (fx <= 0).any() or not torch.allclose(fx, fy, rtol=1e-4):
        raise NemoError("fit_pose: K must be finite with square pixels (fx == fy > 0)")
    index = bank.index(categories).to(feature_maps.device)
    feats = bank.features[index].to(feature_maps)
    sim = vertex_similarity(feature_maps, feats) if scoring == "gather" else None
    clutter = clutter_scores(feature_maps, bank.clutter_centre()[None])
    return _Problem(feature_maps, sim, clutter, bank.vertices[index].to(feature_maps), bank.faces[index],
                    feats, fx, K[:, :2, 2], (h, w), scoring, index, cull)


def fit_pose(feature_maps: torch.Tensor, K: torch.Tensor, bank: MeshBank, categories: Sequence[str],
             steps: int = 30, *, grid: PoseGrid | None = None, distance=None, keep: int = 2, lr: float = 0.05,
             scoring: str = "gather", cull_backfaces: bool = True, visibility_every: int = 1,
             lr_decay: float = 1.0) -> list[dict]:
    """Estimate one pose per feature map by batched render-and-compare against the bank.

    feature_maps (B, D, h, w): unit features. K (B, 3, 3) or (3, 3): intrinsics of the feature map
    in its own pixels (OpenCV, integer pixel centres, square pixels). categories: B names in the
    bank. steps: Adam steps on the `keep` best grid poses of each image. grid: `pose_grid()` by
    default. distance: initial object distance, a number or (B,); None: the mesh's bounding radius
    spans a third of the smaller map side. scoring: "gather" (fast) or "render" (naive, for
    benchmarks); same result up to rounding. cull_backfaces: skip faces turned away from the camera
    (exact for closed meshes wound outwards, as `geom3d.cuboid_mesh`; pass False for other meshes).
    The grid's fragments depend only on (category, K, distance), so they are rendered once and cached.
    visibility_every: during refinement the visibility pass runs every this many steps and the faces
    it found are held in between (barycentrics stay exact and differentiable); only losses with fresh
    visibility pick the result. Holding costs accuracy (oracle Acc@π/18 100% -> 80-90% at 3), hence 1.
    lr_decay: 1 keeps the step size; below 1 it decays (cosine) to lr·lr_decay over the steps.

    Returns B dicts with azimuth, elevation, theta, distance, focal, viewport (= 1: focal is in
    feature-map pixels), px, py (the object centre), score (1 − loss, higher is better) and loss,
    such that `geom3d.viewpoint_from_mapping(result, (h, w))` is the estimated camera.
    """
    grid = grid or pose_grid()
    problem = _prepare(feature_maps, K, bank, categories, scoring, cull_backfaces)
    B, (h, w) = problem.batch, problem.image_size
    dtype, device = problem.feature_maps.dtype, problem.feature_maps.device
    if distance is None:
        d0 = initial_distance(bank, categories, problem.focal, (h, w)).to(dtype=dtype, device=device)
    else:
        d0 = torch.as_tensor(distance, dtype=dtype, device=device).expand(B)
    if (d0 <= 0).any() or not torch.isfinite(d0).all():
        raise NemoError("fit_pose: the initial distance must be positive")
    angles = grid.angles().to(device=device, dtype=dtype)  # (G, 3)
    G = angles.shape[0]
    init = torch.cat([angles.expand(B, G, 3), d0.log()[:, None, None].expand(B, G, 1),
                      torch.zeros(B, G, 2, dtype=dtype, device=device)], dim=-1)  # (B, G, 6)
    with torch.no_grad():
        K_full = torch.cat([problem.focal[:, None], torch.zeros_like(problem.focal)[:, None], problem.centre[:, :1],
                            torch.zeros_like(problem.focal)[:, None], problem.focal[:, None], problem.centre[:, 1:],
                            torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=device).expand(B, 3)], 1).reshape(B, 3, 3)
        grid_loss = _grid_losses(problem, bank, K_full, d0, angles)
    keep = max(1, min(int(keep), G))
    best = grid_loss.topk(keep, dim=1, largest=False).indices  # (B, keep)
    params = torch.gather(init, 1, best[..., None].expand(B, keep, 6)).clone().requires_grad_(True)
    best_loss = torch.gather(grid_loss, 1, best)
    best_params = params.detach().clone()
    if steps > 0:
        optimiser = torch.optim.Adam([params], lr=lr, betas=(0.4, 0.6))
        # lr_decay < 1: cosine decay of the step size to lr·lr_decay (NeMo decays its learning rate
        # over its 300 steps): large moves first, fine ones at the end
        schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps, eta_min=lr * lr_decay)
                    if lr_decay < 1.0 else None)
        visible = None
        for step in range(steps + 1):
            final = step == steps
            held = None
            if not final and step % visibility_every:  # poses move little per step: reuse the visible faces
                held = visible
            else:
                with torch.no_grad():
                    visible = geom3d.raster.visible_faces((problem.vertices, problem.faces), _cameras(params, problem),
                                                   cull_backfaces=problem.cull)
            with torch.set_grad_enabled(not final):  # also under a caller's no_grad: refinement needs gradients
                loss = score_poses(params, problem, pix_to_face=visible if held is None else held)
                if not final:  # a pose that covers no pixel has no gradient: keep the graph connected
                    total = (loss + 0.0 * params.sum(-1)).sum()
            with torch.no_grad():  # only exact losses (fresh visibility) may pick the result
                better = (loss.detach() < best_loss) & (held is None)
                best_loss = torch.where(better, loss.detach(), best_loss)
                best_params = torch.where(better[..., None], params.detach(), best_params)
            if final:
                break
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            optimiser.step()
            if grid.bounds is not None:  # projected steps: the pose stays inside the prior's box
                with torch.no_grad():
                    (el_lo, el_hi), (th_lo, th_hi) = grid.bounds
                    params[..., 1].clamp_(el_lo, el_hi)
                    params[..., 2].clamp_(th_lo, th_hi)
            if schedule is not None:
                schedule.step()
    winner = best_loss.argmin(dim=1)
    chosen = best_params[torch.arange(B, device=device), winner]  # (B, 6)
    chosen_loss = best_loss[torch.arange(B, device=device), winner]
    scale = CENTRE_SCALE * max(h, w)
    results = []
    for b in range(B):
        a, e, t, logd, cx, cy = (float(v) for v in chosen[b])
        results.append({
            "azimuth": float(geom3d.wrap_azimuth(a)), "elevation": e, "theta": float(geom3d.wrap_angle(t)),
            "distance": math.exp(logd), "focal": float(problem.focal[b]), "viewport": 1.0,
            "px": float(problem.centre[b, 0]) + scale * cx, "py": float(problem.centre[b, 1]) + scale * cy,
            "score": 1.0 - float(chosen_loss[b]), "loss": float(chosen_loss[b]),
        })
    return results
