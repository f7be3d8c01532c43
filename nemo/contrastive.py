"""NeMo's training signal: what each image feature must match, and the contrastive loss.

For a batch of images with known cameras:
- `vertex_targets`: every bank vertex's projection and visibility at the image's camera
  (`geom3d.vertex_visibility`), the image feature at that projection (bilinear on the stride-8
  map, normalised), and feature-map pixels outside the rendered silhouette (clutter samples);
- `contrastive_loss`: per visible vertex a softmax over (all vertex features of its category,
  all clutter features) at temperature T, the target being its own vertex; vertices projecting
  within `radius` pixels of it are not negatives (they look alike), and clutter logits get
  + log(clutter_weight) (NeMo's weighting, 5e-3); plus the regulariser: `clutter_regulariser` ×
  the mean similarity of clutter pixels to the category's vertex features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import geom3d
from geom3d.pixels import resize_coordinate

from .bank import MeshBank

__all__ = ["VertexTargets", "vertex_targets", "contrastive_loss", "neighbour_radius", "half_turn_loss", "sample_at",
           "logsumexp_of_products", "plain_contrastive_ce"]

_EXCLUDED = -1e4  # logit of excluded negatives (a finite value keeps the softmax free of NaN)


@dataclass(frozen=True)
class VertexTargets:
    """index (B,) bank rows; uv (B, V, 2) image pixels; visible (B, V) bool; features (B, V, D) image
    features at the projections (unit, with grad); clutter (B, N, D) clutter samples (unit, with grad),
    clutter_valid (B, N) bool."""

    index: torch.Tensor
    uv: torch.Tensor
    visible: torch.Tensor
    features: torch.Tensor
    clutter: torch.Tensor
    clutter_valid: torch.Tensor


def sample_at(feature_maps: torch.Tensor, uv_feature: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (B, N, D) of feature maps (B, D, h, w) at feature-map pixels uv (B, N, 2)
    (integer pixel centres), normalised; points outside read the border."""
    B, D, h, w = feature_maps.shape
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=uv_feature.dtype, device=uv_feature.device)
    grid = (uv_feature * scale - 1.0)[:, :, None, :]  # align_corners=True: pixel 0 at −1, pixel w−1 at +1
    out = F.grid_sample(feature_maps, grid.to(feature_maps.dtype), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return F.normalize(out[..., 0].transpose(1, 2), dim=-1)


def vertex_targets(feature_maps: torch.Tensor, cameras: geom3d.Cameras, bank: MeshBank, index: torch.Tensor,
                   stride: int, clutter_per_image: int, generator: torch.Generator | None = None,
                   object_mask: torch.Tensor | None = None) -> VertexTargets:
    """The training targets of one batch (see the module docstring).

    feature_maps (B, D, h, w) at `stride` of the images; cameras (B,) of the images (H, W) = stride·(h, w);
    index (B,) bank rows of the images' categories.
    object_mask: (B, H, W) the objects' own silhouettes (datagen's masks), or None. Given, a visible
    cuboid vertex is a positive only where it projects onto the object, and clutter is sampled from
    every cell the object does not touch (for thin objects much of the cuboid covers background);
    without it the cuboid's silhouette stands for the object's (NeMo's).
    """
    B, D, h, w = feature_maps.shape
    mesh = (bank.vertices[index], bank.faces[index])
    with torch.no_grad():
        seen = geom3d.vertex_visibility(mesh, cameras)
        if object_mask is None:
            silhouette = geom3d.rasterize(mesh, cameras).mask.float()  # (B, H, W)
        else:
            silhouette = object_mask.to(feature_maps.device).float()
        covered = F.max_pool2d(silhouette[:, None], stride)[:, 0] > 0  # any object pixel in the cell
    uv = seen.uv.detach()
    uv_feature = resize_coordinate(uv, 1.0 / stride)
    features = sample_at(feature_maps, uv_feature)
    # clutter: random feature-map cells the silhouette does not touch
    score = torch.rand(B, h * w, generator=generator).to(feature_maps.device)
    score = score.masked_fill(covered.reshape(B, h * w), -1.0)
    n = min(int(clutter_per_image), h * w)
    top, cells = score.topk(n, dim=1)
    flat = feature_maps.reshape(B, D, h * w)
    clutter = F.normalize(torch.gather(flat, 2, cells[:, None, :].expand(B, D, n)).transpose(1, 2), dim=-1)
    visible = seen.visible & bank.vertex_mask()[index]
    if object_mask is not None:  # on the object: the mask at the projection's nearest pixel
        H, W = silhouette.shape[-2:]
        x = uv[..., 0].round().long().clamp(0, W - 1)
        y = uv[..., 1].round().long().clamp(0, H - 1)
        rows = torch.arange(B, device=uv.device)[:, None]
        visible = visible & (silhouette[rows, y, x] > 0)
    return VertexTargets(index, uv, visible, features, clutter, top >= 0)


def contrastive_loss(targets: VertexTargets, bank: MeshBank, temperature: float = 0.07, radius: float = 48.0,
                     clutter_weight: float = 5e-3, clutter_regulariser: float = 0.1,
                     other_classes: bool = False, extra_negatives: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, dict]:
    """NeMo's loss for one batch: (loss, {"contrastive", "regulariser", "visible"}) (see the module docstring).

    radius: in image pixels, one number or one per image (B,); vertices whose projections lie within
    it of the target's are excluded as negatives. other_classes: the real vertices of every other
    class in the bank are negatives too (iNeMo's; NeMo's own loss uses the image's class only).
    extra_negatives: (R, D) unit features that are negatives of every row (iNeMo's reserved features
    of classes not in the bank yet and of unused latent slots;
    `nemo.incremental.losses.bank_contrastive_loss`), or None.
    """
    index, vis = targets.index, targets.visible
    memory = bank.features[index].to(targets.features)  # (B, V, D), no grad
    real = bank.vertex_mask()[index]  # (B, V)
    # Only visible vertices are terms of the loss: their rows are gathered first, and the softmax's
    # normaliser is split as logsumexp(own class, [other classes,] clutter), so the (B, V, V + K)
    # logits of the plain formulation are never built (loss + backward 2.8× faster, the training
    # step 2×; same values). The own class carries the neighbour mask; the other parts need none.
    b, v = vis.nonzero(as_tuple=True)
    if b.numel():
        with torch.no_grad():
            near = torch.cdist(targets.uv, targets.uv) <= _per_image(radius, targets.uv)
            near &= ~torch.eye(near.shape[-1], dtype=torch.bool, device=near.device)
            excluded = near | ~real[:, None, :]
        rows = targets.features[b, v]  # (N, D)
        vertex_logits = torch.bmm(targets.features, memory.transpose(1, 2)) / temperature  # (B, V, V)
        parts = [torch.logsumexp(vertex_logits.masked_fill(excluded, _EXCLUDED)[b, v], dim=-1),
                 logsumexp_of_products(rows, bank.clutter.to(rows), 1.0 / temperature) + math.log(clutter_weight)]
        if other_classes and bank.features.shape[0] > 1:
            parts.append(_other_classes_logsumexp(rows, index[b], bank, temperature))
        if extra_negatives is not None and extra_negatives.shape[0]:
            parts.append(logsumexp_of_products(rows, extra_negatives.to(rows), 1.0 / temperature))
        own = (rows * memory[b, v]).sum(-1) / temperature
        ce = (torch.logsumexp(torch.stack(parts), dim=0) - own).mean()
    else:
        ce = targets.features.sum() * 0.0
    # clutter pixels should resemble no vertex feature of the category
    sim = torch.bmm(targets.clutter, memory.transpose(1, 2))  # (B, N, V)
    weight = (targets.clutter_valid[:, :, None] & real[:, None, :]).to(sim.dtype)
    reg = (sim * weight).sum() / weight.sum().clamp(min=1)
    loss = ce + clutter_regulariser * reg
    return loss, {"contrastive": float(ce.detach()), "regulariser": float(reg.detach()), "visible": int(vis.sum())}


def half_turn_loss(feature_maps: torch.Tensor, cameras: geom3d.Cameras, targets: VertexTargets, bank: MeshBank,
                   stride: int, temperature: float = 0.1) -> tuple[torch.Tensor, dict]:
    """Front/back discrimination at the pose level: per image, the mean similarity of the image
    features to the bank's vertex features at the true pose, s, should beat the same score with the
    object turned half a turn about its vertical axis (azimuth + π), s_flip; the loss is
    mean softplus((s_flip − s) / temperature).

    The contrastive loss asks each vertex feature to beat every other vertex one at a time, which
    leaves the front/back confusion that render-and-compare meets (a car's front and back views have
    the same silhouette) as one weak term among hundreds; this term scores whole poses, as fit_pose
    does. The half turn keeps the camera centre's distance: R' = R·Rz(π), t' = t.
    """
    half = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=cameras.R.dtype, device=cameras.R.device))
    turned = geom3d.Cameras(K=cameras.K, R=cameras.R @ half, t=cameras.t, image_size=cameras.image_size)
    index = targets.index
    mesh = (bank.vertices[index], bank.faces[index])
    with torch.no_grad():
        seen = geom3d.vertex_visibility(mesh, turned)
    memory = bank.features[index].to(targets.features)  # (B, V, D), no grad
    real = bank.vertex_mask()[index]

    def score(features, visible):
        w = (visible & real).to(features.dtype)
        return ((features * memory).sum(-1) * w).sum(1) / w.sum(1).clamp(min=1)

    flipped = sample_at(feature_maps, resize_coordinate(seen.uv.detach(), 1.0 / stride))
    s_true = score(targets.features, targets.visible)
    s_flip = score(flipped, seen.visible)
    loss = F.softplus((s_flip - s_true) / temperature).mean()
    return loss, {"half_turn": float(loss.detach()), "half_turn_margin": float((s_true - s_flip).mean().detach())}


