"""Zero-1-to-3 (Liu et al. 2023) assembled from diffusers parts, as a `NovelViewSynthesizer`.

The CLIP image embedding (768) concatenated with [Δpolar, sin Δazimuth, cos Δazimuth, Δradius] and
projected back to 768 by a linear layer is the cross-attention context; the source image's VAE
latent (the posterior mode, unscaled, as the released checkpoints were trained) is concatenated to
the noisy latent (8 UNet input channels); classifier-free guidance zeroes both conditions; 256².
`Zero123Synthesizer` loads both diffusers layouts by id or folder: kxic/zero123-xl (`cc_projection`)
and bennyguo/ashawkey zero123-xl-diffusers (`clip_camera_projection`). `build_tiny_zero123` saves a
tiny random model in either layout for tests. Import them from `datagen.novel_view`, which
re-exports them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from aware3d_utils import require
from aware3d_utils.optional import lazy_module

from .controlnet import ModelLoadError, _tiny_vae
from .hub import pretrained_kwargs
from .synthesizer import NovelViewSynthesizer, SourceView, as_relative_poses

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["Zero123Synthesizer", "build_tiny_zero123", "resolve_model_folder", "PROJECTION_LAYOUTS"]

# layout name -> (projection subfolder, the Linear's name inside it, model_index class names)
PROJECTION_LAYOUTS = {
    "cc_projection": ("cc_projection", "projection", ("Zero1to3StableDiffusionPipeline", "pipeline_zero1to3",
                                                      "CCProjection")),
    "clip_camera_projection": ("clip_camera_projection", "proj", ("Zero123Pipeline", "zero123",
                                                                  "CLIPCameraProjection")),
}


def resolve_model_folder(model: str | os.PathLike) -> Path:
    """A local folder for a model id or path (a cached id loads offline; see `datagen.hub`)."""
    name = str(model)
    kwargs = pretrained_kwargs(name, "model", files=("model_index.json",))
    if Path(name).expanduser().exists():
        return Path(name).expanduser()
    hub = require("huggingface_hub")
    try:
        return Path(hub.snapshot_download(name, **kwargs))
    except Exception as exc:  # noqa: BLE001 - hub errors have many types; one clear message
        raise ModelLoadError(f"model: cannot load {name!r}: {exc}") from exc


def _load_projection(folder: Path):
    """The camera projection Linear of either layout: (layout name, torch.nn.Linear)."""
    torch = require("torch")
    for layout, (sub, _, _) in PROJECTION_LAYOUTS.items():
        where = folder / sub
        if not where.is_dir():
            continue
        files = [where / n for n in ("diffusion_pytorch_model.safetensors", "model.safetensors",
                                     "diffusion_pytorch_model.bin", "pytorch_model.bin") if (where / n).is_file()]
        if not files:
            raise ModelLoadError(f"{where}: no weights file (diffusion_pytorch_model.safetensors or .bin)")
        if files[0].suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(files[0]))
        else:
            state = torch.load(files[0], map_location="cpu", weights_only=True)
        weights = [k for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
        if len(weights) != 1 or weights[0][: -len("weight")] + "bias" not in state:
            raise ModelLoadError(f"{files[0]}: expected one Linear layer (weight and bias), got keys {sorted(state)}")
        weight, bias = state[weights[0]], state[weights[0][: -len("weight")] + "bias"]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight.float())
            linear.bias.copy_(bias.float())
        return layout, linear
    raise ModelLoadError(f"{folder}: not a Zero-1-to-3 model: neither a cc_projection nor a "
                         "clip_camera_projection folder")


class Zero123Synthesizer(NovelViewSynthesizer):
    """Zero-1-to-3 from a model id or folder (either layout; see the module docstring).

    steps: DDIM steps; guidance: classifier-free guidance scale (≤ 1 turns it off); batch_size: views
    denoised together; dtype: "float32" or "float16"; device: "cpu", "cuda", ...
    """

    name = "zero123"

    def __init__(self, model: str | os.PathLike = "kxic/zero123-xl", *, device: str = "cpu", steps: int = 50,
                 guidance: float = 3.0, batch_size: int = 4, dtype: str = "float32"):
        if int(steps) < 1 or int(batch_size) < 1:
            raise ValueError(f"zero123: steps and batch_size must be ≥ 1, got {steps}, {batch_size}")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"zero123: dtype must be float32, float16 or bfloat16, got {dtype!r}")
        self.model, self.device, self.steps = str(model), device, int(steps)
        self.guidance, self.batch_size, self.dtype_name = float(guidance), int(batch_size), dtype
        self._parts = None

    def describe(self) -> dict:
        return {"synthesizer": self.name, "model": self.model, "steps": self.steps, "guidance": self.guidance,
                "layout": self.parts["layout"], "image_size": self.image_size}

    @property
    def parts(self) -> dict:
        if self._parts is None:
            self._parts = self._load()
        return self._parts

    @property
    def image_size(self) -> int:
        """Side of the square images the model makes (256 for the released checkpoints)."""
        p = self.parts
        return int(p["unet"].config.sample_size) * 2 ** (len(p["vae"].config.block_out_channels) - 1)

    def _load(self) -> dict:
        diffusers, transformers, torch = require("diffusers"), require("transformers"), require("torch")
        folder = resolve_model_folder(self.model)
        layout, projection = _load_projection(folder)
        dtype = getattr(torch, self.dtype_name)
        try:
            unet = diffusers.UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype)
            vae = diffusers.AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype)
            encoder = transformers.CLIPVisionModelWithProjection.from_pretrained(folder, subfolder="image_encoder",
                                                                                 dtype=dtype)
            processor = transformers.CLIPImageProcessor.from_pretrained(folder, subfolder="feature_extractor")
            scheduler = diffusers.DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{folder}: cannot load a Zero-1-to-3 part: {exc}") from exc
        if unet.config.in_channels != 2 * vae.config.latent_channels:
            raise ModelLoadError(f"{folder}: the UNet takes {unet.config.in_channels} channels; Zero-1-to-3 needs "
                                 f"the noisy and the source latent ({2 * vae.config.latent_channels})")
        dim = encoder.config.projection_dim
        if projection.in_features != dim + 4 or projection.out_features != unet.config.cross_attention_dim:
            raise ModelLoadError(f"{folder}: the {layout} maps {projection.in_features} -> {projection.out_features}; "
                                 f"expected {dim} + 4 -> {unet.config.cross_attention_dim}")
        projection.to(dtype=dtype)
        for m in (unet, vae, encoder, projection):  # loaded in their dtype: only the device moves here
            m.to(self.device).eval().requires_grad_(False)
        return {"layout": layout, "unet": unet, "vae": vae, "encoder": encoder, "processor": processor,
                "scheduler": scheduler, "projection": projection, "dtype": dtype, "folder": folder}

    def camera_embedding(self, relative_poses):
        """(N, 4) [Δpolar, sin Δazimuth, cos Δazimuth, Δradius] of (N, 3) relative poses."""
        torch = require("torch")
        p = torch.as_tensor(as_relative_poses(relative_poses), dtype=torch.float32)
        return torch.stack([p[:, 0], p[:, 1].sin(), p[:, 1].cos(), p[:, 2]], dim=-1)

    def _source_conditions(self, image: np.ndarray):
        """(CLIP image embedding (1, D), source latent (1, 4, s, s) unscaled) of one image."""
        torch = require("torch")
        p, dev = self.parts, self.device
        size = self.image_size
        clip_in = p["processor"](images=image, return_tensors="pt").pixel_values.to(dev, p["dtype"])
        embedding = p["encoder"](clip_in).image_embeds  # (1, D)
        square = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size
                            else cv2.INTER_CUBIC)
        x = torch.from_numpy(square).permute(2, 0, 1)[None].to(dev, p["dtype"]) / 127.5 - 1.0
        latent = p["vae"].encode(x).latent_dist.mode()
        return embedding, latent

    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        torch = require("torch")
        image = source.checked_image()
        poses = as_relative_poses(relative_poses)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            embedding, latent = self._source_conditions(image)
            for start in range(0, len(poses), self.batch_size):
                chunk = poses[start:start + self.batch_size]
                n = len(chunk)
                seeds = [int(seed) + start + i for i in range(n)]
                # padded to batch_size: batched kernels round by batch shape, so a view's pixels
                # must not depend on how many others share its batch
                pad = self.batch_size - n
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk
                out.extend(self._denoise(embedding, latent, chunk, seeds + [seeds[-1]] * pad)[:n])
        h, w = image.shape[:2]
        if (h, w) != (self.image_size,) * 2:
            out = [cv2.resize(o, (w, h), interpolation=cv2.INTER_AREA if h < self.image_size else cv2.INTER_CUBIC)
                   for o in out]
        return out

    def _denoise(self, embedding, latent, poses, seeds) -> list[np.ndarray]:
        torch = require("torch")
        p, dev, dtype = self.parts, self.device, self.parts["dtype"]
        n = len(poses)
        T = self.camera_embedding(poses).to(dev, dtype)
        context = p["projection"](torch.cat([embedding.expand(n, -1), T], dim=-1))[:, None]  # (n, 1, D)
        cond_latent = latent.expand(n, -1, -1, -1)
        guided = self.guidance > 1.0
        if guided:  # the unconditional branch sees zero context and a zero source latent
            context = torch.cat([torch.zeros_like(context), context])
            cond_latent = torch.cat([torch.zeros_like(cond_latent), cond_latent])
        # one generator per view: a view's noise does not depend on its batch neighbours
        noise = torch.cat([torch.randn((1, *latent.shape[1:]), generator=torch.Generator("cpu").manual_seed(s))
                           for s in seeds]).to(dev, dtype)
        scheduler = p["scheduler"]
        scheduler.set_timesteps(self.steps, device=dev)
        x = noise * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            inp = torch.cat([x, x]) if guided else x
            inp = torch.cat([scheduler.scale_model_input(inp, t), cond_latent], dim=1)
            eps = p["unet"](inp, t, encoder_hidden_states=context).sample
            if guided:
                uncond, cond = eps.chunk(2)
                eps = uncond + self.guidance * (cond - uncond)
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        decoded = p["vae"].decode(x / p["vae"].config.scaling_factor).sample
        rgb = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return list(rgb.permute(0, 2, 3, 1).cpu().numpy())


def build_tiny_zero123(folder: str | os.PathLike, layout: str = "cc_projection", seed: int = 0,
                       real_size: bool = False) -> Path:
    """Save a tiny randomly initialised Zero-1-to-3 model (64² images) in `layout` into `folder`; return it.

    The parts are built from configs (8-channel UNet with 32-d cross-attention, an 8x VAE, a CLIP vision
    tower with a 32-d projection, a CLIP image processor, DDIM), and the camera projection (36 -> 32)
    is written as the real layout stores it: `cc_projection/` (Linear `projection`, .bin) or
    `clip_camera_projection/` (Linear `proj`, safetensors). Loads by path like a real model.
    real_size: the released architecture instead (SD 1.5 UNet with 8 input channels and 768-d
    cross-attention, SD's VAE, CLIP ViT-L/14, 256²), still random: for benchmarks (several GB on disk).
    """
    if layout not in PROJECTION_LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(PROJECTION_LAYOUTS)}, got {layout!r}")
    diffusers, transformers, torch = require("diffusers"), require("transformers"), require("torch")
    folder = Path(folder)
    torch.manual_seed(seed)
    if real_size:  # diffusers' and transformers' defaults are SD 1.5's UNet / VAE shapes; CLIP ViT-L/14
        dim = 768
        unet = diffusers.UNet2DConditionModel(sample_size=32, in_channels=8, out_channels=4, cross_attention_dim=dim)
        vae = diffusers.AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                                      down_block_types=("DownEncoderBlock2D",) * 4,
                                      up_block_types=("UpDecoderBlock2D",) * 4, sample_size=256)
        encoder = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=dim))
        processor = transformers.CLIPImageProcessor()
    else:
        dim = 32
        unet = diffusers.UNet2DConditionModel(
            sample_size=8, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=dim, attention_head_dim=4,
            norm_num_groups=8)
        vae = _tiny_vae(diffusers)
        encoder = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8, projection_dim=dim))
        processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False)
    with torch.no_grad():  # random weights big enough that the conditions visibly change the output
        for p in unet.parameters():
            if p.ndim > 1 and float(p.abs().max()) == 0.0:
                p.normal_(0.0, 0.05)
    parts = {"unet": unet, "vae": vae, "image_encoder": encoder, "feature_extractor": processor, "scheduler": scheduler}
    for name, part in parts.items():
        part.save_pretrained(folder / name)
    sub, attr, (pipe_cls, module, proj_cls) = PROJECTION_LAYOUTS[layout]
    projection = torch.nn.Linear(dim + 4, dim)
    state = {f"{attr}.weight": projection.weight.detach().clone(), f"{attr}.bias": projection.bias.detach().clone()}
    (folder / sub).mkdir(parents=True, exist_ok=True)
    if layout == "cc_projection":
        torch.save(state, folder / sub / "diffusion_pytorch_model.bin")
        config = {"_class_name": proj_cls, "in_channel": dim + 4, "out_channel": dim}
    else:
        from safetensors.torch import save_file

        save_file(state, str(folder / sub / "diffusion_pytorch_model.safetensors"))
        config = {"_class_name": proj_cls, "embedding_dim": dim, "additional_embeddings": 4}
    (folder / sub / "config.json").write_text(json.dumps(config, indent=2))
    index = {"_class_name": pipe_cls, "_diffusers_version": diffusers.__version__,
             sub: [module, proj_cls], "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
             "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
