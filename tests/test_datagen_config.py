"""datagen config: defaults, validation errors that name the key, overrides, the hash."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

from datagen.config import DEFAULT_CONFIG_PATH, ConfigError, default_config, load_config, parse_override
from datagen.writer import DatasetFolder


def test_defaults_load_and_every_key_is_commented():
    cfg = load_config()
    assert cfg["mode"] == "randomized" and cfg.image_size == (256, 256)
    assert cfg["edges"]["canny_low"] == 100 and cfg["edges"]["canny_high"] == 200
    assert cfg["controlnet"]["steps"] == 20 and cfg["controlnet"]["guidance"] == 9.0
    # every `key: value` line of the default file carries a comment, on it or on the line above
    lines = DEFAULT_CONFIG_PATH.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([a-z_]+):(.*)$", line)
        if not m:
            continue
        documented = "#" in m.group(3) or lines[i - 1].strip().startswith("#") or m.group(3).strip() == ""
        assert documented, f"default_config.yaml line {i + 1} ({line.strip()}) has no comment"


@pytest.mark.parametrize("override, key", [
    ({"sampler": {"polar_sd": 0}}, "sampler.polar_sd"),
    ({"sampler": {"polar_sd": -3}}, "sampler.polar_sd"),
    ({"sampler": {"elevation_sd": 2}}, "sampler.elevation_sd"),
    ({"bogus": 1}, "bogus"),
    ({"image_size": 3}, "image_size"),
    ({"image_size": [64, 64, 3]}, "image_size"),
    ({"samples_per_category": 0}, "samples_per_category"),
    ({"samples_per_category": 2.5}, "samples_per_category"),
    ({"mode": "diffusion"}, "mode"),
    ({"occlusion": ["none", "L5"]}, "occlusion[1]"),
    ({"occlusion": ["L1", "l1"]}, "occlusion[1]"),
    ({"assets": [{"type": "shapenet", "categories": ["car"]}]}, "assets[0].root"),
    ({"assets": [{"type": "blender", "root": "/x"}]}, "assets[0].type"),
    ({"assets": []}, "assets"),
    ({"sampler": {"strategy": "match_dataset"}}, "sampler.records"),
    ({"sampler": {"per_category": {"car": {"polar_mean": 300}}}}, "sampler.per_category.car.polar_mean"),
    ({"sampler": {"per_category": {"car": {"colour": 1}}}}, "sampler.per_category.car.colour"),
    ({"sampler": {"offsets": {"procedural:car/0000": {"roll": 3}}}}, "sampler.offsets.procedural:car/0000.roll"),
    ({"sampler": {"polar_range": [120, 10]}}, "sampler.polar_range"),
    ({"randomization": {"appearance": {"plaid": 1}}}, "randomization.appearance.plaid"),
    ({"randomization": {"appearance": {"original": 0, "solid": 0, "noise": 0, "stripes": 0}}},
     "randomization.appearance"),
    ({"randomization": {"background": {"image": 1.0}}}, "randomization.background_images"),
    ({"randomization": {"background_images": []}}, "randomization.background_images"),
    ({"randomization": {"background_images": ["a", 3]}}, "randomization.background_images[1]"),
    ({"render": {"save": ["mask", "albedo"]}}, "render.save[1]"),
    ({"edges": {"canny_low": 300}}, "edges.canny_low"),
    ({"writer": {"format": "parquet"}}, "writer.format"),
    ({"camera": {"fov": 0}}, "camera.fov"),
    ({"seed": -1}, "seed"),
    ({"workers": True}, "workers"),
])
def test_bad_keys_and_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(override)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_error_names_the_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("sampler:\n  polar_sd: 0\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: sampler\.polar_sd: must be > 0"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_merge_and_normalise():
    cfg = load_config({"image_size": [96, 128], "occlusion": ["none", "l3"],
                       "randomization": {"appearance": {"stripes": 0}},
                       "render": {"save": ["depth"]}})
    assert cfg.image_size == (96, 128)
    assert cfg["occlusion"] == ["none", "L3"]
    assert cfg["render"]["save"] == ["mask", "depth"]  # the mask is always written
    # weights merge key by key: the unlisted kinds keep their default weight
    assert cfg["randomization"]["appearance"] == {**default_config()["randomization"]["appearance"], "stripes": 0}
    assert cfg["assets"][0]["type"] == "procedural"


def test_parse_override_reads_yaml_values():
    assert parse_override("sampler.polar_sd=20") == {"sampler": {"polar_sd": 20}}
    assert parse_override("occlusion=[none, L1]") == {"occlusion": ["none", "L1"]}
    cfg = load_config(overrides=parse_override("camera.principal_jitter=0.1"))
    assert cfg["camera"]["principal_jitter"] == 0.1
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_hash_tracks_what_shapes_the_dataset():
    base = load_config()
    assert base.hash == load_config().hash
    assert len(base.hash) == 64
    assert load_config({"workers": 4}).hash == base.hash  # execution, not content
    for change in ({"seed": 1}, {"sampler": {"polar_mean": 60}}, {"image_size": 128},
                   {"randomization": {"lights": [1, 1]}}):
        assert load_config(change).hash != base.hash, change


def _sha(part: dict) -> str:
    return hashlib.sha256(json.dumps(part, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_keys_added_later_leave_the_hash_of_older_folders_alone(tmp_path):
    # A folder started before randomization.contact_shadow / shadow_darkness / ground existed was
    # hashed without them; off, they stay out of the hash, so it still resumes. On, they count.
    base = load_config()
    old = {k: v for k, v in base.data.items() if k != "workers"}
    old["randomization"] = {k: v for k, v in old["randomization"].items()
                            if k not in ("contact_shadow", "shadow_darkness", "ground")}
    assert base.hash == _sha(old)
    shadow = load_config({"randomization": {"contact_shadow": 0.5}})
    assert shadow.hash != base.hash
    assert load_config({"randomization": {"contact_shadow": 0.5, "shadow_darkness": [0.1, 0.2]}}).hash != shadow.hash
    assert load_config({"randomization": {"ground": 0.5}}).hash != base.hash
    # the version between wrote every key but `ground`: its folders resume too, and only those
    between = {k: v for k, v in base.data.items() if k != "workers"}
    between["randomization"] = {k: v for k, v in between["randomization"].items() if k != "ground"}
    assert base.accepted_hashes == (base.hash, _sha(between))
    writer = DatasetFolder(tmp_path / "run")
    writer.prepare(base, {})
    manifest = json.loads(writer.manifest_path.read_text())
    for accepted in (_sha(between), base.hash):
        manifest["config_hash"] = accepted
        writer.manifest_path.write_text(json.dumps(manifest))
        DatasetFolder(tmp_path / "run").prepare(base, {})
    manifest["config_hash"] = _sha({**between, "seed": 99})
    writer.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="different config"):
        DatasetFolder(tmp_path / "run").prepare(base, {})


def test_resolved_config_round_trips_through_yaml():
    cfg = load_config({"image_size": 64, "sampler": {"per_category": {"car": {"polar_mean": 60}}}})
    again = load_config(yaml.safe_load(cfg.to_yaml()))
    assert again.hash == cfg.hash


def test_controlnet_block_is_validated_by_the_generator():
    pytest.importorskip("datagen.controlnet", reason="datagen.controlnet (ControlNet stage) not available")
    load_config({"mode": "controlnet", "controlnet": {"eta": 0.5, "pipeline": "sdxl"}})
    with pytest.raises(ConfigError) as info:
        load_config({"mode": "controlnet", "controlnet": {"eta": 3.0}})
    assert info.value.key == "controlnet.eta"
    with pytest.raises(ConfigError) as info:
        load_config({"mode": "controlnet", "controlnet": {"weights": "x"}})
    assert info.value.key == "controlnet.weights"


def test_yaml_1_2_booleans_keep_the_off_source_a_string(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(f"assets:\n  - {{type: off, root: {tmp_path}, categories: [car]}}\nwriter: {{chunk_size: 4}}\n")
    cfg = load_config(path)
    assert cfg["assets"][0]["type"] == "off"


def test_per_category_sampler_blocks_are_checked_like_the_main_one():
    with pytest.raises(ConfigError, match=r"sampler\.per_category\.car\.distance"):
        load_config({"sampler": {"per_category": {"car": {"distance": 0.2}}}})
    with pytest.raises(ConfigError, match=r"sampler\.per_category\.car\.distance_range"):
        load_config({"sampler": {"per_category": {"car": {"distance_range": [0.5, 1.0]}}}})


def test_background_images_may_be_several_folders(tmp_path):
    """A list of folders: their images in the order given, each folder sorted; a folder without
    images is an error naming it."""
    import numpy as np
    from PIL import Image

    from datagen.randomize import list_images

    for folder, names in (("b", ["2.png", "1.jpg"]), ("a", ["3.png"])):
        (tmp_path / folder).mkdir()
        for n in names:
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / folder / n)
    cfg = load_config({"randomization": {"background_images": [str(tmp_path / "b"), str(tmp_path / "a")]}})
    files = list_images(cfg["randomization"]["background_images"])
    assert [f.split("/")[-2] + "/" + f.split("/")[-1] for f in files] == ["b/1.jpg", "b/2.png", "a/3.png"]
    assert list_images(str(tmp_path / "a")) == (str(tmp_path / "a" / "3.png"),)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: holds no images"):
        list_images([str(tmp_path / "a"), str(tmp_path / "empty")])
