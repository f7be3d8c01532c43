"""Novel-view synthesis: an object image + relative camera poses -> images of the object from there.

A relative pose is (Δpolar, Δazimuth, Δradius): the camera moves on a sphere around the object
centre, the polar angle measured from the object's up axis (so Δpolar = −Δelevation: a positive
Δpolar lowers the camera), the azimuth about the up axis in the PASCAL3D+ sense (the camera centre
turns counter-clockwise seen from above, as Zero-1-to-3's atan2(y, x)), the radius in object units.
Angles in radians. `relative_pose_from_elevation` converts from Δelevation.

Three synthesizers share `NovelViewSynthesizer.synthesize(source, relative_poses, seed)`:
- `Zero123Synthesizer`: Zero-1-to-3 (Liu et al. 2023) assembled from diffusers parts. The CLIP
  image embedding (768) concatenated with [Δpolar, sin Δazimuth, cos Δazimuth, Δradius] and
  projected back to 768 by a linear layer is the cross-attention context; the source image's VAE
  latent (the posterior mode, unscaled, as the released checkpoints were trained) is concatenated to
  the noisy latent (8 UNet input channels); classifier-free guidance zeroes both conditions; 256².
  Loads both diffusers layouts by id or folder: kxic/zero123-xl (`cc_projection`) and
  bennyguo/ashawkey zero123-xl-diffusers (`clip_camera_projection`). `build_tiny_zero123` saves a
  tiny random model in either layout for tests.
- `RenderSynthesizer`: exact relative views of the source's mesh through `geom3d.render_gl`.
- `DegradedRenderSynthesizer`: the same with the generator's typical faults: the rendered pose is
  off the requested one by Gaussian jitter of σ, texture noise, smooth shape deformation, blur.
  Its faults are independent per view.
- `CorrelatedFailureSynthesizer`: the degraded one plus correlated failures, as a real generator
  makes them: front/back ("Janus") flips of a whole set or of single views at a rate p, an
  elevation bias shared by every view, and an appearance that drifts across a set's views.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aware3d_utils import require

from .controlnet import ModelLoadError, _tiny_vae
from .hub import pretrained_kwargs

__all__ = [
    "NovelViewSynthesizer", "SourceView", "Zero123Synthesizer", "RenderSynthesizer", "DegradedRenderSynthesizer",
    "CorrelatedFailureSynthesizer", "FLIP_MODES",
    "build_tiny_zero123", "relative_pose_from_elevation", "as_relative_poses", "target_viewpoint",
    "PROJECTION_LAYOUTS", "make_synthesizer", "APPEARANCES", "source_textured_mesh", "mirror_axis",
]

# what the render synthesizers draw on the surface: the source image carried over (as a generator
# does) or the mesh's own colours (grey for an untextured CAD model)
APPEARANCES = ("source", "mesh")

# layout name -> (projection subfolder, the Linear's name inside it, model_index class names)
PROJECTION_LAYOUTS = {
    "cc_projection": ("cc_projection", "projection", ("Zero1to3StableDiffusionPipeline", "pipeline_zero1to3",
                                                      "CCProjection")),
    "clip_camera_projection": ("clip_camera_projection", "proj", ("Zero123Pipeline", "zero123",
                                                                  "CLIPCameraProjection")),
}


def relative_pose_from_elevation(d_elevation, d_azimuth, d_radius=0.0) -> np.ndarray:
    """(N, 3) relative poses (Δpolar, Δazimuth, Δradius) from elevation changes (from the horizon, radians):
    the polar angle is measured from the up axis, so Δpolar = −Δelevation."""
    e, a, r = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in
                                    (d_elevation, d_azimuth, d_radius)))
    return np.stack([-e, a, r], axis=-1)


def as_relative_poses(relative_poses) -> np.ndarray:
    """(N, 3) float64 (Δpolar, Δazimuth, Δradius) from a (3,) or (N, 3) array-like; ValueError otherwise."""
    poses = np.asarray(relative_poses, dtype=np.float64)
    if poses.ndim == 1:
        poses = poses[None]
    if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) == 0:
        raise ValueError(f"relative poses must have shape (N, 3) = (Δpolar, Δazimuth, Δradius), got {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise ValueError("relative poses contain NaN or infinite values")
    return poses


@dataclass(frozen=True)
class SourceView:
    """The source of a generated set: image (H, W, 3) uint8, and for the render synthesizers the object's
    mesh (`geom3d.Mesh`, in its object frame) and the source camera's viewpoint (a mapping with azimuth,
    elevation, theta, distance, focal, viewport, px, py, as `data3d.Viewpoint`). `name` names it in errors."""

    image: np.ndarray
    mesh: object | None = None
    viewpoint: Mapping | None = None
    name: str = "source image"

    def checked_image(self) -> np.ndarray:
        img = np.asarray(self.image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 8:
            raise ValueError(f"{self.name}: the image must be (H, W, 3) uint8 of at least 8x8 pixels, "
                             f"got {img.shape} {img.dtype}")
        return img


def target_viewpoint(viewpoint: Mapping, relative_pose) -> dict:
    """The viewpoint (same keys) of the camera moved by one relative pose (Δpolar, Δazimuth, Δradius):
    azimuth + Δazimuth, elevation − Δpolar, distance + Δradius; θ, focal and principal point kept."""
    dp, da, dr = (float(x) for x in np.asarray(relative_pose, dtype=np.float64).reshape(3))
    out = {k: float(viewpoint[k]) for k in ("azimuth", "elevation", "theta", "distance", "focal", "viewport",
                                            "px", "py")}
    out["azimuth"] = (out["azimuth"] + da) % (2 * math.pi)
    out["elevation"] = out["elevation"] - dp
    out["distance"] = out["distance"] + dr
    if out["distance"] <= 0:
        raise ValueError(f"relative pose {relative_pose}: the camera distance {out['distance']:.3g} is not positive")
    return out


class NovelViewSynthesizer(ABC):
    """An object image + relative poses -> one (H, W, 3) uint8 image per pose (see the module docstring)."""

    name: str = "synthesizer"

    @abstractmethod
    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        """Images of the source's object seen from `relative_poses` ((N, 3) Δpolar, Δazimuth, Δradius);
        the same seed gives the same images."""

    def describe(self) -> dict:
        """JSON-serialisable settings, for manifests."""
        return {"synthesizer": self.name}


# ----------------------------------------------------------------------------- Zero-1-to-3
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
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    encoder.save_pretrained(folder / "image_encoder")
    processor.save_pretrained(folder / "feature_extractor")
    scheduler.save_pretrained(folder / "scheduler")
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


# ----------------------------------------------------------------------------- render synthesizers
class RenderSynthesizer(NovelViewSynthesizer):
    """Exact relative views: the source's mesh rendered at `target_viewpoint` of each relative pose
    (same image size, focal and principal point as the source) on a uniform background."""

    name = "render"

    def __init__(self, background=(1.0, 1.0, 1.0), backend: str | None = None, appearance: str = "source"):
        if appearance not in APPEARANCES:
            raise ValueError(f"render synthesizer: appearance must be one of {APPEARANCES}, got {appearance!r}")
        self.background = tuple(float(c) for c in background)
        self.backend = backend
        self.appearance = appearance
        self._textured_key, self._textured = None, None

    def describe(self) -> dict:
        return {"synthesizer": self.name, "appearance": self.appearance, "background": list(self.background)}

    def _checked(self, source: SourceView):
        image = source.checked_image()
        if source.mesh is None or source.viewpoint is None:
            raise ValueError(f"{source.name}: the {self.name} synthesizer needs the object's mesh and the source "
                             "viewpoint (a datagen record with its CAD model)")
        return image

    def cameras(self, viewpoints: Sequence[Mapping], image_size: tuple[int, int]):
        """`geom3d.Cameras` (len(viewpoints),) of viewpoint mappings (data3d.Viewpoint keys)."""
        import geom3d
        torch = require("torch")

        def col(key):
            return torch.tensor([float(v[key]) for v in viewpoints], dtype=torch.float32)

        return geom3d.viewpoint_to_cameras(col("azimuth"), col("elevation"), col("theta"), col("distance"),
                                           focal=col("focal"), viewport=col("viewport"),
                                           principal=torch.stack([col("px"), col("py")], -1), image_size=image_size)

    def render(self, mesh, viewpoints: Sequence[Mapping], image_size: tuple[int, int]) -> list[np.ndarray]:
        """(H, W, 3) uint8 renders of `mesh` at `viewpoints`. A textured mesh (`source_textured_mesh`) is
        drawn unlit: the source's shading is in its texture, so the source viewpoint gives the source back."""
        import geom3d
        torch = require("torch")
        lit = {} if mesh.texture is None else {"ambient": 1.0, "light_intensities": 0.0}
        out = geom3d.render_gl(mesh, self.cameras(viewpoints, image_size), outputs=("rgb",), backend=self.backend,
                               background=self.background, **lit)
        rgb = out.rgb if out.rgb.shape[-1] == 3 else out.rgb.movedim(-3, -1)
        return list((rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())

    def source_mesh(self, source: SourceView):
        """The mesh to render: the source's own (appearance "mesh"), or the same surface textured with
        the source image (appearance "source", `source_textured_mesh`), cached per source."""
        if self.appearance == "mesh":
            return source.mesh
        # the key holds the mesh and image themselves: ids alone could be reused by later sources
        key = (source.mesh, source.image, source.name)
        cached = self._textured_key
        if cached is None or cached[0] is not key[0] or cached[1] is not key[1] or cached[2] != key[2]:
            image = source.checked_image()
            self._textured = source_textured_mesh(source.mesh, image, self.cameras([source.viewpoint], image.shape[:2]),
                                                  backend=self.backend)
            self._textured_key = key
        return self._textured

    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        image = self._checked(source)
        views = [target_viewpoint(source.viewpoint, p) for p in as_relative_poses(relative_poses)]
        return self.render(self.source_mesh(source), views, image.shape[:2])


def mirror_axis(vertices, tolerance: float = 0.02) -> int | None:
    """The object-frame axis (0, 1, 2) across whose plane through the origin the vertices are most
    symmetric, if the mean distance from a mirrored vertex to its nearest vertex is below
    `tolerance` × the bounding-box diagonal (CAD models of a category are left-right symmetric);
    else None."""
    from scipy.spatial import cKDTree
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) > 4000:  # the mean over a fixed subset: enough to tell a symmetry plane
        v = v[np.random.default_rng(0).choice(len(v), 4000, replace=False)]
    diagonal = float(np.linalg.norm(v.max(0) - v.min(0))) or 1.0
    tree = cKDTree(v)
    errors = []
    for axis in range(3):
        m = v.copy()
        m[:, axis] *= -1
        errors.append(float(tree.query(m)[0].mean()) / diagonal)
    best = int(np.argmin(errors))
    return best if errors[best] < tolerance else None


