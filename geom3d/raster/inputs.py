"""Checking and batching the rasterizer's input: meshes, faces and cameras to one batch of B views.

Two batch directions share one code path:
- one mesh, many cameras: vertices (V, 3), cameras of batch shape (B,);
- many meshes: vertices (B, V, 3) (faces (F, 3) shared, or (B, F, 3) per mesh), cameras of batch
  shape (B,) or () (one camera for all).
Meshes of different sizes are padded into one batch by `pad_meshes` (degenerate padding faces
cover no pixel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..cameras import Cameras, _image_size
from ..errors import GeometryError

__all__ = ["RasterInputs", "prepare", "pad_meshes", "camera_coordinates"]


@dataclass(frozen=True)
class RasterInputs:
    """One checked batch: camera-space vertices (B, V, 3), faces (F, 3) or (B, F, 3) int64,
    intrinsics K (B, 3, 3), image size (H, W)."""

    verts_cam: torch.Tensor
    faces: torch.Tensor
    K: torch.Tensor
    image_size: tuple[int, int]

    @property
    def batch(self) -> int:
        return int(self.verts_cam.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.verts_cam.shape[1])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[-2])

    def corner_rows(self) -> torch.Tensor:
        """Rows of `verts_cam.reshape(B * V, 3)` holding each face's corners, per view: (B, F, 3)."""
        B, V = self.batch, self.num_vertices
        base = (torch.arange(B, device=self.faces.device) * V)[:, None, None]
        per_view = self.faces if self.faces.ndim == 3 else self.faces.expand(B, -1, -1)
        return per_view + base


