"""nemo: neural mesh models (NeMo, Wang et al. 2021) on aware3d's geometry core.

- `MeshBank`: per-category meshes with unit vertex features (momentum memory) and a clutter bank,
  padded into one tensor so that batches can mix categories.
- `fit_pose(feature_maps, K, bank, categories)`: batched render-and-compare pose estimation.
See docs/nemo.md.
"""

from .bank import MeshBank
from .errors import NemoError
from .fit import PoseGrid, fit_pose, pose_grid

__all__ = ["MeshBank", "NemoError", "PoseGrid", "fit_pose", "pose_grid"]
