"""aware3d: the front door, the `aware3d` command and `aware3d demo`."""

__version__ = "0.1.0"

# the procedural categories `aware3d demo` shows (PASCAL3D+ names)
DEMO_CATEGORIES = ("car", "chair", "aeroplane", "sofa", "tvmonitor", "bottle")
