"""Model card of an exported model: the issue's evaluation protocol, written as markdown + JSON.

    python -m inkhue_training.model_card --model engine/models/grayscale.onnx \\
        --run /work/runs/grayscale --dev /work/data/corpus/grayscale/dev \\
        --manifest /work/data/corpus/manifest.json [--limit N] [--palette P.gpl] \\
        -o engine/models/grayscale.md

Measures on the dev split (never training images), through the engine's evaluation
library (``inkhue_engine.evaluation``: the same metrics, hint sampling and baselines as
``inkhue evaluate``): PSNR, RMSE, SSIM, mean CIEDE2000 and colorfulness of

- ``gray``: the model input with ab = 0;
- ``model``: the full pipeline with 0, 1, 10 and 50 hints sampled from the truth
  (random 3x3 points, seeded per image and hint count);
- ``flat-fill``: the non-learned baseline with the same hints;
- ``model+palette`` (line art, or any task given ``--palette``): the model with the
  palette lock and the same hints. Without ``--palette`` each image's palette is read
  from its own ground truth (see ``image_palette``): the palette an artist would pick for
  that character, which makes this condition an upper bound of what a known palette gives.

It writes the card (``-o``) and the raw numbers next to it (same name, ``.json``). The
"Targets" section says per target whether it is met, or MISSED: issue 12's targets
(``check_targets``; grayscale: 0 hints 0.5 below gray with 60% of the truth's
colorfulness, 10 / 50 hints 1.0 / 0.5 below flat fill; line art: 0 hints no worse than gray
with 50% of the truth's colorfulness, 10 hints 1.0 below flat fill), the consistency
across a shot (c, with ``--shot``) and, for grayscale, (d): on the card's painted
backgrounds and photos (kinds ``painting`` and ``photo`` in the manifest's ``dev_kinds``),
0 hints no worse than gray.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inkhue_engine import evaluation
from inkhue_engine.errors import InkHueError, InputError

#: The protocol's hint counts (the issue's: 0, 1, 10 and 50 hints).
HINT_COUNTS = (0, 1, 10, 50)
#: Issue 12's targets, per task. 0 hints: the model's mean CIEDE2000 at most gray's minus
#: ZERO_MARGIN and its colorfulness at least MIN_COLORFUL of the truth's; with n hints
#: (CLEAR_DE): flat fill's mean CIEDE2000 minus the model's at least that much.
ZERO_MARGIN = {"grayscale": 0.5, "lineart": 0.0}
MIN_COLORFUL = {"grayscale": 0.6, "lineart": 0.5}
CLEAR_DE = {"grayscale": {10: 1.0, 50: 0.5}, "lineart": {10: 1.0}}
#: Target (d), grayscale: on the card's images of these content kinds (painted backgrounds
#: and photos; the corpus manifest's ``dev_kinds``), 0 hints no farther from the truth than
#: gray. Line art is synthesized from drawings only, so it has none.
NATURAL_KINDS = ("painting", "photo")
#: An extracted palette with fewer fill colors than this is not the image's palette
#: (textured or painted images have few flat regions): k-means is used instead.
MIN_FILL_COLORS = 3
KMEANS_COLORS = 8
PALETTE_METHOD = "model+palette"
#: Row order of the card's table within one hint count.
METHOD_ORDER = ("gray", "flat-fill", "model", PALETTE_METHOD)


# --------------------------------------------------------------------------- image subsets
def pick_evenly(items: Sequence, count: int) -> list:
    """``count`` items spread evenly over ``items`` (first and last included)."""
    if count <= 0 or not items:
        return []
    if count >= len(items):
        return list(items)
    if count == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def image_files(folder: Path) -> list[Path]:
    """The images of a folder in the evaluation's order (natural sort of the names)."""
    from inkhue_engine import frames_io as fio

    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in fio.IMAGE_EXTS
        ),
        key=lambda p: fio.natural_key(p.name),
    )


@contextlib.contextmanager
def subset_folder(folder: Path, count: int | None) -> Iterator[tuple[Path, list[str]]]:
    """(folder holding ``count`` images spread evenly over ``folder``, their names).

    The evaluation reads whole folders and its ``limit`` takes the first images, which in
    a corpus sorted by package name are all of one package; a temporary folder of links to
    an even spread is representative. ``count`` None or >= the images: ``folder`` itself.
    """
    files = image_files(folder)
    if not files:
        raise InputError(f"{folder}: the folder holds no images")
    if count is None or count >= len(files):
        yield folder, [p.name for p in files]
        return
    chosen = pick_evenly(files, count)
    with linked_folder(chosen) as tmp:
        yield tmp, [p.name for p in chosen]


@contextlib.contextmanager
def linked_folder(files: Sequence[Path]) -> Iterator[Path]:
    """A temporary folder of links to ``files`` under their own names (the evaluation
    reads whole folders)."""
    with tempfile.TemporaryDirectory(prefix="inkhue-subset-") as tmp:
        for p in files:
            (Path(tmp) / p.name).symlink_to(p.resolve())
        yield Path(tmp)


