"""Is a grayscale model's gain at 0 hints more than desaturation? Not a test.

    python benchmarks/chroma_tradeoff.py MODEL.onnx [MODEL.onnx ...] --data DEV \\
        [--scales 0.85,1,1.2] [--limit N]

The mean CIEDE2000 rewards hedging toward gray where a color is unsure, so a model that
predicts duller colors can score better without being better. This colorizes each
ground-truth image's lightness at 0 hints (``pipeline.colorize_frame``, as ``inkhue
evaluate``), scales the output's ab by each factor and prints the mean CIEDE2000 and
colorfulness per model and factor: a model that is closer to the truth at the same
colorfulness is better, not just duller.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from inkhue_engine import evaluation, metrics, pipeline
from inkhue_engine.color import lab_to_rgb, rgb_to_lab, to_float01
from inkhue_engine.model import load_model


def scaled_scores(model, pairs, scales: list[float]) -> dict[float, tuple[float, float]]:
    """scale -> (mean CIEDE2000, mean colorfulness) of the model's 0-hint output, ab x scale."""
    de: dict[float, list[float]] = {s: [] for s in scales}
    col: dict[float, list[float]] = {s: [] for s in scales}
    for _, truth, gray01 in pairs:
        lab = rgb_to_lab(to_float01(pipeline.colorize_frame(gray01, model, None)))
        truth_lab = rgb_to_lab(truth)
        for s in scales:
            scaled = lab.copy()
            scaled[..., 1:] *= s
            rgb = np.clip(lab_to_rgb(scaled), 0.0, 1.0)  # out-of-gamut chroma clipped as sRGB
            de[s].append(metrics.mean_ciede2000(rgb_to_lab(rgb), truth_lab))
            col[s].append(metrics.colorfulness(rgb))
    return {s: (float(np.mean(de[s])), float(np.mean(col[s]))) for s in scales}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="grayscale .onnx models")
    ap.add_argument("--data", type=Path, required=True, help="ground-truth color images")
    ap.add_argument("--scales", default="0.85,1,1.2", help="ab factors, comma-separated")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    scales = [float(v) for v in args.scales.split(",") if v.strip()]
    pairs, _ = evaluation.load_pairs(args.data, "grayscale", 256, None, args.limit)
    truth = np.mean([metrics.colorfulness(t) for _, t, _ in pairs])
    print(f"{len(pairs)} images from {args.data}; truth colorfulness {truth:.1f}")
    print(f"{'model':40} {'ab x':>5} {'CIEDE2000':>10} {'colorful':>9}")
    for path in args.models:
        model = load_model(path, "cpu")
        if model.info.task != "grayscale":
            ap.error(f"{path}: a {model.info.task} model; this compares grayscale models")
        for s, (de, col) in scaled_scores(model, pairs, scales).items():
            print(f"{path:40} {s:5.2f} {de:10.3f} {col:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
