"""A trained run as a pose estimator: `nemo.load(run_folder)`.

    model = nemo.load("runs/nemo")                   # a NemoModel, or a nemo.BaselineModel for a baseline run
    results = model.estimate_pose(images)            # images (B, 3, H, W) in [0, 1], H, W multiples of 32
    results[0]  # methodkit.PoseResult(viewpoint=data3d.Viewpoint(...), category="car", score=0.41, loss=0.59)

NeMo: backbone features, then the category by feature matching with clutter (or by fitting every
category), then `fit_pose` against the bank. Both models implement `methodkit.PoseEstimator`.
Viewpoints are in the input image's pixels; focal defaults to `DEFAULT_FOCAL_FACTOR`·max(H, W)
when no intrinsics are given (only distance depends on it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

import torch

import data3d
import geom3d
from geom3d.pixels import resize_coordinate
from methodkit.estimator import DEFAULT_FOCAL_FACTOR, PoseEvaluation, PoseResult, estimator_inputs
from methodkit.trainer import load_state

from .bank import MeshBank
from .baseline import BaselineModel
from .config import NemoConfig, NemoConfigError, parse_override, resolve_config
from .errors import NemoError
from .fit import fit_pose, initial_distance
from .run import RunFolder
from .scoring import clutter_scores, vertex_similarity
from .training import build_model

__all__ = ["NemoModel", "load", "DEFAULT_FOCAL_FACTOR", "match_categories", "MATCH_RULES"]



MATCH_RULES = ("mean", "peak")


def match_categories(feature_maps: torch.Tensor, bank: MeshBank, rule: str = "mean") -> torch.Tensor:
    """Per image and category the feature-matching score (B, M); the argmax is the predicted category.

    With s_m(p) the best vertex similarity of category m at pixel p:
    - "mean" (NOVUM's): the mean over pixels of max(0, s_m(p) − ⟨F(p), clutter centre⟩);
    - "peak" (iNeMo's released inference): the best pixel of s_m(p) − max_k ⟨F(p), clutter_k⟩ −
      (1 − margin(p)), margin(p) the gap between the two best categories at p. One confident
      unoccluded pixel decides, so occluders, which match clutter or no category well, do not dilute
      the score as they do a mean over the crop.
    """
    if rule not in MATCH_RULES:
        raise NemoError(f"match_categories: rule must be one of {list(MATCH_RULES)}, got {rule!r}")
    B = feature_maps.shape[0]
    best = []
    for m in range(len(bank.categories)):
        V = int(bank.num_vertices[m])
        feats = bank.features[m, :V].to(feature_maps)[None].expand(B, V, -1)
        best.append(vertex_similarity(feature_maps, feats).amax(-1))  # (B, P)
    best = torch.stack(best, dim=1)  # (B, M, P)
    if rule == "mean":
        clutter = clutter_scores(feature_maps, bank.clutter_centre()[None])  # (B, P)
        return (best - clutter[:, None]).clamp(min=0).mean(-1)
    clutter = clutter_scores(feature_maps, bank.clutter)
    if best.shape[1] > 1:
        top = best.topk(2, dim=1).values
        margin = top[:, :1] - top[:, 1:2]  # (B, 1, P)
    else:
        margin = torch.zeros_like(best)
    return (best - clutter[:, None] - (1.0 - margin)).amax(-1)


class NemoModel:
    """A trained network and its mesh bank, with the run's config: NeMo as a `methodkit.PoseEstimator`
    (see the module docstring). `method` is the run's method name ("nemo"), as records name it."""

    def __init__(self, net: torch.nn.Module, bank: MeshBank | None, config: NemoConfig | dict,
                 categories: Sequence[str], run: RunFolder | None = None):
        self.net, self.bank, self.config = net.eval(), bank, NemoConfig.of(config)
        self.categories, self.run = list(categories), run
        self.method = self.config.method

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.to(self.device))

    def _feature_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The images' feature maps and, with `pose.mirror`, the mirrored images' (else None)."""
        maps = self.features(images)
        return maps, (self.features(images.flip(-1)) if self.config.pose.mirror else None)

    def calibrate_fit(self, fit: dict) -> dict:
        """The extension point between `fit_pose` and the results: one fit (a `fit_pose` result, in
        feature-map pixels) → the pose this model reports. NeMo's is the fit itself; a model whose mesh
        frame differs from the annotations' by a known calibration overrides it (`pose.CanonicalModel`
        subtracts its one-shot azimuth and elevation offsets). Every fit passes through it, also those
        that classify by fitting."""
        return fit

    @torch.no_grad()
    def estimate_pose(self, images: torch.Tensor, categories: Sequence[str] | None = None, K=None,
                      classify: str = "match") -> list[PoseResult]:
        """One `PoseResult` per image (`methodkit.PoseEstimator`; its loss is the fit's).

        images (B, 3, H, W) in [0, 1]. categories: B known names (skips classification) or None.
        K (3, 3) or (B, 3, 3): the images' intrinsics (default: focal DEFAULT_FOCAL_FACTOR·max(H, W),
        centred). classify: "match" (feature matching with clutter, then one fit) or "fit" (fit every
        category, keep the best score).
        """
        images, K, categories = estimator_inputs(images, K, categories, self.categories, NemoError)
        maps, mirrored = self._feature_maps(images)
        stride = self.net.stride
        K_feat = feature_intrinsics(K, stride).to(maps)
        if categories is None:
            if classify == "fit" and len(self.bank.categories) > 1:
                fits, categories = self._fit_every(maps, K_feat, mirrored)
                return [_to_image(fits[c][b], c, stride) for b, c in enumerate(categories)]
            if classify not in ("match", "fit"):
                raise NemoError(f"estimate_pose: classify must be 'match' or 'fit', got {classify!r}")
            scores = match_categories(maps, self.bank, self.config.classify.match_rule)
            categories = [self.bank.categories[int(i)] for i in scores.argmax(1)]
        results = self._fit(maps, K_feat, categories, mirrored)
        return [_to_image(r, c, stride) for r, c in zip(results, categories)]

    def _fit(self, maps, K_feat, categories, mirrored=None) -> list[dict]:
        """fit_pose's result per image; with `mirrored` (the mirrored images' maps, `pose.mirror`) both
        are fitted in one batch and the better score kept, a mirrored fit carried back (`mirror_fit`)."""
        p = self.config.pose
        B, width = maps.shape[0], maps.shape[-1]
        categories = list(categories)
        if mirrored is not None:
            maps = torch.cat([maps, mirrored])
            K_feat = torch.cat([K_feat, mirror_intrinsics(K_feat, width)])
            categories = categories * 2
        distance = initial_distance(self.bank, categories, K_feat[:, 0, 0], maps.shape[-2:], p.fill)
        fits = fit_pose(maps, K_feat, self.bank, categories, steps=p.steps, grid=p.grid(),
                        distance=distance, keep=p.keep, lr=p.lr)
        if mirrored is not None:
            fits = [a if a["score"] >= b["score"] else mirror_fit(b, width) for a, b in zip(fits[:B], fits[B:])]
        return [self.calibrate_fit(r) for r in fits]

    def _fit_every(self, maps, K_feat, mirrored=None) -> tuple[dict[str, list[dict]], list[str]]:
        """({category: its fit of every image}, per image the category whose fit scores best)."""
        B = maps.shape[0]
        fits = {c: self._fit(maps, K_feat, [c] * B, mirrored) for c in self.bank.categories}
        return fits, [max(self.bank.categories, key=lambda c: fits[c][b]["score"]) for b in range(B)]

    @torch.no_grad()
    def evaluate_poses(self, images: torch.Tensor, truth: Sequence[str], K, *, classify_fit: bool = True,
                       pose_predicted: bool = False) -> list[PoseEvaluation]:
        """`methodkit.evaluate_poses` with the features computed once: the pose fitted with the true
        category, the category predicted by feature matching and, with classify_fit, by fitting every
        category ("predicted_fit"; every category is fitted once and the true category's fit is the
        pose, the same program as fitting it alone). pose_predicted: also the pose fitted with the
        PREDICTED (matched) category's mesh, as iNeMo's released evaluation does (src/models/inemo.py
        lines 138-150, 347: `pre_rendered_maps[cls_pred]`, `xverts[cls_pred[b]]`); only misclassified
        images are fitted again."""
        images, K, _ = estimator_inputs(images, K, None, self.categories, NemoError)
        B = images.shape[0]
        maps, mirrored = self._feature_maps(images)
        stride = self.net.stride
        K_feat = feature_intrinsics(K, stride).to(maps)
        scores = match_categories(maps, self.bank, self.config.classify.match_rule)
        matched = [self.bank.categories[int(i)] for i in scores.argmax(1)]
        if classify_fit and len(self.bank.categories) > 1:
            fits, best = self._fit_every(maps, K_feat, mirrored)
            return [PoseEvaluation(_to_image(fits[truth[b]][b], truth[b], stride), matched[b], best[b],
                                   _to_image(fits[matched[b]][b], matched[b], stride) if pose_predicted else None)
                    for b in range(B)]
        posed = [_to_image(r, c, stride) for r, c in zip(self._fit(maps, K_feat, list(truth), mirrored), truth)]
        again: list = [None] * B
        if pose_predicted:
            again = list(posed)
            wrong = [b for b in range(B) if matched[b] != truth[b]]
            if wrong:
                refit = self._fit(maps[wrong], K_feat[wrong], [matched[b] for b in wrong],
                                  None if mirrored is None else mirrored[wrong])
                for b, r in zip(wrong, refit):
                    again[b] = _to_image(r, matched[b], stride)
        return [PoseEvaluation(p, m, None, a) for p, m, a in zip(posed, matched, again)]


def feature_intrinsics(K: torch.Tensor, stride: int) -> torch.Tensor:
    """Intrinsics (..., 3, 3) of the stride-`stride` feature map of images with intrinsics K."""
    K = K.clone()
    K[..., :2, :2] = K[..., :2, :2] / stride
    K[..., :2, 2] = resize_coordinate(K[..., :2, 2], 1.0 / stride)
    return K


def mirror_intrinsics(K: torch.Tensor, width: int) -> torch.Tensor:
    """The intrinsics (..., 3, 3) of images `width` pixels wide flipped horizontally (u -> width − 1 − u)."""
    K = K.clone()
    K[..., 0, 2] = (width - 1) - K[..., 0, 2]
    return K


def mirror_fit(fit: dict, width: int) -> dict:
    """A fit_pose result on a horizontally flipped map carried back to the unflipped map `width` pixels
    wide (`data3d.Viewpoint.mirrored`: azimuth −a, theta −θ, px -> width − 1 − px; the mirror image of
    a left-right symmetric object is the object itself)."""
    viewpoint = data3d.Viewpoint(**{k: fit[k] for k in data3d.VIEWPOINT_KEYS})
    return {**fit, **viewpoint.mirrored(width).as_dict()}


def _to_image(result: dict, category: str, stride: int) -> PoseResult:
    """A fit_pose result (feature-map pixels) as a PoseResult (image pixels)."""
    vp = data3d.Viewpoint(azimuth=result["azimuth"], elevation=result["elevation"], theta=result["theta"],
                          distance=result["distance"], focal=result["focal"] * stride, viewport=1.0,
                          px=resize_coordinate(result["px"], stride), py=resize_coordinate(result["py"], stride))
    return PoseResult(vp, category, result["score"], loss=result["loss"])


def load(run: str | os.PathLike | RunFolder, device: str | None = None, pose_search: Sequence[str] = ()
         ) -> NemoModel | BaselineModel:
    """The model of a run folder's latest checkpoint: a NemoModel, or a `BaselineModel` for a run of
    the 2D baseline (config `method: baseline`).

    pose_search: 'pose.KEY=VALUE' overrides of the stored config's pose search (the grid, steps,
    hypotheses, the viewpoint prior: settings of inference, not of the trained weights); any other key
    is a NemoError."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    stored = run.read_config()
    if set(stored) == {"nemo", "pose"}:  # pose.train's run folder: {"nemo": ..., "pose": ...}
        raise NemoError("is a label-free pose run (aware3d pose train), not a NeMo run; evaluate it with "
                        "`aware3d pose eval --run ...`", run.path)
    run.refuse_other_kind(("nemo.nemo", "nemo.baseline", "nemo.incremental.task"), "NeMo run", given="run")
    try:
        cfg = NemoConfig.of(resolve_config(stored))
    except NemoError as exc:
        raise NemoError(f"config.yaml: {exc}", run.path) from None
    if pose_search:
        overrides = [parse_override(o) for o in pose_search]
        if any(set(o) != {"pose"} for o in overrides):
            raise NemoConfigError(f"--set: only the pose search (pose.KEY=VALUE) can change after training, got "
                                  f"{[o for o in pose_search if not o.strip().startswith('pose.')]}")
        cfg = NemoConfig.of(resolve_config(cfg.to_dict(), overrides))
    if device is None and cfg.device.startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger(__name__).warning("%s was trained on %s; this machine has no CUDA device: loading it on "
                                            "the CPU", run.path, cfg.device)
        device = "cpu"
    tensors, meta = run.load_checkpoint()
    categories = list(meta.get("categories") or cfg.categories or [])
    if not categories:
        raise NemoError("the run's checkpoint names no categories", run.path)
    device = device or cfg.device
    cfg = dataclasses.replace(cfg, categories=categories, device=str(device))  # the device: where it lives now
    net, bank = restore_model(cfg, categories, tensors, device, source=run.path)
    if bank is None:
        return BaselineModel(net, cfg, categories, run)
    return NemoModel(net, bank, cfg, categories, run)


