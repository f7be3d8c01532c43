"""ImageNet3D's classification-based pose baseline in nemo's code: the same ResNet encoder,
global pooling, three 40-bin angle heads (azimuth, elevation, θ; `data3d.angle_bins`) and a
category head, trained with cross-entropy on the same data and budget as NeMo.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import data3d

from .backbone import IMAGENET_MEAN, IMAGENET_STD, BackboneConfig, build_encoder
from .errors import NemoError

__all__ = ["BaselineNet", "baseline_loss", "decode_bins"]


class BaselineNet(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> angle logits (B, 3, num_bins) and category logits (B, C)."""

    def __init__(self, config: BackboneConfig, num_categories: int, num_bins: int = data3d.NUM_BINS):
        super().__init__()
        if num_categories < 1 or num_bins < 2:
            raise NemoError(f"BaselineNet: needs ≥ 1 category and ≥ 2 bins, got {num_categories}, {num_bins}")
        if config.kind != "resnet":
            raise NemoError("the 2D baseline uses the ResNet backbone (backbone.kind: resnet)")
        self.config, self.num_bins, self.num_categories = config, int(num_bins), int(num_categories)
        self.encoder = build_encoder(config)
        width = int(self.encoder.channels[-1])
        self.angles = nn.Linear(width, 3 * self.num_bins)
        self.category = nn.Linear(width, self.num_categories)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """(B, width) the encoder's last feature map, averaged over space (the heads' input)."""
        return self.encoder((images - self.mean) / self.std).feature_maps[-1].mean(dim=(2, 3))

    def angle_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.angles(pooled).view(-1, 3, self.num_bins)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.pooled(images)
        return self.angle_logits(pooled), self.category(pooled)


def baseline_loss(angle_logits: torch.Tensor, category_logits: torch.Tensor, viewpoints: torch.Tensor,
                  categories: torch.Tensor, label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Cross-entropy over the three angle bins (+ the category when there are several).

    viewpoints (B, 8) in data3d.VIEWPOINT_KEYS order (azimuth, elevation, theta first); categories (B,).
    """
    num_bins = angle_logits.shape[-1]
    bins = data3d.angle_to_bin(viewpoints[:, :3], num_bins).to(angle_logits.device)  # (B, 3)
    angle = F.cross_entropy(angle_logits.reshape(-1, num_bins), bins.reshape(-1), label_smoothing=label_smoothing) * 3
    loss = angle
    cls = torch.zeros(())
    if category_logits.shape[-1] > 1:
        cls = F.cross_entropy(category_logits, categories.to(category_logits.device))
        loss = loss + cls
    return loss, {"angle": float(angle.detach()), "category": float(cls.detach())}


def decode_bins(angle_logits: torch.Tensor) -> list[dict[str, float]]:
    """Per image the bin-centre (azimuth, elevation, theta) of the most likely bins."""
    best = angle_logits.argmax(-1)  # (B, 3)
    return [data3d.bins_to_viewpoint(b.tolist(), angle_logits.shape[-1]) for b in best]
