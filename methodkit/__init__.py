"""methodkit: the one shape every method package shares (issue 22).

The layer below the methods (`datagen`'s K-fold filter, `nemo`, `pose`, `nemo.incremental`, `orbit4d`)
and above the core (`geom3d`, `data3d`): the typed config mechanism, the run folder (`run`), the trainer
with its hooks (`trainer`), and the pose-estimator contract. It imports `aware3d_utils`, `geom3d` and
`data3d`, never a method package.
"""

from .run import MANIFEST_KEYS, RunError, RunFolder, check_manifest
from .trainer import Hooks, Trainer, learning_rate, load_state, resume_config, state_tensors

__all__ = ["MANIFEST_KEYS", "RunError", "RunFolder", "check_manifest", "Hooks", "Trainer", "learning_rate",
           "load_state", "resume_config", "state_tensors"]
