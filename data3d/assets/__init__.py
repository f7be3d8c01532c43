"""3D asset sources: ShapeNet, Objaverse, OFF CAD folders, plain mesh folders, procedural assets."""

from .base import GLTF_TO_OBJECT, IDENTITY, Asset, AssetSource, axes_to_object_frame
from .config import SOURCE_TYPES, asset_source
from .folder import FolderSource
from .objaverse import DEFAULT_OBJAVERSE_ROOT, ObjaverseSource
from .off import OffCadSource, cad_path
from .procedural_source import ProceduralSource
from .shapenet import SHAPENET_AXES, ShapeNetSource

__all__ = [
    "Asset", "AssetSource", "axes_to_object_frame", "GLTF_TO_OBJECT", "IDENTITY", "asset_source", "SOURCE_TYPES",
    "FolderSource", "ObjaverseSource", "DEFAULT_OBJAVERSE_ROOT", "OffCadSource", "cad_path", "ProceduralSource",
    "ShapeNetSource", "SHAPENET_AXES",
]
