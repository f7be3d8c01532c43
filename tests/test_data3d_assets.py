"""Asset sources: every real asset is found, broken ones are reported, axes land in the object frame."""

from __future__ import annotations

import inspect
import json
import os
from itertools import permutations

import pytest
import torch
from test_data3d_fixtures import build_objaverse_cache

import data3d
import geom3d
from data3d import AssetError, asset_source


def files_with(root, suffixes):
    """Every file under root with one of the suffixes, found with os.walk (independent of data3d)."""
    out = set()
    for dirpath, _, names in os.walk(root):
        out.update(os.path.join(dirpath, n) for n in names if os.path.splitext(n)[1].lower() in suffixes)
    return out


# ----------------------------------------------------------------------------- axes
AXES = ["+x", "-x", "+y", "-y", "+z", "-z"]


@pytest.mark.parametrize("up,front", [(u, f) for u, f in permutations(AXES, 2) if u[1] != f[1]])
def test_axes_to_object_frame_is_a_rotation_taking_up_to_z_and_front_to_minus_y(up, front):
    T = data3d.axes_to_object_frame(up, front)
    R = T[:3, :3]
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64))
    assert torch.linalg.det(R) == pytest.approx(1.0)
    u, f = data3d.assets.base.parse_axis(up), data3d.assets.base.parse_axis(front)
    torch.testing.assert_close(R @ u, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(R @ f, torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))


def test_known_conventions():
    # glTF (+Y up, front +Z): (x, y, z) -> (x, −z, y)
    torch.testing.assert_close(data3d.assets.GLTF_TO_OBJECT[:3, :3],
                               torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64))
    with pytest.raises(ValueError):
        data3d.axes_to_object_frame("+y", "-y")


# ----------------------------------------------------------------------------- real assets
@pytest.mark.realdata
@pytest.mark.parametrize("folder,name", [("pascal3d_cad", "pascal3d"), ("imagenet3d_cad", "imagenet3d")])
def test_off_sources_find_every_cad_model(shared_data, folder, name):
    src = asset_source({"type": "off", "root": str(shared_data / folder), "name": name})
    assert {str(a.path) for a in src} == files_with(shared_data / folder, {".off"})
    for a in src:
        assert a.cad_index == int(a.path.stem) and a.category == a.path.parent.name
        assert a.id == f"{a.category}/{a.path.stem}" and a.meta["collection"] == name
        assert torch.equal(a.to_object_frame, torch.eye(4, dtype=torch.float64)) and not a.normalize
    guessed = asset_source({"type": "off", "root": str(shared_data / folder)})
    assert next(iter(guessed)).meta["collection"] == name  # from the path
    car = next(a for a in src if a.id == "car/01") if folder == "pascal3d_cad" else None
    if car is not None:  # the CAD model is used as is: same vertices as the file
        mesh = src.load(car)
        torch.testing.assert_close(mesh.vertices, geom3d.Mesh.load(car.path).vertices)


@pytest.mark.realdata
@pytest.mark.slow
def test_every_real_asset_loads_except_the_broken_ones(shared_data):
    sources = {
        "pascal3d": asset_source({"type": "off", "root": str(shared_data / "pascal3d_cad")}),
        "imagenet3d": asset_source({"type": "off", "root": str(shared_data / "imagenet3d_cad")}),
        "shapenet_v2": asset_source({"type": "shapenet", "root": str(shared_data / "shapenet_v2")}),
        "shapenet_v1": asset_source({"type": "shapenet", "root": str(shared_data / "shapenet_v1_chair"),
                                     "category": "chair"}),
        "meshes": asset_source({"type": "folder", "root": str(shared_data / "meshes")}),
    }
    for name, src in sources.items():
        loaded = [a.id for a, mesh in src.iter_loaded() if mesh.num_faces > 0]
        assert len(loaded) + sum(src.skipped.values()) == len(src), name
    assert sources["pascal3d"].skipped == {} and sources["imagenet3d"].skipped == {}
    # the two real broken cases: ShapeNet's missing textures and the beetle's missing material library
    assert dict(sources["shapenet_v2"].skipped) == {"missing_texture": 1}
    assert dict(sources["meshes"].skipped) == {"missing_texture": 1}
    assert sources["meshes"].problems[0][0] == "beetle.obj"


