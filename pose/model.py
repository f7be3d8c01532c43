"""A trained label-free run as pose estimators, and their evaluation against ground truth.

    model = pose.load("runs/pose")                  # a CanonicalModel: a nemo.NemoModel over the category mesh
    model.estimate_pose(images)                     # per image a methodkit.PoseResult
    pose.evaluate("runs/pose", records, "eval/", supervised_run="runs/nemo")

`load_retrieval(run)` is the one-shot retrieval baseline: the nearest neighbour (cosine over whole
unit feature maps of a frozen network: by default one trained on the reference's views alone, see
`pose.training.reference_encoder`) among the reference image and its generated views, whose absolute
poses are the annotation moved by their known relative poses; `load_retrieval(run, encoder="pose")`
reads the same database through the pose model's network (the ablation "retrieval_pose_network"). Both are
`methodkit.PoseEstimator`s; evaluation is nemo's
(`nemo.evaluate`): the same crops, metrics.json as {method: {split: {acc_pi6, acc_pi18, median_deg,
cls_acc, n}}} for "pose", "oneshot_retrieval", "retrieval_pose_network" and, given a supervised run, "nemo_supervised".
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

import nemo
from aware3d_utils import atomic_write_text
from methodkit.estimator import PoseResult, estimator_inputs
from methodkit.trainer import load_state
from nemo.model import NemoModel, restore_model

from .errors import PoseError, RunFolder

__all__ = ["CanonicalModel", "load", "load_retrieval", "load_supervised", "RetrievalModel", "evaluate",
           "instances_of"]


def _run(run) -> nemo.RunFolder:
    return run if isinstance(run, nemo.RunFolder) else RunFolder(run)


def _pose_config(run: nemo.RunFolder) -> dict:
    """The run's config.yaml; a PoseError when it is another kind of run (no 'nemo' block)."""
    config = run.read_config()
    run.refuse_other_kind(("pose.labelfree",), "pose run", given="run")
    if "nemo" not in config:
        raise PoseError("not a pose run (its config.yaml has no 'nemo' block)", run.path)
    return config


