"""Project and unproject 1M points with geom3d.Cameras, against kornia on the same input."""

from __future__ import annotations

import kornia
import torch
from _common import best_time, parse_args, table

import geom3d


def main() -> None:
    args = parse_args(__doc__)
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        _run(args)


def _run(args) -> None:
    n = 100_000 if args.quick else 1_000_000
    repeats = 3 if args.quick else 7
    g = torch.Generator().manual_seed(0)
    cam = geom3d.Cameras.look_at([0.5, -4.0, 1.0], [0, 0, 0], focal=500.0, image_size=(480, 640))
    # Points in front of the camera with a margin (depth 1-8, inside the field of view): near the
    # camera plane x/z is ill-conditioned, and two correct float32 projections may differ by pixels.
    depth = torch.rand(n, generator=g) * 7 + 1
    uv = torch.rand(n, 2, generator=g) * torch.tensor([640.0, 480.0]) - 0.5
    points = cam.unproject_points(uv, depth)

    E = torch.eye(4)
    E[:3, :3], E[:3, 3] = cam.R, cam.t

    def kornia_project():
        return kornia.geometry.camera.project_points(kornia.geometry.linalg.transform_points(E[None], points[None])[0],
                                                     cam.K)

    def kornia_unproject():
        cam_pts = kornia.geometry.camera.unproject_points(uv, depth[:, None], cam.K)
        return kornia.geometry.linalg.transform_points(torch.linalg.inv(E)[None], cam_pts[None])[0]

    torch.testing.assert_close(cam.project(points), kornia_project(), rtol=1e-4, atol=1e-2)
    torch.testing.assert_close(cam.unproject_points(uv, depth), kornia_unproject(), rtol=1e-4, atol=1e-4)
    rows = []
    for name, ours, theirs in (("project (world -> pixels)", lambda: cam.project(points), kornia_project),
                               ("unproject (pixels + depth -> world)", lambda: cam.unproject_points(uv, depth),
                                kornia_unproject)):
        t_ours, t_kornia = best_time(ours, repeats), best_time(theirs, repeats)
        rows.append([name, f"{n:,}", t_ours * 1e3, t_kornia * 1e3, t_kornia / t_ours])
    print(table(["operation", "points", "geom3d ms", "kornia ms", "speed-up vs kornia"], rows))


if __name__ == "__main__":
    main()
