"""Image-space edits of an annotated object that keep image, camera and bbox consistent.

`warp_object` crops a fixed-size window around the object, optionally rescaling it, in one exact
similarity map of the pixel grid (integer pixel centres): an input pixel centre u lands at
    u' = s · (u + ½) − ½ − x0
so the viewpoint's focal length scales by s and its principal point follows the same map.
Pixels outside the source image are zero (padding). `flip_object` mirrors image, viewpoint and
bbox. `color_jitter` changes colours only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from aware3d_utils.deprecation import renamed_arguments
from geom3d import resize_coordinate

from .record import Viewpoint

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ObjectView", "warp_object", "flip_object", "color_jitter",
           "canonical_scale", "fit_scale", "jitter_box", "degrade", "random_convolution", "NEMO_CROP_SIZE"]

#: the RGB mean and standard deviation of ImageNet (in [0, 1]) that ImageNet-pretrained backbones
#: normalise their input by; every model here that takes such weights uses these two
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ObjectView:
    """An image (C, H, W) float tensor with one object's viewpoint and bbox in its pixel frame.

    mirrored: True when the image was flipped; the camera then sees the object mirrored in its
    x = 0 plane (project `vertices * (−1, 1, 1)` to compare with the image).
    truncated: True once the bbox was clipped by a crop.
    maps: per-pixel maps of the same image ((C, H, W) tensors: mask, depth ...), moved with it by
    nearest-neighbour sampling, so masks stay binary and depth values are never blended.
    """

    image: torch.Tensor
    viewpoint: Viewpoint
    bbox: tuple[float, float, float, float]
    mirrored: bool = False
    truncated: bool = False
    maps: Mapping[str, torch.Tensor] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])


# NeMo's canonical frame (distance 5, focal·viewport 3000) was made for crops of about this (H, W):
# a unit-sized object then spans 600 px, 3/4 of the width.
NEMO_CROP_SIZE = (640, 800)


def canonical_scale(viewpoint: Viewpoint, distance: float = 5.0, focal_pixels: float = 3000.0,
                    out_size=None, reference_size=NEMO_CROP_SIZE) -> float:
    """The image scale that makes the object look as it would at `distance` with a focal length of
    `focal_pixels` (NeMo: distance 5, focal · viewport = 3000): s = (focal_pixels / distance) / (f·M / d).

    With `out_size` (H, W), the canonical frame is shrunk (or grown) from the `reference_size` crop
    it was made for to `out_size`, by min(H / H_ref, W / W_ref): a canonical object then fills the
    same fraction of the crop asked for as of NeMo's, instead of overflowing a smaller one. Every
    object still gets the same pixels per unit at its depth, which is what "canonical" promises.
    """
    s = (focal_pixels / distance) / (viewpoint.focal_pixels / viewpoint.distance)
    if out_size is not None and reference_size is not None:
        s *= min(out_size[0] / reference_size[0], out_size[1] / reference_size[1])
    return s


def fit_scale(bbox, out_size, fraction: float = 0.8) -> float:
    """The scale that makes the bbox's larger side fill `fraction` of the output window."""
    w = max(bbox[2] - bbox[0] + 1.0, 1.0)
    h = max(bbox[3] - bbox[1] + 1.0, 1.0)
    return fraction * min(out_size[0] / h, out_size[1] / w)


