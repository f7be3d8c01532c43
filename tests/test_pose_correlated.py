"""pose against a generator with correlated failures (issue 24): the correlated synthesizer's flips,
elevation bias and appearance drift (checked against exact renders at the moved cameras), the
instance bookkeeping of an evaluation, the flip-rate curve from the command line and an evaluation
on the real photographs of real_pose_dev (evaluation only)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import data3d
import nemo
import pose
from data3d.procedural import make
from datagen.novel_view import (
    CorrelatedFailureSynthesizer,
    RenderSynthesizer,
    SourceView,
    make_synthesizer,
    target_viewpoint,
)

SIZE = 32
VP = {"azimuth": 0.4, "elevation": 0.2, "theta": 0.0, "distance": 3.0, "focal": 1.0, "viewport": SIZE * 2.2,
      "px": (SIZE - 1) / 2, "py": (SIZE - 1) / 2}
CLEAN = {"pose_sigma": 0.0, "texture": 0.0, "shape": 0.0, "blur": 0.0, "appearance_drift": 0.0,
         "elevation_bias": 0.0, "appearance": "mesh", "backend": "raster"}


@pytest.fixture(scope="module")
def source():
    mesh = make("car", seed=2)
    image = RenderSynthesizer(backend="raster", appearance="mesh").render(mesh, [VP], (SIZE, SIZE))[0]
    return SourceView(image, mesh, VP, name="car")


def test_flips_are_per_set_or_per_view_at_the_rate():
    per_set = CorrelatedFailureSynthesizer(flip_rate=0.3, flip_mode="set")
    flips = np.array([per_set.failures(5, seed)["flipped"] for seed in range(400)])
    assert all(row.all() or not row.any() for row in flips)  # a whole set flips or none of it
    assert abs(flips[:, 0].mean() - 0.3) < 0.07
    per_view = CorrelatedFailureSynthesizer(flip_rate=0.3, flip_mode="view")
    views = np.concatenate([per_view.failures(50, seed)["flipped"] for seed in range(40)])
    assert abs(views.mean() - 0.3) < 0.04
    assert not CorrelatedFailureSynthesizer(flip_rate=0.0).failures(20, 1)["flipped"].any()
    assert CorrelatedFailureSynthesizer(flip_rate=1.0, flip_mode="view").failures(20, 1)["flipped"].all()
    drift = CorrelatedFailureSynthesizer(appearance_drift=0.05).failures(4000, 3)["colour_shift"]
    steps = np.diff(drift, axis=0)  # a random walk: independent steps of the given std
    assert abs(steps.std() - 0.05) < 0.003 and abs(np.corrcoef(steps[:-1, 0], steps[1:, 0])[0, 1]) < 0.05
    a, b = per_set.failures(6, 9), per_set.failures(6, 9)  # seeded
    assert np.array_equal(a["flipped"], b["flipped"]) and np.array_equal(a["colour_shift"], b["colour_shift"])
    for bad in ({"flip_rate": 1.5}, {"flip_mode": "both"}, {"appearance_drift": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            CorrelatedFailureSynthesizer(**bad)


def test_set_flips_over_a_collection_are_counted_exactly_nested_and_seeded():
    from pose.sets import set_seeds

    count = CorrelatedFailureSynthesizer.flip_count
    # round(p × sets), halves up: 2.4 -> 2, 4.8 -> 5, 7.2 -> 7, 1.5 -> 2, and 0.15 × 10 (1.4999…) -> 2
    assert [count(p, 24) for p in (0.0, 0.1, 0.2, 0.3, 1.0)] == [0, 2, 5, 7, 24]
    assert count(0.5, 3) == 2 and count(0.15, 10) == 2 and count(0.25, 2) == 1 and count(0.2, 0) == 0
    seeds = set_seeds(24, seed=0)
    assert seeds[:3] == [0, 1, 2] and set_seeds(2, seed=1) == [1000003, 1000004]

    def flipped(rate, seeds, mode="set"):
        synth = CorrelatedFailureSynthesizer(flip_rate=rate, flip_mode=mode)
        synth.plan_sets(seeds)
        return {s for s in seeds if synth.failures(3, s)["flipped"].all()}

    rates = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
    chosen = [flipped(p, seeds) for p in rates]
    assert [len(c) for c in chosen] == [count(p, 24) for p in rates]  # exact, where a draw per set is not
    assert all(lower <= higher for lower, higher in zip(chosen, chosen[1:]))  # nested: a superset at a higher rate
    assert chosen == [flipped(p, seeds) for p in rates]  # the same seeds, the same sets
    other = flipped(0.5, set_seeds(24, seed=7))  # other seeds choose other sets (24 choose 12 ways)
    assert len(other) == 12 and {s - 7 * 1000003 for s in other} != chosen[4]
    # a set flips whole; the colour drift of a planned set is the unplanned draw's (one stream per set)
    synth = CorrelatedFailureSynthesizer(flip_rate=0.3, appearance_drift=0.05)
    lone = synth.failures(5, seeds[3])
    synth.plan_sets(seeds)
    planned = synth.failures(5, seeds[3])
    assert planned["flipped"].all() or not planned["flipped"].any()
    assert np.array_equal(lone["colour_shift"], planned["colour_shift"])
    # view mode keeps its per-view draws; seeds the plan did not name keep the per-set draw
    by_view = CorrelatedFailureSynthesizer(flip_rate=0.3, flip_mode="view")
    before = by_view.failures(50, 5)["flipped"]
    by_view.plan_sets(seeds)
    assert np.array_equal(by_view.failures(50, 5)["flipped"], before)
    unplanned = CorrelatedFailureSynthesizer(flip_rate=0.3)
    unplanned.plan_sets(seeds)
    assert np.array_equal(unplanned.failures(2, 10**9)["flipped"],
                          CorrelatedFailureSynthesizer(flip_rate=0.3).failures(2, 10**9)["flipped"])
    assert CorrelatedFailureSynthesizer(flip_rate=0.3).describe()["flip_count"] == "exact per collection"
    with pytest.raises(ValueError, match="distinct seeds"):
        unplanned.plan_sets([1, 1])


def test_generate_sets_plans_the_flips_of_all_its_sets(source, tmp_path):
    """generate_sets tells the synthesizer every set's seed before the first set, and the sets it writes
    flip as planned: a flipped set's views are the exact renders from the opposite side."""
    from pose.sets import set_seeds

    calls = []

    class Recording(CorrelatedFailureSynthesizer):
        def plan_sets(self, seeds):
            calls.append(("plan", list(seeds)))
            super().plan_sets(seeds)

        def synthesize(self, src, relative_poses, seed=0):
            calls.append(("set", seed))
            return super().synthesize(src, relative_poses, seed)

    synth = Recording(**dict(CLEAN, flip_rate=0.5))
    cylinder = pose.cylinder_params([source.mesh], segments=12, rows=2, rings=1)
    intrinsics = {k: VP[k] for k in ("focal", "viewport", "px", "py")}
    sources = [pose.SetSource(source, intrinsics, (1.0, 1.0, SIZE - 2.0, SIZE - 2.0), "procedural:car/0002")
               for _ in range(4)]
    poses = np.array([[0.0, 1.0, 0.0]])
    sets = pose.generate_sets(sources, synth, poses, tmp_path / "sets", category="car", cylinder=cylinder,
                              seed=3, report=False)
    seeds = set_seeds(4, 3)
    assert calls == [("plan", seeds)] + [("set", s) for s in seeds]
    exact = RenderSynthesizer(backend="raster", appearance="mesh")
    straight = exact.render(source.mesh, [target_viewpoint(VP, poses[0])], (SIZE, SIZE))[0]
    opposite = exact.render(source.mesh, [target_viewpoint(VP, poses[0] + [0.0, math.pi, 0.0])], (SIZE, SIZE))[0]
    drawn = [np.asarray(Image.open(s.records[1].image_path).convert("RGB")) for s in sets]
    flips = [bool(synth.failures(1, s)["flipped"][0]) for s in seeds]
    assert sum(flips) == 2
    for image, flip in zip(drawn, flips):
        assert np.array_equal(image, opposite if flip else straight)
    assert json.loads((tmp_path / "sets" / "sets.json").read_text())["synthesizer"]["flip_count"] == \
        "exact per collection"


