"""The label-free pose run's config: {"nemo": nemo's resolved config, "pose": this package's block}.

`PoseSection` declares the pose block (defaults, docs, types, ranges; `POSE_DEFAULTS` is its plain
dict), checked by the generic `methodkit.config.check_tree`. Every problem, the nemo block's
included, is a `nemo.NemoConfigError` (a `NemoError`, a `methodkit.ConfigError` and a ValueError)
naming the dotted key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nemo
from methodkit import config as mk
from methodkit.config import section, setting
from nemo.config import NemoConfigError

__all__ = ["POSE_DEFAULTS", "PoseConfig", "resolve_pose_config"]


@dataclass
class FilterSection:
    enabled: bool = setting(True, "drop the generated sets whose alignment error is an outlier")
    after: float = setting(0.5, "when, as a fraction of training", ge=0, le=1)
    mad: float = setting(3.0, "outlier threshold in median absolute deviations", ge=0)


@dataclass
class MergeSection:
    min_margin: float = setting(0.02, "least margin of a set's best alignment over its second best", ge=0)
    rounds: int = setting(2, "merge rounds", ge=1, le=100)
    flip_ratio: float = setting(0.0, "the front/back guard of `merge_sets` (0: off; measured within noise, "
                                "docs/pose.md)", ge=0, le=1)
    orient: bool = setting(False, "the orientation check (pose.orient): every set's source image, left out of "
                           "the label-free training, tells whether its set was generated half a turn off; the "
                           "annotated image's set is turned back when it was (off: measured no better than a "
                           "guess on the p = 0.2 car run, docs/pose.md)")


@dataclass
class RefineSection:
    steps: int | None = setting(0, "NeMo steps on the pseudo-labelled views (None: nemo.train.steps; 0: none): off "
                                "by default, as measured on the PASCAL3D+ cars it lowered pose's accuracy", ge=0,
                                le=10**9)


@dataclass
class RetrievalSection:
    encoder: str = setting("reference", "the one-shot retrieval baseline's encoder: reference trains one on the "
                           "reference's own generated views only; pose uses the pose model's network",
                           choices=("reference", "pose"))
    steps: int | None = setting(None, "reference encoder's steps (None: nemo.train.steps)", ge=1, le=10**9)


@dataclass
class PoseSection:
    filter: FilterSection = section(FilterSection, "the artifact filter")
    merge: MergeSection = section(MergeSection, "merging the generated sets into one canonical frame")
    refine: RefineSection = section(RefineSection)
    retrieval: RetrievalSection = section(RetrievalSection, "its database is the reference's views either way; "
                                          "with reference the pose network's is also evaluated")


@dataclass
class PoseConfig(mk.ConfigObject):
    """The pose run's config (docs/pose.md)."""

    nemo: Any = setting({}, "a nemo config block (nemo.NemoConfig keys)", open=True, typed=nemo.NemoConfig)
    pose: PoseSection = section(PoseSection, "this package's block")

    @classmethod
    def resolve(cls, config=None, overrides=()) -> dict:
        tree = dict(config or {})
        for part in overrides:
            tree = nemo.config.merge(tree, part)
        return resolve_pose_config(tree)


POSE_DEFAULTS = mk.defaults(PoseSection)


def _fail(key: str, problem: str, kind: str = "value"):
    raise NemoConfigError(f"pose config: 'pose.{key}' {problem}")


def resolve_pose_config(config: Mapping | None) -> dict:
    """{"nemo": nemo's resolved config, "pose": this package's block}; unknown keys are errors naming them."""
    config = dict(config or {})
    unknown = set(config) - {"nemo", "pose"}
    if unknown:
        raise NemoConfigError(f"pose config: unknown top-level keys {sorted(unknown)} (use 'nemo' and 'pose')")
    for name in ("nemo", "pose"):  # null too: a block written empty by mistake is not "the defaults"
        if name in config and not isinstance(config[name], Mapping):
            raise NemoConfigError(f"pose config: {name!r} must be a mapping, got {config[name]!r}")
    given = config.get("pose") or {}
    mk.check_tree(PoseSection, given, _fail)
    block = mk.deep_merge(copy.deepcopy(POSE_DEFAULTS), given)
    try:
        ncfg = nemo.resolve_config(dict(config.get("nemo") or {}))
    except nemo.NemoError as exc:  # its keys are named inside the nemo block
        raise NemoConfigError(str(exc).replace("config: '", "pose config: 'nemo.")) from None
    if ncfg["loss"]["negatives"] != "own_class":  # the bank's rows are sets of one category, not classes
        raise NemoConfigError("pose config: 'nemo.loss.negatives' must be 'own_class' (every set shows the same "
                              "category)")
    return {"nemo": ncfg, "pose": block}
