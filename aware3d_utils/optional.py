"""Import heavy optional dependencies lazily, with a one-line error naming the extra to install."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

__all__ = ["require", "available", "lazy_module", "lazy_exports"]

# module name -> the `pip install aware3d[<extra>]` extra that provides it
_EXTRAS = {
    "moderngl": "gl",
    "open3d": "open3d",
    "diffusers": "diffusion",
    "transformers": "diffusion",
    "accelerate": "diffusion",
    "ray": "ray",
    "viser": "view",
}

# Messages that transformers logs on every import here, although nothing is wrong: the project
# never installs torchvision (its wheels break beside the CPU torch) and uses the PIL image
# processors on purpose. Matched by message, so every other warning of these loggers still shows.
_KNOWN_NOISE = {
    "transformers.utils.import_utils": ("requires torchvision (not installed); falling back to",),
}


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


def _silence_known_noise() -> None:
    """Attach the message filters once (the loggers exist before transformers creates them)."""
    for name, fragments in _KNOWN_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(fragments))


# Installed on import as well, so that code importing transformers or diffusers directly after any
# aware3d package (benchmarks, a user's script) is as quiet as code going through `require`.
_silence_known_noise()


def _import(module: str) -> ModuleType:
    if module.split(".")[0] in ("transformers", "diffusers"):  # diffusers imports transformers
        _silence_known_noise()
    return importlib.import_module(module)


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import `module` or raise ImportError saying which extra of aware3d provides it."""
    try:
        return _import(module)
    except ImportError as exc:
        extra = extra or _EXTRAS.get(module.split(".")[0], "all")
        raise ImportError(
            f"{module} is needed here but could not be imported ({exc}); "
            f"install it with: pip install 'aware3d[{extra}]'"
        ) from exc


class _LazyModule(ModuleType):
    """A stand-in for a module, imported on the first attribute read (see `lazy_module`)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str):  # only called for names not yet in this object's __dict__
        module = require(self.__dict__["_lazy_name"])
        self.__dict__.update(module.__dict__)  # later reads are plain attribute hits
        return getattr(module, attr)


def lazy_module(module: str) -> ModuleType:
    """`module` itself when already imported, else a stand-in that imports it on first use.

    For required dependencies that are slow to import and only needed inside functions (OpenCV
    in datagen: ~0.2 s), so that importing a package or printing `--help` does not pay for them:
    `cv2 = lazy_module("cv2")` at module level, then `cv2.imencode(...)` as usual.
    """
    loaded = sys.modules.get(module)
    return loaded if loaded is not None else _LazyModule(module)


def available(module: str) -> bool:
    """True when `module` imports (used to skip optional cross-checks)."""
    try:
        _import(module)
    except Exception:  # an installed but broken package (e.g. missing system library) counts as absent
        return False
    return True


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]):
    """(`__getattr__`, the names) of a package whose public names load from their submodules on first
    use (PEP 562), e.g. so that a command's `--help` does not import torch:

        __getattr__, _names = lazy_exports(__name__, {"trainer": ("Trainer", "Hooks")})
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__, list(where)
