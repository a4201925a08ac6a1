"""Evaluation of a model against ground truth, next to two baselines, and sequence flicker.

``evaluate_model`` colorizes every ground-truth image of a folder from its model input
(grayscale task: the truth's own lightness; line-art task: line art, see below) with
0, 1, 10, 50 ... hints sampled from the truth (``hints.sample_hints``: seeded per image
and hint count, the same hints for the model and the flat fill), and scores PSNR,
RMSE, SSIM, mean CIEDE2000 and colorfulness against the truth for

- ``model``: the full pipeline (regions, palette lock when asked);
- ``gray``: the model input with ab = 0 (what "do nothing" scores);
- ``flat-fill``: the non-learned baseline (``pipeline.flat_fill_frame``) with the
  same hints; docs/DESIGN.md: a model that does not beat it with hints is not done.

Line-art inputs: ``inputs=DIR`` pairs line-art frames with the truth by file stem (real
drawings); without it, line art is synthesized from the truth by
``inkhue_engine.lineart`` (default style), exactly as training makes its inputs.

``sequence_flicker`` measures temporal flicker of a colorized sequence (mean CIEDE2000
between consecutive outputs on the pixels whose input did not change).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inkhue_engine import frames_io as fio
from inkhue_engine import metrics
from inkhue_engine.color import lab_to_rgb, rgb_to_lab, to_float01
from inkhue_engine.errors import InputError
from inkhue_engine.hints import sample_hints
from inkhue_engine.lineart import synthesize_lineart

DEFAULT_HINT_COUNTS = (0, 1, 10, 50)
METHODS = ("model", "gray", "flat-fill")
#: PSNR of identical images is infinite; it is reported as this (valid JSON, finite means).
PSNR_CAP = 100.0
#: Hint patch size (px) of the sampled hints: the protocol of user-guided colorization.
HINT_PATCH = 3


@dataclass
class Scores:
    """Mean scores of one method at one hint count over all images."""

    method: str
    hints: int
    psnr: float = 0.0
    rmse: float = 0.0
    ssim: float = 0.0
    ciede2000: float = 0.0
    colorfulness: float = 0.0
    images: int = 0

    @classmethod
    def of_image(
        cls, method: str, hints: int, out01: np.ndarray, truth01: np.ndarray, truth_lab: np.ndarray
    ) -> Scores:
        """One image's scores (out and truth: sRGB float01 HxWx3; ``images`` 1)."""
        return cls(
            method,
            hints,
            psnr=min(metrics.psnr(out01, truth01), PSNR_CAP),
            rmse=metrics.rmse(out01, truth01),
            ssim=metrics.ssim(out01, truth01),
            ciede2000=metrics.mean_ciede2000(rgb_to_lab(out01), truth_lab),
            colorfulness=metrics.colorfulness(out01),
            images=1,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Scores:
        """One image's scores from its per-image row (``EvalReport.per_image``)."""
        return cls(row["method"], int(row["hints"]), **{k: row[k] for k in METRICS}, images=1)

    def add(self, other: Scores) -> None:
        """Add the sums of ``other`` (e.g. one image's ``of_image``)."""
        for k in _SUMMED:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def mean(self) -> Scores:
        n = max(self.images, 1)
        return Scores(
            self.method,
            self.hints,
            self.psnr / n,
            self.rmse / n,
            self.ssim / n,
            self.ciede2000 / n,
            self.colorfulness / n,
            self.images,
        )


#: The scores of one image (and the mean of several).
METRICS = ("psnr", "rmse", "ssim", "ciede2000", "colorfulness")
_SUMMED = (*METRICS, "images")
#: Columns of the per-image table (``EvalReport.per_image``, ``write_per_image_csv``).
PER_IMAGE_COLUMNS = ("image", "hints", "method", *METRICS, "truth_colorfulness")


@dataclass
class EvalReport:
    """The result of ``evaluate_model``: settings and one Scores row per method and hint count."""

    model: str
    task: str
    data: str
    inputs: str  # where the model inputs came from
    images: int
    size: int
    seed: int
    hint_counts: list[int]
    palette: list[str] | None
    truth_colorfulness: float
    rows: list[Scores] = field(default_factory=list)
    mirror_average: bool = True  # ColorizeOptions.mirror_average of the model rows
    #: One dict per image, hint count and method (PER_IMAGE_COLUMNS), in evaluation order;
    #: left out of ``as_dict`` (the JSON report is the summary): ``write_per_image_csv``.
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        del d["per_image"]
        return d

    def row(self, method: str, hints: int) -> Scores:
        return next(r for r in self.rows if r.method == method and r.hints == hints)


# --------------------------------------------------------------------------- data
def _image_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: {what} folder not found")
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in fio.IMAGE_EXTS
    ]
    if not files:
        raise InputError(f"{folder}: the {what} folder holds no images")
    return sorted(files, key=lambda p: fio.natural_key(p.name))


