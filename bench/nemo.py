"""nemo benchmarks: fit_pose throughput (gathered scores vs the naive rendered-feature formulation),
end-to-end estimate_pose with the backbone, training throughput, and the contrastive loss's two
formulations.

    python bench/nemo.py [--quick] [--threads 2] [--device cuda]

fit_pose: oracle feature maps (a 1,000-vertex cuboid's own 128-d features at random poses on random
unit background), NeMo's grid (12 × 4 × 3 = 144 poses) + 30 Adam steps on the 2 best, at 40×48 and
80×100 feature maps, batch 1 and 32. The naive formulation renders a 128-channel feature image per
pose and step, one image at a time as the original code does (its images/s do not depend on the batch).
"""

from __future__ import annotations

import time
from functools import partial

import _common  # noqa: F401  (puts the repository root first on sys.path)
import torch
from _common import best_time, parse_args, table

import geom3d
import nemo
from nemo.oracle import oracle_feature_maps, random_viewpoints


def _bank(device, num_vertices=1000):
    mesh = geom3d.cuboid_mesh((-0.5, -0.22, -0.15), (0.5, 0.22, 0.15), num_vertices)
    return nemo.MeshBank({"car": mesh}, seed=0).to(device)


def _maps(bank, n, size, device):
    h, w = size
    gen = torch.Generator().manual_seed(0)
    vp = random_viewpoints(n, gen)
    focal = 3.75 * min(h, w)  # the cuboid spans about 40% of the map, as NeMo's crops
    cams = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"], focal=focal,
                                       viewport=1.0, image_size=(h, w))
    maps = oracle_feature_maps(bank.to("cpu"), ["car"] * n, cams, gen, occlude=0.4)
    bank.to(device)
    return maps.to(device), cams.K[0].to(device), cams


def bench_fit(args, device) -> str:
    bank = _bank(device)
    rows = []
    sizes = [(40, 48)] if args.quick else [(40, 48), (80, 100)]
    batches = [1, 8] if args.quick else [1, 32]
    repeats = 1 if args.quick else 3  # best of 3: one call is a second or two, and one timing is noisy
    for size in sizes:
        for B in batches:
            maps, K, cams = _maps(bank, B, size, device)
            seconds = best_time(partial(nemo.fit_pose, maps, K, bank, ["car"] * B, distance=5.0), repeats, 1)
            res = nemo.fit_pose(maps, K, bank, ["car"] * B, distance=5.0)
            R = torch.stack([geom3d.viewpoint_from_mapping(r, size).R for r in res]).cpu()
            acc = geom3d.pose_accuracy(geom3d.pose_error(R, cams.R), 3.14159265 / 18)
            rows.append([f"{size[0]}×{size[1]}", B, "gather (batched)", B / seconds, acc])
        maps, K, _ = _maps(bank, 1, size, device)
        seconds = best_time(partial(nemo.fit_pose, maps, K, bank, ["car"], distance=5.0, scoring="render"), repeats, 1)
        rows.append([f"{size[0]}×{size[1]}", "1 at a time", "naive (rendered 128-ch features)", 1 / seconds, ""])
    return table(["feature map", "batch", "formulation", "images/s", "Acc@π/18 (oracle, 40% occluded)"], rows)


def bench_estimate(args, device) -> str:
    categories = ["car"]
    backbone = nemo.BackboneConfig(depths=(3, 4, 6, 3), hidden_sizes=(256, 512, 1024, 2048), embedding_size=64,
                                   layer_type="bottleneck", decoder_width=256, feature_dim=128)
    if args.quick:
        backbone = nemo.BackboneConfig(depths=(1, 1, 1, 1), hidden_sizes=(16, 32, 64, 128), decoder_width=64)
    net = nemo.FeatureNet(backbone).to(device)
    config = nemo.resolve_config({"categories": categories})
    model = nemo.NemoModel(net, _bank(device), config, categories)
    H, W = (320, 416)  # 320×400 padded to multiples of 32
    rows = []
    for B in ([1, 2] if args.quick or device.type == "cpu" else [1, 32, 128]):
        images = torch.rand(B, 3, H, W, device=device)
        seconds = best_time(partial(model.estimate_pose, images, categories * B), 1 if args.quick else 2, 1)
        feats = best_time(partial(model.features, images), 1 if args.quick else 2, 1)
        rows.append([f"{H}×{W}", B, "ResNet-50 + decoder" if not args.quick else "tiny ResNet", B / seconds, B / feats])
    return table(["input", "batch", "backbone", "estimate_pose images/s", "backbone only images/s"], rows)


