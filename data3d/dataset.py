"""A torch Dataset of annotated objects: one item per object, image cropped around it.

    ds = ObjectDataset(records, crop_size=(256, 256), rescale="canonical", flip_prob=0.5,
                       color_jitter={"brightness": 0.2, "contrast": 0.2, "saturation": 0.4})
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate_objects)

Each item is a dict:
    image       (3, H, W) float32 in [0, 1]
    cameras     geom3d.Cameras (unbatched) of the output image
    rotation    (3, 3) object -> camera rotation;  viewpoint (8,) float64 in VIEWPOINT_KEYS order
    category    int64 index into `ds.categories`
    mesh_ref    str, `ObjectAnnotation.mesh_ref` (e.g. "pascal3d:car/03")
    bbox        (4,) float64 in the output image;  mirrored: bool;  truncated: bool
    record_index, object_index: where it came from
Random choices (flip, jitter) are drawn from a generator seeded by (seed, epoch, index), so an item
is the same in every worker process; call `set_epoch` to vary them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from geom3d import Cameras

from .errors import AnnotationError
from .record import VIEWPOINT_KEYS, ImageRecord
from .transforms import ObjectView, canonical_scale, color_jitter, fit_scale, flip_object, warp_object

__all__ = ["ObjectDataset", "collate_objects", "load_image"]


def load_image(path) -> torch.Tensor:
    """An image file as a (3, H, W) float32 tensor in [0, 1] (grey and RGBA become RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"cannot be read as an image: {exc}", path) from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class ObjectDataset(torch.utils.data.Dataset):
    """Objects of `records` as training samples (see the module docstring for the item layout).

    crop_size: (H, W) of the output window around each object, or None for the whole image.
    rescale: "none", "canonical" (NeMo: the object looks as at `canonical_distance` with
        focal·viewport = `canonical_focal`) or "fit" (the bbox's larger side fills `fit_fraction`).
    center: crop centre, "principal" (object origin) or "bbox".
    flip_prob: probability of a horizontal flip (viewpoint mirrored). color_jitter: None or a dict
        with brightness / contrast / saturation / hue (see `transforms.color_jitter`).
    categories: the label order (default: sorted categories of the records).
    """

    def __init__(self, records: Sequence[ImageRecord], crop_size=(256, 256), rescale: str = "none",
                 canonical_distance: float = 5.0, canonical_focal: float = 3000.0, fit_fraction: float = 0.8,
                 center: str = "principal", flip_prob: float = 0.0, color_jitter: Mapping | None = None,
                 categories: Sequence[str] | None = None, seed: int = 0, image_loader=load_image):
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
        self.records = list(records)
        self.index = [(i, j) for i, r in enumerate(self.records) for j in range(len(r.objects))]
        self.categories = list(categories) if categories is not None else sorted(
            {o.category for r in self.records for o in r.objects})
        self._category_index = {c: k for k, c in enumerate(self.categories)}
        missing = {o.category for r in self.records for o in r.objects} - set(self._category_index)
        if missing:
            raise ValueError(f"records hold categories not in `categories`: {sorted(missing)}")
        self.crop_size = None if crop_size is None else (int(crop_size[0]), int(crop_size[1]))
        self.rescale, self.center = rescale, center
        self.canonical_distance, self.canonical_focal = canonical_distance, canonical_focal
        self.fit_fraction = fit_fraction
        self.flip_prob, self.jitter, self.seed = flip_prob, jitter, int(seed)
        self.image_loader = image_loader
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _generator(self, index: int) -> torch.Generator:
        key = hashlib.blake2b(f"{self.seed}/{self.epoch}/{index}".encode(), digest_size=8).digest()
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
        view = ObjectView(image=image, viewpoint=obj.viewpoint, bbox=obj.bbox, truncated=bool(obj.truncated))
        gen = self._generator(index)
        if self.crop_size is not None:
            scale = 1.0
            if self.rescale == "canonical":
                scale = canonical_scale(obj.viewpoint, self.canonical_distance, self.canonical_focal)
            elif self.rescale == "fit":
                scale = fit_scale(obj.bbox, self.crop_size, self.fit_fraction)
            view = warp_object(view, self.crop_size, scale, self.center)
        if self.flip_prob > 0 and float(torch.rand((), generator=gen)) < self.flip_prob:
            view = flip_object(view)
        return view

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
        vp = view.viewpoint
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
        }


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
