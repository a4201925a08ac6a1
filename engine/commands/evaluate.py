"""``inkhue evaluate``: score a model against ground truth next to the gray and flat-fill
baselines, or measure the flicker of a colorized sequence (engine/evaluation.py)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` command."""
    p = subparsers.add_parser(
        "evaluate",
        help="score a model against ground truth, or measure a sequence's flicker",
        description="With --data: colorize each ground-truth color image in DIR from its "
        "model input (grayscale: its own lightness; line art: --inputs DIR, or line art "
        "synthesized as in training) with 0, 1, 10, 50 ... hints sampled from the truth, and "
        "report PSNR, RMSE, SSIM, mean CIEDE2000 and colorfulness next to the 'gray' (ab = 0) "
        "and 'flat-fill' (each region the mean of its hints) baselines. With --sequence: the "
        "flicker of colorized frames (mean CIEDE2000 between consecutive outputs where the "
        "input did not change); with --sequence --truth --keyframes: the scores of a shot "
        "colored from keyframes (--task says whether the inputs are line art).",
    )
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="model name or .onnx file (default: the bundled model of --task)",
    )
    p.add_argument(
        "--task",
        choices=["grayscale", "lineart"],
        default=None,
        help="bundled model to use when --model is not given (default: grayscale)",
    )
    p.add_argument("--data", default=None, metavar="DIR", help="folder of ground-truth images")
    p.add_argument(
        "--inputs",
        default=None,
        metavar="DIR",
        help="model inputs named like the ground truth (line art), or with "
        "--sequence the input frames the outputs were made from",
    )
    p.add_argument(
        "--sequence",
        default=None,
        metavar="OUTPUTS",
        help="folder (or video) of colorized frames: report flicker instead",
    )
    p.add_argument(
        "--truth",
        default=None,
        metavar="DIR",
        help="--sequence: the true colors of the frames (named like the outputs): "
        "report CIEDE2000 (whole frames and moving pixels), segment accuracy and "
        "flow-warp temporal consistency instead of flicker",
    )
    p.add_argument(
        "--keyframes",
        default=None,
        metavar="NAME,NAME,...",
        help="--sequence --truth: the frames the artist colored (file stems); "
        "they are left out of the scores and the first one defines moving pixels",
    )
    p.add_argument(
        "--hints",
        default="0,1,10,50",
        metavar="N,N,...",
        help="hint counts to sample per image (default: 0,1,10,50)",
    )
    p.add_argument(
        "--palette",
        default=None,
        metavar="FILE|none",
        help="palette lock for the model (default: the model's palette, if any)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=256,
        help="scale the ground truth down to this long side (default: 256)",
    )
    p.add_argument("--detail", type=float, default=1.0, help="working-size factor (default 1)")
    p.add_argument(
        "--no-mirror",
        action="store_true",
        help="one model pass per frame instead of the frame + mirror average (as colorize)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled hints (default 0)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N images only")
    p.add_argument(
        "--tol",
        type=float,
        default=0.0,
        help="--sequence: an input pixel is unchanged when it moved by at most "
        "this (input units, e.g. 0..255; default 0)",
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
        "--device",
        "-d",
        default="auto",
        choices=["auto", "cpu", "cuda", "tensorrt", "directml", "coreml"],
        help="where the model runs (default: auto)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    p.add_argument(
        "--per-image",
        default=None,
        metavar="FILE.csv",
        help="--data: also write each image's scores per hint count and method as CSV "
        "(which frames the model colors worst)",
    )
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar (it is shown on a terminal only anyway)",
    )
    p.set_defaults(func=run)


def _hint_counts(text: str) -> list[int]:
    from inkhue_engine.errors import InputError

    try:
        counts = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        counts = []
    if not counts or min(counts) < 0:
        raise InputError(
            f"--hints {text!r}: give comma-separated counts of 0 or more, e.g. 0,1,10,50"
        )
    return counts


def _shot_scores(args: argparse.Namespace) -> int:
    """--sequence with --truth: the keyframe-shot scores (engine/shot_eval.py)."""
    from inkhue_engine import evaluation, shot_eval
    from inkhue_engine.errors import InputError

    if not args.keyframes:
        raise InputError(
            "--truth needs --keyframes NAME,...: the frames the shot was "
            "colored from (e.g. --keyframes 0000)"
        )
    task = args.task or "grayscale"
    keys = [k.strip() for k in args.keyframes.split(",") if k.strip()]
    scores = shot_eval.evaluate_shot(args.sequence, args.truth, args.inputs, task, keys)
    print(shot_eval.format_scores(f"{args.sequence} ({task})", scores))
    if args.json:
        evaluation.write_json(args.json, scores.as_dict())
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the table (or the flicker) and write the JSON report when asked."""
    import sys

    from tqdm import tqdm

    from inkhue_engine import evaluation
    from inkhue_engine.commands.colorize import palette_from_arg
    from inkhue_engine.errors import InputError, ModelError

    if args.sequence is not None:
        if args.inputs is None:
            raise InputError("--sequence needs --inputs DIR: the frames the outputs were made from")
        if args.truth is not None:
            return _shot_scores(args)
        rep = evaluation.sequence_flicker(args.sequence, args.inputs, args.tol)
        value = (
            "n/a (no pixel stayed unchanged)"
            if rep.flicker is None
            else f"{rep.flicker:.3f} mean CIEDE2000"
        )
        print(
            f"flicker of {rep.outputs} ({rep.frames} frames): {value} over "
            f"{rep.static_pixels} unchanged pixels ({100 * rep.static_fraction:.1f}% of the "
            f"frame pairs, tol {rep.tol:g})"
        )
        if args.json:
            evaluation.write_json(args.json, rep.as_dict())
        return 0

    if args.data is None:
        raise InputError("give --data DIR (ground truth) or --sequence OUTPUTS --inputs DIR")
    counts = _hint_counts(args.hints)
    palette = palette_from_arg(args.palette)

    from inkhue_engine.model import load_model, precision_variant, resolve_model
    from inkhue_engine.pipeline import ColorizeOptions, with_palette

    path = precision_variant(resolve_model(args.model, args.task), args.precision)
    model = load_model(path, args.device)
    if args.task is not None and model.info.task != args.task:
        raise ModelError(
            f"{path.name}: is a {model.info.task} model but --task {args.task} was given"
        )
    options = with_palette(
        ColorizeOptions(detail=args.detail, mirror_average=not args.no_mirror), palette, model.info
    )
    total = len(evaluation.ground_truth_files(args.data, args.limit))
    with tqdm(
        total=total,
        desc="evaluate",
        unit="img",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=True if args.quiet else None,
    ) as bar:  # None: on a terminal only
        report = evaluation.evaluate_model(
            model,
            args.data,
            counts,
            options,
            size=args.size,
            seed=args.seed,
            limit=args.limit,
            inputs=args.inputs,
            progress=lambda _name: bar.update(1),
        )
    print(evaluation.format_table(report))
    if args.json:
        evaluation.write_json(args.json, report.as_dict())
    if args.per_image:
        evaluation.write_per_image_csv(args.per_image, report)
    return 0
