"""Reading the image files records point to: colour images, masks, depth maps, and their headers.

Every reader checks what the file is before using it (mode and bit depth from the header, the size
against what the record says) and raises `AnnotationError` naming the file, so a batch job can log
the problem as a skip reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import AnnotationError

__all__ = ["read_image_size", "check_image_size", "load_image", "load_mask", "load_depth", "COLOR_MODES"]

# 8-bit PIL modes that convert to RGB without losing meaning; 16-bit and float images ("I;16", "I",
# "F") are depth maps or scientific data, not photographs, and are refused.
COLOR_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
_MASK_MODES = ("1", "L", "P", "LA", "RGB", "RGBA")
_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F", "L")


def _open(path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except FileNotFoundError:
        raise AnnotationError("image file not found", path) from None
    except Image.DecompressionBombError as exc:  # a header claiming more pixels than PIL's limit
        raise AnnotationError(f"is too large to decode: {exc}", path) from None
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise AnnotationError(f"cannot be read as an image: {exc}", path) from None


def read_image_size(path) -> tuple[int, int]:
    """(H, W) of an image file from its header (the pixels are not decoded)."""
    with _open(path) as im:
        w, h = im.size
    return int(h), int(w)


def check_image_size(image_path, size, annotation_path=None, field: str = "image_size") -> tuple[int, int]:
    """The header's (H, W) of `image_path`; AnnotationError naming `annotation_path` (else the image)
    and `field` when the annotated `size` (H, W) disagrees with it."""
    actual = read_image_size(image_path)
    if tuple(int(v) for v in size) != actual:
        raise AnnotationError(f"says (H, W) = {tuple(int(v) for v in size)}, but {Path(image_path).name} is {actual}",
                              annotation_path or image_path, field)
    return actual


def _decode(im, path) -> np.ndarray:
    try:
        return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt pixel data
        raise AnnotationError(f"pixel data cannot be decoded: {exc}", path) from None


def load_image(path, exif_transpose: bool = False) -> torch.Tensor:
    """An 8-bit image file as a (3, H, W) float32 tensor in [0, 1] (grey, palette and RGBA become RGB).

    16-bit and floating-point images raise AnnotationError naming the file and its mode.
    exif_transpose: turn the pixels as the file's EXIF orientation says (a camera's photograph, shown
    upright); records keep the stored pixel layout their annotations refer to, so it is off by default.
    """
    with _open(path) as im:
        if im.mode not in COLOR_MODES:
            raise AnnotationError(f"is a {im.mode!r} image (16-bit or floating point); expected an 8-bit colour "
                                  f"or grey image", path, "mode")
        try:
            if exif_transpose:
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
        except (OSError, ValueError, SyntaxError) as exc:
            raise AnnotationError(f"pixel data cannot be decoded: {exc}", path) from None
        arr = _decode(im, path)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_mask(path, size=None) -> torch.Tensor:
    """A mask image (0 / non-zero) as an (H, W) bool tensor; `size` (H, W), when given, must match."""
    with _open(path) as im:
        if im.mode not in _MASK_MODES:
            raise AnnotationError(f"is a {im.mode!r} image; a mask must be an 8-bit or 1-bit image", path, "mode")
        arr = _decode(im.convert("L") if im.mode not in ("1", "L", "P") else im, path)
    if size is not None and arr.shape[:2] != tuple(size):
        raise AnnotationError(f"is {arr.shape[:2]} (H, W), the record says {tuple(size)}", path, "image_size")
    return torch.from_numpy(np.ascontiguousarray(arr) != 0)


def load_depth(path, scale: float, size=None) -> torch.Tensor:
    """A depth PNG as an (H, W) float32 tensor: depth = stored value × `scale` (0 = no surface).

    datagen writes 16-bit PNGs in the mesh's units (`extra["depth_scale"]`)."""
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise AnnotationError(f"depth_scale must be a number, got {scale!r}", path, "depth_scale") from None
    if not scale > 0 or not np.isfinite(scale):
        raise AnnotationError(f"depth_scale must be positive and finite, got {scale!r}", path, "depth_scale")
    with _open(path) as im:
        if im.mode not in _DEPTH_MODES:
            raise AnnotationError(f"is a {im.mode!r} image; a depth map is a 16-bit grey PNG", path, "mode")
        arr = _decode(im, path).astype(np.float64)
    if size is not None and arr.shape[:2] != tuple(size):
        raise AnnotationError(f"is {arr.shape[:2]} (H, W), the record says {tuple(size)}", path, "image_size")
    return torch.from_numpy(arr * scale).float()