def _sample(image: torch.Tensor, out_size, scale: float, x0: float, y0: float, mode: str = "bilinear") -> torch.Tensor:
    """Output pixel (i, j) takes the input at u = (j + x0 + ½)/s − ½, v = (i + y0 + ½)/s − ½."""
    c, h, w = image.shape
    oh, ow = out_size
    src = image[None]
    sx = sy = 1.0
    if scale < 0.5 and mode == "bilinear":  # shrink with an antialiasing resize first; the grid stays exact
        ih, iw = max(1, round(h * scale * 2)), max(1, round(w * scale * 2))
        src = F.interpolate(src, size=(ih, iw), mode="bilinear", antialias=True, align_corners=False)
        sx, sy = iw / w, ih / h
    dtype = image.dtype if image.is_floating_point() else torch.float32
    j = torch.arange(ow, dtype=torch.float64)
    i = torch.arange(oh, dtype=torch.float64)
    u = (j + x0 + 0.5) / scale  # continuous source coordinate + ½ (pixel-edge units)
    v = (i + y0 + 0.5) / scale
    # grid_sample(align_corners=False): normalised −1 is the left edge of the first pixel
    gx = (2.0 * (u * sx) / src.shape[-1] - 1.0).to(dtype)
    gy = (2.0 * (v * sy) / src.shape[-2] - 1.0).to(dtype)
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(src.to(dtype), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out[0].to(image.dtype) if mode == "nearest" else out[0]


@renamed_arguments(center="centre")
def warp_object(view: ObjectView, out_size, scale: float = 1.0, centre: str = "principal",
                crop_box=None) -> ObjectView:
    """Crop an `out_size` (H, W) window centred on the object, rescaled by `scale`.

    centre: "principal" (the projection of the object origin, NeMo's choice) or "bbox" (the centre of
    `crop_box`, by default the object's bbox; a detector's or a jittered box crops as it would).
    With scale 1 the window is shifted by whole pixels, so pixels are copied, not resampled.
    """
    oh, ow = (int(v) for v in out_size)
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    vp = view.viewpoint
    if centre == "principal":
        cx, cy = vp.px, vp.py
    elif centre == "bbox":
        cb = view.bbox if crop_box is None else crop_box
        cx, cy = (cb[0] + cb[2]) / 2.0, (cb[1] + cb[3]) / 2.0
    else:
        raise ValueError(f"centre must be 'principal' or 'bbox', got {centre!r}")
    x0 = resize_coordinate(cx, scale) - (ow - 1) / 2.0
    y0 = resize_coordinate(cy, scale) - (oh - 1) / 2.0
    if scale == 1.0:
        x0, y0 = float(round(x0)), float(round(y0))
        image = _shift_copy(view.image, (oh, ow), int(x0), int(y0))
        maps = {k: _shift_copy(m, (oh, ow), int(x0), int(y0)) for k, m in view.maps.items()}
    else:
        image = _sample(view.image, (oh, ow), scale, x0, y0)
        maps = {k: _sample(m, (oh, ow), scale, x0, y0, mode="nearest") for k, m in view.maps.items()}
    new_vp = vp.resized(scale).shifted(-x0, -y0)
    b = view.bbox
    box = (resize_coordinate(b[0], scale) - x0, resize_coordinate(b[1], scale) - y0,
           resize_coordinate(b[2], scale) - x0, resize_coordinate(b[3], scale) - y0)
    clipped = (min(max(box[0], 0.0), ow - 1.0), min(max(box[1], 0.0), oh - 1.0),
               min(max(box[2], 0.0), ow - 1.0), min(max(box[3], 0.0), oh - 1.0))
    return replace(view, image=image, viewpoint=new_vp, bbox=clipped, maps=maps,
                   truncated=view.truncated or clipped != box)


def _shift_copy(image: torch.Tensor, out_size, x0: int, y0: int) -> torch.Tensor:
    """Integer crop with zero padding: out[:, i, j] = image[:, i + y0, j + x0]."""
    c, h, w = image.shape
    oh, ow = out_size
    out = image.new_zeros((c, oh, ow))
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + ow, w), min(y0 + oh, h)
    if sx1 > sx0 and sy1 > sy0:
        out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[:, sy0:sy1, sx0:sx1]
    return out


def flip_object(view: ObjectView) -> ObjectView:
    """Mirror horizontally: u -> W − 1 − u; azimuth -> −azimuth (mod 2π), theta -> −theta, px -> W − 1 − px."""
    w = view.image.shape[-1]
    b = view.bbox
    return replace(view, image=view.image.flip(-1), viewpoint=view.viewpoint.mirrored(w),
                   bbox=((w - 1) - b[2], b[1], (w - 1) - b[0], b[3]), mirrored=not view.mirrored,
                   maps={k: m.flip(-1) for k, m in view.maps.items()})


def color_jitter(image: torch.Tensor, generator: torch.Generator, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0) -> torch.Tensor:
    """Random brightness / contrast / saturation / hue changes of a (3, H, W) image in [0, 1] (kornia).

    Factors are drawn uniformly: brightness shift in [−b, b], contrast and saturation factors in
    [1 − c, 1 + c], hue shift in [−h, h]·π (torchvision's ranges), applied in that order.
    """
    import kornia

    def draw(lo, hi):
        return float(lo + (hi - lo) * torch.rand((), generator=generator, dtype=torch.float64))

    x = image[None]
    if brightness > 0:
        x = kornia.enhance.adjust_brightness(x, draw(-brightness, brightness))
    if contrast > 0:
        x = kornia.enhance.adjust_contrast(x, draw(max(0.0, 1 - contrast), 1 + contrast))
    if saturation > 0:
        x = kornia.enhance.adjust_saturation(x, draw(max(0.0, 1 - saturation), 1 + saturation))
    if hue > 0:
        x = kornia.enhance.adjust_hue(x, draw(-hue, hue) * math.pi)
    return x[0].clamp(0.0, 1.0)


