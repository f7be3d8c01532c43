"""nemo: neural mesh models (NeMo, Wang et al. 2021) on aware3d's geometry core.

- `MeshBank`: per-category meshes with unit vertex features (momentum memory) and a clutter bank,
  padded into one tensor so that batches can mix categories.
- `fit_pose(feature_maps, K, bank, categories)`: batched render-and-compare pose estimation.
- `FeatureNet`: a `transformers` ResNet + decoder to stride-8 unit features.
- `train(data, out, config)`: NeMo or the 2D baseline into a resumable run folder (`RunFolder`), through
  `methodkit.Trainer`.
- `load(run)` -> a `NemoModel` (or `BaselineModel`): a `methodkit.PoseEstimator`, `estimate_pose(images,
  K=None, categories=None)` -> `methodkit.PoseResult`s; `evaluate(models, records, out)` takes any estimator.
- Submodules: `training` (`train`), `evaluation` (`evaluate`), `contrastive` (training targets and
  loss), `fresh` (on-the-fly datagen rounds), `distributed` (torchrun DDP), `splits` (OOD test
  splits), `baseline` (the 2D baseline), `demo`.
See docs/nemo.md.
"""

from .backbone import BackboneConfig, FeatureNet
from .bank import MeshBank
from .baseline import BaselineModel
from .config import DEFAULTS, NemoConfig, NemoConfigError, load_config, resolve_config
from .errors import NemoError
from .evaluation import evaluate
from .fit import PoseGrid, fit_pose, pose_grid
from .model import MATCH_RULES, NemoModel, load, match_categories
from .run import RunFolder
from .training import learning_rate, train

__all__ = ["BackboneConfig", "BaselineModel", "DEFAULTS", "FeatureNet", "MATCH_RULES", "MeshBank", "NemoConfig",
           "NemoConfigError", "NemoError", "NemoModel", "PoseGrid", "RunFolder", "evaluate", "fit_pose",
           "learning_rate", "load", "load_config", "match_categories", "pose_grid", "resolve_config", "train"]
