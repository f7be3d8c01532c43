"""The exemplar memory: a fixed total budget of training objects kept from old classes.

    memory = ExemplarMemory(budget=240, strategy="pose_aware")
    memory.add_classes({"car": car_records, "bus": bus_records})     # selects, then shrinks every class
    memory.records()                                                  # one single-object record per exemplar

With n classes seen, every class keeps budget // n exemplars, so the memory never exceeds its
budget and shrinks per class as classes arrive (the released iNeMo code never shrinks it). With a
`cost` per exemplar (e.g. its bytes, `compress.py`), the budget is in that unit: every class keeps
the longest prefix of its priority order that costs at most budget // n. Each
class's exemplars are kept as a priority order, so shrinking keeps the best ones:
- "pose_aware": azimuth bins (`azimuth_bins` over [0, 2π)), taken round robin with a seeded order
  inside each bin, so the kept views spread over the viewing circle;
- "herding" (iCaRL): greedily the object that brings the running mean of the chosen embeddings
  closest to the class mean (embeddings given by the caller, e.g. pooled network features);
- "random": a seeded permutation.
Exemplars come from the training records only; `check_disjoint` refuses an evaluation set that
shares an image with the memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import torch

from aware3d_utils import step_generator

from ..errors import NemoError
from .compress import SOURCE_KEY

__all__ = ["ExemplarMemory", "single_objects", "pose_aware_order", "herding_order"]

STRATEGIES = ("pose_aware", "herding", "random")


def single_objects(records, category: str) -> list:
    """One record per object of `category` (other objects dropped), in record order."""
    out = []
    for r in records:
        for o in r.objects:
            if o.category == category:
                out.append(r if len(r.objects) == 1 else replace(r, objects=(o,)))
    return out


def _key(record) -> tuple[str, float, float, float, float]:
    """An object's identity: its source image (a compressed exemplar names it) and its box."""
    source = (record.extra or {}).get(SOURCE_KEY, record.image_path)
    return (str(source), *(round(float(v), 3) for v in record.objects[0].bbox))


def pose_aware_order(azimuths: Sequence[float], bins: int, seed: int | torch.Generator = 0) -> list[int]:
    """Indices in priority order: round robin over azimuth bins, seeded order inside each bin
    (`seed`: a number, or the generator to draw from)."""
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    az = torch.as_tensor(list(azimuths), dtype=torch.float64) % (2 * math.pi)
    which = (az / (2 * math.pi) * bins).long().clamp(max=bins - 1)
    queues = []
    for b in range(bins):
        members = torch.nonzero(which == b).flatten()
        queues.append(members[torch.randperm(len(members), generator=gen)].tolist())
    order, depth = [], 0
    while len(order) < len(az):
        order.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return order


def herding_order(embeddings: torch.Tensor, count: int | None = None) -> list[int]:
    """iCaRL herding over embeddings (N, D) (normalised inside): the first `count` (all) indices."""
    x = torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float64), dim=-1)
    N = x.shape[0]
    count = N if count is None else min(int(count), N)
    mean = x.mean(0)
    chosen: list[int] = []
    total = torch.zeros_like(mean)
    free = torch.ones(N, dtype=torch.bool)
    for k in range(1, count + 1):
        gap = ((mean[None] - (total[None] + x) / k) ** 2).sum(-1).masked_fill(~free, math.inf)
        i = int(gap.argmin())
        chosen.append(i)
        free[i] = False
        total += x[i]
    return chosen


