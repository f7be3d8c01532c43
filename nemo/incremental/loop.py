"""The class-incremental run: every method over the same tasks, evaluated after every task.

    results = nemo.incremental.run_incremental(config, "runs/inemo")

Methods (config `methods`), all with the same backbone, data, steps and exemplar budget:
- "inemo": the bank grows task by task; new classes start inside their reserved cell of the latent
  partition (`latent.py`); the contrastive negatives are every slot of the latent space (config
  `negatives: all_slots`: the bank's classes, the reserved features of the classes to come and of
  the unused slots); training adds the positional regulariser and distillation from the frozen
  previous network over all old classes (`losses.py`, `distillation.variant`); new-class data plus
  the exemplar memory (`exemplars.py`); after each task the clutter bank is refilled from the
  exemplar memory (`clutter_refill`, as the released code: src/models/trainer.py lines 61-66,
  src/models/inemo.py lines 156-170);
- "finetune": the same growing bank, random new features, new-class data only (the lower bound);
- "joint": the growing bank trained on all data of the classes seen so far (the upper bound);
- "inemo_cim": iNeMo whose exemplars are CIM-compressed (`compress.py`) under a byte budget
  (`exemplars.budget_bytes`; the other memory methods then store full images within the same bytes);
- "replay2d": the 2D baseline (nemo.baseline: angle bins + a category head over the class budget,
  restricted to the classes seen), trained on new data plus its own exemplar memory, with
  distillation of the previous network's softened outputs (LwF/iCaRL-style); it classifies by the
  nearest exemplar mean (iCaRL, `replay2d.classifier: nearest_mean`, the default) or by its head
  (`linear`).

A validation split is carved from the training records (`validation.py`: whole instances where a
class has enough of them); after each task the NeMo methods' feature-matching rule is chosen on it
(`validation.match_rules`), never on the test records. Then the model is evaluated by
`nemo.evaluate` on the test objects of every class seen so far (the exemplar memory is checked to
share no object with them), pose with the true class and with the predicted class (iNeMo's
released protocol). Written in `out`:
    config.yaml, manifest.json (methodkit's schema; `step`: the tasks finished over all methods),
    validation.json (the carved split), incremental.json, incremental.md (per-task table),
    accuracy.png, report.html
    <method>/log.jsonl (methodkit's Trainer's lines with the task), <method>/task_<t>/ (a nemo run
    folder: nemo.load works on it; eval/ with metrics.json, metrics_per_category.json; exemplars.json
    and exemplars/ records; task.json)
Every task trains through methodkit's Trainer with nemo's shared `contrastive_step` / `update_bank`
(iNeMo's terms are added in its step function), under the config's `threads` (the caller's count is
restored). A rerun in the same folder with the same config (methods may differ: methodkit's
`resume_config`) resumes: finished tasks (task.json written last) are loaded (network, bank,
exemplar memory), the rest are trained from their start.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import data3d
from aware3d_utils import atomic_save, step_generator, torch_threads
from geom3d.pixels import resize_coordinate
from methodkit.trainer import Hooks, Trainer, module_state, resume_config, state_tensors

from ..backbone import FeatureNet, backbone_config_from_dict
from ..bank import MeshBank
from ..baseline import BaselineModel, BaselineNet, baseline_loss
from ..config import NemoConfig, check_device
from ..contrastive import contrastive_loss, sample_at, vertex_targets
from ..data import (
    category_meshes,
    check_batch_norm,
    epoch_batches,
    eval_loader,
    load_record_folders,
    object_dataset,
    readable_records,
    split_of,
)
from ..errors import NemoError
from ..evaluation import evaluate
from ..model import NemoModel
from ..run import RunFolder
from ..training import contrastive_step, update_bank
from .compress import SOURCE_KEY, compress_record, compressed_bytes, full_bytes, silhouette_or_box
from .config import IncrementalConfig, resolve_incremental_config
from .exemplars import ExemplarMemory, single_objects
from .latent import class_centres, latent_slots, partition_features, reserved_features
from .losses import DISTILLATION_VARIANTS, bank_contrastive_loss, distillation_loss, old_class_memory, positional_loss
from .metrics import summarise_method, task_entry
from .report import write_outputs
from .tasks import tasks_from_config
from .validation import carve_validation, choose_match_rule, rendered_instance

__all__ = ["run_incremental", "run_method"]

log = logging.getLogger(__name__)

#: the methods that train the iNeMo way (latent cells, all-slot negatives, distillation, clutter refill)
INEMO_METHODS = ("inemo", "inemo_cim")


def class_means(net, memory: ExemplarMemory, ncfg, seen) -> torch.Tensor:
    """(len(seen), D) the normalised mean embedding (`_class_embeddings`, iCaRL's) of each seen class's
    exemplars."""
    empty = [c for c in seen if not memory.records([c])]
    if empty:
        raise NemoError(f"replay2d.classifier 'nearest_mean' needs an exemplar of every class; the budget "
                        f"({memory.budget}) leaves none for {empty} (raise it, or use 'linear')")
    return torch.stack([F.normalize(_class_embeddings(net, memory.records([c]), ncfg, seen, True).mean(0), dim=0)
                        for c in seen])


def _objects_of(records, classes: Sequence[str]) -> list:
    return [o for c in classes for o in single_objects(records, c)]


def run_incremental(config: Mapping, out: str | os.PathLike, *, progress: bool = False) -> dict:
    """Run every configured method over the tasks into `out`; returns incremental.json's content.
    Records whose image cannot be read are skipped and counted in the manifest ("skipped")."""
    config = IncrementalConfig.of(resolve_incremental_config(config))
    check_device(config.nemo.device)
    if not config.train_data or not config.test_data:
        raise NemoError("config: 'train_data' and 'test_data' (record folders) are required")
    with RunFolder(out).lock(), torch_threads(int(config.threads)):  # one live run per folder
        return _run_incremental(config, out, progress)


def _run_incremental(config: IncrementalConfig, out, progress: bool) -> dict:
    run = RunFolder(out)
    counts: dict[str, dict] = {"train": {}, "test": {}}
    train = load_record_folders(config.train_data, config.classes, counts["train"])
    test = load_record_folders(config.test_data, config.classes, counts["test"])
    train, bad_train = readable_records(train, "a training record")
    test, bad_test = readable_records(test, "a test record")
    if not train or not test:
        bad = bad_train or bad_test
        raise NemoError(f"no readable {'training' if not train else 'test'} image ({len(bad)} unreadable, e.g. "
                        f"{next(iter(bad.values()))})")
    check_instances(train, test, bool(config.instance_disjoint))
    test_instances = _instances(test, config.classes or sorted({o.category for r in test for o in r.objects}))
    if config.seen_cad_data:
        seen_cad = load_record_folders(config.seen_cad_data, config.classes)
        check_instances(train, seen_cad, False, seen=True)
        test = list(test) + seen_cad_records(seen_cad)
    shared = {str(r.image_path) for r in train} & {str(r.image_path) for r in test}
    if shared:
        raise NemoError(f"train_data and test_data share {len(shared)} images (e.g. {sorted(shared)[0]}); "
                        "evaluation must not see training images")
    classes = list(config.classes or sorted({o.category for r in train for o in r.objects}))
    tasks = tasks_from_config(config.tasks, classes)
    budget = [c for t in tasks for c in t]
    missing = sorted(set(budget) - {o.category for r in test for o in r.objects})
    if missing:
        raise NemoError(f"test_data has no objects of {missing}")
    stored = dataclasses.replace(config, classes=classes).to_dict()
    # resuming (the folder holds a config: finished tasks are its state, not a trainer checkpoint):
    # finished tasks are reused only under the same config; the methods may change
    resume_config(run, stored, resolve_incremental_config, free=("methods",), started=run.exists(),
                  kinds=("nemo.incremental",), what="class-incremental run")
    run.write_config(stored)
    v = config.validation
    train, validation, carved = carve_validation(train, budget, float(v.fraction), v.by,
                                                 int(v.min_instances), int(config.seed))
    carved["test_instances"] = {c: test_instances.get(c, []) for c in budget}
    run.write_json("validation.json", carved)
    run.update_manifest(kind="nemo.incremental", status="running", step=_tasks_done(run),
                        data=[*config.train_data, *config.test_data, *config.seen_cad_data], tasks=tasks,
                        methods=config.methods, validation_objects=len(validation),
                        skipped={"unreadable_train_image": len(bad_train), "unreadable_test_image": len(bad_test)},
                        skipped_images=sorted({**bad_train, **bad_test}),
                        dropped_objects={k: v.get("dropped_objects", {}) for k, v in counts.items()})
    meshes = category_meshes(config.nemo, budget)
    results: dict = {}
    for method in config.methods:
        results[method] = run_method(method, config, tasks, train, test, meshes, run.path / method, progress,
                                     validation)
        run.write_json("incremental.json", results)
        run.update_manifest(step=_tasks_done(run))
    write_outputs(run.path, results, tasks)
    run.update_manifest(status="complete")
    return results


def _tasks_done(run: RunFolder) -> int:
    """The run's progress (its manifest's `step`): the tasks finished over all methods."""
    return len(list(run.path.glob("*/task_*/task.json")))


def check_instances(train, test, disjoint: bool, seen: bool = False) -> None:
    """disjoint: no test render may show an instance (`mesh_ref`: a CAD model, a procedural seed)
    that a training render shows. seen: every test render must show a training instance (the
    `seen_cad` split). Either failing is an error naming an example. Only renders have known
    instances (`validation.rendered_instance`); photographs are not checked."""
    known = {i for r in train for o in r.objects if (i := rendered_instance(o)) is not None}
    for r in test:
        for o in r.objects:
            if rendered_instance(o) is None:
                continue
            if disjoint and o.mesh_ref in known:
                raise NemoError(f"test record {r.image_path} shows the training instance {o.mesh_ref!r}; the test "
                                "must be instance-disjoint (config instance_disjoint: false allows it)")
            if seen and o.mesh_ref not in known:
                raise NemoError(f"seen_cad record {r.image_path} shows {o.mesh_ref!r}, which no training record "
                                "shows; seen_cad_data must render the training instances")


def seen_cad_records(records) -> list:
    """The records tagged as the `seen_cad` splits: "seen_cad" (unoccluded), "seen_cad_L2", ... by
    occlusion level (`nemo.data.split_of`)."""
    out = []
    for r in records:
        level = split_of(r, r.objects[0])
        out.append(dataclasses.replace(r, extra={**r.extra, "split": "seen_cad" if level == "clean"
                                                 else f"seen_cad_{level}"}))
    return out


def _instances(records, classes) -> dict[str, list[str]]:
    """class -> the sorted instances (`mesh_ref`) its rendered records show."""
    out: dict[str, set] = {c: set() for c in classes}
    for r in records:
        for o in r.objects:
            if o.category in out and rendered_instance(o) is not None:
                out[o.category].add(o.mesh_ref)
    return {c: sorted(v) for c, v in out.items()}


def rules_of(method: str, config: IncrementalConfig) -> dict | None:
    """The training rules a NeMo method's task was run under (recorded in task.json; a resumed
    task under other rules is an error). None for replay2d."""
    if method == "replay2d":
        return None
    inemo = method in INEMO_METHODS
    kd = config.distillation
    return {"negatives": config.negatives if inemo or config.negatives != "all_slots" else "all_classes",
            "latent_slots": config.latent.slots if inemo else None,
            "distillation": {"variant": kd.variant, "weight": kd.weight, "temperature": kd.temperature}
            if inemo else None,
            "clutter_refill": bool(config.clutter_refill) and inemo}


def run_method(method: str, config: IncrementalConfig, tasks: Sequence[Sequence[str]], train, test, meshes: Mapping,
               folder: Path, progress: bool = False, validation: Sequence = ()) -> dict:
    """One method over all tasks (see the module docstring): {"per_task": [...], summaries}.
    validation: the records carved from the training data (`validation.py`) for the choices."""
    seed = int(config.seed)
    torch.manual_seed(seed)
    ncfg = config.nemo
    budget = [c for t in tasks for c in t]
    backbone = backbone_config_from_dict(ncfg.backbone)
    two_d = method == "replay2d"
    net = BaselineNet(backbone, len(budget), ncfg.baseline.num_bins) if two_d else FeatureNet(backbone)
    inemo = method in INEMO_METHODS
    slots = latent_slots(len(budget), config.latent.slots)
    centres = class_centres(slots, backbone.feature_dim, seed) if inemo else None
    memory = _exemplar_memory(method, config.exemplars, seed)
    m = _MethodRun(method, config, [list(t) for t in tasks], budget, train, test, meshes, folder, progress,
                   validation, net, memory, centres)
    logbook = RunFolder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = _finished_tasks(folder, len(tasks))  # a rerun resumes after the last finished task
    logbook.filter_log(lambda r: r.get("task", done) < done)  # the lines of tasks trained again go
    bank, old_net, old_memory, per_task = None, None, None, []
    for t in range(len(tasks)):
        tick = time.perf_counter()
        seen = m.seen(t)
        task_dir = folder / f"task_{t}"
        if t < done:
            bank = _restore_task(task_dir, net, seen, two_d, ncfg)
            if memory is not None:
                memory.restore(_load_exemplars(task_dir, seen))
            entry = json.loads((task_dir / "task.json").read_text())
            _check_classifier(entry, method, config, task_dir)
            _check_rules(entry, method, config, task_dir)
            per_task.append(entry)
        else:
            entry, bank = _run_task(m, t, bank, old_net, old_memory)
            entry["seconds"] = round(time.perf_counter() - tick, 2)
            entry["rules"] = rules_of(method, config)
            RunFolder(task_dir).write_json("task.json", entry)  # last: marks the task finished
            per_task.append(entry)
        if inemo:
            old_net = _frozen(net)
            old_memory = old_class_memory(bank, seen)[0].clone()
        elif two_d:
            old_net = _frozen(net)
    return summarise_method(per_task)


@dataclasses.dataclass(frozen=True)
class _MethodRun:
    """What stays the same while one method goes through the tasks (`run_method`): its inputs, and the
    network and exemplar memory it trains and fills task by task (in place)."""

    method: str
    config: IncrementalConfig
    tasks: list[list[str]]
    budget: list[str]  # every class of the tasks, in task order
    train: Sequence
    test: Sequence
    meshes: Mapping
    folder: Path  # the method's folder
    progress: bool
    validation: Sequence  # the records carved from the training data for the choices
    net: nn.Module
    memory: ExemplarMemory | None  # None: a method without exemplars
    centres: torch.Tensor | None  # iNeMo's class centres in the latent space

    @property
    def two_d(self) -> bool:
        return self.method == "replay2d"

    @property
    def inemo(self) -> bool:
        return self.method in INEMO_METHODS

    def seen(self, t: int) -> list[str]:
        """The classes of tasks 0 to t."""
        return [c for task in self.tasks[: t + 1] for c in task]


def _classifier(method: str, config: IncrementalConfig) -> str:
    """The rule a method's accuracies are measured by without a validation choice: replay2d's
    `replay2d.classifier`, the NeMo methods' `classify.match_rule`."""
    return config.replay2d.classifier if method == "replay2d" else config.nemo.classify.match_rule


