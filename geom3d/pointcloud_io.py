"""Point-cloud files: PLY (read and write), PCD (ASCII and binary) and XYZ (read).

`load_point_cloud` returns a `geom3d.PointCloud` (points (N, 3) float32, colors (N, 3) float32 in
[0, 1] or None); the algorithms on clouds live in `geom3d.pointcloud`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from aware3d_utils import atomic_write

from .errors import MeshError
from .pointcloud import PointCloud

__all__ = ["load_point_cloud", "save_point_cloud"]

_PCD_TYPES = {("F", 4): np.float32, ("F", 8): np.float64, ("U", 1): np.uint8, ("U", 2): np.uint16,
              ("U", 4): np.uint32, ("I", 1): np.int8, ("I", 2): np.int16, ("I", 4): np.int32}


def load_point_cloud(path: str | os.PathLike) -> PointCloud:
    """Read a point cloud (.ply, .pcd, .xyz) as a `PointCloud`; raises MeshError naming the file on bad input."""
    path = Path(path)
    if not path.is_file():
        raise MeshError(path, "file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".pcd":
            points, colors = _read_pcd(path)
        elif suffix == ".xyz":
            data = np.loadtxt(path, ndmin=2)
            points, colors = data[:, :3], (data[:, 3:6] / 255.0 if data.shape[1] >= 6 else None)
        elif suffix == ".ply":
            import trimesh

            cloud = trimesh.load(str(path), process=False)
            points = np.asarray(cloud.vertices)
            colors = getattr(cloud, "colors", None)
            if colors is None and hasattr(cloud, "visual") and getattr(cloud.visual, "kind", None) == "vertex":
                colors = cloud.visual.vertex_colors
            colors = None if colors is None or len(colors) != len(points) else np.asarray(colors)[:, :3] / 255.0
        else:
            raise MeshError(path, f"unknown point-cloud format {suffix!r} (known: .ply, .pcd, .xyz)")
    except MeshError:
        raise
    except Exception as exc:
        raise MeshError(path, f"cannot be read: {type(exc).__name__}: {exc}") from exc
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise MeshError(path, "holds no 3D points")
    if not np.isfinite(points).all():
        raise MeshError(path, "points contain NaN or infinite values")
    return PointCloud(torch.from_numpy(points.copy()),
                      None if colors is None else torch.as_tensor(colors, dtype=torch.float32))


def _read_pcd(path: Path):
    raw = path.read_bytes()
    header, offset = {}, 0
    while True:
        end = raw.index(b"\n", offset)
        line = raw[offset:end].decode("ascii", "replace").strip()
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    fields = header["FIELDS"]
    sizes = [int(s) for s in header["SIZE"]]
    types = header["TYPE"]
    counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
    n = int(header["POINTS"][0])
    mode = header["DATA"][0].lower()
    names = [f if c == 1 else f"{f}_{i}" for f, c in zip(fields, counts) for i in range(c)]
    dtype = np.dtype([(nm, _PCD_TYPES[(t, s)]) for f, s, t, c in zip(fields, sizes, types, counts)
                      for nm in ([f] if c == 1 else [f"{f}_{i}" for i in range(c)])])
    if mode == "ascii":
        table = np.loadtxt(raw[offset:].decode("ascii").splitlines(), ndmin=2)[:n]
        data = {nm: table[:, i] for i, nm in enumerate(names)}
    elif mode == "binary":
        data = np.frombuffer(raw, dtype=dtype, count=n, offset=offset)
    else:
        raise MeshError(path, f"PCD data mode {mode!r} is not supported (ascii, binary)")
    points = np.stack([np.asarray(data[a], dtype=np.float64) for a in ("x", "y", "z")], axis=1)
    colors = None
    if "rgb" in fields:  # packed as a float32 or uint32 holding 0x00RRGGBB
        packed = np.asarray(data["rgb"], dtype=np.float32).view(np.uint32)
        colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1) / 255.0
    return points, colors


def save_point_cloud(path: str | os.PathLike, points, colors=None) -> None:
    """Write a binary little-endian PLY (x, y, z float32; red, green, blue uint8), atomically.

    points: (N, 3), or a cloud with .points and .colors (`PointCloud`, `DepthPoints`) whose
    colours are used unless `colors` is given; colors: (N, 3) in [0, 1] (uint8 as is) or None.
    """
    path = Path(path)
    if hasattr(points, "points"):
        points, colors = points.points, (getattr(points, "colors", None) if colors is None else colors)
    pts = torch.as_tensor(points).detach().cpu().numpy().astype("<f4")
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise MeshError(path, f"points must be (N, 3), got {pts.shape}")
    if colors is not None and tuple(torch.as_tensor(colors).shape) != pts.shape:
        raise MeshError(path, f"colors must be (N, 3) like the points, got {tuple(torch.as_tensor(colors).shape)}")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    table = np.empty(len(pts), dtype=fields)
    table["x"], table["y"], table["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if colors is not None:
        c = torch.as_tensor(colors).detach().cpu()
        rgb = c.numpy() if c.dtype == torch.uint8 else (c.double().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        table["red"], table["green"], table["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    props = "".join(f"property {'float' if t == '<f4' else 'uchar'} {n}\n" for n, t in fields)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(pts)}\n{props}end_header\n"
    with atomic_write(path) as fh:
        fh.write(header.encode("ascii"))
        fh.write(table.tobytes())
