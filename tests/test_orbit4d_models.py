"""orbit4d's learned stages with tiny random models: SAM2 mask propagation, novel-view completion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aware3d.cli import main
from orbit4d.estimators import MaskPrompt
from orbit4d.io import Orbit4DInputError

transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are thousands of small ops: a second thread only adds hand-offs (and stalls
    when the cores are busy)."""
    from orbit4d.reconstruct import single_threaded

    with single_threaded():
        yield


@pytest.fixture(scope="module")
def sam2_folder(tmp_path_factory):
    from orbit4d.mask_model import tiny_sam2_video

    return tiny_sam2_video(tmp_path_factory.mktemp("tiny-sam2"), seed=0)


@pytest.fixture(scope="module")
def video():
    """Six frames of a bright square moving right over noise, 48×64."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 80, (6, 48, 64, 3), dtype=np.uint8)
    for i in range(6):
        frames[i, 14:34, 8 + 4 * i:28 + 4 * i] = 230
    return frames


def test_sam2_gives_one_mask_per_frame_deterministically(sam2_folder, video, tmp_path):
    from orbit4d.mask_model import Sam2MaskPropagator, tiny_sam2_video

    prompt = MaskPrompt(box=(8, 14, 28, 34))
    a = Sam2MaskPropagator(sam2_folder)
    masks = a(video, prompt)
    assert masks.shape == video.shape[:3] and masks.dtype == bool
    again = Sam2MaskPropagator(tiny_sam2_video(tmp_path / "same-seed", seed=0))  # built again from the seed
    np.testing.assert_array_equal(a.logits(video, prompt), again.logits(video, prompt))


def test_sam2_prompt_reaches_the_model(sam2_folder, video, monkeypatch):
    """The box enters the session as SAM's two corner points (labels 2, 3) scaled to the model's
    square input, then the clicks (label 1 / 0); a different box changes the masks."""
    from orbit4d.mask_model import Sam2MaskPropagator

    seen = []
    original = transformers.Sam2VideoInferenceSession.add_point_inputs

    def spy(self, obj_idx, frame_idx, inputs):
        seen.append((frame_idx, inputs["point_coords"].clone(), inputs["point_labels"].clone()))
        return original(self, obj_idx, frame_idx, inputs)

    monkeypatch.setattr(transformers.Sam2VideoInferenceSession, "add_point_inputs", spy)
    model = Sam2MaskPropagator(sam2_folder)
    side = model.side
    a = model.logits(video, MaskPrompt(box=(8, 14, 28, 34), points=((18, 24), (60, 4)), labels=(1, 0)))
    frame, coords, labels = seen[-1]
    assert frame == 0 and labels.tolist() == [[[2, 3, 1, 0]]]
    expected = np.array([[8, 14], [28, 34], [18, 24], [60, 4]]) * np.array([side / 64, side / 48])
    np.testing.assert_allclose(coords[0, 0].numpy(), expected, rtol=1e-6)
    b = model.logits(video, MaskPrompt(box=(30, 2, 60, 20)))
    assert np.abs(a - b).max() > 1e-3
    later = model.logits(video, MaskPrompt(points=((40, 24),), frame=3))  # propagated both ways
    assert seen[-1][0] == 3 and np.all(np.abs(later).reshape(6, -1).max(1) > 0)


def test_sam2_lost_object_is_filled_and_none_found_is_an_error(sam2_folder, video, monkeypatch):
    from orbit4d.mask_model import Sam2MaskPropagator

    model = Sam2MaskPropagator(sam2_folder)
    logits = -np.ones(video.shape[:3], np.float32)
    logits[0, 10:20, 10:20] = 1.0
    logits[3, 30:40, 30:40] = 1.0
    monkeypatch.setattr(model, "logits", lambda frames, prompt: logits)
    with pytest.warns(UserWarning, match="lost on 4 of 6 frames"):
        masks = model(video, MaskPrompt(box=(1, 1, 5, 5)))
    assert masks[1, 15, 15] and masks[2, 35, 35] and masks[5, 35, 35] and not masks[1, 35, 35]
    logits[:] = -1.0
    with pytest.raises(Orbit4DInputError, match="found no object"):
        model(video, MaskPrompt(box=(1, 1, 5, 5)))


@pytest.mark.parametrize("box, points, match", [
    ("1,2,3", None, "four numbers"), ("a,b,c,d", None, "four numbers"), ("5,5,2,9", None, "x0 < x1"),
    (None, "3", "x,y or x,y,label"), (None, "3,4,7", "x,y or x,y,label"), (None, "3,4,0", "on the object"),
    ("nan,1,2,3", None, "finite"), (None, None, "a box or at least one point"),
])
def test_bad_prompts_are_clear_errors(box, points, match):
    with pytest.raises(Orbit4DInputError, match=match):
        MaskPrompt.parse(box, points)


def test_prompt_outside_the_frame_is_an_error(sam2_folder, video):
    from orbit4d.mask_model import Sam2MaskPropagator

    prompt = MaskPrompt.parse(None, "10,10;70,5")
    assert prompt.points == ((10.0, 10.0), (70.0, 5.0)) and prompt.labels == (1, 1)
    with pytest.raises(Orbit4DInputError, match=r"\(70, 5\) lies outside the 64×48 frame"):
        Sam2MaskPropagator(sam2_folder)(video, prompt)
    with pytest.raises(Orbit4DInputError, match="prompt frame 9"):
        MaskPrompt(box=(1, 1, 5, 5), frame=9).check((48, 64), 6)


def test_cli_mask_options(tmp_path, sam2_folder, capsys, monkeypatch):
    """Neither --masks nor --mask-model, a prompt without a model, a model without a prompt: one-line
    errors. --mask-model with --mask-box runs the tiny SAM2 on the frames with the parsed box; its
    random masks (a grid pattern) leave nothing to reconstruct, so the spy hands the pipeline the
    scene's true masks after the real call, which is what this test checks the wiring of."""
    import json

    from orbit4d.demo import write_inputs
    from orbit4d.mask_model import Sam2MaskPropagator
    from orbit4d.synthetic import make_scene

    sc = make_scene(4, (48, 64), turn_degrees=10.0)
    write_inputs(sc, tmp_path)
    base = ["orbit4d", "run", "--frames", str(tmp_path / "frames"), "--depth", str(tmp_path / "depth"),
            "--cameras", str(tmp_path / "global_camera.json"), "--num-output-frames", "2"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 2
    assert "no masks given" in capsys.readouterr().err
    assert main(base + ["--mask-box", "1,1,9,9", "--out", str(tmp_path / "b")]) == 2
    assert "needs a SAM2 model" in capsys.readouterr().err
    assert main(base + ["--mask-model", str(sam2_folder), "--out", str(tmp_path / "c")]) == 2
    assert "needs a prompt" in capsys.readouterr().err
    assert main(base + ["--masks", str(tmp_path / "masks"), "--mask-model", str(sam2_folder), "--mask-box",
                        "1,1,9,9", "--out", str(tmp_path / "d")]) == 2
    assert "not both" in capsys.readouterr().err
    calls = []
    real = Sam2MaskPropagator.__call__

    def spy(self, frames, prompt):
        masks = real(self, frames, prompt)
        calls.append((frames.shape, prompt, masks.shape))
        return sc.masks

    monkeypatch.setattr(Sam2MaskPropagator, "__call__", spy)
    out = tmp_path / "run"
    assert main(base + ["--mask-model", str(sam2_folder), "--mask-box", "20,14,43,33", "--out", str(out)]) == 0
    (shape, prompt, mask_shape), = calls
    assert shape == sc.frames.shape and mask_shape == sc.masks.shape and prompt.box == (20, 14, 43, 33)
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("masks propagated by" in w for w in manifest["warnings"])
    assert (out / "report.html").is_file()
    from orbit4d.io import read_masks

    again = read_masks(out / "masks", sc.names, (48, 64))  # the propagated masks, as --masks reads them
    np.testing.assert_array_equal(again.masks, sc.masks)


# ----------------------------------------------------------------------------- novel-view completion
def _render_object(mesh, cameras):
    """rgb uint8 (N, H, W, 3) on white, depth (N, H, W) (0 = empty) of (vertices (N, V, 3), faces, colors)."""
    import torch

    from orbit4d.synthetic import render_scene

    empty = (np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3)))
    rgb, depth, mask = render_scene((np.zeros((0, 3)), mesh[1], mesh[2]), empty, torch.as_tensor(mesh[0]), cameras)
    rgb[~mask] = 255
    return rgb, np.where(mask, depth, 0).astype(np.float32)


