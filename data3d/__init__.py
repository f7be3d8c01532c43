"""data3d: one annotation record for real and synthetic data, and the loaders that produce it.

- The record: `ImageRecord` (image_path, image_size (H, W), objects) of `ObjectAnnotation`
  (category, bbox, viewpoint, cameras, CAD reference, occlusion, truncation, status, caption),
  validated on construction; `save_records` / `load_records` for aware3d's sharded NPZ/JSON format.
- `ObjectDataset` + `collate_objects`: crops around objects with crop, rescale, flip and colour
  jitter that keep camera and bbox consistent.
- Loaders returning lists of `ImageRecord`: `load_pascal3d` (raw release, OccludedPASCAL3D+),
  `load_pascal3d_nemo`, `load_imagenet3d` (release and preprocessed), `load_objectnet3d`, `load_dst3d`
  (3D-DST's released data, converted to our convention).
- Asset sources (ShapeNet v1/v2, Objaverse, OFF CAD folders, mesh folders, procedural) and the
  config constructor `asset_source`.
- `data3d.procedural` (imported on first use): `make(category, seed)` -> geom3d.Mesh.
- `data3d.export` (a subpackage, imported explicitly): `export_records(records, out, "coco"|"bop"|"kitti")`.
See docs/data3d.md. data3d imports only geom3d (and aware3d_utils). `__all__` lists the API, not the
submodules; a test keeps it equal to the imports below.
"""

import importlib

from .angle_bins import (
    NUM_BINS,
    angle_to_bin,
    angles_to_centred_bins,
    bin_to_angle,
    bins_to_viewpoint,
    centred_bins_to_angles,
    viewpoint_to_bins,
)
from .assets import (
    Asset,
    AssetSource,
    FolderSource,
    ObjaverseSource,
    OffCadSource,
    ProceduralSource,
    ShapeNetSource,
    asset_source,
    axes_to_object_frame,
    cad_path,
)
from .categories import (
    IMAGENET3D_EXP_CATEGORIES,
    IMAGENET3D_KNOWN_CATEGORIES,
    IMAGENET3D_OPEN_POSE_SPLIT,
    IMAGENET3D_TOOLKIT_CATEGORIES,
    OBJECTNET3D_CATEGORIES,
    PASCAL3D_CATEGORIES,
    SHAPENET_SYNSETS,
    is_known_category,
    known_categories,
    normalize_category,
    register_categories,
)
from .dataset import ObjectDataset, collate_objects, load_image
from .dst3d import load_dst3d
from .errors import AnnotationError, AssetError
from .imagenet3d import load_imagenet3d, load_imagenet3d_preprocessed, open_pose_split
from .objectnet3d import load_objectnet3d
from .pascal3d import load_pascal3d, load_pascal3d_nemo, occlusion_folder_suffix
from .record import (
    VIEWPOINT_KEYS,
    ImageRecord,
    ObjectAnnotation,
    RecordList,
    Viewpoint,
    mesh_ref_for,
    parse_mesh_ref,
)
from .storage import load_records, record_from_dict, record_to_dict, save_records
from .transforms import ObjectView, color_jitter, flip_object, warp_object

__all__ = [
    # angle_bins
    "NUM_BINS",
    "angle_to_bin",
    "angles_to_centred_bins",
    "bin_to_angle",
    "bins_to_viewpoint",
    "centred_bins_to_angles",
    "viewpoint_to_bins",
    # assets
    "Asset",
    "AssetSource",
    "FolderSource",
    "ObjaverseSource",
    "OffCadSource",
    "ProceduralSource",
    "ShapeNetSource",
    "asset_source",
    "axes_to_object_frame",
    "cad_path",
    # categories
    "IMAGENET3D_EXP_CATEGORIES",
    "IMAGENET3D_KNOWN_CATEGORIES",
    "IMAGENET3D_OPEN_POSE_SPLIT",
    "IMAGENET3D_TOOLKIT_CATEGORIES",
    "OBJECTNET3D_CATEGORIES",
    "PASCAL3D_CATEGORIES",
    "SHAPENET_SYNSETS",
    "is_known_category",
    "known_categories",
    "normalize_category",
    "register_categories",
    # dataset
    "ObjectDataset",
    "collate_objects",
    "load_image",
    # dst3d
    "load_dst3d",
    # errors
    "AnnotationError",
    "AssetError",
    # imagenet3d
    "load_imagenet3d",
    "load_imagenet3d_preprocessed",
    "open_pose_split",
    # objectnet3d
    "load_objectnet3d",
    # pascal3d
    "load_pascal3d",
    "load_pascal3d_nemo",
    "occlusion_folder_suffix",
    # record
    "VIEWPOINT_KEYS",
    "ImageRecord",
    "ObjectAnnotation",
    "RecordList",
    "Viewpoint",
    "mesh_ref_for",
    "parse_mesh_ref",
    # storage
    "load_records",
    "record_from_dict",
    "record_to_dict",
    "save_records",
    # transforms
    "ObjectView",
    "color_jitter",
    "flip_object",
    "warp_object",
]


def __getattr__(name):
    # the procedural library is a subpackage of its own; import it on first use only
    if name == "procedural":
        return importlib.import_module(".procedural", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