def _selects(method: str, config: IncrementalConfig) -> bool:
    """Whether the NeMo method's matching rule is chosen on the validation split."""
    return method != "replay2d" and float(config.validation.fraction) > 0


def _check_classifier(entry: Mapping, method: str, config: IncrementalConfig, task_dir: Path) -> None:
    """A finished task measured by another rule than the config's is an error, not a silent mix (a
    task.json without the field predates the rules: the NeMo methods' mean rule, replay2d's head).
    Where the rule is chosen on validation, the task must have been chosen among the same rules."""
    stored = entry.get("classifier", "linear" if method == "replay2d" else "mean")
    if _selects(method, config):
        chosen = (entry.get("validation") or {}).get("match_rules")
        if chosen != list(config.validation.match_rules):
            raise NemoError(f"this finished task's matching rule ({stored!r}) was not chosen on validation among "
                            f"{config.validation.match_rules}; use a new --out", task_dir)
    elif stored != _classifier(method, config):
        raise NemoError(f"this finished task was evaluated with the {stored!r} classifier, the config asks for "
                        f"{_classifier(method, config)!r}; use a new --out", task_dir)


def _check_rules(entry: Mapping, method: str, config: IncrementalConfig, task_dir: Path) -> None:
    """A finished task trained under other rules (negatives, distillation, clutter refill; absent:
    before they were recorded) than the config's is an error."""
    want = rules_of(method, config)
    if want is not None and entry.get("rules") != want:
        raise NemoError(f"this finished task was trained under the rules {entry.get('rules')!r}, the config asks "
                        f"for {want!r}; use a new --out", task_dir)