class _TrueObjectSynthesizer:
    """Renders the true object (its mesh in the reference's object frame) exactly at the relative
    poses, by datagen.novel_view's convention (target_viewpoint, then geom3d.viewpoint_to_cameras
    in the object frame), and keeps each view's true depth for `_TrueDepth`."""

    def __init__(self, vertices_o, faces, colors):
        self.mesh, self.depth = (vertices_o, faces, colors), {}

    def synthesize(self, source, relative_poses, seed=0):
        import torch

        from datagen.novel_view import as_relative_poses, target_viewpoint
        from geom3d import viewpoint_to_cameras

        views = [target_viewpoint(source.viewpoint, p) for p in as_relative_poses(relative_poses)]
        col = {k: torch.tensor([v[k] for v in views], dtype=torch.float64) for k in views[0]}
        cams = viewpoint_to_cameras(col["azimuth"], col["elevation"], col["theta"], col["distance"],
                                    focal=col["focal"], viewport=col["viewport"],
                                    principal=torch.stack([col["px"], col["py"]], -1),
                                    image_size=source.image.shape[:2])
        v = torch.as_tensor(self.mesh[0]).expand(len(views), -1, -1)
        rgb, depth = _render_object((v, self.mesh[1], self.mesh[2]), cams)
        for image, d in zip(rgb, depth):
            self.depth[image.tobytes()] = d
        return list(rgb)


