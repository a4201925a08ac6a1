"""Unhinted regions adopt a hint's color: line art when the model backs it, grayscale
when the gray levels match.

Grayscale (``adopt_by_lightness``): a gray frame keeps each paint's lightness, so two
regions of one gray level are most likely one paint (both hands, both eyes, the two
halves of a sleeve cut by a fold line). An unhinted region below the consolidation size
takes the hint of the hinted region nearest in median L, when they differ by at most
``GRAY_MATCH_L``; this happens before the model, which sees the adopted colors as hints.
Chosen on the 177 grayscale tuning images (docs/TRAINING.md, "Gray levels that match a
hint"): better than the model's own color at every hint count.

Line art (the rest of this module):

A cel is painted from a handful of colors, and an artist's hints name most of them: the
other sleeve, the second eye, the hair behind the ear usually wear a color already
hinted elsewhere. The model's class distribution (a classification color head) says
which: an unhinted region takes the hint color its pixels' distribution supports most,
when that support is more than ``ADOPT_STRENGTH / m`` times the support of the region's
own predicted color (``m`` = the number of hinted regions). The more of the frame the hints
cover, the likelier the rest repeats their colors, and the more readily a region adopts
one; with one or two hints a region keeps its own color unless the model is far surer of
the hint's. (Counting distinct hint colors instead of hinted regions was measured worse.)
Support is ``palette.palette_evidence``'s: the softmax class probabilities summed under a
Gaussian of ab distance, one channel per distinct hint color (``hint_colors``: a keyframe's
hundreds of matched regions hold a few dozen colors).

Chosen on the 123 line-art tuning dev images (docs/TRAINING.md, "Hints that spread"):
at most 0.03 worse there at any hint count (10 hints 14.84 -> 14.50), where a fixed bar
(adopt when the hint's support beats r times the own color's, r = 0.5) spread one hint's
color everywhere with few hints (mean CIEDE2000 19.2 -> 21.3 at 1 hint).
Pure functions; the pipeline (prepare_frame, run_prepared, finish_frame) calls them.
"""

from __future__ import annotations

import numpy as np

from inkhue_engine.palette import EVIDENCE_SIGMA_AB, EVIDENCE_TEMPERATURE, class_kernel

#: An unhinted region adopts a hint's color when its evidence is more than this / m times
#: that of the region's own color (m: hinted regions). Tuned on the line-art dev split.
ADOPT_STRENGTH = 3.0
#: Hint colors closer than this (ab distance, Lab units) are one color: the mean of a 3x3
#: hint on an anti-aliased edge, or a keyframe's matched colors, differ by less.
HINT_COLOR_MERGE_AB = 5.0
#: Grayscale: an unhinted region adopts the hint of the hinted region nearest in median L
#: when the two differ by at most this (L units). Tuned on the grayscale tuning images.
GRAY_MATCH_L = 10.0
#: Pixels handled at once (bounds the [pixels, classes] temporaries).
_BLOCK = 1 << 16


def hint_colors(
    region_hint_ab: np.ndarray, region_hinted: np.ndarray, merge: float = HINT_COLOR_MERGE_AB
) -> np.ndarray:
    """The distinct hint colors of a frame, as the label of the first hinted region (in
    label order) of each: int [K]. A hinted region joins the first color within ``merge``
    ab of its own hint, else starts a new one. Deterministic, so that run_prepared and
    finish_frame agree on the K evidence channels."""
    ab = np.asarray(region_hint_ab, np.float32).reshape(-1, 2)
    donors: list[int] = []
    for r in np.flatnonzero(np.asarray(region_hinted, bool)):
        if r == 0:  # lines are no region
            continue
        if donors:
            d2 = ((ab[donors] - ab[r]) ** 2).sum(axis=1)
            if float(d2.min()) < merge * merge:
                continue
        donors.append(int(r))
    return np.asarray(donors, np.intp)