def test_a_flipped_biased_view_is_the_exact_render_from_the_opposite_side(source):
    exact = RenderSynthesizer(backend="raster", appearance="mesh")
    poses = np.array([[0.0, 0.5, 0.0], [-0.2, 1.5, 0.0]])
    flipped = CorrelatedFailureSynthesizer(**dict(CLEAN, flip_rate=1.0)).synthesize(source, poses, seed=0)
    bias = math.radians(10.0)
    biased = CorrelatedFailureSynthesizer(**dict(CLEAN, flip_rate=0.0, elevation_bias=bias)).synthesize(source, poses)
    for k, p in enumerate(poses):
        opposite = exact.render(source.mesh, [target_viewpoint(VP, p + [0.0, math.pi, 0.0])], (SIZE, SIZE))[0]
        assert np.array_equal(flipped[k], opposite)
        higher = exact.render(source.mesh, [target_viewpoint(VP, p - [bias, 0.0, 0.0])], (SIZE, SIZE))[0]
        assert np.array_equal(biased[k], higher)
        asked = exact.render(source.mesh, [target_viewpoint(VP, p)], (SIZE, SIZE))[0]
        assert not np.array_equal(flipped[k], asked) and not np.array_equal(biased[k], asked)


def test_appearance_drifts_along_the_set(source):
    synth = CorrelatedFailureSynthesizer(**dict(CLEAN, appearance_drift=0.08))
    poses = np.zeros((6, 3))  # the same camera six times: only the colours differ
    views = synth.synthesize(source, poses, seed=4)
    shift = synth.failures(6, 4)["colour_shift"]
    still = RenderSynthesizer(backend="raster", appearance="mesh").render(source.mesh, [VP], (SIZE, SIZE))[0]
    mask = np.any(still != 255, axis=-1)
    # the object's mean colour change follows the random walk's shift (shading scales it by < 1)
    change = np.array([(v[mask].astype(float) - still[mask]).mean(0) / 255 for v in views])
    assert np.corrcoef(change.ravel(), shift.ravel())[0, 1] > 0.9
    assert make_synthesizer("correlated", flip_rate=0.1).describe()["flip_rate"] == 0.1


