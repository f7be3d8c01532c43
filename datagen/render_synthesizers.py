"""The render synthesizers behind `datagen.synthesizer.NovelViewSynthesizer`: exact relative views of
the source's mesh (`RenderSynthesizer`), the same with a generator's independent faults
(`DegradedRenderSynthesizer`) and with its correlated failures (`CorrelatedFailureSynthesizer`);
stand-ins for a real novel-view generator in tests and benchmarks (docs/pose.md). Import them from
`datagen.novel_view`, which re-exports them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from aware3d_utils import require
from aware3d_utils.optional import lazy_module

from .synthesizer import APPEARANCES, NovelViewSynthesizer, SourceView, as_relative_poses, target_viewpoint

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["RenderSynthesizer", "DegradedRenderSynthesizer", "CorrelatedFailureSynthesizer", "FLIP_MODES",
           "source_textured_mesh", "mirror_axis"]


class RenderSynthesizer(NovelViewSynthesizer):
    """Exact relative views: the source's mesh rendered at `target_viewpoint` of each relative pose
    (same image size, focal and principal point as the source) on a uniform background."""

    name = "render"

    def __init__(self, background=(1.0, 1.0, 1.0), backend: str | None = None, appearance: str = "source"):
        if appearance not in APPEARANCES:
            raise ValueError(f"render synthesizer: appearance must be one of {APPEARANCES}, got {appearance!r}")
        self.background = tuple(float(c) for c in background)
        self.backend = backend
        self.appearance = appearance
        self._textured_key, self._textured = None, None

    def describe(self) -> dict:
        return {"synthesizer": self.name, "appearance": self.appearance, "background": list(self.background)}

    def _checked(self, source: SourceView):
        image = source.checked_image()
        if source.mesh is None or source.viewpoint is None:
            raise ValueError(f"{source.name}: the {self.name} synthesizer needs the object's mesh and the source "
                             "viewpoint (a datagen record with its CAD model)")
        return image

    def cameras(self, viewpoints: Sequence[Mapping], image_size: tuple[int, int]):
        """`geom3d.Cameras` (len(viewpoints),) of viewpoint mappings (data3d.Viewpoint keys)."""
        import geom3d
        torch = require("torch")

        def col(key):
            return torch.tensor([float(v[key]) for v in viewpoints], dtype=torch.float32)

        return geom3d.viewpoint_to_cameras(col("azimuth"), col("elevation"), col("theta"), col("distance"),
                                           focal=col("focal"), viewport=col("viewport"),
                                           principal=torch.stack([col("px"), col("py")], -1), image_size=image_size)

    def render(self, mesh, viewpoints: Sequence[Mapping], image_size: tuple[int, int]) -> list[np.ndarray]:
        """(H, W, 3) uint8 renders of `mesh` at `viewpoints`. A textured mesh (`source_textured_mesh`) is
        drawn unlit: the source's shading is in its texture, so the source viewpoint gives the source back."""
        import geom3d
        torch = require("torch")
        lit = {} if mesh.texture is None else {"ambient": 1.0, "light_intensities": 0.0}
        out = geom3d.render_gl(mesh, self.cameras(viewpoints, image_size), outputs=("rgb",), backend=self.backend,
                               background=self.background, **lit)
        rgb = out.rgb if out.rgb.shape[-1] == 3 else out.rgb.movedim(-3, -1)
        return list((rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())

    def source_mesh(self, source: SourceView):
        """The mesh to render: the source's own (appearance "mesh"), or the same surface textured with
        the source image (appearance "source", `source_textured_mesh`), cached per source."""
        if self.appearance == "mesh":
            return source.mesh
        # the key holds the mesh and image themselves: ids alone could be reused by later sources
        key = (source.mesh, source.image, source.name)
        cached = self._textured_key
        if cached is None or cached[0] is not key[0] or cached[1] is not key[1] or cached[2] != key[2]:
            image = source.checked_image()
            self._textured = source_textured_mesh(source.mesh, image, self.cameras([source.viewpoint], image.shape[:2]),
                                                  backend=self.backend)
            self._textured_key = key
        return self._textured

    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        image = self._checked(source)
        views = [target_viewpoint(source.viewpoint, p) for p in as_relative_poses(relative_poses)]
        return self.render(self.source_mesh(source), views, image.shape[:2])


def mirror_axis(vertices, tolerance: float = 0.02) -> int | None:
    """The object-frame axis (0, 1, 2) across whose plane through the origin the vertices are most
    symmetric, if the mean distance from a mirrored vertex to its nearest vertex is below
    `tolerance` × the bounding-box diagonal (CAD models of a category are left-right symmetric);
    else None."""
    from scipy.spatial import cKDTree
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) > 4000:  # the mean over a fixed subset: enough to tell a symmetry plane
        v = v[np.random.default_rng(0).choice(len(v), 4000, replace=False)]
    diagonal = float(np.linalg.norm(v.max(0) - v.min(0))) or 1.0
    tree = cKDTree(v)
    errors = []
    for axis in range(3):
        m = v.copy()
        m[:, axis] *= -1
        errors.append(float(tree.query(m)[0].mean()) / diagonal)
    best = int(np.argmin(errors))
    return best if errors[best] < tolerance else None


