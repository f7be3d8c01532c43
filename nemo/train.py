"""Training NeMo (contrastive features + mesh bank) or the 2D baseline into a run folder.

    run = nemo.train(["data/train"], "runs/nemo", config)        # resumes if runs/nemo has a checkpoint

One loop for both methods (config `method`): seeded, resumable batches of `data3d.ObjectDataset`
crops; AdamW with warm-up then cosine (or step) decay (`learning_rate`); a JSON-lines log; safetensors
checkpoints holding the network, the mesh bank, the optimiser state and the step; at the end a loss
curve PNG and the manifest marked complete. NeMo's step: features → `vertex_targets` at the
record's camera → `contrastive_loss` → backward → momentum update of the bank's vertex features and
the clutter FIFO (after the loss, as NeMo: the loss sees the memory of the previous step).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence

import torch

from . import distributed
from .backbone import FeatureNet, backbone_config_from_dict
from .bank import MeshBank
from .baseline import BaselineNet, baseline_loss
from .config import DEFAULTS, check_device, resolve_config
from .contrastive import contrastive_loss, half_turn_loss, neighbour_radius, vertex_targets
from .data import (
    SkippingDataset,
    category_meshes,
    collate_skipping,
    epoch_batches,
    load_record_folders,
    object_dataset,
)
from .errors import NemoError
from .fresh import FreshData, is_datagen_config
from .run import RunFolder, line_plot_png

__all__ = ["train", "learning_rate", "build_model", "optimizer_tensors", "load_optimizer_tensors"]

log = logging.getLogger(__name__)


def learning_rate(step: int, optim: Mapping, steps: int) -> float:
    """The learning rate at `step`: linear warm-up over `warmup_steps`, then cosine decay to
    min_lr_ratio·lr ("cosine"), ×gamma at each milestone fraction of the run ("steps"), or flat."""
    lr, warm = float(optim["lr"]), int(optim["warmup_steps"])
    if step < warm:
        return lr * (step + 1) / warm
    if optim["schedule"] == "constant":
        return lr
    if optim["schedule"] == "steps":
        passed = sum(step >= m * steps for m in optim["milestones"])
        return lr * float(optim["gamma"]) ** passed
    progress = min(1.0, (step - warm) / max(1, steps - warm))
    low = float(optim["min_lr_ratio"])
    return lr * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_model(config: Mapping, categories: Sequence[str], meshes=None):
    """(network, bank) for the config's method: FeatureNet + MeshBank, or BaselineNet + None."""
    backbone = backbone_config_from_dict(config["backbone"])
    if config["method"] == "baseline":
        return BaselineNet(backbone, len(categories), config["baseline"]["num_bins"]), None
    net = FeatureNet(backbone)
    if meshes is None:
        meshes = category_meshes(config, categories)
    b = config["bank"]
    bank = MeshBank(meshes, feature_dim=backbone.feature_dim, seed=config["seed"], momentum=b["momentum"],
                    clutter_size=b["clutter_size"])
    return net, bank


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimiser's per-parameter state as flat tensors ('optim.<param>.<name>')."""
    out = {}
    for pid, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            value = torch.as_tensor(value).detach().cpu()
            out[f"optim.{pid}.{name}"] = value.reshape(1) if value.ndim == 0 else value  # safetensors: no 0-d
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor]) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value.reshape(()) if name == "step" else value
    sd = optimizer.state_dict()
    sd["state"] = state
    optimizer.load_state_dict(sd)


