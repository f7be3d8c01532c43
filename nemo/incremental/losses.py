"""iNeMo's two extra training terms, on the features at visible vertex projections.

- `positional_loss`: cross-entropy of the feature-to-centre similarities ⟨f, c_j⟩ / T over every
  centre of the class budget (future classes included), the target being the image's class, so
  each class's features stay in the region reserved for it.
- `bank_contrastive_loss`: NeMo's contrastive loss with the vertices of every class in the bank as
  negatives, not only the image's own class, plus (`reserved`) the reserved features of every
  other slot of the latent space: the classes still to come and the unused slots. This is how the
  released iNeMo trains: its memory holds `etf_init` slots (20 for PASCAL3D+, confs/dataset/
  Pascal3D.yaml) of `max_n` vertex features each from the start (src/models/memory.py lines 69-90),
  the softmax runs over the vertices of all of them and the clutter bank (src/models/memory.py
  lines 105-114), and only the anchor's own-class neighbours and the padding rows are masked
  (src/models/inemo.py lines 264-312, 418-426). Own-class vertices within `radius` of the target
  stay excluded, as do padding rows;
- `distillation_loss`: KL(p_old ‖ p_new) between distributions over the vertices of ALL old
  classes, p = softmax(⟨f, θ_v⟩ / T), f from the frozen previous network (p_old) and from the
  network being trained (p_new) at the same pixels, θ the frozen previous bank's vertex features.
  Two variants (`DISTILLATION_VARIANTS`): "released", the released code's (src/models/inemo.py
  lines 239-261: the cosine logits MULTIPLIED by kd_reg = 2, i.e. T = 1/kd_reg = 0.5, no T² factor,
  and the loss weighted by kd_reg again at line 223; confs/nemo/default.yaml `kd_reg: 2.0`), and
  "divided", this project's earlier rule (logits divided by T = 2, × T² as in Hinton et al., weight
  10). The released code distils only over the first classes of the bank (`forward_kd(...,
  first_n)`, src/models/memory.py line 136, with `n_prev_classes` the size of the last increment,
  src/models/inemo.py line 428); here every old class is distilled, against the bank frozen at
  the end of the previous task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..bank import MeshBank
from ..contrastive import VertexTargets, contrastive_loss
from ..errors import NemoError

__all__ = ["positional_loss", "distillation_loss", "old_class_memory", "bank_contrastive_loss",
           "DISTILLATION_VARIANTS"]

#: distillation variant -> its weight, temperature and whether the KL is multiplied by T²
DISTILLATION_VARIANTS: dict[str, dict] = {
    "released": {"weight": 2.0, "temperature": 0.5, "t_squared": False},  # src/models/inemo.py 223, 252-261
    "divided": {"weight": 10.0, "temperature": 2.0, "t_squared": True},   # this project's rule before issue 24
}


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
                      temperature: float = 0.5, t_squared: bool = False) -> torch.Tensor:
    """KL(p_old ‖ p_new), batch mean, × T² when `t_squared`: new_features (N, D) (with grad),
    old_features (N, D) from the frozen network, memory (ΣV, D) the old classes' vertex features
    (`old_class_memory`). The defaults are the released rule (T = 0.5: logits × 2, no T²)."""
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
    kl = F.kl_div(log_new, log_old, reduction="batchmean", log_target=True)
    return kl * temperature ** 2 if t_squared else kl


def bank_contrastive_loss(targets: VertexTargets, bank: MeshBank, temperature: float = 0.07, radius: float = 48.0,
                          clutter_weight: float = 5e-3, clutter_regulariser: float = 0.1,
                          reserved: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """(loss, {"contrastive", "regulariser", "visible"}) over the whole bank and the `reserved` (R, D)
    features of the slots outside it (see the module docstring; `reserved_features`); arguments as
    `nemo.contrastive.contrastive_loss`, which computes it with `other_classes=True` (visible rows
    only, the normaliser split per class: with 12 classes in the bank a training step takes 0.63 s
    instead of 4.3 s on one CPU thread; same value and gradient, tested)."""
    return contrastive_loss(targets, bank, temperature, radius, clutter_weight, clutter_regulariser,
                            other_classes=True, extra_negatives=reserved)
