"""The datagen configuration: the schema, loading, validation and the config hash.

`DatagenSchema` (nested `methodkit.config` dataclasses) declares every key: its default, a one-line
doc and its check (a converter to the value's normal form); `default_config.yaml` (beside this file,
printed by `--print-defaults`) holds the same defaults with long comments. `load_config(path_or_mapping)`
merges a user config over the defaults (`methodkit.config.merge_tree`) and validates the result
(`methodkit.config.check_tree`, then the checks between keys): an unknown key or a bad value raises
`ConfigError` (`methodkit.ConfigError`) whose message starts with the dotted key
("sampler.polar_sd: must be > 0").
The resolved config is a plain nested dict (`DatagenConfig.data`); `DatagenConfig.hash` is the
SHA-256 of its canonical JSON without the keys that do not change the dataset (`workers`) and
without the keys added later (`LATER_KEYS`) while they are off, so older folders still resume.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from methodkit import config as mk
from methodkit.config import ConfigError, YamlLoader, deep_merge, parse_override, read_yaml, yaml_error_text

__all__ = ["ConfigError", "DatagenConfig", "DatagenSchema", "load_config", "default_config", "DEFAULT_CONFIG_PATH",
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
#: keys added after the config's first release: (section, key) -> (the value that leaves the data as
#: it was before the key existed, keys that only matter with it). At that value they are left out of
#: the hash, so a folder started before they existed still resumes.
LATER_KEYS: dict[tuple[str, str], tuple[Any, tuple[str, ...]]] = {
    ("randomization", "contact_shadow"): (0.0, ("shadow_darkness",)),
    ("randomization", "ground"): (0.0, ()),
}
ASSET_TYPES = ("procedural", "off", "shapenet", "objaverse", "folder")
SAVE_OUTPUTS = ("mask", "depth", "normal", "edges")


# ----------------------------------------------------------------------------------- value checks
# Converters (`setting(check=...)`, run by methodkit's check_tree): each returns the value's normal
# form, which the dataset hash covers (a number as its declared type: 100 -> 100.0 for a float key).
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


def _controlnet_extra_keys() -> frozenset:
    """Keys of datagen.controlnet.ControlNetGenerator beyond the documented defaults (validated there)."""
    try:
        from .controlnet import CONTROLNET_KEYS
    except ImportError:
        return frozenset()
    return frozenset(CONTROLNET_KEYS)


def _range(*, lo=None, hi=None, integer=False) -> Callable:
    def check(key, v):
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ConfigError(key, f"must be a [low, high] pair, got {v!r}")
        a, b = (_number(f"{key}[{i}]", x, lo=lo, hi=hi, integer=integer) for i, x in enumerate(v))
        if a > b:
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


def _nullable(check: Callable) -> Callable:
    """null (take the value from the sampler preset) or a value `check` accepts."""
    return lambda key, v: None if v is None else check(key, v)


def _preset(key, v):
    if v == "auto":
        return v
    if isinstance(v, bool) or not isinstance(v, int) or v not in (1, 2, 3, 4, 5):
        raise ConfigError(key, f"must be auto or one of 3D-DST's presets 1-5, got {v!r}")
    return v


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
        if not isinstance(block, Mapping):
            raise ConfigError(f"{key}.{cat}", f"must be a mapping of sampler keys, got {block!r}")
        out[str(cat)] = mk.check_tree(SamplerKeys, block, _fail, f"{key}.{cat}.")
    return out


def _fail(key: str, problem: str, kind: str = "value"):
    """`methodkit.config.check_tree`'s and `merge_tree`'s findings as datagen's errors; a key of the
    ControlNet generator beyond the schema passes (the generator checks it: `_check_controlnet_block`)."""
    section, _, name = key.partition(".")
    if kind == "unknown" and section == "controlnet" and name in _controlnet_extra_keys():
        return
    if kind == "unknown":
        problem = f"unknown key (known here: {problem.split('allowed here: ')[1].strip('[]').replace(chr(39), '')})"
    raise ConfigError(key, problem)


# ----------------------------------------------------------------------------------- the schema
# Every leaf key, its default, a one-line doc and its check: a converter `check(dotted key, value)
# -> the value's normal form` that `methodkit.config.check_tree` runs (`default_config.yaml` is the
# same defaults with longer comments: a test holds them equal). A mapping-valued leaf (offsets,
# weights, free blocks) is checked as a whole; every section's keys must all be known.
def _leaf(default, doc: str, check: Callable, **kw):
    return mk.setting(default, doc, check=check, **kw)


@dataclass
class SamplerKeys:
    """The sampler's keys, which a `per_category` block may also set."""

    strategy: str = _leaf("dst", "dst (3D-DST's presets) | uniform_sphere | match_dataset",
                          _choice("dst", "uniform_sphere", "match_dataset"))
    preset: Any = _leaf("auto", "auto (each category's 3D-DST preset) or 1-5 for every category", _preset)
    azimuth: str | None = _leaf(None, "null: the preset's; full | front", _nullable(_choice("full", "front")))
    polar: str | None = _leaf(None, "null: the preset's; normal | uniform", _nullable(_choice("normal", "uniform")))
    polar_mean: float | None = _leaf(None, "null: the preset's; mean of the truncated normal of phi",
                                     _nullable(_num(lo=0, hi=180)))
    polar_sd: float | None = _leaf(None, "null: the preset's; its standard deviation (> 0)", _nullable(_positive))
    polar_range: list | None = _leaf(None, "null: the preset's; interval of phi (past 180 wraps over the pole)",
                                     _nullable(_range(lo=0, hi=360)))
    elevation_range: list = _leaf([-90, 90], "uniform_sphere: PASCAL3D+ elevations kept", _range(lo=-90, hi=90))
    records: str | None = _leaf(None, "match_dataset: folder (or shard file) of data3d records", _path_or_none)
    bandwidth: float = _leaf(5.0, "match_dataset: Gaussian jitter (sd) of each resampled angle", _num(lo=0))
    distance: float = _leaf(1.5, "camera distance in units of the object's longest bounding-box side", _positive)
    distance_jitter: bool = _leaf(True, "3D-DST's truncated-normal jitter around `distance`", _bool)
    distance_sd: float = _leaf(0.5, "its sd (> 0)", _positive)
    distance_range: list = _leaf([-0.5, 1.5], "its truncation, as offsets from `distance`", _range())
    inplane_sd: float = _leaf(0.0, "in-plane rotation: normal with this sd (0: none)", _num(lo=0))
    inplane_max: float = _leaf(180.0, "|theta| is truncated to this", _num(lo=0, hi=180))
    offsets: dict = _leaf({}, "per-asset canonical offsets {'<type>:<asset id>': {azimuth: deg, elevation: deg}}",
                          _offsets)


