"""Viewpoint samplers: where the camera goes for each sample.

Three strategies, each drawing from a `numpy.random.Generator` that the pipeline derives from
(seed, sample id) alone, so a sample's viewpoint never depends on order, shards or resumes:

- `DSTSampler`: 3D-DST's sampling in Blender spherical terms. The Blender azimuth θ is uniform over
  360° or over the front arc [−195°, 15°]; the polar angle φ (0 = above) follows a normal
  truncated to an interval, or is uniform in it: 3D-DST's five presets (`DST_PRESETS`, its
  `--pose_sampling` 1-5), chosen per category by default (`CATEGORY_PRESETS`); per-asset canonical
  offsets move (θ, φ) by (+azimuth, −elevation) and a φ past a pole wraps over it, as 3D-DST does.
  `geom3d.blender_to_viewpoint` turns (θ, φ) into the PASCAL3D+ azimuth and elevation.
- `UniformSphereSampler`: camera directions uniform on the sphere (optionally a band of elevations).
- `MatchDatasetSampler`: resample the viewpoints of given data3d records (a Gaussian kernel
  density estimate: pick a record's viewpoint, add jitter of `bandwidth`).

Every strategy also draws the camera distance (in units of the object's longest side: 3D-DST's
fixed distance or its truncated-normal jitter) and an optional in-plane rotation.
Angles are radians in the code and degrees in the config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from geom3d import wrap_angle

__all__ = [
    "ViewSample",
    "ViewSampler",
    "DSTSampler",
    "UniformSphereSampler",
    "MatchDatasetSampler",
    "make_sampler",
    "sampler_block",
    "truncated_normal",
    "FRONT_ARC",
    "DST_PRESETS",
    "CATEGORY_PRESETS",
    "category_preset",
    "resolve_preset",
]

TWO_PI = 2.0 * math.pi
#: 3D-DST's viewpoint presets (`--pose_sampling` of its Blender script), degrees: Blender azimuth
#: range and the distribution of the polar angle φ
DST_PRESETS: dict[int, dict] = {
    1: {"azimuth": "full", "polar": "normal", "polar_mean": 90.0, "polar_sd": 30.0, "polar_range": [0.0, 180.0]},
    2: {"azimuth": "front", "polar": "normal", "polar_mean": 90.0, "polar_sd": 30.0, "polar_range": [0.0, 180.0]},
    3: {"azimuth": "full", "polar": "normal", "polar_mean": 60.0, "polar_sd": 20.0, "polar_range": [0.0, 195.0]},
    4: {"azimuth": "front", "polar": "normal", "polar_mean": 60.0, "polar_sd": 20.0, "polar_range": [0.0, 195.0]},
    5: {"azimuth": "full", "polar": "uniform", "polar_mean": 90.0, "polar_sd": 30.0, "polar_range": [0.0, 180.0]},
}
#: the preset `preset: auto` gives a category (canonical procedural names; aliases resolve to them):
#: ground-standing objects are photographed from above or level (3), monitors from the front and
#: above (4); aeroplanes are seen from everywhere (1), as is any category not listed
CATEGORY_PRESETS: dict[str, int] = {
    **dict.fromkeys(("car", "bus", "train", "motorbike", "bicycle", "boat", "chair", "sofa", "table", "bottle",
                     "mug"), 3),
    "monitor": 4,
    "aeroplane": 1,
}
DEFAULT_PRESET = 1
#: 3D-DST's "front" azimuth range in Blender θ (degrees): the camera in front of the object (θ = −90°)
#: and 105° either side of it
FRONT_ARC = (-195.0, 15.0)


@dataclass(frozen=True)
class ViewSample:
    """One drawn viewpoint (radians): PASCAL3D+ azimuth in [0, 2π), elevation in [−π/2, π/2],
    in-plane theta, and the camera distance in units of the object's longest bounding-box side."""

    azimuth: float
    elevation: float
    theta: float
    distance: float


