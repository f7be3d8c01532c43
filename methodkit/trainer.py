"""The one training loop every method trains through (NeMo, the 2D baseline, pose and its reference
encoder, iNeMo, datagen's K-fold filter).

    hooks = Hooks(batches=lambda epoch: epoch_batches(n, batch_size, seed, epoch),
                  load=lambda epoch, orders: (collate(order) for order in orders),
                  step=lambda batch, step: my_loss(net(batch["image"]), batch))
    trainer = Trainer(net, hooks, optim_cfg, steps, run=run, log_every=10, checkpoint_every=200)
    if resuming:
        trainer.restore(*run.load_checkpoint())
    trainer.fit()                       # True when the run reached `steps`, False when `stop_after` ended it

A method is a step function (`Hooks.step`: one batch -> (loss, info)) and callbacks; the trainer owns
what every method shares: the learning rate of each step (`learning_rate`: warm-up, then cosine / step
decay or flat), the finite-loss check, backward, the optimiser step, the JSON-lines log every
`log_every` steps, checkpoints every `checkpoint_every` steps and exact resume, `stop_after`, the
progress bar. The place in the seeded batch order is (epoch, offset into the epoch's batch list) and
`position` counts every batch met, trained or dropped (`Hooks.load` yields None for a dropped one), so
a resumed run meets the same batches in the same order as an uninterrupted one.

Checkpoint key layout (one `state_tensors` <-> `load_state` pair): the network's state_dict under
`model.`, the optimiser's per-parameter state under `optim.<param id>.<name>`, and whatever the method
adds (`Hooks.state`: e.g. `bank.*` for NeMo's mesh bank, `sets.*` and `train.active` for pose). The
trainer's place is the metadata's `train_state` ({"step", "epoch", "offset", "position"} + the method's
own keys). Thread and seed policy: `aware3d_utils.torch_threads` and `aware3d_utils.step_generator`
(the methods' step functions draw their per-step randomness from it), re-exported here.
"""

from __future__ import annotations

import logging
import math
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from aware3d_utils import step_generator, torch_threads

from .run import RunError, RunFolder

__all__ = ["Hooks", "Trainer", "learning_rate", "state_tensors", "load_state", "module_state", "optimizer_tensors",
           "load_optimizer_tensors", "param_groups", "resume_config", "torch_threads", "step_generator"]

log = logging.getLogger(__name__)

MODEL_PREFIX, OPTIM_PREFIX = "model.", "optim."


def learning_rate(step: int, optim, steps: int) -> float:
    """The learning rate at `step`: linear warm-up over `warmup_steps`, then cosine decay to
    min_lr_ratio·lr ("cosine"), ×gamma at each milestone fraction of the run ("steps"), or flat.
    optim: a config's optim section (or a mapping of the same keys)."""
    o = _attributes(optim)
    lr, warm = float(o.lr), int(o.warmup_steps)
    if step < warm:
        return lr * (step + 1) / warm
    if o.schedule == "constant":
        return lr
    if o.schedule == "steps":
        return lr * float(o.gamma) ** sum(step >= m * steps for m in o.milestones)
    progress = min(1.0, (step - warm) / max(1, steps - warm))
    low = float(o.min_lr_ratio)
    return lr * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress)))


def param_groups(net: torch.nn.Module, optim) -> list[dict]:
    """The optimiser's parameter groups: one, or with `optim.encoder_lr_scale` ≠ 1 and a net that has an
    `encoder`, the encoder's parameters at that fraction of the learning rate (a pretrained encoder
    fine-tuned more gently than the freshly initialised rest) and the rest at the full rate."""
    scale = float(getattr(_attributes(optim), "encoder_lr_scale", 1.0))
    encoder = getattr(net, "encoder", None)
    if scale == 1.0 or not isinstance(encoder, torch.nn.Module):
        return [{"params": list(net.parameters()), "lr_scale": 1.0}]
    inside = {id(p) for p in encoder.parameters()}
    return [{"params": list(encoder.parameters()), "lr_scale": scale},
            {"params": [p for p in net.parameters() if id(p) not in inside], "lr_scale": 1.0}]


def _attributes(section):
    """A config section read by attribute: a config object as it is, a mapping as a namespace."""
    return types.SimpleNamespace(**section) if isinstance(section, Mapping) else section


# ---------------------------------------------------------------------- checkpoint key layout
def state_tensors(net: torch.nn.Module | Mapping[str, torch.Tensor] | None = None,
                  optimizer: torch.optim.Optimizer | None = None, prefix: str = MODEL_PREFIX
                  ) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors: the network's state_dict (a module or a state_dict) under `prefix`
    ("model."; "retrieval.model." for a second network) and the optimiser's state under "optim."."""
    out = {}
    if net is not None:
        state = net.state_dict() if isinstance(net, torch.nn.Module) else net
        out.update({f"{prefix}{k}": v for k, v in state.items()})
    if optimizer is not None:
        out.update(optimizer_tensors(optimizer))
    return out