@dataclass
class SamplerSection(SamplerKeys):
    per_category: dict = _leaf({}, "per-category overrides of the keys above, e.g. {car: {preset: 5}}",
                               _check_per_category)


@dataclass
class CameraSection:
    fov: float = _leaf(49.13, "horizontal field of view (3D-DST's 35 mm lens on a 32 mm sensor)", _num(lo=1, hi=170))
    principal_jitter: float = _leaf(0.0, "principal point moves by up to this fraction of the image size",
                                    _num(lo=0, hi=0.5))
    truncation: float = _leaf(0.0, "fraction of samples that keep their drawn distance even when cut by the border",
                              _num(lo=0, hi=1))
    margin: float = _leaf(0.02, "border kept free, as a fraction of the shorter image side", _num(lo=0, hi=0.45))


@dataclass
class RenderSection:
    shading: str = _leaf("flat", "flat (face normals) | smooth (vertex normals)", _choice("flat", "smooth"))
    backend: str = _leaf("auto", "auto | gl | raster", _choice("auto", "gl", "raster"))
    save: list = _leaf(["mask"], "files written beside each image: mask (always), depth, normal, edges", _save)
    png_compression: int = _leaf(3, "PNG zlib level 0-9", _num(lo=0, hi=9, integer=True))


@dataclass
class EdgesSection:
    method: str = _leaf("canny", "canny | geometry (depth and normal discontinuities) | both",
                        _choice("canny", "geometry", "both"))
    canny_low: float = _leaf(100, "Canny low threshold", _num(lo=0, hi=1000))
    canny_high: float = _leaf(200, "Canny high threshold", _num(lo=0, hi=1000))
    depth_threshold: float = _leaf(0.05, "geometry: relative depth jump between neighbouring pixels", _positive)
    normal_threshold: float = _leaf(35.0, "geometry: angle between neighbouring normals (degrees)",
                                    _num(lo=0, lo_open=True, hi=180))


