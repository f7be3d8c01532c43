"""The nemo package's error type."""

from __future__ import annotations

from methodkit.run import RunError

__all__ = ["NemoError"]


class NemoError(RunError):
    """Bad input to a nemo function or a broken run folder; the message names the file or argument
    (a `methodkit.RunError`, so code that catches the method layer's errors catches nemo's too)."""
