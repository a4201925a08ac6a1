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
  4. if the working size then has more than ``max_working_pixels`` pixels it is
     scaled down further to fit (memory bound for 8K frames / high detail);
  5. the working image is padded at the bottom/right to multiples of the model's
     ``multiple_of`` by mirror reflection (works for any size, 1x1 included).
Only ab (and L for line art) are upsampled back; the frame's own full-resolution L
stays (richzhang's rule), and values are clipped before the integer conversion.
"""

from __future__ import annotations

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
from inkhue_engine.hints import hints_from_rgba
from inkhue_engine.model import TASK_OUTPUTS, TASKS, Model, ModelInfo
from inkhue_engine.palette import normalize_hex, snap_regions_to_palette

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
    """

    detail: float = 1.0
    regions: bool = True
    output: str = "color"
    palette: tuple[str, ...] | None = None
    max_working_pixels: int = MAX_WORKING_PIXELS
    anchor_hints: bool = True

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
            object.__setattr__(self, "palette", tuple(normalize_hex(c) for c in colors))


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


def _over_white(color01: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite over white: transparent pixels of a line layer are paper, whatever
    RGB they store (Krita's empty pixels are often black)."""
    if alpha is None:
        return color01
    a = to_float01(alpha)
    if color01.ndim == 3:
        a = a[..., None]
    return color01 * a + (1.0 - a)


def _read_hints(
    hints, shape: tuple[int, int], want_l: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(ab HxWx2, mask HxW, hint L HxW or None) from None, an RGBA image or a tuple."""
    h, w = shape
    if hints is None:
        return np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32), None
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
        ab, mask = hints_from_rgba(hints)
        hint_l = rgb_to_lab(to_float01(hints[..., :3]))[..., 0] if want_l else None
        return ab, mask, hint_l
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
        return ab, mask, hint_l
    raise InputError(
        "hints must be None, an RGBA hint image (HxWx4) or an (ab, mask) tuple, "
        f"got {type(hints).__name__}"
    )


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
    color01, alpha, channels = _split_frame(frame)
    full = color01.shape[:2]
    lineart = info.task == "lineart"
    base01 = _over_white(color01, alpha) if lineart else None
    L = _lightness(base01 if lineart else color01)
    ab, mask, hint_l = _read_hints(hints, full, want_l=lineart)

    labels = hint_ab_r = hinted = hint_l_r = None
    if options.regions:
        labels = rg.regions_of(L, info.task)
        if mask.any():
            hint_ab_r, weight = rg.region_means(labels, ab, mask)
            hinted = weight > 0
            hinted[0] = False  # lines are not one area
            if hint_l is not None:
                hint_l_r = rg.region_means(labels, hint_l[..., None], mask)[0][:, 0]
                hint_l_r[~hinted] = np.nan
            ab, mask = rg.spread_hints(labels, ab, mask)

    work = working_size(full, info, options)
    m = info.multiple_of
    padded = (math.ceil(work[0] / m) * m, math.ceil(work[1] / m) * m)
    L_w = _resize(L, work, cv2.INTER_AREA)
    if mask.any():
        # area-average the hinted colors and the mask alike, then keep any hinted pixel:
        # a 3x3 hint must survive an 8x reduction
        m_w = _resize(mask, work, cv2.INTER_AREA)
        abm_w = _resize(ab * mask[..., None], work, cv2.INTER_AREA)
        hit = m_w > 1e-6
        ab_w = np.zeros((*work, 2), np.float32)
        ab_w[hit] = abm_w[hit] / m_w[hit][:, None]
        mask_w = hit.astype(np.float32)
    else:
        ab_w = np.zeros((*work, 2), np.float32)
        mask_w = np.zeros(work, np.float32)
    x = np.stack(
        [_pad(L_w, padded), _pad(ab_w[..., 0], padded), _pad(ab_w[..., 1], padded),
         _pad(mask_w, padded)]
    ).astype(np.float32, copy=False)
    return PreparedFrame(
        input=np.ascontiguousarray(x),
        task=info.task,
        work_size=work,
        full_size=full,
        dtype=frame.dtype,
        channels=channels,
        alpha=alpha,
        L=L.astype(np.float32, copy=False),
        base01=base01,
        labels=labels,
        region_hint_ab=hint_ab_r,
        region_hinted=hinted,
        region_hint_L=hint_l_r,
        options=options,
    )


# --------------------------------------------------------------------------- running


def run_prepared(
    model: Model, prepared: Sequence[PreparedFrame], batch_size: int = DEFAULT_BATCH_SIZE
) -> list[np.ndarray]:
    """Run the model on prepared frames; returns each frame's prediction [C, H_pad, W_pad].

    Frames of the same padded working size share model calls of up to ``batch_size``
    frames; predictions come back in the order of ``prepared``.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    for p in prepared:
        if p.task != model.info.task:
            raise InputError(
                f"a frame prepared for task {p.task!r} cannot run on the {model.info.task} "
                f"model {model.info.name!r}"
            )
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.input.shape, []).append(i)
    out: list[np.ndarray | None] = [None] * len(prepared)
    for idx in groups.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            pred = model.run(np.stack([prepared[i].input for i in chunk]))
            for j, i in enumerate(chunk):
                out[i] = pred[j]
    return out  # type: ignore[return-value]


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
    """Median of values per region ([n+1, C]); strided sampling on huge frames, with
    the region mean for a region too small to be sampled."""
    flat = labels.ravel()
    vals = values.reshape(flat.size, -1)
    if flat.size <= MEDIAN_MAX_SAMPLES:
        return rg.region_medians(labels, values)
    n = int(flat.max()) + 1
    step = math.ceil(flat.size / MEDIAN_MAX_SAMPLES)
    s_lab, s_val = flat[::step], vals[::step]
    med = np.zeros((n, vals.shape[1]), np.float32)
    part = rg.region_medians(s_lab, s_val)
    med[: part.shape[0]] = part
    missing = np.bincount(s_lab, minlength=n) == 0
    if missing.any():  # small regions the stride missed: their mean, from their own pixels
        rest = missing[flat]
        sub = flat[rest]
        means, _ = rg.region_means(sub, vals[rest], np.ones(sub.size, np.float32))
        full = np.zeros_like(med)
        full[: means.shape[0]] = means
        med[missing] = full[missing]
    return med


def _lab_to_rgb_keep_l(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """sRGB float01 of (L, ab), reducing chroma (hue kept) where clipping to the sRGB
    gamut would change L, so the output's L stays the frame's L.

    Light paper with a color cast puts a fifth of a frame out of gamut, so the chroma
    scale is found once per distinct color (L in 1/4 units, ab in 1/2 units; with a
    safety margin) by bisection, not once per pixel.
    """
    lab = np.concatenate([L[..., None], ab], axis=-1).astype(np.float32)
    rgb = lab_to_rgb(lab)
    flat_lab, flat_rgb = lab.reshape(-1, 3), rgb.reshape(-1, 3)
    # only a clipped pixel (a channel at 0 or 1) can be out of gamut: check those
    edge = np.flatnonzero(((flat_rgb <= 0.0) | (flat_rgb >= 1.0)).any(axis=-1))
    if edge.size == 0:
        return rgb
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
        out[rows, :, :3] = from_float01(rgb_rows(rows), p.dtype)
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
    fill (one color per region: hint, else median prediction; palette-locked when
    asked) with the frame's lines multiplied on top, or the fill alone ('fill').
    """
    pred = np.asarray(prediction, np.float32)
    if pred.ndim == 4 and pred.shape[0] == 1:
        pred = pred[0]
    channels = TASK_OUTPUTS[prepared.task][1]
    if pred.ndim != 3 or pred.shape[0] != channels or pred.shape[1:] != prepared.input.shape[1:]:
        raise InputError(
            f"prediction shape {pred.shape} does not match the prepared frame "
            f"([{channels}, {prepared.input.shape[1]}, {prepared.input.shape[2]}])"
        )
    h, w = prepared.work_size
    pred = np.ascontiguousarray(pred[:, :h, :w].transpose(1, 2, 0))
    pred = _resize(pred, prepared.full_size, cv2.INTER_LINEAR)
    if prepared.task == "grayscale":
        return _finish_grayscale(prepared, pred)
    return _finish_lineart(prepared, pred)


def _finish_grayscale(p: PreparedFrame, ab: np.ndarray) -> np.ndarray:
    opts = p.options
    labels, small, med = p.labels, None, None
    if labels is not None and opts.anchor_hints and p.region_hinted is not None:
        ab = rg.anchor_to_hints(labels, ab, p.region_hint_ab, p.region_hinted)
    if opts.palette is not None:  # one palette color per region, the frame's L inside
        pal_ab = _palette_arrays(opts.palette)[0][:, 1:]
        filled, entry = _palette_regions(p, np.concatenate([p.L[..., None], ab], axis=-1))
        return _assemble_strips(
            p, lambda sl: _lab_to_rgb_keep_l(p.L[sl], pal_ab[entry[filled[sl]]])
        )
    if labels is not None:
        counts = np.bincount(labels.ravel())
        small = counts <= CONSOLIDATE_MAX_FRACTION * labels.size
        small[0] = False  # line pixels keep their own values
        if small.any():
            med = _region_medians(labels, ab)
            if p.region_hinted is not None:
                med[p.region_hinted] = p.region_hint_ab[p.region_hinted]

    def rows(sl: slice) -> np.ndarray:
        ab_s = ab[sl]
        if med is not None:
            lab_s = labels[sl]
            ab_s = np.where(small[lab_s][..., None], med[lab_s], ab_s)
        return _lab_to_rgb_keep_l(p.L[sl], ab_s.astype(np.float32))

    return _assemble_strips(p, rows)


def _region_rgb(region_lab: np.ndarray) -> np.ndarray:
    """float01 RGB of one Lab color per region."""
    return lab_to_rgb(region_lab[:, None, :].astype(np.float32))[:, 0, :]


def _palette_regions(p: PreparedFrame, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Palette lock by region (palette.snap_regions_to_palette): (labels with each line
    pixel given its nearest region, palette index per label). Regions come from the frame
    even when ``options.regions`` is off: a palette lock never snaps single pixels."""
    if p.labels is None:
        p = replace(p, labels=rg.regions_of(p.L, p.task))
    grayscale = p.task == "grayscale"
    region_lab = _region_medians(p.labels, lab) if grayscale else _lineart_region_lab(p, lab)
    entry = snap_regions_to_palette(
        region_lab, _palette_arrays(p.options.palette)[0], own_lightness=grayscale,
        region_hint_ab=p.region_hint_ab, region_hinted=p.region_hinted,
    )
    return (rg.fill_lines(p.labels, p.labels) if p.labels.any() else p.labels), entry


def _lineart_from_regions(p: PreparedFrame, region_rgb: np.ndarray, output: str) -> np.ndarray:
    """One color per region; line pixels take the nearest region's color (the fill has
    no gaps under the lines), then the lines go on top (or not, for 'fill')."""
    if p.labels.any():
        filled = rg.fill_lines(p.labels, p.labels)  # each line pixel: its nearest region
    else:
        filled = p.labels  # nothing but lines: label 0's own color
    return _assemble_strips(
        p, lambda sl: _compose_lines(region_rgb[filled[sl]], p, output, sl)
    )


def _finish_lineart(p: PreparedFrame, lab: np.ndarray) -> np.ndarray:
    opts = p.options
    if opts.palette is not None:
        filled, entry = _palette_regions(p, lab)
        pal_rgb = _palette_arrays(opts.palette)[1]
        return _assemble_strips(
            p, lambda sl: _compose_lines(pal_rgb[entry[filled[sl]]], p, opts.output, sl)
        )
    if p.labels is not None:
        return _lineart_from_regions(p, _region_rgb(_lineart_region_lab(p, lab)), opts.output)

    def rows(sl: slice) -> np.ndarray:
        return _compose_lines(lab_to_rgb(lab[sl]), p, opts.output, sl)

    return _assemble_strips(p, rows)


def _lineart_region_lab(p: PreparedFrame, lab: np.ndarray) -> np.ndarray:
    """One Lab color per region: its hint (with the hint's L when known), else the
    median prediction."""
    region_lab = _region_medians(p.labels, lab)
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
    return fill * (base if base.ndim == 3 else base[..., None])


def flat_fill_frame(frame: np.ndarray, task: str, hints=None) -> np.ndarray:
    """The non-learned baseline as a full frame: each region the mean of its hints.

    Regions from the frame's full-res L (regions.regions_of); unhinted regions stay
    gray. Grayscale: the frame's own L with the filled ab. Line art: each hinted region
    takes its hint color (L from an RGBA hint or (ab, mask, L); else DEFAULT_FILL_L),
    unhinted regions keep their own lightness (paper), lines multiplied on top.
    Output layout and dtype as finish_frame's.
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")
    color01, alpha, channels = _split_frame(frame)
    full = color01.shape[:2]
    lineart = task == "lineart"
    base01 = _over_white(color01, alpha) if lineart else None
    L = _lightness(base01 if lineart else color01)
    ab, mask, hint_l = _read_hints(hints, full, want_l=lineart)
    labels = rg.regions_of(L, task)
    p = PreparedFrame(
        input=np.zeros((4, 1, 1), np.float32), task=task, work_size=full, full_size=full,
        dtype=frame.dtype, channels=channels, alpha=alpha, L=L, base01=base01,
        labels=labels, region_hint_ab=None, region_hinted=None, region_hint_L=None,
    )
    if not lineart:
        filled = rg.flat_fill(labels, ab, mask)
        return _assemble_strips(p, lambda sl: _lab_to_rgb_keep_l(L[sl], filled[sl]))
    region_lab, weight = rg.region_means(
        labels, np.concatenate([L[..., None], ab], axis=-1), mask
    )
    hinted = weight > 0
    hinted[0] = False  # lines are not one area (fill_lines colors them)
    own_l, _ = rg.region_means(labels, L[..., None], np.ones(full, np.float32))
    region_lab[~hinted] = 0.0
    region_lab[~hinted, 0] = own_l[~hinted, 0]
    if hint_l is not None:
        region_lab[hinted, 0] = rg.region_means(labels, hint_l[..., None], mask)[0][hinted, 0]
    else:
        region_lab[hinted, 0] = DEFAULT_FILL_L
    return _lineart_from_regions(p, _region_rgb(region_lab), "color")
