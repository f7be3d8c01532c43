"""nemo's training / inference config: the schema (`NemoConfig`), YAML loading, `key=value`
overrides, validation.

`NemoConfig` (nested dataclasses made with `methodkit.config.setting`) is the one place that holds
every key's default, doc, choices and range; `DEFAULTS` is its plain nested dict. `resolve_config`
returns the resolved plain dict (what a run folder stores in config.yaml); code reads it typed,
`NemoConfig.of(resolved)` (or `NemoConfig.from_mapping(...)`: resolve and type). Unknown keys and values
of the wrong type are `NemoConfigError`s (a `NemoError` and a `methodkit.ConfigError`) naming the dotted key.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from methodkit import config as mk
from methodkit.config import ConfigError, section, setting

from .errors import NemoError

__all__ = ["DEFAULTS", "NemoConfig", "NemoConfigError", "load_config", "resolve_config", "parse_override",
           "merge"]


class NemoConfigError(NemoError, ConfigError):
    """A bad nemo / pose / iNeMo config: a `NemoError` (message, `path`) and a `methodkit.ConfigError`."""

    def __init__(self, message: str, path=None):
        self.path = self.source = None if path is None else str(path)
        self.key, self.problem = "", message
        ValueError.__init__(self, message if path is None else f"{path}: {message}")


@dataclass
class DataSection:
    crop_size: list[int] = setting([256, 256], "crop size [H, W] (multiples of 32)")
    rescale: str = setting("fit", "object scale in the crop (data3d.ObjectDataset)",
                           choices=("none", "canonical", "fit"))
    fit_fraction: float = setting(0.7, "rescale fit: the object's larger side as a fraction of the crop "
                                  "(≥ 0.01)", gt=0, le=1)
    center: str = setting("bbox", "crop centre; bbox does not use the pose at test time",
                          choices=("bbox", "principal"))
    flip_prob: float = setting(0.0, "probability of a horizontal flip", ge=0, le=1)
    color_jitter: dict | None = setting(None, "None or {brightness, contrast, saturation, hue}", open=True)
    box_jitter: dict | None = setting(None, "None or {shift, scale}: crop from a randomly moved / resized box "
                                      "(data3d.transforms.jitter_box)", open=True)
    degrade: dict | None = setting(None, "None or {prob, object_px, blur, jpeg, noise}: make crops look like small "
                                   "photographed objects (data3d.transforms.degrade)", open=True)
    random_conv: dict | None = setting(None, "None or {prob, kernel_sizes}: filter crops by a random convolution "
                                       "mixed with themselves (RandConv; data3d.transforms.random_convolution)",
                                       open=True)
    batch_size: int = setting(8, "images per step (≥ 1)", ge=0)
    workers: int = setting(0, "data loader worker processes", ge=0, le=256)
    prefetch_rounds: bool = setting(True, "on-the-fly data: render the next round in a background process")


@dataclass
class CuboidSection:
    num_vertices: int = setting(1000, "vertices of each category's neural cuboid", ge=1, le=100000)
    coverage: float = setting(0.99, "fraction of the training objects the cuboid covers", gt=0, le=1)


@dataclass(frozen=True)  # frozen: nemo.BackboneConfig, the network's own, derives from it
class BackboneSection:
    model: str | None = setting(None, "a transformers backbone id or folder (None: a random one of `kind`); "
                                "with kind tfjs, a TF.js graph model's model.json (nemo.tfjs); with kind "
                                "efficientnet, an EfficientNet-Lite state dict (.pth, nemo.efficientnet)", open=True)
    kind: str = setting("resnet", "backbone architecture", choices=("resnet", "dinov2", "tfjs", "efficientnet"))
    tfjs_outputs: list[str] | None = setting(None, "tfjs: the graph's nodes at strides 8, 16 and 32 (the "
                                             "decoder's inputs; the baseline pools the last)")
    tfjs_input_scale: float = setting(255.0, "tfjs: the graph takes images in [0, 1] times this (≤ 65535)", gt=0,
                                      le=65535)
    depths: list[int] = setting([2, 2, 2, 2], "resnet: blocks per stage")
    hidden_sizes: list[int] = setting([64, 128, 256, 512], "resnet: channels per stage")
    embedding_size: int = setting(64, "resnet: stem channels", ge=1, le=1024)
    layer_type: str = setting("basic", "resnet: block type", choices=("basic", "bottleneck"))
    decoder_width: int = setting(256, "decoder channels", ge=1, le=2048)
    feature_dim: int = setting(128, "feature channels matched to the mesh's vertex features", ge=1, le=2048)
    dinov2_hidden_size: int = setting(384, "dinov2: width (ViT-g: 1536)", ge=1, le=1536)
    dinov2_layers: int = setting(12, "dinov2: layers", ge=1, le=48)
    dinov2_heads: int = setting(6, "dinov2: attention heads", ge=1, le=32)


@dataclass
class BankSection:
    momentum: float = setting(0.9, "momentum of the vertex feature bank", ge=0, le=1)
    clutter_size: int = setting(2560, "clutter features kept", ge=1, le=10**6)
    weighting: str = setting("nemo", "vertex visibility weighting", choices=("nemo", "binary"))


@dataclass
class LossSection:
    temperature: float = setting(0.07, "contrastive temperature (≥ 1e-4: the logits are divided by it)", ge=1e-4)
    neighbour_radius: float = setting(0.1875, "radius of a vertex's excluded neighbours: a fraction of the crop's "
                                      "larger side (NeMo: 48 px of 256) or, with scope object, of the object's "
                                      "box's larger side (NeMo's 48 px are about 8% of its objects)", gt=0,
                                      le=2)
    neighbour_scope: str = setting("crop", "what neighbour_radius is a fraction of", choices=("crop", "object"))
    clutter_weight: float = setting(0.005, "clutter logits get + log(clutter_weight) (> 0)", ge=0)
    clutter_regulariser: float = setting(0.1, "weight of the clutter regulariser", ge=0)
    clutter_per_image: int = setting(20, "clutter features sampled per image", ge=1, le=100000)
    object_mask: bool = setting(False, "train with the records' object masks (datagen's): see nemo.contrastive")
    negatives: str = setting("own_class", "a vertex's negatives: its own category's other vertices and clutter "
                             "(NeMo), or also every other category's vertices (iNeMo's bank loss), which "
                             "separates the categories' features", choices=("own_class", "all_classes"))
    half_turn_weight: float = setting(0.0, "weight of the front/back term (nemo.contrastive.half_turn_loss; "
                                      "0: off, NeMo's loss alone)", ge=0)
    half_turn_temperature: float = setting(0.1, "temperature of the front/back term (≥ 1e-4)", ge=1e-4)


@dataclass
class OptimSection:
    lr: float = setting(1e-3, "learning rate", gt=0, le=10)
    weight_decay: float = setting(1e-4, "AdamW weight decay", ge=0)
    encoder_lr_scale: float = setting(1.0, "the encoder's learning rate as a fraction of lr (below 1 for a "
                                      "pretrained encoder, e.g. backbone.kind tfjs)", gt=0, le=1)
    warmup_steps: int = setting(50, "linear warm-up steps", ge=0)
    schedule: str = setting("cosine", "learning-rate schedule", choices=("cosine", "steps", "constant"))
    min_lr_ratio: float = setting(0.01, "cosine: final lr / lr", ge=0, le=1)
    milestones: list[float] = setting([0.6, 0.85], "steps: fractions of the run in (0, 1) where lr drops by gamma")
    gamma: float = setting(0.1, "steps: lr factor at each milestone", gt=0, le=1)


@dataclass
class TrainSection:
    steps: int = setting(2000, "training steps (≥ 1)", ge=0, le=10**9)
    log_every: int = setting(10, "steps between log lines", ge=1)
    checkpoint_every: int = setting(200, "steps between checkpoints", ge=1)
    keep_checkpoints: int = setting(2, "training checkpoints kept", ge=1)


@dataclass
class ClassifySection:
    match_rule: str = setting("mean", "how feature matching picks the category (nemo.model.match_categories): "
                              "mean (NOVUM) or peak (iNeMo's released rule; the incremental runs' default)",
                              choices=("mean", "peak"))


@dataclass
class PoseSearchSection:
    azimuths: int = setting(12, "initial azimuth hypotheses", ge=1, le=360)
    elevations: int = setting(4, "initial elevation hypotheses", ge=1, le=90)
    thetas: int = setting(3, "initial in-plane hypotheses", ge=1, le=90)
    steps: int = setting(30, "render-and-compare refinement steps", ge=1, le=10000)
    keep: int = setting(2, "hypotheses refined (≤ azimuths × elevations × thetas)", ge=1)
    lr: float = setting(0.05, "refinement learning rate", gt=0, le=10)
    fill: float = setting(0.35, "the object's assumed share of the image without a box", gt=0, le=1)
    elevation_range: list[float] | None = setting(
        None, "[lo, hi] degrees: the grid spans it and the refinement stays inside (a viewpoint prior, such "
        "as the training sampler's); null: NeMo's grid over [-30, 60], refinement unbounded")
    theta_range: list[float] | None = setting(
        None, "[lo, hi] degrees: as elevation_range, for the in-plane angle; null: NeMo's [-30, 30], unbounded")
    mirror: bool = setting(
        False, "also fit the mirrored crop and keep the better-scoring fit, mirrored back (test-time mirroring; "
        "for left-right symmetric categories such as cars, as data.flip_prob's mirrored labels assume); the "
        "2D baseline sums both views' angle log-probabilities; doubles the inference cost")

    def grid(self):
        """The initial pose grid, with the refinement's bounds where a range is set (`nemo.pose_grid`)."""
        from .fit import pose_grid

        el, th = (None if r is None else tuple(math.radians(v) for v in r)
                  for r in (self.elevation_range, self.theta_range))
        return pose_grid(self.azimuths, self.elevations, self.thetas, elevation_range=el, theta_range=th)