def _fake_run(tmp_path, reference, sources):
    run = nemo.RunFolder(tmp_path / "run")
    run.update_manifest(kind="pose.labelfree", reference_instance=reference, source_instances=sources)
    return run


def _record(ref: str):
    category, ident = ref.split(":")[1].split("/")
    obj = data3d.ObjectAnnotation(category, (1.0, 1.0, 9.0, 9.0), data3d.Viewpoint(**VP), cad_source="procedural",
                                  cad_id=f"{category}/{ident}")
    return data3d.ImageRecord("/nowhere.png", (SIZE, SIZE), (obj,))


def test_an_evaluation_records_and_checks_its_instances(tmp_path):
    run = _fake_run(tmp_path, "procedural:car/0000", ["procedural:car/0000", "procedural:car/0001"])
    test = [_record("procedural:car/0005"), _record("procedural:car/0001")]
    facts = pose.instances_of(run.path, test)
    assert facts == {"test": ["procedural:car/0001", "procedural:car/0005"], "reference": "procedural:car/0000",
                     "sources": ["procedural:car/0000", "procedural:car/0001"], "reference_in_test": False,
                     "sources_in_test": ["procedural:car/0001"]}
    with pytest.raises(ValueError, match="instance-disjoint"):
        pose.evaluate(run.path, test, tmp_path / "eval", require_disjoint=True)
    old = nemo.RunFolder(tmp_path / "old")
    old.update_manifest(kind="pose.labelfree")
    with pytest.raises(ValueError, match="does not record"):
        pose.evaluate(old.path, test, tmp_path / "eval", require_disjoint=True)


def test_curve_markdown_by_hand():
    data = {"results": {"0.00": {"test": {"pose": {"clean": {"acc_pi6": 0.5}}}},
                        "0.20": {"test": {"pose": {"clean": {"acc_pi6": 0.25}}},
                                 "real": {"pose": {"stanford": {"acc_pi6": 0.125}}}}}}
    table = pose.curve.curve_markdown(data)
    assert "| test | pose | clean | 50.0 | 25.0 |" in table
    assert "| real | pose | stanford | – | 12.5 |" in table
    assert "flipped" not in table
    data["flips"] = {"0.00": {"flipped_sets": None, "annotated_set": None, "turned_sets": None},
                     "0.20": {"flipped_sets": ["set_00000", "set_00004"], "annotated_set": "set_00000",
                              "turned_sets": ["set_00000"], "frame_turned_back": True}}
    notes = pose.curve.curve_markdown(data).split("\n\n")[1]
    assert notes == ("- p = 0.00: sets flipped by the synthesizer: not known; turned by the orientation check: "
                     "not run\n"
                     "- p = 0.20: sets flipped by the synthesizer: 2 (set_00000, set_00004); the annotated image's set "
                     "set_00000 was flipped; turned by the orientation check: 1 (set_00000), the annotated image's "
                     "set among them: the frame was turned back\n")


