"""nemo.MeshBank: padded multi-category bank, momentum vertex memory, clutter FIFO, serialisation."""

import pytest
import torch
import torch.nn.functional as F

import geom3d
import nemo


def _bank(**kw):
    small = geom3d.cuboid_mesh((-1, -0.5, -0.3), (1, 0.5, 0.3), 60)
    big = geom3d.cuboid_mesh((-0.5, -0.5, -1), (0.5, 0.5, 1), 200)
    return nemo.MeshBank({"car": small, "chair": big}, feature_dim=8, **kw), small, big


def test_bank_layout_and_defaults():
    bank, small, big = _bank()
    assert bank.categories == ["car", "chair"]
    assert bank.vertices.shape == (2, big.num_vertices, 3)
    assert bank.vertex_features("car").shape == (small.num_vertices, 8)
    assert torch.allclose(bank.vertex_features("chair").norm(dim=-1), torch.ones(big.num_vertices))
    assert bank.clutter.shape == (2560, 8)
    assert torch.equal(bank.mesh("car").faces, small.faces)
    # padding rows carry no features
    assert bank.features[0, small.num_vertices:].abs().sum() == 0
    with pytest.raises(nemo.NemoError, match="unknown category 'boat'"):
        bank.index(["boat"])


def test_given_features_are_normalised_and_checked():
    small = geom3d.cuboid_mesh((-1, -1, -1), (1, 1, 1), 30)
    feats = torch.randn(small.num_vertices, 4) * 3
    bank = nemo.MeshBank({"a": small}, {"a": feats}, clutter=torch.randn(10, 4))
    assert torch.allclose(bank.vertex_features("a"), F.normalize(feats, dim=-1))
    assert bank.feature_dim == 4 and bank.clutter.shape == (10, 4)
    with pytest.raises(nemo.NemoError, match="shape"):
        nemo.MeshBank({"a": small}, {"a": torch.randn(3, 4)})


@pytest.mark.parametrize("weighting", ["nemo", "binary"])
def test_momentum_update_matches_hand_formula(weighting):
    bank, small, _ = _bank()
    old = bank.features.clone()
    V = bank.vertices.shape[1]
    x = F.normalize(torch.randn(3, V, 8), dim=-1)
    visible = torch.zeros(3, V, dtype=torch.bool)
    visible[0, 0] = visible[1, 0] = True  # car vertex 0 seen twice
    visible[2, 5] = True  # chair vertex 5 seen once
    bank.update_vertices(torch.tensor([0, 0, 1]), x, visible, weighting=weighting)
    if weighting == "nemo":  # summed over the category's images, divided by its image count (2)
        target0 = (x[0, 0] + x[1, 0]) / 2
    else:
        target0 = F.normalize(x[0, 0] + x[1, 0], dim=0)
    expect0 = F.normalize(0.9 * old[0, 0] + 0.1 * target0, dim=0)
    expect5 = F.normalize(0.9 * old[1, 5] + 0.1 * x[2, 5], dim=0)
    assert torch.allclose(bank.features[0, 0], expect0, atol=1e-6)
    assert torch.allclose(bank.features[1, 5], expect5, atol=1e-6)
    untouched = torch.ones(2, V, dtype=torch.bool)
    untouched[0, 0] = untouched[1, 5] = False
    assert torch.equal(bank.features[untouched], old[untouched])


def test_clutter_fifo_replaces_oldest():
    bank, _, _ = _bank(clutter_size=5)
    a = F.normalize(torch.randn(3, 8), dim=-1)
    b = F.normalize(torch.randn(4, 8), dim=-1)
    first = bank.clutter.clone()
    bank.push_clutter(a)
    assert torch.allclose(bank.clutter[:3], a) and torch.equal(bank.clutter[3:], first[3:])
    bank.push_clutter(b)  # rows 3, 4, then wraps to 0, 1
    assert torch.allclose(bank.clutter[[3, 4, 0, 1]], b) and torch.allclose(bank.clutter[2], a[2])


def test_state_dict_round_trip_and_growth():
    bank, small, _ = _bank()
    bank.push_clutter(torch.randn(7, 8))
    again = nemo.MeshBank.from_state_dict(bank.state_dict(), bank.categories)
    assert again.categories == bank.categories
    assert torch.allclose(again.features, bank.features) and torch.allclose(again.clutter, bank.clutter)
    assert again._clutter_next == bank._clutter_next
    with pytest.raises(nemo.NemoError, match="lacks"):
        nemo.MeshBank.from_state_dict({}, ["car"])
    before = bank.vertex_features("car").clone()
    bank.add_category("sofa", geom3d.cuboid_mesh((-1, -0.4, -0.4), (1, 0.4, 0.4), 300))
    assert bank.categories == ["car", "chair", "sofa"]
    assert torch.allclose(bank.vertex_features("car"), before, atol=1e-6)
    assert bank.vertex_features("sofa").shape[1] == 8


@pytest.mark.realdata
def test_bank_from_pascal3d_cads(shared_data):
    """NeMo's cuboid over the real PASCAL3D+ car CADs: 99% of the pooled vertices inside, per axis."""
    from nemo.config import resolve_config
    from nemo.data import category_meshes

    config = resolve_config({"meshes": {"type": "off", "root": str(shared_data / "pascal3d_cad")},
                             "cuboid": {"num_vertices": 400}})
    meshes = category_meshes(config, ["car"])
    bank = nemo.MeshBank(meshes, feature_dim=8)
    lo, hi = bank.mesh("car").vertices.amin(0), bank.mesh("car").vertices.amax(0)
    import data3d

    source = data3d.asset_source({"type": "off", "root": str(shared_data / "pascal3d_cad"), "categories": ["car"]})
    pooled = torch.cat([source.load(a).vertices for a in source.by_category("car")])
    for axis in range(3):
        inside = ((pooled[:, axis] >= lo[axis] - 1e-5) & (pooled[:, axis] <= hi[axis] + 1e-5)).float().mean()
        assert inside >= 0.99
    assert 300 <= bank.num_vertices[0] <= 500