def _run_task(m: _MethodRun, t: int, bank: MeshBank | None, old_net: nn.Module | None,
              old_memory: torch.Tensor | None) -> tuple[dict, MeshBank | None]:
    """Train task t, select its exemplars, refill the clutter bank, save its model, choose the
    matching rule on validation, evaluate: (its per-task entry, the bank). old_net / old_memory: the
    frozen previous network and its old-class vertex features (the distillation's; None at task 0)."""
    method, config, net, memory, centres, budget = m.method, m.config, m.net, m.memory, m.centres, m.budget
    ncfg, two_d, inemo, folder = config.nemo, m.two_d, m.inemo, m.folder
    new, seen, old_classes = m.tasks[t], m.seen(t), m.seen(t - 1)
    if not two_d:
        bank = _grow_bank(bank, new, m.meshes, budget, centres, ncfg, int(config.seed))
    reserved = None
    if inemo and config.negatives == "all_slots":
        counts = [int(m.meshes[c].num_vertices) for c in budget]
        counts += [max(counts)] * (centres.shape[0] - len(budget))  # unused slots: max_n rows, as released
        reserved = reserved_features(centres, [budget.index(c) for c in seen], counts,
                                     int(config.seed)).to(bank.device)
    if method == "joint":
        records = _objects_of(m.train, seen)
    else:
        records = _objects_of(m.train, new) + (memory.records() if memory is not None else [])
    steps = int(config.steps.first if t == 0 else config.steps.later)
    if two_d:
        step_fn = _baseline_step(net, seen, config, old_net, len(old_classes))
    else:
        step_fn = _nemo_step(net, bank, config, t, torch.tensor([budget.index(c) for c in seen]), centres, reserved,
                             old_net, old_memory)
    _optimise(m, t, records, seen, steps, step_fn)
    task_dir = folder / f"task_{t}"
    if memory is not None:
        embeddings = None
        if memory.strategy == "herding":
            embeddings = {c: _class_embeddings(net, single_objects(m.train, c), ncfg, seen, two_d) for c in new}
        memory.add_classes({c: m.train for c in new}, embeddings)
        if method == "inemo_cim":
            memory.transform(new, _compressor(folder / "exemplars", int(config.exemplars.downsample)))
        RunFolder(task_dir).write_json("exemplars.json", memory.summary())
        if len(memory):
            data3d.save_records(memory.records(), task_dir / "exemplars",
                                shard="memory", format="json")
    if inemo and config.clutter_refill and memory is not None and len(memory):
        refill_clutter(net, bank, memory.records(), ncfg, seen, step_generator(config.seed, t))
    chosen = None
    if _selects(method, config):
        rule, accuracy, n = choose_match_rule(net, bank, m.validation, ncfg, seen, config.validation.match_rules,
                                              batch_size=int(config.eval.batch_size))
        chosen = {"match_rules": list(config.validation.match_rules), "accuracy": accuracy, "objects": n,
                  "match_rule": rule}
        ncfg = dataclasses.replace(ncfg, classify=dataclasses.replace(ncfg.classify, match_rule=rule))
    # after the refill and the rule's choice
    _save_task(task_dir, net, bank, ncfg, seen, two_d, steps, config.train_data)
    means = None
    if two_d and config.replay2d.classifier == "nearest_mean":
        means = class_means(net, memory, ncfg, seen)
        atomic_save(task_dir / "class_means.safetensors",
                    lambda tmp: save_file({"class_means": means.contiguous()}, str(tmp)))
    model = _as_model(net, bank, ncfg, seen, two_d, means)
    evaluation = [r for r in m.test if all(o.category in seen for o in r.objects)]
    if memory is not None:
        memory.check_disjoint(evaluation, task_dir)
    metrics = evaluate({method: model}, evaluation, task_dir / "eval", batch_size=config.eval.batch_size,
                       classify_fit=False, report_examples=0, pose_predicted=True)
    per_category = json.loads((task_dir / "eval" / "metrics_per_category.json").read_text())
    entry = task_entry(t, new, seen, old_classes, metrics[method], per_category[method], len(records),
                       len(memory) if memory is not None else 0, 0.0, memory.used() if memory is not None else 0)
    entry["classifier"] = chosen["match_rule"] if chosen else _classifier(method, config)
    entry["validation"] = chosen
    log.info("%s task %d: %s", method, t, entry["acc_by_split"])
    return entry, bank