def _reflections(symmetry_axis: int | None) -> list[tuple[int, ...]]:
    """The object-frame axes to negate, in order, to find a seen stand-in for an unseen face: the
    symmetry plane's mirror first (exact for a symmetric object), then the other vertical planes' mirror
    and the half turn about the up axis (z), which carry the texture of the seen side to the hidden one
    as a generator paints it. A flat colour there marks the side away from the source in every set,
    a cue that measured front/back flips of whole sets in the merge (docs/pose.md)."""
    out = [] if symmetry_axis is None else [(symmetry_axis,)]
    for flips in ((0,), (1,), (0, 1)):
        if flips not in out:
            out.append(flips)
    return out


def _grow_colours(image: np.ndarray, mask: np.ndarray, rings: int = 3) -> np.ndarray:
    """The image with the object's colours grown `rings` pixels into the background, so that texture
    filtering at the silhouette does not blend in the background."""
    out, have = image.astype(np.float32), mask.astype(np.float32)
    for _ in range(rings):
        total = cv2.blur(out * have[..., None], (3, 3))
        count = cv2.blur(have, (3, 3))
        grow = (have == 0) & (count > 0)
        out[grow] = total[grow] / count[grow, None]
        have = np.maximum(have, grow.astype(np.float32))
    return out.round().clip(0, 255).astype(np.uint8)


