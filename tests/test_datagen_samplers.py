"""datagen viewpoint samplers: distributions against scipy, 3D-DST's conventions, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import geom3d
from datagen.config import load_config
from datagen.samplers import (
    FRONT_ARC,
    DSTSampler,
    MatchDatasetSampler,
    UniformSphereSampler,
    make_sampler,
    truncated_normal,
)

N = 3000


def _draw(sampler, n=N, seed=0, asset=None):
    rng = np.random.default_rng(seed)
    return [sampler.sample(rng, asset) for _ in range(n)]


@pytest.mark.parametrize("mean, sd, lo, hi", [(90, 30, 0, 180), (60, 20, 0, 195), (1.5, 0.5, 1.0, 3.0),
                                               (0.0, 1.0, 2.5, 4.0)])
def test_truncated_normal_matches_scipy(mean, sd, lo, hi):
    rng = np.random.default_rng(1)
    x = np.array([truncated_normal(rng, mean, sd, lo, hi) for _ in range(N)])
    assert x.min() >= lo and x.max() <= hi
    ref = stats.truncnorm((lo - mean) / sd, (hi - mean) / sd, loc=mean, scale=sd)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-3


def test_dst_polar_angle_and_azimuth_full():
    """3D-DST preset "all around": θ uniform over 360°, φ ~ N(90°, 30°) on [0°, 180°];
    in PASCAL3D+ terms elevation = 90° − φ and azimuth = θ + 90°."""
    s = DSTSampler(azimuth="full", polar_mean=math.radians(90), polar_sd=math.radians(30),
                   polar_range=(0.0, math.pi), distance_jitter=False)
    views = _draw(s)
    elev = np.degrees([v.elevation for v in views])
    phi_ref = stats.truncnorm(-3, 3, loc=90, scale=30)
    assert stats.kstest(90 - elev, phi_ref.cdf).pvalue > 1e-3
    az = np.degrees([v.azimuth for v in views])
    assert stats.kstest(az / 360, "uniform").pvalue > 1e-3
    assert all(v.theta == 0.0 and v.distance == 1.5 for v in views)


def test_dst_front_arc_looks_at_the_front():
    s = DSTSampler(azimuth="front", distance_jitter=False)
    az = np.degrees([v.azimuth for v in _draw(s)])
    # Blender θ in [−195°, 15°] is PASCAL3D+ azimuth in [−105°, 105°] around the front (azimuth 0)
    lo, hi = FRONT_ARC[0] + 90, FRONT_ARC[1] + 90
    wrapped = (az + 180) % 360 - 180
    assert wrapped.min() >= lo - 1e-9 and wrapped.max() <= hi + 1e-9
    assert stats.kstest((wrapped - lo) / (hi - lo), "uniform").pvalue > 1e-3


def test_dst_camera_matches_blender_formula():
    """The camera centre of a drawn view is 3D-DST's d·(sin φ cos θ, sin φ sin θ, cos φ)."""
    s = DSTSampler(polar_mean=math.radians(60), polar_sd=math.radians(20),
                   polar_range=(0.0, math.radians(195)), distance_jitter=False,
                   offsets={"a": {"azimuth": math.radians(30), "elevation": math.radians(-50)}})
    for seed in range(20):
        theta, phi = s.blender_angles(np.random.default_rng(seed), "a")
        view = s.sample(np.random.default_rng(seed), "a")
        cam = geom3d.viewpoint_to_cameras(view.azimuth, view.elevation, view.theta, 2.0, image_size=(64, 64))
        centre = cam.camera_centres().double()
        expected = 2.0 * torch.tensor([math.sin(phi) * math.cos(theta), math.sin(phi) * math.sin(theta), math.cos(phi)],
                                      dtype=torch.float64)
        torch.testing.assert_close(centre, expected, atol=1e-6, rtol=0)


def test_dst_angles_are_geom3d_blender_to_viewpoint():
    s = DSTSampler(distance_jitter=False)
    for seed in range(20):
        theta, phi = s.blender_angles(np.random.default_rng(seed))
        view = s.sample(np.random.default_rng(seed))
        vp = geom3d.blender_to_viewpoint(torch.tensor(theta, dtype=torch.float64),
                                         torch.tensor(phi, dtype=torch.float64), 1.0)
        assert math.isclose(view.azimuth, float(vp["azimuth"]), abs_tol=1e-12)
        assert math.isclose(view.elevation, float(vp["elevation"]), abs_tol=1e-12)


