"""Records in, crops out: the data side of nemo's training and evaluation.

- `load_record_folders(paths)`: data3d records from record folders (datagen output or real loaders
  saved with `data3d.save_records`);
- `object_dataset(records, config, categories)`: the `data3d.ObjectDataset` the config describes;
  `eval_loader`: its evaluation crops in batches;
- `split_of(record, obj)`: the evaluation split of an object ("clean", "L1"–"L3" or the record's
  own `extra["split"]` tag);
- `category_meshes(config, categories)`: per category the NeMo cuboid over the category's assets;
- `epoch_batches`: a resumable, seeded order of batches.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence

import torch

import data3d
import geom3d

from .config import NemoConfig
from .errors import NemoError

log = logging.getLogger(__name__)

__all__ = ["load_record_folders", "readable_records", "object_dataset", "eval_loader",
           "split_of", "category_meshes", "epoch_batches", "SkippingDataset",
           "collate_skipping"]


def load_record_folders(paths: Sequence[str | os.PathLike] | str | os.PathLike,
                        categories: Sequence[str] | None = None,
                        counts: dict | None = None) -> list[data3d.ImageRecord]:
    """Records of every folder (or shard file), keeping only objects of `categories` when given.

    A folder given twice, or two folders whose records show the same image, is an error (its records
    would count twice). The objects of other
    categories that are dropped are counted per category in `counts["dropped_objects"]` (when a
    dict is given) and logged."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    seen: dict = {}
    for p in paths:
        key = os.path.realpath(os.fspath(p))
        if key in seen:
            raise NemoError(f"the records folder is given twice ({seen[key]} and {p}); each may appear once", p)
        seen[key] = p
    records: list = []
    shown_in: dict[str, str] = {}  # image -> the folder whose records show it
    for p in paths:
        try:
            loaded = data3d.load_records(p)
        except data3d.AnnotationError as exc:
            raise NemoError(f"cannot load records: {exc}", p) from exc
        if len(paths) > 1:  # another folder's records of the same images (a filtered copy, a tagged split)
            for r in loaded:
                image = os.path.realpath(os.fspath(r.image_path))
                if shown_in.setdefault(image, os.fspath(p)) != os.fspath(p):
                    raise NemoError(f"the records of {shown_in[image]} and {p} show the same image {r.image_path} "
                                    "(its objects would count twice); give each image's records once", p)
        records.extend(loaded)
    if categories is not None:
        wanted = set(categories)
        kept, dropped = [], {}
        for r in records:
            objects = tuple(o for o in r.objects if o.category in wanted)
            for o in r.objects:
                if o.category not in wanted:
                    dropped[o.category] = dropped.get(o.category, 0) + 1
            if objects:
                kept.append(r if len(objects) == len(r.objects) else dataclasses.replace(r, objects=objects))
        records = kept
        if dropped:
            log.warning("dropped %d objects of categories outside %s: %s", sum(dropped.values()), sorted(wanted),
                        dict(sorted(dropped.items())))
        if counts is not None:
            counts["dropped_objects"] = dict(sorted(dropped.items()))
    if not records:
        raise NemoError(f"no records{' of ' + str(list(categories)) if categories else ''} in {list(map(str, paths))}")
    return records


def readable_records(records, what: str = "records") -> tuple[list, dict[str, str]]:
    """(the records whose image decodes, {image path: reason} of those that do not): the skip
    policy of a batch job that reads its images outside a SkippingDataset (each image is decoded
    once here; a bad one is logged, and counted by the caller)."""
    kept, skipped = [], {}
    for r in records:
        key = str(r.image_path)
        if key in skipped:
            continue
        try:
            data3d.load_image(r.image_path)
        except (data3d.AnnotationError, OSError) as exc:
            skipped[key] = f"{type(exc).__name__}: {exc}"
            log.warning("skipped %s: %s", what, skipped[key])
            continue
        kept.append(r)
    return kept, skipped


def object_dataset(records, config, categories: Sequence[str], train: bool = True,
                   box_jitter: Mapping | None = None) -> data3d.ObjectDataset:
    """The crops of the config's `data` block (flips, jitter and degradation only when training).

    config: a `NemoConfig` (or its resolved mapping). box_jitter: at evaluation, crop from jittered
    boxes (the "jittered box" protocol; training uses the config's `data.box_jitter`)."""
    cfg = NemoConfig.of(config)
    d = cfg.data
    try:
        return data3d.ObjectDataset(
            records, crop_size=tuple(d.crop_size), rescale=d.rescale, fit_fraction=d.fit_fraction,
            centre=d.center, flip_prob=d.flip_prob if train else 0.0,
            color_jitter=d.color_jitter if train else None, categories=list(categories), seed=cfg.seed,
            extras=("mask",) if train and cfg.loss.object_mask else (),
            box_jitter=d.box_jitter if train else box_jitter, degrade=d.degrade if train else None,
            random_conv=d.random_conv if train else None)
    except ValueError as exc:
        raise NemoError(f"config 'data': {exc}") from None


