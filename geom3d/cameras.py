"""Batched pinhole cameras in the OpenCV convention: the one camera every part of aware3d uses.

Conventions (docs/design.md):
- x right, y down, z forward; world -> camera is `X_cam = R @ X_world + t` (column vectors).
- `K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`; the pixel in row i, column j has its centre at
  (u, v) = (j, i): integer pixel centres, so the image spans [-0.5, W - 0.5] × [-0.5, H - 0.5].
- Any leading batch shape: K, R (..., 3, 3) and t (..., 3) broadcast against each other;
  one image size (H, W) for the whole batch. Every method broadcasts the cameras' batch shape
  against the leading dimensions of its input, and `cameras[index]` indexes the batch only.
- Dtypes (geom3d.dtypes): inputs and camera tensors are promoted to their common floating dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import InitVar, dataclass

import torch

from .dtypes import as_float_tensors, broadcast_shapes, common_float_dtype
from .errors import GeometryError
from .pixels import parse_image_size, pixel_grid, resize_coordinate
from .rotations import check_rotation

__all__ = ["Cameras", "look_at_rotation", "intrinsics_matrix", "fov_to_focal"]


def look_at_rotation(eye: torch.Tensor, target: torch.Tensor, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """World -> camera rotation (OpenCV) of a camera at `eye` looking at `target`: (..., 3, 3).

    The camera's z axis points at the target, its x axis is `forward × up` (to the right in the
    image) and its y axis points down, so `up` appears upwards in the image.
    """
    eye, target, up = as_float_tensors(eye, target, up)
    forward = target - eye
    norm = torch.linalg.vector_norm(forward, dim=-1, keepdim=True)
    if (norm <= 0).any() or not torch.isfinite(norm).all():
        raise GeometryError("look_at: eye and target coincide (or contain NaN)")
    forward = forward / norm
    right = torch.linalg.cross(forward, up.expand_as(forward), dim=-1)
    rnorm = torch.linalg.vector_norm(right, dim=-1, keepdim=True)
    if (rnorm < 1e-9).any():
        raise GeometryError("look_at: the viewing direction is parallel to `up`; pass another up vector")
    right = right / rnorm
    down = torch.linalg.cross(forward, right, dim=-1)
    return torch.stack([right, down, forward], dim=-2)


@dataclass(frozen=True, eq=False)
class Cameras:
    """A batch of pinhole cameras: K (..., 3, 3), R (..., 3, 3), t (..., 3), image_size (H, W).

    Construction checks the input (finite values, a valid K with positive focal lengths and last
    row [0, 0, 1], proper rotations) and raises GeometryError naming the problem; pass
    `check=False` on hot paths where the values are known to be valid.
    """

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    image_size: tuple[int, int]
    check: InitVar[bool] = True

    def __post_init__(self, check: bool) -> None:
        K, R, t = as_float_tensors(self.K, self.R, self.t)
        if K.shape[-2:] != (3, 3) or R.shape[-2:] != (3, 3) or t.shape[-1:] != (3,):
            raise GeometryError(
                f"Cameras need K (..., 3, 3), R (..., 3, 3), t (..., 3); got {tuple(K.shape)}, "
                f"{tuple(R.shape)}, {tuple(t.shape)}"
            )
        try:
            batch = broadcast_shapes(K.shape[:-2], R.shape[:-2], t.shape[:-1])
        except RuntimeError:
            raise GeometryError(
                f"batch shapes of K {tuple(K.shape[:-2])}, R {tuple(R.shape[:-2])} and t "
                f"{tuple(t.shape[:-1])} do not broadcast"
            ) from None
        object.__setattr__(self, "K", K.expand(*batch, 3, 3))
        object.__setattr__(self, "R", R.expand(*batch, 3, 3))
        object.__setattr__(self, "t", t.expand(*batch, 3))
        object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        if check:
            self._check()

    def _check(self) -> None:
        K = self.K.detach()
        if not torch.isfinite(K).all():
            raise GeometryError("K contains NaN or infinite values")
        if not torch.isfinite(self.t.detach()).all():
            raise GeometryError("t contains NaN or infinite values")
        last = torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype, device=K.device)
        if not torch.allclose(K[..., 2, :], last.expand_as(K[..., 2, :])) or (K[..., 1, 0] != 0).any():
            raise GeometryError("K must be upper triangular with last row [0, 0, 1]")
        if (K[..., 0, 0] <= 0).any() or (K[..., 1, 1] <= 0).any():
            raise GeometryError("K is singular or mirrored: focal lengths fx and fy must be positive")
        check_rotation(self.R, "R")

    # ------------------------------------------------------------------ batch plumbing
    @property
    def batch_shape(self) -> torch.Size:
        return self.R.shape[:-2]

    @property
    def dtype(self) -> torch.dtype:
        return self.R.dtype

    @property
    def device(self) -> torch.device:
        return self.R.device

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("an unbatched Cameras has no len()")
        return self.batch_shape[0]

    def __getitem__(self, index) -> Cameras:
        """Index the batch dimensions only: `cams[0]`, `cams[:, 1]`, `cams[..., 0]`, `cams[mask]`."""
        if not self.batch_shape:
            raise IndexError("an unbatched Cameras cannot be indexed")
        index = index if isinstance(index, tuple) else (index,)
        full = slice(None)
        try:
            K, R, t = self.K[(*index, full, full)], self.R[(*index, full, full)], self.t[(*index, full)]
        except IndexError as exc:
            raise IndexError(f"{exc} (Cameras of batch shape {tuple(self.batch_shape)})") from None
        return Cameras(K, R, t, self.image_size, check=False)

    def to(self, device=None, dtype=None) -> Cameras:
        def move(x):
            return x.to(device=device, dtype=dtype)

        return Cameras(move(self.K), move(self.R), move(self.t), self.image_size, check=False)

    def reshape(self, *shape: int) -> Cameras:
        return Cameras(
            self.K.reshape(*shape, 3, 3), self.R.reshape(*shape, 3, 3), self.t.reshape(*shape, 3),
            self.image_size, check=False,
        )

    def expand(self, *shape: int) -> Cameras:
        return Cameras(self.K.expand(*shape, 3, 3), self.R.expand(*shape, 3, 3), self.t.expand(*shape, 3),
                       self.image_size, check=False)

    @staticmethod
    def cat(cameras: Sequence[Cameras]) -> Cameras:
        """Concatenate cameras of the same image size along the first batch dimension."""
        sizes = {c.image_size for c in cameras}
        if len(sizes) != 1:
            raise GeometryError(f"cannot concatenate cameras of different image sizes {sorted(sizes)}")
        return Cameras(torch.cat([c.K for c in cameras]), torch.cat([c.R for c in cameras]),
                       torch.cat([c.t for c in cameras]), sizes.pop(), check=False)

    def replace(self, *, K=None, R=None, t=None, image_size=None, check: bool = True) -> Cameras:
        """A copy with some fields replaced (validated unless check=False)."""
        return Cameras(
            self.K if K is None else K, self.R if R is None else R, self.t if t is None else t,
            self.image_size if image_size is None else image_size, check=check,
        )

    # ------------------------------------------------------------------ intrinsics
    @property
    def fx(self) -> torch.Tensor:
        return self.K[..., 0, 0]

    @property
    def fy(self) -> torch.Tensor:
        return self.K[..., 1, 1]

    @property
    def cx(self) -> torch.Tensor:
        return self.K[..., 0, 2]

    @property
    def cy(self) -> torch.Tensor:
        return self.K[..., 1, 2]

    @property
    def height(self) -> int:
        return self.image_size[0]

    @property
    def width(self) -> int:
        return self.image_size[1]

    def projection_matrix(self) -> torch.Tensor:
        """P = K [R | t]: (..., 3, 4)."""
        return self.K @ torch.cat([self.R, self.t[..., None]], dim=-1)

    def camera_centres(self) -> torch.Tensor:
        """Camera centres in world coordinates, C = −Rᵀt: (..., 3)."""
        return -(self.R.transpose(-1, -2) @ self.t[..., None])[..., 0]

    # ------------------------------------------------------------------ projection
    def _promoted(self, *values) -> list[torch.Tensor]:
        """values, K, R, t in their common floating dtype and device (the dtype rule)."""
        return as_float_tensors(*values, self.K, self.R, self.t)

    @staticmethod
    def _check_last(name: str, x: torch.Tensor, size: int, what: str) -> None:
        if x.ndim < 2 or x.shape[-1] != size:
            raise GeometryError(f"{name} must have shape (..., N, {size}) ({what}), got {tuple(x.shape)}")

    def world_to_camera(self, points) -> torch.Tensor:
        """World points (..., N, 3) to camera coordinates (..., N, 3); batch dims broadcast."""
        points, _, R, t = self._promoted(points)
        self._check_last("points", points, 3, "world coordinates")
        return points @ R.transpose(-1, -2) + t[..., None, :]

    def camera_to_world(self, points) -> torch.Tensor:
        """Camera coordinates (..., N, 3) to world points (..., N, 3); batch dims broadcast."""
        points, _, R, t = self._promoted(points)
        self._check_last("points", points, 3, "camera coordinates")
        return (points - t[..., None, :]) @ R

    def camera_to_pixels(self, points) -> torch.Tensor:
        """Camera coordinates (..., N, 3) to pixel coordinates (..., N, 2). Points must have z > 0."""
        points, K, _, _ = self._promoted(points)
        self._check_last("points", points, 3, "camera coordinates")
        K = K[..., None, :, :]
        x, y, z = points.unbind(-1)
        xn, yn = x / z, y / z
        u = K[..., 0, 0] * xn + K[..., 0, 1] * yn + K[..., 0, 2]
        v = K[..., 1, 1] * yn + K[..., 1, 2]
        return torch.stack([u, v], dim=-1)

    def project(self, points, return_depth: bool = False):
        """World points (..., N, 3) to pixel coordinates (..., N, 2) (and camera depth (..., N)).

        The cameras' batch shape broadcasts against the points' leading dimensions: (N, 3) points
        and (B,) cameras give (B, N, 2). Points behind the camera (depth ≤ 0) project to
        meaningless pixels: use `return_depth=True` to mask them.
        """
        cam = self.world_to_camera(points)
        uv = self.camera_to_pixels(cam)
        return (uv, cam[..., 2]) if return_depth else uv

    def unproject_points(self, pixels, depth) -> torch.Tensor:
        """Pixels (..., N, 2) with camera depth z (..., N) to world points (..., N, 3); batch dims broadcast."""
        pixels, depth, K, _, _ = self._promoted(pixels, depth)
        self._check_last("pixels", pixels, 2, "(u, v)")
        K = K[..., None, :, :]
        u, v = pixels.unbind(-1)
        yn = (v - K[..., 1, 2]) / K[..., 1, 1]
        xn = (u - K[..., 0, 2] - K[..., 0, 1] * yn) / K[..., 0, 0]
        xn, yn, depth = torch.broadcast_tensors(xn, yn, depth)
        cam = torch.stack([xn * depth, yn * depth, depth], dim=-1)
        return self.camera_to_world(cam)

    def unproject(self, depth) -> torch.Tensor:
        """A depth map (..., H, W) of camera z to world points (..., H, W, 3), one per pixel centre.

        The depth's leading dimensions broadcast against the cameras' batch shape (as in
        `project`): an (H, W) depth and (B,) cameras give (B, H, W, 3).
        """
        (depth,) = as_float_tensors(depth, dtype=common_float_dtype(depth, self.R))
        h, w = self.image_size
        if depth.ndim < 2 or depth.shape[-2:] != (h, w):
            raise GeometryError(f"depth map of shape {tuple(depth.shape)} does not match image size {(h, w)}")
        grid = pixel_grid((h, w), dtype=depth.dtype, device=depth.device).reshape(h * w, 2)
        pts = self.unproject_points(grid, depth.reshape(*depth.shape[:-2], h * w))
        return pts.reshape(*pts.shape[:-2], h, w, 3)

    # ------------------------------------------------------------------ image-space edits
    def crop(self, left, top, height: int, width: int) -> Cameras:
        """The cameras of the sub-image whose top-left pixel is (left, top) in this image.

        left, top: numbers or tensors broadcasting against the batch shape.
        """
        left, top, K = as_float_tensors(left, top, self.K)
        offset = torch.stack(torch.broadcast_tensors(left, top), dim=-1)
        R, t = as_float_tensors(self.R, self.t, dtype=K.dtype, device=K.device)
        return Cameras(_shift_principal(K, -offset), R, t, (height, width), check=False)

    def pad(self, left: int = 0, top: int = 0, right: int = 0, bottom: int = 0) -> Cameras:
        """The cameras of this image padded by the given number of pixels on each side."""
        h, w = self.image_size
        return self.crop(-left, -top, h + top + bottom, w + left + right)

    def resize(self, image_size: Sequence[int]) -> Cameras:
        """The cameras of this image resampled to `image_size` (H, W), edges kept on edges.

        Pixel edges map to pixel edges, so with integer pixel centres u' = s·(u + ½) − ½
        (`geom3d.resize_coordinate`); the focal lengths and skew scale by s.
        """
        h, w = self.image_size
        nh, nw = parse_image_size(image_size)
        sx, sy = nw / w, nh / h
        K = self.K
        row0 = torch.stack([K[..., 0, 0] * sx, K[..., 0, 1] * sx, resize_coordinate(K[..., 0, 2], sx)], dim=-1)
        row1 = torch.stack([K[..., 1, 0] * sy, K[..., 1, 1] * sy, resize_coordinate(K[..., 1, 2], sy)], dim=-1)
        return Cameras(torch.stack([row0, row1, K[..., 2, :]], dim=-2), self.R, self.t, (nh, nw), check=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def look_at(cls, eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), *, K=None, focal=None,
                image_size=(256, 256)) -> Cameras:
        """Cameras at `eye` (..., 3) looking at `target`, `up` upwards in the image.

        Give either a full K or a focal length in pixels (principal point at the image centre).
        """
        h, w = parse_image_size(image_size)
        eye, target, up = as_float_tensors(eye, target, up)
        R = look_at_rotation(eye, target, up)
        t = -(R @ eye[..., None])[..., 0]
        if K is None:
            if focal is None:
                raise GeometryError("look_at needs K or focal")
            K = intrinsics_matrix(focal, focal, (w - 1) / 2, (h - 1) / 2, dtype=R.dtype)
        return cls(K, R, t, (h, w))

    def __repr__(self) -> str:
        return (f"Cameras(batch_shape={tuple(self.batch_shape)}, image_size={self.image_size}, "
                f"dtype={self.dtype}, device={self.device})")


def _shift_principal(K: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """K with (cx, cy) moved by offset (..., 2), out of place (so gradients reach K and offset)."""
    shift = torch.zeros(*offset.shape[:-1], 3, 3, dtype=K.dtype, device=K.device)
    shift = shift + torch.nn.functional.pad(offset[..., None], (2, 0, 0, 1))
    return K + shift


def intrinsics_matrix(fx, fy, cx, cy, dtype=None, device=None) -> torch.Tensor:
    """K from focal lengths and principal point (broadcast tensors or floats): (..., 3, 3)."""
    fx, fy, cx, cy = as_float_tensors(fx, fy, cx, cy)
    if dtype is not None or device is not None:
        fx, fy, cx, cy = (v.to(dtype=dtype, device=device) for v in (fx, fy, cx, cy))
    fx, fy, cx, cy = torch.broadcast_tensors(fx, fy, cx, cy)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], dim=-1).reshape(*fx.shape, 3, 3)


def fov_to_focal(fov: float, size: int) -> float:
    """Focal length in pixels giving a field of view `fov` (radians) across `size` pixels."""
    return 0.5 * size / math.tan(0.5 * fov)
