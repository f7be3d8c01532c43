"""The pose-estimator contract every method implements (issue 22; modelled on `orbit4d.estimators`).

    results = model.estimate_pose(images, K=K, categories=["car", ...])   # list[PoseResult], one per image
    results[0].viewpoint.azimuth, results[0].category, results[0].score

Implemented by `nemo.NemoModel` (render-and-compare against a mesh bank), `nemo.BaselineModel` (the 2D
baseline: angle bins and a category head; iNeMo's replay2d is one too), `pose.CanonicalModel` (NeMo over
the canonical category mesh) and `pose.RetrievalModel` (one-shot nearest-neighbour retrieval).
`nemo.evaluate` takes any of them: it measures pose with the true category given and classification
separately, through `evaluate_poses` (the contract alone: two calls of `estimate_pose`); an estimator
that can share work between the two (NeMo computes its features once) offers a method of the same
name and meaning, which `nemo.evaluate` then calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

import data3d

__all__ = ["PoseEstimator", "PoseResult", "PoseEvaluation", "evaluate_poses", "estimator_inputs",
           "DEFAULT_FOCAL_FACTOR"]

DEFAULT_FOCAL_FACTOR = 2.0  # no intrinsics given: focal DEFAULT_FOCAL_FACTOR·max(H, W) pixels
_KEYS = ("category", "viewpoint", "score")


@dataclass(frozen=True)
class PoseResult(Mapping):
    """One image's estimate; also a read-only mapping over "category", "viewpoint", "score" (`to_dict`'s
    form, as estimates were dicts before the contract: `result["viewpoint"]["azimuth"]` keeps working).

    viewpoint: the camera (`data3d.Viewpoint`) in the input image's pixels: its focal length and
    principal point are the given intrinsics' (or the default's) unless the method estimates them
    (NeMo moves the principal point to where the object origin projects).
    category: the category the pose is for (the given one, or the method's prediction).
    score: the method's confidence in this estimate, higher is better; its scale is the method's
    (NeMo: 1 − the fit's loss; the 2D baseline: the category head's probability; retrieval: the
    cosine to the nearest database entry), so scores compare estimates of one model only.
    rotation_only: the method estimates the rotation and not the distance (the 2D baseline,
    retrieval): then `viewpoint.distance` is 1.0, a placeholder, and `to_dict` writes NaN for it.
    loss: the render-and-compare loss of the pose (NeMo's methods), else None.
    """

    viewpoint: data3d.Viewpoint
    category: str
    score: float
    rotation_only: bool = False
    loss: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.viewpoint, data3d.Viewpoint):
            object.__setattr__(self, "viewpoint", data3d.Viewpoint.from_mapping(self.viewpoint))
        object.__setattr__(self, "category", str(self.category))
        object.__setattr__(self, "score", float(self.score))
        if self.loss is not None:
            object.__setattr__(self, "loss", float(self.loss))

    @classmethod
    def rotation(cls, azimuth: float, elevation: float, theta: float, K: torch.Tensor, category: str,
                 score: float) -> PoseResult:
        """A rotation-only estimate: the angles, and focal / principal point from the intrinsics K (3, 3)."""
        vp = data3d.Viewpoint(azimuth=azimuth, elevation=elevation, theta=theta, distance=1.0,
                              focal=float(K[0, 0]), viewport=1.0, px=float(K[0, 2]), py=float(K[1, 2]))
        return cls(vp, category, score, rotation_only=True)

    def viewpoint_dict(self) -> dict[str, float]:
        """The viewpoint as a plain dict in `data3d.VIEWPOINT_KEYS` order; distance NaN when rotation-only."""
        vp = dict(self.viewpoint)
        if self.rotation_only:
            vp["distance"] = math.nan
        return vp

    def to_dict(self) -> dict:
        """{"category", "viewpoint" (`viewpoint_dict`), "score"}: what estimates were written as before
        the contract (record files and predictions keep their form)."""
        return {"category": self.category, "viewpoint": self.viewpoint_dict(), "score": self.score}

    def __getitem__(self, key: str):
        if key not in _KEYS:
            raise KeyError(key)
        return self.viewpoint_dict() if key == "viewpoint" else getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)


@dataclass(frozen=True)
class PoseEvaluation:
    """One image's evaluation (`evaluate_poses`): `pose`, estimated with the true category given;
    `predicted`, the category the estimator predicts without it; `predicted_fit`, the category whose
    fit scores best when the estimator can fit every one (NeMo's "classify by fitting"), else None;
    `predicted_pose`, the pose estimated with the predicted category (iNeMo's protocol), when asked."""

    pose: PoseResult
    predicted: str
    predicted_fit: str | None = None
    predicted_pose: PoseResult | None = None


@runtime_checkable
class PoseEstimator(Protocol):
    """A pose estimator: the categories it knows, and `estimate_pose`."""

    categories: list[str]

    def estimate_pose(self, images: torch.Tensor, *, K: torch.Tensor | None = None,
                      categories: Sequence[str] | None = None) -> list[PoseResult]:
        """One `PoseResult` per image, in order.

        images (B, 3, H, W) (or one (3, H, W)) float in [0, 1], in the sizes the method takes.
        K (3, 3) or (B, 3, 3): the images' intrinsics (OpenCV, pixel centres at integers); None: focal
        2·max(H, W) and the principal point at the image centre. categories: B names among
        `self.categories` (the pose is estimated for them; `result.category` is the given name), or
        None (the method predicts the category). Implementations accept K and categories by keyword
        (NeMo's also positionally, categories first, as before the contract).
        """
        ...


def estimator_inputs(images, K, categories, known: Sequence[str], error: type[Exception] = ValueError):
    """The contract's inputs checked and in one form: (images (B, 3, H, W) float32, K (B, 3, 3) float32,
    categories as B names or None). K None: focal DEFAULT_FOCAL_FACTOR·max(H, W), centred; a single
    name is every image's category. Names outside `known`, or not B of them, raise `error`."""
    images = torch.as_tensor(images, dtype=torch.float32)
    if images.ndim == 3:
        images = images[None]
    B, _, H, W = images.shape
    if categories is not None:
        categories = [categories] * B if isinstance(categories, str) else list(categories)
        unknown = sorted(set(categories) - set(known))
        if len(categories) != B or unknown:
            raise error(f"estimate_pose: need {B} categories among {list(known)}; got {categories}")
    if K is None:
        f = DEFAULT_FOCAL_FACTOR * max(H, W)
        K = torch.tensor([[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]])
    K = torch.as_tensor(K, dtype=torch.float32)
    return images, (K.expand(B, 3, 3) if K.shape == (3, 3) else K), categories


def evaluate_poses(estimator: PoseEstimator, images: torch.Tensor, truth: Sequence[str], K: torch.Tensor,
                   *, pose_predicted: bool = False, **options) -> list[PoseEvaluation]:
    """The evaluation of any estimator through the contract: the pose with the true categories `truth`
    given, and the estimator's own estimate without them, whose category is the prediction and whose
    pose is the pose with the predicted category. An estimator with an `evaluate_poses` method of this
    signature (less the estimator) answers instead; `options` (e.g. NeMo's `classify_fit`) go to it
    and are ignored otherwise."""
    own = getattr(estimator, "evaluate_poses", None)
    if own is not None:
        return own(images, truth, K, pose_predicted=pose_predicted, **options)
    posed = estimator.estimate_pose(images, K=K, categories=list(truth))
    guessed = estimator.estimate_pose(images, K=K)
    return [PoseEvaluation(p, g.category, predicted_pose=g if pose_predicted else None)
            for p, g in zip(posed, guessed)]
