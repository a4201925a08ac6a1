"""The README's fine-tuning figure: a studio's palette learned from its own frames.

    python benchmarks/finetune_demo.py --work /tmp/finetune_demo [--seed 3] [--steps 300] [--lr LR]

A procedural shot (benchmarks/synthetic_shots.py, one seed: its characters keep their
colors) stands in for a production: its first 20 frames are the studio's colored frames,
frames 20-23 are new frames nobody tuned on. ``inkhue finetune`` learns from the first
ones; ``inkhue evaluate`` (0 hints, long side 256) scores the shipped grayscale model and
the fine-tuned one on the new frames, each with and without its palette lock. Writes
``report.json`` and ``finetune_demo.png`` (a new frame: gray input, base, fine-tuned,
truth) into --work. Needs the training extra (torch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_shots import render_shot  # noqa: E402

from inkhue_engine import frames_io as fio  # noqa: E402


def inkhue(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "inkhue_engine.cli", *args], check=True)


def mean_de(report: Path) -> float:
    rows = json.loads(report.read_text())["rows"]
    return next(r["ciede2000"] for r in rows if r["method"] == "model" and r["hints"] == 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, help="fine-tuning learning rate (default: inkhue's)")
    args = ap.parse_args(argv)
    frames = render_shot(np.random.default_rng(args.seed), 24)
    train, new = args.work / "studio_frames", args.work / "new_frames"
    for folder, part in ((train, frames[:20]), (new, frames[20:])):
        folder.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(part):
            fio.write_image_atomic(folder / f"{i:04d}.png", f["color"])
    model = args.work / "studio.onnx"
    inkhue(
        "finetune",
        "--data",
        str(train),
        "--base",
        "grayscale",
        "-o",
        str(model),
        "--steps",
        str(args.steps),
        "--seed",
        "0",
        "--overwrite",
        "--quiet",
        *(["--lr", str(args.lr)] if args.lr is not None else []),
    )
    scores = {}
    for name, m in (("base", "grayscale"), ("fine-tuned", str(model))):
        for palette in ("none", None):
            key = f"{name}{'' if palette else ' + palette'}"
            out = args.work / f"eval_{key.replace(' ', '_')}.json"
            extra = ["--palette", palette] if palette else []
            inkhue(
                "evaluate",
                "--model",
                m,
                "--data",
                str(new),
                "--hints",
                "0",
                "--json",
                str(out),
                "--quiet",
                *extra,
            )
            scores[key] = mean_de(out)
    (args.work / "report.json").write_text(json.dumps(scores, indent=1))
    print(json.dumps(scores, indent=1))
    # picture: one new frame
    inkhue(
        "colorize",
        str(new / "0002.png"),
        "-o",
        str(args.work / "base.png"),
        "-q",
        "--model",
        "grayscale",
        "--palette",
        "none",
        "--overwrite",
    )
    inkhue(
        "colorize",
        str(new / "0002.png"),
        "-o",
        str(args.work / "tuned.png"),
        "-q",
        "--model",
        str(model),
        "--overwrite",
    )
    truth = frames[22]["color"]
    gray = cv2.cvtColor(frames[22]["gray"], cv2.COLOR_GRAY2RGB)
    row = [
        gray,
        fio.read_image(args.work / "base.png")[..., :3],
        fio.read_image(args.work / "tuned.png")[..., :3],
        truth,
    ]
    fio.write_image_atomic(args.work / "finetune_demo.png", np.concatenate(row, axis=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