class _TrueDepth:
    """The views' true depth, each times an unknown factor (a relative depth model's scale)."""

    def __init__(self, synthesizer):
        self.synthesizer = synthesizer

    def __call__(self, frames):
        return np.stack([self.synthesizer.depth[f.tobytes()] * (0.4 + 0.15 * i) for i, f in enumerate(frames)])


@pytest.fixture(scope="module")
def turning_scene():
    """The object turns 30° while the camera sweeps 30°: its far side is never filmed."""
    from orbit4d.pipeline import Orbit4DInputs, reconstruct_and_align
    from orbit4d.synthetic import make_scene

    sc = make_scene(8, (96, 128), turn_degrees=30.0)
    inputs = Orbit4DInputs(sc.frames, sc.names, sc.masks, sc.depth, sc.cameras)
    return sc, inputs, reconstruct_and_align(inputs)


def test_reference_view_is_the_object_seen_from_the_virtual_camera(turning_scene):
    """The warped reference mask against a direct render of the true object at the virtual camera."""
    import torch

    from orbit4d.completion import reference_view

    sc, inputs, geo = turning_scene
    r = 3
    centre = geo["fit"].transforms[r].apply(geo["canonical"].points.double()).mean(0)
    ref = reference_view(sc.frames[r], sc.masks[r], sc.cameras[r], centre, size=96, frame=r)
    obj = sc.object_poses[r].apply(sc.object_mesh[0].double())
    _, depth = _render_object((obj[None], sc.object_mesh[1], sc.object_mesh[2]), ref.camera.reshape(1))
    truth = depth[0] > 0
    iou = (truth & ref.mask).sum() / (truth | ref.mask).sum()
    rows, cols = np.nonzero(ref.mask)
    assert iou > 0.93, iou
    extent = max(np.abs(cols - 47.5).max(), np.abs(rows - 47.5).max()) / 48
    assert 0.75 <= extent <= 0.82  # the object fills 80 % of the square
    assert abs(ref.viewpoint["elevation"]) < 0.05  # default up: the camera's own (the centre is off its axis)
    assert (ref.image[~ref.mask] == 255).all()
    eye = -sc.cameras[r].R.double().reshape(3, 3).T @ sc.cameras[r].t.double().reshape(3)
    assert torch.allclose(-ref.camera.R.T @ ref.camera.t, eye)  # a rotation about the frame camera's centre


