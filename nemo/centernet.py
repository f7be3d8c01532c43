"""A COCO object detector that needs no model hub: the MobileNetV3 CenterNet of
`scripts/fetch_pretrained.sh` (a TF.js graph model run by `nemo.tfjs`), for `aware3d nemo pose --detector`.

    detector = CocoDetector("pretrained/centernet/centernet.json")
    found = detector(pil_image, candidate_labels=["car"], threshold=0.3)   # the transformers pipeline's shape

CenterNet (Zhou et al., "Objects as Points", 2019) predicts, at stride 4 of its 512 × 512 input, one
heatmap per COCO class (`tower_0/keypoints`, sigmoid scores) and per cell the distances from the cell to
the box's left, top, right and bottom sides (`tower_0/wh`, input pixels). A detection is a heatmap cell
that is the maximum of its 3 × 3 neighbourhood (the model's own peak test), its box those four
distances around the cell; the image is resized to 512 × 512 and the boxes scaled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import NemoError

__all__ = ["COCO_CLASSES", "CocoDetector", "decode_heatmaps", "coco_class"]

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush")
# PASCAL3D+ / ImageNet3D category names that COCO spells otherwise
_SYNONYMS = {"aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "diningtable": "dining table",
             "tvmonitor": "tv", "tv monitor": "tv"}
INPUT_SIZE = 512
STRIDE = 4


def coco_class(label: str) -> int:
    """The COCO class index of a label (COCO's name, or the PASCAL3D+ name of the same class)."""
    name = _SYNONYMS.get(label.strip().lower(), label.strip().lower())
    if name not in COCO_CLASSES:
        raise NemoError(f"the CenterNet detector knows COCO's 80 classes; {label!r} is not one of them "
                        f"(e.g. {', '.join(COCO_CLASSES[:8])}, ...)")
    return COCO_CLASSES.index(name)


Box = tuple[float, float, float, float]


def decode_heatmaps(heat: torch.Tensor, sides: torch.Tensor, classes: Sequence[int], threshold: float,
                     scale: tuple[float, float], top: int = 100) -> list[tuple[Box, int, float]]:
    """Detections from one image's heatmaps `heat` (C, h, w) and side distances `sides` (4, h, w) (left,
    top, right, bottom, in input pixels): ((x0, y0, x1, y1) in image pixels, class, score) of the cells
    that are their 3 × 3 neighbourhood's maximum, of `classes`, scoring ≥ `threshold`, best first (at most
    `top`). scale: (sx, sy) image pixels per input pixel."""
    peaks = heat * (heat == F.max_pool2d(heat[None], 3, 1, 1)[0])
    wanted = torch.zeros(heat.shape[0], dtype=torch.bool)
    wanted[list(classes)] = True
    peaks[~wanted] = 0
    scores, flat = peaks.flatten().topk(min(top, peaks.numel()))
    h, w = heat.shape[-2:]
    out = []
    for score, index in zip(scores.tolist(), flat.tolist()):
        if score < threshold or score <= 0:
            break
        c, cell = divmod(index, h * w)
        y, x = divmod(cell, w)
        left, up, right, down = sides[:, y, x].tolist()
        sx, sy = scale
        box = ((STRIDE * x - left) * sx, (STRIDE * y - up) * sy, (STRIDE * x + right) * sx, (STRIDE * y + down) * sy)
        out.append((box, c, float(score)))
    return out


class CocoDetector:
    """The CenterNet TF.js model as a zero-shot-detection-pipeline look-alike (`nemo.photo.detect`)."""

    outputs = ("tower_0/keypoints", "tower_0/wh")

    def __init__(self, model_json: str | Path):
        from .tfjs import TfjsGraph

        path = Path(model_json)
        if not path.is_file():
            raise NemoError(f"--detector: {path} is not a file (scripts/fetch_pretrained.sh fetches the CenterNet)")
        try:
            self.graph = TfjsGraph(path, list(self.outputs)).eval()
        except NemoError as exc:
            raise NemoError(f"--detector: {exc} (not the CenterNet of scripts/fetch_pretrained.sh?)") from None

    def __call__(self, image, candidate_labels: Sequence[str], threshold: float = 0.1) -> list[dict]:
        from PIL import Image

        classes = {coco_class(label): label for label in candidate_labels}
        W, H = image.size
        arr = np.asarray(image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR), np.float32)
        with torch.no_grad():  # the graph takes RGB in [0, 255]
            heat, sides = self.graph(torch.from_numpy(arr).permute(2, 0, 1)[None])
        found = decode_heatmaps(heat[0], sides[0], list(classes), threshold, (W / INPUT_SIZE, H / INPUT_SIZE))
        return [{"box": {"xmin": b[0], "ymin": b[1], "xmax": b[2], "ymax": b[3]}, "label": classes[c], "score": s}
                for b, c, s in found]
