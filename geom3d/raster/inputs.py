"""Checking and batching the rasterizer's input: a mesh (or M meshes) and cameras to one flat batch.

The mesh argument is a `geom3d.Mesh`, a `PaddedMeshes` bank from `pad_meshes`, or a pair
(vertices, faces): vertices (V, 3) or (M, V, 3), faces (F, 3) shared or (M, F, 3) per mesh.

Batch rule. Cameras of any batch shape S give results of leading shape S. One mesh is seen by every
camera. M meshes pair with the *leading* camera dimension: cameras (M, P, ...) (or (1, P, ...),
or () for one camera per mesh) render mesh m in row m, so images × hypotheses need no copy of the
vertices; the result shape is S with its first dimension broadcast to M. Internally all views are
flattened to B = prod(S) and `mesh_index` (B,) maps each view to its mesh row.

Dtype rule: vertices, intrinsics and poses are promoted to their common floating dtype
(torch.promote_types; integer vertices become the default float), and every float result has it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..cameras import Cameras
from ..errors import GeometryError
from ..pixels import parse_image_size

__all__ = ["RasterInputs", "PaddedMeshes", "prepare", "pad_meshes", "check_mesh", "mesh_arrays", "camera_coordinates",
           "result_batch_shape"]


@dataclass(frozen=True, eq=False)
class PaddedMeshes:
    """M meshes of different sizes in one padded bank (from `pad_meshes`).

    vertices (M, Vmax, 3): missing rows are zeros. faces (M, Fmax, 3) int64: missing rows are
    [0, 0, 0], a degenerate triangle that covers no pixel, so `pix_to_face` of mesh m indexes mesh m's
    own faces. vertex_counts, face_counts (M,) int64. attributes (M, Vmax, C) or None: padded
    per-vertex attributes (zeros in the padding). Padded vertices belong to no face, so
    `vertex_visibility` never reports them visible.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    vertex_counts: torch.Tensor
    face_counts: torch.Tensor
    attributes: torch.Tensor | None = field(default=None, repr=False)

    @property
    def num_meshes(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def vertex_mask(self) -> torch.Tensor:
        """(M, Vmax) bool: True for real vertices, False for padding."""
        steps = torch.arange(self.vertices.shape[1], device=self.vertices.device)
        return steps < self.vertex_counts.to(steps.device)[:, None]

    @property
    def face_mask(self) -> torch.Tensor:
        """(M, Fmax) bool: True for real faces, False for padding."""
        steps = torch.arange(self.faces.shape[1], device=self.faces.device)
        return steps < self.face_counts.to(steps.device)[:, None]

    def __repr__(self) -> str:
        return (f"PaddedMeshes({self.num_meshes} meshes, up to {self.vertices.shape[1]} vertices and "
                f"{self.faces.shape[1]} faces, dtype={self.vertices.dtype})")


@dataclass(frozen=True)
class RasterInputs:
    """One checked batch of B = prod(batch_shape) views: camera-space vertices (B, V, 3), faces
    (F, 3) shared or (M, F, 3) per mesh with `mesh_index` (B,) (None for shared faces), intrinsics
    K (B, 3, 3), image size (H, W), and the cameras' broadcast batch shape."""

    verts_cam: torch.Tensor
    faces: torch.Tensor
    K: torch.Tensor
    image_size: tuple[int, int]
    batch_shape: tuple[int, ...]
    mesh_index: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return int(self.verts_cam.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.verts_cam.shape[1])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[-2])

    def view_faces(self, views: slice | None = None) -> torch.Tensor:
        """Faces of the given views: (F, 3) when shared, else (b, F, 3)."""
        if self.faces.ndim == 2:
            return self.faces
        index = self.mesh_index if views is None else self.mesh_index[views]
        return self.faces.index_select(0, index)

    def corner_rows(self) -> torch.Tensor:
        """Rows of `verts_cam.reshape(B * V, 3)` holding each face's corners, per view: (B, F, 3)."""
        B, V = self.batch, self.num_vertices
        base = (torch.arange(B, device=self.faces.device) * V)[:, None, None]
        per_view = self.view_faces()
        return (per_view if per_view.ndim == 3 else per_view.expand(B, -1, -1)) + base


