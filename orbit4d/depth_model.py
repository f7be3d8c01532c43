"""Per-frame depth from a transformers depth model, made scale-consistent over the frames.

`TransformersDepth(model)` (an `orbit4d.estimators.DepthEstimator`) loads
`AutoModelForDepthEstimation` and its image processor by model id or local path, e.g.
"depth-anything/Depth-Anything-V2-Small-hf" (relative: affine-invariant inverse depth) or
"apple/DepthPro-hf" / "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf" (metric).
Each prediction is resized to the frame (bilinear). A relative prediction is inverted
(depth ∝ 1 / disparity, the shift of the affine ambiguity ignored) and scaled so that the first
frame's median depth is `median_depth`. Every frame is then rescaled to agree with the previous
one on the static background (the median ratio over pixels outside the foreground masks; all
pixels when no masks are given): monocular models drift in scale from frame to frame, and the
fused background needs one scale. `tiny_depth_model(folder)` writes a tiny random Depth
Anything (for tests, offline).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aware3d_utils.optional import require

__all__ = ["TransformersDepth", "consistent_scale", "tiny_depth_model"]


def consistent_scale(depth: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """Rescale depth (T, H, W) frame by frame to the previous frame's scale on the background."""
    out = depth.astype(np.float32).copy()
    for i in range(1, len(out)):
        both = (out[i] > 0) & (out[i - 1] > 0)
        if masks is not None:
            both &= ~masks[i] & ~masks[i - 1]
        if both.sum() >= 16:
            out[i] *= float(np.median(out[i - 1][both] / out[i][both]))
    return out


class TransformersDepth:
    """Depth for uint8 (T, H, W, 3) frames → float32 (T, H, W); see the module docstring.

    kind: "auto" (the model config's depth_estimation_type, "relative" or "metric"), "relative"
    or "metric"; median_depth: the first frame's median depth for a relative model."""

    def __init__(self, model: str | os.PathLike, *, kind: str = "auto", median_depth: float = 5.0,
                 batch_size: int = 4, device: str | None = None):
        transformers = require("transformers")
        import torch

        self.torch = torch
        self.model = transformers.AutoModelForDepthEstimation.from_pretrained(str(model)).eval()
        self.processor = transformers.AutoImageProcessor.from_pretrained(str(model))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        if kind == "auto":
            kind = getattr(self.model.config, "depth_estimation_type", None) or "relative"
        if kind not in ("relative", "metric"):
            raise ValueError(f"depth model kind must be 'auto', 'relative' or 'metric', got {kind!r}")
        self.kind, self.median_depth, self.batch_size = kind, float(median_depth), int(batch_size)

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """The raw predictions resized to the frames: (T, H, W) float32."""
        torch = self.torch
        h, w = frames.shape[1:3]
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = [f for f in frames[start:start + self.batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            with torch.no_grad():
                pred = self.model(**inputs).predicted_depth  # (B, h', w')
            pred = torch.nn.functional.interpolate(pred[:, None].float(), size=(h, w), mode="bilinear",
                                                   align_corners=False)[:, 0]
            out.append(pred.cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def __call__(self, frames: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        pred = self.predict(frames)
        if self.kind == "relative":
            top = float(np.percentile(pred, 99)) if np.isfinite(pred).any() else 1.0
            disparity = np.clip(pred, max(top, 1e-12) * 1e-3, None)  # far plane at 1000× the near
            depth = 1.0 / disparity
            depth *= self.median_depth / float(np.median(depth[0]))
        else:
            depth = np.where(np.isfinite(pred) & (pred > 0), pred, 0)
        return consistent_scale(depth, masks)


def tiny_depth_model(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random Depth Anything (relative) with its image processor to `folder`."""
    transformers = require("transformers")
    import torch

    torch.manual_seed(seed)
    backbone = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                         intermediate_size=64, image_size=56, patch_size=14,
                                         out_features=["stage1", "stage2", "stage3", "stage4"],
                                         reshape_hidden_states=False)
    config = transformers.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, patch_size=14,
                                              neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                              head_hidden_size=8, depth_estimation_type="relative")
    model = transformers.DepthAnythingForDepthEstimation(config)
    processor = transformers.DPTImageProcessor(do_resize=True, size={"height": 56, "width": 56},
                                               keep_aspect_ratio=True, ensure_multiple_of=14, do_pad=False)
    folder = Path(folder)
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder
