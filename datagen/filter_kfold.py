"""3D-DST's K-fold consistency filter (KCF) of generated samples (`kfold_filter`, `filter_dataset`).

Split the samples into K folds (stratified by category, deterministic), train a pose classifier on K−1
folds (a transformers ResNet backbone plus heads classifying azimuth, elevation and in-plane rotation
into `data3d.angles_to_centred_bins`' bins) through methodkit's Trainer, score each held-out sample by
its loss (the sum of the three cross-entropies, as 3D-DST), and keep samples by a keep ratio per
category, a loss threshold, or a robust outlier rule. A generated image that does not show the pose it
is labelled with (the ControlNet ignored the edges, flipped the object, painted something else) is
predicted poorly by a model trained on the other folds: its loss is high. `filter_dataset` applies it to
a dataset folder and writes the scores and the kept list atomically. The cheap per-image checks are
`datagen.filter_checks`; `datagen.filtering` re-exports both.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from aware3d_utils import atomic_write_text, plain, require, torch_threads
from aware3d_utils.optional import lazy_module
from data3d.angle_bins import angles_to_centred_bins, centred_bins_to_angles
from data3d.transforms import IMAGENET_MEAN, IMAGENET_STD
from methodkit.trainer import Hooks, Trainer

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["kfold_filter", "filter_dataset", "KFoldResult", "assign_folds", "keep_by_rule", "DEFAULT_BACKBONE",
           "TINY_BACKBONE"]

log = logging.getLogger(__name__)


# 3D-DST's classifier: an ImageNet-pretrained ResNet-50 (torchvision there; transformers here).
DEFAULT_BACKBONE = "microsoft/resnet-50"
# A tiny randomly initialised ResNet (transformers ResNetConfig kwargs) for tests and smoke runs.
TINY_BACKBONE = {"num_channels": 3, "embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1],
                 "layer_type": "basic", "downsample_in_first_stage": False}
_MEAN = np.array(IMAGENET_MEAN, np.float32)  # the pretrained backbones' input statistics
_STD = np.array(IMAGENET_STD, np.float32)


def assign_folds(categories: Sequence[str], k: int, seed: int = 0, groups: Sequence[str] | None = None) -> np.ndarray:
    """Fold index (N,) per sample: within each category a seeded shuffle dealt round-robin into k folds,
    so every fold holds ⌊n_c/k⌋ or ⌈n_c/k⌉ samples (or groups) of each category. Samples of one
    group (e.g. the occlusion levels of one rendered viewpoint: the same picture and label) share a
    fold, so no held-out sample is scored by a model trained on its twin. Deterministic."""
    categories = list(categories)
    groups = list(range(len(categories))) if groups is None else list(groups)
    folds = np.empty(len(categories), np.int64)
    for i, cat in enumerate(sorted(set(categories))):
        members: dict = {}
        for j, c in enumerate(categories):
            if c == cat:
                members.setdefault(groups[j], []).append(j)
        units = list(members.values())  # in first-seen order, so the shuffle is deterministic
        rng = np.random.default_rng([seed, i])
        order = rng.permutation(len(units))
        offset = int(rng.integers(k))  # spread the remainders of small categories over all folds
        for rank, u in enumerate(order):
            folds[units[u]] = (rank + offset) % k
    return folds


def _check_rules(keep_ratio, loss_threshold, max_mads) -> None:
    for name, value in (("keep_ratio", keep_ratio), ("loss_threshold", loss_threshold), ("max_mads", max_mads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                                  or not math.isfinite(float(value))):
            raise ValueError(f"{name}: must be a finite number, got {value!r}")
    if keep_ratio is not None and not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio: must be in (0, 1], got {keep_ratio}")
    if max_mads is not None and max_mads <= 0:
        raise ValueError(f"max_mads: must be > 0, got {max_mads}")


def keep_by_rule(scores: np.ndarray, categories: Sequence[str], keep_ratio: float | None = None,
                 loss_threshold: float | None = None, max_mads: float | None = None) -> tuple[np.ndarray, dict]:
    """Keep flags (N,) and the effective loss cut per category.

    keep_ratio r: per category keep the ⌈r·n_c⌉ lowest scores (ties by order); loss_threshold t: keep
    score ≤ t; max_mads m: per category keep score ≤ median + m·1.4826·MAD (a robust z-score). Every
    rule given must hold; with none, everything is kept. NaN scores (unscored samples) are never kept.
    """
    _check_rules(keep_ratio, loss_threshold, max_mads)
    scores = np.asarray(scores, np.float64)
    categories = np.asarray(list(categories))
    keep = np.isfinite(scores)
    if loss_threshold is not None:
        keep &= scores <= loss_threshold
    cuts: dict[str, float] = {}
    for cat in sorted(set(categories.tolist())):
        members = np.flatnonzero((categories == cat) & np.isfinite(scores))
        if len(members) == 0:
            continue
        s = scores[members]
        if keep_ratio is not None:
            n_keep = max(1, math.ceil(keep_ratio * len(members) - 1e-9))
            order = members[np.argsort(s, kind="stable")]
            ranked = np.zeros(len(scores), bool)
            ranked[order[:n_keep]] = True
            keep[members] &= ranked[members]
        if max_mads is not None:
            med = float(np.median(s))
            mad = float(np.median(np.abs(s - med))) * 1.4826
            keep[members] &= s <= med + max_mads * max(mad, 1e-12)
        kept = scores[members][keep[members]]
        cuts[cat] = float(kept.max()) if len(kept) else float("nan")
    return keep, cuts


@dataclass
class KFoldResult:
    """Per-sample outcome of `kfold_filter` (one entry per object that was scored or skipped).

    sample_ids: stable ids (the record's `extra["sample_id"]`, else its image path, plus `#k` for the
    k-th object of a multi-object image); record_index / object_index: where each sample came from;
    scores: held-out loss (sum of the three cross-entropies; NaN when skipped); keep: bool flags;
    folds: fold index; predictions: (N, 3) predicted azimuth, elevation, theta (radians);
    thresholds: per category, the largest kept score; fold_metrics: held-out pose accuracy per fold;
    skipped: reasons and counts for samples that could not be scored; settings: the options used.
    """

    sample_ids: list[str]
    record_index: np.ndarray
    object_index: np.ndarray
    categories: list[str]
    folds: np.ndarray
    scores: np.ndarray
    keep: np.ndarray
    predictions: np.ndarray
    thresholds: dict[str, float]
    fold_metrics: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    settings: dict = field(default_factory=dict)

    def rekeep(self, keep_ratio: float | None = None, loss_threshold: float | None = None,
               max_mads: float | None = None) -> KFoldResult:
        """The same scores under another keep rule (no retraining)."""
        keep, cuts = keep_by_rule(self.scores, self.categories, keep_ratio, loss_threshold, max_mads)
        settings = {**self.settings, "keep_ratio": keep_ratio, "loss_threshold": loss_threshold, "max_mads": max_mads}
        return replace(self, keep=keep, thresholds=cuts, settings=settings)

    def kept_records(self, records: Sequence) -> list:
        """`records` with the dropped objects removed (records left without objects are dropped)."""
        kept: dict[int, list[int]] = {}
        for r, o, k in zip(self.record_index.tolist(), self.object_index.tolist(), self.keep.tolist()):
            if k:
                kept.setdefault(r, []).append(o)
        out = []
        for r, objs in sorted(kept.items()):
            rec = records[r]
            if len(objs) != len(rec.objects):
                rec = replace(rec, objects=tuple(rec.objects[o] for o in objs))
            out.append(rec)
        return out

    def summary(self) -> dict:
        per_cat = {}
        cats = np.asarray(self.categories)
        for cat in sorted(set(self.categories)):
            m = cats == cat
            per_cat[cat] = {"samples": int(m.sum()), "kept": int(self.keep[m].sum()),
                            "threshold": self.thresholds.get(cat)}
        return {"samples": len(self.sample_ids), "kept": int(self.keep.sum()), "skipped": dict(self.skipped),
                "per_category": per_cat, "folds": self.fold_metrics}

    def to_dict(self) -> dict:
        """A JSON-ready dict: settings, summary and one row per sample."""
        rows = [{"sample_id": s, "record": int(r), "object": int(o), "category": c, "fold": int(f),
                 "score": None if not math.isfinite(v) else float(v), "keep": bool(k),
                 "predicted": [float(x) for x in p] if np.all(np.isfinite(p)) else None}
                for s, r, o, c, f, v, k, p in zip(self.sample_ids, self.record_index, self.object_index,
                                                  self.categories, self.folds, self.scores, self.keep,
                                                  self.predictions)]
        return plain({"settings": self.settings, "summary": self.summary(), "samples": rows})


def _load_image(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _square_crop(image: np.ndarray, bbox, margin: float = 0.15) -> np.ndarray:
    """A square crop around bbox (x1, y1, x2, y2; integer pixel centres), zero-padded at the borders."""
    x1, y1, x2, y2 = bbox
    side = max(x2 - x1, y2 - y1) * (1.0 + 2 * margin) + 1.0
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    s = max(1, int(round(side)))
    # affine map from crop pixel (j, i) to image pixel (cx - (s-1)/2 + j, cy - (s-1)/2 + i)
    m = np.array([[1.0, 0.0, -(cx - (s - 1) / 2.0)], [0.0, 1.0, -(cy - (s - 1) / 2.0)]])
    return cv2.warpAffine(image, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _augment(x: np.ndarray, rng: np.random.Generator, max_shift: float = 0.06) -> np.ndarray:
    """Training augmentation that leaves the pose label valid: a small random translation (zero fill)
    and brightness/contrast jitter. x: (B, S, S, 3) float in [0, 1]."""
    b, s = x.shape[0], x.shape[1]
    out = np.zeros_like(x)
    m = max(1, int(round(max_shift * s)))
    for i in range(b):
        dy, dx = (int(v) for v in rng.integers(-m, m + 1, size=2))
        src = x[i, max(0, -dy):s - max(0, dy), max(0, -dx):s - max(0, dx)]
        out[i, max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    gain = rng.uniform(0.8, 1.2, size=(b, 1, 1, 1)).astype(np.float32)
    bias = rng.uniform(-0.08, 0.08, size=(b, 1, 1, 1)).astype(np.float32)
    return np.clip(out * gain + bias, 0.0, 1.0)


def _sample_id(record, obj_index: int, n_objects: int) -> str:
    base = record.extra.get("sample_id") if record.extra else None
    base = str(base) if base is not None else str(record.image_path)
    return base if n_objects == 1 else f"{base}#{obj_index}"


def _build_backbone(backbone):
    """(model, feature_dim) from a transformers id/folder (from_pretrained) or a ResNetConfig dict."""
    transformers = require("transformers")
    if isinstance(backbone, Mapping):
        config = transformers.ResNetConfig(**dict(backbone))
        return transformers.ResNetModel(config), int(config.hidden_sizes[-1])
    from .hub import pretrained_kwargs

    try:
        model = transformers.AutoModel.from_pretrained(str(backbone), **pretrained_kwargs(str(backbone), "backbone"))
    except FileNotFoundError as exc:  # offline and not cached: said at once, no retries
        raise ValueError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"backbone: cannot load {backbone!r} (offline runs need a local folder or a cached model): "
                         f"{exc}") from exc
    cfg = model.config
    dim = getattr(cfg, "hidden_sizes", None)
    dim = dim[-1] if dim else getattr(cfg, "hidden_size", None)
    if dim is None:
        raise ValueError(f"backbone: cannot tell the feature size of {backbone!r} ({type(model).__name__})")
    return model, int(dim)


def _pose_classifier(backbone_model, feat_dim: int, num_categories: int, num_bins: int):
    torch = require("torch")

    class PoseClassifier(torch.nn.Module):
        """Backbone -> pooled feature -> per-category logits (B, 3, num_bins) for azimuth, elevation, theta."""

        def __init__(self):
            super().__init__()
            self.backbone = backbone_model
            self.head = torch.nn.Linear(feat_dim, num_categories * 3 * num_bins)

        def forward(self, x, category):
            out = self.backbone(pixel_values=x)
            feat = getattr(out, "pooler_output", None)
            if feat is None:
                hidden = out.last_hidden_state
                feat = hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden[:, 0]
            logits = self.head(feat.flatten(1)).view(x.shape[0], num_categories, 3, num_bins)
            return logits[torch.arange(x.shape[0], device=x.device), category]

    return PoseClassifier()


def kfold_filter(records: Sequence, k: int = 5, keep_ratio: float | None = None, loss_threshold: float | None = None,
                 *, max_mads: float | None = None, backbone: str | Mapping = DEFAULT_BACKBONE, num_bins: int = 41,
                 image_size: int = 256, epochs: int = 150, batch_size: int = 32, optimizer: str = "sgd",
                 lr: float | None = None, weight_decay: float = 1e-4, schedule: str = "step",
                 heads: str = "per_category", augment: bool = True, seed: int = 0, device: str | None = None,
                 crop: str = "auto", num_threads: int | None = None,
                 image_loader: Callable[[Path], np.ndarray | None] | None = None,
                 progress: bool = False) -> KFoldResult:
    """3D-DST's K-fold consistency filter over `records` (data3d ImageRecords); see the module docstring.

    k: folds (≥ 2); keep_ratio / loss_threshold / max_mads: keep rules (see `keep_by_rule`).
    backbone: a transformers model id or folder (from_pretrained; default microsoft/resnet-50 as the
    original's ImageNet ResNet-50) or a dict of ResNetConfig fields for a randomly initialised one
    (e.g. TINY_BACKBONE). num_bins: bins per angle (41 as 3D-DST). image_size: network input (square).
    epochs, batch_size, optimizer ("sgd": momentum 0.9, lr 0.01, as 3D-DST; "adamw": lr 1e-3),
    weight_decay; schedule: "step" (10x lower after each third, as 3D-DST), "cosine" or "constant".
    heads: "per_category" (bins per category) or "shared" (one category-agnostic set). augment:
    random shifts of up to 6% and brightness/contrast jitter in training (labels stay valid); 3D-DST
    trained without. seed: folds, init, shuffling and augmentation. crop: "auto" (whole image for
    one-object records, square bbox crops otherwise), "bbox" or "none". num_threads: torch threads
    during the call. image_loader: path -> RGB uint8 array (default OpenCV); unreadable images are
    skipped and counted. progress: a progress bar over folds x epochs.
    """
    torch = require("torch")
    if k < 2:
        raise ValueError(f"k: need at least 2 folds, got {k}")
    if crop not in ("auto", "bbox", "none"):
        raise ValueError(f"crop: must be 'auto', 'bbox' or 'none', got {crop!r}")
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer: must be 'sgd' or 'adamw', got {optimizer!r}")
    if schedule not in ("step", "cosine", "constant"):
        raise ValueError(f"schedule: must be 'step', 'cosine' or 'constant', got {schedule!r}")
    if heads not in ("per_category", "shared"):
        raise ValueError(f"heads: must be 'per_category' or 'shared', got {heads!r}")
    _check_rules(keep_ratio, loss_threshold, max_mads)  # before training, not after
    if num_bins < 2 or epochs < 1 or batch_size < 2 or image_size < 8:
        raise ValueError("num_bins ≥ 2, epochs ≥ 1, batch_size ≥ 2 and image_size ≥ 8 are required")
    lr = lr if lr is not None else (0.01 if optimizer == "sgd" else 1e-3)
    settings = {"k": k, "keep_ratio": keep_ratio, "loss_threshold": loss_threshold, "max_mads": max_mads,
                "backbone": backbone if isinstance(backbone, str) else dict(backbone), "num_bins": num_bins,
                "image_size": image_size, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer,
                "lr": lr, "weight_decay": weight_decay, "schedule": schedule, "heads": heads, "augment": augment,
                "seed": seed, "crop": crop}
    loader = image_loader or _load_image
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    # ---- gather samples (one per object) and their images
    ids, rec_idx, obj_idx, cats, views, images, groups = [], [], [], [], [], [], []
    skipped: Counter = Counter()
    for r, record in enumerate(records):
        if not record.objects:
            continue
        image = loader(Path(record.image_path))
        for o, obj in enumerate(record.objects):
            ids.append(_sample_id(record, o, len(record.objects)))
            # datagen writes one image per occlusion level of a viewpoint: keep them in one fold
            group = record.extra.get("viewpoint_id") if record.extra else None
            groups.append(ids[-1] if group is None else f"{group}#{o}")
            rec_idx.append(r)
            obj_idx.append(o)
            cats.append(obj.category)
            v = obj.viewpoint
            views.append((v.azimuth, v.elevation, v.theta))
            if image is None:
                skipped["unreadable_image"] += 1
                images.append(None)
                continue
            use_crop = crop == "bbox" or (crop == "auto" and len(record.objects) > 1)
            patch = _square_crop(image, obj.bbox) if use_crop else image
            images.append(cv2.resize(patch, (image_size, image_size), interpolation=cv2.INTER_AREA))
    n = len(ids)
    if n == 0:
        raise ValueError("kfold_filter: no objects to score")
    valid = np.array([im is not None for im in images])
    pixels = np.zeros((n, image_size, image_size, 3), np.uint8)
    for i, im in enumerate(images):
        if im is not None:
            pixels[i] = im
    del images
    views = np.asarray(views, np.float64)
    targets = angles_to_centred_bins(views[:, 0], views[:, 1], views[:, 2], num_bins)
    cat_names = sorted(set(cats))
    cat_index = np.array([cat_names.index(c) for c in cats], np.int64)
    if heads == "shared":  # one set of bins for every category (category-agnostic pose, as ImageNet3D's baseline)
        cat_index[:] = 0
    folds = assign_folds(cats, k, seed, groups)
    scores = np.full(n, np.nan)
    predictions = np.full((n, 3), np.nan)

    def batch_tensor(idx, rng: np.random.Generator | None = None):
        x = pixels[idx].astype(np.float32) / 255.0
        if rng is not None:
            x = _augment(x, rng)
        x = (x - _MEAN) / _STD
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)

    def train_and_score(fold: int, train: np.ndarray, held: np.ndarray) -> None:
        """Train a fresh classifier on `train`, write scores and predictions of `held`."""
        torch.manual_seed(seed * 1009 + fold)
        n_heads = 1 if heads == "shared" else len(cat_names)
        model = _pose_classifier(copy.deepcopy(base_model), feat_dim, n_heads, num_bins).to(device)
        if optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        if schedule == "step":  # 3D-DST: 10x lower after each third (150 epochs, steps of 50)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, math.ceil(epochs / 3)), gamma=0.1)
        elif schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        rng = np.random.default_rng([seed, fold])  # each epoch's order, then its batches' augmentation
        loss_fn = torch.nn.CrossEntropyLoss()
        per_epoch = len(train) // batch_size + (len(train) % batch_size >= 2)  # batches of ≥ 2 samples
        epoch = {"steps": 0, "loss": 0.0}

        def batches(_epoch):
            order = train[rng.permutation(len(train))]
            return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]

        def load(_epoch, orders):
            for idx in orders:  # BatchNorm needs two samples: a batch of one is passed over
                yield None if len(idx) < 2 else {"index": idx, "image": batch_tensor(idx, rng if augment else None)}

        def step(batch, _step):
            idx = batch["index"]
            logits = model(batch["image"], torch.from_numpy(cat_index[idx]).to(device))
            return loss_fn(logits.reshape(-1, num_bins), torch.from_numpy(targets[idx]).reshape(-1).to(device)), {}

        def after_step(batch, loss, _info):
            epoch["loss"] += float(loss.detach()) * len(batch["index"])
            epoch["steps"] += 1
            if epoch["steps"] % per_epoch:
                return
            sched.step()  # the epoch's last batch: the scheduler's epoch ends
            done, mean_loss, epoch["loss"] = epoch["steps"] // per_epoch, epoch["loss"] / len(train), 0.0
            log.debug("kcf fold %d/%d epoch %d/%d loss %.4f", fold + 1, k, done, epochs, mean_loss)
            if bar is not None:
                bar.set_postfix(fold=f"{fold + 1}/{k}", loss=f"{mean_loss:.3f}", refresh=False)
                bar.update(1)

        # a diverged fold: a RunError (a ValueError) "kfold_filter: fold <f>: training diverged ..."
        Trainer(model, Hooks(batches, load, step, after_step=after_step), {"lr": lr, "weight_decay": weight_decay},
                epochs * per_epoch, optimizer=opt, schedule=lambda _: opt.param_groups[0]["lr"], hint="lower lr",
                where=f"kfold_filter: fold {fold}").fit()
        model.eval()  # scores with running BatchNorm statistics (3D-DST scored in train mode)
        with torch.no_grad():
            for start in range(0, len(held), batch_size):
                idx = held[start:start + batch_size]
                logits = model(batch_tensor(idx), torch.from_numpy(cat_index[idx]).to(device))
                t = torch.from_numpy(targets[idx]).to(device)
                ce = torch.nn.functional.cross_entropy(logits.reshape(-1, num_bins), t.reshape(-1),
                                                       reduction="none").view(len(idx), 3)
                scores[idx] = ce.sum(dim=1).double().cpu().numpy()
                predictions[idx] = centred_bins_to_angles(logits.argmax(dim=-1).cpu().numpy(), num_bins)

    fold_metrics = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=k * epochs, desc="kcf", unit="epoch")
    try:
        with torch_threads(int(num_threads) if num_threads else None), \
                torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # a randomly initialised backbone starts the same in every run
            base_model, feat_dim = _build_backbone(backbone)
            for fold in range(k):
                train = np.flatnonzero((folds != fold) & valid)
                held = np.flatnonzero((folds == fold) & valid)
                if len(held) == 0:
                    continue
                if len(train) < 2:
                    raise ValueError(f"kfold_filter: fold {fold} leaves {len(train)} training samples; "
                                     "use fewer folds or more samples")
                train_and_score(fold, train, held)
                fold_metrics.append(_fold_metrics(fold, predictions[held], views[held], scores[held]))
                log.info("kcf fold %d/%d: %s", fold + 1, k, fold_metrics[-1])
    finally:
        if bar is not None:
            bar.close()
    keep, cuts = keep_by_rule(scores, cats, keep_ratio, loss_threshold, max_mads)
    return KFoldResult(sample_ids=ids, record_index=np.asarray(rec_idx), object_index=np.asarray(obj_idx),
                       categories=cats, folds=folds, scores=scores, keep=keep, predictions=predictions,
                       thresholds=cuts, fold_metrics=fold_metrics, skipped=skipped, settings=settings)


def _fold_metrics(fold: int, pred: np.ndarray, true: np.ndarray, scores: np.ndarray) -> dict:
    """Held-out pose accuracy of one fold (geodesic error between predicted and labelled rotations)."""
    torch = require("torch")
    from geom3d import pose_error, pose_metrics, viewpoint_to_rotation

    p = torch.as_tensor(pred, dtype=torch.float64)
    t = torch.as_tensor(true, dtype=torch.float64)
    r_pred = viewpoint_to_rotation(p[:, 0], p[:, 1], p[:, 2])
    r_true = viewpoint_to_rotation(t[:, 0], t[:, 1], t[:, 2])
    metrics = pose_metrics(pose_error(r_pred, r_true))
    return {"fold": fold, "samples": len(scores), "mean_loss": float(np.mean(scores)),
            **{key: float(v) for key, v in metrics.items()}}


def filter_dataset(folder: str | os.PathLike, *, out: str | os.PathLike | None = None, **options) -> KFoldResult:
    """Run `kfold_filter` on the records in a dataset folder and write the outcome atomically.

    Writes `<folder>/kcf/scores.json` (settings, per-category counts and cuts, one row per sample)
    and `<folder>/kcf/kept.txt` (the kept sample ids, one per line). With `out`, the kept records are
    also saved there as a record shard (`records-kcf.npz`) that `data3d.load_records(out)` reads; the
    images stay where they are. options: those of `kfold_filter`.
    """
    try:
        from data3d import load_records, save_records
    except ImportError:  # older data3d without the re-exports
        from data3d.storage import load_records, save_records

    folder = Path(folder)
    records = load_records(folder)
    if not records:
        raise ValueError(f"{folder}: no records to filter")
    result = kfold_filter(records, **options)
    result.settings["dataset"] = str(folder.resolve())
    atomic_write_text(folder / "kcf" / "scores.json", json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")
    kept_ids = [s for s, k in zip(result.sample_ids, result.keep) if k]
    atomic_write_text(folder / "kcf" / "kept.txt", "".join(f"{s}\n" for s in kept_ids))
    if out is not None:
        out = Path(out)
        if out.resolve() == folder.resolve():
            raise ValueError(f"{out}: the filtered records must go to another folder than the dataset's")
        save_records(result.kept_records(records), out, shard="kcf")
    log.info("kcf: kept %d of %d samples in %s", int(result.keep.sum()), len(result.keep), folder)
    return result
