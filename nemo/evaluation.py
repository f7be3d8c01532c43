"""Evaluation of pose estimators on records: pose accuracy and classification per split.

    metrics = evaluate({"nemo": nemo.load(run), "baseline": nemo.load(baseline_run)}, records, out)

Any `methodkit.PoseEstimator` can be evaluated (NeMo, the 2D baseline, pose's canonical and retrieval
models, iNeMo's per-task models); objects are cropped as its `config` says (a nemo config; nemo's
defaults for an estimator without one). Pose is estimated with the true category given (the PASCAL3D+ /
NeMo protocol); classification is measured separately (`methodkit.evaluate_poses`): NeMo by feature
matching with clutter ("cls_acc") and by fitting every category ("cls_acc_fit"), the baseline by its
category head. Writes, in `out`:
    metrics.json               {method: {split: {"acc_pi6", "acc_pi18", "median_deg", "cls_acc", "n",
                                                  "flip_rate", "azimuth_pi6", "elevation_bias_deg"}}}
    metrics_per_category.json  {method: {split: {category: {...}}}}
    skipped.json               {method: objects skipped because their image could not be read}
    predictions.jsonl          one line per object and method: the estimate ("viewpoint", crop pixels), and
                               for viewers the record's true viewpoint ("truth") and the estimate
                               ("image_viewpoint") in the full image's pixels, "object_index", "mesh_ref"
    meshes.npz                 the fitted meshes: "<method>/<category>/vertices" (V, 3), ".../faces" (F, 3)
    report.html + images/      per-split bars, examples with the mesh drawn at the estimate, worst failures
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch

import data3d
import geom3d
from aware3d_utils import atomic_write_text, plain
from methodkit.estimator import PoseEstimator, evaluate_poses

from .config import NemoConfig
from .data import SkippingDataset, collate_skipping, object_dataset, split_of
from .errors import NemoError
from .model import rotation_of
from .report import write_report

__all__ = ["evaluate", "summarise", "crop_to_image_viewpoint"]

log = logging.getLogger(__name__)


def _wrapped(angle: float) -> float:
    """An angle difference in (−π, π]."""
    return math.remainder(angle, 2 * math.pi)


def summarise(rows: Sequence[dict]) -> dict:
    """{"acc_pi6", "acc_pi18", "median_deg", "cls_acc", "n"} (+ "cls_acc_fit" when present) of rows, and
    where the rows carry the true azimuth and elevation: "azimuth_pi6" (azimuth within 30° of the
    truth), "flip_rate" (azimuth within 30° of the truth's opposite: a front/back confusion) and
    "elevation_bias_deg" (the median of estimated − true elevation, in degrees)."""
    errors = torch.tensor([r["error"] for r in rows], dtype=torch.float64)
    m = geom3d.pose_metrics(errors)
    out = {"acc_pi6": m["acc_pi_6"], "acc_pi18": m["acc_pi_18"], "median_deg": m["median_deg"],
           "cls_acc": sum(r["cls_correct"] for r in rows) / len(rows), "n": len(rows)}
    if all("azimuth_gt" in r for r in rows):
        d = [_wrapped(r["viewpoint"]["azimuth"] - r["azimuth_gt"]) for r in rows]
        out["azimuth_pi6"] = sum(abs(x) <= math.pi / 6 for x in d) / len(rows)
        out["flip_rate"] = sum(abs(_wrapped(x - math.pi)) <= math.pi / 6 for x in d) / len(rows)
        de = torch.tensor([r["viewpoint"]["elevation"] - r["elevation_gt"] for r in rows], dtype=torch.float64)
        out["elevation_bias_deg"] = math.degrees(float(de.median()))
    if all("cls_fit_correct" in r for r in rows):
        out["cls_acc_fit"] = sum(r["cls_fit_correct"] for r in rows) / len(rows)
    if rows and all("error_predicted" in r for r in rows):  # pose with the predicted class (iNeMo's protocol)
        mp = geom3d.pose_metrics(torch.tensor([r["error_predicted"] for r in rows], dtype=torch.float64))
        out.update(acc_pi6_predicted=mp["acc_pi_6"], acc_pi18_predicted=mp["acc_pi_18"],
                   median_deg_predicted=mp["median_deg"])
    return out


def _predict(model: PoseEstimator, batch: dict, classify_fit: bool, pose_predicted: bool = False) -> list[dict]:
    truth = [model.categories[int(i)] for i in batch["category"]]
    out = evaluate_poses(model, batch["image"], truth, batch["cameras"].K.to(torch.float32),
                         classify_fit=classify_fit, pose_predicted=pose_predicted)
    R_gt = batch["rotation"].to(torch.float64)
    vp_gt = batch["viewpoint"].to(torch.float64)  # data3d.VIEWPOINT_KEYS order: azimuth, elevation, ...
    rows = []
    for b, result in enumerate(out):
        R = rotation_of(result.pose.viewpoint).to(torch.float64)
        row = {"error": float(geom3d.pose_error(R, R_gt[b])), "category": truth[b], "predicted": result.predicted,
               "cls_correct": result.predicted == truth[b], "viewpoint": result.pose.viewpoint_dict(),
               "score": result.pose.score, "azimuth_gt": float(vp_gt[b, 0]), "elevation_gt": float(vp_gt[b, 1])}
        if result.predicted_fit is not None:
            row["cls_fit_correct"] = result.predicted_fit == truth[b]
        if result.predicted_pose is not None:
            R_pred = rotation_of(result.predicted_pose.viewpoint).to(torch.float64)
            row["error_predicted"] = float(geom3d.pose_error(R_pred, R_gt[b]))
        rows.append(row)
    return rows


def _crop_config(model: PoseEstimator):
    """How the model's inputs are cropped: its nemo config, or nemo's defaults."""
    config = getattr(model, "config", None)
    return config if config is not None else NemoConfig()


def evaluate(models: Mapping[str, PoseEstimator], records: Sequence[data3d.ImageRecord], out: str | os.PathLike,
             batch_size: int = 16, classify_fit: bool = True, report_examples: int = 8,
             progress: bool = False, box_jitter: Mapping | None = None, pose_predicted: bool = False) -> dict:
    """Evaluate every model (any `methodkit.PoseEstimator`) on the records' objects; writes the files of
    the module docstring.

    box_jitter: None (crop from the annotated box: the standard protocol) or {"shift", "scale"}: crop
    from a box moved and resized at random (seeded), as a detector's box would be.
    pose_predicted: also the pose fitted with the predicted class ("acc_pi6_predicted", ...)."""
    if not models:
        raise NemoError("evaluate: no model given")
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    metrics, per_category, all_rows, skipped = {}, {}, {}, {}
    for name, model in models.items():
        if not isinstance(model, PoseEstimator):
            raise NemoError(f"evaluate: the {name} model is not a pose estimator (methodkit.PoseEstimator: "
                            "categories and estimate_pose)")
        known = set(model.categories)
        subset = [r for r in records if all(o.category in known for o in r.objects)]
        if not subset:
            raise NemoError(f"evaluate: no records of the categories {sorted(known)} the {name} model knows")
        dataset = object_dataset(subset, _crop_config(model), model.categories, train=False, box_jitter=box_jitter)
        loader = torch.utils.data.DataLoader(SkippingDataset(dataset), batch_size=batch_size,
                                             collate_fn=collate_skipping)
        rows: list[dict] = []
        reasons: list[str] = []
        position = {key: i for i, key in enumerate(dataset.index)}  # (record, object) -> dataset item
        for batch in _maybe_progress(loader, progress, name):
            skipped[name] = skipped.get(name, 0) + len(batch["skipped"])
            reasons.extend(batch["skipped"])
            for reason in batch["skipped"]:
                log.warning("evaluate %s: skipped an object: %s", name, reason)
            if batch.get("empty"):
                continue
            crop_truths = batch["viewpoint"].tolist()  # (B, 8) the true viewpoints in the crops' pixels
            predicted = _predict(model, batch, classify_fit, pose_predicted)
            for row, ri, oi, crop_truth in zip(predicted, batch["record_index"], batch["object_index"], crop_truths):
                record = dataset.records[int(ri)]
                obj = record.objects[int(oi)]
                row.update(split=split_of(record, obj), image=str(record.image_path),
                           item=position[(int(ri), int(oi))], object_index=int(oi), mesh_ref=obj.mesh_ref,
                           truth=obj.viewpoint.as_dict(),
                           image_viewpoint=crop_to_image_viewpoint(
                               row["viewpoint"], dict(zip(data3d.VIEWPOINT_KEYS, crop_truth)), obj.viewpoint))
                rows.append(row)
        if not rows:  # every object skipped: no metric can be given, and none is written
            _write_json(os.path.join(out, "skipped.json"), skipped)
            raise NemoError(f"evaluate: every one of the {len(reasons)} objects was skipped for the {name} model "
                            f"(e.g. {reasons[0] if reasons else '?'}); no metrics written")
        groups, cats = defaultdict(list), defaultdict(lambda: defaultdict(list))
        for r in rows:
            groups[r["split"]].append(r)
            cats[r["split"]][r["category"]].append(r)
        metrics[name] = {s: summarise(v) for s, v in sorted(groups.items(), key=lambda kv: _split_order(kv[0]))}
        per_category[name] = {s: {c: summarise(v) for c, v in sorted(cs.items())} for s, cs in cats.items()}
        all_rows[name] = (rows, dataset)
    _write_json(os.path.join(out, "metrics.json"), metrics)
    _write_json(os.path.join(out, "metrics_per_category.json"), per_category)
    _write_json(os.path.join(out, "skipped.json"), skipped)
    lines = [json.dumps({"method": n, **{k: v for k, v in r.items()}}, default=float)
             for n, (rows, _) in all_rows.items() for r in rows]
    atomic_write_text(os.path.join(out, "predictions.jsonl"), "\n".join(lines) + "\n")
    _write_meshes(os.path.join(out, "meshes.npz"), models)
    write_report(out, metrics, {n: v for n, v in all_rows.items()}, {n: m for n, m in models.items()},
                 examples=report_examples)
    return metrics


def crop_to_image_viewpoint(estimate: Mapping, crop_truth: Mapping, truth: Mapping) -> dict:
    """An estimated viewpoint in a crop's pixels carried back to the full image's pixels.

    The crop is a similarity map of the pixel grid, u' = s·(u + ½) − ½ − x0 (`data3d.warp_object`):
    it scales the focal length by s and moves the principal point, and keeps the camera's rotation and
    distance. s and (x0, y0) are read off the true viewpoint in both frames (`crop_truth`, `truth`).
    """
    s = float(crop_truth["focal"]) * float(crop_truth["viewport"]) / (float(truth["focal"]) * float(truth["viewport"]))
    x0 = s * (float(truth["px"]) + 0.5) - 0.5 - float(crop_truth["px"])
    y0 = s * (float(truth["py"]) + 0.5) - 0.5 - float(crop_truth["py"])
    out = {k: float(estimate[k]) for k in ("azimuth", "elevation", "theta", "distance")}
    out.update(focal=float(estimate["focal"]) * float(estimate["viewport"]) / s, viewport=1.0,
               px=(float(estimate["px"]) + 0.5 + x0) / s - 0.5, py=(float(estimate["py"]) + 0.5 + y0) / s - 0.5)
    return out


def _write_meshes(path: str, models: Mapping) -> None:
    """The meshes the models fit (their banks'), for viewers; no file when no model has a bank."""
    import numpy as np

    arrays = {}
    for name, model in models.items():
        bank = getattr(model, "bank", None)
        if bank is None:
            continue
        for category in model.categories:
            mesh = bank.mesh(category)
            arrays[f"{name}/{category}/vertices"] = mesh.vertices.detach().cpu().numpy().astype(np.float32)
            arrays[f"{name}/{category}/faces"] = mesh.faces.detach().cpu().numpy().astype(np.int64)
    if arrays:
        from aware3d_utils import atomic_save

        atomic_save(path, lambda tmp: np.savez(tmp, **arrays))  # the temporary name keeps ".npz"


def _split_order(name: str):
    order = {"clean": 0, "L1": 1, "L2": 2, "L3": 3}
    return (order.get(name, 10), name)


def _write_json(path: str, data) -> None:
    """Strict JSON (NaN as null: `aware3d_utils.plain`)."""
    atomic_write_text(path, json.dumps(plain(data), indent=2, allow_nan=False) + "\n")


def _maybe_progress(it, enabled: bool, name: str):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=f"eval {name}", unit="batch")
