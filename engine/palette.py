"""Palettes: Krita ``.kpl`` and GIMP ``.gpl`` files, and snapping colors to them.

A palette is a list of sRGB hex strings ('#rrggbb'). Snapping measures the
distance with CIEDE2000 (inkhue_engine.color.delta_e_2000), the metric the
palette lock of the pipeline promises.

Krita palettes (.kpl) are zip files whose ``colorset.xml`` holds ``ColorSetEntry``
elements (directly under ``Colorset`` or inside ``Group`` elements). Each entry
holds one color element; those read here:

- ``<RGB r= g= b= space=...>`` and ``<sRGB r= g= b=>``: floats 0..1. A ``space``
  whose profile name marks linear light ('g10', 'linear', 'scene') is converted with
  the sRGB transfer curve; any other profile is taken as sRGB.
- ``<Gray g=>``: 0..1.
- ``<Lab L= a= b=>``: Krita has written both L 0..100 / a,b -128..127 and a
  normalized form (all 0..1, a and b centred on 0.5); the normalized form is taken
  when all three values lie in [0, 1].
- ``<CMYK c= m= y= k=>``: 0..1, converted without a profile (naive).
- ``<XYZ x= y= z=>``: D65, Y 0..1.

``extract_palette`` reads a studio's palette from its colored frames (the flat colors
of the regions between lines and color borders, merged by CIEDE2000, sorted by
coverage); ``inkhue finetune`` stores it in the model (``inkhue.palette``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np

from inkhue_engine.color import delta_e_2000, lab_to_hex, lab_to_rgb, rgb_to_lab, to_float01
from inkhue_engine.errors import InputError

#: Largest number of (color, palette color) pairs compared at once by snap_lab_to_palette.
_SNAP_CHUNK_PAIRS = 2_000_000
_HEX_RE = re.compile(r"^#?[0-9a-fA-F]{6}$")
#: Most colors a palette lock takes. Snapping costs (distinct colors of a frame) x
#: (palette colors) CIEDE2000 evaluations while the frame holds an inference slot:
#: 30,000 distinct colors take 0.18 s against 16 colors, 3.0 s against 256 and 11 s
#: against 1,000 (snap_lab_to_palette, 2-core CPU). Krita and GIMP palettes hold 256
#: colors or fewer.
MAX_PALETTE_COLORS = 256


def check_palette_length(count: int, where: str) -> None:
    """InputError when a palette of ``count`` colors is over MAX_PALETTE_COLORS."""
    if count > MAX_PALETTE_COLORS:
        raise InputError(
            f"{where}: {count} colors is over the limit of {MAX_PALETTE_COLORS} for a "
            f"palette lock: keep the colors the frames really use"
        )


def normalize_hex(color: str) -> str:
    """'#RRGGBB' / 'rrggbb' -> '#rrggbb'. Raises InputError for anything else."""
    if not isinstance(color, str) or not _HEX_RE.match(color.strip()):
        raise InputError(f"palette color {color!r} is not a hex color: use '#rrggbb'")
    return "#" + color.strip().lstrip("#").lower()


def _hex_of_rgb01(rgb: tuple[float, float, float]) -> str:
    q = [int(round(min(max(float(v), 0.0), 1.0) * 255)) for v in rgb]
    return "#" + "".join(f"{v:02x}" for v in q)


def _linear_to_srgb(v: float) -> float:
    v = min(max(v, 0.0), 1.0)
    return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def load_palette(path: str | Path) -> list[str]:
    """Read a Krita ``.kpl`` or GIMP ``.gpl`` palette: list of '#rrggbb', in file order.

    The format is chosen by the content (a zip is a .kpl, text starting with
    'GIMP Palette' a .gpl), so a misnamed file still loads. Raises InputError naming
    the file (and the line or entry) when it cannot be read or holds no color.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: palette file not found")
    if zipfile.is_zipfile(path):
        colors = _load_kpl(path)
    else:
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        if not text.lstrip().startswith("GIMP Palette"):
            raise InputError(
                f"{path}: not a palette: expected a Krita .kpl (zip) or a GIMP .gpl "
                "(text starting with 'GIMP Palette')"
            )
        colors = _parse_gpl(text, path)
    if not colors:
        raise InputError(f"{path}: the palette holds no colors")
    check_palette_length(len(colors), str(path))
    return colors


