"""aware3d_utils: general utilities every aware3d layer may import (it imports none of them).

- `atomic_write`, `atomic_save`, `atomic_write_text`: a file appears complete under its name or not at all.
- `require`, `available`: lazy imports of heavy optional dependencies, with an error naming the extra.
"""

from .atomic import atomic_save, atomic_write, atomic_write_text
from .optional import available, require

__all__ = ["atomic_save", "atomic_write", "atomic_write_text", "available", "require"]