def test_dst_offsets_and_pole_wrap():
    """3D-DST: θ += azimuth offset, φ −= elevation offset, and a φ past a pole wraps over it."""
    base = DSTSampler(distance_jitter=False)
    off = DSTSampler(distance_jitter=False, offsets={"x": {"azimuth": 0.4, "elevation": -2.0}})
    for seed in range(50):
        t0, p0 = base.blender_angles(np.random.default_rng(seed), "x")
        t1, p1 = off.blender_angles(np.random.default_rng(seed), "x")
        t, p = t0 + 0.4, (p0 + 2.0) % (2 * math.pi)
        if p > math.pi:
            t, p = t + math.pi, 2 * math.pi - p
        assert math.isclose(t1, t % (2 * math.pi), abs_tol=1e-12) and math.isclose(p1, p, abs_tol=1e-12)
        assert 0 <= p1 <= math.pi
    # other assets are not moved
    t2, p2 = off.blender_angles(np.random.default_rng(3), "other")
    assert (t2, p2) == base.blender_angles(np.random.default_rng(3), "other")


def test_distance_jitter_is_3ddst_truncated_normal():
    s = DSTSampler(distance=1.5, distance_jitter=True, distance_sd=0.5, distance_range=(-0.5, 1.5))
    d = np.array([v.distance for v in _draw(s)])
    assert d.min() >= 1.0 and d.max() <= 3.0
    ref = stats.truncnorm(-1, 3, loc=1.5, scale=0.5)
    assert stats.kstest(d, ref.cdf).pvalue > 1e-3


def test_inplane_rotation():
    s = UniformSphereSampler(inplane_sd=math.radians(10), inplane_max=math.radians(15), distance_jitter=False)
    th = np.degrees([v.theta for v in _draw(s)])
    assert np.abs(th).max() <= 15 + 1e-9
    assert stats.kstest(th, stats.truncnorm(-1.5, 1.5, scale=10).cdf).pvalue > 1e-3


def test_uniform_sphere_is_uniform():
    s = UniformSphereSampler(distance_jitter=False)
    views = _draw(s)
    cams = geom3d.viewpoint_to_cameras(torch.tensor([v.azimuth for v in views], dtype=torch.float64),
                                       torch.tensor([v.elevation for v in views], dtype=torch.float64), 0.0, 1.0,
                                       image_size=(8, 8))
    c = cams.camera_centres().numpy()
    # Archimedes: each coordinate of a uniform point on the sphere is uniform on [−1, 1]
    for axis in range(3):
        assert stats.kstest((c[:, axis] + 1) / 2, "uniform").pvalue > 1e-3
    band = UniformSphereSampler(elevation_range=(0.0, math.radians(40)), distance_jitter=False)
    e = np.array([v.elevation for v in _draw(band)])
    assert e.min() >= 0 and e.max() <= math.radians(40) + 1e-12


def test_match_dataset_resamples_with_jitter():
    vps = np.array([[0.3, 0.2, 0.0], [2.0, -0.1, 0.1], [4.0, 0.5, -0.2]])
    exact = MatchDatasetSampler(vps, bandwidth=0.0, distance_jitter=False)
    drawn = {(round(v.azimuth, 12), round(v.elevation, 12), round(v.theta, 12)) for v in _draw(exact, 300)}
    assert drawn == {tuple(round(x, 12) for x in row) for row in vps}
    bw = math.radians(3.0)
    jit = MatchDatasetSampler(vps, bandwidth=bw, distance_jitter=False)
    views = _draw(jit, 2000)
    a = np.array([v.azimuth for v in views])
    nearest = np.argmin(np.abs(((a[:, None] - vps[None, :, 0]) + np.pi) % (2 * np.pi) - np.pi), axis=1)
    da = ((a - vps[nearest, 0]) + np.pi) % (2 * np.pi) - np.pi
    assert stats.kstest(da / bw, "norm").pvalue > 1e-3  # the kernel is N(0, bandwidth²)
    assert np.bincount(nearest, minlength=3).min() > 550  # every record equally likely


