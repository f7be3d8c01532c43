"""Meshes: every real mesh loads; broken assets are reported; save/load round trips; bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

import geom3d
from geom3d import Mesh, MeshError

MESH_FOLDERS = ["meshes", "pascal3d_cad", "imagenet3d_cad", "shapenet_v2", "shapenet_v1_chair"]


def _mesh_files(root: Path):
    for folder in MESH_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix.lower() in geom3d.MESH_SUFFIXES:
                yield path


@pytest.mark.realdata
def test_every_real_mesh_loads(shared_data):
    files = list(_mesh_files(shared_data))
    assert len(files) >= 50
    for path in files:
        mesh = Mesh.load(path)
        assert mesh.num_faces > 0 and torch.isfinite(mesh.vertices).all(), path
        assert int(mesh.faces.max()) < mesh.num_vertices
        # same geometry as trimesh reports (scenes flattened with their transforms)
        reference = trimesh.load(str(path), force="mesh", process=False)
        if path.suffix.lower() != ".stl":
            v = np.asarray(reference.vertices)  # all vertices, referenced by a face or not
            np.testing.assert_allclose(mesh.bounds().numpy(), [v.min(0), v.max(0)], rtol=1e-5, atol=1e-6,
                                       err_msg=str(path))


@pytest.mark.realdata
def test_textures_and_colours_are_kept(shared_data):
    cow = Mesh.load(shared_data / "meshes/cow_textured/cow.obj")
    assert cow.has_texture and cow.texture.shape[2] == 3 and cow.uvs.shape == (cow.num_vertices, 2)
    assert Mesh.load(shared_data / "meshes/Duck.glb").has_texture
    chair = Mesh.load(shared_data / "shapenet_v1_chair/model.obj")
    assert chair.has_texture and chair.warnings == ()


@pytest.mark.realdata
def test_missing_shapenet_texture_is_reported_not_fatal(shared_data):
    broken = next((shared_data / "shapenet_v2").glob("923ce*/models/model_normalized.obj"))
    mesh = Mesh.load(broken)
    assert mesh.num_faces > 1000
    assert any("texture" in w and "missing" in w and ".jpg" in w for w in mesh.warnings)
    healthy = next((shared_data / "shapenet_v2").glob("a0d3*/models/model_normalized.obj"))
    assert Mesh.load(healthy).warnings == ()


@pytest.mark.realdata
def test_point_cloud_files(shared_data):
    cloud = geom3d.load_point_cloud(shared_data / "meshes/bunny.pcd")
    points, colors = cloud.points, cloud.colors
    assert points.shape == (397, 3) and colors is None
    np.testing.assert_allclose(points[0].numpy(), [0.0054216, 0.11349, 0.040749], rtol=1e-6)
    with pytest.raises(MeshError, match="point cloud"):
        Mesh.load(shared_data / "meshes/bunny.pcd")


def test_point_cloud_ply_round_trip(tmp_path):
    pts = torch.randn(100, 3)
    cols = torch.rand(100, 3)
    geom3d.save_point_cloud(tmp_path / "c.ply", pts, cols)
    back = geom3d.load_point_cloud(tmp_path / "c.ply")
    p2, c2 = back.points, back.colors
    torch.testing.assert_close(p2, pts)
    torch.testing.assert_close(c2, (cols * 255).round() / 255, atol=1e-6, rtol=0)
    assert not list(tmp_path.glob(".*tmp"))


def _coloured_box():
    tm = trimesh.creation.box((1.0, 2.0, 3.0))
    colours = torch.rand(len(tm.vertices), 3, generator=torch.Generator().manual_seed(0))
    return Mesh(torch.as_tensor(tm.vertices, dtype=torch.float32), torch.as_tensor(tm.faces), colours)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".off", ".glb", ".stl"])
def test_save_load_round_trip(tmp_path, suffix):
    mesh = _coloured_box()
    mesh.save(tmp_path / f"box{suffix}")
    back = Mesh.load(tmp_path / f"box{suffix}")
    assert back.num_faces == mesh.num_faces
    torch.testing.assert_close(back.bounds(), mesh.bounds())
    if suffix in (".ply", ".glb"):
        torch.testing.assert_close(back.vertex_colors, (mesh.vertex_colors * 255).round() / 255, atol=1e-6, rtol=0)


def test_textured_obj_round_trip(tmp_path):
    tm = trimesh.creation.box((1.0, 1.0, 1.0))
    uvs = torch.rand(len(tm.vertices), 2, generator=torch.Generator().manual_seed(1))
    texture = torch.randint(0, 255, (16, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    mesh = Mesh(torch.as_tensor(tm.vertices, dtype=torch.float32), torch.as_tensor(tm.faces), uvs=uvs, texture=texture)
    mesh.save(tmp_path / "tex.obj")
    back = Mesh.load(tmp_path / "tex.obj")
    assert back.has_texture and back.warnings == ()
    torch.testing.assert_close(back.texture, texture)
    # OBJ may split or reorder vertices; the (position, uv) pairs are what must survive
    key = lambda m: sorted(map(tuple, torch.cat([m.vertices, m.uvs], 1).round(decimals=5).tolist()))  # noqa: E731
    assert key(back) == key(mesh)


def test_normalized_returns_the_transform():
    mesh = _coloured_box().transform(torch.tensor([[2.0, 0, 0, 1], [0, 2, 0, -3], [0, 0, 2, 5], [0, 0, 0, 1]]))
    norm, T = mesh.normalized()
    lo, hi = norm.bounds()
    torch.testing.assert_close((hi - lo).max(), torch.tensor(1.0))
    torch.testing.assert_close(lo + hi, torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(mesh.vertices @ T[:3, :3].T + T[:3, 3], norm.vertices)


def test_mirroring_transform_keeps_normals_outward():
    mesh = _coloured_box()
    mirrored = mesh.transform(torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0])))
    tm = mirrored.to_trimesh()
    assert tm.volume > 0 and tm.is_winding_consistent


@pytest.mark.parametrize(("vertex_dtype", "matrix_dtype", "expected"), [
    (torch.float32, torch.float64, torch.float64),
    (torch.float64, torch.float32, torch.float64),
    (torch.float32, torch.float32, torch.float32),
    (torch.float64, torch.int64, torch.float64),
    (torch.float32, None, torch.float32),  # a list of numbers
])
def test_transform_follows_the_dtype_rule(vertex_dtype, matrix_dtype, expected):
    mesh = _coloured_box().to(dtype=vertex_dtype)
    shift = [[1, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    matrix = shift if matrix_dtype is None else torch.tensor(shift, dtype=matrix_dtype)
    moved = mesh.transform(matrix)
    assert moved.vertices.dtype == expected and moved.vertex_colors.dtype == expected
    torch.testing.assert_close(moved.vertices, mesh.vertices.to(expected) + torch.tensor([2.0, 0, 0], dtype=expected))
    # float64 keeps digits float32 would lose
    fine = torch.eye(4, dtype=torch.float64)
    fine[0, 3] = 1e-9
    moved = mesh.transform(fine).vertices[:, 0] - mesh.vertices[:, 0].double()
    torch.testing.assert_close(moved, torch.full((mesh.num_vertices,), 1e-9, dtype=torch.float64), rtol=1e-6, atol=0)
    with pytest.raises(MeshError, match="4×4 or 3×4"):
        mesh.transform(torch.eye(3))


def test_normals_match_trimesh_and_are_zero_for_degenerate_faces():
    box = _coloured_box()
    tm = box.to_trimesh()
    torch.testing.assert_close(box.face_normals(), torch.tensor(tm.face_normals, dtype=torch.float32))
    # area-weighted vertex normals from trimesh's face areas and normals (trimesh's own weights angles)
    summed = np.zeros((len(tm.vertices), 3))
    np.add.at(summed, tm.faces.reshape(-1), np.repeat(tm.face_normals * tm.area_faces[:, None], 3, axis=0))
    expected = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    torch.testing.assert_close(box.vertex_normals(), torch.tensor(expected, dtype=torch.float32))
    # a degenerate face (repeated corner, and a sliver of collinear corners) and an unused vertex
    v = torch.cat([box.vertices, torch.tensor([[5.0, 5, 5], [6, 6, 6], [7, 7, 7], [9, 9, 9]])])
    n = box.num_vertices
    faces = torch.cat([box.faces, torch.tensor([[n, n, n + 1], [n, n + 1, n + 2]])])
    mesh = Mesh(v, faces)
    fn, vn = mesh.face_normals(), mesh.vertex_normals()
    assert torch.isfinite(fn).all() and torch.isfinite(vn).all()
    assert (fn[-2:] == 0).all() and (vn[n:] == 0).all()
    torch.testing.assert_close(fn[:-2], box.face_normals())
    torch.testing.assert_close(vn[:n], box.vertex_normals())
    # no NaN gradient through a degenerate face either
    verts = v.clone().requires_grad_(True)
    Mesh(verts, faces).vertex_normals().sum().backward()
    assert torch.isfinite(verts.grad).all()


@pytest.mark.parametrize("content,suffix,message", [
    (b"", ".obj", "empty|cannot be read|no"),
    (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", ".off", "out of range|cannot be read"),
    (b"OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n", ".off", "NaN|cannot be read"),
    (b"garbage", ".glb", "cannot be read"),
    (b"x", ".fbx", "unknown mesh format"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(MeshError, match=message) as info:
        Mesh.load(path)
    assert str(path) in str(info.value)
    with pytest.raises(MeshError, match="not found"):
        Mesh.load(tmp_path / "nothing.obj")
