"""nemo.FeatureNet: shapes and unit features at stride 8, the head's bias used at test time, weights
from a local transformers folder, feature-map intrinsics, input errors."""

import pytest
import torch

import geom3d
import nemo
from nemo.backbone import build_encoder
from nemo.model import feature_intrinsics

SMALL = nemo.BackboneConfig(depths=(1, 1, 1, 1), hidden_sizes=(8, 16, 32, 32), embedding_size=8, decoder_width=16,
                            feature_dim=12)


def test_stride_eight_unit_features_and_bias_kept():
    torch.manual_seed(0)
    net = nemo.FeatureNet(SMALL).eval()
    x = torch.rand(2, 3, 64, 96)
    y = net(x)
    assert y.shape == (2, 12, 8, 12)
    assert torch.allclose(y.norm(dim=1), torch.ones(2, 8, 12), atol=1e-5)
    with torch.no_grad():  # the head's bias takes part at test time (the original dropped it)
        before = net.decode(x)
        net.head.bias.add_(1.0)
        assert torch.allclose(net.decode(x), before + 1.0, atol=1e-5)
    with pytest.raises(nemo.NemoError, match="multiples of 32"):
        net(torch.rand(1, 3, 60, 64))


def test_weights_from_a_local_folder(tmp_path):
    torch.manual_seed(1)
    encoder = build_encoder(SMALL)
    encoder.save_pretrained(tmp_path / "resnet")
    loaded = build_encoder(nemo.BackboneConfig(model=str(tmp_path / "resnet")))
    for (k, a), (_, b) in zip(encoder.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(nemo.NemoError, match="cannot load"):
        build_encoder(nemo.BackboneConfig(model=str(tmp_path / "missing")))


def test_feature_intrinsics_equal_camera_resize():
    cams = geom3d.viewpoint_to_cameras(0.3, 0.2, 0.1, 5.0, focal=1.0, viewport=300.0, principal=(30.0, 20.0),
                                       image_size=(64, 96))
    assert torch.allclose(feature_intrinsics(cams.K, 8), cams.resize((8, 12)).K)


def test_dinov2_option_gives_the_same_layout():
    torch.manual_seed(0)
    cfg = nemo.BackboneConfig(kind="dinov2", dinov2_hidden_size=16, dinov2_layers=1, dinov2_heads=2, decoder_width=8,
                              feature_dim=12)
    net = nemo.FeatureNet(cfg).eval()
    y = net(torch.rand(2, 3, 64, 96))
    assert y.shape == (2, 12, 8, 12)
    assert torch.allclose(y.norm(dim=1), torch.ones(2, 8, 12), atol=1e-5)
    with pytest.raises(nemo.NemoError, match="kind"):
        nemo.BackboneConfig(kind="vit")
