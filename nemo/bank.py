"""The neural mesh bank: per category a mesh whose vertices carry unit features, plus a clutter bank.

All categories live in one padded tensor (`pad_meshes`), so that one batch can mix categories:

    vertices (M, Vmax, 3), faces (M, Fmax, 3), features (M, Vmax, D), clutter (K, D)

Padding vertices are zeros with zero features; padding faces are the degenerate [0, 0, 0] and
cover no pixel. Vertex features are a momentum memory (NeMo: μ = 0.9, new = normalize(μ·old +
(1 − μ)·batch)); the clutter bank is a FIFO of features from pixels outside the object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

import geom3d

from .distributed import all_reduce_sum
from .errors import NemoError

__all__ = ["MeshBank", "random_unit"]

CLUTTER_SIZE = 2560


def random_unit(n: int, dim: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """(n, dim) random unit vectors, uniform on the sphere."""
    return F.normalize(torch.randn(n, dim, generator=generator, dtype=dtype), dim=-1)


class MeshBank:
    """Neural meshes of several categories in one padded bank (see the module docstring).

    meshes: category -> `geom3d.Mesh` (e.g. `geom3d.cuboid_from_meshes` over its CAD models).
    features: category -> (V, D) vertex features (normalised on the way in); random unit features
        for missing categories. clutter: (K, D) clutter features; 2,560 random unit ones when None.
    momentum: μ of the vertex memory update.
    """

    def __init__(self, meshes: Mapping[str, geom3d.Mesh], features: Mapping[str, torch.Tensor] | None = None,
                 clutter: torch.Tensor | None = None, feature_dim: int = 128, seed: int = 0,
                 momentum: float = 0.9, clutter_size: int = CLUTTER_SIZE):
        if not meshes:
            raise NemoError("MeshBank needs at least one category mesh")
        if not 0.0 <= momentum < 1.0:
            raise NemoError(f"MeshBank: momentum must be in [0, 1), got {momentum}")
        features = dict(features or {})
        unknown = set(features) - set(meshes)
        if unknown:
            raise NemoError(f"MeshBank: features given for categories without a mesh: {sorted(unknown)}")
        if clutter is not None:
            feature_dim = int(torch.as_tensor(clutter).shape[-1])
        elif features:
            feature_dim = int(torch.as_tensor(next(iter(features.values()))).shape[-1])
        self.feature_dim = int(feature_dim)
        self.momentum = float(momentum)
        self.categories: list[str] = list(meshes)
        gen = torch.Generator().manual_seed(int(seed))
        for name in self.categories:
            if not isinstance(meshes[name], geom3d.Mesh):
                raise NemoError(f"MeshBank: the mesh of {name!r} must be a geom3d.Mesh, "
                                f"got {type(meshes[name]).__name__}")
        padded = geom3d.pad_meshes([meshes[c].to(dtype=torch.float32) for c in self.categories])
        self.vertices, self.faces = padded.vertices, padded.faces
        self.num_vertices, self.num_faces = padded.vertex_counts, padded.face_counts
        self.features = torch.zeros(len(self.categories), self.vertices.shape[1], self.feature_dim)
        for m, name in enumerate(self.categories):
            V = int(self.num_vertices[m])
            given = features.get(name)
            if given is None:
                given = random_unit(V, self.feature_dim, gen)
            given = torch.as_tensor(given, dtype=torch.float32)
            if given.shape != (V, self.feature_dim):
                raise NemoError(f"MeshBank: features of {name!r} must have shape ({V}, {self.feature_dim}), "
                                f"got {tuple(given.shape)}")
            self.features[m, :V] = F.normalize(given, dim=-1)
        if clutter is None:
            clutter = random_unit(int(clutter_size), self.feature_dim, gen)
        clutter = torch.as_tensor(clutter, dtype=torch.float32)
        if clutter.ndim != 2 or clutter.shape[1] != self.feature_dim or clutter.shape[0] == 0:
            raise NemoError(f"MeshBank: clutter must have shape (K, {self.feature_dim}), got {tuple(clutter.shape)}")
        self.clutter = F.normalize(clutter, dim=-1)
        self._clutter_next = 0  # FIFO write position

    # ------------------------------------------------------------------ lookup
    def index(self, categories) -> torch.Tensor:
        """Bank indices (B,) int64 of category names (or pass-through integer indices)."""
        if isinstance(categories, str):
            categories = [categories]
        out = []
        for c in categories:
            if isinstance(c, str):
                if c not in self.categories:
                    raise NemoError(f"MeshBank: unknown category {c!r}; the bank holds {self.categories}")
                out.append(self.categories.index(c))
            else:
                c = int(c)
                if not 0 <= c < len(self.categories):
                    raise NemoError(f"MeshBank: category index {c} out of range [0, {len(self.categories)})")
                out.append(c)
        return torch.tensor(out, dtype=torch.int64, device=self.features.device)

    def mesh(self, category: str) -> geom3d.Mesh:
        """The category's mesh (unpadded)."""
        m = int(self.index(category)[0])
        V, Fc = int(self.num_vertices[m]), int(self.num_faces[m])
        return geom3d.Mesh(self.vertices[m, :V], self.faces[m, :Fc])

    def vertex_features(self, category: str) -> torch.Tensor:
        """(V, D) unit vertex features of the category."""
        m = int(self.index(category)[0])
        return self.features[m, : int(self.num_vertices[m])]

    def vertex_mask(self) -> torch.Tensor:
        """(M, Vmax) bool: which rows of the padded bank are real vertices."""
        ar = torch.arange(self.vertices.shape[1], device=self.features.device)
        return ar[None, :] < self.num_vertices.to(ar.device)[:, None]

    def clutter_centre(self) -> torch.Tensor:
        """(D,) the normalised mean clutter feature (NeMo's clutter model at pose-fitting time)."""
        return F.normalize(self.clutter.mean(0), dim=0)

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device) -> MeshBank:
        """Move the bank's tensors to `device` (in place); returns self."""
        for name in ("vertices", "faces", "num_vertices", "num_faces", "features", "clutter"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    # ------------------------------------------------------------------ memory updates
    @torch.no_grad()
    def update_vertices(self, category_index: torch.Tensor, features: torch.Tensor, visible: torch.Tensor,
                        weighting: str = "nemo") -> None:
        """Momentum update from one batch of per-vertex image features.

        category_index (B,) bank rows; features (B, Vmax, D) the image feature at each vertex's
        projection; visible (B, Vmax) bool. weighting "nemo": per category the visible features
        are summed over the batch's images and divided by that category's image count (so rarely
        seen vertices move less, as in NeMo); "binary": every vertex seen at least once moves by
        (1 − μ) towards its normalised mean feature.
        """
        if weighting not in ("nemo", "binary"):
            raise NemoError(f"MeshBank.update_vertices: weighting must be 'nemo' or 'binary', got {weighting!r}")
        idx = torch.as_tensor(category_index, device=self.device).long()
        vis = torch.as_tensor(visible, device=self.device).to(self.features.dtype)
        feats = features.detach().to(self.features.dtype) * vis[..., None]
        M = len(self.categories)
        total = torch.zeros_like(self.features).index_add_(0, idx, feats)  # (M, Vmax, D)
        images = torch.zeros(M, device=self.device).index_add_(0, idx, torch.ones_like(idx, dtype=torch.float32))
        seen = torch.zeros(M, vis.shape[1], device=self.device).index_add_(0, idx, vis)
        for part in (total, images, seen):  # under torchrun: the same update on every process
            all_reduce_sum(part)
        mu = self.momentum
        if weighting == "nemo":
            mean = total / images.clamp(min=1)[:, None, None]
        else:
            mean = F.normalize(total, dim=-1)
        moved = (seen > 0)[..., None]
        new = F.normalize(mu * self.features + (1 - mu) * mean, dim=-1)
        self.features = torch.where(moved, new, self.features) * self.vertex_mask()[..., None]

    @torch.no_grad()
    def push_clutter(self, features: torch.Tensor) -> None:
        """Write (N, D) clutter features into the FIFO (the oldest are replaced)."""
        feats = F.normalize(features.detach().reshape(-1, self.feature_dim).to(self.clutter), dim=-1)
        K = self.clutter.shape[0]
        feats = feats[-K:]
        rows = (self._clutter_next + torch.arange(feats.shape[0], device=self.device)) % K
        self.clutter[rows] = feats
        self._clutter_next = int((self._clutter_next + feats.shape[0]) % K)

    # ------------------------------------------------------------------ incremental growth (iNeMo)
    def add_category(self, name: str, mesh: geom3d.Mesh, features: torch.Tensor | None = None,
                     seed: int = 0) -> None:
        """Append a category (its mesh, and its features or random unit ones) to the bank."""
        if name in self.categories:
            raise NemoError(f"MeshBank.add_category: {name!r} is already in the bank")
        meshes = {c: self.mesh(c) for c in self.categories}
        meshes[name] = mesh
        feats = {c: self.vertex_features(c) for c in self.categories}
        if features is not None:
            feats[name] = features
        else:
            gen = torch.Generator().manual_seed(int(seed))
            feats[name] = random_unit(mesh.num_vertices, self.feature_dim, gen)
        device, pointer = self.device, self._clutter_next
        self.__init__(meshes, feats, self.clutter.cpu(), momentum=self.momentum)
        self._clutter_next = pointer
        self.to(device)

    # ------------------------------------------------------------------ (de)serialisation
    def state_dict(self, prefix: str = "bank.") -> dict[str, torch.Tensor]:
        """Flat tensors for safetensors: per category its vertices, faces and features, and the clutter."""
        out = {f"{prefix}clutter": self.clutter.cpu().contiguous(),
               f"{prefix}clutter_next": torch.tensor([self._clutter_next])}
        for c in self.categories:
            mesh = self.mesh(c)
            out[f"{prefix}{c}.vertices"] = mesh.vertices.cpu().contiguous()
            out[f"{prefix}{c}.faces"] = mesh.faces.cpu().contiguous()
            out[f"{prefix}{c}.features"] = self.vertex_features(c).cpu().contiguous()
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], categories: Sequence[str],
                        prefix: str = "bank.", momentum: float = 0.9) -> MeshBank:
        """Rebuild a bank written by `state_dict` (categories in their bank order)."""
        try:
            meshes = {c: geom3d.Mesh(state[f"{prefix}{c}.vertices"], state[f"{prefix}{c}.faces"]) for c in categories}
            feats = {c: state[f"{prefix}{c}.features"] for c in categories}
            bank = cls(meshes, feats, state[f"{prefix}clutter"], momentum=momentum)
        except KeyError as exc:
            raise NemoError(f"mesh bank state lacks the tensor {exc.args[0]!r}") from None
        # the stored memory exactly: it was saved unit, and renormalising it again moves the last
        # bits, so that a resumed run would drift from an uninterrupted one
        for m, c in enumerate(categories):
            bank.features[m, : int(bank.num_vertices[m])] = feats[c].to(bank.features.dtype)
        bank.clutter = state[f"{prefix}clutter"].to(bank.clutter.dtype).clone()
        if f"{prefix}clutter_next" in state:
            bank._clutter_next = int(state[f"{prefix}clutter_next"][0])
        return bank

    def __repr__(self) -> str:
        return (f"MeshBank(categories={self.categories}, vertices={self.num_vertices.tolist()}, "
                f"feature_dim={self.feature_dim}, clutter={self.clutter.shape[0]})")
