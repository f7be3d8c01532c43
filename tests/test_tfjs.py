"""nemo.tfjs: TF.js graph models run as torch modules. Tiny graphs are written here in the TF.js format
(model.json + a weight shard); expected values are worked out by hand (TF's SAME padding, which pads
the bottom / right at stride 2; the legacy bilinear resize) or by a loop in numpy, not by the module.
The pretrained backbone it serves (`backbone.kind: tfjs`) is tried on a tiny graph with strides 8-32."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)

from methodkit.trainer import Hooks, Trainer, param_groups
from nemo.errors import NemoError
from nemo.tfjs import TfjsGraph, read_weights


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(values) -> dict:
    return {"list": {"i": [str(v) for v in values]}}


def conv(name, x, w, b=None, stride=1, padding="SAME", fused=("BiasAdd",), depthwise=False):
    attr = {"strides": _ints([1, stride, stride, 1]), "padding": _s(padding), "data_format": _s("NHWC"),
            "dilations": _ints([1, 1, 1, 1])}
    if b is None:
        op = "DepthwiseConv2dNative" if depthwise else "Conv2D"
        return {"name": name, "op": op, "input": [x, w], "attr": attr}
    attr["fused_ops"] = {"list": {"s": [base64.b64encode(f.encode()).decode() for f in fused]}}
    op = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
    return {"name": name, "op": op, "input": [x, w, b], "attr": attr}


def write_graph(folder, nodes, weights, quantize=None):
    """model.json + weights.bin in `folder`; weights: {name: array}; quantize: {name: "float16" | "uint8"}."""
    quantize = quantize or {}
    manifest, blobs = [], []
    for name, a in weights.items():
        a = np.asarray(a)
        entry = {"name": name, "shape": list(a.shape), "dtype": "int32" if a.dtype.kind == "i" else "float32"}
        q = quantize.get(name)
        if q == "float16":
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(a.astype(np.float16).tobytes())
        elif q == "uint8":
            lo, scale = float(a.min()), float(a.max() - a.min()) / 255
            entry["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale}
            blobs.append(np.round((a - lo) / scale).astype(np.uint8).tobytes())
        else:
            blobs.append(a.astype(np.int32 if a.dtype.kind == "i" else np.float32).tobytes())
        manifest.append(entry)
        nodes = [{"name": name, "op": "Const", "attr": {}}] + nodes
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}}] + nodes
    (folder / "weights.bin").write_bytes(b"".join(blobs))
    spec = {"format": "graph-model", "modelTopology": {"node": nodes},
            "weightsManifest": [{"paths": ["weights.bin"], "weights": manifest}]}
    (folder / "model.json").write_text(json.dumps(spec))
    return folder / "model.json"


def _nhwc(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float()


def test_stride_2_same_padding_pads_bottom_right_as_tensorflow_does(tmp_path):
    # 4×4 input 0..15, a 3×3 kernel of ones, stride 2: TF pads 0 rows above and 1 below (and the same
    # for columns), so the four outputs sum x[0:3, 0:3], x[0:3, 2:4], x[2:4, 0:3], x[2:4, 2:4].
    path = write_graph(tmp_path, [conv("y", "x", "w", stride=2)], {"w": np.ones((3, 3, 1, 1))})
    y = TfjsGraph(path, ["y"])(torch.arange(16.0).view(1, 1, 4, 4))[0]
    assert y[0, 0].tolist() == [[45.0, 39.0], [66.0, 50.0]]


def test_convolutions_bias_activations_and_quantised_weights_match_a_numpy_loop(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)     # HWIO
    b = rng.normal(size=4).astype(np.float32)
    dw = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)    # depthwise: H, W, C, multiplier
    nodes = [conv("c1", "x", "w", "b", fused=("BiasAdd", "Relu6")),
             conv("c2", "c1", "dw", depthwise=True),
             {"name": "m", "op": "Mul", "input": ["c2", "half"], "attr": {}},
             {"name": "y", "op": "AddV2", "input": ["m", "b"], "attr": {}}]
    path = write_graph(tmp_path, nodes, {"w": w, "b": b, "dw": dw, "half": np.float32(0.5)},
                       quantize={"w": "float16", "dw": "uint8"})
    _, arrays = read_weights(path)
    assert np.allclose(arrays["w"], w, atol=2e-3) and not np.array_equal(arrays["w"], w)   # float16
    assert np.abs(arrays["dw"] - dw).max() <= (dw.max() - dw.min()) / 255 / 2 + 1e-6       # uint8 step / 2
    x = rng.normal(size=(5, 6, 2)).astype(np.float32)

    def same_conv(x, k, depthwise=False):  # stride 1, SAME: one pixel of zeros around a 3×3 kernel
        p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        out = np.zeros(x.shape[:2] + ((x.shape[2],) if depthwise else (k.shape[3],)), np.float64)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                patch = p[i:i + 3, j:j + 3]
                out[i, j] = (np.einsum("hwc,hwc->c", patch, k[..., 0]) if depthwise
                             else np.einsum("hwc,hwco->o", patch, k))
        return out

    c1 = np.clip(same_conv(x, arrays["w"]) + b, 0, 6)
    expected = same_conv(c1, arrays["dw"], depthwise=True) * 0.5 + b
    y = TfjsGraph(path, ["y"])(_nhwc(x))[0][0].detach().numpy().transpose(1, 2, 0)
    assert np.allclose(y, expected, atol=1e-4)


def test_mean_concat_maxpool_and_the_legacy_bilinear_resize(tmp_path):
    nodes = [{"name": "mean", "op": "Mean", "input": ["x", "axes"], "attr": {"keep_dims": {"b": True}}},
             {"name": "cat", "op": "ConcatV2", "input": ["x", "x", "axis"], "attr": {}},
             {"name": "pool", "op": "MaxPool", "input": ["x"],
              "attr": {"ksize": _ints([1, 3, 3, 1]), "strides": _ints([1, 1, 1, 1]), "padding": _s("SAME")}},
             {"name": "up", "op": "ResizeBilinear", "input": ["x", "size"],
              "attr": {"align_corners": {"b": False}, "half_pixel_centers": {"b": False}}}]
    path = write_graph(tmp_path, nodes, {"axes": np.array([1, 2]), "axis": np.array(3), "size": np.array([4, 4])})
    x = torch.tensor([[[[-4.0, -3.0], [-2.0, -1.0]]]])          # 1 channel, 2×2, all negative
    mean, cat, pool, up = TfjsGraph(path, ["mean", "cat", "pool", "up"])(x)
    assert mean.shape == (1, 1, 1, 1) and mean.item() == -2.5
    assert cat.shape == (1, 2, 2, 2)
    assert pool[0, 0].tolist() == [[-1.0, -1.0], [-1.0, -1.0]]   # the zero padding never wins the max
    # TF's legacy resize (no half-pixel centres): rows and columns sample at 0, 0.5, 1, 1.5 (-> 1)
    assert up[0, 0].tolist() == [[-4.0, -3.5, -3.0, -3.0], [-3.0, -2.5, -2.0, -2.0],
                                 [-2.0, -1.5, -1.0, -1.0], [-2.0, -1.5, -1.0, -1.0]]


def test_bad_graphs_are_errors_naming_the_file_and_the_node(tmp_path):
    path = write_graph(tmp_path, [{"name": "y", "op": "Softmax", "input": ["x"], "attr": {}}], {})
    with pytest.raises(NemoError, match=r"model.json: node 'y' has op 'Softmax'"):
        TfjsGraph(path, ["y"])
    with pytest.raises(NemoError, match=r"output node\(s\) \['nope'\] not in the graph"):
        TfjsGraph(path, ["nope"])
    path = write_graph(tmp_path, [conv("y", "x", "w")], {"w": np.ones((3, 3, 1, 1))})
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(NemoError, match="truncated"):
        TfjsGraph(path, ["y"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(NemoError, match="bad.json: not a TF.js graph model"):
        TfjsGraph(tmp_path / "bad.json", ["y"])


def strided_backbone(folder, widths=(4, 6, 8, 10, 12)):
    """Five stride-2 convolutions (strides 2 .. 32) with Relu, the last three the stages."""
    rng = np.random.default_rng(1)
    nodes, weights, prev, cin = [], {}, "x", 3
    for i, c in enumerate(widths):
        weights[f"w{i}"] = rng.normal(scale=0.3, size=(3, 3, cin, c)).astype(np.float32)
        weights[f"b{i}"] = np.zeros(c, np.float32)
        nodes.append(conv(f"s{i}", prev, f"w{i}", f"b{i}", stride=2, fused=("BiasAdd", "Relu")))
        prev, cin = f"s{i}", c
    return write_graph(folder, nodes, weights)


def test_a_tfjs_graph_is_nemos_and_the_baselines_encoder(tmp_path):
    from nemo.backbone import BackboneConfig, FeatureNet
    from nemo.baseline import BaselineNet

    path = strided_backbone(tmp_path)
    cfg = BackboneConfig(kind="tfjs", model=str(path), tfjs_outputs=["s2", "s3", "s4"], decoder_width=8,
                         feature_dim=5)
    net = FeatureNet(cfg)
    assert net.encoder.channels == [8, 10, 12]
    images = torch.rand(2, 3, 64, 96)
    features = net(images)
    assert features.shape == (2, 5, 8, 12) and torch.allclose(features.norm(dim=1), torch.ones(2, 8, 12))
    # the graph sees the image in [0, 255] (tfjs_input_scale), undoing the ImageNet normalisation
    seen = {}
    net.encoder.graph.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    net(images)
    assert torch.allclose(seen["x"], images * 255, atol=1e-3)
    # trainable, and a checkpoint round trip restores the fine-tuned graph
    assert all(p.requires_grad for p in net.encoder.parameters())
    with torch.no_grad():
        next(net.encoder.parameters()).add_(0.1)
    again = FeatureNet(cfg)
    again.load_state_dict(net.state_dict())
    assert torch.equal(again(images), net(images))
    angles, categories = BaselineNet(cfg, 2)(images)
    assert angles.shape[:2] == (2, 3) and categories.shape == (2, 2)


def test_tfjs_backbone_config_errors(tmp_path):
    from nemo.backbone import BackboneConfig, FeatureNet

    path = strided_backbone(tmp_path)
    with pytest.raises(NemoError, match="'backbone.tfjs_outputs' must be three node names"):
        BackboneConfig(kind="tfjs", model=str(path), tfjs_outputs=["s2", "s3"])
    with pytest.raises(NemoError, match=r"strides are \[4, 8, 16\], not \[8, 16, 32\]"):
        FeatureNet(BackboneConfig(kind="tfjs", model=str(path), tfjs_outputs=["s1", "s2", "s3"]))
    with pytest.raises(NemoError, match="backbone.model: .*missing.json is not a file"):
        FeatureNet(BackboneConfig(kind="tfjs", model=str(tmp_path / "missing.json"), tfjs_outputs=["a", "b", "c"]))


class _Encoded(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(1, 1)
        self.head = torch.nn.Linear(1, 1)

    def forward(self, x):
        return self.head(self.encoder(x))


def test_the_encoder_learns_at_encoder_lr_scale_of_the_rate():
    optim = {"lr": 0.1, "warmup_steps": 0, "schedule": "constant", "weight_decay": 0.0, "encoder_lr_scale": 0.25}
    net = _Encoded()
    groups = param_groups(net, optim)
    assert [len(g["params"]) for g in groups] == [2, 2] and [g["lr_scale"] for g in groups] == [0.25, 1.0]
    assert len(param_groups(net, {**optim, "encoder_lr_scale": 1.0})) == 1
    x = torch.ones(4, 1)
    hooks = Hooks(lambda epoch: [[0]], lambda epoch, orders: ({"image": x} for _ in orders),
                  lambda batch, step: ((net(batch["image"]) - 1).pow(2).mean(), {}, None))
    trainer = Trainer(net, hooks, optim, 1)
    assert trainer.fit()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.025, 0.1])
