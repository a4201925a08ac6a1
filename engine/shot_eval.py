"""Scores of a colorized shot against its true colors (``inkhue evaluate --sequence --truth``).

- ``mean_de``: mean CIEDE2000 of the output against the truth over whole frames;
- ``moving_de``: the same over the pixels that moved, i.e. whose input differs from the
  keyframe's input by more than MOVING_L (Lab L units): where copying the keyframe fails;
- ``segment_accuracy``: share of the frame's regions (the colorizer's regions of the
  input, MIN_REGION_PX or larger) whose median output color is within SEGMENT_TOL
  CIEDE2000 of the median true color (after BasicPBC / DACoN's segment accuracy); for
  line art over the region's interior (input L >= INTERIOR_L), not the lines' fringe;
- ``temporal_consistency``: flow-warp error of the output divided by that of the truth
  (1.0 = as steady as the truth; LVCD's measure): frame t-1 is warped onto frame t by
  the optical flow of the INPUT frames, and the mean absolute RGB difference is taken
  over pixels whose flow passes a forward-backward check.
Frames that are keyframes (given by index) are left out of every score: they are the
artist's own pixels. Frames stream two at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inkhue_engine import frames_io as fio
from inkhue_engine import regions as rg
from inkhue_engine.color import delta_e_2000, on_white, rgb_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.keyframes import MIN_REGION_PX, structure_lightness

#: An input pixel "moved" when its L differs from the keyframe input's by more than this.
MOVING_L = 2.0
#: A region is colored right when its median color is this close (CIEDE2000) to the truth's.
SEGMENT_TOL = 3.0
#: Line art: a region's color is scored on its interior, the pixels whose input is paper
#: (L at least this): the anti-aliased fringe of the lines is the lines' color.
INTERIOR_L = 90.0
#: Forward-backward flow check: a pixel is kept when the round trip ends this close (px).
FLOW_CHECK_PX = 1.0


@dataclass
class ShotScores:
    """Scores of one colorized shot (see the module docstring)."""

    frames: int
    mean_de: float
    moving_de: float | None  # None: nothing moved
    moving_share: float
    segment_accuracy: float
    regions: int
    warp_error: float
    warp_error_truth: float
    temporal_consistency: float | None  # None: the truth is perfectly still
    # Line art: the same over the fill only (input L >= INTERIOR_L), without the drawn
    # lines that every method takes unchanged from the input; grayscale: the same values.
    fill_de: float = 0.0
    fill_moving_de: float | None = None
    fill_temporal_consistency: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _files(folder: str | Path, what: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: the {what} folder does not exist")
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in fio.IMAGE_EXTS
        ),
        key=lambda p: fio.natural_key(p.name),
    )
    if not files:
        raise InputError(f"{folder}: the {what} folder holds no image")
    return files


def _pair_by_stem(outputs: list[Path], others: list[Path], what: str) -> list[Path]:
    by_stem = {p.stem: p for p in others}
    missing = [p.stem for p in outputs if p.stem not in by_stem]
    if missing:
        raise InputError(
            f"no {what} frame named {missing[0]!r}: name the {what} frames like the outputs"
        )
    return [by_stem[p.stem] for p in outputs]


def _rgb_lab(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rgb = on_white(img)
    return rgb, rgb_to_lab(rgb)


def _warp_errors(
    prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, masks: Sequence[np.ndarray]
) -> list[float]:
    """Mean absolute difference of ``cur`` and ``prev`` warped onto it, per mask."""
    h, w = cur.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(
        prev,
        gx + flow[..., 0],
        gy + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    diff = np.abs(warped - cur).mean(axis=-1)
    return [float(diff[m].mean()) if m.any() else 0.0 for m in masks]


def _flow_pair(l_prev: np.ndarray, l_cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flow cur -> prev of the inputs, and the pixels whose flow passes the round trip."""
    a = np.clip(l_cur * 2.55, 0, 255).astype(np.uint8)
    b = np.clip(l_prev * 2.55, 0, 255).astype(np.uint8)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    fw = dis.calc(a, b, None)
    bw = dis.calc(b, a, None)
    h, w = a.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(
        bw,
        gx + fw[..., 0],
        gy + fw[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(1e4, 1e4),
    )
    valid = np.hypot(*(fw + back).transpose(2, 0, 1)) <= FLOW_CHECK_PX
    return fw, valid


def _region_accuracy(
    labels: np.ndarray, out_lab: np.ndarray, truth_lab: np.ndarray
) -> tuple[int, int]:
    """(regions colored right, regions scored) of one frame."""
    area = np.bincount(labels.ravel())
    scored = area >= MIN_REGION_PX
    scored[0] = False
    if not scored.any():
        return 0, 0
    med_out = rg.region_medians(labels, out_lab)[scored]
    med_truth = rg.region_medians(labels, truth_lab)[scored]
    de = delta_e_2000(med_out[:, None, :], med_truth[:, None, :])[:, 0]
    return int((de <= SEGMENT_TOL).sum()), int(scored.sum())


def evaluate_shot(
    outputs: str | Path,
    truth: str | Path,
    inputs: str | Path,
    task: str,
    keyframes: Sequence[str] = (),
) -> ShotScores:
    """Score the colorized frames in ``outputs`` (a folder) against ``truth``.

    ``inputs``: the frames the outputs were made from; ``keyframes``: stems (or file
    names) of the frames the artist colored: the first one's input defines which pixels
    moved, and all of them are left out of the scores. Frames pair by file stem.
    """
    out_files = _files(outputs, "output")
    truth_files = _pair_by_stem(out_files, _files(truth, "truth"), "truth")
    in_files = _pair_by_stem(out_files, _files(inputs, "input"), "input")
    key_stems = {Path(k).stem for k in keyframes}
    if not key_stems:
        raise InputError("name the keyframe(s) the shot was colored from (--keyframes)")
    in_by_stem = {p.stem: p for p in _files(inputs, "input")}
    first_key = next(
        (s for s in (p.stem for p in out_files) if s in key_stems), sorted(key_stems)[0]
    )
    if first_key not in in_by_stem:
        raise InputError(f"keyframe {first_key!r}: no input frame of that name in {inputs}")
    key_l = structure_lightness(fio.read_image(in_by_stem[first_key]), task)

    sums = np.zeros(4)  # dE all, dE moving, dE fill, dE moving fill
    counts = np.zeros(4)
    right = scored = frames = 0
    warp = np.zeros(4)  # output all, truth all, output fill, truth fill
    prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for stem, out_img, truth_img, in_img in _stream(out_files, truth_files, in_files):
        L = structure_lightness(in_img, task)
        fill = L >= INTERIOR_L if task == "lineart" else np.ones(L.shape, bool)
        out_rgb, out_lab = _rgb_lab(out_img)
        truth_rgb, truth_lab = _rgb_lab(truth_img)
        if out_lab.shape != truth_lab.shape or L.shape != out_lab.shape[:2]:
            raise InputError(f"frame {stem}: output, truth and input differ in size")
        if prev is not None:
            flow, valid = _flow_pair(prev[0], L)
            masks = (valid, valid & fill)
            a, c = _warp_errors(prev[1], out_rgb, flow, masks)
            b, d = _warp_errors(prev[2], truth_rgb, flow, masks)
            warp += (a, b, c, d)
        prev = (L, out_rgb, truth_rgb)
        if stem in key_stems:
            continue
        frames += 1
        de = delta_e_2000(out_lab, truth_lab)
        moving = np.abs(L - key_l) > MOVING_L if key_l.shape == L.shape else np.zeros(L.shape, bool)
        for k, m in enumerate((None, moving, fill, moving & fill)):
            part = de if m is None else de[m]
            sums[k] += float(part.sum(dtype=np.float64))
            counts[k] += part.size
        labels = rg.regions_of(L, task)
        if task == "lineart":
            labels = np.where(L >= INTERIOR_L, labels, 0)
        ok, n = _region_accuracy(labels, out_lab, truth_lab)
        right += ok
        scored += n
    if frames == 0:
        raise InputError(f"{outputs}: no frame to score besides the keyframes")
    mean = [sums[k] / counts[k] if counts[k] else None for k in range(4)]
    return ShotScores(
        frames=frames,
        mean_de=mean[0],
        moving_de=mean[1],
        moving_share=counts[1] / counts[0],
        segment_accuracy=right / scored if scored else 0.0,
        regions=scored,
        warp_error=float(warp[0]),
        warp_error_truth=float(warp[1]),
        temporal_consistency=float(warp[0] / warp[1]) if warp[1] > 0 else None,
        fill_de=mean[2] if mean[2] is not None else float("nan"),
        fill_moving_de=mean[3],
        fill_temporal_consistency=float(warp[2] / warp[3]) if warp[3] > 0 else None,
    )


def _stream(
    out_files: list[Path], truth_files: list[Path], in_files: list[Path]
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    for o, t, i in zip(out_files, truth_files, in_files, strict=True):
        yield o.stem, fio.read_image(o), fio.read_image(t), fio.read_image(i)


def format_scores(name: str, s: ShotScores) -> str:
    """One line of a shot's scores."""
    moving = "n/a" if s.moving_de is None else f"{s.moving_de:.2f}"
    tc = "n/a" if s.temporal_consistency is None else f"{s.temporal_consistency:.2f}"
    line = (
        f"{name}: {s.frames} frames, CIEDE2000 {s.mean_de:.2f}, moving pixels {moving} "
        f"({100 * s.moving_share:.1f}%), segment accuracy {100 * s.segment_accuracy:.1f}% "
        f"of {s.regions} regions, temporal consistency {tc}"
    )
    if s.fill_de != s.mean_de:
        fm = "n/a" if s.fill_moving_de is None else f"{s.fill_moving_de:.2f}"
        ftc = "n/a" if s.fill_temporal_consistency is None else f"{s.fill_temporal_consistency:.2f}"
        line += f"; fill only: CIEDE2000 {s.fill_de:.2f}, moving {fm}, consistency {ftc}"
    return line


#: Fill consistency: a true fill counts when it covers at least this many interior pixels
#: in both frames (smaller ones are mostly anti-aliased edge colors).
FILL_MIN_PX = 200


def fill_consistency(
    out_a: np.ndarray, out_b: np.ndarray, truth_a: np.ndarray, truth_b: np.ndarray
) -> tuple[float, int]:
    """How much one thing's color changes between two frames of a shot: (mean CIEDE2000,
    number of fills compared).

    Corresponding regions are the true fills: the pixels of one exact true color (flat-
    filled cartoons, such as a vector render) away from that fill's edge, in each frame.
    For each fill with FILL_MIN_PX such pixels in both frames, the mean Lab of the output
    over it in frame a is compared with that in frame b; every fill counts once (a
    character's hair as much as the sky behind it). Outputs and truths are RGB of one size
    per frame (any dtype).
    Raises InputError when no fill is in both frames (not a flat-filled shot).
    """

    def fills(truth: np.ndarray, out: np.ndarray) -> dict[int, tuple[np.ndarray, int]]:
        t = np.asarray(truth)
        if t.ndim != 3 or t.shape[2] < 3 or t.shape[:2] != np.asarray(out).shape[:2]:
            raise InputError("fill consistency: give RGB truths of the outputs' sizes")
        t8 = (on_white(t) * 255.0 + 0.5).astype(np.int32)
        key = (t8[..., 0] << 16) | (t8[..., 1] << 8) | t8[..., 2]
        # interior: the 3x3 neighbourhood has the same true color
        k = np.ones((3, 3), np.uint8)
        kf = key.astype(np.float32)
        inside = (cv2.erode(kf, k) == kf) & (cv2.dilate(kf, k) == kf)
        lab = rgb_to_lab(on_white(np.asarray(out)))
        # each true color a region (label 0 unused), its interior pixels the weights
        keys, inverse = np.unique(key, return_inverse=True)
        means, counts = rg.region_means(inverse.reshape(key.shape) + 1, lab, inside)
        big = np.flatnonzero(counts[1:] >= FILL_MIN_PX)
        return {int(keys[i]): (means[i + 1], int(counts[i + 1])) for i in big}

    fa, fb = fills(truth_a, out_a), fills(truth_b, out_b)
    common = sorted(set(fa) & set(fb))
    if not common:
        raise InputError("fill consistency: no true fill color is in both frames")
    a = np.stack([fa[c][0] for c in common]).astype(np.float32)
    b = np.stack([fb[c][0] for c in common]).astype(np.float32)
    de = delta_e_2000(a[:, None, :], b[:, None, :])[:, 0]
    return float(de.mean()), len(common)
