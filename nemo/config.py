"""nemo's training / inference config: defaults, YAML loading, `key=value` overrides, validation.

Unknown keys and values of the wrong type are errors naming the dotted key. The resolved config
(every key) is what a run folder stores in config.yaml.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping

import yaml

from .errors import NemoError

__all__ = ["DEFAULTS", "load_config", "resolve_config", "parse_override", "merge"]

DEFAULTS: dict = {
    "method": "nemo",  # "nemo" or "baseline" (the 2D classification baseline)
    "categories": None,  # default: every category of the training records
    "seed": 0,
    "threads": 1,  # torch threads of the training process (set deliberately: oversubscription is ~30x slower)
    "device": "cpu",
    "data": {
        "crop_size": [256, 256],  # multiples of 32
        "rescale": "fit",  # none | canonical | fit (data3d.ObjectDataset)
        "fit_fraction": 0.7,
        "center": "bbox",  # bbox | principal; bbox does not use the pose at test time
        "flip_prob": 0.0,
        "color_jitter": None,
        # None or {shift, scale}: crop from a randomly moved / resized box (data3d.transforms.jitter_box)
        "box_jitter": None,
        # None or {prob, object_px, blur, jpeg, noise}: make crops look like small photographed objects
        # (data3d.transforms.degrade)
        "degrade": None,
        "batch_size": 8,
        "workers": 0,
        "prefetch_rounds": True,  # on-the-fly data: render the next round in a background process
    },
    "meshes": {"type": "procedural", "count": 3},  # data3d.asset_source block; categories are filled in
    "cuboid": {"num_vertices": 1000, "coverage": 0.99},
    "backbone": {"model": None, "kind": "resnet", "depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512],
                 "embedding_size": 64, "layer_type": "basic", "decoder_width": 256, "feature_dim": 128,
                 "dinov2_hidden_size": 384, "dinov2_layers": 12, "dinov2_heads": 6},
    "bank": {"momentum": 0.9, "clutter_size": 2560, "weighting": "nemo"},
    "loss": {
        "temperature": 0.07,
        "neighbour_radius": 0.1875,  # fraction of the crop's larger side (NeMo: 48 px of 256) ...
        # ... or, with "object", of the object's box's larger side in the crop (NeMo's 48 px are
        # about 8% of the objects it trains on)
        "neighbour_scope": "crop",
        "clutter_weight": 0.005,  # clutter logits get + log(clutter_weight)
        "clutter_regulariser": 0.1,
        "clutter_per_image": 20,
        "object_mask": False,  # train with the records' object masks (datagen's): see nemo.contrastive
        # negatives of a vertex: its own category's other vertices and clutter (NeMo), or also every
        # other category's vertices (iNeMo's bank loss), which separates the categories' features
        "negatives": "own_class",
        # weight of the front/back term (nemo.contrastive.half_turn_loss; 0: off, NeMo's loss alone)
        "half_turn_weight": 0.0,
        "half_turn_temperature": 0.1,
    },
    "optim": {"lr": 1e-3, "weight_decay": 1e-4, "warmup_steps": 50, "schedule": "cosine", "min_lr_ratio": 0.01,
              "milestones": [0.6, 0.85], "gamma": 0.1},
    "train": {"steps": 2000, "log_every": 10, "checkpoint_every": 200, "keep_checkpoints": 2},
    # how feature matching picks the category (nemo.model.match_categories): "mean" (NOVUM) or
    # "peak" (iNeMo's released rule; the incremental runs' default)
    "classify": {"match_rule": "mean"},
    "pose": {"azimuths": 12, "elevations": 4, "thetas": 3, "steps": 30, "keep": 2, "lr": 0.05, "fill": 0.35},
    # steps: the baseline's training steps (None: train.steps), so that one config states an
    # equal-time comparison (a baseline step costs ~1/4 of a NeMo step)
    "baseline": {"num_bins": 40, "label_smoothing": 0.0, "steps": None},
}

_CHOICES = {
    "method": ("nemo", "baseline"),
    "data.rescale": ("none", "canonical", "fit"),
    "data.center": ("bbox", "principal"),
    "bank.weighting": ("nemo", "binary"),
    "backbone.kind": ("resnet", "dinov2"),
    "backbone.layer_type": ("basic", "bottleneck"),
    "optim.schedule": ("cosine", "steps", "constant"),
    "classify.match_rule": ("mean", "peak"),
    "loss.negatives": ("own_class", "all_classes"),
    "loss.neighbour_scope": ("crop", "object"),
}
# checked by their consumers
_OPEN = {"meshes", "data.color_jitter", "data.box_jitter", "data.degrade", "backbone.model", "categories"}


def merge(base: Mapping, update: Mapping) -> dict:
    """Deep merge of two nested mappings (update wins). The asset block `meshes` is replaced whole
    when the update names another source `type` (its keys differ per type) and merged otherwise, so
    `--set meshes.type=off --set meshes.root=DIR` builds an OFF source one key at a time."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if k == "meshes" and isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and \
                v.get("type", out[k].get("type")) != out[k].get("type"):
            out[k] = copy.deepcopy(dict(v))
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_yaml(text: str):
    """YAML as datagen reads it: YAML 1.2 booleans (so `type: off` is the OFF source), duplicate keys errors."""
    from datagen.config import read_yaml as read

    return read(text)