def source_textured_mesh(mesh, image: np.ndarray, camera, backend: str | None = None):
    """The mesh textured with the source image seen from `camera` (a one-camera `geom3d.Cameras`), as a
    novel-view generator carries the source's appearance to the other views.

    Every face gets its own UVs (its vertices are unshared): a face the source sees takes the image
    where it projects; an unseen face takes the image where its mirror image across the object's
    symmetry plane (`mirror_axis`) projects, if the source sees that, else where the first of its
    other reflections (`_reflections`) lands on the object in the source; any other face takes the
    mean colour of the object's pixels (a strip appended below the image). A face counts as seen where
    three of four points on it project onto pixels whose source depth is theirs."""
    import geom3d
    torch = require("torch")
    h, w = image.shape[:2]
    faces = mesh.faces
    tri = mesh.vertices[faces]                                       # (F, 3, 3)
    drawn = geom3d.render_gl(mesh, camera, outputs=("depth", "mask"), backend=backend)
    depth, covered = drawn.depth.reshape(h, w), drawn.mask.reshape(h, w)
    size = float((mesh.vertices.max(0).values - mesh.vertices.min(0).values).norm())

    def shown(points_tri, exact=True):  # (F, 3, 3) -> (F,): does the source show these triangles' surface?
        # four points per triangle (its centroid and the midpoints towards its corners) are visible where
        # the source's depth at their pixel is theirs (not exact: where the object covers their pixel);
        # a triangle is shown when three of them are
        centre = points_tri.mean(1, keepdim=True)
        samples = torch.cat([centre, (2 * centre + points_tri) / 3], 1).reshape(-1, 3)
        px, z = camera.project(samples, return_depth=True)
        px, z = px[0].round().long(), z[0]
        inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h) & (z > 0)
        visible = torch.zeros(len(samples), dtype=torch.bool)
        at = px[inside]
        on_object = covered[at[:, 1], at[:, 0]]
        at_depth = (depth[at[:, 1], at[:, 0]] - z[inside]).abs() < 0.02 * size
        visible[inside] = on_object & at_depth if exact else on_object
        return visible.reshape(-1, 4).sum(1) >= 3

    uv_face = camera.project(tri.reshape(-1, 3))[0].reshape(-1, 3, 2)  # (F, 3, 2) pixels
    painted = shown(tri)
    axis = mirror_axis(mesh.vertices.detach().cpu().numpy())
    for flips in _reflections(axis):
        if bool(painted.all()):
            break
        reflected = tri.clone()
        reflected[..., list(flips)] *= -1
        # the symmetry plane maps the surface onto itself, the other reflections only roughly: for them
        # it is enough that the source shows the object where the reflection lands
        use = ~painted & shown(reflected, exact=flips == (axis,))
        pixels = camera.project(reflected.reshape(-1, 3))[0].reshape(-1, 3, 2)
        uv_face = torch.where(use[:, None, None], pixels, uv_face)
        painted |= use
    strip = 4
    mask = covered.cpu().numpy()
    object_pixels = image[mask]
    mean = object_pixels.mean(0) if len(object_pixels) else np.full(3, 178.0)
    fill = np.broadcast_to(mean.round().astype(np.uint8), (strip, w, 3))
    texture = np.concatenate([_grow_colours(image, mask), fill])
    fallback = torch.tensor([w / 2 - 0.5, h + strip / 2 - 0.5], dtype=uv_face.dtype)
    uv_face = torch.where(painted[:, None, None], uv_face, fallback)
    # integer pixel centres -> GL texture coordinates (v up), in the texture with the strip
    th = h + strip
    uv = torch.stack([(uv_face[..., 0] + 0.5) / w, 1.0 - (uv_face[..., 1] + 0.5) / th], -1).reshape(-1, 2)
    vertices = tri.reshape(-1, 3)
    return geom3d.Mesh(vertices, torch.arange(len(vertices)).reshape(-1, 3), uvs=uv,
                       texture=np.ascontiguousarray(texture), source=mesh.source)


