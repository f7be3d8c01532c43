"""ControlNet generation for 3D-DST: edge maps + prompts -> realistic images, one seed per sample.

`ControlNetGenerator(config_block, device).generate(conditions, prompts, negative_prompts, seeds)`
runs a diffusers ControlNet pipeline (SD 1.5, SDXL or SD3) in batches and returns one (H, W, 3)
uint8 image per condition.

Reproducing one sample alone. Each sample gets its own CPU `torch.Generator` seeded with its seed
(the initial latents and any per-step noise are drawn from it alone, the same on every device).
That is not enough for bit-exact images: CPU (and GPU) kernels round differently for different
batch sizes (a (2, K) @ (K, N) product is not computed like a (6, K) one), and a multi-threaded
channels-last GroupNorm in the VAE decoder differs with the sample's position in the batch. So by
default the generator
  - pads every batch to `batch_size` (repeating the last sample with a throw-away seed), so the
    denoiser always sees the same shapes, and
  - decodes latents one sample at a time (VAE slicing).
With both, generating [a, b, c] together and b alone give the same b bit for bit (checked in the
tests with 1 and 2 threads) as long as batch_size, device, dtype and library versions are the same.
For SD3, diffusers samples the control image's VAE latents from the global RNG; the generator uses
the posterior mean instead, so that a sample does not depend on its neighbours.

`build_tiny_pipeline(folder, pipeline)` saves a tiny randomly initialised pipeline (built from
configs, hand-made CLIP vocabulary) that tests load by path exactly like a real model.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aware3d_utils import require
from aware3d_utils.optional import lazy_module

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = [
    "ControlNetGenerator",
    "ModelLoadError",
    "build_tiny_pipeline",
    "CONTROLNET_KEYS",
    "PASSTHROUGH_KEYS",
    "PIPELINE_DEFAULTS",
    "SCHEDULERS",
    "resize_condition",
]

log = logging.getLogger(__name__)

# Per pipeline: the diffusers classes and the public weights used by default.
PIPELINE_DEFAULTS = {
    "sd15": {
        "pipeline_class": "StableDiffusionControlNetPipeline",
        "controlnet_class": "ControlNetModel",
        # 3D-DST's released generator loads ControlNet 1.1 canny (control_v11p_sd15_canny) on SD 1.5;
        # "lllyasviel/sd-controlnet-canny" is the 1.0 canny model and loads the same way.
        "model": "lllyasviel/control_v11p_sd15_canny",
        # runwayml/stable-diffusion-v1-5 was withdrawn from the Hub in 2024; this is the maintained copy.
        "base_model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "image_size": 512,
        "scheduler": "ddim",
    },
    "sdxl": {
        "pipeline_class": "StableDiffusionXLControlNetPipeline",
        "controlnet_class": "ControlNetModel",
        "model": "diffusers/controlnet-canny-sdxl-1.0",
        "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
        "image_size": 1024,
        "scheduler": "ddim",
    },
    "sd3": {
        "pipeline_class": "StableDiffusion3ControlNetPipeline",
        "controlnet_class": "SD3ControlNetModel",
        "model": "InstantX/SD3-Controlnet-Canny",
        "base_model": "stabilityai/stable-diffusion-3-medium-diffusers",
        "image_size": 1024,
        "scheduler": "default",
    },
}

# name -> (diffusers scheduler class, extra from_config kwargs); "default" keeps the model's own.
SCHEDULERS = {
    "ddim": ("DDIMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
}
_FLOW_SCHEDULERS = {"flow_euler", "default"}

_DEFAULTS = {
    "model": None, "base_model": None, "pipeline": "sd15", "scheduler": None, "steps": 20, "guidance": 9.0,
    "conditioning_scale": 1.0, "eta": 1.0, "guess_mode": False, "image_size": None, "batch_size": 4,
    "dtype": "auto", "cpu_offload": False, "vae": None, "variant": None, "safety_checker": False,
    "compile": False, "pad_batches": True, "vae_slicing": True, "progress": False,
}
CONTROLNET_KEYS = frozenset(_DEFAULTS)
_SWITCHES = ("guess_mode", "cpu_offload", "safety_checker", "compile", "pad_batches", "vae_slicing", "progress")
# Keys of the `controlnet` config block that belong to other stages; accepted and ignored here.
PASSTHROUGH_KEYS = frozenset({"prompts", "checks", "cheap_checks", "filter", "edges", "canny"})
_DTYPES = {"fp16": "float16", "float16": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16",
           "fp32": "float32", "float32": "float32"}


class ModelLoadError(OSError):
    """A model id or folder that cannot be loaded (missing offline, wrong type, bad files)."""


def resize_condition(edges: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, 3) uint8 edge map resampled to size (h, w), keeping thin lines as lines.

    Shrinking averages (INTER_AREA) and re-binarises at 1/8 intensity so that one-pixel edges survive;
    growing uses nearest neighbour so that no grey fringe appears.
    """
    h, w = size
    if edges.shape[:2] == (h, w):
        return edges
    if h < edges.shape[0] or w < edges.shape[1]:
        small = cv2.resize(edges, (w, h), interpolation=cv2.INTER_AREA)
        return np.where(small >= 32, 255, 0).astype(np.uint8)
    return cv2.resize(edges, (w, h), interpolation=cv2.INTER_NEAREST)


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    interp = cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(image, (w, h), interpolation=interp)


