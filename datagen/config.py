"""The datagen configuration: defaults, loading, validation and the config hash.

`load_config(path_or_mapping)` merges a user config over `default_config.yaml` (beside this file,
every key documented there) and validates the result: an unknown key or a bad value raises
`ConfigError` whose message starts with the dotted key ("sampler.polar_sd: must be > 0").
The resolved config is a plain nested dict (`DatagenConfig.data`); `DatagenConfig.hash` is the
SHA-256 of its canonical JSON without the keys that do not change the dataset (`workers`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from methodkit import config as _mk
from methodkit.config import ConfigError, YamlLoader, deep_merge, parse_override, read_yaml, yaml_error_text

__all__ = ["ConfigError", "DatagenConfig", "load_config", "default_config", "DEFAULT_CONFIG_PATH",
           "OCCLUSION_LEVELS", "UNHASHED_KEYS", "parse_override", "deep_merge", "read_yaml", "YamlLoader",
           "yaml_error_text"]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")

#: occlusion level name -> (integer level as in OccludedPASCAL3D+, hidden fraction range)
OCCLUSION_LEVELS: dict[str, tuple[int, tuple[float, float]]] = {
    "none": (0, (0.0, 0.0)),
    "L1": (1, (0.2, 0.4)),
    "L2": (2, (0.4, 0.6)),
    "L3": (3, (0.6, 0.8)),
}
#: top-level keys that do not change the dataset, left out of the hash
UNHASHED_KEYS = ("workers",)
ASSET_TYPES = ("procedural", "off", "shapenet", "objaverse", "folder")
SAVE_OUTPUTS = ("mask", "depth", "normal", "edges")


# ----------------------------------------------------------------------------------- value checks
def _number(key, v, *, lo=None, hi=None, lo_open=False, integer=False) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(key, f"must be a number, got {v!r}")
    if integer and not (isinstance(v, int) or float(v).is_integer()):
        raise ConfigError(key, f"must be an integer, got {v!r}")
    if not math.isfinite(v):
        raise ConfigError(key, f"must be finite, got {v!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ConfigError(key, f"must be {'>' if lo_open else '>='} {lo:g}, got {v!r}")
    if hi is not None and v > hi:
        raise ConfigError(key, f"must be <= {hi:g}, got {v!r}")
    return int(v) if integer else float(v)


def _num(**kw) -> Callable:
    return lambda key, v: _number(key, v, **kw)


def _positive(key, v):
    return _number(key, v, lo=0, lo_open=True)


def _bool(key, v):
    if not isinstance(v, bool):
        raise ConfigError(key, f"must be true or false, got {v!r}")
    return v


def _choice(*options) -> Callable:
    def check(key, v):
        if v not in options:
            raise ConfigError(key, f"must be one of {', '.join(map(str, options))}; got {v!r}")
        return v
    return check


def _path_or_none(key, v):
    if v is None:
        return None
    if not isinstance(v, (str, os.PathLike)) or not str(v):
        raise ConfigError(key, f"must be a path or null, got {v!r}")
    return str(v)


def _paths_or_none(key, v):
    """A folder, a list of folders, or null."""
    if isinstance(v, (list, tuple)):
        if not v:
            raise ConfigError(key, "must be a path, a non-empty list of paths, or null, got []")
        return [_path_or_none(f"{key}[{i}]", x) or _empty_path(f"{key}[{i}]") for i, x in enumerate(v)]
    return _path_or_none(key, v)


def _empty_path(key):
    raise ConfigError(key, "must be a path, got null")


def _str(key, v):
    if not isinstance(v, str) or not v:
        raise ConfigError(key, f"must be a non-empty string, got {v!r}")
    return v


def _str_or_none(key, v):
    return None if v is None else _str(key, v)


def _int_or_none(**kw) -> Callable:
    return lambda key, v: None if v is None else _number(key, v, integer=True, **kw)


def _controlnet_extra_keys() -> frozenset:
    """Keys of datagen.controlnet.ControlNetGenerator beyond the documented defaults (validated there)."""
    try:
        from .controlnet import CONTROLNET_KEYS
    except ImportError:
        return frozenset()
    return frozenset(CONTROLNET_KEYS)


def _range(*, lo=None, hi=None, integer=False, ordered=True) -> Callable:
    def check(key, v):
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ConfigError(key, f"must be a [low, high] pair, got {v!r}")
        a, b = (_number(f"{key}[{i}]", x, lo=lo, hi=hi, integer=integer) for i, x in enumerate(v))
        if ordered and a > b:
            raise ConfigError(key, f"low must be <= high, got {list(v)}")
        return [a, b]
    return check


def _image_size(key, v):
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ConfigError(key, f"must be an integer or [height, width], got {v!r}")
        return [_number(f"{key}[{i}]", x, lo=8, hi=8192, integer=True) for i, x in enumerate(v)]
    n = _number(key, v, lo=8, hi=8192, integer=True)
    return [n, n]


def _occlusion(key, v):
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise ConfigError(key, f"must be a non-empty list of levels ({', '.join(OCCLUSION_LEVELS)}), got {v!r}")
    out = []
    for i, level in enumerate(v):
        name = {"l1": "L1", "l2": "L2", "l3": "L3", "none": "none"}.get(str(level).lower())
        if name is None:
            raise ConfigError(f"{key}[{i}]", f"unknown occlusion level {level!r}; use {', '.join(OCCLUSION_LEVELS)}")
        if name in out:
            raise ConfigError(f"{key}[{i}]", f"level {name} is listed twice")
        out.append(name)
    return out


def _save(key, v):
    if not isinstance(v, (list, tuple)):
        raise ConfigError(key, f"must be a list of outputs ({', '.join(SAVE_OUTPUTS)}), got {v!r}")
    for i, x in enumerate(v):
        if x not in SAVE_OUTPUTS:
            raise ConfigError(f"{key}[{i}]", f"unknown output {x!r}; use {', '.join(SAVE_OUTPUTS)}")
    return sorted(set(v) | {"mask"}, key=SAVE_OUTPUTS.index)


def _weights(options: tuple[str, ...]) -> Callable:
    def check(key, v):
        if not isinstance(v, Mapping):
            raise ConfigError(key, f"must be a mapping of weights over {', '.join(options)}, got {v!r}")
        out = {}
        for name, w in v.items():
            if name not in options:
                raise ConfigError(f"{key}.{name}", f"unknown key; known: {', '.join(options)}")
            out[name] = _number(f"{key}.{name}", w, lo=0)
        return out
    return check


def _mapping(key, v):
    if not isinstance(v, Mapping):
        raise ConfigError(key, f"must be a mapping, got {v!r}")
    return copy.deepcopy(dict(v))


def _offsets(key, v):
    if not isinstance(v, Mapping):
        raise ConfigError(key, f"must be a mapping {{asset id: {{azimuth: deg, elevation: deg}}}}, got {v!r}")
    out = {}
    for asset, off in v.items():
        k = f"{key}.{asset}"
        if not isinstance(off, Mapping):
            raise ConfigError(k, f"must be a mapping with azimuth and/or elevation, got {off!r}")
        for name in off:
            if name not in ("azimuth", "elevation"):
                raise ConfigError(f"{k}.{name}", "unknown key; known: azimuth, elevation")
        out[str(asset)] = {n: _number(f"{k}.{n}", off.get(n, 0.0)) for n in ("azimuth", "elevation")}
    return out


# Every leaf key of the default config and its check. A mapping-valued leaf (offsets, weights,
# free blocks) is checked as a whole; every other mapping in the defaults is a section whose keys
# must all be known.
def _nullable(check: Callable) -> Callable:
    """null (take the value from the sampler preset) or a value `check` accepts."""
    return lambda key, v: None if v is None else check(key, v)


def _preset(key, v):
    if v == "auto":
        return v
    if isinstance(v, bool) or not isinstance(v, int) or v not in (1, 2, 3, 4, 5):
        raise ConfigError(key, f"must be auto or one of 3D-DST's presets 1-5, got {v!r}")
    return v


_SAMPLER_CHECKS: dict[str, Callable] = {
    "strategy": _choice("dst", "uniform_sphere", "match_dataset"),
    "preset": _preset,
    "azimuth": _nullable(_choice("full", "front")),
    "polar": _nullable(_choice("normal", "uniform")),
    "polar_mean": _nullable(_num(lo=0, hi=180)),
    "polar_sd": _nullable(_positive),
    "polar_range": _nullable(_range(lo=0, hi=360)),
    "elevation_range": _range(lo=-90, hi=90),
    "records": _path_or_none,
    "bandwidth": _num(lo=0),
    "distance": _positive,
    "distance_jitter": _bool,
    "distance_sd": _positive,
    "distance_range": _range(),
    "inplane_sd": _num(lo=0),
    "inplane_max": _num(lo=0, hi=180),
    "offsets": _offsets,
}

_CHECKS: dict[str, Callable] = {
    "seed": _num(lo=0, integer=True),
    "mode": _choice("randomized", "controlnet"),
    "image_size": _image_size,
    "samples_per_category": _num(lo=1, integer=True),
    "occlusion": _occlusion,
    "workers": _num(lo=1, hi=1024, integer=True),
    **{f"sampler.{k}": v for k, v in _SAMPLER_CHECKS.items()},
    "camera.fov": _num(lo=1, hi=170),
    "camera.principal_jitter": _num(lo=0, hi=0.5),
    "camera.truncation": _num(lo=0, hi=1),
    "camera.margin": _num(lo=0, hi=0.45),
    "render.shading": _choice("flat", "smooth"),
    "render.backend": _choice("auto", "gl", "raster"),
    "render.save": _save,
    "render.png_compression": _num(lo=0, hi=9, integer=True),
    "edges.method": _choice("canny", "geometry", "both"),
    "edges.canny_low": _num(lo=0, hi=1000),
    "edges.canny_high": _num(lo=0, hi=1000),
    "edges.depth_threshold": _positive,
    "edges.normal_threshold": _num(lo=0, lo_open=True, hi=180),
    "randomization.appearance": _weights(("original", "solid", "noise", "stripes")),
    "randomization.background": _weights(("noise", "gradient", "solid", "image", "transparent")),
    "randomization.background_images": _paths_or_none,
    "randomization.ambient": _range(lo=0, hi=2),
    "randomization.lights": _range(lo=0, hi=8, integer=True),
    "randomization.light_intensity": _range(lo=0, hi=4),
    "randomization.light_tint": _num(lo=0, hi=1),
    "occluders.shapes": _range(lo=1, hi=16, integer=True),
    "occluders.attempts": _num(lo=1, hi=10000, integer=True),
    "controlnet.model": _str_or_none,
    "controlnet.base_model": _str_or_none,
    "controlnet.pipeline": _choice("sd15", "sdxl", "sd3"),
    "controlnet.scheduler": _str_or_none,
    "controlnet.steps": _num(lo=1, integer=True),
    "controlnet.guidance": _num(lo=0),
    "controlnet.conditioning_scale": _num(lo=0),
    "controlnet.image_size": _int_or_none(lo=8, hi=8192),
    "controlnet.batch_size": _num(lo=1, integer=True),
    "controlnet.dtype": _str,
    "controlnet.cpu_offload": _bool,
    "controlnet.prompts": _mapping,  # validated by datagen.prompts.PromptBuilder
    "checks.enabled": _bool,
    "checks.options": _mapping,  # keyword arguments of datagen.filtering.cheap_checks
    "writer.chunk_size": _num(lo=1, hi=100000, integer=True),
    "writer.format": _choice("npz", "json"),
}


def _check_asset(key: str, v) -> dict:
    if not isinstance(v, Mapping):
        raise ConfigError(key, f"must be a mapping {{type, root, categories}}, got {v!r}")
    entry = copy.deepcopy(dict(v))
    if "type" not in entry:
        raise ConfigError(f"{key}.type", f"is missing; use one of {', '.join(ASSET_TYPES)}")
    _choice(*ASSET_TYPES)(f"{key}.type", entry["type"])
    entry.setdefault("root", None)
    entry["root"] = _path_or_none(f"{key}.root", entry["root"])
    if entry["type"] not in ("procedural", "objaverse") and entry["root"] is None:  # objaverse: ~/.objaverse
        raise ConfigError(f"{key}.root", f"is needed for a {entry['type']} source")
    cats = entry.setdefault("categories", [])
    if cats is None:
        cats = entry["categories"] = []
    if isinstance(cats, str):
        cats = entry["categories"] = [cats]
    if not isinstance(cats, list) or not all(isinstance(c, str) and c for c in cats):
        raise ConfigError(f"{key}.categories", f"must be a list of category names, got {cats!r}")
    return entry


def _check_assets(key: str, v) -> list[dict]:
    if not isinstance(v, (list, tuple)) or not v:
        raise ConfigError(key, "must be a non-empty list of asset sources {type, root, categories}")
    return [_check_asset(f"{key}[{i}]", e) for i, e in enumerate(v)]


def _check_per_category(key: str, v) -> dict:
    if not isinstance(v, Mapping):
        raise ConfigError(key, f"must be a mapping {{category: {{sampler keys}}}}, got {v!r}")
    out = {}
    for cat, block in v.items():
        k = f"{key}.{cat}"
        if not isinstance(block, Mapping):
            raise ConfigError(k, f"must be a mapping of sampler keys, got {block!r}")
        out[str(cat)] = {}
        for name, value in block.items():
            if name not in _SAMPLER_CHECKS:
                raise ConfigError(f"{k}.{name}", f"unknown sampler key; known: {', '.join(_SAMPLER_CHECKS)}")
            out[str(cat)][name] = _SAMPLER_CHECKS[name](f"{k}.{name}", value)
    return out


#: mapping leaves merged key by key (a user lists only the weights to change)
_MERGED_LEAVES = ("randomization.appearance", "randomization.background")
_CHECKS["assets"] = _check_assets
_CHECKS["sampler.per_category"] = _check_per_category


def _merge(base: dict, override: Mapping, prefix: str = "") -> dict:
    """`override` merged into a copy of `base`; unknown keys are errors naming the dotted key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if prefix == "controlnet." and isinstance(key, str) and key not in base and key in _controlnet_extra_keys():
            out[key] = copy.deepcopy(value)  # one of the generator's own keys: it validates them
            continue
        if not isinstance(key, str) or key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(dotted, f"unknown key (known here: {known})")
        if isinstance(base[key], dict) and dotted not in _CHECKS:
            if not isinstance(value, Mapping):
                raise ConfigError(dotted, f"must be a mapping, got {value!r}")
            out[key] = _merge(base[key], value, f"{dotted}.")
        elif dotted in _MERGED_LEAVES and isinstance(value, Mapping):
            out[key] = {**base[key], **copy.deepcopy(dict(value))}  # weights: unlisted kinds keep theirs
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validate(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if dotted in _CHECKS:
            out[key] = _CHECKS[dotted](dotted, value)
        elif prefix == "controlnet.":  # a generator key beyond the documented ones (see _merge)
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict):
            out[key] = _validate(value, f"{dotted}.")
        else:  # a default key without a check is a bug in this module
            raise ConfigError(dotted, "has no validator (internal error)")
    return out