def parse_override(text: str) -> dict:
    """'a.b=value' -> {'a': {'b': value}} (value parsed as YAML): datagen's parser, nemo's error type."""
    from datagen.config import ConfigError
    from datagen.config import parse_override as parse

    try:
        return parse(text)
    except ConfigError as exc:
        raise NemoError(str(exc)) from None


def _check(config: Mapping, defaults: Mapping, prefix: str = "") -> None:
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            raise NemoError(f"config: unknown key {dotted!r}; allowed here: {sorted(defaults)}")
        default = defaults[key]
        if dotted in _OPEN:
            continue
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise NemoError(f"config: {dotted!r} must be a mapping, got {value!r}")
            _check(value, default, dotted + ".")
            continue
        if dotted in _CHOICES and value not in _CHOICES[dotted]:
            raise NemoError(f"config: {dotted!r} must be one of {list(_CHOICES[dotted])}, got {value!r}")
        if default is None or value is None and default is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and value < 0:
                raise NemoError(f"config: {dotted!r} must be ≥ 0, got {value}")
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and not math.isfinite(value):
                raise NemoError(f"config: {dotted!r} must be a finite number, got {value}")
            if ok and value < 0:
                raise NemoError(f"config: {dotted!r} must be ≥ 0, got {value}")
        elif isinstance(default, list):
            ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and math.isfinite(v) for v in value)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise NemoError(f"config: {dotted!r} must be like {default!r} ({type(default).__name__}), got {value!r}")


def resolve_config(config: Mapping | None = None, overrides: Iterable[Mapping] = ()) -> dict:
    """Defaults merged with `config` and `overrides` (in order), validated."""
    out = merge(DEFAULTS, config or {})
    for o in overrides:
        out = merge(out, o)
    _check(out, DEFAULTS)
    crop = out["data"]["crop_size"]
    if len(crop) != 2 or any(int(c) != c or c <= 0 or c % 32 for c in crop):
        raise NemoError(f"config: 'data.crop_size' must be two positive multiples of 32, got {crop}")
    steps = out["baseline"]["steps"]
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise NemoError(f"config: 'baseline.steps' must be null or an integer ≥ 1, got {steps!r}")
    if out["data"]["batch_size"] < 1 or out["train"]["steps"] < 1:
        raise NemoError("config: 'data.batch_size' and 'train.steps' must be ≥ 1")
    if not 0 < out["loss"]["clutter_weight"]:
        raise NemoError("config: 'loss.clutter_weight' must be positive (its log weights the clutter logits)")
    if out["loss"]["half_turn_temperature"] <= 0:
        raise NemoError("config: 'loss.half_turn_temperature' must be positive")
    if out["loss"]["temperature"] <= 0:
        raise NemoError("config: 'loss.temperature' must be positive")
    _check_ranges(out)
    return out


# counts that must be at least 1 (0 would divide by zero, never log or checkpoint, or fit nothing),
# with an upper bound where a larger value only makes a run that never ends (pose's hypothesis grid)
_AT_LEAST_ONE = {"threads": 1024, "train.log_every": None, "train.checkpoint_every": None,
                 "train.keep_checkpoints": None, "cuboid.num_vertices": 100000, "bank.clutter_size": 10**6,
                 "backbone.embedding_size": 4096, "backbone.decoder_width": 8192, "backbone.feature_dim": 8192,
                 "backbone.dinov2_hidden_size": 8192, "backbone.dinov2_layers": 128, "backbone.dinov2_heads": 128,
                 "pose.azimuths": 360, "pose.elevations": 90, "pose.thetas": 90, "pose.steps": 10000,
                 "pose.keep": None, "baseline.num_bins": 3600, "loss.clutter_per_image": None}
# (key, low, high, whether the low end is allowed)
_RANGES = [("data.fit_fraction", 0.0, 1.0, False), ("data.flip_prob", 0.0, 1.0, True),
           ("bank.momentum", 0.0, 1.0, True), ("cuboid.coverage", 0.0, 1.0, False),
           ("optim.min_lr_ratio", 0.0, 1.0, True), ("optim.gamma", 0.0, 1.0, False),
           ("baseline.label_smoothing", 0.0, 1.0, True), ("pose.fill", 0.0, 1.0, False),
           ("optim.lr", 0.0, math.inf, False), ("pose.lr", 0.0, math.inf, False),
           ("loss.neighbour_radius", 0.0, math.inf, False)]


