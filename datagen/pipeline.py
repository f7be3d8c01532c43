"""Orchestration: plan the samples, run chunks (in-process, in worker processes or as Ray tasks),
write the dataset, and keep the manifest.

The plan is a pure function of the config: the asset sources are listed (data3d.asset_source),
each category's `samples_per_category` viewpoints are spread over its assets (asset i gets
N // M views, the first N % M assets one more), and the samples, in (category, asset, view)
order, are cut into chunks of `writer.chunk_size`. A chunk is the unit of work, of resume and of
sharding (`--shard k/n` runs the chunks c with c % n == k); its record shard holds its samples in
plan order, whoever ran it. Every random draw of a sample comes from a generator seeded by its id
(a hash of seed, asset and view index) and a stage name, so neither order nor process matters.

Per sample, one `geom3d.render_gl` call renders the view (the GL context and the uploaded mesh
stay from view to view of an asset; single views are llvmpipe's fastest path and make a view's
pixels independent of any batching), while a writer thread encodes the previous sample's PNGs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from geom3d import GeometryError

from .config import OCCLUSION_LEVELS, ConfigError, DatagenConfig, load_config
from .randomize import (
    APPEARANCES,
    BACKGROUNDS,
    choose,
    make_background,
    make_occluders,
    object_points,
    random_lights,
    texture_albedo,
)
from .render import (
    edge_map,
    mask_bbox,
    object_extent,
    render_views,
    viewpoint_for,
)
from .samplers import make_sampler, sampler_block
from .writer import ChunkWriter, DatasetFolder, chunk_name, sample_id

__all__ = ["Plan", "SampleSpec", "PlannedAsset", "make_plan", "generate", "run_chunk", "parse_shard",
           "sample_rng", "generation_seed", "load_sample_mesh", "demo_config", "run_demo_dataset"]

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
        return int(self.config["writer"]["chunk_size"])

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
    for i, entry in enumerate(config["assets"]):
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
    requested = [c for e in config["assets"] for c in e.get("categories", [])]
    empty = sorted({c for c in requested if c not in by_category})
    if empty:
        log.warning("no assets found for categories %s", ", ".join(empty))
    for category in config["sampler"]["per_category"]:
        if category not in by_category:
            raise ConfigError(f"sampler.per_category.{category}",
                              f"no assets of this category (categories: {', '.join(sorted(by_category))})",
                              config.source)
    for category in by_category:  # build every sampler now: records to match must load before any sample runs
        where = "sampler" + (f".per_category.{category}" if category in config["sampler"]["per_category"] else "")
        if sampler_block(config["sampler"], category)["strategy"] == "match_dataset":
            where += ".records"
        try:
            make_sampler(config["sampler"], category)
        except (ValueError, OSError) as exc:  # GeometryError (unreadable records) is a ValueError
            raise ConfigError(where, str(exc), config.source) from None
    n = int(config["samples_per_category"])
    seed = int(config["seed"])
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


# ----------------------------------------------------------------------------------- a worker
@dataclass
class _Look:
    """The appearance draws of one sample."""

    principal: tuple[float, float]
    appearance: str
    background: str
    lights: object


@dataclass
class _Loaded:
    mesh: object
    plain: object  # the same geometry without colours, for procedural textures
    extent: float
    bounds: list


class _Worker:
    """Per-process state: the plan, samplers, a small mesh cache and the ControlNet stage."""

    def __init__(self, config: DatagenConfig, root: str | os.PathLike, plan: Plan | None = None):
        self.config = config
        self.plan = plan if plan is not None else make_plan(config)
        self.folder = DatasetFolder(root)
        self.size = config.image_size
        self.levels = list(config["occlusion"])
        self._samplers: dict[str, object] = {}
        self._meshes: OrderedDict[int, _Loaded | str] = OrderedDict()
        self._controlnet = None

    # -- per-sample draws
    def sampler(self, category: str):
        if category not in self._samplers:
            self._samplers[category] = make_sampler(self.config["sampler"], category)
        return self._samplers[category]

    def viewpoint(self, spec: SampleSpec, loaded: _Loaded, look: _Look):
        pa = self.plan.assets[spec.asset]
        view = self.sampler(spec.category).sample(sample_rng(spec.sample_id, "view"), pa.key)
        return viewpoint_for(view, loaded.extent, self.size, math.radians(self.config["camera"]["fov"]),
                             look.principal)

    def look(self, spec: SampleSpec, appearance: bool = True) -> _Look:
        rng = sample_rng(spec.sample_id, "look")
        h, w = self.size
        jit = self.config["camera"]["principal_jitter"]
        dx, dy = (2 * rng.random(2) - 1) * jit
        principal = ((w - 1) / 2.0 + dx * w, (h - 1) / 2.0 + dy * h)
        r = self.config["randomization"]
        kind = choose(rng, r["appearance"], APPEARANCES) if appearance else "original"
        background = choose(rng, r["background"], BACKGROUNDS)
        lights = random_lights(rng, r["ambient"], r["lights"], r["light_intensity"], r["light_tint"])
        return _Look(principal, kind, background, lights)

    # -- assets
    def load(self, index: int) -> _Loaded | str:
        """The asset's mesh (cached), or the reason it is broken."""
        if index in self._meshes:
            self._meshes.move_to_end(index)
            return self._meshes[index]
        pa = self.plan.assets[index]
        source = self.plan.sources[pa.source_index]
        before = len(source.problems)
        mesh = source.load(pa.asset)
        if mesh is None:
            problem = source.problems[-1][1] if len(source.problems) > before else "load_failed"
            entry: _Loaded | str = problem
        else:
            from geom3d import Mesh

            lo, hi = mesh.bounds()
            extent = object_extent(mesh)
            if not extent > 0:
                entry = "invalid_mesh: zero extent"
            else:
                entry = _Loaded(mesh, Mesh(mesh.vertices, mesh.faces, source=mesh.source), extent,
                                [lo.tolist(), hi.tolist()])
        self._meshes[index] = entry
        while len(self._meshes) > 2:
            self._meshes.popitem(last=False)
        return entry

    # -- chunks
    def run_chunk(self, chunk: int, on_sample: Callable[[int], None] | None = None) -> dict:
        specs = self.plan.chunk(chunk)
        keys = [s.sample_id for s in specs]
        writer = ChunkWriter(self.folder, chunk, compression=self.config["render"]["png_compression"],
                             fmt=self.config["writer"]["format"], threads=1)
        try:
            todo = [s for s in specs if s.sample_id not in writer.done]
            if on_sample and len(todo) < len(specs):
                on_sample(len(specs) - len(todo))
            if writer.resumed:
                writer.remove_stale_temporaries(keys, sorted({s.category for s in specs}))
            if todo:
                if self.config["mode"] == "controlnet":
                    self._controlnet_samples(specs, todo, writer, on_sample)
                else:
                    self._randomized_samples(todo, writer, on_sample)
            return writer.finish(keys)
        finally:
            writer.close()

    def _skip_all(self, spec: SampleSpec, reason: str, writer: ChunkWriter, broken: str | None = None) -> None:
        result = {"records": [], "skipped": {reason: len(self.levels)}}
        if broken is not None:
            result["broken_assets"] = {self.plan.assets[spec.asset].key: broken}
        writer.add(spec.sample_id, {}, result)

    def _render(self, loaded: _Loaded, look: _Look, vp, plain: bool, outputs):
        """One view per render call: a view's pixels then never depend on which other views share
        the call (the atlas tile it lands in), and single views are llvmpipe's faster path anyway."""
        mesh = loaded.plain if plain else loaded.mesh
        r = self.config["render"]
        return render_views(mesh, [vp], self.size, lights=[look.lights], outputs=outputs, shading=r["shading"],
                            base_color=1.0 if plain else 0.7,
                            backend=None if r["backend"] == "auto" else r["backend"])

    def _outputs(self, look: _Look, condition: bool = False) -> tuple[str, ...]:
        """The render outputs a sample needs (each one costs a read-back)."""
        save = self.config["render"]["save"]
        geometric = self.config["edges"]["method"] != "canny" and ("edges" in save or condition)
        depth = "depth" in save or look.appearance != "original" or geometric
        normal = "normal" in save or geometric
        return tuple(n for n, want in (("rgb", True), ("depth", depth), ("mask", True), ("normal", normal)) if want)

    def _prepare(self, spec: SampleSpec, writer: ChunkWriter, appearance: bool, write_skips: bool = True):
        """Load the asset, draw the look and the viewpoint, render: (look, vp, loaded, views), or
        None after writing the skip (broken asset, empty render)."""
        loaded = self.load(spec.asset)
        if isinstance(loaded, str):
            if write_skips:
                self._skip_all(spec, "broken_asset", writer, loaded)
            return None
        lk = self.look(spec, appearance)
        vp = self.viewpoint(spec, loaded, lk)
        views = self._render(loaded, lk, vp, lk.appearance != "original", self._outputs(lk, not appearance))
        if not views.mask[0].any():
            if write_skips:
                self._skip_all(spec, "empty_render", writer)
            return None
        return lk, vp, loaded, views

    def _randomized_samples(self, todo: list[SampleSpec], writer: ChunkWriter, on_sample) -> None:
        for s in todo:
            try:
                prepared = self._prepare(s, writer, appearance=True)
                if prepared is not None:
                    lk, vp, loaded, views = prepared
                    self._write_sample(s, lk, vp, loaded, views, 0, writer, generated=None)
            except GeometryError as exc:  # bad geometry or annotation of this one sample: skip and count
                self._skip_error(s, exc, writer)
            if on_sample:
                on_sample(1)

    def _skip_error(self, spec: SampleSpec, exc: Exception, writer: ChunkWriter) -> None:
        log.warning("sample %s of %s skipped: %s", spec.sample_id, self.plan.assets[spec.asset].key, exc)
        self._skip_all(spec, f"error_{type(exc).__name__}", writer)

    # -- one sample: compose, occlude, write
    def _colour(self, spec, lk, vp, loaded, views, b) -> np.ndarray:
        """The object's colour image (H, W, 3) float32 (black where empty)."""
        rgb = views.rgb[b]
        if lk.appearance == "original":
            return rgb
        mask = views.mask[b]
        cams = views.cameras
        K, R, t = (x[b].numpy() for x in (cams.K, cams.R, cams.t))
        pts = object_points(views.depth[b], mask, K, R, t)
        albedo = texture_albedo(sample_rng(spec.sample_id, "texture"), lk.appearance, pts, loaded.extent)
        out = np.zeros_like(rgb)
        out[mask] = rgb[mask] * albedo.astype(np.float32)
        return out

    def _write_sample(self, spec: SampleSpec, lk: _Look, vp, loaded: _Loaded, views, b: int, writer: ChunkWriter,
                      generated: dict | None) -> None:
        mask = views.mask[b]
        bbox = mask_bbox(mask)
        h, w = self.size
        pa = self.plan.assets[spec.asset]
        cat = spec.category
        sid = spec.sample_id
        save = self.config["render"]["save"]
        files: dict[str, np.ndarray] = {}
        base_extra: dict = {"sample_id": sid, "appearance": lk.appearance, "background": lk.background}
        if generated is None:
            colour = self._colour(spec, lk, vp, loaded, views, b)
            bg = make_background(sample_rng(sid, "background"), lk.background, (h, w),
                                 self.config["randomization"]["background_images"])
            if bg is None:
                image = np.where(mask[..., None], colour, 0.0)
            else:
                image = np.where(mask[..., None], colour, bg)
            edges_src = colour
        else:
            image = generated["image"]
            bg = 0  # a generated image is opaque
            edges_src = None
            base_extra.update({k: generated[k] for k in ("prompt", "negative_prompt", "generation_seed")})
            base_extra["appearance"] = "controlnet"
            del base_extra["background"]  # the model paints the whole image
        files[f"masks/{cat}/{sid}.png"] = mask
        base_extra["mask_path"] = f"masks/{cat}/{sid}.png"
        if "depth" in save:
            depth = views.depth[b]
            scale = max(float(depth.max()), 1e-12) / 65000.0
            files[f"depth/{cat}/{sid}.png"] = np.rint(depth / scale).astype(np.uint16)
            base_extra.update(depth_path=f"depth/{cat}/{sid}.png", depth_scale=scale)
        if "normal" in save:
            n = views.normal[b]
            files[f"normals/{cat}/{sid}.png"] = np.where(
                mask[..., None], np.rint((n * 0.5 + 0.5) * 255), 0).clip(0, 255).astype(np.uint8)
            base_extra["normal_path"] = f"normals/{cat}/{sid}.png"
        if "edges" in save:
            if generated is not None:
                edges = generated["condition"]
            else:
                e = self.config["edges"]
                edges = edge_map(e["method"], edges_src, None if views.depth is None else views.depth[b],
                                 None if views.normal is None else views.normal[b], mask,
                                 canny_low=e["canny_low"], canny_high=e["canny_high"],
                                 depth_threshold=e["depth_threshold"],
                                 normal_threshold=math.radians(e["normal_threshold"]))
            files[f"edges/{cat}/{sid}.png"] = edges[..., 0]
            base_extra["edges_path"] = f"edges/{cat}/{sid}.png"
        area = int(mask.sum())
        truncated = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        records, skipped = [], {}
        occ_cfg = self.config["occluders"]
        for level in self.levels:
            number, hidden = OCCLUSION_LEVELS[level]
            name = sid if level == "none" else f"{sid}_{level}"
            # sample_id names this image (one per level); viewpoint_id the view all its levels share
            extra = dict(base_extra, sample_id=name, viewpoint_id=sid, occlusion_level=level)
            if level == "none":
                img, visible, occ_mask = image, mask, None
            else:
                occ = make_occluders(sample_rng(sid, f"occluder-{level}"), mask, hidden, shapes=occ_cfg["shapes"],
                                     attempts=occ_cfg["attempts"])
                if occ is None:
                    skipped["occlusion_failed"] = skipped.get("occlusion_failed", 0) + 1
                    continue
                img = np.where(occ.mask[..., None], occ.rgb, image)
                visible = mask & ~occ.mask
                occ_mask = occ.mask
                files[f"masks/{cat}/{name}_visible.png"] = visible
                extra["visible_mask_path"] = f"masks/{cat}/{name}_visible.png"
            if bg is None:  # transparent: RGBA, alpha covers the object and the occluders
                alpha = mask if occ_mask is None else (mask | occ_mask)
                out = np.concatenate([_to_u8(img), alpha[..., None].astype(np.uint8) * 255], axis=2)
            else:
                out = _to_u8(img)
            files[f"images/{cat}/{name}.png"] = out
            obj = _annotation(cat, bbox, vp, pa, number, float(visible.sum()) / area, truncated, loaded.bounds,
                              spec.view_index, generated.get("prompt") if generated else None)
            records.append(_record(self.folder.root / f"images/{cat}/{name}.png", (h, w), obj, extra))
        from data3d import record_to_dict

        writer.add(sid, files, {"records": [record_to_dict(r, self.folder.root) for r in records],
                                "skipped": skipped})

    # -- controlnet mode
    def _controlnet_samples(self, specs: list[SampleSpec], todo: list[SampleSpec], writer: ChunkWriter,
                            on_sample) -> None:
        """Generation batches are fixed slices of the chunk (not of what is left to do), so that a
        resumed run feeds the model exactly the batches an uninterrupted one did."""
        stage = self._controlnet_stage()
        bs = int(self.config["controlnet"]["batch_size"])
        todo_ids = {s.sample_id for s in todo}
        e = self.config["edges"]
        for start in range(0, len(specs), bs):
            batch = specs[start:start + bs]
            if not any(s.sample_id in todo_ids for s in batch):
                continue
            ready = []  # (spec, look, vp, loaded, views, condition)
            for s in batch:
                try:
                    prepared = self._prepare(s, writer, appearance=False, write_skips=s.sample_id in todo_ids)
                except GeometryError as exc:
                    if s.sample_id in todo_ids:
                        self._skip_error(s, exc, writer)
                    prepared = None
                if prepared is None:
                    if s.sample_id in todo_ids and on_sample:
                        on_sample(1)
                    continue
                lk, vp, loaded, views = prepared
                cond = edge_map(e["method"], views.rgb[0], None if views.depth is None else views.depth[0],
                                None if views.normal is None else views.normal[0], views.mask[0],
                                canny_low=e["canny_low"], canny_high=e["canny_high"],
                                depth_threshold=e["depth_threshold"],
                                normal_threshold=math.radians(e["normal_threshold"]))
                ready.append((s, lk, vp, loaded, views, cond))
            if not ready:
                continue
            images, prompts = stage.generate(self, ready)
            for (s, lk, vp, loaded, views, cond), image, (prompt, negative) in zip(ready, images, prompts):
                if s.sample_id not in todo_ids:
                    continue
                ok, reason = stage.check(image, cond, views.mask[0])
                if not ok:
                    self._skip_all(s, f"check_{reason}", writer)
                else:
                    gen = {"image": image.astype(np.float32) / 255.0, "condition": cond, "prompt": prompt,
                           "negative_prompt": negative, "generation_seed": generation_seed(s.sample_id)}
                    try:
                        self._write_sample(s, lk, vp, loaded, views, 0, writer, generated=gen)
                    except GeometryError as exc:
                        self._skip_error(s, exc, writer)
                if on_sample:
                    on_sample(1)

    def _controlnet_stage(self):
        if self._controlnet is None:
            self._controlnet = _ControlNetStage(self.config)
        return self._controlnet