@dataclass
class BaselineSection:
    num_bins: int = setting(40, "angle bins of the 2D classification baseline", ge=1, le=3600)
    label_smoothing: float = setting(0.0, "label smoothing of its cross-entropy", ge=0, le=1)
    steps: int | None = setting(None, "its training steps (None: train.steps), so that one config states an "
                                "equal-time comparison (a baseline step costs ~1/4 of a NeMo step)", open=True)


@dataclass
class NemoConfig(mk.ConfigObject):
    """nemo's whole config (docs/nemo.md)."""

    method: str = setting("nemo", "nemo, or baseline (the 2D classification baseline)",
                          choices=("nemo", "baseline"))
    categories: list[str] | None = setting(None, "the categories (None: every category of the training records)",
                                           open=True)
    seed: int = setting(0, "the run's seed", ge=0, le=2**32 - 1, flag=True)
    threads: int = setting(1, "torch threads of the training process (set deliberately: oversubscription is "
                           "~30x slower)", ge=1, le=1024, flag=True)
    device: str = setting("cpu", "torch device: cpu or cuda[:N]", flag=True)
    data: DataSection = section(DataSection, "crops, augmentation, batches")
    meshes: Any = setting({"type": "procedural", "count": 3}, "a data3d.asset_source block (or a list of them); "
                          "categories are filled in", open=True)
    cuboid: CuboidSection = section(CuboidSection, "the neural cuboid meshes")
    backbone: BackboneSection = section(BackboneSection, "the feature network")
    bank: BankSection = section(BankSection, "the vertex feature bank")
    loss: LossSection = section(LossSection, "the contrastive loss")
    optim: OptimSection = section(OptimSection, "the optimiser and its schedule")
    train: TrainSection = section(TrainSection, "steps, logging, checkpoints")
    classify: ClassifySection = section(ClassifySection, "classification by feature matching")
    pose: PoseSearchSection = section(PoseSearchSection, "render-and-compare pose estimation")
    baseline: BaselineSection = section(BaselineSection, "the 2D baseline")

    @classmethod
    def resolve(cls, config=None, overrides=()) -> dict:
        return resolve_config(config, overrides)


