"""Old names kept working after a rename, with a `DeprecationWarning` that names the new one.

    object_mask = renamed(silhouette_or_box, "object_mask")          # an old function name

    @renamed_arguments(center="centre")                             # an old keyword argument
    def warp_object(view, out_size, scale=1.0, centre="principal"): ...

The naming rules: docs/design.md, "The core's API policy", Names.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

__all__ = ["renamed", "renamed_arguments"]


def renamed(new: Callable, old_name: str) -> Callable:
    """`new` under its old name `old_name`: the same call, with a DeprecationWarning."""

    @functools.wraps(new)
    def alias(*args, **kwargs):
        warnings.warn(f"{old_name} is renamed {new.__name__}", DeprecationWarning, stacklevel=2)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = f"Deprecated: the old name of `{new.__module__}.{new.__name__}`."
    return alias


def renamed_arguments(**old_to_new: str) -> Callable[[Callable], Callable]:
    """A decorator: the keyword arguments `old=` are read as `new=` (with a DeprecationWarning);
    giving both is a TypeError."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}: give {new}= only ({old}= is its old name)")
                    warnings.warn(f"{fn.__name__}: the argument {old}= is renamed {new}=", DeprecationWarning,
                                  stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