def bench_train(args, device) -> str:
    import data3d  # noqa: F401
    from nemo.contrastive import contrastive_loss, vertex_targets

    rows = []
    crop = 128 if not args.quick else 64
    backbone = nemo.BackboneConfig() if not args.quick else nemo.BackboneConfig(
        depths=(1, 1, 1, 1), hidden_sizes=(16, 32, 64, 128), decoder_width=64)
    net = nemo.FeatureNet(backbone).to(device)
    bank = _bank(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    B = 8
    gen = torch.Generator().manual_seed(0)
    vp = random_viewpoints(B, gen)
    cams = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                       focal=3.0 * crop, viewport=1.0, image_size=(crop, crop)).to(device)
    images = torch.rand(B, 3, crop, crop, device=device)
    index = torch.zeros(B, dtype=torch.long, device=device)

    def step():
        feats = net(images)
        t = vertex_targets(feats, cams, bank, index, 8, 20, gen)
        loss, _ = contrastive_loss(t, bank, radius=0.1875 * crop)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bank.update_vertices(index, t.features, t.visible)

    seconds = best_time(step, 2 if not args.quick else 1, 1)
    rows.append([f"{crop}×{crop}", B, "ResNet-18-like (default config)" if not args.quick else "tiny", B / seconds])
    return table(["crop", "batch", "backbone", "train images/s"], rows)


def bench_loss(args, device) -> str:
    """The contrastive loss + its backward at the CPU acceptance benchmark's sizes (16 crops, four
    600-vertex cuboids padded to 674, 2,560 clutter features, 128-d): the formulation used
    (visible rows, split normaliser) against the plain (B, V, V + K) cross-entropy."""
    import dataclasses

    import torch.nn.functional as F

    from nemo.contrastive import VertexTargets, contrastive_loss, plain_contrastive_ce

    gen = torch.Generator().manual_seed(0)
    B, V = (16, 674) if not args.quick else (8, 300)
    bank = _bank(device, num_vertices=V)  # 128-d features, 2,560 clutter features
    B, V, D = B, bank.features.shape[1], bank.features.shape[2]
    feats = F.normalize(torch.randn(B, V, D, generator=gen), dim=-1).to(device)
    visible = (torch.rand(B, V, generator=gen) < 0.54).to(device)  # the benchmark's share of visible vertices
    base = VertexTargets(torch.zeros(B, dtype=torch.long, device=device), torch.rand(B, V, 2, generator=gen).to(device)
                         * 128, visible, feats, feats[:, :20], torch.ones(B, 20, dtype=torch.bool, device=device))

    def run(kind):
        t = dataclasses.replace(base, features=feats.clone().requires_grad_(True))
        if kind == "fast":
            loss = contrastive_loss(t, bank, radius=24.0)[0]
        else:
            loss = plain_contrastive_ce(t, bank, radius=24.0)
        loss.backward()

    plain = best_time(lambda: run("plain"), 3, 1)
    fast = best_time(lambda: run("fast"), 3, 1)
    rows = [["plain (B, V, V+K) cross-entropy", B, V, 1000 * plain, 1.0],
            ["visible rows + split normaliser", B, V, 1000 * fast, plain / fast]]
    return table(["formulation", "batch", "vertices", "loss+backward ms", "speed-up"], rows)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        _run(args)


def _run(args) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    print(f"device: {device}, torch threads: {torch.get_num_threads()}\n")
    print("### fit_pose (grid 144 + 30 steps)\n")
    print(bench_fit(args, device), flush=True)
    print("\n### estimate_pose end to end\n")
    print(bench_estimate(args, device), flush=True)
    print("\n### training step (NeMo contrastive, 1,000-vertex cuboid)\n")
    print(bench_train(args, device), flush=True)
    print("\n### contrastive loss + backward\n")
    print(bench_loss(args, device), flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