def adoption_evidence(
    logits: np.ndarray,
    ab_classes: np.ndarray,
    labels: np.ndarray,
    region_own_ab: np.ndarray,
    hint_ab: np.ndarray,
    regions: np.ndarray | None = None,
    temperature: float = EVIDENCE_TEMPERATURE,
    sigma_ab: float = EVIDENCE_SIGMA_AB,
) -> np.ndarray:
    """Per pixel, how much of its predicted color distribution lies near each hint color
    and near its own region's predicted color.

    ``logits`` [H, W, Q] (the ``ab_logits`` output), ``ab_classes`` [Q, 2], ``labels``
    [H, W] region labels at the same size, ``region_own_ab`` [n+1, 2] each region's
    predicted ab, ``hint_ab`` [K, 2]. ``regions`` [n+1] bool: only pixels of these
    regions are computed, the others are 0 (the hinted regions, which adopt nothing, are
    most of a frame with ten hints: the softmax over the classes is the cost). Returns
    float32 [K+1, H, W]: K hint channels, then the own-color channel.
    """
    logits = np.asarray(logits, np.float32)
    h, w, q = logits.shape
    if labels.shape != (h, w):
        raise ValueError(f"labels {labels.shape} do not match the logits ({h}, {w})")
    centers = np.asarray(ab_classes, np.float32).reshape(q, 2)
    to_hint = class_kernel(centers, hint_ab, sigma_ab)  # [Q, K]
    k = to_hint.shape[1]
    # [n+1, Q], row-contiguous: each pixel gathers its region's row
    to_own = np.ascontiguousarray(class_kernel(centers, region_own_ab, sigma_ab).T)
    lab = labels.ravel()
    if regions is None:
        pixels = np.arange(lab.size)
        out = np.empty((k + 1, h * w), np.float32)
    else:
        pixels = np.flatnonzero(np.take(np.asarray(regions, bool), lab))
        out = np.zeros((k + 1, h * w), np.float32)
    scale = np.float32(1.0 / temperature)
    for start in range(0, pixels.size, _BLOCK):
        idx = pixels[start : start + _BLOCK]
        # gathered from the [H, W, Q] array itself: the logits are a crop of the padded
        # output, and reshaping that to rows would copy all of them first
        block = logits[idx // w, idx % w]
        z = np.subtract(block, block.max(axis=1, keepdims=True), out=block)
        if scale != 1.0:
            z *= scale
        np.exp(z, out=z)
        # unnormalized: divide the K+1 sums, not the Q probabilities (the exp is most of it)
        total = z.sum(axis=1)
        out[:k, idx] = (z @ to_hint).T / total
        own = np.einsum("pq,pq->p", z, np.take(to_own, np.take(lab, idx), axis=0))
        out[k, idx] = own / total
    return out.reshape(k + 1, h, w)


def adopt_hint_colors(
    region_lab: np.ndarray,
    region_evidence: np.ndarray,
    has_evidence: np.ndarray,
    region_hinted: np.ndarray,
    donors: np.ndarray,
    strength: float = ADOPT_STRENGTH,
) -> np.ndarray:
    """One Lab color per region, unhinted regions given a hint color where the evidence
    supports it more than ``strength`` / (hinted regions) times their own (module doc).

    ``region_lab`` [n+1, 3] each region's color (hinted ones: their hint, its L too);
    ``region_evidence`` [n+1, K+1] each region's mean ``adoption_evidence``, whose K
    hint channels are the colors of ``donors`` (``hint_colors``: the K regions whose
    colors they are); ``has_evidence`` [n+1]: False where a region had no pixel at the
    model's working size (it keeps its color); ``region_hinted`` [n+1] bool. Returns a
    new [n+1, 3] array; label 0 (lines) and hinted regions are unchanged; an adopting
    region takes its donor's Lab.
    """
    out = np.array(region_lab, np.float32, copy=True)
    hinted = np.asarray(region_hinted, bool)
    donors = np.asarray(donors, np.intp)
    k = donors.size
    ev = np.asarray(region_evidence, np.float32)
    if k == 0:
        return out
    if ev.shape != (out.shape[0], k + 1):
        raise ValueError(f"region evidence {ev.shape} should be ({out.shape[0]}, {k + 1})")
    m = int(hinted[1:].sum())  # hinted regions (label 0, the lines, is none)
    best = np.argmax(ev[:, :k], axis=1)
    support = ev[np.arange(ev.shape[0]), best]
    take = np.asarray(has_evidence, bool) & ~hinted & (support > (strength / m) * ev[:, k])
    take[0] = False
    out[take] = out[donors[best[take]]]
    return out


def adopt_by_lightness(
    region_L: np.ndarray,
    region_hinted: np.ndarray,
    region_hint_ab: np.ndarray,
    eligible: np.ndarray,
    tolerance: float = GRAY_MATCH_L,
) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale: each eligible unhinted region takes the hint ab of the hinted region
    nearest in gray level, when their L differ by at most ``tolerance`` (module doc).

    ``region_L`` [n+1] each region's median L; ``region_hinted`` [n+1] bool;
    ``region_hint_ab`` [n+1, 2] the hinted regions' hint ab; ``eligible`` [n+1] bool,
    the regions allowed to adopt. Label 0 (lines) never adopts nor gives. Returns new
    (hinted, hint_ab) arrays with the adopting regions marked hinted; of two donors
    equally near, the darker wins (then the lower label).
    """
    hinted = np.asarray(region_hinted, bool)
    out_hinted = hinted.copy()
    out_ab = np.array(region_hint_ab, np.float32, copy=True).reshape(-1, 2)
    L = np.asarray(region_L, np.float32).ravel()
    donors = np.flatnonzero(hinted)
    donors = donors[donors != 0]
    if donors.size == 0:
        return out_hinted, out_ab
    donors = donors[np.argsort(L[donors], kind="stable")]
    donor_L = L[donors]
    # the nearest donor in L: one of the two around each region's L in sorted order
    right = np.clip(np.searchsorted(donor_L, L), 0, donors.size - 1)
    left = np.clip(right - 1, 0, donors.size - 1)
    d_left, d_right = np.abs(L - donor_L[left]), np.abs(L - donor_L[right])
    nearest = np.where(d_left <= d_right, left, right)
    gap = np.minimum(d_left, d_right)
    take = np.asarray(eligible, bool) & ~hinted & (gap <= tolerance)
    take[0] = False
    out_ab[take] = out_ab[donors[nearest[take]]]
    out_hinted |= take
    return out_hinted, out_ab