# --------------------------------------------------------------------------- palettes
def kmeans_palette(truth01: np.ndarray, k: int = KMEANS_COLORS, seed: int = 0) -> list[str]:
    """k colors of an sRGB float01 image: cv2.kmeans of its pixels in Lab (seeded)."""
    import cv2

    from inkhue_engine.color import lab_to_hex, rgb_to_lab

    lab = rgb_to_lab(truth01).reshape(-1, 3).astype(np.float32)
    k = max(1, min(k, len(np.unique(np.rint(lab), axis=0))))
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centers = cv2.kmeans(lab, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    order = np.argsort(-np.bincount(labels.ravel(), minlength=k), kind="stable")
    return list(dict.fromkeys(lab_to_hex(centers[order])))


def image_palette(truth01: np.ndarray) -> tuple[list[str], str]:
    """(palette, how it was found) of one ground-truth image (sRGB float01 HxWx3).

    ``inkhue_engine.palette.palette_colors``: the flat colors of the image's regions
    (fills, plus paper and ink, which a line-art palette lock needs). When it finds fewer
    than MIN_FILL_COLORS fills, a k-means of the image in Lab (KMEANS_COLORS colors).
    """
    from inkhue_engine.palette import palette_colors

    colors = palette_colors([truth01])
    if sum(c.role == "fill" for c in colors) >= MIN_FILL_COLORS:
        return [c.hex for c in colors], "extract"
    return kmeans_palette(truth01), "kmeans"


# --------------------------------------------------------------------------- evaluation
def evaluate_palette_lock(
    model: Any,
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
    hint_counts: Sequence[int],
    palettes: Sequence[Sequence[str] | None],
    options: Any,
    seed: int = 0,
    method: str = PALETTE_METHOD,
    progress: Callable[[str], None] | None = None,
    start: int = 0,
) -> list[evaluation.Scores]:
    """Score the model with a palette lock per image (``palettes[i]`` for ``pairs[i]``;
    None: no lock, which gives evaluate_model's ``model`` rows).

    ``pairs`` as ``evaluation.load_pairs`` gives them. The hints are those of
    ``evaluation.evaluate_model`` (the same sampling and seeds per image index and hint
    count), so the rows compare with its ``model`` and ``flat-fill`` rows one to one.
    ``start``: the index of ``pairs[0]`` in the evaluation (to score a slice of it alone).
    """
    import dataclasses

    from inkhue_engine import pipeline
    from inkhue_engine.color import rgb_to_lab

    task = model.info.task
    counts = sorted({int(n) for n in hint_counts})
    acc = {n: evaluation.Scores(method, n) for n in counts}
    items = enumerate(zip(pairs, palettes, strict=True), start=start)
    for index, ((name, truth, gray01), palette) in items:
        if progress is not None:
            progress(name)
        opts = dataclasses.replace(options, palette=tuple(palette) if palette else None)
        truth_lab = rgb_to_lab(truth)
        area = evaluation.hint_area(gray01, task)
        for n in counts:
            hints = evaluation.protocol_hints(truth_lab, task, n, seed, index, area)
            out = pipeline.colorize_frame(gray01, model, hints, opts)
            # float32 gray in -> float01 RGB out
            acc[n].add(evaluation.Scores.of_image(method, n, out[..., :3], truth, truth_lab))
    return [acc[n].mean() for n in counts]


# --------------------------------------------------------------------------- run folder
def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc})") from exc


def checkpoint_step(path: Path) -> tuple[int | None, str]:
    """(training step stored in a checkpoint, or None; why not) - needs torch."""
    if not path.is_file():
        return None, "not found"
    try:
        import torch

        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return int(ckpt["step"]), ""
    except Exception as exc:  # no torch, or not a checkpoint: the card says why
        return None, f"not readable: {type(exc).__name__}"


def run_summary(run: Path, upto_step: int | None = None) -> dict[str, Any]:
    """Training facts of a run folder: config.json and log.jsonl (up to ``upto_step``).

    The log's ``minutes`` restart at 0 when a run is resumed, so the wall time is the sum
    of each session's last ``minutes``. img/s is the median of the logged rates after the
    first step (which includes start-up and compilation).
    """
    config = _read_json(run / "config.json", "run config")
    records = []
    log_path = run / "log.jsonl"
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
    train = [r for r in records if r.get("kind") == "train"]
    if upto_step is not None:
        train = [r for r in train if r.get("step", 0) <= upto_step]
    sessions: list[float] = []
    prev = None
    for r in train:
        minutes = float(r.get("minutes", 0.0))
        if prev is None or minutes < prev:
            sessions.append(minutes)
        else:
            sessions[-1] = minutes
        prev = minutes
    rates = [float(r["img_s"]) for r in train if r.get("step", 0) > 1 and "img_s" in r]
    vals = [
        r
        for r in records
        if r.get("kind") == "val" and (upto_step is None or r.get("step", 0) <= upto_step)
    ]
    keys = (
        "task",
        "channels",
        "n_res",
        "crop_size",
        "batch_size",
        "lr",
        "l1_weight",
        "gan_weight",
        "max_hints",
        "p_no_hints",
        "ema_decay",
        "device",
        "data",
        "val",
        "trained_on",
        "max_steps",
        "max_minutes",
        "seed",
    )
    return {
        "folder": str(run),
        "config": {k: config.get(k) for k in keys if k in config},
        "logged_steps": max((int(r.get("step", 0)) for r in train), default=0),
        "sessions": len(sessions),
        "wall_minutes": round(sum(sessions), 2),
        "img_s_median": round(statistics.median(rates), 2) if rates else None,
        "last_train": train[-1] if train else None,
        "last_val": vals[-1] if vals else None,
    }