def eval_loader(records, config, categories: Sequence[str], batch_size: int = 16) -> torch.utils.data.DataLoader:
    """Batches of the records' object crops as evaluation sees them (`object_dataset(..., train=False)`:
    no augmentation), in order. `len(loader.dataset)` counts the objects."""
    return torch.utils.data.DataLoader(object_dataset(records, config, categories, train=False),
                                       batch_size=batch_size, collate_fn=data3d.collate_objects)


def split_of(record, obj) -> str:
    """The evaluation split: the record's extra["split"], else its occlusion level (datagen's
    "occlusion_level" or the object's level: 0/none -> "clean", k -> "Lk")."""
    extra = getattr(record, "extra", None) or {}
    if extra.get("split"):
        return str(extra["split"])
    level = extra.get("occlusion_level")
    if level is not None:
        return "clean" if str(level) in ("none", "0", "L0") else str(level)
    return f"L{int(obj.occlusion)}" if obj.occlusion else "clean"


def category_meshes(config, categories: Sequence[str]) -> dict[str, geom3d.Mesh]:
    """Per category the cuboid (`geom3d.cuboid_from_meshes`) over the assets of the config's `meshes`
    source (a `data3d.asset_source` block, or a list of them as in datagen's `assets`)."""
    cfg = NemoConfig.of(config)
    blocks = cfg.meshes if isinstance(cfg.meshes, (list, tuple)) else [cfg.meshes]
    sources = []
    for block in blocks:
        block = dict(block)
        if block.get("categories") is None:
            block["categories"] = list(categories)
        try:
            sources.append(data3d.asset_source(block))
        except data3d.AssetError as exc:
            raise NemoError(f"config 'meshes': {exc}") from exc
    out = {}
    for c in categories:
        meshes = [m for source in sources for m in (source.load(a) for a in source.by_category(c)) if m is not None]
        if not meshes:
            raise NemoError(f"config 'meshes': the asset source has no usable mesh of category {c!r}")
        out[c] = geom3d.cuboid_from_meshes(meshes, coverage=cfg.cuboid.coverage,
                                                 num_vertices=cfg.cuboid.num_vertices)
    return out


class SkippingDataset(torch.utils.data.Dataset):
    """A dataset whose unreadable items (a corrupt or missing image, a wrong size) come back as
    {"skipped": reason} instead of stopping a batch job; `collate_skipping` drops and counts them."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # records, categories, set_epoch, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except (data3d.AnnotationError, OSError) as exc:
            return {"skipped": f"{type(exc).__name__}: {exc}"}


def collate_skipping(items):
    """`data3d.collate_objects` of the readable items, with "skipped": [reasons] (None when all were skipped)."""
    good = [i for i in items if "skipped" not in i]
    reasons = [i["skipped"] for i in items if "skipped" in i]
    if not good:
        return {"skipped": reasons, "empty": True}
    batch = data3d.collate_objects(good)
    batch["skipped"] = reasons
    return batch


def check_batch_norm(n: int, config, what) -> None:
    """A NemoError naming `what` when every batch of the `n` training crops would hold one value per channel at
    the ResNet backbone's last stage (stride 32), which batch norm cannot train on (torch's own error for it,
    "Expected more than 1 value per channel", names neither the data nor the crop)."""
    cfg = NemoConfig.of(config)
    h, w = cfg.data.crop_size
    if cfg.backbone.kind == "resnet" and n > 0 and min(cfg.data.batch_size, n) * (h // 32) * (w // 32) < 2:
        raise NemoError(f"{what}: {n} training object(s) with 'data.crop_size' {[h, w]} give batches of one crop, "
                        "one value per channel at the backbone's last stage (stride 32), which batch norm cannot "
                        "train on: more objects, or a crop ≥ 64 a side")


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The full batches of one epoch in a seeded order (a batch of n when n < batch_size)."""
    gen = torch.Generator().manual_seed(int(seed) * 100003 + int(epoch))
    order = torch.randperm(n, generator=gen).tolist()
    size = min(batch_size, n)
    return [order[i:i + size] for i in range(0, n - size + 1, size)]
