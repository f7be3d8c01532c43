"""Config objects: one typed, nested, documented config mechanism for every method.

A method declares its config as nested stdlib dataclasses whose fields are made by `setting`
(a leaf: default, one-line doc, allowed choices, numeric range, a command-line flag) and
`section` (a nested dataclass). From that one declaration come the defaults (`defaults(cls)`),
the documentation (`keys(cls)`), the generic checks (`check_tree`: unknown keys, types, choices,
ranges, or a leaf's own converter `check=`; one `ConfigError` naming the dotted key and the file), the
schema-aware merge of a config over another (`merge_tree`), typed objects (`build(cls, tree)`,
`Cls.of(resolved)`, `to_dict(obj)`: code reads `cfg.data.crop_size`, never string keys) and the
command-line flags (`methodkit.cli.add_schema_flags`).

Why dataclasses and not pydantic / OmegaConf / tyro: the project's configs are resolved into
plain nested dicts that run folders store and trainers read (a contract other code depends on),
with exact checks and one-line messages that tests match; dataclasses plus a ~150-line resolver
keep those messages, add no dependency, and leave the typed object a thin view of the same tree.

Also here, for every layer to share: the YAML 1.2 reader datagen established (`read_yaml`: `off`
stays a string, `1e3` is a float, duplicate keys are errors), `--set key=value` parsing
(`parse_override`) and the deep merge of override trees.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "ConfigObject", "setting", "section", "keys", "defaults", "build", "to_dict", "check_tree",
           "merge_tree", "check_value", "Key", "read_yaml", "read_yaml_file", "yaml_error_text", "parse_override",
           "deep_merge", "YamlLoader"]


class ConfigError(ValueError):
    """A bad config value or key: `key` is the dotted key at fault, `source` the file (or None).

    The one error type of every config layer (datagen's `ConfigError` is this class; nemo, pose
    and iNeMo raise `nemo.NemoConfigError`, a subclass that is also a `NemoError`)."""

    def __init__(self, key: str, problem: str, source: str | os.PathLike | None = None):
        self.key, self.problem = key, problem
        self.source = None if source is None else str(source)
        where = f"{self.source}: " if self.source else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")


# ------------------------------------------------------------------------------------------ schema
def setting(default: Any = dataclasses.MISSING, doc: str = "", *, factory: Callable | None = None,
            choices: tuple | None = None, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, open: bool = False,
            flag: str | bool | None = None, **extra) -> Any:
    """A config leaf: its default (or `factory` for a list / dict), a one-line doc, the allowed
    `choices`, the numeric range (ge/gt/le/lt), `open` (any value; its consumer checks it) and its
    command-line flag (None: none; True: `--the-key`; a string: that flag). `extra` is kept in the
    metadata for the owning package's own checks; `typed=OtherConfig` makes the typed object hold this
    (resolved) block as `OtherConfig.of(value)`."""
    meta = {"doc": doc, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt, "open": open, "flag": flag,
            **extra}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, doc: str = "") -> Any:
    """A nested config section (a dataclass of settings)."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "section": True})


@dataclasses.dataclass(frozen=True)
class Key:
    """One leaf of a schema: its dotted name, type, default and metadata (doc, choices, range, flag)."""

    dotted: str
    type: Any
    default: Any
    meta: Mapping

    @property
    def doc(self) -> str:
        return self.meta.get("doc", "")

    @property
    def nullable(self) -> bool:
        return _nullable(self.type)

    @property
    def base(self) -> Any:
        """The type without None (int for `int | None`)."""
        return _strip_none(self.type)


def _nullable(tp) -> bool:
    return tp is Any or (typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp))


