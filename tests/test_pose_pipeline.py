"""pose end to end on a procedural car: unannotated sources -> generated sets -> training, merge and one
shot -> evaluation against the ground truth the pipeline never saw (the sources' labels are used only to
check the merge and for scoring)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

import data3d
import nemo
import pose
from data3d.procedural import make
from datagen.novel_view import RenderSynthesizer, Zero123Synthesizer, build_tiny_zero123
from pose.sets import _write_png, object_bbox, relative_pose_of

SIZE = 64
CONFIG = {"nemo": {"threads": 1, "data": {"crop_size": [SIZE, SIZE], "batch_size": 8},
                   "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 64], "embedding_size": 16,
                                "decoder_width": 32, "feature_dim": 32},
                   "bank": {"clutter_size": 256}, "optim": {"lr": 3e-3, "warmup_steps": 5},
                   "train": {"steps": 40, "log_every": 10},
                   "pose": {"azimuths": 12, "elevations": 4, "thetas": 1, "steps": 15, "keep": 2}}}


def _records(folder: Path, mesh, azimuths, elevations, prefix: str) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    render = RenderSynthesizer(backend="raster")
    out = []
    for i, (a, e) in enumerate(zip(azimuths, elevations)):
        vp = {"azimuth": float(a), "elevation": float(e), "theta": 0.0, "distance": 3.0, "focal": 1.0,
              "viewport": SIZE * 2.2, "px": (SIZE - 1) / 2, "py": (SIZE - 1) / 2}
        image = render.render(mesh, [vp], (SIZE, SIZE))[0]
        path = folder / f"{prefix}{i:03d}.png"
        _write_png(path, image)
        obj = data3d.ObjectAnnotation("car", object_bbox(image), data3d.Viewpoint(**vp), cad_source="procedural",
                                      cad_id="car/0001")
        out.append(data3d.ImageRecord(path, (SIZE, SIZE), (obj,)))
    data3d.save_records(out, folder, shard="000000")
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose")
    mesh = make("car", seed=1)
    rng = np.random.default_rng(0)
    sources = _records(root / "src", mesh, rng.uniform(0, 2 * math.pi, 4), rng.uniform(0.1, 0.3, 4), "src")
    test = _records(root / "test", mesh, rng.uniform(0, 2 * math.pi, 16), rng.uniform(0.1, 0.3, 16), "test")
    data3d.save_records([sources[0]], root / "ref", shard="000000")
    cylinder = pose.cylinder_params([mesh], segments=36, rows=6, rings=2)
    views = pose.sources_from_records(sources, {sources[0].objects[0].mesh_ref: mesh})
    sets = pose.generate_sets(views, RenderSynthesizer(backend="raster"),
                              pose.default_relative_poses(6, (0.0, -0.25)), root / "sets", category="car",
                              cylinder=cylinder)
    run = pose.train(root / "sets", root / "ref", root / "run", CONFIG)
    return {"mesh": mesh, "root": root, "sources": sources, "test": test, "sets": sets, "run": run,
            "cylinder": cylinder}


def test_sets_are_records_in_the_source_cameras_frame(world):
    sets, sources = world["sets"], world["sources"]
    assert len(sets) == 4 and all(len(s.records) == 13 for s in sets)
    summary = json.loads((world["root"] / "sets" / "sets.json").read_text())
    assert summary["synthesizer"]["synthesizer"] == "render" and summary["skipped"] == []
    source_view, moved = sets[1].records[0], sets[1].records[3]
    assert source_view.image_path.read_bytes() == sources[1].image_path.read_bytes()  # view 0: the source itself
    obj = moved.objects[0]
    dp, da, dr = relative_pose_of(obj)
    assert obj.extra["relative_pose"] == [dp, da, dr]  # stored as numbers
    assert obj.extra["frame"] == "source_camera" and moved.extra["set"] == sets[1].id
    vp0 = source_view.objects[0].viewpoint
    assert (vp0["azimuth"], vp0["elevation"]) == (0.0, pytest.approx(summary["source_elevation"]))
    assert obj.viewpoint["azimuth"] == pytest.approx(da % (2 * math.pi))
    assert obj.viewpoint["elevation"] == pytest.approx(summary["source_elevation"] - dp)
    assert obj.viewpoint["distance"] == pytest.approx(vp0["distance"] + dr)
    # the set's distance makes the category cylinder as large as the source's box
    assert 2.0 < vp0["distance"] < 4.5  # the true distance is 3 (the cylinder is a bit larger than the car)


def test_merge_finds_the_true_relative_azimuths(world):
    report = world["run"].read_json("canonicalisation.json")
    assert report["aligned"] + report["rejected"] == 4 and report["aligned"] >= 3
    step = 2 * math.pi / world["cylinder"]["segments"]
    a = [r.objects[0].viewpoint["azimuth"] for r in world["sources"]]
    ref = int(report["reference_set"].split("_")[1])
    for s, shift in enumerate(report["shifts"]):
        if shift < 0:
            continue
        expected = ((a[ref] - a[s]) / step) % world["cylinder"]["segments"]
        off = min(abs(shift - expected), world["cylinder"]["segments"] - abs(shift - expected))
        assert off <= 2.0, (s, shift, expected)  # within 20° after only 40 steps (exact: test_pose_canonical)
    assert report["retrieval_views"] == 13  # the reference image and its generated views
    # the one shot: the reference (source 0) at its annotated azimuth, a* = −shift_0·step − rotation
    one = report["one_shot"]
    assert abs(math.remainder(one["rotation"] + report["shifts"][0] * step + a[0], 2 * math.pi)) <= 2 * step, one
    # the coarse rotation is the reference set's bookkeeping (its merge shift and the annotation), exactly
    assert one["coarse_from"] == "reference_set"
    # (to float32: the calibration angles are a float32 tensor)
    assert one["coarse_rotation"] == pytest.approx(math.remainder(-report["shifts"][0] * step - a[0], 2 * math.pi),
                                                   abs=1e-6)
    assert report["orientation"]["enabled"] is False  # off by default (docs/pose.md)


def test_run_folder_load_and_evaluate(world, tmp_path):
    run = world["run"]
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["kind"] == "pose.labelfree"
    assert (run.path / "loss.png").is_file()
    losses = [r["loss"] for r in run.read_log()]
    assert losses[-1] < losses[0] - 1.0
    model = pose.load(run.path)
    image = data3d.load_image(world["test"][0].image_path)[None]
    [result] = model.estimate_pose(image, ["car"])
    assert set(result["viewpoint"]) >= {"azimuth", "elevation", "theta", "distance"}
    metrics = pose.evaluate(run.path, world["test"], tmp_path / "eval")
    assert set(metrics) == {"pose", "oneshot_retrieval", "retrieval_pose_network"}
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["pose"]["clean"]["n"] == 16
    assert written["pose"]["clean"]["acc_pi6"] == pytest.approx(metrics["pose"]["clean"]["acc_pi6"])


def test_retrieval_baseline_encoder_learns_from_the_reference_views_only(world, tmp_path, monkeypatch):
    """The one-shot retrieval baseline's encoder is trained on the reference's own generated set alone
    (what one annotated image gives); its stored database is that encoder's features of those views;
    with pose.retrieval.encoder "pose" the baseline reads the pose network instead."""
    import sys

    from pose.model import load_retrieval
    from pose.training import _crops, calibration_views

    pose_train = sys.modules["pose.training"]  # the module of the function `pose.train`
    root, seen = world["root"], []
    original = pose_train.reference_encoder

    def spy(records, *args, **kwargs):
        seen.append([r.image_path for r in records])
        return original(records, *args, **kwargs)

    monkeypatch.setattr(pose_train, "reference_encoder", spy)
    config = json.loads(json.dumps(CONFIG))
    config["nemo"]["train"]["steps"] = 6
    config["pose"] = {"retrieval": {"steps": 5}}
    run = pose.train(root / "sets", root / "ref", tmp_path / "run", config)
    reference_set = pose_train.reference_set(world["sets"], world["sources"][0])
    assert seen == [[r.image_path for r in reference_set.records]]  # 13 views of one set, nothing else
    baseline, ablation = load_retrieval(run), load_retrieval(run, encoder="pose")
    assert baseline.net is not ablation.net
    views, _ = calibration_views(world["sets"], world["sources"][0])
    crops = _crops(views, baseline.config, "car")["image"]
    with torch.no_grad():
        again = torch.nn.functional.normalize(baseline.net(crops).flatten(1), dim=-1)
        pose_net = torch.nn.functional.normalize(ablation.net(crops).flatten(1), dim=-1)
    torch.testing.assert_close(again, baseline.database, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pose_net, ablation.database, rtol=1e-4, atol=1e-5)
    assert (baseline.database - ablation.database).abs().max() > 0.05  # two different encoders
    config["pose"] = {"retrieval": {"encoder": "pose"}}
    seen.clear()
    run = pose.train(root / "sets", root / "ref", tmp_path / "run_pose", config)
    assert seen == []
    metrics = pose.evaluate(run.path, world["test"][:4], tmp_path / "eval")
    assert set(metrics) == {"pose", "oneshot_retrieval"}
    with pytest.raises(ValueError, match="retrieval.encoder"):
        pose.train(root / "sets", root / "ref", tmp_path / "bad", {"pose": {"retrieval": {"encoder": "dino"}}})


@pytest.mark.slow
def test_longer_training_finds_most_test_poses(world, tmp_path):
    """Never trained with a pose label, the canonical model still finds most test poses."""
    root = world["root"]
    config = json.loads(json.dumps(CONFIG))
    config["nemo"]["train"]["steps"] = 150
    pose.train(root / "sets", root / "ref", tmp_path / "run", config)
    metrics = pose.evaluate(tmp_path / "run", world["test"], tmp_path / "eval")
    assert metrics["pose"]["clean"]["acc_pi6"] >= 0.6, metrics


def test_zero123_synthesizer_makes_a_set(tmp_path, world):
    model = build_tiny_zero123(tmp_path / "z123", "clip_camera_projection")
    image = (data3d.load_image(world["sources"][0].image_path).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    src = pose.SetSource(pose.sets.SourceView(image, name="plain.png"),
                         {"focal": 1.0, "viewport": SIZE * 2.2, "px": 31.5, "py": 31.5}, object_bbox(image))
    sets = pose.generate_sets([src], Zero123Synthesizer(str(model), steps=2, guidance=2.0),
                              [[0.0, 1.0, 0.0], [0.2, 2.0, 0.0]], tmp_path / "sets", category="car",
                              cylinder=world["cylinder"])
    assert len(sets) == 1 and len(sets[0].records) == 3
    summary = json.loads((tmp_path / "sets" / "sets.json").read_text())
    assert summary["synthesizer"]["layout"] == "clip_camera_projection"


def test_command_line_generate_train_eval(world, tmp_path):
    from aware3d import cli

    root = world["root"]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(CONFIG))  # JSON is YAML
    sets = tmp_path / "sets"
    assert cli.main(["pose", "generate", "--images", str(root / "src"), "--category", "car", "--synthesizer",
                     "degraded", "--sigma-deg", "5", "--out", str(sets), "--azimuths", "3", "--polar-deg", "0",
                     "--backgrounds", "sources",
                     "--segments", "24", "--no-progress"]) == 0
    summary = json.loads((sets / "sets.json").read_text())
    assert len(summary["sets"]) == 4 and summary["synthesizer"]["pose_sigma_deg"] == pytest.approx(5.0)
    assert cli.main(["pose", "train", "--sets", str(sets), "--reference", str(root / "ref"), "--out",
                     str(tmp_path / "run"), "--config", str(cfg), "--steps", "4", "--no-progress",
                     "--set", "pose.merge.flip_ratio=0.25"]) == 0
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["pose"]["merge"]["flip_ratio"] == 0.25 and resolved["nemo"]["train"]["steps"] == 4
    report = json.loads((tmp_path / "run" / "canonicalisation.json").read_text())
    assert len(report["flip_margins"]) == 4 and isinstance(report["flip_rejected"], list)
    page = (tmp_path / "run" / "report.html").read_text()
    assert all(f"<td>{s['id']}</td>" in page for s in summary["sets"]) and page.count("<tr><td>set_") == 4
    assert f"{report['aligned']} sets aligned" in page and "loss.png" in page
    for source in {s["source"].split("#")[0] for s in summary["sets"]}:  # thumbnails resolve from the run
        assert os.path.relpath(source, tmp_path / "run") in page
    # this world's test shows the sources' car: refused by default, allowed when asked
    assert cli.main(["pose", "eval", "--run", str(tmp_path / "run"), "--data", str(root / "test"), "--out",
                     str(tmp_path / "eval"), "--no-progress"]) == 2
    assert cli.main(["pose", "eval", "--run", str(tmp_path / "run"), "--data", str(root / "test"), "--out",
                     str(tmp_path / "eval"), "--no-progress", "--allow-seen-instances"]) == 0
    facts = json.loads((tmp_path / "eval" / "instances.json").read_text())
    assert facts["sources_in_test"] == ["procedural:car/0001"] and facts["reference_in_test"] is True
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"pose", "oneshot_retrieval", "retrieval_pose_network"}
    assert metrics["pose"]["clean"]["n"] == 16
    assert cli.main(["pose", "generate", "--images", str(tmp_path / "nowhere"), "--category", "car",
                     "--out", str(tmp_path / "x")]) == 2  # a one-line error, not a traceback


def test_a_killed_run_resumes_to_the_uninterrupted_result(world, tmp_path):
    """Stopped mid-epoch, after the artifact filter and inside the refinement, the resumed run ends as
    one run without a stop (network, canonical bank, retrieval database, merge report) with no
    duplicate log lines."""
    root = world["root"]
    config = json.loads(json.dumps(CONFIG))
    config["nemo"]["train"].update(steps=12, checkpoint_every=4)  # the filter runs at step 6
    config["pose"] = {"refine": {"steps": None}}  # 12 refinement steps too
    whole = pose.train(root / "sets", root / "ref", tmp_path / "whole", config)
    parts = tmp_path / "parts"
    pose.train(root / "sets", root / "ref", parts, config, stop_after=3)
    assert json.loads((parts / "manifest.json").read_text())["status"] == "stopped"
    pose.train(root / "sets", root / "ref", parts, config, stop_after=4)
    pose.train(root / "sets", root / "ref", parts, config, stop_after=9)  # 5 label-free + 4 refine steps
    assert json.loads((parts / "manifest.json").read_text())["refine"] == "stopped"
    resumed = pose.train(root / "sets", root / "ref", parts, config)
    a, meta_a = whole.load_checkpoint()
    b, meta_b = resumed.load_checkpoint()
    assert sorted(a) == sorted(b) and meta_a["pose"]["refine_steps"] == 12
    for key in a:  # nemo's resume renormalises the bank on load: equal up to the last bits
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    assert meta_a["pose"] == meta_b["pose"] and meta_a["pose"]["filtered_views"] == meta_b["pose"]["filtered_views"]
    steps = [r["step"] for r in resumed.read_log()]
    assert steps == [r["step"] for r in whole.read_log()] == sorted(set(steps))
    assert pose.train(root / "sets", root / "ref", parts, config).path == parts  # complete: nothing to do
    config["nemo"]["optim"]["lr"] = 1e-3
    with pytest.raises(nemo.NemoError, match="another config"):
        pose.train(root / "sets", root / "ref", parts, config)


def test_the_reference_is_found_among_the_sources_whatever_its_path_form(world):
    """A reference record with a relative image path (as `aware3d pose train --reference runs/ref` reads
    it) still finds its generated set: the one shot and the retrieval database use all 13 views."""
    import dataclasses
    import os

    from pose.training import calibration_views

    ref = world["sources"][0]
    relative = dataclasses.replace(ref, image_path=Path(os.path.relpath(ref.image_path)))
    for record in (ref, relative):
        views, angles = calibration_views(world["sets"], record)
        assert len(views) == 13 and angles.shape == (13, 3)
        assert angles[0].tolist() == pytest.approx([ref.objects[0].viewpoint[k] for k in ("azimuth", "elevation",
                                                                                          "theta")])


def test_generate_writes_a_report_of_every_set(world, tmp_path):
    import re

    page = (world["root"] / "sets" / "report.html").read_text()
    images = re.findall(r"src='(images/[^']+)'", page)
    assert page.count("<div class='set'>") == 4 and len(images) == 4 * 12  # 13 views, a strip of 12
    assert all((world["root"] / "sets" / p).is_file() for p in images)
    assert page.count("<figcaption>source</figcaption>") == 4 and "Δa 51°" in page  # 360° / 7 per Δazimuth
    assert "4 sets, 52 views kept, 0 views dropped (no object), 0 sources skipped" in page
    # a source the synthesizer cannot draw (no CAD model) is skipped and named with its reason
    mesh = world["mesh"]
    good = pose.sources_from_records(world["sources"][:1], {world["sources"][0].objects[0].mesh_ref: mesh})
    bad = pose.sources_from_records(world["sources"][1:2], None)
    pose.generate_sets(good + bad, RenderSynthesizer(backend="raster"), [[0.0, 1.0, 0.0]], tmp_path / "sets",
                       category="car", cylinder=world["cylinder"])
    page = (tmp_path / "sets" / "report.html").read_text()
    assert "1 sets, 2 views kept, 0 views dropped (no object), 1 sources skipped" in page
    assert f"{world['sources'][1].image_path}#0" in page and "needs the object&#x27;s mesh" in page


def test_pasted_backgrounds_hold_no_second_object():
    from pose.sets import object_free_background

    image = np.full((64, 80, 3), 40, np.uint8)
    image[20:44, 10:50] = 200  # the object, box (10, 20, 49, 43): the widest free strip is right of it
    strip = object_free_background(image, (10, 20, 49, 43))
    assert strip.shape == (64, 30, 3) and (strip == 40).all()
    assert object_free_background(image, (2, 3, 75, 60)) is None  # no strip is 1/8 of the image thick


def test_pseudo_labels_put_every_view_in_the_canonical_frame(world):
    """With the shifts and rotation that the true source azimuths imply, every view's pseudo pose is its
    true pose to within half a shift step (views: the source's azimuth + Δazimuth); a rejected set gets none."""
    from pose.refine import pseudo_labelled

    sets, sources = world["sets"], world["sources"]
    layout = pose.CylinderLayout(36, 6, 2)
    a = [r.objects[0].viewpoint["azimuth"] for r in sources]
    e = [r.objects[0].viewpoint["elevation"] for r in sources]
    shifts = torch.tensor([round((a[0] - a_s) / layout.step) % 36 for a_s in a])
    shifts[3] = -1
    summary = json.loads((world["root"] / "sets" / "sets.json").read_text())
    calib = {"rotation": -a[0], "elevation_offset": summary["source_elevation"] - e[0]}
    kept = list(range(sum(len(s.records) for s in sets)))
    records = pseudo_labelled(sets, kept, shifts, calib, layout)
    assert len(records) == 3 * 13 and {r.extra["set"] for r in records} == {s.id for s in sets[:3]}
    for r in records:
        k = int(r.extra["set"].split("_")[1])
        dp, da, _ = relative_pose_of(r.objects[0])
        vp = r.objects[0].viewpoint
        assert r.objects[0].extra["frame"] == "canonical_pseudo"
        assert abs(math.remainder(vp["azimuth"] - (a[k] + da), 2 * math.pi)) <= layout.step / 2 + 1e-6
        assert vp["elevation"] == pytest.approx(e[0] - dp, abs=1e-6)  # the one offset of the reference
    # for the cuboid, each view's distance makes the cuboid at its pseudo pose span the view's box
    import geom3d

    cuboid = geom3d.cuboid_mesh((-0.5, -1.0, -0.3), (0.5, 1.0, 0.3), 80)
    boxed = pseudo_labelled(sets, kept, shifts, calib, layout, cuboid)
    distances = {round(r.objects[0].viewpoint["distance"], 4) for r in boxed}
    assert len(distances) > 10  # not the set's one cylinder distance any more
    for r in boxed:
        obj, vp = r.objects[0], r.objects[0].viewpoint
        cams = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], 0.0, vp["distance"], focal=vp["focal"],
                                           viewport=vp["viewport"], principal=(vp["px"], vp["py"]),
                                           image_size=r.image_size)
        uv = cams.project(cuboid.vertices)
        span = float((uv.amax(0) - uv.amin(0)).max()) + 1.0
        side = max(obj.bbox[2] - obj.bbox[0], obj.bbox[3] - obj.bbox[1]) + 1.0
        assert span == pytest.approx(side, rel=0.02)
