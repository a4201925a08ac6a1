"""``inkhue colorize``: files, folders, globs, image sequences and videos, in a batch.

Re-running the same command resumes: frames whose output exists are skipped (outputs
are written atomically, so an existing file is complete). ``--overwrite`` redoes them.
"""

from __future__ import annotations

import argparse
import sys

DEVICES = ["auto", "cpu", "cuda", "tensorrt", "directml", "coreml"]
#: frames_io.DEFAULT_MAX_PIXELS, repeated so that ``inkhue --help`` imports no OpenCV.
DEFAULT_MAX_PIXELS = 8192 * 8192
#: Frames per model call of a batch (--batch-size).
BATCH_SIZE = 4
#: Exit status when some frames could not be read and every other one was written.
EXIT_SOME_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``colorize`` command."""
    p = subparsers.add_parser(
        "colorize",
        help="colorize images, folders, image sequences or videos",
        description="Colorize grayscale or line-art frames. INPUT may be image files, folders "
        "(naturally sorted: frame2 before frame10), glob patterns or videos. The output is a "
        "file for one image, a video file (.mp4, .mov, .mkv, .webm, .gif ...) to encode every "
        "frame into, or else a folder (image inputs keep their names, video frames become "
        "frame_00000.png ...). Inputs are never overwritten; a re-run skips finished frames.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder, glob or video")
    p.add_argument(
        "-o",
        dest="out",
        required=True,
        metavar="OUT",
        help="output image file, video file or folder",
    )
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="model name or .onnx file (default: the bundled model of --task, or of the "
        "task detected from the first frames)",
    )
    p.add_argument(
        "--task",
        choices=["grayscale", "lineart"],
        default=None,
        help="which bundled model to use when --model is not given (default: detected "
        "once from the first frames: line art or grayscale); with --model, checks the "
        "model's task",
    )
    p.add_argument(
        "--hints",
        default=None,
        metavar="FILE|DIR",
        help="RGBA hint image for every frame, or a folder of per-frame hint images "
        "named like the frames (painted pixels are color hints)",
    )
    p.add_argument(
        "--reference",
        "-r",
        action="append",
        default=None,
        metavar="KEY|DIR",
        help="a colored keyframe of the shot (or a model sheet), or a folder of "
        "them; repeatable. Each frame takes the keyframes' colors region by region "
        "(the model fills only what matches nothing). A keyframe named like a "
        "frame (same file stem) is that frame: it comes out as the artist colored it",
    )
    p.add_argument(
        "--palette",
        default=None,
        metavar="FILE|none",
        help="lock colors to a Krita .kpl or GIMP .gpl palette; 'none' turns off "
        "the model's own palette (default: the model's palette, if it has one)",
    )
    p.add_argument(
        "--detail",
        type=float,
        default=1.0,
        help="working size = model training size x DETAIL on the short side "
        "(default: 1.0; higher is slower, more detailed)",
    )
    p.add_argument(
        "--device",
        "-d",
        default="auto",
        choices=DEVICES,
        help="where the model runs (default: auto)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "int8", "fp16"],
        help="model precision: fp32, int8 (CPU; bundled for the bundled models) or "
        "fp16 (GPU, untested); a variant is NAME.int8.onnx / NAME.fp16.onnx beside "
        "the model (default: fp32)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        metavar="N",
        help=f"frames per model call (default: {BATCH_SIZE}; a shot from --reference runs one "
        "at a time)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="threads that finish and write frames (default: up to 4; not with --reference: "
        "a shot's frames run in order)",
    )
    p.add_argument(
        "--output",
        dest="output_kind",
        choices=["color", "fill"],
        default="color",
        help="'color': the finished frame; 'fill': line art's flat colors without "
        "the lines (default: color)",
    )
    p.add_argument(
        "--no-regions",
        action="store_true",
        help="do not use the regions between lines (hint spreading, one color per region)",
    )
    p.add_argument(
        "--no-mirror",
        action="store_true",
        help="run the model once per frame, not also on its left-right mirror: about "
        "half the model's time, colors that shift more between a shot's frames",
    )
    p.add_argument(
        "--no-carry",
        action="store_true",
        help="do not carry colors from the previous frame where the input did not "
        "change (sequences and videos); with --reference: match each frame to the "
        "keyframes only, not to the previous finished frame",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="redo frames whose output exists (default: skip them, i.e. resume)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the frames' model work on a Ray cluster (ADDRESS, e.g. "
        "ray://head:10001 or auto; without one: a local cluster of this machine's "
        "cores); reading, carry and writing stay here, outputs are the same bytes "
        "(needs the 'ray' extra)",
    )
    p.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first frame that cannot be read (default: write every "
        "other frame, list the bad ones at the end and exit with status 1; a shot from "
        "--reference always stops there: the frames after it lean on it)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"largest frame, width x height (default: {DEFAULT_MAX_PIXELS} = "
        "8192 x 8192, as the server; a 20000 x 20000 frame needs ~15 GB); 0: no limit",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Colorize INPUT... into OUT. Returns 0, or EXIT_SOME_FAILED when some frames could not
    be read (listed on stderr; the others are written); InkHueError for anything else the
    user can fix."""
    from pathlib import Path

    from inkhue_engine import batch
    from inkhue_engine.errors import InputError, ModelError
    from inkhue_engine.frames_io import expand_inputs, video_losses
    from inkhue_engine.model import load_model, precision_variant, resolve_model
    from inkhue_engine.pipeline import ColorizeOptions, with_palette

    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: use 1 or more")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: use 1 or more")
    if args.max_pixels < 0:
        raise InputError(f"--max-pixels {args.max_pixels}: use 0 (no limit) or more")
    # Cheap checks first: a typo must not wait for a model to load.
    sources = expand_inputs(args.inputs)
    plan = batch.plan_outputs(sources, args.out)
    if plan.mode == "video":  # a video out of a video: say what it does not carry over
        for src in sources:
            if src.is_video and (lost := video_losses(src.path)):
                print(
                    f"inkhue: warning: {src.path}: the output video keeps the frames only, "
                    f"not {', '.join(lost)}: mux them back from the input if you need them",
                    file=sys.stderr,
                )
    if args.hints is not None and not Path(args.hints).exists():
        raise InputError(f"{args.hints}: hint file or folder not found")
    keyframes = None
    if args.reference:
        from inkhue_engine.shot import load_keyframes

        if args.hints is not None:
            raise InputError(
                "--hints and --reference do not combine: paint the colors into a keyframe instead"
            )
        if args.ray is not None:
            raise InputError(
                "--ray and --reference do not combine yet: a keyframe shot runs "
                "its frames in order, on this machine"
            )
        if args.workers is not None or args.batch_size != BATCH_SIZE:
            raise InputError(
                "--workers and --batch-size do not apply to --reference: a keyframe shot "
                "colors its frames one at a time, in order; leave them out"
            )
        keyframes = load_keyframes(args.reference, args.max_pixels or None)
    palette = palette_from_arg(args.palette)
    options = ColorizeOptions(
        detail=args.detail,
        regions=not args.no_regions,
        output=args.output_kind,
        mirror_average=not args.no_mirror,
    )

    task, detection = args.task, None
    if args.model is None and task is None:
        from inkhue_engine.task_detect import detect_sources

        # one task for the whole run, from its first frames: a shot never switches models
        detection = detect_sources(sources, args.max_pixels or None)
        task = detection.task if detection is not None else None
    path = precision_variant(resolve_model(args.model, task), args.precision)
    model = load_model(path, args.device)
    if args.task is not None and model.info.task != args.task:
        raise ModelError(
            f"{path.name}: is a {model.info.task} model but --task {args.task} was given: "
            f"drop --task or choose a {args.task} model"
        )
    options = with_palette(options, palette, model.info)
    if detection is not None and not args.quiet:
        print(
            f"inkhue: {detection.reason}: using the {model.info.task} model "
            f"'{model.info.name}' (--task or --model chooses another)",
            file=sys.stderr,
        )

    if keyframes is not None:
        from inkhue_engine.shot import colorize_shot

        # a shot runs its frames in order, each leaning on the previous one: it stops at
        # the first frame that cannot be read (the frames after it would lose their anchor)
        result = colorize_shot(
            sources,
            args.out,
            model,
            keyframes,
            options,
            use_previous=not args.no_carry,
            overwrite=args.overwrite,
            progress=False if args.quiet else None,
            max_pixels=args.max_pixels or None,
        )
    else:
        remote = None
        if args.ray is not None:
            from inkhue_engine.ray_runner import RayRunner

            remote = RayRunner(model, options, args.batch_size, address=args.ray or None)
        try:
            result = batch.colorize_many(
                sources,
                args.out,
                model,
                options,
                hints=args.hints,
                batch_size=args.batch_size,
                workers=args.workers,
                carry=not args.no_carry,
                overwrite=args.overwrite,
                progress=False if args.quiet else None,
                fail_fast=args.fail_fast,
                max_pixels=args.max_pixels or None,
                remote=remote,
            )
        finally:
            if remote is not None:
                remote.close()
    if not args.quiet:
        done = f"{result.written} frame(s) written"
        if result.skipped:
            done += f", {result.skipped} already done (skipped; --overwrite redoes them)"
        rate = f", {result.fps:.2f} frames/s" if result.written else ""
        print(
            f"{done} in {result.seconds:.1f} s{rate} on {model.device} -> {result.output}",
            file=sys.stdout,
        )
    if result.failed:
        for line in result.failed:
            print(f"inkhue: error: {line}", file=sys.stderr)
        if result.written or result.skipped or len(result.failed) > 1:
            print(
                f"inkhue: error: {len(result.failed)} frame(s) failed, listed above; the "
                f"other {result.written + result.skipped} are written: fix the bad ones "
                f"and run the same command again (it skips finished frames)",
                file=sys.stderr,
            )
        return EXIT_SOME_FAILED
    return 0


def palette_from_arg(value: str | None) -> tuple[str, ...] | None:
    """--palette as ``pipeline.with_palette`` takes it: None (not given: the model's own
    palette), ``()`` ('none': no palette) or the colors of a .kpl / .gpl file."""
    if value is None:
        return None
    if value.lower() == "none":
        return ()
    from inkhue_engine.palette import load_palette

    return tuple(load_palette(value))
