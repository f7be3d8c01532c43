"""A trained run as a pose estimator: `nemo.load(run_folder)`.

    model = nemo.load("runs/nemo")
    results = model.estimate_pose(images)            # images (B, 3, H, W) in [0, 1], H, W multiples of 32
    results[0]  # {"category": "car", "viewpoint": {azimuth, elevation, theta, distance, focal, viewport, px, py},
                #  "score": 0.41}

NeMo: backbone features, then the category by feature matching with clutter (or by fitting every
category), then `fit_pose` against the bank. The 2D baseline: angle bins and the category head.
Viewpoints are in the input image's pixels; focal defaults to `DEFAULT_FOCAL_FACTOR`·max(H, W)
when no intrinsics are given (only distance depends on it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch

import geom3d
from geom3d.pixels import resize_coordinate

from .bank import MeshBank
from .baseline import decode_bins
from .config import resolve_config
from .errors import NemoError
from .fit import fit_pose, initial_distance, pose_grid
from .run import RunFolder
from .scoring import clutter_scores, vertex_similarity
from .train import build_model, load_network

__all__ = ["NemoModel", "load", "DEFAULT_FOCAL_FACTOR", "match_categories", "MATCH_RULES"]

DEFAULT_FOCAL_FACTOR = 2.0


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
    """A trained network (+ its mesh bank for NeMo) and the run's config; see the module docstring."""

    def __init__(self, net: torch.nn.Module, bank: MeshBank | None, config: dict, categories: Sequence[str],
                 run: RunFolder | None = None):
        self.net, self.bank, self.config = net.eval(), bank, config
        self.categories, self.run = list(categories), run
        self.method = config["method"]

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _intrinsics(self, images: torch.Tensor, K) -> torch.Tensor:
        B, _, H, W = images.shape
        if K is None:
            f = DEFAULT_FOCAL_FACTOR * max(H, W)
            K = torch.tensor([[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]])
        K = torch.as_tensor(K, dtype=torch.float32)
        return K.expand(B, 3, 3) if K.shape == (3, 3) else K

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.to(self.device))

    @torch.no_grad()
    def estimate_pose(self, images: torch.Tensor, categories: Sequence[str] | None = None, K=None,
                      classify: str = "match") -> list[dict]:
        """Per image {"category", "viewpoint", "score"} (see the module docstring).

        images (B, 3, H, W) in [0, 1]. categories: B known names (skips classification) or None.
        K (3, 3) or (B, 3, 3): the images' intrinsics (default: focal DEFAULT_FOCAL_FACTOR·max(H, W),
        centred). classify (NeMo): "match" (feature matching with clutter, then one fit) or "fit"
        (fit every category, keep the best score).
        """
        images = torch.as_tensor(images, dtype=torch.float32)
        if images.ndim == 3:
            images = images[None]
        B = images.shape[0]
        if categories is not None:
            categories = [categories] * B if isinstance(categories, str) else list(categories)
            unknown = sorted(set(categories) - set(self.categories))
            if len(categories) != B or unknown:
                raise NemoError(f"estimate_pose: need {B} categories among {self.categories}; got {categories}")
        K = self._intrinsics(images, K)
        if self.method == "baseline":
            return self._baseline(images, categories, K)
        return self._nemo(images, categories, K, classify)

    def _baseline(self, images, categories, K) -> list[dict]:
        angle_logits, cls_logits = self.net(images.to(self.device))
        angles = decode_bins(angle_logits)
        probs = cls_logits.softmax(-1)
        out = []
        for b in range(images.shape[0]):
            c = categories[b] if categories is not None else self.categories[int(probs[b].argmax())]
            score = float(probs[b, self.categories.index(c)])
            f = float(K[b, 0, 0])
            vp = {**angles[b], "distance": float("nan"), "focal": f, "viewport": 1.0,
                  "px": float(K[b, 0, 2]), "py": float(K[b, 1, 2])}
            out.append({"category": c, "viewpoint": vp, "score": score})
        return out

    def _fit(self, maps, K_feat, categories) -> list[dict]:
        p = self.config["pose"]
        h, w = maps.shape[-2:]
        fill = float(p["fill"])
        distance = None if fill <= 0 else initial_distance(self.bank, categories, K_feat[:, 0, 0], (h, w), fill)
        return fit_pose(maps, K_feat, self.bank, categories, steps=p["steps"],
                        grid=pose_grid(p["azimuths"], p["elevations"], p["thetas"]), distance=distance,
                        keep=p["keep"], lr=p["lr"])

    def _nemo(self, images, categories, K, classify) -> list[dict]:
        maps = self.features(images)
        B, _, h, w = maps.shape
        stride = self.net.stride
        K_feat = feature_intrinsics(K, stride).to(maps)
        if categories is None:
            if classify == "fit" and len(self.bank.categories) > 1:
                fits = {c: self._fit(maps, K_feat, [c] * B) for c in self.bank.categories}
                categories = [max(self.bank.categories, key=lambda c: fits[c][b]["score"]) for b in range(B)]
                results = [fits[categories[b]][b] for b in range(B)]
                return [_to_image(r, c, stride) for r, c in zip(results, categories)]
            if classify not in ("match", "fit"):
                raise NemoError(f"estimate_pose: classify must be 'match' or 'fit', got {classify!r}")
            scores = match_categories(maps, self.bank, self.config["classify"]["match_rule"])
            categories = [self.bank.categories[int(i)] for i in scores.argmax(1)]
        results = self._fit(maps, K_feat, categories)
        return [_to_image(r, c, stride) for r, c in zip(results, categories)]


    @torch.no_grad()
    def evaluate_batch(self, images: torch.Tensor, truth: Sequence[str], K, classify_fit: bool = True,
                       pose_predicted: bool = False) -> list[dict]:
        """Per image: the pose fitted with the true category ("viewpoint", "score") and the predicted
        category by feature matching ("predicted") and, for NeMo with classify_fit, by fitting every
        category ("predicted_fit"). The features are computed once; with classify_fit every category
        is fitted once and the true category's fit is the pose (the same program as fitting it alone).
        pose_predicted: also "viewpoint_predicted", the pose fitted with the PREDICTED (matched)
        category's mesh, as iNeMo's released evaluation does (src/models/inemo.py lines 138-150, 347:
        `pre_rendered_maps[cls_pred]`, `xverts[cls_pred[b]]`); only misclassified images are fitted
        again. The 2D baseline's angles do not depend on the category: both poses are the same."""
        images = torch.as_tensor(images, dtype=torch.float32)
        B = images.shape[0]
        K = self._intrinsics(images, K)
        if self.method == "baseline":
            posed = self._baseline(images, list(truth), K)
            guessed = self._baseline(images, None, K)
            out = [{**p, "predicted": g["category"]} for p, g in zip(posed, guessed)]
            if pose_predicted:
                out = [{**o, "viewpoint_predicted": g["viewpoint"]} for o, g in zip(out, guessed)]
            return out
        maps = self.features(images)
        stride = self.net.stride
        K_feat = feature_intrinsics(K, stride).to(maps)
        scores = match_categories(maps, self.bank, self.config["classify"]["match_rule"])
        matched = [self.bank.categories[int(i)] for i in scores.argmax(1)]
        if classify_fit and len(self.bank.categories) > 1:
            fits = {c: self._fit(maps, K_feat, [c] * B) for c in self.bank.categories}
            best = [max(self.bank.categories, key=lambda c: fits[c][b]["score"]) for b in range(B)]
            out = [{**_to_image(fits[truth[b]][b], truth[b], stride), "predicted": matched[b],
                    "predicted_fit": best[b]} for b in range(B)]
            if pose_predicted:
                for b in range(B):
                    out[b]["viewpoint_predicted"] = _to_image(fits[matched[b]][b], matched[b], stride)["viewpoint"]
            return out
        results = self._fit(maps, K_feat, list(truth))
        out = [{**_to_image(r, c, stride), "predicted": m} for r, c, m in zip(results, truth, matched)]
        if pose_predicted:
            for o in out:
                o["viewpoint_predicted"] = o["viewpoint"]
            wrong = [b for b in range(B) if matched[b] != truth[b]]
            if wrong:
                refit = self._fit(maps[wrong], K_feat[wrong], [matched[b] for b in wrong])
                for b, r in zip(wrong, refit):
                    out[b]["viewpoint_predicted"] = _to_image(r, matched[b], stride)["viewpoint"]
        return out


