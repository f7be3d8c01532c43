"""iNeMo (Fischer et al. 2024): class-incremental neural mesh models on nemo's bank and training.

- `split_tasks` / `tasks_from_config`: seeded class-incremental task splits;
- `class_centres`, `partition_features`: the latent space reserved for the whole class budget (ETF
  or a spread) and each class's initial vertex features from its own cell of a real partition;
- `positional_loss`, `distillation_loss`: the positional regulariser and distillation over all
  old classes;
- `ExemplarMemory`: a fixed total budget, shrunk as classes arrive, pose-aware or herding;
- `run_incremental(config, out)`: iNeMo and the baselines (finetune, joint, replay2d) task by task,
  evaluated after every task (`aware3d nemo incremental`). See docs/inemo.md.
"""

from .config import INCREMENTAL_DEFAULTS, METHODS, load_incremental_config, resolve_incremental_config
from .exemplars import ExemplarMemory, herding_order, pose_aware_order
from .latent import class_centres, etf_centres, partition_features, spread_centres
from .loop import run_incremental, run_method
from .losses import distillation_loss, old_class_memory, positional_loss
from .tasks import PRESETS, split_tasks, tasks_from_config

__all__ = ["ExemplarMemory", "INCREMENTAL_DEFAULTS", "METHODS", "PRESETS", "class_centres", "distillation_loss",
           "etf_centres", "herding_order", "load_incremental_config", "old_class_memory", "partition_features",
           "pose_aware_order", "positional_loss", "resolve_incremental_config", "run_incremental", "run_method",
           "spread_centres", "split_tasks", "tasks_from_config"]
