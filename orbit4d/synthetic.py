"""Synthetic 4D scenes with known geometry, for tests, the demo and the benchmark.

A textured, asymmetric object (a body, a cabin set back and a fin: no rotational or mirror
symmetry) moves across and turns about the vertical over a textured ground, filmed by a camera
that moves and turns to follow it. Everything is rendered by geom3d's rasterizer, so depth,
masks, cameras and the object's pose per frame are exact. World frame: z up, ground at z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from geom3d import Cameras, interpolate, rasterize
from geom3d.align import Sim3

__all__ = ["SyntheticScene", "make_scene", "procedural_object", "render_scene", "add_depth_noise"]


@dataclass(frozen=True)
class SyntheticScene:
    """frames uint8 (T, H, W, 3); depth float32 (T, H, W) (0 = empty); masks bool (T, H, W);
    cameras (T,); object_poses: Sim3 (T,) object → world; object and ground meshes as
    (vertices, faces, colors) in their own frames; names: "00000", …"""

    frames: np.ndarray
    depth: np.ndarray
    masks: np.ndarray
    cameras: Cameras
    object_poses: Sim3
    object_mesh: tuple
    ground_mesh: tuple
    names: list

    @property
    def object_size(self) -> float:
        v = self.object_mesh[0]
        return float((v.amax(0) - v.amin(0)).norm())


def _box(lo, hi, step):
    """A closed box surface with roughly `step`-sized triangles (trimesh subdivision)."""
    import trimesh

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    box = trimesh.creation.box(extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2))
    v, f = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, max_edge=step)
    return v, f


def _colors(v: np.ndarray, seed: int) -> np.ndarray:
    """A smooth multi-frequency colour texture from the positions (visible in every view)."""
    rng = np.random.default_rng(seed)
    freq = rng.normal(0, 6, (3, 3, 3))
    phase = rng.uniform(0, 2 * np.pi, (3, 3))
    c = sum(np.sin(v @ freq[j].T + phase[j]) for j in range(3)) / 6 + 0.5
    return np.clip(c, 0.05, 0.95)


def _object(step):
    parts = [_box((-0.45, -0.25, 0.0), (0.45, 0.25, 0.3), step),
             _box((-0.35, -0.2, 0.3), (0.05, 0.2, 0.52), step),
             _box((0.2, 0.05, 0.3), (0.4, 0.15, 0.62), step)]
    verts, faces, off = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + off)
        off += len(v)
    v = np.concatenate(verts)
    return v, np.concatenate(faces), _colors(v, 1)


def procedural_object(category: str, seed: int = 0, *, size: float = 1.0, step: float = 0.08,
                      color_seed: int = 1) -> tuple:
    """A `data3d.procedural` object (z up, longest side `size`) standing on z = 0, centred on the
    z axis, its triangles subdivided to at most `step` and coloured by the smooth texture of the
    default object: (vertices (V, 3), faces (F, 3), colors (V, 3)), float64 numpy, for
    `make_scene(object_mesh=...)`."""
    import trimesh

    from data3d import procedural

    mesh = procedural.make(category, seed, size=size, dtype=torch.float64)
    v, f = mesh.vertices.numpy(), mesh.faces.numpy()
    lo, hi = v.min(0), v.max(0)
    v = v - np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    v, f = trimesh.remesh.subdivide_to_size(v, f, max_edge=step)
    return v, f, _colors(v, color_seed)


def _ground(size=8.0, n=48):
    xs = np.linspace(-size / 2, size / 2, n + 1)
    gx, gy = np.meshgrid(xs, xs)
    v = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    f = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    checker = ((np.floor(v[:, 0] * 2) + np.floor(v[:, 1] * 2)) % 2)[:, None]
    return v, f, np.clip(0.35 + 0.3 * checker + 0.15 * (_colors(v, 2) - 0.5), 0, 1)


def _yaw(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def make_scene(num_frames: int = 24, image_size=(96, 128), *, turn_degrees: float = 100.0, travel: float = 1.0,
               camera_sweep_degrees: float = 30.0, camera_distance: float = 2.8, camera_height: float = 1.5,
               mesh_step: float = 0.08, object_mesh: tuple | None = None) -> SyntheticScene:
    """Render a scene of `num_frames` frames (see the module docstring). object_mesh: another
    object (vertices, faces, colors) standing on z = 0 about its z axis (`procedural_object`);
    default the asymmetric box object. The object's size in the frame follows `camera_distance`."""
    h, w = image_size
    ov, of, oc = _object(mesh_step) if object_mesh is None else (np.asarray(x) for x in object_mesh)
    gv, gf, gc = _ground()
    T = num_frames
    tau = np.linspace(0.0, 1.0, T)
    R_obj = torch.stack([_yaw(math.radians(turn_degrees) * float(s) + 0.3) for s in tau])
    t_obj = torch.tensor([[-travel / 2 + travel * s, 0.25 * math.sin(math.pi * s), 0.0] for s in tau],
                         dtype=torch.float64)
    poses = Sim3(torch.ones(T, dtype=torch.float64), R_obj, t_obj)
    az = np.radians(-90 - camera_sweep_degrees / 2 + camera_sweep_degrees * tau)
    eyes = torch.tensor(np.stack([camera_distance * np.cos(az), camera_distance * np.sin(az),
                                 np.full(T, camera_height)], 1))
    targets = t_obj + torch.tensor([0.0, 0.0, 0.25], dtype=torch.float64)
    cams = Cameras.look_at(eyes, targets, (0.0, 0.0, 1.0), focal=1.1 * w, image_size=(h, w))
    objects = poses.apply(torch.from_numpy(ov)[None])  # (T, V, 3)
    rgb, depth, masks = render_scene((ov, of, oc), (gv, gf, gc), objects, cams)
    return SyntheticScene(rgb, depth, masks, cams, poses, (torch.from_numpy(ov), torch.from_numpy(of),
                                                               torch.from_numpy(oc)),
                          (torch.from_numpy(gv), torch.from_numpy(gf), torch.from_numpy(gc)),
                          [f"{i:05d}" for i in range(T)])


