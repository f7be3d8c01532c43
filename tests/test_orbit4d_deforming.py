"""orbit4d for a deforming subject: the articulated scene, the surface metrics, the deformation
graph, the released box rule and (slow) the deforming canonical model against the rigid pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

from orbit4d.articulated import LEG, make_animal, make_deforming_scene, pose_animal, surface_samples
from orbit4d.box_rule import apply_box_rule, box_rule_fit, kalman_smooth_1d
from orbit4d.deform import _solve, build_graph
from orbit4d.surface_eval import depth_errors, flicker, surface_scores


@pytest.fixture(scope="module")
def animal():
    return make_animal(0.06)


def test_rest_pose_is_the_rest_mesh_and_limbs_move_rigidly(animal):
    np.testing.assert_allclose(pose_animal(animal, 0.0, np.zeros(4), 0.0, 0.0), animal.vertices, atol=1e-12)
    posed = pose_animal(animal, 0.0, [0.4, 0.0, 0.0, 0.0], 0.0, 0.0)
    moved = np.linalg.norm(posed - animal.vertices, axis=1) > 1e-9
    assert set(np.unique(animal.leg[moved])) == {0}  # only the swung leg moves
    leg = animal.leg == 0
    hip = animal.hips[0]
    # a rotation about the hip: distances to the hip and between the leg's points are kept
    np.testing.assert_allclose(np.linalg.norm(posed[leg] - hip, axis=1), np.linalg.norm(animal.vertices[leg] - hip,
                                                                                          axis=1), atol=1e-12)
    foot_before = animal.vertices[leg][np.argmin(animal.vertices[leg][:, 2])]
    foot_after = posed[leg][np.argmin(animal.vertices[leg][:, 2])]
    # a turn about the hip's y axis by 0.4 rad: x' − h_x = cos·(x − h_x) + sin·(z − h_z), by hand
    dx, dz = foot_before[0] - hip[0], foot_before[2] - hip[2]
    assert foot_after[0] - hip[0] == pytest.approx(math.cos(0.4) * dx + math.sin(0.4) * dz, abs=1e-12)
    assert foot_after[0] < foot_before[0] - 0.2  # the foot, half a metre below the hip, swings back


def test_bend_is_non_rigid_and_keeps_heights(animal):
    posed = pose_animal(animal, 0.3, np.zeros(4), 0.0, 0.0)
    np.testing.assert_allclose(posed[:, 2], animal.vertices[:, 2], atol=1e-12)  # a bend about the vertical
    body = animal.part == 0
    # the body's ends turn by ±0.3 rad: its centre stays, a point at x = L moves sideways by L·sin(0.3)
    end = np.argmax(animal.vertices[:, 0] * body)
    x = animal.vertices[end]
    assert posed[end, 1] - x[1] == pytest.approx(x[0] * math.sin(0.3 * x[0] / animal.half_length) + x[1] * (
        math.cos(0.3 * x[0] / animal.half_length) - 1), abs=1e-9)
    legs = animal.part == LEG
    assert np.abs(posed[legs] - animal.vertices[legs]).max() > 0.01  # legs follow the bent body


@pytest.fixture(scope="module")
def scene():
    return make_deforming_scene(5, (72, 96), mesh_step=0.05)


def test_scene_masks_and_samples_agree_with_the_true_surface(scene):
    assert scene.masks.any(axis=(1, 2)).all()
    s = surface_samples(scene, 8000)
    truth = s.points(scene.vertices, scene.animal.faces)
    assert truth.shape == (5, 8000, 3)
    # a sample on a posed surface is the barycentric mix of that frame's posed vertices
    f0 = scene.animal.faces[s.face[0]]
    np.testing.assert_allclose(truth[2, 0], s.barycentric[0] @ scene.vertices[2][f0], atol=1e-12)
    assert 0.3 < s.seen.mean() < 0.8  # the far side and the belly are never filmed
    assert (s.seen == s.visible.any(0)).all()
    # visible samples project into their frame's mask
    cam = scene.cameras[1].to(dtype=torch.float64)
    uv = cam.project(torch.from_numpy(truth[1][s.visible[1]])).round().long().numpy()
    assert scene.masks[1][uv[:, 1], uv[:, 0]].mean() > 0.99


def test_surface_scores_by_hand():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, (4000, 3))
    seen = truth[:, 0] < 0.5
    exact = surface_scores(truth, truth, seen, 0.05)
    assert exact.f_score == {"seen": 1.0, "never_seen": 1.0, "all": 1.0}
    assert exact.chamfer["all"] == 0.0
    half = surface_scores(truth[seen], truth, seen, 0.05)  # the never-seen half missing
    assert half.f_score["seen"] == 1.0 and half.f_score["never_seen"] == 0.0
    assert half.recall["seen"] == 1.0 and half.recall["never_seen"] < 0.2  # only the border of the missing half
    far = surface_scores(truth + [0.0, 0.0, 3.0], truth, seen, 0.05)
    assert far.f_score["all"] == 0.0
    assert far.chamfer["all"] == pytest.approx(2.5, rel=0.02)  # a unit cube 3 above itself: 3 − 1 + mean z
    moving = [truth, truth + [0.01, 0, 0], truth]
    assert flicker([truth, truth, truth], np.stack([truth] * 3)) == 0.0
    assert flicker(moving, np.stack([truth] * 3)) > 0.0
    err, cov = depth_errors(np.array([[1.0, 0.0], [2.2, 0.0]]), np.array([[1.0, 1.0], [2.0, 0.0]]))
    assert cov == pytest.approx(2 / 3) and err == pytest.approx(0.05)


def test_deformation_graph_reproduces_rigid_motion(animal):
    pts = animal.vertices[::3]
    g = build_graph(pts, 0.08)
    K = len(g.nodes)
    eye = np.broadcast_to(np.eye(3), (K, 3, 3))
    np.testing.assert_allclose(g.deform(pts, eye, g.nodes), pts, atol=1e-12)
    np.testing.assert_allclose(g.point_weights.sum(1), 1.0)
    c, s = math.cos(0.3), math.sin(0.3)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    t = np.array([0.2, -0.1, 0.05])
    np.testing.assert_allclose(g.deform(pts, np.broadcast_to(R, (K, 3, 3)), g.nodes @ R.T + t), pts @ R.T + t,
                               atol=1e-12)
    # the solver finds that motion from correspondences on a third of the points
    idx = np.arange(0, len(pts), 3)
    Rs, ps = _solve(g, pts, np.array(eye), g.nodes.copy(), idx, pts[idx] @ R.T + t, np.ones(len(idx)), g.nodes,
                    alpha=2.0, beta=0.0, iterations=60)
    assert np.abs(g.deform(pts, Rs, ps) - (pts @ R.T + t)).max() < 2e-3


def test_box_rule_recovers_an_axis_aligned_similarity_and_not_a_rotation():
    rng = np.random.default_rng(1)
    src = rng.uniform([-0.5, -0.3, 2.0], [0.5, 0.3, 2.4], (3000, 3))
    complete = np.concatenate([src, rng.uniform([-0.5, -0.3, 2.4], [0.5, 0.3, 2.6], (1000, 3))])
    tgt = 1.7 * src + [0.3, -0.2, 1.0]
    fit = box_rule_fit(src, tgt, complete)
    assert fit.scale == pytest.approx(1.7) and fit.x_scale == pytest.approx(1.0)
    np.testing.assert_allclose(apply_box_rule(fit, src), tgt, atol=1e-9)
    # a target stretched along x: x_scale takes it (the released rule's anisotropic x)
    stretched = tgt * [1.2, 1.0, 1.0]
    assert box_rule_fit(src, stretched, complete).x_scale == pytest.approx(1.2)
    # a turned target: R = I cannot follow, the points land off by a large part of the size
    c, s = math.cos(0.3), math.sin(0.3)
    turned = src @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
    off = np.linalg.norm(apply_box_rule(box_rule_fit(src, turned, complete), src) - turned, axis=1)
    assert np.median(off) > 0.05
    np.testing.assert_allclose(kalman_smooth_1d(np.full(20, 3.5)), 3.5)
    ramp = np.linspace(0, 1, 30) + 0.05 * rng.standard_normal(30)
    assert np.abs(kalman_smooth_1d(ramp) - np.linspace(0, 1, 30)).mean() < np.abs(ramp - np.linspace(0, 1, 30)).mean()


@pytest.mark.slow
def test_deforming_model_completes_the_unseen_side_where_the_rigid_pipeline_cannot():
    """Exact depth, 6 frames at 240×320: the deforming canonical model (a keyframe completed by
    exact renders, deformed into every frame) against the rigid pipeline on never-seen surface."""
    from orbit4d.dynamic import MeshViewSynthesizer, deforming_proxy, rigid_proxy
    from orbit4d.pipeline import Orbit4DInputs

    sc = make_deforming_scene(6, (240, 320))
    s = surface_samples(sc, 30_000)
    truth = s.points(sc.vertices, sc.animal.faces)
    inputs = Orbit4DInputs(sc.frames, sc.names, sc.masks, sc.depth, sc.cameras)
    rigid, geo = rigid_proxy(inputs)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    dp = deforming_proxy(inputs, geo, lambda f, ref: MeshViewSynthesizer(
        (sc.vertices[f], sc.animal.faces, sc.animal.colors), ref), up=up)
    tau = 0.01 * sc.object_size
    f_def = np.array([[surface_scores(p, truth[f], s.seen, 2 * tau).f_score[k] for k in ("seen", "never_seen")]
                      for f, p in enumerate(dp.proxies)])
    f_rig = np.array([[surface_scores(p, truth[f], s.seen, 2 * tau).f_score[k] for k in ("seen", "never_seen")]
                      for f, p in enumerate(rigid)])
    print("F@2% seen / never-seen: deforming", f_def.mean(0), "rigid", f_rig.mean(0))
    assert f_def[:, 1].mean() > 2 * f_rig[:, 1].mean()
    assert f_def[:, 1].min() > 0.6 and f_def[:, 0].mean() > 0.8


def test_released_video_stage_passes_depth_as_control_without_a_mask(tmp_path):
    """FreeOrbit4D's released video stage: the depth video as VACE control, no mask, the first
    frame as reference (a tiny random WanVACE, so the output itself is noise)."""
    pytest.importorskip("diffusers")
    from orbit4d.video import WanVacePainter, tiny_wan_vace

    painter = WanVacePainter(tiny_wan_vace(tmp_path / "wan"), steps=1, device="cpu")
    seen = {}
    pipe = painter.pipe

    def spy(**kwargs):
        seen.update(kwargs)
        return pipe(**kwargs)

    painter.pipe = spy
    depth = np.repeat(np.linspace(0, 255, 32 * 48, dtype=np.float32).reshape(1, 32, 48, 1), 3, -1)
    video = np.repeat(depth.astype(np.uint8), 3, 0)
    ref = np.full((32, 48, 3), 200, np.uint8)
    out = painter(video, None, ref, "an animal walking")
    assert out.shape == (3, 32, 48, 3) and out.dtype == np.uint8
    assert seen["mask"] is None and len(seen["video"]) == 5 and len(seen["reference_images"]) == 1
    out_masked = painter(video, np.zeros((3, 32, 48), bool), ref, "an animal walking")
    assert len(seen["mask"]) == 5 and out_masked.shape == out.shape


def _shifted_texture(h=120, w=208, du=3.0, dv=-2.0):
    """Two frames of a smooth random texture, the second shifted by (du, dv) pixels (exactly: by
    sampling the same smooth field), and a mask box in the middle of both."""
    import cv2

    rng = np.random.default_rng(0)
    field = cv2.GaussianBlur(rng.random((h + 40, w + 40)).astype(np.float32), (0, 0), 3)
    field = (field - field.min()) / np.ptp(field)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = cv2.remap(field, xx + 20, yy + 20, cv2.INTER_CUBIC)
    b = cv2.remap(field, xx + 20 - du, yy + 20 - dv, cv2.INTER_CUBIC)  # b(x + d) = a(x)
    frames = np.stack([np.repeat((255 * im).clip(0, 255).astype(np.uint8)[..., None], 3, -1) for im in (a, b)])
    masks = np.zeros((2, h, w), bool)
    masks[:, 30:90, 50:160] = True
    return frames, masks


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_flow_at_a_coarser_scale_recovers_a_known_shift(scale):
    from orbit4d.deform import FlowCache, flow_scale_for

    frames, masks = _shifted_texture()
    flow = FlowCache(frames, masks, scale=scale).flow(0, 1)
    inner = flow[40:80, 60:150]
    np.testing.assert_allclose(np.median(inner.reshape(-1, 2), 0), [3.0, -2.0], atol=0.15)
    assert np.abs(flow[:4, :4]).max() == 0  # outside the masks' box: not computed
    assert flow_scale_for((480, 832)) == 0.5 and flow_scale_for((240, 416)) == 1.0


def test_prefetched_flows_equal_the_flows_computed_on_demand():
    from orbit4d.deform import FlowCache

    frames, masks = _shifted_texture()
    ahead = FlowCache(frames, masks, keep=False)  # handed out once, then forgotten
    ahead.prefetch([(0, 1), (1, 0)])
    now = FlowCache(frames, masks)
    for ab in ((0, 1), (1, 0)):
        np.testing.assert_array_equal(ahead.flow(*ab), now.flow(*ab))
    assert now.held == 2 and not ahead.cache and not ahead.pending  # kept / handed out and forgotten
    np.testing.assert_array_equal(ahead.flow(0, 1), now.flow(0, 1))  # asked again: computed again, the same
    ahead.close()


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_kept_flows_are_held_compactly_and_handed_out_unchanged(scale):
    from orbit4d.deform import FlowCache

    frames, masks = _shifted_texture()
    kept, fresh = FlowCache(frames, masks, scale=scale), FlowCache(frames, masks, scale=scale, keep=False)
    first = kept.flow(0, 1)
    first[:] = 99  # the caller's copy: the kept flow is not changed by it
    again = kept.flow(0, 1)
    np.testing.assert_array_equal(again, fresh.flow(0, 1))
    assert again.shape == (120, 208, 2) and np.abs(again[:4, :4]).max() == 0
    # the box (mask 60×110 grown by 24 px: 108×158) at the flow's scale, not the frame
    assert kept.held == 1 and kept.nbytes == round(108 * scale) * round(158 * scale) * 2 * 4
    kept.flow(1, 0)
    kept.evict(lambda ab: ab != (0, 1))
    assert list(kept.cache) == [(1, 0)]
    np.testing.assert_array_equal(kept.flow(0, 1), again)  # forgotten, asked again: recomputed, the same
    empty = np.zeros_like(masks)
    assert not FlowCache(frames, empty, scale=scale).flow(0, 1).any()


def test_see_through_pixels_take_the_near_surface_and_a_far_region_beside_a_near_one_stays():
    from orbit4d.scaffold import fill_see_through

    h, w = 20, 30
    depth = np.full((h, w), 2.0, np.float32)
    depth[:, 20:] = 3.0  # a far region beside the near one (its edge must stay)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[depth == 2.0] = (200, 0, 0)
    rgb[depth == 3.0] = (0, 0, 200)
    holes = np.zeros((h, w), bool)
    holes[2:18:3, 2:17:4] = True  # isolated gaps of the near surface where the far side shows
    depth[holes] = 3.1
    rgb[holes] = (0, 200, 0)
    fg = np.ones((h, w), bool)
    fg[0, :] = False  # not foreground: never touched
    depth[0, :] = 9.0
    before = depth.copy()
    n = fill_see_through(rgb, depth, fg, window=5)
    assert n == holes.sum()
    np.testing.assert_array_equal(depth[holes], 2.0)
    assert (rgb[holes] == (200, 0, 0)).all()
    np.testing.assert_array_equal(depth[~holes], before[~holes])  # the far region and its edge unchanged


def test_see_through_window_is_checked_where_it_is_given():
    from orbit4d.pipeline import Orbit4DOptionError, Orbit4DOptions
    from orbit4d.scaffold import fill_see_through

    with pytest.raises(Orbit4DOptionError, match="--see-through-fill: must be an integer in \\[0, 15\\]"):
        Orbit4DOptions(see_through_fill=-1)
    assert Orbit4DOptions().see_through_fill == 2  # a 5×5 window
    with pytest.raises(ValueError, match="odd number >= 3"):
        fill_see_through(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32), np.ones((4, 4), bool), window=2)


def _pinhole(h=40, w=50, f=40.0):
    from geom3d import Cameras

    K = torch.tensor([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return Cameras(K[None], torch.eye(3, dtype=torch.float64)[None], torch.zeros(1, 3, dtype=torch.float64),
                   (h, w))[0]


def _at(cam, u, v, z):
    """The world point at pixel (u, v) (column, row; integers are pixel centres) and camera depth z."""
    return cam.unproject_points(torch.tensor([[float(u), float(v)]], dtype=torch.float64),
                                torch.tensor([float(z)], dtype=torch.float64)).numpy()[0]


def test_silhouette_rules_out_points_the_camera_sees_past_and_pulls_them_to_the_mask():
    """orbit4d.deform.Silhouette on a pinhole camera (identity pose) with a square mask (rows and
    columns 10..19) over a background 5 m away: a point outside the 1-pixel dilation in front of
    the background is ruled out; inside the mask, within the dilation, behind a nearer
    observation (an occluder), behind the camera or outside the image it is not. Its pull target
    is its own depth on the ray of the nearest mask pixel (by hand: the square's corner or side)."""
    from orbit4d.deform import Silhouette

    cam = _pinhole()
    mask = np.zeros((40, 50), bool)
    mask[10:20, 10:20] = True
    depth = np.full((40, 50), 5.0)
    depth[10:20, 10:20] = 2.0
    depth[30, 40] = 1.0  # something nearer than the point below: it may hide the subject there
    sil = Silhouette(mask, depth, cam, dilate=1, tolerance=0.05)
    pts = np.stack([_at(cam, 15, 15, 2.0),   # on the mask
                    _at(cam, 20, 15, 2.0),   # one pixel right of it: within the dilation
                    _at(cam, 22, 15, 2.0),   # three pixels right: ruled out
                    _at(cam, 25, 25, 2.0),   # below right, off the mask: ruled out
                    _at(cam, 40, 30, 2.0),   # behind the observed depth of 1 m there: allowed
                    _at(cam, 80, 15, 2.0),   # outside the image: no evidence
                    -_at(cam, 15, 15, 2.0)])  # behind the camera
    np.testing.assert_array_equal(sil.outside(pts), [False, False, True, True, False, False, False])
    no_depth = Silhouette(mask, None, cam, dilate=1)  # without depth no point counts as hidden
    assert no_depth.outside(pts[4:5])[0]
    assert not Silhouette(mask, depth, cam, dilate=3, tolerance=0.05).outside(pts[2:3])[0]  # 3-pixel dilation
    idx, target = sil.pull(pts)
    np.testing.assert_array_equal(idx, [2, 3])
    np.testing.assert_allclose(target, np.stack([_at(cam, 19, 15, 2.0), _at(cam, 19, 19, 2.0)]), atol=1e-12)
    idx, _ = sil.pull(pts, reach=4.0)  # (22, 15) is 3 pixels from the mask, (25, 25) about 8.5
    np.testing.assert_array_equal(idx, [2])


def test_proxy_composition_drops_deformed_points_outside_the_silhouette():
    """observed_and_deformed with the frame's Silhouette: a deformed point that projects off the
    subject's mask, in front of the background, leaves the proxy; the others stay (with their
    colours); without the silhouette every unseen deformed point stays."""
    from geom3d import DepthPoints
    from orbit4d.deform import Silhouette
    from orbit4d.dynamic import observed_and_deformed

    cam = _pinhole()
    mask = np.zeros((40, 50), bool)
    mask[10:20, 10:20] = True
    depth = np.full((40, 50), 5.0)
    fg = np.where(mask, 2.0, 0.0)
    empty = DepthPoints(torch.zeros(0, 3, dtype=torch.float64), None, torch.zeros(0, dtype=torch.int64),
                        torch.zeros(0, 2, dtype=torch.int64))
    # behind the observed surface (hidden, kept) and off the mask (ruled out)
    deformed = np.stack([_at(cam, 15, 15, 2.5), _at(cam, 30, 15, 2.5)])
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    sil = Silhouette(mask, depth, cam, dilate=1, tolerance=0.05)
    pts, cols = observed_and_deformed(deformed, empty, fg, cam, voxel_size=0.01, tolerance=0.05, colors=colors,
                                      with_colors=True, silhouette=sil)
    np.testing.assert_allclose(pts, deformed[:1])
    np.testing.assert_allclose(cols, colors[:1])
    assert len(observed_and_deformed(deformed, empty, fg, cam, voxel_size=0.01, tolerance=0.05)) == 2
