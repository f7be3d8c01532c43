"""Filtering generated samples: cheap checks and the K-fold consistency filter (3D-DST's KCF)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")

from data3d.record import ImageRecord, ObjectAnnotation  # noqa: E402
from data3d.storage import load_records, save_records  # noqa: E402
from datagen.filtering import (  # noqa: E402
    CHECK_REASONS,
    TINY_BACKBONE,
    angles_to_bins,
    assign_folds,
    bins_to_angles,
    cheap_checks,
    cropped_fraction,
    edge_agreement,
    filter_dataset,
    keep_by_rule,
    kfold_filter,
)


# ============================================================================ cheap checks
def render_and_generated(size: int = 128, seed: int = 0):
    """A flat-shaded 'render' of a car-like silhouette, its Canny condition and mask, and a 'generated'
    photo that follows it: other colours, a textured background, noise and a little blur."""
    rng = np.random.default_rng(seed)
    body = np.array([[20, 80], [30, 60], [50, 55], [60, 40], [85, 40], [95, 55], [108, 60], [108, 80]], np.int32)
    wheels = [(38, 82), (92, 82)]
    render = np.full((size, size, 3), 255, np.uint8)
    cv2.fillPoly(render, [body], (150, 150, 160))
    cv2.fillPoly(render, [np.array([[55, 56], [63, 44], [82, 44], [90, 56]], np.int32)], (90, 100, 120))
    for c in wheels:
        cv2.circle(render, c, 9, (40, 40, 40), -1)
    condition = cv2.Canny(cv2.cvtColor(render, cv2.COLOR_RGB2GRAY), 100, 200)
    mask = (render != 255).any(axis=2)
    background = cv2.GaussianBlur(rng.uniform(60, 200, (size, size, 3)).astype(np.float32), (0, 0), 6)
    photo = background.copy()
    photo[mask] = (np.array([200, 30, 30]) * (0.8 + 0.2 * rng.random((mask.sum(), 1))))
    window = (render == np.array([90, 100, 120])).all(axis=2)
    photo[window] = (20, 40, 70)
    for c in wheels:
        cv2.circle(photo, c, 9, (15, 15, 15), -1)
    photo = cv2.GaussianBlur(photo + rng.normal(0, 4, photo.shape), (3, 3), 0.8)
    return np.clip(photo, 0, 255).astype(np.uint8), condition, mask


def test_cheap_checks_pass_an_image_that_follows_its_condition():
    photo, condition, mask = render_and_generated()
    assert edge_agreement(photo, condition, 2.0) > 0.6
    assert cheap_checks(photo, condition, mask) == (True, "ok")
    assert cheap_checks(photo, np.repeat(condition[:, :, None], 3, axis=2), None) == (True, "ok")


def test_cheap_checks_catch_blank_and_shifted_images():
    photo, condition, mask = render_and_generated()
    for value in (0, 128, 255):
        assert cheap_checks(np.full_like(photo, value), condition, mask) == (False, "blank_image")
    shift = np.float32([[1, 0, 22], [0, 1, -14]])
    shifted = cv2.warpAffine(photo, shift, (128, 128), borderMode=cv2.BORDER_REFLECT)
    assert edge_agreement(shifted, condition, 2.0) < 0.15
    assert cheap_checks(shifted, condition, mask) == (False, "edges_disagree")
    # an image full of texture has an edge near every pixel: chance-corrected, it agrees with nothing
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, photo.shape).astype(np.uint8)
    assert abs(edge_agreement(noise, condition, 2.0)) < 0.15
    assert cheap_checks(noise, condition, mask) == (False, "edges_disagree")


def test_cheap_checks_object_rules():
    photo, condition, mask = render_and_generated()
    assert cheap_checks(photo, np.zeros_like(condition), mask) == (False, "empty_condition")
    assert cheap_checks(photo, condition, np.zeros_like(mask)) == (False, "object_missing")
    tiny = np.zeros_like(mask)
    tiny[60:62, 60:62] = True
    assert cheap_checks(photo, condition, tiny) == (False, "object_too_small")
    cut = np.zeros_like(mask)
    cut[30:90, 0:40] = True  # a box cut by the left border
    assert cheap_checks(photo, condition, cut) == (False, "object_cropped")
    assert set(CHECK_REASONS) >= {"blank_image", "edges_disagree", "object_cropped"}
    with pytest.raises(ValueError, match="mask"):
        cheap_checks(photo, condition, mask[:10])
    with pytest.raises(ValueError, match="image"):
        cheap_checks(photo.astype(np.float32), condition, mask)


def test_cropped_fraction_hand_values():
    m = np.zeros((20, 20), bool)
    m[5:10, 5:10] = True
    assert cropped_fraction(m) == 0.0
    m = np.zeros((20, 20), bool)
    m[5:10, 0:5] = True  # 5x5 box on the left border: outline = 16 pixels, 5 of them in column 0
    assert cropped_fraction(m) == pytest.approx(5 / 16)
    assert cropped_fraction(np.ones((6, 6), bool)) == 1.0


# ============================================================================ K-fold filter: pieces
@settings(max_examples=60, deadline=None)
@given(st.floats(-20, 20), st.floats(-math.pi / 2, math.pi / 2), st.floats(-20, 20), st.sampled_from([6, 8, 41]))
def test_bins_hold_their_angles(azimuth, elevation, theta, nb):
    bins = angles_to_bins([azimuth], [elevation], [theta], nb)
    assert bins.min() >= 0 and bins.max() < nb
    centre = bins_to_angles(bins, nb)[0]
    width = 2 * math.pi / nb

    def circular(a, b):
        return abs((a - b + math.pi) % (2 * math.pi) - math.pi)

    assert circular(centre[0], azimuth) <= width / 2 + 1e-9
    assert abs(centre[1] - elevation) <= math.pi / nb / 2 + 1e-9
    assert circular(centre[2], theta) <= width / 2 + 1e-9
    np.testing.assert_array_equal(angles_to_bins(*bins_to_angles(bins, nb).T, nb), bins)


def test_zero_angles_sit_mid_bin():
    bins = angles_to_bins([0.0], [0.0], [0.0], 41)
    np.testing.assert_allclose(bins_to_angles(bins, 41), [[0.0, 0.0, 0.0]], atol=1e-12)


def test_folds_are_stratified_and_deterministic():
    cats = ["car"] * 23 + ["chair"] * 7 + ["boat"] * 2
    folds = assign_folds(cats, 5, seed=1)
    for cat in set(cats):
        counts = np.bincount(folds[np.array(cats) == cat], minlength=5)
        assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(folds, assign_folds(cats, 5, seed=1))
    assert not np.array_equal(folds, assign_folds(cats, 5, seed=2))


def test_keep_rules_by_hand():
    scores = np.array([0.1, 0.9, 0.5, 3.0, 0.2, 0.4, np.nan, 0.3])
    cats = ["a", "a", "a", "a", "b", "b", "b", "b"]
    keep, cuts = keep_by_rule(scores, cats, keep_ratio=0.5)
    np.testing.assert_array_equal(keep, [1, 0, 1, 0, 1, 0, 0, 1])  # 2 of a, ceil(0.5 * 3) = 2 of b
    assert cuts == {"a": 0.5, "b": 0.3}
    keep, _ = keep_by_rule(scores, cats, loss_threshold=0.45)
    np.testing.assert_array_equal(keep, [1, 0, 0, 0, 1, 1, 0, 1])
    # a: median 0.7, MAD 0.3 -> 0.7 + 2 * 1.4826 * 0.3 = 1.59 drops only 3.0
    keep, _ = keep_by_rule(scores, cats, max_mads=2.0)
    np.testing.assert_array_equal(keep[:4], [1, 1, 1, 0])
    keep, _ = keep_by_rule(scores, cats)
    np.testing.assert_array_equal(keep, np.isfinite(scores))
    with pytest.raises(ValueError, match="keep_ratio"):
        keep_by_rule(scores, cats, keep_ratio=1.5)


# ============================================================================ K-fold filter: end to end
S = 32


def arrow(azimuth: float, rng) -> np.ndarray:
    """An S x S image of an arrow (with a side mark, so no symmetry) pointing at `azimuth`."""
    img = rng.integers(0, 40, (S, S, 3)).astype(np.uint8)
    c = np.array([S / 2 - 0.5, S / 2 - 0.5])
    d = np.array([math.cos(azimuth), math.sin(azimuth)])
    n = np.array([-d[1], d[0]])
    pts = np.stack([c + 12 * d, c - 8 * d + 6 * n, c - 8 * d - 6 * n])
    cv2.fillConvexPoly(img, np.round(pts * 16).astype(np.int32), (230, 60, 40), cv2.LINE_AA, shift=4)
    cv2.circle(img, tuple(int(v) for v in np.round((c - 8 * d + 6 * n) * 16)), 48, (40, 200, 60), -1, cv2.LINE_AA,
               shift=4)
    return img


def arrow_dataset(folder, per_category: int, num_bins: int, seed: int = 0, corrupt_fraction: float = 0.15):
    """Records of arrow images in two categories; a fixed share per category gets azimuth + 180 deg."""
    rng = np.random.default_rng(seed)
    records, corrupt = [], []
    folder.mkdir(parents=True, exist_ok=True)
    for cat in ("car", "chair"):
        bad = set(rng.choice(per_category, int(round(corrupt_fraction * per_category)), replace=False).tolist())
        for i in range(per_category):
            azimuth = rng.integers(num_bins) * 2 * math.pi / num_bins + rng.uniform(-0.25, 0.25)
            path = folder / f"{cat}_{i:03d}.png"
            cv2.imwrite(str(path), arrow(azimuth, rng)[:, :, ::-1])
            label = azimuth + (math.pi if i in bad else 0.0)
            records.append(ImageRecord(image_path=path, image_size=(S, S), extra={"sample_id": f"{cat}-{i}"},
                                       objects=(ObjectAnnotation(category=cat, bbox=(2, 2, 29, 29), viewpoint=dict(
                                           azimuth=label, elevation=0.2, theta=0.0, distance=5.0, px=15.5,
                                           py=15.5)),)))
            corrupt.append(i in bad)
    return records, np.array(corrupt)


TINY = dict(backbone=TINY_BACKBONE, image_size=S, batch_size=16, optimizer="adamw", lr=1e-2, schedule="cosine",
            num_threads=1)


def test_kfold_filter_removes_corrupted_labels(tmp_path):
    nb = 6
    records, corrupt = arrow_dataset(tmp_path, 60, nb)
    result = kfold_filter(records, k=5, keep_ratio=0.85, num_bins=nb, epochs=20, **TINY)
    assert len(result.scores) == 120 and np.isfinite(result.scores).all()
    removed_corrupt = float((~result.keep[corrupt]).mean())
    removed_clean = float((~result.keep[~corrupt]).mean())
    assert removed_corrupt >= 0.8, (removed_corrupt, result.fold_metrics)
    assert removed_clean <= 0.05
    assert np.median(result.scores[corrupt]) > 3 * np.median(result.scores[~corrupt])
    # 0.85 of 60 per category
    assert [int(result.keep[np.array(result.categories) == c].sum()) for c in ("car", "chair")] == [51, 51]
    # the held-out classifier saw the true arrow direction: it predicts the image, not the flipped label
    true_azimuth = np.array([r.objects[0].viewpoint.azimuth for r in records]) - np.where(corrupt, math.pi, 0.0)
    error = np.abs((result.predictions[:, 0] - true_azimuth + math.pi) % (2 * math.pi) - math.pi)
    assert np.mean(error < math.pi / nb + 0.25) > 0.85
    assert len(result.fold_metrics) == 5 and all(m["samples"] == 24 for m in result.fold_metrics)
    # another keep rule without retraining
    strict = result.rekeep(loss_threshold=float(np.quantile(result.scores, 0.5)))
    assert strict.keep.sum() == 60 and (strict.scores[strict.keep] <= np.quantile(result.scores, 0.5)).all()


def test_kfold_filter_is_deterministic_and_restores_threads(tmp_path):
    records, _ = arrow_dataset(tmp_path, 10, 4)
    threads = torch.get_num_threads()
    a = kfold_filter(records, k=2, keep_ratio=0.5, num_bins=4, epochs=1, **TINY)
    b = kfold_filter(records, k=2, keep_ratio=0.5, num_bins=4, epochs=1, **TINY)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.folds, b.folds)
    assert torch.get_num_threads() == threads
    c = kfold_filter(records, k=2, keep_ratio=0.5, num_bins=4, epochs=1, seed=1, **TINY)
    assert not np.array_equal(a.scores, c.scores)
    shared = kfold_filter(records, k=2, num_bins=4, epochs=1, heads="shared", **TINY)
    assert shared.keep.all() and np.isfinite(shared.scores).all()  # no keep rule: everything kept


def test_a_diverged_fold_is_an_error_naming_it(tmp_path):
    """Each fold trains through methodkit's Trainer, whose finite-loss check stops a diverged fold (it
    used to go on and score every held-out sample NaN, which no rule keeps)."""
    records, _ = arrow_dataset(tmp_path, 10, 4)
    with pytest.raises(ValueError, match="kfold_filter: fold 0: training diverged at step 1 .*lower lr"):
        kfold_filter(records, k=2, num_bins=4, epochs=2, **{**TINY, "lr": 1e30})


def test_backbone_loads_from_a_folder_like_a_pretrained_model(tmp_path):
    from transformers import ResNetConfig, ResNetModel

    ResNetModel(ResNetConfig(**TINY_BACKBONE)).save_pretrained(tmp_path / "resnet")
    records, _ = arrow_dataset(tmp_path / "images", 6, 4)
    options = {**TINY, "backbone": str(tmp_path / "resnet")}
    result = kfold_filter(records, k=2, keep_ratio=0.5, num_bins=4, epochs=1, **options)
    assert np.isfinite(result.scores).all() and result.keep.sum() == 6
    assert result.settings["backbone"] == str(tmp_path / "resnet")
    with pytest.raises(ValueError, match="backbone: cannot load"):
        kfold_filter(records, k=2, num_bins=4, epochs=1, **{**TINY, "backbone": str(tmp_path / "none")})
    with pytest.raises(ValueError, match="keep_ratio"):  # checked before any training
        kfold_filter(records, k=2, keep_ratio=0.0, num_bins=4, epochs=1, **TINY)


def test_filter_dataset_writes_scores_kept_list_and_filtered_records(tmp_path):
    data = tmp_path / "dataset"
    records, _ = arrow_dataset(data / "images", 10, 4)
    # one broken image and one two-object image (scored on square crops)
    (data / "images" / "car_000.png").write_bytes(b"not a png")
    two = ImageRecord(image_path=data / "images" / "chair_000.png", image_size=(S, S), extra={"sample_id": "pair"},
                      objects=(records[10].objects[0], ObjectAnnotation(category="car", bbox=(0, 0, 15, 15),
                                                                         viewpoint=records[1].objects[0].viewpoint)))
    save_records(records[:10] + [two] + records[11:], data)
    result = filter_dataset(data, out=tmp_path / "filtered", k=2, keep_ratio=0.5, num_bins=4, epochs=1, **TINY)
    assert result.skipped == {"unreadable_image": 1}
    assert np.isnan(result.scores[result.sample_ids.index("car-0")]) and not result.keep[0]
    assert "pair#0" in result.sample_ids and "pair#1" in result.sample_ids
    doc = json.loads((data / "kcf" / "scores.json").read_text())
    assert doc["summary"]["samples"] == 21 and doc["summary"]["kept"] == int(result.keep.sum())
    assert doc["settings"]["k"] == 2 and doc["settings"]["backbone"]["hidden_sizes"] == [16, 32]
    kept_ids = (data / "kcf" / "kept.txt").read_text().split()
    assert kept_ids == [s for s, k in zip(result.sample_ids, result.keep) if k]
    filtered = load_records(tmp_path / "filtered")
    assert sum(len(r.objects) for r in filtered) == int(result.keep.sum())
    assert all(r.image_path.is_file() for r in filtered)
    assert len(load_records(data)) == 20  # the dataset itself is untouched
    with pytest.raises(ValueError, match="another folder"):
        filter_dataset(data, out=data, k=2, num_bins=4, epochs=1, **TINY)


def test_folds_keep_the_occlusion_levels_of_a_view_together():
    from datagen.filtering import assign_folds

    cats = ["car"] * 40 + ["chair"] * 20
    groups = [f"v{i // 2}" for i in range(60)]  # two images (levels) per viewpoint
    folds = assign_folds(cats, 5, seed=1, groups=groups)
    for i in range(0, 60, 2):
        assert folds[i] == folds[i + 1]
    for cat, n in (("car", 20), ("chair", 10)):  # viewpoints of each category dealt evenly over the folds
        counts = np.bincount([folds[i] for i in range(0, 60, 2) if cats[i] == cat], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n


def test_scores_file_is_strict_json_when_a_category_keeps_nothing():
    import json

    from aware3d_utils import plain  # the one JSON sanitiser (datagen's own copy is gone)

    assert json.dumps(plain({"cut": float("nan"), "rows": [{"score": float("inf")}, 1.5]}),
                      allow_nan=False) == '{"cut": null, "rows": [{"score": null}, 1.5]}'
