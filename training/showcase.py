"""Showcase pictures for the README: input / output (0 hints) / output (hints) / ground truth.

    python -m inkhue_training.showcase --grayscale-model M --lineart-model M \\
        --dev-gray DIR --dev-lineart DIR --prologue DIR -o docs/images/

Per task (a model given), PNG sheets: ``showcase_<task>_dev.png`` (a few dev images,
evenly spaced over the sorted dev folder; their inputs as the evaluation makes them:
grayscale = the truth's own lightness, line art = synthesized line art) and
``showcase_<task>_prologue_NNNN.png`` per prologue_kid frame (the rendered gray /
line-art frame as input, the color frame as truth). Each row: the input, the model's output with no
hints, with ``--hints`` hints sampled from the ground truth (as ``inkhue evaluate``
samples them; drawn as dots), and the ground truth, with small captions. Sheets are
about ``--width`` px wide and kept under ``--max-bytes`` (palette-quantized, then
scaled down, when needed).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine import evaluation
from inkhue_engine import frames_io as fio
from inkhue_engine.color import from_float01, gray_to_l, lab_to_rgb, rgb_to_lab, to_float01
from inkhue_engine.errors import InkHueError, InputError
from inkhue_training.model_card import subset_folder

DEFAULT_WIDTH = 1000
DEFAULT_MAX_BYTES = 300_000
DEFAULT_HINTS = 10
COLUMNS = ("input", "output, 0 hints", "output, {n} hints", "ground truth")
#: Layout (px): gap between panels, caption bar height, title bar height.
GAP, CAPTION_H, TITLE_H = 4, 18, 26
#: A panel is at most this many times as tall as it is wide (very tall images shrink).
MAX_ASPECT = 1.8
PAPER = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
HINT_DOT_RADIUS = 5


@dataclass
class Example:
    """One row: the model input, the outputs, the truth (uint8 RGB) and the hint dots."""

    name: str
    input_rgb: np.ndarray
    out0: np.ndarray
    out_hints: np.ndarray
    truth: np.ndarray
    dots: list[tuple[float, float, tuple[int, int, int]]] = field(default_factory=list)
    #: (y, x, RGB) of each hint, in the frame's pixels


@dataclass
class Sheet:
    """A composed sheet and where each panel lies: boxes[row][col] = (x, y, w, h)."""

    image: np.ndarray
    boxes: list[list[tuple[int, int, int, int]]]


# --------------------------------------------------------------------------- examples
def _rgb01_of(f: np.ndarray) -> np.ndarray:
    """float01 HxW / HxWxC -> float01 RGB (gray repeated, alpha over white)."""
    if f.ndim == 2:
        return np.repeat(f[..., None], 3, axis=2)
    if f.shape[2] == 4:
        return f[..., :3] * f[..., 3:] + (1.0 - f[..., 3:])
    return f[..., :3] if f.shape[2] >= 3 else np.repeat(f[..., :1], 3, axis=2)


def _rgb8(img: np.ndarray) -> np.ndarray:
    """Any engine image -> uint8 RGB (gray repeated, alpha over white)."""
    return from_float01(_rgb01_of(to_float01(img)), np.uint8)


def hint_dots(truth_lab: np.ndarray, mask: np.ndarray) -> list[tuple[float, float, tuple]]:
    """(y, x, RGB uint8) per hint patch of a hint mask: its centre and mean truth color."""
    n, labels, _, centroids = cv2.connectedComponentsWithStats(
        (mask > 0).astype(np.uint8), connectivity=8
    )
    dots = []
    for i in range(1, n):
        lab = truth_lab[labels == i].mean(axis=0).astype(np.float32)
        rgb = lab_to_rgb(lab.reshape(1, 1, 3))[0, 0]
        dots.append(
            (
                float(centroids[i][1]),
                float(centroids[i][0]),
                tuple(int(round(v * 255)) for v in rgb),
            )
        )
    return dots


def colorize_example(
    name: str,
    frame: np.ndarray,
    truth01: np.ndarray,
    model,
    n_hints: int,
    rng: np.random.Generator,
) -> Example:
    """Colorize ``frame`` (the model input) with no hints and with ``n_hints`` hints sampled
    from ``truth01`` (sRGB float01, the frame's size) as the evaluation samples them."""
    from inkhue_engine import pipeline
    from inkhue_engine.hints import sample_hints
    from inkhue_engine.regions import lineart_lines

    task = model.info.task
    truth_lab = rgb_to_lab(truth01)
    valid = None
    if task == "lineart":  # hints off the lines, as the evaluation samples them
        f01 = to_float01(frame)
        L = gray_to_l(f01) if f01.ndim == 2 else rgb_to_lab(_rgb01_of(f01))[..., 0]
        valid = ~lineart_lines(L)
    ab, mask = sample_hints(truth_lab, n_hints, rng, patch=evaluation.HINT_PATCH, valid=valid)
    hints = (ab, mask, truth_lab[..., 0] * mask) if task == "lineart" else (ab, mask)
    out0 = pipeline.colorize_frame(frame, model, None)
    outh = pipeline.colorize_frame(frame, model, hints if n_hints else None)
    return Example(
        name,
        _rgb8(frame),
        _rgb8(out0),
        _rgb8(outh),
        from_float01(truth01, np.uint8),
        hint_dots(truth_lab, mask),
    )


def short_name(name: str) -> str:
    """'pkg__games__x__Data__Forts__EarthR.png' -> 'EarthR' (corpus names are paths)."""
    return Path(name.rsplit("__", 1)[-1]).stem


def dev_examples(
    model, dev: Path, count: int, n_hints: int, size: int = 256, seed: int = 0
) -> list[Example]:
    """Examples of ``count`` dev images (truth and input as ``evaluation.load_pairs``)."""
    with subset_folder(dev, count) as (folder, _names):  # load_pairs reads whole folders
        pairs, _ = evaluation.load_pairs(folder, model.info.task, size)
    out = []
    for index, (name, truth, gray01) in enumerate(pairs):
        rng = np.random.default_rng([seed, index, n_hints])
        out.append(colorize_example(short_name(name), gray01, truth, model, n_hints, rng))
    return out


def prologue_examples(
    model, prologue: Path, frames: Sequence[int], n_hints: int, seed: int = 0
) -> list[Example]:
    """Examples of prologue_kid frames: input gray/ or lineart/NNNN.png, truth color/NNNN.png."""
    kind = "gray" if model.info.task == "grayscale" else "lineart"
    out = []
    for index, f in enumerate(frames):
        name = f"{int(f):04d}.png"
        src, truth_path = prologue / kind / name, prologue / "color" / name
        for p in (src, truth_path):
            if not p.is_file():
                raise InputError(
                    f"{p}: prologue frame not found (give --prologue-frames that "
                    f"exist in {prologue})"
                )
        frame = fio.read_image(src)
        truth01 = to_float01(_rgb8(fio.read_image(truth_path)))
        if truth01.shape[:2] != frame.shape[:2]:
            raise InputError(
                f"{src}: {frame.shape[1]}x{frame.shape[0]} but {truth_path} is "
                f"{truth01.shape[1]}x{truth01.shape[0]}: use frames of one render"
            )
        rng = np.random.default_rng([seed, index, n_hints])
        out.append(colorize_example(f"frame {int(f)}", frame, truth01, model, n_hints, rng))
    return out


# --------------------------------------------------------------------------- layout
def _put_text(img: np.ndarray, text: str, x: int, y: int, max_w: int, scale: float) -> None:
    """Draw ``text`` (shortened with '..' to fit ``max_w``) with its baseline at y."""
    while text and cv2.getTextSize(text, FONT, scale, 1)[0][0] > max_w:
        text = text[:-3] + ".." if len(text) > 3 else ""
    cv2.putText(img, text, (x, y), FONT, scale, (20, 20, 20), 1, cv2.LINE_AA)


def _draw_dots(panel: np.ndarray, dots, scale: float) -> None:
    for y, x, rgb in dots:
        c = (int(round(x * scale)), int(round(y * scale)))
        cv2.circle(panel, c, HINT_DOT_RADIUS + 2, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(panel, c, HINT_DOT_RADIUS + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(panel, c, HINT_DOT_RADIUS, tuple(int(v) for v in rgb), -1, cv2.LINE_AA)


def compose_sheet(
    examples: Sequence[Example],
    title: str,
    width: int = DEFAULT_WIDTH,
    n_hints: int = DEFAULT_HINTS,
) -> Sheet:
    """Lay examples out as rows of four captioned panels on a ``width`` px wide sheet."""
    if not examples:
        raise InputError("no examples to show")
    cols = len(COLUMNS)
    cell_w = (width - GAP * (cols + 1)) // cols
    if cell_w < 16:
        raise InputError(f"--width {width}: too narrow for {cols} panels")
    heights = []
    for ex in examples:
        h, w = ex.truth.shape[:2]
        heights.append(max(8, min(int(round(cell_w * h / w)), int(cell_w * MAX_ASPECT))))
    total_h = TITLE_H + sum(CAPTION_H + h + GAP for h in heights) + GAP
    sheet = np.full((total_h, width, 3), PAPER, np.uint8)
    _put_text(sheet, title, GAP + 2, TITLE_H - 8, width - 2 * GAP, 0.55)
    boxes = []
    y = TITLE_H
    for ex, cell_h in zip(examples, heights, strict=True):
        h, w = ex.truth.shape[:2]
        scale = min(cell_w / w, cell_h / h)
        pw, ph = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        row = []
        panels = (ex.input_rgb, ex.out0, ex.out_hints, ex.truth)
        for c, (img, caption) in enumerate(zip(panels, COLUMNS, strict=True)):
            x = GAP + c * (cell_w + GAP)
            text = caption.format(n=n_hints)
            if c == 0:
                text = f"{text}: {ex.name}"
            _put_text(sheet, text, x + 1, y + CAPTION_H - 5, cell_w - 2, 0.4)
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            panel = np.ascontiguousarray(cv2.resize(img, (pw, ph), interpolation=interp))
            if c == 2:
                _draw_dots(panel, ex.dots, scale)
            px, py = x + (cell_w - pw) // 2, y + CAPTION_H
            sheet[py : py + ph, px : px + pw] = panel
            row.append((px, py, pw, ph))
        boxes.append(row)
        y += CAPTION_H + cell_h + GAP
    return Sheet(sheet, boxes)


def encode_png(rgb8: np.ndarray, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[bytes, str]:
    """PNG bytes of an RGB image under ``max_bytes``: as is, else palette-quantized (256
    colors), else scaled down in 10% steps. Returns (bytes, what was done)."""
    from PIL import Image

    def png(img: np.ndarray, quantize: bool) -> bytes:
        if not quantize:
            ok, buf = cv2.imencode(".png", img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
            if not ok:
                raise InputError("could not encode the sheet as PNG")
            return buf.tobytes()
        pil = Image.fromarray(img).quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        out = io.BytesIO()
        pil.save(out, format="PNG", optimize=True)
        return out.getvalue()

    data = png(rgb8, False)
    if len(data) <= max_bytes:
        return data, "full color"
    img, scale = rgb8, 1.0
    while True:
        data = png(img, True)
        if len(data) <= max_bytes or min(img.shape[:2]) < 64:
            how = "256-color palette" + (f", scaled to {scale:.0%}" if scale < 1 else "")
            return data, how
        scale *= 0.9
        size = (max(1, int(rgb8.shape[1] * scale)), max(1, int(rgb8.shape[0] * scale)))
        img = cv2.resize(rgb8, size, interpolation=cv2.INTER_AREA)


def write_sheet(path: Path, sheet: Sheet, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Write the sheet's PNG atomically (under ``max_bytes``); returns what was done."""
    data, how = encode_png(sheet.image, max_bytes)
    fio.write_bytes_atomic(path, data)
    return how


# --------------------------------------------------------------------------- command line
def make_showcase(
    model_path: Path,
    dev: Path | None,
    prologue: Path | None,
    out_dir: Path,
    dev_count: int = 3,
    frames: Sequence[int] = (0, 60),
    n_hints: int = DEFAULT_HINTS,
    width: int = DEFAULT_WIDTH,
    max_bytes: int = DEFAULT_MAX_BYTES,
    seed: int = 0,
    note: str | None = None,
) -> list[tuple[Path, str]]:
    """Write the dev and prologue sheets of one model; returns [(path, encoding)]."""
    from inkhue_engine.model import load_model

    model = load_model(model_path, "cpu")
    task = model.info.task
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    jobs = []
    if dev is not None and dev_count > 0:
        jobs.append(
            (
                "dev",
                lambda: dev_examples(model, dev, dev_count, n_hints, seed=seed),
                f"dev images ({dev.name} split, never trained on)",
            )
        )
    if prologue is not None:
        # one sheet per frame: two tall frames with a textured paper background would not
        # fit ~300 KB at ~1000 px wide together
        for i, f in enumerate(frames):
            jobs.append(
                (
                    f"prologue_{int(f):04d}",
                    lambda i=i, f=f: prologue_examples(model, prologue, [f], n_hints, seed + i),
                    f"prologue_kid frame {int(f)}",
                )
            )
    for kind, examples, what in jobs:
        title = (
            f"InkHue {task} model '{model.info.name}'"
            + (f" ({note})" if note else "")
            + f": {what}"
        )
        sheet = compose_sheet(examples(), title, width, n_hints)
        path = out_dir / f"showcase_{task}_{kind}.png"
        written.append((path, write_sheet(path, sheet, max_bytes)))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code (2 on a user error)."""
    p = argparse.ArgumentParser(
        prog="python -m inkhue_training.showcase", description=__doc__.splitlines()[0]
    )
    p.add_argument("--grayscale-model", type=Path, default=None)
    p.add_argument("--lineart-model", type=Path, default=None)
    p.add_argument("--dev-gray", type=Path, default=None, help="grayscale dev split folder")
    p.add_argument("--dev-lineart", type=Path, default=None, help="line-art dev split folder")
    p.add_argument(
        "--prologue",
        type=Path,
        default=None,
        help="prologue_kid folder (color/, gray/, lineart/ NNNN.png)",
    )
    p.add_argument("--dev-count", type=int, default=3, help="dev images per sheet (3)")
    p.add_argument("--prologue-frames", default="0,60", help="frame numbers (0,60)")
    p.add_argument("--hints", type=int, default=DEFAULT_HINTS, help="hints sampled (10)")
    p.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="sheet width px (1000)")
    p.add_argument(
        "--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest PNG file (300000)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default=None, help="shown after the model name in each title")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    args = p.parse_args(argv)
    try:
        frames = [int(f) for f in args.prologue_frames.split(",") if f.strip()]
    except ValueError:
        print(
            f"showcase: error: --prologue-frames {args.prologue_frames!r}: give numbers like 0,60",
            file=sys.stderr,
        )
        return 2
    todo = [
        (m, d)
        for m, d in ((args.grayscale_model, args.dev_gray), (args.lineart_model, args.dev_lineart))
        if m is not None
    ]
    if not todo:
        print("showcase: error: give --grayscale-model and/or --lineart-model", file=sys.stderr)
        return 2
    try:
        for model, dev in todo:
            for path, how in make_showcase(
                model,
                dev,
                args.prologue,
                args.output,
                args.dev_count,
                frames,
                args.hints,
                args.width,
                args.max_bytes,
                args.seed,
                args.note,
            ):
                print(f"wrote {path} ({path.stat().st_size / 1000:.0f} KB, {how})")
    except InkHueError as exc:
        print(f"showcase: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