def corpus_summary(manifest_path: Path, task: str) -> dict[str, Any]:
    """Packages, licences and image counts of ``task``'s corpus from the corpus manifest."""
    m = _read_json(manifest_path, "corpus manifest")
    if not isinstance(m, dict) or "packages" not in m:
        raise InputError(f"{manifest_path}: not a corpus manifest (no 'packages')")
    packages = []
    for name, p in sorted(m["packages"].items()):
        split = (p.get("splits") or {}).get(task) or {}
        if not sum(int(v) for v in split.values()):
            continue  # nothing of this package in this task's corpus
        packages.append(
            {
                "package": name,
                "version": p.get("version"),
                "source": p.get("source"),
                "licence": p.get("licence"),
                "kinds": p.get("kept_by_content") or {},
                "train": int(split.get("train", 0)),
                "dev": int(split.get("dev", 0)),
            }
        )
    totals = ((m.get("totals") or {}).get("splits") or {}).get(task) or {}
    return {
        "manifest": str(manifest_path),
        "kinds": (m.get("corpora") or {}).get(task),
        "packages": packages,
        "train": int(totals.get("train", sum(p["train"] for p in packages))),
        "dev": int(totals.get("dev", sum(p["dev"] for p in packages))),
        "params": m.get("params"),
    }


def hardware() -> dict[str, Any]:
    """CPU model and core count of this machine (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dev_kinds(manifest_path: Path) -> dict[str, str] | None:
    """Content kind of each dev image (file name -> kind) from the corpus manifest; None
    when the manifest predates the per-image record (rebuild the corpus to get it)."""
    m = _read_json(manifest_path, "corpus manifest")
    if not isinstance(m, dict) or "packages" not in m:
        raise InputError(f"{manifest_path}: not a corpus manifest (no 'packages')")
    kinds: dict[str, str] = {}
    for p in m["packages"].values():
        if "dev_kinds" not in p:
            return None
        kinds.update(p["dev_kinds"])
    return kinds


# --------------------------------------------------------------------------- targets
@dataclass
class Target:
    """One target of the issue and whether it is met."""

    name: str
    rule: str
    met: bool | None  # None: not measured
    detail: str


def _row(rows: Sequence[dict[str, Any]], method: str, hints: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["method"] == method and r["hints"] == hints), None)


def check_targets(
    rows: Sequence[dict[str, Any]], task: str, truth_colorfulness: float
) -> list[Target]:
    """Issue 12's targets for ``task``: (a) with 0 hints closer to the truth than gray (by
    ZERO_MARGIN) and colorful (MIN_COLORFUL of ``truth_colorfulness``); (b) with hints,
    closer than flat fill by CLEAR_DE."""
    out = []
    model, gray = _row(rows, "model", 0), _row(rows, "gray", 0)
    margin, share = ZERO_MARGIN[task], MIN_COLORFUL[task]
    need = share * truth_colorfulness
    rule = (
        f"with 0 hints, mean CIEDE2000 of the model at least {margin:g} below gray's (ab = 0) "
        f"AND colorfulness at least {share:.0%} of the truth's ({need:.1f})"
    )
    if model is None or gray is None:
        out.append(Target("(a) 0 hints vs gray", rule, None, "not measured"))
    else:
        gain = gray["ciede2000"] - model["ciede2000"]
        colorful = model.get("colorfulness")
        met = gain >= margin and colorful is not None and colorful >= need
        out.append(
            Target(
                "(a) 0 hints vs gray",
                rule,
                met,
                f"CIEDE2000 model {model['ciede2000']:.2f} vs gray {gray['ciede2000']:.2f} "
                f"(gray - model = {gain:.2f}); colorfulness {_fmt(colorful, '.1f')} "
                f"of {truth_colorfulness:.1f}",
            )
        )
    for n, clear in CLEAR_DE[task].items():
        name = f"(b) {n} hints vs flat fill"
        rule = f"with {n} hints, mean CIEDE2000 of the model at least {clear:g} below flat fill's"
        model, flat = _row(rows, "model", n), _row(rows, "flat-fill", n)
        if model is None or flat is None:
            out.append(Target(name, rule, None, "not measured"))
            continue
        gain = flat["ciede2000"] - model["ciede2000"]
        out.append(
            Target(
                name,
                rule,
                gain >= clear,
                f"CIEDE2000 model {model['ciede2000']:.2f} vs flat fill "
                f"{flat['ciede2000']:.2f} (flat fill - model = {gain:.2f})",
            )
        )
    return out


def natural_target(by_kind: dict[str, Any] | None) -> Target:
    """Target (d) from ``measure_natural``'s result (None: not measured)."""
    rule = (
        f"with 0 hints, on the card's images of kind {' or '.join(NATURAL_KINDS)}, mean "
        "CIEDE2000 of the model no worse than gray's"
    )
    name = "(d) painted backgrounds and photos"
    if by_kind is None or by_kind.get("images", 0) == 0:
        why = by_kind.get("why", "no such image") if by_kind else "not measured"
        return Target(name, rule, None, why)
    model, gray = _row(by_kind["rows"], "model", 0), _row(by_kind["rows"], "gray", 0)
    gain = gray["ciede2000"] - model["ciede2000"]
    return Target(
        name,
        rule,
        gain >= 0.0,
        f"CIEDE2000 model {model['ciede2000']:.2f} vs gray {gray['ciede2000']:.2f} "
        f"(gray - model = {gain:.2f}) over {by_kind['images']} image(s)",
    )


