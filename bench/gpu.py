"""The GPU check: CUDA against the CPU on the same inputs, then the GPU throughput table.

    python bench/gpu.py                    # on a CUDA machine: checks + table (≤ 8 minutes on one H100/H200)
    python bench/gpu.py --cpu-smoke        # tiny shapes on the CPU (automatic without CUDA): keeps the code alive
    python bench/gpu.py --only checks,raster --peak-tflops 989

(a) Checks, CUDA against CPU on identical inputs (TF32 switched off while they run, so both sides
compute in true float32); each row prints its measure, its tolerance and PASS / FAIL:
  - rasterizer: `rasterize` fragments of a 1,100-vertex cuboid and an icosphere: pix_to_face equal on
    ≥ 99.9 % of pixels (a pixel centre within rounding of a shared edge may go either way); where the
    face agrees, depth (relative) and barycentrics within 1e-4; gradient of a 128-channel feature
    render w.r.t. the vertex features within 1e-4 (relative L2);
  - fit_pose: oracle feature maps, grid only (steps=0): the same grid pose and loss within 1e-5;
    full fit (30 Adam steps): losses within 1e-3 and rotations within 0.5° (the Adam steps follow
    visibility changes, so last-bit differences may move a pose a little);
  - contrastive loss: loss within 1e-5 (relative) and its gradient within 1e-4 (relative L2);
  - NeMo training step (FeatureNet + vertex_targets + contrastive_loss + backward + bank update):
    loss within 1e-4, gradients within 1e-3 (relative L2), bank features after the update within 1e-4;
  - splat renderer: winning point index equal on ≥ 99.99 % of pixels, depth and colour within 1e-5.
(b) The table (every rate measured on the device in this run; `× CPU` divides by the same work
on this machine's CPU, measured in the same run; with --cpu-smoke both sides are the CPU):
  - rasterizer renders/s at B = 16 and 512 (NeMo size: 80×100, 1,100-vertex cuboid, 128 channels):
    visibility + fragments without grad, and rasterize + interpolate forward + backward;
  - fit_pose images/s at 40×48 and 80×100, batch 256 (grid 144 + 30 steps);
  - estimate_pose end to end with a ResNet-50 FeatureNet (random weights from a transformers
    config) at 320×416, and the backbone alone;
  - NeMo training images/s (default backbone, 256² crops, AdamW, bank update);
  - ControlNet SD 1.5-shaped pipeline (random weights built from configs, 512², 20 DDIM steps +
    CFG, fp16, batch 8): the diffusers call and datagen's ControlNetGenerator, images/s against the
    arithmetic limit = peak / FLOPs per image (FLOPs counted by torch.utils.flop_counter: matmuls,
    convolutions and fused attention; elementwise work is not counted, so the limit is optimistic);
  - WanVACE-1.3B-shaped transformer (diffusers WanVACETransformer3DModel, random weights, bf16,
    81 frames at 480×832 = 32,760 tokens, 512 text tokens): seconds per denoising step (two
    forwards: with and without the prompt, as WanVACEPipeline runs CFG) and its share of the peak.
The assumed peak is the dense fp16/bf16 tensor-core rate of the device (H100 SXM / H200: 989
TFLOP/s, H100 NVL: 835, H100 PCIe: 756, A100: 312); --peak-tflops overrides it.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import _common  # noqa: F401  (puts the repository root first on sys.path)
import torch
from _common import table

import geom3d
import nemo
from nemo.oracle import oracle_feature_maps, random_viewpoints

PEAKS_TFLOPS = (("H200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0))
SECTIONS = ("checks", "raster", "fit", "estimate", "train", "controlnet", "wan")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every shape the script uses; FULL on a GPU, SMOKE for the CPU run of CI."""

    raster_size: tuple[int, int]
    raster_vertices: int
    channels: int
    raster_batches: tuple[int, ...]
    fit_sizes: tuple[tuple[int, int], ...]
    fit_batch: int
    fit_cpu_batch: int
    fit_steps: int
    estimate_size: tuple[int, int]
    estimate_batches: tuple[int, ...]
    resnet50: bool
    train_crop: int
    train_batches: tuple[int, ...]
    tiny_backbone: bool
    cn_size: int
    cn_steps: int
    cn_batch: int
    wan_frames: int
    wan_size: tuple[int, int]
    wan_text: int
    tiny_wan: bool
    check_batch: int
    splat_points: int
    reps: int


