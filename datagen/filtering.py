"""Filtering generated samples: the cheap per-image checks (`datagen.filter_checks`) and 3D-DST's K-fold
consistency filter (`datagen.filter_kfold`), re-exported here under their old names. The K-fold filter's
angle bins are `data3d.angles_to_centred_bins` / `centred_bins_to_angles` (`angles_to_bins` /
`bins_to_angles` here)."""

from data3d.angle_bins import angles_to_centred_bins as angles_to_bins
from data3d.angle_bins import centred_bins_to_angles as bins_to_angles

from .filter_checks import CHECK_REASONS, cheap_checks, cropped_fraction, edge_agreement
from .filter_kfold import (
    DEFAULT_BACKBONE,
    TINY_BACKBONE,
    KFoldResult,
    assign_folds,
    filter_dataset,
    keep_by_rule,
    kfold_filter,
)

__all__ = ["cheap_checks", "edge_agreement", "cropped_fraction", "CHECK_REASONS", "kfold_filter", "filter_dataset",
           "KFoldResult", "assign_folds", "angles_to_bins", "bins_to_angles", "keep_by_rule", "DEFAULT_BACKBONE",
           "TINY_BACKBONE"]