#: Target (c): at 0 hints, the true fills of two frames of a shot (prologue_kid 0 and 60)
#: differ in the model's colors by less than this mean CIEDE2000.
MAX_FILL_DE = 3.0
#: The frames of ``--shot`` compared by target (c): indexes in its sorted folders.
SHOT_FRAMES = (0, 60)


def consistency_target(consistency: dict[str, Any] | None) -> Target:
    """Target (c) from ``measure_consistency``'s result (None: not measured)."""
    rule = (
        f"with 0 hints, the true fills of frames {SHOT_FRAMES[0]} and {SHOT_FRAMES[1]} of the "
        f"shot differ in the model's colors by less than {MAX_FILL_DE:g} mean CIEDE2000"
    )
    if consistency is None:
        return Target("(c) consistency across a shot", rule, None, "not measured (no --shot)")
    de = consistency["mean_de"]
    return Target(
        "(c) consistency across a shot",
        rule,
        de < MAX_FILL_DE,
        f"{de:.2f} over {consistency['fills']} fills of {consistency['shot']}",
    )


def measure_consistency(model_path: Path, shot: Path, detail: float = 1.0) -> dict[str, Any]:
    """Colorize frames SHOT_FRAMES of ``shot`` (folders ``color/`` and the task's input,
    ``gray/`` or ``lineart/``) at 0 hints and compare their true fills
    (``inkhue_engine.shot_eval.fill_consistency``)."""
    from inkhue_engine import frames_io as fio
    from inkhue_engine.model import load_model
    from inkhue_engine.pipeline import ColorizeOptions, colorize_frame
    from inkhue_engine.shot_eval import fill_consistency

    model = load_model(model_path, "cpu")
    task = model.info.task
    inputs = shot / ("gray" if task == "grayscale" else "lineart")
    truths, frames = image_files(shot / "color"), image_files(inputs)
    last = max(SHOT_FRAMES)
    if len(truths) <= last or len(frames) <= last:
        raise InputError(
            f"{shot}: color/ and {inputs.name}/ need at least {last + 1} frames for the "
            f"consistency target"
        )
    outs, colors = [], []
    for i in SHOT_FRAMES:
        if truths[i].name != frames[i].name:
            raise InputError(f"{shot}: frame {i} is {truths[i].name} in color/ but "
                             f"{frames[i].name} in {inputs.name}/")  # fmt: skip
        outs.append(colorize_frame(fio.read_image(frames[i]), model, None,
                                   ColorizeOptions(detail=detail)))  # fmt: skip
        colors.append(fio.read_image(truths[i]))
    de, n = fill_consistency(outs[0], outs[1], colors[0], colors[1])
    return {"shot": shot.name, "frames": list(SHOT_FRAMES), "mean_de": round(de, 3), "fills": n}


