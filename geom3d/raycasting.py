"""Reference ray casting: the first hit of each pixel-centre ray, by Embree (through trimesh) or
Open3D's RaycastingScene. Tests and benchmarks check every renderer against it.

Rays leave the camera centre through the pixel centres of docs/design.md (pixel row i, column j at
(u, v) = (j, i)), built from `Cameras.unproject_points` with a direction whose camera z is 1, so
the ray parameter of a hit is its camera depth. Mesh passing, batch shapes and output follow
`geom3d.rasterize`: pix_to_face (..., H, W) int64, −1 where the ray misses, and depth (..., H, W)
camera z, 0 where it misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aware3d_utils import require

from .cameras import Cameras
from .dtypes import common_float_dtype
from .errors import GeometryError
from .pixels import parse_image_size, pixel_grid
from .raster.inputs import check_mesh, mesh_arrays, result_batch_shape

__all__ = ["RayHits", "camera_rays", "raycast"]

BACKENDS = ("embree", "open3d")


@dataclass(frozen=True, eq=False)
class RayHits:
    """The first hit of each pixel's ray, for views of batch shape S: pix_to_face (..., H, W)
    int64 (−1 where the ray misses) and depth (..., H, W), the camera z of the hit (0 where it misses)."""

    pix_to_face: torch.Tensor
    depth: torch.Tensor


def camera_rays(cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and directions (..., H, W, 3) in world coordinates of the rays through every pixel
    centre, for cameras of any batch shape (...). A direction's camera-space z is 1."""
    H, W = cameras.image_size
    cams = cameras.reshape(-1)
    grid = pixel_grid((H, W), dtype=cams.dtype, device=cams.device).reshape(1, H * W, 2)
    ones = torch.ones(cams.batch_shape[0], H * W, dtype=cams.dtype, device=cams.device)
    far = cams.unproject_points(grid, ones)  # camera z = 1
    origins = cams.camera_centres()[:, None, :].expand_as(far)
    shape = (*cameras.batch_shape, H, W, 3)
    return origins.reshape(shape), (far - origins).reshape(shape)


def _cast_embree(vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray, dirs: np.ndarray):
    require("embreex", extra="all")
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    intersector = RayMeshIntersector(trimesh.Trimesh(vertices, faces, process=False))
    tri, ray, loc = intersector.intersects_id(origins, dirs, multiple_hits=False, return_locations=True)
    face = np.full(len(origins), -1, dtype=np.int64)
    hit = np.zeros((len(origins), 3))
    face[ray] = tri
    hit[ray] = loc
    return face, hit


def _cast_open3d(vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray, dirs: np.ndarray):
    o3d = require("open3d")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    rays = np.concatenate([origins, dirs], axis=1).astype(np.float32)
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    t = ans["t_hit"].numpy().astype(np.float64)
    prim = ans["primitive_ids"].numpy().astype(np.int64)
    miss = ~np.isfinite(t)
    face = np.where(miss, -1, prim)
    hit = origins + np.where(miss, 0.0, t)[:, None] * dirs
    return face, hit


def raycast(mesh, cameras: Cameras, image_size=None, *, backend: str = "embree") -> RayHits:
    """Cast one ray per pixel centre per camera and report the first hit: `RayHits`.

    mesh: a `geom3d.Mesh`, a `PaddedMeshes` bank, or (vertices, faces) with vertices (V, 3) (every
        camera sees it) or (M, V, 3) and faces (F, 3) or (M, F, 3) for M meshes, which pair with
        the cameras' first batch dimension as in `geom3d.rasterize`.
    cameras: `Cameras` of any batch shape S; the result has S (its first dimension paired with M).
    image_size: (H, W); defaults to `cameras.image_size` and must equal it when given.
    backend: "embree" (trimesh + embreex) or "open3d" (RaycastingScene). Both intersect in
        float32; depth is the camera z of the hit point (computed in float64 from the hit), in the
        common floating dtype of the vertices and cameras, on the vertices' device.
    """
    if backend not in BACKENDS:
        raise GeometryError(f"raycast: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"raycast: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if image_size is not None and parse_image_size(image_size) != tuple(cameras.image_size):
        raise GeometryError(f"raycast: image_size {tuple(image_size)} differs from the cameras' image size "
                            f"{cameras.image_size}")
    vertices, faces = check_mesh("raycast", *mesh_arrays(mesh, "raycast"))
    dtype = common_float_dtype(vertices, cameras.R)
    device = vertices.device
    counts = {x.shape[0] for x in (vertices, faces) if x.ndim == 3}
    if len(counts - {1}) > 1:
        raise GeometryError(f"raycast: batch sizes do not match (vertices {tuple(vertices.shape)}, "
                            f"faces {tuple(faces.shape)})")
    M = max(counts) if counts else None
    shape = result_batch_shape("raycast", tuple(cameras.batch_shape), M)
    B = int(np.prod(shape)) if shape else 1
    H, W = cameras.image_size
    cams = cameras.to(dtype=torch.float64).expand(*shape).reshape(-1) if shape else \
        cameras.to(dtype=torch.float64).reshape(1)
    if B == 0:
        return RayHits(torch.full((*shape, H, W), -1, dtype=torch.int64, device=device),
                       torch.zeros((*shape, H, W), dtype=dtype, device=device))
    # views are grouped by mesh (row m of the first dimension sees mesh m): one scene per mesh,
    # every ray of its views cast in one call
    groups = [range(B)] if M is None else [range(m * B // shape[0], (m + 1) * B // shape[0]) for m in range(shape[0])]
    v_all = vertices.detach().cpu().double().numpy()
    f_all = faces.detach().cpu().numpy()
    origins, dirs = camera_rays(cams)
    origins, dirs = origins.cpu().numpy().reshape(B, H * W, 3), dirs.cpu().numpy().reshape(B, H * W, 3)
    rows = cams.R[..., 2, :].cpu().numpy()  # camera z axis in world coordinates
    centres = cams.camera_centres().cpu().numpy()
    cast = _cast_embree if backend == "embree" else _cast_open3d
    faces_out = np.empty((B, H * W), dtype=np.int64)
    depth_out = np.empty((B, H * W), dtype=np.float64)
    for m, views in enumerate(groups):
        v = v_all[min(m, v_all.shape[0] - 1)] if v_all.ndim == 3 else v_all
        f = f_all[min(m, f_all.shape[0] - 1)] if f_all.ndim == 3 else f_all
        sel = slice(views.start, views.stop)
        face, hit = cast(v, f, origins[sel].reshape(-1, 3), dirs[sel].reshape(-1, 3))
        face, hit = face.reshape(len(views), H * W), hit.reshape(len(views), H * W, 3)
        z = np.einsum("bnk,bk->bn", hit - centres[sel, None, :], rows[sel])
        faces_out[sel] = face
        depth_out[sel] = np.where(face >= 0, z, 0.0)
    pix_to_face = torch.from_numpy(faces_out).reshape(*shape, H, W)
    depth = torch.from_numpy(depth_out).reshape(*shape, H, W)
    return RayHits(pix_to_face.to(device), depth.to(device=device, dtype=dtype))
