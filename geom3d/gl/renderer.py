"""`GLRenderer`: an OpenGL renderer on its own headless EGL context, holding compiled programs,
uploaded meshes (`GPUMesh`) and tiled framebuffers (`TiledTarget`), all made once and reused.

Conventions. The cameras go through `cameras_to_opengl`, which maps the image rectangle edges to
NDC edges, so GL samples every pixel at its centre (u, v) = (column, row); NDC y is flipped so
that image row 0 is window row 0 (the framebuffer reads back in image order, and GL's edge rule
becomes the rasterizer's top-left rule). Camera depth needs no varying: clip w is camera z.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from aware3d_utils import require

from ..cameras import Cameras
from ..conventions import cameras_to_opengl
from ..errors import GeometryError
from ..mesh import Mesh
from ..shading import MAX_LIGHTS, LightingOptions
from . import context
from .batching import render_batched
from .face_ids import refine_face_ids
from .framebuffer import ATLAS_MAX_SIDE, TiledTarget, tile_layout
from .gpu_mesh import GPUMesh, version_key
from .options import EMPTY_DEPTH, RENDER_OUTPUTS, GLRender, RenderOptions
from .shaders import (
    ATTACHMENT_ORDER,
    ATTACHMENTS,
    FRAGMENT_SHADER,
    OUTPUT_DEFINE,
    OUTPUT_LOCATION,
    VERTEX_SHADER,
    shader_source,
    shader_variant,
)

__all__ = ["GLRenderer"]


class _ViewUniforms:
    """Per-view uniform values; `draw(program, b)` sets view b's and says whether to draw it."""

    def __init__(self, mvps, rots, normal_out, lighting: LightingOptions):
        self.mvps, self.rots, self.normal_out, self.lighting = mvps, rots, normal_out, lighting

    def draw(self, program, b: int) -> bool:
        if self.mvps[b] is None:  # the mesh lies wholly behind the camera
            return False
        _write_mat(program, "u_mvp", self.mvps[b])
        _write_mat(program, "u_rot", self.rots[b])
        _write_mat(program, "u_normal_out", self.normal_out[b])
        if "u_ambient" in program:
            lighting = self.lighting
            _set(program, "u_ambient", lighting.ambient[b].tolist())
            if lighting.light_dirs.shape[1]:
                _write_array(program, "u_light_dir", lighting.light_dirs[b])
                _write_array(program, "u_light_rgb", lighting.light_rgb[b])
        return True


def _samples(antialias, max_samples: int) -> int:
    """Samples per pixel for the antialiased colour pass: 0 (off) or 2..max_samples (RenderOptions
    has checked that antialias >= 0)."""
    n = int(antialias or 0)
    return 0 if n <= 1 else min(n, int(max_samples))