def _cross_checks(c: dict) -> None:
    """Constraints between keys."""
    s = c["sampler"]
    if s["strategy"] == "match_dataset" and not s["records"]:
        raise ConfigError("sampler.records", "is needed by strategy match_dataset (a folder of data3d records)")
    lo, hi = s["distance_range"]
    if not lo <= 0 <= hi:
        raise ConfigError("sampler.distance_range", f"must hold 0 (offsets around `distance`), got {[lo, hi]}")
    if s["distance_jitter"] and s["distance"] + lo <= 0:
        raise ConfigError("sampler.distance_range", f"distance + low must stay > 0, got {s['distance'] + lo:g}")
    for cat, block in s["per_category"].items():
        merged = {**s, **block}
        where = f"sampler.per_category.{cat}"
        if merged["strategy"] == "match_dataset" and not merged["records"]:
            raise ConfigError(f"{where}.records", "is needed by strategy match_dataset")
        lo, hi = merged["distance_range"]
        if not lo <= 0 <= hi:
            raise ConfigError(f"{where}.distance_range", f"must hold 0 (offsets around `distance`), got {[lo, hi]}")
        if merged["distance_jitter"] and merged["distance"] + lo <= 0:
            raise ConfigError(f"{where}.distance", f"distance + distance_range low must stay > 0, "
                                                   f"got {merged['distance'] + lo:g}")
    if c["edges"]["canny_low"] > c["edges"]["canny_high"]:
        raise ConfigError("edges.canny_low", "must be <= edges.canny_high")
    r = c["randomization"]
    if not any(r["appearance"].values()):
        raise ConfigError("randomization.appearance", "needs at least one weight > 0")
    if not any(r["background"].values()):
        raise ConfigError("randomization.background", "needs at least one weight > 0")
    if r["background"].get("image", 0) > 0 and not r["background_images"]:
        raise ConfigError("randomization.background_images", "is needed when randomization.background.image > 0")
    if c["mode"] == "controlnet":
        _check_controlnet_block(c)