def _reflections(symmetry_axis: int | None) -> list[tuple[int, ...]]:
    """The object-frame axes to negate, in order, to find a seen stand-in for an unseen face: the
    symmetry plane's mirror first (exact for a symmetric object), then the other vertical planes' mirror
    and the half turn about the up axis (z), which carry the texture of the seen side to the hidden one
    as a generator paints it. A flat colour there marks the side away from the source in every set,
    a cue that measured front/back flips of whole sets in the merge (docs/pose.md)."""
    out = [] if symmetry_axis is None else [(symmetry_axis,)]
    for flips in ((0,), (1,), (0, 1)):
        if flips not in out:
            out.append(flips)
    return out


def _grow_colours(image: np.ndarray, mask: np.ndarray, rings: int = 3) -> np.ndarray:
    """The image with the object's colours grown `rings` pixels into the background, so that texture
    filtering at the silhouette does not blend in the background."""
    out, have = image.astype(np.float32), mask.astype(np.float32)
    for _ in range(rings):
        total = cv2.blur(out * have[..., None], (3, 3))
        count = cv2.blur(have, (3, 3))
        grow = (have == 0) & (count > 0)
        out[grow] = total[grow] / count[grow, None]
        have = np.maximum(have, grow.astype(np.float32))
    return out.round().clip(0, 255).astype(np.uint8)


def source_textured_mesh(mesh, image: np.ndarray, camera, backend: str | None = None):
    """The mesh textured with the source image seen from `camera` (a one-camera `geom3d.Cameras`), as a
    novel-view generator carries the source's appearance to the other views.

    Every face gets its own UVs (its vertices are unshared): a face the source sees takes the image
    where it projects; an unseen face takes the image where its mirror image across the object's
    symmetry plane (`mirror_axis`) projects, if the source sees that, else where the first of its
    other reflections (`_reflections`) lands on the object in the source; any other face takes the
    mean colour of the object's pixels (a strip appended below the image). A face counts as seen where
    three of four points on it project onto pixels whose source depth is theirs."""
    import geom3d
    torch = require("torch")
    h, w = image.shape[:2]
    faces = mesh.faces
    tri = mesh.vertices[faces]                                       # (F, 3, 3)
    drawn = geom3d.render_gl(mesh, camera, outputs=("depth", "mask"), backend=backend)
    depth, covered = drawn.depth.reshape(h, w), drawn.mask.reshape(h, w)
    size = float((mesh.vertices.max(0).values - mesh.vertices.min(0).values).norm())

    def shown(points_tri, exact=True):  # (F, 3, 3) -> (F,): does the source show these triangles' surface?
        # four points per triangle (its centroid and the midpoints towards its corners) are visible where
        # the source's depth at their pixel is theirs (not exact: where the object covers their pixel);
        # a triangle is shown when three of them are
        centre = points_tri.mean(1, keepdim=True)
        samples = torch.cat([centre, (2 * centre + points_tri) / 3], 1).reshape(-1, 3)
        px, z = camera.project(samples, return_depth=True)
        px, z = px[0].round().long(), z[0]
        inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h) & (z > 0)
        visible = torch.zeros(len(samples), dtype=torch.bool)
        at = px[inside]
        on_object = covered[at[:, 1], at[:, 0]]
        at_depth = (depth[at[:, 1], at[:, 0]] - z[inside]).abs() < 0.02 * size
        visible[inside] = on_object & at_depth if exact else on_object
        return visible.reshape(-1, 4).sum(1) >= 3

    uv_face = camera.project(tri.reshape(-1, 3))[0].reshape(-1, 3, 2)  # (F, 3, 2) pixels
    painted = shown(tri)
    axis = mirror_axis(mesh.vertices.detach().cpu().numpy())
    for flips in _reflections(axis):
        if bool(painted.all()):
            break
        reflected = tri.clone()
        reflected[..., list(flips)] *= -1
        # the symmetry plane maps the surface onto itself, the other reflections only roughly: for them
        # it is enough that the source shows the object where the reflection lands
        use = ~painted & shown(reflected, exact=flips == (axis,))
        pixels = camera.project(reflected.reshape(-1, 3))[0].reshape(-1, 3, 2)
        uv_face = torch.where(use[:, None, None], pixels, uv_face)
        painted |= use
    strip = 4
    mask = covered.cpu().numpy()
    object_pixels = image[mask]
    mean = object_pixels.mean(0) if len(object_pixels) else np.full(3, 178.0)
    fill = np.broadcast_to(mean.round().astype(np.uint8), (strip, w, 3))
    texture = np.concatenate([_grow_colours(image, mask), fill])
    fallback = torch.tensor([w / 2 - 0.5, h + strip / 2 - 0.5], dtype=uv_face.dtype)
    uv_face = torch.where(painted[:, None, None], uv_face, fallback)
    # integer pixel centres -> GL texture coordinates (v up), in the texture with the strip
    th = h + strip
    uv = torch.stack([(uv_face[..., 0] + 0.5) / w, 1.0 - (uv_face[..., 1] + 0.5) / th], -1).reshape(-1, 2)
    vertices = tri.reshape(-1, 3)
    return geom3d.Mesh(vertices, torch.arange(len(vertices)).reshape(-1, 3), uvs=uv,
                       texture=np.ascontiguousarray(texture), source=mesh.source)


