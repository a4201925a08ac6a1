"""The frame pipeline: frame -> model input -> model -> finished frame (pure functions).

``prepare_frame`` turns a frame (and optional hints) into the model's 4-channel input
at the working size plus everything ``finish_frame`` needs; ``run_prepared`` batches
prepared frames of equal size through a Model; ``finish_frame`` turns one prediction
back into a frame of the input's size, channel layout and dtype. ``colorize_frame``
does all three for one frame. No state lives outside the arguments, so frames can be
prepared and finished in worker threads while the model runs.

Working size (ColorizeOptions.detail):
  1. target short side = round(train_size * detail);
  2. a frame whose short side is at most the target runs at its own size (never
     upsampled: interpolated L holds no detail the model could use);
  3. a larger frame is scaled down (INTER_AREA) so that its short side is the target;
     line art reduced 2x or more is min-filtered first (``_keep_ink``: thin lines stay);
  4. if the working size then has more than ``max_working_pixels`` pixels it is
     scaled down further to fit (memory bound for 8K frames / high detail);
  5. the working image is padded at the bottom/right to multiples of the model's
     ``multiple_of`` by mirror reflection (works for any size, 1x1 included).
Only ab (and L for line art) are upsampled back; the frame's own full-resolution L
stays (richzhang's rule), and values are clipped before the integer conversion.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from inkhue_engine import regions as rg
from inkhue_engine.color import (
    DTYPE_SCALE,
    from_float01,
    gray_to_l,
    hex_to_lab,
    lab_to_rgb,
    rgb_to_lab,
    to_float01,
)
from inkhue_engine.errors import InputError
from inkhue_engine.hint_adoption import (
    adopt_by_lightness,
    adopt_hint_colors,
    adoption_evidence,
    hint_colors,
)
from inkhue_engine.model import TASK_OUTPUTS, TASKS, Model, ModelInfo
from inkhue_engine.palette import (
    check_palette_length,
    normalize_hex,
    palette_evidence,
    snap_regions_by_evidence,
    snap_regions_to_palette,
)

#: Default memory bound of the working image (pixels): ~2 MPx is a 1920x1080 frame.
MAX_WORKING_PIXELS = 2 * 1024 * 1024
#: Grayscale: regions larger than this share of the frame keep the model's per-pixel
#: colors. A photo with weak edges is mostly one "region"; giving it one color would
#: flatten it. Cartoon regions (a character's shirt, hair) are far smaller.
CONSOLIDATE_MAX_FRACTION = 0.3
#: Line art: lightness of a hinted region when the hint carries no L (an (ab, mask)
#: hint) and no model prediction exists (the flat-fill baseline). A typical cel tone.
DEFAULT_FILL_L = 70.0
#: Region medians use at most this many sampled pixels (strided) on huge frames.
MEDIAN_MAX_SAMPLES = 1 << 17
#: Output pixels finished at once (rows of about 1 MPx): bounds temporaries of 8K frames.
STRIP_PIXELS = 1 << 20
#: Default number of frames in one model call (run_prepared).
DEFAULT_BATCH_SIZE = 8
#: Largest change of L (Lab units) accepted from clipping to the sRGB gamut. OpenCV's
#: float Lab conversion itself round-trips L only to ~0.23 (measured), so not lower.
_GAMUT_TOL = 0.3
OUTPUTS = ("color", "fill")


@dataclass(frozen=True)
class ColorizeOptions:
    """How to colorize a frame.

    - ``detail``: working short side = model train_size x detail (see the module doc);
      > 0, 1 = the model's training scale; never above the frame's own size.
    - ``regions``: spread hints over the regions between lines before the model, and
      consolidate colors per region after it (line art: one color per region;
      grayscale: one hue per region below CONSOLIDATE_MAX_FRACTION of the frame).
    - ``output``: 'color' = the finished frame; 'fill' = line art's flat color fill
      without the lines (for grayscale the same as 'color').
    - ``palette``: sRGB hex colors; when set, colors snap to it (palette lock). A
      model's own palette (ModelInfo.palette) is applied only if passed here.
    - ``max_working_pixels``: memory bound on the working image.
    - ``anchor_hints`` (grayscale, with ``regions``): shift the prediction in each hinted
      region so its mean is the hint's color (the model keeps the shading inside it).
      Line-art regions always take their hint's color.
    - ``adopt_hints`` (with ``regions``): an unhinted region takes a hinted region's
      color. Line art (no palette, a model with color classes): where the model's class
      distribution backs it. Grayscale: where its gray level is that of a hinted region,
      before the model, which takes it as one more hint (engine/hint_adoption.py).
    - ``mirror_average``: run the model on the frame and on its left-right mirror and
      average the two predictions (the mirror's flipped back): colors depend less on
      where things happen to stand, so a character keeps its colors across a shot's
      frames (docs/DESIGN.md, "Mirror average"). Twice the model's compute; off for speed.
    """

    detail: float = 1.0
    regions: bool = True
    output: str = "color"
    palette: tuple[str, ...] | None = None
    max_working_pixels: int = MAX_WORKING_PIXELS
    anchor_hints: bool = True
    adopt_hints: bool = True
    mirror_average: bool = True

    def __post_init__(self) -> None:
        try:
            detail = float(self.detail)
        except (TypeError, ValueError):
            detail = float("nan")
        if not (math.isfinite(detail) and detail > 0):
            raise InputError(f"detail must be a number above 0, got {self.detail!r}")
        object.__setattr__(self, "detail", detail)
        if self.output not in OUTPUTS:
            raise InputError(f"output must be 'color' or 'fill', got {self.output!r}")
        if int(self.max_working_pixels) < 1:
            raise InputError(
                f"max_working_pixels must be at least 1, got {self.max_working_pixels!r}"
            )
        if self.palette is not None:
            colors = [self.palette] if isinstance(self.palette, str) else list(self.palette)
            if not colors:
                raise InputError("palette is empty: give at least one '#rrggbb' color")
            check_palette_length(len(colors), "palette")
            object.__setattr__(self, "palette", tuple(normalize_hex(c) for c in colors))


def with_palette(
    options: ColorizeOptions, asked: tuple[str, ...] | None, info: ModelInfo
) -> ColorizeOptions:
    """``options`` with the palette lock settled, the same way for the CLI and the server:
    ``asked`` colors when given; ``()`` (the user said "none") no palette at all; None the
    model's own palette (``info.palette``), if it has one."""
    palette = asked if asked is not None else (tuple(info.palette) if info.palette else None)
    return replace(options, palette=palette or None)


@dataclass(frozen=True, eq=False)
class PreparedFrame:
    """A frame ready for the model, with what finish_frame needs to rebuild it."""

    input: np.ndarray  #: float32 [4, H_pad, W_pad]: L, hint a, hint b, hint mask
    task: str
    work_size: tuple[int, int]  #: (h, w) of the working image before padding
    full_size: tuple[int, int]  #: (H, W) of the frame
    dtype: np.dtype
    channels: int  #: channels of the input frame (HxW gray counts as 1)
    alpha: np.ndarray | None  #: the frame's alpha channel, untouched
    L: np.ndarray  #: full-resolution L (0..100) float32 HxW
    base01: np.ndarray | None  #: line art: the frame in float01 (over white), for multiply
    labels: np.ndarray | None  #: region labels at full resolution (0 = lines)
    region_hint_ab: np.ndarray | None  #: [n+1, 2] mean hint ab per region
    region_hinted: np.ndarray | None  #: [n+1] bool: the region holds a hint
    region_hint_L: np.ndarray | None  #: [n+1] mean hint L per region (nan: unknown)
    #: line art with hints: the frame's distinct hint colors (hint_adoption.hint_colors),
    #: chosen once so that run_prepared's K evidence channels and finish_frame's donors agree
    hint_donors: np.ndarray | None = None
    options: ColorizeOptions = field(default_factory=ColorizeOptions)


# --------------------------------------------------------------------------- input


def _split_frame(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(color float01: HxW gray or HxWx3 RGB, alpha in the frame's dtype or None, channels)."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype not in DTYPE_SCALE:
        raise InputError(
            f"unsupported pixel type {frame.dtype}: convert the frame to uint8, uint16 or float32"
        )
    if frame.ndim == 2:
        channels = 1
    elif frame.ndim == 3 and frame.shape[2] in (1, 2, 3, 4):
        channels = frame.shape[2]
    else:
        raise InputError(
            f"unsupported frame shape {frame.shape}: use HxW gray or HxWxC with C = 1 (gray), "
            "2 (gray+alpha), 3 (RGB) or 4 (RGBA)"
        )
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError(f"the frame is empty (shape {frame.shape})")
    img = frame if frame.ndim == 3 else frame[..., None]
    alpha = img[..., -1].copy() if channels in (2, 4) else None
    color = img[..., :3] if channels >= 3 else img[..., 0]
    color01 = to_float01(color)
    if color01.dtype == np.float32 and frame.dtype == np.float32:
        np.nan_to_num(color01, copy=False, nan=0.0)
    return color01, alpha, channels


def _lightness(color01: np.ndarray) -> np.ndarray:
    if color01.ndim == 2:
        return gray_to_l(color01)
    return rgb_to_lab(color01)[..., 0].copy()


@functools.lru_cache(maxsize=4)
def _gray_tables(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(float01, L) of every value of an 8- or 16-bit gray channel: [1, 2**bits] float32.

    Built with to_float01 and gray_to_l themselves, so looking a pixel up gives the very
    value the full-frame conversion gives (tests/engine/test_pipeline.py checks it), at a
    fraction of the cost: an RGB->Lab conversion of a 1080p frame costs more than the
    whole rest of the input stage (docs/PERFORMANCE.md).
    """
    values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype).reshape(1, -1)
    f01 = to_float01(values)
    return f01, gray_to_l(f01)


def _lookup(gray: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[gray] for an 8-bit (cv2.LUT, multi-threaded) or 16-bit gray image."""
    if gray.dtype == np.uint8:
        return cv2.LUT(gray, table)
    return np.take(table.ravel(), gray)


def _read_frame(
    frame: np.ndarray, lineart: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """(L 0..100 float32 HxW, base01 or None, alpha in the frame's dtype or None, channels).

    ``base01`` (line art only): the frame over white in float01, what the lines are
    multiplied with. 8/16-bit gray frames take L and base01 from per-value tables (no
    full-frame float copy, no Lab conversion); everything else goes through _split_frame.
    """
    gray_int = (
        isinstance(frame, np.ndarray)
        and frame.dtype in (np.uint8, np.uint16)
        and frame.size > 0
        and (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 2)))
    )
    # gray+alpha line art is composited over white first: not a per-value function
    if gray_int and not (lineart and frame.ndim == 3 and frame.shape[2] == 2):
        channels = 1 if frame.ndim == 2 else frame.shape[2]
        gray = frame if frame.ndim == 2 else np.ascontiguousarray(frame[..., 0])
        alpha = frame[..., 1].copy() if channels == 2 else None
        f01, l_table = _gray_tables(frame.dtype)
        base01 = _lookup(gray, f01) if lineart else None
        return _lookup(gray, l_table), base01, alpha, channels
    color01, alpha, channels = _split_frame(frame)
    base01 = _over_white(color01, alpha) if lineart else None
    L = _lightness(base01 if lineart else color01)
    return L.astype(np.float32, copy=False), base01, alpha, channels


def _over_white(color01: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite over white: transparent pixels of a line layer are paper, whatever
    RGB they store (Krita's empty pixels are often black)."""
    if alpha is None:
        return color01
    a = to_float01(alpha)
    if color01.ndim == 3:
        a = a[..., None]
    return color01 * a + (1.0 - a)


@dataclass(frozen=True)
class _Hints:
    """The hint pixels of a frame, sparse: a frame has millions of pixels, hints dozens.

    ``idx``: flat pixel indices (ascending); ``ab`` [k, 2]; ``weight`` [k] (the mask's
    value there, never 0); ``L`` [k] or None.
    """

    idx: np.ndarray
    ab: np.ndarray
    weight: np.ndarray
    L: np.ndarray | None

    def dense(self, shape: tuple[int, int]) -> np.ndarray:
        """HxWx3 float32: mask, a x mask, b x mask (zeros off the hints)."""
        out = np.zeros((*shape, 3), np.float32)
        flat = out.reshape(-1, 3)
        flat[self.idx, 0] = self.weight
        flat[self.idx, 1:] = self.ab * self.weight[:, None]
        return out


def _hint_pixels(rgba: np.ndarray) -> np.ndarray:
    """Flat indices of the pixels of an RGBA hint image whose alpha is above 0.

    An 8/16-bit image in C order is read as one little-endian word per pixel, whose top
    byte(s) are the alpha: one contiguous comparison instead of a strided one (1080p:
    ~1 ms instead of ~3). Float alpha keeps ``> 0`` (NaN and negatives are no hint).
    """
    word = {np.dtype(np.uint8): "<u4", np.dtype(np.uint16): "<u8"}.get(rgba.dtype)
    if word is not None and rgba.flags.c_contiguous:
        bits = 8 * rgba.dtype.itemsize
        return np.flatnonzero(rgba.view(word).ravel() >= (1 << (3 * bits)))
    return np.flatnonzero(rgba[..., 3] > 0)


def _read_hints(hints, shape: tuple[int, int], want_l: bool) -> _Hints | None:
    """The hint pixels (None: no hint at all) from None, an RGBA image or a tuple."""
    h, w = shape
    if hints is None:
        return None
    if isinstance(hints, np.ndarray):
        if hints.ndim != 3 or hints.shape[2] != 4:
            raise InputError(
                f"the hint image must be RGBA (HxWx4), got shape {hints.shape}: paint hints "
                "on a layer with transparency"
            )
        if hints.shape[:2] != (h, w):
            raise InputError(
                f"the hint image is {hints.shape[1]}x{hints.shape[0]} but the frame is "
                f"{w}x{h}: hints must have the frame's size"
            )
        if hints.dtype not in DTYPE_SCALE:
            raise InputError(
                f"unsupported hint pixel type {hints.dtype}: use uint8, uint16 or float32"
            )
        # hints_from_rgba's rule (alpha > 0 marks a hint) on the hint pixels only
        idx = _hint_pixels(hints)
        if idx.size == 0:
            return None
        lab = rgb_to_lab(to_float01(hints.reshape(-1, 4)[idx, :3])[:, None, :])[:, 0]
        return _Hints(
            idx,
            np.ascontiguousarray(lab[:, 1:]),
            np.ones(idx.size, np.float32),
            lab[:, 0].copy() if want_l else None,
        )
    if isinstance(hints, tuple | list) and len(hints) in (2, 3):
        ab = np.asarray(hints[0], np.float32)
        mask = np.asarray(hints[1], np.float32)
        if ab.shape != (h, w, 2) or mask.shape != (h, w):
            raise InputError(
                f"hints must be (ab HxWx2, mask HxW) of the frame's size {w}x{h}, got "
                f"{ab.shape} and {mask.shape}"
            )
        hint_l = None
        if len(hints) == 3 and hints[2] is not None:
            hint_l = np.asarray(hints[2], np.float32)
            if hint_l.shape != (h, w):
                raise InputError(f"hint L must be HxW ({h}x{w}), got {hint_l.shape}")
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return None
        return _Hints(
            idx,
            ab.reshape(-1, 2)[idx],
            mask.ravel()[idx],
            hint_l.ravel()[idx] if hint_l is not None else None,
        )
    raise InputError(
        "hints must be None, an RGBA hint image (HxWx4) or an (ab, mask) tuple, "
        f"got {type(hints).__name__}"
    )


def _sparse_means(
    lab: np.ndarray, values: np.ndarray, weight: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """regions.region_means over chosen pixels: their labels, values [k, C] and weights
    (None: all 1); the same float64 sums, in the same order, as over the whole frame."""
    w = None if weight is None else weight.astype(np.float64)
    # unit weights (weight None): counts, and the values themselves (x 1.0 changes nothing)
    total = np.bincount(lab, weights=w, minlength=n).astype(np.float64)
    means = np.zeros((n, values.shape[1]), np.float64)
    for c in range(values.shape[1]):
        v = values[:, c].astype(np.float64)
        sums = np.bincount(lab, weights=v if w is None else v * w, minlength=n)
        np.divide(sums, total, out=means[:, c], where=total > 0)
    return means.astype(np.float32), total


def _spread_dense(
    labels: np.ndarray, hints: _Hints, hinted: np.ndarray, hint_ab: np.ndarray
) -> np.ndarray:
    """regions.spread_hints as one HxWx3 float32 (mask, a x mask, b x mask): every
    ``hinted`` region ([n+1] bool, as _region_hints, adopted regions included) takes its
    ``hint_ab`` ([n+1, 2]: the same colors finishing gives the region); hints on lines stay
    points."""
    pos = hints.weight > 0
    idx, ab = hints.idx[pos], hints.ab[pos]
    lab = np.take(labels.ravel(), idx)
    table = np.zeros((hinted.shape[0], 3), np.float32)
    table[hinted, 0] = 1.0
    table[hinted, 1:] = hint_ab[hinted]
    dense = rg.per_pixel(table, labels)
    on_lines = lab == 0
    flat = dense.reshape(-1, 3)
    flat[idx[on_lines], 0] = 1.0
    flat[idx[on_lines], 1:] = ab[on_lines]
    return dense


def _region_hints(labels: np.ndarray, hints: _Hints, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean hint ab per region [n+1, 2], hinted [n+1] bool): the weighted mean of each
    region's hints; the lines (label 0) are never hinted, they are not one area."""
    lab = np.take(labels.ravel(), hints.idx)
    hint_ab, weight = _sparse_means(lab, hints.ab, hints.weight, n)
    hinted = weight > 0
    hinted[0] = False
    return hint_ab, hinted


def _gray_level_adoption(
    labels: np.ndarray, L: np.ndarray, hinted: np.ndarray, hint_ab: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale hint adoption (hint_adoption.adopt_by_lightness): the regions up to
    CONSOLIDATE_MAX_FRACTION of the frame whose median L is near a hinted region's take
    its hint. Returns (hinted, hint_ab) with them added."""
    if not hinted.any():
        return hinted, hint_ab
    lab = labels.astype(np.intp, copy=False)
    n = hinted.shape[0]
    small = np.bincount(lab.ravel(), minlength=n) <= CONSOLIDATE_MAX_FRACTION * lab.size
    region_L = _region_medians(lab, L[..., None])[:, 0]
    return adopt_by_lightness(region_L, hinted, hint_ab, small)


def working_size(
    full_size: tuple[int, int], info: ModelInfo, options: ColorizeOptions
) -> tuple[int, int]:
    """(h, w) of the working image before padding; rules in the module doc."""
    h, w = full_size
    target = max(1, int(round(info.train_size * options.detail)))
    scale = min(1.0, target / min(h, w))
    wh, ww = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    if wh * ww > options.max_working_pixels:
        shrink = math.sqrt(options.max_working_pixels / (wh * ww))
        wh, ww = max(1, int(h * scale * shrink)), max(1, int(w * scale * shrink))
    return wh, ww


def _resize(img: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """cv2.resize to (h, w), keeping a trailing channel axis of size 1 or 2."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    out = cv2.resize(img, (w, h), interpolation=interpolation)
    if img.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def _keep_ink(L: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Line art about to be reduced to ``size`` (h, w): a min filter as wide as the
    reduction first, so that a 1 px line of a big frame reaches the model as a line about
    1 px wide and at least half ink (as training's lines do), not as a faint gray one the
    model ignores. Unchanged below a 2x reduction. Only the model input; regions use the
    full-resolution L."""
    k = int(min(L.shape[0] / size[0], L.shape[1] / size[1]))
    if k < 2:
        return L
    return cv2.erode(L, np.ones((k, k), np.uint8))


def _pad(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    ph, pw = size[0] - img.shape[0], size[1] - img.shape[1]
    if ph == 0 and pw == 0:
        return img
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, pad, mode="symmetric")  # any size, even 1 px


def prepare_frame(
    frame: np.ndarray,
    info: ModelInfo,
    hints=None,
    options: ColorizeOptions | None = None,
) -> PreparedFrame:
    """Turn a frame (and hints) into the model input at the working size.

    ``frame``: uint8 / uint16 / float32; HxW gray, HxWx1, HxWx2 (gray+alpha),
    HxWx3 RGB or HxWx4 RGBA; any size. ``hints``: None, an RGBA hint image of the
    frame's size (any supported dtype; alpha > 0 marks a hint), an (ab HxWx2, mask HxW)
    tuple, or (ab, mask, L HxW) to give line-art hints their lightness.
    Raises InputError for an unsupported frame or hints.
    """
    options = options or ColorizeOptions()
    if info.task not in TASKS:
        raise InputError(f"unknown task {info.task!r}")
    lineart = info.task == "lineart"
    L, base01, alpha, channels = _read_frame(frame, lineart)
    full = L.shape[:2]
    hints_ = _read_hints(hints, full, want_l=lineart)

    labels = hint_ab_r = hinted = hint_l_r = None
    dense = None  # HxWx3: mask, a x mask, b x mask at full resolution
    if options.regions:
        labels = rg.regions_of(L, info.task)
        if hints_ is not None:
            n = int(labels.max()) + 1
            hint_ab_r, hinted = _region_hints(labels, hints_, n)
            if hints_.L is not None:
                lab = np.take(labels.ravel(), hints_.idx)
                hint_l_r = _sparse_means(lab, hints_.L[:, None], hints_.weight, n)[0][:, 0]
                hint_l_r[~hinted] = np.nan
            if not lineart and options.adopt_hints:
                # before the model, which then sees the adopted colors as spread hints
                hinted, hint_ab_r = _gray_level_adoption(labels, L, hinted, hint_ab_r)
            dense = _spread_dense(labels, hints_, hinted, hint_ab_r)
    elif hints_ is not None:
        dense = hints_.dense(full)

    work = working_size(full, info, options)
    m = info.multiple_of
    padded = (math.ceil(work[0] / m) * m, math.ceil(work[1] / m) * m)
    L_w = _resize(_keep_ink(L, work) if lineart else L, work, cv2.INTER_AREA)
    ab_w = np.zeros((*work, 2), np.float32)
    mask_w = np.zeros(work, np.float32)
    if dense is not None:
        # area-average the hinted colors and the mask alike (one 3-channel resize), then
        # keep any hinted pixel: a 3x3 hint must survive an 8x reduction
        small = _resize(dense, work, cv2.INTER_AREA)
        m_w = small[..., 0]
        hit = m_w > 1e-6
        ab_w[hit] = small[..., 1:][hit] / m_w[hit][:, None]
        mask_w = hit.astype(np.float32)
    x = np.stack(
        [
            _pad(L_w, padded),
            _pad(ab_w[..., 0], padded),
            _pad(ab_w[..., 1], padded),
            _pad(mask_w, padded),
        ]
    ).astype(np.float32, copy=False)
    return PreparedFrame(
        input=np.ascontiguousarray(x),
        task=info.task,
        work_size=work,
        full_size=full,
        dtype=frame.dtype,
        channels=channels,
        alpha=alpha,
        L=L,
        base01=base01,
        labels=labels,
        region_hint_ab=hint_ab_r,
        region_hinted=hinted,
        region_hint_L=hint_l_r,
        # only line-art regions adopt a hint color (_adopts_hints)
        hint_donors=hint_colors(hint_ab_r, hinted) if lineart and hinted is not None else None,
        options=options,
    )


# --------------------------------------------------------------------------- running


def run_prepared(
    model: Model, prepared: Sequence[PreparedFrame], batch_size: int = DEFAULT_BATCH_SIZE
) -> list[np.ndarray]:
    """Run the model on prepared frames; returns each frame's prediction [C, H_pad, W_pad].

    Frames of the same padded working size share model calls of up to ``batch_size``
    inputs (a frame with ``mirror_average`` counts twice: it and its mirror, at least one
    frame per call); predictions come back in the order of ``prepared``. A frame with a palette
    lock, run by a model with color classes (``info.ab_classes``), gets M more channels
    after its C: each of its M palette colors' evidence (palette.palette_evidence), from
    which finish_frame decodes the lock. A line-art frame with hints and no palette
    (``_adopts_hints``: ColorizeOptions.adopt_hints and regions) gets K+1 more: the
    evidence of its K distinct hint colors and of each pixel's own region color
    (hint_adoption.adoption_evidence), computed here beside the model, since only here
    are the class logits at hand.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    for p in prepared:
        if p.task != model.info.task:
            raise InputError(
                f"a frame prepared for task {p.task!r} cannot run on the {model.info.task} "
                f"model {model.info.name!r}"
            )
    groups: dict[tuple[tuple[int, ...], bool], list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault((p.input.shape, p.options.mirror_average), []).append(i)
    out: list[np.ndarray | None] = [None] * len(prepared)
    classes = model.info.ab_classes
    centers = np.asarray(classes, np.float32) if classes is not None else None
    for (_, mirror), idx in groups.items():
        # a mirrored chunk is one call of twice its frames: halve it to keep the bound
        step = max(1, batch_size // 2) if mirror else batch_size
        for start in range(0, len(idx), step):
            chunk = idx[start : start + step]
            batch = np.stack([prepared[i].input for i in chunk])
            want_logits = classes is not None and any(_wants_evidence(prepared[i]) for i in chunk)
            run = _run_mirror_averaged if mirror else _run_once
            pred, logits = run(model, batch, want_logits)
            for j, i in enumerate(chunk):
                p = prepared[i]
                if logits is None or not _wants_evidence(p):
                    out[i] = pred[j]
                    continue
                h, w = p.work_size
                if p.options.palette is not None:
                    ev_w = palette_evidence(
                        logits[j, :h, :w], centers, _palette_arrays(p.options.palette)[0]
                    )
                else:
                    ev_w = _hint_evidence(p, pred[j], logits[j], centers)
                c = pred.shape[1]
                full = np.zeros((c + ev_w.shape[0], *pred.shape[2:]), np.float32)
                full[:c] = pred[j]
                full[c:, :h, :w] = ev_w
                out[i] = full
    return out  # type: ignore[return-value]


def _run_once(
    model: Model, batch: np.ndarray, with_logits: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The model on ``batch`` [N, 4, H, W]: (prediction [N, C, H, W], class logits
    [N, H, W, Q] when ``with_logits``, else None)."""
    if with_logits:
        return model.run_with_class_logits(batch)
    return model.run(batch), None


def _run_mirror_averaged(
    model: Model, batch: np.ndarray, with_logits: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``_run_once`` on ``batch`` and on its left-right mirror in one call; each output the
    mean of the two, the mirror's flipped back. The whole padded input is mirrored, so the
    mirror's padding is at the left and lines up again once flipped."""
    n = batch.shape[0]
    pred, logits = _run_once(model, np.concatenate([batch, batch[..., ::-1]]), with_logits)
    pred = 0.5 * (pred[:n] + pred[n:, :, :, ::-1])
    if logits is not None:
        logits = 0.5 * (logits[:n] + logits[n:, :, ::-1, :])
    return pred, logits


def _adopts_hints(p: PreparedFrame) -> bool:
    """Whether unhinted line-art regions may adopt a hint's color (ColorizeOptions)."""
    return (
        p.task == "lineart"
        and p.options.adopt_hints
        and p.options.palette is None
        and p.labels is not None
        and p.region_hinted is not None
        and bool(p.region_hinted.any())
    )


def _wants_evidence(p: PreparedFrame) -> bool:
    """Whether finishing reads class evidence (palette lock or hint adoption)."""
    return p.options.palette is not None or _adopts_hints(p)


def _labels_at(labels: np.ndarray, h: int, w: int) -> np.ndarray:
    """Full-resolution region labels sampled at an h x w grid (pixel centres)."""
    H, W = labels.shape
    rows = np.minimum(((np.arange(h) + 0.5) * (H / h)).astype(np.intp), H - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * (W / w)).astype(np.intp), W - 1)
    return np.ascontiguousarray(labels[rows][:, cols])


def _hint_evidence(
    p: PreparedFrame, pred: np.ndarray, logits: np.ndarray, centers: np.ndarray
) -> np.ndarray:
    """[K+1, h, w] hint_adoption.adoption_evidence of a frame at its working size: the
    own color of a region is its median predicted ab there; K = the frame's distinct hint
    colors (hint_adoption.hint_colors)."""
    assert p.labels is not None and p.region_hinted is not None and p.region_hint_ab is not None
    h, w = p.work_size
    small = _labels_at(p.labels, h, w)
    n = p.region_hinted.shape[0]
    own = np.zeros((n, 2), np.float32)
    med = rg.region_medians(small, np.ascontiguousarray(pred[1:3, :h, :w].transpose(1, 2, 0)))
    own[: med.shape[0]] = med
    assert p.hint_donors is not None
    donors = p.hint_donors
    # only the unhinted regions' pixels: the hinted ones (and the lines) adopt nothing
    need = ~p.region_hinted
    need[0] = False
    return adoption_evidence(logits[:h, :w], centers, small, own, p.region_hint_ab[donors], need)


def colorize_frame(
    frame: np.ndarray,
    model: Model,
    hints=None,
    options: ColorizeOptions | None = None,
) -> np.ndarray:
    """Colorize one frame: prepare_frame + run_prepared + finish_frame."""
    prepared = prepare_frame(frame, model.info, hints, options)
    return finish_frame(prepared, run_prepared(model, [prepared])[0])


# --------------------------------------------------------------------------- output


def _region_medians(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Median of values (HxWxC) per region ([n+1, C]); strided sampling on huge frames,
    with the region mean for a region too small to be sampled."""
    flat = labels.ravel()
    if flat.size <= MEDIAN_MAX_SAMPLES:
        return rg.region_medians(labels, values)
    vals = values.reshape(flat.size, -1)
    n = int(flat.max()) + 1
    step = math.ceil(flat.size / MEDIAN_MAX_SAMPLES)
    s_lab, s_val = flat[::step], vals[::step]
    med = np.zeros((n, vals.shape[1]), np.float32)
    part = rg.region_medians(s_lab, s_val)
    med[: part.shape[0]] = part
    missing = np.bincount(s_lab, minlength=n) == 0
    if missing.any():  # small regions the stride missed: their mean, from their own pixels
        rest = np.flatnonzero(np.take(missing, flat))
        sub = np.take(flat, rest)
        means, _ = rg.region_means(sub, np.take(vals, rest, axis=0), np.ones(sub.size, np.float32))
        full = np.zeros_like(med)
        full[: means.shape[0]] = means
        med[missing] = full[missing]
    return med


def _big_region_means(labels: np.ndarray, values: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (HxWxC float32, C <= 4) over each region marked in ``which``
    ([n+1] bool); [n+1, C] float32, zeros elsewhere.

    For the few large regions anchoring moves (each above CONSOLIDATE_MAX_FRACTION of the
    frame, so at most three): OpenCV's masked mean (float64 accumulation) costs one
    comparison and one pass per region, where a bincount over a million selected pixels
    cost several (docs/PERFORMANCE.md).
    """
    means = np.zeros((which.shape[0], values.shape[-1]), np.float32)
    lab32 = labels.astype(np.int32, copy=False)
    for r in np.flatnonzero(which):
        mask = cv2.compare(lab32, int(r), cv2.CMP_EQ)
        means[r] = np.asarray(cv2.mean(values, mask=mask)[: values.shape[-1]], np.float64)
    return means


#: Bounds of cv2.inRange that pass exactly the values strictly inside (0, 1): the
#: smallest normal float32 and the largest float32 below 1.
_INSIDE_LO = float(np.finfo(np.float32).tiny)
_INSIDE_HI = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


def _lab_to_rgb_keep_l(lab: np.ndarray) -> np.ndarray:
    """sRGB float01 of Lab HxWx3 (float32), reducing chroma (hue kept) where clipping to
    the sRGB gamut would change L, so the output's L stays the frame's L.

    Light paper with a color cast puts a fifth of a frame out of gamut, so the chroma
    scale is found once per distinct color (L in 1/4 units, ab in 1/2 units; with a
    safety margin) by bisection, not once per pixel.
    """
    lab = np.ascontiguousarray(lab, dtype=np.float32)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    # only a clipped pixel (a channel at or beyond 0 or 1) can be out of gamut: check those
    inside = cv2.inRange(rgb, (_INSIDE_LO,) * 3, (_INSIDE_HI,) * 3)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    edge = np.flatnonzero(inside.ravel() == 0)
    if edge.size == 0:
        return rgb
    flat_lab, flat_rgb = lab.reshape(-1, 3), rgb.reshape(-1, 3)
    err = np.abs(rgb_to_lab(flat_rgb[edge][:, None, :])[:, 0, 0] - flat_lab[edge, 0])
    bad = edge[err > _GAMUT_TOL]
    if bad.size == 0:
        return rgb
    bad_lab = flat_lab[bad]
    q = np.rint(bad_lab * np.array([4.0, 2.0, 2.0], np.float32)).astype(np.int64)
    keys, inverse = np.unique(
        (q[:, 0] << 22) | ((q[:, 1] + 1024) << 11) | (q[:, 2] + 1024), return_inverse=True
    )
    centres = np.stack(
        [(keys >> 22) / 4.0, (((keys >> 11) & 2047) - 1024) / 2.0, ((keys & 2047) - 1024) / 2.0],
        axis=1,
    ).astype(np.float32)[:, None, :]
    lo = np.zeros((centres.shape[0], 1), np.float32)
    hi = np.ones_like(lo)
    for _ in range(8):  # bisection on the chroma scale: gray (scale 0) is in gamut
        mid = (lo + hi) / 2
        trial = centres.copy()
        trial[:, 0, 1:] *= mid
        ok = np.abs(rgb_to_lab(lab_to_rgb(trial))[..., 0] - trial[..., 0]) <= _GAMUT_TOL / 2
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    fixed = bad_lab.copy()
    fixed[:, 1:] *= lo[inverse.ravel()]
    flat_rgb[bad] = lab_to_rgb(fixed[:, None, :])[:, 0, :]
    return rgb


def _assemble_strips(p: PreparedFrame, rgb_rows: Callable[[slice], np.ndarray]) -> np.ndarray:
    """Build the output strip by strip: ``rgb_rows(rows)`` gives float01 RGB of those
    rows; converted to the input's dtype, alpha restored (gray in -> RGB, gray+alpha ->
    RGBA). Strips bound the float temporaries of huge frames (8K: ~4 MPx less each)."""
    H, W = p.full_size
    out = np.empty((H, W, 4 if p.alpha is not None else 3), p.dtype)
    step = max(1, STRIP_PIXELS // W)
    for y in range(0, H, step):
        rows = slice(y, min(H, y + step))
        rgb = rgb_rows(rows)
        if p.dtype == np.uint8:
            # from_float01's numbers without its clip: the strips are within [0, 1] (clipped
            # Lab->RGB, palette colors, products of those with base01), and above 1 saturates
            out[rows, :, :3] = cv2.convertScaleAbs(
                rgb.reshape(rgb.shape[0], -1), alpha=255.0
            ).reshape(rgb.shape)
        else:
            out[rows, :, :3] = from_float01(rgb, p.dtype)
    if p.alpha is not None:
        out[..., 3] = p.alpha
    return out


def _palette_arrays(palette: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    lab = hex_to_lab(list(palette))
    rgb = np.array(
        [[int(c[i : i + 2], 16) / 255.0 for i in (1, 3, 5)] for c in palette], np.float32
    )
    return lab, rgb


def finish_frame(prepared: PreparedFrame, prediction: np.ndarray) -> np.ndarray:
    """Turn the model's prediction for one frame ([C, H_pad, W_pad]) into the output frame.

    Same height/width and dtype as the input; RGB (gray/RGB in) or RGBA (alpha in,
    alpha restored exactly). Grayscale: the frame's own L with the predicted ab
    (region-consistent hue, palette-locked hue/chroma when asked). Line art: a flat
    fill (one color per region: hint, else median prediction, or a hint color the
    prediction's class evidence backs (hint_adoption); palette-locked when asked) with
    the frame's lines multiplied on top, or the fill alone ('fill').
    """
    pred = np.asarray(prediction, np.float32)
    if pred.ndim == 4 and pred.shape[0] == 1:
        pred = pred[0]
    channels = TASK_OUTPUTS[prepared.task][1]
    palette = prepared.options.palette
    allowed: tuple[int, ...] = (channels,)
    if palette:
        allowed = (channels, channels + len(palette))
    elif _adopts_hints(prepared):  # without color classes the model sends no evidence
        assert prepared.hint_donors is not None
        allowed = (channels, channels + prepared.hint_donors.size + 1)
    if pred.ndim != 3 or pred.shape[0] not in allowed or pred.shape[1:] != prepared.input.shape[1:]:
        raise InputError(
            f"prediction shape {pred.shape} does not match the prepared frame "
            f"([C, {prepared.input.shape[1]}, {prepared.input.shape[2]}] with C in "
            f"{', '.join(map(str, allowed))})"
        )
    h, w = prepared.work_size
    evidence = pred[channels:, :h, :w] if pred.shape[0] > channels else None
    # a copy (the finishing works in place on it), upsampled interleaved: OpenCV's
    # 2-channel INTER_LINEAR rounds differently from its 1-channel one
    pred = np.array(pred[:channels, :h, :w].transpose(1, 2, 0), order="C")
    pred = _resize(pred, prepared.full_size, cv2.INTER_LINEAR)
    if prepared.task == "grayscale":
        return _finish_grayscale(prepared, pred, evidence)
    return _finish_lineart(prepared, pred, evidence)


def _finish_grayscale(
    p: PreparedFrame, ab: np.ndarray, evidence: np.ndarray | None = None
) -> np.ndarray:
    """The frame's L with the predicted ab (HxWx2): hinted regions anchored to their hint,
    regions below CONSOLIDATE_MAX_FRACTION of the frame one color (their hint, else their
    median prediction), the rest per pixel; then the gamut check. With a palette: one
    palette color per region (_palette_regions), never per pixel."""
    opts = p.options
    if opts.palette is not None:  # one palette color per region, the frame's L inside
        # (hinted regions take their hint's entry, so anchoring changes nothing here)
        pal_ab = _palette_arrays(opts.palette)[0][:, 1:]
        filled, entry = _palette_regions(p, cv2.merge([p.L, np.ascontiguousarray(ab)]), evidence)
        return _assemble_strips(
            p,
            lambda sl: _lab_to_rgb_keep_l(
                cv2.merge(
                    [p.L[sl], np.ascontiguousarray(np.take(pal_ab, entry[filled[sl]], axis=0))]
                )
            ),
        )
    # intp labels once: every np.take / bincount would convert int32 indices again
    labels = p.labels.astype(np.intp) if p.labels is not None else None
    table = None  # per region: keep the pixels' own values (x1) or not (x0); then added
    if labels is not None:
        n = int(labels.max()) + 1
        counts = np.bincount(labels.ravel(), minlength=n)
        small = counts <= CONSOLIDATE_MAX_FRACTION * labels.size
        small[0] = False  # lines: finished as their nearest region (_lines_as_neighbours)
        hinted = p.region_hinted
        table = np.zeros((n, 4), np.float32)  # keep, keep, add a, add b
        table[:, :2] = (~small)[:, None]
        if opts.anchor_hints and hinted is not None:
            # anchoring shows only where pixels keep their own values (a small region
            # takes its hint): shift those regions so that their mean is the hint
            moved = hinted & ~small
            moved[0] = False
            if moved.any():
                means = _big_region_means(p.labels, ab, moved)
                table[moved, 2:] = p.region_hint_ab[moved] - means[moved]
        if small.any():
            med = _region_medians(labels, ab)
            if hinted is not None:
                med[hinted] = p.region_hint_ab[hinted]
            table[small, 2:] = med[small]
        if not (small.any() or table[:, 2:].any()):
            table = None
        labels, ab = _lines_as_neighbours(labels, ab)

    def rows(sl: slice) -> np.ndarray:
        ab_s = ab[sl]
        if table is not None:
            # ab x keep + add: ab + shift where pixels keep their values, the region's
            # color where they do not (ab x 0 + color), exactly; one lookup, no np.where
            # two contiguous HxWx2 lookups: numpy is slow on 2- or 3-long inner loops
            lab_s = labels[sl]
            ab_s *= rg.per_pixel(table[:, :2], lab_s)  # ab is finish_frame's own array
            ab_s += rg.per_pixel(table[:, 2:], lab_s)
        return _lab_to_rgb_keep_l(cv2.merge([p.L[sl], ab_s]))

    return _assemble_strips(p, rows)


def _lines_as_neighbours(labels: np.ndarray, ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale: give each line pixel (label 0: an outline, or the edge between two tones)
    the label and predicted ab of the nearest pixel off the lines, so that it is finished
    as that pixel is (the region's color), as the flat fill colors lines. Returns (labels,
    ab), both rewritten in place (they are the finishing's own arrays). Measured better
    than the model's own colors on the lines (docs/TRAINING.md, "Gray levels that match a
    hint")."""
    lines = labels == 0
    if not lines.any() or lines.all():
        return labels, ab
    on_lines, src = rg.line_sources(lines)
    flat = labels.reshape(-1)
    flat[on_lines] = np.take(flat, src)
    pixels = ab.reshape(-1, 2)
    pixels[on_lines] = np.take(pixels, src, axis=0)
    return flat.reshape(labels.shape), pixels.reshape(ab.shape)


def _region_rgb(region_lab: np.ndarray) -> np.ndarray:
    """float01 RGB of one Lab color per region."""
    return lab_to_rgb(region_lab[:, None, :].astype(np.float32))[:, 0, :]


def _palette_regions(
    p: PreparedFrame, lab: np.ndarray, evidence: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Palette lock by region: (labels with each line pixel given its nearest region,
    palette index per label). Regions come from the frame even when ``options.regions``
    is off: a palette lock never snaps single pixels. With ``evidence`` ([M, h, w] at the
    working size, see run_prepared) a region takes the palette color its predicted color
    distribution supports most (palette.snap_regions_by_evidence); else the one nearest
    its median prediction (palette.snap_regions_to_palette)."""
    if p.labels is None:
        p = replace(p, labels=rg.regions_of(p.L, p.task))
    grayscale = p.task == "grayscale"
    region_lab = (
        _region_medians(p.labels.astype(np.intp), lab) if grayscale else _lineart_region_lab(p, lab)
    )
    pal_lab = _palette_arrays(p.options.palette)[0]
    hints = {"region_hint_ab": p.region_hint_ab, "region_hinted": p.region_hinted}
    if evidence is None:
        entry = snap_regions_to_palette(region_lab, pal_lab, own_lightness=grayscale, **hints)
        return rg.fill_labels(p.labels), entry
    region_ev, has = _region_evidence(p.labels, evidence, region_lab.shape[0])
    entry = snap_regions_by_evidence(
        region_lab, region_ev, has, pal_lab, own_lightness=grayscale, **hints
    )
    return rg.fill_labels(p.labels), entry


def _region_evidence(
    labels: np.ndarray, evidence: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each region's mean of ``evidence`` ([M, h, w] at the working size) over its pixels
    there: ([n, M], has [n] bool: the region had such pixels; label 0, lines, never)."""
    m, h, w = evidence.shape
    small = _labels_at(labels, h, w)
    means, weight = rg.region_means(small, evidence.reshape(m, -1).T, np.ones((h, w), np.float32))
    region_ev = np.zeros((n, m), np.float32)
    has = np.zeros(n, bool)
    region_ev[: means.shape[0]] = means
    has[: weight.shape[0]] = weight > 0
    has[0] = False  # line pixels are not a region
    return region_ev, has


def _lineart_from_regions(p: PreparedFrame, region_rgb: np.ndarray, output: str) -> np.ndarray:
    """One color per region; line pixels take the nearest region's color (the fill has
    no gaps under the lines), then the lines go on top (or not, for 'fill')."""
    filled = rg.fill_labels(p.labels)
    return _assemble_strips(
        p, lambda sl: _compose_lines(rg.per_pixel(region_rgb, filled[sl]), p, output, sl)
    )


def _finish_lineart(
    p: PreparedFrame, lab: np.ndarray, evidence: np.ndarray | None = None
) -> np.ndarray:
    opts = p.options
    if opts.palette is not None:
        filled, entry = _palette_regions(p, lab, evidence)
        pal_rgb = _palette_arrays(opts.palette)[1]
        return _assemble_strips(
            p,
            lambda sl: _compose_lines(
                np.take(pal_rgb, entry[filled[sl]], axis=0), p, opts.output, sl
            ),
        )
    if p.labels is not None:
        region_lab = _lineart_region_lab(p, lab)
        if evidence is not None and _adopts_hints(p):
            region_ev, has = _region_evidence(p.labels, evidence, region_lab.shape[0])
            assert p.hint_donors is not None
            region_lab = adopt_hint_colors(
                region_lab, region_ev, has, p.region_hinted, p.hint_donors
            )
        return _lineart_from_regions(p, _region_rgb(region_lab), opts.output)

    def rows(sl: slice) -> np.ndarray:
        return _compose_lines(lab_to_rgb(lab[sl]), p, opts.output, sl)

    return _assemble_strips(p, rows)


def _lineart_region_lab(p: PreparedFrame, lab: np.ndarray) -> np.ndarray:
    """One Lab color per region: its hint (with the hint's L when known), else the
    median prediction."""
    region_lab = _region_medians(p.labels.astype(np.intp), lab)
    if p.region_hinted is not None:
        hinted = p.region_hinted
        region_lab[hinted, 1:] = p.region_hint_ab[hinted]
        if p.region_hint_L is not None:
            known = hinted & np.isfinite(p.region_hint_L)
            region_lab[known, 0] = p.region_hint_L[known]
    return region_lab


def _compose_lines(fill: np.ndarray, p: PreparedFrame, output: str, rows: slice) -> np.ndarray:
    """'color': the frame's lines multiplied over the fill (anti-aliased edges stay
    soft, colored lines keep their color); 'fill': the fill alone."""
    if output == "fill":
        return fill
    base = p.base01[rows]
    fill *= base if base.ndim == 3 else base[..., None]  # fill is this strip's own array
    return fill


def _finishing_frame(
    frame: np.ndarray,
    task: str,
    L: np.ndarray,
    base01: np.ndarray | None,
    alpha: np.ndarray | None,
    channels: int,
    labels: np.ndarray | None = None,
) -> PreparedFrame:
    """A PreparedFrame that only finishing reads (no model input, full-size work): for
    the outputs made without the model (flat fill, keyframe colors)."""
    full = L.shape[:2]
    return PreparedFrame(
        input=np.zeros((4, 1, 1), np.float32),
        task=task,
        work_size=full,
        full_size=full,
        dtype=frame.dtype,
        channels=channels,
        alpha=alpha,
        L=L,
        base01=base01,
        labels=labels,
        region_hint_ab=None,
        region_hinted=None,
        region_hint_L=None,
    )


def flat_fill_frame(
    frame: np.ndarray,
    task: str,
    hints=None,
    output: str = "color",
    adopt_gray_levels: bool = False,
) -> np.ndarray:
    """The non-learned baseline as a full frame: each region the mean of its hints.

    Regions from the frame's full-res L (regions.regions_of); unhinted regions stay
    gray. Grayscale: the frame's own L with the filled ab. Line art: each hinted region
    takes its hint color (L from an RGBA hint or (ab, mask, L); else DEFAULT_FILL_L),
    unhinted regions keep their own lightness (paper), lines multiplied on top.
    ``output``: 'color' or 'fill' (line art without its lines), as ColorizeOptions.
    ``adopt_gray_levels`` (grayscale only): small unhinted regions of a hinted region's
    gray level take its color too, as they do before the model with ``adopt_hints``: that
    non-learned rule alone, for benchmarks/hint_adoption.py.
    Output layout and dtype as finish_frame's.
    """
    if adopt_gray_levels and task != "grayscale":
        raise InputError("adopt_gray_levels is for grayscale frames only")
    if output not in OUTPUTS:
        raise InputError(f"output must be 'color' or 'fill', got {output!r}")
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")
    lineart = task == "lineart"
    L, base01, alpha, channels = _read_frame(frame, lineart)
    full = L.shape[:2]
    hints_ = _read_hints(hints, full, want_l=lineart)
    labels = rg.regions_of(L, task)
    n = int(labels.max()) + 1
    p = _finishing_frame(frame, task, L, base01, alpha, channels, labels=labels)
    if not lineart:
        if hints_ is None:
            filled = np.zeros((*full, 2), np.float32)
        else:
            hint_ab, hinted = _region_hints(labels, hints_, n)
            if adopt_gray_levels:
                hinted, hint_ab = _gray_level_adoption(labels, L, hinted, hint_ab)
            filled = rg.fill_lines(labels, _spread_dense(labels, hints_, hinted, hint_ab)[..., 1:])
        return _assemble_strips(
            p, lambda sl: _lab_to_rgb_keep_l(cv2.merge([L[sl], np.ascontiguousarray(filled[sl])]))
        )
    own_l, _ = rg.region_means(labels, L[..., None], np.ones(full, np.float32))
    region_lab = np.zeros((n, 3), np.float32)
    hinted = np.zeros(n, bool)
    if hints_ is not None:
        lab = np.take(labels.ravel(), hints_.idx)
        L_at = np.take(L.ravel(), hints_.idx)
        region_lab, weight = _sparse_means(
            lab, np.column_stack([L_at, hints_.ab]), hints_.weight, n
        )
        hinted = weight > 0
        hinted[0] = False  # lines are not one area (fill_lines colors them)
    region_lab[~hinted] = 0.0
    region_lab[~hinted, 0] = own_l[~hinted, 0]
    if hints_ is not None and hints_.L is not None:
        region_lab[hinted, 0] = _sparse_means(lab, hints_.L[:, None], hints_.weight, n)[0][
            hinted, 0
        ]
    else:
        region_lab[hinted, 0] = DEFAULT_FILL_L
    return _lineart_from_regions(p, _region_rgb(region_lab), output)


def grayscale_with_ab(frame: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """A grayscale frame colored with ``ab`` (HxWx2, Lab units): its own L kept exactly
    as the colorizer keeps it (chroma reduced where sRGB cannot hold it), in the
    colorizer's output layout and dtype."""
    L, _, alpha, channels = _read_frame(frame, lineart=False)
    full = L.shape[:2]
    if ab.shape != (*full, 2):
        raise InputError(f"ab must be HxWx2 of the frame's size {full}, got {ab.shape}")
    p = _finishing_frame(frame, "grayscale", L, None, alpha, channels)
    ab = np.asarray(ab, np.float32)
    return _assemble_strips(
        p, lambda sl: _lab_to_rgb_keep_l(cv2.merge([L[sl], np.ascontiguousarray(ab[sl])]))
    )


def lineart_with_fill(frame: np.ndarray, fill_lab: np.ndarray, output: str = "color") -> np.ndarray:
    """A line-art frame over a fill (Lab HxWx3): the frame's lines multiplied on top
    ('color') or the fill alone ('fill'), in the colorizer's output layout and dtype."""
    if output not in OUTPUTS:
        raise InputError(f"output must be 'color' or 'fill', got {output!r}")
    L, base01, alpha, channels = _read_frame(frame, lineart=True)
    full = L.shape[:2]
    if fill_lab.shape != (*full, 3):
        raise InputError(f"fill must be HxWx3 of the frame's size {full}, got {fill_lab.shape}")
    p = _finishing_frame(frame, "lineart", L, base01, alpha, channels)
    fill = np.asarray(fill_lab, np.float32)
    return _assemble_strips(p, lambda sl: _compose_lines(lab_to_rgb(fill[sl]), p, output, sl))


def frame_lightness(frame: np.ndarray, task: str) -> np.ndarray:
    """The full-resolution L (0..100, HxW float32) the pipeline cuts regions from.

    Line art is composited over white first (transparent pixels are paper); a grayscale
    frame's L is its own. Keyframe matching (engine/keyframes.py) uses it so that its
    regions are exactly the colorizer's.
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")
    return _read_frame(frame, lineart=task == "lineart")[0]