def _per_image(radius, uv: torch.Tensor):
    """A radius (number or (B,)) broadcastable against (B, V, V) distances."""
    if isinstance(radius, torch.Tensor) and radius.ndim:
        return radius.to(uv)[:, None, None]
    return float(radius)


def neighbour_radius(radius: float, scope: str, crop_size, bbox: torch.Tensor | None = None):
    """The neighbour radius in crop pixels (config `loss.neighbour_radius`, `loss.neighbour_scope`):
    `radius` × the crop's larger side (scope "crop") or, per image, × the object box's larger side
    ("object"; bbox (B, 4))."""
    if scope == "object" and bbox is not None:
        side = torch.maximum(bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1]) + 1.0
        return float(radius) * side.to(torch.float32)
    return float(radius) * max(crop_size)


def _other_classes_logsumexp(rows: torch.Tensor, row_class: torch.Tensor, bank: MeshBank,
                             temperature: float) -> torch.Tensor:
    """Per row (N, D) the log-sum-exp over the real vertices of every class but its own (N,): one
    matrix product per class present."""
    memory, real = bank.features.to(rows), bank.vertex_mask()
    out = rows.new_zeros(rows.shape[0])
    for c in row_class.unique().tolist():
        keep = real.clone()
        keep[c] = False
        sel = (row_class == c).nonzero(as_tuple=True)[0]
        out = out.index_put((sel,), logsumexp_of_products(rows[sel], memory[keep], 1.0 / temperature))
    return out