def _resolve_for_run(run: RunFolder, config: Mapping | None) -> tuple[dict, bool]:
    """The run's config: the stored one when resuming (a new `train.steps` may extend it), else the given.
    Checkpoints without config.yaml (deleted, or a copy of the checkpoints alone) resume with the given
    config; a checkpoint that does not fit its network is an error then."""
    latest = run.latest_checkpoint()
    if latest is None:
        return resolve_config(config or {}), False
    if not run.exists():
        log.warning("%s holds checkpoints but no config.yaml: resuming from %s with the given config", run.path,
                    latest[1].name)
        return resolve_config(config or {}), True
    raw = run.read_config()
    if set(raw) == {"nemo", "pose"}:
        raise NemoError("holds a label-free pose run (aware3d pose train), not a NeMo run; use a new --out", run.path)
    try:
        stored = resolve_config(raw)
    except NemoError as exc:
        raise NemoError(f"config.yaml: {exc}", run.path) from None
    if config is not None:
        given = resolve_config(config)
        given_steps = given["train"]["steps"]
        if given["categories"] is None:  # the stored config names the categories the data had
            given["categories"] = stored["categories"]
        a, b = dict(given, train=None), dict(stored, train=None)
        if a != b:
            raise NemoError("the run folder holds a run with another config; use a new --out or the same config",
                            run.path)
        stored["train"]["steps"] = given_steps
    return stored, True


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
    previous = torch.get_num_threads()
    try:
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 holds the run folder's lock
            return _train(data, out, config, progress, stop_after, init, extra_loss)
        if config is not None:
            resolve_config(config)  # a bad config is an error before the folder is touched
        RunFolder(out).refuse_inputs([data] if isinstance(data, (str, os.PathLike, Mapping)) else list(data))
        with RunFolder(out).lock():  # a second training into the same folder is refused while this one runs
            return _train(data, out, config, progress, stop_after, init, extra_loss)
    finally:
        torch.set_num_threads(previous)