def _parse_gpl(text: str, path: Path) -> list[str]:
    """GIMP palette: header line, optional Name:/Columns:, '#' comments, 'R G B [name]'."""
    colors: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if lineno == 1 or not line or line.startswith("#"):
            continue
        if re.match(r"^(Name|Columns)\s*:", line, re.IGNORECASE):
            continue
        parts = line.split(None, 3)
        try:
            rgb = [int(p) for p in parts[:3]]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise InputError(
                f"{path}: line {lineno}: expected 'R G B [name]' with values 0..255, "
                f"got {line[:60]!r}"
            )
        colors.append("#" + "".join(f"{v:02x}" for v in rgb))
    return colors


def _load_kpl(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n.lower(): n for n in zf.namelist()}
            if "colorset.xml" not in names:
                raise InputError(f"{path}: not a Krita palette: the zip has no colorset.xml")
            xml = zf.read(names["colorset.xml"])
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: cannot read the Krita palette: {exc}") from exc
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        line = exc.position[0] if exc.position else "?"
        raise InputError(f"{path}: colorset.xml line {line}: broken XML ({exc})") from exc
    colors = []
    for i, entry in enumerate(root.iter("ColorSetEntry"), start=1):
        name = entry.get("name") or entry.get("id") or f"#{i}"
        colors.append(_kpl_entry_hex(entry, path, f"entry {i} ({name})"))
    return colors


def _attrs(elt: ElementTree.Element, keys: tuple[str, ...], path: Path, where: str) -> list[float]:
    try:
        return [float(elt.attrib[k]) for k in keys]
    except (KeyError, ValueError) as exc:
        raise InputError(
            f"{path}: colorset.xml {where}: <{elt.tag}> needs numeric attributes {', '.join(keys)}"
        ) from exc


def _kpl_entry_hex(entry: ElementTree.Element, path: Path, where: str) -> str:
    for elt in entry:
        tag = elt.tag
        if tag in ("RGB", "sRGB"):
            r, g, b = _attrs(elt, ("r", "g", "b"), path, where)
            space = (elt.get("space") or "").lower()
            if any(k in space for k in ("g10", "linear", "scene")):
                r, g, b = (_linear_to_srgb(v) for v in (r, g, b))
            return _hex_of_rgb01((r, g, b))
        if tag == "Gray":
            (g,) = _attrs(elt, ("g",), path, where)
            return _hex_of_rgb01((g, g, g))
        if tag == "Lab":
            L, a, b = _attrs(elt, ("L", "a", "b"), path, where)
            if all(0.0 <= v <= 1.0 for v in (L, a, b)):  # normalized form
                L, a, b = L * 100.0, (a - 0.5) * 255.0, (b - 0.5) * 255.0
            rgb = lab_to_rgb(np.array([[[L, a, b]]], np.float32))[0, 0]
            return _hex_of_rgb01(tuple(rgb))
        if tag == "CMYK":
            c, m, y, k = _attrs(elt, ("c", "m", "y", "k"), path, where)
            return _hex_of_rgb01(tuple((1 - v) * (1 - k) for v in (c, m, y)))
        if tag == "XYZ":
            xyz = np.array([[_attrs(elt, ("x", "y", "z"), path, where)]], np.float32)
            rgb = cv2.cvtColor(xyz, cv2.COLOR_XYZ2RGB)[0, 0]  # linear sRGB
            return _hex_of_rgb01(tuple(_linear_to_srgb(float(v)) for v in rgb))
    raise InputError(
        f"{path}: colorset.xml {where}: no color element this reader knows "
        "(RGB, sRGB, Gray, Lab, CMYK, XYZ)"
    )


