"""The README's keyframe figure: one frame of a dev sequence by each method of shot_report.

    python benchmarks/shot_report.py SEQ --task grayscale --work WORK
    python benchmarks/shot_report.py SEQ --task lineart --work WORK
    python benchmarks/keyframes_figure.py SEQ --work WORK --frame 0060 \
        -o docs/images/keyframes_prologue_0060.png

Columns: the keyframe (the truth's first frame), the frame's input, per-frame
colorization, the keyframe's colors copied, ``--reference`` (keyframes), the truth;
one row per task found under WORK/<sequence name>/. Each tile is scaled to ``--height``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine import frames_io as fio
from inkhue_engine.color import from_float01, on_white

COLUMNS = ("keyframe", "input", "per-frame", "copy key", "keyframes", "truth")
FOLDERS = {"per-frame": "per-frame", "copy key": "copy_key", "keyframes": "keyframes"}


def _tile(img: np.ndarray, height: int) -> np.ndarray:
    rgb = from_float01(on_white(img), np.uint8)
    h, w = rgb.shape[:2]
    size = (max(1, round(w * height / h)), height)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seq", type=Path)
    ap.add_argument("--work", type=Path, required=True, help="shot_report's --work folder")
    ap.add_argument("--frame", default="0060", help="stem of the frame to show")
    ap.add_argument("--key", default="0000", help="stem of the keyframe")
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args(argv)
    name = f"{args.frame}.png"
    rows = []
    for task, inputs in (("grayscale", "gray"), ("lineart", "lineart")):
        runs = args.work / args.seq.name / task
        if not runs.is_dir():
            continue
        images = {
            "keyframe": fio.read_image(args.seq / "color" / f"{args.key}.png"),
            "input": fio.read_image(args.seq / inputs / name),
            "truth": fio.read_image(args.seq / "color" / name),
        }
        for column, folder in FOLDERS.items():
            images[column] = fio.read_image(runs / folder / name)
        gap = np.full((args.height, 6, 3), 255, np.uint8)
        tiles = [_tile(images[c], args.height) for c in COLUMNS]
        rows.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1))
    if not rows:
        ap.error(f"no shot_report runs of {args.seq.name} under {args.work}")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    fio.write_image_atomic(args.out, np.concatenate(rows, axis=0)[:-6])
    print(f"{args.out}: {' | '.join(COLUMNS)}; rows {len(rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
