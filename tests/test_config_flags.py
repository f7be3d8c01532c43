"""The config objects (methodkit.config) and the command-line flags generated from them.

Every flag that mirrors a config key is parsed with a value and must land in the resolved config
(or in Orbit4DOptions) under that key; every Orbit4DOptions field is reachable from the command
line; the config layers raise one error type; the schemas' defaults are the dicts run folders hold.
"""

from __future__ import annotations

import dataclasses

import pytest

import datagen
import methodkit
import nemo
from aware3d import cli
from aware3d.cli_inemo import incremental_config
from aware3d.cli_nemo import train_config
from aware3d.cli_orbit4d import options_from_args
from aware3d.cli_pose import _train_config
from methodkit import config as mk
from methodkit.cli import schema_flags
from nemo.incremental.config import IncrementalConfig, resolve_incremental_config
from orbit4d.pipeline import Orbit4DOptions
from pose.config import PoseConfig, resolve_pose_config

# each command: the argv before the flag, how its handler resolves the config from args, the
# schema and prefix its flags come from
COMMANDS = {
    "nemo train": (["nemo", "train", "--data", "d", "--out", "o"], train_config, nemo.NemoConfig, ""),
    "nemo incremental": (["nemo", "incremental", "--out", "o"], incremental_config, IncrementalConfig, ""),
    "pose train": (["pose", "train", "--sets", "s", "--reference", "r", "--out", "o"],
                   lambda args: resolve_pose_config(_train_config(args)), nemo.NemoConfig, "nemo."),
    "orbit4d run": (["orbit4d", "run", "--frames", "f", "--out", "o"], options_from_args, Orbit4DOptions, ""),
}


def _parser_of(argv: list[str]):
    """The subparser that parses `argv` (the command's action)."""
    parser = cli.build_parser(argv[0])
    for word in argv[:2]:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[word]
    return parser


def _flags():
    for name, (argv, _, schema, prefix) in COMMANDS.items():
        keys = {f"{prefix}{k.dotted}": k for k in mk.keys(schema)}
        for flag, dotted in schema_flags(_parser_of(argv)):
            yield pytest.param(name, flag, keys[dotted], dotted, id=f"{name} {flag}")


def _value(key: mk.Key):
    """A valid value other than the default, as command-line text and as the parsed value."""
    if key.base is bool:
        return None, not key.default
    if key.meta.get("choices"):
        value = next(c for c in key.meta["choices"] if c != key.default)
        return value, value
    if key.base is int:
        value = (key.default or 0) + 1
        return str(value), value
    if key.base is float:
        value = key.default / 2 if key.default else 1.0
        return repr(value), value
    value = "cuda:0" if key.dotted == "device" else "flag-test"
    return value, value


def _get(resolved, dotted: str):
    if dataclasses.is_dataclass(resolved):
        resolved = mk.to_dict(resolved)
    for part in dotted.split("."):
        resolved = resolved[part]
    return resolved


@pytest.mark.parametrize("command, flag, key, dotted", list(_flags()))
def test_every_flag_reaches_its_config_key(command, flag, key, dotted):
    argv, resolve, _, _ = COMMANDS[command]
    text, value = _value(key)
    args = cli.build_parser(argv[0]).parse_args([*argv, flag] + ([] if text is None else [text]))
    resolved = resolve(args)
    assert _get(resolved, dotted) == value
    assert value != key.default  # so the default alone cannot pass
    # and without the flag the key keeps its default
    assert _get(resolve(cli.build_parser(argv[0]).parse_args(argv)), dotted) == key.default


def test_the_flags_cover_the_mirrored_keys():
    flags = {name: {d for _, d in schema_flags(_parser_of(argv))} for name, (argv, *_) in COMMANDS.items()}
    assert flags["nemo train"] == {"seed", "threads", "device"}
    assert flags["pose train"] == {"nemo.seed", "nemo.threads", "nemo.device"}
    assert flags["nemo incremental"] == {"seed", "threads"}
    # every Orbit4DOptions field has a flag, except the two the CLI derives from other options
    fields = {f.name for f in dataclasses.fields(Orbit4DOptions)}
    assert fields - flags["orbit4d run"] == {"completion", "completion_depth_model"}
    # the four that had none before (issue 22): reachable now
    assert {"seed", "mask_margin", "voxel_pixels", "ransac_threshold_voxels"} <= flags["orbit4d run"]


def test_orbit4d_derived_options_and_flag_order():
    argv = COMMANDS["orbit4d run"][0]
    args = cli.build_parser("orbit4d").parse_args([*argv, "--novel-view-model", "m", "--depth-model", "dm"])
    options = options_from_args(args)
    assert (options.completion, options.novel_view_model, options.completion_depth_model) == ("novel_view", "m", "dm")
    # a flag wins over --set, which wins over the file
    args = cli.build_parser("nemo").parse_args(["nemo", "train", "--data", "d", "--out", "o", "--set", "seed=3",
                                                "--set", "train.steps=7", "--seed", "5"])
    config = train_config(args)
    assert (config["seed"], config["train"]["steps"]) == (5, 7)


@pytest.mark.parametrize("argv, message", [
    (["orbit4d", "run", "--frames", "f", "--out", "o", "--voxel-pixels", "0"], "--voxel-pixels"),
    (["orbit4d", "run", "--frames", "f", "--out", "o", "--mask-margin", "-1"], "must be >= 0"),
    (["orbit4d", "run", "--frames", "f", "--out", "o", "--seed", "-1"], "must be >= 0"),
    (["nemo", "train", "--data", "d", "--out", "o", "--threads", "0"], "must be >= 1"),
])
def test_bad_flag_values_are_one_line_errors(argv, message, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own error
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_one_config_error_type():
    assert datagen.ConfigError is methodkit.ConfigError
    errors = []
    for bad in (lambda: nemo.resolve_config({"loss": {"temprature": 1}}),
                lambda: resolve_incremental_config({"steps": {"frist": 1}}),
                lambda: resolve_pose_config({"pose": {"merge": {"margin": 0.1}}}),  # ValueError before issue 22
                lambda: datagen.load_config({"sampler": {"polar_sd": -1}}),
                lambda: Orbit4DOptions(voxel_pixels=0.0)):
        with pytest.raises(methodkit.ConfigError) as info:
            bad()
        errors.append(info.value)
    assert [type(e).__name__ for e in errors] == ["NemoConfigError"] * 3 + ["ConfigError", "Orbit4DOptionError"]
    # nemo's, pose's and iNeMo's are NemoErrors too, so `except NemoError` keeps catching them
    assert all(isinstance(e, nemo.NemoError) for e in errors[:3])
    assert "'pose.merge.margin'" in str(errors[2])


def test_pose_config_errors_are_nemo_config_errors():
    """pose raised ValueError where nemo and iNeMo raised their package error (a drift bug of issue 22)."""
    for bad in ({"steps": 3}, {"pose": {"refine": {"steps": -1}}}, {"pose": {"filter": {"enabled": 3}}},
                {"nemo": {"loss": {"negatives": "all_classes"}}}):
        with pytest.raises(nemo.NemoConfigError):
            resolve_pose_config(bad)


def test_schema_defaults_are_the_resolved_defaults():
    assert nemo.resolve_config() == nemo.DEFAULTS == mk.defaults(nemo.NemoConfig)
    typed = nemo.NemoConfig.from_mapping({"train": {"steps": 5}, "data": {"crop_size": [64, 64]}})
    assert (typed.train.steps, typed.data.crop_size, typed.loss.temperature) == (5, [64, 64], 0.07)
    assert typed.to_dict() == nemo.resolve_config({"train": {"steps": 5}, "data": {"crop_size": [64, 64]}})
    assert PoseConfig.from_mapping({"pose": {"merge": {"rounds": 3}}}).pose.merge.rounds == 3
    assert IncrementalConfig.from_mapping().to_dict() == resolve_incremental_config()
    assert Orbit4DOptions.from_mapping({"seed": 4}) == Orbit4DOptions(seed=4)
    with pytest.raises(methodkit.ConfigError, match="'sed' is not a key|sed: is not a key"):
        Orbit4DOptions.from_mapping({"sed": 4})
    # every leaf has a doc
    for schema in (nemo.NemoConfig, IncrementalConfig, PoseConfig, Orbit4DOptions):
        assert all(k.doc for k in mk.keys(schema)), [k.dotted for k in mk.keys(schema) if not k.doc]


def test_yaml_rules_and_overrides_live_in_methodkit(tmp_path):
    assert mk.read_yaml("type: off\nx: 1e3\ny: yes") == {"type": "off", "x": 1000.0, "y": "yes"}
    assert mk.parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}
    bad = tmp_path / "dup.yaml"
    bad.write_text("a: 1\na: 2\n")
    with pytest.raises(methodkit.ConfigError, match=r"dup\.yaml: not valid YAML: duplicate key"):
        mk.read_yaml_file(bad)
    with pytest.raises(nemo.NemoError, match="dup.yaml"):  # nemo's loader names the file too
        nemo.load_config(bad)


