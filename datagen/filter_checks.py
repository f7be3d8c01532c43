"""Cheap per-image checks of generated samples (`cheap_checks`), run on every generated image right
after generation:
  - "blank_image": (nearly) one colour everywhere (e.g. a safety-checker black image, a NaN decode);
  - "empty_condition": the edge map has (almost) no edges, so there is nothing to follow;
  - "object_missing" / "object_too_small" / "object_cropped": the object's render mask is empty,
    tiny, or runs off the image border over a large part of its outline;
  - "edges_disagree": the generated image's Canny edges do not follow the condition. The score is
    the fraction of condition edge pixels with a generated edge within `edge_radius` pixels (recall)
    minus the same fraction for all pixels (chance: an image full of texture has an edge near every
    pixel, and must not pass for that). 1 = every condition edge reproduced in an otherwise clean
    image, 0 = no better than edges placed at random.
The K-fold consistency filter is `datagen.filter_kfold`; `datagen.filtering` re-exports both.
"""

from __future__ import annotations

import numpy as np

from aware3d_utils.optional import lazy_module

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["cheap_checks", "edge_agreement", "cropped_fraction", "CHECK_REASONS"]

CHECK_REASONS = ("blank_image", "empty_condition", "object_missing", "object_too_small", "object_cropped",
                 "edges_disagree")


def _as_image(image, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.dtype != np.uint8:
        raise ValueError(f"{name}: must be an (H, W, 3) uint8 image, got shape {image.shape} dtype {image.dtype}")
    return image


def _gray(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY)


def edge_agreement(image: np.ndarray, condition_edges: np.ndarray, edge_radius: float = 2.0,
                   canny_low: int = 100, canny_high: int = 200) -> float:
    """Recall of the condition's edges minus its chance level, in [−1, 1] (see the module docstring).

    image: (H, W, 3) uint8; condition_edges: (H, W) or (H, W, 3) uint8, nonzero = edge.
    Returns 0.0 when the condition has no edge pixel.
    """
    image = _as_image(image, "image")
    cond = _as_image(condition_edges, "condition_edges").max(axis=2) > 0
    if cond.shape != image.shape[:2]:
        raise ValueError(f"condition_edges: size {cond.shape} differs from the image's {image.shape[:2]}")
    if not cond.any():
        return 0.0
    edges = cv2.Canny(_gray(image), canny_low, canny_high) > 0
    if not edges.any():
        return 0.0
    # distance of every pixel to the nearest generated edge pixel
    dist = cv2.distanceTransform(np.where(edges, 0, 255).astype(np.uint8), cv2.DIST_L2, 3)
    near = dist <= edge_radius
    recall = float(near[cond].mean())
    chance = float(near.mean())
    return recall - chance


def cropped_fraction(mask: np.ndarray) -> float:
    """Fraction of an object mask's outline that lies on the image border (0 = fully inside).

    The outline is the set of mask pixels with a 4-neighbour outside the mask or outside the image.
    """
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        return 0.0
    padded = np.pad(mask, 1, constant_values=False).astype(np.uint8)
    inner = cv2.erode(padded, np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0)[1:-1, 1:-1].astype(bool)
    outline = mask & ~inner
    border = np.zeros_like(mask)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    return float((outline & border).sum()) / float(outline.sum())


def cheap_checks(image: np.ndarray, condition_edges: np.ndarray, mask: np.ndarray | None = None, *,
                 min_edge_agreement: float = 0.25, edge_radius: float | None = None, canny_low: int = 100,
                 canny_high: int = 200, min_std: float = 2.0, min_condition_pixels: int = 16,
                 min_mask_fraction: float = 0.002, max_cropped_fraction: float = 0.15) -> tuple[bool, str]:
    """Quick accept/reject of one generated image: (ok, reason), reason "ok" or one of CHECK_REASONS.

    image: (H, W, 3) uint8 generated image; condition_edges: its (H, W[, 3]) uint8 edge map;
    mask: (H, W) bool object mask from the render, or None to skip the object checks.
    min_edge_agreement: minimum `edge_agreement` score; edge_radius: pixels (default
    max(2, 0.005·max(H, W)), i.e. 2.6 px at 512²); min_std: grey-level standard deviation below which
    the image counts as blank; min_condition_pixels: fewer edge pixels = empty condition;
    min_mask_fraction: smallest object area as a fraction of the image; max_cropped_fraction: largest
    share of the object's outline that may lie on the image border.
    """
    image = _as_image(image, "image")
    cond = _as_image(condition_edges, "condition_edges")
    h, w = image.shape[:2]
    if cond.shape[:2] != (h, w):
        raise ValueError(f"condition_edges: size {cond.shape[:2]} differs from the image's {(h, w)}")
    if float(_gray(image).std()) < min_std:
        return False, "blank_image"
    if int((cond.max(axis=2) > 0).sum()) < min_condition_pixels:
        return False, "empty_condition"
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (h, w):
            raise ValueError(f"mask: shape {mask.shape} differs from the image's {(h, w)}")
        mask = mask.astype(bool)
        area = int(mask.sum())
        if area == 0:
            return False, "object_missing"
        if area < min_mask_fraction * h * w:
            return False, "object_too_small"
        if cropped_fraction(mask) > max_cropped_fraction:
            return False, "object_cropped"
    radius = edge_radius if edge_radius is not None else max(2.0, 0.005 * max(h, w))
    if edge_agreement(image, cond, radius, canny_low, canny_high) < min_edge_agreement:
        return False, "edges_disagree"
    return True, "ok"
