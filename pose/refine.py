"""Refinement: once the sets are aligned and the canonical pose fixed, every kept generated view has a
pose in the category's canonical frame, so the category model can be the shape that fits the object
(NeMo's cuboid over the category's CAD extent) instead of the enclosing cylinder that the per-set frames
forced; NeMo's training (`nemo.train`) continues the same network on these pseudo-labelled views.

    records = pseudo_labelled(sets, kept, merged.shifts, calib, layout, cuboid)
    net, bank = refine(records, net, clutter, ncfg, category, run.path / "refine", steps)

Pseudo pose of a view at azimuth a_s, elevation e_s in its set's frame (set s aligned by `shift_s`,
one-shot `rotation` and `elevation_offset`, see `pose.training.one_shot`): the set's frame is the
reference's turned by shift_s·step about z, the reference's is the canonical one turned by `rotation`,
and turning an object's frame by α about z moves a camera's azimuth by −α, so
a = a_s − shift_s·step − rotation and e = e_s − elevation_offset. Views of rejected sets and views
the artifact filter dropped get none. The pseudo labels are wrong where a set was aligned wrongly;
the contrastive loss then averages them with the other sets'.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence

import torch

import data3d
import geom3d
import nemo
from nemo.data import category_meshes

from .mesh import CylinderLayout
from .sets import estimate_distance

__all__ = ["pseudo_labelled", "refine", "PSEUDO_FRAME"]

PSEUDO_FRAME = "canonical_pseudo"


def pseudo_labelled(sets: Sequence, kept: Sequence[int], shifts: torch.Tensor, calibration: Mapping,
                    layout: CylinderLayout, mesh: geom3d.Mesh | None = None) -> list[data3d.ImageRecord]:
    """The kept views (indices into the sets' records, flattened in set order) of aligned sets, with
    their viewpoints in the canonical frame (see the module docstring); `extra["frame"]` says so.

    mesh: the category mesh the pseudo labels will train (the cuboid). A set's distance is the one at
    which the cylinder spans the source's box, right for the cylinder at every azimuth but not for a
    cuboid: seen from the front a car's cuboid is a third as wide as its cylinder, so at the cylinder's
    distance it would project at a third of the object's size. With a mesh, each view's distance is the one at which the
    mesh, at the view's pseudo pose, spans the view's box (`pose.sets.estimate_distance`)."""
    flat = [(k, r) for k, s in enumerate(sets) for r in s.records]
    rotation, elevation_offset = float(calibration["rotation"]), float(calibration["elevation_offset"])
    out = []
    for j in kept:
        k, record = flat[j]
        if int(shifts[k]) < 0:
            continue
        obj = record.objects[0]
        vp = obj.viewpoint
        azimuth = (vp["azimuth"] - int(shifts[k]) * layout.step - rotation) % (2 * math.pi)
        elevation = vp["elevation"] - elevation_offset
        distance = vp["distance"]
        if mesh is not None:
            distance = estimate_distance(mesh, vp, elevation, obj.bbox, record.image_size, azimuth=azimuth)
        new_vp = dataclasses.replace(vp, azimuth=azimuth, elevation=elevation, distance=distance)
        obj = dataclasses.replace(obj, viewpoint=new_vp, extra=dict(obj.extra, frame=PSEUDO_FRAME))
        out.append(dataclasses.replace(record, objects=(obj,), extra=dict(record.extra, frame=PSEUDO_FRAME)))
    return out


def refine(records: Sequence[data3d.ImageRecord], net: torch.nn.Module, clutter: torch.Tensor, ncfg,
           category: str, out: str | os.PathLike, steps: int, stop_after: int | None = None
           ) -> tuple[torch.nn.Module, nemo.MeshBank] | None:
    """NeMo's training of `net` on the pseudo-labelled `records` with the category's cuboid (`nemo.meshes`
    of the config, as the supervised NeMo builds it) for `steps`, in the nemo run folder `out` (resumed
    when it holds a checkpoint); the bank starts from the label-free training's clutter. Returns the
    trained (network, bank), or None when `stop_after` ended the call first."""
    folder = os.path.join(out, "records")
    data3d.save_records(list(records), folder, shard="000000")
    ncfg = nemo.NemoConfig.of(ncfg)
    config = dataclasses.replace(ncfg, categories=[category], train=dataclasses.replace(ncfg.train, steps=int(steps)))
    bank = nemo.MeshBank(category_meshes(config, [category]), clutter=clutter.clone(), seed=ncfg.seed,
                         momentum=ncfg.bank.momentum)
    run = nemo.train(folder, os.path.join(out, "run"), config.to_dict(), init=(net, bank), stop_after=stop_after)
    latest = run.latest_checkpoint()
    if latest is None or latest[0] < steps:  # stopped: a later call resumes from nemo's last checkpoint
        return None
    model = nemo.load(run.path)
    return model.net, model.bank