FULL = Sizes(raster_size=(80, 100), raster_vertices=1100, channels=128, raster_batches=(16, 512),
             fit_sizes=((40, 48), (80, 100)), fit_batch=256, fit_cpu_batch=16, fit_steps=30,
             estimate_size=(320, 416), estimate_batches=(1, 64), resnet50=True, train_crop=256, train_batches=(8, 32),
             tiny_backbone=False, cn_size=512, cn_steps=20, cn_batch=8, wan_frames=81, wan_size=(480, 832),
             wan_text=512, tiny_wan=False, check_batch=16, splat_points=200_000, reps=3)
SMOKE = Sizes(raster_size=(40, 48), raster_vertices=200, channels=16, raster_batches=(2, 4),
              fit_sizes=((40, 48),), fit_batch=2, fit_cpu_batch=2, fit_steps=3,
              estimate_size=(64, 64), estimate_batches=(1,), resnet50=False, train_crop=64, train_batches=(2,),
              tiny_backbone=True, cn_size=64, cn_steps=2, cn_batch=2, wan_frames=5, wan_size=(32, 32),
              wan_text=8, tiny_wan=True, check_batch=2, splat_points=5_000, reps=1)

TINY_BACKBONE = nemo.BackboneConfig(depths=(1, 1, 1, 1), hidden_sizes=(16, 32, 64, 128), decoder_width=64)
RESNET50 = nemo.BackboneConfig(depths=(3, 4, 6, 3), hidden_sizes=(256, 512, 1024, 2048), embedding_size=64,
                               layer_type="bottleneck", decoder_width=256, feature_dim=128)


