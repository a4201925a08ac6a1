"""Colors from the artist's keyframes: match a frame's regions to colored references.

In production a shot is colored from its keyframes (or a character model sheet): the
artist colors one frame and the rest must follow. This module carries those colors to
another frame of the shot:

1. every frame (target and references) is split into line-bounded regions with the
   same code as the colorizer (``regions.regions_of`` on the frame's *structure*
   lightness: the grayscale frame, or the line art);
2. each region is described (area, centroid, shape moments, L statistics);
3. dense optical flow (OpenCV DIS) from the target to each reference lets every target
   region vote for the reference regions its pixels land in;
4. a cost mixes the vote with position, area, shape and lightness differences, and a
   global assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``) picks one
   reference region per target region; a target region may still share a reference
   region when the one-to-one choice is clearly worse (a region split by an occlusion);
5. a matched region takes its reference color (grayscale: the reference's ab with the
   frame's own L, so the shading stays; line art: the flat color); regions left
   unmatched go to the GAN with the matched colors as hints, then the palette lock.

Several references compete per region (lowest cost wins); the previous finished frame
of a shot is one of them, with a small handicap, so colors follow motion while the
keyframes stay the anchor (chaining only on generated frames compounds errors).
Pure functions: arrays in, arrays out; references are immutable and can be shared by
threads.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from inkhue_engine import regions as rg
from inkhue_engine.color import DTYPE_SCALE, on_white, rgb_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.lineart import synthesize_lineart
from inkhue_engine.model import TASKS

#: Regions smaller than this (pixels) are not matched: they take the color of the
#: nearest matched region (specks between lines, anti-aliasing islands).
MIN_REGION_PX = 24
#: Unmatched regions smaller than this share of the frame (or than MIN_REGION_PX)
#: follow their neighbours, like specks, instead of waking the model: at 1080p the
#: model costs more for a 200-pixel island than the island is worth.
LOOSE_SHARE = 1e-4
#: Line art: a keyframe's line pixels count as ink (lines kept) below this L. Darker than
#: the region cut (regions.LINEART_L_THRESHOLD, 85): a fill-only keyframe's light fills
#: must not pass for ink.
KEYFRAME_INK_L = 60.0
#: Grayscale: a line pixel follows its nearest matched fill only up to this L ratio
#: (lighter: a highlight or another region, not a line over that fill). Chosen on the
#: synthetic dev shots (1.05-1.5 gave the same scores; all pixels: worse).
LINE_LIGHTER_MAX = 1.25
#: A match is accepted when its cost is below this (costs are 0..~1.5; see _costs).
ACCEPT_COST = 0.4
#: Handicap of the previous finished frame against the keyframes (same cost units):
#: the keyframes win ties, the previous frame wins where the keyframe match is poor.
PREVIOUS_HANDICAP = 0.08
#: The one-to-one (Hungarian) choice is kept unless it costs this much more than the
#: region's best candidate; then the region shares that candidate (a split region).
SPLIT_SLACK = 0.15
#: Optical flow runs with the long side at most this many pixels (speed; the regions
#: are matched at full resolution).
FLOW_MAX_SIDE = 640
#: Candidate reference regions per target region by position (besides the flow votes).
NEAREST_CANDIDATES = 4
#: Above this many target x reference regions the assignment is greedy (best candidate),
#: to bound time and memory on frames split into thousands of specks.
MAX_ASSIGNMENT_CELLS = 6_000_000
#: A reference counts as colored when at least this share of its pixels has a chroma
#: (Lab) above COLOR_CHROMA.
MIN_COLORED_SHARE = 0.005
COLOR_CHROMA = 8.0
#: Per-pixel reference colors are taken only this far (px) inside a reference region:
#: nearer its border a line-art pixel mixes the region with its line (anti-aliasing).
#: Grayscale regions are cut at dilated edges already (measured on prologue_kid: an
#: extra margin there made moving pixels worse, 1.05 -> 1.14 CIEDE2000).
CORE_PX = {"grayscale": 0, "lineart": 1}
#: A pixel whose structure L is within this of the reference's (and whose neighbours'
#: are too) did not move: it takes the reference pixel at its own place, unresampled.
STILL_L = 0.5
#: describe_regions samples every n-th pixel of every n-th row (exact areas).
DESCRIBE_STRIDE = 2
#: Weights of the cost terms (see _costs): flow vote, coverage, position, area, shape,
#: lightness.
#: Line art has no lightness inside regions (paper), so its weight goes to the vote.
WEIGHTS = {
    "grayscale": (0.35, 0.15, 0.15, 0.1, 0.05, 0.2),
    "lineart": (0.45, 0.2, 0.2, 0.1, 0.05, 0.0),
}
#: A target region "covers" its reference region fully from this share of the
#: reference's area on (a region split in two by an occluder still matches; an island
#: inside a large region, e.g. a new object over the background, does not).
FULL_COVER = 0.3
#: Lightness difference (Lab L) that costs the whole lightness weight: one fill color
#: has one L in every frame of a grayscale shot.
LIGHTNESS_SPAN = 8.0


# --------------------------------------------------------------------------- regions
@dataclass(frozen=True, eq=False)
class RegionTable:
    """Per-region descriptors, indexed by label (0 = the lines, never matched)."""

    area: np.ndarray  #: [n+1] pixels
    cy: np.ndarray  #: [n+1] centroid row
    cx: np.ndarray  #: [n+1] centroid column
    mean_l: np.ndarray  #: [n+1] mean structure lightness (0..100)
    elong: np.ndarray  #: [n+1] 0 = round .. 1 = a line (from the second moments)

    @property
    def count(self) -> int:
        return int(self.area.shape[0])


def describe_regions(labels: np.ndarray, L: np.ndarray) -> RegionTable:
    """Area, centroid, mean lightness and elongation of every region of ``labels``.

    Areas are exact; the other statistics come from every DESCRIBE_STRIDE-th pixel of
    every DESCRIBE_STRIDE-th row (4x less work at 1080p), and from all pixels of the
    regions that sampling misses.
    """
    n = int(labels.max()) + 1 if labels.size else 1
    area = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    s = DESCRIBE_STRIDE
    ys, xs = np.mgrid[0 : labels.shape[0] : s, 0 : labels.shape[1] : s]
    lab_s = labels[::s, ::s]
    missed = np.bincount(lab_s.ravel(), minlength=n) == 0
    missed &= area > 0
    if missed.any():  # small regions between the samples: take all their pixels
        extra = missed[labels]
        ys = np.concatenate([ys.ravel(), np.nonzero(extra)[0]])
        xs = np.concatenate([xs.ravel(), np.nonzero(extra)[1]])
    else:
        ys, xs = ys.ravel(), xs.ravel()
    flat = labels[ys, xs]
    ys, xs = ys.astype(np.float64), xs.astype(np.float64)
    safe = np.maximum(np.bincount(flat, minlength=n).astype(np.float64), 1.0)
    cy = np.bincount(flat, ys, n) / safe
    cx = np.bincount(flat, xs, n) / safe
    mean_l = (
        np.bincount(flat, np.asarray(L, np.float64)[ys.astype(np.int64), xs.astype(np.int64)], n)
        / safe
    )
    dy, dx = ys - cy[flat], xs - cx[flat]
    mu20 = np.bincount(flat, dx * dx, n) / safe
    mu02 = np.bincount(flat, dy * dy, n) / safe
    mu11 = np.bincount(flat, dx * dy, n) / safe
    common = np.sqrt((mu20 - mu02) ** 2 + 4 * mu11**2)
    big, small = (mu20 + mu02 + common) / 2, (mu20 + mu02 - common) / 2
    elong = 1.0 - np.sqrt(np.maximum(small, 0) / np.maximum(big, 1e-9))
    return RegionTable(area, cy, cx, mean_l, elong)


# --------------------------------------------------------------------------- frames
def _color01(img: np.ndarray, what: str) -> np.ndarray:
    """float01 RGB over white of an image of any supported layout."""
    if not isinstance(img, np.ndarray) or img.dtype not in DTYPE_SCALE:
        raise InputError(f"{what}: unsupported image (use uint8, uint16 or float32 pixels)")
    if (
        img.ndim not in (2, 3)
        or (img.ndim == 3 and img.shape[2] not in (1, 2, 3, 4))
        or min(img.shape[:2]) < 1
    ):
        raise InputError(f"{what}: unsupported image shape {img.shape}")
    return np.nan_to_num(on_white(img), nan=0.0)


def structure_lightness(frame: np.ndarray, task: str, what: str = "frame") -> np.ndarray:
    """The lightness the regions are cut from (0..100, HxW float32).

    The same L as the colorizer's (``pipeline.frame_lightness``): the frame's own L
    (gray or RGB), composited over white when it has alpha.
    """
    from inkhue_engine.pipeline import frame_lightness

    if task not in TASKS:
        raise InputError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")
    return frame_lightness(frame, task)


@dataclass(frozen=True, eq=False)
class Reference:
    """A colored reference: a keyframe of the shot, a model sheet or the previous frame."""

    name: str
    kind: str  #: 'keyframe' or 'previous'
    lab: np.ndarray  #: HxWx3 float32: the colors
    L: np.ndarray  #: HxW structure lightness (in the target frames' modality)
    labels: np.ndarray  #: regions_of(L, task)
    table: RegionTable
    colors: np.ndarray  #: [n+1, 3] Lab of each region
    core: np.ndarray  #: float32 HxW: the label where at least CORE_PX inside its region, else -1


def region_core(labels: np.ndarray, px: int) -> np.ndarray:
    """float32 HxW: each pixel's label where its whole (2*px+1)^2 neighbourhood has that
    label (the region's core), else -1."""
    lab = labels.astype(np.float32)
    if px <= 0:
        return np.where(labels > 0, lab, np.float32(-1))
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * px + 1, 2 * px + 1))
    inside = (cv2.erode(lab, k) == lab) & (cv2.dilate(lab, k) == lab) & (labels > 0)
    return np.where(inside, lab, np.float32(-1))


