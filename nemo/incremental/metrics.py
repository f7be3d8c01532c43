"""Per-task and summary metrics of an incremental run (from `nemo.evaluate`'s metrics).

Per task: classification accuracy over all classes seen so far ("acc": on the clean split when the
test records have one, else over all objects; "acc_by_split" for every split and "all", which pools
the test's splits but not the seen_cad ones), pose
Acc@π/6 of all seen classes with the true class given and with the predicted class
("pose_acc_pi6_predicted", iNeMo's released protocol), and of the old classes only (those of
earlier tasks), per-class accuracy.
Summary (Rebuffi et al. 2017; Chaudhry et al. 2018):
    average_incremental_accuracy = mean over tasks of acc
    forgetting = mean over classes of earlier tasks of (best acc on the class before the last task
                 − its acc after the last task); None with one task
both also per split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["task_entry", "summarise_method", "MAIN_SPLIT"]

MAIN_SPLIT = "clean"
SEEN_CAD = "seen_cad"  # splits of training instances at fresh views (loop.seen_cad_records): not in "all"


def _pooled(groups: Sequence[Mapping], key: str) -> float | None:
    """The n-weighted mean of `key` over metric groups ({key, "n"}); None when empty or missing."""
    pairs = [(g[key], g["n"]) for g in groups if g.get(key) is not None and g.get("n")]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


def _main(by_split: Mapping):
    return by_split.get(MAIN_SPLIT, by_split.get("all"))


def task_entry(task: int, new: Sequence[str], seen: Sequence[str], old: Sequence[str], metrics: Mapping,
               per_category: Mapping, train_objects: int, exemplars: int, seconds: float,
               exemplar_cost: int = 0) -> dict:
    """One task's row. metrics: {split: {"acc_pi6", "cls_acc", "n", ...}}; per_category: {split: {class: {...}}}."""
    splits = list(metrics)
    # "all" pools the test's own splits; the seen_cad splits (training instances) are reported apart
    pooled = [s for s in splits if not s.startswith(SEEN_CAD)] or splits

    def per_split(key: str) -> dict:
        return {**{s: metrics[s].get(key) for s in splits}, "all": _pooled([metrics[s] for s in pooled], key)}

    # pose fitted with the predicted class (iNeMo's released protocol) is None where it was not measured
    acc, pose, pose_pred = per_split("cls_acc"), per_split("acc_pi6"), per_split("acc_pi6_predicted")
    old_pose = {s: _pooled([per_category[s][c] for c in old if c in per_category.get(s, {})], "acc_pi6")
                for s in splits}
    old_pose["all"] = _pooled([per_category[s][c] for s in pooled for c in old if c in per_category.get(s, {})],
                              "acc_pi6")
    by_class = {}
    for c in seen:
        rows = {s: per_category[s][c] for s in splits if c in per_category.get(s, {})}
        by_class[c] = {**{s: r["cls_acc"] for s, r in rows.items()},
                       "all": _pooled([r for s, r in rows.items() if s in pooled], "cls_acc")}
    return {"task": task, "new_classes": list(new), "seen_classes": list(seen), "train_objects": train_objects,
            "exemplars": exemplars, "exemplar_cost": exemplar_cost,
            "acc": _main(acc), "acc_by_split": acc, "pose_acc_pi6": _main(pose),
            "pose_acc_pi6_by_split": pose, "pose_acc_pi6_predicted": _main(pose_pred),
            "pose_acc_pi6_predicted_by_split": pose_pred, "old_class_pose_acc_pi6": _main(old_pose) if old else None,
            "old_class_pose_acc_pi6_by_split": old_pose if old else None, "acc_by_class": by_class,
            "seconds": round(seconds, 2)}


def _forgetting(per_task: Sequence[Mapping], split: str) -> float | None:
    if len(per_task) < 2:
        return None
    last = per_task[-1]["acc_by_class"]
    drops = []
    for c in per_task[-2]["seen_classes"]:  # classes learned before the last task
        before = [t["acc_by_class"][c].get(split) for t in per_task[:-1] if c in t["acc_by_class"]]
        before = [b for b in before if b is not None]
        now = last.get(c, {}).get(split)
        if before and now is not None:
            drops.append(max(before) - now)
    return sum(drops) / len(drops) if drops else None


def summarise_method(per_task: Sequence[Mapping]) -> dict:
    """{"per_task", "average_incremental_accuracy", "forgetting", and both "_by_split"}."""
    splits = list(per_task[0]["acc_by_split"]) if per_task else []
    aia = {}
    for s in splits:
        values = [t["acc_by_split"].get(s) for t in per_task]
        aia[s] = sum(values) / len(values) if all(v is not None for v in values) else None
    forgetting = {s: _forgetting(per_task, s) for s in splits}
    main = MAIN_SPLIT if MAIN_SPLIT in splits else "all"
    return {"per_task": list(per_task), "average_incremental_accuracy": aia.get(main),
            "forgetting": forgetting.get(main), "average_incremental_accuracy_by_split": aia,
            "forgetting_by_split": forgetting}
