"""aware3d_utils: general utilities every aware3d layer may import (it imports none of them).

- `atomic_write`, `atomic_save`, `atomic_write_text`: a file appears complete under its name or not at all.
- `require`, `available`: lazy imports of heavy optional dependencies, with an error naming the extra;
  `lazy_exports`: a package's names loaded from their submodules on first use.
- `torch_threads`, `step_generator`: the thread-count and per-step seed policies (`runtime`).
- `plain`: the one JSON / YAML sanitiser (NaN to null, tensors to lists).
- `IMAGE_SUFFIXES`, `is_image_file`: the image files every command reads.
- `aware3d_utils.lock.FolderLock`: one live process per dataset or run folder (import the module).

Also imported by module name: `aware3d_utils.html` (the one HTML page writer of every report) and
`aware3d_utils.figures` (PIL-drawn figures such as `line_plot_png`).
"""

from .atomic import atomic_save, atomic_write, atomic_write_text
from .files import IMAGE_SUFFIXES, is_image_file
from .jsonable import plain
from .optional import available, lazy_exports, require
from .runtime import step_generator, torch_threads

__all__ = ["atomic_save", "atomic_write", "atomic_write_text", "available", "lazy_exports", "require", "IMAGE_SUFFIXES",
           "is_image_file", "plain", "step_generator", "torch_threads"]
