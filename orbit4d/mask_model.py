"""Foreground masks propagated through a video from a first-frame box or points by SAM2.

`Sam2MaskPropagator(model)` (an `orbit4d.estimators.MaskEstimator`) loads transformers'
`Sam2VideoModel` by model id or local path (e.g. "facebook/sam2.1-hiera-tiny") and tracks one
object from a `MaskPrompt` on one frame to every later frame (and back to the earlier ones when the
prompt is not on the first frame), with SAM2's memory of past frames.

transformers' `Sam2VideoProcessor` needs torchvision (its image and video processors import it),
which this project never installs; the few steps it does are done here, as it does them: every
frame resized to the model's square input (bilinear, antialiased), scaled to [0, 1] and normalised
with the model's mean and std (ImageNet's unless the model's `preprocessor_config.json` says
otherwise); prompt coordinates scaled by (side / W, side / H); a box passed as its two corners with
labels 2 and 3 before any clicks; the low-resolution mask logits resized to the frame (bilinear)
and thresholded at 0. `write_masks` saves the masks as `--masks` reads them.
`tiny_sam2_video(folder)` writes a tiny random model that loads the same way (for tests, offline).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from aware3d_utils.optional import require
from data3d.transforms import IMAGENET_MEAN, IMAGENET_STD

from .estimators import MaskPrompt
from .io import Orbit4DInputError, read_json

__all__ = ["Sam2MaskPropagator", "tiny_sam2_video", "write_masks", "IMAGENET_MEAN", "IMAGENET_STD"]



def _normalisation(model: str) -> tuple[tuple, tuple]:
    """(mean, std) from the model's preprocessor_config.json when it can be found offline, else ImageNet's."""
    path = Path(model).expanduser() / "preprocessor_config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(model, "preprocessor_config.json")
        except (ImportError, ValueError):
            hit = None
        path = Path(hit) if isinstance(hit, str) else None
    if path is None:
        return IMAGENET_MEAN, IMAGENET_STD
    data = read_json(path)
    data = data.get("image_processor", data)  # processor_config.json nests it
    return tuple(data.get("image_mean", IMAGENET_MEAN)), tuple(data.get("image_std", IMAGENET_STD))


class Sam2MaskPropagator:
    """bool (T, H, W) masks of uint8 (T, H, W, 3) frames from one prompt; see the module docstring.

    threshold: on the mask logits; device: default CUDA when available; dtype: of the session
    (float32; bfloat16 on a GPU halves the memory)."""

    def __init__(self, model: str | os.PathLike, *, threshold: float = 0.0, device: str | None = None,
                 dtype=None):
        transformers = require("transformers")
        import torch

        from datagen.hub import pretrained_kwargs

        self.torch, self.name = torch, str(model)
        try:
            kwargs = pretrained_kwargs(self.name, "mask model", files=("config.json",))
            self.model = transformers.Sam2VideoModel.from_pretrained(self.name, **kwargs).eval()
        except (OSError, ValueError) as exc:
            raise Orbit4DInputError(self.name, f"cannot load a SAM2 video model ({exc})") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or torch.float32
        self.model.to(self.device, self.dtype)
        size = self.model.config.image_size
        self.side = int(size if isinstance(size, int) else size[0])
        mean, std = _normalisation(self.name)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.threshold = float(threshold)

    def preprocess(self, frames: np.ndarray, batch: int = 16):
        """uint8 (T, H, W, 3) → float (T, 3, side, side), normalised."""
        torch = self.torch
        out = []
        for start in range(0, len(frames), batch):
            x = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch])).permute(0, 3, 1, 2).float() / 255
            x = torch.nn.functional.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False,
                                                antialias=True)
            out.append(((x - self.mean) / self.std).to(self.dtype))
        return torch.cat(out)

    def _prompt_inputs(self, prompt: MaskPrompt, image_size):
        """SAM2's point inputs: coords (1, 1, N, 2) in the model's square frame, labels (1, 1, N)."""
        torch = self.torch
        h, w = image_size
        scale = torch.tensor([self.side / w, self.side / h], dtype=torch.float32)
        coords, labels = [], []
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            coords += [(x0, y0), (x1, y1)]
            labels += [2, 3]  # SAM's box corner labels, before any clicks
        for (x, y), label in zip(prompt.points, prompt.labels):
            coords.append((x, y))
            labels.append(int(label))
        pts = torch.tensor(coords, dtype=torch.float32) * scale
        return pts.view(1, 1, -1, 2).to(self.device), torch.tensor(labels, dtype=torch.int32).view(1, 1, -1).to(
            self.device)

    def logits(self, frames: np.ndarray, prompt: MaskPrompt) -> np.ndarray:
        """float32 (T, H, W) mask logits at the frames' resolution."""
        transformers, torch = require("transformers"), self.torch
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
        T, h, w = frames.shape[:3]
        prompt.check((h, w), T)
        session = transformers.Sam2VideoInferenceSession(
            video=self.preprocess(frames), video_height=h, video_width=w, inference_device=self.device,
            inference_state_device=self.device, video_storage_device=self.device, dtype=self.dtype)
        coords, labels = self._prompt_inputs(prompt, (h, w))
        obj = session.obj_id_to_idx(1)
        session.add_point_inputs(obj, prompt.frame, {"point_coords": coords, "point_labels": labels})
        session.obj_with_new_inputs = [1]
        out = np.zeros((T, h, w), np.float32)
        with torch.inference_mode():
            self._store(out, self.model(inference_session=session, frame_idx=prompt.frame))
            for reverse in (False, True):
                if reverse and prompt.frame == 0:
                    break
                for step in self.model.propagate_in_video_iterator(session, start_frame_idx=prompt.frame,
                                                                   reverse=reverse):
                    self._store(out, step)
        return out

    def _store(self, out: np.ndarray, step) -> None:
        masks = step.pred_masks.float()  # (objects, 1, h', w') low-resolution logits
        full = self.torch.nn.functional.interpolate(masks, size=out.shape[1:], mode="bilinear", align_corners=False)
        out[step.frame_idx] = full[0, 0].cpu().numpy()

    def __call__(self, frames: np.ndarray, prompt: MaskPrompt) -> np.ndarray:
        """bool (T, H, W). A frame where the object is lost takes the nearest frame's mask, with a
        warning; an object found on no frame is an Orbit4DInputError naming the model."""
        masks = self.logits(frames, prompt) > self.threshold
        found = masks.reshape(len(masks), -1).any(1)
        if not found.any():
            raise Orbit4DInputError(self.name, f"SAM2 found no object for the prompt ({prompt.describe()}) on any "
                                               "frame: check the box or points")
        lost = np.flatnonzero(~found)
        if lost.size:
            idx = np.flatnonzero(found)
            for i in lost:
                masks[i] = masks[idx[np.argmin(np.abs(idx - i))]]
            warnings.warn(f"{self.name}: the object was lost on {lost.size} of {len(masks)} frames; each takes "
                          "the nearest frame's mask", stacklevel=2)
        return masks