def _strip_none(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _fields(cls) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _is_section(f: dataclasses.Field, tp) -> bool:
    return f.metadata.get("section", False) or (isinstance(tp, type) and dataclasses.is_dataclass(tp))


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else copy.deepcopy(f.default)


def keys(cls: type, prefix: str = "") -> list[Key]:
    """Every leaf of the schema `cls`, depth first, with dotted names."""
    out = []
    for f, tp in _fields(cls):
        if _is_section(f, tp):
            out.extend(keys(tp, f"{prefix}{f.name}."))
        else:
            out.append(Key(prefix + f.name, tp, _default(f), f.metadata))
    return out


def defaults(cls: type) -> dict:
    """The schema's defaults as a plain nested dict (a fresh copy)."""
    return {f.name: defaults(tp) if _is_section(f, tp) else _default(f) for f, tp in _fields(cls)}


def build(cls: type, tree: Mapping):
    """The typed object of a resolved (already checked) nested dict."""
    kwargs = {}
    for f, tp in _fields(cls):
        if f.name in tree:
            if _is_section(f, tp):
                kwargs[f.name] = build(tp, tree[f.name])
            elif f.metadata.get("typed") is not None:  # a block another schema declares (pose's `nemo`)
                kwargs[f.name] = f.metadata["typed"].of(tree[f.name])
            else:
                kwargs[f.name] = copy.deepcopy(tree[f.name])
    return cls(**kwargs)


def to_dict(obj) -> dict:
    """A config object as a plain nested dict (the run folder's config.yaml content)."""
    return {f.name: to_dict(getattr(obj, f.name)) if dataclasses.is_dataclass(getattr(obj, f.name))
            else copy.deepcopy(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


class ConfigObject:
    """Base of a method's top-level config dataclass: `from_mapping` (defaults + a user mapping +
    override trees, checked, as a typed object) and `to_dict` (the plain nested dict). A subclass
    with its own resolver (exact checks beyond the schema's) sets `resolve`."""

    @classmethod
    def resolve(cls, config: Mapping | None = None, overrides=()) -> dict:
        """The resolved plain nested dict; the generic resolver: defaults, deep merge, `check_tree`."""
        tree = defaults(cls)
        for part in (config or {}, *overrides):
            check_tree(cls, part, _raise)
            tree = deep_merge(tree, part)
        return tree

    @classmethod
    def from_mapping(cls, config: Mapping | None = None, overrides=()):
        return build(cls, cls.resolve(config, overrides))

    @classmethod
    def of(cls, config):
        """The typed object of an already resolved config: `config` itself when it is one, else its
        view (`build`; no checks run again). What code that takes "a config" reads."""
        return config if isinstance(config, cls) else build(cls, config)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, overrides=()):
        """From a YAML file (or the defaults) and overrides ('key=value' strings or nested mappings);
        a ConfigError names the file."""
        data = read_yaml_file(path) if path is not None else {}
        trees = [o if isinstance(o, Mapping) else parse_override(o) for o in overrides]
        try:
            return cls.from_mapping(data, trees)
        except ConfigError as exc:
            if path is None or exc.source is not None or type(exc) is not ConfigError:
                raise
            raise ConfigError(exc.key, exc.problem, path) from None

    def to_dict(self) -> dict:
        return to_dict(self)


def _raise(key: str, problem: str, kind: str = "value"):
    raise ConfigError(key, problem)


# ------------------------------------------------------------------------------------------ checks
def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _range_problem(meta: Mapping, v) -> str | None:
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    low, high = (ge if ge is not None else gt), (le if le is not None else lt)
    bad = (ge is not None and v < ge) or (gt is not None and v <= gt) or (le is not None and v > le) or \
          (lt is not None and v >= lt)
    if not bad:
        return None
    if isinstance(v, int) and ge is not None and v < ge:  # counts: the bound that is crossed
        return f"must be ≥ {ge:g}, got {v!r}"
    if isinstance(v, int) and le is not None and v > le and (low is None or v >= low):
        return f"must be ≤ {le:g}, got {v!r}"
    if high is None:
        return f"must be {'≥' if ge is not None else '>'} {low:g}, got {v!r}"
    if low is None:
        return f"must be {'≤' if le is not None else '<'} {high:g}, got {v!r}"
    return (f"must be in {'[' if ge is not None else '('}{low:g}, {high:g}{']' if le is not None else ')'}, "
            f"got {v!r}")


def check_value(key: Key, v) -> str | None:
    """The problem with value `v` for `key` (None: fine): type, choices, range."""
    meta = key.meta
    if meta.get("open") or key.type is Any:
        return None
    if v is None:
        return None if key.nullable else f"must not be null, got {v!r}"
    base = key.base
    origin = typing.get_origin(base) or base
    if meta.get("choices") is not None and v not in meta["choices"]:
        return f"must be one of {list(meta['choices'])}, got {v!r}"
    if base is bool and not isinstance(v, bool):
        return f"must be true or false, got {v!r}"
    if base is int and not (isinstance(v, int) and not isinstance(v, bool)):
        return f"must be an integer, got {v!r}"
    if base is float and not (_number(v) and math.isfinite(v)):
        return f"must be a finite number, got {v!r}"
    if base is str and not isinstance(v, str):
        return f"must be a string, got {v!r}"
    if origin is list:
        if not isinstance(v, list):
            return f"must be a list, got {v!r}"
        (item,) = typing.get_args(base) or (Any,)
        if item in (int, float) and not all(_number(x) and math.isfinite(x) for x in v):
            return f"must be a list of finite numbers, got {v!r}"
        if item is str and not all(isinstance(x, str) for x in v):
            return f"must be a list of strings, got {v!r}"
    if origin is dict and not isinstance(v, Mapping):
        return f"must be a mapping, got {v!r}"
    if base in (int, float):
        return _range_problem(meta, v)
    return None


def _walk(cls: type, tree: Mapping, fail: Callable[..., Any], prefix: str):
    """(name, dotted key, value, field, type) of every key of `tree` in the schema `cls`: an unknown
    key and a section that is not a mapping go to `fail` first (field None: an unknown key it let pass)."""
    fields = {f.name: (f, tp) for f, tp in _fields(cls)}
    for name, value in tree.items():
        dotted = f"{prefix}{name}"
        if name not in fields:
            fail(dotted, f"is not a key; allowed here: {sorted(fields)}", "unknown")
            yield name, dotted, value, None, None
            continue
        f, tp = fields[name]
        if _is_section(f, tp) and not isinstance(value, Mapping):
            fail(dotted, f"must be a mapping, got {value!r}", "mapping")
        yield name, dotted, value, f, tp


def check_tree(cls: type, tree: Mapping, fail: Callable[..., Any], prefix: str = "") -> dict:
    """Check a nested dict (the whole config, or an override tree) against the schema `cls`:
    `fail(dotted_key, problem, kind)` raises, kind "unknown" (with the allowed keys as the problem's
    list), "mapping" (a section that is not a mapping) or "value" (a leaf `check_value` rejects).

    Returns the checked tree, a copy in which a leaf whose metadata holds `check` (a converter
    `check(dotted_key, value) -> value` that raises ConfigError: rules beyond the schema's types and
    ranges, with their normal form, as datagen's) holds the converter's result. An unknown key or a
    value that `fail` lets pass (returns) is kept as given."""
    out = {}
    for name, dotted, value, f, tp in _walk(cls, tree, fail, prefix):
        if f is not None and _is_section(f, tp):
            out[name] = check_tree(tp, value, fail, dotted + ".")
        elif f is not None and f.metadata.get("check") is not None:
            out[name] = f.metadata["check"](dotted, value)
        else:
            problem = None if f is None else check_value(Key(dotted, tp, None, f.metadata), value)
            if problem:
                fail(dotted, problem, "value")
            out[name] = copy.deepcopy(value)
    return out


def merge_tree(cls: type, base: Mapping, override: Mapping, fail: Callable[..., Any], prefix: str = "") -> dict:
    """`override` merged into a copy of `base` along the schema `cls`: sections key by key, a leaf
    replaced whole (a mapping leaf declared `merged=True`, a table of weights, key by key). Unknown keys
    and sections that are not mappings go to `fail` as in `check_tree` (a key it lets pass is kept)."""
    out = copy.deepcopy(dict(base))
    for name, dotted, value, f, tp in _walk(cls, override, fail, prefix):
        if f is not None and _is_section(f, tp):
            out[name] = merge_tree(tp, out.get(name, {}), value, fail, dotted + ".")
        elif f is not None and f.metadata.get("merged") and isinstance(value, Mapping) and \
                isinstance(out.get(name), Mapping):
            out[name] = {**out[name], **copy.deepcopy(dict(value))}
        else:
            out[name] = copy.deepcopy(value)
    return out


# ------------------------------------------------------------------------------------------ YAML
class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans and floats, and duplicate keys as errors.

    YAML 1.1 also reads on/off/yes/no as booleans, which turns `type: off` (the OFF CAD source)
    into False, and it needs a dot and a signed exponent in a float, so `1e30` and `1.0e30` were
    strings. A key given twice in one mapping would silently keep the last value."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark)
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YAML12_RESOLVED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")
YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML12_RESOLVED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
# YAML 1.2 core schema floats (a plain integer stays an int: it needs a dot or an exponent here)
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
# the 1.2 resolver goes before the int resolver of each first character, so 1e3 is not tried as an int
for _first, _resolvers in YamlLoader.yaml_implicit_resolvers.items():
    _resolvers.sort(key=lambda r: r[0] != "tag:yaml.org,2002:float")


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: the problem and its line number."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


def read_yaml(text: str):
    """Parse YAML text the way every config is read (YAML 1.2 booleans and floats, safe types only)."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml_file(path: str | os.PathLike) -> dict:
    """A YAML file holding a mapping (an empty file: {}); every problem is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", "config file not found", path)
    try:
        data = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {yaml_error_text(exc)}", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"cannot be read: {exc.strerror if isinstance(exc, OSError) else exc}", path) from None
    if not isinstance(data, Mapping):
        raise ConfigError("", f"must hold a mapping of keys, got {type(data).__name__}", path)
    return dict(data)


# ------------------------------------------------------------------------------------------ overrides
def deep_merge(a: Mapping, b: Mapping) -> dict:
    """`b` merged into a copy of `a`, nested mappings key by key (for repeated `--set` overrides)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def parse_override(text: str) -> dict:
    """`key.sub=value` (value parsed as YAML) -> {"key": {"sub": value}}."""
    if "=" not in text:
        raise ConfigError("", f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError("", f"--set expects key=value, got {text!r}")
    try:
        parsed = read_yaml(value)
    except yaml.YAMLError:
        parsed = value
    out: dict = {}
    node = out
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = parsed
    return out
