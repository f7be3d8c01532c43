"""`aware3d orbit4d run --proxy rigid|per-frame|deforming`: the option reaches the run (flag generated
from Orbit4DOptions), the run folder says which proxy it wrote, and (slow) the deforming proxy a
run writes completes the never-seen surface where the rigid run's cannot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

from aware3d.cli import main
from geom3d import load_point_cloud


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    """A 4-frame synthetic scene on disk, a tiny random Zero-1-to-3 and a tiny depth model."""
    pytest.importorskip("diffusers")
    from datagen.novel_view import build_tiny_zero123
    from orbit4d.demo import write_inputs
    from orbit4d.depth_model import tiny_depth_model
    from orbit4d.synthetic import make_scene

    root = tmp_path_factory.mktemp("proxy-cli")
    write_inputs(make_scene(4, (48, 64), turn_degrees=10.0), root)
    return {"root": root, "zero123": build_tiny_zero123(root / "tiny-zero123"),
            "depth": tiny_depth_model(root / "tiny-depth")}


def _base(d) -> list:
    root = d["root"]
    return ["orbit4d", "run", "--frames", str(root / "frames"), "--masks", str(root / "masks"),
            "--depth", str(root / "depth"), "--cameras", str(root / "global_camera.json"),
            "--num-output-frames", "2"]


def test_proxy_flag_is_generated_and_checked(capsys):
    from aware3d.cli import build_parser
    from aware3d.cli_orbit4d import options_from_args
    from orbit4d.pipeline import Orbit4DOptions

    parser = build_parser("orbit4d")
    for kind in ("rigid", "per-frame", "deforming"):
        args = parser.parse_args(["orbit4d", "run", "--frames", "f", "--out", "o", "--proxy", kind])
        assert options_from_args(args).proxy == kind
    assert options_from_args(parser.parse_args(["orbit4d", "run", "--frames", "f", "--out", "o"])).proxy == "rigid"
    with pytest.raises(SystemExit) as exc:  # argparse's choices
        main(["orbit4d", "run", "--frames", "f", "--masks", "m", "--depth", "d", "--out", "o", "--proxy", "wobbly"])
    assert exc.value.code == 2
    assert "--proxy" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--proxy: deforming completes frames with generated views"):
        Orbit4DOptions(proxy="deforming").check_proxy()
    Orbit4DOptions(proxy="deforming").check_proxy(views_given=True)
    Orbit4DOptions(proxy="per-frame", completion="novel_view", novel_view_model="z", completion_depth_model="d") \
        .check_proxy()


def test_proxy_without_views_is_a_one_line_error(on_disk, tmp_path, capsys):
    for kind in ("per-frame", "deforming"):
        assert main(_base(on_disk) + ["--proxy", kind, "--out", str(tmp_path / kind)]) == 2
        err = capsys.readouterr().err
        assert f"--proxy: {kind} completes frames with generated views" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / kind / "manifest.json").exists()  # refused before any work


@pytest.mark.parametrize("kind", ["rigid", "per-frame", "deforming"])
def test_cli_writes_the_chosen_proxy(on_disk, tmp_path, kind):
    """Through main(): the manifest, config.yaml, the log and the report name the proxy; one
    foreground cloud per frame, of the size the counts give; per-frame writes each frame's views
    and no canonical, deforming the keyframe's views and its canonical model."""
    from methodkit.config import read_yaml

    out = tmp_path / "run"
    args = _base(on_disk) + ["--proxy", kind, "--out", str(out)]
    if kind != "rigid":
        args += ["--novel-view-model", str(on_disk["zero123"]), "--novel-view-steps", "1",
                 "--depth-model", str(on_disk["depth"])]
    if kind == "per-frame":  # 11 generated views per frame: two frames keep the test short
        args += ["--max-frames", "2"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["proxy"] == kind and manifest["counts"]["proxy"] == kind
    assert read_yaml((out / "config.yaml").read_text())["proxy"] == kind
    stages = [json.loads(line)["stage"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert (f"{kind} proxy" in stages) == (kind != "rigid")
    assert f"Proxy ({kind}:" in (out / "report.html").read_text()
    names = manifest["frames"]
    sizes = [load_point_cloud(out / "proxy" / "foreground" / f"{n}.ply").points.shape[0] for n in names]
    assert sizes == manifest["counts"]["foreground_proxy_points_per_frame"] and min(sizes) > 0
    assert (out / "proxy" / "canonical.ply").is_file() == (kind != "per-frame")
    done = manifest["completion"]
    if kind == "per-frame":
        assert done["proxy"] == "per-frame" and set(done["frames"]) == set(names)
        for n in names:
            assert len(done["frames"][n]["views"]) == 11  # orbit4d.dynamic.FRAME_POSES
            assert len(list((out / "completion" / n / "views").glob("*.png"))) == 11
    elif kind == "deforming":
        assert done["proxy"] == "deforming" and done["keyframe"] in names and len(done["views"]) == 11
        assert len(done["pairs_per_frame"]) == len(names)
        canonical = load_point_cloud(out / "proxy" / "canonical.ply").points
        assert canonical.shape[0] == manifest["counts"]["canonical_points"]
    else:
        assert isinstance(done, str) and done.startswith("not run")
        # the rigid proxy is the canonical moved by the smoothed transform of alignment.json
        can = load_point_cloud(out / "proxy" / "canonical.ply").points.double()
        fr = json.loads((out / "alignment.json").read_text())["sim3_ransac_smoothed"]["frames"][1]
        moved = fr["scale"] * can @ torch.tensor(fr["R"], dtype=torch.float64).T + torch.tensor(fr["t"])
        got = load_point_cloud(out / "proxy" / "foreground" / f"{names[1]}.ply").points.double()
        assert torch.allclose(got, moved, atol=1e-4)


@pytest.mark.slow
def test_run_with_the_deforming_proxy_completes_the_never_seen_surface(tmp_path):
    """orbit4d.pipeline.run on the articulated scene (5 frames at 180×240, exact depth), its views
    rendered from each frame's true mesh: the deforming run's proxy/foreground clouds reach the
    never-seen surface (F@2 % of the size), at least twice the rigid run's."""
    from orbit4d.articulated import make_deforming_scene, surface_samples
    from orbit4d.dynamic import MeshViewSynthesizer
    from orbit4d.pipeline import Orbit4DInputs, Orbit4DOptions, run
    from orbit4d.surface_eval import surface_scores

    sc = make_deforming_scene(5, (180, 240))
    s = surface_samples(sc, 20_000)
    truth = s.points(sc.vertices, sc.animal.faces)
    inputs = Orbit4DInputs(sc.frames, sc.names, sc.masks, sc.depth, sc.cameras)
    tau = 0.02 * sc.object_size
    scores = {}
    for kind in ("rigid", "deforming"):
        out = tmp_path / kind
        run(inputs, out, Orbit4DOptions(proxy=kind, num_output_frames=2),
            synthesizer_for_frame=lambda f, ref: MeshViewSynthesizer((sc.vertices[f], sc.animal.faces,
                                                                      sc.animal.colors), ref))
        scores[kind] = np.array([[surface_scores(load_point_cloud(out / "proxy" / "foreground" / f"{n}.ply")
                                                 .points.numpy(), truth[f], s.seen, tau).f_score[k]
                                  for k in ("seen", "never_seen")] for f, n in enumerate(sc.names)])
    print({k: v.mean(0).round(3).tolist() for k, v in scores.items()}, scores["deforming"].round(3).tolist())
    assert scores["deforming"][:, 1].mean() > 2 * scores["rigid"][:, 1].mean()
    # worst frame: 0.500 before the silhouette test, 0.499 with it (whose means are higher: 0.821 → 0.860
    # seen, 0.609 → 0.612 never-seen); the bounds keep a margin on both sides of that
    assert scores["deforming"][:, 1].min() > 0.45 and scores["deforming"][:, 0].mean() > 0.8
