"""Fast, non-differentiable mesh rendering with OpenGL on a headless EGL context (moderngl).

`render_gl(mesh, cameras)` renders colour, camera depth, normals, face index and mask for a batch
of cameras in one call. It is what data generation uses: the context, shader programs and
framebuffers are made once per thread and reused, a mesh is uploaded once (and again only when its
tensors change), and all views of a call are drawn into one tiled framebuffer that is read back
in one go. On a CPU machine the context runs on Mesa's llvmpipe.

Conventions (DESIGN.md). The cameras go through `cameras_to_opengl`, which maps the image
rectangle edges to NDC edges, so GL samples every pixel at its centre (u, v) = (column, row):
the renderer agrees pixel for pixel with `geom3d.rasterize` and with ray casting.

Outputs (a dict of torch tensors, B = number of cameras, an unbatched camera counts as B = 1):

- ``rgb`` (B, H, W, 3) in [0, 1]: base colour (vertex colours, a UV texture, or ``base_color``)
  times (ambient + Lambertian directional lights), over the background colour or image.
- ``depth`` (B, H, W): camera z (OpenCV, the distance along the optical axis, not along the ray);
  ``EMPTY_DEPTH`` (0) where nothing is hit.
- ``mask`` (B, H, W) bool: a face covers the pixel centre.
- ``normal`` (B, H, W, 3): unit shading normal (the face normal, or interpolated vertex normals
  with ``shading="smooth"``) of the side of the face that the camera sees (for flat shading,
  n · ray <= 0 along the pixel's ray), in the OpenCV camera frame by default (x right, y down,
  z forward), or in the world frame with ``normal_frame="world"``; 0 where empty.
- ``face_id`` (B, H, W) int64: index of the visible face, −1 where empty.

Where no EGL context can be made (or with ``backend="raster"`` / ``AWARE3D_GL_BACKEND=raster``) the
same outputs come from `geom3d.rasterize` + `geom3d.interpolate`, with a warning logged once.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aware3d_utils import require

from .cameras import Cameras
from .conventions import cameras_to_opengl
from .errors import GeometryError, MeshError
from .mesh import Mesh

__all__ = ["render_gl", "GLRenderer", "gl_available", "EMPTY_DEPTH", "RENDER_OUTPUTS", "LightingOptions"]

log = logging.getLogger(__name__)

EMPTY_DEPTH = 0.0  # depth where no face is hit (camera z of a hit is always > 0)
RENDER_OUTPUTS = ("rgb", "depth", "mask", "normal", "face_id")
MAX_LIGHTS = 8
_ATLAS_MAX_PIXELS = 1 << 22  # views of one call are tiled into framebuffers of at most this many pixels
_ATLAS_MAX_SIDE = 8192
_BACKEND_ENV = "AWARE3D_GL_BACKEND"


# ---------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class LightingOptions:
    """Shading and background, resolved per call (per view where B-batched).

    ambient (B, 3), light_dirs (B, L, 3) unit vectors from the surface towards each light in the
    OpenCV camera frame, light_rgb (B, L, 3) colour × intensity, base_color (3,), background (3,).
    """

    ambient: torch.Tensor
    light_dirs: torch.Tensor
    light_rgb: torch.Tensor
    base_color: torch.Tensor
    background: torch.Tensor


def _rgb_option(value, name: str, batch: int | None = None) -> torch.Tensor:
    """A colour option as float64: a scalar (grey), (3,) or, with batch, (B, 3) -> (B, 3) or (3,)."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.ndim == 0:
        t = t.expand(3)
    if t.shape[-1:] != (3,) or t.ndim > 2 or (t.ndim == 2 and batch is None):
        raise GeometryError(f"{name} must be a number, an RGB triple or (B, 3), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t < 0).any():
        raise GeometryError(f"{name} must be finite and non-negative")
    if batch is not None:
        if t.ndim == 2 and t.shape[0] not in (1, batch):
            raise GeometryError(f"{name} has {t.shape[0]} rows for {batch} cameras")
        t = t.expand(batch, 3)
    return t


def _resolve_lighting(cameras_R: torch.Tensor, ambient=0.45, light_directions=None, light_colors=None,
                      light_intensities=None, light_frame: str = "camera", base_color=0.7,
                      background=0.0) -> LightingOptions:
    """Turn the user's light options into per-view camera-frame arrays (see `render_gl`)."""
    B = cameras_R.shape[0]
    if light_directions is None:  # one light above-left of the camera, shining onto the object
        light_directions = [(-0.35, -0.55, -1.0)]
        light_frame_eff = "camera"
        if light_intensities is None:
            light_intensities = 0.6
    else:
        light_frame_eff = light_frame
    dirs = torch.as_tensor(np.asarray(light_directions, dtype=np.float64))
    if dirs.numel() == 0:  # no directional light: ambient only
        dirs = torch.zeros(1, 0, 3, dtype=torch.float64)
    if dirs.ndim == 1:
        dirs = dirs[None]
    if dirs.ndim == 2:
        dirs = dirs[None]
    if dirs.ndim != 3 or dirs.shape[-1] != 3 or dirs.shape[0] not in (1, B):
        raise GeometryError(f"light_directions must be (L, 3) or (B, L, 3), got {tuple(dirs.shape)}")
    L = dirs.shape[1]
    if L > MAX_LIGHTS:
        raise GeometryError(f"at most {MAX_LIGHTS} directional lights, got {L}")
    norm = torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    if L and (not torch.isfinite(dirs).all() or (norm == 0).any()):
        raise GeometryError("light_directions must be finite and non-zero")
    dirs = (dirs / norm.clamp_min(1e-300)).expand(B, L, 3)
    if light_frame_eff == "world":
        dirs = dirs @ cameras_R.to(torch.float64).transpose(-1, -2)
    elif light_frame_eff != "camera":
        raise GeometryError(f"light_frame must be 'camera' or 'world', got {light_frame!r}")
    colors = torch.ones(B, L, 3, dtype=torch.float64) if light_colors is None else \
        torch.as_tensor(light_colors, dtype=torch.float64)
    if colors.ndim == 1:
        colors = colors.expand(L, 3)
    colors = colors.expand(B, L, 3) if colors.ndim in (2, 3) and colors.shape[-1] == 3 else None
    if colors is None:
        raise GeometryError("light_colors must be (3,), (L, 3) or (B, L, 3)")
    inten = torch.ones(B, L, dtype=torch.float64) if light_intensities is None else \
        torch.as_tensor(light_intensities, dtype=torch.float64)
    try:
        inten = inten.expand(B, L) if inten.ndim <= 2 else None
    except RuntimeError:
        inten = None
    if inten is None:
        raise GeometryError("light_intensities must be a number, (L,) or (B, L)")
    light_rgb = colors * inten[..., None]
    if not torch.isfinite(light_rgb).all() or (light_rgb < 0).any():
        raise GeometryError("light colours and intensities must be finite and non-negative")
    return LightingOptions(
        ambient=_rgb_option(ambient, "ambient", B), light_dirs=dirs.contiguous(),
        light_rgb=light_rgb.contiguous(), base_color=_rgb_option(base_color, "base_color"),
        background=_rgb_option(background, "background"),
    )


def _background_image(image, batch: int, size: tuple[int, int]) -> torch.Tensor | None:
    """A background image (H, W, 3) or (B, H, W, 3), uint8 or float in [0, 1] -> float32 (B|1, H, W, 3)."""
    if image is None:
        return None
    t = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[1:] != (*size, 3) or t.shape[0] not in (1, batch):
        raise GeometryError(f"background_image must be (H, W, 3) or (B, H, W, 3) with (H, W) = {size}, "
                            f"got {tuple(t.shape)}")
    return t


# ---------------------------------------------------------------------------------------- shaders
_VERTEX_SHADER = """
#version 330
uniform mat4 u_mvp;  // world -> clip, composed in float64 on the CPU
in vec3 in_position;
#ifdef PER_CORNER
in int in_face;           // per-corner arrays: every corner knows its face
in vec3 in_face_normal;
flat out int v_face;
flat out vec3 v_face_normal;
#endif
#ifdef HAS_COLOR
in vec3 in_color;
out vec3 v_color;
#endif
#ifdef HAS_UV
in vec2 in_uv;
out vec2 v_uv;
#endif
#ifdef SMOOTH
in vec3 in_normal;
out vec3 v_normal;
#endif
void main() {
#ifdef PER_CORNER
    v_face = in_face;
    v_face_normal = in_face_normal;
#endif
#ifdef HAS_COLOR
    v_color = in_color;
#endif
#ifdef HAS_UV
    v_uv = in_uv;
#endif
#ifdef SMOOTH
    v_normal = in_normal;
#endif
    gl_Position = u_mvp * vec4(in_position, 1.0);
}
"""

# Camera depth needs no varying: the projection puts the OpenCV camera z in clip w, and
# gl_FragCoord.w = 1 / w_clip. A face is seen from its front (normal towards the camera) exactly
# when it is counter-clockwise in the image, which is clockwise in GL's window since the
# projection puts image row 0 at window row 0: gl_FrontFacing with glFrontFace(GL_CW).
# Face index and face normal come as flat attributes of per-corner vertex arrays (PER_CORNER):
# on llvmpipe that is much cheaper per pixel than gl_PrimitiveID and a texture lookup.
_FRAGMENT_SHADER = """
#version 330
uniform mat3 u_rot;          // world -> camera rotation (OpenCV)
uniform mat3 u_normal_out;   // camera frame -> frame of the normal output
uniform sampler2D u_texture;
uniform vec3 u_base_color;
uniform vec3 u_ambient;
uniform vec3 u_light_dir[MAX_LIGHTS];
uniform vec3 u_light_rgb[MAX_LIGHTS];
#ifdef PER_CORNER
flat in int v_face;
flat in vec3 v_face_normal;
#endif
#ifdef HAS_COLOR
in vec3 v_color;
#endif
#ifdef HAS_UV
in vec2 v_uv;
#endif
#ifdef SMOOTH
in vec3 v_normal;
#endif
#ifdef OUT_RGB
layout(location = LOC_RGB) out vec4 f_rgb;
#endif
#ifdef OUT_DEPTH
layout(location = LOC_DEPTH) out float f_depth;
#endif
#ifdef OUT_NORMAL
layout(location = LOC_NORMAL) out vec4 f_normal;
#endif
#ifdef OUT_FACE
layout(location = LOC_FACE) out int f_face;
#endif
void main() {
#ifdef OUT_FACE
#ifdef PER_CORNER
    f_face = v_face + 1;  // 0 is the cleared value: empty
#else
    f_face = gl_PrimitiveID + 1;
#endif
#endif
#ifdef OUT_DEPTH
    f_depth = 1.0 / gl_FragCoord.w;
#endif
#if defined(OUT_RGB) || defined(OUT_NORMAL)
    float side = gl_FrontFacing ? 1.0 : -1.0;  // turn the normal towards the camera
    vec3 n_face = u_rot * v_face_normal;
#ifdef SMOOTH
    vec3 n = u_rot * v_normal;
    float len = length(n);
    n = side * (len > 0.0 ? n / len : n_face);
#else
    vec3 n = side * n_face;
#endif
#endif
#ifdef OUT_NORMAL
    f_normal = vec4(u_normal_out * n, 0.0);
#endif
#ifdef OUT_RGB
#if defined(HAS_UV)
    vec3 base = texture(u_texture, vec2(v_uv.x, 1.0 - v_uv.y)).rgb;
#elif defined(HAS_COLOR)
    vec3 base = v_color;
#else
    vec3 base = u_base_color;
#endif
    vec3 light = u_ambient;
    for (int i = 0; i < NUM_LIGHTS; ++i) {  // a constant count: llvmpipe unrolls it
        light += max(dot(n, u_light_dir[i]), 0.0) * u_light_rgb[i];
    }
    f_rgb = vec4(clamp(base * light, 0.0, 1.0), 1.0);
#endif
}
"""

# attachment formats: (components, dtype) of each output's colour attachment
_ATTACHMENTS = {"rgb": (4, "f4"), "depth": (1, "f4"), "normal": (4, "f4"), "face_id": (1, "i4")}
_ATTACHMENT_ORDER = ("rgb", "depth", "normal", "face_id")
_DEFINE = {"rgb": "OUT_RGB", "depth": "OUT_DEPTH", "normal": "OUT_NORMAL", "face_id": "OUT_FACE"}
_LOC = {"rgb": "LOC_RGB", "depth": "LOC_DEPTH", "normal": "LOC_NORMAL", "face_id": "LOC_FACE"}


def _shader_source(template: str, defines: Mapping[str, object]) -> str:
    header = "".join(f"#define {k} {v}\n" for k, v in defines.items())
    first, rest = template.lstrip().split("\n", 1)  # keep #version first
    return f"{first}\n{header}{rest}"


# ---------------------------------------------------------------------------------------- context
class _NoContext(RuntimeError):
    pass


_thread_state = threading.local()
_warned_fallback = False
_warn_lock = threading.Lock()


def _create_context():
    moderngl = require("moderngl")
    try:
        return moderngl.create_context(standalone=True, backend="egl")
    except Exception as exc:  # no EGL, no driver, no display device: every reason means "fall back"
        raise _NoContext(f"cannot create a headless EGL OpenGL context: {type(exc).__name__}: {exc}") from exc


def gl_available() -> bool:
    """True when an EGL OpenGL context can be made in this process (tried once, then remembered)."""
    try:
        _default_renderer()
    except (_NoContext, ImportError):
        return False
    return True


def _default_renderer() -> GLRenderer:
    """This thread's renderer (EGL contexts are current in one thread); remade after a fork."""
    pid = os.getpid()
    state = getattr(_thread_state, "renderer", None)
    if state is not None and state.pid == pid:
        if state.failure is not None:  # a fresh exception each time: a cached one would keep its traceback
            raise state.failure[0](state.failure[1])
        return state.renderer
    try:
        renderer = GLRenderer()
    except (_NoContext, ImportError) as exc:
        _thread_state.renderer = _ThreadRenderer(pid, None, (type(exc), str(exc)))
        raise
    _thread_state.renderer = _ThreadRenderer(pid, renderer, None)
    return renderer


class _ThreadRenderer:
    """This thread's renderer (or why it could not be made); released when the thread ends and its
    thread-local state is dropped, so short-lived threads do not leak contexts."""

    def __init__(self, pid: int, renderer: GLRenderer | None, failure: tuple | None):
        self.pid, self.renderer, self.failure = pid, renderer, failure

    def __del__(self):
        if self.renderer is not None and self.pid == os.getpid():
            try:
                self.renderer.release()
            except Exception:  # interpreter shutdown: GL may already be gone
                pass


# ---------------------------------------------------------------------------------------- GPU mesh
def _version_key(mesh: Mesh) -> tuple:
    """Identifies the mesh's current tensors: a changed (or replaced) tensor means a re-upload."""
    parts = []
    for t in (mesh.vertices, mesh.faces, mesh.vertex_colors, mesh.uvs, mesh.texture):
        parts.append(None if t is None else (id(t), t._version, t.data_ptr()))
    return tuple(parts)


class _GPUMesh:
    """A mesh's buffers and textures on the GL context; vertex arrays are made per program.

    Two layouts: indexed (shared vertices + index buffer: the cheapest for depth and face index)
    and per corner (three vertices per face carrying the face's index and normal, made on first
    use: what colour and normals need)."""

    def __init__(self, ctx, mesh: Mesh):
        v = mesh.vertices.detach().cpu()
        faces = mesh.faces.detach().cpu()
        where = mesh.source or "mesh"
        if faces.shape[0] == 0:
            raise MeshError(where, "has no faces to render")
        if not torch.isfinite(v).all():
            raise MeshError(where, "vertices contain NaN or infinite values")
        if int(faces.max()) >= 2**31 - 1:
            raise MeshError(where, "too many vertices for 32-bit indices")
        self.num_faces = int(faces.shape[0])
        self.ctx = ctx
        self.key = _version_key(mesh)
        self.bounds = torch.stack([v.amin(0), v.amax(0)]).double() if len(v) else torch.zeros(2, 3)
        self.buffers: dict[str, object] = {"position": ctx.buffer(_f4(v))}
        self.ibo = ctx.buffer(faces.to(torch.int32).contiguous().numpy().tobytes())
        self.has_color = mesh.vertex_colors is not None
        self.has_uv = mesh.has_texture
        self._v, self._faces = v, faces
        self._colors = mesh.vertex_colors.detach().cpu() if self.has_color else None
        self._uvs = mesh.uvs.detach().cpu() if self.has_uv else None
        self._mesh_for_normals = (v, faces)
        self._neighbours: torch.Tensor | None = None
        self._texture = None
        self._texture_src = mesh.texture if self.has_uv else None
        self._texture_filter = None
        self.corner_buffers: dict[str, object] = {}
        self.vaos: dict[tuple, object] = {}

    def neighbours(self) -> torch.Tensor:
        """(F, 3): the face across the edge opposite each corner (−1 on a border), by position."""
        if self._neighbours is None:
            self._neighbours = _edge_neighbours(*self._mesh_for_normals)
        return self._neighbours

    def _corner_buffer(self, name: str):
        """Per-corner (3F rows) arrays, made on first use."""
        if name not in self.corner_buffers:
            flat = self._faces.reshape(-1)
            if name == "position":
                data = _f4(self._v[flat])
            elif name == "face":
                data = torch.arange(self.num_faces, dtype=torch.int32).repeat_interleave(3).numpy().tobytes()
            elif name == "face_normal":
                data = _f4(_face_normals(self._v.double(), self._faces).repeat_interleave(3, 0))
            elif name == "color":
                data = _f4(self._colors[flat])
            elif name == "uv":
                data = _f4(self._uvs[flat])
            elif name == "normal":
                data = _f4(_vertex_normals(self._v.double(), self._faces)[flat])
            else:
                raise KeyError(name)
            self.corner_buffers[name] = self.ctx.buffer(data)
        return self.corner_buffers[name]

    def texture(self, filter_mode: str):
        moderngl = require("moderngl")
        if self._texture is None:
            img = self._texture_src.cpu().numpy()
            h, w = img.shape[:2]
            # row 0 of the image goes to t = 0; the shader samples at t = 1 - v (v up, DESIGN.md)
            self._texture = self.ctx.texture((w, h), 3, np.ascontiguousarray(img).tobytes(), alignment=1)
            self._texture.repeat_x = self._texture.repeat_y = True
        if filter_mode != self._texture_filter:
            if filter_mode == "mipmap":
                self._texture.build_mipmaps()
                self._texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
                self._texture.anisotropy = 16.0
            elif filter_mode == "linear":
                self._texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
                self._texture.anisotropy = 1.0
            elif filter_mode == "nearest":
                self._texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
                self._texture.anisotropy = 1.0
            else:
                raise GeometryError(f"texture_filter must be 'linear', 'nearest' or 'mipmap', got {filter_mode!r}")
            self._texture_filter = filter_mode
        return self._texture

    def vao(self, program, variant: tuple):
        """The vertex array binding this mesh's buffers to `program` (a VAO belongs to one program)."""
        key = (variant, program.glo)
        if key not in self.vaos:
            if "PER_CORNER" in variant:
                content = [(self._corner_buffer("position"), "3f", "in_position")]
                wanted = [("face", "1i", "in_face"), ("face_normal", "3f", "in_face_normal"),
                          ("color", "3f", "in_color"), ("uv", "2f", "in_uv"), ("normal", "3f", "in_normal")]
                # only what the compiled program kept (unused inputs are optimised away)
                content += [(self._corner_buffer(n), f, a) for n, f, a in wanted if a in program]
                self.vaos[key] = self.ctx.vertex_array(program, content)
            else:
                self.vaos[key] = self.ctx.vertex_array(program, [(self.buffers["position"], "3f", "in_position")],
                                                       index_buffer=self.ibo, index_element_size=4)
        return self.vaos[key]

    def release(self) -> None:
        for vao in self.vaos.values():
            vao.release()
        for buf in list(self.buffers.values()) + list(self.corner_buffers.values()):
            buf.release()
        self.ibo.release()
        if self._texture is not None:
            self._texture.release()


def _f4(t: torch.Tensor) -> bytes:
    return t.detach().to(torch.float32).contiguous().numpy().tobytes()


def _face_normals(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit face normals (F, 3) by the right-hand rule; zero for degenerate faces."""
    tri = v[faces]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    length = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    return torch.where(length > 0, n / length.clamp_min(1e-300), torch.zeros_like(n))


def _vertex_normals(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (V, 3); zero where a vertex has no (non-degenerate) face."""
    tri = v[faces]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    acc = torch.zeros_like(v).index_add_(0, faces.reshape(-1), n.repeat_interleave(3, 0))
    length = torch.linalg.vector_norm(acc, dim=-1, keepdim=True)
    return torch.where(length > 0, acc / length.clamp_min(1e-300), torch.zeros_like(acc))


def _edge_neighbours(v: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """For each face and corner k, the face sharing the edge opposite corner k, or −1: (F, 3).

    Vertices at the same position count as one (meshes split at seams or into per-face corners
    still connect). At an edge of more than two faces, one of the others is named."""
    _, canon = np.unique(v.numpy(), axis=0, return_inverse=True)
    f = torch.from_numpy(canon.reshape(-1))[faces]
    a, b = f[:, [1, 2, 0]], f[:, [2, 0, 1]]
    n_vertices = int(canon.max()) + 1 if canon.size else 1
    key = (torch.minimum(a, b) * n_vertices + torch.maximum(a, b)).reshape(-1)
    # a degenerate edge (both ends at one position) pairs with nothing
    key = torch.where(a.reshape(-1) == b.reshape(-1), -1 - torch.arange(key.numel()), key)
    order = torch.sort(key, stable=True).indices
    sk = key[order]
    partner = torch.full_like(key, -1)
    same = sk[1:] == sk[:-1]
    partner[order[:-1][same]] = order[1:][same]
    partner[order[1:][same]] = order[:-1][same]
    return torch.where(partner >= 0, torch.div(partner, 3, rounding_mode="floor"), -1).reshape(-1, 3)


def _edge_planes(corners: np.ndarray) -> np.ndarray:
    """Row k = X_{k+1} × X_{k+2} for camera-space triangles (..., 3, 3) [corner, xyz]: a ray r
    crosses the triangle's plane at barycentric coordinates b_k ∝ row_k · r."""
    return np.stack([np.cross(corners[..., (k + 1) % 3, :], corners[..., (k + 2) % 3, :]) for k in range(3)],
                    axis=-2)


def _barycentrics(planes: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (N, 3) of rays (x, y, 1) in triangles given by their edge planes
    (N, 3, 3), up to a positive factor per row (the ray is inside iff all are >= 0)."""
    w = planes[:, :, 0] * x[:, None] + planes[:, :, 1] * y[:, None] + planes[:, :, 2]
    return w * np.sign(w.sum(-1))[:, None]


def _refine_face_ids(face: torch.Tensor, cams: Cameras, gpu: _GPUMesh, depth: torch.Tensor | None = None,
                     rounds: int = 2) -> torch.Tensor:
    """Settle pixels whose centre lies next to an edge shared by two faces exactly, in float64.

    llvmpipe snaps vertices to 1/256 pixel, so a pixel centre within ~1/512 pixel of an edge may
    go to the face across it. For each covered pixel, the barycentric coordinates of its ray in
    the GL face are checked; one outside the face walks to the neighbour across the edge it
    violates most (at most `rounds` steps) and takes the first face that contains the ray. The
    depth of such pixels (if given, updated in place) becomes the camera z of the ray's hit on
    the new face. numpy, not torch: one thread does this best on shared cores."""
    ids = face.numpy().copy()
    B, h, w = ids.shape
    view, row, col = np.nonzero(ids >= 0)
    if view.size == 0:
        return face
    v, faces = gpu._v.double().numpy(), gpu._faces.numpy()
    n_faces, n_vertices = faces.shape[0], v.shape[0]
    R, t, K = (x.detach().double().cpu().numpy() for x in (cams.R, cams.t, cams.K))
    verts_cam = v @ R.transpose(0, 2, 1) + t[:, None, :]  # (B, V, 3)
    Kinv = np.linalg.inv(K)
    # ray K⁻¹ (u, v, 1) of each pixel centre (camera z = 1)
    yn = row * Kinv[view, 1, 1] + Kinv[view, 1, 2]
    xn = col * Kinv[view, 0, 0] + row * Kinv[view, 0, 1] + Kinv[view, 0, 2]
    current = ids[view, row, col]
    table = verts_cam.reshape(-1, 3)

    def planes_of(face_ids, views):
        return _edge_planes(table[faces[face_ids] + (views * n_vertices)[:, None]])

    if view.size > B * n_faces:  # cheaper to tabulate every face of every view once
        planes = _edge_planes(verts_cam[:, faces]).reshape(B * n_faces, 3, 3)[view * n_faces + current]
    else:
        planes = planes_of(current, view)
    bary = _barycentrics(planes, xn, yn)
    neighbours = gpu.neighbours().numpy()
    todo, cand = np.arange(view.size), current.copy()
    for step in range(rounds + 1):
        inside = (bary >= 0).all(-1)
        found = inside & (cand != current[todo])
        moved = todo[found]
        if moved.size:
            current[moved] = cand[found]
            if depth is not None:
                corners = table[faces[current[moved]] + (view[moved] * n_vertices)[:, None]]
                normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
                ray = np.stack([xn[moved], yn[moved], np.ones(moved.size)], -1)
                z = (corners[:, 0] * normal).sum(-1) / (normal * ray).sum(-1)  # the rays have z = 1
                depth[view[moved], row[moved], col[moved]] = torch.from_numpy(z).to(depth.dtype)
        still = ~inside
        if step == rounds or not still.any():
            break
        todo, cand, bary = todo[still], cand[still], bary[still]
        nxt = neighbours[cand, bary.argmin(-1)]
        ok = nxt >= 0
        todo, cand = todo[ok], nxt[ok]
        bary = _barycentrics(planes_of(cand, view[todo]), xn[todo], yn[todo])
    ids[view, row, col] = current
    return torch.from_numpy(ids)


# ---------------------------------------------------------------------------------------- renderer
class _Target:
    """A tiled framebuffer: `tiles_x × tiles_y` views of (H, W), one texture per output.

    With `samples` > 1 the drawing goes to multisampled renderbuffers that `resolve()` averages
    into the textures (antialiased colour, coverage in alpha)."""

    def __init__(self, ctx, size: tuple[int, int], tiles: tuple[int, int], outputs: tuple[str, ...],
                 samples: int = 0):
        h, w = size
        tx, ty = tiles
        self.ctx, self.size, self.tiles, self.outputs, self.samples = ctx, size, tiles, outputs, samples
        full = (w * tx, h * ty)
        self.textures = {name: ctx.texture(full, _ATTACHMENTS[name][0], dtype=_ATTACHMENTS[name][1])
                         for name in outputs}
        if samples:
            self.buffers = [ctx.renderbuffer(full, _ATTACHMENTS[n][0], samples=samples, dtype=_ATTACHMENTS[n][1])
                            for n in outputs]
            self.depth = ctx.depth_renderbuffer(full, samples=samples)
            self.fbo = ctx.framebuffer(self.buffers, self.depth)
            self.resolved = [ctx.framebuffer([self.textures[n]]) for n in outputs]
            self.clear_fbos = {n: ctx.framebuffer([buf]) for n, buf in zip(outputs, self.buffers)}
        else:
            self.buffers, self.resolved = [], []
            self.depth = ctx.depth_renderbuffer(full)
            self.fbo = ctx.framebuffer([self.textures[n] for n in outputs], self.depth)
            # one framebuffer per attachment so that each can be cleared to its own value
            self.clear_fbos = {n: ctx.framebuffer([self.textures[n]]) for n in outputs}
        self.host = {n: np.empty((h * ty, w * tx, _ATTACHMENTS[n][0]),
                                 dtype=np.int32 if _ATTACHMENTS[n][1] == "i4" else np.float32) for n in outputs}

    def resolve(self) -> None:
        for name, dst in zip(self.outputs, self.resolved):
            self.ctx.copy_framebuffer(dst, self.clear_fbos[name])

    def release(self) -> None:
        for f in list(self.clear_fbos.values()) + self.resolved:
            f.release()
        self.fbo.release()
        self.depth.release()
        for t in list(self.textures.values()) + self.buffers:
            t.release()


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
    """Samples per pixel for the antialiased colour pass: 0 (off) or 2..max_samples."""
    n = int(antialias or 0)
    if n < 0:
        raise GeometryError(f"antialias must be a number of samples >= 0, got {antialias}")
    return 0 if n <= 1 else min(n, int(max_samples))


class GLRenderer:
    """An OpenGL renderer on its own headless EGL context, holding uploaded meshes and framebuffers.

    `render_gl` uses one per thread; make your own to control its lifetime (`release()`).
    Meshes are cached by identity (at most `max_meshes`, least recently used first out) and
    re-uploaded when one of their tensors is replaced or modified in place.
    """

    def __init__(self, max_meshes: int = 8, max_targets: int = 4):
        self.ctx = _create_context()
        self.max_meshes, self.max_targets = max_meshes, max_targets
        self._programs: dict[tuple, object] = {}
        self._meshes: OrderedDict[int, tuple[object, _GPUMesh]] = OrderedDict()
        self._targets: OrderedDict[tuple, _Target] = OrderedDict()
        self._empty_texture = self.ctx.texture((1, 1), 3, bytes(12), dtype="f4")
        self.max_side = min(_ATLAS_MAX_SIDE, int(self.ctx.info.get("GL_MAX_TEXTURE_SIZE", 8192)))
        self.renderer_name = str(self.ctx.info.get("GL_RENDERER", "unknown"))

    # ------------------------------------------------------------------ caches
    def _program(self, variant: tuple, outputs: tuple[str, ...], n_lights: int = 0):
        n_lights = n_lights if "rgb" in outputs else 0
        key = (variant, outputs, n_lights)
        if key not in self._programs:
            defines = {name: 1 for name in variant}
            defines.update(MAX_LIGHTS=MAX_LIGHTS, NUM_LIGHTS=n_lights)
            for loc, name in enumerate(outputs):
                defines[_DEFINE[name]] = 1
                defines[_LOC[name]] = loc
            self._programs[key] = self.ctx.program(vertex_shader=_shader_source(_VERTEX_SHADER, defines),
                                                   fragment_shader=_shader_source(_FRAGMENT_SHADER, defines))
        return self._programs[key]

    def upload(self, mesh: Mesh) -> _GPUMesh:
        """The mesh on the GPU (uploaded on first use, reused while its tensors are unchanged)."""
        entry = self._meshes.get(id(mesh))
        if entry is not None and entry[0] is mesh and entry[1].key == _version_key(mesh):
            self._meshes.move_to_end(id(mesh))
            return entry[1]
        if entry is not None:
            entry[1].release()
            del self._meshes[id(mesh)]
        gpu = _GPUMesh(self.ctx, mesh)
        self._meshes[id(mesh)] = (mesh, gpu)  # holding the mesh keeps its id from being reused
        while len(self._meshes) > self.max_meshes:
            _, (_, old) = self._meshes.popitem(last=False)
            old.release()
        return gpu

    def _target(self, size, tiles, outputs, samples: int = 0) -> _Target:
        key = (size, tiles, outputs, samples)
        if key in self._targets:
            self._targets.move_to_end(key)
            return self._targets[key]
        target = _Target(self.ctx, size, tiles, outputs, samples)
        self._targets[key] = target
        while len(self._targets) > self.max_targets:
            _, old = self._targets.popitem(last=False)
            old.release()
        return target

    def _tiles(self, size: tuple[int, int], count: int) -> tuple[int, int]:
        h, w = size
        if h > self.max_side or w > self.max_side:
            raise GeometryError(f"image size {size} exceeds the OpenGL limit of {self.max_side} pixels a side")
        per_atlas = max(1, min(count, _ATLAS_MAX_PIXELS // (h * w)))
        tx = max(1, min(per_atlas, self.max_side // w))
        ty = max(1, min(math.ceil(per_atlas / tx), self.max_side // h))
        return tx, ty

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
    def render(self, mesh: Mesh, cameras: Cameras, outputs: Sequence[str] = RENDER_OUTPUTS, *,
               shading: str = "flat", normal_frame: str = "camera", texture_filter: str = "linear",
               near: float | None = None, far: float | None = None, cull_backfaces: bool = False,
               background_image=None, exact_face_id: bool = True, antialias: int = 0,
               **light_options) -> dict[str, torch.Tensor]:
        """See `render_gl` for the arguments and outputs."""
        if self.ctx is None:
            raise GeometryError("this GLRenderer has been released")
        with self.ctx:  # GL calls go to the current context: another renderer's may be current
            return self._render(mesh, cameras, outputs, shading=shading, normal_frame=normal_frame,
                                texture_filter=texture_filter, near=near, far=far, cull_backfaces=cull_backfaces,
                                background_image=background_image, exact_face_id=exact_face_id,
                                antialias=antialias, **light_options)

    def _render(self, mesh, cameras, outputs, *, shading, normal_frame, texture_filter, near, far, cull_backfaces,
                background_image, exact_face_id, antialias, **light_options) -> dict[str, torch.Tensor]:
        moderngl = require("moderngl")
        want = _check_outputs(outputs)
        cams = _flatten_cameras(cameras)
        B = cams.R.shape[0]
        h, w = cams.image_size
        lighting = _resolve_lighting(cams.R, **light_options)
        bg_image = _background_image(background_image, B, (h, w))
        samples = _samples(antialias, self.ctx.max_samples)
        # the mask comes from the face index when it is drawn, else from depth (> 0 where covered)
        needed = set(want) | ({"depth"} if "mask" in want and "face_id" not in want else set())
        if samples:  # colour comes from its own multisampled pass
            needed.discard("rgb")
        gl_outputs = tuple(n for n in _ATTACHMENT_ORDER if n in needed) or ("depth",)
        gpu = self.upload(mesh)
        mvps, rots = _view_matrices(cams, gpu.bounds, near, far)
        views = _ViewUniforms(mvps, rots, _normal_out(cams.R, normal_frame), lighting)
        # the colour of empty pixels: the background colour, or 0 (premultiplied) under an image
        rgb_clear = (0.0, 0.0, 0.0, 0.0) if bg_image is not None else (*lighting.background.tolist(), 0.0)

        passes = [(gl_outputs, 0)] + ([(("rgb",), samples)] if samples else [])
        tx, ty = self._tiles((h, w), B)
        per_atlas = tx * ty
        results: dict[str, np.ndarray] = {}
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        # The projection puts image row 0 at window row 0 (see _view_matrices), which mirrors the
        # screen: a face seen from its front (counter-clockwise in the image) is clockwise in GL's window.
        ctx.front_face = "cw"
        if cull_backfaces:
            ctx.enable(moderngl.CULL_FACE)
        else:
            ctx.disable(moderngl.CULL_FACE)
        try:
            for names, n_samples in passes:
                variant = _variant(gpu.has_color and "rgb" in names, gpu.has_uv and "rgb" in names, shading,
                                   "rgb" in names or "normal" in names)
                program = self._program(variant, names, lighting.light_dirs.shape[1])
                vao = gpu.vao(program, variant)
                vertices = 3 * gpu.num_faces
                self._bind_textures(program, gpu, variant, texture_filter)
                _set(program, "u_base_color", lighting.base_color.tolist())
                target = self._target((h, w), (tx, ty), names, n_samples)
                for name in names:
                    results[name] = np.empty((B, h, w, _ATTACHMENTS[name][0]), dtype=target.host[name].dtype)
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
        out = _assemble(results, want, bg_image, cams.R.dtype)
        if "face_id" in out and exact_face_id:
            out["face_id"] = _refine_face_ids(out["face_id"], cams, gpu, out.get("depth"))
        return out

    def _bind_textures(self, program, gpu: _GPUMesh, variant: tuple, texture_filter: str) -> None:
        if "u_texture" in program:
            tex = gpu.texture(texture_filter) if "HAS_UV" in variant else self._empty_texture
            tex.use(location=1)
            program["u_texture"].value = 1


def _variant(has_color: bool, has_uv: bool, shading: str, needs_normals: bool) -> tuple:
    """Shader features: PER_CORNER (colour or normals drawn: per-corner arrays), the colour source
    and SMOOTH (interpolated vertex normals)."""
    if shading not in ("flat", "smooth"):
        raise GeometryError(f"shading must be 'flat' or 'smooth', got {shading!r}")
    variant = ["PER_CORNER"] if needs_normals else []
    if has_uv:
        variant.append("HAS_UV")
    elif has_color:
        variant.append("HAS_COLOR")
    if shading == "smooth" and needs_normals:
        variant.append("SMOOTH")
    return tuple(variant)


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


def _check_outputs(outputs: Sequence[str]) -> tuple[str, ...]:
    if isinstance(outputs, str):
        outputs = (outputs,)
    unknown = [o for o in outputs if o not in RENDER_OUTPUTS]
    if unknown:
        raise GeometryError(f"unknown render outputs {unknown}; choose from {RENDER_OUTPUTS}")
    return tuple(o for o in RENDER_OUTPUTS if o in outputs)


def _flatten_cameras(cameras: Cameras) -> Cameras:
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    shape = cameras.batch_shape
    n = int(np.prod(shape)) if len(shape) else 1
    return cameras.reshape(n).to(device="cpu")


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
    for name, value in (("near", near), ("far", far)):
        if value is not None and not float(value) > 0:
            raise GeometryError(f"{name} must be > 0, got {value}")
    if near is not None and far is not None and not float(near) < float(far):
        raise GeometryError(f"need near < far, got near={near}, far={far}")
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


def _assemble(results: dict, want: tuple[str, ...], bg_image, dtype) -> dict:
    """Host arrays (B, H, W, C) -> the output dict of torch tensors.

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
        out["depth"] = torch.from_numpy(np.ascontiguousarray(results["depth"][..., 0])).to(dtype)
    if "normal" in want:
        out["normal"] = torch.from_numpy(np.ascontiguousarray(results["normal"][..., :3])).to(dtype)
    if "rgb" in want:
        rgba = results["rgb"]
        rgb = np.ascontiguousarray(rgba[..., :3])
        if bg_image is not None:  # colour is premultiplied by coverage (alpha) over a cleared 0
            rgb += bg_image.numpy() * (1 - rgba[..., 3:])
        out["rgb"] = torch.from_numpy(rgb).to(dtype)
    return {k: out[k] for k in RENDER_OUTPUTS if k in out}


# ---------------------------------------------------------------------------------------- fallback
def render_raster(mesh: Mesh, cameras: Cameras, outputs: Sequence[str] = RENDER_OUTPUTS, *,
                  shading: str = "flat", normal_frame: str = "camera", texture_filter: str = "linear",
                  near: float | None = None, far: float | None = None, cull_backfaces: bool = False,
                  background_image=None, exact_face_id: bool = True, antialias: int = 0,
                  **light_options) -> dict[str, torch.Tensor]:
    """`render_gl`'s outputs computed with `geom3d.rasterize` + `geom3d.interpolate` (no OpenGL).

    The same shading model as the GL shader; textures are sampled as OpenGL does (repeat wrap,
    texel centres at (k + ½)/size, bilinear or nearest; "mipmap" falls back to bilinear).
    `near`/`far`, `exact_face_id` (the rasterizer is exact already) and `antialias` are ignored
    (the rasterizer clips at its own near plane); back-face culling is applied when asked.
    """
    from . import raster  # the differentiable rasterizer (pure PyTorch)

    want = _check_outputs(outputs)
    cams = _flatten_cameras(cameras)
    B = cams.R.shape[0]
    h, w = cams.image_size
    lighting = _resolve_lighting(cams.R, **light_options)
    bg_image = _background_image(background_image, B, (h, w))
    _variant(mesh.vertex_colors is not None, mesh.has_texture, shading, True)  # validates `shading`
    _normal_out(cams.R, normal_frame)
    dtype = cams.dtype
    verts = mesh.vertices.detach().cpu().to(dtype)
    faces = mesh.faces.cpu()
    with torch.no_grad():
        # culled faces are dropped before the depth test, so a front face behind them shows
        frags = raster.rasterize((verts, faces), cams, (h, w), cull_backfaces=cull_backfaces)
        face = frags.pix_to_face.reshape(B, h, w).to(torch.int64)
        mask = face >= 0
        out: dict[str, torch.Tensor] = {}
        if "mask" in want:
            out["mask"] = mask
        if "face_id" in want:
            out["face_id"] = face
        if "depth" in want:
            out["depth"] = torch.where(mask, frags.depth.reshape(B, h, w).to(dtype),
                                       torch.full((), EMPTY_DEPTH, dtype=dtype))
        if "rgb" in want or "normal" in want:
            n = _shading_normals(mesh, verts, faces, frags, face, cams, shading)  # (B, H, W, 3) camera frame
            if "normal" in want:
                nn = n if normal_frame == "camera" else torch.einsum("bji,bhwj->bhwi", cams.R.to(n.dtype), n)
                out["normal"] = torch.where(mask[..., None], nn, torch.zeros_like(nn)).to(dtype)
            if "rgb" in want:
                out["rgb"] = _shade(mesh, verts, frags, mask, n, lighting, bg_image, texture_filter).to(dtype)
    return {k: out[k] for k in RENDER_OUTPUTS if k in out}


def _pixel_rays(cams: Cameras) -> torch.Tensor:
    """Direction K⁻¹ (u, v, 1) of each pixel centre in the camera frame: (B, H, W, 3) float64."""
    h, w = cams.image_size
    K = cams.K.double()
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                          indexing="ij")
    uv1 = torch.stack([u, v, torch.ones_like(u)], -1)
    return torch.einsum("bij,hwj->bhwi", torch.linalg.inv(K), uv1)


def _shading_normals(mesh, verts, faces, frags, face, cams, shading) -> torch.Tensor:
    from . import raster

    R = cams.R.double()
    fn = _face_normals(verts.double(), faces)
    n_face = torch.einsum("bij,bhwj->bhwi", R, fn[face.clamp_min(0)])
    side = torch.where((n_face * _pixel_rays(cams)).sum(-1, keepdim=True) > 0, -1.0, 1.0).to(torch.float64)
    if shading == "smooth":
        vn = _vertex_normals(verts.double(), faces).to(verts.dtype)
        n = raster.interpolate(frags, vn).reshape(face.shape + (3,)).double()
        n = torch.einsum("bij,bhwj->bhwi", R, n)
        length = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
        n = torch.where(length > 0, n / length.clamp_min(1e-300), n_face)
    else:
        n = n_face
    return (side * n).float()


def _shade(mesh, verts, frags, mask, n, lighting: LightingOptions, bg_image, texture_filter) -> torch.Tensor:
    from . import raster

    B, h, w = mask.shape
    if mesh.has_texture:
        uv = raster.interpolate(frags, mesh.uvs.detach().cpu().to(verts.dtype)).reshape(B, h, w, 2)
        base = sample_texture(mesh.texture, uv, texture_filter).float()
    elif mesh.vertex_colors is not None:
        base = raster.interpolate(frags, mesh.vertex_colors.detach().cpu().to(verts.dtype)).reshape(B, h, w, 3)
    else:
        base = lighting.base_color.float().expand(B, h, w, 3)
    light = lighting.ambient.float()[:, None, None, :].expand(B, h, w, 3)
    for i in range(lighting.light_dirs.shape[1]):
        d = lighting.light_dirs[:, i].float()[:, None, None, :]
        lam = (n * d).sum(-1, keepdim=True).clamp_min(0)
        light = light + lam * lighting.light_rgb[:, i].float()[:, None, None, :]
    rgb = (base.float() * light).clamp(0, 1)
    bg = lighting.background.float().expand(B, h, w, 3) if bg_image is None else bg_image.expand(B, h, w, 3)
    return torch.where(mask[..., None], rgb, bg)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor, mode: str = "linear") -> torch.Tensor:
    """Sample an (H, W, 3) uint8 texture at UVs (..., 2) (v up) as OpenGL does with repeat wrapping:
    texel (i, j) has its centre at (u, v) = ((j + ½)/W, 1 − (i + ½)/H). Returns (..., 3) in [0, 1].
    `mode` is "nearest" or "linear" ("mipmap" is treated as linear)."""
    tex = torch.as_tensor(texture).to(torch.float64) / 255.0
    th, tw = tex.shape[:2]
    uv = uv.to(torch.float64)
    x = uv[..., 0] * tw
    y = (1.0 - uv[..., 1]) * th
    if mode == "nearest":
        j = torch.floor(x).long().remainder(tw)
        i = torch.floor(y).long().remainder(th)
        return tex[i, j]
    if mode not in ("linear", "mipmap"):
        raise GeometryError(f"texture_filter must be 'linear', 'nearest' or 'mipmap', got {mode!r}")
    x, y = x - 0.5, y - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    j0, i0 = x0.long(), y0.long()
    j1, i1 = (j0 + 1).remainder(tw), (i0 + 1).remainder(th)
    j0, i0 = j0.remainder(tw), i0.remainder(th)
    top = tex[i0, j0] * (1 - ax) + tex[i0, j1] * ax
    bottom = tex[i1, j0] * (1 - ax) + tex[i1, j1] * ax
    return top * (1 - ay) + bottom * ay


# ---------------------------------------------------------------------------------------- entry point
def render_gl(mesh: Mesh, cameras: Cameras, image_size=None, *, outputs: Sequence[str] = RENDER_OUTPUTS,
              backend: str | None = None, **options) -> dict[str, torch.Tensor]:
    """Render a mesh under a batch of cameras with OpenGL (headless EGL); see the module docstring.

    Args:
        mesh: a `geom3d.Mesh`; colour from its UV texture, else its vertex colours, else base_color.
        cameras: `Cameras` with any batch shape (flattened to B views; unbatched means B = 1).
        image_size: (H, W); must equal `cameras.image_size` when given.
        outputs: the subset of ("rgb", "depth", "mask", "normal", "face_id") to compute; fewer
            outputs render faster (depth only is the cheapest).
        backend: "gl", "raster" (the PyTorch rasterizer), or None/"auto": GL, falling back to the
            rasterizer with a warning logged once when no EGL context can be made. The environment
            variable AWARE3D_GL_BACKEND sets the default.

    Options:
        ambient: ambient light colour × intensity, a number, (3,) or per view (B, 3). Default 0.45.
        light_directions: (L, 3) or (B, L, 3) unit vectors from the surface towards each light
            (at most 8), in the OpenCV camera frame unless light_frame="world". Default: one light
            above-left of the camera, (−0.35, −0.55, −1.0) normalised, intensity 0.6.
        light_colors: (3,), (L, 3) or (B, L, 3); default white. light_intensities: number, (L,) or (B, L).
        light_frame: "camera" (default) or "world".
        base_color: colour of meshes without colours or texture (default 0.7 grey).
        background: background colour (default black); background_image: (H, W, 3) or
            (B, H, W, 3), uint8 or float in [0, 1].
        shading: "flat" (face normals, default: right for CAD models) or "smooth" (vertex normals).
        normal_frame: "camera" (default, OpenCV axes) or "world".
        texture_filter: "linear" (default), "nearest" or "mipmap" (trilinear + anisotropic).
        near, far: clip planes in camera z; by default they hug the mesh's bounding box.
        cull_backfaces: drop faces whose right-hand normal points away from the camera (default
            False: both sides render).
        antialias: samples per pixel (e.g. 4) for a multisampled rgb pass: smooth edges, the
            background blended by coverage. depth, mask, normal and face_id stay single-sample
            (exact at pixel centres). Default 0 (off); the fallback ignores it.
        exact_face_id: settle face_id at pixel centres next to an edge shared by two faces with
            an exact float64 test, as ray casting and the rasterizer do (llvmpipe snaps vertices
            to 1/256 pixel); depth follows the settled face, rgb and normal at those pixels
            (within ~1/512 pixel of the edge) still show the face GL drew. Default True; False
            saves the float64 pass over the covered pixels.

    Returns:
        dict with the requested outputs: rgb (B, H, W, 3), depth (B, H, W) (EMPTY_DEPTH = 0 where
        empty), mask (B, H, W) bool, normal (B, H, W, 3), face_id (B, H, W) int64 (−1 where empty).
        Floating outputs take the cameras' dtype (GL computes in float32).
    """
    if not isinstance(mesh, Mesh):
        raise GeometryError(f"render_gl needs a geom3d.Mesh, got {type(mesh).__name__}")
    if not isinstance(cameras, Cameras):
        raise GeometryError(f"cameras must be a geom3d.Cameras, got {type(cameras).__name__}")
    if image_size is not None and tuple(int(s) for s in image_size) != tuple(cameras.image_size):
        raise GeometryError(f"image_size {tuple(image_size)} differs from the cameras' {cameras.image_size}; "
                            "use cameras.resize(image_size)")
    backend = (backend or os.environ.get(_BACKEND_ENV) or "auto").lower()
    if backend not in ("auto", "gl", "raster"):
        raise GeometryError(f"backend must be 'auto', 'gl' or 'raster', got {backend!r}")
    if backend == "raster":
        return render_raster(mesh, cameras, outputs, **options)
    try:
        renderer = _default_renderer()
    except (_NoContext, ImportError) as exc:
        if backend == "gl":
            raise
        _warn_fallback(exc)
        return render_raster(mesh, cameras, outputs, **options)
    return renderer.render(mesh, cameras, outputs, **options)


def _warn_fallback(exc: Exception) -> None:
    global _warned_fallback
    with _warn_lock:
        if not _warned_fallback:
            log.warning("render_gl: %s; rendering with geom3d.rasterize instead (slower)", exc)
            _warned_fallback = True
