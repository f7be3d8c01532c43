"""Where aware3d finds the real public data used by tests, benchmarks and the demo."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """`$AWARE3D_DATA`, or `../shared/data` beside the project (may not exist)."""
    env = os.environ.get("AWARE3D_DATA")
    return Path(env) if env else (PROJECT_ROOT.parent / "shared" / "data").resolve()