def jitter_box(bbox, generator: torch.Generator, shift: float = 0.1, scale: float = 0.1) -> tuple[float, ...]:
    """A box as a detector might give it: the centre moved by up to ±`shift` of the box's width and
    height, each side scaled by a factor in [1 − scale, 1 + scale] (uniform draws)."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    w, h = x1 - x0, y1 - y0
    d = (torch.rand(4, generator=generator, dtype=torch.float64) * 2 - 1).tolist()
    cx, cy = (x0 + x1) / 2 + d[0] * shift * w, (y0 + y1) / 2 + d[1] * shift * h
    w, h = w * (1 + d[2] * scale), h * (1 + d[3] * scale)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def degrade(image: torch.Tensor, generator: torch.Generator, object_size: float, *, object_px=(20.0, 80.0),
            blur: float = 0.0, jpeg=None, noise: float = 0.0) -> torch.Tensor:
    """A (3, H, W) image in [0, 1] made to look like a small, compressed photograph of the object.

    - resolution: the object (`object_size`, its larger side in pixels here) is shown as if it had been
      photographed at s pixels, s log-uniform in `object_px`: the image is shrunk by s / object_size
      (area averaging) and enlarged back (bilinear), as a crop of a distant car is upsampled. No-op
      when s ≥ object_size.
    - blur: a Gaussian blur of sigma uniform in [0, blur] pixels;
    - jpeg: (lo, hi) JPEG quality drawn uniformly (encoded and decoded), or None;
    - noise: Gaussian pixel noise of sd uniform in [0, noise].
    Every draw comes from `generator`, in that order, so the result is a function of its state.
    OpenCV does the work on one uint8 copy of the image (about 1 ms at 128²).
    """
    import cv2
    import numpy as np

    def uniform(lo, hi):
        return float(lo + (hi - lo) * torch.rand((), generator=generator, dtype=torch.float64))

    c, h, w = image.shape
    arr = np.ascontiguousarray((image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8))
    lo, hi = (float(v) for v in object_px)
    target = math.exp(uniform(math.log(lo), math.log(hi)))
    if target < object_size:
        f = target / object_size
        small = cv2.resize(arr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        arr = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    sigma = uniform(0.0, blur) if blur > 0 else 0.0
    if sigma > 0.05:
        arr = cv2.GaussianBlur(arr, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if jpeg is not None:
        quality = int(round(uniform(float(jpeg[0]), float(jpeg[1]))))
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:  # OpenCV's JPEG is BGR
            arr = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    x = torch.from_numpy(arr).permute(2, 0, 1).to(torch.float32) / 255.0
    if noise > 0:
        sd = uniform(0.0, noise)
        x = x + sd * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x.clamp(0.0, 1.0).to(image.dtype)


def random_convolution(image: torch.Tensor, generator: torch.Generator, kernel_sizes=(1, 3, 5, 7)) -> torch.Tensor:
    """A (3, H, W) image in [0, 1] filtered by a random convolution and mixed with itself (RandConv,
    Xu et al., ICLR 2021: shape is kept, local texture and colour are scrambled, which pushes a
    network trained on renders to rely on shape rather than on the renderer's look).

    The filter: 3 → 3 channels, odd size k drawn from `kernel_sizes`, weights N(0, 1 / (3 k²)) (He
    initialisation), reflect padding. Its output is brought to the image's per-channel mean and
    standard deviation, so the result stays an image in [0, 1], then mixed as a·image + (1 − a)·filtered
    with a uniform in [0, 1] (the paper's mixing variant). Every draw comes from `generator`."""
    k = int(kernel_sizes[int(torch.randint(len(kernel_sizes), (), generator=generator))])
    if k < 1 or k % 2 == 0:
        raise ValueError(f"random_convolution: kernel sizes must be odd and >= 1, got {k}")
    weight = torch.randn((3, 3, k, k), generator=generator, dtype=torch.float32) / math.sqrt(3 * k * k)
    a = float(torch.rand((), generator=generator, dtype=torch.float64))
    x = image.detach().to(torch.float32)[None]
    padded = torch.nn.functional.pad(x, (k // 2,) * 4, mode="reflect") if k > 1 else x
    y = torch.nn.functional.conv2d(padded, weight)[0]
    mean, sd = x[0].mean((1, 2), keepdim=True), x[0].std((1, 2), keepdim=True)
    y = (y - y.mean((1, 2), keepdim=True)) / y.std((1, 2), keepdim=True).clamp_min(1e-6) * sd + mean
    return (a * x[0] + (1 - a) * y).clamp(0.0, 1.0).to(image.dtype)