def _finished_tasks(folder: Path, n: int) -> int:
    """How many leading tasks of a method folder are finished (their task.json exists)."""
    done = 0
    while done < n and (folder / f"task_{done}" / "task.json").is_file():
        done += 1
    return done


def _restore_task(task_dir: Path, net: nn.Module, seen, two_d: bool, ncfg) -> MeshBank | None:
    """Load a finished task's network (in place) and bank from its checkpoint."""
    tensors, _ = RunFolder(task_dir).load_checkpoint()
    state = module_state(tensors)
    if two_d:  # the saved category head holds the seen classes only
        full = net.state_dict()
        for key in ("category.weight", "category.bias"):
            rows = full[key].clone()
            rows[: state[key].shape[0]] = state[key]
            state[key] = rows
    net.load_state_dict(state)
    if two_d:
        return None
    bank = MeshBank.from_state_dict(tensors, seen, momentum=ncfg.bank.momentum)
    return bank.to(ncfg.device)


def _load_exemplars(task_dir: Path, seen) -> dict[str, list]:
    """class -> its saved exemplar records, in priority order (every seen class, maybe empty)."""
    kept: dict[str, list] = {c: [] for c in seen}
    if (task_dir / "exemplars").is_dir():
        for r in data3d.load_records(task_dir / "exemplars"):
            kept.setdefault(r.objects[0].category, []).append(r)
    return kept


