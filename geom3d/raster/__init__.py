"""geom3d.raster: a differentiable triangle rasterizer in pure PyTorch (CPU and CUDA), with the
render-and-compare primitives NeMo-style methods need.

    fragments = rasterize(mesh, cameras)                   # pix_to_face, depth, bary: (*S, H, W[, 3])
    features = interpolate(fragments, vertex_features)     # (*S, H, W, C), perspective-correct
    features = interpolate(fragments, table, index)        # table (N, V, C), view b reads row index[b]
    sparse = interpolate_sparse(fragments, vertex_features)   # covered pixels only: PixelValues
    seen = vertex_visibility(mesh, cameras)                # projections (*S, V, 2), visible (*S, V)
    silhouette = soft_silhouette(mesh, cameras, sigma=1.0)   # (*S, H, W), SoftRas-style
    smooth = antialias(image, fragments, mesh, cameras)      # silhouette edges blended, differentiable

`mesh` is a `geom3d.Mesh`, a `PaddedMeshes` bank (`pad_meshes`) or a (vertices, faces) pair with
vertices (V, 3) or (M, V, 3). Cameras are `geom3d.Cameras` (OpenCV, integer pixel centres) of any
batch shape S; M meshes pair with the cameras' first dimension, so cameras (M, P) render images ×
hypotheses without copying vertices. image_size defaults to the cameras' and must equal it.

Two stages: a visibility pass without gradients (`visible_faces`: binned by face box size,
z-buffered with one scatter per chunk, exact near-plane clipping, optional back-face culling),
then a differentiable step (`fragments_for_faces`) that recomputes depth and perspective-correct
barycentrics of the winning faces from the vertex positions, so gradients flow with visibility
held fixed. Empty pixels: pix_to_face −1, depth 0, bary 0.
"""

from .antialiasing import antialias
from .fragments import Fragments, fragments_for_faces, rasterize, visible_faces
from .inputs import PaddedMeshes, pad_meshes
from .interpolation import PixelValues, interpolate, interpolate_sparse
from .soft import soft_silhouette
from .visible_vertices import VertexVisibility, vertex_visibility

__all__ = ["Fragments", "rasterize", "visible_faces", "fragments_for_faces", "interpolate", "interpolate_sparse",
           "PixelValues", "soft_silhouette", "pad_meshes", "PaddedMeshes", "vertex_visibility", "VertexVisibility",
           "antialias"]
