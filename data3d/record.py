"""The one annotation record that crosses package borders: an image and its 3D-annotated objects.

Conventions (docs/design.md):
- Pixel coordinates have integer pixel centres: the pixel in row i, column j is centred at
  (u, v) = (j, i), so an image of size (H, W) spans [−0.5, W − 0.5] × [−0.5, H − 0.5].
  `bbox` = (x1, y1, x2, y2) in these coordinates (MATLAB's 1-based values are converted by the
  loaders, see docs/data3d.md).
- The viewpoint is PASCAL3D+'s: azimuth, elevation, in-plane theta in radians, distance, focal,
  viewport and the principal point (px, py) — the pixel where the object origin projects. Its
  `geom3d.Cameras` is `geom3d.viewpoint_to_cameras` (fx = fy = viewport · focal). Positive theta
  turns the projected object counter-clockwise on screen.

Records are small frozen dataclasses; construction validates every field and raises
`AnnotationError` naming the file (the annotation file, else the image) and the field.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from geom3d import (
    Cameras,
    GeometryError,
    parse_image_size,
    resize_coordinate,
    viewpoint_to_cameras,
    viewpoint_to_rotation,
    wrap_angle,
    wrap_azimuth,
)

from .categories import is_known_category
from .errors import AnnotationError

__all__ = ["Viewpoint", "ObjectAnnotation", "ImageRecord", "RecordList", "VIEWPOINT_KEYS", "BBOX_SLACK",
           "mesh_ref_for", "parse_mesh_ref"]

VIEWPOINT_KEYS = ("azimuth", "elevation", "theta", "distance", "focal", "viewport", "px", "py")
TWO_PI = 2.0 * math.pi
# A bbox may reach this far (pixels) outside the image rectangle before it counts as "outside":
# annotation tools round box corners to whole pixels.
BBOX_SLACK = 1.0


def _as_float(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"must be a number, got {value!r}", field=name) from None
    if not math.isfinite(out):
        raise AnnotationError(f"is {out} (NaN or infinite)", field=name)
    return out


@dataclass(frozen=True, eq=True)
class Viewpoint(Mapping):
    """A PASCAL3D+ viewpoint; also a read-only mapping over `VIEWPOINT_KEYS`.

    azimuth, elevation, theta in radians; distance in object units (> 0); focal and viewport
    with fx = fy = focal · viewport pixels; (px, py) the principal point in pixels (integer
    pixel centres). Values are kept exactly as given (use `wrapped()` for canonical ranges).
    """

    azimuth: float
    elevation: float
    theta: float
    distance: float
    focal: float
    viewport: float
    px: float
    py: float

    def __post_init__(self) -> None:
        for key in VIEWPOINT_KEYS:
            object.__setattr__(self, key, _as_float(getattr(self, key), f"viewpoint.{key}"))
        for key in ("distance", "focal", "viewport"):
            if getattr(self, key) <= 0:
                raise AnnotationError(f"must be > 0, got {getattr(self, key):g}", field=f"viewpoint.{key}")

    # -- mapping interface (so geom3d.viewpoint_from_mapping and dict(v) work)
    def __getitem__(self, key: str) -> float:
        if key not in VIEWPOINT_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(VIEWPOINT_KEYS)

    def __len__(self) -> int:
        return len(VIEWPOINT_KEYS)

    @classmethod
    def from_mapping(cls, m: Mapping, image_size=None) -> Viewpoint:
        """From any mapping with the viewpoint keys (extra keys ignored). focal defaults to 1,
        viewport to 3000 and (px, py) to the image centre ((W − 1)/2, (H − 1)/2) when image_size
        is given."""
        if isinstance(m, Viewpoint):
            return m
        values = {k: m[k] for k in VIEWPOINT_KEYS if k in m}
        for key in ("azimuth", "elevation", "theta", "distance"):
            if key not in values:
                raise AnnotationError("is missing", field=f"viewpoint.{key}")
        values.setdefault("focal", 1.0)
        values.setdefault("viewport", 3000.0)
        if "px" not in values or "py" not in values:
            if image_size is None:
                raise AnnotationError("is missing (and no image size to default it)", field="viewpoint.px")
            h, w = image_size
            values.setdefault("px", (w - 1) / 2.0)
            values.setdefault("py", (h - 1) / 2.0)
        return cls(**{k: _plain(v) for k, v in values.items()})

    @classmethod
    def from_cameras(cls, cameras: Cameras, viewport: float = 3000.0) -> Viewpoint:
        """The viewpoint of an unbatched `Cameras` looking at the object origin (square pixels, no
        skew, t = (0, 0, d)); GeometryError otherwise (see geom3d.cameras_to_viewpoint)."""
        from geom3d import cameras_to_viewpoint

        if cameras.batch_shape:
            raise AnnotationError(f"needs one camera, got batch shape {tuple(cameras.batch_shape)}", field="viewpoint")
        v = cameras_to_viewpoint(cameras, viewport=viewport)
        return cls(**{k: float(v[k]) for k in VIEWPOINT_KEYS})

    @property
    def focal_pixels(self) -> float:
        """fx = fy = focal · viewport."""
        return self.focal * self.viewport

    def wrapped(self) -> Viewpoint:
        """Azimuth in [0, 2π), elevation and theta in (−π, π]; the same rotation."""
        return replace(self, azimuth=wrap_azimuth(self.azimuth), elevation=wrap_angle(self.elevation),
                       theta=wrap_angle(self.theta))

    def mirrored(self, width: int) -> Viewpoint:
        """The viewpoint of the horizontally flipped image (u -> W − 1 − u).

        The flipped image shows the object mirrored in its x = 0 plane (for left-right symmetric
        categories, the object itself) from azimuth −a, elevation e, theta −θ: with S = diag(−1, 1, 1),
        S · R(a, e, θ) = R(−a, e, −θ) · S.
        """
        return replace(self, azimuth=wrap_azimuth(-self.azimuth), theta=-self.theta, px=(width - 1) - self.px)

    def resized(self, scale_x: float, scale_y: float | None = None) -> Viewpoint:
        """The viewpoint after resampling the image by `scale` (pixel edges stay on edges).

        With integer pixel centres u' = s·(u + ½) − ½. The focal length scales by s; anisotropic
        scales are not representable (fx must equal fy) and raise.
        """
        scale_y = scale_x if scale_y is None else scale_y
        if not math.isclose(scale_x, scale_y, rel_tol=1e-9):
            raise AnnotationError(f"anisotropic resize ({scale_x:g}, {scale_y:g}) has no viewpoint", field="viewpoint")
        return replace(self, focal=self.focal * scale_x, px=resize_coordinate(self.px, scale_x),
                       py=resize_coordinate(self.py, scale_y))

    def shifted(self, dx: float, dy: float) -> Viewpoint:
        """The viewpoint after moving the image content by (dx, dy) pixels (a crop at (−dx, −dy))."""
        return replace(self, px=self.px + dx, py=self.py + dy)

    def to_cameras(self, image_size, dtype: torch.dtype | None = None) -> Cameras:
        """The equivalent `geom3d.Cameras` (unbatched) for an image of size (H, W)."""
        dtype = dtype or torch.get_default_dtype()
        values = torch.tensor([self[k] for k in VIEWPOINT_KEYS], dtype=dtype)
        a, e, th, d, f, m, px, py = values.unbind(-1)
        return viewpoint_to_cameras(a, e, th, d, f, m, (px, py), image_size=image_size)

    def rotation(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """World (object) -> camera rotation (3, 3), OpenCV axes."""
        dtype = dtype or torch.get_default_dtype()
        a, e, th = (torch.tensor(v, dtype=dtype) for v in (self.azimuth, self.elevation, self.theta))
        return viewpoint_to_rotation(a, e, th)

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in VIEWPOINT_KEYS}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k):.6g}" for k in VIEWPOINT_KEYS)
        return f"Viewpoint({inner})"


def _plain(value):
    """numpy / torch scalars and 1-element arrays to Python numbers."""
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        return value.item()
    return value


def _number_list(value, where: str) -> list:
    """A (nested) list of finite numbers as plain floats; AnnotationError for anything else."""
    out = []
    for x in value:
        x = _plain(x)
        if isinstance(x, (list, tuple)):
            out.append(_number_list(x, where))
        elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
            out.append(float(x))
        else:
            raise AnnotationError(f"a list value must hold finite numbers only, got {x!r}", field=where)
    return out


def _check_extra(extra: Mapping, where: str) -> dict:
    out = {}
    for k, v in dict(extra).items():
        v = _plain(v)
        if isinstance(v, (list, tuple)) and isinstance(k, str):  # a (nested) list of numbers, e.g. mesh_bounds
            out[k] = _number_list(v, f"{where}.extra.{k}")
            continue
        if not isinstance(k, str) or not (v is None or isinstance(v, (str, int, float, bool))):
            raise AnnotationError(f"extra values must be str/int/float/bool/None keyed by str, got {k!r}: {v!r}",
                                  field=f"{where}.extra")
        if isinstance(v, float) and not math.isfinite(v):
            raise AnnotationError(f"is {v} (NaN or infinite)", field=f"{where}.extra.{k}")
        out[k] = v
    return out


@dataclass(frozen=True, eq=True)
class ObjectAnnotation:
    """One 3D-annotated object.

    category: a known category (see `data3d.register_categories`).
    bbox: (x1, y1, x2, y2) in pixels, integer pixel centres, x1 ≤ x2, y1 ≤ y2.
    viewpoint: a `Viewpoint` (any mapping with its keys is converted).
    cad_index: 1-based index of the CAD model in its category folder (`NN.off`), or None.
    cad_source / cad_id: where the mesh comes from ("pascal3d", "imagenet3d", "objectnet3d",
        "shapenet", "objaverse", "procedural", …) and its id there (e.g. a ShapeNet model id).
    occlusion: occlusion level (PASCAL3D+ `occluded` 0/1; OccludedPASCAL3D+ foreground level 0–3).
    visible_fraction: fraction of the object's silhouette that is visible, in [0, 1].
    truncated, difficult: PASCAL-style flags. status: a dataset's quality label
        (ImageNet3D `object_status`, e.g. "status_good").
    caption: free text. extra: other scalar fields worth keeping (JSON-serialisable).
    image_size: (H, W) of the image; filled in by `ImageRecord`.
    """

    category: str
    bbox: tuple[float, float, float, float]
    viewpoint: Viewpoint
    cad_index: int | None = None
    cad_source: str | None = None
    cad_id: str | None = None
    occlusion: int | None = None
    visible_fraction: float | None = None
    truncated: bool | None = None
    difficult: bool | None = None
    status: str | None = None
    caption: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.category, str) or not self.category:
            raise AnnotationError(f"must be a non-empty string, got {self.category!r}", field="category")
        if not is_known_category(self.category):
            raise AnnotationError(
                f"unknown category {self.category!r} (register custom names with data3d.register_categories)",
                field="category")
        try:
            box = tuple(_as_float(_plain(v), "bbox") for v in self.bbox)
        except TypeError:
            raise AnnotationError(f"must be (x1, y1, x2, y2), got {self.bbox!r}", field="bbox") from None
        if len(box) != 4:
            raise AnnotationError(f"must be (x1, y1, x2, y2), got {len(box)} values", field="bbox")
        if box[0] > box[2] or box[1] > box[3]:
            raise AnnotationError(f"corners out of order (x1 > x2 or y1 > y2): {box}", field="bbox")
        set_(self, "bbox", box)
        if not isinstance(self.viewpoint, Viewpoint):
            if not isinstance(self.viewpoint, Mapping):
                raise AnnotationError(f"must be a mapping, got {type(self.viewpoint).__name__}", field="viewpoint")
            set_(self, "viewpoint", Viewpoint.from_mapping(self.viewpoint, self.image_size))
        if self.cad_index is not None:
            idx = _plain(self.cad_index)
            if isinstance(idx, float) and idx.is_integer():
                idx = int(idx)
            if not isinstance(idx, int) or isinstance(idx, bool) or idx < 1:
                raise AnnotationError(f"must be a 1-based integer, got {self.cad_index!r}", field="cad_index")
            set_(self, "cad_index", idx)
        for name in ("cad_source", "cad_id", "status", "caption"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                set_(self, name, str(_plain(value)))
        if self.occlusion is not None:
            level = _plain(self.occlusion)
            if isinstance(level, float) and level.is_integer():
                level = int(level)
            if not isinstance(level, int) or isinstance(level, bool) or level < 0:
                raise AnnotationError(f"must be an integer level ≥ 0, got {self.occlusion!r}", field="occlusion")
            set_(self, "occlusion", level)
        if self.visible_fraction is not None:
            frac = _as_float(_plain(self.visible_fraction), "visible_fraction")
            if not 0.0 <= frac <= 1.0:
                raise AnnotationError(f"must be in [0, 1], got {frac:g}", field="visible_fraction")
            set_(self, "visible_fraction", frac)
        for name in ("truncated", "difficult"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, bool(_plain(value)))
        set_(self, "extra", _check_extra(self.extra, "object"))
        if self.image_size is not None:
            set_(self, "image_size", _image_size(self.image_size))

    @property
    def cameras(self) -> Cameras:
        """The object's camera (`geom3d.Cameras`, unbatched) for its image."""
        if self.image_size is None:
            raise AnnotationError("the annotation does not know its image size; put it in an ImageRecord",
                                  field="image_size")
        return self.viewpoint.to_cameras(self.image_size)

    @property
    def rotation(self) -> torch.Tensor:
        """Object -> camera rotation (3, 3)."""
        return self.viewpoint.rotation()

    @property
    def mesh_ref(self) -> str:
        """A short key for the object's mesh, `mesh_ref_for(cad_source, category, cad_id, cad_index)`."""
        return mesh_ref_for(self.cad_source, self.category, self.cad_id, self.cad_index)


