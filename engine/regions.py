"""Regions: a frame split at its lines, used before and after the model.

Cartoon frames are made of flat regions bounded by drawn lines. Before the model,
each hint is spread over the region it falls in (a dense hint map in the same
4-channel contract), in training exactly as at inference. After the model, a
region can be given one color (line art) or one hue (grayscale). The non-learned
flat-fill baseline lives here too: each region takes the mean of its hints.

All functions are pure: arrays in, arrays out. ``labels`` is an int32 HxW map
where 0 marks line pixels and 1..n the regions between them.

Speed (docs/PERFORMANCE.md): a 1080p frame has ~2 M pixels and these functions run on
every frame, so per-region tables are applied with ``np.take`` (several times faster
than fancy indexing with a 2-D table), sums over sparse weights (hints) visit only the
weighted pixels, and medians sort one int64 key per sample instead of a lexsort.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Canny thresholds on L scaled to 0..255, for frames whose lines are edges of L.
CANNY_LOW = 50
CANNY_HIGH = 150
#: Lines are thickened by this many pixels so thin gaps do not join regions.
LINE_DILATE_PX = 1
#: A pixel of a line-art frame is a line when its L is below this (0..100). High enough
#: for an artist's thin anti-aliased outlines, most of whose pixels are light gray at
#: frame size: at 60 prologue_kid's outlines left gaps and the picture leaked into one
#: region (docs/REGIONS.md has the measurements).
LINEART_L_THRESHOLD = 85.0
#: ...and at least this far (L) below the frame's paper, so that off-white paper (cream is
#: ~90, a scan's gray lower) is not cut as line...
PAPER_MARGIN = 12.0
#: ...but never below this (the former fixed cut): a frame mostly of black fills, whose
#: fullest lightness is ink, not paper, keeps its ink as line.
LINEART_MIN_CUT = 60.0
#: The paper is the lightest 2-L bin holding at least this share of the pixels.
PAPER_SHARE = 0.2


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def edge_lines(L: np.ndarray, dilate_px: int = LINE_DILATE_PX) -> np.ndarray:
    """Line mask of a shaded frame: Canny edges of L (0..100), dilated. Bool HxW."""
    l8 = np.clip(np.asarray(L, np.float32) * 2.55, 0, 255).astype(np.uint8)
    edges = cv2.Canny(l8, CANNY_LOW, CANNY_HIGH) > 0
    return _dilate(edges, dilate_px)


def paper_level(L: np.ndarray, share: float = PAPER_SHARE) -> float:
    """The paper's lightness of a frame (L 0..100): the middle of the lightest 2-L bin
    holding at least ``share`` of the pixels (the fullest bin when none does)."""
    L = np.asarray(L)
    if L.size > 1 << 20:  # a histogram needs no more than ~1 M samples
        step = int(np.ceil(np.sqrt(L.size / (1 << 20))))
        L = L[::step, ::step]
    hist = np.bincount(np.clip(L, 0, 100).astype(np.int32).ravel() // 2, minlength=51)
    big = np.flatnonzero(hist >= share * L.size)
    return float((big.max() if big.size else int(np.argmax(hist))) * 2 + 1)


def line_cut(L: np.ndarray) -> float:
    """The L below which a pixel of this line-art frame is line: LINEART_L_THRESHOLD, or
    PAPER_MARGIN below the frame's paper when that is lower, never below LINEART_MIN_CUT."""
    return max(LINEART_MIN_CUT, min(LINEART_L_THRESHOLD, paper_level(L) - PAPER_MARGIN))


def lineart_lines(L: np.ndarray, threshold: float | None = None, dilate_px: int = 0) -> np.ndarray:
    """Line mask of a line-art frame: its dark pixels (L below ``threshold``; by default
    the frame's ``line_cut``). Bool HxW."""
    cut = line_cut(L) if threshold is None else threshold
    return _dilate(np.asarray(L) < cut, dilate_px)


