"""Keyframe shots: colorize a dev sequence from its first frame and score it against the
baselines (docs/KEYFRAMES.md holds the figures).

    python benchmarks/shot_report.py SEQ --task grayscale|lineart [--key 0000] \
        [--frames N] [--work /tmp/shot] [--json FILE]

SEQ holds ``color/`` (the truth), ``gray/`` and ``lineart/`` (the inputs; ``--inputs`` names
another, e.g. prologue_kid's ``lineart_xdog/``), frames named
alike (python -m inkhue_training.sequences prologue renders prologue_kid so; the synthetic
shots of benchmarks/synthetic_shots.py too). Methods:

- ``per-frame``: ``inkhue colorize`` of each frame alone (the bundled model, no carry);
- ``copy key``: the keyframe's colors unchanged on every frame (grayscale: the frame's L
  with the keyframe's ab; line art: the keyframe's colors under the frame's lines);
- ``keyframes``: ``inkhue colorize --reference KEY`` (engine/shot.py).
Timing: seconds per frame of the keyframe run (whole shot, wall clock / frames).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from inkhue_engine import frames_io as fio
from inkhue_engine.batch import colorize_many
from inkhue_engine.color import from_float01, lab_to_rgb, on_white, rgb_to_lab
from inkhue_engine.model import load_model, resolve_model
from inkhue_engine.shot import Keyframe, colorize_shot
from inkhue_engine.shot_eval import evaluate_shot, format_scores


def copy_key(frame: np.ndarray, key: np.ndarray, task: str) -> np.ndarray:
    """The keyframe's colors unchanged on ``frame`` (the naive baseline)."""
    key_rgb = on_white(key)
    frame_rgb = on_white(frame)
    if task == "grayscale":
        lab = rgb_to_lab(key_rgb)
        lab[..., 0] = rgb_to_lab(frame_rgb)[..., 0]
        return from_float01(lab_to_rgb(lab), np.uint8)
    return from_float01(key_rgb * frame_rgb, np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seq", type=Path)
    ap.add_argument("--task", choices=["grayscale", "lineart"], required=True)
    ap.add_argument(
        "--inputs",
        default=None,
        help="input subfolder of SEQ (default: gray/ or lineart/; e.g. lineart_xdog)",
    )
    ap.add_argument("--key", default=None, help="stem of the keyframe (default: the first frame)")
    ap.add_argument("--frames", type=int, default=None, help="first N frames only")
    ap.add_argument("--work", type=Path, default=Path("/tmp/shot_report"))
    ap.add_argument("--methods", default="per-frame,copy key,keyframes")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    in_dir = args.seq / (args.inputs or ("gray" if args.task == "grayscale" else "lineart"))
    truth_dir = args.seq / "color"
    files = sorted(
        (p for p in in_dir.iterdir() if p.suffix.lower() == ".png"),
        key=lambda p: fio.natural_key(p.name),
    )[: args.frames]
    key_stem = args.key or files[0].stem
    key_file = truth_dir / f"{key_stem}.png"
    work = args.work / args.seq.name / args.task
    shutil.rmtree(work, ignore_errors=True)
    (work / "inputs").mkdir(parents=True)
    for f in files:  # a run over exactly these frames
        (work / "inputs" / f.name).symlink_to(f.resolve())
    sources = fio.expand_inputs([str(work / "inputs")])
    model = load_model(resolve_model(None, args.task), "cpu")
    methods = [m.strip() for m in args.methods.split(",")]
    report: dict[str, dict] = {}
    for method in methods:
        out = work / method.replace(" ", "_")
        t0 = time.perf_counter()
        if method == "per-frame":
            colorize_many(sources, out, model, carry=False, progress=False)
        elif method == "copy key":
            key = fio.read_image(key_file)
            out.mkdir()
            for f in files:
                img = key if f.stem == key_stem else copy_key(fio.read_image(f), key, args.task)
                fio.write_image_atomic(out / f.name, img)
        elif method == "keyframes":
            colorize_shot(
                sources,
                out,
                model,
                [Keyframe(key_file.name, fio.read_image(key_file))],
                progress=False,
            )
        else:
            raise SystemExit(f"unknown method {method!r}")
        seconds = (time.perf_counter() - t0) / len(files)
        scores = evaluate_shot(out, truth_dir, in_dir, args.task, [key_stem])
        print(
            format_scores(f"{args.seq.name} {args.task} {method} ({seconds:.2f} s/frame)", scores),
            flush=True,
        )
        report[method] = {**scores.as_dict(), "seconds_per_frame": seconds}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