@pytest.mark.slow
@pytest.mark.realdata
def test_flip_curve_from_the_command_line_with_real_photos(tmp_path, shared_data, capsys):
    """Two flip rates end to end at a tiny budget: sources and test are other procedural cars, the
    reference one of the sources; the real photographs are evaluated (never trained on)."""
    from aware3d.cli import main
    from datagen.config import load_config
    from datagen.pipeline import generate

    for name, seed, seeds in (("src", 1, [0, 1]), ("test", 2, [5])):
        cfg = load_config({"seed": seed, "image_size": 64, "samples_per_category": 4, "occlusion": ["none"],
                           "assets": [{"type": "procedural", "categories": ["car"], "seeds": seeds}],
                           "sampler": {"strategy": "uniform_sphere", "elevation_range": [0, 25], "inplane_sd": 0.0,
                                       "inplane_max": 0.0}})
        generate(cfg, tmp_path / name, progress=False)
    data3d.save_records(list(data3d.load_records(tmp_path / "src"))[:1], tmp_path / "ref", shard="000000")
    real = list(data3d.load_records(shared_data / "real_pose_dev"))
    subset = [next(r for r in real if r.extra.get("split") == s) for s in ("kitti_easy", "stanford")]
    data3d.save_records(subset, tmp_path / "real", shard="000000")
    (tmp_path / "assets.yaml").write_text("{type: procedural, seeds: [0, 1]}\n")
    config = {"nemo": {"threads": 1, "data": {"crop_size": [64, 64], "batch_size": 4}, "cuboid": {"num_vertices": 100},
                       "backbone": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 16, 16], "embedding_size": 8,
                                    "decoder_width": 16, "feature_dim": 16},
                       "meshes": {"type": "procedural", "seeds": [0, 1]}, "bank": {"clutter_size": 64},
                       "train": {"steps": 4, "log_every": 2},
                       "pose": {"azimuths": 4, "elevations": 1, "thetas": 1, "steps": 2, "keep": 1}},
              "pose": {"retrieval": {"steps": 2}}}
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "curve"
    args = ["pose", "curve", "--images", str(tmp_path / "src"), "--reference", str(tmp_path / "ref"),
            "--data", str(tmp_path / "test"), "--real-data", str(tmp_path / "real"), "--category", "car",
            "--assets", str(tmp_path / "assets.yaml"), "--config", str(tmp_path / "cfg.yaml"), "--out", str(out),
            "--rates", "0", "1", "--azimuths", "3", "--segments", "12", "--no-progress"]
    torch.set_num_threads(1)
    assert main(args) == 0
    curve = json.loads((out / "curve.json").read_text())
    assert list(curve["results"]) == ["0.00", "1.00"] and curve["synthesizer"]["synthesizer"] == "correlated"
    for p in ("0.00", "1.00"):
        assert set(curve["results"][p]["real"]["pose"]) == {"kitti_easy", "stanford"}
        facts = json.loads((out / f"p{p}" / "eval" / "instances.json").read_text())
        assert facts["test"] == ["procedural:car/0005"] and facts["reference"] in facts["sources"]
        assert not facts["sources_in_test"] and facts["reference_in_test"] is False
    flips = json.loads((out / "p1.00" / "sets" / "sets.json").read_text())["synthesizer"]
    assert flips["flip_rate"] == 1.0
    assert main(args) == 0  # resumes: everything is found finished
    before = sorted(str(f.relative_to(out)) for f in out.rglob("*"))
    other = [a if a != "3" else "5" for a in args]  # --azimuths 5: sets the rates' finished ones do not match
    assert main(other) == 2
    assert "generated with other settings (relative_poses differ" in capsys.readouterr().err
    assert sorted(str(f.relative_to(out)) for f in out.rglob("*")) == before
    assert json.loads((out / "generation.json").read_text())["relative_poses"][2][1] == pytest.approx(
        2 * math.pi * 3 / 4)
