"""Evaluation of NeMo and the 2D baseline on records: pose accuracy and classification per split.

    metrics = evaluate({"nemo": nemo.load(run), "baseline": nemo.load(baseline_run)}, records, out)

Pose is estimated with the true category given (the PASCAL3D+ / NeMo protocol); classification is
measured separately: NeMo by feature matching with clutter ("cls_acc") and by fitting every
category ("cls_acc_fit"), the baseline by its category head. Writes, in `out`:
    metrics.json               {method: {split: {"acc_pi6", "acc_pi18", "median_deg", "cls_acc", "n"}}}
    metrics_per_category.json  {method: {split: {category: {...}}}}
    skipped.json               {method: objects skipped because their image could not be read}
    predictions.jsonl          one line per object and method
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
from aware3d_utils import atomic_write_text

from .data import SkippingDataset, collate_skipping, object_dataset, split_of
from .errors import NemoError
from .model import NemoModel, rotation_of
from .report import write_report

__all__ = ["evaluate", "summarise"]

log = logging.getLogger(__name__)


def summarise(rows: Sequence[dict]) -> dict:
    """{"acc_pi6", "acc_pi18", "median_deg", "cls_acc", "n"} (+ "cls_acc_fit" when present) of rows."""
    errors = torch.tensor([r["error"] for r in rows], dtype=torch.float64)
    m = geom3d.pose_metrics(errors)
    out = {"acc_pi6": m["acc_pi_6"], "acc_pi18": m["acc_pi_18"], "median_deg": m["median_deg"],
           "cls_acc": sum(r["cls_correct"] for r in rows) / len(rows), "n": len(rows)}
    if all("cls_fit_correct" in r for r in rows):
        out["cls_acc_fit"] = sum(r["cls_fit_correct"] for r in rows) / len(rows)
    if rows and all("error_predicted" in r for r in rows):  # pose with the predicted class (iNeMo's protocol)
        mp = geom3d.pose_metrics(torch.tensor([r["error_predicted"] for r in rows], dtype=torch.float64))
        out.update(acc_pi6_predicted=mp["acc_pi_6"], acc_pi18_predicted=mp["acc_pi_18"],
                   median_deg_predicted=mp["median_deg"])
    return out


def _predict(model: NemoModel, batch: dict, classify_fit: bool, pose_predicted: bool = False) -> list[dict]:
    truth = [model.categories[int(i)] for i in batch["category"]]
    extra = {"pose_predicted": True} if pose_predicted else {}  # models without the option keep working
    out = model.evaluate_batch(batch["image"], truth, batch["cameras"].K.to(torch.float32), classify_fit, **extra)
    R_gt = batch["rotation"].to(torch.float64)
    rows = []
    for b, result in enumerate(out):
        R = rotation_of(result["viewpoint"]).to(torch.float64)
        row = {"error": float(geom3d.pose_error(R, R_gt[b])), "category": truth[b], "predicted": result["predicted"],
               "cls_correct": result["predicted"] == truth[b], "viewpoint": result["viewpoint"],
               "score": result["score"]}
        if "predicted_fit" in result:
            row["cls_fit_correct"] = result["predicted_fit"] == truth[b]
        if "viewpoint_predicted" in result:
            R_pred = rotation_of(result["viewpoint_predicted"]).to(torch.float64)
            row["error_predicted"] = float(geom3d.pose_error(R_pred, R_gt[b]))
        rows.append(row)
    return rows


def evaluate(models: Mapping[str, NemoModel], records: Sequence[data3d.ImageRecord], out: str | os.PathLike,
             batch_size: int = 16, classify_fit: bool = True, report_examples: int = 8,
             progress: bool = False, pose_predicted: bool = False) -> dict:
    """Evaluate every model on the records' objects; writes the files of the module docstring.
    pose_predicted: also the pose fitted with the predicted class ("acc_pi6_predicted", ...)."""
    if not models:
        raise NemoError("evaluate: no model given")
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    metrics, per_category, all_rows, skipped = {}, {}, {}, {}
    for name, model in models.items():
        known = set(model.categories)
        subset = [r for r in records if all(o.category in known for o in r.objects)]
        if not subset:
            raise NemoError(f"evaluate: no records of the categories {sorted(known)} the {name} model knows")
        dataset = object_dataset(subset, model.config, model.categories, train=False)
        loader = torch.utils.data.DataLoader(SkippingDataset(dataset), batch_size=batch_size,
                                             collate_fn=collate_skipping)
        rows: list[dict] = []
        position = {key: i for i, key in enumerate(dataset.index)}  # (record, object) -> dataset item
        for batch in _maybe_progress(loader, progress, name):
            skipped[name] = skipped.get(name, 0) + len(batch["skipped"])
            for reason in batch["skipped"]:
                log.warning("evaluate %s: skipped an object: %s", name, reason)
            if batch.get("empty"):
                continue
            predicted = _predict(model, batch, classify_fit, pose_predicted)
            for row, ri, oi in zip(predicted, batch["record_index"], batch["object_index"]):
                record = dataset.records[int(ri)]
                row.update(split=split_of(record, record.objects[int(oi)]), image=str(record.image_path),
                           item=position[(int(ri), int(oi))])
                rows.append(row)
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
    write_report(out, metrics, {n: v for n, v in all_rows.items()}, {n: m for n, m in models.items()},
                 examples=report_examples)
    return metrics


def _split_order(name: str):
    order = {"clean": 0, "L1": 1, "L2": 2, "L3": 3}
    return (order.get(name, 10), name)


def _write_json(path: str, data) -> None:
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    atomic_write_text(path, json.dumps(clean(data), indent=2, allow_nan=False) + "\n")


def _maybe_progress(it, enabled: bool, name: str):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=f"eval {name}", unit="batch")
