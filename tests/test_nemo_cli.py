"""`aware3d nemo train | eval | pose` end to end on a tiny datagen dataset."""

import json

import yaml
from test_nemo_train import TINY

from aware3d.cli import main

CONFIG = dict(TINY, meshes={"type": "procedural", "count": 1},
              train={"steps": 4, "log_every": 2, "checkpoint_every": 2},
              pose={"azimuths": 6, "elevations": 2, "thetas": 1, "steps": 3, "keep": 1})
DATAGEN = {"seed": 1, "image_size": 64, "samples_per_category": 3, "occlusion": ["none", "L3"],
           "assets": [{"type": "procedural", "categories": ["car", "chair"], "count": 1}]}


def test_train_eval_pose(tmp_path, capsys):
    (tmp_path / "nemo.yaml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "datagen.yaml").write_text(yaml.safe_dump(DATAGEN))
    run = tmp_path / "run"
    # --data as a datagen config: a fresh round of samples per epoch (12 images, batch 8: 1 step per epoch)
    assert main(["nemo", "train", "--data", str(tmp_path / "datagen.yaml"), "--out", str(run), "--config",
                 str(tmp_path / "nemo.yaml"), "--set", "optim.warmup_steps=1", "--with-baseline", "--no-progress"]) == 0
    rounds = sorted(p.name for p in (run / "fresh").iterdir())
    assert rounds == ["round_00002", "round_00003"]  # older rounds are deleted
    assert (run / "baseline" / "config.yaml").is_file()
    data = run / "fresh" / "round_00003"
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["warmup_steps"] == 1
    assert main(["nemo", "eval", "--run", str(run), "--data", str(data), "--out", str(tmp_path / "eval"),
                 "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"nemo", "baseline"} and set(metrics["nemo"]) == {"clean", "L3"}
    # the baseline's run alone reports under its own name, with the same numbers as beside NeMo
    assert main(["nemo", "eval", "--run", str(run / "baseline"), "--data", str(data), "--out", str(tmp_path / "eval_b"),
                 "--no-progress"]) == 0
    alone = json.loads((tmp_path / "eval_b" / "metrics.json").read_text())
    assert set(alone) == {"baseline"} and alone["baseline"] == metrics["baseline"]
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert main(["nemo", "pose", "--run", str(run), "--images", str(data / "images" / "car"),
                 str(tmp_path / "broken.png"), "--out", str(tmp_path / "pose")]) == 0
    assert "skipped 1" in capsys.readouterr().out
    from data3d import load_records

    records = load_records(tmp_path / "pose")
    assert len(records) == 6 and len(list((tmp_path / "pose" / "overlays").glob("*.png"))) == 6
    assert records[0].objects[0].category in ("car", "chair")
    capsys.readouterr()
    assert main(["nemo", "train", "--data", str(data), "--out", str(tmp_path / "x"),
                 "--set", "loss.temprature=1"]) == 2
    assert "unknown key 'loss.temprature'" in capsys.readouterr().err
