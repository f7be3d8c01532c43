"""Training the label-free pose estimator from generated sets into a run folder.

    run = pose.train("sets/", "reference/", "runs/pose", config)

1. One neural cylinder per set in one `nemo.MeshBank` (a bank row per set), one shared `nemo.FeatureNet`.
   Each step: crops of views of several sets (`nemo` data pipeline), the views' cameras in their
   set's frame, `nemo.contrastive.vertex_targets` + `contrastive_loss` (NeMo's loss: the known relative
   poses give the pixel correspondences through the set's mesh), AdamW with NeMo's schedule, then the
   bank's momentum update. Visible-vertex counts per set are kept for the merge.
2. Artifact filter, once at `filter.after` of the steps: per generated view the agreement (mean cosine
   between the image features at the visible vertices and the set's vertex features); views below
   median − `filter.mad`·MAD of all views are dropped from then on (never a set's source view).
3. `merge_sets` aligns the sets by rotation search and merges them (aligned / rejected counted).
4. One shot: the merged model's features are turned about the up axis by the shift that best explains
   the annotated image and its generated views at their annotated cameras (`rotation_search`), refined
   by `nemo.fit_pose` fits to them when those agree (`one_shot`).
5. Refinement (`pose.refine`, `pose.refine.steps`): the kept views of the aligned sets, now with
   poses in the canonical frame, train the same network further with NeMo's loop on the category's
   cuboid (run/refine/: the pseudo-labelled records and a nemo run folder).
6. The one-shot retrieval baseline's database: the reference's own generated set (if it was among
   the sources), its views' absolute poses = the annotation moved by their relative poses, described
   by a network trained on those views alone (`reference_encoder`, `pose.retrieval.encoder:
   reference`) and, as an ablation, by the pose model's final network.
Steps 1-2 and the reference encoder train through `methodkit.Trainer` with `nemo.training.contrastive_step`
(the artifact filter is its `before_batch` hook, the seen counts its step's follow-up).
The run folder is methodkit's (`pose.errors.RunFolder`, raising `PoseError`): config.yaml ({"nemo":
resolved nemo config, "pose": this module's block}), manifest.json, log.jsonl, checkpoints/, loss.png.
A killed run resumes from its last training checkpoint (network, per-set bank, seen counts, optimiser,
the filter's kept views and the position in the seeded batch order), so it ends exactly as an
uninterrupted run. Bad input raises `PoseError`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

import data3d
import geom3d
import nemo
from aware3d_utils import torch_threads
from methodkit.trainer import Hooks, Trainer, load_state, resume_config, state_tensors
from nemo.config import NemoConfig, check_device
from nemo.contrastive import vertex_targets
from nemo.data import category_meshes, epoch_batches, object_dataset, readable_records
from nemo.model import NemoModel
from nemo.training import build_model, contrastive_step, update_bank, write_curves

from .config import PoseConfig, resolve_pose_config
from .errors import PoseError, RunFolder
from .merge import MergeResult, merge_sets
from .mesh import CylinderLayout, neural_cylinder, shift_features, shift_of_angle
from .orient import check_sources, decide
from .refine import pseudo_labelled, refine
from .report import write_run_report
from .sets import GeneratedSet, is_source_view, load_sets, read_summary, relative_pose_of

__all__ = ["train"]

log = logging.getLogger(__name__)

def _reference(reference) -> data3d.ImageRecord:
    if isinstance(reference, data3d.ImageRecord):
        return reference
    records = data3d.load_records(reference)
    if not records or not records[0].objects:
        raise PoseError("the reference holds no annotated object", reference)
    return records[0]


def _batch(dataset, indices):
    return data3d.collate_objects([dataset[i] for i in indices])


@torch.no_grad()
def _agreement(maps, cameras, bank, index, stride) -> torch.Tensor:
    """(B,) mean cosine between each image's features at its visible vertices and bank rows `index`."""
    t = vertex_targets(maps, cameras, bank, index, stride, 1)
    cos, vis = (t.features * bank.features[index]).sum(-1), t.visible.float()
    return (cos * vis).sum(-1) / vis.sum(-1).clamp(min=1)


