"""Training NeMo (contrastive features + mesh bank) or the 2D baseline into a run folder.

    run = nemo.train(["data/train"], "runs/nemo", config)        # resumes if runs/nemo has a checkpoint

Both methods train through `methodkit.Trainer` (config `method`): seeded, resumable batches of
`data3d.ObjectDataset` crops; AdamW with warm-up then cosine (or step) decay (`learning_rate`); a
JSON-lines log; safetensors checkpoints holding the network, the mesh bank, the optimiser state and the
place in the batch order; at the end a loss curve PNG and the manifest marked complete. NeMo's step is
`contrastive_step` (pose and iNeMo call it too): features → `vertex_targets` at the record's camera →
`contrastive_loss` (+ the half-turn term) → backward → `update_bank`, the momentum update of the bank's
vertex features and the clutter FIFO (after the loss, as NeMo: the loss sees the memory of the
previous step).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import torch

from aware3d_utils import step_generator, torch_threads
from methodkit.trainer import (
    Hooks,
    Trainer,
    learning_rate,
    load_optimizer_tensors,
    load_state,
    optimizer_tensors,
    resume_config,
)

from . import distributed
from .backbone import FeatureNet, backbone_config_from_dict
from .bank import MeshBank
from .baseline import BaselineNet, baseline_loss
from .config import DEFAULTS, NemoConfig, check_device, resolve_config
from .contrastive import contrastive_loss, half_turn_loss, neighbour_radius, vertex_targets
from .data import (
    SkippingDataset,
    category_meshes,
    check_batch_norm,
    collate_skipping,
    epoch_batches,
    load_record_folders,
    object_dataset,
)
from .errors import NemoError
from .fresh import FreshData, is_datagen_config
from .run import RunFolder, line_plot_png

__all__ = ["train", "learning_rate", "build_model", "optimizer_tensors", "load_optimizer_tensors",
           "contrastive_step", "update_bank"]

log = logging.getLogger(__name__)


def build_model(config: NemoConfig | Mapping, categories: Sequence[str], meshes=None):
    """(network, bank) for the config's method: FeatureNet + MeshBank, or BaselineNet + None."""
    cfg = NemoConfig.of(config)
    backbone = backbone_config_from_dict(cfg.backbone)
    if cfg.method == "baseline":
        return BaselineNet(backbone, len(categories), cfg.baseline.num_bins), None
    net = FeatureNet(backbone)
    if meshes is None:
        meshes = category_meshes(cfg, categories)
    bank = MeshBank(meshes, feature_dim=backbone.feature_dim, seed=cfg.seed, momentum=cfg.bank.momentum,
                    clutter_size=cfg.bank.clutter_size)
    return net, bank


def contrastive_step(net, bank: MeshBank, batch: Mapping, config, step: int, index: torch.Tensor, *,
                     forward: Callable | None = None, seed: int | None = None, stream: int = 0,
                     loss_fn: Callable | None = None, extra_loss: Callable | None = None):
    """NeMo's contrastive loss of one batch (config: a `NemoConfig` or its mapping): (loss, info, targets).
    The network's features (`forward(images)`, default `net`: e.g. its DDP wrapper) → `vertex_targets` at
    the batch's cameras against bank rows `index` (clutter drawn from `step_generator(seed, step, stream)`,
    seed default the config's; the records' object masks when the batch holds them) → `contrastive_loss`
    (`loss_fn` with its signature replaces it, e.g. iNeMo's; negatives of every class when
    `loss.negatives` is "all_classes") + `loss.half_turn_weight` × `half_turn_loss` + `extra_loss(step,
    batch, features, targets, bank) -> (term, info)`. After the optimiser step the caller runs `update_bank`."""
    cfg = NemoConfig.of(config)
    lc, device = cfg.loss, bank.device
    images, index = batch["image"].to(device), index.to(device)
    features = (forward or net)(images)
    gen = step_generator(cfg.seed if seed is None else seed, step, stream=stream)
    targets = vertex_targets(features, batch["cameras"].to(device), bank, index, net.stride,
                             lc.clutter_per_image, gen, object_mask=batch.get("mask"))
    radius = neighbour_radius(lc.neighbour_radius, lc.neighbour_scope, cfg.data.crop_size, batch.get("bbox"))
    args = (targets, bank, lc.temperature, radius, lc.clutter_weight, lc.clutter_regulariser)
    if loss_fn is not None:
        loss, info = loss_fn(*args)
    else:
        loss, info = contrastive_loss(*args, other_classes=lc.negatives == "all_classes")
    if lc.half_turn_weight > 0:
        term, more = half_turn_loss(features, batch["cameras"].to(device), targets, bank, net.stride,
                                    lc.half_turn_temperature)
        loss, info = loss + lc.half_turn_weight * term, {**info, **more}
    if extra_loss is not None:
        term, more = extra_loss(step, batch, features, targets, bank)
        loss, info = loss + term, {**info, **more}
    return loss, info, targets


