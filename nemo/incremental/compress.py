"""Exemplar compression as in CIM (Luo et al. 2023): keep the object, shrink the rest.

An exemplar costs what must be stored to rebuild its training crop: uncompressed, 3·H·W bytes;
compressed, the object's pixels at full resolution (3 bytes each), the image downsampled by
`factor` (3·⌈H/f⌉·⌈W/f⌉ bytes) and the mask (1 bit per pixel). The rebuilt image is the original
inside the mask and the upsampled low-resolution image outside, so a byte budget holds several
times more exemplars. The mask is the record's silhouette (datagen's `mask_path`: exact for
synthetic data), else the object's box.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import data3d
from aware3d_utils import atomic_save
from aware3d_utils.deprecation import renamed
from data3d.images import load_mask

from ..errors import NemoError

__all__ = ["silhouette_or_box", "full_bytes", "compressed_bytes", "compress_image", "compress_record", "SOURCE_KEY"]

SOURCE_KEY = "exemplar_source"  # record extra: the image a compressed exemplar was made from


def silhouette_or_box(record) -> torch.Tensor:
    """(H, W) bool: the silhouette of the record's (first) object, or its box when the record has no mask."""
    H, W = record.image_size
    path = record.extra.get("mask_path") if record.extra else None
    if path:
        try:
            return load_mask(path, (H, W))
        except data3d.AnnotationError as exc:
            raise NemoError(f"exemplar mask: {exc}", path) from None
    x1, y1, x2, y2 = record.objects[0].bbox
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[max(0, math.floor(y1)):math.ceil(y2) + 1, max(0, math.floor(x1)):math.ceil(x2) + 1] = True
    return mask


object_mask = renamed(silhouette_or_box, "object_mask")  # the old name (orbit4d's object_mask is another thing)


def full_bytes(record) -> int:
    """Bytes of an uncompressed exemplar (8-bit RGB)."""
    H, W = record.image_size
    return 3 * H * W


def compressed_bytes(mask: torch.Tensor, factor: int) -> int:
    """Bytes of a compressed exemplar with this mask (see the module docstring)."""
    H, W = mask.shape
    return 3 * int(mask.sum()) + 3 * math.ceil(H / factor) * math.ceil(W / factor) + math.ceil(H * W / 8)


def compress_image(image: torch.Tensor, mask: torch.Tensor, factor: int) -> torch.Tensor:
    """(3, H, W) in [0, 1]: the image inside the mask, its `factor`× downsampled (area) and bilinearly
    upsampled version outside."""
    if int(factor) < 1:
        raise NemoError(f"compress_image: factor must be ≥ 1, got {factor}")
    H, W = image.shape[-2:]
    small = F.avg_pool2d(image[None], int(factor), ceil_mode=True, count_include_pad=False)
    coarse = F.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)[0]
    return torch.where(mask[None].to(image.device), image, coarse)


def compress_record(record, folder: str | os.PathLike, factor: int, name: str):
    """The record with its image replaced by the compressed one, written (PNG, atomically) to
    folder/name.png; the source image is kept in extra[SOURCE_KEY]."""
    from PIL import Image

    try:
        image = data3d.load_image(record.image_path)
    except data3d.AnnotationError as exc:
        raise NemoError(f"exemplar image: {exc}", record.image_path) from None
    out = compress_image(image, silhouette_or_box(record), factor)
    pixels = (out.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))
    extra = dict(record.extra or {}, **{SOURCE_KEY: str(record.extra.get(SOURCE_KEY, record.image_path))})
    return replace(record, image_path=path.resolve(), extra=extra)