def _exemplar_memory(method: str, ex, seed: int) -> ExemplarMemory | None:
    """The method's memory (ex: the config's exemplars section): a count budget, or a byte budget (full
    images, or CIM-compressed ones)."""
    if method not in ("inemo", "inemo_cim", "replay2d"):
        return None
    if ex.budget_bytes is None:
        return ExemplarMemory(ex.budget, ex.strategy, ex.azimuth_bins, seed)
    factor, cache = int(ex.downsample), {}

    def cim_cost(record) -> int:  # the same for a record and its compressed copy (same source and mask)
        key = _exemplar_name(record)
        if key not in cache:
            cache[key] = compressed_bytes(silhouette_or_box(record), factor)
        return cache[key]

    cost = cim_cost if method == "inemo_cim" else full_bytes
    return ExemplarMemory(ex.budget_bytes, ex.strategy, ex.azimuth_bins, seed, cost=cost)


def _compressor(folder: Path, factor: int):
    """record -> its CIM-compressed copy written under `folder`."""
    return lambda record: compress_record(record, folder, factor, _exemplar_name(record))


def _exemplar_name(record) -> str:
    """A stable file name of an exemplar: its source image's stem and a checksum of (source, box)."""
    source = str((record.extra or {}).get(SOURCE_KEY, record.image_path))
    box = ",".join(f"{float(v):.2f}" for v in record.objects[0].bbox)
    return f"{Path(source).stem}_{zlib.crc32(f'{source}|{box}'.encode()):08x}"