def _check_controlnet_block(c: dict) -> None:
    """Let G2's generator and prompt builder validate their blocks now (nothing is loaded yet), so a
    bad key fails at load time, naming it."""
    try:
        from .controlnet import ControlNetGenerator
        from .prompts import PromptBuilder
    except ImportError as exc:
        raise ConfigError("mode", f"controlnet needs datagen.controlnet and datagen.prompts ({exc})") from None
    for build, block, name in ((ControlNetGenerator, c["controlnet"], "controlnet"),
                               (PromptBuilder, c["controlnet"]["prompts"], "controlnet.prompts")):
        try:
            build(block)
        except ValueError as exc:
            text = str(exc)
            key, _, problem = text.partition(": ")
            if problem and key and " " not in key:  # their message names the key: make it a full dotted key
                if key.startswith(name):
                    raise ConfigError(key, problem) from None
                head = key.split(".")[0]
                if name.endswith(head):
                    raise ConfigError(f"{name[: len(name) - len(head)]}{key}", problem) from None
            raise ConfigError(name, text) from None


# ----------------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class DatagenConfig:
    """A validated, fully resolved datagen config (`data`: nested dict, JSON-serialisable)."""

    data: dict
    source: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def hashed_part(self) -> dict:
        return {k: v for k, v in self.data.items() if k not in UNHASHED_KEYS}

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of every key that shapes the dataset."""
        text = json.dumps(self.hashed_part(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.data["image_size"])

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.data, sort_keys=False, default_flow_style=None)


_DEFAULTS: dict | None = None


def default_config() -> dict:
    """The defaults as a nested dict (a fresh copy)."""
    global _DEFAULTS
    if _DEFAULTS is None:
        _DEFAULTS = read_yaml(DEFAULT_CONFIG_PATH.read_text())
    return copy.deepcopy(_DEFAULTS)


def load_config(config: str | os.PathLike | Mapping | None = None, *, overrides: Mapping | None = None,
                source: str | None = None, defaults: bool = True) -> DatagenConfig:
    """Read (a YAML file) or take (a mapping) a user config, merge it over the defaults, validate.

    overrides: a nested mapping applied after the file (e.g. from `--set key=value`).
    Raises ConfigError naming the key (and the file) for unknown keys and bad values.
    """
    if config is None:
        user: Mapping = {}
    elif isinstance(config, Mapping):
        user = config
    else:
        source = str(config)
        user = _mk.read_yaml_file(config)
    try:
        tree = _merge(default_config(), user) if defaults else copy.deepcopy(dict(user))
        if overrides:
            tree = _merge(tree, overrides)
        data = _validate(tree)
        _cross_checks(data)
    except ConfigError as exc:
        if exc.source is None and source is not None:
            raise ConfigError(exc.key, exc.problem, source) from None
        raise
    return DatagenConfig(data, source)
