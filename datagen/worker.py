"""A worker: the per-process state that turns the samples of a chunk into files and records.

Per sample, one `geom3d.render_gl` call renders the view (the GL context and the uploaded mesh
stay from view to view of an asset; single views are llvmpipe's fastest path and make a view's
pixels independent of any batching), while the chunk writer's thread composes the previous
sample (texture, background, occluders, records) and encodes and writes its PNGs: every draw of a
sample comes from its own generators, so where that happens changes no byte. A bad asset, an empty
render or bad geometry of one sample is a counted skip.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from geom3d import GeometryError

from .compose import (
    LoadedAsset,
    Look,
    compose_image,
    encode_image,
    is_truncated,
    map_files,
    object_color,
    occlusion_variant,
    sample_record,
)
from .config import OCCLUSION_LEVELS, DatagenConfig
from .framing import fit_distance, margin_pixels
from .plan import Plan, SampleSpec, generation_seed, make_plan, sample_rng
from .randomize import APPEARANCES, BACKGROUNDS, choose, contact_shadow, ground_plane, make_background, random_lights
from .render import edge_map, mask_bbox, object_extent, render_views, viewpoint_for
from .samplers import make_sampler
from .writer import ChunkWriter, DatasetFolder

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    """Per-process state: the plan, samplers, a small mesh cache and the ControlNet stage."""

    def __init__(self, config: DatagenConfig, root: str | os.PathLike, plan: Plan | None = None):
        self.config = config
        self.plan = plan if plan is not None else make_plan(config)
        self.folder = DatasetFolder(root)
        self.size = config.image_size
        self.levels = list(config.occlusion)
        self._samplers: dict[str, object] = {}
        self._meshes: OrderedDict[int, LoadedAsset | str] = OrderedDict()
        self._controlnet = None

    # -- per-sample draws
    def sampler(self, category: str):
        if category not in self._samplers:
            self._samplers[category] = make_sampler(self.config["sampler"], category)
        return self._samplers[category]

    def viewpoint(self, spec: SampleSpec, loaded: LoadedAsset, look: Look):
        """The drawn viewpoint, moved back to the fit distance when the object would cross the image
        border there (unless this sample drew one of the `camera.truncation` share of kept distances)."""
        pa = self.plan.assets[spec.asset]
        cam = self.config.camera
        view = self.sampler(spec.category).sample(sample_rng(spec.sample_id, "view"), pa.key)
        vp = viewpoint_for(view, loaded.extent, self.size, math.radians(cam.fov), look.principal)
        if cam.truncation > 0 and sample_rng(spec.sample_id, "truncation").random() < cam.truncation:
            return vp
        fit = fit_distance(loaded.vertices, vp, self.size, margin_pixels(cam.margin, self.size))
        if math.isfinite(fit) and fit > vp.distance:
            vp = dataclasses.replace(vp, distance=fit)
        return vp

    def look(self, spec: SampleSpec, appearance: bool = True) -> Look:
        rng = sample_rng(spec.sample_id, "look")
        h, w = self.size
        jit = self.config.camera.principal_jitter
        dx, dy = (2 * rng.random(2) - 1) * jit
        principal = ((w - 1) / 2.0 + dx * w, (h - 1) / 2.0 + dy * h)
        r = self.config.randomization
        kind = choose(rng, r.appearance, APPEARANCES) if appearance else "original"
        background = choose(rng, r.background, BACKGROUNDS)
        lights = random_lights(rng, r.ambient, r.lights, r.light_intensity, r.light_tint)
        return Look(principal, kind, background, lights)

    # -- assets
    def load(self, index: int) -> LoadedAsset | str:
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
            entry: LoadedAsset | str = problem
        else:
            from geom3d import Mesh

            lo, hi = mesh.bounds()
            extent = object_extent(mesh)
            if not extent > 0:
                entry = "invalid_mesh: zero extent"
            else:
                entry = LoadedAsset(mesh, Mesh(mesh.vertices, mesh.faces, source=mesh.source), extent,
                                    [lo.tolist(), hi.tolist()], mesh.vertices.double().numpy())
        self._meshes[index] = entry
        while len(self._meshes) > 2:
            self._meshes.popitem(last=False)
        return entry

    # -- chunks
    def run_chunk(self, chunk: int, on_sample: Callable[[int], None] | None = None) -> dict:
        specs = self.plan.chunk(chunk)
        keys = [s.sample_id for s in specs]
        writer = ChunkWriter(self.folder, chunk, compression=self.config.render.png_compression,
                             fmt=self.config.writer.format, threads=1)
        try:
            todo = [s for s in specs if s.sample_id not in writer.done]
            if on_sample and len(todo) < len(specs):
                on_sample(len(specs) - len(todo))
            if writer.resumed:
                writer.remove_stale_temporaries(keys, sorted({s.category for s in specs}))
            if todo:
                if self.config.mode == "controlnet":
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

    def _skip_error(self, spec: SampleSpec, exc: Exception, writer: ChunkWriter) -> None:
        writer.add(spec.sample_id, {}, self._error_result(spec, exc))

    def _error_result(self, spec: SampleSpec, exc: Exception) -> dict:
        log.warning("sample %s of %s skipped: %s", spec.sample_id, self.plan.assets[spec.asset].key, exc)
        return {"records": [], "skipped": {f"error_{type(exc).__name__}": len(self.levels)}}

    def _render(self, loaded: LoadedAsset, look: Look, vp, plain: bool, outputs):
        """One view per render call: a view's pixels then never depend on which other views share
        the call (the atlas tile it lands in), and single views are llvmpipe's faster path anyway."""
        mesh = loaded.plain if plain else loaded.mesh
        r = self.config.render
        return render_views(mesh, [vp], self.size, lights=[look.lights], outputs=outputs, shading=r.shading,
                            base_color=1.0 if plain else 0.7, backend=None if r.backend == "auto" else r.backend)

    def _outputs(self, look: Look, condition: bool = False) -> tuple[str, ...]:
        """The render outputs a sample needs (each one costs a read-back)."""
        save = self.config.render.save
        geometric = self.config.edges.method != "canny" and ("edges" in save or condition)
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

    def _edges(self, rgb, views, b: int) -> np.ndarray:
        e = self.config.edges
        return edge_map(e.method, rgb, None if views.depth is None else views.depth[b],
                        None if views.normal is None else views.normal[b], views.mask[b],
                        canny_low=e.canny_low, canny_high=e.canny_high, depth_threshold=e.depth_threshold,
                        normal_threshold=math.radians(e.normal_threshold))

    def _randomized_samples(self, todo: list[SampleSpec], writer: ChunkWriter, on_sample) -> None:
        for s in todo:
            try:
                prepared = self._prepare(s, writer, appearance=True)
                if prepared is not None:  # composed, encoded and written on the writer's thread
                    lk, vp, loaded, views = prepared
                    writer.add_later(s.sample_id, functools.partial(self._sample_outcome, s, lk, vp, loaded, views, 0,
                                                                    None))
            except GeometryError as exc:  # bad geometry or annotation of this one sample: skip and count
                self._skip_error(s, exc, writer)
            if on_sample:
                on_sample(1)

    # -- one sample: compose, occlude, write
    def _write_sample(self, spec: SampleSpec, lk: Look, vp, loaded: LoadedAsset, views, b: int,
                      writer: ChunkWriter, generated: dict | None) -> None:
        writer.add(spec.sample_id, *self._sample_files(spec, lk, vp, loaded, views, b, generated))

    def _on_ground(self, bg, views, b: int, loaded: LoadedAsset, sid: str):
        """The background with what the object stands on, each drawn with its probability from the
        sample's own stream, so the other draws and every image without it are unchanged by the
        option: a road in the camera's perspective (`randomization.ground`, stream "ground"), then
        the object's contact shadow on it (`randomization.contact_shadow`, stream "shadow")."""
        rz = self.config.randomization
        if bg is None:  # transparent: nothing to stand on
            return bg

        def shadow(bg, K, R, t, bounds, rng):
            return contact_shadow(bg, K, R, t, bounds, darkness=rng.uniform(*rz.shadow_darkness))

        for stage, prob, draw in (("ground", rz.ground, ground_plane), ("shadow", rz.contact_shadow, shadow)):
            if prob <= 0:
                continue
            rng = sample_rng(sid, stage)
            if rng.random() >= prob:
                continue
            K, R, t = (x[b].numpy() for x in (views.cameras.K, views.cameras.R, views.cameras.t))
            bg = draw(bg, K, R, t, loaded.bounds, rng)
        return bg

    def _sample_outcome(self, spec: SampleSpec, lk: Look, vp, loaded: LoadedAsset, views, b: int,
                        generated: dict | None) -> tuple[dict, dict]:
        """(files, result) of one sample, or its counted skip when its geometry is bad (for the
        writer's thread: a pure function of its arguments and of the sample's own random draws)."""
        try:
            return self._sample_files(spec, lk, vp, loaded, views, b, generated)
        except GeometryError as exc:
            return {}, self._error_result(spec, exc)

    def _sample_files(self, spec: SampleSpec, lk: Look, vp, loaded: LoadedAsset, views, b: int,
                      generated: dict | None) -> tuple[dict, dict]:
        """The files (relative path -> array) and the result (records, skips) of one sample."""
        mask = views.mask[b]
        cat, sid = spec.category, spec.sample_id
        pa = self.plan.assets[spec.asset]
        save = self.config.render.save
        base_extra: dict = {"sample_id": sid, "appearance": lk.appearance, "background": lk.background}
        broken: dict[str, str] = {}
        if generated is None:
            color = object_color(views, b, lk, loaded.extent, sample_rng(sid, "texture"))
            unreadable: list[str] = []
            bg = make_background(sample_rng(sid, "background"), lk.background, self.size,
                                 self.config.randomization.background_images, unreadable=unreadable)
            broken.update({f"background:{p}": "unreadable_image" for p in unreadable})
            bg = self._on_ground(bg, views, b, loaded, sid)
            image = compose_image(color, mask, bg)
            edges = self._edges(color, views, b) if "edges" in save else None
            transparent = bg is None
        else:
            image = generated["image"]
            edges = generated["condition"]
            transparent = False  # a generated image is opaque: the model paints the whole image
            base_extra.update({k: generated[k] for k in ("prompt", "negative_prompt", "generation_seed")})
            base_extra["appearance"] = "controlnet"
            del base_extra["background"]
        files, paths = map_files(cat, sid, views, b, save, edges)
        base_extra.update(paths)
        bbox, area, truncated = mask_bbox(mask), int(mask.sum()), is_truncated(mask)
        records, skipped = [], {}
        occ = self.config.occluders
        for level in self.levels:
            number, hidden = OCCLUSION_LEVELS[level]
            name = sid if level == "none" else f"{sid}_{level}"
            variant = occlusion_variant(image, mask, level, hidden, sample_rng(sid, f"occluder-{level}"),
                                        occ.shapes, occ.attempts)
            if variant is None:
                skipped["occlusion_failed"] = skipped.get("occlusion_failed", 0) + 1
                continue
            # sample_id names this image (one per level); viewpoint_id the view all its levels share
            extra = dict(base_extra, sample_id=name, viewpoint_id=sid, occlusion_level=level)
            if variant.occluders is not None:
                files[f"masks/{cat}/{name}_visible.png"] = variant.visible
                extra["visible_mask_path"] = f"masks/{cat}/{name}_visible.png"
            files[f"images/{cat}/{name}.png"] = encode_image(variant, mask, transparent)
            records.append(sample_record(
                self.folder.root / f"images/{cat}/{name}.png", self.size, category=cat, bbox=bbox, viewpoint=vp,
                asset=pa.asset, asset_key=pa.key, level=number, visible=float(variant.visible.sum()) / area,
                truncated=truncated, bounds=loaded.bounds, view_index=spec.view_index,
                caption=generated.get("prompt") if generated else None, extra=extra))
        from data3d import record_to_dict

        result = {"records": [record_to_dict(r, self.folder.root) for r in records], "skipped": skipped}
        if broken:
            result["broken_assets"] = broken
        return files, result

    # -- controlnet mode
    def _controlnet_samples(self, specs: list[SampleSpec], todo: list[SampleSpec], writer: ChunkWriter,
                            on_sample) -> None:
        """Generation batches are fixed slices of the chunk (not of what is left to do), so that a
        resumed run feeds the model exactly the batches an uninterrupted one did."""
        from .controlnet_stage import ControlNetStage

        if self._controlnet is None:
            self._controlnet = ControlNetStage(self.config)
        stage = self._controlnet
        bs = self.config.controlnet.batch_size
        todo_ids = {s.sample_id for s in todo}
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
                ready.append((s, lk, vp, loaded, views, self._edges(views.rgb[0], views, 0)))
            if not ready:
                continue
            tags = [tuple(self.plan.assets[r[0].asset].asset.meta.get("tags", ()) or ()) for r in ready]
            images, prompts = stage.generate(ready, tags, self.size)
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