def is_colored(lab: np.ndarray) -> bool:
    """True when enough pixels carry color (chroma above COLOR_CHROMA)."""
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return float((chroma > COLOR_CHROMA).mean()) >= MIN_COLORED_SHARE


def make_reference(
    colored: np.ndarray,
    task: str,
    structure: np.ndarray | None = None,
    name: str = "keyframe",
    kind: str = "keyframe",
    require_color: bool = True,
) -> Reference:
    """A reference from a colored image (any dtype, gray/RGB/RGBA).

    ``structure``: the uncolored frame it was colored from (a frame of the shot, in
    the task's modality), whose regions are then exactly the target frames' kind of
    regions; without it they come from the colored image itself (grayscale: its L;
    line art: line art synthesized from it). Raises InputError for an image without
    color (``require_color``), or a structure of another size.
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")
    rgb = _color01(colored, name)
    lab = rgb_to_lab(rgb)
    if require_color and not is_colored(lab):
        raise InputError(
            f"{name}: the keyframe has no color (less than {MIN_COLORED_SHARE:.1%} of its "
            "pixels are colored): give the frame as the artist colored it"
        )
    if structure is not None:
        if structure.shape[:2] != lab.shape[:2]:
            raise InputError(
                f"{name}: the keyframe is {lab.shape[1]}x{lab.shape[0]} but its frame is "
                f"{structure.shape[1]}x{structure.shape[0]}"
            )
        L = structure_lightness(structure, task, name)
    elif task == "lineart":
        L = synthesize_lineart(rgb)
    else:
        L = lab[..., 0].copy()
    labels = rg.regions_of(L, task)
    core = region_core(labels, CORE_PX[task])
    return Reference(
        name,
        kind,
        lab,
        L.astype(np.float32, copy=False),
        labels,
        describe_regions(labels, L),
        _region_colors(labels, core, lab, kind),
        core,
    )


def _region_colors(labels: np.ndarray, core: np.ndarray, lab: np.ndarray, kind: str) -> np.ndarray:
    """[n+1, 3] color of each region: over its core (the fringe mixes in the lines),
    over all its pixels when it has no core; medians for keyframes (robust to the
    artist's texture), means for a previous frame (fast, its fills are already flat)."""
    core_labels = np.maximum(core, 0).astype(labels.dtype)
    if kind == "keyframe":
        inner, whole = rg.region_medians(core_labels, lab), rg.region_medians(labels, lab)
    else:
        ones = np.ones(labels.shape, np.float32)
        inner = rg.region_means(core_labels, lab, ones)[0]
        whole = rg.region_means(labels, lab, ones)[0]
    m = inner.shape[0]  # at most whole.shape[0]: the core may lose the last labels
    has_core = np.bincount(core_labels.ravel(), minlength=m) > 0
    has_core[0] = False
    out = whole.copy()
    out[:m][has_core] = inner[has_core]
    return out.astype(np.float32)


#: A keyframe that is a frame of the shot must keep that frame's structure: grayscale,
#: its L within this mean difference (Lab units); line art, this share of the frame's
#: line pixels dark in the keyframe too.
KEYFRAME_MAX_MEAN_DL = 8.0
KEYFRAME_MIN_LINE_SHARE = 0.5


def check_keyframe_fits(key: np.ndarray, frame: np.ndarray, task: str, name: str) -> None:
    """Refuse (InputError) a keyframe that is not its frame colored: a keyframe of the
    other task (a colored line-art frame for grayscale frames, or the reverse) or of
    another frame. ``key`` already has the frame's size."""
    frame_l = structure_lightness(frame, task)
    key_l = rgb_to_lab(_color01(key, name))[..., 0]
    if task == "grayscale":
        dl = float(np.abs(key_l - frame_l).mean())
        if dl > KEYFRAME_MAX_MEAN_DL:
            raise InputError(
                f"{name}: its lightness differs from its grayscale frame by {dl:.1f} on "
                "average: color the grayscale frame itself (a line-art keyframe needs "
                "--task lineart)"
            )
        return
    lines = rg.lineart_lines(frame_l, KEYFRAME_INK_L)
    if lines.any():
        share = float((key_l[lines] < KEYFRAME_INK_L).mean())
        if share < KEYFRAME_MIN_LINE_SHARE:
            raise InputError(
                f"{name}: only {share:.0%} of its frame's lines are dark in it: color the "
                "line-art frame itself, lines kept (a shaded keyframe needs --task grayscale)"
            )


def fit_to_frame(image: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    """A keyframe scaled to the frames' (h, w) when only its scale differs (aspect within
    1%); InputError naming the file otherwise."""
    h, w = size
    ih, iw = image.shape[:2]
    if (ih, iw) == (h, w):
        return image
    if abs(math.log((iw / ih) / (w / h))) > 0.01:
        raise InputError(
            f"{name}: the keyframe is {iw}x{ih} but the frames are {w}x{h} (another aspect "
            "ratio): crop or pad the keyframe to the frames' framing"
        )
    interp = cv2.INTER_AREA if iw > w else cv2.INTER_CUBIC
    out = cv2.resize(image, (w, h), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


# --------------------------------------------------------------------------- matching
def _flow(target_L: np.ndarray, ref_L: np.ndarray, task: str) -> tuple[np.ndarray, float]:
    """Dense flow target -> reference at reduced size: (flow h'xw'x2 in full-res pixels,
    scale of the reduced size)."""
    h, w = target_L.shape
    scale = min(1.0, FLOW_MAX_SIDE / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    if max(size) < 16:  # DIS needs a side of 12 px or more: a tiny frame's flow runs upscaled
        size = (16, 16)

    def prep(L: np.ndarray) -> np.ndarray:
        img = cv2.resize(L, size, interpolation=cv2.INTER_AREA)
        if task == "lineart":  # thin lines carry little texture: widen them
            img = cv2.GaussianBlur(img, (0, 0), 1.5)
        return np.clip(img * 2.55, 0, 255).astype(np.uint8)

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(prep(target_L), prep(ref_L), None)
    sx, sy = w / size[0], h / size[1]
    flow[..., 0] *= sx
    flow[..., 1] *= sy
    return flow, scale


@dataclass(frozen=True)
class Match:
    """The best reference region of each target region for one reference."""

    region: np.ndarray  #: [n+1] int: reference label, -1 = none
    cost: np.ndarray  #: [n+1] float: cost of that match (inf = none)
    flow: np.ndarray  #: target -> reference flow at reduced size (full-res pixel units)


def _votes(
    labels: np.ndarray, ref_labels: np.ndarray, ref_area: np.ndarray, flow: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flow votes: (t, r) pairs with the share of t's pixels landing in r and the share of
    r's area they cover, and each target region's mean displacement."""
    h, w = labels.shape
    fh, fw = flow.shape[:2]
    stride = max(1, int(math.sqrt(h * w / 400_000)))
    ys, xs = np.mgrid[0:h:stride, 0:w:stride]
    ys, xs = ys.ravel(), xs.ravel()
    t = labels[ys, xs]
    fy = np.minimum((ys * fh) // h, fh - 1)
    fx = np.minimum((xs * fw) // w, fw - 1)
    d = flow[fy, fx]
    ry = np.rint(ys + d[:, 1]).astype(np.int64)
    rx = np.rint(xs + d[:, 0]).astype(np.int64)
    n_t = int(labels.max()) + 1
    samples = np.bincount(t, minlength=n_t).astype(np.float64)
    mean_dx = np.bincount(t, d[:, 0], n_t) / np.maximum(samples, 1)
    mean_dy = np.bincount(t, d[:, 1], n_t) / np.maximum(samples, 1)
    inside = (ry >= 0) & (ry < h) & (rx >= 0) & (rx < w) & (t > 0)
    r = np.zeros_like(t)
    r[inside] = ref_labels[ry[inside], rx[inside]]
    keep = inside & (r > 0)
    n_r = int(ref_labels.max()) + 1
    pair, counts = np.unique(t[keep].astype(np.int64) * n_r + r[keep], return_counts=True)
    pt, pr = np.divmod(pair, n_r)
    share = counts / np.maximum(samples[pt], 1)
    cover = counts * stride * stride / np.maximum(ref_area[pr], 1)
    return pt, pr, share, np.minimum(cover, 1.0), mean_dx, mean_dy


def _costs(
    task: str,
    tt: RegionTable,
    rt: RegionTable,
    ti: np.ndarray,
    ri: np.ndarray,
    vote: np.ndarray,
    cover: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
) -> np.ndarray:
    """Cost of matching target regions ``ti`` to reference regions ``ri`` (pairs).

    Terms, each 0..1: 1 - flow vote share; 1 - coverage of the reference region (full
    from FULL_COVER); distance of the flow-moved centroid to the reference centroid
    relative to the regions' size; |log area ratio|; difference of elongation;
    difference of mean lightness (grayscale: a fill keeps its L from frame to frame).
    """
    wv, wc, wp, wa, ws, wl = WEIGHTS[task]
    c_cover = 1.0 - np.minimum(cover / FULL_COVER, 1.0)
    size = 0.5 * (np.sqrt(tt.area[ti]) + np.sqrt(rt.area[ri])) + 4.0
    dist = np.hypot(px[ti] - rt.cx[ri], py[ti] - rt.cy[ri]) / size
    c_pos = np.minimum(dist, 2.0) / 2.0
    c_area = np.minimum(np.abs(np.log(tt.area[ti] / np.maximum(rt.area[ri], 1))), 2.0) / 2.0
    c_shape = np.abs(tt.elong[ti] - rt.elong[ri])
    c_l = np.minimum(np.abs(tt.mean_l[ti] - rt.mean_l[ri]) / LIGHTNESS_SPAN, 1.0)
    return wv * (1 - vote) + wc * c_cover + wp * c_pos + wa * c_area + ws * c_shape + wl * c_l


def match_regions(
    task: str, labels: np.ndarray, table: RegionTable, L: np.ndarray, ref: Reference
) -> Match:
    """Match every target region (``labels``, ``table``, structure ``L``) to ``ref``."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree

    n_t = table.count
    flow, _ = _flow(L, ref.L, task)
    pt, pr, share, cover, mdx, mdy = _votes(labels, ref.labels, ref.table.area, flow)
    px, py = table.cx + mdx, table.cy + mdy  # where each region's centroid moves to
    big_t = np.flatnonzero(table.area >= MIN_REGION_PX)
    big_t = big_t[big_t > 0]
    big_r = np.flatnonzero(ref.table.area >= MIN_REGION_PX)
    big_r = big_r[big_r > 0]
    region = np.full(n_t, -1, np.int64)
    cost = np.full(n_t, np.inf)
    if big_t.size == 0 or big_r.size == 0:
        return Match(region, cost, flow)

    # candidates: flow votes, plus the nearest reference regions to the moved centroid
    ok = (share >= 0.02) & (table.area[pt] >= MIN_REGION_PX) & (ref.table.area[pr] >= MIN_REGION_PX)
    cand_t, cand_r, cand_v, cand_c = [pt[ok]], [pr[ok]], [share[ok]], [cover[ok]]
    tree = cKDTree(np.stack([ref.table.cx[big_r], ref.table.cy[big_r]], 1))
    k = min(NEAREST_CANDIDATES, big_r.size)
    _, near = tree.query(np.stack([px[big_t], py[big_t]], 1), k=k)
    near = near.reshape(big_t.size, k)
    cand_t.append(np.repeat(big_t, k))
    cand_r.append(big_r[near.ravel()])
    cand_v.append(np.zeros(big_t.size * k))
    cand_c.append(np.zeros(big_t.size * k))
    ti, ri, vote, cov = (np.concatenate(c) for c in (cand_t, cand_r, cand_v, cand_c))
    # one row per pair, keeping its vote (the nearest-by-position copies vote 0)
    key = ti * ref.table.count + ri
    order = np.lexsort((-vote, key))
    key, ti, ri, vote, cov = key[order], ti[order], ri[order], vote[order], cov[order]
    first = np.concatenate([[True], key[1:] != key[:-1]])
    ti, ri, vote, cov = ti[first], ri[first], vote[first], cov[first]
    c = _costs(task, table, ref.table, ti, ri, vote, cov, px, py)

    # best candidate per target region
    order = np.lexsort((c, ti))
    ti_s, ri_s, c_s = ti[order], ri[order], c[order]
    head = np.concatenate([[True], ti_s[1:] != ti_s[:-1]])
    best_r = np.full(n_t, -1, np.int64)
    best_c = np.full(n_t, np.inf)
    best_r[ti_s[head]] = ri_s[head]
    best_c[ti_s[head]] = c_s[head]

    # global one-to-one assignment over the candidates
    rows = np.unique(ti)
    cols = np.unique(ri)
    if rows.size * cols.size <= MAX_ASSIGNMENT_CELLS:
        big = 10.0
        mat = np.full((rows.size, cols.size), big)
        mat[np.searchsorted(rows, ti), np.searchsorted(cols, ri)] = c
        r_idx, c_idx = linear_sum_assignment(mat)
        got = mat[r_idx, c_idx] < big
        hung_t, hung_r, hung_c = rows[r_idx[got]], cols[c_idx[got]], mat[r_idx[got], c_idx[got]]
        keep_h = hung_c <= best_c[hung_t] + SPLIT_SLACK
        region[hung_t[keep_h]] = hung_r[keep_h]
        cost[hung_t[keep_h]] = hung_c[keep_h]
    rest = (region < 0) & (best_r >= 0)  # not assigned, or a split: share the best
    region[rest] = best_r[rest]
    cost[rest] = best_c[rest]
    refused = cost >= ACCEPT_COST
    region[refused] = -1
    cost[refused] = np.inf
    return Match(region, cost, flow)


@dataclass(frozen=True, eq=False)
class FrameColors:
    """What the references give a target frame."""

    labels: np.ndarray  #: the target's regions
    L: np.ndarray  #: the target's structure lightness
    table: RegionTable  #: the target's region descriptors
    lab: np.ndarray  #: [n+1, 3] color of each region (valid where ``matched``)
    matched: np.ndarray  #: [n+1] bool: the color comes from a reference
    source: np.ndarray  #: [n+1] int: index of the reference used (-1 none)
    ref_region: np.ndarray  #: [n+1] int: the matched region of that reference
    cost: np.ndarray  #: [n+1] float: match cost (inf none)
    flows: tuple[np.ndarray, ...]  #: per reference: target -> reference flow (reduced size)

    def loose(self) -> np.ndarray:
        """[n+1] bool: unmatched regions too small for the model (they follow their
        neighbours); label 0 (the lines) is loose too."""
        limit = max(MIN_REGION_PX, LOOSE_SHARE * self.labels.size)
        out = ~self.matched & (self.table.area < limit)
        out[0] = True
        return out

    def unmatched_share(self) -> float:
        """Share of the frame's pixels in unmatched regions that go to the model."""
        need = ~self.matched & ~self.loose()
        return float(self.table.area[need].sum() / max(1, self.labels.size))


def colors_from_references(
    frame: np.ndarray, task: str, references: list[Reference]
) -> FrameColors:
    """Match the regions of ``frame`` to every reference; the cheapest match wins.

    A 'previous' reference pays PREVIOUS_HANDICAP, so keyframes stay the anchor.
    """
    if not references:
        raise InputError("no colored reference: give at least one keyframe")
    L = structure_lightness(frame, task)
    for ref in references:
        if ref.L.shape != L.shape:
            raise InputError(
                f"{ref.name}: the reference is {ref.L.shape[1]}x{ref.L.shape[0]} but the "
                f"frame is {L.shape[1]}x{L.shape[0]}"
            )
    labels = rg.regions_of(L, task)
    table = describe_regions(labels, L)
    best_cost = np.full(table.count, np.inf)
    best_src = np.full(table.count, -1, np.int64)
    best_region = np.full(table.count, -1, np.int64)
    lab = np.zeros((table.count, 3), np.float32)
    flows = []
    for i, ref in enumerate(references):
        m = match_regions(task, labels, table, L, ref)
        flows.append(m.flow)
        c = m.cost + (PREVIOUS_HANDICAP if ref.kind == "previous" else 0.0)
        better = c < best_cost
        best_cost[better] = c[better]
        best_src[better] = i
        best_region[better] = m.region[better]
        lab[better] = ref.colors[m.region[better]]
    matched = best_src >= 0
    matched[0] = False
    return FrameColors(
        labels, L, table, lab, matched, best_src, best_region, best_cost, tuple(flows)
    )


def previous_reference(colors: FrameColors, output: np.ndarray, task: str) -> Reference:
    """The finished frame as a reference for the next one: its regions and structure
    (already computed by the matching) with the colors of ``output`` (region means)."""
    lab = rgb_to_lab(_color01(output, "previous frame"))
    if lab.shape[:2] != colors.labels.shape:
        raise InputError("the previous output differs in size from its frame")
    core = region_core(colors.labels, CORE_PX[task])
    return Reference(
        "previous frame",
        "previous",
        lab,
        colors.L,
        colors.labels,
        colors.table,
        _region_colors(colors.labels, core, lab, "previous"),
        core,
    )


def warped_colors(
    colors: FrameColors, references: list[Reference], lines_on_top: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel Lab of a frame from its matches: (Lab HxWx3, bool HxW covered).

    Inside a matched region, a pixel takes the reference's own color where the flow
    lands it in the core of the matched reference region (gradients, shading and static
    areas keep the artist's exact colors), else the region's color. Line pixels follow
    the nearest pixel of a matched region, so a line's anti-aliased edge blends with the
    fill on its own side (a flow-warped reference pixel there may be the reference's own
    line, or the fill across it, and flickers from frame to frame):
    ``lines_on_top`` (line art: the frame's lines are multiplied over this fill): every
    line pixel and loose region (FrameColors.loose) takes that pixel's color. Grayscale
    (the frame keeps its own L): a line pixel takes that pixel's ab scaled by the ratio of
    their L (at most 1), unless it is much lighter than that pixel (then it is no line
    over that fill); loose regions and those pixels take the flow-warped color of the
    reference their nearest matched region uses. Pixels of unmatched regions are not
    covered.
    """
    labels = colors.labels
    h, w = labels.shape
    matched_px = colors.matched[labels]
    if not matched_px.any():
        return colors.lab[labels], matched_px
    loose_px = colors.loose()[labels]  # lines and specks follow their neighbours
    covered = matched_px | loose_px
    # a loose pixel starts from its nearest matched region (its color and reference)
    near_matched = _NearestPixel(matched_px)
    nearest = labels.reshape(-1)[near_matched[loose_px]]
    lab = rg.per_pixel(colors.lab, labels)
    lab[loose_px] = colors.lab[nearest]
    src = rg.per_pixel(np.where(colors.matched, colors.source, -1).astype(np.int32), labels)
    src[loose_px] = colors.source[nearest]
    want = rg.per_pixel(colors.ref_region.astype(np.float32), labels)
    gx, gy = _pixel_grid(h, w)
    landed = np.zeros_like(matched_px)  # pixels that took a reference pixel's own color
    for i, ref in enumerate(references):
        use = src == i
        if not use.any():
            continue
        flow = cv2.resize(colors.flows[i], (w, h), interpolation=cv2.INTER_LINEAR)
        # where the picture did not change, the reference pixel itself (no resampling)
        still = (cv2.absdiff(colors.L, ref.L) <= STILL_L).view(np.uint8)
        still = cv2.erode(still, np.ones((3, 3), np.uint8))
        mx, my = cv2.add(gx, flow[..., 0]), cv2.add(gy, flow[..., 1])
        cv2.copyTo(gx, still, mx)  # (masked copies: far faster than a masked numpy store)
        cv2.copyTo(gy, still, my)
        warped = cv2.remap(ref.lab, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        where = cv2.remap(
            ref.core, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=-1
        )
        # loose regions take the warped color wherever it lands; line art's lines take
        # theirs below (the warped pixel may be a line)
        anywhere = (loose_px & (labels != 0)) if lines_on_top else loose_px
        hit = use & (where == want)
        cv2.copyTo(warped, (hit | (use & anywhere)).view(np.uint8), lab)
        landed |= hit
    # a pixel of a matched region whose flow missed the core took the region's color:
    # the nearest pixel of the same region that landed is closer to the truth (shading
    # along a line, a region with more than one fill)
    stray = matched_px & ~loose_px & ~landed
    if landed.any() and stray.any():
        near_idx = _NearestPixel(landed)[stray]
        same = labels.reshape(-1)[near_idx] == labels[stray]
        sub = lab[stray]
        sub[same] = lab.reshape(-1, 3)[near_idx[same]]
        lab[stray] = sub
    if loose_px.any():  # lines: the nearest matched pixel (a landed one may be across)
        near_idx = near_matched[loose_px]
        near = lab.reshape(-1, 3)[near_idx]
        line = labels[loose_px] == 0
        if not lines_on_top:
            # a line drawn over a fill darkens and desaturates it, as a blend with black
            # does: the fill's ab scaled by the lightness (the frame keeps its own L)
            ratio = colors.L[loose_px] / np.maximum(colors.L.reshape(-1)[near_idx], 1.0)
            near[:, 1:] *= np.clip(ratio, 0.0, 1.0)[:, None]
            line &= ratio <= LINE_LIGHTER_MAX
        sub = lab[loose_px]
        sub[line] = near[line]
        lab[loose_px] = sub
    return lab, covered


class _NearestPixel:
    """Each pixel's nearest pixel of ``own`` (bool HxW, not all False), as flat indices
    asked for where needed: ``near[mask]`` (one distance transform per frame)."""

    def __init__(self, own: np.ndarray) -> None:
        # zeros are the pixels measured to; L1 is the cheapest metric, and which of two
        # equally near pixels wins does not matter here
        src = (~own).view(np.uint8)
        _dist, self.labels = cv2.distanceTransformWithLabels(
            src, cv2.DIST_L1, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        self.flat = np.flatnonzero(own)  # DIST_LABEL_PIXEL numbers them 1, 2, ... row-major

    def __getitem__(self, mask: np.ndarray) -> np.ndarray:
        return self.flat[self.labels[mask] - 1]


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) coordinate planes of an h x w frame, float32 (read-only, cached: remap
    maps are built from them for every reference of every frame)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def hint_maps(
    colors: FrameColors, rows: slice = slice(None), cols: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense hints (ab HxWx2, mask HxW, L HxW) over the matched regions (of the window
    ``rows`` x ``cols`` of the frame, the whole frame by default).

    Loose regions (FrameColors.loose) take the color of the nearest matched pixel, so
    small islands inside a matched region do not go to the model.
    """
    labels = colors.labels[rows, cols]
    speck = colors.loose()
    speck[0] = False
    values = np.concatenate([colors.lab, colors.matched[:, None].astype(np.float32)], 1)
    dense = values[labels]
    if speck.any() and colors.matched[labels].any():
        holes = np.where(colors.matched[labels], labels, 0)
        # every hole pixel (lines, specks, unmatched) takes its nearest matched pixel
        filled = rg.fill_lines(holes, dense)
        put = speck[labels]
        dense[put] = filled[put]
    mask = (dense[..., 3] > 0.5) & (labels > 0)
    ab = np.where(mask[..., None], dense[..., 1:3], 0).astype(np.float32)
    L = np.where(mask, dense[..., 0], 0).astype(np.float32)
    return ab, mask.astype(np.float32), L