class GLRenderer:
    """An OpenGL renderer on its own headless EGL context, holding uploaded meshes and framebuffers.

    `render_gl` uses one per thread; make your own to control its lifetime (`release()`).
    Meshes are cached by identity (at most `max_meshes`, least recently used first out) and
    re-uploaded when one of their tensors is replaced or modified in place.
    """

    def __init__(self, max_meshes: int = 8, max_targets: int = 4):
        self.ctx = context.create_context()
        self.max_meshes, self.max_targets = max_meshes, max_targets
        self._programs: dict[tuple, object] = {}
        self._meshes: OrderedDict[int, tuple[object, GPUMesh]] = OrderedDict()
        self._targets: OrderedDict[tuple, TiledTarget] = OrderedDict()
        self._empty_texture = self.ctx.texture((1, 1), 3, bytes(12), dtype="f4")
        self.max_side = min(ATLAS_MAX_SIDE, int(self.ctx.info.get("GL_MAX_TEXTURE_SIZE", 8192)))
        self.renderer_name = str(self.ctx.info.get("GL_RENDERER", "unknown"))

    # ------------------------------------------------------------------ caches
    def _program(self, variant: tuple, outputs: tuple[str, ...], n_lights: int = 0):
        n_lights = n_lights if "rgb" in outputs else 0
        key = (variant, outputs, n_lights)
        if key not in self._programs:
            defines = {name: 1 for name in variant}
            defines.update(MAX_LIGHTS=MAX_LIGHTS, NUM_LIGHTS=n_lights)
            for loc, name in enumerate(outputs):
                defines[OUTPUT_DEFINE[name]] = 1
                defines[OUTPUT_LOCATION[name]] = loc
            self._programs[key] = self.ctx.program(vertex_shader=shader_source(VERTEX_SHADER, defines),
                                                   fragment_shader=shader_source(FRAGMENT_SHADER, defines))
        return self._programs[key]

    def upload(self, mesh: Mesh) -> GPUMesh:
        """The mesh on the GPU (uploaded on first use, reused while its tensors are unchanged)."""
        entry = self._meshes.get(id(mesh))
        if entry is not None and entry[0] is mesh and entry[1].key == version_key(mesh):
            self._meshes.move_to_end(id(mesh))
            return entry[1]
        if entry is not None:
            entry[1].release()
            del self._meshes[id(mesh)]
        gpu = GPUMesh(self.ctx, mesh)
        self._meshes[id(mesh)] = (mesh, gpu)  # holding the mesh keeps its id from being reused
        while len(self._meshes) > self.max_meshes:
            _, (_, old) = self._meshes.popitem(last=False)
            old.release()
        return gpu

    def _target(self, size, tiles, outputs, samples: int = 0) -> TiledTarget:
        key = (size, tiles, outputs, samples)
        if key in self._targets:
            self._targets.move_to_end(key)
            return self._targets[key]
        target = TiledTarget(self.ctx, size, tiles, outputs, samples)
        self._targets[key] = target
        while len(self._targets) > self.max_targets:
            _, old = self._targets.popitem(last=False)
            old.release()
        return target

    def release(self) -> None:
        """Free every GL object and the context."""
        if self.ctx is None:
            return
        with self.ctx:  # GL calls go to the current context: make it this renderer's
            for _, gpu in self._meshes.values():
                gpu.release()
            for t in self._targets.values():
                t.release()
            self._meshes.clear()
            self._targets.clear()
        self.ctx.release()
        self.ctx = None

    # ------------------------------------------------------------------ rendering
    def render(self, mesh, cameras: Cameras, image_size=None, *, outputs: Sequence[str] = RENDER_OUTPUTS,
               options: RenderOptions | None = None) -> GLRender:
        """Render with this renderer: the arguments and outputs of `render_gl` (its options as one
        `RenderOptions`), without the fallback."""
        if self.ctx is None:
            raise GeometryError("this GLRenderer has been released")
        with self.ctx:  # GL calls go to the current context: another renderer's may be current
            return render_batched(self.draw, mesh, cameras, image_size, outputs, options, "render_gl",
                                  remember_meshes=True)

    def draw(self, mesh: Mesh, cams: Cameras, want: tuple[str, ...], options: RenderOptions,
             lighting: LightingOptions, bg_image: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Draw the views of cameras (B,) (this context current): host outputs (B, H, W, ...)."""
        moderngl = require("moderngl")
        cams = cams.to(device="cpu")
        B = cams.R.shape[0]
        h, w = cams.image_size
        samples = _samples(options.antialias, self.ctx.max_samples)
        # the mask comes from the face index when it is drawn, else from depth (> 0 where covered)
        needed = set(want) | ({"depth"} if "mask" in want and "face_id" not in want else set())
        if samples:  # colour comes from its own multisampled pass
            needed.discard("rgb")
        gl_outputs = tuple(n for n in ATTACHMENT_ORDER if n in needed) or ("depth",)
        gpu = self.upload(mesh)
        mvps, rots = _view_matrices(cams, gpu.bounds, options.near, options.far)
        views = _ViewUniforms(mvps, rots, _normal_out(cams.R, options.normal_frame), lighting)
        # the colour of empty pixels: the background colour, or 0 (premultiplied) under an image
        rgb_clear = (0.0, 0.0, 0.0, 0.0) if bg_image is not None else (*lighting.background.tolist(), 0.0)

        passes = [(gl_outputs, 0)] + ([(("rgb",), samples)] if samples else [])
        tx, ty = tile_layout((h, w), B, self.max_side)
        per_atlas = tx * ty
        results: dict[str, np.ndarray] = {}
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        # The projection puts image row 0 at window row 0 (see _view_matrices), which mirrors the
        # screen: a face seen from its front (counter-clockwise in the image) is clockwise in GL's window.
        ctx.front_face = "cw"
        if options.cull_backfaces:
            ctx.enable(moderngl.CULL_FACE)
        else:
            ctx.disable(moderngl.CULL_FACE)
        try:
            for names, n_samples in passes:
                variant = shader_variant(gpu.has_color and "rgb" in names, gpu.has_uv and "rgb" in names,
                                         options.shading, "rgb" in names or "normal" in names)
                program = self._program(variant, names, lighting.light_dirs.shape[1])
                vao = gpu.vao(program, variant)
                vertices = 3 * gpu.num_faces
                self._bind_textures(program, gpu, variant, options.texture_filter)
                _set(program, "u_base_color", lighting.base_color.tolist())
                target = self._target((h, w), (tx, ty), names, n_samples)
                for name in names:
                    results[name] = np.empty((B, h, w, ATTACHMENTS[name][0]), dtype=target.host[name].dtype)
                for start in range(0, B, per_atlas):
                    n_views = min(per_atlas, B - start)
                    used_rows = math.ceil(n_views / tx)
                    region = (0, 0, w * tx, h * used_rows)
                    target.fbo.clear(depth=1.0, viewport=region)  # every attachment to 0, depth to far
                    for name, value in (("rgb", rgb_clear), ("depth", (EMPTY_DEPTH, 0.0, 0.0, 0.0))):
                        if name in names and any(value):  # those whose empty value is not 0
                            target.clear_fbos[name].clear(*value, viewport=region)
                    target.fbo.use()
                    for k in range(n_views):
                        if views.draw(program, start + k):
                            ctx.viewport = ((k % tx) * w, (k // tx) * h, w, h)
                            vao.render(moderngl.TRIANGLES, vertices=vertices)
                    target.resolve()
                    for name in names:
                        host = target.host[name]
                        target.textures[name].read_into(host)
                        c = host.shape[-1]
                        tiles = host.reshape(ty, h, tx, w, c)[:used_rows].transpose(0, 2, 1, 3, 4)
                        tiles = tiles.reshape(used_rows * tx, h, w, c)[:n_views]  # window row k is image row k
                        results[name][start:start + n_views] = tiles
        finally:
            ctx.disable(moderngl.CULL_FACE)
        out = _assemble(results, want, bg_image)
        if "face_id" in out and options.exact_face_id:
            out["face_id"] = refine_face_ids(out["face_id"], cams, gpu, out.get("depth"))
        return out

    def _bind_textures(self, program, gpu: GPUMesh, variant: tuple, texture_filter: str) -> None:
        if "u_texture" in program:
            tex = gpu.texture(texture_filter) if "HAS_UV" in variant else self._empty_texture
            tex.use(location=1)
            program["u_texture"].value = 1


def _set(program, name: str, value) -> None:
    if name in program:
        program[name].value = value


def _write_mat(program, name: str, m: np.ndarray) -> None:
    if name in program:
        program[name].write(np.ascontiguousarray(m.T, dtype=np.float32).tobytes())  # GLSL is column-major


def _write_array(program, name: str, values: torch.Tensor) -> None:
    """Write (L, 3) values into a vec3 array uniform (padded to the length the compiler kept)."""
    if name in program:
        length = program[name].array_length
        out = np.zeros((length, 3), dtype=np.float32)
        n = min(length, values.shape[0])
        out[:n] = values[:n].numpy()
        program[name].write(out.tobytes())


def _normal_out(R: torch.Tensor, frame: str) -> list[np.ndarray]:
    if frame == "camera":
        return [np.eye(3)] * R.shape[0]
    if frame == "world":
        return list(R.detach().double().transpose(-1, -2).numpy())
    raise GeometryError(f"normal_frame must be 'camera' or 'world', got {frame!r}")


def _view_matrices(cams: Cameras, bounds: torch.Tensor, near, far):
    """Per view: world -> clip (4×4 float64 array, None when the mesh lies behind the camera) and
    the world -> camera rotation. Near and far hug the mesh's bounding box so that the depth
    buffer keeps its precision where the surfaces are."""
    cams64 = cams.to(dtype=torch.float64)
    R, t = cams64.R.detach(), cams64.t.detach()
    corners = torch.stack(torch.meshgrid(*[bounds[:, i] for i in range(3)], indexing="ij"), -1).reshape(8, 3)
    z = (corners @ R.transpose(-1, -2) + t[:, None, :])[..., 2]  # (B, 8)
    zmin, zmax = z.amin(-1), z.amax(-1)
    margin = 1e-3 * (zmax - zmin).clamp_min(1e-9 * zmax.abs().clamp_min(1.0))
    n = torch.maximum(zmin - margin, 1e-4 * zmax) if near is None else torch.full_like(zmin, float(near))
    f = zmax + margin if far is None else torch.full_like(zmax, float(far))
    # nothing of the mesh between the clip planes (or in front of the camera): an empty view
    behind = (zmax <= 0) | (n >= zmax) | (f <= zmin) | (n >= f)
    matrices = cameras_to_opengl(cams64, near=1.0, far=2.0)
    view, proj = matrices["view"], matrices["projection"]
    # only these two entries depend on near and far
    proj[:, 2, 2] = -(f + n) / (f - n)
    proj[:, 2, 3] = -2 * f * n / (f - n)
    # Flip NDC y so that image row 0 lands on window row 0: the framebuffer then reads back in image
    # order, and GL's rule for pixel centres exactly on an edge (applied in window coordinates) is
    # the rasterizer's top-left rule in image coordinates.
    proj[:, 1, :] = -proj[:, 1, :]
    mvp = (proj @ view).numpy()
    return [None if behind[b] else mvp[b] for b in range(len(mvp))], list(R.numpy())


def _assemble(results: dict, want: tuple[str, ...], bg_image) -> dict:
    """Host arrays (B, H, W, C) -> a dict of CPU torch tensors (float32 and int64, bool mask).

    The copies are numpy's (one thread): torch's parallel kernels only lose time here when other
    processes share the cores."""
    out = {}
    face = None
    if "face_id" in results:
        face = results["face_id"][..., 0].astype(np.int64)
        face -= 1
    if "mask" in want:
        if face is not None:
            out["mask"] = torch.from_numpy(face >= 0)
        elif "depth" in results:
            out["mask"] = torch.from_numpy(results["depth"][..., 0] > 0)
        else:
            out["mask"] = torch.from_numpy(results["rgb"][..., 3] > 0)
    if "face_id" in want:
        out["face_id"] = torch.from_numpy(face)
    if "depth" in want:
        out["depth"] = torch.from_numpy(np.ascontiguousarray(results["depth"][..., 0]))
    if "normal" in want:
        out["normal"] = torch.from_numpy(np.ascontiguousarray(results["normal"][..., :3]))
    if "rgb" in want:
        rgba = results["rgb"]
        rgb = np.ascontiguousarray(rgba[..., :3])
        if bg_image is not None:  # colour is premultiplied by coverage (alpha) over a cleared 0
            rgb += bg_image.cpu().numpy() * (1 - rgba[..., 3:])
        out["rgb"] = torch.from_numpy(rgb)
    return {k: out[k] for k in RENDER_OUTPUTS if k in out}