# --------------------------------------------------------------------------- the card
def measure(
    model_path: Path,
    dev: Path,
    limit: int | None = None,
    palette_file: Path | None = None,
    size: int = 256,
    seed: int = 0,
    detail: float = 1.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the protocol on ``dev``: the evaluation report and the palette-lock rows."""
    from tqdm import tqdm

    from inkhue_engine.model import load_model
    from inkhue_engine.pipeline import ColorizeOptions

    model = load_model(model_path, "cpu")
    task = model.info.task
    options = ColorizeOptions(detail=detail)
    total = len(image_files(dev))
    with subset_folder(dev, limit) as (folder, names):
        with tqdm(
            desc="protocol", unit="img", total=len(names), disable=not progress, file=sys.stderr
        ) as bar:
            report = evaluation.evaluate_model(
                model,
                folder,
                HINT_COUNTS,
                options,
                size=size,
                seed=seed,
                progress=lambda _name: bar.update(1),
            )
        lock = None
        if task == "lineart" or palette_file is not None:
            pairs, _ = evaluation.load_pairs(folder, task, size)
            lock = _palette_rows(model, pairs, palette_file, options, seed, progress)
    rows = [asdict(r) for r in report.rows]
    palette_info = None
    if lock is not None:
        rows += [asdict(r) for r in lock[0]]
        palette_info = lock[1]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    rows.sort(key=lambda r: (r["hints"], order.get(r["method"], len(order))))
    settings = report.as_dict()
    settings.pop("rows")
    settings["data"] = str(dev)
    settings["dev_images"] = total
    settings["selection"] = (
        f"all {total}"
        if len(names) == total
        else f"{len(names)} of {total}, evenly spread over the sorted folder"
    )
    settings["image_names"] = names
    return {
        "model_info": model.info.as_dict(),
        "settings": settings,
        "rows": rows,
        "palette_lock": palette_info,
        "per_image": report.per_image,  # for target (d); not written to the card
    }


def measure_natural(
    per_image: Sequence[dict[str, Any]], kinds: dict[str, str] | None
) -> dict[str, Any]:
    """Target (d)'s rows: gray and the model at 0 hints over those of the protocol's images
    (``per_image``: its ``evaluate_model`` report's per-image scores) whose kind in
    ``kinds`` (``dev_kinds``) is one of NATURAL_KINDS. The same sums, in the same order, as
    evaluating a folder of only those images."""
    if kinds is None:
        return {
            "images": 0,
            "why": "not measured: the corpus manifest has no per-image kinds (rebuild the "
            "corpus with this version of training/corpus.py)",
        }
    at0 = [r for r in per_image if r["hints"] == 0 and kinds.get(r["image"]) in NATURAL_KINDS]
    chosen = list(dict.fromkeys(r["image"] for r in at0))
    if not chosen:
        return {"images": 0, "why": f"no card image is of kind {' or '.join(NATURAL_KINDS)}"}
    acc = {m: evaluation.Scores(m, 0) for m in ("model", "gray")}
    truth_colorful = 0.0
    for r in at0:
        if r["method"] in acc:
            acc[r["method"]].add(evaluation.Scores.from_row(r))
        if r["method"] == "model":  # one row per image
            truth_colorful += r["truth_colorfulness"]
    return {
        "kinds": list(NATURAL_KINDS),
        "images": len(chosen),
        "names": chosen,
        "truth_colorfulness": truth_colorful / len(chosen),
        "rows": [asdict(acc[m].mean()) for m in ("model", "gray")],
    }


#: Hint counts of the ablation table (issue 12's targets' counts).
ABLATION_HINTS = (0, 10, 50)


def parse_arm(text: str) -> tuple[str, Path]:
    """``NAME=MODEL.onnx`` of ``--ablation`` (the name may hold spaces and '+')."""
    name, sep, path = text.rpartition("=")
    if not sep or not name.strip() or not path:
        raise InputError(f"--ablation {text!r}: give NAME=MODEL.onnx, e.g. 'L1 only=l1.onnx'")
    if not Path(path).is_file():
        raise InputError(f"--ablation {text!r}: no model file {path}")
    return name.strip(), Path(path)


def measure_ablation(
    arms: Sequence[tuple[str, Path]],
    dev: Path,
    names: Sequence[str],
    size: int = 256,
    seed: int = 0,
    detail: float = 1.0,
) -> list[dict[str, Any]]:
    """Each arm's ``model`` rows at ABLATION_HINTS on the card's own images (``names`` in
    ``dev``), with the card's protocol (sizes, seeds, options): one table beside the card's
    model, whatever folder the arms were tried on before."""
    from inkhue_engine.model import load_model
    from inkhue_engine.pipeline import ColorizeOptions

    out = []
    with linked_folder([dev / n for n in names]) as folder:
        for name, path in arms:
            report = evaluation.evaluate_model(
                load_model(path, "cpu"),
                folder,
                ABLATION_HINTS,
                ColorizeOptions(detail=detail),
                size=size,
                seed=seed,
                methods=("model",),
            )
            rows = [asdict(r) for r in report.rows]
            out.append({"name": name, "model": str(path), "sha256": _sha256(path), "rows": rows})
    return out


def _ablation_lines(d: dict[str, Any]) -> list[str]:
    ab = d.get("ablation")
    if not ab:
        return []
    cols = " | ".join(f"{n} hints" for n in ABLATION_HINTS)
    lines = [
        "",
        "## Ablation",
        "",
        ab.get("note") or "",
        "",
        f"Mean CIEDE2000 of the full pipeline on the {d['settings']['images']} image(s) "
        "above (same hints and options; colorfulness at 0 hints in brackets, truth "
        f"{d['settings']['truth_colorfulness']:.1f}):",
        "",
        f"| model | {cols} |",
        "|---|" + "---:|" * len(ABLATION_HINTS),
    ]
    shipped = [{"name": f"**this model** (`{d['file']['path']}`)", "rows": d["rows"]}]
    for arm in shipped + ab["arms"]:
        by = {r["hints"]: r for r in arm["rows"] if r["method"] == "model"}
        cells = []
        for n in ABLATION_HINTS:
            r = by.get(n)
            cell = "" if r is None else f"{r['ciede2000']:.2f}"
            if r is not None and n == 0:
                cell += f" ({r['colorfulness']:.1f})"
            cells.append(cell)
        lines.append(f"| {arm['name']} | " + " | ".join(cells) + " |")
    return lines


def _palette_rows(
    model: Any, pairs: list, palette_file: Path | None, options: Any, seed: int, progress: bool
) -> tuple[list[evaluation.Scores], dict[str, Any]]:
    """The palette-lock rows and how the palettes were found."""
    from tqdm import tqdm

    from inkhue_engine.palette import load_palette

    if palette_file is not None:
        colors = load_palette(palette_file)
        palettes = [colors] * len(pairs)
        how = {
            "method": f"the palette file {palette_file} ({len(colors)} colors)",
            "per_image": None,
        }
    else:
        found = [image_palette(truth) for _, truth, _ in pairs]
        palettes = [p for p, _ in found]
        kinds = [k for _, k in found]
        how = {
            "method": (
                "per image, from its own ground truth: inkhue_engine.palette.palette_colors "
                "(flat fill colors with paper and ink); where it found fewer than "
                f"{MIN_FILL_COLORS} fill colors, a k-means ({KMEANS_COLORS} colors) of the "
                "image in Lab"
            ),
            "extract": kinds.count("extract"),
            "kmeans": kinds.count("kmeans"),
            "per_image": {
                name: {"method": k, "colors": p}
                for (name, _, _), (p, k) in zip(pairs, found, strict=True)
            },
        }
    with tqdm(
        desc="palette lock", unit="img", total=len(pairs), disable=not progress, file=sys.stderr
    ) as bar:
        lock = evaluate_palette_lock(
            model, pairs, HINT_COUNTS, palettes, options, seed, progress=lambda _name: bar.update(1)
        )
    return lock, how


def earlier_training(card_json: Path) -> dict[str, Any]:
    """The ``training`` facts of an earlier card's JSON (for ``--training-from``), marked
    with where they come from."""
    card = _read_json(card_json, "earlier model card")
    training = card.get("training") if isinstance(card, dict) else None
    if not isinstance(training, dict) or "config" not in training:
        raise InputError(f"{card_json}: not a model card JSON (it has no training facts)")
    return {**training, "carried_from": str(card_json)}


def earlier_data(card_json: Path) -> dict[str, Any] | None:
    """The ``data`` section of an earlier card's JSON, marked with where it comes from; None
    when it has none. What the model was trained on is a training fact: a manifest that
    has grown since would list packages the model never saw."""
    card = _read_json(card_json, "earlier model card")
    data = card.get("data") if isinstance(card, dict) else None
    if not isinstance(data, dict) or "packages" not in data:
        return None
    return {**data, "carried_from": str(card_json)}


def carried_data(args: argparse.Namespace) -> dict[str, Any] | None:
    """The card's corpus section when it is carried: ``--data-from`` (with its ``--data-note``,
    e.g. what a continuation saw besides), else ``--training-from``'s; None: the manifest's."""
    source = args.data_from if args.data_from is not None else args.training_from
    if source is None:
        return None
    data = earlier_data(source)
    if data is not None and args.data_note:
        data["why"] = args.data_note
    return data


def build_card_data(
    model_path: Path,
    run: Path | dict[str, Any],
    dev: Path,
    manifest: Path,
    measured: dict[str, Any],
    command: str,
    checkpoint: Path | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the card shows (the JSON written next to it). ``run``: the run folder,
    or training facts carried from an earlier card (``earlier_training``); ``data``: the
    corpus section carried with them (``earlier_data``), else read from ``manifest``."""
    info = measured["model_info"]
    if isinstance(run, dict):
        training = run
    elif checkpoint is not None:
        ckpt = checkpoint
    else:  # what `inkhue export RUN` ships: best.pt when the run chose one
        ckpt = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
    if not isinstance(run, dict):
        step, why = checkpoint_step(ckpt)
        ckpt_note = None
        if step is not None and ckpt.stat().st_mtime > model_path.stat().st_mtime:
            ckpt_note = (
                f"{ckpt} is newer than the model file: the model may come from an "
                "earlier step than this one"
            )
        training = {
            **run_summary(run, step),
            "checkpoint": str(ckpt),
            "checkpoint_step": step,
            "checkpoint_missing": why or None,
            "checkpoint_note": ckpt_note,
        }
    return {
        "card_format": 1,
        "name": info.get("name"),
        "task": info.get("task"),
        "file": {
            "path": str(model_path),
            "bytes": model_path.stat().st_size,
            "sha256": _sha256(model_path),
        },
        "model_info": info,
        "command": command,
        "note": note,
        "data": data if data is not None else corpus_summary(manifest, info.get("task")),
        "evaluated_on": {"dev": str(dev), "images": measured["settings"]["images"]},
        "training": training,
        "hardware": hardware(),
        "settings": measured["settings"],
        "palette_lock": measured["palette_lock"],
        "rows": measured["rows"],
        "targets": [
            asdict(t)
            for t in check_targets(
                measured["rows"],
                measured["model_info"]["task"],
                measured["settings"]["truth_colorfulness"],
            )
        ]
        + (
            [asdict(consistency_target(measured["consistency"]))]
            if measured.get("consistency")
            else []
        )
        + ([asdict(natural_target(measured["natural"]))] if "natural" in measured else []),
        "consistency": measured.get("consistency"),
        "natural": measured.get("natural"),
        "ablation": measured.get("ablation"),
    }


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


#: Columns of the metrics table: (header, key, format).
COLUMNS = (
    ("PSNR (dB)", "psnr", ".2f"),
    ("RMSE", "rmse", ".4f"),
    ("SSIM", "ssim", ".3f"),
    ("mean CIEDE2000", "ciede2000", ".2f"),
    ("colorfulness", "colorfulness", ".1f"),
)


def _metrics_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of a metrics table: one line per protocol row, COLUMNS' formats."""
    lines = [
        "| hints | method | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---:|---|" + "---:|" * len(COLUMNS),
    ]
    for r in rows:
        cells = " | ".join(_fmt(r[k], f) for _, k, f in COLUMNS)
        lines.append(f"| {r['hints']} | {r['method']} | {cells} |")
    return lines


def render_card(d: dict[str, Any]) -> str:
    """The model card (markdown) of build_card_data's dict."""
    s, tr, hw, data = d["settings"], d["training"], d["hardware"], d["data"]
    cfg = tr["config"]
    lines = [f"# Model card: {d['name']}", ""]
    if d.get("note"):
        lines += [f"> {d['note']}", ""]
    lines += [
        f"- **Task**: `{d['task']}` "
        + (
            "(input L + hints, output ab; the frame's own L is kept)"
            if d["task"] == "grayscale"
            else "(input line art + hints, output Lab; flat color under the lines)"
        ),
        f"- **File**: `{Path(d['file']['path']).name}` ({d['file']['bytes'] / 1e6:.1f} MB, "
        f"sha256 `{d['file']['sha256'][:16]}`), multiple_of "
        f"{d['model_info'].get('multiple_of')}, train_size {d['model_info'].get('train_size')}",
        f"- **Trained on** (model metadata): {d['model_info'].get('trained_on')}",
        "",
        "## Data",
        "",
        f"Corpus manifest `{data['manifest']}` ({', '.join(data['kinds'] or [])}): "
        f"{data['train']} training and {data['dev']} dev images for this task.",
        "",
        *(
            [
                f"These data facts were carried from `{data['carried_from']}`: the corpus "
                "this model's base was trained on, not what the manifest lists today"
                + (f" ({data['why']})." if data.get("why") else "."),
                "",
            ]
            if data.get("carried_from")
            else []
        ),
        "| package | version | licence | kept (all tasks) | train | dev |",
        "|---|---|---|---|---:|---:|",
    ]
    for p in data["packages"]:
        kinds = ", ".join(f"{k} {v}" for k, v in p["kinds"].items())
        lines.append(
            f"| {p['package']} | {p['version']} | {p['licence']} | {kinds} | "
            f"{p['train']} | {p['dev']} |"
        )
    lines += ["", "## Training", ""]
    step = tr["checkpoint_step"]
    lines += [
        f"- Run folder `{tr['folder']}`; checkpoint `{tr['checkpoint']}` at step "
        f"{step if step is not None else 'unknown (checkpoint ' + tr['checkpoint_missing'] + ')'}"
        f" ({tr['logged_steps']} steps logged up to it)",
        f"- Wall time {tr['wall_minutes']:.1f} min in {tr['sessions']} session(s); "
        f"{_fmt(tr['img_s_median'], '.2f')} img/s (median of the logged rates)",
        f"- Generator channels {cfg.get('channels')}, {cfg.get('n_res')} residual blocks; "
        f"crops {cfg.get('crop_size')} px, batch {cfg.get('batch_size')}, lr {cfg.get('lr')}, "
        f"L1 weight {cfg.get('l1_weight')}, GAN weight {cfg.get('gan_weight')}, EMA "
        f"{cfg.get('ema_decay')}, up to {cfg.get('max_hints')} hints "
        f"(none in {cfg.get('p_no_hints')} of the samples)",
    ]
    if tr.get("checkpoint_note"):
        lines.append(f"- Note: {tr['checkpoint_note']}")
    if tr.get("carried_from"):
        lines.append(
            f"- These training facts were carried from `{tr['carried_from']}` (an earlier "
            "card of a model made from the same checkpoint), not read from the run folder "
            "when this card was measured"
        )
    lines += [
        "",
        "## Hardware",
        "",
        f"- CPU: {hw['cpu']}, {hw['cores']} cores ({hw['usable_cores']} usable); "
        f"{hw['system']}, Python {hw['python']}",
        f"- Training device setting: `{cfg.get('device')}` (the run's config.json; the run "
        "records no device name, the CPU above is the machine that wrote this card)",
        "",
        "## Metrics",
        "",
        f"Dev split only: {s['images']} image(s) of `{s['data']}` ({s.get('selection')}; "
        "names in the JSON), scaled to a long side of "
        f"at most {s['size']} px; inputs: {s['inputs']}; hints: random "
        f"{evaluation.HINT_PATCH}x{evaluation.HINT_PATCH} points sampled from the ground "
        f"truth (seed {s['seed']}, the same for every method). Ground-truth colorfulness "
        f"{s['truth_colorfulness']:.1f}.",
        "",
        "Measured with:",
        "",
        "```",
        d["command"],
        "```",
        "",
        *_metrics_table(d["rows"]),
        "",
        "Methods: `gray` = the input with ab = 0; `model` = the full pipeline "
        "(ColorizeOptions' defaults: regions on, hints adopted, mirror average on); "
        "`flat-fill` = each region the mean of its hints (non-learned).",
    ]
    if d.get("palette_lock"):
        pl = d["palette_lock"]
        counts = (
            f" ({pl['extract']} image(s) by extraction, {pl['kmeans']} by k-means)"
            if pl.get("per_image") is not None
            else ""
        )
        lines += [
            f"`{PALETTE_METHOD}` = the model with the palette lock; palette: "
            f"{pl['method']}{counts}. The palette comes from the image's own colors, "
            "so this row shows what a known character palette can give, not what a "
            "model finds alone."
        ]
    nat = d.get("natural")
    if nat and nat.get("images"):
        lines += [
            "",
            f"Painted backgrounds and photos (target (d)): the {nat['images']} image(s) above "
            f"of kind {' or '.join(nat['kinds'])} (the corpus manifest's `dev_kinds`; names "
            f"in the JSON), 0 hints; their truth's colorfulness "
            f"{nat['truth_colorfulness']:.1f}.",
            "",
            *_metrics_table(nat["rows"]),
        ]
    lines += _ablation_lines(d)
    lines += ["", "## Targets", ""]
    for t in d["targets"]:
        verdict = {True: "met", False: "MISSED", None: "NOT MEASURED"}[t["met"]]
        lines.append(f"- **{t['name']}**: {verdict}. {t['rule']}: {t['detail']}.")
    lines.append("")
    return "\n".join(lines)


def write_card(out_md: Path, data: dict[str, Any]) -> Path:
    """Write the card and its JSON (``out_md`` with suffix .json) atomically; returns the JSON."""
    from inkhue_engine import frames_io as fio

    out_json = out_md.with_suffix(".json")
    evaluation.write_json(out_json, data)
    fio.write_bytes_atomic(out_md, render_card(data).encode("utf-8"))
    return out_json


# --------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m inkhue_training.model_card",
        description="Measure an exported model on the dev split (engine evaluation: gray, "
        "model and flat-fill baselines with 0/1/10/50 hints, palette lock for line art) "
        "and write its model card (markdown) and the raw numbers (JSON).",
    )
    p.add_argument("--model", type=Path, required=True, help="the exported .onnx model")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--run",
        type=Path,
        help="its training run folder (config.json, log.jsonl, last.pt)",
    )
    source.add_argument(
        "--training-from",
        type=Path,
        metavar="CARD.json",
        help="instead of --run, when the run folder is gone: the training facts of an "
        "earlier card (its JSON) of a model made from the same checkpoint",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="the checkpoint the model was exported from (default: RUN/best.pt, else RUN/last.pt)",
    )
    p.add_argument(
        "--data-from",
        type=Path,
        default=None,
        metavar="CARD.json",
        help="carry the corpus section of an earlier card (e.g. of the base a run continued: "
        "a grown manifest would list packages the model never saw)",
    )
    p.add_argument(
        "--data-note",
        default=None,
        metavar="TEXT",
        help="with --data-from: what the model saw besides (shown with the carried section)",
    )
    p.add_argument("--dev", type=Path, required=True, help="dev split folder (ground truth)")
    p.add_argument("--manifest", type=Path, required=True, help="corpus manifest.json")
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="N dev images, evenly spread"
    )
    p.add_argument(
        "--palette",
        type=Path,
        default=None,
        metavar="P.gpl",
        help="palette (.gpl/.kpl) for the palette-lock rows, for every image "
        "(default for line art: each image's own, see the module doc)",
    )
    p.add_argument("--size", type=int, default=256, help="long side of the dev images (256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled hints (0)")
    p.add_argument("--detail", type=float, default=1.0, help="working-size factor (1)")
    p.add_argument(
        "--shot",
        type=Path,
        default=None,
        metavar="DIR",
        help="a flat-filled shot (color/ and gray/ or lineart/ frames, e.g. prologue_kid) for "
        "target (c): its frames 0 and 60 colorized at 0 hints, true fills compared",
    )
    p.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="NAME=MODEL.onnx",
        help="a model of the ablation table (repeat, in table order): measured on the card's "
        f"images at {', '.join(map(str, ABLATION_HINTS))} hints beside this model",
    )
    p.add_argument(
        "--ablation-note",
        default=None,
        metavar="TEXT",
        help="how the ablation's models were made (shown above its table)",
    )
    p.add_argument("--note", default=None, help="a line shown at the top of the card")
    p.add_argument("-o", "--output", type=Path, required=True, help="card to write (.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code (2 on a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        if args.limit is not None and args.limit < 1:
            raise InputError(f"--limit {args.limit}: use 1 or more")
        arms = [parse_arm(a) for a in args.ablation]  # a typo fails before the long part
        measured = measure(
            args.model,
            args.dev,
            args.limit,
            args.palette,
            args.size,
            args.seed,
            args.detail,
            progress=not args.quiet,
        )
        if args.shot is not None:
            measured["consistency"] = measure_consistency(args.model, args.shot, args.detail)
        if measured["model_info"]["task"] == "grayscale":
            measured["natural"] = measure_natural(measured["per_image"], dev_kinds(args.manifest))
        if arms:
            names = measured["settings"]["image_names"]
            measured["ablation"] = {
                "note": args.ablation_note,
                "hints": list(ABLATION_HINTS),
                "arms": measure_ablation(arms, args.dev, names, args.size, args.seed, args.detail),
            }
        command = "python -m inkhue_training.model_card " + shlex.join(argv)
        data = build_card_data(
            args.model,
            args.run if args.run is not None else earlier_training(args.training_from),
            args.dev,
            args.manifest,
            measured,
            command,
            args.checkpoint,
            args.note,
            carried_data(args),
        )
        out_json = write_card(args.output, data)
    except InkHueError as exc:
        print(f"model_card: error: {exc}", file=sys.stderr)
        return 2
    print(render_card(data).split("## Metrics", 1)[1].split("## Targets")[0].strip())
    print(f"wrote {args.output} and {out_json}")
    for t in data["targets"]:
        print(f"{t['name']}: {'met' if t['met'] else 'MISSED' if t['met'] is False else 'n/a'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