@dataclass
class RandomizationSection:
    appearance: dict = _leaf({"original": 1.0, "solid": 1.0, "noise": 1.0, "stripes": 0.5},
                             "relative weights of the object's look",
                             _weights(("original", "solid", "noise", "stripes")), merged=True)
    background: dict = _leaf({"noise": 1.0, "gradient": 1.0, "solid": 0.5, "image": 0.0, "transparent": 0.0},
                             "relative weights of the background kind",
                             _weights(("noise", "gradient", "solid", "image", "transparent")), merged=True)
    background_images: Any = _leaf(None, "folder (or list of folders) of background photographs", _paths_or_none)
    ambient: list = _leaf([0.25, 0.55], "ambient light intensity range", _range(lo=0, hi=2))
    lights: list = _leaf([1, 3], "number of directional lights range", _range(lo=0, hi=8, integer=True))
    light_intensity: list = _leaf([0.3, 0.8], "intensity range per light", _range(lo=0, hi=4))
    light_tint: float = _leaf(0.15, "how far a light's colour may drift from white", _num(lo=0, hi=1))
    contact_shadow: float = _leaf(0.0, "probability of a soft shadow of the object's footprint on the background",
                                  _num(lo=0, hi=1))
    shadow_darkness: list = _leaf([0.4, 0.8], "how much the shadow darkens the ground where it is full (range)",
                                  _range(lo=0, hi=1))
    ground: float = _leaf(0.0, "probability of a road under the object, drawn in the camera's perspective over "
                          "the background", _num(lo=0, hi=1))


@dataclass
class OccludersSection:
    shapes: list = _leaf([1, 3], "occluder shapes per image (range)", _range(lo=1, hi=16, integer=True))
    attempts: int = _leaf(30, "tries to hit the level's hidden fraction", _num(lo=1, hi=10000, integer=True))


@dataclass
class ControlnetSection:
    model: str | None = _leaf(None, "ControlNet id or folder; null: the pipeline's default", _nullable(_str))
    base_model: str | None = _leaf(None, "base model id or folder; null: the pipeline's default", _nullable(_str))
    pipeline: str = _leaf("sd15", "sd15 | sdxl | sd3", _choice("sd15", "sdxl", "sd3"))
    scheduler: str | None = _leaf(None, "scheduler name; null: ddim for sd15/sdxl, the model's own for sd3",
                                  _nullable(_str))
    steps: int = _leaf(20, "denoising steps", _num(lo=1, integer=True))
    guidance: float = _leaf(9.0, "classifier-free guidance scale", _num(lo=0))
    conditioning_scale: float = _leaf(1.0, "ControlNet conditioning scale", _num(lo=0))
    image_size: int | None = _leaf(None, "generation size of the longer side; null: the pipeline's",
                                   _nullable(_num(lo=8, hi=8192, integer=True)))
    batch_size: int = _leaf(4, "images per diffusion call", _num(lo=1, integer=True))
    dtype: str = _leaf("auto", "auto | fp16 | bf16 | fp32", _str)
    cpu_offload: bool = _leaf(False, "diffusers model CPU offload (CUDA only)", _bool)
    prompts: dict = _leaf({}, "the datagen.prompts.PromptBuilder block (validated there)", _mapping)


@dataclass
class ChecksSection:
    enabled: bool = _leaf(True, "run the cheap per-image checks (controlnet mode only)", _bool)
    options: dict = _leaf({}, "keyword arguments of datagen.filtering.cheap_checks", _mapping)


@dataclass
class WriterSection:
    chunk_size: int = _leaf(64, "samples per record shard; the unit of resume and sharding",
                            _num(lo=1, hi=100000, integer=True))
    format: str = _leaf("npz", "npz | json", _choice("npz", "json"))


