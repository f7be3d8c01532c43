"""iNeMo's two extra training terms, on the features at visible vertex projections.

- `positional_loss`: cross-entropy of the feature-to-centre similarities ⟨f, c_j⟩ / T over every
  centre of the class budget (future classes included), the target being the image's class, so
  each class's features stay in the region reserved for it.
- `bank_contrastive_loss`: NeMo's contrastive loss with the vertices of EVERY class in the bank as
  negatives (as iNeMo trains), not only the image's own class: the softmax runs over all seen classes'
  vertex features and the clutter, so features of one class are pushed away from the others'
  vertices, which feature-matching classification needs. Own-class vertices within `radius` of
  the target stay excluded, as do padding rows;
- `distillation_loss`: KL(p_old ‖ p_new) between temperature-softened distributions over the
  vertices of ALL old classes, p = softmax(⟨f, θ_v⟩ / T), f from the frozen previous network
  (p_old) and from the network being trained (p_new) at the same pixels, θ the frozen previous
  bank's vertex features; × T² as in Hinton et al. so the gradient scale does not depend on T.
  (The released code distils only over the first classes of the bank.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..bank import MeshBank
from ..contrastive import VertexTargets
from ..errors import NemoError

__all__ = ["positional_loss", "distillation_loss", "old_class_memory", "bank_contrastive_loss"]

_EXCLUDED = -1e4  # logit of excluded negatives (finite: no NaN in the softmax)


def positional_loss(features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy: features (N, D) unit, labels (N,) int64 indices into centres (K, D)."""
    if temperature <= 0:
        raise NemoError(f"positional_loss: temperature must be positive, got {temperature}")
    if features.shape[0] == 0:
        return features.sum() * 0.0
    logits = features @ centres.to(features).T / temperature
    return F.cross_entropy(logits, labels.to(logits.device))


def old_class_memory(bank: MeshBank, categories: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The real vertex features of every given category, stacked: (ΣV, D), and the owner (ΣV,) int64
    (position in `categories`) of each row."""
    if not categories:
        raise NemoError("old_class_memory: no old categories")
    rows = [bank.vertex_features(c) for c in categories]
    owner = torch.cat([torch.full((r.shape[0],), i, dtype=torch.int64) for i, r in enumerate(rows)])
    return torch.cat(rows), owner.to(rows[0].device)


def distillation_loss(new_features: torch.Tensor, old_features: torch.Tensor, memory: torch.Tensor,
                      temperature: float = 2.0) -> torch.Tensor:
    """KL(p_old ‖ p_new) · T², batch mean: new_features (N, D) (with grad), old_features (N, D) from the
    frozen network, memory (ΣV, D) the old classes' vertex features (`old_class_memory`)."""
    if temperature <= 0:
        raise NemoError(f"distillation_loss: temperature must be positive, got {temperature}")
    if new_features.shape != old_features.shape:
        raise NemoError(f"distillation_loss: new {tuple(new_features.shape)} and old {tuple(old_features.shape)} "
                        "features differ in shape")
    if new_features.shape[0] == 0:
        return new_features.sum() * 0.0
    memory = memory.to(new_features)
    log_new = F.log_softmax(new_features @ memory.T / temperature, dim=-1)
    log_old = F.log_softmax(old_features.detach() @ memory.T / temperature, dim=-1)
    return F.kl_div(log_new, log_old, reduction="batchmean", log_target=True) * temperature ** 2


def bank_contrastive_loss(targets: VertexTargets, bank: MeshBank, temperature: float = 0.07, radius: float = 48.0,
                          clutter_weight: float = 5e-3, clutter_regulariser: float = 0.1) -> tuple[torch.Tensor, dict]:
    """(loss, {"contrastive", "regulariser", "visible"}) over the whole bank (see the module docstring);
    arguments as `nemo.contrastive.contrastive_loss` (targets from `vertex_targets`, radius in pixels)."""
    feats, index, vis = targets.features, targets.index, targets.visible
    B, V, D = feats.shape
    M = bank.features.shape[0]
    logits = (feats @ bank.features.reshape(M * V, D).to(feats).T / temperature).reshape(B, V, M, V)
    with torch.no_grad():
        near = torch.cdist(targets.uv, targets.uv) <= radius
        near &= ~torch.eye(V, dtype=torch.bool, device=near.device)
        excluded = (~bank.vertex_mask())[None, None].expand(B, V, M, V).clone()
        rows = torch.arange(B, device=index.device)
        excluded[rows, :, index] |= near  # the own class's neighbours are no negatives
    logits = logits.masked_fill(excluded, _EXCLUDED).reshape(B, V, M * V)
    clutter = feats @ bank.clutter.to(feats).T / temperature + math.log(clutter_weight)
    target = (index[:, None] * V + torch.arange(V, device=index.device)).expand(B, V)
    if vis.any():
        ce = F.cross_entropy(torch.cat([logits, clutter], dim=-1)[vis], target[vis])
    else:
        ce = feats.sum() * 0.0
    own = bank.features[index].to(feats)  # (B, V, D): clutter samples should match no vertex of the class
    sim = torch.bmm(targets.clutter, own.transpose(1, 2))
    weight = (targets.clutter_valid[:, :, None] & bank.vertex_mask()[index][:, None, :]).to(sim.dtype)
    reg = (sim * weight).sum() / weight.sum().clamp(min=1)
    loss = ce + clutter_regulariser * reg
    return loss, {"contrastive": float(ce.detach()), "regulariser": float(reg.detach()), "visible": int(vis.sum())}
