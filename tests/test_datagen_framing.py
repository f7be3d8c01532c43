"""Framing: the fit distance against geom3d's own projection, truncation as a parameter (procedural
and PASCAL3D+ CAD samples), and the demo's annotations as a records folder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data3d import Viewpoint, load_records, procedural
from datagen.config import load_config
from datagen.framing import fit_distance
from datagen.pipeline import generate


def _viewpoints(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield Viewpoint(azimuth=rng.uniform(0, 2 * math.pi), elevation=rng.uniform(-1.2, 1.2),
                        theta=rng.uniform(-0.5, 0.5), distance=1.0, focal=0.02, viewport=3000.0,
                        px=rng.uniform(20, 44), py=rng.uniform(15, 30))


@pytest.mark.parametrize("category", ["car", "aeroplane"])
def test_fit_distance_puts_the_outermost_vertex_on_the_margin(category):
    """Projected with geom3d's camera (Viewpoint.to_cameras), every vertex is inside the margin at the
    fit distance and one lies on it; 1% closer, one is outside."""
    verts = procedural.make(category, 0).vertices.double()
    size, margin = (48, 64), 2.0
    for vp in _viewpoints(8):
        d = fit_distance(verts.numpy(), vp, size, margin)

        def uv(distance, vp=vp):
            cam = Viewpoint(**{**dict(vp), "distance": distance}).to_cameras(size, dtype=torch.float64)
            return cam.project(verts).numpy()

        p = uv(d)
        lo = np.array([margin, margin])
        hi = np.array([size[1] - 1 - margin, size[0] - 1 - margin])
        assert (p >= lo - 1e-9).all() and (p <= hi + 1e-9).all()
        assert np.isclose(np.minimum(p - lo, hi - p).min(), 0.0, atol=1e-9)
        q = uv(0.99 * d)
        assert ((q < lo) | (q > hi)).any()


def test_fit_distance_is_infinite_when_the_principal_point_is_in_the_margin():
    vp = Viewpoint(azimuth=0.3, elevation=0.2, theta=0.0, distance=1.0, focal=0.02, viewport=3000.0, px=0.5, py=20)
    assert fit_distance(procedural.make("car", 0).vertices.numpy(), vp, (48, 64), 1.0) == math.inf


def _truncation_rate(records) -> float:
    return float(np.mean([r.objects[0].truncated for r in records]))


def _config(assets, **camera) -> dict:
    return {"seed": 1, "image_size": 48, "samples_per_category": 6, "occlusion": ["none"], "assets": assets,
            "camera": {"principal_jitter": 0.1, **camera},
            # close cameras: without the fit most objects would be cut by the border
            "sampler": {"distance": 0.8, "distance_jitter": True, "distance_range": [-0.3, 0.3]}}


PROCEDURAL = [{"type": "procedural", "categories": ["car", "aeroplane", "bus", "chair", "sofa"], "count": 2}]


def test_truncation_is_a_parameter_on_procedural_samples(tmp_path):
    generate(load_config(_config(PROCEDURAL)), tmp_path / "none", progress=False, preview=False)
    none = load_records(tmp_path / "none")
    assert len(none) == 30 and _truncation_rate(none) == 0.0
    kept = _config(PROCEDURAL, truncation=1.0)  # every drawn distance kept as it is
    generate(load_config(kept), tmp_path / "all", progress=False, preview=False)
    assert _truncation_rate(load_records(tmp_path / "all")) > 0.5
    half = _config(PROCEDURAL, truncation=0.3)
    generate(load_config(half), tmp_path / "half", progress=False, preview=False)
    assert 0.0 < _truncation_rate(load_records(tmp_path / "half")) <= 0.5
    # never closer than drawn: the fit only moves cameras back
    d_none = sorted(r.objects[0].viewpoint.distance for r in none)
    d_all = sorted(r.objects[0].viewpoint.distance for r in load_records(tmp_path / "all"))
    assert all(a >= b - 1e-12 for a, b in zip(d_none, d_all))


@pytest.mark.realdata
def test_no_truncation_on_pascal3d_cad_samples(shared_data, tmp_path):
    assets = [{"type": "off", "root": str(shared_data / "pascal3d_cad"), "categories": ["car", "aeroplane", "bus"],
               "name": "pascal3d"}]
    generate(load_config(_config(assets)), tmp_path / "ds", progress=False, preview=False)
    records = load_records(tmp_path / "ds")
    assert len(records) == 18 and _truncation_rate(records) == 0.0
    assert {r.objects[0].mesh_ref.split("/")[0] for r in records} == {"pascal3d:car", "pascal3d:aeroplane",
                                                                      "pascal3d:bus"}
    assert all(r.objects[0].mesh_ref.count("/") == 1 for r in records)  # pascal3d:car/01, not car/car/01


def test_demo_annotations_are_a_records_folder(tmp_path):
    from aware3d.demo import run_demo

    run_demo(tmp_path, views=2, categories=["tvmonitor"], dataset=False)
    records = load_records(tmp_path / "annotations")
    assert len(records) == 2 and all(r.image_path.is_file() for r in records)
    # the same reference as a datagen record of the same procedural asset (seed 0, PASCAL3D+ name kept)
    assert {r.objects[0].mesh_ref for r in records} == {"procedural:tvmonitor/0000"}
    assert all(r.objects[0].cad_index is None for r in records)
