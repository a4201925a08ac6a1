"""Line-art hint adoption (engine/hint_adoption.py) on and off, and at other strengths.

    python benchmarks/hint_adoption.py MODEL --data DEV_DIR [--hints 1,2,3,5,10,50]
        [--strengths 1,3,5] [--limit N] [--json OUT]

Runs ``inkhue evaluate``'s protocol (engine/evaluation.py: 256 px, seeded hints, the
same hints for every row) once without adoption and once per strength, and prints the
model's mean CIEDE2000 and colorfulness beside the flat fill's. MODEL must be a line-art
model with a classification color head (it has ``ab_logits``).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

from inkhue_engine import hint_adoption, pipeline
from inkhue_engine.evaluation import evaluate_model
from inkhue_engine.model import load_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True, help="folder of ground-truth color images")
    ap.add_argument("--hints", default="1,2,3,5,10,50", help="hint counts, comma-separated")
    ap.add_argument(
        "--strengths", default=f"{hint_adoption.ADOPT_STRENGTH:g}", help="comma-separated"
    )
    ap.add_argument("--limit", type=int, help="only the first N images")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)
    model = load_model(args.model, "cpu")
    if model.info.task != "lineart" or model.info.ab_classes is None:
        ap.error(f"{args.model}: needs a line-art model with a classification color head")
    counts = [int(x) for x in args.hints.split(",")]
    rows: dict[str, dict[int, tuple[float, float]]] = {}
    flat: dict[int, tuple[float, float]] = {}
    runs = [("off", None)] + [(f"strength {s}", float(s)) for s in args.strengths.split(",")]
    original = pipeline.adopt_hint_colors
    try:
        for label, strength in runs:
            if strength is not None:
                pipeline.adopt_hint_colors = functools.partial(original, strength=strength)
            opts = pipeline.ColorizeOptions(adopt_hints=strength is not None)
            report = evaluate_model(model, args.data, counts, opts, limit=args.limit)
            rows[label] = {}
            for n in counts:
                m, f = report.row("model", n), report.row("flat-fill", n)
                rows[label][n] = (round(m.ciede2000, 3), round(m.colorfulness, 1))
                flat[n] = (round(f.ciede2000, 3), round(f.colorfulness, 1))
            print(f"{label}: done ({report.images} images)", file=sys.stderr, flush=True)
    finally:
        pipeline.adopt_hint_colors = original
    print("mean CIEDE2000 / colorfulness of the model; flat fill last")
    print("hints  " + "  ".join(f"{label:>16s}" for label, _ in runs) + f"  {'flat fill':>16s}")
    for n in counts:
        cells = [f"{rows[label][n][0]:8.2f} / {rows[label][n][1]:5.1f}" for label, _ in runs]
        cells.append(f"{flat[n][0]:8.2f} / {flat[n][1]:5.1f}")
        print(f"{n:5d}  " + "  ".join(cells))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "flat_fill": flat, "data": args.data}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