def truncated_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    """One draw of N(mean, sd²) truncated to [lo, hi], by inverting the CDF (one uniform draw).

    Exactly the distribution of scipy.stats.truncnorm(a=(lo−mean)/sd, b=(hi−mean)/sd, mean, sd).
    """
    if not sd > 0:
        raise ValueError(f"truncated_normal: sd must be > 0, got {sd}")
    if not lo <= hi:
        raise ValueError(f"truncated_normal: need lo <= hi, got [{lo}, {hi}]")
    from scipy.special import ndtr, ndtri  # here: scipy.special takes ~0.2-0.4 s to import

    a, b = (lo - mean) / sd, (hi - mean) / sd
    u = rng.random()
    # sample on the side with more tail mass so that the CDF differences keep their precision
    if a > 0:
        pa, pb = ndtr(-a), ndtr(-b)
        x = -ndtri(pa - u * (pa - pb))
    else:
        pa, pb = ndtr(a), ndtr(b)
        x = ndtri(pa + u * (pb - pa))
    return float(min(max(mean + sd * x, lo), hi))



class ViewSampler:
    """Base class: `sample(rng, asset_id)` -> ViewSample. Subclasses draw azimuth and elevation;
    distance and in-plane rotation are shared."""

    def __init__(self, *, distance: float = 1.5, distance_jitter: bool = True, distance_sd: float = 0.5,
                 distance_range: Sequence[float] = (-0.5, 1.5), inplane_sd: float = 0.0,
                 inplane_max: float = math.pi, offsets: Mapping[str, Mapping[str, float]] | None = None):
        self.distance = float(distance)
        self.distance_jitter = bool(distance_jitter)
        self.distance_sd = float(distance_sd)
        self.distance_range = (self.distance + float(distance_range[0]), self.distance + float(distance_range[1]))
        self.inplane_sd = float(inplane_sd)
        self.inplane_max = float(inplane_max)
        # asset id -> (azimuth, elevation) offsets in radians
        self.offsets = {str(k): (float(v.get("azimuth", 0.0)), float(v.get("elevation", 0.0)))
                        for k, v in (offsets or {}).items()}

    def _distance(self, rng: np.random.Generator) -> float:
        if not self.distance_jitter:
            return self.distance
        lo, hi = self.distance_range
        return truncated_normal(rng, self.distance, self.distance_sd, lo, hi)

    def _inplane(self, rng: np.random.Generator) -> float:
        if self.inplane_sd <= 0:
            return 0.0
        return truncated_normal(rng, 0.0, self.inplane_sd, -self.inplane_max, self.inplane_max)

    def _angles(self, rng: np.random.Generator, asset_id: str | None) -> tuple[float, float, float | None]:
        """(azimuth, elevation, theta or None) in radians; None means "draw the in-plane angle"."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, asset_id: str | None = None) -> ViewSample:
        """Draw one viewpoint. The draws happen in a fixed order: angles, distance, in-plane."""
        azimuth, elevation, theta = self._angles(rng, asset_id)
        distance = self._distance(rng)
        if theta is None:
            theta = self._inplane(rng)
        return ViewSample(float(azimuth) % TWO_PI, float(elevation), wrap_angle(float(theta)), float(distance))


class DSTSampler(ViewSampler):
    """3D-DST's viewpoint sampling (see the module docstring); angles in radians.

    azimuth: "full" (θ uniform in [0, 2π)) or "front" (θ uniform over `FRONT_ARC`).
    polar: "normal" (polar_mean, polar_sd: a normal truncated to polar_range) or "uniform" (φ
    uniform in polar_range, 3D-DST's preset 5).
    """

    def __init__(self, *, azimuth: str = "full", polar: str = "normal", polar_mean: float = math.pi / 2,
                 polar_sd: float = math.pi / 6, polar_range: Sequence[float] = (0.0, math.pi), **common):
        super().__init__(**common)
        if azimuth not in ("full", "front"):
            raise ValueError(f"DSTSampler: azimuth must be 'full' or 'front', got {azimuth!r}")
        if polar not in ("normal", "uniform"):
            raise ValueError(f"DSTSampler: polar must be 'normal' or 'uniform', got {polar!r}")
        self.polar = polar
        self.azimuth_range = (0.0, TWO_PI) if azimuth == "full" else tuple(math.radians(v) for v in FRONT_ARC)
        self.polar_mean, self.polar_sd = float(polar_mean), float(polar_sd)
        self.polar_range = (float(polar_range[0]), float(polar_range[1]))

    def blender_angles(self, rng: np.random.Generator, asset_id: str | None = None) -> tuple[float, float]:
        """3D-DST's (θ, φ) after the asset's offsets and the pole wrap: θ in [0, 2π), φ in [0, π]."""
        lo, hi = self.azimuth_range
        theta = lo + (hi - lo) * rng.random()
        if self.polar == "uniform":
            phi = self.polar_range[0] + (self.polar_range[1] - self.polar_range[0]) * rng.random()
        else:
            phi = truncated_normal(rng, self.polar_mean, self.polar_sd, *self.polar_range)
        off_az, off_el = self.offsets.get(str(asset_id), (0.0, 0.0))
        theta, phi = theta + off_az, phi - off_el
        phi = phi % TWO_PI
        if phi > math.pi:  # past the pole: the same camera centre seen from the other side
            theta, phi = theta + math.pi, TWO_PI - phi
        return theta % TWO_PI, min(max(phi, 0.0), math.pi)

    def _angles(self, rng, asset_id):
        theta_b, phi = self.blender_angles(rng, asset_id)
        # geom3d.blender_to_viewpoint's formula (a = θ + π/2, e = π/2 − φ), in floats: it runs per sample
        return (theta_b + math.pi / 2) % TWO_PI, math.pi / 2 - phi, None


class UniformSphereSampler(ViewSampler):
    """Camera directions uniform on the sphere, restricted to elevations in `elevation_range`
    (radians): azimuth uniform, sin(elevation) uniform. Offsets shift azimuth and elevation."""

    def __init__(self, *, elevation_range: Sequence[float] = (-math.pi / 2, math.pi / 2), **common):
        super().__init__(**common)
        self.elevation_range = (float(elevation_range[0]), float(elevation_range[1]))

    def _angles(self, rng, asset_id):
        azimuth = TWO_PI * rng.random()
        s0, s1 = (math.sin(e) for e in self.elevation_range)
        elevation = math.asin(min(1.0, max(-1.0, s0 + (s1 - s0) * rng.random())))
        off_az, off_el = self.offsets.get(str(asset_id), (0.0, 0.0))
        azimuth, elevation = _reflect_elevation(azimuth + off_az, elevation + off_el)
        return azimuth, elevation, None


def _reflect_elevation(azimuth: float, elevation: float) -> tuple[float, float]:
    """Bring an elevation past a pole back into [−π/2, π/2] (the same camera centre)."""
    e = wrap_angle(elevation)
    if e > math.pi / 2:
        e, azimuth = math.pi - e, azimuth + math.pi
    elif e < -math.pi / 2:
        e, azimuth = -math.pi - e, azimuth + math.pi
    return azimuth % TWO_PI, e


@lru_cache(maxsize=4)
def _record_viewpoints(path: str) -> dict[str, np.ndarray]:
    """category -> (N, 3) [azimuth, elevation, theta] of every object in the records at `path`."""
    from data3d import load_records  # data3d is optional for the other strategies

    out: dict[str, list] = {}
    for record in load_records(path):
        for obj in record.objects:
            vp = obj.viewpoint.wrapped()
            out.setdefault(obj.category, []).append((vp.azimuth, vp.elevation, vp.theta))
    if not out:
        raise ValueError(f"{path}: no annotated objects to match (sampler.records)")
    return {k: np.asarray(v, dtype=np.float64) for k, v in sorted(out.items())}


class MatchDatasetSampler(ViewSampler):
    """Sample from the viewpoint distribution of data3d records: a Gaussian kernel density estimate.

    Pick one object's (azimuth, elevation, theta) uniformly among the records of the category
    (all records when the category has none), then add independent N(0, bandwidth²) jitter to
    each angle (an elevation past a pole is reflected back). The distance comes from the shared
    distance settings, because record distances are in their own CAD units.
    `viewpoints`: (N, 3) radians, or use `from_records(path, category)`.
    """

    def __init__(self, viewpoints: np.ndarray, *, bandwidth: float = math.radians(5.0), **common):
        super().__init__(**common)
        self.viewpoints = np.asarray(viewpoints, dtype=np.float64).reshape(-1, 3)
        if len(self.viewpoints) == 0:
            raise ValueError("MatchDatasetSampler: no viewpoints to match")
        self.bandwidth = float(bandwidth)

    @classmethod
    def from_records(cls, path: str | Path, category: str | None = None, **kwargs) -> MatchDatasetSampler:
        table = _record_viewpoints(str(Path(path).resolve()))
        if category is not None and category in table:
            vps = table[category]
        else:
            vps = np.concatenate(list(table.values()))
        return cls(vps, **kwargs)

    def _angles(self, rng, asset_id):
        a, e, th = self.viewpoints[int(rng.integers(len(self.viewpoints)))]
        if self.bandwidth > 0:
            da, de, dth = rng.normal(0.0, self.bandwidth, 3)
            a, e, th = a + da, e + de, th + dth
        off_az, off_el = self.offsets.get(str(asset_id), (0.0, 0.0))
        a, e = _reflect_elevation(a + off_az, e + off_el)
        return a, e, th


def sampler_block(block: Mapping, category: str | None) -> dict:
    """The `sampler` config block with the category's `per_category` overrides applied."""
    merged = {k: v for k, v in block.items() if k != "per_category"}
    if category is not None:
        merged.update(block.get("per_category", {}).get(category, {}))
    return merged


def category_preset(category: str | None) -> int:
    """The 3D-DST preset `preset: auto` gives `category` (CATEGORY_PRESETS, through the procedural aliases)."""
    if category is None:
        return DEFAULT_PRESET
    from data3d.procedural import ALIASES

    name = str(category).lower()
    return CATEGORY_PRESETS.get(ALIASES.get(name, name), DEFAULT_PRESET)


def resolve_preset(block: Mapping, category: str | None) -> dict:
    """A sampler block with its null dst keys (azimuth, polar, polar_*) filled from its preset."""
    preset = block.get("preset", "auto")
    values = DST_PRESETS[category_preset(category) if preset == "auto" else int(preset)]
    return {**block, **{k: v for k, v in values.items() if block.get(k) is None}}


def make_sampler(block: Mapping, category: str | None = None) -> ViewSampler:
    """The sampler a (validated) `sampler` config block describes (degrees there, radians here)."""
    b = resolve_preset(sampler_block(block, category), category)
    rad = math.radians
    common = dict(distance=b["distance"], distance_jitter=b["distance_jitter"], distance_sd=b["distance_sd"],
                  distance_range=b["distance_range"], inplane_sd=rad(b["inplane_sd"]),
                  inplane_max=rad(b["inplane_max"]),
                  offsets={k: {n: rad(x) for n, x in v.items()} for k, v in b.get("offsets", {}).items()})
    strategy = b["strategy"]
    if strategy == "dst":
        return DSTSampler(azimuth=b["azimuth"], polar=b["polar"], polar_mean=rad(b["polar_mean"]),
                          polar_sd=rad(b["polar_sd"]),
                          polar_range=[rad(x) for x in b["polar_range"]], **common)
    if strategy == "uniform_sphere":
        return UniformSphereSampler(elevation_range=[rad(x) for x in b["elevation_range"]], **common)
    if strategy == "match_dataset":
        return MatchDatasetSampler.from_records(b["records"], category, bandwidth=rad(b["bandwidth"]), **common)
    raise ValueError(f"sampler.strategy: unknown strategy {strategy!r}")
