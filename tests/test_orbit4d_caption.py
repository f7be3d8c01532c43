"""orbit4d's optional caption model: a tiny random BLIP captioner built here, end to end through the CLI."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def captioner_folder(tmp_path_factory):
    from orbit4d.caption import tiny_blip_captioner

    return tiny_blip_captioner(tmp_path_factory.mktemp("tiny-blip"), seed=0)


def test_caption_is_deterministic_text_from_the_model_vocabulary(captioner_folder):
    from orbit4d.caption import ImageCaptioner

    image = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    cap = ImageCaptioner(captioner_folder, device="cpu")
    text = cap(image)
    vocab = set((captioner_folder / "vocab.txt").read_text().split())
    assert text and set(text.split()) <= vocab  # decoded words of the model's own vocabulary, no special tokens
    assert "[SEP]" not in text and "[CLS]" not in text
    assert cap(image) == text  # greedy decoding
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        cap(image.astype(np.float32))


def _write_scene(tmp_path):
    from geom3d.trajectory import arc_path, bullet_time, save_camera_path
    from orbit4d.demo import write_inputs
    from orbit4d.synthetic import make_scene

    sc = make_scene(4, (48, 64), turn_degrees=10.0)
    write_inputs(sc, tmp_path, object_id=3)
    centre = float(np.median(sc.depth[0][sc.masks[0]]))
    save_camera_path(tmp_path / "path.json", bullet_time(arc_path(sc.cameras[0], centre, 2, yaw=0.2), 1))
    return sc, ["orbit4d", "run", "--frames", str(tmp_path / "frames"), "--masks", str(tmp_path / "masks"),
                "--object-id", "3", "--depth", str(tmp_path / "depth"), "--cameras",
                str(tmp_path / "global_camera.json"), "--trajectory", str(tmp_path / "path.json")]


def test_caption_becomes_the_video_prompt_end_to_end(captioner_folder, tmp_path, monkeypatch, caplog):
    """`--caption-model` captions the first frame and the video model gets that caption as its prompt
    (a tiny random WanVACE and BLIP, both loaded by path); an empty caption falls back to --prompt."""
    pytest.importorskip("diffusers")
    from aware3d.cli import main
    from orbit4d import caption as caption_module
    from orbit4d.caption import ImageCaptioner
    from orbit4d.video import WanVacePainter, tiny_wan_vace

    sc, args = _write_scene(tmp_path)
    wan = tiny_wan_vace(tmp_path / "wan")
    prompts = []
    real_call = WanVacePainter.__call__

    def spy(self, cond, holes, reference, prompt=""):
        prompts.append(prompt)
        return real_call(self, cond, holes, reference, prompt)

    monkeypatch.setattr(WanVacePainter, "__call__", spy)
    common = ["--video-model", str(wan), "--video-steps", "1", "--prompt", "an object turning",
              "--caption-model", str(captioner_folder)]
    assert main(args + ["--out", str(tmp_path / "run")] + common) == 0
    expected = ImageCaptioner(captioner_folder, device="cpu")(sc.frames[0])  # the first frame, as written to disk
    assert prompts == [expected] and expected != "an object turning"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["video_prompt"] == {"prompt": expected, "from": f"caption model {captioner_folder}"}
    assert "caption model" in manifest["times_s"] and (tmp_path / "run" / "output.mp4").is_file()

    monkeypatch.setattr(caption_module.ImageCaptioner, "__call__", lambda self, image: "")  # nothing to say
    with caplog.at_level(logging.WARNING):
        assert main(args + ["--out", str(tmp_path / "run2")] + common) == 0
    assert prompts[-1] == "an object turning" and "empty caption" in caplog.text
    manifest = json.loads((tmp_path / "run2" / "manifest.json").read_text())
    assert manifest["video_prompt"] == {"prompt": "an object turning", "from": "--prompt"}


def test_caption_model_without_a_video_model_is_an_error(tmp_path, capsys):
    from aware3d.cli import main

    _, args = _write_scene(tmp_path)
    assert main(args + ["--out", str(tmp_path / "run"), "--caption-model", "x"]) == 2
    assert "--caption-model: only acts with a video model" in capsys.readouterr().err
