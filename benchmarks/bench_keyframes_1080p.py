"""Time keyframe colorization of 1920x1080 frames (docs/KEYFRAMES.md).

    python benchmarks/bench_keyframes_1080p.py SHOT [--task grayscale|lineart] [--frames 8]

SHOT is a dev sequence folder (color/, gray/, lineart/; e.g. from
benchmarks/synthetic_shots.py); its frames are scaled to cover 1920x1080 and cropped.
Frame 0 is the keyframe; each later frame is colorized from it and from the previous
result, as ``inkhue colorize --reference`` does. Prints the median seconds per frame,
the reference build time and the load of the machine; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine import frames_io as fio
from inkhue_engine import keyframes as kf
from inkhue_engine.model import load_model, resolve_model
from inkhue_engine.shot import colorize_with_references

W, H = 1920, 1080


def to_1080p(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = max(W / w, H / h)
    big = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - H) // 2, (big.shape[1] - W) // 2
    return np.ascontiguousarray(big[y0 : y0 + H, x0 : x0 + W])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shot", type=Path)
    ap.add_argument("--task", choices=["grayscale", "lineart"], default="grayscale")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument(
        "--keyframe-only",
        action="store_true",
        help="match each frame to the keyframe only (inkhue colorize --reference --no-carry)",
    )
    args = ap.parse_args(argv)
    sub = "gray" if args.task == "grayscale" else "lineart"
    names = sorted(p.name for p in (args.shot / sub).glob("*.png"))[: args.frames + 1]
    frames = [to_1080p(fio.read_image(args.shot / sub / n)) for n in names]
    key = to_1080p(fio.read_image(args.shot / "color" / names[0]))
    model = load_model(resolve_model(None, args.task), "cpu")
    t0 = time.perf_counter()
    ref = kf.make_reference(key, args.task, frames[0])
    build = time.perf_counter() - t0
    times, prev = [], None
    for frame in frames[1:]:
        t0 = time.perf_counter()
        refs = [ref] + ([prev] if prev is not None else [])
        out, colors = colorize_with_references(frame, model, refs)
        if not args.keyframe_only:
            prev = kf.previous_reference(colors, out, args.task)
        times.append(time.perf_counter() - t0)
    load = os.getloadavg()[0]
    print(
        f"{args.shot.name} {args.task} {W}x{H}: median {statistics.median(times):.3f} s/frame "
        f"(min {min(times):.3f}, {len(times)} frames, "
        f"{'keyframe only' if args.keyframe_only else 'keyframe + previous frame'}), keyframe "
        f"reference built in {build:.3f} s; load average {load:.2f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
