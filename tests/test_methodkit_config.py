"""methodkit.config's tree walkers: `check_tree` (generic checks or a leaf's converter, the checked
tree returned) and `merge_tree` (a config merged over another along its schema), which datagen's
`load_config` resolves with."""

from __future__ import annotations

import dataclasses

import pytest

from methodkit import config as mk
from methodkit.config import ConfigError


def _pair(key, v):
    if not isinstance(v, list) or len(v) != 2:
        raise ConfigError(key, f"must be a [low, high] pair, got {v!r}")
    return [float(x) for x in v]


@dataclasses.dataclass
class Inner:
    size: int = mk.setting(3, "a count", ge=1)
    span: list = mk.setting([0, 1], "a pair, stored as floats", check=_pair)
    weights: dict = mk.setting({"a": 1.0, "b": 2.0}, "merged key by key", merged=True)
    table: dict = mk.setting({"x": 1}, "replaced whole")


@dataclasses.dataclass
class Outer:
    name: str = mk.setting("n", "a name")
    inner: Inner = mk.section(Inner, "a section")


def _raise(key, problem, kind="value"):
    raise ConfigError(key, f"{kind}: {problem}")


def test_check_tree_returns_the_converted_tree_and_names_the_key():
    given = {"name": "m", "inner": {"size": 2, "span": [1, 2]}}
    checked = mk.check_tree(Outer, given, _raise)
    assert checked == {"name": "m", "inner": {"size": 2, "span": [1.0, 2.0]}}
    assert all(isinstance(x, float) for x in checked["inner"]["span"])
    assert given["inner"]["span"] == [1, 2] and checked["inner"] is not given["inner"]  # a copy
    with pytest.raises(ConfigError, match=r"^inner\.span: must be a \[low, high\] pair, got 3$"):
        mk.check_tree(Outer, {"inner": {"span": 3}}, _raise)  # the converter's own error
    with pytest.raises(ConfigError, match=r"^inner\.size: value: must be ≥ 1, got 0$"):
        mk.check_tree(Outer, {"inner": {"size": 0}}, _raise)  # no converter: the generic checks
    with pytest.raises(ConfigError, match=r"^inner\.sise: unknown: is not a key; allowed here: \['size', 'span', "):
        mk.check_tree(Outer, {"inner": {"sise": 0}}, _raise)


def test_merge_tree_follows_the_schema():
    base = mk.defaults(Outer)
    merged = mk.merge_tree(Outer, base, {"inner": {"weights": {"b": 5.0}, "table": {"y": 2}, "span": [3, 4]}},
                           _raise)
    assert merged == {"name": "n", "inner": {"size": 3, "span": [3, 4], "weights": {"a": 1.0, "b": 5.0},
                                             "table": {"y": 2}}}
    assert base == mk.defaults(Outer)  # the base is not changed
    with pytest.raises(ConfigError, match=r"^inner: mapping: must be a mapping, got 3$"):
        mk.merge_tree(Outer, base, {"inner": 3}, _raise)
    with pytest.raises(ConfigError, match=r"^inner\.colour: unknown: is not a key"):
        mk.merge_tree(Outer, base, {"inner": {"colour": 1}}, _raise)


def test_a_fail_callback_may_let_an_unknown_key_pass():
    """An owner's open block (datagen's `controlnet` takes the generator's own keys): the key is kept."""
    def lenient(key, problem, kind="value"):
        if not (kind == "unknown" and key == "inner.extra"):
            _raise(key, problem, kind)

    merged = mk.merge_tree(Outer, mk.defaults(Outer), {"inner": {"extra": [1]}}, lenient)
    assert merged["inner"]["extra"] == [1]
    assert mk.check_tree(Outer, merged, lenient)["inner"]["extra"] == [1]
    with pytest.raises(ConfigError, match="other"):
        mk.check_tree(Outer, {"inner": {"other": 1}}, lenient)


def test_datagen_resolves_through_the_walkers():
    """datagen's normal forms (the dataset hash covers them) and its open controlnet block."""
    from datagen.config import load_config

    cfg = load_config({"edges": {"canny_low": 50}, "occluders": {"attempts": 7.0},
                       "sampler": {"per_category": {"car": {"distance_range": [-1, 2]}}},
                       "controlnet": {"eta": 0.5}})
    assert type(cfg["edges"]["canny_low"]) is float and type(cfg["occluders"]["attempts"]) is int
    assert cfg["sampler"]["per_category"] == {"car": {"distance_range": [-1.0, 2.0]}}
    assert cfg["controlnet"]["eta"] == 0.5
    with pytest.raises(ConfigError) as info:  # a per-category block takes the sampler's keys, not its own
        load_config({"sampler": {"per_category": {"car": {"per_category": {}}}}})
    assert info.value.key == "sampler.per_category.car.per_category" and "per_category," not in str(info.value)
    with pytest.raises(ConfigError, match=r"^camera\.zoom: unknown key \(known here: fov, margin, "):
        load_config({"camera": {"fov": 40}}, overrides={"camera": {"zoom": 2}})
