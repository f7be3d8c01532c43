"""nemo's run folder: `methodkit.run.RunFolder` (the one shape every method's run folder has; see there)
raising `NemoError`; and `line_plot_png` (re-exported: the figure helpers live in `aware3d_utils.figures`)."""

from __future__ import annotations

from aware3d_utils.figures import line_plot_png
from methodkit import run as _run

from .errors import NemoError

__all__ = ["RunFolder", "line_plot_png"]


class RunFolder(_run.RunFolder):
    """`methodkit.RunFolder` whose checks raise `NemoError`."""

    error = NemoError