def _frozen(net: nn.Module) -> nn.Module:
    old = copy.deepcopy(net).eval()
    old.requires_grad_(False)
    return old


def _grow_bank(bank, new, meshes, budget, centres, ncfg, seed: int) -> MeshBank:
    """The bank with the new classes added: features from their latent cells (iNeMo) or random."""
    D = ncfg.backbone.feature_dim
    for c in new:
        k = budget.index(c)
        feats = None if centres is None else partition_features(centres, k, meshes[c].num_vertices, seed)
        if bank is None:
            b = ncfg.bank
            bank = MeshBank({c: meshes[c]}, None if feats is None else {c: feats}, feature_dim=D,
                            seed=seed * 1000 + k, momentum=b.momentum, clutter_size=b.clutter_size)
        else:
            bank.add_category(c, meshes[c], feats, seed=seed * 1000 + k)
    return bank.to(ncfg.device)


def _nemo_step(net, bank, config, task: int, global_index, centres, reserved, old_net, old_memory):
    """NeMo's shared `contrastive_step` (its loss: negatives from every class of the bank, every latent
    slot, or NeMo's own-class ones: config `negatives`; clutter from `step_generator(seed, step,
    stream=task)`) + iNeMo's positional and distillation terms (each on when its weight > 0); after the
    optimiser step nemo's `update_bank`."""
    ncfg, pos, kd, seed = config.nemo, config.positional, config.distillation, int(config.seed)
    device = torch.device(ncfg.device)
    if reserved is not None:
        loss_fn = partial(bank_contrastive_loss, reserved=reserved)
    else:
        loss_fn = contrastive_loss if config.negatives == "own_class" else bank_contrastive_loss

    def step(batch, step_index):
        index = batch["category"].to(device)
        loss, info, targets = contrastive_step(net, bank, batch, ncfg, step_index, index, seed=seed, stream=task,
                                               loss_fn=loss_fn)
        vis, features = targets.visible, targets.features
        if centres is not None and pos.weight > 0:
            labels = global_index.to(device)[index][:, None].expand_as(vis)[vis]
            p = positional_loss(features[vis], labels, centres.to(features), pos.temperature)
            loss = loss + pos.weight * p
            info["positional"] = float(p.detach())
        if old_net is not None and old_memory is not None and kd.weight > 0:
            with torch.no_grad():
                old_maps = old_net(batch["image"].to(device))
            old = sample_at(old_maps, resize_coordinate(targets.uv, 1.0 / net.stride))
            d = distillation_loss(features[vis], old[vis], old_memory.to(features), kd.temperature,
                                  t_squared=DISTILLATION_VARIANTS[kd.variant]["t_squared"])
            loss = loss + kd.weight * d
            info["distillation"] = float(d.detach())
        return loss, info, partial(update_bank, bank, index, targets, ncfg.bank.weighting)

    return step