@pytest.mark.realdata
def test_shapenet_sources_and_the_broken_texture(shared_data):
    v2 = asset_source({"type": "shapenet", "root": str(shared_data / "shapenet_v2")})
    assert sorted(a.id for a in v2) == ["923ce819405ae29230c72ee872e188e1", "a0d3a490ee1b74762a4947824596dce3"]
    assert {a.meta["version"] for a in v2} == {"v2"} and {a.category for a in v2} == {"unknown"}
    broken = next(a for a in v2 if a.id.startswith("923ce"))
    assert v2.load(broken) is None
    assert v2.skipped == {"missing_texture": 1}
    ident, reason = v2.problems[0]
    assert ident == broken.id and "texture2.jpg" in reason and "model_normalized.mtl" in reason
    kept = asset_source({"type": "shapenet", "root": str(shared_data / "shapenet_v2"),
                         "allow_missing_textures": True})
    assert kept.load(next(a for a in kept if a.id.startswith("923ce"))).num_faces > 0
    v1 = asset_source({"type": "shapenet", "root": str(shared_data / "shapenet_v1_chair"), "category": "chair"})
    (chair,) = list(v1)
    assert chair.meta["version"] == "v1" and chair.category == "chair" and chair.path.name == "model.obj"


@pytest.mark.realdata
def test_shapenet_canonical_axes_land_in_the_object_frame(shared_data):
    """v2 aeroplane: up is +z and the tail fin (highest part) is at the back (+y): nose towards −y.
    v1 chair: the backrest (highest part) is at the back (+y): the seat faces −y."""
    v2 = asset_source({"type": "shapenet", "root": str(shared_data / "shapenet_v2")})
    plane = v2.load(next(a for a in v2 if a.id.startswith("a0d3")))
    v = plane.vertices.double()
    extent = v.amax(0) - v.amin(0)
    assert extent[0] > extent[1] > extent[2]  # wingspan along x, fuselage along y, flat in z
    top = v[v[:, 2] > v[:, 2].max() - 0.1 * extent[2]]
    assert top[:, 1].mean() > 0.5 * v[:, 1].max()
    v1 = asset_source({"type": "shapenet", "root": str(shared_data / "shapenet_v1_chair"), "category": "chair"})
    chair = v1.load(next(iter(v1))).vertices.double()
    ext = chair.amax(0) - chair.amin(0)
    assert ext[2] == ext.max()  # tallest along z: upright
    back = chair[chair[:, 2] > chair[:, 2].max() - 0.1 * ext[2]]
    assert back[:, 1].mean() > 0.3 * chair[:, 1].max()


@pytest.mark.realdata
def test_folder_source_finds_every_mesh_file(shared_data):
    root = shared_data / "meshes"
    src = asset_source({"type": "folder", "root": str(root)})
    assert {str(a.path) for a in src} == files_with(root, set(geom3d.MESH_SUFFIXES))
    assert not any(a.path.suffix == ".pcd" for a in src)  # a point cloud is not an asset
    by_id = {a.id: a for a in src}
    assert by_id["fuze/fuze.obj"].category == "fuze" and by_id["bunny.ply"].category == "unknown"
    assert torch.equal(by_id["Duck.glb"].to_object_frame, data3d.assets.GLTF_TO_OBJECT)
    assert torch.equal(by_id["bunny.ply"].to_object_frame, torch.eye(4, dtype=torch.float64))
    fixed = asset_source({"type": "folder", "root": str(root), "category": "object", "up": "+y", "front": "+z"})
    assert {a.category for a in fixed} == {"object"}
    assert all(torch.equal(a.to_object_frame, data3d.assets.GLTF_TO_OBJECT) for a in fixed)


