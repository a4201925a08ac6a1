"""Where a line-art model's error at N hints lies: lines, hinted and unhinted regions. Not a test.

    python benchmarks/lineart_error_split.py MODEL.onnx --data DEV [--hints 10] [--limit N]

Samples the hints and synthesizes the line art as ``inkhue evaluate`` does (same seed, same
hints), then splits each frame's per-pixel CIEDE2000 by region (``regions.regions_of`` of
the line art): the lines (label 0), regions holding a hint, and the rest. Printed per
method: each part's share of the frame's mean CIEDE2000, summed over parts = the
evaluation's figure. Besides the model and the flat fill, three oracles say what perfect
unhinted regions would give: each unhinted region in its true median color, with its true
median lightness only, or its true median ab only (the model's output elsewhere).
"""

from __future__ import annotations

import argparse

import numpy as np

from inkhue_engine import evaluation, pipeline
from inkhue_engine import regions as rg
from inkhue_engine.color import rgb_to_lab, to_float01
from inkhue_engine.metrics import delta_e_2000
from inkhue_engine.model import load_model

PARTS = ("lines", "hinted", "unhinted")


def split_errors(model, pairs, n: int, seed: int = 0) -> tuple[dict[str, float], dict]:
    """(mean area share per part, {method: {part: mean contribution}}) over ``pairs``."""
    area = dict.fromkeys(PARTS, 0.0)
    methods = ("model", "flat-fill", "true unhinted", "true unhinted L", "true unhinted ab")
    sums = {m: dict.fromkeys(PARTS, 0.0) for m in methods}
    for index, (_, truth, gray01) in enumerate(pairs):
        truth_lab = rgb_to_lab(truth)
        L_in = rgb_to_lab(np.repeat(gray01[..., None], 3, axis=2))[..., 0]
        off_lines = evaluation.hint_area(gray01, "lineart")
        hints = evaluation.protocol_hints(truth_lab, "lineart", n, seed, index, off_lines)
        mask = hints[1] if hints is not None else np.zeros(L_in.shape, np.float32)
        out = rgb_to_lab(to_float01(pipeline.colorize_frame(gray01, model, hints)))
        flat = rgb_to_lab(to_float01(pipeline.flat_fill_frame(gray01, "lineart", hints)))
        labels = rg.regions_of(L_in, "lineart")
        hinted = np.isin(labels, np.unique(labels[mask > 0])) & (labels > 0)
        part = np.where(labels == 0, 0, np.where(hinted, 1, 2))
        unhinted = part == 2
        true_med = rg.per_pixel(rg.region_medians(labels, truth_lab), labels)
        oracles = {}
        for name, channels in (("", slice(0, 3)), (" L", slice(0, 1)), (" ab", slice(1, 3))):
            lab = out.copy()
            lab[..., channels][unhinted] = true_med[..., channels][unhinted]
            oracles["true unhinted" + name] = delta_e_2000(lab, truth_lab)
        errors = {
            "model": delta_e_2000(out, truth_lab),
            "flat-fill": delta_e_2000(flat, truth_lab),
            **oracles,
        }
        for k, name in enumerate(PARTS):
            sel = part == k
            area[name] += float(sel.mean())
            for m, err in errors.items():
                sums[m][name] += float(err[sel].sum()) / err.size
    count = max(1, len(pairs))
    return (
        {p: a / count for p, a in area.items()},
        {m: {p: v / count for p, v in parts.items()} for m, parts in sums.items()},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True, help="folder of ground-truth color images")
    ap.add_argument("--hints", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = load_model(args.model, "cpu")
    if model.info.task != "lineart":
        raise SystemExit(f"{args.model}: a {model.info.task} model; this splits line-art errors")
    pairs, _ = evaluation.load_pairs(args.data, "lineart", 256, None, args.limit)
    area, split = split_errors(model, pairs, args.hints, args.seed)
    print(f"{len(pairs)} images, {args.hints} hints; share of pixels: "
          + ", ".join(f"{p} {area[p]:.1%}" for p in PARTS))  # fmt: skip
    print(f"{'method':<18}" + "".join(f"{p:>10}" for p in PARTS) + f"{'total':>10}")
    for m, parts in split.items():
        row = "".join(f"{parts[p]:10.2f}" for p in PARTS)
        print(f"{m:<18}{row}{sum(parts.values()):10.2f}")


if __name__ == "__main__":
    main()
