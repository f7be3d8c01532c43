"""Novel-view synthesis: the Zero-1-to-3 pipeline (tiny random models in both checkpoint layouts) and
the exact / degraded render synthesizers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import geom3d
from data3d.procedural import make
from datagen.controlnet import ModelLoadError
from datagen.novel_view import (
    DegradedRenderSynthesizer,
    RenderSynthesizer,
    SourceView,
    Zero123Synthesizer,
    build_tiny_zero123,
    make_synthesizer,
    mirror_axis,
    relative_pose_from_elevation,
    target_viewpoint,
)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """The same random weights saved in both layouts."""
    return {layout: build_tiny_zero123(tmp_path_factory.mktemp(layout), layout, seed=3)
            for layout in ("cc_projection", "clip_camera_projection")}


def _object_image(seed=0, size=64):
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 255, np.uint8)
    img[16:48, 20:44] = rng.integers(0, 255, (32, 24, 3), dtype=np.uint8)
    return img


def test_both_checkpoint_layouts_load_and_give_the_same_images(tiny_models):
    src = SourceView(_object_image())
    poses = [[0.2, 0.5, 0.0], [-0.1, 1.5, 0.1]]
    out = {}
    for layout, folder in tiny_models.items():
        synth = Zero123Synthesizer(str(folder), steps=3, guidance=3.0)
        assert synth.parts["layout"] == layout
        assert synth.image_size == 64
        assert synth.parts["unet"].config.in_channels == 8
        out[layout] = synth.synthesize(src, poses, seed=5)
        assert len(out[layout]) == 2 and out[layout][0].shape == (64, 64, 3) and out[layout][0].dtype == np.uint8
    for a, b in zip(out["cc_projection"], out["clip_camera_projection"]):
        np.testing.assert_array_equal(a, b)


def test_conditioning_azimuth_changes_the_view_seed_reproduces_it(tiny_models):
    synth = Zero123Synthesizer(str(tiny_models["cc_projection"]), steps=3, guidance=3.0, batch_size=2)
    src = SourceView(_object_image())
    a, b, c = synth.synthesize(src, [[0.0, 0.3, 0.0], [0.0, 2.0, 0.0], [0.0, 0.3, 0.0]], seed=7)
    assert np.abs(a.astype(int) - b).mean() > 0.5  # another azimuth, another image
    again = synth.synthesize(src, [[0.0, 0.3, 0.0]], seed=7)[0]
    np.testing.assert_array_equal(a, again)  # alone, in another batch: the same image
    assert not np.array_equal(a, c)  # the third view has its own seed (7 + 2)
    other_source = synth.synthesize(SourceView(_object_image(seed=1)), [[0.0, 0.3, 0.0]], seed=7)[0]
    assert not np.array_equal(a, other_source)  # the source image conditions the result
    # a full turn of azimuth is the same condition (sin, cos)
    turn = synth.synthesize(src, [[0.0, 0.3 + 2 * math.pi, 0.0]], seed=7)[0]
    assert np.abs(turn.astype(int) - a).max() <= 1


def test_camera_embedding_and_elevation_sign(tiny_models):
    synth = Zero123Synthesizer(str(tiny_models["cc_projection"]))
    poses = relative_pose_from_elevation(0.3, math.pi / 2, 0.5)  # camera raised by 0.3 rad
    np.testing.assert_allclose(poses, [[-0.3, math.pi / 2, 0.5]])
    T = synth.camera_embedding(poses)
    np.testing.assert_allclose(T.numpy(), [[-0.3, 1.0, 0.0, 0.5]], atol=1e-6)
    # the render synthesizer moves the camera the same way: Δpolar lowers it
    vp = {"azimuth": 0.0, "elevation": 0.2, "theta": 0.0, "distance": 3.0, "focal": 1.0, "viewport": 100.0,
          "px": 31.5, "py": 31.5}
    assert target_viewpoint(vp, poses[0])["elevation"] == pytest.approx(0.5)


def test_bad_model_folders_and_inputs_are_named(tmp_path, tiny_models):
    (tmp_path / "unet").mkdir()
    with pytest.raises(ModelLoadError, match="cc_projection"):
        _ = Zero123Synthesizer(str(tmp_path)).parts
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        _ = Zero123Synthesizer("nobody/no-such-zero123").parts
    synth = Zero123Synthesizer(str(tiny_models["cc_projection"]), steps=1)
    with pytest.raises(ValueError, match="(N, 3)"):
        synth.synthesize(SourceView(_object_image()), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="uint8"):
        synth.synthesize(SourceView(np.zeros((64, 64), np.uint8), name="x.png"), [[0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="mesh"):
        RenderSynthesizer().synthesize(SourceView(_object_image()), [[0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="zero123, render, degraded or correlated"):
        make_synthesizer("nerf")


@pytest.fixture(scope="module")
def car_source():
    mesh = make("car", seed=1)
    vp = {"azimuth": 0.4, "elevation": 0.25, "theta": 0.0, "distance": 3.0, "focal": 1.0, "viewport": 150.0,
          "px": 47.5, "py": 39.5}
    image = RenderSynthesizer(backend="raster").render(mesh, [vp], (80, 96))[0]
    return SourceView(image, mesh, vp, name="car")


def test_render_synthesizer_moves_the_camera_not_the_object(car_source):
    """Δazimuth = φ of the camera equals the object turned by −φ about its up axis, seen from the source."""
    synth = RenderSynthesizer(backend="raster", appearance="mesh")
    same = synth.synthesize(car_source, [[0.0, 0.0, 0.0]])[0]
    np.testing.assert_array_equal(same, car_source.image)
    phi = 0.9
    moved = synth.synthesize(car_source, [[0.0, phi, 0.0]])[0]
    c, s = math.cos(-phi), math.sin(-phi)
    Rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    mesh = car_source.mesh
    turned = geom3d.Mesh(mesh.vertices @ Rz.T, mesh.faces, vertex_colors=mesh.vertex_colors)
    expected = synth.render(turned, [car_source.viewpoint], (80, 96))[0]
    differ = np.abs(moved.astype(int) - expected).max(-1) > 8
    assert differ.mean() < 0.01  # the same picture up to shading-edge pixels
    assert np.abs(moved.astype(int) - car_source.image).max(-1).astype(bool).mean() > 0.05


def test_degraded_synthesizer_faults_and_seeds(car_source):
    poses = [[0.1, 0.8, 0.0], [-0.1, 2.0, 0.2]]
    for appearance in ("mesh", "source"):  # no faults: the exact synthesizer
        exact = RenderSynthesizer(backend="raster", appearance=appearance).synthesize(car_source, poses)
        clean = DegradedRenderSynthesizer(0.0, 0.0, 0.0, 0.0, backend="raster", appearance=appearance).synthesize(
            car_source, poses, seed=3)
        for a, b in zip(exact, clean):
            np.testing.assert_array_equal(a, b)
    synth = DegradedRenderSynthesizer(math.radians(10), 0.08, 0.04, 0.8, backend="raster")
    a = synth.synthesize(car_source, poses, seed=3)
    b = synth.synthesize(car_source, poses, seed=3)
    c = synth.synthesize(car_source, poses, seed=4)
    for x, y, z, e in zip(a, b, c, exact):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)
        assert np.abs(x.astype(int) - e).mean() > 1.0
    # jitter alone: the silhouette moves, more for a larger σ
    def silhouette_change(sigma):
        imgs = DegradedRenderSynthesizer(math.radians(sigma), 0, 0, 0, backend="raster").synthesize(
            car_source, poses, seed=0)
        return np.mean([((i < 250).any(-1) != (e < 250).any(-1)).mean() for i, e in zip(imgs, exact)])
    assert silhouette_change(2) < silhouette_change(20)
    with pytest.raises(ValueError, match="pose_sigma"):
        DegradedRenderSynthesizer(pose_sigma=-1.0)


@pytest.fixture(scope="module")
def patterned_source():
    """A left-right symmetric car whose colours vary smoothly over its surface (symmetric in x), drawn
    unlit from azimuth 0.5: the source image of the appearance tests."""
    mesh = make("car", seed=1)
    v = mesh.vertices
    colours = torch.stack([0.5 + 0.8 * v[:, 1], 0.5 + 1.5 * v[:, 2], (2.5 * v[:, 0].abs()).clamp(0, 1)], -1).clamp(0, 1)
    vp = {"azimuth": 0.5, "elevation": 0.25, "theta": 0.0, "distance": 3.0, "focal": 1.0, "viewport": 150.0,
          "px": 47.5, "py": 39.5}
    synth = RenderSynthesizer(backend="raster")
    cams = synth.cameras([vp], (80, 96))
    coloured = geom3d.Mesh(v, mesh.faces, vertex_colors=colours)
    rgb = geom3d.render_gl(coloured, cams, outputs=("rgb",), backend="raster", ambient=1.0, light_intensities=0.0,
                           background=1.0).rgb[0]
    image = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return SourceView(image, mesh, vp, name="patterned car")


def test_mirror_axis_finds_the_symmetry_plane():
    v = make("car", seed=1).vertices.numpy()
    assert mirror_axis(v) == 0  # procedural cars are symmetric across x = 0 (the PASCAL3D+ frame)
    assert mirror_axis(v[:, [1, 0, 2]]) == 1
    lopsided = v[v[:, 0] > -0.1]  # a car cut off on one side
    assert mirror_axis(lopsided) is None


def test_source_appearance_gives_the_source_back_and_mirrors_hidden_sides(patterned_source):
    """The source appearance is carried to new views: at the source viewpoint the render is the source;
    from the mirrored viewpoint (azimuth −0.5, unseen side) it is the source mirrored left-right, taken
    from the seen side through the symmetry plane; without the mirror that side is one mean colour."""
    import datagen.render_synthesizers as nv

    src = patterned_source
    synth = RenderSynthesizer(backend="raster")
    same, mirrored = synth.synthesize(src, [[0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    obj = (src.image < 250).any(-1)
    err = np.abs(same.astype(int) - src.image).max(-1)[obj]
    assert np.median(err) <= 3 and np.mean(err > 25) < 0.03
    flipped = src.image[:, ::-1]  # px = (W − 1) / 2: the reflection maps pixel columns onto each other
    both = obj[:, ::-1] | (mirrored < 250).any(-1)
    err_mirror = np.abs(mirrored.astype(int) - flipped).max(-1)[both]
    assert np.median(err_mirror) <= 6
    mean_only = RenderSynthesizer(backend="raster")
    original = nv._reflections
    try:
        nv._reflections = lambda *args, **kwargs: []
        without = mean_only.synthesize(src, [[0.0, -1.0, 0.0]])[0]
    finally:
        nv._reflections = original
    err_without = np.abs(without.astype(int) - flipped).max(-1)[both]
    assert np.median(err_without) > 2 * max(np.median(err_mirror), 3)
    # the side away from the source: its faces' mirrors across x = 0 are hidden too; the other
    # reflections paint most of it, where the symmetry mirror alone leaves it one flat mean colour
    def flat_share(reflections):
        try:
            nv._reflections = lambda axis: reflections
            view = RenderSynthesizer(backend="raster").synthesize(src, [[0.0, math.pi, 0.0]])[0]
        finally:
            nv._reflections = original
        pixels = view[(view < 250).any(-1)].astype(int)
        mean = src.image[obj].mean(0).round()
        return np.mean(np.abs(pixels - mean).max(-1) <= 2)
    assert nv._reflections(0) == [(0,), (1,), (0, 1)] and nv._reflections(None) == [(0,), (1,), (0, 1)]
    assert nv._reflections(1) == [(1,), (0,), (0, 1)]
    mirror_only, all_reflections = flat_share([(0,)]), flat_share(nv._reflections(0))
    assert mirror_only > 0.4 and all_reflections < mirror_only / 3, (mirror_only, all_reflections)
    # the CAD's own material: the patterned source's colours do not appear
    grey = RenderSynthesizer(backend="raster", appearance="mesh").synthesize(src, [[0.0, 0.0, 0.0]])[0]
    assert np.median(np.abs(grey.astype(int) - src.image).max(-1)[obj]) > 20
    with pytest.raises(ValueError, match="appearance"):
        RenderSynthesizer(appearance="photo")
