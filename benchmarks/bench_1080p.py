"""Time colorize_frame on a 1920x1080 prologue_kid frame, split into prepare / model / finish.

    python benchmarks/bench_1080p.py MODEL [MODEL ...] --prologue DIR [--frame 0]
        [--runs 5] [--warmup 1] [--detail 1.0] [--device cpu] [--target-ms 1000]

Each MODEL (an .onnx path or a model name) is timed on the frame its task takes:
``gray/NNNN.png`` for a grayscale model, ``lineart/NNNN.png`` for a line-art model. The
576x1008 render is scaled up to 1080 lines (bicubic) and mirror-tiled to 1920 columns,
so the 1080p frame holds three figures (a full scene's worth of regions) rather than
one stretched one. No hints, default options (regions on). After ``--warmup`` untimed
calls, ``--runs`` calls of prepare_frame + run_prepared + finish_frame (what
colorize_frame does) are timed part by part; the report gives medians in ms. The
machine's load average is printed too: on a shared CPU it explains slow runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

FULL_W, FULL_H = 1920, 1080


def frame_1080p(path: Path) -> np.ndarray:
    """A render scaled to 1080 lines and mirror-tiled (centred) to 1920 columns."""
    from inkhue_engine import frames_io as fio
    from inkhue_engine.bench import fit_frame

    return fit_frame(fio.read_image(path), FULL_H, FULL_W)


def ort_threads(model) -> str:
    """The session's intra-/inter-op thread settings, in words."""
    so = model._session.get_session_options()  # the engine sets no thread count itself
    intra, inter = so.intra_op_num_threads, so.inter_op_num_threads
    default = f"0 = ORT default (one per physical core; {os.cpu_count()} logical cores here)"
    return (
        f"intra-op {intra or default}, inter-op {inter or '0 = default'}, "
        f"execution mode {so.execution_mode.name}"
    )


def bench_model(model, frame: np.ndarray, runs: int, warmup: int, options) -> dict:
    """Median / min / max ms of prepare, model and finish over ``runs`` timed calls."""
    from inkhue_engine.pipeline import finish_frame, prepare_frame, run_prepared

    parts: dict[str, list[float]] = {"prepare": [], "model": [], "finish": [], "total": []}
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        prepared = prepare_frame(frame, model.info, None, options)
        t1 = time.perf_counter()
        pred = run_prepared(model, [prepared])[0]
        t2 = time.perf_counter()
        out = finish_frame(prepared, pred)
        t3 = time.perf_counter()
        if i < warmup:
            continue
        for key, dt in (
            ("prepare", t1 - t0),
            ("model", t2 - t1),
            ("finish", t3 - t2),
            ("total", t3 - t0),
        ):
            parts[key].append(dt * 1000.0)
    assert out.shape[:2] == frame.shape[:2]
    return {
        "input": tuple(prepared.input.shape),
        **{k: (statistics.median(v), min(v), max(v)) for k, v in parts.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model .onnx files or names")
    ap.add_argument(
        "--prologue",
        type=Path,
        required=True,
        help="prologue_kid folder (gray/, lineart/ NNNN.png)",
    )
    ap.add_argument("--frame", type=int, default=0, help="frame number (0)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs (5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (1)")
    ap.add_argument("--detail", type=float, default=1.0, help="working-size factor (1)")
    ap.add_argument("--device", default="cpu", help="model device (cpu)")
    ap.add_argument("--target-ms", type=float, default=1000.0, help="target per frame (1000)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")

    import onnxruntime

    from inkhue_engine import bench
    from inkhue_engine.model import load_model, resolve_model
    from inkhue_engine.pipeline import ColorizeOptions

    options = ColorizeOptions(detail=args.detail)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"InkHue 1080p benchmark: colorize_frame parts, {args.runs} timed run(s) after "
        f"{args.warmup} warm-up, detail {args.detail:g}, no hints, regions on"
    )
    print(
        f"CPU {bench.cpu_name()}, {os.cpu_count()} logical cores; load average "
        + (" / ".join(f"{v:.2f}" for v in load) if load else "n/a")
        + f"; onnxruntime {onnxruntime.__version__}"
    )
    for name in args.models:
        model = load_model(resolve_model(name), args.device)
        kind = "gray" if model.info.task == "grayscale" else "lineart"
        src = args.prologue / kind / f"{args.frame:04d}.png"
        if not src.is_file():
            print(f"bench_1080p: error: {src} not found", file=sys.stderr)
            return 2
        frame = frame_1080p(src)
        r = bench_model(model, frame, args.runs, args.warmup, options)
        ok = r["total"][0] < args.target_ms
        print(
            f"\nmodel {model.info.name!r} ({model.info.task}, {model.info.path}) on "
            f"{', '.join(model.providers)}; ORT threads: {ort_threads(model)}"
        )
        print(
            f"frame {src} -> {frame.shape[1]}x{frame.shape[0]} {frame.dtype}; model input "
            f"{list(r['input'])} (train_size {model.info.train_size})"
        )
        for key in ("prepare", "model", "finish", "total"):
            med, lo, hi = r[key]
            print(f"  {key:<8} {med:8.1f} ms  (min {lo:.1f}, max {hi:.1f})")
        print(
            f"  target < {args.target_ms:.0f} ms per frame: "
            f"{'met' if ok else 'MISSED'} ({1000.0 / r['total'][0]:.2f} frames/s)"
        )
    return 0  # a missed target is a finding, printed above, not a failure of the tool


if __name__ == "__main__":
    sys.exit(main())
