"""On-the-fly training data: fresh domain-randomised samples rendered by datagen while training.

A small compute budget overfits a small fixed set; instead, each epoch trains on a new round of
samples: datagen's config with seed = its seed + epoch, written (resumably, by `datagen.generate`)
into <run>/fresh/round_<epoch>. Older rounds are deleted once a newer one is complete, so the disk
holds at most two rounds. Rendering is fast next to training (datagen renders 80–200 samples/s at
256² on a CPU), so rounds are made synchronously between epochs.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from .errors import NemoError

__all__ = ["FreshData", "is_datagen_config"]

log = logging.getLogger(__name__)


def is_datagen_config(item) -> bool:
    """True for a datagen YAML config path (a mapping counts too)."""
    if isinstance(item, Mapping):
        return True
    p = Path(os.fspath(item))
    return p.is_file() and p.suffix in (".yaml", ".yml")


class FreshData:
    """Rounds of fresh samples from one datagen config (a YAML path or a mapping) under `folder`."""

    def __init__(self, config, folder: str | os.PathLike):
        from datagen.config import ConfigError, load_config

        try:
            self.config = load_config(config)
        except ConfigError as exc:
            raise NemoError(f"the on-the-fly datagen config is invalid: {exc}") from exc
        self.folder = Path(folder)
        self.seed = int(self.config["seed"])

    @property
    def assets(self) -> list[dict]:
        """The config's asset source blocks (the meshes the samples are rendered from)."""
        return [dict(a) for a in self.config["assets"]]

    def round_folder(self, epoch: int) -> Path:
        return self.folder / f"round_{int(epoch):05d}"

    def records(self, epoch: int, generate_here: bool = True) -> list:
        """The records of round `epoch` (generated or resumed now), deleting rounds before epoch − 1.

        generate_here=False only reads a round another process generated (torchrun's other ranks)."""
        import data3d
        from datagen.config import load_config
        from datagen.pipeline import generate

        target = self.round_folder(epoch)
        if not generate_here:
            return list(data3d.load_records(target))
        cfg = load_config(self.config.data, overrides={"seed": self.seed + int(epoch)})
        manifest = generate(cfg, target, progress=False, preview=False)
        if not manifest["complete"] or manifest["images"] == 0:
            raise NemoError(f"datagen round {epoch} produced no complete dataset (skipped: {manifest['skipped']})",
                            target)
        for old in sorted(self.folder.glob("round_*")):
            digits = old.name[len("round_"):]
            if digits.isdigit() and int(digits) < int(epoch) - 1:
                shutil.rmtree(old, ignore_errors=True)
        log.info("fresh data: round %d, %d images in %s", epoch, manifest["images"], target)
        return list(data3d.load_records(target))