def _baseline_step(net, seen, config, old_net, n_old: int):
    """The 2D baseline's cross-entropy over the seen classes + distillation of the frozen previous
    network's softened angle and old-class logits (`replay2d.distillation_weight` / `_temperature`:
    LwF's softened KL × T², independent of iNeMo's `distillation` variant)."""
    ncfg, r2 = config.nemo, config.replay2d
    kd_weight, T = float(r2.distillation_weight), float(r2.distillation_temperature)
    device = torch.device(ncfg.device)

    def step(batch, step_index):
        images, index = batch["image"].to(device), batch["category"].to(device)
        angles, logits = net(images)
        loss, info = baseline_loss(angles, logits[:, :len(seen)], batch["viewpoint"].to(device), index,
                                   ncfg.baseline.label_smoothing)
        if old_net is not None and kd_weight > 0:
            with torch.no_grad():
                old_angles, old_logits = old_net(images)
            terms = [_soft_kl(angles.reshape(-1, angles.shape[-1]), old_angles.reshape(-1, angles.shape[-1]), T)]
            if n_old > 1:  # one old class has no class distribution to distil
                terms.append(_soft_kl(logits[:, :n_old], old_logits[:, :n_old], T))
            d = sum(terms) / len(terms)
            loss = loss + kd_weight * d
            info["distillation"] = float(d.detach())
        return loss, info, None

    return step


def _soft_kl(new_logits, old_logits, T: float) -> torch.Tensor:
    return F.kl_div(F.log_softmax(new_logits / T, -1), F.log_softmax(old_logits / T, -1), reduction="batchmean",
                    log_target=True) * T * T


def _optimise(m: _MethodRun, task: int, records, seen, steps: int, step_fn) -> None:
    """`steps` steps of methodkit's Trainer (AdamW, nemo's warm-up + schedule) training `m.net` over seeded
    epochs of the records' crops, logged into the method's log.jsonl with the task (no checkpoint: a task's
    model is saved when it is finished)."""
    net, config, method, logbook = m.net, m.config, m.method, RunFolder(m.folder)
    ncfg = config.nemo
    if not records:
        raise NemoError(f"{method} task {task}: no training objects of {list(seen)}")
    dataset = object_dataset(records, ncfg, seen)
    check_batch_norm(len(dataset), ncfg, f"{method} task {task}")
    net.to(torch.device(ncfg.device))
    batch_size, seed = ncfg.data.batch_size, int(config.seed) + 1009 * task

    def batches(epoch: int) -> list:
        dataset.set_epoch(epoch)
        return epoch_batches(len(dataset), batch_size, seed, epoch)

    def load(epoch: int, orders):
        return torch.utils.data.DataLoader(dataset, batch_sampler=orders, collate_fn=data3d.collate_objects,
                                           num_workers=ncfg.data.workers)

    Trainer(net, Hooks(batches, load, step_fn), ncfg.optim, steps, run=logbook,
            log_every=ncfg.train.log_every, progress=m.progress, desc=f"{method} task {task}",
            error=NemoError, hint="lower nemo.optim.lr", where=logbook.path / f"task_{task}",
            log_extra={"task": task}).fit()