@pytest.mark.realdata
def test_objaverse_cache_layout_without_network(shared_data, tmp_path):
    glbs = {"0a1b2c": shared_data / "meshes" / "Duck.glb", "3d4e5f": shared_data / "meshes" / "BoxTextured.glb",
            "6a7b8c": shared_data / "meshes" / "CesiumMilkTruck.glb"}
    base = build_objaverse_cache(tmp_path, glbs, {"duck": ["0a1b2c"], "pickup truck": ["6a7b8c"]})
    src = asset_source({"type": "objaverse", "root": str(base)})
    assert {a.id: a.category for a in src} == {"0a1b2c": "duck", "3d4e5f": "unknown", "6a7b8c": "pickup_truck"}
    assert sorted(str(a.path.parent.name) for a in src) == ["000-000"] * 3
    only = asset_source({"type": "objaverse", "root": str(base), "categories": ["duck"]})
    assert [a.id for a in only] == ["0a1b2c"]
    # the mesh: glTF axes to the object frame, then centred with longest side 1
    duck = next(a for a in src if a.id == "0a1b2c")
    mesh, T = duck.load(return_transform=True)
    raw = geom3d.Mesh.load(glbs["0a1b2c"]).vertices.double()
    expected = torch.stack([raw[:, 0], -raw[:, 2], raw[:, 1]], dim=1)
    lo, hi = expected.amin(0), expected.amax(0)
    expected = (expected - (lo + hi) / 2) / (hi - lo).max()
    torch.testing.assert_close(mesh.vertices.double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(raw @ T[:3, :3].T + T[:3, 3], expected, atol=1e-5, rtol=0)
    # with uids and the cache's object-paths.json.gz only those files are looked at
    import gzip

    with gzip.open(base / "hf-objaverse-v1" / "object-paths.json.gz", "wt") as fh:
        json.dump({uid: f"glbs/000-000/{uid}.glb" for uid in glbs}, fh)
    picked = asset_source({"type": "objaverse", "root": str(base), "uids": ["6a7b8c", "ffffff"]})
    assert [a.id for a in picked] == ["6a7b8c"] and picked.skipped == {"missing_file": 1}
    # a plain folder of GLBs: categories from the folder names
    plain = tmp_path / "glbs"
    (plain / "duck").mkdir(parents=True)
    (plain / "duck" / "u1.glb").symlink_to(glbs["0a1b2c"])
    assert [(a.id, a.category) for a in asset_source({"type": "objaverse", "root": str(plain)})] == [("u1", "duck")]


def test_broken_assets_are_skipped_with_reasons(tmp_path):
    (tmp_path / "chair").mkdir()
    (tmp_path / "chair" / "empty.obj").write_text("# nothing here\n")
    (tmp_path / "chair" / "garbage.ply").write_bytes(b"ply\nthis is not a ply file\n")
    (tmp_path / "chair" / "good.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    src = asset_source({"type": "folder", "root": str(tmp_path)})
    assert len(src) == 3 and src.categories == ["chair"]
    loaded = [a.id for a, _ in src.iter_loaded()]
    assert loaded == ["chair/good.obj"]
    assert sum(src.skipped.values()) == 2 and set(src.skipped) <= {"empty_mesh", "unreadable", "invalid_mesh"}
    assert {p[0] for p in src.problems} == {"chair/empty.obj", "chair/garbage.ply"}
    # a ShapeNet model folder without its model file is skipped at scan time
    sn = tmp_path / "sn" / "03001627"
    (sn / "m1" / "models").mkdir(parents=True)
    (sn / "m1" / "models" / "model_normalized.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (sn / "m2").mkdir()
    shapenet = asset_source({"type": "shapenet", "root": str(tmp_path / "sn")})
    assert [(a.id, a.category) for a in shapenet] == [("03001627/m1", "chair")]
    assert shapenet.skipped == {"no_model_file": 1} and shapenet.problems[0][0] == "03001627/m2"
    names = asset_source({"type": "shapenet", "root": str(tmp_path / "sn"), "categories": ["03001627"]})
    assert len(names) == 1


def test_shapenet_taxonomy_json_names_synsets(tmp_path):
    (tmp_path / "04379243" / "t1").mkdir(parents=True)
    (tmp_path / "04379243" / "t1" / "model.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (tmp_path / "taxonomy.json").write_text(json.dumps([{"synsetId": "04379243", "name": "table,tabular array"}]))
    (asset,) = list(asset_source({"type": "shapenet", "root": str(tmp_path)}))
    assert asset.category == "table" and asset.meta["version"] == "v1"
    assert asset.meta["tags"] == ("table", "tabular array")  # the taxonomy names, for prompts


@pytest.mark.realdata
def test_builtin_synset_table_matches_the_published_maps(shared_data):
    for version in ("v1", "v2"):
        published = json.loads((shared_data / "shapenet_synsets" / f"shapenet_synset_dict_{version}.json").read_text())
        for synset, name in published.items():
            ours = data3d.SHAPENET_SYNSETS[synset]
            assert ours == name or (version == "v1" and synset == "02992529"), (synset, name, ours)


@pytest.mark.parametrize("config,match", [
    ({"type": "blender"}, "'type'"),
    ({"type": "off"}, "'root' is required"),
    ({"type": "off", "root": "/x", "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
    ({"type": "shapenet", "root": "/x", "normalize": "yes"}, "'normalize' must be true or false"),
    ({"type": "folder", "root": "/x", "categories": "car"}, "'categories' must be a list"),
    ({"type": "procedural", "count": 0}, "'count' must be a positive integer"),
    ({"type": "procedural", "root": "/x"}, "'root' is not used"),
    ({"type": "shapenet", "root": "/definitely/not/here"}, "does not exist"),
    ({"type": "objaverse", "root": "/definitely/not/here"}, "does not exist"),
    ({"type": "shapenet", "root": "/", "version": "v3"}, "version"),
])
def test_config_errors_name_the_key(config, match):
    with pytest.raises(AssetError, match=match):
        asset_source(config)


def _procedural_library():
    import data3d.procedural as lib  # part of data3d: a broken import is a failure, not a skip

    assert callable(lib.make) and lib.CATEGORIES
    return lib


def test_procedural_source_wraps_the_library():
    lib = _procedural_library()
    cat = lib.CATEGORIES[0]
    src = asset_source({"type": "procedural", "categories": [cat], "count": 2})
    assert [a.id for a in src] == [f"{cat}/0000", f"{cat}/0001"] and src.categories == [cat]
    a = next(iter(src))
    assert a.path is None and a.source == "procedural" and torch.equal(a.to_object_frame, torch.eye(4).double())
    mesh = src.load(a)
    torch.testing.assert_close(mesh.vertices, lib.make(cat, 0).vertices)
    seeds = asset_source({"type": "procedural", "categories": [cat], "seeds": [7]})
    assert [a.id for a in seeds] == [f"{cat}/0007"]
    with pytest.raises(AssetError, match="unknown category .unicorn."):
        asset_source({"type": "procedural", "categories": ["unicorn"]})
    # PASCAL3D+ names are aliases: the asset keeps the benchmark's name, the mesh is the table's
    table = next(iter(asset_source({"type": "procedural", "categories": ["diningtable"], "count": 1})))
    assert table.category == "diningtable" and table.id == "diningtable/0000"
    torch.testing.assert_close(table.load().vertices, lib.make("table", 0).vertices)
    # every procedural category is a known record category
    assert all(data3d.is_known_category(c) for c in lib.CATEGORIES)



# ----------------------------------------------------------------------------- normalisation, layouts
@pytest.mark.realdata
def test_off_centre_meshes_are_centred_and_scaled_by_default(shared_data, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "suzanne.obj").symlink_to(shared_data / "meshes" / "suzanne.obj")
    raw = geom3d.Mesh.load(shared_data / "meshes" / "suzanne.obj")
    lo, hi = raw.bounds()
    assert float((lo + hi).abs().max()) > 3  # the file's origin is far off the model
    (asset,) = list(asset_source({"type": "folder", "root": str(tmp_path / "m")}))
    assert asset.normalize
    mesh, T = asset.load(return_transform=True)
    lo, hi = mesh.bounds()
    torch.testing.assert_close((lo + hi) / 2, torch.zeros(3), atol=1e-5, rtol=0)
    assert float((hi - lo).max()) == pytest.approx(1.0, abs=1e-5)
    # the returned transform is the file -> object frame map that datagen records
    ones = torch.ones(raw.num_vertices, 1, dtype=torch.float64)
    mapped = (torch.cat([raw.vertices.double(), ones], 1) @ T.T)[:, :3]
    torch.testing.assert_close(mapped.float(), mesh.vertices, atol=1e-5, rtol=0)
    kept = next(iter(asset_source({"type": "folder", "root": str(tmp_path / "m"), "normalize": False})))
    torch.testing.assert_close(kept.load().vertices, raw.vertices)
    for kind in ("shapenet", "objaverse"):  # the other collections of arbitrary origin and scale
        cls = {"shapenet": data3d.ShapeNetSource, "objaverse": data3d.ObjaverseSource}[kind]
        assert inspect.signature(cls).parameters["normalize"].default is True


@pytest.mark.realdata
@pytest.mark.parametrize("folder", ["shapenet_v2", "shapenet_v1_chair"])
def test_shapenet_folders_without_synsets(shared_data, folder):
    root = str(shared_data / folder)
    named = asset_source({"type": "shapenet", "root": root, "category": "airplane"})
    assert named.categories == ["airplane"] and len(named) >= 1
    filtered = asset_source({"type": "shapenet", "root": root, "category": "airplane", "categories": ["airplane"]})
    assert len(filtered) == len(named)
    with pytest.raises(AssetError, match="not inside synset folders.*category: <name>"):
        len(asset_source({"type": "shapenet", "root": root, "categories": ["car", "02691156"]}))


def test_objaverse_uid_categories_in_both_layouts(tmp_path):
    for uid in ("u1", "u2", "u3"):
        (tmp_path / f"{uid}.glb").write_bytes(b"")
    by_uid = {"u1": "cow", "u2": "Mug", "u3": "cow"}
    lvis = {"cow": ["u1", "u3"], "mug": ["u2"]}
    (tmp_path / "lvis_subset.json").write_text(json.dumps(lvis))
    for given in (by_uid, lvis, str(tmp_path / "lvis_subset.json")):
        src = asset_source({"type": "objaverse", "root": str(tmp_path), "uid_categories": given})
        assert sorted((a.id, a.category) for a in src) == [("u1", "cow"), ("u2", "mug"), ("u3", "cow")]
        only = asset_source({"type": "objaverse", "root": str(tmp_path), "uid_categories": given,
                             "categories": ["mug"]})
        assert [a.id for a in only] == ["u2"]
    for bad, match in [({"u1": 3}, "key 'u1'"), ({"cow": ["u1"], "u2": "mug"}, "breaks that"), ({}, "non-empty"),
                       ({"cow": ["u1"], "mug": ["u1"]}, "two categories"), (str(tmp_path / "none.json"), "JSON")]:
        with pytest.raises(AssetError, match=match):
            asset_source({"type": "objaverse", "root": str(tmp_path), "uid_categories": bad})


@pytest.mark.realdata
def test_include_and_exclude_select_assets_by_id_pattern(shared_data):
    block = {"type": "off", "root": str(shared_data / "pascal3d_cad"), "categories": ["car", "chair"]}
    every = {a.id for a in asset_source(block)}
    held_out = {a.id for a in asset_source({**block, "include": ["car/03", "chair/0[89]"]})}
    kept = {a.id for a in asset_source({**block, "exclude": ["car/03", "chair/0[89]"]})}
    assert held_out == {"car/03", "chair/08", "chair/09"}
    assert kept | held_out == every and not kept & held_out
    with pytest.raises(AssetError, match="include must be a list"):
        asset_source({**block, "include": "car/03"})