def _get(config: Mapping, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _check_ranges(out: Mapping) -> None:
    """Values that type-check but cannot work: counts of 0, fractions outside [0, 1], an unusable device."""
    for key, high in _AT_LEAST_ONE.items():
        value = _get(out, key)
        if value < 1:
            raise NemoError(f"config: {key!r} must be ≥ 1, got {value}")
        if high is not None and value > high:
            raise NemoError(f"config: {key!r} must be ≤ {high}, got {value}")
    for key, low, high, closed in _RANGES:
        value = _get(out, key)
        if not (low <= value <= high) or (not closed and value == low):
            where = f"{'[' if closed else '('}{low:g}, {high:g}]" if math.isfinite(high) else f"> {low:g}"
            raise NemoError(f"config: {key!r} must be in {where}, got {value}")
    if out["data"]["workers"] > 256:
        raise NemoError(f"config: 'data.workers' must be ≤ 256, got {out['data']['workers']}")
    b = out["backbone"]
    if not b["depths"] or len(b["depths"]) != len(b["hidden_sizes"]) or any(
            int(v) != v or not 1 <= v <= 8192 for v in b["depths"] + b["hidden_sizes"]):
        raise NemoError(f"config: 'backbone.depths' and 'backbone.hidden_sizes' must be lists of the same length of "
                        f"integers ≥ 1, got {b['depths']} and {b['hidden_sizes']}")
    if b["kind"] == "dinov2" and b["dinov2_hidden_size"] % b["dinov2_heads"]:
        raise NemoError(f"config: 'backbone.dinov2_hidden_size' ({b['dinov2_hidden_size']}) must be a multiple of "
                        f"'backbone.dinov2_heads' ({b['dinov2_heads']})")
    blocks = out["meshes"] if isinstance(out["meshes"], list) else [out["meshes"]]
    if not blocks or not all(isinstance(m, Mapping) for m in blocks):
        raise NemoError(f"config: 'meshes' must be an asset source block (a mapping such as "
                        f"{{type: procedural, count: 3}}) or a list of them, got {out['meshes']!r}")
    p = out["pose"]
    hypotheses = p["azimuths"] * p["elevations"] * p["thetas"]
    if p["keep"] > hypotheses:
        raise NemoError(f"config: 'pose.keep' ({p['keep']}) must be ≤ the {hypotheses} initial hypotheses "
                        "(pose.azimuths × pose.elevations × pose.thetas)")
    if any(not 0 < m < 1 for m in out["optim"]["milestones"]):
        raise NemoError(f"config: 'optim.milestones' must be fractions of the run in (0, 1), "
                        f"got {out['optim']['milestones']}")
    cats = out["categories"]
    if cats is not None and (not isinstance(cats, list) or not cats or
                             not all(isinstance(c, str) and c for c in cats) or len(set(cats)) != len(cats)):
        raise NemoError(f"config: 'categories' must be null or a list of distinct category names, got {cats!r}")
    jitter = out["data"]["color_jitter"]
    if jitter is not None:
        allowed = {"brightness", "contrast", "saturation", "hue"}
        if not isinstance(jitter, Mapping) or set(jitter) - allowed or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in jitter.values()):
            raise NemoError(f"config: 'data.color_jitter' must be null or a mapping of {sorted(allowed)} to numbers "
                            f"≥ 0, got {jitter!r}")
    check_device(out["device"], available=False)  # whether this machine has it: where it is used
    meshes = out["meshes"]
    if isinstance(meshes, Mapping) and meshes.get("type") is False:  # YAML 1.1 `off` read by another tool
        raise NemoError("config: 'meshes.type' is false: write the OFF source as the string 'off'")


def check_device(name, available: bool = True, key: str = "config: 'device'") -> None:
    """A NemoError naming `key` unless `name` is a torch device ('cpu', 'cuda[:N]'), and with
    `available` one this machine has (a run checks it before it starts; a stored config need not)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise NemoError(f"{key} must be a torch device such as 'cpu' or 'cuda', got {name!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise NemoError(f"{key} must be 'cpu' or 'cuda[:N]', got {name!r}")
    if device.type == "cuda" and available:
        if not torch.cuda.is_available():
            raise NemoError(f"{key} is {name!r}, but this torch build has no usable CUDA device "
                            f"(torch {torch.__version__}); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NemoError(f"{key} is {name!r}, but there are {torch.cuda.device_count()} CUDA devices")


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> dict:
    """The resolved config from a YAML file (or the defaults) and 'key=value' override strings."""
    return load_yaml_config(path, overrides, resolve_config)


def load_yaml_config(path: str | os.PathLike | None, overrides: Iterable[str],
                     resolve: Callable[[dict, list[dict]], dict]) -> dict:
    """Read a YAML mapping (or {} without a path), parse the 'key=value' overrides and resolve them
    with `resolve(config, overrides)`; every problem is a NemoError naming the file."""
    data: dict = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                data = read_yaml(fh.read()) or {}
        except OSError as exc:
            raise NemoError(f"cannot read the config: {exc}", path) from exc
        except (yaml.YAMLError, ValueError) as exc:
            raise NemoError(f"not valid YAML: {exc}", path) from exc
        if not isinstance(data, dict):
            raise NemoError("the config must be a mapping", path)
    try:
        return resolve(data, [parse_override(o) for o in overrides])
    except NemoError as exc:
        if path is None:
            raise
        raise NemoError(str(exc), path) from None
