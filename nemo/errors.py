"""The nemo package's error type."""

from __future__ import annotations

__all__ = ["NemoError"]


class NemoError(ValueError):
    """Bad input to a nemo function or a broken run folder; the message names the file or argument."""

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(message if path is None else f"{path}: {message}")
