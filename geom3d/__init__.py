"""geom3d: aware3d's camera and geometry core.

One camera (`Cameras`, OpenCV axes, integer pixel centres), the PASCAL3D+ viewpoint, rotations
(through roma), meshes, the NeMo cuboid, pose metrics and converters to other conventions.
geom3d imports only aware3d_utils. Every public function follows one dtype rule and one batch
rule (docs/geom3d.md, "Dtypes and batch shapes"); conventions in docs/design.md.
`__all__` lists the API (not the submodules); a test keeps it equal to the imports below.
"""

from .align import IcpResult, RansacResult, Sim3, estimate_normals, icp, ransac_sim3, umeyama
from .cameras import Cameras, fov_to_focal, intrinsics_matrix, look_at_rotation
from .conventions import (
    blender_to_cameras,
    cameras_to_blender,
    cameras_to_colmap,
    cameras_to_nerfstudio,
    cameras_to_open3d,
    cameras_to_opengl,
    cameras_to_pytorch3d,
    colmap_to_cameras,
    nerfstudio_to_cameras,
    open3d_to_cameras,
    opengl_to_cameras,
    pytorch3d_to_cameras,
)
from .cuboid import cuboid_from_meshes, cuboid_mesh, shortest_covering_interval
from .dtypes import as_float_tensors, common_float_dtype
from .errors import GeometryError, MeshError
from .gl import GLRender, RenderOptions, gl_available, render_gl
from .mesh import MESH_SUFFIXES, Mesh
from .metrics import pose_accuracy, pose_error, pose_metrics
from .pixels import parse_image_size, pixel_grid, resize_coordinate
from .pointcloud import DepthPoints, PointCloud, depth_to_points, remove_statistical_outliers, voxel_downsample
from .pointcloud_io import load_point_cloud, save_point_cloud
from .raster import (
    Fragments,
    PaddedMeshes,
    PixelValues,
    VertexVisibility,
    antialias,
    interpolate,
    interpolate_sparse,
    pad_meshes,
    rasterize,
    soft_silhouette,
    vertex_visibility,
)
from .raycasting import RayHits, raycast
from .rotations import (
    axis_angle_to_matrix,
    check_rotation,
    geodesic_distance,
    matrix_to_axis_angle,
    matrix_to_quat_wxyz,
    matrix_to_rotation_6d,
    project_to_rotation,
    quat_wxyz_to_matrix,
    random_rotations,
    rotation_6d_to_matrix,
    rotation_residual,
)
from .splatting import SplatResult, splat
from .texture import sample_texture
from .trajectory import (
    CameraPath,
    arc_path,
    bullet_time,
    camera_path_from_dict,
    camera_path_to_dict,
    dolly_path,
    keyframe_path,
    load_camera_path,
    preset_path,
    save_camera_path,
    zoom_path,
)
from .viewpoint import (
    blender_to_viewpoint,
    cameras_to_viewpoint,
    rotation_to_viewpoint,
    viewpoint_from_mapping,
    viewpoint_to_blender,
    viewpoint_to_cameras,
    viewpoint_to_rotation,
    wrap_angle,
    wrap_azimuth,
)

__all__ = [
    # align
    "IcpResult",
    "RansacResult",
    "Sim3",
    "estimate_normals",
    "icp",
    "ransac_sim3",
    "umeyama",
    # cameras
    "Cameras",
    "fov_to_focal",
    "intrinsics_matrix",
    "look_at_rotation",
    # conventions
    "blender_to_cameras",
    "cameras_to_blender",
    "cameras_to_colmap",
    "cameras_to_nerfstudio",
    "cameras_to_open3d",
    "cameras_to_opengl",
    "cameras_to_pytorch3d",
    "colmap_to_cameras",
    "nerfstudio_to_cameras",
    "open3d_to_cameras",
    "opengl_to_cameras",
    "pytorch3d_to_cameras",
    # cuboid
    "cuboid_from_meshes",
    "cuboid_mesh",
    "shortest_covering_interval",
    # dtypes
    "as_float_tensors",
    "common_float_dtype",
    # errors
    "GeometryError",
    "MeshError",
    # gl
    "GLRender",
    "RenderOptions",
    "gl_available",
    "render_gl",
    # mesh
    "MESH_SUFFIXES",
    "Mesh",
    # metrics
    "pose_accuracy",
    "pose_error",
    "pose_metrics",
    # pixels
    "parse_image_size",
    "pixel_grid",
    "resize_coordinate",
    # pointcloud
    "DepthPoints",
    "PointCloud",
    "depth_to_points",
    "remove_statistical_outliers",
    "voxel_downsample",
    # pointcloud_io
    "load_point_cloud",
    "save_point_cloud",
    # raster
    "Fragments",
    "PaddedMeshes",
    "PixelValues",
    "VertexVisibility",
    "antialias",
    "interpolate",
    "interpolate_sparse",
    "pad_meshes",
    "rasterize",
    "soft_silhouette",
    "vertex_visibility",
    # raycast
    "RayHits",
    "raycast",
    # rotations
    "axis_angle_to_matrix",
    "check_rotation",
    "geodesic_distance",
    "matrix_to_axis_angle",
    "matrix_to_quat_wxyz",
    "matrix_to_rotation_6d",
    "project_to_rotation",
    "quat_wxyz_to_matrix",
    "random_rotations",
    "rotation_6d_to_matrix",
    "rotation_residual",
    # splat
    "SplatResult",
    "splat",
    # texture
    "sample_texture",
    # trajectory
    "CameraPath",
    "arc_path",
    "bullet_time",
    "camera_path_from_dict",
    "camera_path_to_dict",
    "dolly_path",
    "keyframe_path",
    "load_camera_path",
    "preset_path",
    "save_camera_path",
    "zoom_path",
    # viewpoint
    "blender_to_viewpoint",
    "cameras_to_viewpoint",
    "rotation_to_viewpoint",
    "viewpoint_from_mapping",
    "viewpoint_to_blender",
    "viewpoint_to_cameras",
    "viewpoint_to_rotation",
    "wrap_angle",
    "wrap_azimuth",
]
