"""`aware3d orbit4d run`: re-render a monocular video of a moving object along a new camera path.

Registered in aware3d/cli.py; imports nothing heavy until a handler runs.
"""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_parser(sub) -> None:
    top = sub.add_parser("orbit4d", help="camera redirection of a monocular video through a 4D proxy (FreeOrbit4D)",
                         description="FreeOrbit4D on the CPU: background and canonical foreground point clouds, "
                                     "their per-frame Sim(3) alignment, and scaffold renders along a new camera "
                                     "path (docs/orbit4d.md).")
    actions = top.add_subparsers(dest="orbit4d_action", metavar="run")
    actions.required = True
    run = actions.add_parser(
        "run", help="build the proxy and render scaffolds into a run folder",
        description="Writes <out>/proxy/*.ply, cameras.json, alignment.json, trajectory.json, "
                    "scaffold/{rgb,depth,mask}/NNNNN.png, scaffold_*.mp4, with --video-model output/NNNNN.png "
                    "and output.mp4, report.html and manifest.json.")
    run.add_argument("--frames", "--video", dest="frames", required=True,
                     help="folder of frames (JPEG/PNG, sorted by name) or a video file (MP4)")
    run.add_argument("--masks", help="folder of foreground masks named like the frames (binary or palette PNG); "
                                     "or propagate them with --mask-model")
    run.add_argument("--mask-model", help="without --masks: a SAM2 video model (transformers) by id or path, e.g. "
                                          "facebook/sam2.1-hiera-tiny, propagating a first-frame box or points")
    run.add_argument("--mask-box", metavar="X0,Y0,X1,Y1", help="the object's box on the first frame, in pixels")
    run.add_argument("--mask-points", metavar="X,Y[;X,Y...]",
                     help="points on the object on the first frame, in pixels ('x,y,0' marks a background point)")
    run.add_argument("--object-id", type=int, help="palette id of the object (default: any non-zero label)")
    run.add_argument("--depth", help="folder of <frame>.npy metric depth maps (camera z)")
    run.add_argument("--depth-model", help="without --depth: a transformers depth model by id or path (e.g. "
                                           "depth-anything/Depth-Anything-V2-Small-hf), scale-consistent over "
                                           "frames; with --novel-view-model also the generated views' depth")
    run.add_argument("--depth-median", type=float, default=5.0,
                     help="median depth of the first frame for a relative (not metric) depth model")
    run.add_argument("--cameras", help="global_camera.json ({'image_size': [H, W], '<frame>': {'extrinsic': 3x4 "
                                       "world-to-camera, 'intrinsic': 3x3}}); default: estimated from the "
                                       "background by PnP (or --static-camera)")
    run.add_argument("--fov", type=float,
                     help="horizontal field of view in degrees of the cameras estimated without --cameras "
                          "(default 60)")
    run.add_argument("--static-camera", action="store_true",
                     help="without --cameras: assume the camera does not move (instead of estimating its motion)")
    run.add_argument("--trajectory", default="arc_yaw_30",
                     help="a camera_path JSON file or a preset: arc_<yaw|pitch|roll>_<deg>[_scale_<s>], "
                          "dolly_<distance>, zoom_<factor>, static ('p' for the decimal point, e.g. arc_yaw_22p5)")
    run.add_argument("--num-output-frames", type=_positive_int, help="frames of a preset path (default: the input's)")
    run.add_argument("--bullet-time", type=float, metavar="FRAME", help="show this input frame in every output frame")
    run.add_argument("--max-frames", type=_positive_int, help="use only the first N input frames")
    run.add_argument("--icp", action="store_true", help="refine each frame's alignment by point-to-plane ICP")
    run.add_argument("--no-smooth", action="store_true", help="no temporal smoothing of the alignment")
    run.add_argument("--no-clean-depth", action="store_true", help="unproject the depth maps as given")
    run.add_argument("--point-radius", type=float, default=0.5,
                     help="splat radius in pixels (0.5: one pixel per point, the most exact depth; 1: fewer holes, "
                          "depths biased towards the nearer neighbour)")
    run.add_argument("--fps", type=float, default=10.0, help="frame rate of the written videos")
    run.add_argument("--video-model", help="WanVACE pipeline (diffusers) by model id or local path, e.g. "
                                           "Wan-AI/Wan2.1-VACE-1.3B-diffusers: paints output.mp4 from the scaffold")
    run.add_argument("--prompt", default="", help="text prompt of the video model")
    run.add_argument("--video-steps", type=_positive_int, default=30, help="denoising steps of the video model")
    run.add_argument("--video-guidance", type=float, default=5.0, help="classifier-free guidance of the video model")
    run.add_argument("--video-condition", choices=("rgb", "depth", "depth-control"), default="rgb",
                     help="condition the video model on the scaffold's colour or its depth, painting its holes; "
                          "depth-control: FreeOrbit4D's released stage, the rendered depth as a control video, no "
                          "mask (every pixel repainted), the first frame as reference")
    run.add_argument("--novel-view-model",
                     help="complete the canonical foreground with views generated by a Zero-1-to-3 model (diffusers "
                          "parts, by id or path, e.g. kxic/zero123-xl); their depth by --depth-model")
    run.add_argument("--novel-view-steps", type=_positive_int, default=50,
                     help="denoising steps of the novel-view model")
    run.add_argument("--out", required=True, help="run folder (created)")
    run.set_defaults(func=run_orbit4d)