def feature_intrinsics(K: torch.Tensor, stride: int) -> torch.Tensor:
    """Intrinsics (..., 3, 3) of the stride-`stride` feature map of images with intrinsics K."""
    K = K.clone()
    K[..., :2, :2] = K[..., :2, :2] / stride
    K[..., :2, 2] = resize_coordinate(K[..., :2, 2], 1.0 / stride)
    return K


def _to_image(result: dict, category: str, stride: int) -> dict:
    """A fit_pose result (feature-map pixels) as {"category", "viewpoint" (image pixels), "score"}."""
    vp = {k: result[k] for k in ("azimuth", "elevation", "theta", "distance")}
    vp.update(focal=result["focal"] * stride, viewport=1.0, px=resize_coordinate(result["px"], stride),
              py=resize_coordinate(result["py"], stride))
    return {"category": category, "viewpoint": vp, "score": result["score"]}


def load(run: str | os.PathLike | RunFolder, device: str | None = None) -> NemoModel:
    """The model of a run folder's latest checkpoint (NeMo or the 2D baseline, as the run says)."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    stored = run.read_config()
    if set(stored) == {"nemo", "pose"}:  # pose.train's run folder: {"nemo": ..., "pose": ...}
        raise NemoError("is a label-free pose run (aware3d pose train), not a NeMo run; evaluate it with "
                        "`aware3d pose eval --run ...`", run.path)
    if device is None and str(stored.get("device", "cpu")).startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger(__name__).warning("%s was trained on %s; this machine has no CUDA device: loading it on "
                                            "the CPU", run.path, stored["device"])
        device = "cpu"
    try:
        config = resolve_config(stored)
    except NemoError as exc:
        raise NemoError(f"config.yaml: {exc}", run.path) from None
    tensors, meta = run.load_checkpoint()
    categories = list(meta.get("categories") or config["categories"] or [])
    if not categories:
        raise NemoError("the run's checkpoint names no categories", run.path)
    config = dict(config, categories=categories)
    if config["method"] == "nemo":
        bank = MeshBank.from_state_dict(tensors, categories, momentum=config["bank"]["momentum"])
        net, _ = build_model(config, categories, meshes={c: bank.mesh(c) for c in categories})
    else:
        bank = None
        net, _ = build_model(config, categories)
    load_network(net, tensors)
    device = device or config["device"]
    config["device"] = str(device)  # where the model lives now
    net.to(device)
    if bank is not None:
        bank.to(device)
    return NemoModel(net, bank, config, categories, run)


def rotation_of(viewpoint: dict) -> torch.Tensor:
    """(3, 3) world→camera rotation of a result viewpoint."""
    return geom3d.viewpoint_to_rotation(viewpoint["azimuth"], viewpoint["elevation"], viewpoint["theta"])
