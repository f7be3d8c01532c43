"""nemo's EfficientNet-Lite encoder (nemo/efficientnet.py): TensorFlow's SAME padding, the block layout read
from a state dict in the `efficientnet_lite_pytorch` naming, one block against a hand-written computation, the
encoder inside FeatureNet and the baseline, and (when `make pretrained` has fetched lite2) ImageNet classes of
the photographs in ../shared/data/photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nemo.efficientnet import EfficientNetLite, _same_pad
from nemo.errors import NemoError

ROOT = Path(__file__).resolve().parents[1]
LITE2 = ROOT / "pretrained" / "efficientnet-lite2" / "efficientnet-lite2.pth"
PHOTOS = ROOT.parent / "shared" / "data" / "photos"

# (out width, repeats, kernel) per stage of a narrow lite-shaped network (EfficientNet's kernels 3 3 5 3 5 5 3)
STAGES = [(8, 1, 3), (8 + 4, 2, 3), (16, 1, 5), (20, 2, 3), (24, 1, 5), (28, 2, 5), (32, 1, 3)]


def _bn(state: dict, prefix: str, c: int, gen: torch.Generator) -> None:
    state[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(c, generator=gen)
    state[f"{prefix}.bias"] = 0.1 * torch.randn(c, generator=gen)
    state[f"{prefix}.running_mean"] = 0.1 * torch.randn(c, generator=gen)
    state[f"{prefix}.running_var"] = 1 + torch.rand(c, generator=gen)
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)


def port_state_dict(stem: int = 16, head: int = 40, classes: int = 0, seed: int = 0) -> dict:
    """A random state dict with the port's keys and a lite layout (the first stage without expansion)."""
    gen = torch.Generator().manual_seed(seed)
    s = {"_conv_stem.weight": 0.3 * torch.randn(stem, 3, 3, 3, generator=gen)}
    _bn(s, "_bn0", stem, gen)
    cin, i = stem, 0
    for stage, (cout, repeats, k) in enumerate(STAGES):
        for _ in range(repeats):
            mid = cin if stage == 0 else 6 * cin
            if mid != cin:
                s[f"_blocks.{i}._expand_conv.weight"] = 0.3 * torch.randn(mid, cin, 1, 1, generator=gen)
                _bn(s, f"_blocks.{i}._bn0", mid, gen)
            s[f"_blocks.{i}._depthwise_conv.weight"] = 0.3 * torch.randn(mid, 1, k, k, generator=gen)
            _bn(s, f"_blocks.{i}._bn1", mid, gen)
            s[f"_blocks.{i}._project_conv.weight"] = 0.3 * torch.randn(cout, mid, 1, 1, generator=gen)
            _bn(s, f"_blocks.{i}._bn2", cout, gen)
            cin, i = cout, i + 1
    s["_conv_head.weight"] = 0.3 * torch.randn(head, cin, 1, 1, generator=gen)
    _bn(s, "_bn1", head, gen)
    if classes:
        s["_fc.weight"], s["_fc.bias"] = torch.randn(classes, head, generator=gen), torch.zeros(classes)
    return s


