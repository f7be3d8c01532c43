"""Class-incremental task splits: which classes arrive in which task.

    split_tasks(["car", "bus", ...], tasks=4)                       # "from scratch": 4 equal tasks
    split_tasks(classes, tasks=5, first=50)                          # "from half": 50 classes, then 5 tasks
    split_tasks(classes, tasks=4, order_seed=1993)                   # seeded class order (as in iCaRL's 1993)

The class order is a seeded permutation (or the given order with `order_seed=None`), so the same
seed gives the same tasks on every machine. Uneven remainders go to the earliest incremental tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..config import NemoConfigError
from ..errors import NemoError

__all__ = ["split_tasks", "tasks_from_config", "PRESETS"]

# named settings of the papers (iNeMo: PASCAL3D+ 4 × 3; ObjectNet3D 10 × 10; "from half" variants)
PRESETS: dict[str, dict] = {
    "pascal3d_4x3": {"tasks": 4, "first": None},
    "pascal3d_half": {"tasks": 3, "first": 6},
    "objectnet3d_10x10": {"tasks": 10, "first": None},
    "objectnet3d_half": {"tasks": 5, "first": 50},
}


def split_tasks(classes: Sequence[str], tasks: int, first: int | None = None,
                order_seed: int | None = 0) -> list[list[str]]:
    """The classes of every task.

    classes: the total class budget (distinct names). tasks: the number of incremental tasks after
    the first one when `first` is given ("from half"), else the total number of tasks ("from
    scratch", equal sizes). first: classes of the first task. order_seed: seed of the class order
    permutation; None keeps the given order.
    """
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise NemoError(f"task split: the class list repeats a class: {classes}")
    n, tasks = len(classes), int(tasks)
    if tasks < 1:
        raise NemoError(f"task split: tasks must be ≥ 1, got {tasks}")
    if order_seed is not None:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(order_seed))).tolist()
        classes = [classes[i] for i in perm]
    if first is None:
        head, rest, parts = [], classes, tasks
    else:
        first = int(first)
        if not 1 <= first < n:
            raise NemoError(f"task split: first must be in [1, {n - 1}] for {n} classes, got {first}")
        head, rest, parts = classes[:first], classes[first:], tasks
    if parts > len(rest):
        raise NemoError(f"task split: {len(rest)} classes cannot fill {parts} tasks")
    size, extra = divmod(len(rest), parts)
    out, start = ([head] if head else []), 0
    for t in range(parts):
        end = start + size + (1 if t < extra else 0)
        out.append(rest[start:end])
        start = end
    return out


def tasks_from_config(block: Mapping, classes: Sequence[str]) -> list[list[str]]:
    """Tasks from a config block {"preset" | "tasks", "first", "order_seed", "order"}.

    "order" (a list of every class, in order) replaces the seeded permutation; "preset" names an
    entry of PRESETS (its values are defaults for "tasks" and "first").
    """
    block = dict(block)
    unknown = sorted(set(block) - {"preset", "tasks", "first", "order_seed", "order"})
    if unknown:
        raise NemoConfigError(f"config: unknown key(s) {['tasks.' + k for k in unknown]}")
    preset = block.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise NemoConfigError(f"config: 'tasks.preset' must be one of {sorted(PRESETS)}, got {preset!r}")
        block = {**PRESETS[preset], **{k: v for k, v in block.items() if k != "preset" and v is not None}}
    if "tasks" not in block:
        raise NemoConfigError("config: 'tasks.tasks' (the number of tasks) or 'tasks.preset' is required")
    order = block.get("order")
    if order is not None:
        if sorted(map(str, order)) != sorted(map(str, classes)):
            raise NemoConfigError(f"config: 'tasks.order' must list every class once: {sorted(classes)}, got {order}")
        return split_tasks(order, block["tasks"], block.get("first"), order_seed=None)
    return split_tasks(classes, block["tasks"], block.get("first"), block.get("order_seed", 0))
