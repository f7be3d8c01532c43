"""methodkit: the one shape every method package shares (issue 22).

The layer below the methods (`datagen`'s K-fold filter, `nemo`, `pose`, `nemo.incremental`, `orbit4d`)
and above the core (`geom3d`, `data3d`): the typed config mechanism (`methodkit.config`: config
objects, `ConfigError`, the YAML 1.2 reader; `methodkit.cli`: the shared command-line arguments and
flags generated from a config schema), the run folder (`run`), the trainer with its hooks (`trainer`),
and the pose-estimator contract (`estimator`). It imports `aware3d_utils`, `geom3d` and `data3d`, never
a method package. The config names load at once, the torch-backed ones on first use
(`aware3d_utils.lazy_exports`), so that a command's `--help` does not import torch.
"""

from aware3d_utils import lazy_exports

from .config import ConfigError, ConfigObject, read_yaml, section, setting

__getattr__, _lazy = lazy_exports(__name__, {
    "estimator": ("DEFAULT_FOCAL_FACTOR", "PoseEstimator", "PoseEvaluation", "PoseResult", "estimator_inputs",
                  "evaluate_poses"),
    "run": ("MANIFEST_KEYS", "RunError", "RunFolder", "check_manifest"),
    "trainer": ("Hooks", "Trainer", "learning_rate", "load_state", "resume_config", "state_tensors")})
__all__ = ["ConfigError", "ConfigObject", "read_yaml", "section", "setting", *_lazy]