@torch.no_grad()
def refill_clutter(net, bank: MeshBank, records: Sequence, ncfg, seen: Sequence[str],
                   seed: int | torch.Generator) -> int:
    """Refill the clutter bank from the exemplar memory's images with the current network (the released
    code's `fill_background_model`, src/models/inemo.py lines 156-170, called after each task at
    src/models/trainer.py lines 61-66: the network in eval mode, clutter features from outside each
    exemplar's object pushed into the FIFO, vertices untouched). The released code runs bank_size //
    len(memory) rounds over the memory, each sampling `num_clutter` random background pixels per image
    (none when the memory is larger than the bank); here each exemplar is read once and
    ⌈K / (len(memory) · clutter_per_image)⌉ · clutter_per_image distinct random background cells of it
    are pushed (the network in eval mode gives the same features every round), so the whole FIFO is
    replaced unless the memory's images have fewer background cells than the bank has rows. `seed`: the
    draws' seed or generator (a run passes `step_generator(seed, task)`). Returns the number of features
    pushed."""
    ncfg = NemoConfig.of(ncfg)
    per_image = ncfg.loss.clutter_per_image
    K = int(bank.clutter.shape[0])
    loader = eval_loader(list(records), ncfg, list(seen))
    rounds = max(1, math.ceil(K / max(1, len(loader.dataset) * per_image)))
    device = bank.device
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    net.eval()
    pushed = 0
    for batch in loader:
        maps = net(batch["image"].to(device))
        targets = vertex_targets(maps, batch["cameras"].to(device), bank, batch["category"].to(device), net.stride,
                                 rounds * per_image, gen)
        feats = targets.clutter[targets.clutter_valid]
        bank.push_clutter(feats)
        pushed += int(feats.shape[0])
    return pushed


@torch.no_grad()
def _class_embeddings(net, objects, ncfg, seen, two_d: bool) -> torch.Tensor:
    """(N, D) unit embeddings of single-object records for herding: the mean of NeMo's feature map,
    or the 2D baseline's pooled encoder output (its penultimate layer, as iCaRL)."""
    device = torch.device(NemoConfig.of(ncfg).device)
    net.eval()
    out = []
    for batch in eval_loader(objects, ncfg, seen):
        images = batch["image"].to(device)
        pooled = net.pooled(images) if two_d else net(images).mean(dim=(2, 3))
        out.append(F.normalize(pooled, dim=-1).cpu())
    return torch.cat(out)


def _save_task(task_dir: Path, net, bank, ncfg, seen, two_d: bool, steps: int, data: Sequence[str]) -> None:
    """The task's model as a nemo run folder (config.yaml + a safetensors checkpoint; nemo.load reads it)."""
    run = RunFolder(task_dir)
    run.update_manifest(step=steps, data=list(data))  # methodkit's keys (kind and status once it is saved)
    ncfg = NemoConfig.of(ncfg)
    run.write_config(dataclasses.replace(ncfg, categories=list(seen), method="baseline" if two_d else "nemo",
                                         train=dataclasses.replace(ncfg.train, steps=steps)))
    state = net.state_dict()
    if two_d:  # the category head of the seen classes only, so that the run loads as a plain baseline
        n = len(seen)
        state = {k: (v[:n] if k in ("category.weight", "category.bias") else v) for k, v in state.items()}
    tensors = state_tensors(state)
    if bank is not None:
        tensors.update(bank.state_dict())
    run.save_checkpoint(steps, tensors, {"method": "baseline" if two_d else "nemo", "categories": list(seen)})
    run.update_manifest(kind="nemo.incremental.task", status="complete", categories=list(seen))


def _as_model(net, bank, ncfg, seen, two_d: bool, means: torch.Tensor | None = None) -> NemoModel | BaselineModel:
    """The task's model for nemo.evaluate: NeMo's, or the 2D baseline read over the seen classes' head
    rows (its head holds the whole class budget), classifying by the nearest of the class means when
    they are given."""
    config = dataclasses.replace(NemoConfig.of(ncfg), categories=list(seen), method="baseline" if two_d else "nemo")
    if two_d:
        return BaselineModel(net, config, seen, class_means=means)
    return NemoModel(net, bank, config, seen)
