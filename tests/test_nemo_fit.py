"""nemo.fit_pose: batched render-and-compare; the oracle check, the two scoring formulations agree,
refinement improves on the grid, results rebuild the camera, mixed-category batches."""

import math

import pytest
import torch
import torch.nn.functional as F
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

import geom3d
import nemo
from nemo.fit import _prepare, score_poses
from nemo.oracle import oracle_feature_maps, random_viewpoints

H, W, FOCAL = 40, 48, 150.0


def _bank(categories=("car",), seed=0, clutter=None):
    boxes = {"car": ((-0.5, -0.22, -0.15), (0.5, 0.22, 0.15)), "sofa": ((-0.45, -0.3, -0.2), (0.45, 0.3, 0.2))}
    meshes = {c: geom3d.cuboid_mesh(*boxes[c], 300) for c in categories}
    return nemo.MeshBank(meshes, clutter=clutter, seed=seed)


def _views(n, seed):
    gen = torch.Generator().manual_seed(seed)
    vp = random_viewpoints(n, gen)
    cams = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                       focal=FOCAL, viewport=1.0, image_size=(H, W))
    return cams, gen


def _errors(results, cams):
    R = torch.stack([geom3d.viewpoint_from_mapping(r, (H, W)).R for r in results])
    return geom3d.pose_error(R, cams.R)


@pytest.mark.parametrize("clutter", ["random", "trained"])
def test_oracle_recovers_poses(clutter):
    """The bank's own features at random true poses on random unit background, clean and with 40%
    of the object's pixels replaced by random unit features: Acc@π/18 ≥ 90% for each."""
    n = 10
    cams, gen = _views(n, seed=11)
    # "trained" clutter: the bank holds features drawn like the background it will see
    bank = _bank(clutter=None if clutter == "random" else F.normalize(torch.randn(2560, 128, generator=gen), dim=-1))
    maps = torch.cat([oracle_feature_maps(bank, ["car"] * n, cams, gen, occlude=occlude) for occlude in (0.0, 0.4)])
    results = nemo.fit_pose(maps, cams.K[0], bank, ["car"] * (2 * n), steps=30, distance=5.0)
    for half in (results[:n], results[n:]):
        err = _errors(half, cams)
        assert geom3d.pose_accuracy(err, math.pi / 18) >= 0.9, torch.rad2deg(err)


def test_gather_and_render_scores_agree_with_gradients():
    bank = _bank(("car", "sofa"))
    cams, gen = _views(2, seed=3)
    maps = oracle_feature_maps(bank, ["car", "sofa"], cams, gen)
    losses, grads = {}, {}
    for scoring in ("gather", "render"):
        problem = _prepare(maps, cams.K, bank, ["car", "sofa"], scoring)
        params = torch.tensor([[[0.3, 0.2, 0.1, math.log(5.0), 0.1, -0.1], [2.0, 0.5, -0.2, math.log(4.5), 0.0, 0.2]],
                               [[1.0, 0.1, 0.0, math.log(5.2), 0.0, 0.0], [4.0, -0.2, 0.3, math.log(5.0), -0.2, 0.0]]],
                              requires_grad=True)
        loss = score_poses(params, problem)
        loss.sum().backward()
        losses[scoring], grads[scoring] = loss.detach(), params.grad
    assert torch.allclose(losses["gather"], losses["render"], atol=1e-5)
    assert torch.allclose(grads["gather"], grads["render"], atol=1e-4)
    assert grads["gather"].abs().sum() > 0


def test_loss_at_true_pose_is_hand_value():
    """At the true pose, clean oracle maps give object score ≈ 1 on the mesh and clutter ≈ 0."""
    bank = _bank()
    cams, gen = _views(1, seed=5)
    maps = oracle_feature_maps(bank, ["car"], cams, gen)
    vp = geom3d.cameras_to_viewpoint(cams, viewport=1.0)
    problem = _prepare(maps, cams.K, bank, ["car"], "gather")
    params = torch.stack([vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"].log(),
                          torch.zeros(1), torch.zeros(1)], -1)[:, None]
    covered = float(geom3d.rasterize((bank.vertices[:1], bank.faces[:1]), cams).mask.float().mean())
    # object pixels hold the normalised interpolated feature f/|f|, the score is <f/|f|, f> = |f| ≤ 1
    loss = float(score_poses(params, problem))
    assert 1 - covered - 0.05 < loss < 1 - 0.6 * covered


def test_refinement_improves_on_grid_and_mapping_rebuilds_camera():
    bank = _bank()
    cams, gen = _views(4, seed=7)
    maps = oracle_feature_maps(bank, ["car"] * 4, cams, gen, occlude=0.2)
    grid_only = nemo.fit_pose(maps, cams.K[0], bank, ["car"] * 4, steps=0, distance=5.0)
    refined = nemo.fit_pose(maps, cams.K[0], bank, ["car"] * 4, steps=30, distance=5.0)
    assert all(r["loss"] <= g["loss"] + 1e-6 for r, g in zip(refined, grid_only))
    assert sum(r["loss"] for r in refined) < sum(g["loss"] for g in grid_only) - 0.05
    assert _errors(refined, cams).mean() < _errors(grid_only, cams).mean()
    # the mapping is the camera the loss was computed with
    r = refined[0]
    problem = _prepare(maps[:1], cams.K[0], bank, ["car"], "gather")
    cam = geom3d.viewpoint_from_mapping(r, (H, W))
    vp = geom3d.cameras_to_viewpoint(cam, viewport=1.0)
    scale = 0.1 * max(H, W)
    params = torch.tensor([[[float(vp["azimuth"]), float(vp["elevation"]), float(vp["theta"]), math.log(r["distance"]),
                             (r["px"] - (W - 1) / 2) / scale, (r["py"] - (H - 1) / 2) / scale]]])
    assert float(score_poses(params, problem)) == pytest.approx(r["loss"], abs=1e-4)


