"""A deforming synthetic subject with exact ground truth: an articulated four-legged animal that
walks over a textured ground, its body bending and its legs, neck and tail swinging, filmed by a
camera that moves and turns to follow it (the benchmark for the 4D proxy of a *moving, deforming*
subject, as FreeOrbit4D's camel, horse and breakdancer demos are).

The animal is built from `data3d.procedural.primitives` (a superellipsoid body, cylinders for
the legs, neck and tail, a rounded box for the head), subdivided so its smooth colour texture
(a function of the rest-pose position, so it moves with the surface) is well sampled. Each
vertex belongs to one part; the pose of frame f maps the rest vertices exactly:

- the body bends sideways: a rest point (x, y, z) turns about the vertical through the body's
  centre by the angle `bend(f)·x / half-length` (a smooth, non-rigid bend of the spine);
- a leg turns about its hip by its swing angle (about the body's y axis), then moves with the
  bent body at its hip (the hip point bent and the leg turned by the bend angle there); the
  diagonal pairs swing in phase (a walk);
- the neck and head nod about the shoulder, the tail swings about its root (about z);
- the whole animal then turns about the vertical and travels (a `Sim3` per frame).

The mesh keeps its topology over frames, so a point sampled on the rest surface (a face and
barycentric coordinates) is the same material point in every frame: `surface_samples` gives
dense samples of each frame's true surface and, by z-tests against every frame's exact depth,
which of them some frame saw and which no frame ever saw (the far side, the belly, the legs'
inner faces). World frame: z up, ground at z = 0, as `orbit4d.synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from geom3d import Cameras
from geom3d.align import Sim3

from .synthetic import _colors, _ground, render_scene

__all__ = ["ArticulatedScene", "Animal", "make_animal", "pose_animal", "make_deforming_scene", "SurfaceSamples",
           "surface_samples"]

# part ids
BODY, LEG, NECK, TAIL = 0, 1, 2, 3


@dataclass(frozen=True)
class Animal:
    """Rest mesh float64 vertices (V, 3), faces (F, 3), colours (V, 3) in [0, 1]; part (V,) int
    (BODY, LEG, NECK, TAIL); leg (V,) int: which leg (0 front-left, 1 front-right, 2 hind-left,
    3 hind-right; −1 elsewhere); joints: hips (4, 3), shoulder (3,), tail root (3,); half_length
    of the body (the bend's unit)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    part: np.ndarray
    leg: np.ndarray
    hips: np.ndarray
    shoulder: np.ndarray
    tail_root: np.ndarray
    half_length: float

    @property
    def size(self) -> float:
        """The bounding-box diagonal of the rest mesh (the unit of the benchmark's thresholds)."""
        return float(np.linalg.norm(self.vertices.max(0) - self.vertices.min(0)))


def _dense(mesh, step: float):
    import trimesh

    v = mesh.vertices.double().numpy()
    f = mesh.faces.long().numpy()
    merged = trimesh.Trimesh(v, f, process=True)  # merge the seam duplicates: one connected surface
    v, f = trimesh.remesh.subdivide_to_size(merged.vertices, merged.faces, max_edge=step)
    return np.asarray(v), np.asarray(f)


def make_animal(step: float = 0.035) -> Animal:
    """The rest-pose animal (module docstring): about 1.25 m long, 1.1 m tall, legs 0.5 m."""
    from data3d.procedural import primitives as P

    L, body_z = 0.45, 0.68
    parts = [(BODY, -1, P.translate(P.superellipsoid((L, 0.17, 0.16), 0.6, 0.8, lat_segments=10, lon_segments=20),
                                    (0.0, 0.0, body_z)))]
    hips = np.array([[0.3, -0.1, 0.6], [0.3, 0.1, 0.6], [-0.3, -0.1, 0.6], [-0.3, 0.1, 0.6]])
    for k, h in enumerate(hips):
        parts.append((LEG, k, P.cylinder_between(h + (0, 0, 0.04), (h[0], h[1], 0.02), 0.05, segments=10,
                                                r1=0.04)))
    shoulder = np.array([0.38, 0.0, 0.74])
    head_at = np.array([0.62, 0.0, 1.02])
    parts.append((NECK, -1, P.cylinder_between(shoulder, head_at, 0.065, segments=10, r1=0.05)))
    parts.append((NECK, -1, P.translate(P.rounded_box((0.24, 0.13, 0.12), 0.03), head_at + (0.07, 0.0, 0.02))))
    tail_root = np.array([-0.42, 0.0, 0.72])
    parts.append((TAIL, -1, P.cylinder_between(tail_root, tail_root + (-0.2, 0.0, -0.2), 0.03, segments=8,
                                               r1=0.015)))
    verts, faces, part, leg, off = [], [], [], [], 0
    for pid, k, mesh in parts:
        v, f = _dense(mesh, step)
        verts.append(v)
        faces.append(f + off)
        part.append(np.full(len(v), pid))
        leg.append(np.full(len(v), k))
        off += len(v)
    v = np.concatenate(verts)
    return Animal(v, np.concatenate(faces), _texture(v), np.concatenate(part), np.concatenate(leg), hips,
                  shoulder, tail_root, L)


def _texture(v: np.ndarray) -> np.ndarray:
    """The animal's coat: the smooth colour field of `orbit4d.synthetic` plus finer spots (a
    wavelength of about 12 cm), so that image motion on the body can be measured."""
    rng = np.random.default_rng(7)
    freq = rng.normal(0, 45, (4, 3))
    spots = sum(np.sin(v @ k + rng.uniform(0, 2 * np.pi)) for k in freq) / 4
    return np.clip(0.75 * _colors(v, 5) + 0.25 * (0.5 + 0.5 * spots[:, None] * np.array([1.0, 0.8, 0.6])), 0, 1)


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _bend(points: np.ndarray, bend: float, half_length: float):
    """The body's bend: each point turned about the z axis by bend·x / half_length. Returns the
    bent points and the per-point rotations (N, 3, 3)."""
    R = _rz(bend * points[:, 0] / half_length)
    return np.einsum("nij,nj->ni", R, points), R


def pose_animal(animal: Animal, bend: float, swing, nod: float, tail: float) -> np.ndarray:
    """Vertices (V, 3) of the animal posed in its own frame: body bend (radians at the body's
    ends), leg swings (4,) radians about the y axis, neck nod about y, tail swing about z."""
    v = animal.vertices
    out = np.empty_like(v)
    body = animal.part == BODY
    out[body] = _bend(v[body], bend, animal.half_length)[0]
    for k in range(4):
        sel = animal.leg == k
        h = animal.hips[k]
        local = (v[sel] - h) @ _ry(np.float64(swing[k])).T
        hb, Rb = _bend(h[None], bend, animal.half_length)
        out[sel] = local @ Rb[0].T + hb[0]
    for pid, joint, R in ((NECK, animal.shoulder, _ry(np.float64(-nod))), (TAIL, animal.tail_root,
                                                                             _rz(np.float64(tail)))):
        sel = animal.part == pid
        jb, Rb = _bend(joint[None], bend, animal.half_length)
        out[sel] = ((v[sel] - joint) @ R.T) @ Rb[0].T + jb[0]
    return out


@dataclass(frozen=True)
class ArticulatedScene:
    """frames uint8 (T, H, W, 3); depth float32 (T, H, W); masks bool (T, H, W); cameras (T,);
    animal: the rest animal; object_poses: Sim3 (T,) animal frame → world; vertices float64
    (T, V, 3): the true posed surface per frame in world coordinates; ground_mesh; names."""

    frames: np.ndarray
    depth: np.ndarray
    masks: np.ndarray
    cameras: Cameras
    animal: Animal
    object_poses: Sim3
    vertices: np.ndarray
    ground_mesh: tuple
    names: list

    @property
    def object_size(self) -> float:
        return self.animal.size

    @property
    def object_mesh(self) -> tuple:
        """(rest vertices, faces, colours) as tensors (the `orbit4d.synthetic.SyntheticScene` form)."""
        a = self.animal
        return torch.from_numpy(a.vertices), torch.from_numpy(a.faces), torch.from_numpy(a.colors)

    def render(self, cameras: Cameras, frames) -> tuple:
        """The true scene at `cameras` (N,), the animal as at input frames `frames` (N,): rgb uint8
        (N, H, W, 3), depth float32 (N, H, W), animal mask (N, H, W)."""
        a = self.animal
        verts = torch.from_numpy(self.vertices[np.asarray(frames, int)])
        return render_scene((a.vertices, a.faces, a.colors), self.ground_mesh, verts, cameras)


def make_deforming_scene(num_frames: int = 24, image_size=(120, 160), *, turn_degrees: float = 40.0,
                         travel: float = 0.8, camera_sweep_degrees: float = 30.0, camera_distance: float = 2.6,
                         camera_height: float = 1.4, steps_per_cycle: float = 16.0, swing_degrees: float = 25.0,
                         bend_degrees: float = 14.0, mesh_step: float = 0.035) -> ArticulatedScene:
    """Render the walking animal (module docstring): it travels `travel` along x and turns
    `turn_degrees`, walking one step cycle per `steps_per_cycle` frames, while the camera sweeps
    `camera_sweep_degrees` on the −y side looking at it. Depth, masks and cameras are exact."""
    h, w = image_size
    animal = make_animal(mesh_step)
    T = num_frames
    tau = np.linspace(0.0, 1.0, T)
    phase = 2 * math.pi * np.arange(T) / steps_per_cycle
    sw = math.radians(swing_degrees)
    verts_local = []
    for f in range(T):
        p = phase[f]
        swing = sw * np.array([math.sin(p), -math.sin(p), -math.sin(p), math.sin(p)])
        verts_local.append(pose_animal(animal, math.radians(bend_degrees) * math.sin(p / 2), swing,
                                       math.radians(15.0) * math.sin(p + 0.7), math.radians(30.0) * math.sin(p)))
    yaw = np.radians(turn_degrees) * tau + 0.2
    R_obj = torch.from_numpy(_rz(yaw))
    t_obj = torch.tensor(np.stack([-travel / 2 + travel * tau, 0.15 * np.sin(np.pi * tau), np.zeros(T)], 1))
    poses = Sim3(torch.ones(T, dtype=torch.float64), R_obj, t_obj)
    world = poses.apply(torch.from_numpy(np.stack(verts_local)))  # (T, V, 3)
    az = np.radians(-90 - camera_sweep_degrees / 2 + camera_sweep_degrees * tau)
    eyes = torch.tensor(np.stack([camera_distance * np.cos(az) + t_obj[:, 0].numpy() * 0.5,
                                  camera_distance * np.sin(az), np.full(T, camera_height)], 1))
    targets = t_obj + torch.tensor([0.0, 0.0, 0.55], dtype=torch.float64)
    cams = Cameras.look_at(eyes, targets, (0.0, 0.0, 1.0), focal=1.0 * w, image_size=(h, w))
    gv, gf, gc = _ground()
    rgb, depth, masks = render_scene((animal.vertices, animal.faces, animal.colors), (gv, gf, gc), world, cams)
    return ArticulatedScene(rgb, depth, masks, cams, animal, poses, world.numpy(),
                            (torch.from_numpy(gv), torch.from_numpy(gf), torch.from_numpy(gc)),
                            [f"{i:05d}" for i in range(T)])


@dataclass(frozen=True)
class SurfaceSamples:
    """Dense samples of the true surface: face (N,) and barycentric (N, 3) on the rest mesh (the
    same material points in every frame); seen (N,) bool: visible in at least one frame;
    visible (T, N) bool: visible in each frame."""

    face: np.ndarray
    barycentric: np.ndarray
    seen: np.ndarray
    visible: np.ndarray

    def points(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """The samples on a posed surface: vertices (V, 3) or (T, V, 3) → (N, 3) or (T, N, 3)."""
        tri = vertices[..., faces[self.face], :]  # (..., N, 3 corners, 3)
        return np.einsum("...nkj,nk->...nj", tri, self.barycentric)


def surface_samples(scene: ArticulatedScene, count: int = 60_000, *, tolerance: float = 0.01,
                    seed: int = 0) -> SurfaceSamples:
    """`count` area-weighted samples of the rest surface (the area of the rest mesh; the posed
    surfaces keep it to within the bend's stretch), and their visibility in every frame: a sample
    is visible where it projects inside the frame at the true depth (relative `tolerance`)."""
    import trimesh

    a = scene.animal
    mesh = trimesh.Trimesh(a.vertices, a.faces, process=False)
    pts, face = trimesh.sample.sample_surface(mesh, count, seed=seed)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[face], pts)
    s = SurfaceSamples(np.asarray(face), np.clip(bary, 0, 1), np.zeros(count, bool), np.zeros((0, count), bool))
    world = s.points(scene.vertices, a.faces)  # (T, N, 3)
    h, w = scene.cameras.image_size
    cams = scene.cameras.to(dtype=torch.float64)
    vis = np.zeros((len(world), count), bool)
    for f in range(len(world)):
        uv, z = cams[f].project(torch.from_numpy(world[f]), return_depth=True)
        j, i = uv[:, 0].round().long().numpy(), uv[:, 1].round().long().numpy()
        inside = (i >= 0) & (i < h) & (j >= 0) & (j < w) & (z.numpy() > 0)
        d = np.zeros(count)
        d[inside] = scene.depth[f][i[inside], j[inside]]
        vis[f] = inside & scene.masks[f][np.clip(i, 0, h - 1), np.clip(j, 0, w - 1)] & (
            np.abs(d - z.numpy()) < tolerance * z.numpy())
    return SurfaceSamples(s.face, s.barycentric, vis.any(0), vis)