# ----------------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 1) -> float:
    """Best wall-clock seconds of `reps` calls after `warmup` calls, the device synchronised
    before the clock starts and before it stops (CUDA work is asynchronous)."""
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(max(1, reps)):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / max(‖b‖, tiny), both in float64 on the CPU."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def peak_for_name(name: str) -> tuple[float | None, str]:
    """(TFLOP/s, where the number comes from) of a GPU's dense fp16/bf16 tensor-core arithmetic,
    from its CUDA device name (first match of PEAKS_TFLOPS, so "H100 PCIe" is not taken for "H100")."""
    for key, value in PEAKS_TFLOPS:
        if key in name:
            return value, f"{key} dense fp16/bf16 tensor cores (datasheet)"
    return None, f"unknown device {name!r} (pass --peak-tflops)"


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override is not None:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, "no GPU peak on the CPU (pass --peak-tflops to get a ratio)"
    return peak_for_name(torch.cuda.get_device_name(device))


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of fn, counted by torch.utils.flop_counter (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclasses.dataclass
class Check:
    name: str
    measure: str
    value: float
    tolerance: float
    higher_is_better: bool = False

    @property
    def ok(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value >= self.tolerance if self.higher_is_better else self.value <= self.tolerance

    def row(self) -> list:
        bound = f"≥ {self.tolerance:g}" if self.higher_is_better else f"≤ {self.tolerance:g}"
        return [self.name, self.measure, f"{self.value:.3g}", bound, "PASS" if self.ok else "FAIL"]


@dataclasses.dataclass
class Run:
    device: torch.device
    sizes: Sizes
    peak: float | None
    peak_source: str
    smoke: bool
    checks: list[Check] = dataclasses.field(default_factory=list)
    rows: list[list] = dataclasses.field(default_factory=list)

    def row(self, part: str, what: str, shape: str, rate: float, unit: str, ratio: str = "") -> None:
        if self.smoke and "CPU" in ratio:
            ratio += " (both on the CPU: noise)"
        self.rows.append([part, what, shape, rate, unit, ratio])
        print(f"  {part}: {what} [{shape}] {rate:.4g} {unit} {ratio}", flush=True)


def _no_tf32():
    """Context: TF32 off for matmuls and convolutions (checks compare true float32)."""
    class _Ctx:
        def __enter__(self):
            self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

        def __exit__(self, *exc):
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved

    return _Ctx()


def _cuboid(num_vertices: int) -> geom3d.Mesh:
    return geom3d.cuboid_mesh([-0.16, -0.455, -0.125], [0.16, 0.455, 0.125], num_vertices)  # car-shaped


def _cameras(batch: int, size, seed: int, focal: float | None = None) -> geom3d.Cameras:
    """Random PASCAL3D+-style viewpoints around the origin (distance 5), CPU float32."""
    gen = torch.Generator().manual_seed(seed)
    az = torch.rand(batch, generator=gen) * 2 * math.pi
    el = torch.rand(batch, generator=gen) * 0.8 - 0.2
    th = (torch.rand(batch, generator=gen) - 0.5) * 0.2
    f = focal if focal is not None else 3.75 * min(size)
    return geom3d.viewpoint_to_cameras(az, el, th, 5.0, f, 1.0, image_size=tuple(size))


def _bank(device, num_vertices: int = 1000) -> nemo.MeshBank:
    mesh = geom3d.cuboid_mesh((-0.5, -0.22, -0.15), (0.5, 0.22, 0.15), num_vertices)
    return nemo.MeshBank({"car": mesh}, seed=0).to(device)


def _oracle_maps(bank_cpu: nemo.MeshBank, n: int, size, seed: int = 0):
    """n oracle feature maps (CPU) of the bank's car at random poses (20 % of pixels occluded by
    noise), the feature map's K and the true cameras; as bench/nemo.py."""
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    vp = random_viewpoints(n, gen)
    cams = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                       focal=3.75 * min(h, w), viewport=1.0, image_size=(h, w))
    maps = oracle_feature_maps(bank_cpu, ["car"] * n, cams, gen, occlude=0.2)
    return maps, cams.K[0], cams


def _fit_rotations(results, size) -> torch.Tensor:
    return torch.stack([geom3d.viewpoint_from_mapping(r, size).R for r in results]).double().cpu()


# ----------------------------------------------------------------------------------- (a) checks
def check_raster(run: Run) -> None:
    import trimesh

    dev, s = run.device, run.sizes
    sphere = geom3d.Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=3 if run.smoke else 4, radius=0.4))
    for name, mesh, size in (("cuboid", _cuboid(s.raster_vertices), s.raster_size),
                             ("icosphere", sphere, (3 * s.raster_size[0], 3 * s.raster_size[1]))):
        cams = _cameras(s.check_batch, size, seed=1)
        gen = torch.Generator().manual_seed(2)
        feats = torch.randn(mesh.num_vertices, s.channels, generator=gen)
        target = torch.randn(s.check_batch, *size, s.channels, generator=gen)
        out = {}
        for where in ("cpu", dev):
            f = feats.to(where).requires_grad_(True)
            fr = geom3d.rasterize((mesh.vertices.to(where), mesh.faces.to(where)), cams.to(device=where))
            geom3d.interpolate(fr, f).backward(target.to(where))
            out[str(where)] = (fr.pix_to_face.cpu(), fr.depth.detach().cpu(), fr.bary.detach().cpu(), f.grad.cpu())
        (p0, d0, b0, g0), (p1, d1, b1, g1) = out["cpu"], out[str(dev)]
        same = p0 == p1
        both = same & (p0 >= 0)
        depth_err = float(((d1 - d0).abs() / d0.abs().clamp_min(1e-12))[both].max()) if both.any() else 0.0
        bary_err = float((b1 - b0).abs()[both].max()) if both.any() else 0.0
        run.checks += [Check(f"raster {name}", "pix_to_face equal (fraction)", float(same.double().mean()), 0.999,
                             True),
                       Check(f"raster {name}", "depth rel. error (same face)", depth_err, 1e-4),
                       Check(f"raster {name}", "bary abs. error (same face)", bary_err, 1e-4),
                       Check(f"raster {name}", "feature grad rel. L2", rel_l2(g1, g0), 1e-4)]


def check_fit(run: Run) -> None:
    dev, s = run.device, run.sizes
    size = s.fit_sizes[0]
    bank_cpu = _bank("cpu")
    bank_dev = copy.deepcopy(bank_cpu).to(dev)
    maps, K, _ = _oracle_maps(bank_cpu, max(2, s.check_batch // 2), size, seed=3)
    n = maps.shape[0]
    for steps, loss_tol, deg_tol in ((0, 1e-5, 1e-3), (s.fit_steps, 1e-3, 0.5)):
        a = nemo.fit_pose(maps, K, bank_cpu, ["car"] * n, steps=steps, distance=5.0)
        b = nemo.fit_pose(maps.to(dev), K.to(dev), bank_dev, ["car"] * n, steps=steps, distance=5.0)
        loss = max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b))
        deg = float(geom3d.pose_error(_fit_rotations(a, size), _fit_rotations(b, size)).max()) * 180 / math.pi
        what = "grid only" if steps == 0 else f"grid + {steps} steps"
        run.checks += [Check(f"fit_pose {what}", "loss abs. difference (max)", loss, loss_tol),
                       Check(f"fit_pose {what}", "rotation difference ° (max)", deg, deg_tol)]


