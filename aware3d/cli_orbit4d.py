"""`aware3d orbit4d run`: re-render a monocular video of a moving object along a new camera path.

Registered in aware3d/cli.py. The run's options are flags generated from `Orbit4DOptions`'s schema
(so building this parser imports orbit4d); the models load only when the handler runs.
"""

from __future__ import annotations

import argparse

from methodkit.cli import add_out, add_schema_flags, int_type, refuse_out_among_inputs, schema_values
from orbit4d.pipeline import Orbit4DOptions


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
    run.add_argument("--static-camera", action="store_true",
                     help="without --cameras: assume the camera does not move (instead of estimating its motion)")
    run.add_argument("--max-frames", type=int_type(1), help="use only the first N input frames")
    # every Orbit4DOptions field with a flag (trajectory, frames, alignment, splatting, video and
    # completion models, seed ...): generated from its schema, so none is unreachable
    add_schema_flags(run, Orbit4DOptions)
    add_out(run, "run folder (created)", folder=True)
    run.set_defaults(func=run_orbit4d)


def options_from_args(args: argparse.Namespace) -> Orbit4DOptions:
    """The run's options: the schema flags given (the others take their defaults), completion by
    --novel-view-model, the generated views' depth model by --depth-model."""
    given = schema_values(args, nested=False)
    return Orbit4DOptions(**given, completion="novel_view" if given.get("novel_view_model") else "none",
                          completion_depth_model=args.depth_model)


def run_orbit4d(args) -> int:
    import logging
    import math
    import warnings

    from orbit4d.estimators import MaskPrompt
    from orbit4d.io import Orbit4DInputError
    from orbit4d.pipeline import load_inputs, run

    log = logging.getLogger("aware3d.orbit4d")
    if not (math.isfinite(args.depth_median) and args.depth_median > 0):
        raise Orbit4DInputError("--depth-median", f"must be a positive number of metres, got {args.depth_median}")
    if args.object_id is not None and not 0 <= args.object_id <= 255:
        raise Orbit4DInputError("--object-id", f"must be a palette index in [0, 255], got {args.object_id}")
    # options that only act with another one: given without it they would be ignored without a word
    given = schema_values(args, nested=False)
    if args.cameras is not None and ("fov_degrees" in given or args.static_camera):
        raise Orbit4DInputError("--fov" if "fov_degrees" in given else "--static-camera",
                                "only acts without --cameras (the camera file gives the intrinsics and motion)")
    for key, flag in (("prompt", "--prompt"), ("caption_model", "--caption-model"), ("video_steps", "--video-steps"),
                      ("video_guidance", "--video-guidance"), ("video_condition", "--video-condition")):
        if key in given and given[key] != "" and not given.get("video_model"):
            raise Orbit4DInputError(flag, "only acts with a video model (--video-model)")
    if "novel_view_steps" in given and not given.get("novel_view_model"):
        raise Orbit4DInputError("--novel-view-steps", "only acts with a novel-view model (--novel-view-model)")
    if "flow_budget_mb" in given and given.get("flow_refine") is False:
        raise Orbit4DInputError("--flow-budget-mb", "only acts with the flow refinement (not with --no-flow-refine)")
    if "num_output_frames" in given and given.get("trajectory", "").lower().endswith(".json"):
        raise Orbit4DInputError("--num-output-frames", "only acts with a preset path; a camera_path file has its own "
                                                       "frames")
    refuse_out_among_inputs(args.out, {"--frames": args.frames, "--masks": args.masks, "--depth": args.depth})
    from datagen.hub import pretrained_kwargs

    for flag, name in (("--depth-model", args.depth_model), ("--mask-model", args.mask_model),
                       ("--video-model", given.get("video_model")), ("--caption-model", given.get("caption_model")),
                       ("--novel-view-model", given.get("novel_view_model"))):
        if name:  # a path that is no folder, or an id the offline hub lacks: before any stage runs
            pretrained_kwargs(str(name), flag)
    prompt = None
    if args.mask_box is not None or args.mask_points is not None:
        if not args.mask_model:
            raise Orbit4DInputError("--mask-box" if args.mask_box is not None else "--mask-points",
                                    "a mask prompt needs a SAM2 model (--mask-model)")
        prompt = MaskPrompt.parse(args.mask_box, args.mask_points)
    options = options_from_args(args)
    options.check_completion()  # before any model runs
    options.check_proxy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = load_inputs(args.frames, args.masks, args.depth, args.cameras, object_id=args.object_id,
                             max_frames=args.max_frames, fov_degrees=options.fov_degrees, depth_model=args.depth_model,
                             depth_median=args.depth_median, estimate_cameras=not args.static_camera,
                             mask_model=args.mask_model, mask_prompt=prompt)
    for w in caught:
        log.warning("%s", w.message)
    result = run(inputs, args.out, options)
    total = sum(result.times.values())
    log.info("orbit4d: %d frames -> %d output frames in %.1f s; report: %s", result.counts["frames"],
             result.counts["output_frames"], total, result.out / "report.html")
    return 0
