"""Process-level policies every layer shares: torch's thread count and per-step random streams.

    with torch_threads(1):            # set for the block, the caller's count restored after
        ...
    gen = step_generator(seed, step)  # the same numbers for the same (seed, step), resumed or not

torch is imported inside the functions, so `aware3d_utils` stays importable without it.
"""

from __future__ import annotations

import contextlib

__all__ = ["torch_threads", "step_generator"]


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with `n` torch intra-op threads (None: leave the count alone) and restore the
    caller's count afterwards, also when the block raises. Two processes with two threads each on
    two cores ran ~30x slower than with one each: callers choose `n` deliberately."""
    import torch

    previous = torch.get_num_threads()
    if n is not None:
        if int(n) < 1:
            raise ValueError(f"torch_threads: the thread count must be ≥ 1, got {n!r}")
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def step_generator(seed: int, step: int, *, stream: int = 0):
    """A torch.Generator seeded from (seed, step, stream): the random numbers of one training step
    (clutter sampling, dropped pixels) depend on where the run is, not on what ran before, so a
    resumed run draws the same numbers as an uninterrupted one. `stream` separates independent runs
    that share a seed and count steps from zero (iNeMo's tasks). The formula is the one the trainers
    have always used (seed·7919 + stream·104729 + step), so fixed-seed results are unchanged."""
    import torch

    return torch.Generator().manual_seed(int(seed) * 7919 + int(stream) * 104729 + int(step))
