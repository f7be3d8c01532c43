"""datagen: 3D-DST, from CAD models to a 3D-annotated image dataset.

Render CAD models (data3d asset sources: procedural, OFF CAD folders, ShapeNet, Objaverse, mesh
folders) at sampled viewpoints, make edge maps, paint images (domain randomisation, or a ControlNet
following the edges), and write data3d records whose cameras are exact. See docs/datagen.md.

- `config`: `load_config(yaml or mapping)` over `default_config.yaml` (every key documented),
  validated (errors name the key); the config hash guards resumes.
- `samplers`: 3D-DST's viewpoint sampling (Blender θ/φ, truncated normals, front arc, per-asset
  offsets), uniform on the sphere, and matching the viewpoints of data3d records.
- `render`: exact cameras for drawn views, renders through `geom3d.render_gl`, Canny and
  geometry edge maps.
- `randomize`: colours and 3D procedural textures, backgrounds, lights, and occluders at the
  OccludedPASCAL3D+ levels with exact visible masks.
- `writer`: sample ids, deterministic PNGs, atomic per-sample writes, record shards per chunk,
  manifest.json, resume after a kill; `lock`: one run per output folder (or per shard).
- `plan`: the samples of a config, their chunks and the seeds of their draws (`make_plan`).
- `framing`: the distance at which the whole object is in the image (truncation as a parameter).
- `compose`: one sample's image, files, occlusion levels and records; `worker`: a chunk's samples.
- `pipeline`: `generate(config, out, shard=, workers=, ray=)` (plain loop, worker processes or
  Ray tasks: the same bytes); `demo`: `run_demo_dataset(out)`.
- `preview`: `write_preview(folder)`, an HTML grid with each record's cuboid and axes drawn.
- ControlNet mode and filtering: `prompts` (PromptBuilder), `controlnet` (ControlNetGenerator),
  `filtering` (cheap checks, K-fold consistency filter); see docs/datagen-generation.md.
- `novel_view`: an object image + relative poses -> images (Zero-1-to-3 from diffusers parts, exact
  and degraded render synthesizers); one module each: `synthesizer` (the interface and the relative
  pose convention), `zero123`, `render_synthesizers`; see docs/pose.md.

Command line: `aware3d datagen --config <yaml> --out <folder> [--shard k/n] [--ray]`.
"""

from aware3d_utils import lazy_exports

from .config import ConfigError, DatagenConfig, DatagenSchema, default_config, load_config

# the rest load on first use (`aware3d datagen --help` imports no torch)
__getattr__, _lazy = lazy_exports(__name__, {
    "controlnet": ("ControlNetGenerator", "build_tiny_pipeline"),
    "demo": ("DEMO_CATEGORIES", "demo_config", "run_demo_dataset"),
    "filtering": ("cheap_checks", "filter_dataset", "kfold_filter"),
    "novel_view": ("DegradedRenderSynthesizer", "NovelViewSynthesizer", "RenderSynthesizer", "SourceView",
                   "Zero123Synthesizer", "build_tiny_zero123", "make_synthesizer"),
    "pipeline": ("generate", "run_chunk"),
    "plan": ("make_plan",),
    "preview": ("write_preview",),
    "prompts": ("PromptBuilder",),
    "samplers": ("DSTSampler", "MatchDatasetSampler", "UniformSphereSampler", "ViewSample", "make_sampler"),
    "writer": ("sample_id",)})
__all__ = ["ConfigError", "DatagenConfig", "DatagenSchema", "default_config", "load_config", *_lazy]
