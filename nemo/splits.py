"""Out-of-distribution test splits from datagen, next to a training config.

    make_ood_splits("train_data.yaml", "runs/ood", samples_per_category=50, background_images="photos/")

Every split is a datagen run derived from the training config with another seed (fresh viewpoints)
and one change; its records carry extra["split"] so `nemo.evaluate` reports it on its own:
    clean, L1, L2, L3       occluders hiding 20-40 / 40-60 / 60-80% of the object (split from the level)
    unseen_cad              procedural sources: seeds after the training ones (other shapes); file
                            sources: the models the training config's `exclude` holds out
    seen_cad                the training config's own instances at fresh viewpoints (the old
                            same-instance protocol, reported beside an instance-disjoint test)
    unseen_texture          only striped surfaces (train with randomization.appearance.stripes: 0)
    unseen_background       photographs as backgrounds (`background_images`; train without them)
    high_elevation          cameras 60-85° above the horizon (outside datagen's usual range)
    fog, snow, rain, motion_blur, noise
                            the clean split's images corrupted with kornia.augmentation
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .errors import NemoError

__all__ = ["make_ood_splits", "corrupt_records", "CORRUPTIONS", "GENERATED_SPLITS"]

GENERATED_SPLITS = ("occlusion", "unseen_cad", "unseen_texture", "unseen_background", "high_elevation",
                    "seen_cad")
CORRUPTIONS = ("fog", "snow", "rain", "motion_blur", "noise")
_SEED_OFFSET = 100_000  # splits never reuse a training round's seed (on-the-fly rounds use seed + epoch)


def _corruption(kind: str, severity: float):
    """A kornia augmentation applied with probability 1 (severity in (0, 1])."""
    import kornia.augmentation as K

    s = float(severity)
    if kind == "fog":  # ImageNet-C's fog is a plasma fractal haze: plasma brightness + lower contrast
        return K.AugmentationSequential(K.RandomPlasmaBrightness(roughness=(0.3, 0.5), intensity=(0.4 * s, 0.6 * s),
                                                                 p=1.0),
                                        K.RandomContrast(contrast=(1 - 0.5 * s, 1 - 0.4 * s), p=1.0))
    if kind == "snow":
        return K.RandomSnow(snow_coefficient=(0.3 * s, 0.5 * s), brightness=(2.0, 2.5), p=1.0)
    if kind == "rain":
        return K.RandomRain(number_of_drops=(int(400 * s), int(800 * s)), drop_height=(5, 10), drop_width=(-2, 2),
                            p=1.0)
    if kind == "motion_blur":
        return K.RandomMotionBlur(kernel_size=2 * max(1, round(4 * s)) + 1, angle=45.0, direction=0.5, p=1.0)
    if kind == "noise":
        return K.RandomGaussianNoise(std=0.15 * s, p=1.0)
    raise NemoError(f"unknown corruption {kind!r}; known: {list(CORRUPTIONS)}")


def corrupt_records(folder: str | os.PathLike, out: str | os.PathLike, kind: str, severity: float = 1.0,
                    seed: int = 0) -> list:
    """Copies of a records folder's images with one corruption (kornia), as records tagged split=kind."""
    from dataclasses import replace

    from PIL import Image

    import data3d
    from aware3d_utils import atomic_save

    augment = _corruption(kind, severity)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    records = []
    for i, record in enumerate(data3d.load_records(folder)):
        image = data3d.load_image(record.image_path)[None]
        corrupted = augment(image).clamp(0, 1)[0]
        arr = (corrupted.permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
        path = out / "images" / f"{i:06d}_{Path(record.image_path).stem}.png"
        atomic_save(path, lambda tmp, a=arr: Image.fromarray(a).save(tmp, format="PNG"))
        extra = dict(record.extra)
        extra.pop("mask_path", None)  # the mask belongs to the clean image's folder
        records.append(replace(record, image_path=path, extra={**extra, "split": kind, "corruption": kind}))
    data3d.save_records(records, out, shard="split")
    return records


def _variant(base: dict, split: str, samples: int | None, background_images) -> dict | None:
    cfg = copy.deepcopy(base)
    cfg["seed"] = int(cfg.get("seed", 0)) + _SEED_OFFSET + GENERATED_SPLITS.index(split)
    if samples is not None:
        cfg["samples_per_category"] = int(samples)
    cfg["occlusion"] = ["none"]
    if split == "occlusion":
        cfg["occlusion"] = ["none", "L1", "L2", "L3"]
    elif split == "unseen_cad":
        assets = []
        for block in cfg["assets"]:
            if block.get("type") == "procedural":
                count = int(block.get("count") or 10)
                seeds = block.get("seeds") or list(range(count))
                held_out = {k: v for k, v in block.items() if k != "count"}
                assets.append({**held_out, "seeds": [max(seeds) + 1 + k for k in range(len(seeds))]})
            elif block.get("exclude"):  # the models training held out are the split's only models
                assets.append({**{k: v for k, v in block.items() if k != "exclude"}, "include": list(block["exclude"])})
        if not assets:
            return None  # nothing held out: give held-out CAD folders as their own datagen config
        cfg["assets"] = assets
    elif split == "seen_cad":
        pass  # the training assets as they are; only the seed (the viewpoints) differs
    elif split == "unseen_texture":
        cfg.setdefault("randomization", {})["appearance"] = {"original": 0.0, "solid": 0.0, "noise": 0.0,
                                                             "stripes": 1.0}
    elif split == "unseen_background":
        if background_images is None:
            return None
        rnd = cfg.setdefault("randomization", {})
        rnd["background"] = {"noise": 0.0, "gradient": 0.0, "solid": 0.0, "image": 1.0, "transparent": 0.0}
        rnd["background_images"] = str(background_images)
    elif split == "high_elevation":
        sampler = cfg.setdefault("sampler", {})
        sampler.update(strategy="uniform_sphere", elevation_range=[60.0, 85.0])
        dst_keys = ("preset", "azimuth", "polar", "polar_mean", "polar_sd", "polar_range")  # 3D-DST's, unread now
        for block in [sampler, *[b for b in (sampler.get("per_category") or {}).values()
                                 if isinstance(b, dict) and "strategy" not in b]]:
            for key in dst_keys:
                block.pop(key, None)
    return cfg


def make_ood_splits(train_config: str | os.PathLike | Mapping, out: str | os.PathLike, *,
                    samples_per_category: int | None = None, background_images=None,
                    splits: Sequence[str] = GENERATED_SPLITS + CORRUPTIONS, severity: float = 1.0) -> dict[str, Path]:
    """Generate the splits of the module docstring under `out/<split>`; returns {split: folder}.

    Splits that cannot be made from this config (unseen_cad without a procedural source or an
    `exclude` list, unseen_background without images) are left out. Existing complete folders are resumed/kept.
    """
    from datagen.config import load_config
    from datagen.pipeline import generate

    unknown = sorted(set(splits) - set(GENERATED_SPLITS) - set(CORRUPTIONS))
    if unknown:
        raise NemoError(f"make_ood_splits: unknown splits {unknown}; known: {list(GENERATED_SPLITS + CORRUPTIONS)}")
    base = dict(load_config(train_config).data)
    out = Path(out)
    made: dict[str, Path] = {}
    for split in GENERATED_SPLITS:
        if split not in splits and not (split == "occlusion" and set(splits) & set(CORRUPTIONS)):
            continue
        cfg = _variant(base, split, samples_per_category, background_images)
        if cfg is None:
            continue
        generated = out / "generated" / split  # datagen's own (resumable) folder
        generate(load_config(cfg), generated, progress=False, preview=False)
        made[split] = _tagged(generated, out / split, None if split == "occlusion" else split)
    for kind in CORRUPTIONS:
        if kind in splits:
            import data3d

            clean = [r for r in data3d.load_records(made["occlusion"])
                     if r.extra.get("occlusion_level", "none") == "none"]
            data3d.save_records(clean, out / "generated" / "clean_only", shard="clean")
            corrupt_records(out / "generated" / "clean_only", out / kind, kind, severity)
            made[kind] = out / kind
    return made


def _tagged(generated: Path, folder: Path, split: str | None) -> Path:
    """The generated records saved into `folder` (one shard, replaced atomically), with extra["split"]."""
    from dataclasses import replace

    import data3d

    records = list(data3d.load_records(generated))
    if split is not None:
        records = [replace(r, extra={**r.extra, "split": split}) for r in records]
    data3d.save_records(records, folder, shard="split")
    return folder