class ExemplarMemory:
    """See the module docstring. budget: total exemplars over all classes (≥ 0), or total cost when
    `cost` (record -> int, e.g. bytes) is given."""

    def __init__(self, budget: int, strategy: str = "pose_aware", azimuth_bins: int = 8, seed: int = 0,
                 cost: Callable[[object], int] | None = None):
        if int(budget) < 0:
            raise NemoError(f"ExemplarMemory: budget must be ≥ 0, got {budget}")
        if strategy not in STRATEGIES:
            raise NemoError(f"ExemplarMemory: strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
        if int(azimuth_bins) < 1:
            raise NemoError(f"ExemplarMemory: azimuth_bins must be ≥ 1, got {azimuth_bins}")
        self.budget, self.strategy, self.cost = int(budget), strategy, cost
        self.azimuth_bins, self.seed = int(azimuth_bins), int(seed)
        self._kept: dict[str, list] = {}  # class -> records in priority order

    @property
    def classes(self) -> list[str]:
        return list(self._kept)

    def per_class(self, n_classes: int | None = None) -> int:
        n = len(self._kept) if n_classes is None else int(n_classes)
        return self.budget // n if n else self.budget

    def __len__(self) -> int:
        return sum(len(v) for v in self._kept.values())

    def used(self) -> int:
        """The memory's total cost (its size without a cost function)."""
        return sum(self._cost(r) for v in self._kept.values() for r in v)

    def _cost(self, record) -> int:
        return 1 if self.cost is None else int(self.cost(record))

    def _prefix(self, records: Sequence, quota: int) -> list:
        """The longest prefix of `records` costing at most `quota`."""
        out, total = [], 0
        for r in records:
            total += self._cost(r)
            if total > quota:
                break
            out.append(r)
        return out

    def transform(self, classes: Sequence[str], fn: Callable[[object], object]) -> None:
        """Replace the kept records of `classes` by fn(record) (e.g. compressed copies), in order; the
        results must not cost more than the originals."""
        for c in classes:
            new = [fn(r) for r in self._kept[c]]
            if sum(map(self._cost, new)) > sum(map(self._cost, self._kept[c])):
                raise NemoError(f"ExemplarMemory.transform: the new exemplars of {c!r} cost more than the old")
            self._kept[c] = new

    def add_classes(self, candidates: Mapping[str, Sequence], embeddings: Mapping[str, torch.Tensor] | None = None
                    ) -> None:
        """Select exemplars of new classes from their training records (class -> records), then
        shrink every class to budget // (classes now seen). embeddings: class -> (N, D), one row per
        object of `single_objects(records, class)`, needed for "herding"."""
        new = [c for c in candidates if c not in self._kept]
        if len(new) != len(candidates):
            raise NemoError(f"ExemplarMemory: classes already in the memory: {sorted(set(candidates) - set(new))}")
        quota = self.per_class(len(self._kept) + len(new))
        for i, c in enumerate(new):
            objects = single_objects(candidates[c], c)
            if self.strategy == "pose_aware":
                order = pose_aware_order([o.objects[0].viewpoint["azimuth"] for o in objects], self.azimuth_bins,
                                         step_generator(self.seed, i + len(self._kept)))
            elif self.strategy == "herding":
                if embeddings is None or c not in embeddings or len(embeddings[c]) != len(objects):
                    raise NemoError(f"ExemplarMemory: herding needs one embedding per object of {c!r} "
                                    f"({len(objects)})")
                order = herding_order(embeddings[c], quota if self.cost is None else None)
            else:
                gen = step_generator(self.seed, i + len(self._kept))
                order = torch.randperm(len(objects), generator=gen).tolist()
            self._kept[c] = self._prefix([objects[j] for j in order], quota)
        for c in self._kept:  # shrink the old classes to the new quota (their best first)
            self._kept[c] = self._prefix(self._kept[c], quota)
        assert self.used() <= self.budget

    def restore(self, kept: Mapping[str, Sequence]) -> None:
        """Set the memory to saved exemplars (class -> records in priority order), e.g. on resume."""
        self._kept = {c: list(v) for c, v in kept.items()}
        if self.used() > self.budget:
            raise NemoError(f"ExemplarMemory.restore: the saved exemplars exceed the budget {self.budget}")

    def records(self, classes: Sequence[str] | None = None) -> list:
        """The exemplars (single-object records) of `classes` (all by default)."""
        return [r for c in (self._kept if classes is None else classes) for r in self._kept.get(c, [])]

    def check_disjoint(self, evaluation_records, where=None) -> None:
        """Raise NemoError if an evaluation object is also an exemplar (same image and box)."""
        mine = {_key(r) for r in self.records()}
        images = {k[0] for k in mine}
        for r in evaluation_records:
            if str(r.image_path) in images:
                for o in r.objects:
                    if _key(replace(r, objects=(o,))) in mine:
                        raise NemoError(f"an exemplar appears in the evaluation set: {r.image_path}", where)

    def summary(self) -> dict:
        """{"budget", "per_class", "size", "classes": {class: [image paths]}} for the run folder."""
        return {"budget": self.budget, "strategy": self.strategy, "per_class": self.per_class(), "size": len(self),
                "used": self.used(), "unit": "items" if self.cost is None else "cost",
                "classes": {c: [str(r.image_path) for r in v] for c, v in self._kept.items()}}