def _loss_inputs(device, batch: int, vertices: int, seed: int = 0):
    import torch.nn.functional as F

    from nemo.contrastive import VertexTargets

    gen = torch.Generator().manual_seed(seed)
    bank = _bank("cpu", num_vertices=vertices)
    B, V, D = batch, bank.features.shape[1], bank.features.shape[2]
    feats = F.normalize(torch.randn(B, V, D, generator=gen), dim=-1)
    targets = VertexTargets(torch.zeros(B, dtype=torch.long), torch.rand(B, V, 2, generator=gen) * 128,
                            torch.rand(B, V, generator=gen) < 0.54, feats, F.normalize(
                                torch.randn(B, 20, D, generator=gen), dim=-1), torch.ones(B, 20, dtype=torch.bool))
    moved = VertexTargets(*(getattr(targets, f.name).to(device) for f in dataclasses.fields(VertexTargets)))
    return moved, bank.to(device)


def check_loss(run: Run) -> None:
    from nemo.contrastive import contrastive_loss

    out = {}
    for where in ("cpu", run.device):
        t, bank = _loss_inputs(where, run.sizes.check_batch, 674 if not run.smoke else 200)
        f = t.features.clone().requires_grad_(True)
        loss, _ = contrastive_loss(dataclasses.replace(t, features=f), bank, radius=24.0)
        loss.backward()
        out[str(where)] = (float(loss), f.grad.cpu())
    (l0, g0), (l1, g1) = out["cpu"], out[str(run.device)]
    run.checks += [Check("contrastive loss", "loss rel. difference", abs(l1 - l0) / abs(l0), 1e-5),
                   Check("contrastive loss", "gradient rel. L2", rel_l2(g1, g0), 1e-4)]


def _train_setup(crop: int, batch: int, tiny: bool, seed: int = 0):
    """CPU network, bank, images, cameras and index of a NeMo training batch."""
    torch.manual_seed(seed)
    net = nemo.FeatureNet(TINY_BACKBONE if tiny else nemo.BackboneConfig())
    bank = _bank("cpu")
    gen = torch.Generator().manual_seed(seed)
    vp = random_viewpoints(batch, gen)
    cams = geom3d.viewpoint_to_cameras(vp["azimuth"], vp["elevation"], vp["theta"], vp["distance"],
                                       focal=3.0 * crop, viewport=1.0, image_size=(crop, crop))
    images = torch.rand(batch, 3, crop, crop, generator=gen)
    return net, bank, images, cams, torch.zeros(batch, dtype=torch.long)


def nemo_loss(net, bank, images, cams, index, seed: int, crop: int):
    """Features → vertex_targets → contrastive_loss, as nemo.train's step (default loss settings)."""
    from nemo.contrastive import contrastive_loss, vertex_targets

    features = net(images)
    gen = torch.Generator().manual_seed(seed)
    targets = vertex_targets(features, cams, bank, index, net.stride, 20, gen)
    loss, _ = contrastive_loss(targets, bank, 0.07, 0.1875 * crop, 0.005, 0.1)
    return loss, targets


