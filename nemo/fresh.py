"""On-the-fly training data: fresh domain-randomised samples rendered by datagen while training.

A small compute budget overfits a small fixed set; instead, each epoch trains on a new round of
samples: datagen's config with seed = its seed + epoch, written (resumably, by `datagen.generate`)
into <run>/fresh/round_<epoch>. Older rounds are deleted once a newer one is complete, so the disk
holds at most three rounds. While an epoch trains, the next round renders in a background process
(`prefetch`); a round that a killed run left half-written is resumed by datagen.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
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


def _generate_round(config_data: dict, seed: int, folder: str) -> None:
    """Child-process body of `FreshData.prefetch`: render one round with one torch thread."""
    from aware3d_utils import torch_threads
    from datagen.config import load_config
    from datagen.pipeline import generate

    with torch_threads(1):
        generate(load_config(config_data, overrides={"seed": seed}), folder, progress=False, preview=False)


class FreshData:
    """Rounds of fresh samples from one datagen config (a YAML path or a mapping) under `folder`."""

    def __init__(self, config, folder: str | os.PathLike):
        from datagen.config import ConfigError, load_config

        try:
            self.config = load_config(config)
        except ConfigError as exc:
            raise NemoError(f"the on-the-fly datagen config is invalid: {exc}") from exc
        self.folder = Path(folder)
        self.seed = self.config.seed
        self._pending: dict[int, object] = {}  # epoch -> rendering process

    def prefetch(self, epoch: int) -> None:
        """Start rendering round `epoch` in a background process (training keeps the other core busy)."""
        import multiprocessing

        if epoch in self._pending or self.round_folder(epoch).joinpath("manifest.json").is_file():
            return
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_generate_round, daemon=True,
                           args=(self.config.data, self.seed + int(epoch), str(self.round_folder(epoch))))
        proc.start()
        self._pending[epoch] = proc

    def close(self) -> None:
        """Stop background rendering (a partial round is resumed the next time it is needed)."""
        for proc in self._pending.values():
            if proc.is_alive():
                proc.terminate()
            proc.join()
        self._pending.clear()

    @property
    def assets(self) -> list[dict]:
        """The config's asset source blocks (the meshes the samples are rendered from)."""
        return [dict(a) for a in self.config.assets]

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
        proc = self._pending.pop(int(epoch), None)
        if proc is not None:  # prefetched: wait for it; generate() below then only checks (or finishes) the round
            proc.join()
        from datagen.lock import FolderLockedError

        cfg = load_config(self.config.data, overrides={"seed": self.seed + int(epoch)})
        for attempt in range(600):
            try:
                manifest = generate(cfg, target, progress=False, preview=False)
                break
            except FolderLockedError:  # a background renderer of a killed run may still be finishing it
                if attempt == 599:
                    raise
                time.sleep(1.0)
        if not manifest["complete"] or manifest["images"] == 0:
            raise NemoError(f"datagen round {epoch} produced no complete dataset (skipped: {manifest['skipped']})",
                            target)
        for old in sorted(self.folder.glob("round_*")):
            digits = old.name[len("round_"):]
            if digits.isdigit() and int(digits) < int(epoch) - 1:
                shutil.rmtree(old, ignore_errors=True)
        log.info("fresh data: round %d, %d images in %s", epoch, manifest["images"], target)
        return list(data3d.load_records(target))