def test_match_dataset_from_records(tmp_path):
    from data3d import ImageRecord, ObjectAnnotation, save_records

    objs = []
    for i, (cat, az) in enumerate([("car", 0.5), ("car", 1.0), ("chair", 3.0)]):
        vp = {"azimuth": az, "elevation": 0.1 * i, "theta": 0.0, "distance": 5.0, "focal": 1.0, "viewport": 3000.0,
              "px": 31.5, "py": 31.5}
        objs.append(ImageRecord(image_path=tmp_path / f"{i}.png", image_size=(64, 64), objects=(
            ObjectAnnotation(category=cat, bbox=(1, 1, 10, 10), viewpoint=vp),)))
    save_records(objs, tmp_path / "recs")
    cfg = load_config({"sampler": {"strategy": "match_dataset", "records": str(tmp_path / "recs"), "bandwidth": 0.0,
                                   "distance_jitter": False}})
    car = make_sampler(cfg["sampler"], "car")
    assert {round(v.azimuth, 9) for v in _draw(car, 200)} == {0.5, 1.0}
    other = make_sampler(cfg["sampler"], "bus")  # no records of the category: every record
    assert {round(v.azimuth, 9) for v in _draw(other, 300)} == {0.5, 1.0, 3.0}


def test_per_category_overrides_and_determinism():
    cfg = load_config({"sampler": {"per_category": {"car": {"polar_mean": 45, "polar_sd": 20,
                                                             "polar_range": [0, 150]}}}})
    car, bus = make_sampler(cfg["sampler"], "car"), make_sampler(cfg["sampler"], "bus")
    assert math.isclose(car.polar_mean, math.radians(45)) and math.isclose(bus.polar_mean, math.radians(60))
    assert math.isclose(car.polar_range[1], math.radians(150)) and math.isclose(bus.polar_range[1], math.radians(195))
    a = _draw(car, 50, seed=7)
    b = _draw(make_sampler(cfg["sampler"], "car"), 50, seed=7)
    assert a == b
    assert a != _draw(car, 50, seed=8)


@pytest.mark.parametrize("category, preset", [("car", 3), ("diningtable", 3), ("tvmonitor", 4), ("aeroplane", 1),
                                              ("teapot", 1)])
def test_auto_preset_per_category_is_3ddst_preset(category, preset):
    """preset: auto gives each category one of 3D-DST's `--pose_sampling` presets (values as in its
    scripts/blender_render.py, hand-copied here); an explicit key overrides the preset's."""
    table = {1: ("full", 90, 30, 180), 3: ("full", 60, 20, 195), 4: ("front", 60, 20, 195)}
    azimuth, mean, sd, hi = table[preset]
    s = make_sampler(load_config({})["sampler"], category)
    assert s.polar == "normal" and math.isclose(s.polar_mean, math.radians(mean))
    assert math.isclose(s.polar_sd, math.radians(sd)) and math.isclose(s.polar_range[1], math.radians(hi))
    front = tuple(math.radians(v) for v in FRONT_ARC)
    assert s.azimuth_range == ((0.0, 2 * math.pi) if azimuth == "full" else front)
    fixed = make_sampler(load_config({"sampler": {"preset": 2, "polar_sd": 7}})["sampler"], category)
    assert fixed.azimuth_range == front and math.isclose(fixed.polar_mean, math.radians(90))
    assert math.isclose(fixed.polar_sd, math.radians(7))


def test_preset_5_draws_a_uniform_polar_angle():
    """3D-DST preset 5: θ uniform over 360°, φ uniform in [0°, 180°] (not uniform on the sphere):
    elevation = 90° − φ is uniform in [−90°, 90°]."""
    s = make_sampler(load_config({"sampler": {"preset": 5, "distance_jitter": False}})["sampler"], "car")
    views = _draw(s)
    el = np.degrees([v.elevation for v in views])
    assert stats.kstest(el, stats.uniform(loc=-90, scale=180).cdf).pvalue > 1e-3
    az = np.degrees([v.azimuth for v in views])
    assert stats.kstest(az, stats.uniform(loc=0, scale=360).cdf).pvalue > 1e-3