class DegradedRenderSynthesizer(RenderSynthesizer):
    """The render synthesizer with a generator's faults, seeded per view:
    pose_sigma: std (radians) of Gaussian jitter added to Δpolar, Δazimuth and the in-plane angle of
    the rendered camera (the caller still believes the requested pose); texture: std of per-vertex
    colour noise (and of one colour shift per view); shape: amplitude of a smooth random vertex
    displacement, as a fraction of the object's bounding radius; blur: Gaussian blur σ in pixels."""

    name = "degraded"

    def __init__(self, pose_sigma: float = math.radians(10.0), texture: float = 0.08, shape: float = 0.04,
                 blur: float = 0.8, background=(1.0, 1.0, 1.0), backend: str | None = None,
                 appearance: str = "source"):
        super().__init__(background, backend, appearance)
        for key, value in (("pose_sigma", pose_sigma), ("texture", texture), ("shape", shape), ("blur", blur)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"degraded synthesizer: {key} must be a number ≥ 0, got {value!r}")
        self.pose_sigma, self.texture = float(pose_sigma), float(texture)
        self.shape, self.blur = float(shape), float(blur)

    def describe(self) -> dict:
        return {"synthesizer": self.name, "pose_sigma_deg": math.degrees(self.pose_sigma), "texture": self.texture,
                "shape": self.shape, "blur": self.blur, "appearance": self.appearance,
                "background": list(self.background)}

    def _damaged_mesh(self, mesh, rng: np.random.Generator):
        import geom3d
        torch = require("torch")
        v = mesh.vertices
        if self.shape > 0:  # a smooth field: a few random sinusoids over the object's extent
            radius = float(v.norm(dim=-1).max())
            k = torch.as_tensor(rng.normal(0, 2.0 / max(radius, 1e-6), (3, 3)), dtype=v.dtype)
            phase = torch.as_tensor(rng.uniform(0, 2 * math.pi, 3), dtype=v.dtype)
            v = v + self.shape * radius * torch.sin(v @ k + phase)
        if mesh.texture is not None:  # colour shift and smooth colour noise over the texture
            texture = mesh.texture.numpy().astype(np.float32) / 255.0
            if self.texture > 0:
                th, tw = texture.shape[:2]
                coarse = rng.normal(0, self.texture, (max(th // 8, 1), max(tw // 8, 1), 3)).astype(np.float32)
                noise = cv2.resize(coarse, (tw, th), interpolation=cv2.INTER_LINEAR)
                texture = texture + rng.normal(0, self.texture, 3).astype(np.float32) + noise
            texture = (np.clip(texture, 0, 1) * 255).round().astype(np.uint8)
            return geom3d.Mesh(v, mesh.faces, uvs=mesh.uvs, texture=texture)
        colors = mesh.vertex_colors if mesh.vertex_colors is not None else torch.full_like(v, 0.7)
        if self.texture > 0:
            shift = torch.as_tensor(rng.normal(0, self.texture, 3), dtype=v.dtype)
            noise = torch.as_tensor(rng.normal(0, self.texture, tuple(colors.shape)), dtype=v.dtype)
            colors = (colors + shift + noise).clamp(0, 1)
        # a CAD model's UV texture is dropped for the per-vertex damage: the damaged colours stand in for it
        return geom3d.Mesh(v, mesh.faces, vertex_colors=colors)

    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        image = self._checked(source)
        out = []
        for i, pose in enumerate(as_relative_poses(relative_poses)):
            rng = np.random.default_rng([int(seed), i])
            jitter = rng.normal(0.0, self.pose_sigma, 3) if self.pose_sigma > 0 else np.zeros(3)
            view = target_viewpoint(source.viewpoint, pose + np.array([jitter[0], jitter[1], 0.0]))
            view["theta"] += float(jitter[2])
            rendered = self.render(self._damaged_mesh(self.source_mesh(source), rng), [view], image.shape[:2])[0]
            if self.blur > 0:
                rendered = cv2.GaussianBlur(rendered, (0, 0), self.blur)
            out.append(rendered)
        return out


FLIP_MODES = ("set", "view")


class CorrelatedFailureSynthesizer(DegradedRenderSynthesizer):
    """The degraded synthesizer plus the failures of a real generator that are correlated, not
    independent jitter (Zero-1-to-3's known faults): everything the caller believes is the requested
    relative pose; what is drawn differs by
    flip_rate / flip_mode: a front/back ("Janus") flip, the object drawn from the opposite side
        (azimuth + π), for whole sets at once ("set": every view of one `synthesize` call flips or
        none does) or for each view on its own ("view", with probability `flip_rate` each). Set flips
        are counted, not drawn, over a collection: told the sets' seeds (`plan_sets`, which
        `pose.generate_sets` calls), exactly round(flip_rate × sets) of them flip (half up), the first
        ones of a permutation drawn from the seeds alone, so that a higher rate flips a superset of a
        lower rate's sets and the same seeds flip the same sets; a set whose seed was not planned (a
        lone `synthesize` call) flips with probability `flip_rate`;
    elevation_bias: radians added to every drawn view's elevation (a generator that systematically
        looks from higher or lower than asked);
    appearance_drift: std of a colour random walk over the views of a set: view k's colours are
        shifted by the sum of k Gaussian steps, so the texture changes more the further a view is
        from the source in the generation order.
    The other damage (pose_sigma, texture, shape, blur) is the degraded synthesizer's; set them to 0
    for the correlated failures alone. `failures(n, seed)` tells which views flip and their colour
    shifts, from the same seeded draws `synthesize` uses."""

    name = "correlated"

    def __init__(self, flip_rate: float = 0.2, flip_mode: str = "set", elevation_bias: float = math.radians(5.0),
                 appearance_drift: float = 0.03, pose_sigma: float = math.radians(5.0), texture: float = 0.05,
                 shape: float = 0.02, blur: float = 0.5, background=(1.0, 1.0, 1.0), backend: str | None = None,
                 appearance: str = "source"):
        super().__init__(pose_sigma, texture, shape, blur, background, backend, appearance)
        if not (math.isfinite(flip_rate) and 0.0 <= flip_rate <= 1.0):
            raise ValueError(f"correlated synthesizer: flip_rate must be in [0, 1], got {flip_rate!r}")
        if flip_mode not in FLIP_MODES:
            raise ValueError(f"correlated synthesizer: flip_mode must be one of {FLIP_MODES}, got {flip_mode!r}")
        if not math.isfinite(elevation_bias):
            raise ValueError(f"correlated synthesizer: elevation_bias must be finite, got {elevation_bias!r}")
        if not (math.isfinite(appearance_drift) and appearance_drift >= 0):
            raise ValueError(f"correlated synthesizer: appearance_drift must be ≥ 0, got {appearance_drift!r}")
        self.flip_rate, self.flip_mode = float(flip_rate), flip_mode
        self.elevation_bias, self.appearance_drift = float(elevation_bias), float(appearance_drift)
        self._planned: dict[int, bool] = {}

    def describe(self) -> dict:
        return {**super().describe(), "synthesizer": self.name, "flip_rate": self.flip_rate,
                "flip_mode": self.flip_mode, "elevation_bias_deg": math.degrees(self.elevation_bias),
                "appearance_drift": self.appearance_drift,
                "flip_count": "exact per collection" if self.flip_mode == "set" else "drawn per view"}

    @staticmethod
    def flip_count(rate: float, sets: int) -> int:
        """round(rate × sets), halves up (a float product a hair below x.5, as 0.15 × 10, counts as x.5)."""
        return int(math.floor(rate * sets + 0.5 + 1e-9))

    def plan_sets(self, seeds) -> None:
        """Fix which of the sets generated with `seeds` flip ("set" mode; see the class docstring): the
        first `flip_count(flip_rate, len(seeds))` of a permutation of the seeds drawn from the seeds
        themselves (not from the rate: the sets flipped at a lower rate flip at every higher one)."""
        seeds = [int(s) for s in seeds]
        if len(set(seeds)) != len(seeds):
            raise ValueError("correlated synthesizer: plan_sets needs distinct seeds, one per set")
        self._planned = {}
        if self.flip_mode != "set" or not seeds:
            return
        order = np.random.default_rng([2_000_003, *(s % 2**63 for s in seeds)]).permutation(len(seeds))
        chosen = set(order[:self.flip_count(self.flip_rate, len(seeds))].tolist())
        self._planned = {s: k in chosen for k, s in enumerate(seeds)}

    def failures(self, n: int, seed: int = 0) -> dict:
        """{"flipped": (n,) bool, "colour_shift": (n, 3) float}: the correlated failures of a set of n
        views generated with `seed` (one draw per set, independent of the per-view damage's draws; a
        planned set's flip is the plan's, see `plan_sets`)."""
        rng = np.random.default_rng([int(seed), 1_000_003])
        if self.flip_mode == "set":
            drawn = rng.random() < self.flip_rate  # drawn even when planned: the colour draws stay the same
            flipped = np.full(n, self._planned.get(int(seed), drawn))
        else:
            flipped = rng.random(n) < self.flip_rate
        steps = rng.normal(0.0, self.appearance_drift, (n, 3)) if self.appearance_drift > 0 else np.zeros((n, 3))
        return {"flipped": flipped, "colour_shift": np.cumsum(steps, axis=0)}

    def _shifted(self, mesh, shift: np.ndarray):
        """The mesh with its colours (vertex colours or texture) shifted by `shift` (3,) in [0, 1] units."""
        import geom3d
        torch = require("torch")
        if not np.any(shift):
            return mesh
        if mesh.texture is not None:
            texture = mesh.texture.numpy().astype(np.float32) / 255.0 + shift.astype(np.float32)
            texture = (np.clip(texture, 0, 1) * 255).round().astype(np.uint8)
            return geom3d.Mesh(mesh.vertices, mesh.faces, uvs=mesh.uvs, texture=texture)
        colors = mesh.vertex_colors if mesh.vertex_colors is not None else torch.full_like(mesh.vertices, 0.7)
        colors = (colors + torch.as_tensor(shift, dtype=colors.dtype)).clamp(0, 1)
        return geom3d.Mesh(mesh.vertices, mesh.faces, vertex_colors=colors)

    def synthesize(self, source: SourceView, relative_poses, seed: int = 0) -> list[np.ndarray]:
        image = self._checked(source)
        poses = as_relative_poses(relative_poses)
        fail = self.failures(len(poses), seed)
        out = []
        for i, pose in enumerate(poses):
            rng = np.random.default_rng([int(seed), i])
            jitter = rng.normal(0.0, self.pose_sigma, 3) if self.pose_sigma > 0 else np.zeros(3)
            drawn = pose + np.array([jitter[0] - self.elevation_bias,  # Δpolar = −Δelevation
                                     jitter[1] + (math.pi if fail["flipped"][i] else 0.0), 0.0])
            view = target_viewpoint(source.viewpoint, drawn)
            view["theta"] += float(jitter[2])
            damaged = self._damaged_mesh(self.source_mesh(source), rng)
            rendered = self.render(self._shifted(damaged, fail["colour_shift"][i]), [view], image.shape[:2])[0]
            if self.blur > 0:
                rendered = cv2.GaussianBlur(rendered, (0, 0), self.blur)
            out.append(rendered)
        return out