def mesh_ref_for(source: str | None, category: str, cad_id: str | None = None, cad_index: int | None = None) -> str:
    """The one mesh reference of real and synthetic records: '<source>:<category>/<ident>'.

    ident is `cad_id` without a leading '<category>/' (asset ids of CAD folders and the procedural
    library carry their category: 'car/01', 'car/0003'), else the 2-digit `cad_index` ('01'), else ''.
    So a PASCAL3D+ record (cad_index 1) and a datagen record of the same CAD (cad_id 'car/01') are
    both 'pascal3d:car/01'; ShapeNet and Objaverse ids are kept whole ('shapenet:car/02958343/1a2b').
    `cad_index` is the 1-based NN of '<category>/NN.off' CAD folders (pascal3d, imagenet3d,
    objectnet3d) and None for every other source.
    """
    ident = ""
    if cad_id is not None and str(cad_id):
        ident = str(cad_id)
        if ident.startswith(f"{category}/") and len(ident) > len(category) + 1:
            ident = ident[len(category) + 1:]
    elif cad_index is not None:
        ident = f"{int(cad_index):02d}"
    return f"{source or ''}:{category}/{ident}"


def parse_mesh_ref(ref: str) -> tuple[str, str, str]:
    """(source, category, ident) of a `mesh_ref_for` string; AnnotationError for anything else."""
    source, sep, rest = str(ref).partition(":")
    category, sep2, ident = rest.partition("/")
    if not sep or not sep2 or not category:
        raise AnnotationError(f"not a mesh reference '<source>:<category>/<id>': {ref!r}", field="mesh_ref")
    return source, category, ident


