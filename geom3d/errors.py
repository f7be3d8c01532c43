"""Errors raised by the geometry core.

Every error names what was wrong (and, for files, which file), so that a batch job can log it as a
skip reason without further context.
"""

from __future__ import annotations


class GeometryError(ValueError):
    """Invalid geometric input: a degenerate camera, a non-rotation, NaN, a bad shape."""


class MeshError(GeometryError):
    """A mesh file that cannot be used: unreadable, empty, non-finite, or of an unknown format."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