def _rgb01(img: np.ndarray) -> np.ndarray:
    """Any engine image -> sRGB float01 HxWx3 (alpha composited over white)."""
    f = to_float01(img)
    if f.ndim == 2:
        return np.repeat(f[..., None], 3, axis=2)
    if f.shape[2] == 4:
        a = f[..., 3:]
        return f[..., :3] * a + (1.0 - a)
    return f[..., :3]


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    """Scale down (area) so that the long side is at most ``size`` (never up)."""
    h, w = img.shape[:2]
    scale = size / max(h, w)
    if scale >= 1.0:
        return img
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)


def _gray01_from_l(L: np.ndarray) -> np.ndarray:
    lab = np.zeros((*L.shape, 3), np.float32)
    lab[..., 0] = L
    return lab_to_rgb(lab)[..., 0].copy()


def ground_truth_files(data: str | os.PathLike[str], limit: int | None = None) -> list[Path]:
    """The ground-truth images of ``data`` that an evaluation reads, in order (the first
    ``limit`` of them)."""
    truths = _image_files(Path(data), "ground-truth")
    return truths[: max(0, limit)] if limit is not None else truths


def load_pairs(
    data: str | os.PathLike[str],
    task: str,
    size: int = 256,
    inputs: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], str]:
    """(name, truth sRGB float01 HxWx3, model input gray float01 HxW) per image; and
    a description of where the inputs came from.

    Truth images are scaled down to a long side of ``size``. Grayscale: the input is
    the truth's own L. Line art: frames from ``inputs`` (paired by file stem, scaled
    to the truth's size) or synthesized (see the module doc).
    """
    truths = ground_truth_files(data, limit)
    by_stem: dict[str, Path] = {}
    if inputs is not None:
        by_stem = {p.stem: p for p in _image_files(Path(inputs), "inputs")}
        missing = [p.name for p in truths if p.stem not in by_stem]
        if missing:
            raise InputError(
                f"{inputs}: no input frame named like {missing[0]} (and {len(missing) - 1} "
                "more): name each input after its ground-truth image"
            )
        source = f"inputs from {inputs}"
    elif task == "lineart":
        synth = synthesize_lineart
        source = "line art synthesized by inkhue_engine.lineart (default style)"
    else:
        source = "the ground truth's lightness"
    pairs = []
    for path in truths:
        truth = _fit(_rgb01(fio.read_image(path)), size)
        if inputs is not None:
            frame = fio.read_image(by_stem[path.stem])
            L = rgb_to_lab(_rgb01(frame))[..., 0]
            if L.shape != truth.shape[:2]:
                L = cv2.resize(L, truth.shape[1::-1], interpolation=cv2.INTER_AREA)
        elif task == "lineart":
            L = synth(truth)
        else:
            L = rgb_to_lab(truth)[..., 0]
        pairs.append((path.name, truth, _gray01_from_l(L)))
    return pairs, source


# --------------------------------------------------------------------------- hints
def hint_area(gray01: np.ndarray, task: str) -> np.ndarray | None:
    """Where the protocol samples hints in a model input (gray float01 HxW): off the lines
    of line art (bool HxW); anywhere in a grayscale frame (None)."""
    if task != "lineart":
        return None
    from inkhue_engine.regions import lineart_lines

    return ~lineart_lines(rgb_to_lab(np.repeat(gray01[..., None], 3, axis=2))[..., 0])


def protocol_hints(
    truth_lab: np.ndarray, task: str, n: int, seed: int, index: int, area: np.ndarray | None
):
    """The protocol's ``n`` hints of image ``index`` (None for 0): 3x3 patches of the truth
    inside ``area`` (``hint_area``), seeded by (seed, image, count), so every method and
    every caller gets the same hints whatever else is evaluated. Line art: (ab, mask, L)."""
    if n == 0:
        return None
    rng = np.random.default_rng([seed, index, n])
    ab, mask = sample_hints(truth_lab, n, rng, patch=HINT_PATCH, valid=area)
    return (ab, mask, truth_lab[..., 0] * mask) if task == "lineart" else (ab, mask)


