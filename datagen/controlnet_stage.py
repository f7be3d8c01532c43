"""The generation step of controlnet mode: prompts, the ControlNet generator and the cheap checks
(datagen.prompts, datagen.controlnet, datagen.filtering) behind one small interface."""

from __future__ import annotations

import numpy as np

from aware3d_utils.optional import lazy_module

from .config import DatagenConfig
from .plan import generation_seed, sample_rng

cv2 = lazy_module("cv2")  # imported on first use (~0.2 s)

__all__ = ["ControlNetStage"]


class ControlNetStage:
    """Built once per worker: loading the generator is the expensive part."""

    def __init__(self, config: DatagenConfig):
        from .controlnet import ControlNetGenerator
        from .filter_checks import cheap_checks
        from .prompts import PromptBuilder

        self.prompts = PromptBuilder(config.controlnet.prompts)
        self.generator = ControlNetGenerator(dict(config["controlnet"]))  # with the generator's own keys
        self.checks = config.checks
        self._cheap_checks = cheap_checks if self.checks.enabled else None

    def generate(self, ready: list, tags: list[tuple], size: tuple[int, int]
                 ) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
        """Images (H, W, 3) uint8 of `size` and (prompt, negative prompt) for `ready` samples
        (tuples whose first item is the SampleSpec and last the edge condition); `tags` per sample."""
        prompts = [self.prompts.build(r[0].category, t, sample_rng(r[0].sample_id, "prompt"))
                   for r, t in zip(ready, tags)]
        conds = [r[-1] for r in ready]
        seeds = [generation_seed(r[0].sample_id) for r in ready]
        images = self.generator.generate(conds, [p for p, _ in prompts], [n for _, n in prompts], seeds)
        if len(images) != len(ready):
            raise RuntimeError(f"ControlNetGenerator returned {len(images)} images for {len(ready)} conditions")
        h, w = size
        out = []
        for img in images:
            img = np.asarray(img)
            if img.shape[:2] != (h, w):
                if abs(img.shape[0] / img.shape[1] - h / w) > 1e-6:
                    raise RuntimeError(f"generated image {img.shape[:2]} has another aspect than {(h, w)}")
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            out.append(img[..., :3].astype(np.uint8))
        return out, prompts

    def check(self, image: np.ndarray, condition: np.ndarray, mask: np.ndarray) -> tuple[bool, str]:
        """(keep, reason): cheap_checks' verdict, or always keep when checks are disabled."""
        if self._cheap_checks is None:
            return True, ""
        ok, reason = self._cheap_checks(image, condition, mask, **self.checks.options)
        return bool(ok), str(reason or "failed").replace(" ", "_")
