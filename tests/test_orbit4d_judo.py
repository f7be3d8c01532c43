"""The real judo clip (people, moving) end to end through `aware3d orbit4d run`: its frames and
palette masks at a quarter of their size, depth from a tiny random Depth Anything (the stand-in
for a real depth model), cameras estimated from the background; the rigid proxy, and (slow) the
deforming proxy with a tiny random Zero-1-to-3. The models are random, so the geometry is not
checked against anything true: these tests check that a real clip's inputs (a mask for one frame
in four, a person that moves) run through every stage and the run folder reports them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

from aware3d.cli import main

FRAMES = 4  # frames 00000-00003; only 00000 has a mask file (the others take it, with a warning)
SHRINK = 4  # 854×480 → 213×120


@pytest.fixture(scope="module")
def judo(shared_data, tmp_path_factory):
    """The first FRAMES judo frames and every mask, shrunk by SHRINK (bilinear / nearest), and a
    tiny random depth model."""
    pytest.importorskip("transformers")
    from PIL import Image

    from orbit4d.depth_model import tiny_depth_model

    src = shared_data / "video" / "judo"
    root = tmp_path_factory.mktemp("judo")
    (root / "frames").mkdir()
    (root / "masks").mkdir()
    for p in sorted((src / "frames").glob("*.jpg"))[:FRAMES]:
        im = Image.open(p)
        im.resize((im.width // SHRINK, im.height // SHRINK), Image.BILINEAR).save(root / "frames" / p.name)
    for p in sorted((src / "masks").glob("*.png")):
        m = Image.open(p)
        m.resize((m.width // SHRINK, m.height // SHRINK), Image.NEAREST).save(root / "masks" / p.name)
    return {"root": root, "depth": tiny_depth_model(root / "tiny-depth")}


def _run(judo, out, *extra) -> dict:
    root = judo["root"]
    assert main(["orbit4d", "run", "--frames", str(root / "frames"), "--masks", str(root / "masks"),
                 "--depth-model", str(judo["depth"]), "--trajectory", "arc_yaw_15", "--out", str(out),
                 *extra]) == 0
    return json.loads((out / "manifest.json").read_text())


def _check_run(out, manifest, kind: str) -> None:
    names = [f"{i:05d}" for i in range(FRAMES)]
    assert manifest["kind"] == "orbit4d" and manifest["status"] == "complete" and manifest["frames"] == names
    assert manifest["proxy"] == kind
    warnings = " ".join(manifest["warnings"])
    assert "nearest masked frame" in warnings and "depth estimated by" in warnings
    assert "estimated from the background" in warnings
    counts = manifest["counts"]
    assert counts["frames"] == FRAMES and counts["output_frames"] == FRAMES
    assert min(counts["foreground_points_per_frame"]) > 100 and counts["background_points"] > 1000
    assert counts["coverage"] > 0.2
    cams = json.loads((out / "cameras.json").read_text())
    assert cams["image_size"] == [480 // SHRINK, 854 // SHRINK] and set(names) <= set(cams)
    first = np.asarray(cams["00000"]["extrinsic"])  # world = the first camera
    assert np.allclose(first, np.eye(4)[:3], atol=1e-9)
    for i in range(FRAMES):
        assert (out / "scaffold" / "rgb" / f"{i:05d}.png").is_file()
        assert (out / "proxy" / "foreground" / f"{names[i]}.ply").is_file()
    page = (out / "report.html").read_text()
    assert f"Proxy ({kind}:" in page and "input_00000.png" in page
    assert (out / "report" / "overview.png").is_file()


@pytest.mark.realdata
def test_judo_end_to_end_with_a_stand_in_depth_model(judo, tmp_path):
    out = tmp_path / "run"
    manifest = _run(judo, out)
    _check_run(out, manifest, "rigid")
    # the relative depth is scaled so that the first frame's median is --depth-median (5 m): the
    # background cloud (world = the first camera) lies around that depth
    from geom3d import load_point_cloud

    bg = load_point_cloud(out / "proxy" / "background.ply").points
    assert 2.5 < float(bg[:, 2].median()) < 10.0


@pytest.mark.realdata
@pytest.mark.slow
def test_judo_with_the_deforming_proxy(judo, tmp_path):
    """The deforming proxy on the real clip: the keyframe (the largest mask) completed by a tiny
    random Zero-1-to-3, deformed into the other frames."""
    pytest.importorskip("diffusers")
    from datagen.novel_view import build_tiny_zero123

    out = tmp_path / "run"
    zero123 = build_tiny_zero123(tmp_path / "tiny-zero123")
    manifest = _run(judo, out, "--proxy", "deforming", "--novel-view-model", str(zero123), "--novel-view-steps", "1")
    _check_run(out, manifest, "deforming")
    done = manifest["completion"]
    assert done["proxy"] == "deforming" and done["keyframe"] in manifest["frames"] and len(done["views"]) == 11
    assert (out / "proxy" / "canonical.ply").is_file()