def label_regions(lines: np.ndarray) -> np.ndarray:
    """Label the 4-connected areas between lines: int32 HxW, 0 on lines, 1..n regions."""
    free = (~np.asarray(lines, bool)).astype(np.uint8)
    _, labels = cv2.connectedComponents(free, connectivity=4, ltype=cv2.CV_32S)
    return labels


def regions_of(L: np.ndarray, task: str, line_threshold: float | None = None) -> np.ndarray:
    """Region labels of a frame by task: dark lines for 'lineart' (L below
    ``line_threshold``, by default the frame's ``line_cut``), L edges for 'grayscale'."""
    if task == "lineart":
        return label_regions(lineart_lines(L, line_threshold))
    if task == "grayscale":
        return label_regions(edge_lines(L))
    raise ValueError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")


def per_pixel(table: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``table[labels]`` for a per-label table ([n+1] or [n+1, C]): HxW or HxWxC.

    ``np.take`` along axis 0 gives the same array as fancy indexing, several times faster
    for a 2-D table (measured: 9 vs 64 ms for a 2-channel 1080p frame).
    """
    return np.take(table, labels, axis=0)


def region_means(
    labels: np.ndarray, values: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of ``values`` (HxWxC) per region.

    Returns (means [n+1, C], total weight [n+1]); index = label. Regions with zero
    weight get mean 0.
    """
    n = int(labels.max()) + 1
    flat = labels.ravel()
    w = np.asarray(weights, np.float64).ravel()
    vals = np.asarray(values).reshape(flat.size, -1)
    nz = np.flatnonzero(w)
    if nz.size < flat.size // 2:
        # sparse weights (hints): a zero weight adds exactly 0 to its sums, so summing only
        # the weighted pixels, in the same order, gives the same float64 sums
        flat, w, vals = flat[nz], w[nz], vals[nz]
    total = np.bincount(flat, weights=w, minlength=n)
    means = np.zeros((n, vals.shape[1]), np.float64)
    for c in range(vals.shape[1]):
        sums = np.bincount(flat, weights=vals[:, c].astype(np.float64) * w, minlength=n)
        np.divide(sums, total, out=means[:, c], where=total > 0)
    return means.astype(np.float32), total


def spread_hints(
    labels: np.ndarray, hint_ab: np.ndarray, hint_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Spread sparse hints over the regions they fall in.

    ``hint_ab`` HxWx2 (Lab units), ``hint_mask`` HxW (0/1). Every region that holds
    at least one hint pixel is filled with the mean ab of its hints and marked 1
    in the mask. Hints drawn on a line (label 0) stay where they are. Returns the
    dense (ab HxWx2 float32, mask HxW float32).
    """
    mask = np.asarray(hint_mask, np.float32) > 0
    ab = np.asarray(hint_ab, np.float32)
    if not mask.any():
        return np.zeros_like(ab, np.float32), np.zeros(mask.shape, np.float32)
    means, weight = region_means(labels, ab, mask)
    hinted = weight > 0
    hinted[0] = False  # the line "region" is not one area; keep its hints as points
    means[~hinted] = 0.0
    dense_ab = per_pixel(means, labels)
    dense_mask = per_pixel(hinted.astype(np.float32), labels)
    on_lines = np.flatnonzero(mask.ravel() & (labels.ravel() == 0))
    dense_ab.reshape(-1, ab.shape[-1])[on_lines] = ab.reshape(-1, ab.shape[-1])[on_lines]
    dense_mask.reshape(-1)[on_lines] = 1.0
    return dense_ab, dense_mask


def anchor_to_hints(
    labels: np.ndarray,
    values: np.ndarray,
    region_hint: np.ndarray,
    region_hinted: np.ndarray,
) -> np.ndarray:
    """Shift each hinted region's values so that their mean is the region's hint.

    ``values`` HxWxC (a prediction), ``region_hint`` [n+1, C] and ``region_hinted``
    [n+1] bool per label (label 0, the lines, is never shifted). The variation inside
    the region (shading the model predicted) is kept; only its average moves to what
    the artist asked for. Unhinted regions are returned unchanged.
    """
    vals = np.asarray(values, np.float32)
    hinted = np.asarray(region_hinted, bool).copy()
    hinted[0] = False
    if not hinted.any():
        return vals
    # the means of the hinted regions only: their pixels, in order (same float64 sums)
    means, _ = region_means(labels, vals, per_pixel(hinted, labels))
    shift = np.zeros_like(means)
    shift[hinted] = np.asarray(region_hint, np.float32)[hinted] - means[hinted]
    return (vals + per_pixel(shift, labels)).astype(np.float32, copy=False)


def flat_fill(labels: np.ndarray, hint_ab: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """Non-learned baseline: each region the mean of its hints, unhinted regions gray.

    Returns ab HxWx2; line pixels take the color of the nearest filled pixel so a
    thick line does not stay gray between two filled regions.
    """
    ab, mask = spread_hints(labels, hint_ab, hint_mask)
    return fill_lines(labels, ab)


def fill_lines(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Give line pixels (label 0) the value of the nearest non-line pixel (a new array)."""
    lines = labels == 0
    if not lines.any() or lines.all():
        return values
    on_lines, src = line_sources(lines)
    vals = np.asarray(values)
    # one value per pixel (labels): 1-D, which numpy gathers faster than [N, 1] rows
    out = vals.reshape(labels.size, -1) if vals.ndim > labels.ndim else vals.reshape(-1)
    out = out.copy()
    out[on_lines] = np.take(out, src, axis=0)  # sources are off the lines: not overwritten
    return out.reshape(vals.shape)


def line_sources(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat indices of the line pixels, flat index of each one's nearest pixel off the
    lines). ``lines``: HxW bool holding some pixel off them.

    OpenCV's distance transform numbers the pixels off the lines and passes each number
    from pixel to neighbouring pixel, so a line pixel's nearest free pixel touches a line
    pixel: only that band is looked up (a few times faster on a frame whose lines are a
    thin share of it than looking up every pixel). The table is sized by the largest
    number, so no particular numbering is assumed.
    """
    mask = np.ascontiguousarray(lines, dtype=bool).view(np.uint8)
    _, nearest = cv2.distanceTransformWithLabels(
        mask, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    near = nearest.ravel()
    band = np.flatnonzero((cv2.dilate(mask, np.ones((3, 3), np.uint8)) > mask).ravel())
    on_lines = np.flatnonzero(mask.ravel())
    lookup = np.zeros(int(near.max()) + 1, np.intp)
    lookup[np.take(near, band)] = band
    return on_lines, np.take(lookup, np.take(near, on_lines))


def fill_labels(labels: np.ndarray) -> np.ndarray:
    """``fill_lines(labels, labels)``: every line pixel takes its nearest region's label.

    Used for the line-art fill (one color per region, no gaps under the lines).
    """
    return fill_lines(labels, labels)


def region_medians(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Median of ``values`` (HxWxC) per region: [n+1, C] float32, index = label."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    vals = np.asarray(values, np.float32).reshape(flat.size, -1)
    counts = np.bincount(flat, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    mid = starts + np.maximum(counts - 1, 0) // 2
    out = np.zeros((n, vals.shape[1]), np.float32)
    present = counts > 0
    high = flat.astype(np.uint64) << np.uint64(32)
    for c in range(vals.shape[1]):
        # one sort of (label, value) keys: the value's float32 bits made to sort as
        # unsigned integers (negatives: all bits flipped; others: the sign bit set)
        bits = np.ascontiguousarray(vals[:, c]).view(np.uint32)
        order_bits = np.where(bits >> 31 == 1, ~bits, bits | np.uint32(0x80000000))
        keys = np.sort(high | order_bits.astype(np.uint64))
        picked = (keys[mid[present]] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        picked = np.where(picked >> 31 == 1, picked & np.uint32(0x7FFFFFFF), ~picked)
        out[present, c] = picked.view(np.float32)
    return out


def consolidate(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Give every region one value: its median. Line pixels keep their own values."""
    med = region_medians(labels, values)
    out = per_pixel(med, labels)
    lines = labels == 0
    out[lines] = np.asarray(values, np.float32)[lines]
    return out