def run_orbit4d(args) -> int:
    import logging
    import math
    import warnings

    from orbit4d.estimators import MaskPrompt
    from orbit4d.io import Orbit4DInputError
    from orbit4d.pipeline import Orbit4DOptions, load_inputs, run

    log = logging.getLogger("aware3d.orbit4d")
    if not (math.isfinite(args.depth_median) and args.depth_median > 0):
        raise Orbit4DInputError("--depth-median", f"must be a positive number of metres, got {args.depth_median}")
    if args.object_id is not None and not 0 <= args.object_id <= 255:
        raise Orbit4DInputError("--object-id", f"must be a palette index in [0, 255], got {args.object_id}")
    # options that only act with another one: given without it they would be ignored without a word
    if args.cameras is not None and (args.fov is not None or args.static_camera):
        raise Orbit4DInputError("--fov" if args.fov is not None else "--static-camera",
                                "only acts without --cameras (the camera file gives the intrinsics and motion)")
    if args.prompt and not args.video_model:
        raise Orbit4DInputError("--prompt", "only acts with a video model (--video-model)")
    if args.num_output_frames is not None and args.trajectory.lower().endswith(".json"):
        raise Orbit4DInputError("--num-output-frames", "only acts with a preset path; a camera_path file has its own "
                                                       "frames")
    fov = 60.0 if args.fov is None else args.fov
    prompt = None
    if args.mask_box is not None or args.mask_points is not None:
        if not args.mask_model:
            raise Orbit4DInputError("--mask-box" if args.mask_box is not None else "--mask-points",
                                    "a mask prompt needs a SAM2 model (--mask-model)")
        prompt = MaskPrompt.parse(args.mask_box, args.mask_points)
    options = Orbit4DOptions(trajectory=args.trajectory, num_output_frames=args.num_output_frames,
                             bullet_time=args.bullet_time, clean_depth=not args.no_clean_depth,
                             refine_icp=args.icp, smooth=not args.no_smooth, point_radius=args.point_radius,
                             fps=args.fps, fov_degrees=fov, video_model=args.video_model, prompt=args.prompt,
                             video_steps=args.video_steps, video_guidance=args.video_guidance,
                             video_condition=args.video_condition,
                             completion="novel_view" if args.novel_view_model else "none",
                             novel_view_model=args.novel_view_model, novel_view_steps=args.novel_view_steps,
                             completion_depth_model=args.depth_model)
    options.check_completion()  # before any model runs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = load_inputs(args.frames, args.masks, args.depth, args.cameras, object_id=args.object_id,
                             max_frames=args.max_frames, fov_degrees=fov, depth_model=args.depth_model,
                             depth_median=args.depth_median, estimate_cameras=not args.static_camera,
                             mask_model=args.mask_model, mask_prompt=prompt)
    for w in caught:
        log.warning("%s", w.message)
    result = run(inputs, args.out, options)
    total = sum(result.times.values())
    log.info("orbit4d: %d frames -> %d output frames in %.1f s; report: %s", result.counts["frames"],
             result.counts["output_frames"], total, result.out / "report.html")
    return 0
