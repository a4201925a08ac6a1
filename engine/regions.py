"""Regions: a frame split at its lines, used before and after the model.

Cartoon frames are made of flat regions bounded by drawn lines. Before the model,
each hint is spread over the region it falls in (a dense hint map in the same
4-channel contract), in training exactly as at inference. After the model, a
region can be given one color (line art) or one hue (grayscale). The non-learned
flat-fill baseline lives here too: each region takes the mean of its hints.

All functions are pure: arrays in, arrays out. ``labels`` is an int32 HxW map
where 0 marks line pixels and 1..n the regions between them.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Canny thresholds on L scaled to 0..255, for frames whose lines are edges of L.
CANNY_LOW = 50
CANNY_HIGH = 150
#: Lines are thickened by this many pixels so thin gaps do not join regions.
LINE_DILATE_PX = 1
#: A pixel of a line-art frame is a line when its L is below this (0..100).
LINEART_L_THRESHOLD = 60.0


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


def lineart_lines(
    L: np.ndarray, threshold: float = LINEART_L_THRESHOLD, dilate_px: int = 0
) -> np.ndarray:
    """Line mask of a line-art frame: its dark pixels (L below ``threshold``). Bool HxW."""
    return _dilate(np.asarray(L) < threshold, dilate_px)


def label_regions(lines: np.ndarray) -> np.ndarray:
    """Label the 4-connected areas between lines: int32 HxW, 0 on lines, 1..n regions."""
    free = (~np.asarray(lines, bool)).astype(np.uint8)
    _, labels = cv2.connectedComponents(free, connectivity=4, ltype=cv2.CV_32S)
    return labels


def regions_of(L: np.ndarray, task: str) -> np.ndarray:
    """Region labels of a frame by task: dark lines for 'lineart', L edges for 'grayscale'."""
    if task == "lineart":
        return label_regions(lineart_lines(L))
    if task == "grayscale":
        return label_regions(edge_lines(L))
    raise ValueError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")


def region_means(labels: np.ndarray, values: np.ndarray, weights: np.ndarray) -> tuple[
    np.ndarray, np.ndarray
]:
    """Weighted mean of ``values`` (HxWxC) per region.

    Returns (means [n+1, C], total weight [n+1]); index = label. Regions with zero
    weight get mean 0.
    """
    n = int(labels.max()) + 1
    flat = labels.ravel()
    w = np.asarray(weights, np.float64).ravel()
    total = np.bincount(flat, weights=w, minlength=n)
    vals = np.asarray(values, np.float64).reshape(flat.size, -1)
    means = np.zeros((n, vals.shape[1]), np.float64)
    for c in range(vals.shape[1]):
        sums = np.bincount(flat, weights=vals[:, c] * w, minlength=n)
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
    dense_mask = hinted[labels]
    dense_ab = np.where(dense_mask[..., None], means[labels], 0.0).astype(np.float32)
    on_lines = mask & (labels == 0)
    dense_ab[on_lines] = ab[on_lines]
    dense_mask = dense_mask | on_lines
    return dense_ab, dense_mask.astype(np.float32)


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
    means, _ = region_means(labels, vals, np.ones(labels.shape, np.float32))
    shift = np.zeros_like(means)
    shift[hinted] = np.asarray(region_hint, np.float32)[hinted] - means[hinted]
    return (vals + shift[labels]).astype(np.float32, copy=False)


def flat_fill(labels: np.ndarray, hint_ab: np.ndarray, hint_mask: np.ndarray) -> np.ndarray:
    """Non-learned baseline: each region the mean of its hints, unhinted regions gray.

    Returns ab HxWx2; line pixels take the color of the nearest filled pixel so a
    thick line does not stay gray between two filled regions.
    """
    ab, mask = spread_hints(labels, hint_ab, hint_mask)
    return fill_lines(labels, ab)


def fill_lines(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Give line pixels (label 0) the value of the nearest non-line pixel."""
    lines = labels == 0
    if not lines.any() or lines.all():
        return values
    # distanceTransformWithLabels gives each pixel the label of its nearest zero pixel
    _, nearest = cv2.distanceTransformWithLabels(
        lines.astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(~lines)
    lookup = np.zeros(int(nearest.max()) + 1, np.int64)
    lookup[nearest[ys, xs]] = ys * labels.shape[1] + xs
    src = lookup[nearest[lines]]
    out = np.array(values, copy=True)
    flat = out.reshape(labels.size, -1)
    flat[np.flatnonzero(lines)] = flat[src]
    return out


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
    for c in range(vals.shape[1]):
        order = np.lexsort((vals[:, c], flat))
        out[present, c] = vals[order[mid[present]], c]
    return out


def consolidate(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Give every region one value: its median. Line pixels keep their own values."""
    med = region_medians(labels, values)
    out = med[labels]
    lines = labels == 0
    out[lines] = np.asarray(values, np.float32)[lines]
    return out