def test_completion_with_the_true_object_fills_the_unseen_side(turning_scene):
    import torch
    from scipy.spatial import cKDTree

    from orbit4d.completion import complete_run, ground_up, reference_view

    sc, inputs, geo = turning_scene
    r = int(np.argmax(sc.masks.reshape(len(sc.masks), -1).sum(1)))
    to_world = geo["fit"].transforms[r]
    canonical = geo["canonical"].points.double()
    up = ground_up(geo["background"].points, sc.cameras[r])  # the ground plane z = 0: up is +z
    assert math.degrees(math.acos(float(up[2]))) < 1.0
    centre = to_world.apply(canonical).mean(0)
    ref = reference_view(sc.frames[r], sc.masks[r], sc.cameras[r], centre, size=128, up=up, frame=r)
    eye = -sc.cameras[r].R.double().reshape(3, 3).T @ sc.cameras[r].t.double().reshape(3)
    assert ref.viewpoint["elevation"] == pytest.approx(math.asin(float((eye - centre)[2] / (eye - centre).norm())),
                                                       abs=math.radians(1.0))
    obj = sc.object_poses[r].apply(sc.object_mesh[0].double())
    synth = _TrueObjectSynthesizer((obj - ref.centre) @ ref.Q.T, sc.object_mesh[1], sc.object_mesh[2])
    done = complete_run(inputs, geo, synth, _TrueDepth(synth), reference=ref)
    assert done.added > 200, done.views
    assert torch.equal(done.points[:canonical.shape[0]], canonical)  # the canonical itself is kept
    added_world = to_world.apply(done.points[canonical.shape[0]:]).numpy()
    import trimesh

    surface = trimesh.Trimesh(obj.numpy(), sc.object_mesh[1].numpy(), process=False).sample(200_000, seed=0)
    dist, _ = cKDTree(surface).query(added_world)
    # which added points some frame saw: object coordinates → every frame, z-test against its true depth
    in_object = sc.object_poses[r].inverse().apply(torch.from_numpy(added_world))
    seen = np.zeros(len(added_world), bool)
    for f in range(len(sc.names)):
        cam = sc.cameras[f].to(dtype=torch.float64)
        x = sc.object_poses[f].apply(in_object) @ cam.R.reshape(3, 3).T + cam.t.reshape(3)
        uv = (x @ cam.K.reshape(3, 3).T)[:, :2] / x[:, 2:]
        j, i = uv[:, 0].round().long().numpy(), uv[:, 1].round().long().numpy()
        inside = (i >= 0) & (i < 96) & (j >= 0) & (j < 128)
        z = np.zeros(len(x))
        z[inside] = sc.depth[f][i[inside], j[inside]]
        seen |= inside & (np.abs(z - x[:, 2].numpy()) < 0.02 * x[:, 2].numpy())
    size = sc.object_size
    print(f"completion: {done.added} points added, {int((~seen).sum())} on the unseen side; median distance to "
          f"the true surface {np.median(dist) / size:.4f} of the object size (unseen "
          f"{np.median(dist[~seen]) / size:.4f}); views "
          f"{[(v['relative_pose_deg'][1], v['status'], v['fitness']) for v in done.views]}")
    assert (~seen).sum() > 0.5 * done.added  # most of what is added is what no frame saw
    assert np.median(dist[~seen]) < 0.01 * size
    assert np.median(dist) < 0.01 * size


