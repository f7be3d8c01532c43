"""The incremental run's config: its own keys plus a `nemo` block (a nemo training config).

`IncrementalConfig` below declares every key (default, doc, choices, range); `INCREMENTAL_DEFAULTS`
is its plain nested dict and `resolve_incremental_config` returns the resolved dict (the `nemo`
block resolved by `nemo.resolve_config`). In YAML (docs/inemo.md):

    methods: [inemo, finetune]            # of inemo, finetune, joint, replay2d, inemo_cim
    train_data: [runs/bench/train]        # record folders
    tasks: {tasks: 4, first: null, order_seed: 0}      # or {preset: pascal3d_4x3}; see tasks.py
    steps: {first: 600, later: 300}
    nemo: {data: {batch_size: 8}}         # nemo.DEFAULTS keys; classify.match_rule defaults to "peak" here

Unknown keys and bad values are `NemoConfigError`s naming the dotted key.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from methodkit import config as mk
from methodkit.config import section, setting

from ..config import NemoConfig, NemoConfigError, load_yaml_config, merge, resolve_config
from ..errors import NemoError
from ..model import MATCH_RULES
from .exemplars import STRATEGIES
from .losses import DISTILLATION_VARIANTS

__all__ = ["INCREMENTAL_DEFAULTS", "IncrementalConfig", "METHODS", "resolve_incremental_config",
           "load_incremental_config"]

METHODS = ("inemo", "finetune", "joint", "replay2d", "inemo_cim")
NEGATIVES = ("all_slots", "all_classes", "own_class")


@dataclass
class StepsSection:
    first: int = setting(600, "training steps of the first task")
    later: int = setting(300, "training steps of each later task")


@dataclass
class LatentSection:
    slots: int | None = setting(None, "latent slots; null: max(classes, 20) as the released configs")


@dataclass
class PositionalSection:
    weight: float = setting(0.2, "weight of the positional regulariser")
    temperature: float = setting(1.0, "its temperature", ge=1e-4)


@dataclass
class DistillationSection:
    variant: str = setting("released", "released (weight 2, T 0.5, no T²) or divided (weight 10, T 2, × T²)",
                           choices=tuple(DISTILLATION_VARIANTS))
    weight: float | None = setting(None, "null: the variant's value")
    temperature: float | None = setting(None, "null: the variant's value", ge=1e-4)


@dataclass
class ValidationSection:
    fraction: float = setting(0.1, "fraction carved from train_data, in [0, 1)")
    by: str = setting("instance", "split by instance (mesh_ref) or by object", choices=("instance", "object"))
    min_instances: int = setting(3, "least instances of a class before one is held out")
    match_rules: list[str] = setting(["peak", "mean"], "the matching rules chosen between on it per task")


@dataclass
class ExemplarsSection:
    budget: int = setting(240, "exemplars kept over all classes")
    strategy: str = setting("pose_aware", "how exemplars are chosen", choices=tuple(STRATEGIES))
    azimuth_bins: int = setting(8, "pose_aware: azimuth bins")
    budget_bytes: int | None = setting(None, "the budget in bytes (needed by inemo_cim, which compresses)")
    downsample: int = setting(4, "inemo_cim: image downsampling", gt=0)


@dataclass
class EvalSection:
    batch_size: int = setting(16, "evaluation batch size", gt=0)


@dataclass
class Replay2dSection:
    classifier: str = setting("nearest_mean", "iCaRL's nearest exemplar mean, or linear (its category head)",
                              choices=("nearest_mean", "linear"))
    distillation_weight: float = setting(10.0, "its LwF-style KL weight")
    distillation_temperature: float = setting(2.0, "its LwF-style KL temperature", ge=1e-4)


@dataclass
class IncrementalConfig(mk.ConfigObject):
    """iNeMo's class-incremental run (docs/inemo.md)."""

    seed: int = setting(0, "the run's seed", flag=True)
    threads: int = setting(1, "torch threads", gt=0, flag=True)
    methods: list[str] = setting(["inemo", "finetune", "joint", "replay2d"], f"of {list(METHODS)}")
    train_data: list[str] = setting([], "record folders (training objects; exemplars come from here)")
    test_data: list[str] = setting([], "record folders (evaluation; splits from the records)")
    seen_cad_data: list[str] = setting([], "record folders of TRAINING instances at fresh views, reported as the "
                                       "splits seen_cad, seen_cad_L2, ...")
    instance_disjoint: bool = setting(True, "test_data may show no instance (mesh_ref) that train_data shows")
    classes: list[str] | None = setting(None, "the class budget; default: every class of the training records")
    tasks: dict = setting({"tasks": 2, "first": None, "order_seed": 0}, "the task split (replaced whole): "
                          "{tasks, first, order_seed} or {preset: pascal3d_4x3}; see tasks.py")
    steps: StepsSection = section(StepsSection, "training steps per task")
    negatives: str = setting("all_slots", "contrastive negatives: every latent slot (the released iNeMo), the "
                             "seen classes, or own class (NeMo)", choices=NEGATIVES)
    latent: LatentSection = section(LatentSection)
    positional: PositionalSection = section(PositionalSection)
    distillation: DistillationSection = section(DistillationSection)
    clutter_refill: bool = setting(True, "refill the clutter bank from the exemplar memory after each task")
    validation: ValidationSection = section(ValidationSection, "the validation split carved from train_data "
                                            "(never the test data); the matching rule is chosen on it")
    exemplars: ExemplarsSection = section(ExemplarsSection)
    eval: EvalSection = section(EvalSection)
    replay2d: Replay2dSection = section(Replay2dSection, "how replay2d classifies")
    nemo: dict = setting({"classify": {"match_rule": "peak"}}, "a nemo config block (nemo.DEFAULTS keys); "
                         "classification by iNeMo's own matching rule, not NOVUM's mean", typed=NemoConfig)

    @classmethod
    def resolve(cls, config=None, overrides=()) -> dict:
        return resolve_incremental_config(config, overrides)


