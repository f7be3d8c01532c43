"""The rigid alignment on generated scenes it was not tuned on (bench/orbit4d_rigid_scenes.py holds
the whole table: 7 scenes varying the object, its size in the frame, resolution and turn).

The acceptance bounds are rotation median ≤ 1.0°, max ≤ 2.5°, translation ≤ 2 % of the object's
size (2 % depth noise, 10 % outliers). With the default options (the optical-flow refinement on:
orbit4d.alignment.refine_with_flow, robust refits from the RANSAC estimate) the benchmark met them on
6 of 7 scenes (a chair turning 90° misses: 1.12° / 3.98°); these tests hold the default path at the
acceptance bounds on the cheapest three (box-120x160, and slow: the far sofa, the 120×160 car:
0.94° / 1.15° / 1.13 %), and (slow) that without the flow (--no-flow-refine) the car's turn drifts
past the bound (2.02° / 2.79° / 2.42 % measured) while the default removes most of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

from orbit4d.evaluate import alignment_errors
from orbit4d.pipeline import Orbit4DInputs, Orbit4DOptions, reconstruct_and_align
from orbit4d.synthetic import add_depth_noise, make_scene, procedural_object

ACCEPTANCE = (1.0, 2.5, 0.02)  # rotation median °, rotation max °, translation max / size


def test_procedural_object_stands_on_the_ground_and_is_rendered():
    v, f, c = procedural_object("car", 3, size=1.0)
    assert abs(v[:, 2].min()) < 1e-9 and np.allclose((v.min(0) + v.max(0))[:2] / 2, 0, atol=1e-9)
    assert abs(np.ptp(v, 0).max() - 1.0) < 1e-6 and c.shape == v.shape and f.max() < len(v)
    near = make_scene(2, (48, 64), object_mesh=(v, f, c), camera_distance=2.2)
    far = make_scene(2, (48, 64), object_mesh=(v, f, c), camera_distance=4.5)
    assert torch.equal(near.object_mesh[0], torch.from_numpy(v))
    assert near.masks.mean() > 2 * far.masks.mean() > 0  # the camera's distance sets the size in the frame
    # the rendered object's depth agrees with its posed mesh: every masked pixel lies on it
    from scipy.spatial import cKDTree

    world = near.cameras[0].unproject(torch.from_numpy(near.depth[0]).double())[torch.from_numpy(near.masks[0])]
    posed = near.object_poses[0].apply(torch.from_numpy(v))
    assert np.percentile(cKDTree(posed.numpy()).query(world.numpy())[0], 90) < 0.03


def _errors(frames, size, turn, distance, obj, flow_refine=True):
    mesh = None if obj is None else procedural_object(obj[0], obj[1], size=obj[2])
    scene = make_scene(frames, size, turn_degrees=turn, camera_distance=distance, object_mesh=mesh)
    depth = add_depth_noise(scene.depth, 0.02, 0.10, seed=1)
    geo = reconstruct_and_align(Orbit4DInputs(scene.frames, scene.names, scene.masks, depth, scene.cameras),
                                Orbit4DOptions(flow_refine=flow_refine))
    e = alignment_errors(geo["smoothed"], scene.object_poses, geo["canonical"].points, scene.object_size)
    return float(np.median(e.rotation_deg)), float(e.rotation_deg.max()), float(e.translation_rel.max())


@pytest.mark.parametrize("scene", [
    pytest.param((16, (120, 160), 45.0, 2.8, None), id="box-120x160-45"),
    pytest.param((16, (180, 240), 30.0, 4.5, ("sofa", 2, 1.1)), id="sofa2-180x240-30-far", marks=pytest.mark.slow),
    pytest.param((16, (120, 160), 40.0, 2.4, ("car", 3, 1.0)), id="car3-120x160-40", marks=pytest.mark.slow),
])
def test_default_rigid_alignment_meets_the_acceptance_bounds_on_generated_scenes(scene):
    median, worst, trans = _errors(*scene)
    print(f"rotation median {median:.2f}°, max {worst:.2f}°, translation {trans:.2%}")
    assert median <= ACCEPTANCE[0] and worst <= ACCEPTANCE[1] and trans <= ACCEPTANCE[2]


@pytest.mark.slow
def test_flow_refinement_removes_the_drift_of_the_car_s_turn():
    """Without the flow (--no-flow-refine) the 120×160 car's turn drifts past the bounds; the default
    (with it) is within them, and its worst frame is much better, not just trimmed."""
    before = _errors(16, (120, 160), 40.0, 2.4, ("car", 3, 1.0), flow_refine=False)
    after = _errors(16, (120, 160), 40.0, 2.4, ("car", 3, 1.0))
    print(f"without flow: {before}, with: {after}")
    assert before[1] > ACCEPTANCE[1]  # the scene is one the same-ray pairs alone do not hold
    assert after[0] <= ACCEPTANCE[0] and after[1] <= ACCEPTANCE[1] and after[2] <= ACCEPTANCE[2]
    assert after[1] < 0.6 * before[1]
