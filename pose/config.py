"""The label-free pose run's config: {"nemo": nemo's resolved config, "pose": this package's block}.

The pose block's defaults, types and ranges; unknown keys are errors naming the dotted key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import nemo

__all__ = ["POSE_DEFAULTS", "resolve_pose_config"]

POSE_DEFAULTS = {
    "filter": {"enabled": True, "after": 0.5, "mad": 3.0},
    # flip_ratio: the front/back guard of `merge_sets` (0: off; measured within noise, docs/pose.md)
    "merge": {"min_margin": 0.02, "rounds": 2, "flip_ratio": 0.0},
    # NeMo steps on the pseudo-labelled views (None: nemo.train.steps; 0: none): off by default, as
    # measured on the PASCAL3D+ cars it lowered pose's accuracy (docs/pose.md)
    "refine": {"steps": 0},
    # the one-shot retrieval baseline's encoder: "reference" trains one on the reference's own generated
    # views only (what one annotated image gives; steps None: nemo.train.steps), "pose" uses the pose
    # model's network. Its database is the reference's views either way; with "reference" the pose
    # network's database is also evaluated, as "retrieval_pose_network".
    "retrieval": {"encoder": "reference", "steps": None},
}


def resolve_pose_config(config: Mapping | None) -> dict:
    """{"nemo": nemo's resolved config, "pose": this package's block}; unknown keys are errors naming them."""
    config = dict(config or {})
    unknown = set(config) - {"nemo", "pose"}
    if unknown:
        raise ValueError(f"pose config: unknown top-level keys {sorted(unknown)} (use 'nemo' and 'pose')")
    block = {k: dict(v) for k, v in POSE_DEFAULTS.items()}
    for key, value in dict(config.get("pose") or {}).items():
        if key not in block:
            raise ValueError(f"pose config: unknown key 'pose.{key}'")
        extra = set(value) - set(block[key])
        if extra:
            raise ValueError(f"pose config: unknown key(s) {sorted(f'pose.{key}.{e}' for e in extra)}")
        block[key].update(value)
    _check_block(block)
    if block["retrieval"]["encoder"] not in ("reference", "pose"):
        raise ValueError(f"pose config: 'pose.retrieval.encoder' must be 'reference' or 'pose', "
                         f"got {block['retrieval']['encoder']!r}")
    for key in ("refine", "retrieval"):
        steps = block[key]["steps"]
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise ValueError(f"pose config: 'pose.{key}.steps' must be an integer ≥ 0 or null, got {steps!r}")
    try:
        ncfg = nemo.resolve_config(dict(config.get("nemo") or {}))
    except nemo.NemoError as exc:  # its keys are named inside the nemo block
        raise nemo.NemoError(str(exc).replace("config: '", "pose config: 'nemo.")) from None
    if ncfg["loss"]["negatives"] != "own_class":  # the bank's rows are sets of one category, not classes
        raise ValueError("pose config: 'nemo.loss.negatives' must be 'own_class' (every set shows the same category)")
    return {"nemo": ncfg, "pose": block}


# (dotted key, low, high, whether the low end is allowed): every number of the pose block
_POSE_RANGES = [("filter.after", 0.0, 1.0, True), ("filter.mad", 0.0, math.inf, True),
                ("merge.min_margin", 0.0, math.inf, True), ("merge.flip_ratio", 0.0, 1.0, True)]


def _check_block(block: Mapping) -> None:
    """The pose block's values: types and ranges, each error naming its dotted key."""
    for section in ("filter", "merge", "refine", "retrieval"):
        if not isinstance(block[section], dict):
            raise ValueError(f"pose config: 'pose.{section}' must be a mapping, got {block[section]!r}")
    if not isinstance(block["filter"]["enabled"], bool):
        raise ValueError(f"pose config: 'pose.filter.enabled' must be true or false, "
                         f"got {block['filter']['enabled']!r}")
    for dotted, low, high, closed in _POSE_RANGES:
        section, key = dotted.split(".")
        value = block[section][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"pose config: 'pose.{dotted}' must be a finite number, got {value!r}")
        if not (low <= value <= high) or (not closed and value == low):
            raise ValueError(f"pose config: 'pose.{dotted}' must be in [{low:g}, {high:g}], got {value!r}")
    rounds = block["merge"]["rounds"]
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 100:
        raise ValueError(f"pose config: 'pose.merge.rounds' must be an integer in [1, 100], got {rounds!r}")
