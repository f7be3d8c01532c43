"""The orbit4d run: inputs → 4D proxy → alignment → trajectory → scaffolds → run folder.

Run folder (the public interface):
    proxy/background.ply, proxy/canonical.ply, proxy/foreground/<frame>.ply (the aligned,
    smoothed canonical foreground per frame), cameras.json (global_camera.json form),
    alignment.json ({"sim3_ransac": {"frames": [...]}, "sim3_ransac_smoothed": {...},
    "box_fit": {...}}; each frame {"frame", "scale", "R", "t", "inliers"}, X = s·R·X_can + t),
    trajectory.json (camera_path form), scaffold/{rgb,depth,mask}/NNNNN.png, scaffold_rgb.mp4,
    scaffold_depth.mp4, scaffold_mask.mp4, with a video model output/NNNNN.png and output.mp4,
    report.html, manifest.json (options, stage times, counts, warnings).
"""

from __future__ import annotations

import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from aware3d_utils.atomic import atomic_write_text
from geom3d import Cameras, save_point_cloud
from geom3d.align import Sim3
from geom3d.trajectory import CameraPath, bullet_time, load_camera_path, preset_path, save_camera_path

from .alignment import align_canonical, box_fit
from .estimators import MaskPrompt, static_cameras
from .io import MaskSet, Orbit4DInputError, read_cameras, read_depth, read_frames, read_masks, write_cameras
from .reconstruct import (
    auto_voxel_size,
    build_canonical,
    foreground_voxel_size,
    fuse_background,
    partial_foregrounds,
    split_depth,
)
from .report import write_report
from .scaffold import depth_to_image, render_scaffold, write_frames, write_video
from .smoothing import smooth_transforms

__all__ = ["Orbit4DOptions", "Orbit4DInputs", "RunResult", "load_inputs", "reconstruct_and_align", "run"]


@dataclass(frozen=True)
class Orbit4DOptions:
    """trajectory: a camera_path JSON file or a preset name (geom3d.trajectory.preset_path);
    num_output_frames: default the input's frame count; bullet_time: a fixed input frame;
    video_model: a WanVACE model id or local path (None: no video stage), conditioned on the
    scaffold's colour or depth (video_condition "rgb" / "depth"), its holes, the first input
    frame and `prompt`."""

    trajectory: str = "arc_yaw_30"
    num_output_frames: int | None = None
    bullet_time: float | None = None
    clean_depth: bool = True
    mask_margin: int = 2
    voxel_pixels: float = 1.0
    ransac_threshold_voxels: float = 2.0
    refine_icp: bool = False
    smooth: bool = True
    point_radius: float = 0.5
    fps: float = 10.0
    fov_degrees: float = 60.0
    seed: int = 0
    video_model: str | None = None
    prompt: str = ""
    video_steps: int = 30
    video_guidance: float = 5.0
    video_condition: str = "rgb"


@dataclass(frozen=True)
class Orbit4DInputs:
    """frames uint8 (T, H, W, 3), names, masks bool (T, H, W), depth float32 (T, H, W), cameras (T,)."""

    frames: np.ndarray
    names: list
    masks: np.ndarray
    depth: np.ndarray
    cameras: Cameras
    notes: list = field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    out: Path
    times: dict
    counts: dict
    transforms: Sim3
    smoothed: Sim3
    box: Sim3
    canonical: torch.Tensor
    path: CameraPath