def _number(cfg: Mapping, key: str, lo: float, hi: float = math.inf, integer: bool = False):
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"controlnet.{key}: must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"controlnet.{key}: must be an integer, got {value!r}")
    if not (lo <= value <= hi) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"controlnet.{key}: must be in [{lo}, {hi}], got {value!r}")
    return int(value) if integer else float(value)


class ControlNetGenerator:
    """A diffusers ControlNet pipeline that turns edge maps into images, one seed per sample.

    config_block keys (unknown keys are errors naming the key; `prompts` and other stages' keys pass):
      model: ControlNet id or local folder (default per pipeline, see PIPELINE_DEFAULTS); a folder with
        a model_index.json is taken as a whole pipeline (base_model is then not needed);
      base_model: the base pipeline's id or folder; pipeline: "sd15" | "sdxl" | "sd3";
      scheduler: ddim (default for sd15/sdxl) | unipc | euler | euler_a | dpmpp_2m | pndm | flow_euler |
        default (keep the model's; the default for sd3);
      steps (20), guidance (9.0), conditioning_scale (1.0), eta (1.0, DDIM only, as 3D-DST), guess_mode;
      image_size: generation size of the longer side (default 512 for sd15, 1024 for sdxl/sd3);
      batch_size (4); dtype: auto (fp16 on CUDA, fp32 on CPU) | fp16 | bf16 | fp32;
      cpu_offload (False; model CPU offload on CUDA); vae: a VAE id/folder replacing the pipeline's;
      variant (e.g. "fp16" weight files); safety_checker (False); compile (False: torch.compile the
      denoiser and ControlNet); pad_batches (True) and vae_slicing (True): see the module docstring;
      progress (False: diffusers' per-call progress bar).
    device: "cuda", "cuda:1", "cpu", ... (default: cuda when available).
    """

    def __init__(self, config_block: Mapping | None = None, device: str | None = None):
        cfg = dict(config_block or {})
        unknown = sorted(set(cfg) - CONTROLNET_KEYS - PASSTHROUGH_KEYS)
        if unknown:
            raise ValueError(f"controlnet.{unknown[0]}: unknown key (known: {', '.join(sorted(CONTROLNET_KEYS))})")
        cfg = {**_DEFAULTS, **{k: v for k, v in cfg.items() if k in CONTROLNET_KEYS}}
        if cfg["pipeline"] not in PIPELINE_DEFAULTS:
            raise ValueError(f"controlnet.pipeline: must be one of {sorted(PIPELINE_DEFAULTS)}, "
                             f"got {cfg['pipeline']!r}")
        self.pipeline_kind = cfg["pipeline"]
        spec = PIPELINE_DEFAULTS[self.pipeline_kind]
        self.model = str(cfg["model"] or spec["model"])
        self.base_model = str(cfg["base_model"] or spec["base_model"])
        self.scheduler = cfg["scheduler"] or spec["scheduler"]
        if self.scheduler not in SCHEDULERS and self.scheduler != "default":
            raise ValueError(f"controlnet.scheduler: must be one of {sorted(SCHEDULERS) + ['default']}, "
                             f"got {self.scheduler!r}")
        if (self.pipeline_kind == "sd3") != (self.scheduler in _FLOW_SCHEDULERS) and self.scheduler != "default":
            raise ValueError(f"controlnet.scheduler: {self.scheduler!r} does not fit pipeline {self.pipeline_kind!r} "
                             "(sd3 is a flow-matching model: use flow_euler or default)")
        self.steps = _number(cfg, "steps", 1, 1000, integer=True)
        self.guidance = _number(cfg, "guidance", 0.0, 100.0)
        self.conditioning_scale = _number(cfg, "conditioning_scale", 0.0, 10.0)
        self.eta = _number(cfg, "eta", 0.0, 1.0)
        self.batch_size = _number(cfg, "batch_size", 1, 4096, integer=True)
        size = cfg["image_size"] if cfg["image_size"] is not None else spec["image_size"]
        self.image_size = _number({"image_size": size}, "image_size", 8, 8192, integer=True)
        if self.image_size % 8:
            raise ValueError(f"controlnet.image_size: must be a multiple of 8, got {self.image_size}")
        for key in _SWITCHES:
            if not isinstance(cfg[key], bool):
                raise ValueError(f"controlnet.{key}: must be true or false, got {cfg[key]!r}")
        self.options = {k: cfg[k] for k in _SWITCHES}
        self.vae = str(cfg["vae"]) if cfg["vae"] else None
        self.variant = str(cfg["variant"]) if cfg["variant"] else None
        dtype = str(cfg["dtype"])
        if dtype != "auto" and dtype not in _DTYPES:
            raise ValueError(f"controlnet.dtype: must be auto, fp16, bf16 or fp32, got {dtype!r}")
        torch = require("torch")
        self.device = str(device) if device else ("cuda" if torch.cuda.is_available() else "cpu")
        on_cuda = self.device.startswith("cuda")
        self.dtype_name = _DTYPES.get(dtype, "float16" if on_cuda else "float32")
        self._pipe = None
        self._attention: set[str] = set()

    # ------------------------------------------------------------------ loading
    @property
    def pipe(self):
        """The loaded diffusers pipeline (loaded on first use)."""
        if self._pipe is None:
            self._pipe = self._load()
        return self._pipe

    def describe(self) -> dict:
        """The resolved settings (for a run's manifest)."""
        return {"pipeline": self.pipeline_kind, "model": self.model, "base_model": self.base_model,
                "scheduler": self.scheduler, "steps": self.steps, "guidance": self.guidance,
                "conditioning_scale": self.conditioning_scale, "eta": self.eta, "image_size": self.image_size,
                "batch_size": self.batch_size, "dtype": self.dtype_name, "device": self.device,
                "vae": self.vae, "variant": self.variant, **self.options}

    @property
    def attention_processors(self) -> set[str]:
        """Class names of the denoiser's attention processors once loaded (…2_0 = PyTorch SDPA)."""
        return set(self._attention)

    def _from_pretrained(self, cls, name: str, what: str, **kwargs):
        from .hub import pretrained_kwargs

        try:
            where = pretrained_kwargs(name, f"controlnet.{what}")
        except FileNotFoundError as exc:  # offline and not cached: said at once, no retries
            raise ModelLoadError(str(exc)) from None
        try:
            return cls.from_pretrained(name, **where, **kwargs)
        except (OSError, ValueError) as exc:
            hint = "" if Path(name).exists() else (
                " (not a local folder; with HF_HUB_OFFLINE=1 it must already be in the Hugging Face cache)")
            raise ModelLoadError(f"controlnet.{what}: cannot load {name!r}{hint}: {exc}") from exc

    def _load(self):
        # checked here, not in __init__: a config is often validated on a machine without the GPU it runs on
        if self.dtype_name == "float16" and not self.device.startswith("cuda"):
            raise ValueError("controlnet.dtype: fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
        diffusers = require("diffusers")
        torch = require("torch")
        spec = PIPELINE_DEFAULTS[self.pipeline_kind]
        pipe_cls = getattr(diffusers, spec["pipeline_class"])
        dtype = getattr(torch, self.dtype_name)
        # diffusers renamed torch_dtype to dtype (the old name warns); older releases know only torch_dtype
        dtype_key = "dtype" if hasattr(diffusers.utils.deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") \
            else "torch_dtype"
        common = {dtype_key: dtype}
        if self.variant:
            common["variant"] = self.variant
        extra = {}
        if self.pipeline_kind == "sd15" and not self.options["safety_checker"]:
            extra.update(safety_checker=None, requires_safety_checker=False)
        if self.pipeline_kind == "sdxl":
            extra["add_watermarker"] = False
        if self.vae:
            extra["vae"] = self._from_pretrained(diffusers.AutoencoderKL, self.vae, "vae", **common)
        index = Path(self.model) / "model_index.json"
        base_index = Path(self.base_model) / "model_index.json"
        for path in (index, base_index):
            if path.is_file():
                # components saved as null (e.g. SD3 without its T5 encoder) must be passed as None
                extra.update({k: None for k, v in json.loads(path.read_text()).items()
                              if not k.startswith("_") and isinstance(v, list) and v[0] is None and k not in extra})
                break
        if index.is_file():
            class_name = json.loads(index.read_text()).get("_class_name")
            if class_name != spec["pipeline_class"]:
                raise ModelLoadError(f"controlnet.pipeline: {self.model} holds a {class_name}, but pipeline "
                                     f"{self.pipeline_kind!r} needs a {spec['pipeline_class']}")
            pipe = self._from_pretrained(pipe_cls, self.model, "model", **common, **extra)
            self.base_model = self.model
        else:
            controlnet = self._from_pretrained(getattr(diffusers, spec["controlnet_class"]), self.model, "model",
                                               **common)
            pipe = self._from_pretrained(pipe_cls, self.base_model, "base_model", controlnet=controlnet,
                                         **common, **extra)
        if self.scheduler != "default":
            name, kwargs = SCHEDULERS[self.scheduler]
            pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config, **kwargs)
        if self.options["cpu_offload"] and self.device.startswith("cuda"):
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            if self.options["cpu_offload"]:
                log.info("controlnet.cpu_offload ignored on device %s", self.device)
            pipe = pipe.to(self.device)
        if self.options["vae_slicing"]:
            pipe.vae.enable_slicing()
        pipe.set_progress_bar_config(disable=not self.options["progress"])
        denoiser = "transformer" if self.pipeline_kind == "sd3" else "unet"
        self._use_sdpa(getattr(pipe, denoiser), pipe.controlnet)
        if self.pipeline_kind == "sd3":
            _mean_control_latents(pipe)
        if self.options["compile"]:
            setattr(pipe, denoiser, torch.compile(getattr(pipe, denoiser)))
            pipe.controlnet = torch.compile(pipe.controlnet)
        return pipe

    def _use_sdpa(self, *models) -> None:
        """Keep PyTorch's fused scaled-dot-product attention (diffusers' default in torch 2).

        A pipeline saved with the classic processor (`AttnProcessor`, explicit softmax(QK^T)V) is
        switched to `AttnProcessor2_0`; nothing here ever selects a non-SDPA path.
        """
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        for model in models:
            procs = getattr(model, "attn_processors", {})
            if any(type(p) is AttnProcessor for p in procs.values()):
                model.set_attn_processor(AttnProcessor2_0())
                procs = model.attn_processors
            self._attention.update(type(p).__name__ for p in procs.values())

    # ------------------------------------------------------------------ generation
    def generation_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the model runs at for a condition of (height, width): the longer side becomes
        image_size, both rounded to a multiple of 8 (16 for sd3, whose latents are cut into 2x2 patches)."""
        step = 16 if self.pipeline_kind == "sd3" else 8
        scale = self.image_size / max(height, width)
        return (max(step, int(round(height * scale / step)) * step), max(step, int(round(width * scale / step)) * step))

    def _check_condition(self, c, i: int) -> np.ndarray:
        c = np.asarray(c)
        if c.ndim == 2:
            c = np.repeat(c[:, :, None], 3, axis=2)
        if c.ndim != 3 or c.shape[2] != 3 or c.shape[0] < 8 or c.shape[1] < 8:
            raise ValueError(f"conditions[{i}]: must be an (H, W, 3) edge map, got shape {c.shape}")
        if c.dtype != np.uint8:
            raise ValueError(f"conditions[{i}]: must be uint8, got {c.dtype}")
        return np.ascontiguousarray(c)

    def generate(self, conditions: Sequence[np.ndarray], prompts: Sequence[str], negative_prompts: Sequence[str],
                 seeds: Sequence[int]) -> list[np.ndarray]:
        """One (H, W, 3) uint8 image per condition, following its edges, prompt and seed.

        conditions: (H, W, 3) (or (H, W)) uint8 edge maps, all of one size; images come back at that
        size (generated at `generation_size` and resampled when it differs). seeds: one integer in
        [0, 2**63) per sample; the same (condition, prompt, negative prompt, seed) gives the same image
        whatever else is in the call (see the module docstring).
        """
        n = len(conditions)
        if not (len(prompts) == len(negative_prompts) == len(seeds) == n):
            raise ValueError(f"generate: {n} conditions, {len(prompts)} prompts, {len(negative_prompts)} negative "
                             f"prompts and {len(seeds)} seeds; one each per sample")
        if n == 0:
            return []
        conds = [self._check_condition(c, i) for i, c in enumerate(conditions)]
        shape = conds[0].shape[:2]
        for i, c in enumerate(conds):
            if c.shape[:2] != shape:
                raise ValueError(f"conditions[{i}]: size {c.shape[:2]} differs from conditions[0]'s {shape}")
        for i, s in enumerate(seeds):
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= int(s) < 2**63:
                raise ValueError(f"seeds[{i}]: must be an integer in [0, 2**63), got {s!r}")
        for name, texts in (("prompts", prompts), ("negative_prompts", negative_prompts)):
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise ValueError(f"{name}[{i}]: must be a string, got {type(t).__name__}")
        gen_size = self.generation_size(*shape)
        conds = [resize_condition(c, gen_size) for c in conds]
        out: list[np.ndarray] = []
        for start in range(0, n, self.batch_size):
            stop = min(n, start + self.batch_size)
            idx = list(range(start, stop))
            if self.options["pad_batches"]:
                idx += [idx[-1]] * (self.batch_size - len(idx))
            batch_seeds = [int(seeds[i]) for i in idx]
            batch_seeds[stop - start:] = [0] * (len(idx) - (stop - start))  # padding: any seed, discarded
            images = self._run([conds[i] for i in idx], [prompts[i] for i in idx],
                               [negative_prompts[i] for i in idx], batch_seeds, gen_size)
            out.extend(_resize_image(im, shape) for im in images[: stop - start])
        return out

    def regenerate(self, condition: np.ndarray, prompt: str, negative_prompt: str, seed: int) -> np.ndarray:
        """One sample again from its stored inputs (the same image `generate` made for it)."""
        return self.generate([condition], [prompt], [negative_prompt], [seed])[0]

    def _run(self, conds, prompts, negatives, seeds, size) -> list[np.ndarray]:
        torch = require("torch")
        from PIL import Image

        h, w = size
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        kwargs = dict(prompt=list(prompts), negative_prompt=list(negatives), num_inference_steps=self.steps,
                      guidance_scale=self.guidance, controlnet_conditioning_scale=self.conditioning_scale,
                      generator=generators, output_type="np", height=h, width=w)
        images = [Image.fromarray(c) for c in conds]
        if self.pipeline_kind == "sd3":
            kwargs["control_image"] = images
        else:
            kwargs.update(image=images, eta=self.eta, guess_mode=self.options["guess_mode"])
        with torch.inference_mode():
            result = self.pipe(**kwargs).images
        result = np.asarray(result, dtype=np.float32)
        if not np.all(np.isfinite(result)):
            log.warning("controlnet: non-finite pixels in a generated batch (fp16 overflow?); set to 0")
            result = np.nan_to_num(result, nan=0.0, posinf=1.0, neginf=0.0)
        # diffusers' own rounding for PIL output
        return list((np.clip(result, 0.0, 1.0) * 255).round().astype(np.uint8))


def _mean_control_latents(pipe) -> None:
    """Make the SD3 ControlNet pipeline encode control images to the VAE posterior mean.

    diffusers calls `vae.encode(control).latent_dist.sample()` without a generator, i.e. from the
    global RNG, so a sample's control latents would depend on what ran before it.
    """
    vae = pipe.vae
    encode = vae.encode

    def encode_mean(x, return_dict: bool = True):
        out = encode(x, return_dict=True)
        dist = out.latent_dist
        dist.sample = lambda generator=None: dist.mode()
        return out if return_dict else (dist,)

    vae.encode = encode_mean


# ----------------------------------------------------------------------------- a tiny random pipeline
def _tiny_clip_tokenizer(transformers, max_length: int):
    """A CLIP tokenizer over single bytes (no merges): every text tokenises, nothing is downloaded."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    # transformers 5 ignores vocab_file=/merges_file= here: the vocabulary itself must be passed.
    return transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length), len(vocab)