# --------------------------------------------------------------------------- evaluate
def evaluate_model(
    model: Any,
    data: str | os.PathLike[str],
    hint_counts: Sequence[int] = DEFAULT_HINT_COUNTS,
    options: Any = None,
    size: int = 256,
    seed: int = 0,
    limit: int | None = None,
    inputs: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    methods: Sequence[str] = METHODS,
) -> EvalReport:
    """Score ``model`` (a loaded Model) and the baselines on the images in ``data``.

    ``methods``: the rows to score, a subset of METHODS (an ablation's arms need only
    ``model``; the baselines do not depend on the model).
    """
    from inkhue_engine import pipeline

    options = options if options is not None else pipeline.ColorizeOptions()
    if size < 8:
        raise InputError(f"--size {size}: use at least 8")
    counts = sorted({int(n) for n in hint_counts})
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"methods {list(methods)}: choose from {', '.join(METHODS)}")
    methods = [m for m in METHODS if m in methods]  # table order, once each
    if not counts or counts[0] < 0:
        raise InputError(f"--hints {hint_counts}: give hint counts of 0 or more")
    task = model.info.task
    pairs, source = load_pairs(data, task, size, inputs, limit)
    if not pairs:
        raise InputError(f"{data}: no images to evaluate (--limit {limit})")
    acc = {(m, n): Scores(m, n) for n in counts for m in methods}
    per_image: list[dict[str, Any]] = []
    truth_colorful = 0.0
    for index, (name, truth, gray01) in enumerate(pairs):
        if progress is not None:
            progress(name)
        truth_lab = rgb_to_lab(truth)
        truth_c = metrics.colorfulness(truth)
        truth_colorful += truth_c
        gray_rgb = np.repeat(gray01[..., None], 3, axis=2)  # ab = 0: the "gray" baseline
        area = hint_area(gray01, task)
        gray_scores = (
            Scores.of_image("gray", 0, gray_rgb, truth, truth_lab) if "gray" in methods else None
        )
        for n in counts:
            hints = protocol_hints(truth_lab, task, n, seed, index, area)
            scored = []
            if "model" in methods:
                out = pipeline.colorize_frame(gray01, model, hints, options)
                scored.append(Scores.of_image("model", n, _rgb01(out), truth, truth_lab))
            if "flat-fill" in methods:
                flat = pipeline.flat_fill_frame(gray01, task, hints)
                scored.append(Scores.of_image("flat-fill", n, _rgb01(flat), truth, truth_lab))
            if gray_scores is not None:
                scored.append(gray_scores)
            for one in scored:
                acc[(one.method, n)].add(one)
                row = {k: v for k, v in asdict(one).items() if k != "images"}
                per_image.append({**row, "image": name, "hints": n, "truth_colorfulness": truth_c})
    palette = list(options.palette) if getattr(options, "palette", None) else None
    report = EvalReport(
        model=model.info.name,
        task=task,
        data=str(data),
        inputs=source,
        images=len(pairs),
        size=size,
        seed=seed,
        hint_counts=counts,
        palette=palette,
        truth_colorfulness=truth_colorful / len(pairs),
        mirror_average=bool(getattr(options, "mirror_average", True)),
    )
    report.rows = [acc[(m, n)].mean() for n in counts for m in methods]
    report.per_image = per_image
    return report


