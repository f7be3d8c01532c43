"""From a photograph to poses: objects in boxes (given, or found by a text-prompted detector),
cropped as training crops them, posed by a NeMo (or baseline) model (any `methodkit.PoseEstimator`
with a nemo config), returned in the photo's pixels as `BoxPose`s.

    model = nemo.load("runs/real/nemo")
    image = data3d.load_image("car.jpg")                         # (3, H, W) in [0, 1]
    boxes = nemo.photo.detect(image, "google/owlv2-base-patch16-ensemble", ["car"])   # or your own boxes
    results = nemo.photo.estimate_in_boxes(model, image, [b.box for b in boxes], "car")

Each crop is made by the same code as training crops (`data3d.ObjectDataset`: centred on the box,
the box's larger side filling `data.fit_fraction` of the crop), with the focal length `focal` pixels
(default 2·max(H, W), as `NemoModel.estimate_pose`). As in PASCAL3D+ and every record NeMo trains on,
the viewpoint is that of a virtual camera looking at the object: its principal point starts at the
box centre (where the object origin is expected) and the fit moves it to where the object origin
projects. A result's viewpoint is in the photo's pixels: (px, py) is that projection, and `focal` /
`viewport` give the photo's focal length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

import data3d
from methodkit.estimator import PoseEstimator, PoseResult

from .data import object_dataset
from .errors import NemoError
from .evaluation import crop_to_image_viewpoint
from .model import DEFAULT_FOCAL_FACTOR

__all__ = ["BoxPose", "Detection", "crop_boxes", "estimate_in_boxes", "detect", "load_detector", "check_box",
           "to_photo_pixels", "photo_focal", "build_tiny_detector"]


@dataclass(frozen=True)
class Detection:
    """A detector's box (x0, y0, x1, y1) in image pixels (integer pixel centres), its label and score."""

    box: tuple[float, float, float, float]
    label: str
    score: float


@dataclass(frozen=True, kw_only=True)
class BoxPose(PoseResult):
    """A `PoseResult` in the photo's pixels for one box, with the box (x0, y0, x1, y1), the estimate in
    the crop's pixels (`crop_viewpoint`) and the crop (3, Hc, Wc) the model saw."""

    box: tuple[float, float, float, float]
    crop_viewpoint: data3d.Viewpoint
    crop: torch.Tensor = field(repr=False, compare=False)


def check_box(box, image_size: tuple[int, int], where: str = "box") -> tuple[float, float, float, float]:
    """A box as four finite numbers x0 < x1, y0 < y1 that overlaps the image; else a NemoError."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise NemoError(f"{where}: a box is [x0, y0, x1, y1], got {box!r}") from None
    H, W = image_size
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or not (x1 > x0 and y1 > y0):
        raise NemoError(f"{where}: need finite x0 < x1 and y0 < y1, got {box!r}")
    if x1 < 0 or y1 < 0 or x0 > W - 1 or y0 > H - 1:
        raise NemoError(f"{where}: {box!r} lies outside the {W}×{H} image")
    slack = data3d.record.BBOX_SLACK
    lo, hi_x, hi_y = -0.5 - slack, W - 0.5 + slack, H - 0.5 + slack
    if x0 < lo or y0 < lo or x1 > hi_x or y1 > hi_y:  # a record's box stays inside its image (data3d's rule)
        raise NemoError(f"{where}: {box!r} reaches beyond the {W}×{H} image (x in [{lo:g}, {hi_x:g}], "
                        f"y in [{lo:g}, {hi_y:g}]); clip it to the image")
    return x0, y0, x1, y1


def photo_focal(image_size: tuple[int, int], focal: float | None = None) -> float:
    """The photo's focal length in pixels: `focal`, or DEFAULT_FOCAL_FACTOR·max(H, W)."""
    f = float(focal) if focal is not None else DEFAULT_FOCAL_FACTOR * max(image_size)
    if not (math.isfinite(f) and f > 0):
        raise NemoError(f"the focal length must be a positive number of pixels, got {focal!r}")
    return f


def box_centre(box) -> tuple[float, float]:
    return (float(box[0]) + float(box[2])) / 2.0, (float(box[1]) + float(box[3])) / 2.0


def to_photo_pixels(viewpoint: dict, K_crop: torch.Tensor, focal: float, principal: tuple[float, float]) -> dict:
    """A viewpoint in a crop's pixels (crop intrinsics K_crop) moved to the photo's pixels, where the
    crop's camera had focal `focal` and principal point `principal`: `nemo.evaluate`'s crop inverse,
    with the crop map read off that camera in both frames."""
    camera = {"focal": float(focal), "viewport": 1.0, "px": float(principal[0]), "py": float(principal[1])}
    in_crop = {"focal": float(K_crop[0, 0]), "viewport": 1.0, "px": float(K_crop[0, 2]), "py": float(K_crop[1, 2])}
    return crop_to_image_viewpoint(viewpoint, in_crop, camera)


def _record(image: torch.Tensor, boxes: Sequence, category: str, focal: float) -> data3d.ImageRecord:
    """A record whose objects are the boxes, each with a virtual camera looking at the box centre as
    its viewpoint (angles 0): ObjectDataset then crops each box exactly as in training and gives the
    crop's intrinsics."""
    H, W = image.shape[-2:]
    objects = tuple(
        data3d.ObjectAnnotation(category=category, bbox=tuple(b),
                                viewpoint=data3d.Viewpoint(azimuth=0.0, elevation=0.0, theta=0.0, distance=1.0,
                                                           focal=float(focal), viewport=1.0, px=box_centre(b)[0],
                                                           py=box_centre(b)[1]))
        for b in boxes)
    return data3d.ImageRecord(image_path="<memory>", image_size=(int(H), int(W)), objects=objects)


