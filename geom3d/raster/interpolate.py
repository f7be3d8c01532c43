"""Perspective-correct interpolation of per-vertex attributes over rasterized fragments.

Each covered pixel is a weighted sum of its face's three vertex rows with the fragments'
barycentric weights. `embedding_bag(mode="sum", per_sample_weights=...)` does exactly that without
materialising the (N, 3, C) gathered corners, and its backward gives both the attribute gradient
(a scatter-add into (V, C)) and the weight gradient (three dot products per pixel) directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import GeometryError
from .fragments import Fragments, covered_pixels

__all__ = ["interpolate"]


def _table_and_rows(fragments: Fragments, attributes: torch.Tensor):
    """The attribute table (rows, C), the covered pixels (N,) and their table rows (N, 3)."""
    B, H, W = fragments.pix_to_face.shape
    attributes = torch.as_tensor(attributes, device=fragments.bary.device)
    if attributes.ndim not in (2, 3):
        raise GeometryError(f"interpolate: attributes must have shape (V, C) or (B, V, C), "
                            f"got {tuple(attributes.shape)}")
    if attributes.ndim == 3 and attributes.shape[0] not in (1, B):
        raise GeometryError(f"interpolate: attributes have batch size {attributes.shape[0]}, "
                            f"fragments have {B}")
    if not attributes.is_floating_point():
        attributes = attributes.to(fragments.bary.dtype)
    V = attributes.shape[-2]
    faces = fragments.faces
    if faces.numel() and int(faces.max()) >= V:
        raise GeometryError(f"interpolate: faces index vertex {int(faces.max())}, but attributes hold "
                            f"only {V} vertices")
    pixels, view, vid = covered_pixels(fragments.pix_to_face, faces)
    if attributes.ndim == 3 and attributes.shape[0] == B and B > 1:
        return attributes.reshape(B * V, -1), pixels, vid + (view * V)[:, None]
    return attributes.reshape(V, -1), pixels, vid


def _to_image(values: torch.Tensor, pixels: torch.Tensor, pix_to_face: torch.Tensor) -> torch.Tensor:
    """Rows (N, C) of the covered pixels into an image (B, H, W, C), zero elsewhere."""
    B, H, W = pix_to_face.shape
    out = values.new_zeros(B * H * W, values.shape[1])
    # In place, on a tensor outside the graph: backward only gathers the covered rows of the
    # gradient (an out-of-place index_copy would clone the zeros; a fill after the copy would make
    # backward clone the whole image gradient).
    out.index_copy_(0, pixels, values)
    return out.reshape(B, H, W, values.shape[1])


def interpolate(fragments: Fragments, attributes: torch.Tensor) -> torch.Tensor:
    """Per-vertex attributes (V, C) or (B, V, C) interpolated at every pixel: (B, H, W, C).

    Perspective-correct (the fragments' barycentrics are), zero where no face covers the pixel,
    differentiable w.r.t. the attributes and, through `fragments.bary`, the vertex positions.
    The result has the promoted dtype of attributes and barycentrics.
    """
    table, pixels, rows = _table_and_rows(fragments, attributes)
    dtype = torch.promote_types(table.dtype, fragments.bary.dtype)
    table = table.to(dtype)
    weights = fragments.bary.reshape(-1, 3)[pixels].to(dtype)
    values = F.embedding_bag(rows, table, per_sample_weights=weights, mode="sum")  # (N, C)
    return _to_image(values, pixels, fragments.pix_to_face)


def interpolate_gather(fragments: Fragments, attributes: torch.Tensor) -> torch.Tensor:
    """`interpolate` by a plain gather of (N, 3, C) corner values (reference and benchmark baseline)."""
    table, pixels, rows = _table_and_rows(fragments, attributes)
    dtype = torch.promote_types(table.dtype, fragments.bary.dtype)
    weights = fragments.bary.reshape(-1, 3)[pixels].to(dtype)
    values = (table.to(dtype)[rows] * weights[..., None]).sum(1)
    return _to_image(values, pixels, fragments.pix_to_face)
