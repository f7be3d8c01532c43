"""ObjectDataset on a small datagen dataset made here from the procedural library: the documented
snippet keeps objects whole, and the opt-in extras (mask, visible mask, depth, visible_fraction)
agree with the files datagen wrote and with the crop's camera."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import data3d
from data3d import AnnotationError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    datagen = pytest.importorskip("datagen")
    root = tmp_path_factory.mktemp("synthetic")
    cfg = {"seed": 1, "image_size": 128, "samples_per_category": 3, "occlusion": ["none", "L1"],
           "render": {"save": ["mask", "depth"]},
           "assets": [{"type": "procedural", "categories": ["car", "aeroplane", "chair"], "count": 2}]}
    datagen.generate(cfg, root / "ds", progress=False, preview=False)
    return data3d.load_records(root / "ds")


def _border(mask: torch.Tensor) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_documented_canonical_snippet_keeps_datagen_objects_whole(synthetic):
    ds = data3d.ObjectDataset(synthetic, crop_size=(256, 256), rescale="canonical", flip_prob=0.5,
                              color_jitter={"brightness": 0.2, "contrast": 0.2, "saturation": 0.4}, extras=["mask"])
    loader = torch.utils.data.DataLoader(ds, batch_size=len(ds), collate_fn=data3d.collate_objects)
    batch = next(iter(loader))
    whole = [i for i, r in enumerate(synthetic) if not r.objects[0].truncated]
    assert len(whole) >= len(synthetic) // 2
    for i in whole:
        mask = batch["mask"][i]
        assert not batch["truncated"][i] and mask.any() and not _border(mask), i
        # the object still fills a fair part of the crop: the canonical frame was fitted, not shrunk away
        ys, xs = np.nonzero(mask.numpy())
        assert max(np.ptp(ys), np.ptp(xs)) > 40
    # category is an index into ds.categories
    assert [ds.categories[c] for c in batch["category"]] == [r.objects[0].category for r in synthetic]


def test_extras_match_datagen_files_and_follow_the_crop(synthetic):
    full = data3d.ObjectDataset(synthetic, crop_size=None, extras=data3d.dataset.EXTRA_KEYS)
    crop = data3d.ObjectDataset(synthetic, crop_size=(96, 80), rescale="fit", flip_prob=1.0,
                                extras=data3d.dataset.EXTRA_KEYS)
    occluded = 0
    for i, r in enumerate(synthetic):
        item, small = full[i], crop[i]
        saved = np.asarray(Image.open(r.extra["mask_path"])) > 127
        assert torch.equal(item["mask"], torch.from_numpy(saved))
        assert not (item["visible_mask"] & ~item["mask"]).any()
        frac = item["visible_mask"].sum() / item["mask"].sum()
        assert float(item["visible_fraction"]) == pytest.approx(float(frac), abs=1e-6)
        occluded += float(frac) < 1.0
        # depth: positive exactly on the silhouette, around the camera distance
        d = item["depth"]
        assert torch.equal(d > 0, item["mask"]) and abs(float(d[d > 0].median()) - r.objects[0].viewpoint.distance) < 1
        # cropped, rescaled and flipped: masks stay binary and inside the returned bbox, depth is not blended
        assert small["mask"].dtype == torch.bool and small["mask"].shape == (96, 80)
        ys, xs = np.nonzero(small["mask"].numpy())
        x1, y1, x2, y2 = small["bbox"].tolist()
        assert xs.min() >= x1 - 1 and xs.max() <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() <= y2 + 1
        values = set(np.unique(small["depth"].numpy()).tolist()) - {0.0}
        assert values <= set(np.unique(d.numpy()).tolist())
    assert occluded > 0  # the L1 level really hides part of the objects


def test_extras_are_errors_on_records_without_the_files(synthetic):
    plain = [data3d.ImageRecord(r.image_path, r.image_size, r.objects) for r in synthetic[:1]]
    with pytest.raises(AnnotationError, match="extra.mask_path"):
        _ = data3d.ObjectDataset(plain, extras=["mask"])[0]
    with pytest.raises(ValueError, match="unknown keys"):
        data3d.ObjectDataset(synthetic, extras=["normals"])
    with pytest.raises(ValueError, match=r"crop_size must be \(H, W\)"):
        data3d.ObjectDataset(synthetic, crop_size=(-5, 64))


@pytest.mark.realdata
def test_an_off_centre_mesh_keeps_its_samples(shared_data, tmp_path):
    datagen = pytest.importorskip("datagen")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "suzanne.obj").symlink_to(shared_data / "meshes" / "suzanne.obj")
    cfg = {"seed": 0, "image_size": 64, "samples_per_category": 10,
           "assets": [{"type": "folder", "root": str(tmp_path / "m"), "category": "monkey"}]}
    manifest = datagen.generate(cfg, tmp_path / "ds", progress=False, preview=False)
    assert manifest["images"] == 10 and not manifest["skipped"], manifest["skipped"]
    (rec,) = data3d.load_records(tmp_path / "ds")[:1]
    assert rec.objects[0].mesh_ref == "folder:monkey/suzanne.obj"
