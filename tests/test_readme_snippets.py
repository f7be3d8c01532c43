"""The README's Python snippets run as written, and compute what their comments say.

Each ```python block of README.md is executed in a folder that holds what the snippet names: a
`../shared/data` link to the real data, small PASCAL3D+ and ImageNet3D release trees written in
their own formats (the loader fixtures), and, for the rendering block, the `mesh`, `cameras` and
`vertex_features` it assumes. The checks after each block would fail if the snippet's API drifted
from the code or computed something else.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import torch
from test_data3d_fixtures import build_imagenet3d, build_pascal3d

import geom3d

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.realdata


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def block_with(text: str) -> str:
    found = [b for b in python_blocks() if text in b]
    assert len(found) == 1, f"README.md has {len(found)} python blocks containing {text!r}"
    return found[0]


@pytest.fixture()
def readme_folder(tmp_path, shared_data, monkeypatch):
    """A working folder where the README's relative paths resolve."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    os.symlink(shared_data, tmp_path / "shared" / "data")
    monkeypatch.chdir(work)
    return work


def test_every_python_block_is_covered_here():
    # a new README block needs a test below; this keeps the list honest
    assert len(python_blocks()) == 3


def test_camera_core_block(readme_folder):
    ns: dict = {}
    exec(block_with("cameras_to_viewpoint"), ns)
    car, uv, vp, cuboid = ns["car"], ns["uv"], ns["vp"], ns["cuboid"]
    assert uv.shape == (car.num_vertices, 2)
    # the car sits at the image centre: its projected vertices straddle the principal point (320, 240)
    assert uv[:, 0].min() < 320 < uv[:, 0].max() and uv[:, 1].min() < 240 < uv[:, 1].max()
    assert math.isclose(float(vp["azimuth"]), math.radians(30), abs_tol=1e-5)
    assert math.isclose(float(vp["elevation"]), math.radians(15), abs_tol=1e-5)
    assert math.isclose(float(vp["distance"]), 5.0, rel_tol=1e-5)
    assert 1000 < cuboid.num_vertices < 1150  # "NeMo's cuboid, ~1000 vertices"


def test_rendering_block(readme_folder, shared_data):
    mesh = geom3d.Mesh.load(shared_data / "pascal3d_cad" / "car" / "01.off")
    cameras = geom3d.viewpoint_to_cameras(torch.tensor([0.3, 2.0]), 0.3, 0.0, 5.0, 1.0, 400.0, image_size=(48, 64))
    vertex_features = torch.rand(mesh.num_vertices, 5, generator=torch.Generator().manual_seed(0))
    ns = {"geom3d": geom3d, "mesh": mesh, "cameras": cameras, "vertex_features": vertex_features}
    exec(block_with("render_gl"), ns)
    frags, feat, out, cloud, img = (ns[k] for k in ("frags", "feat", "out", "cloud", "img"))
    assert feat.shape == (2, 48, 64, 5)
    covered = frags.pix_to_face >= 0
    assert covered.any() and (feat[~covered] == 0).all()
    # the GL renderer and the rasterizer see the same silhouette
    assert (out.mask == covered).float().mean() > 0.99
    # every unprojected point is a covered pixel, and splatting it back covers the same pixels
    assert cloud.points.shape[0] == int(out.mask.sum())
    assert (img.mask & out.mask).sum() >= 0.95 * out.mask.sum()


def test_data_block(readme_folder, shared_data):
    build_pascal3d(readme_folder / "PASCAL3D+_release1.1", shared_data / "pascal3d_cad")
    build_imagenet3d(readme_folder / "imagenet3d", shared_data / "imagenet3d_cad")
    ns: dict = {}
    exec(block_with("ObjectDataset"), ns)
    records, obj, ds, mesh = ns["records"], ns["obj"], ns["ds"], ns["mesh"]
    assert len(records) > 0 and obj is records[0].objects[0]
    assert isinstance(obj.cameras, geom3d.Cameras)
    item = ds[0]
    assert tuple(item["image"].shape[-2:]) == (256, 256)
    assert mesh.num_vertices > 0
