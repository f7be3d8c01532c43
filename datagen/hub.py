"""Where a model named by id or folder comes from, decided before any `from_pretrained` call.

transformers and diffusers retry the hub for tens of seconds when it cannot be reached and print
their warnings on every try. A local folder is used as it is; an id already in the Hugging Face
cache loads with `local_files_only=True` (no network at all); an id that is not cached fails at
once with a message naming it when `HF_HUB_OFFLINE` is set, and is downloaded otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["hub_offline", "pretrained_kwargs"]

_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _cached(repo_id: str, files: tuple[str, ...]) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for name in files:
        try:
            hit = try_to_load_from_cache(repo_id, name)
        except ValueError:  # not a valid repo id: from_pretrained will say so
            return False
        if isinstance(hit, str):
            return True
    return False


def pretrained_kwargs(name: str, what: str, files: tuple[str, ...] = ("config.json", "model_index.json")) -> dict:
    """Extra keyword arguments for `from_pretrained(name, ...)`: {} for a folder or a download,
    {"local_files_only": True} for a cached id; OSError naming `what` (the config key) and the id
    when it is neither a folder nor cached and the hub is offline."""
    if Path(name).expanduser().exists():
        return {}
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:  # a path, not an <owner>/<name> id
        raise FileNotFoundError(f"{what}: cannot load {name!r}: no such folder")
    if _cached(name, files):
        return {"local_files_only": True}
    if hub_offline():
        raise FileNotFoundError(f"{what}: cannot load {name!r}: neither a local folder nor in the Hugging Face "
                                "cache, and HF_HUB_OFFLINE is set (download it where the hub is reachable, "
                                "or give a folder)")
    return {}
