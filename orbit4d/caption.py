"""An optional caption model for the video stage: the prompt of the video model from the first frame.

FreeOrbit4D's released video stage captions the first input frame automatically (Qwen3-VL-2B)
and gives that caption to Wan2.2-VACE as its prompt. Here `--caption-model <id or folder>` loads a
transformers image-to-text model of the captioning kind (an image processor, a tokenizer and a
model that `generate`s text from `pixel_values`: BLIP, e.g. `Salesforce/blip-image-captioning-base`,
or a vision-encoder-decoder, e.g. `nlpconnect/vit-gpt2-image-captioning`) through
`AutoModelForImageTextToText`, captions the first frame, and the caption becomes the video model's
prompt; an empty caption falls back to `--prompt` (with a warning). Chat-style vision-language
models (Qwen3-VL) that need a chat template are not handled here.

`tiny_blip_captioner(folder)` writes a tiny randomly initialised BLIP captioner (a word-level
vocabulary, a 2-layer vision and text model) that loads the same way: for tests, without network
access. Its captions are random words of its vocabulary.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aware3d_utils.optional import require

__all__ = ["ImageCaptioner", "tiny_blip_captioner"]


class ImageCaptioner:
    """Caption an image with a transformers image-to-text model by id or local folder.

    max_new_tokens: the caption's length limit; device: where the model runs (default: CUDA when
    there is one). The heavy import happens here, not when orbit4d is imported."""

    def __init__(self, model: str | os.PathLike, *, max_new_tokens: int = 30, device: str | None = None):
        transformers = require("transformers")
        import torch

        self.torch = torch
        name = str(model)
        self.image_processor = transformers.AutoImageProcessor.from_pretrained(name)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(name)
        self.model = transformers.AutoModelForImageTextToText.from_pretrained(name)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.max_new_tokens = int(max_new_tokens)

    def __call__(self, image: np.ndarray) -> str:
        """image uint8 (H, W, 3) → the caption (stripped; may be empty). Greedy decoding: the same
        image gives the same caption."""
        from PIL import Image

        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"ImageCaptioner: the image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
        pixels = self.image_processor(images=[Image.fromarray(img)], return_tensors="pt")["pixel_values"]
        with self.torch.no_grad():
            ids = self.model.generate(pixel_values=pixels.to(self.device, self.model.dtype),
                                      max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()


def tiny_blip_captioner(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random BLIP captioner to `folder` (loadable by `ImageCaptioner`)."""
    transformers = require("transformers")
    import torch

    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = ("a an the of in on and person animal object walking moving turning standing car chair dog horse "
             "camera scene grass road").split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(str(folder))
    config = transformers.BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8, "projection_dim": 32},
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "encoder_hidden_size": 32, "max_position_embeddings": 64,
                     "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3, "sep_token_id": 3},
        projection_dim=32)
    model = transformers.BlipForConditionalGeneration(config).eval()
    model.generation_config.max_length = 20
    model.save_pretrained(str(folder))
    transformers.BlipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder
