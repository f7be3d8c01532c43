"""Import heavy optional dependencies lazily, with a one-line error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> the `pip install aware3d[<extra>]` extra that provides it
_EXTRAS = {
    "moderngl": "gl",
    "open3d": "open3d",
    "diffusers": "diffusion",
    "transformers": "diffusion",
    "accelerate": "diffusion",
    "ray": "ray",
}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import `module` or raise ImportError saying which extra of aware3d provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra or _EXTRAS.get(module.split(".")[0], "all")
        raise ImportError(
            f"{module} is needed here but could not be imported ({exc}); "
            f"install it with: pip install 'aware3d[{extra}]'"
        ) from exc


def available(module: str) -> bool:
    """True when `module` imports (used to skip optional cross-checks)."""
    try:
        importlib.import_module(module)
    except Exception:  # an installed but broken package (e.g. missing system library) counts as absent
        return False
    return True
