"""ImageNet3D's classification-based pose baseline in nemo's code: the same ResNet encoder,
global pooling, three 40-bin angle heads (azimuth, elevation, θ; `data3d.angle_bins`) and a
category head, trained with cross-entropy on the same data and budget as NeMo; `BaselineModel`, the
trained network as a `methodkit.PoseEstimator` (`nemo.load` gives it for a baseline run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

import data3d
from methodkit.estimator import PoseResult, estimator_inputs

from .backbone import BackboneConfig, ImageNetStats, build_encoder
from .config import NemoConfig
from .errors import NemoError

__all__ = ["BaselineNet", "BaselineModel", "baseline_loss", "decode_bins", "mirror_bins"]


class BaselineNet(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> angle logits (B, 3, num_bins) and category logits (B, C)."""

    def __init__(self, config: BackboneConfig, num_categories: int, num_bins: int = data3d.NUM_BINS):
        super().__init__()
        if num_categories < 1 or num_bins < 2:
            raise NemoError(f"BaselineNet: needs ≥ 1 category and ≥ 2 bins, got {num_categories}, {num_bins}")
        if config.kind == "dinov2":
            raise NemoError("the 2D baseline takes a convolutional encoder "
                            "(backbone.kind: resnet, tfjs or efficientnet)")
        self.config, self.num_bins, self.num_categories = config, int(num_bins), int(num_categories)
        self.encoder = build_encoder(config)
        width = int(self.encoder.channels[-1])
        self.angles = nn.Linear(width, 3 * self.num_bins)
        self.category = nn.Linear(width, self.num_categories)
        self.imagenet = ImageNetStats()

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """(B, width) the encoder's last feature map, averaged over space (the heads' input)."""
        return self.encoder(self.imagenet.normalise(images)).feature_maps[-1].mean(dim=(2, 3))

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


def decode_bins(angle_logits: torch.Tensor, bounds=None) -> list[dict[str, float]]:
    """Per image the bin-centre (azimuth, elevation, theta) of the most likely bins.

    bounds ((elevation lo, hi), (theta lo, hi)) radians, as `nemo.PoseGrid.bounds` (NeMo's pose
    prior, config `pose.elevation_range` / `pose.theta_range`): only the bins that overlap a range
    compete, and the angle is clamped into it."""
    n = angle_logits.shape[-1]
    if bounds is not None:
        angle_logits = angle_logits.clone()
        width = 2 * math.pi / n
        start = torch.arange(n, dtype=torch.float64) * width  # bin k covers [start, start + width)
        for axis, (lo, hi) in ((1, bounds[0]), (2, bounds[1])):
            overlap = torch.zeros(n, dtype=torch.bool)
            for turn in (-2 * math.pi, 0.0, 2 * math.pi):
                overlap |= (start < hi + turn) & (start + width > lo + turn)
            if overlap.any():
                angle_logits[:, axis, ~overlap.to(angle_logits.device)] = -math.inf
    out = [data3d.bins_to_viewpoint(b.tolist(), n) for b in angle_logits.argmax(-1)]  # (B, 3)
    if bounds is not None:
        for vp in out:
            for key, (lo, hi) in (("elevation", bounds[0]), ("theta", bounds[1])):
                vp[key] = min(max(math.remainder(vp[key], 2 * math.pi), lo), hi)
    return out


def mirror_bins(angle_logits: torch.Tensor) -> torch.Tensor:
    """Angle logits (B, 3, n) of a horizontally flipped image as those of the unflipped one: azimuth and
    theta change sign (`data3d.Viewpoint.mirrored`), and on bins over [0, 2π) with edges at zero the
    negated bin k is bin n − 1 − k; elevation is unchanged."""
    out = angle_logits.clone()
    out[:, 0] = angle_logits[:, 0].flip(-1)
    out[:, 2] = angle_logits[:, 2].flip(-1)
    return out


class BaselineModel:
    """A trained `BaselineNet` as a pose estimator (rotation only: the bin-centre angles of its most
    likely bins, focal and principal point from the intrinsics; `PoseResult.rotation_only`).

    categories: the names of the category head's first len(categories) outputs; a wider head (iNeMo's
    replay2d keeps the whole class budget) is read over those only. class_means (len(categories), D):
    classify by the nearest class mean instead of the head (iCaRL, replay2d's `nearest_mean`): the
    category scores are the cosines between the pooled, normalised encoder output and each class's
    mean embedding. Either way the score is the softmax of the category scores at the result's category.
    `method` is "baseline", as the run's config and records name it.
    """

    method = "baseline"

    def __init__(self, net: BaselineNet, config: NemoConfig | dict, categories: Sequence[str], run=None,
                 class_means: torch.Tensor | None = None):
        self.net, self.config, self.categories, self.run = net.eval(), NemoConfig.of(config), list(categories), run
        self.class_means = None if class_means is None else F.normalize(class_means, dim=-1)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(angle logits (B, 3, bins), category scores (B, len(categories)))."""
        pooled = self.net.pooled(images.to(self.device))
        if self.class_means is None:
            scores = self.net.category(pooled)[:, : len(self.categories)]
        else:
            scores = F.normalize(pooled, dim=-1) @ self.class_means.to(pooled).T
        return self.net.angle_logits(pooled), scores

    @torch.no_grad()
    def estimate_pose(self, images: torch.Tensor, categories: Sequence[str] | None = None, K=None) -> list[PoseResult]:
        """One rotation-only `PoseResult` per image (`methodkit.PoseEstimator`). categories: B known names
        (the score is the head's probability of the given one) or None (the most likely category)."""
        images, K, categories = estimator_inputs(images, K, categories, self.categories, NemoError)
        angle_logits, scores = self.logits(images)
        if self.config.pose.mirror:  # test-time mirroring: the sum of both views' log-probabilities
            mirrored_logits, mirrored_scores = self.logits(images.flip(-1))
            angle_logits = angle_logits.log_softmax(-1) + mirror_bins(mirrored_logits).log_softmax(-1)
            scores = (scores + mirrored_scores) / 2
        angles = decode_bins(angle_logits, self.config.pose.grid().bounds)
        probs = scores.softmax(-1)
        out = []
        for b in range(images.shape[0]):
            c = categories[b] if categories is not None else self.categories[int(probs[b].argmax())]
            out.append(PoseResult.rotation(**angles[b], K=K[b], category=c,
                                           score=float(probs[b, self.categories.index(c)])))
        return out
