"""Render-and-compare scores: how well a rendered neural mesh explains a feature map.

NeMo's per-pixel object score is ⟨F(p), Σ_k b_k θ_{v_k}⟩, the feature map F against the vertex
features θ interpolated over the covering face (corners v_k, barycentrics b_k); the clutter score
is ⟨F(p), c⟩ with c the normalised mean clutter feature. The image loss of a pose is

    loss = 1 − [mean_p max(object(p), clutter(p)) − mean_p clutter(p)]      (object = 0 off the mesh)

Two formulations of the object score, equal up to rounding:
- "gather" (fast): the score is linear in θ, so per image the similarity to every vertex feature
  S = F·θᵀ (h·w × V) is computed once, and each pose gathers S at its faces' corners;
- "render" (as the original): interpolate a D-channel feature image per pose, then dot with F.
"""

from __future__ import annotations

import torch

import geom3d

__all__ = ["vertex_similarity", "clutter_scores", "object_scores", "pose_loss"]


def vertex_similarity(feature_maps: torch.Tensor, vertex_features: torch.Tensor) -> torch.Tensor:
    """S[b, p, v] = ⟨F_b(p), θ_{b, v}⟩: feature_maps (B, D, h, w), vertex_features (B, V, D) -> (B, h·w, V)."""
    B, D, h, w = feature_maps.shape
    return torch.bmm(feature_maps.reshape(B, D, h * w).transpose(1, 2), vertex_features.transpose(1, 2))


def clutter_scores(feature_maps: torch.Tensor, clutter: torch.Tensor) -> torch.Tensor:
    """Per-pixel clutter score (B, h·w): the best match among clutter features clutter (K, D)."""
    B, D, h, w = feature_maps.shape
    flat = feature_maps.reshape(B, D, h * w)
    return torch.einsum("bdp,kd->bkp", flat, clutter.to(flat)).amax(dim=1)


def object_scores(fragments: geom3d.Fragments, similarity: torch.Tensor) -> torch.Tensor:
    """Gathered object scores (B, H, h·w) for fragments of batch shape (B, H) (H hypotheses per
    image) from the images' vertex similarities (B, h·w, V); 0 off the mesh."""
    B, H = fragments.batch_shape
    h, w = fragments.image_size
    V = similarity.shape[-1]
    covered, view, corners, bary = fragments.covered()  # flat pixel, flat view, (n, 3), (n, 3)
    pixel = covered - view * (h * w)
    image = torch.div(view, H, rounding_mode="floor")
    rows = ((image * (h * w) + pixel) * V)[:, None] + corners
    score = (similarity.reshape(-1)[rows] * bary).sum(-1)
    out = score.new_zeros(B * H * h * w).index_put((covered,), score)
    return out.reshape(B, H, h * w)


def rendered_object_scores(fragments: geom3d.Fragments, feature_maps: torch.Tensor,
                           vertex_features: torch.Tensor) -> torch.Tensor:
    """The naive formulation of `object_scores`: interpolate a D-channel feature image per view of
    fragments (B, H) from per-image vertex features (B, V, D), then dot it with the image's feature
    map (B, D, h, w): (B, H, h·w)."""
    rendered = geom3d.interpolate(fragments, vertex_features, channels_first=True)  # (B, H, D, h, w)
    B, H, D, h, w = rendered.shape
    return (rendered * feature_maps[:, None]).sum(2).reshape(B, H, h * w)


def pose_loss(object_score: torch.Tensor, clutter_score: torch.Tensor) -> torch.Tensor:
    """NeMo's loss per view: 1 − [mean max(object, clutter) − mean clutter] over the last dim (pixels);
    object and clutter scores broadcast, e.g. (B, H, P) with (B, 1, P) -> (B, H)."""
    return 1.0 - (torch.maximum(object_score, clutter_score).mean(-1) - clutter_score.mean(-1))
