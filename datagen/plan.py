"""The plan of a run: which samples exist, in which chunks, and the seeds of their random draws.

The plan is a pure function of the config: the asset sources are listed (data3d.asset_source),
each category's `samples_per_category` viewpoints are spread over its assets (asset i gets
N // M views, the first N % M assets one more), and the samples, in (category, asset, view)
order, are cut into chunks of `writer.chunk_size`. A chunk is the unit of work, of resume and of
sharding (`--shard k/n` runs the chunks c with c % n == k). Every random draw of a sample comes
from a generator seeded by its id (a hash of seed, asset and view index) and a stage name, so
neither order nor process matters.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from .config import ConfigError, DatagenConfig
from .samplers import make_sampler, sampler_block
from .writer import sample_id

__all__ = ["Plan", "SampleSpec", "PlannedAsset", "make_plan", "parse_shard", "sample_rng", "generation_seed"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class PlannedAsset:
    """An asset of the plan: `key` (unique across sources, used in sample ids), the data3d Asset
    and the index of its source in the config's `assets` list."""

    key: str
    asset: object
    source_index: int


@dataclass(frozen=True)
class SampleSpec:
    """One viewpoint sample: its global index, id, category, asset (index into Plan.assets) and
    view index (0, 1, ... per asset)."""

    index: int
    sample_id: str
    category: str
    asset: int
    view_index: int


@dataclass
class Plan:
    config: DatagenConfig
    sources: list
    assets: list[PlannedAsset]
    samples: list[SampleSpec]
    info: dict = field(default_factory=dict)

    @property
    def chunk_size(self) -> int:
        return self.config.writer.chunk_size

    @property
    def n_chunks(self) -> int:
        return math.ceil(len(self.samples) / self.chunk_size)

    def chunk(self, index: int) -> list[SampleSpec]:
        return self.samples[index * self.chunk_size:(index + 1) * self.chunk_size]

    def chunks_of_shard(self, shard: tuple[int, int] | None) -> list[int]:
        if shard is None:
            return list(range(self.n_chunks))
        k, n = shard
        return [c for c in range(self.n_chunks) if c % n == k]


def make_plan(config: DatagenConfig) -> Plan:
    """List the assets of every source and lay out every sample (see the module docstring)."""
    from data3d import AssetError, asset_source

    sources, planned, skipped = [], [], {}
    seen: dict[str, int] = {}
    for i, entry in enumerate(config.assets):
        # a null root and an empty category list mean "none" and "all": leave them to the source's defaults
        spec = {k: v for k, v in entry.items() if not ((k == "root" and v is None) or (k == "categories" and not v))}
        try:
            source = asset_source(spec)
            assets = list(source.assets)
        except AssetError as exc:
            raise ConfigError(f"assets[{i}]", str(exc), config.source) from None
        sources.append(source)
        for reason, n in source.skipped.items():
            skipped[f"asset_{reason}"] = skipped.get(f"asset_{reason}", 0) + int(n)
        for asset in assets:
            key = f"{asset.source}:{asset.id}"
            if key in seen:  # the same id in two sources: keep both, distinguished by the source's index
                key = f"{key}#{i}"
            seen[key] = len(planned)
            planned.append(PlannedAsset(key, asset, i))
    by_category: dict[str, list[int]] = {}
    for j, pa in enumerate(planned):
        by_category.setdefault(pa.asset.category, []).append(j)
    if not by_category:
        raise ConfigError("assets", "the sources hold no assets (check root and categories)", config.source)
    requested = [c for e in config.assets for c in e.get("categories", [])]
    empty = sorted({c for c in requested if c not in by_category})
    if empty:
        log.warning("no assets found for categories %s", ", ".join(empty))
    per_category = config.sampler.per_category
    for category in per_category:
        if category not in by_category:
            raise ConfigError(f"sampler.per_category.{category}",
                              f"no assets of this category (categories: {', '.join(sorted(by_category))})",
                              config.source)
    _check_offsets(config, seen)
    r = config.randomization
    if r.background.get("image", 0) > 0:  # before any sample: a missing folder is the config's fault
        from .randomize import list_images

        try:
            list_images(r.background_images)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError("randomization.background_images", str(exc), config.source) from None
    for category in by_category:  # build every sampler now: records to match must load before any sample runs
        where = "sampler" + (f".per_category.{category}" if category in per_category else "")
        if sampler_block(config["sampler"], category)["strategy"] == "match_dataset":
            where += ".records"
        try:
            make_sampler(config["sampler"], category)
        except (ValueError, OSError) as exc:  # GeometryError (unreadable records) is a ValueError
            raise ConfigError(where, str(exc), config.source) from None
    n, seed = config.samples_per_category, config.seed
    samples: list[SampleSpec] = []
    for category, members in by_category.items():
        m = len(members)
        for rank, j in enumerate(members):
            for view in range(n // m + (1 if rank < n % m else 0)):
                sid = sample_id(seed, planned[j].key, view)
                samples.append(SampleSpec(len(samples), sid, category, j, view))
    info = {
        "samples": len(samples),
        "categories": list(by_category),
        "assets": {c: len(v) for c, v in by_category.items()},
        "categories_without_assets": empty,
        "skipped": skipped,
        "broken_assets": {},
    }
    plan = Plan(config, sources, planned, samples, info)
    info["chunks"] = plan.n_chunks
    return plan


def _check_offsets(config: DatagenConfig, keys: dict) -> None:
    """Offsets name assets of the plan: a key that names none is a typo, not a no-op."""
    blocks = [("sampler.offsets", config.sampler.offsets)]
    blocks += [(f"sampler.per_category.{c}.offsets", b["offsets"])
               for c, b in config.sampler.per_category.items() if "offsets" in b]
    for where, offsets in blocks:
        for key in offsets:
            if key not in keys:
                example = next(iter(keys), "procedural:car/0000")
                raise ConfigError(f"{where}.{key}", f"no asset of the plan has this key (keys are "
                                                    f"'<source>:<id>', e.g. {example!r})", config.source)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'k/n' -> (k, n) with 0 <= k < n; None stays None."""
    if text is None:
        return None
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ConfigError("--shard", f"must be k/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise ConfigError("--shard", f"needs 0 <= k < n, got {text!r}")
    return k, n


# ----------------------------------------------------------------------------------- randomness
def sample_rng(sid: str, stage: str) -> np.random.Generator:
    """The generator of one stage ("view", "look", "texture", "occluder-L2", ...) of one sample:
    seeded by the sample id (which holds the seed) and the stage name only."""
    seq = np.random.SeedSequence(entropy=int(sid, 16), spawn_key=(zlib.crc32(stage.encode()),))
    return np.random.Generator(np.random.PCG64(seq))


def generation_seed(sid: str) -> int:
    """The diffusion seed of a sample (31 bits, from its id): regenerate it alone with this seed."""
    return int(sid[:8], 16) & 0x7FFFFFFF