def plain_contrastive_ce(targets: VertexTargets, bank: MeshBank, temperature: float = 0.07, radius: float = 48.0,
                         clutter_weight: float = 5e-3) -> torch.Tensor:
    """The cross-entropy term of `contrastive_loss` written the plain way, as NeMo's code does: one
    (B, V, V + K) logit tensor and `F.cross_entropy` over its visible rows. The reference that the
    tests and bench/nemo.py compare the fast formulation with."""
    memory, real = bank.features[targets.index].to(targets.features), bank.vertex_mask()[targets.index]
    logits = torch.bmm(targets.features, memory.transpose(1, 2)) / temperature
    V = logits.shape[-1]
    with torch.no_grad():
        near = torch.cdist(targets.uv, targets.uv) <= _per_image(radius, targets.uv)
        near &= ~torch.eye(V, dtype=torch.bool, device=near.device)
    logits = logits.masked_fill(near | ~real[:, None, :], _EXCLUDED)
    clutter = targets.features @ bank.clutter.to(targets.features).T / temperature + math.log(clutter_weight)
    target = torch.arange(V, device=logits.device).expand_as(targets.visible)
    return F.cross_entropy(torch.cat([logits, clutter], -1)[targets.visible], target[targets.visible])


class _LogSumExpOfProducts(torch.autograd.Function):
    """log Σ_k exp(scale · ⟨rows_n, keys_k⟩) per row, differentiable in `rows` only (the keys are
    the bank's memory). It keeps the softmax from the forward pass for the backward pass, which
    autograd's logsumexp recomputes; on (N, 2560) clutter logits that halves the cost."""

    @staticmethod
    def forward(ctx, rows, keys, scale):
        z = torch.mm(rows, keys.T).mul_(scale)
        top = z.amax(dim=-1, keepdim=True)
        probs = z.sub_(top).exp_()
        total = probs.sum(dim=-1, keepdim=True)
        probs.div_(total)
        ctx.save_for_backward(probs, keys)
        ctx.scale = scale
        return (top + total.log()).squeeze(-1)

    @staticmethod
    def backward(ctx, grad):
        probs, keys = ctx.saved_tensors
        return torch.mm(probs * grad[:, None], keys) * ctx.scale, None, None


def logsumexp_of_products(rows: torch.Tensor, keys: torch.Tensor, scale: float) -> torch.Tensor:
    """log Σ_k exp(scale · rows @ keys.T) per row: rows (N, D) -> (N,); differentiable in rows only."""
    return _LogSumExpOfProducts.apply(rows, keys.detach(), float(scale))
