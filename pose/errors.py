"""The pose package's error type and its run folder."""

from __future__ import annotations

from nemo import NemoError
from nemo import RunFolder as _NemoRunFolder

__all__ = ["PoseError", "RunFolder"]


class PoseError(NemoError):
    """Bad input to a pose function or a broken pose run folder; the message names the file or argument.
    A `nemo.NemoError` (pose trains and evaluates through nemo), so a `methodkit.RunError` and a ValueError;
    config mistakes are `nemo.NemoConfigError`s, as in nemo."""


class RunFolder(_NemoRunFolder):
    """nemo's run folder (`methodkit.RunFolder`) whose checks raise `PoseError`."""

    error = PoseError
