"""What a dataset holds: counts per category, split and occlusion level, viewpoint histograms and the
truncation rate, as a terminal table, a PNG of histograms and a self-contained HTML page.

    stats = dataset_stats({"val": data3d.load_pascal3d(root, split="val")})
    print(format_stats(stats))
    write_stats_report(stats, "p3d_stats")     # stats.json, stats.png, stats.html
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aware3d_utils import atomic_write_text
from aware3d_utils import html as H

from .record import ImageRecord

__all__ = ["Histogram", "DatasetStats", "dataset_stats", "format_stats", "stats_image", "write_stats_report",
           "VIEWPOINT_HISTOGRAMS"]

# name -> (record key, unit, lower edge, upper edge, bins); angles in degrees, distance auto-ranged
VIEWPOINT_HISTOGRAMS = {
    "azimuth": ("azimuth", "°", 0.0, 360.0, 12),
    "elevation": ("elevation", "°", -90.0, 90.0, 12),
    "in-plane": ("theta", "°", -180.0, 180.0, 12),
    "distance": ("distance", "", None, None, 12),
}


@dataclass(frozen=True)
class Histogram:
    """counts[i] objects fall in [edges[i], edges[i + 1]) (the last bin includes its upper edge)."""

    name: str
    unit: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class DatasetStats:
    """Counts of one dataset (objects unless said otherwise).

    by_split: images and objects per split; by_category / by_occlusion: objects per category /
    occlusion level ("unknown" where the record has none); truncated: objects flagged truncated,
    of `truncation_known` that carry the flag at all. histograms: viewpoint histograms.
    """

    num_images: int
    num_objects: int
    by_split: dict[str, dict[str, int]]
    by_category: dict[str, int]
    by_occlusion: dict[str, int]
    truncated: int
    truncation_known: int
    histograms: tuple[Histogram, ...]
    skipped: dict[str, int]

    @property
    def truncation_rate(self) -> float | None:
        return self.truncated / self.truncation_known if self.truncation_known else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["truncation_rate"] = self.truncation_rate
        return out


def _values(objects, key: str) -> np.ndarray:
    v = np.array([o.viewpoint[key] for o in objects], dtype=np.float64)
    if key in ("azimuth", "elevation", "theta"):
        v = np.degrees(v)
        if key == "azimuth":
            v = np.mod(v, 360.0)
    return v


def _histogram(name: str, objects) -> Histogram:
    key, unit, lo, hi, bins = VIEWPOINT_HISTOGRAMS[name]
    v = _values(objects, key)
    if lo is None:  # distance: the data's own range
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return Histogram(name, unit, tuple(float(e) for e in edges), tuple(int(c) for c in counts))


def dataset_stats(splits: Mapping[str, Sequence[ImageRecord]] | Sequence[ImageRecord]) -> DatasetStats:
    """Statistics of records, grouped by split ({"train": records, "val": records}; a plain list is
    one split called "all"). `skipped` sums the loaders' `.skipped` counters where present."""
    if not isinstance(splits, Mapping):
        splits = {"all": splits}
    objects, by_split, skipped = [], {}, Counter()
    for split, records in splits.items():
        objs = [o for r in records for o in r.objects]
        objects.extend(objs)
        by_split[str(split)] = {"images": len(records), "objects": len(objs)}
        skipped.update(getattr(records, "skipped", {}))
    known = [o for o in objects if o.truncated is not None]
    return DatasetStats(
        num_images=sum(s["images"] for s in by_split.values()), num_objects=len(objects), by_split=by_split,
        by_category=dict(sorted(Counter(o.category for o in objects).items())),
        by_occlusion=dict(sorted(Counter("unknown" if o.occlusion is None else str(o.occlusion)
                                         for o in objects).items())),
        truncated=sum(bool(o.truncated) for o in known), truncation_known=len(known),
        histograms=tuple(_histogram(name, objects) for name in VIEWPOINT_HISTOGRAMS),
        skipped=dict(sorted(skipped.items())))


# ----------------------------------------------------------------------------- the terminal table
def _table(title: str, rows: Sequence[Sequence], total: int | None = None, columns=("objects",)) -> list[str]:
    """Rows (name, count, ...) under a header naming the columns; `total` adds a share column."""
    width = max([len(str(r[0])) for r in rows] + [len(title)])
    header = f"{title:<{width}}" + "".join(f"  {c:>8}" for c in columns) + ("     share" if total else "")
    out = [header]
    for r in rows:
        share = f"  {100.0 * r[1] / total:7.1f}%" if total else ""
        out.append(f"{str(r[0]):<{width}}" + "".join(f"  {v:>8}" for v in r[1:]) + share)
    return out


def _bar(count: int, top: int, width: int = 30) -> str:
    return "#" * (round(width * count / top) if top else 0)


