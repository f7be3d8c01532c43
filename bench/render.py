"""Rendering speed: depth of a 10k-face mesh at 640×480 (geom3d.render_gl and geom3d.rasterize against
Open3D's RaycastingScene on the same mesh and camera) and z-buffer splatting of 1M points at 480×832.

Goals (issue 3, on 2 CPU cores): GL depth at most 0.5× Open3D's time; splatting at least 20 frames/s.
GL times are steady state (context, shader compilation and mesh upload excluded); the first-call
costs are listed separately.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import torch
from _common import best_time, parse_args, table

import geom3d
from aware3d.paths import shared_data_root
from aware3d_utils import available


def ten_k_face_mesh() -> tuple[geom3d.Mesh, str]:
    """The Stanford bunny decimated to 10,000 faces (Open3D quadric decimation), or a procedural
    NeMo-style cuboid of about 10k faces when the real data or Open3D is missing."""
    path = shared_data_root() / "meshes" / "bunny.ply"
    if path.is_file() and available("open3d"):
        import open3d as o3d

        bunny = geom3d.Mesh.load(path)
        tm = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(bunny.vertices.double().numpy()),
                                       o3d.utility.Vector3iVector(bunny.faces.int().numpy()))
        small = tm.simplify_quadric_decimation(10_000)
        mesh = geom3d.Mesh(torch.as_tensor(np.asarray(small.vertices), dtype=torch.float32),
                           torch.as_tensor(np.asarray(small.triangles), dtype=torch.int64))
        return mesh, f"bunny decimated ({mesh.num_faces} faces)"
    mesh = geom3d.cuboid_mesh([-0.5, -0.3, -0.2], [0.5, 0.3, 0.2], num_vertices=5000)
    return mesh, f"cuboid ({mesh.num_faces} faces)"


def camera_for(mesh: geom3d.Mesh, image_size=(480, 640)) -> geom3d.Cameras:
    lo, hi = mesh.bounds().double()
    centre, extent = (lo + hi) / 2, float((hi - lo).max())
    eye = centre + 1.7 * extent * torch.tensor([0.5, -0.8, 0.4], dtype=torch.float64)
    focal = 0.45 * image_size[0] / math.tan(math.asin(0.5 / 1.7))
    return geom3d.Cameras.look_at(eye, centre, focal=focal, image_size=image_size).to(dtype=torch.float32)


def open3d_depth(mesh: geom3d.Mesh, cam: geom3d.Cameras):
    """A function casting one ray per pixel with a prebuilt RaycastingScene, returning camera z."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.numpy()), o3d.core.Tensor(mesh.faces.numpy().astype(np.uint32)))
    o3d_args = geom3d.cameras_to_open3d(cam.to(dtype=torch.float64))
    K, E = o3d_args["intrinsic_matrix"], o3d_args["extrinsic_matrix"]
    K, E = o3d.core.Tensor(K.numpy()), o3d.core.Tensor(E.numpy())
    h, w = cam.image_size
    z_of_t = None

    def run():
        nonlocal z_of_t
        rays = scene.create_rays_pinhole(K, E, w, h)
        t = scene.cast_rays(rays)["t_hit"].numpy()
        if z_of_t is None:  # t is along unnormalised-or-not directions: convert once to camera z
            d = rays.numpy()[..., 3:]
            z_of_t = (d @ cam.R.double().numpy().T)[..., 2]
        return np.where(np.isfinite(t), t * z_of_t, 0.0)

    return run


