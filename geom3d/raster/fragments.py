"""Fragments and the rasterizer's differentiable step; `rasterize` joins it to the visibility pass.

With the face of each pixel fixed by the visibility pass, depth and barycentric coordinates are
smooth functions of the vertex positions (and of the cameras): `fragments_of` recomputes them with
autograd from the camera-space corners (`edges` gives the formulas), so gradients flow with
visibility held fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..cameras import Cameras
from ..errors import GeometryError
from .edges import cross_rows, intrinsics_parts
from .inputs import RasterInputs, prepare
from .visibility import visible_faces_of

__all__ = ["Fragments", "rasterize", "visible_faces", "fragments_for_faces", "fragments_of"]


@dataclass(frozen=True, eq=False)
class Fragments:
    """What a rasterization produces, per view (batch shape S, the cameras' shape paired with the
    meshes') and pixel (row i, column j):

    pix_to_face (*S, H, W) int64: the visible face, −1 where empty. With per-mesh faces (M, F, 3)
        it indexes the view's own mesh's faces.
    depth (*S, H, W): camera z of the visible surface at the pixel centre; 0 where empty.
    bary (*S, H, W, 3): perspective-correct barycentric coordinates of the pixel centre in that
        face (sum 1); 0 where empty. Differentiable w.r.t. vertex positions and cameras.
    faces (F, 3) or (M, F, 3): the faces rasterized (for `interpolate`).
    mesh_index (B,) int64 or None: the mesh row of each of the B = prod(S) views (flattened in
        row-major order) when faces are per mesh.
    """

    pix_to_face: torch.Tensor
    depth: torch.Tensor
    bary: torch.Tensor
    faces: torch.Tensor = field(repr=False)
    mesh_index: torch.Tensor | None = field(default=None, repr=False)

    @property
    def mask(self) -> torch.Tensor:
        """(*S, H, W) bool: pixels covered by the mesh."""
        return self.pix_to_face >= 0

    @property
    def batch_shape(self) -> torch.Size:
        return self.pix_to_face.shape[:-2]

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.pix_to_face.shape[-2]), int(self.pix_to_face.shape[-1])

    @property
    def num_views(self) -> int:
        """B = prod(batch_shape): the number of views."""
        return math.prod(self.batch_shape)

    def covered(self):
        """The covered pixels, flattened over views: flat index (N,) into (B·H·W), view (N,) in
        [0, B), the covering face's vertex ids (N, 3) and barycentrics (N, 3) (with grad)."""
        pixels, view, vid = covered_pixels(self.pix_to_face, self.faces, self.mesh_index)
        return pixels, view, vid, self.bary.reshape(-1, 3).index_select(0, pixels)

    def __repr__(self) -> str:
        return (f"Fragments(batch_shape={tuple(self.batch_shape)}, image_size={self.image_size}, "
                f"covered={int(self.mask.sum())}, dtype={self.depth.dtype}, device={self.depth.device})")


def covered_pixels(pix_to_face: torch.Tensor, faces: torch.Tensor, mesh_index: torch.Tensor | None = None):
    """Flat indices (N,) of covered pixels of pix_to_face (..., H, W), their flat view (N,) and
    their face's vertex ids (N, 3)."""
    H, W = pix_to_face.shape[-2:]
    flat = pix_to_face.reshape(-1)
    pixels = (flat >= 0).nonzero().squeeze(1)
    face = flat[pixels]
    view = torch.div(pixels, H * W, rounding_mode="floor")
    vid = faces[face] if faces.ndim == 2 else faces[mesh_index[view], face]
    return pixels, view, vid


def fragments_of(inp: RasterInputs, pix_to_face: torch.Tensor) -> Fragments:
    """Depth and perspective-correct barycentrics (with autograd) for given faces per pixel."""
    B, V = inp.batch, inp.num_vertices
    H, W = inp.image_size
    shape = tuple(inp.batch_shape) + (H, W)
    if tuple(pix_to_face.shape) not in (shape, (B, H, W)):
        raise GeometryError(f"pix_to_face must have shape {shape}, got {tuple(pix_to_face.shape)}")
    pix_to_face = pix_to_face.to(device=inp.verts_cam.device, dtype=torch.int64).reshape(B, H, W)
    if pix_to_face.numel() and int(pix_to_face.max()) >= inp.num_faces:
        raise GeometryError(f"pix_to_face holds face indices ≥ the number of faces {inp.num_faces}")
    pixels, view, vid = covered_pixels(pix_to_face, inp.faces, inp.mesh_index)
    # Planar layout (components first, pixels innermost): every op runs over long contiguous rows.
    points = inp.verts_cam.reshape(B * V, 3).T  # (3, B·V), with grad
    rows = (vid + (view * V)[:, None]).T.reshape(-1)  # corner 0 of every pixel, then corner 1, 2
    X = points.index_select(1, rows).view(3, 3, -1)  # (3 xyz, 3 corners, N)

    rem = pixels - view * (H * W)
    u = (rem % W).to(X.dtype)
    v = torch.div(rem, W, rounding_mode="floor").to(X.dtype)
    fx, s, cx, fy, cy = torch.stack(intrinsics_parts(inp.K)).index_select(1, view)
    yn = (v - cy) / fy
    xn = (u - cx - s * yn) / fx  # the pixel's ray is (xn, yn, 1) in camera coordinates

    # The formulas of `edges`, relative to corner 0: X2 × X0 = e2 × X0 and X0 × X1 = X0 × e1 hold
    # exactly but the right-hand sides round less (shorter factors).
    x0 = X[:, 0]
    e1, e2 = X[:, 1] - x0, X[:, 2] - x0

    def along_ray(c):  # c · (xn, yn, 1)
        return (c[0] * xn + c[1] * yn) + c[2]

    normal = cross_rows(e1, e2)
    den = along_ray(normal)
    b1 = along_ray(cross_rows(e2, x0)) / den
    b2 = along_ray(cross_rows(x0, e1)) / den
    bary = torch.stack([1.0 - b1 - b2, b1, b2], dim=-1)  # (N, 3)
    depth = ((x0[0] * normal[0] + x0[1] * normal[1]) + x0[2] * normal[2]) / den

    dtype = X.dtype
    bary_img = torch.zeros(B * H * W, 3, dtype=dtype, device=X.device).index_copy_(0, pixels, bary)
    depth_img = torch.zeros(B * H * W, dtype=dtype, device=X.device).index_copy_(0, pixels, depth)
    S = inp.batch_shape
    return Fragments(pix_to_face.reshape(*S, H, W), depth_img.reshape(*S, H, W), bary_img.reshape(*S, H, W, 3),
                     inp.faces, inp.mesh_index)


def _check_near(near: float) -> float:
    near = float(near)
    if not near > 0:
        raise GeometryError(f"near must be positive, got {near}")
    return near


def rasterize(mesh, cameras: Cameras, image_size=None, *, cull_backfaces: bool = False,
              near: float = 1e-3) -> Fragments:
    """Rasterize triangle meshes under pinhole cameras: a `Fragments` of batch shape S.

    mesh: a `geom3d.Mesh`, a `PaddedMeshes` (`pad_meshes`), or a (vertices, faces) pair with
        vertices (V, 3) for one mesh or (M, V, 3) for M meshes (world frame) and faces (F, 3)
        shared or (M, F, 3) per mesh.
    cameras: `geom3d.Cameras` of any batch shape (OpenCV axes, pixel centres at integers). One
        mesh: S is the cameras' batch shape. M meshes pair with the cameras' first dimension:
        cameras (M, P) (or (1, P)) give S = (M, P) without copying vertices; () gives (M,).
    image_size: (H, W), the output canvas; defaults to `cameras.image_size` and must equal it.
    cull_backfaces: drop faces whose right-hand normal (v1 − v0) × (v2 − v0) points away from the camera.
    near: camera depth of the near plane (> 0). Triangles crossing it are clipped exactly (each
        pixel's hit must have z ≥ near); triangles entirely at z < near are dropped.

    A pixel is covered when its centre is inside the projected triangle; a centre exactly on an
    edge shared by two triangles belongs to one of them (top-left rule). The nearest covered
    face wins (ties at equal float32 depth: the lower face index). Depth is 0 where empty.
    Floating inputs are promoted to their common dtype (float64 cameras give float64 results).

    Visibility is found without gradients; depth and `bary` are then recomputed differentiably
    for the winning faces, so gradients w.r.t. vertices (and cameras) hold visibility fixed. Use
    `soft_silhouette` for gradients at silhouette edges. Raises GeometryError for an empty mesh,
    non-finite vertices, faces out of range, batches that do not pair or a wrong image_size.
    """
    near = _check_near(near)
    inp = prepare(mesh, cameras, image_size)
    return fragments_of(inp, visible_faces_of(inp, cull_backfaces=cull_backfaces, near=near))


def visible_faces(mesh, cameras: Cameras, image_size=None, *, cull_backfaces: bool = False,
                  near: float = 1e-3) -> torch.Tensor:
    """Only the visibility pass of `rasterize`: pix_to_face (*S, H, W) int64, −1 where empty."""
    near = _check_near(near)
    inp = prepare(mesh, cameras, image_size, who="visible_faces")
    H, W = inp.image_size
    return visible_faces_of(inp, cull_backfaces=cull_backfaces, near=near).reshape(*inp.batch_shape, H, W)


def fragments_for_faces(mesh, cameras: Cameras, image_size=None, *, pix_to_face: torch.Tensor) -> Fragments:
    """Only the differentiable step of `rasterize`: depth and barycentrics of the given face at
    each pixel (pix_to_face (*S, H, W), −1 for none), as smooth functions of vertices and cameras.

    Useful to hold visibility fixed while vertices move (finite differences, gradient checks).
    """
    inp = prepare(mesh, cameras, image_size, who="fragments_for_faces")
    return fragments_of(inp, torch.as_tensor(pix_to_face))
