"""Orientation check: is each generated set's frame the one its source image says, or half a turn off?

A generator's front/back ("Janus") failure can draw a whole set from the opposite side while the
caller believes the requested relative poses. Such a set is self-consistent: its neural cylinder is
the object turned half a turn about the up axis, and the merge's rotation search, exhaustive over the
cylinder's shifts, aligns its features with the other sets' like any other set. A pairwise
straight-versus-half-turn score of the sets' features therefore says nothing about which sets
flipped (measured on the p = 0.2 car run of docs/pose.md: every pair preferred "straight" by 0.38 to
0.61, flipped or not). What the flip breaks is the one thing that ties a set's frame to an image: the
set's frame puts its *source* at azimuth 0, and in a flipped set every generated view, hence the
mesh, is half a turn off from that. For the annotated image's set this bookkeeping is the canonical
frame (`pose.training.one_shot`), and its generated views are the one-shot calibration's views and
the retrieval databases: one flipped set there turns the whole model front to back.

The check asks each set's source image: the merged model (before the one shot, in the merge's frame)
fits it (`NemoModel.estimate_pose`, render-and-compare), and the fitted azimuth is compared with the
bookkept one, −shift·step (the source at azimuth 0 of its set's frame, moved by the set's merge
shift): margin = cos(fitted − bookkept), from +1 (agrees) to −1 (half a turn off); a set with a
negative margin is *turned*. The source images must not have been trained on: a trained-on source
agrees with whatever frame its set taught it (measured on the same run: own-mesh margins +0.36 to
+0.66 for flipped and unflipped sets alike), so `pose.train` leaves them out of the label-free
training when the check is on (`pose.merge.orient`).

Only the annotated image's set is acted on: when it is turned, the canonical rotation it gives and
its generated views' absolute azimuths get half a turn (the other sets' merged features are right as
they are). Flips are assumed to be a minority: if half or more of the checked sets test turned, the
check is taken as unreliable and nothing is corrected (`decide`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .mesh import CylinderLayout

__all__ = ["orientation_margins", "decide", "check_sources"]


def orientation_margins(fitted_azimuths: torch.Tensor, shifts: torch.Tensor, layout: CylinderLayout) -> torch.Tensor:
    """(S,) cos(fitted − bookkept) per set: fitted_azimuths (S,) radians in the merge's frame (NaN: not
    fitted), shifts (S,) the merge's shifts (−1: rejected, margin NaN); the bookkept azimuth of a set's
    source is −shift·step."""
    fitted = torch.as_tensor(fitted_azimuths, dtype=torch.float64)
    shifts = torch.as_tensor(shifts)
    bookkept = -shifts.to(torch.float64) * layout.step
    margins = torch.cos(fitted - bookkept)
    return torch.where(shifts >= 0, margins, torch.full_like(margins, float("nan")))


def decide(margins: torch.Tensor, annotated: int | None) -> dict:
    """The check's decision from the margins (S,) (NaN: not checked) and the annotated image's set index
    (None: the annotated image is no source): {"turned": indices with a negative margin, "checked": how
    many sets have a margin, "reference_turned": whether the annotated image's set is turned and the
    turned sets are a minority of the checked ones (else the check is not trusted: "unreliable")}."""
    margins = torch.as_tensor(margins, dtype=torch.float64)
    checked = ~torch.isnan(margins)
    turned = [int(i) for i in torch.nonzero(checked & (margins < 0)).flatten()]
    count = int(checked.sum())
    unreliable = count > 0 and 2 * len(turned) >= count
    own = annotated is not None and bool(checked[annotated]) and annotated in turned
    return {"turned": turned, "checked": count, "unreliable": unreliable, "reference_turned": own and not unreliable}


@torch.no_grad()
def check_sources(model, sources: Sequence, shifts: torch.Tensor, layout: CylinderLayout, category: str,
                  crops) -> dict:
    """Fit every set's source record (None: the set has none, or its source is unreadable) with `model`
    (the merged model, merge frame) and return {"fitted": (S,) azimuths (NaN where not fitted),
    "margins": (S,) `orientation_margins`}. crops: records -> nemo's collated crops (`image`, `cameras`)."""
    S = len(sources)
    fitted = torch.full((S,), float("nan"), dtype=torch.float64)
    which = [i for i, r in enumerate(sources) if r is not None and int(shifts[i]) >= 0]
    for start in range(0, len(which), 16):
        part = which[start:start + 16]
        batch = crops([sources[i] for i in part])
        results = model.estimate_pose(batch["image"], K=batch["cameras"].K.float(), categories=[category] * len(part))
        for i, r in zip(part, results):
            fitted[i] = math.remainder(float(r.viewpoint.azimuth), 2 * math.pi)
    return {"fitted": fitted, "margins": orientation_margins(fitted, shifts, layout)}