def snap_lab_to_palette(
    lab_values: np.ndarray, palette_lab: np.ndarray, own_lightness: bool = False
) -> np.ndarray:
    """Index of the nearest palette color (CIEDE2000) for each of N Lab colors.

    ``lab_values`` Nx3, ``palette_lab`` Mx3 (both Lab). With ``own_lightness`` each
    value is compared with the palette colors *at its own L* (palette a, b; value L):
    the nearest hue and chroma, as the grayscale palette lock wants (the frame keeps
    its shading). Returns int64 indices [N]. Works in chunks so that N x M stays
    bounded in memory.
    """
    lab = np.asarray(lab_values, np.float32).reshape(-1, 3)
    pal = np.asarray(palette_lab, np.float32).reshape(-1, 3)
    if pal.shape[0] == 0:
        raise InputError("the palette holds no colors")
    out = np.empty(lab.shape[0], np.int64)
    step = max(1, _SNAP_CHUNK_PAIRS // pal.shape[0])
    for start in range(0, lab.shape[0], step):
        chunk = lab[start : start + step]
        cand = np.broadcast_to(pal[None, :, :], (chunk.shape[0], *pal.shape))
        if own_lightness:
            cand = cand.copy()
            cand[..., 0] = chunk[:, None, 0]
        d = delta_e_2000(chunk[:, None, :], cand)  # [n, M]
        out[start : start + step] = np.argmin(d, axis=1)
    return out


def snap_regions_to_palette(
    region_lab: np.ndarray,
    palette_lab: np.ndarray,
    own_lightness: bool = False,
    region_hint_ab: np.ndarray | None = None,
    region_hinted: np.ndarray | None = None,
) -> np.ndarray:
    """The palette lock by region: one palette index per region, int64 [n+1] (index = label).

    ``region_lab`` [n+1, 3]: one Lab color per region, the region's median prediction
    (grayscale: median L of the frame, median predicted ab). A region with a hint
    (``region_hinted`` [n+1] bool, ``region_hint_ab`` [n+1, 2]) snaps its hint's color
    instead (at the region's L): the artist's choice beats the model's. With
    ``own_lightness`` hue and chroma are compared at the region's L (grayscale: the frame
    keeps its shading, every pixel of the region gets the palette color's ab).

    Snapping whole regions, never single pixels, keeps a mottled area from breaking into
    blotches of two palette colors with stray specks. The region's median was chosen over
    a per-pixel vote (plain or weighted by predicted chroma) by measurement on dev images
    (docs/PALETTE.md): the vote was no better on line art and worse on grayscale sprites.
    """
    lab = np.array(region_lab, np.float32).reshape(-1, 3)
    if region_hinted is not None and region_hint_ab is not None:
        hinted = np.asarray(region_hinted, bool)
        lab[hinted, 1:] = np.asarray(region_hint_ab, np.float32)[hinted]
    return snap_lab_to_palette(lab, palette_lab, own_lightness)


# --------------------------------------------------------------------------- class evidence
#: Decoding a palette lock from a classification model's color distribution (chosen on
#: the line-art dev images outside the model card's, docs/PALETTE.md): the class
#: probabilities are read at this softmax temperature (below 1: sharper than the raw
#: distribution), a class counts for a palette color by a Gaussian of its ab distance
#: (this sigma, Lab units), and a region's lightness (line art) by a Gaussian of
#: EVIDENCE_SIGMA_L.
EVIDENCE_TEMPERATURE = 1.0
EVIDENCE_SIGMA_AB = 20.0
EVIDENCE_SIGMA_L = 30.0
#: Floor of a region's evidence before its log (a palette color no class supports).
_EVIDENCE_FLOOR = 1e-6
#: Pixels whose class distribution palette_evidence handles at once (bounds temporaries).
_EVIDENCE_BLOCK = 1 << 16


def class_kernel(
    ab_classes: np.ndarray, ab: np.ndarray, sigma_ab: float = EVIDENCE_SIGMA_AB
) -> np.ndarray:
    """How much each color class counts for each of M colors: float32 [Q, M], a Gaussian
    of their ab distance (``ab_classes`` [Q, 2], ``ab`` [M, 2], Lab units)."""
    centers = np.asarray(ab_classes, np.float32).reshape(-1, 2)
    ab = np.asarray(ab, np.float32).reshape(-1, 2)
    d2 = ((centers[:, None, :] - ab[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / np.float32(2.0 * sigma_ab * sigma_ab)).astype(np.float32)


def palette_evidence(
    logits: np.ndarray,
    ab_classes: np.ndarray,
    palette_lab: np.ndarray,
    temperature: float = EVIDENCE_TEMPERATURE,
    sigma_ab: float = EVIDENCE_SIGMA_AB,
) -> np.ndarray:
    """How much of each pixel's predicted color distribution lies near each palette color.

    ``logits`` [H, W, Q] (a classification model's ``ab_logits``), ``ab_classes`` [Q, 2]
    (their ab), ``palette_lab`` [M, 3]. Returns float32 [M, H, W]: sum over classes of
    softmax(logits / temperature) x exp(-|ab_class - ab_palette|^2 / (2 sigma_ab^2)).
    Unlike the nearest palette color to the predicted (mean) color, this keeps a pixel
    torn between blue and red from choosing the palette's purple or gray.
    """
    logits = np.asarray(logits, np.float32)
    h, w, q = logits.shape
    flat = logits.reshape(-1, q)
    pal_ab = np.asarray(palette_lab, np.float32).reshape(-1, 3)[:, 1:]
    kernel = class_kernel(ab_classes, pal_ab, sigma_ab)
    out = np.empty((pal_ab.shape[0], h * w), np.float32)
    # in blocks of pixels: a 2 MPx working image has 0.5 G logits, never copied at once
    for start in range(0, flat.shape[0], _EVIDENCE_BLOCK):
        z = flat[start : start + _EVIDENCE_BLOCK] / np.float32(temperature)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        out[:, start : start + z.shape[0]] = (z @ kernel).T
    return out.reshape(-1, h, w)


def snap_regions_by_evidence(
    region_lab: np.ndarray,
    region_evidence: np.ndarray,
    has_evidence: np.ndarray,
    palette_lab: np.ndarray,
    own_lightness: bool = False,
    region_hint_ab: np.ndarray | None = None,
    region_hinted: np.ndarray | None = None,
    sigma_l: float = EVIDENCE_SIGMA_L,
) -> np.ndarray:
    """The palette lock by region from class evidence: one palette index per region.

    ``region_evidence`` [n+1, M]: each region's mean ``palette_evidence``;
    ``has_evidence`` [n+1] bool: False where the region had no pixel at the model's
    working size (it snaps its median as ``snap_regions_to_palette`` does, as do hinted
    regions: the artist's choice beats the model's). A region takes the palette color of
    least -log(evidence), plus, unless ``own_lightness`` (grayscale keeps the frame's
    L), (L_region - L_palette)^2 / (2 sigma_l^2) with the region's predicted L.
    """
    entry = snap_regions_to_palette(
        region_lab, palette_lab, own_lightness, region_hint_ab, region_hinted
    )
    use = np.asarray(has_evidence, bool).copy()
    if region_hinted is not None:
        use &= ~np.asarray(region_hinted, bool)
    if not use.any():
        return entry
    ev = np.asarray(region_evidence, np.float64)[use]
    cost = -np.log(np.maximum(ev, _EVIDENCE_FLOOR))
    if not own_lightness:
        pal = np.asarray(palette_lab, np.float64).reshape(-1, 3)
        L = np.asarray(region_lab, np.float64).reshape(-1, 3)[use, :1]
        cost += (L - pal[None, :, 0]) ** 2 / (2.0 * sigma_l * sigma_l)
    entry[use] = np.argmin(cost, axis=1)
    return entry


# --------------------------------------------------------------------------- extraction
#: Frames are scaled down to this short side before their palette is read (speed; flat
#: regions survive area resampling, their anti-aliased borders are boundaries anyway).
EXTRACT_SHORT_SIDE = 512
#: Two neighbouring pixels further apart than this (CIE76, Lab units) lie on a boundary:
#: a line, an anti-aliased edge or the border between two flat colors.
EXTRACT_EDGE_DE = 6.0
#: A region counts when its pixels lie within this mean CIE76 distance of its median: flat
#: fills and soft gradients (their median is the color), not texture or photos.
EXTRACT_FLAT_DE = 12.0
#: Regions smaller than this share of their frame are noise (texture, line ends).
EXTRACT_MIN_REGION = 0.0005
#: Colors closer than this (CIEDE2000) are one palette color.
EXTRACT_MERGE_DE = 5.0
#: Colors covering less than this share of the frames (on average) are dropped.
EXTRACT_MIN_COVERAGE = 0.002
#: Paper: light and nearly neutral. Ink: dark and nearly neutral (Lab L, chroma).
PAPER_MIN_L, PAPER_MAX_CHROMA = 93.0, 6.0
INK_MAX_L, INK_MAX_CHROMA = 20.0, 10.0


@dataclass(frozen=True)
class PaletteColor:
    """One color of an extracted palette: its hex, Lab, share of the frames and role.

    ``coverage``: mean share of a frame's pixels in flat regions of this color.
    ``role``: 'fill' (a color the production paints with), 'paper' (near-white
    background) or 'ink' (near-black lines and their fills).
    """

    hex: str
    lab: tuple[float, float, float]
    coverage: float
    role: str


def _flat_regions(rgb01: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median Lab [k,3], share of the frame [k]) of the flat regions of one frame.

    Regions are the areas between boundaries (inkhue_engine.regions.label_regions); a
    boundary is wherever neighbouring pixels differ by more than EXTRACT_EDGE_DE, so
    drawn lines, anti-aliased edges and borders between flat colors all split regions.
    """
    from inkhue_engine.regions import label_regions, region_means, region_medians

    lab = rgb_to_lab(rgb01)
    diff_x = np.linalg.norm(np.diff(lab, axis=1), axis=-1) > EXTRACT_EDGE_DE
    diff_y = np.linalg.norm(np.diff(lab, axis=0), axis=-1) > EXTRACT_EDGE_DE
    edges = weight <= 0.5  # transparent pixels are no region
    edges[:, :-1] |= diff_x
    edges[:, 1:] |= diff_x
    edges[:-1, :] |= diff_y
    edges[1:, :] |= diff_y
    labels = label_regions(edges)
    if labels.max() == 0:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.float64)
    medians = region_medians(labels, lab)
    # flatness: mean distance of a region's pixels to its median
    dist = np.linalg.norm(lab - medians[labels], axis=-1)
    spread, area = region_means(labels, dist[..., None], np.ones(labels.shape, np.float32))
    keep = (area >= max(4.0, EXTRACT_MIN_REGION * labels.size)) & (spread[:, 0] <= EXTRACT_FLAT_DE)
    keep[0] = False  # label 0: the boundaries themselves
    return medians[keep], area[keep] / labels.size


def _role(lab: np.ndarray) -> str:
    chroma = float(np.hypot(lab[1], lab[2]))
    if lab[0] >= PAPER_MIN_L and chroma <= PAPER_MAX_CHROMA:
        return "paper"
    if lab[0] <= INK_MAX_L and chroma <= INK_MAX_CHROMA:
        return "ink"
    return "fill"


def palette_colors(
    images: Iterable[np.ndarray], max_colors: int = 16, merge_de: float = EXTRACT_MERGE_DE
) -> list[PaletteColor]:
    """The flat colors of a set of colored frames, merged, with their coverage and role.

    ``images``: RGB(A) or gray arrays (uint8 / uint16 / float32); transparent pixels
    are ignored. Each frame is split into regions at its lines and color borders; the
    flat regions give their median color, weighted by area. Colors closer than
    ``merge_de`` (CIEDE2000) merge into their most covering one; colors covering less
    than EXTRACT_MIN_COVERAGE of the frames are dropped. Returns up to ``max_colors``
    fills sorted by coverage (most used first), then the paper and ink colors if the
    frames have them (at most one of each). Raises InputError when no image is given.
    """
    if max_colors < 1:
        raise InputError(f"max_colors {max_colors}: use 1 or more")
    labs, shares = [], []
    count = 0
    for img in images:
        count += 1
        f = to_float01(np.asarray(img))
        if f.ndim == 2:
            f = np.repeat(f[..., None], 3, axis=2)
        weight = f[..., 3] if f.shape[2] == 4 else np.ones(f.shape[:2], np.float32)
        rgb = np.ascontiguousarray(f[..., :3])
        short = min(rgb.shape[:2])
        if short > EXTRACT_SHORT_SIDE:
            s = EXTRACT_SHORT_SIDE / short
            size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
        lab, share = _flat_regions(rgb, weight)
        labs.append(lab)
        shares.append(share)
    if count == 0:
        raise InputError("no frames to read a palette from")
    lab = np.concatenate(labs).astype(np.float32)
    share = np.concatenate(shares) / count
    # greedy merge, most covering first: each color joins the first cluster whose seed
    # is within merge_de; a cluster's color is the coverage-weighted mean of its members
    order = np.argsort(-share, kind="stable")
    seeds: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    weights: list[float] = []
    for i in order:
        if seeds:
            d = delta_e_2000(np.asarray(seeds), np.broadcast_to(lab[i], (len(seeds), 3)))
            j = int(np.argmin(d))
            if d[j] < merge_de:
                sums[j] += lab[i] * share[i]
                weights[j] += float(share[i])
                continue
        seeds.append(lab[i])
        sums.append(lab[i].astype(np.float64) * share[i])
        weights.append(float(share[i]))
    clusters = sorted(
        ((s / w, w) for s, w in zip(sums, weights, strict=True) if w >= EXTRACT_MIN_COVERAGE),
        key=lambda c: -c[1],
    )
    fills: list[PaletteColor] = []
    neutrals: dict[str, PaletteColor] = {}
    for center, weight in clusters:
        role = _role(center)
        color = PaletteColor(
            hex=lab_to_hex(center[None, :])[0],
            lab=tuple(round(float(v), 2) for v in center),
            coverage=float(weight),
            role=role,
        )
        if role == "fill":
            if len(fills) < max_colors:
                fills.append(color)
        elif role not in neutrals:  # the most covering paper / ink
            neutrals[role] = color
    return fills + [neutrals[r] for r in ("paper", "ink") if r in neutrals]


def extract_palette(
    images: Iterable[np.ndarray], max_colors: int = 16, neutrals: bool = False
) -> list[str]:
    """The studio palette of a set of colored frames: its flat fill colors as '#rrggbb'.

    Sorted by coverage (most used first), at most ``max_colors``. Near-white paper
    and near-black lines are not fills and are left out, unless ``neutrals`` is set:
    then the paper and ink colors the frames have are appended after the fills (a
    palette lock needs them, or paper and lines would snap to a fill color).
    See palette_colors for the method.
    """
    colors = palette_colors(images, max_colors=max_colors)
    return [c.hex for c in colors if neutrals or c.role == "fill"]