@torch.no_grad()
def view_agreement(net, bank, dataset, set_of, indices, stride, batch_size=16) -> torch.Tensor:
    """(len(indices),) mean cosine between each view's features at its visible vertices and its set's features."""
    out = []
    net.eval()
    for i in range(0, len(indices), batch_size):
        idx = indices[i:i + batch_size]
        batch = _batch(dataset, idx)
        out.append(_agreement(net(batch["image"]), batch["cameras"], bank, torch.tensor([set_of[j] for j in idx]),
                              stride))
    net.train()
    return torch.cat(out)


def _resolve_for_run(run: RunFolder, config: Mapping | None) -> tuple[PoseConfig, bool]:
    """The run's config and whether it resumes: a folder with a checkpoint resumes with its stored config
    (a given config must equal it except for `nemo.train.steps`, which may extend the run). Checkpoints
    without config.yaml resume with the given config (`methodkit.trainer.resume_config`)."""

    def check(raw):
        if set(raw) - {"nemo", "pose"}:
            raise PoseError("holds another kind of run (not a pose run: its config.yaml has no 'nemo' and "
                            "'pose' blocks); use a new --out", run.path)

    resolved, resuming = resume_config(run, config, resolve_pose_config, free=("nemo.train.steps", "nemo.categories"),
                                       extend=("nemo.train.steps",), check=check, kinds=("pose.labelfree",),
                                       what="pose run")
    return PoseConfig.of(resolved), resuming


def train(sets_folder: str | os.PathLike, reference, out: str | os.PathLike, config: Mapping | None = None, *,
          progress: bool = False, stop_after: int | None = None) -> RunFolder:
    """Train from a generated-sets folder and one annotated reference (a record folder or an ImageRecord).

    Resumes from the run folder's last checkpoint (every `nemo.train.checkpoint_every` steps), so a killed
    run continues where it stopped and ends as an uninterrupted one would. stop_after: end after this
    many steps of this call, as if killed after a checkpoint (for tests). Runs with the config's
    `nemo.threads` torch threads and restores the caller's count afterwards."""
    if config is not None:
        resolve_pose_config(config)  # a bad config is an error before the folder is touched
    RunFolder(out).refuse_inputs([sets_folder, reference])
    with RunFolder(out).lock():  # one live training per run folder
        run = RunFolder(out)
        cfg, resuming = _resolve_for_run(run, config)
        check_device(cfg.nemo.device, key="pose config: 'nemo.device'")
        with torch_threads(cfg.nemo.threads):
            torch.manual_seed(cfg.nemo.seed)
            return _train(run, cfg, resuming, _read_inputs(sets_folder, reference), progress, stop_after)


