"""Pose metrics: geodesic error, Acc@π/6, Acc@π/18, median; NaN counts as a failure."""

from __future__ import annotations

import math

import torch

import geom3d


def test_pose_error_ignores_the_viewpoint_flip():
    vp = dict(azimuth=torch.tensor([0.3, 1.0]), elevation=torch.tensor([0.2, -0.1]), theta=torch.tensor([0.0, 0.4]))
    R1 = geom3d.viewpoint_to_rotation(**vp)
    R2 = geom3d.viewpoint_to_rotation(vp["azimuth"] + torch.tensor([0.1, 0.0]), vp["elevation"], vp["theta"])
    err = geom3d.pose_error(R1, R2)
    # a pure azimuth change of 0.1 rad at any elevation is a 0.1 rad rotation about world z
    torch.testing.assert_close(err, torch.tensor([0.1, 0.0]), atol=1e-5, rtol=0)


def test_metrics_by_hand_with_a_nan_prediction():
    errors = torch.tensor([0.0, math.radians(5), math.radians(20), math.radians(40), float("nan")], dtype=torch.float64)
    m = geom3d.pose_metrics(errors)
    assert m["count"] == 5 and m["failed"] == 1
    assert m["acc_pi_6"] == 3 / 5
    assert m["acc_pi_18"] == 2 / 5
    assert math.isclose(m["median_deg"], 20.0)  # NaN sorts as 180°, so the median is the 3rd of 5


def test_nan_pose_is_a_failure():
    R = torch.full((3, 3), float("nan"))
    err = geom3d.pose_error(R, torch.eye(3))
    assert math.isnan(float(err))
    assert geom3d.pose_accuracy(err[None]) == 0.0
    assert geom3d.pose_metrics(err[None])["median_deg"] == 180.0