def _train(data, out, config, progress, stop_after, init, extra_loss) -> RunFolder:
    run = RunFolder(out)
    config, resuming = _resolve_for_run(run, config)
    check_device(config["device"])
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(int(config["seed"]))
    device = torch.device(config["device"])
    rank, world = distributed.setup(device)
    main = rank == 0  # only rank 0 writes the run folder
    items = [data] if isinstance(data, (str, os.PathLike, Mapping)) else list(data)
    sources = [d for d in items if is_datagen_config(d)]
    if len(sources) > 1:
        raise NemoError("give at most one datagen config for on-the-fly data")
    fresh = FreshData(sources[0], run.path / "fresh") if sources else None
    folders = [d for d in items if not is_datagen_config(d)]
    counts: dict = {}  # objects of other categories dropped from the records
    fixed = load_record_folders(folders, config["categories"], counts) if folders else []

    def records_of(epoch: int) -> list:
        if fresh is None:
            return fixed
        wanted = config["categories"]
        if main:
            round_records = fresh.records(epoch)
            distributed.barrier()
        else:  # rank 0 renders the round; the others read it
            distributed.barrier()
            round_records = fresh.records(epoch, generate_here=False)
        extra = [r for r in round_records if wanted is None or all(o.category in wanted for o in r.objects)]
        return fixed + extra

    records = records_of(start_epoch := _epoch_of_checkpoint(run, resuming))
    if not records:
        raise NemoError("no training records", run.path)
    categories = list(config["categories"] or sorted({o.category for r in records for o in r.objects}))
    config = dict(config, categories=categories)
    dataset = object_dataset(records, config, categories)
    meshes = None
    if fresh is not None and config["meshes"] == DEFAULTS["meshes"]:  # the cuboids of the rendered assets
        meshes = category_meshes(dict(config, meshes=fresh.assets), categories)
    if init is not None:
        net, bank = init
        if bank is not None and bank.categories != categories:
            raise NemoError(f"train: the initial bank holds {bank.categories}, the run trains {categories}")
    else:
        net, bank = build_model(config, categories, meshes)
    net.to(device)
    if bank is not None:
        bank.to(device)
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    optim_cfg, steps = config["optim"], total_steps(config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate(0, optim_cfg, steps),
                                  weight_decay=float(optim_cfg["weight_decay"]))
    start, position = 0, 0
    if resuming:
        tensors, meta = run.load_checkpoint()
        load_network(net, tensors)
        if bank is not None:
            bank = MeshBank.from_state_dict(tensors, categories, momentum=config["bank"]["momentum"]).to(device)
        load_optimizer_tensors(optimizer, tensors)
        start = int(meta["step"])
        position = int(meta.get("position", start))  # batches consumed: the steps plus the dropped batches
        if main:
            run.truncate_log(start)
            if not run.exists():  # checkpoints without config.yaml: the config they resume with
                run.write_config(config)
            data_now = [str(p) if not isinstance(p, Mapping) else "<datagen config>" for p in items]
            before = run.read_json("manifest.json").get("data") if (run.path / "manifest.json").is_file() else None
            if before is not None and before != data_now:  # the manifest says what the run trained on
                log.warning("%s resumes with other --data (%s; before: %s)", run.path, data_now, before)
                history = run.read_json("manifest.json").get("data_history", [])
                run.update_manifest(data=data_now, data_history=[*history, {"until_step": start, "data": before}],
                                    train_objects=len(dataset), **counts)
        log.info("resuming %s at step %d", run.path, start)
    elif main:
        run.start_fresh()  # log lines or a manifest of a run killed before its first checkpoint
        run.write_config(config)
        run.update_manifest(kind=f"nemo.{config['method']}", status="running", categories=categories,
                            data=[str(p) if not isinstance(p, Mapping) else "<datagen config>" for p in items],
                            on_the_fly=fresh is not None, train_objects=len(dataset), **counts)
    train_cfg, loss_cfg = config["train"], config["loss"]
    batch_size = int(config["data"]["batch_size"])
    per_epoch = max(1, len(epoch_batches(len(dataset), batch_size, config["seed"], 0)) // world)
    step, done_here, dropped_in_a_row = start, 0, 0
    # unreadable samples, each counted once however many epochs meet it (a resumed run adds to the stored ones)
    reasons: set[str] = set()
    if resuming and main and (run.path / "manifest.json").is_file():
        reasons.update(run.read_json("manifest.json").get("skipped_samples") or [])
    tick, seen = time.perf_counter(), 0
    bar = _progress(progress and main, steps, start)
    while step < steps and (stop_after is None or done_here < stop_after):
        # the place in the seeded batch order counts every batch, trained or dropped, so a dropped batch
        # is passed over (not met again at the same place for ever) and a resumed run continues exactly
        epoch, offset = divmod(position, per_epoch)
        if fresh is not None and epoch != start_epoch:  # a new round of samples for every epoch
            dataset = object_dataset(records_of(epoch), config, categories)
            start_epoch = epoch
        if fresh is not None and main and config["data"]["prefetch_rounds"] and (epoch + 1) * per_epoch < steps:
            fresh.prefetch(epoch + 1)  # the next round renders while this epoch trains
        dataset.set_epoch(epoch)
        # under torchrun each process takes every world-th batch of the epoch
        batches = epoch_batches(len(dataset), batch_size, config["seed"], epoch)[rank::world][:per_epoch][offset:]
        loader = torch.utils.data.DataLoader(SkippingDataset(dataset), batch_sampler=batches,
                                             collate_fn=collate_skipping, num_workers=int(config["data"]["workers"]))
        for batch in loader:
            position += 1
            for reason in batch["skipped"]:  # unreadable samples: logged, counted in the manifest, not fatal
                if reason not in reasons:
                    log.warning("skipped a training sample: %s", reason)
                reasons.add(reason)
            if batch.get("empty") or (batch["skipped"] and batch["image"].shape[0] < 2):
                # nothing readable, or skips left one item (batch norm cannot train on one): the batch is dropped
                dropped_in_a_row += 1
                if dropped_in_a_row >= 2 * per_epoch:  # a whole epoch without a trainable batch: never will
                    _close(bar, fresh)
                    example = sorted(reasons)[0] if reasons else "?"
                    raise NemoError(f"no batch of a whole epoch could be trained: its images cannot be read "
                                    f"({len(reasons)} unreadable samples, e.g. {example})", run.path)
                continue
            dropped_in_a_row = 0
            lr = learning_rate(step, optim_cfg, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            net.train()
            images = batch["image"].to(device)
            index = batch["category"].to(device)
            if bank is None:
                angle_logits, cls_logits = model(images)
                loss, info = baseline_loss(angle_logits, cls_logits, batch["viewpoint"].to(device), index,
                                           config["baseline"]["label_smoothing"])
            else:
                features = model(images)
                gen = torch.Generator().manual_seed(int(config["seed"]) * 7919 + step)
                targets = vertex_targets(features, batch["cameras"].to(device), bank, index, net.stride,
                                         loss_cfg["clutter_per_image"], gen, object_mask=batch.get("mask"))
                radius = neighbour_radius(loss_cfg, config["data"]["crop_size"], batch["bbox"])
                loss, info = contrastive_loss(targets, bank, loss_cfg["temperature"], radius,
                                              loss_cfg["clutter_weight"], loss_cfg["clutter_regulariser"],
                                              other_classes=loss_cfg["negatives"] == "all_classes")
                if loss_cfg["half_turn_weight"] > 0:
                    term, more = half_turn_loss(features, batch["cameras"].to(device), targets, bank, net.stride,
                                                loss_cfg["half_turn_temperature"])
                    loss, info = loss + loss_cfg["half_turn_weight"] * term, {**info, **more}
                if extra_loss is not None:
                    term, more = extra_loss(step, batch, features, targets, bank)
                    loss, info = loss + term, {**info, **more}
            if not torch.isfinite(loss):
                raise NemoError(f"training diverged at step {step} (loss {float(loss)}); lower optim.lr", run.path)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if bank is not None:
                bank.update_vertices(index, targets.features, targets.visible, config["bank"]["weighting"])
                clutter = distributed.all_gather_cat(targets.clutter.detach())
                valid = distributed.all_gather_cat(targets.clutter_valid)
                bank.push_clutter(clutter[valid])
            step += 1
            done_here += 1
            seen += images.shape[0] * world
            if bar is not None:
                bar.update(1)
            if main and (step % train_cfg["log_every"] == 0 or step == steps):
                now = time.perf_counter()
                run.log({"step": step, "epoch": epoch, "loss": float(loss.detach()), "lr": lr,
                         "images_per_s": seen / max(now - tick, 1e-9), **info})
                tick, seen = now, 0
            if main and (step % train_cfg["checkpoint_every"] == 0 or step == steps):
                save_training_checkpoint(run, step, net, bank, optimizer, config, position // per_epoch, per_epoch,
                                         position)
            if step >= steps or (stop_after is not None and done_here >= stop_after):
                break
    _close(bar, fresh)
    skipped: dict[str, int] = {}
    for reason in reasons:
        skipped[reason.split(":", 1)[0]] = skipped.get(reason.split(":", 1)[0], 0) + 1
    distributed.barrier()
    if not main:
        return run
    if step >= steps:
        if run.latest_checkpoint() is None or run.latest_checkpoint()[0] != step:
            save_training_checkpoint(run, step, net, bank, optimizer, config, position // per_epoch, per_epoch,
                                     position)
        write_curves(run)
        run.update_manifest(status="complete", step=step, skipped=skipped, skipped_samples=sorted(reasons))
    else:
        run.update_manifest(status="stopped", step=step, skipped=skipped, skipped_samples=sorted(reasons))
    return run


def _close(bar, fresh) -> None:
    if bar is not None:
        bar.close()
    if fresh is not None:
        fresh.close()


def total_steps(config: Mapping) -> int:
    """The run's training steps: `baseline.steps` for the baseline when set, else `train.steps`."""
    if config["method"] == "baseline" and config["baseline"]["steps"] is not None:
        return int(config["baseline"]["steps"])
    return int(config["train"]["steps"])


def _epoch_of_checkpoint(run: RunFolder, resuming: bool) -> int:
    """The epoch the last checkpoint was written in (0 for a new run); stored in its metadata."""
    if not resuming:
        return 0
    _, meta = run.load_checkpoint()
    return int(meta.get("epoch", 0))


def save_training_checkpoint(run: RunFolder, step: int, net, bank, optimizer, config, epoch: int = 0,
                             per_epoch: int = 0, position: int | None = None) -> None:
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    if bank is not None:
        tensors.update(bank.state_dict())
    tensors.update(optimizer_tensors(optimizer))
    run.save_checkpoint(step, tensors, {"method": config["method"], "categories": config["categories"],
                                        "epoch": epoch, "per_epoch": per_epoch,
                                        "position": step if position is None else int(position)},
                        keep=int(config["train"]["keep_checkpoints"]))


def load_network(net: torch.nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise NemoError(f"checkpoint does not fit the network: missing {missing[:3]}, unexpected {unexpected[:3]}")


def write_curves(run: RunFolder) -> None:
    """loss.png (and lr.png) from the log."""
    records = [r for r in run.read_log() if "loss" in r]
    if records:
        line_plot_png(run.path / "loss.png", {"loss": [(r["step"], r["loss"]) for r in records]}, "training loss")
        line_plot_png(run.path / "lr.png", {"lr": [(r["step"], r["lr"]) for r in records]}, "learning rate")


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step")