def crop_boxes(model: PoseEstimator, image: torch.Tensor, boxes: Sequence, category: str,
               focal: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(crops (N, 3, Hc, Wc), K (N, 3, 3)): the boxes cropped as the model's training crops them, and
    each crop's intrinsics (the photo's camera moved into the crop)."""
    H, W = image.shape[-2:]
    boxes = [check_box(b, (H, W), f"box {i}") for i, b in enumerate(boxes)]
    if not boxes:
        raise NemoError("crop_boxes: no boxes")
    f = photo_focal((H, W), focal)
    record = _record(image, boxes, model.categories[0] if category is None else category, f)
    dataset = object_dataset([record], model.config, model.categories if category is None else [category],
                             train=False)
    dataset.image_loader = lambda _path: image
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([it["image"] for it in items]), torch.stack([it["cameras"].K.to(torch.float32) for it in items])


def estimate_in_boxes(model: PoseEstimator, image: torch.Tensor, boxes: Sequence, category: str | None = None,
                      focal: float | None = None) -> list[BoxPose]:
    """Per box a `BoxPose`: the model's estimate on the box's crop, in the photo's pixels.
    category None: the model classifies."""
    if category is not None and category not in model.categories:
        raise NemoError(f"the model knows {model.categories}, not {category!r}")
    crops, K = crop_boxes(model, image, boxes, category, focal)
    results = model.estimate_pose(crops, K=K, categories=[category] * len(crops) if category else None)
    H, W = image.shape[-2:]
    f = photo_focal((H, W), focal)
    out = []
    for b, (result, Kc) in enumerate(zip(results, K)):
        vp = result.viewpoint
        out.append(BoxPose(data3d.Viewpoint(**to_photo_pixels(vp, Kc, f, box_centre(boxes[b]))), result.category,
                           result.score, result.rotation_only, result.loss, box=tuple(float(v) for v in boxes[b]),
                           crop_viewpoint=vp, crop=crops[b]))
    return out


def detect(image: torch.Tensor, detector, labels: Sequence[str], threshold: float = 0.1,
           max_boxes: int = 10) -> list[Detection]:
    """Boxes of `labels` in the image by a zero-shot text-prompted detector from `transformers`
    (OWLv2 / OWL-ViT / Grounding DINO): `detector` is a model id or local folder (loaded with
    `pipeline("zero-shot-object-detection")`), the CenterNet's `model.json` (`nemo.centernet`, COCO
    labels), or an already built pipeline. The best `max_boxes`
    boxes scoring at least `threshold`, best first."""
    from PIL import Image

    if not labels:
        raise NemoError("detect: give at least one label (e.g. the category)")
    pipe = detector if callable(detector) else load_detector(detector)
    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
    found = pipe(Image.fromarray(arr), candidate_labels=list(labels), threshold=float(threshold))
    H, W = image.shape[-2:]
    out = []
    for d in sorted(found, key=lambda d: -float(d["score"]))[:max_boxes]:
        b = d["box"]
        x0, y0 = max(0.0, float(b["xmin"])), max(0.0, float(b["ymin"]))
        x1, y1 = min(W - 1.0, float(b["xmax"])), min(H - 1.0, float(b["ymax"]))
        if x1 > x0 and y1 > y0:
            out.append(Detection((x0, y0, x1, y1), str(d["label"]), float(d["score"])))
    return out


def load_detector(model_id: str):
    """The `transformers` zero-shot object detection pipeline of a model id or local folder (CPU), or for
    a `.json` path the COCO CenterNet of `scripts/fetch_pretrained.sh` (`nemo.centernet`), which needs no
    model hub (its labels are COCO's 80 classes)."""
    if str(model_id).endswith(".json"):
        from .centernet import CocoDetector

        return CocoDetector(model_id)
    from aware3d_utils.optional import require
    from datagen.hub import pretrained_kwargs

    transformers = require("transformers", "diffusion")
    try:
        pretrained_kwargs(str(model_id), "--detector")  # a path that is no folder: named, before transformers
        return transformers.pipeline("zero-shot-object-detection", model=str(model_id), device="cpu")
    except (OSError, ValueError) as exc:
        said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if said.startswith("--detector"):  # pretrained_kwargs' own, which names the flag and the id already
            raise NemoError(said) from None
        raise NemoError(f"cannot load the detector {model_id!r}: {said}") from None


def build_tiny_detector(folder, seed: int = 0):
    """Save a tiny randomly initialised OWLv2 detector (transformers `Owlv2ForObjectDetection` with a
    byte-level CLIP tokenizer) into `folder`, loadable by `load_detector(folder)`: for tests and
    demos where no real detector can be downloaded. Its box head's last layer is zeroed, so every
    box is the prior box of its image patch (random weights would put them outside the image)."""
    import os

    from aware3d_utils.optional import require
    from datagen.controlnet import _tiny_clip_tokenizer

    transformers = require("transformers", "diffusion")
    tokenizer, vocab = _tiny_clip_tokenizer(transformers, 16)
    config = transformers.Owlv2Config(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                         num_hidden_layers=1, max_position_embeddings=16, bos_token_id=vocab - 2,
                         eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1,
                           image_size=64, patch_size=16),
        projection_dim=32)
    torch.manual_seed(seed)
    model = transformers.Owlv2ForObjectDetection(config)
    torch.nn.init.zeros_(model.box_head.dense2.weight)
    torch.nn.init.zeros_(model.box_head.dense2.bias)
    processor_cls = getattr(transformers, "Owlv2ImageProcessorPil", None) or transformers.Owlv2ImageProcessor
    processor = transformers.Owlv2Processor(image_processor=processor_cls(size={"height": 64, "width": 64}),
                                            tokenizer=tokenizer)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