def _train(run: RunFolder, cfg: PoseConfig, resuming: bool, inputs: _Inputs, progress: bool,
           stop_after: int | None) -> RunFolder:
    """Steps 1-6 of the module docstring, each a named part: the label-free training (`_LabelFree`, the
    trainer's hooks), the merge and one shot (`_canonicalise`), the refinement (`_refine`), the final
    checkpoint with the retrieval baseline's database (`_final_tensors`)."""
    ncfg = dataclasses.replace(cfg.nemo, categories=[inputs.category])
    job = _LabelFree(inputs, ncfg, cfg.pose)
    trainer = job.trainer(run, progress, stop_after)
    if resuming:
        if job.resume(run, trainer, cfg):
            return run
    else:
        run.begin("pose.labelfree", cfg, inputs.data, categories=[inputs.category], sets=len(inputs.sets),
                  views=len(inputs.records), synthesizer=inputs.summary.get("synthesizer"),
                  reference_instance=inputs.reference.objects[0].mesh_ref,
                  source_instances=sorted({s["instance"] for s in inputs.summary["sets"] if s.get("instance")}),
                  skipped={"unreadable_view": len(inputs.unreadable)}, skipped_views=sorted(inputs.unreadable))
    if not trainer.fit():
        run.update_manifest(status="stopped", step=trainer.step)
        return run
    step = trainer.step
    canon = _canonicalise(job)
    refined = _refine(job, canon, run, None if stop_after is None else stop_after - trainer.done_here)
    if refined is None:
        run.update_manifest(status="stopped", step=step, refine="stopped")
        return run
    model, offsets, pseudo = refined
    tensors = _final_tensors(job, canon, model, run)
    merged, sets = canon.merged, inputs.sets
    report = {"aligned": merged.aligned, "rejected": merged.rejected, "reference_set": sets[merged.reference].id,
              "shifts": merged.shifts.tolist(), "margins": [round(float(m), 4) for m in merged.margins],
              "flip_margins": [None if math.isnan(m) else round(m, 4) for m in merged.flip_margins.tolist()],
              "flip_rejected": [sets[k].id for k in merged.flipped],
              "filtered_views": job.state["dropped"], "orientation": canon.orientation, "one_shot": canon.calib,
              "retrieval_views": len(canon.views), "refine_steps": _refine_steps(job), "pseudo_labelled_views": pseudo}
    # the final checkpoint replaces the last training one (same step): a finished run is not resumed
    run.save_checkpoint(step, tensors, {"method": "nemo", "categories": [inputs.category], "phase": "final",
                                        "pose": report, "offsets": offsets, "sets": inputs.set_ids}, keep=1)
    run.write_json("canonicalisation.json", report)
    write_curves(run)
    write_run_report(run.path, inputs.folder)
    run.update_manifest(status="complete", step=step, **{k: report[k] for k in ("aligned", "rejected",
                                                                             "filtered_views")})
    return run


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """A pose training's inputs, read and checked by `_read_inputs`."""

    folder: str | os.PathLike  # the sets folder
    data: list  # what the manifest records as the run's inputs
    summary: dict  # sets.json
    category: str
    mesh: geom3d.Mesh  # the neural cylinder every set starts from
    layout: CylinderLayout
    reference: data3d.ImageRecord  # the annotated image
    sets: list  # the generated sets, their unreadable views dropped
    unreadable: dict  # {image: reason} of the dropped views
    records: list  # every view of every set, set by set
    set_of: list  # each view's set index
    is_source: list  # whether each view is its set's source
    set_ids: list[str]  # the sets' ids, in order


def _read_inputs(sets_folder, reference) -> _Inputs:
    """The sets folder and the reference read and checked (a PoseError naming the file otherwise)."""
    sets, summary = load_sets(sets_folder), read_summary(sets_folder)
    if not sets:
        raise PoseError("no generated sets", sets_folder)
    category = summary["category"]
    if "cylinder" not in summary:
        raise PoseError("cannot be read as a sets index: no 'cylinder' (the neural mesh's shape)",
                        Path(sets_folder) / "sets.json")
    mesh, layout = neural_cylinder(**summary["cylinder"])
    ref_record = _reference(reference)
    if ref_record.objects[0].category != category:
        raise PoseError(f"{reference if not isinstance(reference, data3d.ImageRecord) else ref_record.image_path}: "
                         f"the reference shows a {ref_record.objects[0].category!r}, the sets a {category!r}")
    sets, unreadable = _readable_sets(sets)
    if not sets:
        raise PoseError(f"{sets_folder}: no generated set has a readable image ({len(unreadable)} unreadable, e.g. "
                         f"{next(iter(unreadable.items()))})")
    records = [r for s in sets for r in s.records]
    data = [str(sets_folder), str(reference) if not isinstance(reference, data3d.ImageRecord) else "<record>"]
    return _Inputs(sets_folder, data, summary, category, mesh, layout, ref_record, sets, unreadable, records,
                   [k for k, s in enumerate(sets) for _ in s.records], [is_source_view(r.objects[0]) for r in records],
                   [s.id for s in sets])