def _image_size(size) -> tuple[int, int]:
    try:
        return parse_image_size(size, "")
    except GeometryError as exc:  # the same rule as geom3d, reported as this record's field
        raise AnnotationError(str(exc).strip(), field="image_size") from None


@dataclass(frozen=True, eq=True)
class ImageRecord:
    """An image and its objects.

    image_path: the image file. image_size: (H, W). objects: a tuple of `ObjectAnnotation`
    (their `image_size` is filled in). annotation_path: the file the annotation came from, used in
    error messages. extra: scalar fields worth keeping (JSON-serialisable).
    """

    image_path: Path
    image_size: tuple[int, int]
    objects: tuple[ObjectAnnotation, ...] = ()
    annotation_path: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "image_path", Path(self.image_path))
        if self.annotation_path is not None:
            set_(self, "annotation_path", Path(self.annotation_path))
        where = self.annotation_path or self.image_path
        try:
            size = _image_size(self.image_size)
            set_(self, "image_size", size)
            set_(self, "extra", _check_extra(self.extra, "record"))
            objects = []
            for i, obj in enumerate(self.objects):
                if not isinstance(obj, ObjectAnnotation):
                    raise AnnotationError(f"must be ObjectAnnotation, got {type(obj).__name__}", field=f"objects[{i}]")
                if obj.image_size is None:
                    obj = replace(obj, image_size=size)
                elif obj.image_size != size:
                    raise AnnotationError(f"object says image size {obj.image_size}, the record {size}",
                                          field=f"objects[{i}].image_size")
                _check_inside(obj.bbox, size, f"objects[{i}].bbox")
                objects.append(obj)
            set_(self, "objects", tuple(objects))
        except AnnotationError as exc:
            raise exc.with_path(where) from None