def camera_coordinates(vertices: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """X_cam = R X + t for vertices (..., V, 3), R (..., 3, 3), t (..., 3) (batch dims broadcast):
    (..., V, 3).

    Written with elementwise products rather than a matmul so that equal vertices always map to
    bit-identical camera coordinates (a blocked GEMM may round rows differently), which keeps the
    rasterizer's shared-edge tie rule exact.
    """
    x, y, z = vertices.unbind(-1)  # (..., V)
    R = R[..., None, :, :]  # entries (..., 1) broadcast against (..., V)
    rows = [((x * R[..., i, 0] + y * R[..., i, 1]) + z * R[..., i, 2]) + t[..., None, i] for i in range(3)]
    return torch.stack(rows, dim=-1)


def mesh_arrays(mesh, who: str = "rasterize"):
    """(vertices, faces) of a `Mesh`, a `PaddedMeshes` or a (vertices, faces) pair, as given."""
    if isinstance(mesh, PaddedMeshes) or (hasattr(mesh, "vertices") and hasattr(mesh, "faces")):
        return mesh.vertices, mesh.faces
    if isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        return mesh[0], mesh[1]
    raise GeometryError(f"{who}: mesh must be a geom3d.Mesh, a PaddedMeshes or a (vertices, faces) pair, "
                        f"got {type(mesh).__name__}")


def result_batch_shape(who: str, camera_shape: tuple[int, ...], meshes: int | None) -> tuple[int, ...]:
    """The batch shape of the result: the cameras' shape, its first dimension paired with M meshes."""
    if meshes is None:
        return camera_shape
    if not camera_shape:
        return (meshes,)
    if camera_shape[0] not in (1, meshes) and meshes != 1:
        raise GeometryError(f"{who}: batch sizes do not match ({meshes} meshes against cameras of batch shape "
                            f"{camera_shape}; meshes pair with the cameras' first dimension)")
    return (max(camera_shape[0], meshes),) + camera_shape[1:]


def check_mesh(who: str, vertices, faces):
    """Validate one (vertices, faces) pair or bank (shapes, dtypes, index range); errors name `who`.
    Returns them as tensors: floating vertices (integers become the default float), int64 faces."""
    vertices = torch.as_tensor(vertices)
    if vertices.dtype == torch.bool or vertices.is_complex():
        raise GeometryError(f"{who}: vertices must be real numbers, got {vertices.dtype}")
    if not vertices.is_floating_point():
        vertices = vertices.to(torch.get_default_dtype())
    if vertices.ndim not in (2, 3) or vertices.shape[-1] != 3:
        raise GeometryError(f"{who}: vertices must have shape (V, 3) or (M, V, 3), got {tuple(vertices.shape)}")
    faces = torch.as_tensor(faces, device=vertices.device)
    if faces.is_floating_point() or faces.dtype == torch.bool or faces.is_complex():
        raise GeometryError(f"{who}: faces must be an integer tensor, got {faces.dtype}")
    if faces.ndim not in (2, 3) or faces.shape[-1] != 3:
        raise GeometryError(f"{who}: faces must have shape (F, 3) or (M, F, 3), got {tuple(faces.shape)}")
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
    return vertices, faces


def prepare(mesh, cameras: Cameras, image_size=None, *, who: str = "rasterize") -> RasterInputs:
    """Check a (mesh, cameras, image_size) triple and bring it to one flat batch of views.

    Raises GeometryError naming the problem: an empty mesh, non-finite vertices, face indices out
    of range, mesh and camera batches that do not pair, cameras that are not a `Cameras`, or an
    image_size different from the cameras' own.
    """
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"{who}: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    vertices, faces = check_mesh(who, *mesh_arrays(mesh, who))
    size = cameras.image_size
    if image_size is not None and parse_image_size(image_size) != size:
        raise GeometryError(f"{who}: image_size {parse_image_size(image_size)} differs from the cameras' image size "
                            f"{size}; use cameras.resize / crop / pad to change the canvas")
    counts = {name: int(x.shape[0]) for name, x in (("vertices", vertices), ("faces", faces)) if x.ndim == 3}
    if len({c for c in counts.values() if c != 1}) > 1:
        raise GeometryError(f"{who}: batch sizes do not match ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    M = max(counts.values()) if counts else None
    if M == 1:  # one mesh, written batched
        vertices = vertices[0] if vertices.ndim == 3 else vertices
        faces, M = (faces[0] if faces.ndim == 3 else faces), None
    shape = result_batch_shape(who, tuple(cameras.batch_shape), M)
    B = math.prod(shape)
    if B == 0:
        raise GeometryError(f"{who}: nothing to render (a batch of 0 cameras or meshes)")

    dtype = torch.promote_types(vertices.dtype, cameras.dtype)
    device = vertices.device
    K, R, t = (x.to(device=device, dtype=dtype) for x in (cameras.K, cameras.R, cameras.t))
    mesh_index = None
    if M is None:
        verts_cam = camera_coordinates(vertices.to(dtype), R.reshape(-1, 3, 3), t.reshape(-1, 3))
        verts_cam = verts_cam.expand(B, -1, -1) if verts_cam.shape[0] != B else verts_cam
    else:
        # group the views by mesh: (M, P) with P = B / M, vertices (M, 1, V, 3) broadcast over P
        P = B // M
        Rm = R.expand(*shape, 3, 3).reshape(M, P, 3, 3)
        tm = t.expand(*shape, 3).reshape(M, P, 3)
        v = vertices.to(dtype)
        v = v.expand(M, -1, -1) if v.shape[0] != M else v
        verts_cam = camera_coordinates(v[:, None], Rm, tm).reshape(B, -1, 3)
        if faces.ndim == 3:
            faces = faces.expand(M, -1, -1) if faces.shape[0] != M else faces
            mesh_index = torch.arange(M, device=device).repeat_interleave(P)
    K = K.expand(*shape, 3, 3).reshape(B, 3, 3)
    return RasterInputs(verts_cam, faces, K, size, shape, mesh_index)


def pad_meshes(meshes: Sequence, attributes: Sequence | None = None) -> PaddedMeshes:
    """Pack meshes of different sizes into one `PaddedMeshes` bank: vertices (M, Vmax, 3), faces
    (M, Fmax, 3), their counts, and optionally per-vertex attributes padded to (M, Vmax, C).

    `meshes` holds `geom3d.Mesh` objects or (vertices (V, 3), faces (F, 3)) pairs; `attributes`
    one (V_m, C) tensor per mesh. Vertices and attributes are promoted to their common dtype.
    Missing vertices are zeros and missing faces are [0, 0, 0] (degenerate: they cover no pixel).
    """
    pairs = [mesh_arrays(m, "pad_meshes") for m in meshes]
    if not pairs:
        raise GeometryError("pad_meshes needs at least one mesh")
    pairs = [check_mesh(f"pad_meshes (mesh {i})", v, f) for i, (v, f) in enumerate(pairs)]
    for i, (v, f) in enumerate(pairs):
        if v.ndim != 2 or f.ndim != 2:
            raise GeometryError(f"pad_meshes: mesh {i} must be a single mesh (V, 3) / (F, 3), got "
                                f"{tuple(v.shape)} / {tuple(f.shape)}")
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
        faces[i, : f.shape[0]] = f.to(device=device)
    padded_attributes = None
    if attributes is not None:
        padded_attributes = _pad_attributes(attributes, [int(v.shape[0]) for v, _ in pairs], vmax, device)
    counts = lambda xs: torch.tensor([int(x.shape[0]) for x in xs], device=device)  # noqa: E731
    return PaddedMeshes(verts, faces, counts(v for v, _ in pairs), counts(f for _, f in pairs), padded_attributes)


def _pad_attributes(attributes: Sequence, sizes: list[int], vmax: int, device) -> torch.Tensor:
    rows = [torch.as_tensor(a, device=device) for a in attributes]
    if len(rows) != len(sizes):
        raise GeometryError(f"pad_meshes: {len(rows)} attribute tensors for {len(sizes)} meshes")
    for i, (a, n) in enumerate(zip(rows, sizes)):
        if a.ndim != 2 or a.shape[0] != n or a.shape[1] != rows[0].shape[1]:
            raise GeometryError(f"pad_meshes: attributes of mesh {i} must have shape ({n}, C) with one C for "
                                f"all meshes, got {tuple(a.shape)}")
    dtype = rows[0].dtype if rows[0].is_floating_point() else torch.get_default_dtype()
    for a in rows[1:]:
        dtype = torch.promote_types(dtype, a.dtype) if a.is_floating_point() else dtype
    out = torch.zeros(len(rows), vmax, rows[0].shape[1], dtype=dtype, device=device)
    for i, a in enumerate(rows):
        out[i, : a.shape[0]] = a.to(dtype)
    return out
