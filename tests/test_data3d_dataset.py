"""The object Dataset: crop, rescale and flip keep image, camera and bbox consistent.

Fixture images carry the CAD model's silhouette, filled from the toolbox projection formula
(independent of geom3d). After every transform, (1) the CAD model projected with the returned
camera must fill the returned bbox, and (2) the silhouette found in the returned image must sit in
that same bbox.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_data3d_fixtures import PASCAL_OBJECTS, box_of, build_pascal3d, iou, matlab_project, read_off

import data3d
from data3d import AnnotationError

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def silhouettes(tmp_path_factory, shared_data):
    """PASCAL3D+ fixture records whose images show the CAD silhouette in white on black."""
    cad = shared_data / "pascal3d_cad"
    root = tmp_path_factory.mktemp("p3d")
    build_pascal3d(root, cad)
    records = data3d.load_pascal3d(root, split="val", strict=True)
    out = []
    for r in records:
        name = r.image_path.stem
        _, cat, idx, az, el, th, d, px, py, w, h = next(o for o in PASCAL_OBJECTS if o[0] == name)
        v, f = read_off(cad / cat / f"{idx:02d}.off")
        uv = matlab_project(v, az, el, th, d, 1.0, px, py, 2000.0) - 1.0  # 0-based pixel centres
        img = np.zeros((h, w, 3), dtype=np.uint8)
        tris = np.round(uv[f] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
        cv2.fillPoly(img, list(tris), (255, 255, 255), lineType=cv2.LINE_8, shift=4)
        path = root / f"{name}_silhouette.png"
        Image.fromarray(img).save(path)
        out.append(dataclasses.replace(r, image_path=path))
    return out, cad


def cad_vertices(cad, obj, mirrored):
    v, _ = read_off(cad / obj.category / f"{obj.cad_index:02d}.off")
    return v * np.array([-1.0, 1.0, 1.0]) if mirrored else v


def bright_box(image: torch.Tensor):
    ys, xs = np.nonzero(image[0].numpy() > 0.5)
    return [xs.min(), ys.min(), xs.max(), ys.max()]


@pytest.mark.parametrize("rescale,flip,center", [
    ("none", 0.0, "principal"), ("none", 1.0, "bbox"), ("canonical", 0.0, "principal"),
    ("canonical", 1.0, "principal"), ("fit", 0.0, "bbox"), ("fit", 1.0, "principal"),
])
def test_transforms_keep_projection_consistent(silhouettes, rescale, flip, center):
    records, cad = silhouettes
    ds = data3d.ObjectDataset(records, crop_size=(400, 448), rescale=rescale, centre=center, flip_prob=flip)
    assert len(ds) == len(records)
    for i in range(len(ds)):
        item = ds[i]
        obj = records[item["record_index"]].objects[item["object_index"]]
        assert item["mirrored"] == (flip == 1.0) and item["image"].shape == (3, 400, 448)
        cams = item["cameras"].to(dtype=torch.float64)
        proj = box_of(cams.project(torch.tensor(cad_vertices(cad, obj, item["mirrored"]))).numpy())
        proj = np.clip(proj, 0, [447, 399, 447, 399])
        box = item["bbox"].numpy()
        assert iou(proj, box) >= 0.95, (i, proj, box)
        assert iou(bright_box(item["image"]), box) >= 0.95, (i, bright_box(item["image"]), box)
        if flip:  # PASCAL3D+ CAD models are left-right symmetric: the unmirrored model fits too
            plain = box_of(cams.project(torch.tensor(cad_vertices(cad, obj, False))).numpy())
            assert iou(np.clip(plain, 0, [447, 399, 447, 399]), box) >= 0.9


def test_canonical_rescale_follows_nemo_convention(silhouettes):
    records, _ = silhouettes
    nemo = data3d.ObjectDataset(records, crop_size=(400, 448), rescale="canonical", canonical_crop=None)
    fitted = data3d.ObjectDataset(records, crop_size=(400, 448), rescale="canonical")
    for i in range(len(nemo)):
        vp = dict(zip(data3d.VIEWPOINT_KEYS, nemo[i]["viewpoint"].tolist()))
        # the object looks as it would at distance 5 with focal · viewport = 3000
        assert vp["focal"] * vp["viewport"] / vp["distance"] == pytest.approx(3000.0 / 5.0, rel=1e-12)
        assert (vp["px"], vp["py"]) == pytest.approx((223.5, 199.5))  # centred on the object origin
        # fitted to the crop asked for: NeMo's 640 × 800 frame shrunk by min(400/640, 448/800) = 0.56
        vp = dict(zip(data3d.VIEWPOINT_KEYS, fitted[i]["viewpoint"].tolist()))
        assert vp["focal"] * vp["viewport"] / vp["distance"] == pytest.approx(600.0 * 0.56, rel=1e-12)


def test_flip_mirrors_the_viewpoint(silhouettes):
    records, _ = silhouettes
    plain = data3d.ObjectDataset(records, crop_size=(400, 448))
    flipped = data3d.ObjectDataset(records, crop_size=(400, 448), flip_prob=1.0)
    for i in range(len(plain)):
        a = dict(zip(data3d.VIEWPOINT_KEYS, plain[i]["viewpoint"].tolist()))
        item = flipped[i]
        b = dict(zip(data3d.VIEWPOINT_KEYS, item["viewpoint"].tolist()))
        assert b["azimuth"] == pytest.approx((-a["azimuth"]) % (2 * math.pi))
        assert b["theta"] == pytest.approx(-a["theta"]) and b["elevation"] == a["elevation"]
        assert b["px"] == pytest.approx(447 - a["px"]) and b["py"] == a["py"]
        torch.testing.assert_close(item["image"], plain[i]["image"].flip(-1))


def test_color_jitter_is_deterministic_per_item_and_epoch(silhouettes):
    records, _ = silhouettes
    kw = dict(crop_size=(64, 64), color_jitter={"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.1})
    a, b = data3d.ObjectDataset(records, **kw), data3d.ObjectDataset(records, **kw)
    plain = data3d.ObjectDataset(records, crop_size=(64, 64))
    torch.testing.assert_close(a[1]["image"], b[1]["image"])
    assert not torch.equal(a[1]["image"], plain[1]["image"])
    assert a[1]["image"].min() >= 0 and a[1]["image"].max() <= 1
    b.set_epoch(1)
    assert not torch.equal(a[1]["image"], b[1]["image"])
    with pytest.raises(ValueError, match="unknown keys"):
        data3d.ObjectDataset(records, color_jitter={"blur": 1})


def test_collate_and_dataloader(silhouettes):
    records, _ = silhouettes
    ds = data3d.ObjectDataset(records, crop_size=(96, 128), rescale="fit", flip_prob=0.5, seed=3)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=data3d.collate_objects)))
    assert batch["image"].shape == (3, 3, 96, 128) and batch["cameras"].batch_shape == (3,)
    assert batch["rotation"].shape == (3, 3, 3) and batch["viewpoint"].shape == (3, 8)
    assert batch["category"].dtype == torch.int64 and batch["mirrored"].dtype == torch.bool
    assert [ds.categories[c] for c in batch["category"]] == [records[i].objects[0].category
                                                             for i in batch["record_index"].tolist()]
    assert all(ref.startswith("pascal3d:") for ref in batch["mesh_ref"])
    torch.testing.assert_close(batch["rotation"], batch["cameras"].R, atol=1e-6, rtol=0)
    whole = data3d.ObjectDataset(records, crop_size=None)
    with pytest.raises(ValueError, match="different sizes"):
        data3d.collate_objects([whole[0], whole[1]])


def test_image_size_mismatch_names_the_image(silhouettes, tmp_path):
    records, _ = silhouettes
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(small)
    ds = data3d.ObjectDataset([dataclasses.replace(records[0], image_path=small)], crop_size=(32, 32))
    with pytest.raises(AnnotationError, match="small.png"):
        _ = ds[0]


def test_box_jitter_moves_the_window_not_the_labels(silhouettes):
    """Crops from jittered boxes: the CAD projected by the returned camera still fills the returned
    bbox and the silhouette in the returned image, while the window moved."""
    records, cad = silhouettes
    kw = dict(crop_size=(200, 224), rescale="fit", centre="bbox", fit_fraction=0.6)
    plain = data3d.ObjectDataset(records, **kw)
    jittered = data3d.ObjectDataset(records, box_jitter={"shift": 0.1, "scale": 0.1}, **kw)
    moved = 0
    for i in range(len(jittered)):
        item = jittered[i]
        obj = records[item["record_index"]].objects[item["object_index"]]
        cams = item["cameras"].to(dtype=torch.float64)
        proj = box_of(cams.project(torch.tensor(cad_vertices(cad, obj, False))).numpy())
        proj = np.clip(proj, 0, [223, 199, 223, 199])
        box = item["bbox"].numpy()
        assert iou(proj, box) >= 0.95 and iou(bright_box(item["image"]), box) >= 0.95
        a, b = plain[i]["bbox"].numpy(), box
        moved += not np.allclose(a, b, atol=0.5)
        # the box was at most 10% off in centre and side: the object's side in the crop stays within
        # fit_fraction · crop / (1 ± 0.1) (the larger side of the crop-limited window)
        side = max(b[2] - b[0], b[3] - b[1]) + 1
        assert side <= 0.6 * 224 / 0.9 + 2
    assert moved == len(jittered)
    with pytest.raises(ValueError, match="box_jitter"):
        data3d.ObjectDataset(records, box_jitter={"shift": 1.5}, **kw)


def test_jitter_box_bounds():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        x0, y0, x1, y1 = data3d.transforms.jitter_box((10.0, 20.0, 110.0, 70.0), gen, shift=0.1, scale=0.2)
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        assert abs(cx - 60) <= 10 + 1e-9 and abs(cy - 45) <= 5 + 1e-9
        assert 80 - 1e-9 <= w <= 120 + 1e-9 and 40 - 1e-9 <= h <= 60 + 1e-9


def test_degrade_parts():
    from data3d.transforms import degrade

    gen = lambda s=0: torch.Generator().manual_seed(s)  # noqa: E731
    image = torch.rand(3, 64, 64, generator=gen(1))
    # nothing asked: the image comes back quantised to 8 bits only
    same = degrade(image, gen(), 50.0, object_px=(100, 200))
    assert (same - image).abs().max() <= 0.5 / 255 + 1e-6
    # a 1-pixel checkerboard shown as if 6-8 pixels large: area averaging leaves a flat grey
    board = torch.from_numpy(np.indices((64, 64)).sum(0) % 2).float().expand(3, 64, 64).contiguous()
    flat = degrade(board, gen(), 64.0, object_px=(6, 8))
    assert board.std() > 0.49 and flat[:, 8:-8, 8:-8].std() < 0.05
    assert flat.mean() == pytest.approx(0.5, abs=0.02)
    # blur lowers the checkerboard's contrast too; JPEG and noise change the pixels, deterministically
    assert degrade(board, gen(), 64.0, object_px=(100, 200), blur=2.0).std() < board.std()
    a = degrade(image, gen(3), 64.0, object_px=(100, 200), jpeg=(10, 20), noise=0.05)
    b = degrade(image, gen(3), 64.0, object_px=(100, 200), jpeg=(10, 20), noise=0.05)
    c = degrade(image, gen(4), 64.0, object_px=(100, 200), jpeg=(10, 20), noise=0.05)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c) and (a - image).abs().mean() > 0.02
    assert a.min() >= 0 and a.max() <= 1


def test_random_convolution_matches_a_hand_computed_filter():
    from data3d.transforms import random_convolution

    image = torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(1))
    out = random_convolution(image, torch.Generator().manual_seed(7), kernel_sizes=(3,))
    # the same draws by hand: the size index, the He-scaled weights, the mixing weight
    gen = torch.Generator().manual_seed(7)
    assert int(torch.randint(1, (), generator=gen)) == 0
    w = torch.randn((3, 3, 3, 3), generator=gen, dtype=torch.float32) / 3.0
    a = float(torch.rand((), generator=gen, dtype=torch.float64))
    padded = np.pad(image.numpy(), ((0, 0), (1, 1), (1, 1)), mode="reflect")
    y = np.zeros((3, 32, 40), np.float64)
    for o in range(3):
        for i in range(3):
            for dy in range(3):
                for dx in range(3):
                    y[o] += w[o, i, dy, dx].item() * padded[i, dy:dy + 32, dx:dx + 40]
    x = image.numpy().astype(np.float64)
    mean, sd = x.mean((1, 2), keepdims=True), x.std((1, 2), ddof=1, keepdims=True)
    y = (y - y.mean((1, 2), keepdims=True)) / y.std((1, 2), ddof=1, keepdims=True) * sd + mean
    expected = np.clip(a * x + (1 - a) * y, 0, 1)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    # a 1x1 filter mixes colours only: a grey image stays flat
    grey = torch.full((3, 16, 16), 0.4)
    assert random_convolution(grey, torch.Generator().manual_seed(0), kernel_sizes=(1,)).std() < 1e-5


def test_random_conv_option_is_checked_and_leaves_labels(silhouettes):
    records, _ = silhouettes
    for bad in ({"probb": 1}, {"prob": 2}, {"kernel_sizes": [2]}, {"kernel_sizes": []}):
        with pytest.raises(ValueError, match="random_conv"):
            data3d.ObjectDataset(records, crop_size=(64, 64), random_conv=bad)
    ds = data3d.ObjectDataset(records, crop_size=(64, 64), random_conv={"prob": 1.0, "kernel_sizes": [3]})
    plain = data3d.ObjectDataset(records, crop_size=(64, 64))
    assert not torch.equal(ds[0]["image"], plain[0]["image"])
    torch.testing.assert_close(ds[0]["viewpoint"], plain[0]["viewpoint"])
    torch.testing.assert_close(ds[0]["image"], ds[0]["image"])  # a function of the item


def test_degrade_options_are_checked(silhouettes):
    records, _ = silhouettes
    for bad in ({"blurr": 1}, {"prob": 2}, {"jpeg": [90, 10]}, {"object_px": 5}):
        with pytest.raises(ValueError, match="degrade"):
            data3d.ObjectDataset(records, crop_size=(64, 64), degrade=bad)
    ds = data3d.ObjectDataset(records, crop_size=(64, 64), degrade={"prob": 1.0, "object_px": [4, 4]})
    plain = data3d.ObjectDataset(records, crop_size=(64, 64))
    assert not torch.equal(ds[0]["image"], plain[0]["image"])
    torch.testing.assert_close(ds[0]["viewpoint"], plain[0]["viewpoint"])  # labels untouched
