"""Time colorize_frame on a 1920x1080 frame: ms per frame and peak RSS (not a test).

    python benchmarks/bench_pipeline.py [MODEL] [--device D] [--detail X] [--frames N]
        [--kind gray|lineart|noise] [--no-regions] [--palette HEX,HEX,...]

MODEL is a model name or .onnx path (default: the bundled grayscale model). The frame
is synthetic: flat shapes with dark outlines ("cartoon"), its gray version, or noise
(the worst case for the region code). The first call (session warm-up) is not timed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import cv2
import numpy as np


def cartoon(h: int = 1080, w: int = 1920, seed: int = 0) -> np.ndarray:
    """RGB uint8: 40 flat anti-aliased discs with black outlines on light paper."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 235, np.uint8)
    for _ in range(40):
        color = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(h // 20, h // 5))
        cv2.circle(img, (x, y), r, color, -1, cv2.LINE_AA)
        cv2.circle(img, (x, y), r, (0, 0, 0), 3, cv2.LINE_AA)
    return img


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--detail", type=float, default=1.0)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--kind", choices=["gray", "lineart", "noise"], default="gray")
    ap.add_argument("--no-regions", action="store_true")
    ap.add_argument("--palette", default=None)
    args = ap.parse_args(argv)

    from inkhue_engine.color import from_float01, rgb_to_gray01, to_float01
    from inkhue_engine.model import load_model, resolve_model
    from inkhue_engine.pipeline import ColorizeOptions, colorize_frame, prepare_frame

    model = load_model(resolve_model(args.model), args.device)
    if args.kind == "noise":
        frame = np.random.default_rng(0).integers(0, 256, (1080, 1920), dtype=np.uint8)
    elif args.kind == "lineart":
        frame = np.full((1080, 1920), 255, np.uint8)
        for i in range(40):
            rng = np.random.default_rng(i)
            cv2.circle(
                frame,
                (int(rng.integers(0, 1920)), int(rng.integers(0, 1080))),
                int(rng.integers(54, 216)),
                0,
                3,
                cv2.LINE_AA,
            )
    else:
        frame = from_float01(rgb_to_gray01(to_float01(cartoon())), np.uint8)
    palette = tuple(args.palette.split(",")) if args.palette else None
    opts = ColorizeOptions(detail=args.detail, regions=not args.no_regions, palette=palette)
    work = prepare_frame(frame, model.info, options=opts).input.shape
    colorize_frame(frame, model, options=opts)  # warm-up
    times = []
    for _ in range(args.frames):
        t0 = time.perf_counter()
        colorize_frame(frame, model, options=opts)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"model {model.info.name!r} ({model.info.task}) on {', '.join(model.providers)}")
    print(
        f"frame 1920x1080 {args.kind}, detail {args.detail}, regions {not args.no_regions}, "
        f"palette {len(palette) if palette else 'none'}; model input {work}"
    )
    print(
        f"{statistics.median(times):.0f} ms/frame (median of {len(times)}; "
        f"min {min(times):.0f}, max {max(times):.0f})"
    )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