def test_same_padding_is_tensorflows():
    x = torch.zeros(1, 1, 128, 127)
    # stride 2 on an even side: one extra row at the bottom (k 3) / 1 top + 2 bottom (k 5); stride 1: symmetric
    assert _same_pad(x, 3, 2).shape[-2:] == (129, 129)   # 127 wide: (64 - 1)·2 + 3 - 127 = 2, one each side
    padded = _same_pad(torch.ones(1, 1, 4, 4), 3, 2)
    assert padded.shape[-2:] == (5, 5) and padded[0, 0, :4, :4].sum() == 16 and padded[0, 0, 4].sum() == 0
    padded = _same_pad(torch.ones(1, 1, 4, 4), 5, 2)
    assert padded.shape[-2:] == (7, 7) and padded[0, 0, 1:5, 1:5].sum() == 16 and padded[0, 0, 0].sum() == 0
    padded = _same_pad(torch.ones(1, 1, 4, 4), 3, 1)
    assert padded.shape[-2:] == (6, 6) and padded[0, 0, 1:5, 1:5].sum() == 16
    # output sizes ceil(size / stride), as TensorFlow's SAME convolution gives
    for size in (63, 64, 65):
        y = F.conv2d(_same_pad(torch.zeros(1, 1, size, size), 5, 2), torch.zeros(1, 1, 5, 5), stride=2)
        assert y.shape[-1] == -(-size // 2)


def test_the_layout_comes_from_the_state_dict_and_every_weight_is_used():
    state = port_state_dict(classes=7)
    net = EfficientNetLite.from_state_dict(state, classifier=True).eval()
    # stage strides 1 2 2 2 1 2 1 after the stride-2 stem: taps at the last stride-8 and stride-16 blocks
    assert net.taps == [3, 6] and net.channels == [16, 24, 40]
    maps = net.features(torch.rand(2, 3, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 8, 12), (2, 24, 4, 6), (2, 40, 2, 3)]
    assert net.logits(torch.rand(1, 3, 64, 64)).shape == (1, 7)
    # every tensor of the port (bar the batch counters) went somewhere, unchanged
    loaded = net.state_dict()
    assert sum(not k.endswith("num_batches_tracked") for k in loaded) == sum(
        not k.endswith("num_batches_tracked") for k in state)
    assert torch.equal(loaded["blocks.2.depthwise.conv.weight"], state["_blocks.2._depthwise_conv.weight"])
    assert torch.equal(loaded["head.bn.running_var"], state["_bn1.running_var"])
    assert EfficientNetLite.from_state_dict(state).fc is None
    with pytest.raises(NemoError, match="built without the classifier"):
        EfficientNetLite.from_state_dict(state).logits(torch.rand(1, 3, 64, 64))


def test_a_block_computes_what_the_architecture_says():
    state = port_state_dict()
    net = EfficientNetLite.from_state_dict(state).eval()
    x = torch.randn(1, 12, 9, 9)

    def bn(y, p):
        return (y - state[f"{p}.running_mean"].view(1, -1, 1, 1)) / torch.sqrt(
            state[f"{p}.running_var"].view(1, -1, 1, 1) + 1e-3) * state[f"{p}.weight"].view(1, -1, 1, 1) \
            + state[f"{p}.bias"].view(1, -1, 1, 1)

    # block 2: 12 -> 72 -> 12, kernel 3, stride 1: expand, ReLU6, depthwise (pad 1 all round), ReLU6,
    # project (no activation), plus the input
    y = bn(F.conv2d(x, state["_blocks.2._expand_conv.weight"]), "_blocks.2._bn0").clamp(0, 6)
    y = bn(F.conv2d(y, state["_blocks.2._depthwise_conv.weight"], padding=1, groups=72), "_blocks.2._bn1").clamp(0, 6)
    y = bn(F.conv2d(y, state["_blocks.2._project_conv.weight"]), "_blocks.2._bn2") + x
    with torch.no_grad():
        assert torch.allclose(net.blocks[2](x), y, atol=1e-5)
    # block 1 starts stage 2: stride 2, no skip, the odd pixel padded at the bottom and right
    x = torch.randn(1, 8, 8, 8)
    y = bn(F.conv2d(x, state["_blocks.1._expand_conv.weight"]), "_blocks.1._bn0").clamp(0, 6)
    y = F.conv2d(F.pad(y, [0, 1, 0, 1]), state["_blocks.1._depthwise_conv.weight"], stride=2, groups=48)
    y = bn(F.conv2d(bn(y, "_blocks.1._bn1").clamp(0, 6), state["_blocks.1._project_conv.weight"]), "_blocks.1._bn2")
    with torch.no_grad():
        assert torch.allclose(net.blocks[1](x), y, atol=1e-5)
    # the input: [0, 1] -> (x·255 − 127) / 128 before the stem
    seen = {}
    net.stem.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    images = torch.rand(1, 3, 32, 32)
    net.features(images)
    assert torch.allclose(seen["x"], (images * 255 - 127) / 128, atol=1e-6)


def test_state_dicts_of_another_layout_are_refused():
    state = port_state_dict()
    with pytest.raises(NemoError, match="6 stages, not 7"):
        EfficientNetLite.from_state_dict({k: v for k, v in state.items() if not k.startswith("_blocks.9.")})
    with pytest.raises(NemoError, match="no '_conv_head.weight'"):
        EfficientNetLite.from_state_dict({k: v for k, v in state.items() if not k.startswith("_conv_head")})
    with pytest.raises(NemoError, match="'_blocks.1._se_reduce.weight' that no lite block has"):
        EfficientNetLite.from_state_dict({**state, "_blocks.1._se_reduce.weight": torch.zeros(2, 48, 1, 1)})
    with pytest.raises(NemoError, match="size mismatch"):   # a tensor of another shape than its neighbours'
        EfficientNetLite.from_state_dict({**state, "_blocks.2._bn1.weight": torch.ones(5)})
    with pytest.raises(NemoError, match="not an efficientnet_lite_pytorch checkpoint"):
        EfficientNetLite.from_state_dict({**state, "_blocks.0._project_conv.weight": 3})


def test_an_efficientnet_is_nemos_and_the_baselines_encoder(tmp_path):
    from nemo.backbone import BackboneConfig, FeatureNet
    from nemo.baseline import BaselineNet

    torch.save(port_state_dict(), tmp_path / "lite.pth")
    cfg = BackboneConfig(kind="efficientnet", model=str(tmp_path / "lite.pth"), decoder_width=8, feature_dim=5)
    net = FeatureNet(cfg).eval()
    assert net.encoder.channels == [16, 24, 40]
    images = torch.rand(2, 3, 64, 96)
    features = net(images)
    assert features.shape == (2, 5, 8, 12) and torch.allclose(features.norm(dim=1), torch.ones(2, 8, 12))
    # the network sees the [0, 1] image again (FeatureNet's ImageNet normalisation undone)
    seen = {}
    net.encoder.net.stem.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    net(images)
    assert torch.allclose(seen["x"], (images * 255 - 127) / 128, atol=1e-4)
    again = FeatureNet(cfg).eval()
    with torch.no_grad():
        next(net.encoder.parameters()).add_(0.1)
    assert not torch.equal(again(images), net(images))
    again.load_state_dict(net.state_dict())
    assert torch.equal(again(images), net(images))
    angles, categories = BaselineNet(cfg, 2)(images)
    assert angles.shape[:2] == (2, 3) and categories.shape == (2, 2)
    with pytest.raises(NemoError, match="'backbone.model' is needed with backbone.kind efficientnet"):
        BackboneConfig(kind="efficientnet")
    with pytest.raises(NemoError, match="backbone.model: .*missing.pth is not a file"):
        FeatureNet(BackboneConfig(kind="efficientnet", model=str(tmp_path / "missing.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(NemoError, match="junk.pth: not a PyTorch state dict"):
        FeatureNet(BackboneConfig(kind="efficientnet", model=str(tmp_path / "junk.pth")))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")   # another network's weights
    with pytest.raises(NemoError, match=r"backbone.model: .*other.pth: .*0 stages, not 7"):
        FeatureNet(BackboneConfig(kind="efficientnet", model=str(tmp_path / "other.pth")))


@pytest.mark.skipif(not LITE2.is_file() or not PHOTOS.is_dir(), reason="make pretrained has not fetched lite2")
def test_the_pretrained_lite2_knows_an_airliner_and_a_car():
    from PIL import Image

    net = EfficientNetLite.from_state_dict(torch.load(LITE2, map_location="cpu", weights_only=True),
                                           classifier=True).eval()

    def top5(path, box=None):
        image = Image.open(path).convert("RGB")
        image = (image.crop(box) if box else image).resize((260, 260), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            return net.logits(x)[0].topk(5).indices.tolist()

    assert top5(PHOTOS / "aeroplane_image.jpg")[0] == 404          # ImageNet's "airliner"
    # the parked car of the VOC photograph: estate car, minivan, car wheel, sports car, convertible, ...
    cars = {407, 436, 468, 479, 511, 609, 627, 656, 717, 751, 817}
    assert len(set(top5(PHOTOS / "voc2008_000531_car.jpg", (230, 110, 480, 260))) & cars) >= 3