def format_stats(stats: DatasetStats) -> str:
    """The statistics as plain-text tables (for a terminal)."""
    lines = [f"{stats.num_images} images, {stats.num_objects} objects"]
    lines += _table("split", [(k, v["images"], v["objects"]) for k, v in stats.by_split.items()],
                    columns=("images", "objects"))
    lines += _table("category", list(stats.by_category.items()), stats.num_objects)
    lines += _table("occlusion level", list(stats.by_occlusion.items()), stats.num_objects)
    rate = stats.truncation_rate
    lines.append("truncated: " + (f"{stats.truncated} of {stats.truncation_known} objects ({100 * rate:.1f}%)"
                                  if rate is not None else "unknown (no object carries the flag)"))
    for h in stats.histograms:
        lines.append(f"{h.name} histogram")
        top = max(h.counts) if h.counts else 0
        for i, c in enumerate(h.counts):
            lines.append(f"  [{h.edges[i]:7.2f}, {h.edges[i + 1]:7.2f}){h.unit:<1} {c:>8}  {_bar(c, top)}")
    if stats.skipped:
        lines.append("skipped by the loader: " + ", ".join(f"{k}: {v}" for k, v in stats.skipped.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the picture
def _draw_histogram(h: Histogram, size=(220, 320), labels: Sequence[str] | None = None) -> np.ndarray:
    import cv2

    hh, ww = size
    img = np.full((hh, ww, 3), 255, np.uint8)
    left, right, top, bottom = 40, 10, 24, 30
    unit = "deg" if h.unit == "°" else h.unit  # OpenCV's fonts are ASCII only
    cv2.putText(img, f"{h.name}" + (f" ({unit})" if unit else ""), (left, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    peak = max(max(h.counts), 1)
    n = len(h.counts)
    bw = (ww - left - right) / n
    for i, c in enumerate(h.counts):
        x0 = int(left + i * bw)
        y0 = int(hh - bottom - (hh - top - bottom) * c / peak)
        cv2.rectangle(img, (x0 + 1, y0), (int(left + (i + 1) * bw) - 1, hh - bottom), (200, 120, 40), -1)
    cv2.line(img, (left, hh - bottom), (ww - right, hh - bottom), (0, 0, 0), 1)
    ticks = [(int(left + (i + 0.5) * bw) - 10, str(t)[:max(2, int(bw / 6))]) for i, t in enumerate(labels)] \
        if labels is not None else [(int(left + i * bw) - 12, f"{h.edges[i]:.3g}") for i in (0, n // 2, n)]
    for x, text in ticks:
        cv2.putText(img, text, (max(x, 0), hh - bottom + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, str(peak), (2, top + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _draw_counts(title: str, counts: Mapping[str, int], size=(220, 320)) -> np.ndarray:
    return _draw_histogram(Histogram(title, "", tuple(float(i) for i in range(len(counts) + 1)),
                                     tuple(counts.values())), size, labels=list(counts))


def stats_image(stats: DatasetStats) -> np.ndarray:
    """A (H, W, 3) uint8 RGB picture: the four viewpoint histograms, objects per category and per
    occlusion level (bar order as in the tables)."""
    tiles = [_draw_histogram(h) for h in stats.histograms]
    tiles += [_draw_counts("objects per category", stats.by_category or {"none": 0}),
              _draw_counts("objects per occlusion level", stats.by_occlusion or {"none": 0})]
    rows = [np.concatenate(tiles[i:i + 3], axis=1) for i in range(0, len(tiles), 3)]
    return np.concatenate(rows, axis=0)


def _html_table(title: str, header: Sequence[str], rows: Sequence[Sequence]) -> str:
    return H.join([H.heading(title), H.table(rows, header=header)], "")


def write_stats_report(stats: DatasetStats, out, title: str = "dataset statistics") -> dict[str, Path]:
    """Write stats.json, stats.png and stats.html (one self-contained page) into folder `out`,
    atomically; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png = H.png_bytes(stats_image(stats))
    paths = {"json": out / "stats.json", "png": out / "stats.png", "html": out / "stats.html"}
    atomic_write_text(paths["json"], json.dumps(stats.to_dict(), indent=1, allow_nan=False) + "\n")
    H.save_png(paths["png"], png)
    n = max(stats.num_objects, 1)
    rate = stats.truncation_rate
    truncated = "unknown" if rate is None else f"{stats.truncated} ({100 * rate:.1f}%)"
    body = [H.heading(title, 1), H.paragraph(f"{stats.num_images} images, {stats.num_objects} objects; "
                                             f"truncated: {truncated}"),
            _html_table("splits", ["split", "images", "objects"],
                        [(k, v["images"], v["objects"]) for k, v in stats.by_split.items()]),
            _html_table("categories", ["category", "objects", "share"],
                        [(k, v, f"{100 * v / n:.1f}%") for k, v in stats.by_category.items()]),
            _html_table("occlusion levels", ["level", "objects", "share"],
                        [(k, v, f"{100 * v / n:.1f}%") for k, v in stats.by_occlusion.items()]),
            H.heading("viewpoints"), H.image(H.png_data_uri(png), alt="histograms")]
    for h in stats.histograms:
        body.append(_html_table(f"{h.name} histogram", ["from", "to", "objects"],
                                [(f"{h.edges[i]:.4g}{h.unit}", f"{h.edges[i + 1]:.4g}{h.unit}", c)
                                 for i, c in enumerate(h.counts)]))
    if stats.skipped:
        body.append(_html_table("skipped by the loader", ["reason", "count"], list(stats.skipped.items())))
    H.write_page(paths["html"], title, body, "td,th{border:1px solid #ccc;text-align:right}")
    return paths
