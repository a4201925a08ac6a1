"""Throughput of batch colorization: the overlapped pipeline against a plain loop.

    python benchmarks/bench_batch.py --model engine/models/grayscale.onnx --frames DIR
    python benchmarks/bench_batch.py --model m.onnx --synthetic 48 --size 576x1008

For each batch size (and worker count) it runs ``batch.colorize_many`` into a fresh
temporary folder and reports frames/s; the baseline is the obvious loop (read,
``pipeline.colorize_frame``, write) with no overlap. Carry is on unless --no-carry.
Prints a report; it is not a pass/fail timing test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine import batch, frames_io
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions, colorize_frame


def synthetic_sequence(folder: Path, n: int, h: int, w: int) -> None:
    """Gray outlined shapes, one moving: a cartoon-like sequence with static parts."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((h, w), 215, np.uint8)
        cv2.rectangle(img, (w // 10, h // 10), (w // 2, h // 2), 100, -1)
        cv2.rectangle(img, (w // 10, h // 10), (w // 2, h // 2), 20, 3)
        cv2.circle(img, (w * 3 // 4, h // 4), min(h, w) // 8, 160, -1)
        cv2.circle(img, (w * 3 // 4, h // 4), min(h, w) // 8, 15, 3)
        x = (w // 4 + 7 * i) % w
        cv2.circle(img, (x, h * 3 // 4), min(h, w) // 10, 60, -1)
        frames_io.write_image_atomic(folder / f"f{i:04d}.png", img)


def plain_loop(sources, out: Path, model, options) -> float:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for src in sources:
        frame = frames_io.read_image(src.path)
        frames_io.write_image_atomic(
            out / src.path.name, colorize_frame(frame, model, None, options)
        )
    return len(sources) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--frames", type=Path, help="folder of input frames")
    ap.add_argument("--synthetic", type=int, default=24, help="frames to generate (no --frames)")
    ap.add_argument("--size", default="576x1008", help="WxH of generated frames")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--workers", default="1,4")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--detail", type=float, default=1.0)
    ap.add_argument("--no-carry", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="inkhue-bench-"))
    try:
        frames = args.frames
        if frames is None:
            w, h = (int(v) for v in args.size.lower().split("x"))
            frames = tmp / "in"
            synthetic_sequence(frames, args.synthetic, h, w)
        sources = frames_io.expand_inputs([frames])
        model = load_model(args.model, args.device)
        options = ColorizeOptions(detail=args.detail)
        shape = frames_io.read_image(sources[0].path).shape
        print(
            f"{len(sources)} frames {shape[1]}x{shape[0]} from {frames}; model "
            f"{model.info.name!r} ({model.info.task}, train size {model.info.train_size}) "
            f"on {', '.join(model.providers)}"
        )
        colorize_frame(frames_io.read_image(sources[0].path), model, None, options)  # warm up
        plain = plain_loop(sources, tmp / "plain", model, options)
        print(f"{'plain loop (no overlap, no carry)':<36} {plain:7.2f} frames/s")
        for workers in (int(v) for v in args.workers.split(",")):
            for bs in (int(v) for v in args.batch_sizes.split(",")):
                out = tmp / f"b{bs}w{workers}"
                res = batch.colorize_many(
                    sources,
                    out,
                    model,
                    options,
                    batch_size=bs,
                    workers=workers,
                    carry=not args.no_carry,
                    progress=False,
                )
                label = f"colorize_many batch {bs}, workers {workers}"
                print(f"{label:<36} {res.fps:7.2f} frames/s ({res.seconds:.1f} s)")
                shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