def test_mixed_categories_and_bad_input():
    bank = _bank(("car", "sofa"))
    cams, gen = _views(4, seed=9)
    cats = ["car", "sofa", "sofa", "car"]
    maps = oracle_feature_maps(bank, cats, cams, gen)
    results = nemo.fit_pose(maps, cams.K, bank, cats, steps=10, distance=5.0)
    assert len(results) == 4 and {"azimuth", "elevation", "theta", "distance", "px", "py", "score"} <= set(results[0])
    with pytest.raises(nemo.NemoError, match="categories"):
        nemo.fit_pose(maps, cams.K, bank, cats[:2])
    with pytest.raises(nemo.NemoError, match="channels"):
        nemo.fit_pose(maps[:, :5], cams.K, bank, cats)
    with pytest.raises(nemo.NemoError, match="square pixels"):
        nemo.fit_pose(maps, torch.diag(torch.tensor([100.0, 50.0, 1.0])), bank, cats)


def test_culling_and_cached_grid_change_nothing():
    """Back-face culling is exact for the (closed, outward-wound) cuboid, and the cached grid
    fragments give the losses the per-image rasterization gives."""
    from nemo.fit import _grid_losses, pose_grid

    bank = _bank()
    cams, gen = _views(3, seed=4)
    maps = oracle_feature_maps(bank, ["car"] * 3, cams, gen, occlude=0.3)
    angles = pose_grid(6, 2, 2).angles()
    params = torch.cat([angles.expand(3, -1, 3), torch.full((3, len(angles), 1), math.log(5.0)),
                        torch.zeros(3, len(angles), 2)], -1)
    culled = _prepare(maps, cams.K[0], bank, ["car"] * 3, "gather", cull=True)
    full = _prepare(maps, cams.K[0], bank, ["car"] * 3, "gather", cull=False)
    direct = score_poses(params, full)
    assert torch.allclose(score_poses(params, culled), direct, atol=1e-6)
    K = cams.K[0].expand(3, 3, 3)
    cached = _grid_losses(culled, bank, K, torch.full((3,), 5.0), angles)
    assert torch.allclose(cached, direct, atol=1e-5)
    rendered = _grid_losses(_prepare(maps, cams.K[0], bank, ["car"] * 3, "render"), bank, K, torch.full((3,), 5.0),
                            angles)
    assert torch.allclose(rendered, direct, atol=1e-5)


def test_pose_grid_ranges_and_bounds():
    """A range replaces NeMo's span (end points included) and bounds the refinement; none: NeMo's grid."""
    default = nemo.pose_grid(12, 4, 3)
    assert default.bounds is None
    assert default.elevations == pytest.approx((-math.pi / 6, 0.0, math.pi / 6, math.pi / 3))
    grid = nemo.pose_grid(12, 3, 3, elevation_range=(-0.2, 0.6))
    assert grid.elevations == pytest.approx((-0.2, 0.2, 0.6))
    assert grid.thetas == pytest.approx((-math.pi / 6, 0.0, math.pi / 6))  # the range not given stays NeMo's
    assert grid.bounds == ((-0.2, 0.6), pytest.approx((-math.pi / 6, math.pi / 6)))
    assert nemo.pose_grid(12, 1, 1, theta_range=(-0.1, 0.3)).thetas == pytest.approx((0.1,))
    with pytest.raises(nemo.NemoError, match="elevation_range"):
        nemo.pose_grid(12, 4, 3, elevation_range=(0.5, -0.5))


def test_bounded_refinement_stays_inside_the_prior():
    """Oracle maps: a view inside the bounds is found as without them; a view above the elevation bound
    ends on the bound (unbounded, the fit goes past it); no result leaves the box."""
    bank = _bank()
    gen = torch.Generator().manual_seed(4)
    elevation = torch.tensor([0.2, 0.25, 0.9])
    azimuth, theta = torch.tensor([0.7, 3.5, 2.0]), torch.tensor([0.05, -0.08, 0.0])
    cams = geom3d.viewpoint_to_cameras(azimuth, elevation, theta, 5.0, focal=FOCAL, viewport=1.0, image_size=(H, W))
    maps = oracle_feature_maps(bank, ["car"] * 3, cams, gen)
    lo, hi, t_max = -0.2, 0.5, 0.15
    grid = nemo.pose_grid(12, 4, 3, elevation_range=(lo, hi), theta_range=(-t_max, t_max))
    bounded = nemo.fit_pose(maps, cams.K[0], bank, ["car"] * 3, steps=30, grid=grid, distance=5.0)
    free = nemo.fit_pose(maps, cams.K[0], bank, ["car"] * 3, steps=30, distance=5.0)
    assert all(lo - 1e-6 <= r["elevation"] <= hi + 1e-6 and abs(r["theta"]) <= t_max + 1e-6 for r in bounded)
    assert free[2]["elevation"] > hi + 0.1  # the truth lies above the bound
    assert bounded[2]["elevation"] == pytest.approx(hi, abs=1e-5)
    errors = _errors(bounded[:2], geom3d.Cameras(K=cams.K[:2], R=cams.R[:2], t=cams.t[:2], image_size=(H, W)))
    assert (torch.rad2deg(errors) < 5).all(), torch.rad2deg(errors)