DEFAULTS: dict = mk.defaults(NemoConfig)
MAX_CROP = 2048  # pixels a side of a training crop
MAX_HYPOTHESES = 100_000  # initial pose hypotheses (pose.azimuths × pose.elevations × pose.thetas)

def merge(base: Mapping, update: Mapping) -> dict:
    """Deep merge of two nested mappings (update wins). The asset block `meshes` is replaced whole
    when the update names another source `type` (its keys differ per type) and merged otherwise, so
    `--set meshes.type=off --set meshes.root=DIR` builds an OFF source one key at a time."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if k == "meshes" and isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and \
                v.get("type", out[k].get("type")) != out[k].get("type"):
            out[k] = copy.deepcopy(dict(v))
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


read_yaml = mk.read_yaml  # YAML as every config is read: YAML 1.2 booleans (`type: off` is the OFF source)


def parse_override(text: str) -> dict:
    """'a.b=value' -> {'a': {'b': value}} (value parsed as YAML); a NemoConfigError when malformed."""
    try:
        return mk.parse_override(text)
    except ConfigError as exc:
        raise NemoConfigError(str(exc)) from None


def _fail(key: str, problem: str, kind: str = "value"):
    """The schema checks' errors in nemo's words (`check_tree`'s callback)."""
    if kind == "unknown":
        raise NemoConfigError(f"config: unknown key {key!r}; allowed here: {problem.split('allowed here: ')[1]}")
    raise NemoConfigError(f"config: {key!r} {problem}")


def resolve_config(config: Mapping | None = None, overrides: Iterable[Mapping] = ()) -> dict:
    """Defaults merged with `config` and `overrides` (in order), validated."""
    out = merge(DEFAULTS, config or {})
    for o in overrides:
        out = merge(out, o)
    mk.check_tree(NemoConfig, out, _fail)  # unknown keys, types, choices, ranges (from the schema)
    crop = out["data"]["crop_size"]
    if len(crop) != 2 or any(not isinstance(c, int) or c <= 0 or c % 32 for c in crop):
        raise NemoConfigError(f"config: 'data.crop_size' must be two positive multiples of 32, got {crop}")
    if max(crop) > MAX_CROP:  # a crop beyond it only fails later, allocating its sampling grid
        raise NemoConfigError(f"config: 'data.crop_size' must be ≤ {MAX_CROP} pixels a side, got {crop}")
    if out["backbone"]["kind"] != "dinov2" and out["data"]["batch_size"] * (crop[0] // 32) * (crop[1] // 32) < 2:
        raise NemoConfigError(f"config: 'data.batch_size' {out['data']['batch_size']} with 'data.crop_size' {crop} "
                              "leaves one value per channel at the backbone's last stage (stride 32), which batch "
                              "norm cannot train on: a batch of ≥ 2 or a crop ≥ 64 a side")
    steps = out["baseline"]["steps"]
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise NemoConfigError(f"config: 'baseline.steps' must be null or an integer ≥ 1, got {steps!r}")
    if out["data"]["batch_size"] < 1 or out["train"]["steps"] < 1:
        raise NemoConfigError("config: 'data.batch_size' and 'train.steps' must be ≥ 1")
    if not 0 < out["loss"]["clutter_weight"]:
        raise NemoConfigError("config: 'loss.clutter_weight' must be positive (its log weights the clutter logits)")
    if out["loss"]["half_turn_temperature"] <= 0:
        raise NemoConfigError("config: 'loss.half_turn_temperature' must be positive")
    if out["loss"]["temperature"] <= 0:
        raise NemoConfigError("config: 'loss.temperature' must be positive")
    _check_ranges(out)
    return out


def _check_ranges(out: Mapping) -> None:
    """Values the schema's per-key checks cannot see: lists, relations between keys, the device."""
    b = out["backbone"]
    if not b["depths"] or len(b["depths"]) != len(b["hidden_sizes"]) or any(
            not isinstance(v, int) or v < 1 for v in b["depths"] + b["hidden_sizes"]):
        raise NemoConfigError(f"config: 'backbone.depths' and 'backbone.hidden_sizes' must be lists of the same "
                              f"length of integers ≥ 1, got {b['depths']} and {b['hidden_sizes']}")
    if max(b["depths"]) > 64 or max(b["hidden_sizes"]) > 4096:  # beyond: a network that takes hours to build
        raise NemoConfigError(f"config: 'backbone.depths' must be ≤ 64 blocks a stage and 'backbone.hidden_sizes' "
                              f"≤ 4096 channels, got {b['depths']} and {b['hidden_sizes']}")
    check_backbone_kind(b)
    if b["kind"] == "dinov2" and b["dinov2_hidden_size"] % b["dinov2_heads"]:
        raise NemoConfigError(f"config: 'backbone.dinov2_hidden_size' ({b['dinov2_hidden_size']}) must be a "
                              f"multiple of 'backbone.dinov2_heads' ({b['dinov2_heads']})")
    blocks = out["meshes"] if isinstance(out["meshes"], list) else [out["meshes"]]
    if not blocks or not all(isinstance(m, Mapping) for m in blocks):
        raise NemoConfigError(f"config: 'meshes' must be an asset source block (a mapping such as "
                              f"{{type: procedural, count: 3}}) or a list of them, got {out['meshes']!r}")
    p = out["pose"]
    hypotheses = p["azimuths"] * p["elevations"] * p["thetas"]
    if hypotheses > MAX_HYPOTHESES:  # every one is rendered and scored for every image: a pose search without end
        raise NemoConfigError(f"config: 'pose.azimuths' × 'pose.elevations' × 'pose.thetas' must be ≤ "
                              f"{MAX_HYPOTHESES} initial hypotheses, got {p['azimuths']} × {p['elevations']} × "
                              f"{p['thetas']} = {hypotheses}")
    if p["keep"] > hypotheses:
        raise NemoConfigError(f"config: 'pose.keep' ({p['keep']}) must be ≤ the {hypotheses} initial hypotheses "
                        "(pose.azimuths × pose.elevations × pose.thetas)")
    for name, limit in (("elevation_range", 90), ("theta_range", 180)):
        r = p[name]
        if r is not None and not (len(r) == 2 and -limit <= r[0] <= r[1] <= limit):
            raise NemoConfigError(f"config: 'pose.{name}' must be null or [lo, hi] degrees with "
                                  f"-{limit} ≤ lo ≤ hi ≤ {limit}, got {r!r}")
    if any(not 0 < m < 1 for m in out["optim"]["milestones"]):
        raise NemoConfigError(f"config: 'optim.milestones' must be fractions of the run in (0, 1), "
                              f"got {out['optim']['milestones']}")
    cats = out["categories"]
    if cats is not None and (not isinstance(cats, list) or not cats or
                             not all(isinstance(c, str) and c for c in cats) or len(set(cats)) != len(cats)):
        raise NemoConfigError(f"config: 'categories' must be null or a list of distinct category names, got {cats!r}")
    if out["data"]["fit_fraction"] < 0.01:  # a smaller object is under a pixel: its camera's focal length is 0
        raise NemoConfigError(f"config: 'data.fit_fraction' must be ≥ 0.01 (the object's side as a fraction of the "
                              f"crop), got {out['data']['fit_fraction']!r}")
    _check_augmentations(out["data"])
    jitter = out["data"]["color_jitter"]
    if jitter is not None:
        allowed = {"brightness", "contrast", "saturation", "hue"}
        if not isinstance(jitter, Mapping) or set(jitter) - allowed or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in jitter.values()):
            raise NemoConfigError(f"config: 'data.color_jitter' must be null or a mapping of {sorted(allowed)} to "
                                  f"numbers ≥ 0, got {jitter!r}")
        if jitter.get("hue", 0) > 0.5:  # a shift of ±hue·π: beyond 0.5 the range wraps round (torchvision's rule)
            raise NemoConfigError(f"config: 'data.color_jitter.hue' must be in [0, 0.5], got {jitter['hue']!r}")
    check_device(out["device"], available=False)  # whether this machine has it: where it is used
    meshes = out["meshes"]
    if isinstance(meshes, Mapping) and meshes.get("type") is False:  # YAML 1.1 `off` read by another tool
        raise NemoConfigError("config: 'meshes.type' is false: write the OFF source as the string 'off'")


def check_backbone_kind(b: Mapping) -> None:
    """`backbone.model` and the tfjs keys against `backbone.kind`: what a kind needs, and no key of another
    kind's that would be ignored without a word."""
    model, kind = b["model"], b["kind"]
    if model is not None and not (isinstance(model, str) and model.strip()):
        raise NemoConfigError(f"config: 'backbone.model' must be null or a path / model id, got {model!r}")
    if kind in ("tfjs", "efficientnet") and model is None:
        what = "a TF.js graph model's model.json" if kind == "tfjs" else "an EfficientNet-Lite state dict (.pth)"
        raise NemoConfigError(f"config: 'backbone.model' is needed with backbone.kind {kind}: {what} "
                              "(scripts/fetch_pretrained.sh fetches one)")
    outputs = b["tfjs_outputs"]
    if kind == "tfjs" and (outputs is None or len(outputs) != 3 or not all(str(o).strip() for o in outputs)):
        raise NemoConfigError(f"config: 'backbone.tfjs_outputs' must be three node names of the graph (at strides "
                              f"8, 16 and 32) with backbone.kind tfjs, got {outputs!r}")
    if kind != "tfjs" and outputs is not None:
        raise NemoConfigError(f"config: 'backbone.tfjs_outputs' is only read with backbone.kind tfjs (the kind is "
                              f"{kind!r}); remove it or set backbone.kind=tfjs")
    if kind != "tfjs" and b["tfjs_input_scale"] != DEFAULTS["backbone"]["tfjs_input_scale"]:
        raise NemoConfigError(f"config: 'backbone.tfjs_input_scale' is only read with backbone.kind tfjs (the kind "
                              f"is {kind!r}); remove it or set backbone.kind=tfjs")


def _check_augmentations(data: Mapping) -> None:
    """`data.box_jitter`, `data.degrade` and `data.random_conv`: null or the mapping data3d.ObjectDataset
    takes, checked by its own rules here (where the config is read) so the error names the key."""
    from data3d.dataset import AUGMENTATION_OPTIONS

    for name, normalise in AUGMENTATION_OPTIONS.items():
        value = data[name]
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise NemoConfigError(f"config: 'data.{name}' must be null or a mapping, got {value!r}")
        try:
            normalise(value)
        except (ValueError, TypeError) as exc:
            raise NemoConfigError(f"config: 'data.{name}': {exc}") from None


def check_device(name, available: bool = True, key: str = "config: 'device'") -> None:
    """A NemoError naming `key` unless `name` is a torch device ('cpu', 'cuda[:N]'), and with
    `available` one this machine has (a run checks it before it starts; a stored config need not)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise NemoConfigError(f"{key} must be a torch device such as 'cpu' or 'cuda', got {name!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise NemoConfigError(f"{key} must be 'cpu' or 'cuda[:N]', got {name!r}")
    if device.type == "mps" and available and not torch.backends.mps.is_available():
        raise NemoConfigError(f"{key} is {name!r}, but this torch build has no usable MPS device; use cpu")
    if device.type == "cuda" and available:
        if not torch.cuda.is_available():
            raise NemoConfigError(f"{key} is {name!r}, but this torch build has no usable CUDA device "
                                  f"(torch {torch.__version__}); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NemoConfigError(f"{key} is {name!r}, but there are {torch.cuda.device_count()} CUDA devices")


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str | Mapping] = ()) -> dict:
    """The resolved config from a YAML file (or the defaults) and overrides: 'key=value' strings
    (`--set`) or nested mappings (the command's schema flags), applied in order."""
    return load_yaml_config(path, overrides, resolve_config)


def load_yaml_config(path: str | os.PathLike | None, overrides: Iterable[str | Mapping],
                     resolve: Callable[[dict, list[dict]], dict]) -> dict:
    """Read a YAML mapping (or {} without a path), parse the 'key=value' overrides (mappings pass) and resolve them
    with `resolve(config, overrides)`; every problem is a NemoError naming the file."""
    data: dict = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                data = read_yaml(fh.read()) or {}
        except OSError as exc:
            raise NemoConfigError(f"cannot read the config: {exc}", path) from exc
        except (yaml.YAMLError, ValueError) as exc:
            raise NemoConfigError(f"not valid YAML: {exc}", path) from exc
        if not isinstance(data, dict):
            raise NemoConfigError("the config must be a mapping", path)
    try:
        return resolve(data, [o if isinstance(o, Mapping) else parse_override(o) for o in overrides])
    except NemoError as exc:
        if path is None:
            raise
        raise NemoConfigError(str(exc), path) from None
