"""geom3d.raster: a differentiable triangle rasterizer in pure PyTorch (CPU and CUDA).

    fragments = rasterize(vertices, faces, cameras)        # pix_to_face, depth, bary: (B, H, W[, 3])
    features = interpolate(fragments, vertex_features)     # (B, H, W, C), perspective-correct
    silhouette = soft_silhouette(vertices, faces, cameras, sigma=1.0)   # (B, H, W), SoftRas-style

Two stages: a visibility pass without gradients (`visible_faces`: binned by face box size,
z-buffered with one scatter per chunk, exact near-plane clipping, optional back-face culling),
then a differentiable step (`fragments_for_faces`) that recomputes depth and perspective-correct
barycentrics of the winning faces from the vertex positions, so gradients flow with visibility
held fixed. Cameras are `geom3d.Cameras` (OpenCV, integer pixel centres). Batching: one mesh
(V, 3) under B cameras, or B meshes (B, V, 3) with shared (F, 3) or per-mesh (B, F, 3) faces;
`pad_meshes` packs meshes of different sizes. Empty pixels: pix_to_face −1, depth 0, bary 0.
"""

from .fragments import Fragments, fragments_for_faces, rasterize, visible_faces
from .inputs import pad_meshes
from .interpolate import interpolate
from .soft import soft_silhouette

__all__ = ["Fragments", "rasterize", "visible_faces", "fragments_for_faces", "interpolate", "soft_silhouette",
           "pad_meshes"]