def write_per_image_csv(path: str | os.PathLike[str], report: EvalReport) -> None:
    """The report's per-image scores as CSV (PER_IMAGE_COLUMNS), written atomically: which
    frames a model colors worst, e.g. to sort a shot's frames for review."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PER_IMAGE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.per_image:
        writer.writerow({k: row[k] for k in PER_IMAGE_COLUMNS})
    fio.write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def format_table(report: EvalReport) -> str:
    """The report as a text table (one row per hint count and method)."""
    head = (
        f"model {report.model!r} ({report.task}) on {report.images} image(s) from "
        f"{report.data}, long side <= {report.size}, seed {report.seed}\n"
        f"inputs: {report.inputs}"
        + (f"; palette lock: {len(report.palette)} colors" if report.palette else "")
        + ("" if report.mirror_average else "; one model pass (no mirror average)")
        + f"\nground truth colorfulness: {report.truth_colorfulness:.1f}\n"
    )
    cols = (
        f"{'hints':>5}  {'method':<9} {'PSNR':>7} {'RMSE':>7} {'SSIM':>6} {'dE2000':>7} "
        f"{'colorful':>8}"
    )
    lines = [head, cols, "-" * len(cols)]
    for r in report.rows:
        lines.append(
            f"{r.hints:>5}  {r.method:<9} {r.psnr:>7.2f} {r.rmse:>7.4f} {r.ssim:>6.3f} "
            f"{r.ciede2000:>7.2f} {r.colorfulness:>8.1f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- flicker
@dataclass
class FlickerReport:
    """Flicker of a sequence: mean CIEDE2000 over static pixels of consecutive frames."""

    outputs: str
    inputs: str
    frames: int
    tol: float
    flicker: float | None  # None when no pixel stayed static
    static_pixels: int
    static_fraction: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frame_stream(path: Path) -> tuple[list[str], Callable[[], Iterator[np.ndarray]]]:
    """(frame names, factory of a frame iterator) of a folder of images or a video file."""
    if path.is_dir():
        files = _image_files(path, "sequence")
        return [p.stem for p in files], lambda: (fio.read_image(p) for p in files)
    if path.is_file() and fio.is_video_path(path):
        n = fio.count_video_frames(path)
        return [f"frame_{i:05d}" for i in range(n)], lambda: fio.read_video(path)
    raise InputError(f"{path}: give a folder of frames or a video file")


def sequence_flicker(
    outputs: str | os.PathLike[str], inputs: str | os.PathLike[str], tol: float = 0.0
) -> FlickerReport:
    """Flicker of colorized ``outputs`` against their ``inputs`` (folders or videos).

    Frames pair by file stem when every output has an input of the same stem, else by
    order (counts must match). A pixel is static between two frames when every channel
    of the input moved by at most ``tol`` (in the inputs' units, e.g. 0..255). The mean
    pools all static pixels of all pairs (metrics.flicker), streaming two frames at a time.
    """
    outputs, inputs = Path(outputs), Path(inputs)
    out_names, out_iter = _frame_stream(outputs)
    in_names, in_iter = _frame_stream(inputs)
    if len(out_names) < 2:
        raise InputError(f"{outputs}: flicker needs at least 2 frames")
    if outputs.is_dir() and inputs.is_dir() and set(out_names) <= set(in_names):
        files = {p.stem: p for p in _image_files(inputs, "inputs")}
        in_frames: Iterator[np.ndarray] = (fio.read_image(files[s]) for s in out_names)
    elif len(out_names) == len(in_names):
        in_frames = in_iter()
    else:
        raise InputError(
            f"{outputs} has {len(out_names)} frames and {inputs} {len(in_names)}, and their "
            "names do not pair: give the inputs the outputs were made from"
        )
    total, count, pixels = 0.0, 0, 0
    prev_in = prev_lab = None
    for i, (out, inp) in enumerate(zip(out_iter(), in_frames, strict=False)):
        lab = rgb_to_lab(_rgb01(out))
        if inp.shape[:2] != out.shape[:2]:
            raise InputError(
                f"frame {out_names[i]}: output is {out.shape[1]}x{out.shape[0]} but its input "
                f"{inp.shape[1]}x{inp.shape[0]}: pair each output with its own input"
            )
        pixels += inp.shape[0] * inp.shape[1]
        if prev_in is not None:
            diff = np.abs(inp.astype(np.float64) - prev_in.astype(np.float64))
            static = diff <= tol if diff.ndim == 2 else np.all(diff <= tol, axis=-1)
            n = int(static.sum())
            if n:
                total += metrics.flicker([prev_lab, lab], [prev_in, inp], tol) * n
                count += n
        prev_in, prev_lab = inp, lab
    frames = len(out_names)
    pairs_px = pixels * (frames - 1) / frames if frames else 0
    return FlickerReport(
        outputs=str(outputs),
        inputs=str(inputs),
        frames=frames,
        tol=tol,
        flicker=total / count if count else None,
        static_pixels=count,
        static_fraction=count / pairs_px if pairs_px else 0.0,
    )


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write a report as JSON atomically (strict JSON: no NaN or Infinity)."""
    import json

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    text = json.dumps(clean(data), indent=2, allow_nan=False)
    fio.write_bytes_atomic(path, (text + "\n").encode("utf-8"))