class _ControlNetStage:
    """G2's generator, prompt builder and cheap checks (datagen.controlnet / prompts / filtering)."""

    def __init__(self, config: DatagenConfig):
        import importlib

        try:
            controlnet = importlib.import_module("datagen.controlnet")
            prompts = importlib.import_module("datagen.prompts")
        except ImportError as exc:
            raise ImportError(f"mode: controlnet needs datagen.controlnet and datagen.prompts ({exc})") from exc
        block = dict(config["controlnet"])
        self.prompts = prompts.PromptBuilder(block.get("prompts", {}))
        self.generator = controlnet.ControlNetGenerator(block)
        self.checks = config["checks"]
        self._cheap_checks = None
        if self.checks["enabled"]:
            self._cheap_checks = importlib.import_module("datagen.filtering").cheap_checks

    def generate(self, worker: _Worker, ready: list) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
        prompts = []
        for s, *_ in ready:
            tags = tuple(worker.plan.assets[s.asset].asset.meta.get("tags", ()) or ())
            prompts.append(self.prompts.build(s.category, tags, sample_rng(s.sample_id, "prompt")))
        conds = [r[5] for r in ready]
        seeds = [generation_seed(r[0].sample_id) for r in ready]
        images = self.generator.generate(conds, [p for p, _ in prompts], [n for _, n in prompts], seeds)
        if len(images) != len(ready):
            raise RuntimeError(f"ControlNetGenerator returned {len(images)} images for {len(ready)} conditions")
        h, w = worker.size
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
        if self._cheap_checks is None:
            return True, ""
        ok, reason = self._cheap_checks(image, condition, mask, **self.checks["options"])
        return bool(ok), str(reason or "failed").replace(" ", "_")