class _LabelFree:
    """Steps 1-2 as `methodkit.Trainer` hooks: one neural cylinder per set in one bank and one network,
    trained with nemo's `contrastive_step` on the views still `active`; the step's follow-up counts the
    vertices each set's views see (`seen`, the merge's weights); the artifact filter is `before_batch`;
    the bank, the seen counts and the active views are the checkpoint's own state."""

    def __init__(self, inputs: _Inputs, ncfg: NemoConfig, pcfg):
        self.inputs, self.ncfg, self.pcfg = inputs, ncfg, pcfg
        self.dataset = object_dataset(inputs.records, ncfg, [inputs.category])
        self.net, self.bank = _fresh_model(ncfg, {s.id: inputs.mesh for s in inputs.sets})
        steps = ncfg.train.steps
        self.state = {"dropped": 0, "filter_step": int(pcfg.filter.after * steps) if pcfg.filter.enabled else -1}
        # the orientation check's witnesses, the sources, are left out of the label-free training (pose.orient)
        self.active = [j for j in range(len(inputs.records)) if not (pcfg.merge.orient and inputs.is_source[j])]
        if not self.active:
            raise PoseError(f"{inputs.folder}: no generated view to train on (the sets hold their sources only, "
                             "which pose.merge.orient leaves out of training)")
        self.seen = torch.zeros(len(inputs.sets), inputs.layout.num_vertices)

    def batches(self, epoch: int):
        # the position in the run is (epoch, offset into its seeded batch order): a resumed run replays it
        self.dataset.set_epoch(epoch)
        return epoch_batches(len(self.active), self.ncfg.data.batch_size, self.ncfg.seed, epoch)

    def load(self, epoch: int, orders):
        for order in orders:
            idx = [self.active[i] for i in order]
            yield dict(_batch(self.dataset, idx), rows=torch.tensor([self.inputs.set_of[j] for j in idx]))

    def artifact_filter(self, trainer: Trainer) -> bool:
        if trainer.step != self.state["filter_step"]:
            return False
        is_source = self.inputs.is_source
        agree = view_agreement(self.net, self.bank, self.dataset, self.inputs.set_of, self.active, self.net.stride)
        med = agree.median()
        mad = (agree - med).abs().median().clamp(min=1e-6)
        keep = [j for j, a in zip(self.active, agree) if is_source[j] or a >= med - self.pcfg.filter.mad * mad]
        self.state.update(dropped=len(self.active) - len(keep), filter_step=-1)
        self.active = keep
        log.info("artifact filter: dropped %d of %d views", self.state["dropped"], len(agree))
        return True  # the batch order was over the old list: the next epoch orders the kept views

    def step(self, batch, step_index: int):
        index = batch["rows"]
        loss, info, targets = contrastive_step(self.net, self.bank, batch, self.ncfg, step_index, index)

        def after():
            update_bank(self.bank, index, targets, self.ncfg.bank.weighting)
            self.seen.index_add_(0, index, targets.visible.float()[:, : self.inputs.layout.num_vertices])

        return loss, info, after

    def checkpoint_state(self):
        tensors = {**self.bank.state_dict(prefix="sets."), "sets.seen": self.seen.contiguous(),
                   "train.active": torch.tensor(self.active, dtype=torch.long)}
        return tensors, {"train_state": dict(self.state)}

    def trainer(self, run: RunFolder, progress: bool, stop_after: int | None) -> Trainer:
        ncfg = self.ncfg
        hooks = Hooks(self.batches, self.load, self.step, before_batch=self.artifact_filter,
                      state=self.checkpoint_state, images=lambda batch: len(batch["rows"]))
        return Trainer(self.net, hooks, ncfg.optim, ncfg.train.steps, run=run, log_every=ncfg.train.log_every,
                       checkpoint_every=ncfg.train.checkpoint_every, keep=ncfg.train.keep_checkpoints,
                       stop_after=stop_after, progress=progress, desc="pose train", error=PoseError,
                       hint="lower nemo.optim.lr", meta={"method": "nemo", "categories": [self.inputs.category],
                                                          "phase": "training", "sets": self.inputs.set_ids})

    def resume(self, run: RunFolder, trainer: Trainer, cfg: PoseConfig) -> bool:
        """Restore the last checkpoint into the network, bank, counts and `trainer`; True when the run is
        complete already (nothing to do)."""
        tensors, meta = run.load_checkpoint()
        folder = self.inputs.folder
        if meta.get("phase") == "final" or "pose" in meta:  # a finished run (older ones lack the phase)
            if meta["step"] >= self.ncfg.train.steps:
                log.info("%s is complete at step %d", run.path, meta["step"])
                return True
            raise PoseError(f"the run is complete at step {meta['step']}; train longer into a new folder", run.path)
        if meta.get("sets") != self.inputs.set_ids:
            raise PoseError(f"the run was trained on other sets than {folder}", run.path)
        if "train.active" in tensors and tensors["train.active"].numel() and \
                int(tensors["train.active"].max()) >= len(self.inputs.records):
            raise PoseError(f"the run was trained on other views than {folder} now holds "
                            f"(an image became unreadable or was added?)", run.path)
        if not run.exists():
            run.write_config(cfg)
        load_state(self.net, tensors, error=PoseError)
        self.bank = nemo.MeshBank.from_state_dict(tensors, self.inputs.set_ids, prefix="sets.",
                                                  momentum=self.ncfg.bank.momentum)
        self.seen = tensors["sets.seen"].clone()
        self.active = tensors["train.active"].tolist()
        place = dict(meta["train_state"])
        self.state.update(dropped=place.pop("dropped"), filter_step=place.pop("filter_step"))
        trainer.restore(tensors, place)
        run.truncate_log(trainer.step)
        log.info("resuming %s at step %d", run.path, trainer.step)
        return False


