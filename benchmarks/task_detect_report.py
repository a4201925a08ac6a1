"""Accuracy of the task detector (engine/task_detect.py) on development data: a confusion table.

    python benchmarks/task_detect_report.py [--corpus DIR] [--prologue DIR] [--shots DIR]
                                            [--features FILE.csv]

Sets (each optional: a folder that is missing is left out and said so):
- ``--corpus``: the training corpus (training/corpus.py) whose ``grayscale/dev`` and
  ``lineart/dev`` hold color images. A grayscale frame is the image's lightness (the
  grayscale task's input); a line-art frame is ``engine.lineart.synthesize_lineart`` of it
  (the line-art task's input), in the default style and in one seeded random style.
- ``--prologue``: the prologue_kid development sequence (``gray/``, ``lineart/``: the
  artist's own outlines, ``lineart_xdog/`` when present: line art synthesized from color).
- ``--shots``: benchmarks/synthetic_shots.py's shots (``shotNN/{gray,lineart,color}``).
- the repository's ``examples/grayscale`` and ``examples/lineart``.
Variants: every line-art set again as lines on transparency (RGBA: black where inked,
alpha = ink coverage, the paper fully transparent with black RGB as Krita stores it), and
the prologue frames again as 16-bit PNG values (uint16).

Colored frames (the corpus images themselves, the shots' ``color/``) are scored on the
``colored`` flag only: their task is not defined. Sequences (prologue, each shot) are also
decided once with ``detect_sequence`` (first 3 frames), as the CLI does.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from inkhue_engine import task_detect as td
from inkhue_engine.color import lab_to_rgb, rgb_to_lab, to_float01
from inkhue_engine.frames_io import IMAGE_EXTS, natural_key, read_image
from inkhue_engine.lineart import LineStyle, random_style, synthesize_lineart

REPO = Path(__file__).resolve().parents[1]


def _images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS),
        key=lambda p: natural_key(p.name),
    )


def _rgb01(path: Path) -> np.ndarray:
    img = read_image(path)
    f = to_float01(img)
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=2)
    if f.shape[2] == 4:  # corpus images with alpha: over white, as training does by default
        f = f[..., :3] * f[..., 3:] + (1.0 - f[..., 3:])
    elif f.shape[2] == 2:
        f = np.repeat(f[..., :1] * f[..., 1:] + (1.0 - f[..., 1:]), 3, axis=2)
    return np.ascontiguousarray(f, np.float32)


def _l_to_gray8(L: np.ndarray) -> np.ndarray:
    """A gray uint8 frame whose lightness is L (0..100)."""
    lab = np.zeros((*L.shape, 3), np.float32)
    lab[..., 0] = L
    return np.rint(lab_to_rgb(lab)[..., 0] * 255.0).astype(np.uint8)


def transparent(gray: np.ndarray) -> np.ndarray:
    """Line art (gray, paper light) as lines on transparency: RGBA of the same dtype,
    RGB black, alpha = ink coverage (1 - gray)."""
    scale = td.DTYPE_SCALE[gray.dtype]
    alpha = (scale - gray.astype(np.float64)) if scale != 1.0 else (1.0 - gray)
    out = np.zeros((*gray.shape, 4), gray.dtype)
    out[..., 3] = alpha.astype(gray.dtype)
    return out


def to16(img: np.ndarray) -> np.ndarray:
    return img.astype(np.uint16) * 257


Frames = Callable[[], Iterator[np.ndarray]]


def corpus_sets(
    corpus: Path, part: str = "dev", every: int = 1, start: int = 0
) -> list[tuple[str, str, Frames]]:
    """The corpus's ``part`` split (dev, or train: images the thresholds were not tuned
    on), every ``every``-th image from the ``start``-th."""
    sets: list[tuple[str, str, Frames]] = []
    for split in ("grayscale", "lineart"):
        folder = corpus / split / part
        if not folder.is_dir():
            print(f"(left out: {folder} not found)", file=sys.stderr)
            continue
        files = _images(folder)[start::every]

        def gray(files=files) -> Iterator[np.ndarray]:
            for p in files:
                yield _l_to_gray8(rgb_to_lab(_rgb01(p))[..., 0])

        def lines(files=files, seeded=False) -> Iterator[np.ndarray]:
            for i, p in enumerate(files):
                style = random_style(np.random.default_rng(i)) if seeded else LineStyle()
                yield _l_to_gray8(synthesize_lineart(_rgb01(p), style=style))

        def colored(files=files) -> Iterator[np.ndarray]:
            for p in files:
                yield np.rint(_rgb01(p) * 255.0).astype(np.uint8)

        name = f"corpus {split}/{part} ({len(files)} images)"
        if split == "grayscale":
            sets.append((f"{name}: lightness", "grayscale", gray))
        sets.append((f"{name}: synthesized line art, default style", "lineart", lines))
        sets.append(
            (
                f"{name}: synthesized line art, random style",
                "lineart",
                lambda f=files: lines(f, True),
            )
        )
        sets.append((f"{name}: the color images", "colored", colored))
    return sets


def folder_set(name: str, folder: Path, expect: str, convert=None) -> tuple[str, str, Frames]:
    files = _images(folder)

    def frames() -> Iterator[np.ndarray]:
        for p in files:
            img = read_image(p)
            yield convert(img) if convert else img

    return (f"{name} ({len(files)})", expect, frames)


def all_sets(args: argparse.Namespace) -> tuple[list, list]:
    sets: list[tuple[str, str, Frames]] = []
    sequences: list[tuple[str, str, Path]] = []
    if args.corpus and Path(args.corpus).is_dir():
        sets += corpus_sets(Path(args.corpus), args.split, args.every, args.start)
        if args.split != "dev":  # an unseen check of the corpus alone
            return sets, []
    elif args.corpus:
        print(f"(left out: corpus {args.corpus} not found)", file=sys.stderr)
    pro = Path(args.prologue) if args.prologue else None
    if pro and pro.is_dir():
        sets.append(folder_set("prologue_kid gray", pro / "gray", "grayscale"))
        sets.append(folder_set("prologue_kid gray, 16-bit", pro / "gray", "grayscale", to16))
        sets.append(folder_set("prologue_kid lineart", pro / "lineart", "lineart"))
        sets.append(folder_set("prologue_kid lineart, 16-bit", pro / "lineart", "lineart", to16))
        sets.append(
            folder_set(
                "prologue_kid lineart on transparency", pro / "lineart", "lineart", transparent
            )
        )
        sets.append(
            folder_set(
                "prologue_kid lineart on transparency, 16-bit",
                pro / "lineart",
                "lineart",
                lambda im: transparent(to16(im)),
            )
        )
        if (pro / "lineart_xdog").is_dir():  # the synthesized line art (training's kind)
            sets.append(folder_set("prologue_kid lineart_xdog", pro / "lineart_xdog", "lineart"))
        sequences += [("prologue_kid gray", "grayscale", pro / "gray")]
        sequences += [("prologue_kid lineart", "lineart", pro / "lineart")]
    elif pro:
        print(f"(left out: prologue {pro} not found)", file=sys.stderr)
    shots = Path(args.shots) if args.shots else None
    if shots and shots.is_dir():
        dirs = sorted(p for p in shots.iterdir() if p.is_dir())
        for kind, expect in (("gray", "grayscale"), ("lineart", "lineart"), ("color", "colored")):
            files = [f for d in dirs for f in _images(d / kind)]

            def frames(files=files) -> Iterator[np.ndarray]:
                for p in files:
                    yield read_image(p)

            sets.append(
                (f"synthetic shots {kind} ({len(dirs)} shots, {len(files)})", expect, frames)
            )
            if kind == "lineart":
                sets.append(
                    (
                        f"synthetic shots lineart on transparency ({len(files)})",
                        expect,
                        lambda files=files: (transparent(read_image(p)) for p in files),
                    )
                )
            if kind != "color":
                sequences += [(f"{d.name} {kind}", expect, d / kind) for d in dirs]
    elif shots:
        print(f"(left out: shots {shots} not found)", file=sys.stderr)
    ex = REPO / "examples"
    sets.append(folder_set("examples/grayscale", ex / "grayscale", "grayscale"))
    sets.append(folder_set("examples/lineart", ex / "lineart", "lineart"))
    sets.append(
        folder_set("examples/lineart on transparency", ex / "lineart", "lineart", transparent)
    )
    return sets, sequences


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="/work/devdata12/newcorp")
    ap.add_argument(
        "--split",
        default="dev",
        help="corpus split: dev (with the other sets) or train (the corpus alone: images "
        "the thresholds were not chosen on)",
    )
    ap.add_argument("--every", type=int, default=1, help="every N-th corpus image")
    ap.add_argument("--start", type=int, default=0, help="from the N-th corpus image")
    ap.add_argument("--prologue", default="/work/data/prologue_kid")
    ap.add_argument("--shots", default="/work/data/synthetic_shots")
    ap.add_argument("--features", default=None, help="also write every frame's features (CSV)")
    args = ap.parse_args(argv)
    sets, sequences = all_sets(args)
    rows = []
    feats: list[dict] = []
    totals = {"grayscale": [0, 0], "lineart": [0, 0]}
    seconds, count = 0.0, 0
    print("| set | expected | n | -> grayscale | -> lineart | blank | correct | colored flag |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, expect, frames in sets:
        got = {"grayscale": 0, "lineart": 0, "blank": 0, "colored": 0}
        n = 0
        for img in frames():
            t0 = time.perf_counter()
            f = td.features(img)
            det = td.decide(f)
            seconds += time.perf_counter() - t0
            count += 1
            n += 1
            got["blank" if det.blank else det.task] += 1
            got["colored"] += det.colored
            feats.append({"set": name, "expected": expect, **f, "task": det.task})
        if expect == "colored":
            correct = f"{got['colored']}/{n} flagged"
        else:
            ok = got[expect]
            totals[expect][0] += ok
            totals[expect][1] += n
            correct = f"{ok}/{n} ({ok / n:.1%})"
        rows.append(name)
        print(
            f"| {name} | {expect} | {n} | {got['grayscale']} | {got['lineart']} | {got['blank']} "
            f"| {correct} | {got['colored']} |"
        )
    g, line = totals["grayscale"], totals["lineart"]
    print()
    print("Confusion (single frames, every set above with a task):")
    print()
    print("| expected \\ detected | grayscale | lineart |")
    print("|---|---:|---:|")
    print(f"| grayscale | {g[0]} | {g[1] - g[0]} |")
    print(f"| lineart | {line[1] - line[0]} | {line[0]} |")
    acc = (g[0] + line[0]) / max(1, g[1] + line[1])
    print(
        f"\naccuracy {acc:.2%} over {g[1] + line[1]} frames; "
        f"{seconds / max(1, count) * 1000:.1f} ms per frame (detection only)"
    )
    light = [f for f in feats if f["paper_L"] >= td.PAPER_MIN_L]
    for expect in ("grayscale", "lineart"):
        tones = [f["tone"] for f in light if f["expected"] == expect]
        dark = sum(1 for f in feats if f["expected"] == expect and f["paper_L"] < td.PAPER_MIN_L)
        if tones:
            print(
                f"{expect}: tone share {min(tones):.4f} .. {max(tones):.4f} over {len(tones)} "
                f"frames with light paper ({dark} more on dark paper); threshold "
                f"{td.TONE_MAX_LINEART}"
            )
    if sequences:
        print("\nSequences (detect_sequence, first 3 frames):\n")
        print("| sequence | expected | detected | confidence |")
        print("|---|---|---|---:|")
        ok = 0
        for name, expect, folder in sequences:
            det = td.detect_sequence(read_image(p) for p in _images(folder))
            ok += det.task == expect
            print(f"| {name} | {expect} | {det.task} | {det.confidence:.2f} |")
        print(f"\n{ok}/{len(sequences)} sequences right")
    if args.features:
        with open(args.features, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(feats[0]))
            w.writeheader()
            w.writerows(feats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
