"""geom3d.splat_index (several clouds in one z-buffer) and the fast scaffold renderer built on it:
layers equal their concatenation; non-finite points and points behind the camera are dropped;
render_scaffold and depth_to_image equal what they replaced (bench/_scaffold_before.py), pixel for
pixel, on today's splat and on the previous implementation; write_scaffold writes every file."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from geom3d import Cameras, GeometryError
from geom3d.splatting import splat, splat_index
from geom3d.trajectory import CameraPath
from orbit4d.scaffold import HOLE_GREY, depth_to_image, render_scaffold, write_scaffold


@functools.cache
def _before():
    """bench/_scaffold_before.py: the previous splat and scaffold renderer, kept for comparison."""
    path = Path(__file__).resolve().parents[1] / "bench" / "_scaffold_before.py"
    spec = importlib.util.spec_from_file_location("_scaffold_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cameras(n=3, h=30, w=44, dtype=torch.float32) -> Cameras:
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    eye = torch.stack([1.5 * t - 0.7, -3.0 + 0.4 * t, 0.8 + 0.3 * t], -1)
    return Cameras.look_at(eye, torch.zeros(3, dtype=torch.float64), focal=36.0, image_size=(h, w)).to(dtype=dtype)


def cloud(n, seed, dtype=torch.float32, spread=1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # quantised coordinates: many points share a pixel, and some share a depth (ties)
    return ((torch.rand(n, 3, generator=g) * 2 - 1) * spread * 16).round().div(16).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5])
def test_layers_splat_like_their_concatenation(dtype, radius):
    cams = cameras(dtype=dtype)
    shared = cloud(500, 1, dtype)
    per_view = torch.stack([cloud(120, 2 + b, dtype, 0.6) for b in range(3)])
    per_view[:, :40] = shared[:40]  # exact duplicates: equal depths, the earlier layer must win
    per_view[1, 50] = torch.tensor([0.2, -3.5, 0.5], dtype=dtype)  # behind a camera
    depth, index = splat_index([shared, per_view], cams, radius=radius)
    assert depth.shape == index.shape == (3, 30, 44) and depth.dtype == dtype
    for b in range(3):
        one = splat(torch.cat([shared, per_view[b]]), None, cams[b], radius=radius)
        assert torch.equal(index[b], one.index)
        assert torch.equal(depth[b], one.depth)
    assert (index >= shared.shape[0]).any() and (index[:, :, :] < shared.shape[0]).any()
    # a single cloud: splat_index is splat's z-buffer; a transposed (3, N) layout gives the same
    d1, i1 = splat_index(shared, cams, radius=radius)
    full = splat(shared, None, cams, radius=radius)
    assert torch.equal(i1, full.index) and torch.equal(d1, full.depth)
    d2, i2 = splat_index(shared.T.contiguous().T, cams, radius=radius)
    assert torch.equal(i2, i1) and torch.equal(d2, d1)


def test_non_finite_points_and_points_behind_the_camera_are_dropped():
    cams = cameras()
    pts = cloud(300, 5)
    bad = pts.clone()
    bad[::7, 0] = float("inf")
    bad[1::7, 1] = float("-inf")
    bad[2::7, 2] = float("nan")
    bad[3::7] = float("inf")
    bad[4::7, 2] = 1e30  # finite, far
    bad[5::7] = torch.tensor([0.0, -3.0, 0.8])  # at the first camera's centre (z = 0)
    keep = torch.ones(300, dtype=torch.bool)
    keep[0::7] = keep[1::7] = keep[2::7] = keep[3::7] = False
    out = splat(bad, None, cams, radius=1.0)
    assert not torch.isin(out.index, torch.nonzero(~keep).squeeze(1)).any()
    # what remains is the same image as the finite cloud alone (indices mapped back)
    ref = splat(bad[keep], None, cams, radius=1.0)
    kept = torch.nonzero(keep).squeeze(1)
    assert torch.equal(out.index, torch.where(ref.index >= 0, kept[ref.index.clamp_min(0)], -1))
    assert torch.equal(out.depth, ref.depth) and torch.isfinite(out.depth).all()


def test_splat_index_errors():
    cams = cameras()
    with pytest.raises(GeometryError, match="no point clouds"):
        splat_index([], cams)
    with pytest.raises(GeometryError, match="points"):
        splat_index([cloud(5, 0), torch.zeros(4, 2)], cams)
    with pytest.raises(GeometryError, match="broadcast"):
        splat_index([cloud(5, 0), torch.zeros(2, 4, 3)], cams)
    with pytest.raises(GeometryError, match="splat_index"):
        splat([cloud(5, 0)], None, cams)


def scene(n_frames=4, sizes=(90, 0, 60, 90)):
    """A background cloud with colours, foregrounds of different sizes (one empty, one without
    colours), some foreground points exactly on background points (depth ties)."""
    bg = cloud(1500, 11, spread=1.2)
    bg_cols = torch.rand(1500, 3, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    bg_cols[:20] = torch.tensor([1.2, -0.1, 0.5], dtype=torch.float64)  # clamped like any colour
    fgs = []
    for f, m in enumerate(sizes):
        pts = cloud(m, 20 + f, spread=0.4).double()
        pts[m - m // 3:] = bg[100 * f:100 * f + m // 3].double()
        if m:
            pts[0] = torch.tensor([0.0, -1.0, 0.3], dtype=torch.float64)  # in front of everything
        cols = None if f == 2 else torch.rand(m, 3, generator=torch.Generator().manual_seed(30 + f))
        fgs.append((pts, cols))
    cams = cameras(n_frames * 2 - 1)
    return bg, bg_cols, fgs, CameraPath(cams, torch.linspace(0, n_frames - 1, len(cams)))


@pytest.mark.parametrize("chunk", [3, 16])
def test_scaffold_equals_the_two_splat_composite_it_replaced(chunk):
    bg, bg_cols, fgs, path = scene()
    fast = render_scaffold(bg, bg_cols, fgs, path, radius=1.0, chunk=chunk)
    before = _before()
    for splat_fn in (splat, before.splat_before):  # the same composite on today's splat and on the old one
        ref = before.render_scaffold_reference(bg, bg_cols, fgs, path, radius=1.0, splat=splat_fn)
        for field in ("rgb", "depth", "mask", "foreground"):
            assert np.array_equal(getattr(fast, field), getattr(ref, field)), field
    assert fast.foreground.any() and (fast.mask & ~fast.foreground).any() and (~fast.mask).any()
    assert fast.rgb.shape == (len(path), 30, 44, 3) and fast.rgb.dtype == np.uint8
    # no foreground at all, and a background without colours
    bare = render_scaffold(bg, None, [], path, radius=0.5, chunk=chunk)
    ref = before.render_scaffold_reference(bg, None, [], path, radius=0.5)
    assert np.array_equal(bare.rgb, ref.rgb) and np.array_equal(bare.depth, ref.depth)
    assert not bare.foreground.any()


def test_scaffold_takes_uint8_colours_as_they_are():
    bg, bg_cols, fgs, path = scene(2, (40, 40))
    as_float = render_scaffold(bg, bg_cols, fgs, path)
    as_uint8 = render_scaffold(bg, (bg_cols.clamp(0, 1) * 255).round().to(torch.uint8), fgs, path)
    assert np.array_equal(as_float.rgb, as_uint8.rgb)


def test_depth_image_equals_the_previous_formula():
    g = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        depth = (g.random((3, 20, 30)) * 5).astype(dtype)
        depth[depth < 1.0] = 0
        assert np.array_equal(depth_to_image(depth), _before().depth_to_image_reference(depth))
    assert (depth_to_image(np.zeros((1, 4, 5), np.float32)) == HOLE_GREY).all()


def test_write_scaffold_writes_every_file_atomically(tmp_path):
    bg, bg_cols, fgs, path = scene(2, (40, 40))
    sc = render_scaffold(bg, bg_cols, fgs, path)
    files = write_scaffold(tmp_path, sc, fps=5)
    n = len(path)
    assert [p.name for p in files["rgb"]] == [f"{i:05d}.png" for i in range(n)] + ["scaffold_rgb.mp4"]
    for i in range(n):
        assert np.array_equal(cv2.imread(str(tmp_path / "scaffold" / "rgb" / f"{i:05d}.png"))[..., ::-1], sc.rgb[i])
        depth_png = cv2.imread(str(tmp_path / "scaffold" / "depth" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(depth_png, depth_to_image(sc.depth)[i])
        mask_png = cv2.imread(str(tmp_path / "scaffold" / "mask" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(mask_png > 0, sc.mask[i])
    for kind in ("rgb", "depth", "mask"):
        video = cv2.VideoCapture(str(tmp_path / f"scaffold_{kind}.mp4"))
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == n
        video.release()
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic: no temporary file left behind
