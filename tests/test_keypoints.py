"""The named PASCAL3D+ keypoints land where the viewpoint formula says (the frame's semantics)."""

from __future__ import annotations

import json

import pytest
import torch

import geom3d


def _keypoints(path):
    data = json.loads(path.read_text())
    names = sorted(data["keypoints"])
    xyz = torch.tensor([[data["keypoints"][n][k] for k in "xyz"] for n in names], dtype=torch.float64)
    return names, xyz


@pytest.mark.realdata
def test_car_keypoints_from_the_front(shared_data):
    names, xyz = _keypoints(shared_data / "pascal3d_keypoints" / "car04.json")
    cam = geom3d.viewpoint_to_cameras(torch.tensor(0.0, dtype=torch.float64), 0.0, 0.0, 5.0, image_size=(600, 800))
    uv, depth = cam.project(xyz, return_depth=True)
    at = {n: i for i, n in enumerate(names)}
    front = [i for n, i in at.items() if "front" in n or "windshield" in n]
    back = [i for n, i in at.items() if "back" in n or "rearwindow" in n]
    # the front is nearer the camera than the back
    assert depth[front].max() < depth[back].min()
    # of two mirror-image keypoints (same y and z), the one with larger x lies further right
    pairs = [(i, at[n.replace("left", "right")]) for n, i in at.items() if "left" in n]
    assert len(pairs) >= 8
    for i, j in pairs:
        assert torch.sign(uv[i, 0] - uv[j, 0]) == torch.sign(xyz[i, 0] - xyz[j, 0])
    # windows lie above the wheels (smaller v: image y points down)
    windows = [i for n, i in at.items() if "window" in n or "windshield" in n]
    wheels = [i for n, i in at.items() if "wheel" in n]
    assert uv[windows, 1].max() < uv[wheels, 1].min()
    # the car's right front light (x > 0) is on the image's right, the left one on its left
    assert uv[at["right_front_light"], 0] > cam.cx > uv[at["left_front_light"], 0]


@pytest.mark.realdata
def test_keypoint_files_match_their_cad_models(shared_data):
    """The keypoint JSON holds the same CAD as pascal3d_cad (same vertex set), so the frame is shared."""
    data = json.loads((shared_data / "pascal3d_keypoints" / "aeroplane03.json").read_text())
    vertices = torch.tensor(data["vertices"], dtype=torch.float32).reshape(-1, 3)
    cad = geom3d.Mesh.load(shared_data / "pascal3d_cad" / "aeroplane" / "03.off")
    torch.testing.assert_close(vertices.amin(0), cad.vertices.amin(0), atol=1e-4, rtol=0)
    torch.testing.assert_close(vertices.amax(0), cad.vertices.amax(0), atol=1e-4, rtol=0)
    # an aeroplane's nose points towards −y: seen from the front (azimuth 0) it is the nearest point
    names, xyz = _keypoints(shared_data / "pascal3d_keypoints" / "aeroplane03.json")
    nose = [i for i, n in enumerate(names) if "nose" in n]
    assert nose, names
    assert xyz[nose, 1].max() < xyz[:, 1].median()