def test_cli_runs_with_a_tiny_zero123(tmp_path, capsys):
    """End to end with random Zero-1-to-3 and Depth Anything models: the generated views (noise)
    are written and reported; --novel-view-model without --depth-model is a one-line error."""
    import json

    pytest.importorskip("diffusers")
    from datagen.novel_view import build_tiny_zero123
    from geom3d import load_point_cloud
    from orbit4d.demo import write_inputs
    from orbit4d.depth_model import tiny_depth_model
    from orbit4d.synthetic import make_scene

    sc = make_scene(4, (48, 64), turn_degrees=10.0)
    write_inputs(sc, tmp_path)
    zero123 = build_tiny_zero123(tmp_path / "tiny-zero123")
    base = ["orbit4d", "run", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
            "--depth", str(tmp_path / "depth"), "--cameras", str(tmp_path / "global_camera.json"),
            "--num-output-frames", "2", "--novel-view-model", str(zero123), "--novel-view-steps", "2"]
    assert main(base + ["--out", str(tmp_path / "x")]) == 2
    assert "needs a Zero-1-to-3 model and a depth model" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(base + ["--depth-model", str(tiny_depth_model(tmp_path / "tiny-depth")), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    done = manifest["completion"]
    assert len(done["views"]) == 7 and all(v["status"] for v in done["views"])
    assert len(list((out / "completion" / "views").glob("*.png"))) == 7
    assert (out / "completion" / "reference" / "00000.png").is_file()
    assert manifest["counts"]["completion_added_points"] == done["added_points"]
    canonical = load_point_cloud(out / "proxy" / "canonical.ply").points
    assert canonical.shape[0] == manifest["counts"]["canonical_points"]
    assert "novel-view completion" in manifest["times_s"]


def test_completion_corrects_generated_views_pose_errors(turning_scene):
    """A generator's views are off the requested poses: rendered with 5° Gaussian jitter of Δpolar
    and Δazimuth (the completion still believes the requested ones), the registration brings
    the added points back near the true surface (unregistered, 5° at the object's radius would
    put them about 4 % of its size off)."""
    from scipy.spatial import cKDTree

    from orbit4d.completion import complete_run, ground_up, reference_view

    sc, inputs, geo = turning_scene
    r = int(np.argmax(sc.masks.reshape(len(sc.masks), -1).sum(1)))
    to_world, canonical = geo["fit"].transforms[r], geo["canonical"].points.double()
    up = ground_up(geo["background"].points, sc.cameras[r])
    ref = reference_view(sc.frames[r], sc.masks[r], sc.cameras[r], to_world.apply(canonical).mean(0), size=128,
                         up=up, frame=r)
    obj = sc.object_poses[r].apply(sc.object_mesh[0].double())

    class Jittered(_TrueObjectSynthesizer):
        def synthesize(self, source, relative_poses, seed=0):
            poses = np.array(relative_poses, dtype=np.float64)
            poses[:, :2] += np.random.default_rng(1).normal(0.0, math.radians(5.0), (len(poses), 2))
            return super().synthesize(source, poses, seed)

    synth = Jittered((obj - ref.centre) @ ref.Q.T, sc.object_mesh[1], sc.object_mesh[2])
    done = complete_run(inputs, geo, synth, _TrueDepth(synth), reference=ref)
    import trimesh

    surface = trimesh.Trimesh(obj.numpy(), sc.object_mesh[1].numpy(), process=False).sample(200_000, seed=0)
    dist, _ = cKDTree(surface).query(to_world.apply(done.points[canonical.shape[0]:]).numpy())
    print(f"completion with 5° pose errors: {done.added} points, median distance {np.median(dist) / sc.object_size:.4f}"
          f" of the object size")
    assert done.added > 200
    assert np.median(dist) < 0.015 * sc.object_size
