"""nemo: neural mesh models (NeMo) and class-incremental mesh banks (iNeMo).

Will hold: per-category cuboid meshes with learned vertex features, a backbone trained
contrastively to match them, render-and-compare pose estimation and classification, and iNeMo's
incremental mesh banks.
"""