def update_bank(bank: MeshBank, index: torch.Tensor, targets, weighting: str) -> None:
    """After the optimiser step: the momentum update of the bank rows `index` from the step's vertex
    features, and the step's clutter features pushed into the FIFO (gathered from every process
    under torchrun, so the bank stays the same everywhere)."""
    bank.update_vertices(index.to(bank.device), targets.features, targets.visible, weighting)
    clutter = distributed.all_gather_cat(targets.clutter.detach())
    valid = distributed.all_gather_cat(targets.clutter_valid)
    bank.push_clutter(clutter[valid])


def _resolve_for_run(run: RunFolder, config: Mapping | None) -> tuple[NemoConfig, bool]:
    """The run's config: the stored one when resuming (a new `train.steps` may extend it, the other
    `train` keys may change; given categories None take the stored ones), else the given."""

    def check(raw):
        if set(raw) == {"nemo", "pose"}:
            raise NemoError("holds a label-free pose run (aware3d pose train), not a NeMo run; use a new --out",
                            run.path)

    resolved, resuming = resume_config(run, config, resolve_config, free=("train",), fill=("categories",),
                                       extend=("train.steps",), check=check, kinds=("nemo.nemo", "nemo.baseline"),
                                       what="NeMo run")
    return NemoConfig.of(resolved), resuming


