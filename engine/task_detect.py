"""Which task a frame is: line art (lines on paper) or grayscale (shaded lightness).

``detect_task(frame)`` looks at one frame as the engine reads it (uint8 / uint16 /
float32, gray, gray+alpha, RGB or RGBA; the bit depth comes from the dtype, never from
the values) and returns a ``Detection``: the task, a confidence, whether the frame is
already in color, and a one-line reason. ``detect_sequence(frames)`` decides once for a
whole sequence from its first frames, so a shot never switches models half-way.

How (docs/TASK_DETECTION.md has the measured accuracy):

1. The frame is composited over white (a transparent pixel of a line layer is paper,
   whatever RGB it stores: Krita's empty pixels are often black) and scaled down to at
   most ``MAX_PIXELS`` (area averaging, so a thin line stays a darker stroke).
2. The paper level is the lightest lightness (2-L bins) that covers at least
   ``regions.PAPER_SHARE`` of the frame (``regions.paper_level``). Paper pixels are
   within ``TONE_DELTA`` of it.
3. *Tone* pixels differ from the paper by more than ``TONE_DELTA``, are lighter than
   ``SOLID_L`` (solid black fills are ink, which line art has) and lie more than
   ``FAR_PX`` pixels from any paper pixel. In line art every such pixel is part of a
   line, and lines are thin: anti-aliasing hugs the paper. A grayscale frame's shading
   covers wide areas.
4. Line art when the paper is light (``PAPER_MIN_L``) and tone pixels make at most
   ``TONE_MAX_LINEART`` of the frame; grayscale otherwise. A frame with no contrast at
   all is ``blank`` (its task is the default, with confidence 0).

Pure numpy / OpenCV; no state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from inkhue_engine.color import DTYPE_SCALE, on_white, rgb_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.regions import paper_level

#: The frame is scaled down to at most this many pixels first (about 1024 x 1024).
MAX_PIXELS = 1 << 20
#: Line art needs paper at least this light (L): white or near-white paper (cream paper is
#: ~90); a mid-gray floor (a game screenshot, L 53-63) is not paper.
PAPER_MIN_L = 75.0
#: A pixel this close to the paper level (L) is paper.
TONE_DELTA = 8.0
#: Darker than this (L) is solid ink, not tone.
SOLID_L = 25.0
#: Tone pixels lie more than this (px, after scaling) from any paper pixel.
FAR_PX = 12.0
#: Line art: at most this share of tone pixels (measured: line art <= 0.007, grayscale
#: with light paper >= 0.056 on the development sets; docs/TASK_DETECTION.md).
TONE_MAX_LINEART = 0.02
#: A frame whose lightness spans less than this (L, 1st to 99th percentile) is blank.
BLANK_RANGE = 2.0
#: Colored: pixels of Lab chroma above CHROMA_MIN make at least COLORED_MIN of the frame.
CHROMA_MIN = 8.0
COLORED_MIN = 0.02
#: The default task of a blank frame (nothing to tell; the engine's historic default).
DEFAULT_TASK = "grayscale"
#: detect_sequence looks at this many frames from the start (blank ones are skipped).
SEQUENCE_FRAMES = 3


@dataclass(frozen=True)
class Detection:
    """What detect_task found. ``confidence`` is 0..1 (0: no evidence, e.g. blank)."""

    task: str  #: 'grayscale' | 'lineart'
    confidence: float
    colored: bool  #: the frame already has colors (the models use only its lightness)
    blank: bool  #: no lines, no shading: nothing to tell
    reason: str  #: one line, for messages and logs
    tone: float  #: share of tone pixels (see the module doc)
    paper: float  #: share of paper pixels

    def as_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "confidence": round(self.confidence, 3),
            "colored": self.colored,
            "blank": self.blank,
            "reason": self.reason,
        }


def _check(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray):
        raise InputError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype not in DTYPE_SCALE:
        raise InputError(
            f"unsupported pixel type {frame.dtype}: convert the frame to uint8, uint16 or float32"
        )
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 2, 3, 4))):
        raise InputError(
            f"unsupported frame shape {frame.shape}: use HxW gray or HxWxC with C = 1 (gray), "
            "2 (gray+alpha), 3 (RGB) or 4 (RGBA)"
        )
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError(f"the frame is empty (shape {frame.shape})")


def _small_on_white(frame: np.ndarray, max_pixels: int) -> np.ndarray:
    """RGB float01 over white, area-scaled by an integer factor to at most ``max_pixels``.

    Composited strip by strip before scaling (compositing is linear in the premultiplied
    values, so this is what scaling the composite gives) to bound the float copies of a
    large frame.
    """
    if frame.dtype == np.float32 and not np.isfinite(frame).all():
        frame = np.nan_to_num(frame, nan=0.0, posinf=1.0, neginf=0.0)  # as the pipeline reads it
    h, w = frame.shape[:2]
    k = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
    if k == 1:
        return on_white(frame)
    ow, oh = max(1, w // k), max(1, h // k)
    out = np.empty((oh, ow, 3), np.float32)
    rows = max(1, 256 // k) * k
    for y in range(0, oh * k, rows):
        strip = on_white(frame[y : min(y + rows, oh * k), : ow * k])
        out[y // k : y // k + strip.shape[0] // k] = cv2.resize(
            strip, (ow, strip.shape[0] // k), interpolation=cv2.INTER_AREA
        )
    return out


def features(frame: np.ndarray, max_pixels: int = MAX_PIXELS) -> dict[str, float]:
    """The measurements detect_task decides on (for reports and tuning).

    Keys: ``paper_L`` (the paper level), ``paper`` / ``tone`` / ``solid`` (shares of
    the frame: paper, tone and solid-ink pixels as the module doc defines them),
    ``range`` (1st-99th percentile span of L), ``chroma`` (share of pixels whose Lab
    chroma is above CHROMA_MIN). InputError for a frame the engine cannot read.
    """
    _check(frame)
    lab = rgb_to_lab(_small_on_white(frame, max_pixels))
    L = np.ascontiguousarray(lab[..., 0])
    n = float(L.size)
    paper_l = paper_level(L)
    paper = np.abs(L - paper_l) <= TONE_DELTA
    # distance of every pixel to the nearest paper pixel (0 on paper)
    dist = cv2.distanceTransform((~paper).astype(np.uint8), cv2.DIST_L2, 3)
    tone = ~paper & (L >= SOLID_L) & (dist > FAR_PX)
    lo, hi = np.percentile(L, [1, 99])
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return {
        "paper_L": paper_l,
        "paper": float(np.count_nonzero(paper)) / n,
        "tone": float(np.count_nonzero(tone)) / n,
        "solid": float(np.count_nonzero(L < SOLID_L)) / n,
        "range": float(hi - lo),
        "chroma": float(np.count_nonzero(chroma > CHROMA_MIN)) / n,
    }


def decide(f: dict[str, float]) -> Detection:
    """The Detection for the measurements of ``features``."""
    colored = f["chroma"] >= COLORED_MIN
    if f["range"] < BLANK_RANGE:
        return Detection(
            DEFAULT_TASK,
            0.0,
            colored,
            True,
            "blank frame (no lines, no shading): the default task",
            f["tone"],
            f["paper"],
        )
    # confidence: how far the tone share is from the threshold, in factors of 4 (a
    # share 4x below or above it is certain)
    margin = abs(math.log(max(f["tone"], 1e-3) / TONE_MAX_LINEART)) / math.log(4.0)
    if f["paper_L"] < PAPER_MIN_L:
        task, conf = "grayscale", 1.0
        reason = f"grayscale: no light paper (the lightest large area has L {f['paper_L']:.0f})"
    elif f["tone"] <= TONE_MAX_LINEART:
        task, conf = "lineart", min(1.0, margin)
        reason = f"line art: lines on paper ({f['tone']:.1%} shaded area)"
    else:
        task, conf = "grayscale", min(1.0, margin)
        reason = f"grayscale: {f['tone']:.0%} of the frame is shaded area away from the lines"
    if colored:
        reason += (
            f"; already in color ({f['chroma']:.0%} colored pixels): only its lightness is used"
        )
    return Detection(task, conf, colored, False, reason, f["tone"], f["paper"])


def detect_task(frame: np.ndarray, max_pixels: int = MAX_PIXELS) -> Detection:
    """The task of one frame: 'lineart' for lines on paper (opaque or on transparency),
    'grayscale' for shaded lightness; see the module doc. InputError for a frame the
    engine cannot read (dtype, shape)."""
    return decide(features(frame, max_pixels))


def detect_sequence(
    frames: Iterable[np.ndarray], limit: int = SEQUENCE_FRAMES, max_pixels: int = MAX_PIXELS
) -> Detection:
    """One task for a whole sequence, from its first ``limit`` frames that are not blank.

    The frames' tone and paper shares are averaged (a majority of two would tie), then
    decided as for one frame; blank frames (a fade from black) are skipped. A sequence
    of blank frames only is blank. ``frames`` is consumed lazily: only what is needed
    is read.
    """
    found: list[dict[str, float]] = []
    first: dict[str, float] | None = None
    for frame in frames:
        f = features(frame, max_pixels)
        first = first or f
        if f["range"] >= BLANK_RANGE:
            found.append(f)
            if len(found) >= limit:
                break
    if first is None:
        raise InputError("no frames to detect the task of")
    if not found:
        return decide(first)
    mean = {k: float(np.mean([f[k] for f in found])) for k in found[0]}
    det = decide(mean)
    if len(found) > 1:
        det = Detection(
            det.task,
            det.confidence,
            det.colored,
            det.blank,
            f"{det.reason} (first {len(found)} frames)",
            det.tone,
            det.paper,
        )
    return det


def source_frames(sources: Iterable, max_pixels: int | None = None) -> Iterator[np.ndarray]:
    """The frames of ``sources`` (frames_io.Source: images and videos) in order, read
    lazily for detect_sequence; a frame that cannot be read is skipped (the batch that
    follows reports it with its name)."""
    from inkhue_engine import frames_io as fio

    for source in sources:
        try:
            if source.is_video:
                yield from fio.read_video(source.path)
            else:
                yield fio.read_image(source.path, max_pixels)
        except InputError:
            continue


def detect_sources(sources: Iterable, max_pixels: int | None = None) -> Detection | None:
    """detect_sequence over the first frames of ``sources`` (a run of the CLI or a files
    job: one task, hence one model, for the whole run). None when no frame of them can
    be read (the run then reports its bad frames itself)."""
    frames = source_frames(sources, max_pixels)
    try:
        return detect_sequence(frames)
    except InputError:
        return None
    finally:
        frames.close()  # an open video stops here