@dataclasses.dataclass(frozen=True)
class _Canonical:
    """Steps 3-4's outcome (`_canonicalise`)."""

    merged: MergeResult
    clutter: torch.Tensor  # the trained clutter features
    model: NemoModel  # the category model in the canonical frame
    views: list  # the one shot's annotated views: the reference and, when it was a source, its generated views
    angles: torch.Tensor  # their absolute angles (half a turn corrected where the orientation check says)
    generated_angles: torch.Tensor  # the angles they were generated at (the retrieval baseline's database)
    own: GeneratedSet | None  # the reference's own generated set
    orientation: dict
    calib: dict  # `one_shot`'s result
    offsets: dict  # the azimuth and elevation offsets below one step


def _canonicalise(job: _LabelFree) -> _Canonical:
    """Steps 3-4: merge the sets (`merge_sets`), check their orientation against their sources
    (`pose.orient`) and fix the canonical frame from the annotated image (`one_shot`)."""
    inputs, ncfg, mcfg = job.inputs, job.ncfg, job.pcfg.merge
    sets, layout, category, ref_record = inputs.sets, inputs.layout, inputs.category, inputs.reference
    job.net.eval()
    feats = job.bank.features[:, : layout.num_vertices]
    merged = merge_sets(feats, job.seen, layout, mcfg.min_margin, mcfg.rounds, float(mcfg.flip_ratio))
    log.info("merge: %d sets aligned, %d rejected (%d by the front/back guard; reference %s)", merged.aligned,
             merged.rejected, len(merged.flipped), sets[merged.reference].id)
    clutter = job.bank.clutter.clone()
    model = _category_model(job.net, inputs.mesh, merged.features, clutter, ncfg, category)
    views, angles = calibration_views(sets, ref_record)
    own = reference_set(sets, ref_record)
    own_shift = -1 if own is None else int(merged.shifts[sets.index(own)])
    # a run started without the check (or before it existed) trained on its sources: they are no witnesses
    orient, held_out = bool(mcfg.orient), not any(inputs.is_source[j] for j in job.active)
    if orient and not held_out:
        log.warning("orientation check skipped: this run trained on its source images (resumed from a run "
                    "started without pose.merge.orient)")
    orientation = _orientation(model, sets, merged.shifts, layout, category, own, orient and held_out)
    generated_angles = angles
    known = None
    if own_shift >= 0:
        # the reference is a source: its set's frame has the source at azimuth 0, so its merge shift and
        # the annotation give the frame's rotation (a_canonical = a_set − shift·step − rotation)
        known = -own_shift * layout.step - float(angles[0, 0])
        if orientation["reference_turned"]:  # its generated views, and so its set's frame, are half a turn off
            known += math.pi
            angles = angles.clone()
            angles[1:, 0] = (angles[1:, 0] + math.pi) % (2 * math.pi)
    calib = one_shot(model, views, angles, category, layout, known)
    canonical = shift_features(merged.features, layout, calib["shift"])
    model = _category_model(job.net, inputs.mesh, canonical, clutter, ncfg, category)
    offsets = {"azimuth": calib["azimuth_offset"], "elevation": calib["elevation_offset"]}
    return _Canonical(merged, clutter, model, views, angles, generated_angles, own, orientation, calib, offsets)


def _refine_steps(job: _LabelFree) -> int:
    steps = job.pcfg.refine.steps
    return job.ncfg.train.steps if steps is None else steps


