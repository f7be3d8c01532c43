"""nemo: neural mesh models (NeMo, Wang et al. 2021) on aware3d's geometry core.

- `MeshBank`: per-category meshes with unit vertex features (momentum memory) and a clutter bank,
  padded into one tensor so that batches can mix categories.
- `fit_pose(feature_maps, K, bank, categories)`: batched render-and-compare pose estimation.
- `FeatureNet`: a `transformers` ResNet + decoder to stride-8 unit features.
- `train(data, out, config)`: NeMo or the 2D baseline into a resumable run folder (`RunFolder`), through
  `methodkit.Trainer`.
- `load(run)` -> a model with `estimate_pose(images, categories=None)`; `evaluate(models, records, out)`.
- Submodules: `contrastive` (training targets and loss), `fresh` (on-the-fly datagen rounds),
  `distributed` (torchrun DDP), `splits` (OOD test splits), `baseline` (the 2D baseline), `demo`.
See docs/nemo.md.
"""

from .backbone import BackboneConfig, FeatureNet
from .bank import MeshBank
from .config import DEFAULTS, load_config, resolve_config
from .errors import NemoError
from .evaluate import evaluate
from .fit import PoseGrid, fit_pose, pose_grid
from .model import MATCH_RULES, NemoModel, load, match_categories
from .run import RunFolder
from .train import learning_rate, train

__all__ = ["BackboneConfig", "DEFAULTS", "FeatureNet", "MATCH_RULES", "MeshBank", "NemoError", "NemoModel", "PoseGrid",
           "RunFolder", "evaluate", "fit_pose", "learning_rate", "load", "load_config", "match_categories", "pose_grid",
           "resolve_config", "train"]
