"""aware3d: the front door, the `aware3d` command and `aware3d demo`."""

__version__ = "0.1.0"