def _check_inside(box, size, name: str) -> None:
    h, w = size
    lo_x, lo_y, hi_x, hi_y = -0.5 - BBOX_SLACK, -0.5 - BBOX_SLACK, w - 0.5 + BBOX_SLACK, h - 0.5 + BBOX_SLACK
    if box[0] < lo_x or box[1] < lo_y or box[2] > hi_x or box[3] > hi_y:
        raise AnnotationError(f"{tuple(round(v, 3) for v in box)} lies outside the {w}x{h} image", field=name)


class RecordList(list):
    """A list of `ImageRecord` that also says what a loader skipped and why.

    `skipped` counts skipped objects (or images) by reason, e.g. {"status_bad": 3, "distance<=0": 1};
    `problems` lists (reason, message) for skipped files, the message naming the file and field.
    """

    def __init__(self, records=(), skipped: Counter | None = None):
        super().__init__(records)
        self.skipped: Counter = Counter(skipped or {})
        self.problems: list[tuple[str, str]] = []  # (reason, message naming the file) per skipped file

    def skip(self, reason: str, problem: str | Exception | None = None) -> None:
        """Count one skip under `reason`; `problem` (an error naming the file) is kept in `problems`."""
        self.skipped[reason] += 1
        if problem is not None:
            self.problems.append((reason, str(problem)))

    @property
    def num_objects(self) -> int:
        return sum(len(r.objects) for r in self)

    def summary(self) -> str:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{len(self)} images, {self.num_objects} objects; skipped: {skipped}"