def _tiny_text_encoder(transformers, vocab_size: int, max_length: int, projection: bool, hidden: int = 32):
    config = transformers.CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=max_length, projection_dim=hidden,
        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
    return cls(config)


def _tiny_vae(diffusers, **kwargs):
    # four blocks: a real 8x downsampling, so an image of S px has latents of S/8 px as in SD
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
        sample_size=64, **kwargs)


def build_tiny_pipeline(folder: str | os.PathLike, pipeline: str = "sd15", seed: int = 0) -> Path:
    """Save a tiny randomly initialised ControlNet pipeline of kind `pipeline` into `folder`; return it.

    Built from configs (UNet / SD3 transformer, ControlNet, an 8x-downsampling VAE, CLIP text
    encoders over a byte vocabulary, the model's usual scheduler) with save_pretrained, so it loads
    with from_pretrained by path like a real model: `{model: <folder>, pipeline: <kind>}`. A 64x64
    image takes a fraction of a second per step batch on a CPU. Its images are noise-like by design.
    """
    if pipeline not in PIPELINE_DEFAULTS:
        raise ValueError(f"pipeline must be one of {sorted(PIPELINE_DEFAULTS)}, got {pipeline!r}")
    diffusers = require("diffusers")
    transformers = require("transformers")
    torch = require("torch")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    max_length = 77
    tokenizer, vocab_size = _tiny_clip_tokenizer(transformers, max_length)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if pipeline == "sd15":
            unet_kw = dict(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
                           down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), attention_head_dim=8,
                           norm_num_groups=16)
            unet = diffusers.UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), **unet_kw)
            controlnet = diffusers.ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 8, 16, 16),
                                                   **unet_kw)
            scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                clip_sample=False, set_alpha_to_one=False, steps_offset=1)
            pipe = diffusers.StableDiffusionControlNetPipeline(
                vae=_tiny_vae(diffusers), text_encoder=_tiny_text_encoder(transformers, vocab_size, max_length, False),
                tokenizer=tokenizer, unet=unet, controlnet=controlnet, scheduler=scheduler, safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)
        elif pipeline == "sdxl":
            # SDXL concatenates both encoders' hidden states (32 + 32) and adds the pooled projection (32)
            # plus six size/crop numbers (6 x 8) as the "text_time" embedding: 32 + 48 = 80.
            unet_kw = dict(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=64,
                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), attention_head_dim=(2, 4),
                           use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                           transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
                           norm_num_groups=16)
            unet = diffusers.UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **unet_kw)
            controlnet = diffusers.ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 8, 16, 16),
                                                   **unet_kw)
            scheduler = diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                                         beta_schedule="scaled_linear", steps_offset=1,
                                                         timestep_spacing="leading")
            tokenizer_2, _ = _tiny_clip_tokenizer(transformers, max_length)
            pipe = diffusers.StableDiffusionXLControlNetPipeline(
                vae=_tiny_vae(diffusers), text_encoder=_tiny_text_encoder(transformers, vocab_size, max_length, False),
                text_encoder_2=_tiny_text_encoder(transformers, vocab_size, max_length, True), tokenizer=tokenizer,
                tokenizer_2=tokenizer_2, unet=unet, controlnet=controlnet, scheduler=scheduler,
                force_zeros_for_empty_prompt=True, add_watermarker=False)
        else:
            # SD3 without its T5 encoder (diffusers fills those embeddings with zeros): joint dim = 2 x 32.
            dit_kw = dict(sample_size=8, patch_size=2, in_channels=4, attention_head_dim=8, num_attention_heads=4,
                          joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64, out_channels=4,
                          pos_embed_max_size=32)
            transformer = diffusers.SD3Transformer2DModel(num_layers=2, **dit_kw)
            controlnet = diffusers.SD3ControlNetModel(num_layers=1, **dit_kw)
            scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
            tokenizer_2, _ = _tiny_clip_tokenizer(transformers, max_length)
            pipe = diffusers.StableDiffusion3ControlNetPipeline(
                transformer=transformer, scheduler=scheduler,
                vae=_tiny_vae(diffusers, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0,
                              scaling_factor=1.0),
                text_encoder=_tiny_text_encoder(transformers, vocab_size, max_length, True), tokenizer=tokenizer,
                text_encoder_2=_tiny_text_encoder(transformers, vocab_size, max_length, True), tokenizer_2=tokenizer_2,
                text_encoder_3=None, tokenizer_3=None, controlnet=controlnet)
        # ControlNets start with zero convolutions (their output is exactly zero until trained); give the
        # zero tensors small random values so that the condition changes the tiny model's images.
        for param in pipe.controlnet.parameters():
            if not param.detach().any():
                torch.nn.init.normal_(param.data, std=0.05)
    pipe.save_pretrained(folder)
    return folder
