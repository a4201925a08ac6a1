"""How a line-art palette lock picks each region's color: the region median's nearest palette
color, or the class evidence of the model's color distribution (docs/PALETTE.md). Not a test.

    python benchmarks/palette_decoding.py --data DEV [--limit N] [--hints 0,10] \\
        [--temperature 1 --sigma-ab 20 --sigma-l 30 ...]

Each ground-truth image gets its own palette (``model_card.image_palette``, as the model
card's ``model+palette`` rows) and the hints of ``inkhue evaluate`` (same seeds). The
evidence rule is run for every combination of the given temperatures and sigmas; the
median rule is the same model with its class output ignored. Prints mean CIEDE2000 per rule
and hint count, and the per-image difference of the first evidence setting against the
median rule (mean and standard error).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import itertools
import sys
from pathlib import Path

import numpy as np

from inkhue_engine import evaluation, palette, pipeline
from inkhue_engine.model import load_model
from inkhue_training import model_card


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def per_image(model, pairs, palettes, hints, options) -> dict[int, list[float]]:
    """CIEDE2000 per image and hint count under the palette lock."""
    out: dict[int, list[float]] = {n: [] for n in hints}
    for i, (pair, pal) in enumerate(zip(pairs, palettes, strict=True)):
        # start=i: the hints inkhue evaluate samples for image i
        rows = model_card.evaluate_palette_lock(model, [pair], hints, [pal], options, start=i)
        for r in rows:
            out[r.hints].append(r.ciede2000)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="ground-truth color images")
    ap.add_argument("--model", default="engine/models/lineart.onnx")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--hints", default="0,10")
    ap.add_argument("--temperature", type=_floats, default=[palette.EVIDENCE_TEMPERATURE])
    ap.add_argument("--sigma-ab", type=_floats, default=[palette.EVIDENCE_SIGMA_AB])
    ap.add_argument("--sigma-l", type=_floats, default=[palette.EVIDENCE_SIGMA_L])
    args = ap.parse_args(argv)
    model = load_model(args.model, "cpu")
    if model.info.ab_classes is None:
        print(f"{args.model}: no ab_logits output; nothing to compare", file=sys.stderr)
        return 2
    hints = sorted({int(v) for v in args.hints.split(",")})
    pairs, _ = evaluation.load_pairs(args.data, model.info.task, 256, None, args.limit)
    palettes = [model_card.image_palette(truth)[0] for _, truth, _ in pairs]
    options = pipeline.ColorizeOptions()
    median_model = copy.copy(model)  # the same session, its class output not used
    median_model.info = dataclasses.replace(model.info, ab_classes=None)
    results = {"median": per_image(median_model, pairs, palettes, hints, options)}
    ev, snap = pipeline.palette_evidence, pipeline.snap_regions_by_evidence
    try:
        for t, s_ab, s_l in itertools.product(args.temperature, args.sigma_ab, args.sigma_l):
            pipeline.palette_evidence = functools.partial(ev, temperature=t, sigma_ab=s_ab)
            pipeline.snap_regions_by_evidence = functools.partial(snap, sigma_l=s_l)
            name = f"evidence T {t:g} sigma_ab {s_ab:g} sigma_L {s_l:g}"
            results[name] = per_image(model, pairs, palettes, hints, options)
            print(name, {n: round(float(np.mean(v)), 3) for n, v in results[name].items()})
    finally:
        pipeline.palette_evidence, pipeline.snap_regions_by_evidence = ev, snap
    print(f"\n{len(pairs)} images of {args.data}, mean CIEDE2000")
    print("rule".ljust(48) + "".join(f"{n:>3} hints " for n in hints))
    for name, scores in results.items():
        print(name.ljust(48) + "".join(f"{np.mean(scores[n]):9.3f} " for n in hints))
    first = list(results)[1]
    for n in hints:
        d = np.array(results[first][n]) - np.array(results["median"][n])
        print(
            f"{first} - median, {n} hints: {d.mean():+.3f} +- {d.std() / np.sqrt(d.size):.3f} "
            f"(better {(d < -0.01).sum()}, worse {(d > 0.01).sum()} of {d.size})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