def _refine(job: _LabelFree, canon: _Canonical, run: RunFolder, remaining: int | None):
    """Step 5: (model, offsets, pseudo-labelled views) after the refinement in the canonical frame (none
    with 0 refinement steps: the one-shot model and its offsets), or None when `remaining` (steps this
    call may still train; None: no limit) ends the call first."""
    steps, ncfg, category = _refine_steps(job), job.ncfg, job.inputs.category
    if steps <= 0:
        return canon.model, canon.offsets, 0
    cuboid = category_meshes(ncfg, [category])[category]
    pseudo = pseudo_labelled(job.inputs.sets, job.active, canon.merged.shifts, canon.calib, job.inputs.layout, cuboid)
    if remaining is not None and remaining <= 0:
        return None
    refined = refine(pseudo, job.net, canon.clutter, ncfg, category, run.path / "refine", steps, remaining)
    if refined is None:
        return None
    # trained in the canonical frame: no offsets
    return NemoModel(refined[0], refined[1], ncfg, [category]), {"azimuth": 0.0, "elevation": 0.0}, len(pseudo)


def _final_tensors(job: _LabelFree, canon: _Canonical, model: NemoModel, run: RunFolder) -> dict:
    """Step 6: the final checkpoint's tensors (the model, the one-shot retrieval baseline's database and
    encoder, the per-set meshes for diagnostics)."""
    ncfg, category, rcfg = job.ncfg, job.inputs.category, job.pcfg.retrieval
    crops = _crops(canon.views, ncfg, category)["image"]
    features = F.normalize(model.features(crops).flatten(1), dim=-1)
    tensors = state_tensors(model.net)
    tensors.update(model.bank.state_dict())
    if rcfg.encoder == "reference":
        records = canon.own.records if canon.own is not None else [job.inputs.reference]
        steps = ncfg.train.steps if rcfg.steps is None else rcfg.steps
        encoder = reference_encoder(records, job.inputs.mesh, ncfg, category, steps, run.path)
        with torch.no_grad():
            tensors["retrieval.features"] = F.normalize(encoder(crops).flatten(1), dim=-1).contiguous()
        tensors.update(state_tensors(encoder, prefix="retrieval.model."))
        tensors["retrieval_pose.features"] = features.contiguous()  # the same views
        # the ablation over pose's network uses what pose knows (the orientation check); the baseline
        # knows the reference's set alone, so its views keep the angles they were generated at
        tensors["retrieval_pose.angles"] = canon.angles.clone().contiguous()
    else:
        tensors["retrieval.features"] = features.contiguous()
    tensors["retrieval.angles"] = canon.generated_angles.contiguous()
    tensors.update(job.bank.state_dict(prefix="sets."))  # the per-set meshes, for diagnostics
    tensors["sets.seen"] = job.seen.contiguous()
    return tensors


def _orientation(model, sets, shifts, layout, category, own, enabled: bool) -> dict:
    """The orientation check (`pose.orient`) as canonicalisation.json reports it: which sets' sources
    disagree with their frames by half a turn, their margins and fitted azimuths (degrees, merge frame),
    and whether the annotated image's set was turned (the frame corrected)."""
    annotated = None if own is None else sets.index(own)
    out = {"enabled": enabled, "annotated_set": None if own is None else own.id, "turned": [], "margins": None,
           "fitted_azimuth_deg": None, "checked": 0, "unreliable": False, "reference_turned": False}
    if not enabled:
        return out
    sources = [s.records[0] if s.records and is_source_view(s.records[0].objects[0]) else None for s in sets]
    found = check_sources(model, sources, shifts, layout, category,
                          lambda records: _crops(records, model.config, category))
    decision = decide(found["margins"], annotated)
    out.update(turned=[sets[i].id for i in decision["turned"]], checked=decision["checked"],
               unreliable=decision["unreliable"], reference_turned=decision["reference_turned"],
               margins=[None if math.isnan(m) else round(m, 4) for m in found["margins"].tolist()],
               fitted_azimuth_deg=[None if math.isnan(a) else round(math.degrees(a), 1)
                                   for a in found["fitted"].tolist()])
    log.info("orientation check: %d of %d sets turned half a turn against their sources (%s)%s",
             len(decision["turned"]), decision["checked"], ", ".join(out["turned"]) or "none",
             "; the annotated image's set is one: its frame is turned back" if decision["reference_turned"] else
             ("; half or more: not trusted, nothing corrected" if decision["unreliable"] else ""))
    return out