def depth_rows(quick: bool) -> tuple[list, str]:
    mesh, what = ten_k_face_mesh()
    cam = camera_for(mesh)
    repeats = 5 if quick else 20
    rows = []
    baseline = None
    if available("open3d"):
        o3d_run = open3d_depth(mesh, cam)
        baseline = best_time(o3d_run, repeats, warmup=2)
        rows.append(["Open3D RaycastingScene (baseline)", baseline * 1e3, 1.0])
    gl_ok = geom3d.gl_available()
    if gl_ok:
        first_start = time.perf_counter()
        renderer = geom3d.gl.GLRenderer()  # a fresh context: the cost a new worker process pays once
        renderer.render(mesh, cam, outputs=("depth",))
        first = time.perf_counter() - first_start
        fresh_mesh = geom3d.Mesh(mesh.vertices.clone(), mesh.faces.clone())
        upload_start = time.perf_counter()
        renderer.render(fresh_mesh, cam, outputs=("depth",))
        upload = time.perf_counter() - upload_start
        depth = best_time(lambda: renderer.render(mesh, cam, outputs=("depth",)), repeats, warmup=2)
        full = best_time(lambda: renderer.render(mesh, cam), repeats, warmup=1)
        datagen = best_time(lambda: renderer.render(mesh, cam, outputs=("rgb", "depth", "mask", "normal")),
                            repeats, warmup=1)
        views16 = camera_for(mesh, (256, 256)).reshape(1).expand(16)
        many = best_time(lambda: renderer.render(mesh, views16, outputs=("rgb", "depth", "mask", "normal")),
                         max(2, repeats // 4), warmup=1)
        if baseline:
            ref = o3d_run()
            got = renderer.render(mesh, cam, outputs=("depth",)).depth.numpy()  # an unbatched camera: (H, W)
            both = (ref > 0) & (got > 0)
            assert (np.abs(got[both] - ref[both]) / ref[both] < 1e-4).mean() > 0.999
        rows.append(["render_gl depth (steady state)", depth * 1e3, depth / baseline if baseline else float("nan")])
        rows.append(["render_gl rgb+depth+mask+normal (what data generation asks)", datagen * 1e3,
                     datagen / baseline if baseline else float("nan")])
        rows.append(["render_gl all five outputs (face_id settled exactly)", full * 1e3,
                     full / baseline if baseline else float("nan")])
        rows.append(["render_gl rgb+depth+mask+normal, 16 views of 256×256, per view", many / 16 * 1e3,
                     float("nan")])
        rows.append(["render_gl first call (context + shaders + upload)", first * 1e3,
                     first / baseline if baseline else float("nan")])
        rows.append(["render_gl first call of a new mesh (upload)", upload * 1e3,
                     upload / baseline if baseline else float("nan")])
        renderer.release()
    try:
        from geom3d.raster import rasterize
    except ImportError:
        rasterize = None
    if rasterize is not None:
        def raster_forward():
            with torch.no_grad():
                return rasterize(mesh, cam).depth

        t = best_time(raster_forward, max(3, repeats // 4), warmup=1)
        rows.append(["geom3d.rasterize forward (no grad)", t * 1e3, t / baseline if baseline else float("nan")])
    return rows, what


def splat_rows(quick: bool) -> list:
    """1M points sampled on a surface (random order, the hard case for the scatter) at 480 × 832."""
    n = 200_000 if quick else 1_000_000
    g = torch.Generator().manual_seed(0)
    path = shared_data_root() / "meshes" / "bunny.ply"
    mesh = geom3d.Mesh.load(path) if path.is_file() else geom3d.cuboid_mesh([-0.5, -0.3, -0.2], [0.5, 0.3, 0.2])
    tri = mesh.vertices[mesh.faces]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    face = torch.multinomial(area, n, replacement=True, generator=g)
    r1, r2 = torch.rand(n, 1, generator=g).sqrt(), torch.rand(n, 1, generator=g)
    t = tri[face]
    points = (1 - r1) * t[:, 0] + r1 * (1 - r2) * t[:, 1] + r1 * r2 * t[:, 2]
    colours = torch.rand(n, 3, generator=g)
    cam = camera_for(mesh, (480, 832))
    repeats = 3 if quick else 10
    rows = []
    for radius in (0.5, 1.0, 1.5):
        sec = best_time(lambda r=radius: geom3d.splat(points, colours, cam, radius=r), repeats, warmup=1)
        rows.append([f"splat {n:,} points, radius {radius} px", sec * 1e3, 1.0 / sec])
    return rows


def main() -> None:
    args = parse_args(__doc__)
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        _run(args)


def _run(args) -> None:
    rows, what = depth_rows(args.quick)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Depth at 640×480 of {what}, torch threads {torch.get_num_threads()}, load average {load}; "
          "ratio = time / Open3D's (goal for render_gl depth: ≤ 0.5)\n")
    print(table(["renderer", "ms", "ratio vs Open3D"], rows))
    print("\nSplatting at 480×832 (goal: ≥ 20 frames/s)\n")
    print(table(["operation", "ms", "frames/s"], splat_rows(args.quick)))


if __name__ == "__main__":
    main()
