"""The dtype rule of every public geom3d entry point, in one helper.

Inputs may be Python numbers, lists, numpy arrays, integer or floating tensors. The floating
ones that carry a dtype (tensors, numpy arrays, the tensors inside `Cameras`) are promoted to
their common floating dtype (`torch.promote_types`); numbers, lists and integer arrays are weak
and take that dtype; with no floating input at all the result is the default dtype (float32).
So float64 anywhere gives float64 out, and float64 cameras never become float32 silently.
Tensors on an accelerator pull the others onto that device.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from .errors import GeometryError

__all__ = ["as_float_tensors", "common_float_dtype"]


def broadcast_shapes(*shapes) -> torch.Size:
    """The broadcast of batch shapes (torch.broadcast_shapes' result; RuntimeError where they do
    not broadcast). Plain Python: torch.broadcast_shapes imports torch's symbolic-shape machinery
    (sympy, about a second) on its first call, which a renderer's first camera should not pay."""
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, start=ndim - len(shape)):
            size = int(size)
            if size < 0:
                raise RuntimeError(f"broadcast_shapes: negative size in {tuple(shape)}")
            if size != 1:
                if out[i] not in (1, size):
                    raise RuntimeError(f"Shape mismatch: objects cannot be broadcast to a single shape: {shapes}")
                out[i] = size
    return torch.Size(out)


def _strong_dtype(value) -> torch.dtype | None:
    """The floating dtype a value imposes (None for weak values: numbers, lists, integers)."""
    if isinstance(value, torch.Tensor):
        return value.dtype if value.is_floating_point() else None
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return torch.from_numpy(np.empty(0, dtype=value.dtype)).dtype
    return None


def common_float_dtype(*values) -> torch.dtype:
    """The floating dtype `as_float_tensors` gives these values."""
    dtype = None
    for v in values:
        d = _strong_dtype(v)
        if d is not None:
            dtype = d if dtype is None else torch.promote_types(dtype, d)
    return torch.get_default_dtype() if dtype is None else dtype


def _device(values) -> torch.device:
    for v in values:
        if isinstance(v, torch.Tensor) and v.device.type != "cpu":
            return v.device
    return torch.device("cpu")


def as_float_tensors(*values, dtype: torch.dtype | None = None, device=None) -> list[torch.Tensor]:
    """`values` as floating tensors of one dtype and device (the rule in the module docstring).

    dtype / device: force these instead of the promoted ones. Gradients flow through the casts.
    Raises GeometryError for a value that is not numeric (a string, None, a ragged list).
    """
    dtype = common_float_dtype(*values) if dtype is None else dtype
    device = _device(values) if device is None else torch.device(device)
    out = []
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            out.append(v.to(dtype=dtype, device=device))
            continue
        if not isinstance(v, (numbers.Number, np.ndarray, np.generic, list, tuple)):
            raise GeometryError(f"argument {i + 1}: expected numbers, a list, an array or a tensor, "
                                f"got {type(v).__name__}")
        try:
            if isinstance(v, np.ndarray):
                out.append(torch.as_tensor(v).to(dtype=dtype, device=device))
            else:  # numbers and lists are parsed straight into the target dtype (one rounding)
                out.append(torch.as_tensor(v, dtype=dtype, device=device))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise GeometryError(f"argument {i + 1}: not a numeric array ({exc})") from None
    return out