class CanonicalModel(NemoModel):
    """nemo's model over the canonical category mesh, with the one-shot calibration's offsets: fitted
    azimuths and elevations minus (azimuth_offset, elevation_offset) (see `pose.training.one_shot`)."""

    def __init__(self, *args, azimuth_offset: float = 0.0, elevation_offset: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.azimuth_offset, self.elevation_offset = float(azimuth_offset), float(elevation_offset)

    def calibrate_fit(self, fit: dict) -> dict:
        """The fit in the annotations' frame: azimuth and elevation less the one-shot offsets."""
        return dict(fit, azimuth=(fit["azimuth"] - self.azimuth_offset) % (2 * math.pi),
                    elevation=fit["elevation"] - self.elevation_offset)


def load(run, device: str | None = None) -> CanonicalModel:
    """The canonical category model of a pose run: a `nemo.NemoModel` (`estimate_pose(images)` as nemo's)."""
    return _load(run, device)[0]


def _load(run, device: str | None) -> tuple[CanonicalModel, dict]:
    """(the canonical model, the final checkpoint's tensors): one read of the checkpoint."""
    run = _run(run)
    ncfg = nemo.NemoConfig.of(nemo.resolve_config(_pose_config(run)["nemo"]))
    tensors, meta = run.load_checkpoint()
    if meta.get("phase", "final") != "final" and "pose" not in meta:
        raise PoseError("the pose run is not finished (its last checkpoint is a training one); run "
                        "`aware3d pose train` with the same --out to finish it", run.path)
    categories = list(meta["categories"])
    ncfg = dataclasses.replace(ncfg, categories=categories)
    net, bank = restore_model(ncfg, categories, tensors, device or ncfg.device, error=PoseError,
                               source=run.path)
    offsets = meta.get("offsets") or {}
    model = CanonicalModel(net, bank, ncfg, categories, run, azimuth_offset=offsets.get("azimuth", 0.0),
                           elevation_offset=offsets.get("elevation", 0.0))
    return model, tensors


class RetrievalModel:
    """The one-shot retrieval baseline (see the module docstring) as a `methodkit.PoseEstimator`: the
    nearest database entry's angles, rotation only (focal and principal point from the intrinsics),
    score the cosine to it; the category is the one it knows (or the given one)."""

    def __init__(self, net: torch.nn.Module, features: torch.Tensor, angles: torch.Tensor, config,
                 categories: Sequence[str]):
        self.net, self.database, self.angles = net.eval(), features, angles
        self.config, self.categories = nemo.NemoConfig.of(config), list(categories)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    @torch.no_grad()
    def estimate_pose(self, images: torch.Tensor, categories=None, K=None) -> list[PoseResult]:
        images, K, categories = estimator_inputs(images, K, categories, self.categories, PoseError)
        query = F.normalize(self.net(images).flatten(1), dim=-1)
        if query.shape[1] != self.database.shape[1]:
            raise PoseError(f"retrieval: images give {query.shape[1]} feature values, the database "
                             f"{self.database.shape[1]} (use the run's crop size)")
        score, best = (query @ self.database.T).max(1)
        return [PoseResult.rotation(*(float(x) for x in self.angles[best[b]]), K=K[b],
                                    category=self.categories[0] if categories is None else categories[b],
                                    score=float(score[b]))
                for b in range(images.shape[0])]


def load_retrieval(run, device: str | None = None, encoder: str = "baseline") -> RetrievalModel:
    """The one-shot retrieval baseline of a run (encoder "baseline": the encoder its config chose, see
    `pose.config.POSE_DEFAULTS`), or with encoder "pose" the same database described by the pose model's
    network (runs whose baseline already used it store only that one)."""
    if encoder not in ("baseline", "pose"):
        raise PoseError(f"retrieval encoder must be 'baseline' or 'pose', got {encoder!r}")
    return _retrieval(*_load(run, device), encoder)


def _retrieval(model: CanonicalModel, tensors: dict, encoder: str) -> RetrievalModel:
    net, features = model.net, tensors["retrieval.features"]
    if encoder == "pose" and "retrieval_pose.features" in tensors:
        features = tensors["retrieval_pose.features"]
    elif encoder == "baseline" and any(k.startswith("retrieval.model.") for k in tensors):
        net = copy.deepcopy(model.net)
        load_state(net, tensors, prefix="retrieval.model.", error=PoseError)
    angles = tensors["retrieval.angles"]
    if encoder == "pose" and "retrieval_pose.angles" in tensors:  # the orientation check's angles (pose.orient)
        angles = tensors["retrieval_pose.angles"]
    return RetrievalModel(net, features.to(model.device), angles, model.config, model.categories)


def instances_of(run, records) -> dict:
    """What an evaluation's instances are against the run's: {"test": sorted test `mesh_ref`s,
    "reference": the one-shot reference's, "sources": the generated sets' sources', "reference_in_test",
    "sources_in_test" (their overlap with the test)}. Runs trained before the manifest recorded them
    give None for the unknown parts."""
    folder = _run(run)
    manifest = folder.read_json("manifest.json") if (folder.path / "manifest.json").is_file() else {}
    test = sorted({o.mesh_ref for r in records for o in r.objects})
    reference, sources = manifest.get("reference_instance"), manifest.get("source_instances")
    return {"test": test, "reference": reference, "sources": sources,
            "reference_in_test": None if reference is None else reference in test,
            "sources_in_test": None if sources is None else sorted(set(sources) & set(test))}


def load_supervised(supervised_run) -> nemo.NemoModel:
    """`nemo.load(supervised_run)`; a PoseError naming it when it is not a NeMo run (a 2D baseline's numbers
    would be reported as supervised NeMo's)."""
    model = nemo.load(supervised_run)
    if model.method != "nemo":
        raise PoseError(f"--supervised-run: is a run of method {model.method!r}, not a NeMo run (nemo train "
                        "without method=baseline)", supervised_run)
    return model


def evaluate(run, records, out: str | os.PathLike, supervised_run=None, batch_size: int = 16,
             progress: bool = False, require_disjoint: bool = False) -> dict:
    """nemo's evaluation of "pose", "oneshot_retrieval", "retrieval_pose_network" (when the baseline has
    its own encoder) and (given) "nemo_supervised" on `records`. Writes `instances.json`
    (`instances_of`) beside nemo's files. require_disjoint: a test instance that is the one-shot
    reference's or a generated set's source's is an error (the pose run's instances are checked;
    the supervised run's training data is the caller's to keep apart)."""
    folder = _run(run)
    if folder.exists():
        _pose_config(folder)  # another kind of run is said so first
    facts = instances_of(run, records)
    if require_disjoint:
        if facts["reference"] is None or facts["sources"] is None:
            raise PoseError(f"{run}: the run does not record its reference and source instances (trained before "
                             "they were recorded); retrain, or evaluate without require_disjoint")
        if facts["reference_in_test"] or facts["sources_in_test"]:
            shown = sorted(set(facts["sources_in_test"]) | ({facts["reference"]} if facts["reference_in_test"]
                                                            else set()))
            raise PoseError(f"the test records show instances the run saw as reference or sources: {shown[:5]}; "
                             "the test must be instance-disjoint")
    model, tensors = _load(run, None)
    models = {"pose": model, "oneshot_retrieval": _retrieval(model, tensors, "baseline")}
    if "retrieval_pose.features" in tensors:
        models["retrieval_pose_network"] = _retrieval(model, tensors, "pose")
    if supervised_run is not None:
        models["nemo_supervised"] = load_supervised(supervised_run)
    metrics = nemo.evaluate(models, records, out, batch_size=batch_size, classify_fit=False, progress=progress)
    atomic_write_text(Path(out) / "instances.json", json.dumps(facts, indent=1) + "\n")
    return metrics