class DegradedRenderSynthesizer(RenderSynthesizer):
    """The render synthesizer with a generator's faults, seeded per view:
    pose_sigma: std (radians) of Gaussian jitter added to Δpolar, Δazimuth and the in-plane angle of
    the rendered camera (the caller still believes the requested pose); texture: std of per-vertex
    colour noise (and of one colour shift per view); shape: amplitude of a smooth random vertex
    displacement, as a fraction of the object's bounding radius; blur: Gaussian blur σ in pixels."""

    name = "degraded"

    def __init__(self, pose_sigma: float = math.radians(10.0), texture: float = 0.08, shape: float = 0.04,
                 blur: float = 0.8, background=(1.0, 1.0, 1.0), backend: str | None = None,
                 appearance: str = "source"):
        super().__init__(background, backend, appearance)
        for key, value in (("pose_sigma", pose_sigma), ("texture", texture), ("shape", shape), ("blur", blur)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"degraded synthesizer: {key} must be a number ≥ 0, got {value!r}")
        self.pose_sigma, self.texture = float(pose_sigma), float(texture)
        self.shape, self.blur = float(shape), float(blur)

    def describe(self) -> dict:
        return {"synthesizer": self.name, "pose_sigma_deg": math.degrees(self.pose_sigma), "texture": self.texture,
                "shape": self.shape, "blur": self.blur, "appearance": self.appearance,
                "background": list(self.background)}

    def _damaged_mesh(self, mesh, rng: np.random.Generator):
        import geom3d
        torch = require("torch")
        v = mesh.vertices
        if self.shape > 0:  # a smooth field: a few random sinusoids over the object's extent
            radius = float(v.norm(dim=-1).max())
            k = torch.as_tensor(rng.normal(0, 2.0 / max(radius, 1e-6), (3, 3)), dtype=v.dtype)
            phase = torch.as_tensor(rng.uniform(0, 2 * math.pi, 3), dtype=v.dtype)
            v = v + self.shape * radius * torch.sin(v @ k + phase)
        if mesh.texture is not None:  # colour shift and smooth colour noise over the texture
            texture = mesh.texture.numpy().astype(np.float32) / 255.0
            if self.texture > 0:
                th, tw = texture.shape[:2]
                coarse = rng.normal(0, self.texture, (max(th // 8, 1), max(tw // 8, 1), 3)).astype(np.float32)
                noise = cv2.resize(coarse, (tw, th), interpolation=cv2.INTER_LINEAR)
                texture = texture + rng.normal(0, self.texture, 3).astype(np.float32) + noise
            texture = (np.clip(texture, 0, 1) * 255).round().astype(np.uint8)
            return geom3d.Mesh(v, mesh.faces, uvs=mesh.uvs, texture=texture)
        colors = mesh.vertex_colors if mesh.vertex_colors is not None else torch.full_like(v, 0.7)
        if self.texture > 0:
            shift = torch.as_tensor(rng.normal(0, self.texture, 3), dtype=v.dtype)
            noise = torch.as_tensor(rng.normal(0, self.texture, tuple(colors.shape)), dtype=v.dtype)
            colors = (colors + shift + noise).clamp(0, 1)
        # a CAD model's UV texture is dropped for the per-vertex damage: the damaged colours stand in for it
        return geom3d.Mesh(v, mesh.faces, vertex_colors=colors)

    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        image = self._checked(source)
        out = []
        for i, pose in enumerate(as_relative_poses(relative_poses)):
            rng = np.random.default_rng([int(seed), i])
            jitter = rng.normal(0.0, self.pose_sigma, 3) if self.pose_sigma > 0 else np.zeros(3)
            view = target_viewpoint(source.viewpoint, pose + np.array([jitter[0], jitter[1], 0.0]))
            view["theta"] += float(jitter[2])
            rendered = self.render(self._damaged_mesh(self.source_mesh(source), rng), [view], image.shape[:2])[0]
            if self.blur > 0:
                rendered = cv2.GaussianBlur(rendered, (0, 0), self.blur)
            out.append(rendered)
        return out


FLIP_MODES = ("set", "view")


class CorrelatedFailureSynthesizer(DegradedRenderSynthesizer):
    """The degraded synthesizer plus the failures of a real generator that are correlated, not
    independent jitter (Zero-1-to-3's known faults): everything the caller believes is the requested
    relative pose; what is drawn differs by
    flip_rate / flip_mode: a front/back ("Janus") flip, the object drawn from the opposite side
        (azimuth + π), with probability `flip_rate` for the whole set at once ("set": every view of
        one `synthesize` call flips or none does) or for each view on its own ("view");
    elevation_bias: radians added to every drawn view's elevation (a generator that systematically
        looks from higher or lower than asked);
    appearance_drift: std of a colour random walk over the views of a set: view k's colours are
        shifted by the sum of k Gaussian steps, so the texture changes more the further a view is
        from the source in the generation order.
    The other damage (pose_sigma, texture, shape, blur) is the degraded synthesizer's; set them to 0
    for the correlated failures alone. `failures(n, seed)` tells which views flip and their colour
    shifts, from the same seeded draws `synthesize` uses."""

    name = "correlated"

    def __init__(self, flip_rate: float = 0.2, flip_mode: str = "set", elevation_bias: float = math.radians(5.0),
                 appearance_drift: float = 0.03, pose_sigma: float = math.radians(5.0), texture: float = 0.05,
                 shape: float = 0.02, blur: float = 0.5, background=(1.0, 1.0, 1.0), backend: str | None = None,
                 appearance: str = "source"):
        super().__init__(pose_sigma, texture, shape, blur, background, backend, appearance)
        if not (math.isfinite(flip_rate) and 0.0 <= flip_rate <= 1.0):
            raise ValueError(f"correlated synthesizer: flip_rate must be in [0, 1], got {flip_rate!r}")
        if flip_mode not in FLIP_MODES:
            raise ValueError(f"correlated synthesizer: flip_mode must be one of {FLIP_MODES}, got {flip_mode!r}")
        if not math.isfinite(elevation_bias):
            raise ValueError(f"correlated synthesizer: elevation_bias must be finite, got {elevation_bias!r}")
        if not (math.isfinite(appearance_drift) and appearance_drift >= 0):
            raise ValueError(f"correlated synthesizer: appearance_drift must be ≥ 0, got {appearance_drift!r}")
        self.flip_rate, self.flip_mode = float(flip_rate), flip_mode
        self.elevation_bias, self.appearance_drift = float(elevation_bias), float(appearance_drift)

    def describe(self) -> dict:
        return {**super().describe(), "synthesizer": self.name, "flip_rate": self.flip_rate,
                "flip_mode": self.flip_mode, "elevation_bias_deg": math.degrees(self.elevation_bias),
                "appearance_drift": self.appearance_drift}

    def failures(self, n: int, seed: int = 0) -> dict:
        """{"flipped": (n,) bool, "colour_shift": (n, 3) float}: the correlated failures of a set of n
        views generated with `seed` (one draw per set, independent of the per-view damage's draws)."""
        rng = np.random.default_rng([int(seed), 1_000_003])
        if self.flip_mode == "set":
            flipped = np.full(n, rng.random() < self.flip_rate)
        else:
            flipped = rng.random(n) < self.flip_rate
        steps = rng.normal(0.0, self.appearance_drift, (n, 3)) if self.appearance_drift > 0 else np.zeros((n, 3))
        return {"flipped": flipped, "colour_shift": np.cumsum(steps, axis=0)}

    def _shifted(self, mesh, shift: np.ndarray):
        """The mesh with its colours (vertex colours or texture) shifted by `shift` (3,) in [0, 1] units."""
        import geom3d
        torch = require("torch")
        if not np.any(shift):
            return mesh
        if mesh.texture is not None:
            texture = mesh.texture.numpy().astype(np.float32) / 255.0 + shift.astype(np.float32)
            texture = (np.clip(texture, 0, 1) * 255).round().astype(np.uint8)
            return geom3d.Mesh(mesh.vertices, mesh.faces, uvs=mesh.uvs, texture=texture)
        colors = mesh.vertex_colors if mesh.vertex_colors is not None else torch.full_like(mesh.vertices, 0.7)
        colors = (colors + torch.as_tensor(shift, dtype=colors.dtype)).clamp(0, 1)
        return geom3d.Mesh(mesh.vertices, mesh.faces, vertex_colors=colors)

    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        image = self._checked(source)
        poses = as_relative_poses(relative_poses)
        fail = self.failures(len(poses), seed)
        out = []
        for i, pose in enumerate(poses):
            rng = np.random.default_rng([int(seed), i])
            jitter = rng.normal(0.0, self.pose_sigma, 3) if self.pose_sigma > 0 else np.zeros(3)
            drawn = pose + np.array([jitter[0] - self.elevation_bias,  # Δpolar = −Δelevation
                                     jitter[1] + (math.pi if fail["flipped"][i] else 0.0), 0.0])
            view = target_viewpoint(source.viewpoint, drawn)
            view["theta"] += float(jitter[2])
            damaged = self._damaged_mesh(self.source_mesh(source), rng)
            rendered = self.render(self._shifted(damaged, fail["colour_shift"][i]), [view], image.shape[:2])[0]
            if self.blur > 0:
                rendered = cv2.GaussianBlur(rendered, (0, 0), self.blur)
            out.append(rendered)
        return out


def make_synthesizer(kind: str, *, model: str | None = None, device: str = "cpu", **options) -> NovelViewSynthesizer:
    """A synthesizer by name: "zero123" (model id or folder), "render", "degraded" or "correlated"
    (options as its class)."""
    if kind == "zero123":
        return Zero123Synthesizer(model or "kxic/zero123-xl", device=device, **options)
    if kind == "render":
        return RenderSynthesizer(**options)
    if kind == "degraded":
        return DegradedRenderSynthesizer(**options)
    if kind == "correlated":
        return CorrelatedFailureSynthesizer(**options)
    raise ValueError(f"synthesizer must be zero123, render, degraded or correlated, got {kind!r}")
