"""Perspective-correct interpolation of per-vertex attributes over rasterized fragments.

Each covered pixel is a weighted sum of its face's three vertex rows with the fragments'
barycentric weights. `embedding_bag(mode="sum", per_sample_weights=...)` does exactly that without
materialising the (N, 3, C) gathered corners, and its backward gives both the attribute gradient
(a scatter-add into the attribute table) and the weight gradient (three dot products per pixel).

Attribute rows: attributes (V, C) serve every view; attributes (N, V, C) are N tables and each view
reads the row `index[view]`, so per-image or per-category features serve images × hypotheses
without an (images·hypotheses, V, C) copy: the table is read in place by flat row number
index[view]·V + vertex.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GeometryError
from .fragments import Fragments, covered_pixels

__all__ = ["interpolate", "interpolate_sparse", "PixelValues"]


@dataclass(frozen=True, eq=False)
class PixelValues:
    """Interpolated values at the covered pixels only (N of them, flattened over views):

    index (N,) int64: flat pixel index into (B·H·W), B = prod(batch_shape) views in row-major order.
    view (N,) int64: the flat view in [0, B). pixel (N, 2) int64: (row, col) in the image.
    values (N, C): the interpolated attributes (with grad).
    """

    index: torch.Tensor
    view: torch.Tensor
    pixel: torch.Tensor
    values: torch.Tensor
    batch_shape: tuple[int, ...]
    image_size: tuple[int, int]

    def to_dense(self, channels_first: bool = False) -> torch.Tensor:
        """The dense image (*S, H, W, C) (or (*S, C, H, W)), zero at uncovered pixels."""
        return _to_image(self.values, self.index, self.batch_shape, self.image_size, channels_first)

    def __repr__(self) -> str:
        return (f"PixelValues({self.values.shape[0]} pixels, {self.values.shape[1]} channels, "
                f"batch_shape={self.batch_shape}, image_size={self.image_size})")


def _table_rows(fragments: Fragments, attributes, index):
    """The attribute table (rows, C), the covered pixels (N,), their view (N,) and table rows (N, 3)."""
    S, B = tuple(fragments.batch_shape), fragments.num_views
    attributes = torch.as_tensor(attributes, device=fragments.bary.device)
    if attributes.dtype == torch.bool or attributes.is_complex():
        raise GeometryError(f"interpolate: attributes must be real numbers, got {attributes.dtype}")
    if not attributes.is_floating_point():
        attributes = attributes.to(torch.get_default_dtype())
    if attributes.ndim >= 3 and tuple(attributes.shape[:-2]) == S and len(S) > 1:
        # one table per view, (*S, V, C); trailing batch dims that are broadcast (stride 0, e.g.
        # features[:, None].expand(M, P, V, C)) are dropped, so the table is read, not copied
        keep = len(S)
        while index is None and keep > 1 and attributes.stride(keep - 1) == 0:
            keep -= 1
        attributes = attributes[(slice(None),) * keep + (0,) * (len(S) - keep)]
        attributes = attributes.reshape(-1, *attributes.shape[-2:])
        if keep < len(S):  # view b reads the row of its leading indices
            index = torch.arange(attributes.shape[0], device=attributes.device).repeat_interleave(
                B // attributes.shape[0])
    if attributes.ndim not in (2, 3):
        raise GeometryError(f"interpolate: attributes must have shape (V, C), (N, V, C) or (*S, V, C) with S "
                            f"the fragments' batch shape {S}, got {tuple(attributes.shape)}")
    V = attributes.shape[-2]
    faces = fragments.faces
    if faces.numel() and int(faces.max()) >= V:
        raise GeometryError(f"interpolate: faces index vertex {int(faces.max())}, but attributes hold "
                            f"only {V} vertices")
    pixels, view, vid = covered_pixels(fragments.pix_to_face, faces, fragments.mesh_index)
    if attributes.ndim == 2:
        if index is not None:
            raise GeometryError("interpolate: an index needs attributes of shape (N, V, C)")
        return attributes, pixels, view, vid
    rows = _view_rows(attributes.shape[0], S, B, index, attributes.device)
    if rows is None:  # one table for all
        return attributes[0], pixels, view, vid
    return attributes.reshape(-1, attributes.shape[-1]), pixels, view, vid + (rows[view] * V)[:, None]


def _view_rows(N: int, S: tuple[int, ...], B: int, index, device) -> torch.Tensor | None:
    """The attribute row (B,) of every flat view (None: row 0 for all)."""
    if index is None:
        if N == 1:
            return None
        if N == B:
            return torch.arange(B, device=device)
        if S and N == S[0]:  # per leading index: images × hypotheses with per-image features
            return torch.arange(N, device=device).repeat_interleave(B // N)
        raise GeometryError(f"interpolate: {N} attribute tables for fragments of batch shape {S}: pass "
                            f"index (the table row of each view) or one table per view")
    index = torch.as_tensor(index, device=device)
    if index.is_floating_point() or index.dtype == torch.bool or index.is_complex():
        raise GeometryError(f"interpolate: index must be an integer tensor, got {index.dtype}")
    if tuple(index.shape) not in ((B,), S):
        raise GeometryError(f"interpolate: index must have shape {S} or ({B},) (one row per view), "
                            f"got {tuple(index.shape)}")
    index = index.reshape(B).long()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= N):
        raise GeometryError(f"interpolate: index must lie in [0, {N}) (the attribute tables), got "
                            f"{int(index.min())} to {int(index.max())}")
    return index


def _to_image(values: torch.Tensor, pixels: torch.Tensor, batch_shape, image_size, channels_first: bool):
    """Rows (N, C) of the covered pixels into an image (*S, H, W, C) or (*S, C, H, W), zero elsewhere."""
    H, W = image_size
    C = values.shape[1]
    B = 1
    for s in batch_shape:
        B *= s
    # In place, on a tensor outside the graph: backward only gathers the covered rows of the
    # gradient (an out-of-place index_copy would clone the zeros; a fill after the copy would make
    # backward clone the whole image gradient).
    if not channels_first:
        out = values.new_zeros(B * H * W, C)
        out.index_copy_(0, pixels, values)
        return out.reshape(*batch_shape, H, W, C)
    out = values.new_zeros(B, C, H * W)
    view = torch.div(pixels, H * W, rounding_mode="floor")
    out.permute(0, 2, 1).index_put_((view, pixels - view * (H * W)), values)
    return out.reshape(*batch_shape, C, H, W)


def _weights_and_values(fragments: Fragments, attributes, index):
    table, pixels, view, rows = _table_rows(fragments, attributes, index)
    dtype = torch.promote_types(table.dtype, fragments.bary.dtype)
    weights = fragments.bary.reshape(-1, 3).index_select(0, pixels).to(dtype)
    values = F.embedding_bag(rows, table.to(dtype), per_sample_weights=weights, mode="sum")  # (N, C)
    return pixels, view, values


def interpolate(fragments: Fragments, attributes: torch.Tensor, index: torch.Tensor | None = None, *,
                channels_first: bool = False) -> torch.Tensor:
    """Per-vertex attributes interpolated at every pixel: (*S, H, W, C), or (*S, C, H, W) with
    `channels_first` (the layout of backbone feature maps).

    attributes: (V, C) for all views; (N, V, C) N tables, view b reading row index[b]; or (*S, V, C)
        one table per view (broadcast trailing dims, as from `expand`, are read in place).
    index: (B,) or (*S,) int64 rows of an (N, V, C) table. Without an index, (N, V, C) means one
        table per view (N = B), per leading index (N = S[0], e.g. per-image features under cameras
        (images, hypotheses)) or one for all (N = 1).
    Perspective-correct (the fragments' barycentrics are), zero where no face covers the pixel,
    differentiable w.r.t. the attributes and, through `fragments.bary`, the vertex positions.
    The result has the promoted dtype of attributes and barycentrics.
    """
    pixels, _, values = _weights_and_values(fragments, attributes, index)
    return _to_image(values, pixels, tuple(fragments.batch_shape), fragments.image_size, channels_first)


def interpolate_sparse(fragments: Fragments, attributes: torch.Tensor,
                       index: torch.Tensor | None = None) -> PixelValues:
    """`interpolate` at the covered pixels only: a `PixelValues` (flat pixel index, view, (row, col)
    and values (N, C)), without the zero-filled image. Same attributes and index as `interpolate`."""
    pixels, view, values = _weights_and_values(fragments, attributes, index)
    H, W = fragments.image_size
    rem = pixels - view * (H * W)
    pixel = torch.stack([torch.div(rem, W, rounding_mode="floor"), rem % W], dim=-1)
    return PixelValues(pixels, view, pixel, values, tuple(fragments.batch_shape), (H, W))


def interpolate_gather(fragments: Fragments, attributes: torch.Tensor, index: torch.Tensor | None = None):
    """`interpolate` by a plain gather of (N, 3, C) corner values (reference and benchmark baseline)."""
    table, pixels, _, rows = _table_rows(fragments, attributes, index)
    dtype = torch.promote_types(table.dtype, fragments.bary.dtype)
    weights = fragments.bary.reshape(-1, 3)[pixels].to(dtype)
    values = (table.to(dtype)[rows] * weights[..., None]).sum(1)
    return _to_image(values, pixels, tuple(fragments.batch_shape), fragments.image_size, False)
