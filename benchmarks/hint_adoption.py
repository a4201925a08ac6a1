"""Hint adoption (engine/hint_adoption.py) on and off, and at other settings.

    python benchmarks/hint_adoption.py MODEL --data DEV_DIR [--hints 1,2,3,5,10,50]
        [--strengths 1,3,5 | --tolerances 5,10,20] [--limit N] [--json OUT]
    python benchmarks/hint_adoption.py MODEL --speed FRAME [--size 1920x1080] [--runs 11]

Runs ``inkhue evaluate``'s protocol (engine/evaluation.py: 256 px, seeded hints, the
same hints for every row) once without adoption and once per setting, and prints the
model's mean CIEDE2000 and colorfulness beside the flat fill's.

- A line-art MODEL needs a classification color head (``ab_logits``): ``--strengths``
  are ADOPT_STRENGTH values.
- A grayscale MODEL: ``--tolerances`` are GRAY_MATCH_L values (how near in L a region's
  gray level must be to a hinted region's). The table gains the flat fill with the same
  rule (``flat_fill_frame(adopt_gray_levels=True)``): what the rule does without the
  model, so that the model's share of the gain is seen.

``--speed FRAME``: instead, the time adoption adds end to end (``colorize_frame``) on
FRAME scaled to ``--size`` with 10 hint dots (3x3, random colors, on paper pixels),
adoption off and on interleaved; prints the medians and the median of the paired ratios.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

import cv2
import numpy as np

from inkhue_engine import frames_io, hint_adoption, pipeline
from inkhue_engine.evaluation import evaluate_model
from inkhue_engine.model import load_model


def speed(model, frame_path: str, size: str, runs: int) -> dict[str, float]:
    """Median seconds of colorize_frame with adoption off and on, and the paired ratio."""
    w, h = (int(v) for v in size.lower().split("x"))
    img = cv2.resize(frames_io.read_image(frame_path), (w, h), interpolation=cv2.INTER_AREA)
    gray = img if img.ndim == 2 else img[..., :3].mean(axis=2)
    rng = np.random.default_rng(0)
    ys, xs = np.nonzero(gray[1:-1, 1:-1] >= 0.8 * gray.max())
    ab = np.zeros((h, w, 2), np.float32)
    mask = np.zeros((h, w), np.float32)
    for i in rng.choice(ys.size, 10, replace=False):
        y, x = ys[i] + 1, xs[i] + 1
        mask[y - 1 : y + 2, x - 1 : x + 2] = 1
        ab[y - 1 : y + 2, x - 1 : x + 2] = rng.uniform(-60, 60, 2)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for run in range(runs + 1):  # the first pair warms up
        for label in ("off", "on"):
            opts = pipeline.ColorizeOptions(adopt_hints=label == "on")
            start = time.perf_counter()
            pipeline.colorize_frame(img, model, (ab, mask), opts)
            if run:
                times[label].append(time.perf_counter() - start)
    ratio = np.array(times["on"]) / np.array(times["off"])
    return {
        "off_s": float(np.median(times["off"])),
        "on_s": float(np.median(times["on"])),
        "paired_ratio": float(np.median(ratio)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", help="folder of ground-truth color images")
    ap.add_argument("--speed", metavar="FRAME", help="time adoption on this frame instead")
    ap.add_argument("--size", default="1920x1080", help="--speed: frame size WxH")
    ap.add_argument("--runs", type=int, default=11, help="--speed: timed pairs")
    ap.add_argument("--hints", default="1,2,3,5,10,50", help="hint counts, comma-separated")
    ap.add_argument(
        "--strengths",
        default=f"{hint_adoption.ADOPT_STRENGTH:g}",
        help="line art: comma-separated ADOPT_STRENGTH values",
    )
    ap.add_argument(
        "--tolerances",
        default=f"{hint_adoption.GRAY_MATCH_L:g}",
        help="grayscale: comma-separated GRAY_MATCH_L values",
    )
    ap.add_argument("--limit", type=int, help="only the first N images")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)
    model = load_model(args.model, "cpu")
    gray = model.info.task == "grayscale"
    if not gray and model.info.ab_classes is None:
        ap.error(f"{args.model}: a line-art model needs a classification color head")
    if args.speed:
        got = speed(model, args.speed, args.size, args.runs)
        print(
            f"{args.size}, 10 hints: adoption off {got['off_s'] * 1000:.1f} ms, on "
            f"{got['on_s'] * 1000:.1f} ms (medians); paired ratio {got['paired_ratio']:.3f}"
        )
        return 0
    if not args.data:
        ap.error("give --data DEV_DIR (or --speed FRAME)")
    counts = [int(x) for x in args.hints.split(",")]
    rows: dict[str, dict[int, tuple[float, float]]] = {}
    flat: dict[str, dict[int, tuple[float, float]]] = {}
    if gray:
        name, target = "tolerance", "adopt_by_lightness"
        settings = args.tolerances.split(",")
    else:
        name, target = "strength", "adopt_hint_colors"
        settings = args.strengths.split(",")
    runs = [("off", None)] + [(f"{name} {v}", float(v)) for v in settings]
    original = getattr(pipeline, target)
    original_flat = pipeline.flat_fill_frame
    try:
        for i, (label, value) in enumerate(runs):
            if value is not None:
                setattr(pipeline, target, functools.partial(original, **{name: value}))
            flat_label = "flat fill"
            if gray and i == 1:  # beside the first tolerance: the same rule without the model
                pipeline.flat_fill_frame = functools.partial(original_flat, adopt_gray_levels=True)
                flat_label = f"flat fill + {label}"
            else:
                pipeline.flat_fill_frame = original_flat
            opts = pipeline.ColorizeOptions(adopt_hints=value is not None)
            report = evaluate_model(model, args.data, counts, opts, limit=args.limit)
            rows[label] = {}
            flat.setdefault(flat_label, {})
            for n in counts:
                m, f = report.row("model", n), report.row("flat-fill", n)
                rows[label][n] = (round(m.ciede2000, 3), round(m.colorfulness, 1))
                flat[flat_label][n] = (round(f.ciede2000, 3), round(f.colorfulness, 1))
            print(f"{label}: done ({report.images} images)", file=sys.stderr, flush=True)
    finally:
        setattr(pipeline, target, original)
        pipeline.flat_fill_frame = original_flat
    print("mean CIEDE2000 / colorfulness of the model; flat fill last")
    columns = [label for label, _ in runs]
    print("hints  " + "  ".join(f"{c:>16s}" for c in [*columns, *flat]))
    for n in counts:
        cells = [f"{rows[c][n][0]:8.2f} / {rows[c][n][1]:5.1f}" for c in columns]
        cells += [f"{f[n][0]:8.2f} / {f[n][1]:5.1f}" for f in flat.values()]
        print(f"{n:5d}  " + "  ".join(cells))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "flat_fill": flat, "data": args.data}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
