"""``inkhue bench``: per-stage times, model-only ORT vs torch eager, sequence throughput,
peak memory, providers and threads (engine/bench.py; docs/PERFORMANCE.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command."""
    p = subparsers.add_parser(
        "bench",
        help="measure where a frame's time goes (a report, not a test)",
        description="Time prepare / model / finish at several frame sizes with and without "
        "hints, the model alone in ONNX Runtime and (training extra installed) in torch "
        "eager on the same weights, sequence throughput against the per-frame bound, peak "
        "memory, providers and thread settings. Prints tables; --json FILE keeps the "
        "figures, --plot FILE.svg draws the stage times.",
    )
    p.add_argument(
        "--model",
        "-m",
        action="append",
        default=None,
        metavar="MODEL",
        help="model name or .onnx file; repeat for several (default: both bundled models)",
    )
    p.add_argument(
        "--frame",
        type=Path,
        default=None,
        help="frame file scaled to each size (default: a synthetic cartoon)",
    )
    p.add_argument(
        "--sizes",
        default="512x512,1920x1080,3840x2160",
        help="WIDTHxHEIGHT list (default: 512x512,1920x1080,3840x2160)",
    )
    p.add_argument("--hints", default="0,10", help="hint counts (painted dots; default: 0,10)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per figure (default: 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: 1)")
    p.add_argument(
        "--sequence",
        type=int,
        default=12,
        metavar="N",
        help="frames of the sequence-throughput run (default: 12; 0: none)",
    )
    p.add_argument(
        "--sequence-size",
        default="1920x1080",
        help="WIDTHxHEIGHT of the sequence frames (default: 1920x1080)",
    )
    p.add_argument("--detail", type=float, default=1.0, help="working-size factor (default: 1)")
    p.add_argument(
        "--no-mirror",
        action="store_true",
        help="time one model pass per frame, not the default frame + mirror average",
    )
    p.add_argument(
        "--device",
        "-d",
        default="auto",
        choices=["auto", "cpu", "cuda", "tensorrt", "directml", "coreml"],
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
    p.add_argument("--no-torch", action="store_true", help="skip the torch eager timings")
    p.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the figures as JSON"
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE",
        help="also draw the stage times as an SVG file",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure and print; the figures are findings, a slow machine is no failure."""
    from inkhue_engine import bench
    from inkhue_engine.errors import InputError
    from inkhue_engine.model import load_model, precision_variant, resolve_model
    from inkhue_engine.pipeline import ColorizeOptions

    try:
        hints = tuple(int(v) for v in args.hints.split(","))
    except ValueError:
        raise InputError(f"--hints {args.hints!r}: give counts like 0,10") from None
    if args.frame is not None and not args.frame.is_file():
        raise InputError(f"--frame {args.frame}: file not found")
    config = bench.BenchConfig(
        sizes=bench.parse_sizes(args.sizes),
        hints=hints,
        runs=args.runs,
        warmup=args.warmup,
        sequence=args.sequence,
        sequence_size=bench.parse_sizes(args.sequence_size)[0],
        torch=not args.no_torch,
        frame=args.frame,
    )
    options = ColorizeOptions(detail=args.detail, mirror_average=not args.no_mirror)
    names = args.model or [None, "lineart"]
    models = []
    for name in names:
        path = precision_variant(
            resolve_model(name, task="lineart" if name == "lineart" else None), args.precision
        )
        models.append(load_model(path, args.device))

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"bench: {msg}", file=sys.stderr, flush=True)

    report = bench.run_bench(models, config, options, log=log)
    print(bench.format_report(report))
    if args.json is not None:
        bench.write_json(report, args.json)
        print(f"figures: {args.json}")
    if args.plot is not None:
        bench.write_plot(report, args.plot)
        print(f"plot: {args.plot}")
    return 0
