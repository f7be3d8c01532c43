"""orbit4d inputs and camera files: frames (MP4 or folder), masks, depth arrays, global_camera.json.

- `read_frames(source)`: an MP4 (or any video OpenCV reads) or a folder of JPEG/PNG frames →
  uint8 (T, H, W, 3) RGB and the frame names (file stems; "00000", … for a video).
- `read_masks(folder, names, image_size, object_id)`: binary or palette PNGs named like the
  frames; a palette mask keeps one object id (any non-zero label when None). A mask whose size
  differs from the frames is resized (nearest) with a warning (another aspect ratio, beyond 10%, is
  an error); frames without a mask file take
  the nearest masked frame's mask, with a warning (`MaskSet.filled` says which).
- `read_depth(folder, names, image_size)`: one `<name>.npy` per frame, metric camera z (H, W).
- `read_cameras` / `write_cameras`: FreeOrbit4D's `global_camera.json`:
  `{"image_size": [H, W], "<frame>": {"extrinsic": 3×4 world-to-camera, "intrinsic": 3×3}, …}`.

Every problem with an input file raises `Orbit4DInputError` naming the file.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from aware3d_utils import IMAGE_SUFFIXES
from geom3d import Cameras, GeometryError

__all__ = ["Orbit4DInputError", "read_frames", "read_masks", "MaskSet", "read_depth", "read_cameras",
           "write_cameras", "cameras_to_dict"]


class Orbit4DInputError(ValueError):
    """An input that cannot be used: names the file (or folder) and the problem."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def read_frames(source: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Frames as uint8 (T, H, W, 3) RGB and their names. All frames must share one size."""
    source = Path(source)
    frames, names = [], []
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise Orbit4DInputError(source, "holds no image frames (.jpg, .png, …)")
        for p in files[:max_frames]:
            try:
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            except cv2.error as exc:  # OpenCV's size limit (a header claiming too many pixels), a bad codec
                raise Orbit4DInputError(p, f"cannot be read as an image ({' '.join(str(exc).split())})") from None
            if img is None:
                raise Orbit4DInputError(p, "cannot be read as an image")
            frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            names.append(p.stem)
    elif source.is_file():
        cap = cv2.VideoCapture(str(source))
        if not cap.isOpened():
            raise Orbit4DInputError(source, "cannot be opened as a video")
        while max_frames is None or len(frames) < max_frames:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            names.append(f"{len(names):05d}")
        cap.release()
        if not frames:
            raise Orbit4DInputError(source, "holds no decodable video frames")
    else:
        raise Orbit4DInputError(source, "no such video file or frame folder")
    sizes = {f.shape for f in frames}
    if len(sizes) != 1:
        raise Orbit4DInputError(source, f"frames differ in size: {sorted(sizes)}")
    return np.stack(frames), names


@dataclass(frozen=True)
class MaskSet:
    """masks (T, H, W) bool; given (T,) bool: a mask file existed; filled: names whose mask was
    copied from the nearest masked frame; resized: names of masks resized to the frames."""

    masks: np.ndarray
    given: np.ndarray
    filled: tuple[str, ...]
    resized: tuple[str, ...]


def _read_mask(path: Path, object_id: int | None) -> np.ndarray:
    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:
        raise Orbit4DInputError(path, f"cannot be read as a mask image ({exc})") from None
    if img.mode == "P":  # palette: the pixel values are object ids
        labels = np.asarray(img)
        return labels > 0 if object_id is None else labels == int(object_id)
    arr = np.asarray(img.convert("L"))
    if object_id is not None and object_id not in (0, 1, 255):
        raise Orbit4DInputError(path, f"is a binary mask (mode {img.mode}); object id {object_id} needs a palette PNG")
    return arr > 127 if arr.max() > 1 else arr > 0


