"""ControlNet generation throughput: datagen's generator against the plain diffusers call.

On a CUDA device: the SD 1.5 architecture (UNet, ControlNet, VAE, CLIP ViT-L text encoder) with
random weights (the arithmetic of the real model; weights do not change the cost), 512², 20 DDIM
steps with classifier-free guidance, fp16. Baseline: the plain `StableDiffusionControlNetPipeline`
call at batch 1, measured in the same run. Issue goal: ≥ 8 images/s on an H100/H200.
Without CUDA the SD 1.5-size model is far too slow to time, so the same comparison runs on the tiny
random pipeline of the tests (a smoke run of the code path; its numbers say little about a GPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import table

from datagen.controlnet import ControlNetGenerator, build_tiny_pipeline


def build_sd15_size_pipeline(folder: Path, device: torch.device | None = None) -> Path:
    """The tiny pipeline's tokenizer and scheduler with SD 1.5-size models at random weights (UNet,
    ControlNet from it, VAE, CLIP ViT-L/14 text encoder), built on `device` (random init on a GPU takes
    seconds instead of a minute) and saved in fp16 on CUDA. bench/gpu.py builds its pipeline here too."""
    import diffusers
    import transformers

    device = torch.device("cpu") if device is None else device
    build_tiny_pipeline(folder, "sd15")
    pipe = diffusers.StableDiffusionControlNetPipeline.from_pretrained(folder, safety_checker=None)
    torch.manual_seed(0)
    with torch.device(device):
        unet = diffusers.UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        controlnet = diffusers.ControlNetModel.from_unet(unet)
        vae = diffusers.AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu"))
    full = diffusers.StableDiffusionControlNetPipeline(
        vae=vae, text_encoder=text, tokenizer=pipe.tokenizer, unet=unet, controlnet=controlnet,
        scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if device.type == "cuda":
        full.to(dtype=torch.float16)
    full.save_pretrained(folder)
    del full, unet, controlnet, vae, text
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="generator batch size on CUDA (default 16)")
    parser.add_argument("--compile", action="store_true", help="also time the generator with torch.compile")
    args = parser.parse_args()
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        _run(args)


def _run(args) -> None:
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    size, steps = (512, 20) if cuda else (64, 20)
    batch = args.batch if cuda else 4
    images = (2 if args.quick else 4) * batch
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pipe"
        if cuda:
            build_sd15_size_pipeline(folder)
        else:
            build_tiny_pipeline(folder, "sd15")
            print("no CUDA device: timing the tiny random pipeline at 64² (a smoke run of the code path)\n")
        rng = np.random.default_rng(0)
        conditions = [np.where(rng.random((size, size, 1)) < 0.05, 255, 0).astype(np.uint8).repeat(3, 2)
                      for _ in range(images)]
        prompts = ["a photo of a car, best quality, extremely detailed"] * images
        negatives = ["lowres, bad anatomy, worst quality"] * images
        seeds = list(range(images))
        config = {"model": str(folder), "steps": steps, "guidance": 9.0, "image_size": size, "batch_size": batch}

        def plain_pipeline_rate() -> float:
            gen = ControlNetGenerator({**config, "batch_size": 1}, device=device)
            pipe = gen.pipe  # the loaded diffusers pipeline: call it directly, one image per call
            pipe.set_progress_bar_config(disable=True)
            from PIL import Image

            def one(i):
                return pipe(prompts[i], image=Image.fromarray(conditions[i]), negative_prompt=negatives[i],
                            num_inference_steps=steps, guidance_scale=9.0, height=size, width=size,
                            generator=torch.Generator("cpu").manual_seed(i), output_type="np").images[0]
            one(0)  # warm-up
            n = max(2, images // batch)
            start = _now(cuda)
            for i in range(n):
                one(i)
            return n / (_now(cuda) - start)

        def generator_rate(**extra) -> float:
            gen = ControlNetGenerator({**config, **extra}, device=device)
            gen.generate(conditions[:batch], prompts[:batch], negatives[:batch], seeds[:batch])  # warm-up
            start = _now(cuda)
            gen.generate(conditions, prompts, negatives, seeds)
            return images / (_now(cuda) - start)

        rows = []
        base = plain_pipeline_rate()
        rows.append(["diffusers pipeline call, batch 1", base, 1.0])
        rate = generator_rate()
        rows.append([f"datagen ControlNetGenerator, batch {batch}", rate, rate / base])
        if cuda:
            rate = generator_rate(pad_batches=False, vae_slicing=False)
            rows.append([f"generator, batch {batch}, without bit-exact regeneration guards", rate, rate / base])
        if args.compile:
            rate = generator_rate(compile=True)
            rows.append([f"generator, batch {batch}, torch.compile", rate, rate / base])
    where = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"{where}, {size}², {steps} steps, guidance 9.0, {'fp16' if cuda else 'fp32'}\n")
    print(table(["path", "images/s", "× plain call"], rows))


def _now(cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter()


if __name__ == "__main__":
    main()