INCREMENTAL_DEFAULTS: dict = mk.defaults(IncrementalConfig)
_KEYS = mk.keys(IncrementalConfig)
_NUMBERS = {k.dotted for k in _KEYS if k.base is float}
_COUNTS = {k.dotted for k in _KEYS if k.type is int}
_POSITIVE = [k.dotted for k in _KEYS if k.meta.get("gt") == 0]
_AS_GIVEN = {k.dotted for k in _KEYS if k.meta.get("choices") or k.base in (bool, dict)}


def _fail(key: str, message: str, kind: str = "value"):
    raise NemoConfigError(f"config: {key!r} {message.replace('allowed here:', 'allowed:')}")


def _check_part(key: str, message: str, kind: str = "value"):
    """`check_tree`'s findings in a given part: unknown keys, sections and blocks that are not mappings,
    choices and booleans are errors at once; numbers are checked after the merge (below)."""
    if kind != "value" or key in _AS_GIVEN:
        _fail(key, message)


def resolve_incremental_config(config: Mapping | None = None, overrides: Iterable[Mapping] = ()) -> dict:
    """Defaults merged with `config` and `overrides`, validated; the `nemo` block resolved by
    `nemo.resolve_config` (its `categories`, `method` and `train.steps` are set per task)."""
    out = copy.deepcopy(INCREMENTAL_DEFAULTS)
    for part in (config or {}, *overrides):
        mk.check_tree(IncrementalConfig, part, _check_part)
        out = merge(out, part)
        if "tasks" in part:
            out["tasks"] = dict(part["tasks"])  # a new split replaces the default one (preset or tasks)
    kd = out["distillation"]
    for key in ("weight", "temperature"):  # null: the variant's value
        if kd[key] is None:
            kd[key] = DISTILLATION_VARIANTS[kd["variant"]][key]
    for dotted in _NUMBERS | _COUNTS:
        head, _, tail = dotted.partition(".")
        value = out[head][tail] if tail else out[head]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            _fail(dotted, f"must be a finite number ≥ 0, got {value!r}")
        if dotted in _COUNTS and int(value) != value:
            _fail(dotted, f"must be an integer, got {value!r}")
    for dotted in _POSITIVE:
        head, tail = dotted.split(".") if "." in dotted else (dotted, None)
        if (out[head][tail] if tail else out[head]) <= 0:
            _fail(dotted, "must be positive")
    for key in _KEYS:  # the schema's ranges (ge, le, ...) on the merged numbers
        if key.dotted in _NUMBERS | _COUNTS and any(key.meta.get(b) is not None for b in ("ge", "gt", "le", "lt")):
            head, _, tail = key.dotted.partition(".")
            problem = mk.check_value(key, out[head][tail] if tail else out[head])
            if problem:
                _fail(key.dotted, problem)
    methods = out["methods"]
    if not isinstance(methods, list) or not methods or any(m not in METHODS for m in methods):
        _fail("methods", f"must be a non-empty list of {list(METHODS)}, got {methods!r}")
    if len(set(methods)) != len(methods):  # a method named twice would run twice into one folder
        _fail("methods", f"names a method twice: {methods!r}")
    nbytes = out["exemplars"]["budget_bytes"]
    if nbytes is not None and (isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0):
        _fail("exemplars.budget_bytes", f"must be null or an integer ≥ 0, got {nbytes!r}")
    if "inemo_cim" in methods and nbytes is None:
        _fail("exemplars.budget_bytes", "is needed by the method 'inemo_cim' (compressed exemplars at equal bytes)")
    slots = out["latent"]["slots"]
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        _fail("latent.slots", f"must be null or a positive integer, got {slots!r}")
    val = out["validation"]
    if not 0 <= val["fraction"] < 1:
        _fail("validation.fraction", f"must be in [0, 1), got {val['fraction']!r}")
    rules = val["match_rules"]
    if not isinstance(rules, list) or not rules or any(r not in MATCH_RULES for r in rules) \
            or len(set(rules)) != len(rules):
        _fail("validation.match_rules", f"must be a non-empty list of distinct rules of {list(MATCH_RULES)}, "
                                        f"got {rules!r}")
    for key in ("train_data", "test_data", "seen_cad_data"):
        value = out[key]
        if isinstance(value, (str, os.PathLike)):
            out[key] = value = [os.fspath(value)]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            _fail(key, f"must be a list of record folders, got {value!r}")
    if out["classes"] is not None and (not isinstance(out["classes"], list) or len(out["classes"]) < 1):
        _fail("classes", f"must be a list of class names, got {out['classes']!r}")
    nemo_block = dict(out["nemo"])
    # nemo's own loss knows the bank's classes only: all_slots is all_classes + the reserved slots
    bank_negatives = "all_classes" if out["negatives"] == "all_slots" else out["negatives"]
    given = (nemo_block.get("loss") or {}).get("negatives", bank_negatives)
    if given != bank_negatives:  # the run's `negatives` decides; a resolved block repeats it
        _fail("nemo.loss.negatives", f"is set by the run's 'negatives' ({out['negatives']!r}), got {given!r}")
    nemo_block["loss"] = dict(nemo_block.get("loss") or {}, negatives=bank_negatives)
    if nemo_block.get("categories") is not None or nemo_block.get("method", "nemo") != "nemo":
        _fail("nemo.categories", "and 'nemo.method' are set by the incremental run (use 'classes' and 'methods')")
    try:
        out["nemo"] = resolve_config(dict(nemo_block, seed=out["seed"], threads=out["threads"]))
    except NemoError as exc:
        raise NemoConfigError(f"in the 'nemo' block: {exc}") from None
    return out


def load_incremental_config(path: str | os.PathLike | None = None, overrides: Iterable[str | Mapping] = ()) -> dict:
    """The resolved config from a YAML file (or the defaults) and 'key=value' strings or mappings."""
    return load_yaml_config(path, overrides, resolve_incremental_config)