def nemo_step(net, bank, optimizer, images, cams, index, seed: int, crop: int) -> torch.Tensor:
    """One whole training step of nemo.train (without the run folder's logging and checkpoints)."""
    loss, targets = nemo_loss(net, bank, images, cams, index, seed, crop)
    if not torch.isfinite(loss):
        raise RuntimeError(f"training step diverged (loss {float(loss)})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    bank.update_vertices(index, targets.features, targets.visible, "nemo")
    bank.push_clutter(targets.clutter.detach()[targets.clutter_valid])
    return loss


def check_train(run: Run) -> None:
    crop = 128 if not run.smoke else 64
    net, bank, images, cams, index = _train_setup(crop, max(2, run.sizes.check_batch // 4), run.smoke)
    out = {}
    for where in ("cpu", run.device):
        n, b = copy.deepcopy(net).to(where).train(), copy.deepcopy(bank).to(where)
        loss, targets = nemo_loss(n, b, images.to(where), cams.to(device=where), index.to(where), 7, crop)
        loss.backward()
        grads = torch.cat([p.grad.reshape(-1).cpu() for p in n.parameters() if p.grad is not None])
        b.update_vertices(index.to(where), targets.features, targets.visible, "nemo")
        out[str(where)] = (float(loss), grads, b.features.cpu())
    (l0, g0, f0), (l1, g1, f1) = out["cpu"], out[str(run.device)]
    run.checks += [Check("NeMo training step", "loss rel. difference", abs(l1 - l0) / abs(l0), 1e-4),
                   Check("NeMo training step", "gradients rel. L2", rel_l2(g1, g0), 1e-3),
                   Check("NeMo training step", "bank features abs. (max)", float((f1 - f0).abs().max()), 1e-4)]


def check_splat(run: Run) -> None:
    s = run.sizes
    gen = torch.Generator().manual_seed(4)
    points = torch.randn(s.splat_points, 3, generator=gen) * 0.4
    colors = torch.rand(s.splat_points, 3, generator=gen)
    size = (3 * s.raster_size[0], 3 * s.raster_size[1])
    cams = _cameras(4, size, seed=5, focal=1.5 * max(size))
    a = geom3d.splat(points, colors, cams, radius=1.0)
    b = geom3d.splat(points.to(run.device), colors.to(run.device), cams.to(device=run.device), radius=1.0)
    same = a.index == b.index.cpu()
    run.checks += [Check("splat", "winning index equal (fraction)", float(same.double().mean()), 0.9999, True),
                   Check("splat", "depth abs. error (same index)", float((a.depth - b.depth.cpu()).abs()[same].max()),
                         1e-5),
                   Check("splat", "rgb abs. error (same index)", float((a.rgb - b.rgb.cpu()).abs()[same].max()), 1e-5)]


def run_checks(run: Run) -> None:
    if run.device.type != "cuda":
        print("SKIP CUDA-vs-CPU comparison: no CUDA device; the checks run the CPU against the CPU "
              "(this exercises their code only, it checks nothing about CUDA)", flush=True)
    with _no_tf32():
        for fn in (check_raster, check_fit, check_loss, check_train, check_splat):
            start = time.perf_counter()
            fn(run)
            print(f"  {fn.__name__}: {time.perf_counter() - start:.1f} s", flush=True)


# ----------------------------------------------------------------------------------- (b) table
def _raster_steps(where, mesh, cams, feats, target, channels: int) -> dict[str, Callable[[], None]]:
    """The two timed rasterizer workloads on device `where`."""
    m = (mesh.vertices.to(where), mesh.faces.to(where))
    c = cams.to(device=where)
    f = feats.to(where).requires_grad_(True)
    t = target.to(where)

    def forward():
        with torch.no_grad():
            geom3d.rasterize(m, c)

    def render():
        f.grad = None
        geom3d.interpolate(geom3d.rasterize(m, c), f).backward(t)

    return {"visibility + fragments, no grad": forward, f"rasterize + interpolate {channels}-ch, fwd + bwd": render}


def bench_raster(run: Run) -> None:
    dev, s = run.device, run.sizes
    mesh = _cuboid(s.raster_vertices)
    cpu_per_render = {}
    for batch in s.raster_batches:
        cams = _cameras(batch, s.raster_size, seed=0, focal=375.0 * s.raster_size[0] / 80)
        gen = torch.Generator().manual_seed(0)
        feats = torch.randn(mesh.num_vertices, s.channels, generator=gen)
        target = torch.randn(batch, *s.raster_size, s.channels, generator=gen)

        shape = f"B={batch}, {s.raster_size[0]}×{s.raster_size[1]}"
        if batch == s.raster_batches[0]:  # the CPU baseline, per render (linear in the batch)
            for what, fn in _raster_steps("cpu", mesh, cams, feats, target, s.channels).items():
                cpu_per_render[what] = timed(fn, torch.device("cpu"), s.reps) / batch
        for what, fn in _raster_steps(dev, mesh, cams, feats, target, s.channels).items():
            seconds = timed(fn, dev, s.reps)
            run.row("rasterizer", what, shape, batch / seconds, "renders/s",
                    f"{cpu_per_render[what] * batch / seconds:.1f}× CPU")


def bench_fit(run: Run) -> None:
    dev, s = run.device, run.sizes
    bank_cpu = _bank("cpu")
    bank_dev = copy.deepcopy(bank_cpu).to(dev)
    for size in s.fit_sizes:
        base = min(32, s.fit_batch)
        maps, K, cams = _oracle_maps(bank_cpu, base, size)
        reps = -(-s.fit_batch // base)  # the maps repeat: the work per image is the same
        maps = maps.repeat(reps, 1, 1, 1)[: s.fit_batch]
        truth = cams.R.repeat(reps, 1, 1)[: s.fit_batch].double()
        cpu_maps = maps[: s.fit_cpu_batch]
        cpu_s = timed(partial(nemo.fit_pose, cpu_maps, K, bank_cpu, ["car"] * len(cpu_maps), steps=s.fit_steps,
                              distance=5.0), torch.device("cpu"), 1)
        cpu_rate = len(cpu_maps) / cpu_s
        maps_dev = maps.to(dev)
        fit = partial(nemo.fit_pose, maps_dev, K.to(dev), bank_dev, ["car"] * len(maps_dev), steps=s.fit_steps,
                      distance=5.0)
        seconds = timed(fit, dev, max(1, s.reps - 1))
        acc = geom3d.pose_accuracy(geom3d.pose_error(_fit_rotations(fit(), size), truth), math.pi / 18)
        run.row("fit_pose", f"grid 144 + {s.fit_steps} steps (oracle Acc@π/18 {acc:.2f})",
                f"B={s.fit_batch}, {size[0]}×{size[1]}", len(maps_dev) / seconds, "images/s",
                f"{len(maps_dev) / seconds / cpu_rate:.1f}× CPU (B={len(cpu_maps)})")


def bench_estimate(run: Run) -> None:
    dev, s = run.device, run.sizes
    net = nemo.FeatureNet(RESNET50 if s.resnet50 else TINY_BACKBONE).to(dev)
    model = nemo.NemoModel(net, _bank(dev), nemo.resolve_config({"categories": ["car"]}), ["car"])
    H, W = s.estimate_size
    name = "ResNet-50 FeatureNet" if s.resnet50 else "tiny ResNet FeatureNet"
    for batch in s.estimate_batches:
        images = torch.rand(batch, 3, H, W, device=dev)
        seconds = timed(partial(model.estimate_pose, images, ["car"] * batch), dev, max(1, s.reps - 1))
        backbone = timed(partial(model.features, images), dev, s.reps)
        run.row("estimate_pose", f"end to end, {name}", f"B={batch}, {H}×{W}", batch / seconds, "images/s",
                f"backbone alone {batch / backbone:.3g} images/s")


def bench_train(run: Run) -> None:
    dev, s = run.device, run.sizes
    crop = s.train_crop
    cpu_rate = None
    for batch in s.train_batches:
        net, bank, images, cams, index = _train_setup(crop, batch, s.tiny_backbone)
        if cpu_rate is None:
            n, b = copy.deepcopy(net).train(), copy.deepcopy(bank)
            opt = torch.optim.AdamW(n.parameters(), lr=1e-4, weight_decay=1e-4)
            cpu_rate = batch / timed(partial(nemo_step, n, b, opt, images, cams, index, 0, crop),
                                     torch.device("cpu"), 1)
        net, bank = net.to(dev).train(), bank.to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-4)
        imgs, c, idx = images.to(dev), cams.to(device=dev), index.to(dev)
        seconds = timed(partial(nemo_step, net, bank, opt, imgs, c, idx, 0, crop), dev, s.reps)
        what = "default backbone (ResNet-18-like)" if not s.tiny_backbone else "tiny backbone"
        run.row("NeMo training", what, f"B={batch}, {crop}×{crop}", batch / seconds, "images/s",
                f"{batch / seconds / cpu_rate:.1f}× CPU (B={s.train_batches[0]})")


def build_sd15_folder(folder: Path, device: torch.device, tiny: bool) -> Path:
    """A StableDiffusionControlNetPipeline saved in `folder`: the tests' tiny one, or the SD 1.5
    architecture at random weights built on `device` (bench/controlnet.py's builder)."""
    if tiny:
        from datagen.controlnet import build_tiny_pipeline

        build_tiny_pipeline(folder, "sd15")
        return folder
    from controlnet import build_sd15_size_pipeline  # bench/controlnet.py (bench/ is on sys.path)

    return build_sd15_size_pipeline(folder, device)


def bench_controlnet(run: Run) -> None:
    import diffusers
    import numpy as np
    import transformers
    from PIL import Image

    from datagen.controlnet import ControlNetGenerator

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    dev, s = run.device, run.sizes
    cuda = dev.type == "cuda"
    size, steps, batch = s.cn_size, s.cn_steps, s.cn_batch
    rng = np.random.default_rng(0)
    conditions = [np.where(rng.random((size, size, 1)) < 0.05, 255, 0).astype(np.uint8).repeat(3, 2)
                  for _ in range(batch)]
    prompts = ["a photo of a car, best quality, extremely detailed"] * batch
    negatives = ["lowres, bad anatomy, worst quality"] * batch
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = build_sd15_folder(Path(tmp) / "pipe", dev, tiny=not cuda)
        gen = ControlNetGenerator({"model": str(folder), "steps": steps, "guidance": 9.0, "image_size": size,
                                   "batch_size": batch, "dtype": "fp16" if cuda else "fp32"}, device=str(dev))
        pipe = gen.pipe
        print(f"  controlnet: built, saved and loaded in {time.perf_counter() - start:.0f} s "
              f"(attention: {', '.join(sorted(gen.attention_processors))})", flush=True)

        def call(n_steps: int):
            with torch.inference_mode():
                return pipe(prompt=prompts, negative_prompt=negatives, image=[Image.fromarray(c) for c in conditions],
                            num_inference_steps=n_steps, guidance_scale=9.0, eta=1.0, height=size, width=size,
                            generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
                            output_type="np").images

        # FLOPs of the whole call from two short calls: text encoder + VAE decoder once, denoiser per step
        one, two = count_flops(lambda: call(1)), count_flops(lambda: call(2))
        flops = one + (steps - 1) * (two - one)
        label = "fp16" if cuda else "fp32"
        limit = "" if run.peak is None else f", arithmetic limit {batch / (flops / (run.peak * 1e12)):.3g} images/s"
        print(f"  controlnet: {flops / batch / 1e9:.4g} GFLOP per image{limit}", flush=True)
        seeds = list(range(batch))
        for what, fn in ((f"diffusers pipeline call, batch {batch}", lambda: call(steps)),
                         (f"datagen ControlNetGenerator, batch {batch}",
                          lambda: gen.generate(conditions, prompts, negatives, seeds))):
            # the plain call decodes the batch at once; the generator decodes one latent at a time (its
            # bit-exact regeneration guard, datagen.controlnet's docstring)
            (pipe.vae.disable_slicing if what.startswith("diffusers") else pipe.vae.enable_slicing)()
            seconds = timed(fn, dev, max(1, s.reps - 1))
            rate = batch / seconds
            share = "" if run.peak is None else \
                f"{100 * rate * flops / batch / (run.peak * 1e12):.1f}% of arithmetic limit"
            run.row("ControlNet SD1.5", what, f"{size}², {steps} steps + CFG, {label}", rate, "images/s", share)


WAN_13B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
               text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
               qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
               vace_layers=list(range(0, 30, 2)), vace_in_channels=96)  # Wan2.1-VACE-1.3B-diffusers
WAN_TINY = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
                text_dim=32, freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", rope_max_seq_len=32, vace_layers=[0, 2], vace_in_channels=96)


def bench_wan(run: Run) -> None:
    import diffusers

    if not hasattr(diffusers, "WanVACETransformer3DModel"):
        print(f"SKIP WanVACE: diffusers {diffusers.__version__} has no WanVACETransformer3DModel", flush=True)
        return
    dev, s = run.device, run.sizes
    dtype = torch.bfloat16  # as Wan runs (on the CPU too: the smoke run keeps this path alive)
    config = WAN_TINY if s.tiny_wan else WAN_13B
    torch.manual_seed(0)
    with torch.device(dev):
        model = diffusers.WanVACETransformer3DModel(**config)
    model = model.to(device=dev, dtype=dtype).eval()
    # as from_pretrained(torch_dtype=bf16) loads it: the model's _keep_in_fp32_modules stay float32
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if keep & set(name.split(".")):
            tensor.data = tensor.data.float()
    params = sum(p.numel() for p in model.parameters())
    T = (s.wan_frames - 1) // 4 + 1  # Wan's VAE: 4× in time (first frame alone), 8× in space
    h, w = s.wan_size[0] // 8, s.wan_size[1] // 8
    tokens = T * (h // 2) * (w // 2)
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, T, h, w, generator=gen).to(dev, dtype)
    control = torch.randn(1, config["vace_in_channels"], T, h, w, generator=gen).to(dev, dtype)
    text = torch.randn(1, s.wan_text, config["text_dim"], generator=gen).to(dev, dtype)
    timestep = torch.tensor([500], device=dev)

    def forward():
        with torch.inference_mode():
            return model(latents, timestep, text, control_hidden_states=control, return_dict=False)[0]

    flops = count_flops(forward)
    seconds = timed(forward, dev, max(1, s.reps - 1))
    share = "" if run.peak is None else f"{100 * flops / seconds / (run.peak * 1e12):.1f}% of peak"
    shape = f"{s.wan_frames} frames {s.wan_size[0]}×{s.wan_size[1]} ({tokens} tokens), {str(dtype)[6:]}"
    name = f"{params / 1e9:.2f}B params" if params > 1e8 else f"tiny, {params / 1e6:.2f}M params"
    print(f"  wan: {flops / 1e9:.4g} GFLOP per forward", flush=True)
    run.row("WanVACE transformer", f"{name}: one denoising step (2 forwards, CFG)", shape, 2 * seconds, "s/step",
            share)


# ----------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny shapes on the CPU, CUDA parts skipped (automatic when CUDA is not available)")
    parser.add_argument("--quick", action="store_true", help="the same as --cpu-smoke (bench/run_all.py passes it)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated parts to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense fp16/bf16 peak in TFLOP/s (default: from the device name)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown part(s) {unknown}; choose from {', '.join(SECTIONS)}")
    from aware3d_utils import torch_threads

    with torch_threads(args.threads):
        return _run(args, parts)


def _run(args, parts: list[str]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    smoke = args.cpu_smoke or args.quick or not torch.cuda.is_available()
    device = torch.device("cuda" if not smoke else "cpu")
    if not torch.cuda.is_available():
        print("SKIP CUDA: no CUDA device (torch " + torch.__version__ + "); CPU smoke run at tiny shapes", flush=True)
    elif smoke:
        print("CUDA is available but --cpu-smoke/--quick was given: CPU smoke run at tiny shapes", flush=True)
    peak, source = peak_tflops(device, args.peak_tflops)
    run = Run(device, SMOKE if smoke else FULL, peak, source, smoke)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {where}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads; "
          f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN TF32 {torch.backends.cudnn.allow_tf32} "
          f"(off during the checks); peak assumed: {peak if peak is not None else 'n/a'} TFLOP/s ({source})\n",
          flush=True)
    start = time.perf_counter()
    benches = {"raster": bench_raster, "fit": bench_fit, "estimate": bench_estimate, "train": bench_train,
               "controlnet": bench_controlnet, "wan": bench_wan}
    for part in SECTIONS:
        if part not in parts:
            continue
        t0 = time.perf_counter()
        print(f"[{part}]", flush=True)
        (run_checks if part == "checks" else benches[part])(run)
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if run.checks:
        print(f"\n### (a) checks: {'CUDA' if device.type == 'cuda' else 'CPU (no CUDA)'} against CPU\n")
        print(table(["check", "measure", "value", "tolerance", "result"], [c.row() for c in run.checks]))
    if run.rows:
        print(f"\n### (b) throughput on {where}{' (smoke shapes: not GPU numbers)' if smoke else ''}\n")
        print(table(["part", "what", "shape", "rate", "unit", "against"], run.rows))
    failed = [c for c in run.checks if not c.ok]
    print(f"\n({time.perf_counter() - start:.0f} s; {len(run.checks) - len(failed)}/{len(run.checks)} checks passed)")
    if failed:
        print("FAILED: " + "; ".join(f"{c.name}: {c.measure} = {c.value:.3g}" for c in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
