"""The video-model stage: diffusers' WanVACEPipeline paints the final video from the scaffold.

`WanVacePainter(model)` loads the pipeline by model id (e.g. "Wan-AI/Wan2.1-VACE-1.3B-diffusers")
or local path, the way diffusers does, and implements `orbit4d.estimators.VideoPainter`: the
conditioning video is the scaffold (colour, or the normalised depth as grey RGB), the VACE mask is
white where the scaffold has holes (what the model must paint), an optional reference image
(the first input frame) and a prompt. Wan needs 4k + 1 frames and sides that are multiples of 16:
the scaffold is resized to the nearest such size and the last frame repeated, and the output is
brought back to the scaffold's frames and size.

`tiny_wan_vace(folder)` writes a tiny randomly initialised pipeline (a word-level tokenizer, a
2-layer UMT5 encoder, a small Wan VAE and a 3-layer VACE transformer) that loads like a real one:
for tests and the demo, without network access.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from aware3d_utils.optional import require

__all__ = ["WanVacePainter", "tiny_wan_vace"]


def _size_for_wan(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    scale = 1.0 if max_side is None else min(1.0, max_side / max(h, w))
    return max(16, int(round(h * scale / 16)) * 16), max(16, int(round(w * scale / 16)) * 16)


class WanVacePainter:
    """Paint a video from a scaffold with a WanVACE pipeline (see the module docstring).

    steps / guidance: denoising steps and classifier-free guidance; max_side: the longest side
    the model sees (None: the scaffold's); device / dtype: where the pipeline runs."""

    def __init__(self, model: str | os.PathLike, *, steps: int = 30, guidance: float = 5.0,
                 max_side: int | None = 832, device: str | None = None, dtype=None, seed: int = 0):
        diffusers = require("diffusers")
        import torch

        self.torch = torch
        kwargs = {} if dtype is None else {"torch_dtype": dtype}
        self.pipe = diffusers.WanVACEPipeline.from_pretrained(str(model), **kwargs)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.steps, self.guidance, self.max_side, self.seed = int(steps), float(guidance), max_side, int(seed)

    def __call__(self, scaffold_rgb: np.ndarray, hole_mask: np.ndarray | None, reference: np.ndarray | None = None,
                 prompt: str = "") -> np.ndarray:
        """scaffold_rgb uint8 (N, H, W, 3), hole_mask bool (N, H, W) → uint8 (N, H, W, 3).
        hole_mask None: no VACE mask, the model repaints every pixel with the conditioning video as
        a control signal (FreeOrbit4D's released stage: rendered depth as control, the first frame
        as reference; VVeiCao/FreeOrbit4D scripts/2_0_Wan2.2-VACE-Fun-A14B.py lines 229–245)."""
        from PIL import Image

        n, h, w = scaffold_rgb.shape[:3]
        hh, ww = _size_for_wan(h, w, self.max_side)
        total = ((n - 1 + 3) // 4) * 4 + 1  # 4k + 1 frames
        idx = np.minimum(np.arange(total), n - 1)
        video = [Image.fromarray(cv2.resize(scaffold_rgb[i], (ww, hh), interpolation=cv2.INTER_AREA)) for i in idx]
        mask = None if hole_mask is None else [
            Image.fromarray(cv2.resize(np.where(hole_mask[i], 255, 0).astype(np.uint8), (ww, hh),
                                       interpolation=cv2.INTER_NEAREST)) for i in idx]
        refs = None if reference is None else [Image.fromarray(cv2.resize(reference, (ww, hh),
                                                                          interpolation=cv2.INTER_AREA))]
        gen = self.torch.Generator(device="cpu").manual_seed(self.seed)
        out = self.pipe(video=video, mask=mask, reference_images=refs, prompt=prompt, height=hh, width=ww,
                        num_frames=total, num_inference_steps=self.steps, guidance_scale=self.guidance,
                        generator=gen, output_type="np").frames[0]
        frames = np.clip(np.asarray(out)[:n] * 255, 0, 255).round().astype(np.uint8)
        return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames])


def tiny_wan_vace(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random WanVACE pipeline to `folder` (loadable with from_pretrained)."""
    diffusers = require("diffusers")
    transformers = require("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(seed)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in "a an the of in on and person object moving turning camera orbit video scene".split():
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                                     unk_token="<unk>", model_max_length=64)
    text = transformers.UMT5EncoderModel(transformers.UMT5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    vae = diffusers.AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                     temperal_downsample=[False, True, True])
    transformer = diffusers.WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, vace_layers=[0, 2], vace_in_channels=96)
    pipe = diffusers.WanVACEPipeline(tokenizer=tokenizer, text_encoder=text, vae=vae, transformer=transformer,
                                     scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0))
    folder = Path(folder)
    pipe.save_pretrained(str(folder))
    return folder