def _readable_sets(sets) -> tuple[list, dict[str, str]]:
    """The sets with their unreadable views dropped (a set whose source view is unreadable is dropped
    whole: its frame is the source's), and {image: reason} of what was dropped."""
    kept, unreadable = [], {}
    for s in sets:
        records, bad = readable_records(s.records, f"a view of {s.id}")
        unreadable.update(bad)
        if bad and str(s.records[0].image_path) in bad:
            log.warning("dropping %s: its source view cannot be read", s.id)
            continue
        kept.append(s if not bad else dataclasses.replace(s, records=records))
    return kept, unreadable


def _fresh_model(ncfg: NemoConfig, meshes: Mapping):
    """(network, bank with one row per mesh) of a new contrastive training: nemo's `build_model`."""
    return build_model(dataclasses.replace(ncfg, method="nemo"), list(meshes), dict(meshes))


def reference_encoder(records, mesh, ncfg: NemoConfig | Mapping, category: str, steps: int, where) -> nemo.FeatureNet:
    """A fresh network trained as `train` trains its own (same architecture, loss, schedule and seed), on
    the views one annotated image gives: the reference and its generated views, one neural cylinder in the
    reference's camera frame. The one-shot retrieval baseline's encoder: what the one shot alone learns."""
    ncfg = NemoConfig.of(ncfg)
    torch.manual_seed(ncfg.seed)
    dataset = object_dataset(records, ncfg, [category])
    net, bank = _fresh_model(ncfg, {"reference": mesh})
    batch_size = ncfg.data.batch_size

    def batches(epoch: int):
        dataset.set_epoch(epoch)
        return epoch_batches(len(records), batch_size, ncfg.seed, epoch)

    def train_step(batch, step_index: int):
        index = torch.zeros(batch["image"].shape[0], dtype=torch.long)  # every view is of the one set
        loss, info, targets = contrastive_step(net, bank, batch, ncfg, step_index, index)
        return loss, info, lambda: update_bank(bank, index, targets, ncfg.bank.weighting)

    hooks = Hooks(batches, lambda epoch, orders: (_batch(dataset, list(o)) for o in orders), train_step)
    Trainer(net, hooks, ncfg.optim, steps, error=PoseError, hint="lower nemo.optim.lr", where=where).fit()
    return net.eval()


def _category_model(net, mesh, features, clutter, ncfg, category) -> NemoModel:
    bank = nemo.MeshBank({category: mesh}, {category: features}, clutter, momentum=ncfg.bank.momentum)
    return NemoModel(net, bank, ncfg, [category])


def _crops(records, ncfg, category):
    dataset = object_dataset(records, ncfg, [category], train=False)
    return _batch(dataset, list(range(len(dataset))))


def calibration_views(sets, ref_record) -> tuple[list, torch.Tensor]:
    """The annotated reference and, when it was a source, its generated views, with absolute angles (N, 3)
    (azimuth, elevation, theta): the annotation moved by each view's known relative pose."""
    vp = ref_record.objects[0].viewpoint
    views = [ref_record]
    angles = [[vp["azimuth"], vp["elevation"], vp["theta"]]]
    own = reference_set(sets, ref_record)
    if own is None:
        log.warning("the reference image is not among the generated sets' sources: one view fixes the pose")
    for r in [] if own is None else own.records[1:]:
        dp, da, _ = relative_pose_of(r.objects[0])
        views.append(r)
        angles.append([(vp["azimuth"] + da) % (2 * math.pi), vp["elevation"] - dp, vp["theta"]])
    return views, torch.tensor(angles, dtype=torch.float32)


def reference_set(sets, ref_record):
    """The generated set whose source is the reference image, or None."""
    name = Path(ref_record.image_path).resolve()  # records folders store absolute or relative paths
    for s in sets:
        if s.records and Path(s.records[0].extra.get("source", "").split("#")[0]).resolve() == name:
            return s
    return None


