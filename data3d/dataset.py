"""A torch Dataset of annotated objects: one item per object, image cropped around it.

    ds = ObjectDataset(records, crop_size=(256, 256), rescale="canonical", flip_prob=0.5,
                       color_jitter={"brightness": 0.2, "contrast": 0.2, "saturation": 0.4})
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate_objects)

Each item is a dict:
    image       (3, H, W) float32 in [0, 1]
    cameras     geom3d.Cameras (unbatched) of the output image
    rotation    (3, 3) object -> camera rotation;  viewpoint (8,) float64 in VIEWPOINT_KEYS order
    category    int64 index into `ds.categories` (the label: ds.categories[item["category"]] is its name)
    mesh_ref    str, `ObjectAnnotation.mesh_ref` (e.g. "pascal3d:car/03")
    bbox        (4,) float64 in the output image;  mirrored: bool;  truncated: bool
    record_index, object_index: where it came from
and, asked for with `extras=(...)` (what datagen writes; a record without the file raises):
    mask          (H, W) bool, the object's full (amodal) silhouette   (extra["mask_path"])
    visible_mask  (H, W) bool, its unoccluded part (extra["visible_mask_path"], else the mask)
    depth         (H, W) float32 camera depth in mesh units, 0 off the object (extra["depth_path"] ×
                  extra["depth_scale"]); cropping and rescaling keep the camera centre, so depth is unchanged
    visible_fraction  () float32, the object's visible_fraction (NaN when the record has none)
Random choices (flip, jitter) are drawn from a generator seeded by (seed, epoch, index), so an item
is the same in every worker process; call `set_epoch` to vary them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from aware3d_utils.deprecation import renamed_arguments
from geom3d import Cameras

from .errors import AnnotationError
from .images import load_depth, load_image, load_mask
from .record import VIEWPOINT_KEYS, ImageRecord
from .transforms import (
    NEMO_CROP_SIZE,
    ObjectView,
    canonical_scale,
    color_jitter,
    degrade,
    fit_scale,
    flip_object,
    jitter_box,
    random_convolution,
    warp_object,
)

__all__ = ["ObjectDataset", "collate_objects", "load_image", "EXTRA_KEYS"]

EXTRA_KEYS = ("mask", "visible_mask", "depth", "visible_fraction")


def _crop_size(crop_size) -> tuple[int, int] | None:
    if crop_size is None:
        return None
    try:
        h, w = crop_size
        ok = all(float(v).is_integer() for v in (h, w)) and not isinstance(h, bool) and not isinstance(w, bool)
    except (TypeError, ValueError):
        ok = False
    if not ok or int(h) < 1 or int(w) < 1:
        raise ValueError(f"crop_size must be (H, W) with two positive integers, or None; got {crop_size!r}")
    return int(h), int(w)


class ObjectDataset(torch.utils.data.Dataset):
    """Objects of `records` as training samples (see the module docstring for the item layout).

    crop_size: (H, W) of the output window around each object, or None for the whole image.
    rescale: "none", "canonical" (NeMo: every object looks as at `canonical_distance` with
        focal·viewport = `canonical_focal` in a `canonical_crop` window, and that frame is scaled to
        `crop_size` by min(H/H_ref, W/W_ref) so a canonical object fits the crop asked for;
        canonical_crop=None keeps NeMo's pixels whatever the crop) or "fit" (the bbox's larger side
        fills `fit_fraction`).
    centre: crop centre, "principal" (object origin) or "bbox".
    flip_prob: probability of a horizontal flip (viewpoint mirrored). color_jitter: None or a dict
        with brightness / contrast / saturation / hue (see `transforms.color_jitter`).
    box_jitter: None or {"shift", "scale"}: crop (centre and "fit" scale) from a randomly moved and
        resized box instead of the annotated one (`transforms.jitter_box`), as a detector's box would;
        the labels stay exact, only the window moves.
    degrade: None or `transforms.degrade` keywords plus "prob" (the chance an item is degraded):
        lower resolution, blur, JPEG and noise, as small objects in photographs look.
    random_conv: None or {"prob", "kernel_sizes"}: the chance an item is filtered by a random
        convolution mixed with itself (`transforms.random_convolution`, RandConv), and the sizes drawn.
    categories: the label order (default: sorted categories of the records); `item["category"]`
        indexes it. extras: opt-in item keys, any of `EXTRA_KEYS` (see the module docstring).
    """

    @renamed_arguments(center="centre")
    def __init__(self, records: Sequence[ImageRecord], crop_size=(256, 256), rescale: str = "none",
                 canonical_distance: float = 5.0, canonical_focal: float = 3000.0,
                 canonical_crop=NEMO_CROP_SIZE, fit_fraction: float = 0.8,
                 centre: str = "principal", flip_prob: float = 0.0, color_jitter: Mapping | None = None,
                 categories: Sequence[str] | None = None, seed: int = 0, image_loader=load_image,
                 extras: Sequence[str] = (), box_jitter: Mapping | None = None, degrade: Mapping | None = None,
                 random_conv: Mapping | None = None):
        self.crop_size = _crop_size(crop_size)
        self.canonical_crop = _crop_size(canonical_crop)
        extras = (extras,) if isinstance(extras, str) else tuple(extras)
        unknown_extras = [k for k in extras if k not in EXTRA_KEYS]
        if unknown_extras:
            raise ValueError(f"extras: unknown keys {unknown_extras}; choose from {list(EXTRA_KEYS)}")
        self.extras = extras
        if centre not in ("principal", "bbox"):
            raise ValueError(f"centre must be 'principal' or 'bbox', got {centre!r}")
        for name, value in (("canonical_distance", canonical_distance), ("canonical_focal", canonical_focal),
                            ("fit_fraction", fit_fraction)):
            if not isinstance(value, (int, float)) or not value > 0 or not np.isfinite(value):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if rescale not in ("none", "canonical", "fit"):
            raise ValueError(f"rescale must be 'none', 'canonical' or 'fit', got {rescale!r}")
        if rescale != "none" and crop_size is None:
            raise ValueError("rescale needs a crop_size")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        jitter = dict(color_jitter or {})
        unknown = set(jitter) - {"brightness", "contrast", "saturation", "hue"}
        if unknown:
            raise ValueError(f"color_jitter: unknown keys {sorted(unknown)}")
        self.box_jitter = _box_jitter_options(box_jitter)
        self.degrade = _degrade_options(degrade)
        self.random_conv = _random_conv_options(random_conv)
        self.records = list(records)
        self.index = [(i, j) for i, r in enumerate(self.records) for j in range(len(r.objects))]
        self.categories = list(categories) if categories is not None else sorted(
            {o.category for r in self.records for o in r.objects})
        self._category_index = {c: k for k, c in enumerate(self.categories)}
        missing = {o.category for r in self.records for o in r.objects} - set(self._category_index)
        if missing:
            raise ValueError(f"records hold categories not in `categories`: {sorted(missing)}")
        self.rescale, self.centre = rescale, centre
        self.canonical_distance, self.canonical_focal = canonical_distance, canonical_focal
        self.fit_fraction = fit_fraction
        self.flip_prob, self.jitter, self.seed = flip_prob, jitter, int(seed)
        self.image_loader = image_loader
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _generator(self, index: int, stream: str = "") -> torch.Generator:
        """The item's random stream; other `stream` names give independent streams (new options draw
        from their own, so adding one never changes what the others draw)."""
        key = hashlib.blake2b(f"{self.seed}/{self.epoch}/{index}{stream}".encode(), digest_size=8).digest()
        return torch.Generator().manual_seed(int.from_bytes(key, "little") & ((1 << 63) - 1))

    def view(self, index: int, image: torch.Tensor | None = None) -> ObjectView:
        """The transformed view of item `index` (without colour jitter); `image` overrides the file."""
        ri, oi = self.index[index]
        record = self.records[ri]
        obj = record.objects[oi]
        if image is None:
            image = self.image_loader(record.image_path)
        if tuple(image.shape[-2:]) != record.image_size:
            raise AnnotationError(f"image is {tuple(image.shape[-2:])} (H, W), the record says {record.image_size}",
                                  record.image_path, "image_size")
        view = ObjectView(image=image, viewpoint=obj.viewpoint, bbox=obj.bbox, truncated=bool(obj.truncated),
                          maps=self._maps(record, obj))
        gen = self._generator(index)
        if self.crop_size is not None:
            box = obj.bbox
            if self.box_jitter is not None:
                box = jitter_box(obj.bbox, self._generator(index, "/box"), **self.box_jitter)
            scale = 1.0
            if self.rescale == "canonical":
                scale = canonical_scale(obj.viewpoint, self.canonical_distance, self.canonical_focal,
                                        self.crop_size, self.canonical_crop)
            elif self.rescale == "fit":
                scale = fit_scale(box, self.crop_size, self.fit_fraction)
            view = warp_object(view, self.crop_size, scale, self.centre, crop_box=box)
        if self.flip_prob > 0 and float(torch.rand((), generator=gen)) < self.flip_prob:
            view = flip_object(view)
        return view

    def _extra_file(self, record: ImageRecord, key: str) -> str:
        path = record.extra.get(key)
        if not isinstance(path, str) or not path:
            raise AnnotationError(f"the record has no {key} (ObjectDataset extras need datagen's files)",
                                  record.annotation_path or record.image_path, f"extra.{key}")
        return path

    def _maps(self, record: ImageRecord, obj) -> dict[str, torch.Tensor]:
        """The per-pixel extras of a record as (1, H, W) tensors (only those asked for)."""
        maps = {}
        if "mask" in self.extras or "visible_mask" in self.extras:
            mask = load_mask(self._extra_file(record, "mask_path"), record.image_size)
            if "mask" in self.extras:
                maps["mask"] = mask[None]
            if "visible_mask" in self.extras:
                vis = record.extra.get("visible_mask_path")
                maps["visible_mask"] = load_mask(vis, record.image_size)[None] if vis else mask[None]
        if "depth" in self.extras:
            maps["depth"] = load_depth(self._extra_file(record, "depth_path"), record.extra.get("depth_scale"),
                                       record.image_size)[None]
        return maps

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        ri, oi = self.index[index]
        obj = self.records[ri].objects[oi]
        view = self.view(index)
        image = view.image
        if self.jitter:
            gen = self._generator(index)
            torch.rand((), generator=gen)  # the flip's draw, so jitter never depends on flip_prob
            image = color_jitter(image, gen, **self.jitter)
        if self.degrade is not None:
            gen = self._generator(index, "/degrade")
            options = dict(self.degrade)
            if float(torch.rand((), generator=gen)) < options.pop("prob"):
                b = view.bbox
                image = degrade(image, gen, max(b[2] - b[0] + 1.0, b[3] - b[1] + 1.0), **options)
        if self.random_conv is not None:
            gen = self._generator(index, "/random_conv")
            if float(torch.rand((), generator=gen)) < self.random_conv["prob"]:
                image = random_convolution(image, gen, self.random_conv["kernel_sizes"])
        vp = view.viewpoint
        extras = {k: m[0] for k, m in view.maps.items()}
        if "visible_fraction" in self.extras:
            frac = obj.visible_fraction
            extras["visible_fraction"] = torch.tensor(float("nan") if frac is None else frac, dtype=torch.float32)
        return {
            "image": image.float().contiguous(),
            "cameras": vp.to_cameras(view.image_size),
            "rotation": vp.rotation(),
            "viewpoint": torch.tensor([vp[k] for k in VIEWPOINT_KEYS], dtype=torch.float64),
            "category": torch.tensor(self._category_index[obj.category], dtype=torch.int64),
            "mesh_ref": obj.mesh_ref,
            "bbox": torch.tensor(view.bbox, dtype=torch.float64),
            "mirrored": view.mirrored,
            "truncated": view.truncated,
            "record_index": ri,
            "object_index": oi,
            **extras,
        }


def _mapping(name: str, options) -> None:
    if not isinstance(options, Mapping):
        raise ValueError(f"{name} must be null or a mapping of its options, got {options!r}")


def _box_jitter_options(options: Mapping | None) -> dict | None:
    if options is None:
        return None
    _mapping("box_jitter", options)
    out = {"shift": 0.1, "scale": 0.1, **dict(options)}
    if set(out) != {"shift", "scale"}:
        raise ValueError(f"box_jitter: unknown keys {sorted(set(out) - {'shift', 'scale'})}")
    for k, v in out.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 1:
            raise ValueError(f"box_jitter.{k} must be a number in [0, 1), got {v!r}")
    return out


def _random_conv_options(options: Mapping | None) -> dict | None:
    if options is None:
        return None
    _mapping("random_conv", options)
    out = {"prob": 0.5, "kernel_sizes": [1, 3, 5, 7], **dict(options)}
    if set(out) != {"prob", "kernel_sizes"}:
        raise ValueError(f"random_conv: unknown keys {sorted(set(out) - {'prob', 'kernel_sizes'})}")
    p = out["prob"]
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"random_conv.prob must be a number in [0, 1], got {p!r}")
    ks = out["kernel_sizes"]
    if (not isinstance(ks, (list, tuple)) or not ks
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2 for k in ks)):
        raise ValueError(f"random_conv.kernel_sizes must be a non-empty list of odd integers >= 1, got {ks!r}")
    return out


def _degrade_options(options: Mapping | None) -> dict | None:
    if options is None:
        return None
    _mapping("degrade", options)
    out = {"prob": 0.5, "object_px": [20.0, 80.0], "blur": 0.0, "jpeg": None, "noise": 0.0, **dict(options)}
    unknown = set(out) - {"prob", "object_px", "blur", "jpeg", "noise"}
    if unknown:
        raise ValueError(f"degrade: unknown keys {sorted(unknown)}")

    def number(key, v, lo, hi):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"degrade.{key} must be a number in [{lo}, {hi}], got {v!r}")

    number("prob", out["prob"], 0, 1)
    number("blur", out["blur"], 0, 10)
    number("noise", out["noise"], 0, 1)
    for key, lo, hi in (("object_px", 1, 10000), ("jpeg", 1, 100)):
        v = out[key]
        if v is None and key == "jpeg":
            continue
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ValueError(f"degrade.{key} must be [low, high], got {v!r}")
        number(key, v[0], lo, hi)
        number(key, v[1], v[0], hi)
    return out


# the option blocks ObjectDataset takes, each with the function that checks one and fills its defaults
AUGMENTATION_OPTIONS = {"box_jitter": _box_jitter_options, "degrade": _degrade_options,
                        "random_conv": _random_conv_options}


def collate_objects(batch: Sequence[dict]) -> dict:
    """Stack dataset items: tensors stacked on a new first dimension, cameras batched to (B,),
    strings and flags kept as lists (mirrored/truncated as bool tensors). All images must share a size."""
    if not batch:
        raise ValueError("collate_objects: empty batch")
    sizes = {tuple(item["image"].shape) for item in batch}
    if len(sizes) != 1:
        raise ValueError(f"collate_objects: images of different sizes {sorted(sizes)}; set crop_size")
    out = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if key == "cameras":
            out[key] = Cameras.cat([c.reshape(1) for c in values])
        elif isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], bool):
            out[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values, dtype=torch.int64)
        else:
            out[key] = list(values)
    return out