@dataclass
class DatagenSchema:
    """Every datagen key (docs/datagen.md; default_config.yaml has the long comments)."""

    seed: int = _leaf(0, "master seed; every draw derives from (seed, sample id)", _num(lo=0, integer=True))
    mode: str = _leaf("randomized", "randomized (domain-randomised renders) | controlnet",
                      _choice("randomized", "controlnet"))
    image_size: Any = _leaf(256, "output image size: one integer (square) or [height, width]", _image_size)
    samples_per_category: int = _leaf(100, "viewpoints per category (≤ 10^6: the plan lists every one before the "
                                      "first is drawn)", _num(lo=1, hi=10**6, integer=True))
    occlusion: list = _leaf(["none"], "levels written for every viewpoint: none, L1, L2, L3", _occlusion)
    workers: int = _leaf(1, "worker processes on this machine (not hashed)", _num(lo=1, hi=1024, integer=True))
    assets: list = _leaf([{"type": "procedural", "root": None, "categories": ["car", "bus", "train"], "count": 10}],
                         "a list of data3d asset sources {type, root, categories, ...}", _check_assets)
    sampler: SamplerSection = mk.section(SamplerSection, "how viewpoints are drawn")
    camera: CameraSection = mk.section(CameraSection, "the camera model")
    render: RenderSection = mk.section(RenderSection, "the render stage")
    edges: EdgesSection = mk.section(EdgesSection, "edge maps (the ControlNet condition)")
    randomization: RandomizationSection = mk.section(RandomizationSection, "domain randomisation")
    occluders: OccludersSection = mk.section(OccludersSection, "occluders for the L1-L3 levels")
    controlnet: ControlnetSection = mk.section(ControlnetSection, "ControlNet generation (mode: controlnet)")
    checks: ChecksSection = mk.section(ChecksSection, "cheap per-image checks")
    writer: WriterSection = mk.section(WriterSection, "how results are stored")


#: sampler keys read by one strategy only, with the value that means "not set"
_STRATEGY_KEYS = {"azimuth": ("dst", None), "polar": ("dst", None), "polar_mean": ("dst", None),
                  "polar_sd": ("dst", None), "polar_range": ("dst", None),
                  "elevation_range": ("uniform_sphere", [-90, 90]), "records": ("match_dataset", None)}


