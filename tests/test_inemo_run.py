"""A two-task incremental run on procedural assets, from the CLI: every method completes, reports
every metric, keeps its exemplars out of evaluation, and leaves loadable per-task run folders."""

import json

import pytest
import torch
import yaml

import nemo
from aware3d.cli import main
from nemo import NemoError
from nemo.incremental import load_incremental_config, run_incremental

TINY = {
    "data": {"crop_size": [64, 64], "batch_size": 4},
    "cuboid": {"num_vertices": 100},
    "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 32], "embedding_size": 8, "decoder_width": 16,
                 "feature_dim": 16},
    "meshes": {"type": "procedural", "count": 2},
    "bank": {"clutter_size": 64},
    "optim": {"lr": 3e-3, "warmup_steps": 1},
    "train": {"log_every": 1},
    "pose": {"azimuths": 4, "elevations": 1, "thetas": 1, "steps": 2, "keep": 1},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from datagen.config import load_config
    from datagen.pipeline import generate

    root = tmp_path_factory.mktemp("inemo_data")
    # instance-disjoint: training shows procedural seeds 0 and 1, the test seeds 2 and 3; seen_cad
    # shows the training seeds at other viewpoints
    for name, seed, occlusion, seeds in (("train", 3, ["none"], [0, 1]), ("test", 4, ["none", "L2"], [2, 3]),
                                         ("seen_cad", 5, ["none"], [0, 1])):
        cfg = load_config({"seed": seed, "image_size": 64, "samples_per_category": 4, "occlusion": occlusion,
                           "assets": [{"type": "procedural", "categories": ["car", "sofa"], "seeds": seeds}],
                           "writer": {"chunk_size": 16}})
        generate(cfg, root / name, progress=False)
    return root


def _config(folders, **extra):
    return {"train_data": [str(folders / "train")], "test_data": [str(folders / "test")], "tasks": {"tasks": 2},
            "steps": {"first": 3, "later": 3}, "exemplars": {"budget": 2}, "nemo": TINY, "eval": {"batch_size": 8},
            "validation": {"fraction": 0.0}, **extra}


