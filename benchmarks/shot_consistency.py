"""How much a thing's color changes between frames of a shot at 0 hints, with and
without the mirror average (ColorizeOptions.mirror_average).

    python benchmarks/shot_consistency.py MODEL --shot /work/data/prologue_kid [--gap 60]
        [--step 6] [--json OUT]

SHOT holds ``color/`` (the flat-filled truth) and the task's input frames (``gray/`` or
``lineart/``), paired in natural order of their names, as the model card's target (c)
reads them (``model_card.image_files``). Every frame is colorized on its own (no
keyframes, no carry) and pairs of frames are compared with ``shot_eval.fill_consistency``
(each true fill's mean output color in both frames, mean CIEDE2000 over fills): far pairs
(i, i + GAP) for i = 0, STEP, ... and near pairs (i, i + 1) for i = 0, 10, 20, ... The
model card's figure is the far pair (0, 60).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from inkhue_engine import frames_io
from inkhue_engine.errors import InputError
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions, colorize_frame
from inkhue_engine.shot_eval import fill_consistency
from inkhue_training.model_card import image_files


def pairs_of(
    count: int, gap: int, step: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(far pairs (i, i + gap), near pairs (i, i + 1)) of a shot of ``count`` frames."""
    far = [(i, i + gap) for i in range(0, count - gap, step)]
    near = [(i, i + 1) for i in range(0, count - 1, 10)]
    return far, near


def measure(model_path: str, shot: Path, gap: int, step: int) -> dict:
    """Fill consistency of each pair, mirror average off and on."""
    model = load_model(model_path, "cpu")
    task = model.info.task
    truths = image_files(shot / "color")  # as the model card's target (c) reads them
    inputs = image_files(shot / ("gray" if task == "grayscale" else "lineart"))
    if [p.name for p in truths] != [p.name for p in inputs]:
        raise InputError(
            f"{shot}: color/ and its input folder must hold frames of the same names "
            f"({len(truths)} and {len(inputs)} frames)"
        )
    far, near = pairs_of(len(inputs), gap, step)
    if not far:
        raise InputError(f"{shot}: {len(inputs)} frames, too few for --gap {gap}")
    needed = sorted({i for p in far + near for i in p})
    truth = {i: frames_io.read_image(truths[i]) for i in needed}
    result: dict = {"model": model.info.name, "shot": str(shot), "far": far, "near": near}
    for mirror in (False, True):
        opts = ColorizeOptions(mirror_average=mirror)
        out = {
            i: colorize_frame(frames_io.read_image(inputs[i]), model, None, opts) for i in needed
        }
        key = "mirror" if mirror else "one pass"
        result[key] = {
            kind: [fill_consistency(out[a], out[b], truth[a], truth[b])[0] for a, b in pairs]
            for kind, pairs in (("far", far), ("near", near))
        }
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--shot", type=Path, required=True)
    ap.add_argument("--gap", type=int, default=60, help="frames between far pairs (60)")
    ap.add_argument("--step", type=int, default=6, help="first frames of far pairs (every 6)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        r = measure(args.model, args.shot, args.gap, args.step)
    except InputError as exc:
        print(f"shot_consistency: error: {exc}", file=sys.stderr)
        return 2
    print(f"model {r['model']!r}, shot {r['shot']}: mean CIEDE2000 of the true fills' colors")
    for kind, pairs in (("far", r["far"]), ("near", r["near"])):
        print(f"{kind} pairs {pairs[0]}..{pairs[-1]} ({len(pairs)}):")
        for key in ("one pass", "mirror"):
            v = r[key][kind]
            print(f"  {key:>8}: mean {np.mean(v):.2f}  max {np.max(v):.2f}  " + " ".join(
                f"{x:.2f}" for x in v))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
