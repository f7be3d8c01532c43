"""The incremental run's config: its own keys plus a `nemo` block (a nemo training config).

    methods: [inemo, finetune, joint, replay2d]     # + inemo_cim: iNeMo with CIM-compressed exemplars
    train_data: [runs/bench/train]        # record folders (training objects; exemplars come from here)
    test_data: [runs/bench/test]          # record folders (evaluation; splits from the records)
    seen_cad_data: []                     # record folders of TRAINING instances at fresh views, reported as
                                          # the splits seen_cad, seen_cad_L2, ... (the old same-instance test)
    instance_disjoint: true               # test_data may show no instance (mesh_ref) that train_data shows
    classes: null                         # the class budget; default: every class of the training records
    tasks: {tasks: 4, first: null, order_seed: 0}      # or {preset: pascal3d_4x3}; see tasks.py
    steps: {first: 600, later: 300}       # training steps of the first task and of each later task
    negatives: all_slots                  # contrastive negatives: every latent slot (seen, future, unused;
                                          # the released iNeMo), all_classes (the seen ones), or own_class
    latent: {slots: null}                 # latent slots; null: max(classes, 20) as the released configs
    positional: {weight: 0.2, temperature: 1.0}
    distillation: {variant: released, weight: null, temperature: null}   # null: the variant's value
                                          # (released: weight 2, T 0.5, no T²; divided: weight 10, T 2, × T²)
    clutter_refill: true                  # refill the clutter bank from the exemplar memory after each task
    validation: {fraction: 0.1, by: instance, min_instances: 3, match_rules: [peak, mean]}
                                          # carved from train_data; the matching rule chosen on it per task
    exemplars: {budget: 240, strategy: pose_aware, azimuth_bins: 8,
                budget_bytes: null, downsample: 4}   # bytes: the budget in bytes (inemo_cim compresses)
    eval: {batch_size: 16}
    replay2d: {classifier: nearest_mean,  # iCaRL's nearest exemplar mean, or `linear` (its category head)
               distillation_weight: 10.0, distillation_temperature: 2.0}   # its LwF-style KL
    nemo: {...}                           # nemo.DEFAULTS keys (data, backbone, cuboid, meshes, optim, loss, pose, ...);
                                          # classify.match_rule defaults to "peak" (iNeMo's rule) here

Unknown keys and bad values are errors naming the dotted key.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Mapping

from ..config import load_yaml_config, merge, resolve_config
from ..errors import NemoError
from ..model import MATCH_RULES
from .exemplars import STRATEGIES
from .losses import DISTILLATION_VARIANTS

__all__ = ["INCREMENTAL_DEFAULTS", "METHODS", "resolve_incremental_config", "load_incremental_config"]

METHODS = ("inemo", "finetune", "joint", "replay2d", "inemo_cim")
NEGATIVES = ("all_slots", "all_classes", "own_class")

INCREMENTAL_DEFAULTS: dict = {
    "seed": 0,
    "threads": 1,
    "methods": ["inemo", "finetune", "joint", "replay2d"],
    "train_data": [],
    "test_data": [],
    "seen_cad_data": [],
    "instance_disjoint": True,
    "classes": None,
    "tasks": {"tasks": 2, "first": None, "order_seed": 0},
    "steps": {"first": 600, "later": 300},
    # contrastive negatives: every latent slot (the released iNeMo), the seen classes, or own class (NeMo)
    "negatives": "all_slots",
    "latent": {"slots": None},
    "positional": {"weight": 0.2, "temperature": 1.0},
    "distillation": {"variant": "released", "weight": None, "temperature": None},
    "clutter_refill": True,
    # the validation split carved from train_data (never the test data); the matching rule is chosen on it
    "validation": {"fraction": 0.1, "by": "instance", "min_instances": 3, "match_rules": ["peak", "mean"]},
    "exemplars": {"budget": 240, "strategy": "pose_aware", "azimuth_bins": 8, "budget_bytes": None,
                  "downsample": 4},
    "eval": {"batch_size": 16},
    # how replay2d classifies: by the nearest exemplar mean (iCaRL) or by its category head
    "replay2d": {"classifier": "nearest_mean", "distillation_weight": 10.0, "distillation_temperature": 2.0},
    # classification by iNeMo's own (released) matching rule, not NOVUM's mean (nemo.match_categories)
    "nemo": {"classify": {"match_rule": "peak"}},
}

_NUMBERS = {"positional.weight", "positional.temperature", "distillation.weight", "distillation.temperature",
            "replay2d.distillation_weight", "replay2d.distillation_temperature", "validation.fraction"}
_COUNTS = {"seed", "threads", "steps.first", "steps.later", "exemplars.budget", "exemplars.azimuth_bins",
           "exemplars.downsample", "eval.batch_size", "validation.min_instances"}


def _fail(key: str, message: str):
    raise NemoError(f"config: {key!r} {message}")


def resolve_incremental_config(config: Mapping | None = None, overrides: Iterable[Mapping] = ()) -> dict:
    """Defaults merged with `config` and `overrides`, validated; the `nemo` block resolved by
    `nemo.resolve_config` (its `categories`, `method` and `train.steps` are set per task)."""
    out = copy.deepcopy(INCREMENTAL_DEFAULTS)
    for part in (config or {}, *overrides):
        for key, value in part.items():
            if key not in INCREMENTAL_DEFAULTS:
                _fail(key, f"is not a key; allowed: {sorted(INCREMENTAL_DEFAULTS)}")
            default = INCREMENTAL_DEFAULTS[key]
            if isinstance(default, dict) and key != "tasks":
                if not isinstance(value, Mapping):
                    _fail(key, f"must be a mapping, got {value!r}")
                unknown = sorted(set(value) - set(default)) if key != "nemo" else []
                if unknown:
                    _fail(f"{key}.{unknown[0]}", f"is not a key; allowed: {sorted(default)}")
                out[key] = merge(out[key], value)
            elif key == "tasks":
                if not isinstance(value, Mapping):
                    _fail(key, f"must be a mapping, got {value!r}")
                out[key] = dict(value)  # a new split replaces the default one (preset or tasks)
            else:
                out[key] = copy.deepcopy(value)
    kd = out["distillation"]
    if kd["variant"] not in DISTILLATION_VARIANTS:
        _fail("distillation.variant", f"must be one of {list(DISTILLATION_VARIANTS)}, got {kd['variant']!r}")
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
    for dotted in ("positional.temperature", "distillation.temperature", "threads", "eval.batch_size",
                   "exemplars.downsample", "replay2d.distillation_temperature"):
        head, tail = dotted.split(".") if "." in dotted else (dotted, None)
        if (out[head][tail] if tail else out[head]) <= 0:
            _fail(dotted, "must be positive")
    methods = out["methods"]
    if not isinstance(methods, list) or not methods or any(m not in METHODS for m in methods):
        _fail("methods", f"must be a non-empty list of {list(METHODS)}, got {methods!r}")
    nbytes = out["exemplars"]["budget_bytes"]
    if nbytes is not None and (isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0):
        _fail("exemplars.budget_bytes", f"must be null or an integer ≥ 0, got {nbytes!r}")
    if "inemo_cim" in methods and nbytes is None:
        _fail("exemplars.budget_bytes", "is needed by the method 'inemo_cim' (compressed exemplars at equal bytes)")
    if out["negatives"] not in NEGATIVES:
        _fail("negatives", f"must be one of {list(NEGATIVES)}, got {out['negatives']!r}")
    slots = out["latent"]["slots"]
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        _fail("latent.slots", f"must be null or a positive integer, got {slots!r}")
    if not isinstance(out["clutter_refill"], bool):
        _fail("clutter_refill", f"must be true or false, got {out['clutter_refill']!r}")
    val = out["validation"]
    if not 0 <= val["fraction"] < 1:
        _fail("validation.fraction", f"must be in [0, 1), got {val['fraction']!r}")
    if val["by"] not in ("instance", "object"):
        _fail("validation.by", f"must be 'instance' or 'object', got {val['by']!r}")
    rules = val["match_rules"]
    if not isinstance(rules, list) or not rules or any(r not in MATCH_RULES for r in rules) \
            or len(set(rules)) != len(rules):
        _fail("validation.match_rules", f"must be a non-empty list of distinct rules of {list(MATCH_RULES)}, "
                                        f"got {rules!r}")
    if out["replay2d"]["classifier"] not in ("nearest_mean", "linear"):
        _fail("replay2d.classifier", f"must be 'nearest_mean' or 'linear', got {out['replay2d']['classifier']!r}")
    if out["exemplars"]["strategy"] not in STRATEGIES:
        _fail("exemplars.strategy", f"must be one of {list(STRATEGIES)}, got {out['exemplars']['strategy']!r}")
    if not isinstance(out["instance_disjoint"], bool):
        _fail("instance_disjoint", f"must be true or false, got {out['instance_disjoint']!r}")
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
        raise NemoError(f"in the 'nemo' block: {exc}") from None
    return out


def load_incremental_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> dict:
    """The resolved config from a YAML file (or the defaults) and 'key=value' override strings."""
    return load_yaml_config(path, overrides, resolve_incremental_config)
