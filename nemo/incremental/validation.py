"""The validation split of an incremental run, carved from the TRAINING records, and the choices
made on it (never on the test records).

- `carve_validation(records, classes, fraction, by, min_instances, seed)`: per class, whole
  instances (`mesh_ref`: a CAD model or a procedural seed) go to validation when the class has at
  least `min_instances` training instances (`by: instance`; then validation, like an
  instance-disjoint test, shows shapes that training never sees), else a seeded `fraction` of its
  objects (`by: object`, a class with too few instances, or one with photographs, whose instances
  are unknown: `rendered_instance`). Returns (training records, validation
  records, a summary of what was carved, recorded in the run folder).
- `choose_match_rule(net, bank, records, config, seen, rules)`: the feature-matching rule
  (`nemo.match_categories`) with the best classification accuracy on the validation objects of the
  classes seen so far; ties keep the earlier rule of `rules`. Returns (rule, {rule: accuracy}, n).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch

from aware3d_utils import step_generator

from ..data import eval_loader
from ..errors import NemoError
from ..model import MATCH_RULES, match_categories

__all__ = ["carve_validation", "choose_match_rule", "rendered_instance"]


def rendered_instance(obj) -> str | None:
    """The instance an object IS (`mesh_ref`) when the image is a render of that mesh (datagen writes
    the asset in the object's extra["asset"]); None for a photograph, whose CAD reference is only the
    closest model of an annotation tool, not the instance."""
    return obj.mesh_ref if (obj.extra or {}).get("asset") else None


def _owner(record) -> tuple[str, str | None]:
    """(category, instance or None) of a record, by its first object (datagen records hold one object)."""
    o = record.objects[0]
    return o.category, rendered_instance(o)


def carve_validation(records: Sequence, classes: Sequence[str], fraction: float, by: str = "instance",
                     min_instances: int = 3, seed: int = 0) -> tuple[list, list, dict]:
    """(train, validation, summary); see the module docstring. fraction 0 carves nothing."""
    if not 0 <= fraction < 1:
        raise NemoError(f"validation.fraction must be in [0, 1), got {fraction}")
    if by not in ("instance", "object"):
        raise NemoError(f"validation.by must be 'instance' or 'object', got {by!r}")
    summary: dict = {"fraction": fraction, "by": by, "min_instances": int(min_instances), "classes": {}}
    if fraction == 0:
        return list(records), [], summary
    per_class: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.objects and r.objects[0].category in classes:
            per_class[r.objects[0].category].append(i)
    held: set[int] = set()
    for k, c in enumerate(classes):
        idx = per_class.get(c, [])
        if not idx:
            continue
        gen = step_generator(seed, k)
        owners = [_owner(records[i])[1] for i in idx]
        instances = sorted({o for o in owners if o is not None})
        if by == "instance" and None not in owners and len(instances) >= int(min_instances):
            n = min(len(instances) - 1, max(1, round(fraction * len(instances))))
            order = torch.randperm(len(instances), generator=gen).tolist()
            chosen = sorted(instances[j] for j in order[:n])
            picked = [i for i in idx if _owner(records[i])[1] in chosen]
            summary["classes"][c] = {"by": "instance", "instances": chosen, "objects": len(picked),
                                     "training_instances": sorted(set(instances) - set(chosen))}
        else:
            n = min(len(idx) - 1, max(1, math.ceil(fraction * len(idx)))) if len(idx) > 1 else 0
            order = torch.randperm(len(idx), generator=gen).tolist()
            picked = sorted(idx[j] for j in order[:n])
            summary["classes"][c] = {"by": "object", "instances": [], "objects": len(picked),
                                     "training_instances": instances}
        held.update(picked)
    train = [r for i, r in enumerate(records) if i not in held]
    val = [r for i, r in enumerate(records) if i in held]
    summary["objects"] = len(val)
    return train, val, summary


@torch.no_grad()
def choose_match_rule(net, bank, records: Sequence, config: Mapping, seen: Sequence[str],
                      rules: Sequence[str], batch_size: int = 16) -> tuple[str, dict, int]:
    """(rule, {rule: accuracy}, objects) on the validation records of the seen classes (see the
    module docstring). With no validation object the first rule is kept (accuracies empty)."""
    unknown = [r for r in rules if r not in MATCH_RULES]
    if not rules or unknown:
        raise NemoError(f"choose_match_rule: rules must be among {list(MATCH_RULES)}, got {list(rules)}")
    subset = [r for r in records if all(o.category in seen for o in r.objects)]
    if not subset:
        return rules[0], {}, 0
    device = bank.device
    net.eval()
    correct, n = dict.fromkeys(rules, 0), 0
    for batch in eval_loader(subset, config, list(seen), batch_size):
        maps = net(batch["image"].to(device))
        truth = batch["category"].to(device)  # indices into `seen`, the bank's order
        for rule in rules:
            correct[rule] += int((match_categories(maps, bank, rule).argmax(1) == truth).sum())
        n += int(truth.shape[0])
    accuracy = {r: correct[r] / n for r in rules}
    best = max(rules, key=lambda r: (accuracy[r], -list(rules).index(r)))
    return best, accuracy, n