def module_state(tensors: Mapping[str, torch.Tensor], prefix: str = MODEL_PREFIX) -> dict[str, torch.Tensor]:
    """The state_dict stored under `prefix` in a checkpoint's tensors (the inverse of `state_tensors`)."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_state(net: torch.nn.Module, tensors: Mapping[str, torch.Tensor], prefix: str = MODEL_PREFIX,
               error: type[Exception] = RunError) -> None:
    """Load the network stored under `prefix` into `net`; `error` when it does not fit."""
    try:
        missing, unexpected = net.load_state_dict(module_state(tensors, prefix), strict=False)
    except RuntimeError as exc:  # tensors of other shapes: torch's message is many lines, one per tensor
        lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise error(f"checkpoint does not fit the network: {(lines or [str(exc).splitlines()[0]])[0]}"
                    f"{f' (and {len(lines) - 1} more)' if len(lines) > 1 else ''}") from None
    if missing or unexpected:
        raise error(f"checkpoint does not fit the network: missing {missing[:3]}, unexpected {unexpected[:3]}")


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimiser's per-parameter state as flat tensors ('optim.<param>.<name>')."""
    out = {}
    for pid, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            value = torch.as_tensor(value).detach().cpu()
            out[f"{OPTIM_PREFIX}{pid}.{name}"] = value.reshape(1) if value.ndim == 0 else value  # safetensors: no 0-d
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor]) -> None:
    """Restore the optimiser state `optimizer_tensors` wrote (keys without 'optim.' are ignored)."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if not key.startswith(OPTIM_PREFIX):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value.reshape(()) if name == "step" else value
    sd = optimizer.state_dict()
    sd["state"] = state
    optimizer.load_state_dict(sd)


# ---------------------------------------------------------------------- the one "same config?" check
def _get(config: Mapping, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _set(config: dict, dotted: str, value) -> dict:
    """A copy of `config` with the dotted key set (the nested dicts on the way copied)."""
    head, _, rest = dotted.partition(".")
    out = dict(config)
    out[head] = _set(dict(out[head]), rest, value) if rest else value
    return out


def resume_config(run: RunFolder, config: Mapping | None, resolve: Callable[[Mapping], dict], *,
                  free: Sequence[str] = (), extend: Sequence[str] = (), fill: Sequence[str] = (),
                  check: Callable[[dict], None] | None = None, started: bool | None = None,
                  kinds: Sequence[str] = (), what: str = "") -> tuple[dict, bool]:
    """The run's config and whether it resumes. A folder without a checkpoint: `resolve(config)`, a new
    run. Checkpoints without config.yaml (deleted, or a copy of the checkpoints alone): the given config
    resumes them (with a warning). Else the stored config.yaml: `check(raw)` first may refuse another
    kind of run; a `run.error` resolving it names config.yaml. A given config must equal the stored one
    except at the dotted keys `free`, and at `fill` keys where the given value is None (it takes the
    stored one); else `run.error` "another config". The given values at `extend` (e.g. "train.steps":
    a longer run) replace the stored ones. started: whether the folder holds a run to resume (default:
    it holds a checkpoint; iNeMo's run resumes per finished task and passes `run.exists()`). kinds: the
    manifest kinds this run may resume (a folder whose manifest.json names another, a run of another
    method, is refused first, as "holds a <kind>, not a <what>"; empty: not checked)."""
    if kinds:
        run.refuse_other_kind(kinds, what)
    latest = run.latest_checkpoint()
    if not (latest is not None if started is None else started):
        return resolve(config or {}), False
    if not run.exists() and latest is not None:
        log.warning("%s holds checkpoints but no config.yaml: resuming from %s with the given config", run.path,
                    latest[1].name)
        return resolve(config or {}), True
    raw = run.read_config()
    if check is not None:
        check(raw)
    try:
        stored = resolve(raw)
    except run.error as exc:
        raise run.error(f"config.yaml: {exc}", run.path) from None
    if config is not None:
        given = resolve(config)
        for key in fill:
            if _get(given, key) is None:
                given = _set(given, key, _get(stored, key))
        a, b = given, stored
        for key in free:
            a, b = _set(a, key, None), _set(b, key, None)
        if a != b:
            raise run.error("the run folder holds a run with another config; use a new --out or the same config",
                            run.path)
        for key in extend:
            stored = _set(stored, key, _get(given, key))
    return stored, True


# ---------------------------------------------------------------------- the loop
@dataclass
class Hooks:
    """What a method plugs into the `Trainer`.

    batches(epoch) -> the epoch's seeded batch order (a list of index lists), after whatever the method
        does at an epoch's start (`set_epoch`, a new round of on-the-fly data).
    load(epoch, orders) -> an iterable of one batch per order (a DataLoader, a generator); None for a
        batch that cannot be trained (dropped: it counts in `position`, not as a step).
    step(batch, step) -> (loss, info) or (loss, info, after): the method's loss of one batch (info: floats
        for the log); `after()`, when given, runs after the optimiser step (NeMo's `update_bank` of
        that step's targets).
    after_step(batch, loss, info): after the optimiser step and `after` (pose's seen counts).
    before_batch(trainer) -> True to end the epoch before its next batch (the rest of its order is
        passed over; pose's artifact filter, which changes the views the next epoch orders).
    state() -> (tensors, meta): what the method adds to each checkpoint (its bank, its own counters; meta
        keys "train_state" are merged into the trainer's place).
    images(batch) -> the number of images of a batch, for the log's images_per_s (default: batch["image"]).
    """

    batches: Callable[[int], Sequence[Sequence[int]]]
    load: Callable[[int, Sequence[Sequence[int]]], Iterable]
    step: Callable[[object, int], tuple[torch.Tensor, dict]]
    after_step: Callable[[object, torch.Tensor, dict], None] | None = None
    before_batch: Callable[[Trainer], bool] | None = None
    state: Callable[[], tuple[dict, dict]] | None = None
    images: Callable[[object], int] | None = None


class Trainer:
    """One training run of `net` through `hooks` for `steps` steps with AdamW and `learning_rate`.

    optim: the optimiser config (lr, weight_decay, warmup_steps, schedule, ...); `optimizer` replaces
        the AdamW built from it. run: the run folder logged and checkpointed into (None: neither, e.g.
        pose's reference encoder). log_every / checkpoint_every: every that many steps and at the last
        (checkpoint_every None: none). keep: checkpoints kept. stop_after: end after that many steps of
        this call (as if killed after a checkpoint; for tests). error: the exception type of its checks
        (the method's) with `hint`, what a diverged run should lower. where: the path its errors name.
        log_extra: fields put first in every log line (iNeMo's task). world: processes of a
        data-parallel run (images_per_s); main: whether this process writes the run folder.
        schedule: step -> its learning rate (default `learning_rate(step, optim, steps)`; the K-fold
        filter passes the rate its torch scheduler set, stepped once an epoch).
    """

    def __init__(self, net: torch.nn.Module, hooks: Hooks, optim, steps: int, *,
                 run: RunFolder | None = None, log_every: int = 1, checkpoint_every: int | None = None,
                 keep: int = 2, stop_after: int | None = None, progress: bool = False, desc: str = "train",
                 error: type[Exception] = RunError, hint: str = "lower optim.lr", where=None,
                 log_extra: Mapping | None = None, optimizer: torch.optim.Optimizer | None = None,
                 meta: Mapping | None = None, world: int = 1, main: bool = True,
                 schedule: Callable[[int], float] | None = None):
        self.net, self.hooks, self.optim, self.steps = net, hooks, optim, int(steps)
        self.run, self.log_every, self.checkpoint_every = run, int(log_every), checkpoint_every
        self.keep, self.stop_after, self.progress, self.desc = int(keep), stop_after, progress, desc
        self.error, self.hint = error, hint
        self.where = where if where is not None else (run.path if run is not None else None)
        self.log_extra, self.meta = dict(log_extra or {}), dict(meta or {})
        self.world, self.main = int(world), bool(main)
        self.optimizer = optimizer if optimizer is not None else torch.optim.AdamW(
            param_groups(net, optim), lr=learning_rate(0, optim, self.steps),
            weight_decay=float(_attributes(optim).weight_decay))
        self.step, self.epoch, self.offset, self.position = 0, 0, 0, 0
        self.done_here = 0  # steps of this call (stop_after)
        self.schedule = schedule or (lambda step: learning_rate(step, self.optim, self.steps))
        self.lr = self.schedule(0)
        self._epoch_size = None  # batches in the current epoch's order

    # ------------------------------------------------------------------ state
    def train_state(self) -> dict:
        """The place in the run: steps taken, the epoch and offset into its batch order (the next epoch's
        start once an epoch is used up), batches met (trained or dropped)."""
        epoch, offset = self.epoch, self.offset
        if self._epoch_size is not None and offset >= self._epoch_size:
            epoch, offset = epoch + 1, 0
        return {"step": self.step, "epoch": epoch, "offset": offset, "position": self.position}

    def restore(self, tensors: Mapping[str, torch.Tensor] | None = None, state: Mapping | None = None) -> None:
        """Continue from a checkpoint: the optimiser state in `tensors` (when it holds one) and the place
        `state` ({"step", "epoch", "offset", "position"}; missing keys: position = step, epoch/offset 0)."""
        if tensors is not None and any(k.startswith(OPTIM_PREFIX) for k in tensors):
            load_optimizer_tensors(self.optimizer, tensors)
        state = dict(state or {})
        self.step = int(state.get("step", 0))
        self.epoch, self.offset = int(state.get("epoch", 0)), int(state.get("offset", 0))
        self.position = int(state.get("position", self.step))

    def save_checkpoint(self) -> None:
        """checkpoints/step_<step>.safetensors: the network, the optimiser, the method's state and the place."""
        tensors = state_tensors(self.net, self.optimizer)
        meta = dict(self.meta)
        place = self.train_state()
        if self.hooks.state is not None:
            extra, more = self.hooks.state()
            tensors.update(extra)
            place.update(more.pop("train_state", {}))
            meta.update(more)
        meta["train_state"] = place
        self.run.save_checkpoint(self.step, tensors, meta, keep=self.keep)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> bool:
        """Train from the current place until `steps` or `stop_after`; True when the run reached `steps`.
        A checkpoint is written at the last step reached (when the run folder has none there yet)."""
        bar = None
        if self.progress and self.main:
            from tqdm import tqdm

            bar = tqdm(total=self.steps, initial=self.step, desc=self.desc, unit="step")
        try:
            self._loop(bar)
        finally:
            if bar is not None:
                bar.close()
        if self.run is not None and self.main and self.checkpoint_every is not None:
            latest = self.run.latest_checkpoint()
            if latest is None or latest[0] != self.step:
                self.save_checkpoint()
        return self.step >= self.steps

    def _stopped(self) -> bool:
        return self.step >= self.steps or (self.stop_after is not None and self.done_here >= self.stop_after)

    def _loop(self, bar) -> None:
        hooks, tick, seen = self.hooks, time.perf_counter(), 0
        while not self._stopped():
            orders = hooks.batches(self.epoch)
            if self.offset >= len(orders):
                self.epoch, self.offset = self.epoch + 1, 0
                continue
            self._epoch_size = len(orders)
            batches = iter(hooks.load(self.epoch, orders[self.offset:]))
            while self.offset < len(orders):
                if hooks.before_batch is not None and hooks.before_batch(self):
                    self.epoch, self.offset = self.epoch + 1, 0
                    break
                batch = next(batches)
                self.offset += 1
                self.position += 1
                if batch is None:  # dropped: passed over, not met again at the same place
                    continue
                loss, info = self._train_step(batch)
                seen += (hooks.images(batch) if hooks.images is not None else batch["image"].shape[0]) * self.world
                if bar is not None:
                    bar.update(1)
                step = self.step
                if self.run is not None and self.main and (step % self.log_every == 0 or step == self.steps):
                    now = time.perf_counter()
                    self.run.log({**self.log_extra, "step": step, "epoch": self.epoch, "loss": float(loss.detach()),
                                  "lr": self.lr, "images_per_s": seen / max(now - tick, 1e-9), **info})
                    tick, seen = now, 0
                if (self.run is not None and self.main and self.checkpoint_every is not None
                        and (step % int(self.checkpoint_every) == 0 or step == self.steps)):
                    self.save_checkpoint()
                if self._stopped():
                    return
            else:  # the epoch's order is used up
                self.epoch, self.offset = self.epoch + 1, 0

    def _train_step(self, batch) -> tuple[torch.Tensor, dict]:
        step = self.step
        self.lr = self.schedule(step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * group.get("lr_scale", 1.0)
        self.net.train()
        loss, info, *after = self.hooks.step(batch, step)
        if not torch.isfinite(loss):
            if step == 0:  # the initial weights' loss: no update has run, so the learning rate is not the cause
                raise self.error(f"the loss is not finite at step 0, before any update (loss "
                                 f"{float(loss.detach())}): not the learning rate; check the loss settings (a "
                                 f"temperature, a weight) and the input data", self.where)
            raise self.error(f"training diverged at step {step} (loss {float(loss.detach())}); {self.hint}", self.where)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        for fn in after:  # the step's own follow-up (a closure over its targets: NeMo's bank update)
            if fn is not None:
                fn()
        if self.hooks.after_step is not None:
            self.hooks.after_step(batch, loss, info)
        self.step += 1
        self.done_here += 1
        return loss, info