def test_datagen_schema_is_the_documented_defaults():
    """default_config.yaml (what --print-defaults prints) repeats the schema's defaults exactly."""
    import json

    from datagen.config import DEFAULT_CONFIG_PATH, DatagenSchema

    documented = mk.read_yaml(DEFAULT_CONFIG_PATH.read_text())
    assert json.dumps(documented) == json.dumps(mk.defaults(DatagenSchema))  # values and their types
    assert datagen.default_config() == documented
    assert all(k.doc and callable(k.meta["check"]) for k in mk.keys(DatagenSchema))


@dataclasses.dataclass
class TrainSection:
    steps: int = mk.setting(2000, "training steps (≥ 1)")
    log_every: int = mk.setting(10, "steps between log lines", ge=1)


@dataclasses.dataclass
class MyConfig(mk.ConfigObject):
    seed: int = mk.setting(0, "the run's seed", flag=True)
    train: TrainSection = mk.section(TrainSection, "steps, logging, checkpoints")


def test_a_new_method_declares_its_config_as_in_the_design(tmp_path):
    """The example of docs/design.md ("Config objects"), with the generic resolver."""
    import argparse

    from methodkit.cli import add_schema_flags, schema_values

    path = tmp_path / "my.yaml"
    path.write_text("train:\n  steps: 5\n")
    parser = argparse.ArgumentParser()
    add_schema_flags(parser, MyConfig)
    args = parser.parse_args(["--seed", "3"])
    config = MyConfig.load(path, ["train.log_every=2", schema_values(args)])
    assert config.to_dict() == {"seed": 3, "train": {"steps": 5, "log_every": 2}}
    with pytest.raises(methodkit.ConfigError, match=r"my\.yaml: train\.log_every: must be ≥ 1, got 0"):
        MyConfig.load(path, ["train.log_every=0"])
    with pytest.raises(methodkit.ConfigError, match=r"my\.yaml: train\.stpes: is not a key"):
        MyConfig.load(path, ["train.stpes=1"])


def test_code_reads_the_typed_views_of_resolved_configs(tmp_path):
    """`Cls.of` types a resolved mapping (and passes an object through); a block declared with
    `typed=` (pose's and iNeMo's `nemo`) is a NemoConfig; `to_dict` gives back the stored mapping;
    datagen's config answers its schema's keys by attribute; the config objects are what the
    consumers read (a typed config in, the same result as its mapping)."""
    resolved = nemo.resolve_config({"data": {"crop_size": [64, 96]}, "loss": {"temperature": 0.2}})
    cfg = nemo.NemoConfig.of(resolved)
    assert (cfg.data.crop_size, cfg.loss.temperature, cfg.optim.schedule) == ([64, 96], 0.2, "cosine")
    assert nemo.NemoConfig.of(cfg) is cfg and cfg.to_dict() == resolved
    pose_cfg = PoseConfig.of(resolve_pose_config({"nemo": {"train": {"steps": 7}}}))
    assert isinstance(pose_cfg.nemo, nemo.NemoConfig) and pose_cfg.nemo.train.steps == 7
    assert pose_cfg.to_dict() == resolve_pose_config({"nemo": {"train": {"steps": 7}}})
    inc = IncrementalConfig.of(resolve_incremental_config({"steps": {"first": 4}}))
    assert isinstance(inc.nemo, nemo.NemoConfig) and inc.nemo.classify.match_rule == "peak" and inc.steps.first == 4
    data = datagen.load_config({"camera": {"fov": 30.0}, "seed": 5})
    assert (data.camera.fov, data.seed, data.image_size, data["camera"]["fov"]) == (30.0, 5, (256, 256), 30.0)
    with pytest.raises(AttributeError, match="no_such_key"):
        _ = data.no_such_key
    from nemo.data import object_dataset

    a, b = (object_dataset([], c, ["car"], train=False) for c in (resolved, cfg))
    assert (a.crop_size, a.centre, a.fit_fraction) == (b.crop_size, b.centre, b.fit_fraction) == ((64, 96), "bbox", 0.7)


def test_inemo_resume_checks_read_the_typed_config():
    from pathlib import Path

    from nemo.incremental.loop import _check_classifier, _check_rules

    config = IncrementalConfig.of(resolve_incremental_config())
    with pytest.raises(nemo.NemoError, match=r"not chosen on validation among \['peak', 'mean'\]"):
        _check_classifier({"classifier": "mean", "validation": {"match_rules": ["mean"]}}, "inemo", config, Path("t"))
    with pytest.raises(nemo.NemoError, match="'negatives': 'all_slots'"):
        _check_rules({"rules": {}}, "inemo", config, Path("t"))