def camera_coordinates(vertices: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """X_cam = R X + t for vertices (..., V, 3) and R (B, 3, 3), t (B, 3): (B, V, 3).

    Written with elementwise products rather than a matmul so that equal vertices always map to
    bit-identical camera coordinates (a blocked GEMM may round rows differently), which keeps the
    rasterizer's shared-edge tie rule exact.
    """
    x, y, z = vertices.unbind(-1)  # (..., V)
    R = R[:, None]  # (B, 1, 3, 3): entries broadcast as (B, 1) against (..., V)
    rows = [((x * R[..., i, 0] + y * R[..., i, 1]) + z * R[..., i, 2]) + t[:, None, i] for i in range(3)]
    return torch.stack(rows, dim=-1)


def _merge_batch(who: str, sizes: dict[str, int | None]) -> int:
    """The common batch size B of the inputs; each is unbatched (None), of size 1, or of size B."""
    batched = {name: size for name, size in sizes.items() if size is not None and size != 1}
    if len(set(batched.values())) > 1:
        listed = ", ".join(f"{name} {size}" for name, size in batched.items())
        raise GeometryError(f"{who}: batch sizes do not match ({listed})")
    return next(iter(batched.values()), 1)


def prepare(vertices, faces, cameras: Cameras, image_size=None, *, who: str = "rasterize") -> RasterInputs:
    """Check a (vertices, faces, cameras) triple and bring it to one batch of B views.

    Raises GeometryError naming the problem: an empty mesh, non-finite vertices, face indices out
    of range, mismatched batch sizes, or cameras that are not a `Cameras` of batch shape () or (B,).
    """
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"{who}: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if cameras.R.ndim > 3:
        raise GeometryError(f"{who}: cameras must have batch shape () or (B,), got {tuple(cameras.batch_shape)}; "
                            "reshape them first")
    vertices = torch.as_tensor(vertices)
    if not vertices.is_floating_point():
        raise GeometryError(f"{who}: vertices must be floating point, got {vertices.dtype}")
    if vertices.ndim not in (2, 3) or vertices.shape[-1] != 3:
        raise GeometryError(f"{who}: vertices must have shape (V, 3) or (B, V, 3), got {tuple(vertices.shape)}")
    faces = torch.as_tensor(faces, device=vertices.device)
    if faces.is_floating_point() or faces.dtype == torch.bool or faces.is_complex():
        raise GeometryError(f"{who}: faces must be an integer tensor, got {faces.dtype}")
    if faces.ndim not in (2, 3) or faces.shape[-1] != 3:
        raise GeometryError(f"{who}: faces must have shape (F, 3) or (B, F, 3), got {tuple(faces.shape)}")
    V, F = vertices.shape[-2], faces.shape[-2]
    if V == 0 or F == 0:
        raise GeometryError(f"{who}: the mesh is empty ({V} vertices, {F} faces)")
    faces = faces.long()
    lo, hi = int(faces.min()), int(faces.max())
    if lo < 0 or hi >= V:
        raise GeometryError(f"{who}: face indices must lie in [0, {V}) (the number of vertices), "
                            f"got indices from {lo} to {hi}")
    finite = torch.isfinite(vertices.detach()).all(dim=-1).all(dim=-1)
    if not bool(finite.all()):
        where = "" if vertices.ndim == 2 else f" (mesh {int((~finite).nonzero()[0, 0])} of the batch)"
        raise GeometryError(f"{who}: vertices contain NaN or infinite values{where}")

    B = _merge_batch(who, {
        "cameras": None if cameras.R.ndim == 2 else int(cameras.R.shape[0]),
        "vertices": None if vertices.ndim == 2 else int(vertices.shape[0]),
        "faces": None if faces.ndim == 2 else int(faces.shape[0]),
    })
    if B == 0:
        raise GeometryError(f"{who}: nothing to render (a batch of 0 cameras or meshes)")
    if faces.ndim == 3 and faces.shape[0] != B:
        faces = faces.expand(B, -1, -1)

    dtype = torch.promote_types(vertices.dtype, cameras.dtype)
    device = vertices.device
    K = cameras.K.to(device=device, dtype=dtype).reshape(-1, 3, 3).expand(B, 3, 3)
    R = cameras.R.to(device=device, dtype=dtype).reshape(-1, 3, 3).expand(B, 3, 3)
    t = cameras.t.to(device=device, dtype=dtype).reshape(-1, 3).expand(B, 3)
    verts_cam = camera_coordinates(vertices.to(dtype), R, t)
    if verts_cam.shape[0] != B:
        verts_cam = verts_cam.expand(B, -1, -1)
    size = cameras.image_size if image_size is None else _image_size(image_size)
    return RasterInputs(verts_cam, faces, K, size)


def pad_meshes(meshes: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack meshes of different sizes into one batch: vertices (B, Vmax, 3), faces (B, Fmax, 3).

    `meshes` holds `geom3d.Mesh` objects or (vertices (V, 3), faces (F, 3)) pairs. Missing vertices
    are zeros and missing faces are [0, 0, 0], a degenerate triangle that covers no pixel, so
    `pix_to_face` of view b indexes mesh b's own faces.
    """
    pairs = [(m.vertices, m.faces) if hasattr(m, "faces") else (torch.as_tensor(m[0]), torch.as_tensor(m[1]))
             for m in meshes]
    if not pairs:
        raise GeometryError("pad_meshes needs at least one mesh")
    vmax = max(int(v.shape[0]) for v, _ in pairs)
    fmax = max(int(f.shape[0]) for _, f in pairs)
    dtype = pairs[0][0].dtype
    for v, _ in pairs[1:]:
        dtype = torch.promote_types(dtype, v.dtype)
    device = pairs[0][0].device
    verts = torch.zeros(len(pairs), vmax, 3, dtype=dtype, device=device)
    faces = torch.zeros(len(pairs), fmax, 3, dtype=torch.int64, device=device)
    for i, (v, f) in enumerate(pairs):
        verts[i, : v.shape[0]] = v.to(device=device, dtype=dtype)
        faces[i, : f.shape[0]] = f.to(device=device, dtype=torch.int64)
    return verts, faces