def _to_u8(image: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] to uint8, rounded to nearest, saturated above (OpenCV: several times numpy's speed).
    Every image here is built from non-negative parts (convertScaleAbs would mirror negatives)."""
    return cv2.convertScaleAbs(np.asarray(image, dtype=np.float32), alpha=255.0)


def _annotation(category, bbox, vp, pa: PlannedAsset, level: int, visible: float, truncated: bool, bounds,
                view_index: int, caption: str | None):
    from data3d import ObjectAnnotation

    asset = pa.asset
    return ObjectAnnotation(
        category=category, bbox=bbox, viewpoint=vp, cad_index=asset.cad_index,
        cad_source=str(asset.meta.get("collection", asset.source)), cad_id=str(asset.id), occlusion=level,
        visible_fraction=min(1.0, max(0.0, visible)), truncated=truncated, caption=caption,
        extra={"asset": pa.key, "view_index": int(view_index), "mesh_bounds": json.dumps(bounds)})


def _record(path: Path, size, obj, extra: Mapping):
    from data3d import ImageRecord

    return ImageRecord(image_path=path, image_size=size, objects=(obj,), extra=dict(extra))


# ----------------------------------------------------------------------------------- workers
_WORKERS: dict[tuple[str, str], _Worker] = {}


def _worker(config: DatagenConfig | Mapping, root: str | os.PathLike) -> _Worker:
    cfg = config if isinstance(config, DatagenConfig) else load_config(config, defaults=False)
    key = (cfg.hash, os.path.abspath(root))
    if key not in _WORKERS:
        _WORKERS.clear()  # one run per process at a time
        _WORKERS[key] = _Worker(cfg, root)
    return _WORKERS[key]


def run_chunk(config: DatagenConfig | Mapping, root: str | os.PathLike, chunk: int,
              on_sample: Callable[[int], None] | None = None) -> dict:
    """Produce one chunk of the dataset in `root` (resuming it if it was started); its summary."""
    return _worker(config, root).run_chunk(chunk, on_sample)


def load_sample_mesh(config: DatagenConfig | Mapping, asset_key: str):
    """The mesh (in the object frame the records refer to) of the asset `asset_key` of a config's
    plan (a record's `objects[0].extra["asset"]`); None when it is broken."""
    cfg = config if isinstance(config, DatagenConfig) else load_config(config)
    plan = make_plan(cfg)
    for pa in plan.assets:
        if pa.key == asset_key:
            return plan.sources[pa.source_index].load(pa.asset)
    raise KeyError(f"asset {asset_key!r} is not in the plan")


def _limit_threads() -> None:
    """One thread per worker process: torch, OpenCV and llvmpipe (set before any GL context).

    Two torch processes with two threads each on two cores ran ~30x slower than with one."""
    os.environ.setdefault("LP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _pool_chunk(config_data: dict, root: str, chunk: int) -> dict:
    _limit_threads()
    return run_chunk(config_data, root, chunk)


def _ray_chunk(config_data: dict, root: str, chunk: int) -> dict:
    _limit_threads()
    return run_chunk(config_data, root, chunk)


@contextmanager
def _in_process_threads():
    """The in-process path also renders with one torch/OpenCV thread; restored afterwards."""
    import torch

    before_torch, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before_torch)
        cv2.setNumThreads(before_cv)


# ----------------------------------------------------------------------------------- entry point
def generate(config: DatagenConfig | Mapping | str | os.PathLike, out: str | os.PathLike, *,
             shard: tuple[int, int] | str | None = None, workers: int | None = None, ray: bool = False,
             ray_address: str | None = None, progress: bool = True, preview: bool = True) -> dict:
    """Generate (or resume) the dataset a config describes in folder `out`; returns the manifest.

    shard: (k, n) or "k/n": only the chunks c with c % n == k. workers: processes on this machine
    (default: config `workers`); ray: run the chunks as Ray tasks (on `ray_address`, or a local
    instance started here and stopped afterwards; an already initialised Ray is used as is).
    preview: write `out/preview.html` once the dataset is complete.
    Raises ConfigError when `out` holds a run made with another config.
    """
    cfg = config if isinstance(config, DatagenConfig) else load_config(config)
    shard = parse_shard(shard) if isinstance(shard, str) or shard is None else parse_shard(f"{shard[0]}/{shard[1]}")
    plan = make_plan(cfg)
    folder = DatasetFolder(out)
    folder.prepare(cfg, plan.info)
    chunks = plan.chunks_of_shard(shard)
    for c in chunks:  # a chunk finished just before a kill may still hold its per-sample files
        if folder.chunk_done(c) and folder.partial_dir(c).exists():
            import shutil

            shutil.rmtree(folder.partial_dir(c), ignore_errors=True)
    todo = [c for c in chunks if not folder.chunk_done(c)]
    n_workers = int(workers if workers is not None else cfg["workers"])
    total = sum(len(plan.chunk(c)) for c in todo)
    bar = _progress(total, progress, f"datagen {Path(out).name}")
    refresh = _ManifestRefresher(folder, cfg, plan.info)
    try:
        if not todo:
            pass
        elif ray:
            _run_ray(cfg, folder, plan, todo, ray_address, n_workers, bar, refresh)
        elif n_workers > 1 and len(todo) > 1:
            _run_pool(cfg, folder, plan, todo, n_workers, bar, refresh)
        else:
            with _in_process_threads():
                worker = _Worker(cfg, folder.root, plan)
                for c in todo:
                    worker.run_chunk(c, bar.update)
                    refresh()
    finally:
        bar.close()
    manifest = folder.write_manifest(cfg, plan.info)
    if manifest["complete"]:
        import shutil

        shutil.rmtree(folder.root / ".partial", ignore_errors=True)
        if preview:
            from .preview import write_preview

            write_preview(folder.root)
    return manifest


def summary_line(out: str | os.PathLike, manifest: Mapping) -> str:
    """One line about a run: images written, whether it is complete, the skips by reason."""
    skipped = ", ".join(f"{k}: {v}" for k, v in manifest["skipped"].items()) or "none"
    state = "complete" if manifest["complete"] else f"{manifest['chunks_done']}/{manifest['chunks']} chunks"
    return f"{out}: {manifest['images']} images ({state}); skipped: {skipped}"


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="sample", dynamic_ncols=True)


class _ManifestRefresher:
    """Rewrites manifest.json while a run goes on, at most every `interval` seconds (it reads every
    chunk summary, so doing it per chunk would cost O(chunks²) on long runs)."""

    def __init__(self, folder: DatasetFolder, cfg: DatagenConfig, info: dict, interval: float = 30.0):
        import time

        self.folder, self.cfg, self.info, self.interval = folder, cfg, info, interval
        self._clock = time.monotonic
        self._last = self._clock()

    def __call__(self) -> None:
        if self._clock() - self._last >= self.interval:
            self.folder.write_manifest(self.cfg, self.info)
            self._last = self._clock()


def _run_pool(cfg, folder, plan, todo, n_workers, bar, refresh) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold a GL context
    with ProcessPoolExecutor(max_workers=min(n_workers, len(todo)), mp_context=ctx) as pool:
        pending = {pool.submit(_pool_chunk, cfg.data, str(folder.root), c): c for c in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                c = pending.pop(fut)
                fut.result()
                bar.update(len(plan.chunk(c)))
            refresh()


def _run_ray(cfg, folder, plan, todo, address, n_workers, bar, refresh) -> None:
    from aware3d_utils import require

    ray = require("ray")
    started = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": max(1, n_workers), "include_dashboard": False}
        ray.init(log_to_driver=False, **kwargs)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(_ray_chunk)
        refs = {task.remote(cfg.data, str(folder.root), c): c for c in todo}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                c = refs.pop(ref)
                ray.get(ref)
                bar.update(len(plan.chunk(c)))
            refresh()
    finally:
        if started:
            ray.shutdown()


def chunk_names(plan: Plan) -> list[str]:
    """The record shard names of a plan (records-<name>.npz), in order."""
    return [chunk_name(c) for c in range(plan.n_chunks)]


# ----------------------------------------------------------------------------------- the demo
#: the procedural categories of `aware3d demo` and of the demo dataset (PASCAL3D+ names)
DEMO_CATEGORIES = ("car", "aeroplane", "chair", "bus", "sofa", "tvmonitor")


def demo_config(categories=DEMO_CATEGORIES, samples_per_category: int = 6, image_size: int = 160) -> DatagenConfig:
    """A small randomised dataset from the procedural library (no files, no weights needed)."""
    return load_config({
        "seed": 0,
        "image_size": image_size,
        "samples_per_category": samples_per_category,
        "occlusion": ["none", "L2"],
        "assets": [{"type": "procedural", "categories": list(categories), "count": 3}],
        "sampler": {"per_category": {"car": {"polar_mean": 60, "polar_sd": 20, "polar_range": [0, 195]},
                                     "bus": {"polar_mean": 60, "polar_sd": 20, "polar_range": [0, 195]}}},
        "writer": {"chunk_size": 16},
    })


def run_demo_dataset(out_folder: str | os.PathLike, progress: bool = False, categories=DEMO_CATEGORIES) -> Path:
    """Generate the demo dataset (`demo_config`) in `out_folder` (resuming a partial one) and write
    its HTML preview; returns the folder (the preview is `<folder>/preview.html`)."""
    out = Path(out_folder)
    generate(demo_config(categories), out, progress=progress)
    return out