def load_inputs(frames, masks, depth, cameras=None, *, object_id=None, max_frames=None,
                fov_degrees: float = 60.0, depth_model: str | None = None, depth_median: float = 5.0,
                estimate_cameras: bool = True, mask_model: str | None = None,
                mask_prompt: MaskPrompt | None = None) -> Orbit4DInputs:
    """Read the inputs (see orbit4d.io). Without a mask folder, `mask_model` (a SAM2 video model
    id or path, orbit4d.mask_model) propagates `mask_prompt` through the frames; without a depth
    folder, `depth_model` (a transformers depth model id or path, orbit4d.depth_model) estimates
    it; without cameras, they are estimated from the background (orbit4d.camera_model,
    intrinsics from `fov_degrees`), or a static camera is assumed when `estimate_cameras` is
    False (with a warning either way)."""
    notes = []
    if masks is not None and mask_model:
        raise Orbit4DInputError("--mask-model", "give a mask folder (--masks) or a mask model, not both")
    if masks is None and not mask_model:
        raise Orbit4DInputError("--masks", "no masks given: pass a folder of masks or a SAM2 model (--mask-model) "
                                           "with a first-frame --mask-box or --mask-points")
    if mask_model and mask_prompt is None:
        raise Orbit4DInputError("--mask-model", "needs a prompt on the first frame: --mask-box x0,y0,x1,y1 or "
                                                "--mask-points x,y[;x,y...]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb, names = read_frames(frames, max_frames)
        size = rgb.shape[1:3]
        if masks is not None:
            mset = read_masks(masks, names, size, object_id)
        else:
            from .mask_model import Sam2MaskPropagator

            warnings.warn(f"masks propagated by {mask_model} from {mask_prompt.describe()}", stacklevel=2)
            mset = MaskSet(Sam2MaskPropagator(mask_model)(rgb, mask_prompt), np.ones(len(names), bool), (), ())
        if depth is not None:
            d = read_depth(depth, names, size)
        elif depth_model:
            from .depth_model import TransformersDepth

            warnings.warn(f"depth estimated by {depth_model}, scale-consistent over frames", stacklevel=2)
            d = TransformersDepth(depth_model, median_depth=depth_median)(rgb, mset.masks)
        else:
            raise Orbit4DInputError("--depth", "no depth given: pass a folder of <frame>.npy metric depth maps "
                                               "or a depth model (--depth-model)")
        if cameras is None:
            cams = static_cameras(len(names), size, fov_degrees)
            if estimate_cameras and len(names) > 1:
                from .camera_model import estimate_cameras as estimate

                warnings.warn(f"no cameras given: estimated from the background (PnP on feature matches), "
                              f"{fov_degrees}° field of view", stacklevel=2)
                cams = estimate(rgb, d, mset.masks, cams.K[0].numpy())
            else:
                warnings.warn(f"no cameras given: assuming a static camera with a {fov_degrees}° field of view",
                              stacklevel=2)
        else:
            cams = read_cameras(cameras, names, size)
    notes = [str(w.message) for w in caught]
    for n in notes:
        warnings.warn(n, stacklevel=2)
    return Orbit4DInputs(rgb, names, mset.masks, d, cams, notes)


class _Stages:
    """Wall-clock and CPU seconds per named stage (CPU time: what an idle core would take)."""

    def __init__(self):
        self.wall, self.cpu = {}, {}

    @contextmanager
    def __call__(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        yield
        self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c


def reconstruct_and_align(inputs: Orbit4DInputs, options: Orbit4DOptions = Orbit4DOptions()) -> dict:
    """The geometric stages; returns a dict of their results, `times` (wall seconds per stage)
    and `cpu_times` (CPU seconds per stage)."""
    stage = _Stages()
    with stage("depth cleaning"):
        fg, bg = split_depth(inputs.depth, inputs.masks, margin=options.mask_margin, clean=options.clean_depth)
    with stage("unprojection"):
        pixel_voxel = auto_voxel_size(fg if (fg > 0).any() else bg, inputs.cameras, options.voxel_pixels)
        partials = partial_foregrounds(inputs.frames, fg, inputs.cameras)
    with stage("background fusion"):
        background = fuse_background(inputs.frames, bg, inputs.cameras)
    with stage("canonical foreground"):
        voxel = foreground_voxel_size(partials, pixel_voxel)
        canonical = build_canonical(partials, voxel_size=voxel)
    with stage("alignment"):
        fit = align_canonical(canonical.points, fg, partials, inputs.cameras, canonical.chain,
                              threshold=options.ransac_threshold_voxels * voxel, refine_icp=options.refine_icp,
                              seed=options.seed)
    with stage("smoothing"):
        smoothed = smooth_transforms(fit.transforms) if options.smooth else fit.transforms
    with stage("box baseline"):
        box = box_fit(canonical.points, partials)
    return {"fg_depth": fg, "voxel": voxel, "partials": partials, "background": background, "canonical": canonical,
            "fit": fit, "smoothed": smoothed, "box": box, "times": stage.wall, "cpu_times": stage.cpu}


def _trajectory(options: Orbit4DOptions, inputs: Orbit4DInputs, fg_depth: np.ndarray) -> CameraPath:
    n = options.num_output_frames or len(inputs.names)
    src = Path(options.trajectory)
    if src.suffix.lower() == ".json":
        if not src.is_file():
            raise Orbit4DInputError(src, "no such trajectory file")
        path = load_camera_path(src, image_size=inputs.cameras.image_size)
    else:
        d0 = fg_depth[0][fg_depth[0] > 0]
        centre = float(np.median(d0)) if d0.size else float(np.median(inputs.depth[0][inputs.depth[0] > 0]))
        last = len(inputs.names) - 1
        times = np.linspace(0, last, n) if n > 1 else np.zeros(1)
        path = preset_path(options.trajectory, inputs.cameras[0], centre, n, video_time=times)
    if options.bullet_time is not None:
        path = bullet_time(path, options.bullet_time)
    return path


def _alignment_json(names, transforms: Sim3, inliers) -> dict:
    frames = []
    for i, name in enumerate(names):
        frames.append({"frame": name, "scale": float(transforms.scale[i]), "R": transforms.R[i].tolist(),
                       "t": transforms.t[i].tolist(), "inliers": int(inliers[i])})
    return {"frames": frames}


def run(inputs: Orbit4DInputs, out, options: Orbit4DOptions = Orbit4DOptions()) -> RunResult:
    """Run everything and write the run folder `out` (see the module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    geo = reconstruct_and_align(inputs, options)
    times = dict(geo["times"])
    canonical, smoothed, fit = geo["canonical"], geo["smoothed"], geo["fit"]
    t = time.perf_counter()
    bgc = geo["background"]
    save_point_cloud(out / "proxy" / "background.ply", bgc.points, bgc.colors)
    save_point_cloud(out / "proxy" / "canonical.ply", canonical.points, canonical.colors)
    foregrounds = []
    for i, name in enumerate(inputs.names):
        pts = smoothed[i].apply(canonical.points.double())
        save_point_cloud(out / "proxy" / "foreground" / f"{name}.ply", pts, canonical.colors)
        foregrounds.append((pts, canonical.colors))
    write_cameras(out / "cameras.json", inputs.cameras, inputs.names)
    alignment = {"sim3_ransac": _alignment_json(inputs.names, fit.transforms, fit.inliers),
                 "sim3_ransac_smoothed": _alignment_json(inputs.names, smoothed, fit.inliers),
                 "box_fit": _alignment_json(inputs.names, geo["box"], [p.points.shape[0] for p in geo["partials"]])}
    atomic_write_text(out / "alignment.json", json.dumps(alignment, indent=1))
    times["writing the proxy"] = time.perf_counter() - t
    t = time.perf_counter()
    path = _trajectory(options, inputs, geo["fg_depth"])
    save_camera_path(out / "trajectory.json", path)
    scaffold = render_scaffold(bgc.points, bgc.colors, foregrounds, path, radius=options.point_radius)
    times["scaffold rendering"] = time.perf_counter() - t
    t = time.perf_counter()
    depth_img = depth_to_image(scaffold.depth)
    mask_img = np.where(scaffold.mask, 255, 0).astype(np.uint8)
    write_frames(out / "scaffold" / "rgb", scaffold.rgb)
    write_frames(out / "scaffold" / "depth", depth_img)
    write_frames(out / "scaffold" / "mask", mask_img)
    write_video(out / "scaffold_rgb.mp4", scaffold.rgb, options.fps)
    write_video(out / "scaffold_depth.mp4", depth_img, options.fps)
    write_video(out / "scaffold_mask.mp4", mask_img, options.fps)
    write_video(out / "input.mp4", inputs.frames, options.fps)
    times["writing scaffolds"] = time.perf_counter() - t
    output = None
    if options.video_model:
        if options.video_condition not in ("rgb", "depth"):
            raise ValueError(f"video_condition must be 'rgb' or 'depth', got {options.video_condition!r}")
        from .video import WanVacePainter

        t = time.perf_counter()
        painter = WanVacePainter(options.video_model, steps=options.video_steps, guidance=options.video_guidance,
                                 seed=options.seed)
        cond = scaffold.rgb if options.video_condition == "rgb" else np.repeat(depth_img[..., None], 3, -1)
        output = painter(cond, ~scaffold.mask, inputs.frames[0], options.prompt)
        write_frames(out / "output", output)
        write_video(out / "output.mp4", output, options.fps)
        times["video model"] = time.perf_counter() - t
    counts = {"frames": len(inputs.names), "output_frames": len(path), "background_points": int(bgc.points.shape[0]),
              "canonical_points": int(canonical.points.shape[0]),
              "foreground_points_per_frame": [int(p.points.shape[0]) for p in geo["partials"]],
              "coverage": float(scaffold.mask.mean()), "voxel_size": geo["voxel"]}
    write_report(out, inputs, scaffold, depth_img, mask_img, bgc, foregrounds, path, counts, output=output)
    manifest = {"options": asdict(options), "times_s": times, "counts": counts, "warnings": list(inputs.notes),
                "frames": list(inputs.names),
                "video_model": options.video_model or "not run (no --video-model given)"}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return RunResult(out, times, counts, fit.transforms, smoothed, geo["box"], canonical.points, path)