def tiny_sam2_video(folder: str | os.PathLike, seed: int = 0, image_size: int = 64) -> Path:
    """Write a tiny random `Sam2VideoModel` (square input `image_size`, a multiple of 32) to `folder`."""
    transformers = require("transformers")
    import torch

    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    torch.manual_seed(seed)
    s = image_size
    hiera = transformers.Sam2HieraDetConfig(
        hidden_size=8, num_attention_heads=1, image_size=[s, s], blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 2, 2], global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2])
    # memory 64 and hidden 128: transformers fixes the memory cross-attention's input at 64 and
    # only splits object pointers (hidden wide) into memory-wide tokens when hidden > 64
    d = 128
    vision = transformers.Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[64, 32, 16, 8],
                                           backbone_feature_sizes=[[s // 4] * 2, [s // 8] * 2, [s // 16] * 2],
                                           fpn_hidden_size=d)
    config = transformers.Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": d, "image_size": s, "patch_size": 16, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": d, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        image_size=s, num_maskmem=3, memory_attention_hidden_size=d, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[s // 16] * 2,
        memory_encoder_hidden_size=d, memory_encoder_output_channels=64, mask_downsampler_embed_dim=d,
        memory_fuser_embed_dim=d, memory_fuser_intermediate_dim=64, max_object_pointers_in_encoder=4)
    model = transformers.Sam2VideoModel(config)
    folder = Path(folder)
    model.save_pretrained(str(folder))
    return folder


def write_masks(folder: str | os.PathLike, masks: np.ndarray, names: list[str]) -> Path:
    """Binary PNGs `<name>.png` (object 255) of bool (T, H, W) masks, each written atomically: the
    propagated masks in the form `--masks` reads, so a run can be repeated (or corrected) without SAM2."""
    import cv2

    from aware3d_utils.atomic import atomic_save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in zip(names, masks):
        img = np.where(mask, 255, 0).astype(np.uint8)
        atomic_save(folder / f"{name}.png", lambda tmp, img=img: cv2.imwrite(tmp, img))
    return folder