def train(data: Sequence[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike,
          config: Mapping | None = None, *, progress: bool = False, stop_after: int | None = None,
          init: tuple[torch.nn.Module, MeshBank | None] | None = None,
          extra_loss: Callable | None = None) -> RunFolder:
    """Train into the run folder `out` from record folders `data` (resumes from its last checkpoint).

    config: a config mapping (see `nemo.config.DEFAULTS`), resolved and stored in config.yaml.
    stop_after: end after this many steps of this call (as if killed after a checkpoint; for tests).
    init: (network, bank) to start from instead of a fresh build (e.g. the previous task's model
        with a grown bank, iNeMo); the bank must hold the run's categories in its order.
    extra_loss: `fn(step, batch, features, targets, bank) -> (loss term, info dict)` added to NeMo's
        loss every step (e.g. iNeMo's positional regulariser and distillation); its info is logged.
    Runs with the config's `threads` torch threads and restores the caller's count afterwards.
    """
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 holds the run folder's lock
        return _train(data, out, config, progress, stop_after, init, extra_loss)
    if config is not None:
        resolve_config(config)  # a bad config is an error before the folder is touched
    RunFolder(out).refuse_inputs([data] if isinstance(data, (str, os.PathLike, Mapping)) else list(data))
    with RunFolder(out).lock():  # a second training into the same folder is refused while this one runs
        return _train(data, out, config, progress, stop_after, init, extra_loss)


def _train(data, out, config, progress, stop_after, init, extra_loss) -> RunFolder:
    run = RunFolder(out)
    cfg, resuming = _resolve_for_run(run, config)
    check_device(cfg.device)
    with torch_threads(cfg.threads):  # the config's count; the caller's comes back
        return _train_resolved(run, cfg, resuming, data, progress, stop_after, init, extra_loss)


def _train_resolved(run: RunFolder, cfg: NemoConfig, resuming: bool, data, progress, stop_after, init,
                    extra_loss) -> RunFolder:
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    rank, world = distributed.setup(device)
    main = rank == 0  # only rank 0 writes the run folder
    items = [data] if isinstance(data, (str, os.PathLike, Mapping)) else list(data)
    sources = [d for d in items if is_datagen_config(d)]
    if len(sources) > 1:
        raise NemoError("give at most one datagen config for on-the-fly data")
    fresh = FreshData(sources[0], run.path / "fresh") if sources else None
    folders = [d for d in items if not is_datagen_config(d)]
    counts: dict = {}  # objects of other categories dropped from the records
    fixed = load_record_folders(folders, cfg.categories, counts) if folders else []

    def records_of(epoch: int) -> list:
        if fresh is None:
            return fixed
        wanted = cfg.categories
        if main:
            round_records = fresh.records(epoch)
            distributed.barrier()
        else:  # rank 0 renders the round; the others read it
            distributed.barrier()
            round_records = fresh.records(epoch, generate_here=False)
        extra = [r for r in round_records if wanted is None or all(o.category in wanted for o in r.objects)]
        return fixed + extra

    tensors, meta = run.load_checkpoint() if resuming else ({}, {})
    current = {"epoch": int(meta.get("epoch", 0)), "dropped": 0}  # the epoch whose round `dataset` holds
    records = records_of(current["epoch"])
    if not records:
        raise NemoError("no training records", run.path)
    categories = list(cfg.categories or sorted({o.category for r in records for o in r.objects}))
    cfg = dataclasses.replace(cfg, categories=categories)
    current["dataset"] = dataset = object_dataset(records, cfg, categories)
    check_batch_norm(len(dataset), cfg, "the training data")
    meshes = None
    if fresh is not None and cfg.meshes == DEFAULTS["meshes"]:  # the cuboids of the rendered assets
        meshes = category_meshes(dataclasses.replace(cfg, meshes=fresh.assets), categories)
    if init is not None:
        net, bank = init
        if bank is not None and bank.categories != categories:
            raise NemoError(f"train: the initial bank holds {bank.categories}, the run trains {categories}")
    else:
        net, bank = build_model(cfg, categories, meshes)
    net.to(device)
    if bank is not None:
        bank.to(device)
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    steps, batch_size = total_steps(cfg), cfg.data.batch_size
    per_epoch = max(1, len(epoch_batches(len(dataset), batch_size, cfg.seed, 0)) // world)
    data_now = [str(p) if not isinstance(p, Mapping) else "<datagen config>" for p in items]
    # unreadable samples, each counted once however many epochs meet it (a resumed run adds to the stored ones)
    reasons: set[str] = set()

    def batches(epoch: int) -> list:
        # the place in the seeded batch order counts every batch, trained or dropped, so a dropped batch
        # is passed over (not met again at the same place for ever) and a resumed run continues exactly
        if fresh is not None and epoch != current["epoch"]:  # a new round of samples for every epoch
            current.update(dataset=object_dataset(records_of(epoch), cfg, categories), epoch=epoch)
        if fresh is not None and main and cfg.data.prefetch_rounds and (epoch + 1) * per_epoch < steps:
            fresh.prefetch(epoch + 1)  # the next round renders while this epoch trains
        current["dataset"].set_epoch(epoch)
        # under torchrun each process takes every world-th batch of the epoch
        return epoch_batches(len(current["dataset"]), batch_size, cfg.seed, epoch)[rank::world][:per_epoch]

    def load(epoch: int, orders):
        loader = torch.utils.data.DataLoader(SkippingDataset(current["dataset"]), batch_sampler=orders,
                                             collate_fn=collate_skipping, num_workers=cfg.data.workers)
        for batch in loader:
            for reason in batch["skipped"]:  # unreadable samples: logged, counted in the manifest, not fatal
                if reason not in reasons:
                    log.warning("skipped a training sample: %s", reason)
                reasons.add(reason)
            if batch.get("empty") or (batch["skipped"] and batch["image"].shape[0] < 2):
                # nothing readable, or skips left one item (batch norm cannot train on one): the batch is dropped
                current["dropped"] += 1
                if current["dropped"] >= 2 * per_epoch:  # a whole epoch without a trainable batch: never will
                    example = sorted(reasons)[0] if reasons else "?"
                    raise NemoError(f"no batch of a whole epoch could be trained: its images cannot be read "
                                    f"({len(reasons)} unreadable samples, e.g. {example})", run.path)
                yield None
                continue
            current["dropped"] = 0
            yield batch

    def step(batch, step_index: int):
        index = batch["category"].to(device)
        if bank is None:
            angle_logits, cls_logits = model(batch["image"].to(device))
            return baseline_loss(angle_logits, cls_logits, batch["viewpoint"].to(device), index,
                                 cfg.baseline.label_smoothing)
        loss, info, targets = contrastive_step(net, bank, batch, cfg, step_index, index, forward=model,
                                               extra_loss=extra_loss)
        return loss, info, lambda: update_bank(bank, index, targets, cfg.bank.weighting)

    def state():
        place = trainer.position
        return ({} if bank is None else bank.state_dict()), {"epoch": place // per_epoch, "position": place}

    trainer = Trainer(net, Hooks(batches, load, step, state=state), cfg.optim, steps, run=run,
                      log_every=cfg.train.log_every, checkpoint_every=cfg.train.checkpoint_every,
                      keep=cfg.train.keep_checkpoints, stop_after=stop_after, progress=progress,
                      error=NemoError, hint="lower optim.lr", world=world, main=main,
                      meta={"method": cfg.method, "categories": categories, "per_epoch": per_epoch})
    if resuming:
        try:
            load_state(net, tensors, error=NemoError)
        except NemoError as exc:
            from .model import checkpoint_misfit

            raise NemoError(checkpoint_misfit(cfg, exc), run.path) from None
        if bank is not None:
            bank = MeshBank.from_state_dict(tensors, categories, momentum=cfg.bank.momentum).to(device)
        start = int(meta["step"])
        position = int(meta.get("position", start))  # batches consumed: the steps plus the dropped batches
        epoch, offset = divmod(position, per_epoch)
        trainer.restore(tensors, {"step": start, "position": position, "epoch": epoch, "offset": offset})
        if main:
            run.truncate_log(start)
            if not run.exists():  # checkpoints without config.yaml: the config they resume with
                run.write_config(cfg)
            manifest = run.read_json("manifest.json") if (run.path / "manifest.json").is_file() else {}
            before = manifest.get("data")
            if before is not None and before != data_now:  # the manifest says what the run trained on
                log.warning("%s resumes with other --data (%s; before: %s)", run.path, data_now, before)
                history = [*manifest.get("data_history", []), {"until_step": start, "data": before}]
                run.update_manifest(data=data_now, data_history=history, train_objects=len(dataset), **counts)
            reasons.update(manifest.get("skipped_samples") or [])
        log.info("resuming %s at step %d", run.path, start)
    elif main:
        run.begin(f"nemo.{cfg.method}", cfg.to_dict(), data_now, categories=categories,
                  on_the_fly=fresh is not None, train_objects=len(dataset), **counts)
    try:
        finished = trainer.fit()
    finally:
        if fresh is not None:
            fresh.close()
    skipped = dict(Counter(reason.split(":", 1)[0] for reason in reasons))  # per exception type
    distributed.barrier()
    if not main:
        return run
    if finished:
        write_curves(run)
    run.update_manifest(status="complete" if finished else "stopped", step=trainer.step, skipped=skipped,
                        skipped_samples=sorted(reasons))
    return run


def total_steps(config: NemoConfig | Mapping) -> int:
    """The run's training steps: `baseline.steps` for the baseline when set, else `train.steps`."""
    cfg = NemoConfig.of(config)
    if cfg.method == "baseline" and cfg.baseline.steps is not None:
        return cfg.baseline.steps
    return cfg.train.steps


def write_curves(run: RunFolder) -> None:
    """loss.png (and lr.png) from the log."""
    records = [r for r in run.read_log() if "loss" in r]
    if records:
        line_plot_png(run.path / "loss.png", {"loss": [(r["step"], r["loss"]) for r in records]}, "training loss")
        line_plot_png(run.path / "lr.png", {"lr": [(r["step"], r["lr"]) for r in records]}, "learning rate")