def read_masks(folder: str | os.PathLike, names: list[str], image_size, object_id: int | None = None) -> MaskSet:
    """Masks for the frames `names` (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Orbit4DInputError(folder, "no such mask folder")
    h, w = image_size
    masks = np.zeros((len(names), h, w), dtype=bool)
    given = np.zeros(len(names), dtype=bool)
    resized = []
    for i, name in enumerate(names):
        path = next((folder / f"{name}{s}" for s in (".png", ".PNG") if (folder / f"{name}{s}").is_file()), None)
        if path is None:
            continue
        m = _read_mask(path, object_id)
        _same_aspect(path, "mask", m.shape, (h, w))
        if m.shape != (h, w):
            warnings.warn(f"{path}: mask is {m.shape[1]}×{m.shape[0]}, frames are {w}×{h}; resized (nearest)",
                          stacklevel=2)
            m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            resized.append(name)
        masks[i], given[i] = m, True
    if not given.any():
        raise Orbit4DInputError(folder, f"holds no mask named like the frames ({names[0]}.png, …)")
    if object_id is not None and not masks[given].any():
        raise Orbit4DInputError(folder, f"no mask contains object id {object_id}")
    if not masks[given].any():
        raise Orbit4DInputError(folder, "every mask is empty: no foreground to reconstruct")
    filled = []
    idx = np.flatnonzero(given)
    for i in np.flatnonzero(~given):
        j = idx[np.argmin(np.abs(idx - i))]
        masks[i] = masks[j]
        filled.append(names[i])
    if filled:
        warnings.warn(f"{folder}: {len(filled)} frames have no mask file; each takes its nearest masked frame's "
                      f"mask ({', '.join(filled[:4])}{', …' if len(filled) > 4 else ''})", stacklevel=2)
    return MaskSet(masks, given, tuple(filled), tuple(resized))


def _same_aspect(path, what: str, shape, image_size, tolerance: float = 0.1) -> None:
    """An error naming the file when a mask or depth map has another aspect ratio than the frames (beyond
    `tolerance`): resizing it would stretch it over other pixels (it belongs to other frames)."""
    (a, b), (h, w) = shape[:2], image_size
    if abs((a * w) / (b * h) - 1) > tolerance:
        raise Orbit4DInputError(path, f"{what} is {b}×{a}, frames are {w}×{h}: another aspect ratio (the {what} of "
                                      f"other frames?); give one of the frames' shape")


def read_depth(folder: str | os.PathLike, names: list[str], image_size) -> np.ndarray:
    """float32 (T, H, W) camera z from `<name>.npy` files (non-finite and <= 0 mean no depth)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Orbit4DInputError(folder, "no such depth folder")
    h, w = image_size
    out = np.zeros((len(names), h, w), dtype=np.float32)
    for i, name in enumerate(names):
        path = folder / f"{name}.npy"
        if not path.is_file():
            raise Orbit4DInputError(path, "depth array missing for this frame")
        try:
            d = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise Orbit4DInputError(path, f"cannot be read as a .npy array ({exc})") from None
        d = np.squeeze(d)
        if d.ndim != 2 or not np.issubdtype(d.dtype, np.number):
            raise Orbit4DInputError(path, f"depth must be a numeric (H, W) array, got {d.dtype} {d.shape}")
        _same_aspect(path, "depth", d.shape, (h, w))
        if d.shape != (h, w):
            warnings.warn(f"{path}: depth is {d.shape[1]}×{d.shape[0]}, frames are {w}×{h}; resized (nearest)",
                          stacklevel=2)
            d = cv2.resize(d.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
        if not (np.isfinite(d) & (d > 0)).any():
            raise Orbit4DInputError(path, "holds no positive finite depth")
        out[i] = d
    return out


def cameras_to_dict(cameras: Cameras, names: list[str]) -> dict:
    """The `global_camera.json` form of cameras (T,) for frames `names`."""
    cams = cameras.to(dtype=torch.float64)
    ext = torch.cat([cams.R, cams.t[..., None]], -1)
    data: dict = {"image_size": list(cams.image_size)}
    for i, name in enumerate(names):
        data[name] = {"extrinsic": ext[i].tolist(), "intrinsic": cams.K[i].tolist()}
    return data


def write_cameras(file: str | os.PathLike, cameras: Cameras, names: list[str]) -> None:
    from aware3d_utils.atomic import atomic_write_text

    atomic_write_text(file, json.dumps(cameras_to_dict(cameras, names), indent=1))


def read_json(file: Path):
    """The JSON in `file`, or an Orbit4DInputError naming it."""
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise Orbit4DInputError(file, f"cannot be read as JSON ({exc})") from None


def read_cameras(file: str | os.PathLike, names: list[str], image_size=None) -> Cameras:
    """Cameras (T,) float64 for frames `names` from a `global_camera.json`; a camera file for
    another image size is rescaled to `image_size` (edges kept on edges)."""
    file = Path(file)
    data = read_json(file)
    if not isinstance(data, dict):
        raise Orbit4DInputError(file, "must hold an object keyed by frame name")
    size = data.get("image_size", image_size)
    if size is None or len(size) != 2:
        raise Orbit4DInputError(file, "has no image_size [H, W]")
    Ks, Rs, ts = [], [], []
    for name in names:
        entry = data.get(name)
        if entry is None:
            raise Orbit4DInputError(file, f"has no camera for frame {name!r}")
        try:
            ext = np.asarray(entry["extrinsic"], dtype=np.float64)
            K = np.asarray(entry["intrinsic"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise Orbit4DInputError(file, f"frame {name!r}: needs numeric extrinsic and intrinsic ({exc})") from None
        ext = ext[:3] if ext.shape == (4, 4) else ext
        if ext.shape != (3, 4) or K.shape != (3, 3):
            raise Orbit4DInputError(file, f"frame {name!r}: extrinsic must be 3×4 and intrinsic 3×3")
        Ks.append(K)
        Rs.append(ext[:, :3])
        ts.append(ext[:, 3])
    try:
        cams = Cameras(torch.from_numpy(np.stack(Ks)), torch.from_numpy(np.stack(Rs)), torch.from_numpy(np.stack(ts)),
                       tuple(int(s) for s in size))
    except GeometryError as exc:
        raise Orbit4DInputError(file, str(exc)) from None
    if image_size is not None and tuple(image_size) != cams.image_size:
        warnings.warn(f"{file}: cameras are for {cams.image_size}, frames are {tuple(image_size)}; intrinsics rescaled",
                      stacklevel=2)
        cams = cams.resize(image_size)
    return cams