def test_two_task_run_from_the_cli_reports_every_metric(folders, tmp_path, capsys):
    config = tmp_path / "inc.yaml"
    config.write_text(yaml.safe_dump(_config(folders)))
    out = tmp_path / "run"
    assert main(["nemo", "incremental", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    assert "| inemo | 1 | 2 |" in capsys.readouterr().out
    results = json.loads((out / "incremental.json").read_text())
    assert set(results) == {"inemo", "finetune", "joint", "replay2d"}
    for method, r in results.items():
        assert len(r["per_task"]) == 2
        assert 0.0 <= r["average_incremental_accuracy"] <= 1.0 and r["forgetting"] is not None
        first, second = r["per_task"]
        assert len(first["seen_classes"]) == 1 and len(second["seen_classes"]) == 2
        assert set(second["seen_classes"]) == {"car", "sofa"}
        assert set(second["acc_by_split"]) == {"clean", "L2", "all"}
        assert first["old_class_pose_acc_pi6"] is None and 0.0 <= second["old_class_pose_acc_pi6"] <= 1.0
        metrics = json.loads((out / method / "task_1" / "eval" / "metrics.json").read_text())
        assert metrics[method]["clean"]["n"] == 8  # 4 samples of each of the 2 seen classes
        assert second["acc_by_split"]["clean"] == pytest.approx(metrics[method]["clean"]["cls_acc"])
    # exemplars: within budget, shrunk per class, never in evaluation; the run folders load
    kept = json.loads((out / "inemo" / "task_1" / "exemplars.json").read_text())
    assert kept["size"] <= 2 and kept["per_class"] == 1 and set(kept["classes"]) == {"car", "sofa"}
    tested = {json.loads(line)["image"] for line in (out / "inemo" / "task_1" / "eval" / "predictions.jsonl")
              .read_text().splitlines()}
    assert not tested & {p for ps in kept["classes"].values() for p in ps}
    assert results["inemo"]["per_task"][1]["train_objects"] == 4 + 2  # new class + the whole memory (old class)
    assert results["joint"]["per_task"][1]["train_objects"] == 8
    log = [json.loads(line) for line in (out / "inemo" / "log.jsonl").read_text().splitlines()]
    assert all("positional" in r for r in log) and all("distillation" in r for r in log if r["task"] == 1)
    assert not any("distillation" in r for r in log if r["task"] == 0)
    assert nemo.load(out / "inemo" / "task_1").categories == second["seen_classes"]
    assert nemo.load(out / "replay2d" / "task_1").method == "baseline"
    for name in ("incremental.md", "accuracy.png", "report.html", "manifest.json"):
        assert (out / name).is_file()


def test_herding_exemplars_in_a_run(folders, tmp_path):
    config = _config(folders, methods=["inemo", "replay2d"], exemplars={"budget": 4, "strategy": "herding"},
                     steps={"first": 1, "later": 1})
    results = run_incremental(config, tmp_path / "run")
    for method in ("inemo", "replay2d"):
        kept = json.loads((tmp_path / "run" / method / "task_1" / "exemplars.json").read_text())
        assert kept["strategy"] == "herding" and kept["size"] == 4 and kept["per_class"] == 2
        assert results[method]["per_task"][1]["exemplars"] == 4


def test_compressed_exemplars_fit_more_at_equal_bytes(folders, tmp_path, monkeypatch):
    budget = 2 * 3 * 64 * 64  # two full 64² images
    config = _config(folders, methods=["inemo", "inemo_cim"], exemplars={"budget_bytes": budget, "downsample": 4},
                     steps={"first": 1, "later": 1})
    monkeypatch.chdir(folders)  # record folders relative to the working directory, as the CLI's configs give them
    config.update(train_data=["train"], test_data=["test"])
    results = run_incremental(config, tmp_path / "run")
    assert run_incremental(config, tmp_path / "run") == results  # resumes: the exemplars' masks are found again
    plain, packed = results["inemo"]["per_task"][1], results["inemo_cim"]["per_task"][1]
    assert plain["exemplars"] == 2 and packed["exemplars"] > 2
    assert plain["exemplar_cost"] <= budget and packed["exemplar_cost"] <= budget
    assert packed["train_objects"] > plain["train_objects"]  # more old-class exemplars replayed in task 1
    stored = list((tmp_path / "run" / "inemo_cim" / "exemplars").glob("*.png"))
    assert len(stored) >= packed["exemplars"]
    with pytest.raises(NemoError, match="budget_bytes"):
        load_incremental_config(None, ["methods=[inemo_cim]"])


def test_a_killed_run_resumes_after_its_last_finished_task(folders, tmp_path):
    config = _config(folders, methods=["inemo"], steps={"first": 2, "later": 2})
    out = tmp_path / "run"
    first = run_incremental(config, out)
    checkpoint = next((out / "inemo" / "task_0" / "checkpoints").iterdir())
    stamp = checkpoint.stat().st_mtime_ns
    (out / "inemo" / "task_1" / "task.json").unlink()  # as if killed during task 1
    again = run_incremental(config, out)
    assert checkpoint.stat().st_mtime_ns == stamp  # task 0 was loaded, not trained again
    assert again["inemo"]["per_task"][0] == first["inemo"]["per_task"][0]
    a, b = first["inemo"]["per_task"][1], again["inemo"]["per_task"][1]
    assert a["acc_by_split"] == b["acc_by_split"] and a["pose_acc_pi6_by_split"] == b["pose_acc_pi6_by_split"]
    assert a["exemplars"] == b["exemplars"] and a["train_objects"] == b["train_objects"]
    log = [json.loads(line) for line in (out / "inemo" / "log.jsonl").read_text().splitlines()]
    assert [(r["task"], r["step"]) for r in log] == [(0, 1), (0, 2), (1, 1), (1, 2)]  # no duplicated lines
    with pytest.raises(NemoError, match="another config"):
        run_incremental(dict(config, seed=5), out)


def test_the_callers_torch_thread_count_is_restored(folders, tmp_path):
    """The run trains with the config's `threads` and gives the caller's count back (it used to leave
    torch at the config's count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_incremental(_config(folders, methods=["finetune"], steps={"first": 1, "later": 1}, threads=1),
                        tmp_path / "run")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_evaluation_sharing_training_images_is_refused(folders, tmp_path):
    config = _config(folders, test_data=[str(folders / "train")], methods=["finetune"], instance_disjoint=False)
    with pytest.raises(NemoError, match="share"):
        run_incremental(config, tmp_path / "run")


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(NemoError, match="'exemplars.budgett'"):
        load_incremental_config(None, ["exemplars.budgett=3"])
    with pytest.raises(NemoError, match="'methods'"):
        load_incremental_config(None, ["methods=[inemo, icarl]"])
    with pytest.raises(NemoError, match="'nemo' block: config: 'data.crop_size'"):
        load_incremental_config(None, ["nemo.data.crop_size=[50, 50]"])
    with pytest.raises(NemoError, match="'positional.temperature'"):
        load_incremental_config(None, ["positional.temperature=0"])


def test_replay2d_classifies_by_the_nearest_exemplar_mean(folders, tmp_path):
    """iCaRL's rule: the saved class means are the normalised means of the exemplars' pooled encoder
    embeddings, and every evaluated object's predicted class is the nearest mean (checked by hand)."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    import data3d
    from nemo.data import object_dataset
    from nemo.incremental.loop import _class_embeddings

    config = _config(folders, methods=["replay2d"], exemplars={"budget": 4})
    run_incremental(config, tmp_path / "run")
    task = tmp_path / "run" / "replay2d" / "task_1"
    means = load_file(str(task / "class_means.safetensors"))["class_means"]
    model = nemo.load(task)
    seen = model.categories
    exemplars = data3d.load_records(task / "exemplars")
    for k, c in enumerate(seen):
        mine = [r for r in exemplars if r.objects[0].category == c]
        assert len(mine) == 2
        mean = F.normalize(_class_embeddings(model.net, mine, model.config, seen, True).mean(0), dim=0)
        assert torch.allclose(means[k], mean, atol=1e-5)
    rows = [json.loads(line) for line in (task / "eval" / "predictions.jsonl").read_text().splitlines()]
    test = [r for r in data3d.load_records(folders / "test")]
    dataset = object_dataset(test, model.config, seen, train=False)
    embeddings = _class_embeddings(model.net, [dataset.records[i] for i, _ in dataset.index], model.config, seen, True)
    by_image = {str(dataset.records[i].image_path): seen[int((e @ means.T).argmax())]
                for (i, _), e in zip(dataset.index, embeddings)}
    assert len(rows) == len(by_image) == 16
    assert all(row["predicted"] == by_image[row["image"]] for row in rows)
    linear = run_incremental(dict(config, replay2d={"classifier": "linear"}), tmp_path / "linear")
    assert not (tmp_path / "linear" / "replay2d" / "task_1" / "class_means.safetensors").exists()
    assert linear["replay2d"]["per_task"][1]["seen_classes"] == seen


def test_nearest_mean_head_picks_the_nearest_mean():
    """Means made from two images' own embeddings: each image is nearest its own mean (cosine 1), and
    swapping the means swaps the predictions; the angles are the network's head's."""
    import torch

    from nemo.backbone import backbone_config_from_dict
    from nemo.baseline import BaselineNet
    from nemo.incremental.loop import _as_model

    torch.manual_seed(0)
    ncfg = nemo.resolve_config(dict(TINY, method="baseline", categories=["car", "sofa"]))
    net = BaselineNet(backbone_config_from_dict(ncfg["backbone"]), 2).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        pooled = net.encoder((images - net.imagenet.mean) / net.imagenet.std).feature_maps[-1].mean(dim=(2, 3))
    for means, expected in ((pooled, ["car", "sofa"]), (pooled.flip(0), ["sofa", "car"])):
        model = _as_model(net, None, ncfg, ["car", "sofa"], True, means)
        assert torch.allclose(model.logits(images)[0], net(images)[0])
        assert [r["category"] for r in model.estimate_pose(images)] == expected


def test_nearest_mean_without_exemplars_is_a_clear_error(folders, tmp_path):
    config = _config(folders, methods=["replay2d"], exemplars={"budget": 0}, steps={"first": 1, "later": 1})
    with pytest.raises(NemoError, match="needs an exemplar of every class"):
        run_incremental(config, tmp_path / "run")


def test_resume_refuses_tasks_measured_by_another_rule(folders, tmp_path):
    """task.json records the classifier. A run folder from before the rules existed (its config.yaml
    without them resolves to today's defaults, its task.json without the field counts as the old
    defaults: the mean rule, replay2d's head) is an error naming the task, not a silent mix."""
    config = _config(folders, methods=["inemo", "replay2d"], steps={"first": 1, "later": 1})
    first = run_incremental(config, tmp_path / "run")
    assert [t["classifier"] for t in first["inemo"]["per_task"]] == ["peak", "peak"]
    assert [t["classifier"] for t in first["replay2d"]["per_task"]] == ["nearest_mean"] * 2
    assert run_incremental(config, tmp_path / "run") == first  # same rules: resumes
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    del stored["replay2d"], stored["nemo"]["classify"]
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(stored))
    for method in ("inemo", "replay2d"):
        task = tmp_path / "run" / method / "task_0" / "task.json"
        entry = json.loads(task.read_text())
        del entry["classifier"]
        task.write_text(json.dumps(entry))
    with pytest.raises(NemoError, match=r"inemo/task_0: .*'mean' classifier, the config asks for 'peak'"):
        run_incremental(config, tmp_path / "run")
    with pytest.raises(NemoError, match=r"replay2d/task_0: .*'linear' classifier"):
        run_incremental(dict(config, methods=["replay2d"]), tmp_path / "run")


def test_validation_choice_rules_predicted_pose_and_instance_splits(folders, tmp_path):
    """The matching rule is chosen on a validation split carved from the training records (whole
    instances), recorded per task with the training rules; pose is reported with the predicted class
    beside the true class; seen_cad records are reported as their own split; a test that shows a
    training instance is refused; a resume under another distillation variant is refused."""
    config = _config(folders, methods=["inemo", "replay2d"], steps={"first": 1, "later": 1},
                     validation={"fraction": 0.5, "min_instances": 2, "match_rules": ["mean", "peak"]},
                     seen_cad_data=[str(folders / "seen_cad")])
    out = tmp_path / "run"
    results = run_incremental(config, out)
    carved = json.loads((out / "validation.json").read_text())
    for c in ("car", "sofa"):
        assert carved["classes"][c]["by"] == "instance" and len(carved["classes"][c]["instances"]) == 1
        assert carved["classes"][c]["objects"] == 2
        assert not set(carved["test_instances"][c]) & set(carved["classes"][c]["training_instances"])
    for t in results["inemo"]["per_task"]:
        v = t["validation"]
        assert v["match_rules"] == ["mean", "peak"] and set(v["accuracy"]) == {"mean", "peak"}
        assert t["classifier"] == v["match_rule"] == max(["mean", "peak"], key=lambda r: (v["accuracy"][r],
                                                                                           r == "mean"))
        assert v["objects"] == 2 * len(t["seen_classes"])
        assert t["rules"] == {"negatives": "all_slots", "latent_slots": None, "clutter_refill": True,
                              "distillation": {"variant": "released", "weight": 2.0, "temperature": 0.5}}
        assert 0.0 <= t["pose_acc_pi6_predicted"] <= 1.0
        assert {"seen_cad", "clean", "L2"} <= set(t["acc_by_split"])
    rows = [json.loads(line) for line in (out / "inemo" / "task_1" / "eval" / "predictions.jsonl").read_text()
            .splitlines()]
    for row in rows:  # a correctly classified object's pose is the same fit either way
        assert "error_predicted" in row
        if row["cls_correct"]:
            assert row["error_predicted"] == pytest.approx(row["error"], abs=1e-9)
    for t in results["replay2d"]["per_task"]:  # its angles do not depend on the class
        assert t["pose_acc_pi6_predicted_by_split"] == t["pose_acc_pi6_by_split"] and t["validation"] is None
    # inemo's training saw 2 objects per class minus the carved instance's: 2 (car) in task 0
    assert results["inemo"]["per_task"][0]["train_objects"] == 2
    assert run_incremental(config, out) == results  # resumes under the same rules
    task = out / "inemo" / "task_0" / "task.json"  # a task finished before the rules were recorded
    entry = json.loads(task.read_text())
    del entry["rules"]
    task.write_text(json.dumps(entry))
    with pytest.raises(NemoError, match=r"inemo/task_0: .*trained under the rules None"):
        run_incremental(config, out)
    with pytest.raises(NemoError, match="instance-disjoint"):
        run_incremental(_config(folders, test_data=[str(folders / "seen_cad")], methods=["finetune"]),
                        tmp_path / "bad")


def test_clutter_refill_replaces_the_whole_bank_from_the_memory(folders):
    import data3d
    from nemo.backbone import FeatureNet, backbone_config_from_dict
    from nemo.bank import MeshBank
    from nemo.data import category_meshes
    from nemo.incremental.config import resolve_incremental_config
    from nemo.incremental.loop import refill_clutter

    config = resolve_incremental_config(_config(folders))
    ncfg = config["nemo"]
    torch.manual_seed(0)
    net = FeatureNet(backbone_config_from_dict(ncfg["backbone"])).eval()
    meshes = category_meshes(dict(ncfg, categories=["car", "sofa"]), ["car", "sofa"])
    bank = MeshBank(meshes, feature_dim=int(ncfg["backbone"]["feature_dim"]), clutter_size=64)
    before, vertices = bank.clutter.clone(), bank.features.clone()
    memory = list(data3d.load_records(folders / "train"))[:3]
    pushed = refill_clutter(net, bank, memory, ncfg, ["car", "sofa"], seed=0)
    assert pushed >= 64
    assert not (bank.clutter[:, None, :] == before[None]).all(-1).any()  # every row replaced
    assert torch.equal(bank.features, vertices)  # vertices untouched
    # every new row is a unit feature of the network at some background cell of a memory image
    from nemo.data import object_dataset

    batch = data3d.collate_objects([object_dataset(memory, ncfg, ["car", "sofa"], train=False)[i] for i in range(3)])
    with torch.no_grad():
        maps = torch.nn.functional.normalize(net(batch["image"]), dim=1)
    cells = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
    best = (bank.clutter @ cells.T).amax(-1)
    assert torch.allclose(best, torch.ones_like(best), atol=1e-5)