def render_scene(object_mesh, ground_mesh, object_world: torch.Tensor, cameras: Cameras):
    """Render the ground plus the object at world vertices `object_world` (N, V, 3), one per
    camera (N,): rgb uint8 (N, H, W, 3), depth float32 (N, H, W), object mask (N, H, W)."""
    ov, of, oc = (np.asarray(x) for x in object_mesh)
    gv, gf, gc = (np.asarray(x) for x in ground_mesh)
    n = len(cameras)
    ow = torch.as_tensor(object_world, dtype=torch.float32)
    verts = torch.cat([torch.from_numpy(gv).float().expand(n, -1, -1), ow], 1)
    faces = torch.from_numpy(np.concatenate([gf, of + len(gv)])).long()
    colors = torch.from_numpy(np.concatenate([gc, oc])).float()
    frags = rasterize((verts, faces), cameras.to(dtype=torch.float32).reshape(n, 1))
    rgb = interpolate(frags, colors.expand(n, -1, -1))
    pix = frags.pix_to_face.reshape(n, *cameras.image_size)
    depth = frags.depth.reshape(n, *cameras.image_size)
    rgb = rgb.reshape(n, *cameras.image_size, 3)
    mask = pix >= len(gf)
    return ((rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), depth.numpy().astype(np.float32), mask.numpy())


def add_depth_noise(depth: np.ndarray, noise: float, outliers: float, seed: int = 0) -> np.ndarray:
    """Multiplicative Gaussian noise (relative sigma `noise`) and a fraction `outliers` of pixels
    replaced by depths drawn uniformly between 0.5× and 1.5× the true value."""
    rng = np.random.default_rng(seed)
    d = depth * (1 + noise * rng.standard_normal(depth.shape)).astype(np.float32)
    bad = rng.random(depth.shape) < outliers
    d[bad] = depth[bad] * rng.uniform(0.5, 1.5, int(bad.sum())).astype(np.float32)
    return np.where(depth > 0, d, 0).astype(np.float32)
