"""pose: a category-level pose estimator learned from diffusion-generated views, without pose labels
(after Tian et al. 2024, "Learning a Category-level Object Pose Estimator without Pose Annotations").

- `sets`: unannotated source images -> generated sets (a `datagen.novel_view` synthesizer: Zero-1-to-3,
  exact or degraded renders) stored as data3d records in each source camera's frame.
- `mesh`: the per-set neural cylinder, whose rotations about the up axis are exact vertex shifts.
- `training` (the function `train`): the shared encoder trained contrastively across each set's
  views (one neural mesh per set, nemo's bank and loss), an artifact filter, `merge` (rotation
  search over the sets' features), `orient` (which sets' held-out sources say they were generated half
  a turn off; the annotated image's set is turned back), the one-shot canonical pose from a single
  annotated image, and the retrieval baseline's database.
- `report`: `write_sets_report(sets)`, the generated sets' report.html (`generate_sets` writes it), and
  `write_run_report(run, sets)`, the training run's (merge and one shot; `train` writes it).
- `refine`: the aligned sets' views with pseudo poses in the canonical frame, training the network
  further on the category's cuboid with nemo's loop.
- `model`: `load(run)` (a `CanonicalModel`, nemo's model over the canonical mesh), `load_retrieval(run)`
  (a `RetrievalModel`; both `methodkit.PoseEstimator`s),
  `evaluate(run, records, out, supervised_run=None, require_disjoint=False)` (+ instances.json).
- `curve`: `flip_curve(...)`, accuracy against the generator's front/back flip rate p
  (`datagen.novel_view.CorrelatedFailureSynthesizer`), on instance-disjoint test records and real photos.
Bad input or a broken run folder raises `PoseError` (a `nemo.NemoError`, so a ValueError); config mistakes
`nemo.NemoConfigError`. See docs/pose.md.
"""

from .config import POSE_DEFAULTS, resolve_pose_config
from .curve import flip_curve
from .errors import PoseError
from .merge import MergeResult, merge_sets
from .mesh import CylinderLayout, cylinder_params, neural_cylinder, shift_features
from .model import CanonicalModel, RetrievalModel, evaluate, instances_of, load, load_retrieval
from .report import write_run_report, write_sets_report
from .sets import GeneratedSet, SetSource, default_relative_poses, generate_sets, load_sets, sources_from_records
from .training import train

__all__ = ["CanonicalModel", "cylinder_params", "CylinderLayout", "default_relative_poses", "evaluate", "flip_curve",
           "generate_sets", "GeneratedSet", "instances_of", "load", "load_retrieval", "load_sets", "merge_sets",
           "MergeResult", "neural_cylinder", "POSE_DEFAULTS", "PoseError", "resolve_pose_config", "RetrievalModel",
           "SetSource", "shift_features", "sources_from_records", "train", "write_run_report", "write_sets_report"]
