"""Reference ray casting: the first hit of each pixel-centre ray, by Embree (through trimesh) or
Open3D's RaycastingScene. Tests and benchmarks check every renderer against it.

Rays leave the camera centre through the pixel centres of DESIGN.md (pixel row i, column j at
(u, v) = (j, i)), built from `Cameras.unproject_points` with a direction whose camera z is 1, so
the ray parameter of a hit is its camera depth. Output follows `geom3d.rasterize`: pix_to_face
(B, H, W) int64, −1 where the ray misses, and depth (B, H, W) camera z, 0 where it misses.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from aware3d_utils import require

from .cameras import Cameras, _image_size, pixel_grid
from .errors import GeometryError

__all__ = ["RayHits", "camera_rays", "raycast"]

BACKENDS = ("embree", "open3d")


class RayHits(NamedTuple):
    """pix_to_face (B, H, W) int64 (−1: miss) and depth (B, H, W) camera z (0: miss)."""

    pix_to_face: torch.Tensor
    depth: torch.Tensor


def camera_rays(cameras: Cameras, image_size=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and directions (B, H, W, 3) in world coordinates of the rays through every pixel
    centre of cameras of batch shape () or (B,). A direction's camera-space z is 1."""
    size = cameras.image_size if image_size is None else _image_size(image_size)
    cams = cameras.reshape(-1)
    H, W = size
    grid = pixel_grid(size, dtype=cams.dtype, device=cams.device).reshape(1, H * W, 2)
    ones = torch.ones(cams.batch_shape[0], H * W, dtype=cams.dtype, device=cams.device)
    far = cams.unproject_points(grid, ones)  # camera z = 1
    origins = cams.camera_centres()[:, None, :].expand_as(far)
    return origins.reshape(-1, H, W, 3), (far - origins).reshape(-1, H, W, 3)


def _mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) or (B, V, 3), faces (F, 3)) as numpy from a Mesh or a (vertices, faces) pair."""
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        vertices, faces = mesh.vertices, mesh.faces
    else:
        try:
            vertices, faces = mesh
        except (TypeError, ValueError):
            raise GeometryError("raycast needs a geom3d.Mesh or a (vertices, faces) pair") from None
    v = torch.as_tensor(vertices).detach().cpu().double().numpy()
    f = torch.as_tensor(faces).detach().cpu().long().numpy()
    if v.ndim not in (2, 3) or v.shape[-1] != 3 or f.ndim != 2 or f.shape[-1] != 3:
        raise GeometryError(f"raycast: vertices must be (V, 3) or (B, V, 3) and faces (F, 3), got "
                            f"{v.shape} and {f.shape}")
    if v.shape[-2] == 0 or len(f) == 0:
        raise GeometryError(f"raycast: the mesh is empty ({v.shape[-2]} vertices, {len(f)} faces)")
    if f.min() < 0 or f.max() >= v.shape[-2]:
        raise GeometryError(f"raycast: face indices must lie in [0, {v.shape[-2]}), got {f.min()}..{f.max()}")
    if not np.isfinite(v).all():
        raise GeometryError("raycast: vertices contain NaN or infinite values")
    return v, f


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


def raycast(mesh, cameras: Cameras, backend: str = "embree", image_size=None) -> RayHits:
    """Cast one ray per pixel centre per camera and report the first hit: `RayHits`.

    mesh: a `geom3d.Mesh`, or (vertices, faces) with vertices (V, 3) (every camera sees it) or
    (B, V, 3) (camera b sees mesh b). cameras: batch shape () or (B,). backend: "embree"
    (trimesh + embreex) or "open3d" (RaycastingScene). Both intersect in float32; depth is the
    camera z of the hit point (computed in float64 from the hit), in the cameras' dtype.
    """
    if backend not in BACKENDS:
        raise GeometryError(f"raycast: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"raycast: cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if cameras.R.ndim > 3:
        raise GeometryError(f"raycast: cameras must have batch shape () or (B,), got {tuple(cameras.batch_shape)}")
    vertices, faces = _mesh_arrays(mesh)
    cams = cameras.reshape(-1).to(dtype=torch.float64)
    origins, dirs = camera_rays(cams, image_size)
    meshes = vertices.shape[0] if vertices.ndim == 3 else 1
    B = max(origins.shape[0], meshes)
    if origins.shape[0] == 0 or meshes not in (1, B) or origins.shape[0] not in (1, B):
        raise GeometryError(f"raycast: {meshes} meshes for {origins.shape[0]} cameras")
    H, W = origins.shape[1:3]
    cast = _cast_embree if backend == "embree" else _cast_open3d
    rows = cams.R[..., 2, :].cpu().numpy()  # camera z axis in world coordinates
    centres = cams.camera_centres().cpu().numpy()
    origins, dirs = origins.cpu().numpy().reshape(-1, H * W, 3), dirs.cpu().numpy().reshape(-1, H * W, 3)
    faces_out, depth_out = [], []
    for b in range(B):
        cb = b if origins.shape[0] > 1 else 0
        v = vertices[b if vertices.shape[0] > 1 else 0] if vertices.ndim == 3 else vertices
        face, hit = cast(v, faces, origins[cb], dirs[cb])
        depth = np.where(face >= 0, (hit - centres[cb]) @ rows[cb], 0.0)
        faces_out.append(face)
        depth_out.append(depth)
    pix_to_face = torch.as_tensor(np.stack(faces_out)).reshape(B, H, W)
    depth = torch.as_tensor(np.stack(depth_out)).reshape(B, H, W).to(cameras.dtype)
    return RayHits(pix_to_face.to(cameras.device), depth.to(cameras.device))