@torch.no_grad()
def rotation_search(model: NemoModel, views, angles: torch.Tensor, category: str, layout) -> torch.Tensor:
    """(segments,) agreement of the annotated views with the model's cylinder turned by every shift k:
    the mean cosine between each view's features at the vertices it sees from its annotated camera
    (distance: the annotation's, plus the view's Δradius) and the features shifted by k."""
    d0 = float(views[0].objects[0].viewpoint["distance"])
    absolute = []
    for r, (a, e, t) in zip(views, angles.tolist()):
        obj = r.objects[0]
        dr = relative_pose_of(obj)[2] if "relative_pose" in obj.extra else 0.0
        vp = dataclasses.replace(obj.viewpoint, azimuth=a, elevation=e, theta=t, distance=d0 + dr)
        absolute.append(dataclasses.replace(r, objects=(dataclasses.replace(obj, viewpoint=vp),)))
    batch = _crops(absolute, model.config, category)
    maps = model.features(batch["image"])
    mesh, merged = model.bank.mesh(category), model.bank.vertex_features(category)
    names = [f"shift{k}" for k in range(layout.segments)]
    turned = nemo.MeshBank({n: mesh for n in names},
                           {n: shift_features(merged, layout, k) for k, n in enumerate(names)}, model.bank.clutter)
    shifts = [torch.full((len(views),), k) for k in range(layout.segments)]
    return torch.stack([_agreement(maps, batch["cameras"], turned, index, model.net.stride).mean() for index in shifts])


def one_shot(model: NemoModel, views, angles: torch.Tensor, category: str, layout,
             known_rotation: float | None = None) -> dict:
    """Fix the canonical pose from the annotated image (and its generated views, whose absolute poses
    follow from the annotation). The frame's rotation, coarse: `known_rotation` when the reference image
    was a source whose set was aligned (its set's frame and merge shift give it exactly, to a shift),
    else the whole shift of the cylinder's features that best explains the views at their annotated
    cameras (`rotation_search`, exhaustive; measured to flip the frame by 180° on a car run where the
    bookkeeping was right). It is refined by the circular median of (fitted − annotated) azimuth of the
    merged model's fits when that lies within 1.5 steps of it (the fits are finer, but from a coarse
    start they can fail as a whole); the rest below one step is an azimuth offset. The median elevation
    difference of the fits is the elevation offset (the sets assumed a source elevation, so their
    elevations are off by a constant)."""
    scores = rotation_search(model, views, angles, category, layout)
    searched = int(scores.argmax())
    coarse = searched * layout.step if known_rotation is None else float(known_rotation)
    batch = _crops(views, model.config, category)
    results = model.estimate_pose(batch["image"], K=batch["cameras"].K.float(), categories=[category] * len(views))
    fitted = torch.tensor([[r.viewpoint.azimuth, r.viewpoint.elevation] for r in results])
    d_az = torch.atan2(torch.sin(fitted[:, 0] - angles[:, 0]), torch.cos(fitted[:, 0] - angles[:, 0]))
    # circular median: the difference that minimises the summed angular distance to all others
    spread = torch.atan2(torch.sin(d_az[:, None] - d_az[None]), torch.cos(d_az[:, None] - d_az[None])).abs().sum(1)
    fit_rotation = float(d_az[spread.argmin()])
    agree = abs(math.remainder(fit_rotation - coarse, 2 * math.pi)) <= 1.5 * layout.step
    rotation = fit_rotation if agree else math.remainder(coarse, 2 * math.pi)
    shift = shift_of_angle(rotation, layout)
    residual = math.remainder(rotation - shift * layout.step, 2 * math.pi)
    elevation = float((fitted[:, 1] - angles[:, 1]).median())
    return {"rotation": rotation, "shift": shift, "azimuth_offset": residual, "elevation_offset": elevation,
            "views": len(views), "step_deg": math.degrees(layout.step), "searched_shift": searched,
            "search_margin": round(float(scores.max() - scores.median()), 4), "fit_rotation": fit_rotation,
            "fit_agrees": agree, "coarse_from": "search" if known_rotation is None else "reference_set",
            "coarse_rotation": math.remainder(coarse, 2 * math.pi)}