def _check_strategy_keys(s: dict) -> None:
    """A sampler key of another strategy's (sampler.polar_mean with strategy uniform_sphere, ...) would be
    ignored without a word: an error, in the global block unless a per_category block's strategy reads it,
    and in a per_category block when the strategy it ends up with does not."""
    blocks = s["per_category"].values()
    for key, (strategy, unset) in _STRATEGY_KEYS.items():
        used = s["strategy"] == strategy or any(b.get("strategy") == strategy and key not in b for b in blocks)
        if s[key] != unset and not used:
            raise ConfigError(f"sampler.{key}", f"is only read by strategy {strategy} (the strategy is "
                                                f"{s['strategy']}); remove it or set sampler.strategy={strategy}")
    for cat, block in s["per_category"].items():
        merged = {**s, **block}
        for key, (strategy, unset) in _STRATEGY_KEYS.items():
            if key in block and block[key] != unset and merged["strategy"] != strategy:
                raise ConfigError(f"sampler.per_category.{cat}.{key}", f"is only read by strategy {strategy} (the "
                                                                       f"category's is {merged['strategy']})")
    defaults = default_config()["sampler"]
    for key in ("distance_sd", "distance_range"):  # the jitter's: unread without it
        jitter_somewhere = s["distance_jitter"] or any(b.get("distance_jitter") for b in blocks)
        if s[key] != defaults[key] and not jitter_somewhere:
            raise ConfigError(f"sampler.{key}", "is only read with sampler.distance_jitter true (it is false)")
        for cat, block in s["per_category"].items():
            if key in block and block[key] != defaults[key] and not {**s, **block}["distance_jitter"]:
                raise ConfigError(f"sampler.per_category.{cat}.{key}", "is only read with distance_jitter true")
    normal_somewhere = any(b.get("polar") == "normal" for b in blocks)
    for key in ("polar_mean", "polar_sd"):  # the truncated normal's: unread where φ is uniform
        if s["strategy"] == "dst" and s["polar"] == "uniform" and s[key] is not None and not normal_somewhere:
            raise ConfigError(f"sampler.{key}", "is only read with polar normal (polar is uniform)")
        for cat, block in s["per_category"].items():
            merged = {**s, **block}
            if key in block and block[key] is not None and merged["polar"] == "uniform":
                raise ConfigError(f"sampler.per_category.{cat}.{key}", "is only read with polar normal (polar is "
                                                                       "uniform)")


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
    _check_strategy_keys(s)
    if c["edges"]["canny_low"] > c["edges"]["canny_high"]:
        raise ConfigError("edges.canny_low", "must be <= edges.canny_high")
    r = c["randomization"]
    if not any(r["appearance"].values()):
        raise ConfigError("randomization.appearance", "needs at least one weight > 0")
    if not any(r["background"].values()):
        raise ConfigError("randomization.background", "needs at least one weight > 0")
    unread = list(r["shadow_darkness"]) != list(default_config()["randomization"]["shadow_darkness"])
    if r["contact_shadow"] == 0 and unread:  # read only where a shadow is drawn
        raise ConfigError("randomization.shadow_darkness", "is only read with randomization.contact_shadow > 0 "
                                                           f"(it is 0); got {list(r['shadow_darkness'])}")
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
    """A validated, fully resolved datagen config: `data`, the nested dict (JSON-serialisable; what
    config.yaml holds and the hash covers), read by attribute through its typed view (`DatagenSchema`):
    `config.camera.fov`. The generator's own blocks (`config["controlnet"]`, with the keys beyond the
    schema that the generator validates) are read from the dict."""

    data: dict
    source: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @functools.cached_property
    def typed(self) -> DatagenSchema:
        return mk.build(DatagenSchema, self.data)

    def __getattr__(self, name: str):  # the schema's keys: config.sampler.strategy
        if name.startswith("_") or name not in DatagenSchema.__dataclass_fields__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.typed, name)

    def _content(self) -> dict:
        """The resolved config without UNHASHED_KEYS, its sections copied (for the hashes to trim)."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.data.items() if k not in UNHASHED_KEYS}

    def hashed_part(self) -> dict:
        """The keys that shape the dataset: all but UNHASHED_KEYS, and LATER_KEYS at their off value."""
        part = self._content()
        for (section, key), (off, companions) in LATER_KEYS.items():
            block = part.get(section, {})
            if block.get(key, off) == off:
                for name in (key, *companions):
                    block.pop(name, None)
        return part

    @staticmethod
    def _digest(part: dict) -> str:
        text = json.dumps(part, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of every key that shapes the dataset."""
        return self._digest(self.hashed_part())

    @property
    def accepted_hashes(self) -> tuple[str, ...]:
        """The hash, and the one the version before LATER_KEYS wrote for the same data (every key
        but `ground`, whatever its value): a folder with either resumes."""
        legacy = self._content()
        if legacy.get("randomization", {}).pop("ground", 0.0) != 0.0:
            return (self.hash,)
        return tuple(dict.fromkeys((self.hash, self._digest(legacy))))

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.data["image_size"])

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.data, sort_keys=False, default_flow_style=None)


_DEFAULTS: dict | None = None


def default_config() -> dict:
    """The defaults as a nested dict (a fresh copy): `DatagenSchema`'s, which `default_config.yaml`
    repeats with its long comments (tests/test_config_flags.py holds the two equal)."""
    global _DEFAULTS
    if _DEFAULTS is None:
        _DEFAULTS = mk.defaults(DatagenSchema)
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
        user = mk.read_yaml_file(config)
    try:
        tree = mk.merge_tree(DatagenSchema, default_config(), user, _fail) if defaults else copy.deepcopy(dict(user))
        if overrides:
            tree = mk.merge_tree(DatagenSchema, tree, overrides, _fail)
        data = mk.check_tree(DatagenSchema, tree, _fail)
        _cross_checks(data)
    except ConfigError as exc:
        if exc.source is None and source is not None:
            raise ConfigError(exc.key, exc.problem, source) from None
        raise
    return DatagenConfig(data, source)