def checkpoint_misfit(cfg: NemoConfig, exc: Exception) -> str:
    """`load_state`'s message, with the likely cause where the network is rebuilt from a file
    (backbone.kind tfjs / efficientnet): that file was replaced since the run trained."""
    if cfg.backbone.kind not in ("tfjs", "efficientnet"):
        return str(exc)
    return (f"{exc}; was backbone.model {cfg.backbone.model} replaced by another model since the run trained? "
            "(the network is rebuilt from it)")


def restore_model(config: NemoConfig | dict, categories: Sequence[str], tensors, device,
                  error: type[NemoError] = NemoError, source=None) -> tuple[torch.nn.Module, MeshBank | None]:
    """(network, bank) of a checkpoint's tensors on `device`, for the config's method: `build_model`
    over the checkpoint bank's meshes (none for the baseline), then its "model." weights
    (`methodkit.trainer.load_state`; a misfit raises `error` naming `source`, the run folder)."""
    cfg = NemoConfig.of(config)
    bank = None
    if cfg.method == "nemo":
        bank = MeshBank.from_state_dict(tensors, categories, momentum=cfg.bank.momentum)
    net, _ = build_model(cfg, categories, meshes=None if bank is None else {c: bank.mesh(c) for c in categories})
    try:
        load_state(net, tensors, error=error)
    except error as exc:
        raise error(checkpoint_misfit(cfg, exc), source) from None
    return net.to(device), None if bank is None else bank.to(device)


def rotation_of(viewpoint) -> torch.Tensor:
    """(3, 3) world→camera rotation of a result viewpoint."""
    return geom3d.viewpoint_to_rotation(viewpoint["azimuth"], viewpoint["elevation"], viewpoint["theta"])
