"""File kinds every reader agrees on."""

from __future__ import annotations

__all__ = ["IMAGE_SUFFIXES", "is_image_file"]

# the image files a folder of images may hold (lower case; compare with `path.suffix.lower()`):
# the formats PIL and OpenCV both read, so every command accepts the same files
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_file(path) -> bool:
    """Whether `path` names an image by its suffix (any case: PASCAL3D+ ships `.JPEG`)."""
    from pathlib import Path

    return Path(path).suffix.lower() in IMAGE_SUFFIXES
