"""A small triangle-mesh type, with loading and saving through trimesh.

`Mesh` holds torch tensors: vertices (V, 3) float, faces (F, 3) int64, and optionally per-vertex
colours (V, 3) in [0, 1], per-vertex UVs (V, 2) and a texture image (H, W, 3) uint8. UVs follow
the convention trimesh gives on load for OBJ and glTF alike: u to the right, v up (v = 0 is the
bottom row of the texture image).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .errors import MeshError

__all__ = ["Mesh", "MESH_SUFFIXES"]

MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl", ".glb", ".gltf")
_POINT_CLOUD_SUFFIXES = (".pcd", ".xyz", ".pts")
_NO_SHARED_VERTICES = (".stl",)  # formats that store each triangle's corners separately

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Mesh:
    """Triangle mesh: vertices (V, 3), faces (F, 3), optional colours, UVs, texture.

    `warnings` lists problems met while loading that did not stop it (e.g. a texture file the
    material names but that does not exist); `source` is the file it came from.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    vertex_colors: torch.Tensor | None = None
    uvs: torch.Tensor | None = None
    texture: torch.Tensor | None = None
    source: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        v = torch.as_tensor(self.vertices)
        if not v.is_floating_point():
            v = v.float()
        f = torch.as_tensor(self.faces, dtype=torch.int64, device=v.device)
        where = self.source or "mesh"
        if v.ndim != 2 or v.shape[1] != 3:
            raise MeshError(where, f"vertices must have shape (V, 3), got {tuple(v.shape)}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise MeshError(where, f"faces must have shape (F, 3), got {tuple(f.shape)}")
        if f.numel() and (int(f.min()) < 0 or int(f.max()) >= v.shape[0]):
            raise MeshError(where, f"face indices out of range [0, {v.shape[0]})")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)
        if self.vertex_colors is not None:
            c = torch.as_tensor(self.vertex_colors, device=v.device)
            c = c.to(v.dtype) / 255.0 if c.dtype == torch.uint8 else c.to(v.dtype)
            if c.shape != (v.shape[0], 3):
                raise MeshError(where, f"vertex_colors must have shape ({v.shape[0]}, 3), got {tuple(c.shape)}")
            object.__setattr__(self, "vertex_colors", c)
        if self.uvs is not None:
            uv = torch.as_tensor(self.uvs, device=v.device).to(v.dtype)
            if uv.shape != (v.shape[0], 2):
                raise MeshError(where, f"uvs must have shape ({v.shape[0]}, 2), got {tuple(uv.shape)}")
            object.__setattr__(self, "uvs", uv)
        if self.texture is not None:
            tex = torch.as_tensor(np.asarray(self.texture))
            if tex.ndim != 3 or tex.shape[2] != 3 or tex.dtype != torch.uint8:
                raise MeshError(where, f"texture must be an (H, W, 3) uint8 image, got {tuple(tex.shape)} {tex.dtype}")
            object.__setattr__(self, "texture", tex)
        object.__setattr__(self, "warnings", tuple(self.warnings))

    # ------------------------------------------------------------------ basic properties
    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def has_texture(self) -> bool:
        return self.uvs is not None and self.texture is not None

    def bounds(self) -> torch.Tensor:
        """Axis-aligned bounds [[xmin, ymin, zmin], [xmax, ymax, zmax]]: (2, 3)."""
        return torch.stack([self.vertices.amin(0), self.vertices.amax(0)])

    def _face_cross(self) -> torch.Tensor:
        """(v1 − v0) × (v2 − v0) per face (F, 3): twice the area along the right-hand normal."""
        tri = self.vertices[self.faces]
        return torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)

    def face_normals(self) -> torch.Tensor:
        """Unit normals of the faces (F, 3), by the right-hand rule on the vertex order; zero for
        degenerate faces (zero area), never NaN."""
        return _unit_or_zero(self._face_cross())

    def vertex_normals(self) -> torch.Tensor:
        """Area-weighted vertex normals (V, 3); zero for vertices whose faces are all degenerate (or
        that belong to no face), never NaN."""
        n = self._face_cross()
        acc = torch.zeros_like(self.vertices).index_add_(0, self.faces.reshape(-1), n.repeat_interleave(3, 0))
        return _unit_or_zero(acc)

    def to(self, device=None, dtype=None) -> Mesh:
        def mv(x):
            return None if x is None else x.to(device=device, dtype=dtype)

        return replace(self, vertices=mv(self.vertices), faces=self.faces.to(device=device),
                       vertex_colors=mv(self.vertex_colors), uvs=mv(self.uvs))

    # ------------------------------------------------------------------ transforms
    def transform(self, matrix) -> Mesh:
        """Apply a 4×4 (or 3×4) affine transform to the vertices; a mirroring transform flips the
        face order so that normals keep pointing outwards.

        Dtype rule: the vertices and a floating matrix are promoted to their common dtype (a float64
        matrix gives a float64 mesh); numbers, lists and integer tensors take the vertices' dtype.
        """
        M = torch.as_tensor(matrix, device=self.vertices.device)
        if M.is_complex() or M.dtype == torch.bool:
            raise MeshError(self.source or "mesh", f"transform matrix must be real, got {M.dtype}")
        dtype = torch.promote_types(self.vertices.dtype, M.dtype) if M.is_floating_point() else self.vertices.dtype
        if M.shape not in ((4, 4), (3, 4)):
            raise MeshError(self.source or "mesh", f"transform matrix must be 4×4 or 3×4, got {tuple(M.shape)}")
        M = M.to(dtype)
        v = self.vertices.to(dtype) @ M[:3, :3].T + M[:3, 3]
        faces = self.faces
        if _det3(M[:3, :3].tolist()) < 0:
            faces = faces[:, [0, 2, 1]]
        return replace(self, vertices=v, faces=faces)

    def normalized(self) -> tuple[Mesh, torch.Tensor]:
        """Centre the bounding box at the origin and scale the longest side to 1.

        Returns the new mesh and the 4×4 transform T applied (v_new = T @ [v, 1]).
        """
        lo, hi = self.bounds()
        extent = float((hi - lo).max())
        if not extent > 0:
            raise MeshError(self.source or "mesh", "cannot normalise a mesh with zero extent")
        s = 1.0 / extent
        T = torch.eye(4, dtype=self.vertices.dtype, device=self.vertices.device)
        T[:3, :3] *= s
        T[:3, 3] = -s * (lo + hi) / 2
        return self.transform(T), T

    @staticmethod
    def concatenate(meshes: Sequence[Mesh]) -> Mesh:
        """One mesh holding all parts; colours are kept when every part has them (textures are dropped)."""
        if not meshes:
            raise MeshError("mesh", "nothing to concatenate")
        offsets = np.cumsum([0] + [m.num_vertices for m in meshes[:-1]])
        vertices = torch.cat([m.vertices for m in meshes])
        faces = torch.cat([m.faces + int(o) for m, o in zip(meshes, offsets)])
        colors = None
        if all(m.vertex_colors is not None for m in meshes):
            colors = torch.cat([m.vertex_colors for m in meshes])
        uvs = torch.cat([m.uvs for m in meshes]) if all(m.uvs is not None for m in meshes) else None
        warnings = tuple(w for m in meshes for w in m.warnings)
        return Mesh(vertices, faces, colors, uvs, None, None, warnings)

    # ------------------------------------------------------------------ trimesh bridge
    @classmethod
    def from_trimesh(cls, tm, source: str | None = None, warnings: Sequence[str] = ()) -> Mesh:
        """From a `trimesh.Trimesh`, keeping vertex colours or (UV + texture image)."""
        import trimesh

        vertices = np.asarray(tm.vertices, dtype=np.float32)
        faces = np.asarray(tm.faces, dtype=np.int64)
        colors = uvs = texture = None
        visual = tm.visual
        if isinstance(visual, trimesh.visual.texture.TextureVisuals):
            image = _material_image(visual.material)
            if visual.uv is not None and len(visual.uv) == len(vertices) and image is not None:
                uvs = np.asarray(visual.uv, dtype=np.float32)
                texture = np.asarray(image.convert("RGB"))
            else:
                rgb = _material_colour(visual.material)
                if rgb is not None:
                    colors = np.tile(rgb, (len(vertices), 1))
        elif isinstance(visual, trimesh.visual.color.ColorVisuals) and visual.kind in ("vertex", "face"):
            colors = np.asarray(visual.vertex_colors[:, :3], dtype=np.float32) / 255.0
        return cls(torch.from_numpy(vertices), torch.from_numpy(faces),
                   None if colors is None else torch.as_tensor(colors, dtype=torch.float32),
                   None if uvs is None else torch.from_numpy(uvs),
                   None if texture is None else torch.from_numpy(np.array(texture, dtype=np.uint8)),
                   source, tuple(warnings))

    def to_trimesh(self):
        """As a `trimesh.Trimesh` (texture or vertex colours attached)."""
        import trimesh
        from PIL import Image

        v = self.vertices.detach().cpu().numpy()
        f = self.faces.cpu().numpy()
        if self.has_texture:
            visual = trimesh.visual.TextureVisuals(
                uv=self.uvs.detach().cpu().numpy(), image=Image.fromarray(self.texture.cpu().numpy()))
        elif self.vertex_colors is not None:
            rgb = (self.vertex_colors.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            visual = trimesh.visual.ColorVisuals(vertex_colors=np.concatenate(
                [rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1))
        else:
            visual = None
        return trimesh.Trimesh(v, f, visual=visual, process=False)

    # ------------------------------------------------------------------ files
    @classmethod
    def load(cls, path: str | os.PathLike) -> Mesh:
        """Load OFF, OBJ (+MTL), PLY, STL, GLB/glTF. Scenes are flattened with their transforms.

        Raises MeshError (naming the file) for a missing or unreadable file, an unknown format, a
        point cloud, an empty mesh or non-finite vertices. A material that names a missing
        texture loads the geometry and records the missing file in `warnings`.
        """
        import trimesh

        path = Path(path)
        suffix = path.suffix.lower()
        if not path.is_file():
            raise MeshError(path, "file not found")
        if suffix in _POINT_CLOUD_SUFFIXES:
            raise MeshError(path, "is a point cloud, not a mesh; read it with geom3d.load_point_cloud")
        if suffix not in MESH_SUFFIXES:
            raise MeshError(path, f"unknown mesh format {suffix!r} (known: {', '.join(MESH_SUFFIXES)})")
        warnings = _missing_obj_textures(path) if suffix == ".obj" else []
        trimesh_log = logging.getLogger("trimesh")
        level = trimesh_log.level
        trimesh_log.setLevel(logging.ERROR)  # its warnings about missing textures are ours to report
        try:
            loaded = trimesh.load(str(path), process=False)
            if isinstance(loaded, trimesh.Scene):
                if not loaded.geometry:
                    raise MeshError(path, "the file holds no geometry")
                meshes = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
                if not meshes:
                    raise MeshError(path, "the file holds no triangle mesh (a point cloud or lines?)")
                loaded = meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)
        except MeshError:
            raise
        except Exception as exc:  # trimesh raises many types for bad files
            raise MeshError(path, f"cannot be read: {type(exc).__name__}: {exc}") from exc
        finally:
            trimesh_log.setLevel(level)
        if not isinstance(loaded, trimesh.Trimesh):
            raise MeshError(path, f"is not a triangle mesh (trimesh loaded a {type(loaded).__name__})")
        if suffix in _NO_SHARED_VERTICES:
            loaded.merge_vertices()
        if len(loaded.faces) == 0 or len(loaded.vertices) == 0:
            raise MeshError(path, "the mesh is empty (no faces)")
        if not np.isfinite(loaded.vertices).all():
            raise MeshError(path, "vertices contain NaN or infinite values")
        for w in warnings:
            log.warning("%s: %s", path, w)
        return cls.from_trimesh(loaded, source=str(path), warnings=warnings)

    def save(self, path: str | os.PathLike) -> None:
        """Write the mesh (format from the suffix), atomically: files appear complete or not at all.

        OBJ writes its MTL and texture beside it.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in MESH_SUFFIXES:
            raise MeshError(path, f"unknown mesh format {suffix!r} (known: {', '.join(MESH_SUFFIXES)})")
        path.parent.mkdir(parents=True, exist_ok=True)
        tm = self.to_trimesh()
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-mesh-") as tmp:
            tm.export(os.path.join(tmp, path.name))
            for name in sorted(os.listdir(tmp)):  # the main file last, after its MTL and texture
                if name != path.name:
                    os.replace(os.path.join(tmp, name), path.parent / name)
            os.replace(os.path.join(tmp, path.name), path)

    def __repr__(self) -> str:
        extra = " textured" if self.has_texture else " coloured" if self.vertex_colors is not None else ""
        return f"Mesh({self.num_vertices} vertices, {self.num_faces} faces{extra}, source={self.source!r})"


def _det3(a) -> float:
    """Determinant of a 3×3 nested list (cofactor expansion in Python floats: for the sign test of a
    transform, a LAPACK call per small matrix costs more than the transform itself)."""
    return (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))


def _unit_or_zero(n: torch.Tensor) -> torch.Tensor:
    """Rows of n (..., 3) scaled to unit length; rows of length zero stay zero."""
    length = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    return torch.where(length > 0, n / torch.where(length > 0, length, torch.ones_like(length)), torch.zeros_like(n))


def _material_image(material):
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    return image


def _material_colour(material) -> np.ndarray | None:
    """The uniform diffuse / base colour of a material as RGB in [0, 1], if it has one."""
    for name in ("baseColorFactor", "diffuse", "main_color"):
        value = getattr(material, name, None)
        if value is not None:
            raw = np.asarray(value)
            rgb = raw.astype(np.float32).reshape(-1)[:3]
            return rgb / 255.0 if raw.dtype == np.uint8 else rgb  # trimesh keeps 8-bit colours as uint8
    return None


_MTLLIB = re.compile(r"^\s*mtllib\s+(.+?)\s*$", re.MULTILINE)
_MAP = re.compile(r"^\s*(map_\w+|bump|disp|decal)\s+(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def _missing_obj_textures(path: Path) -> list[str]:
    """Files an OBJ's material libraries name but that do not exist (as readable warnings)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    problems = []
    for lib in _MTLLIB.findall(text):
        mtl = path.parent / lib
        if not mtl.is_file():
            problems.append(f"material library {lib} is missing")
            continue
        for _, arg in _MAP.findall(mtl.read_text(errors="replace")):
            # the file name may hold spaces, or follow options such as "-s 1 1 1"
            if not any((mtl.parent / name).is_file() for name in (arg, arg.split()[-1])):
                problems.append(f"texture {arg} named in {mtl.name} is missing")
    return problems
