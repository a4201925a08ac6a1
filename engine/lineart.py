"""Synthetic line art from a color image, for training the line-art task.

There are no real line-art / color pairs in the corpus (docs/FACTS.md), so the input of
the line-art model is drawn from the color frame itself: an XDoG-style soft
threshold of a difference of Gaussians on L (the dark side of every lightness
edge), united with Canny edges of the color image (outlines between regions of
equal lightness but different hue), thickened and lightly anti-aliased. The result
is an L image, 100 = paper and ~0 = ink, that the engine's ``lineart_lines``
(L below 60) reads as lines. Pure numpy / OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inkhue_engine.color import rgb_to_lab


@dataclass(frozen=True)
class LineStyle:
    """Parameters of one synthesized drawing (randomized per image in training)."""

    sigma: float = 0.8  #: DoG inner sigma, px
    k: float = 1.6  #: DoG outer sigma = k * sigma
    tau: float = 0.012  #: DoG threshold on L/100: weaker edges stay paper
    phi: float = 120.0  #: XDoG softness: larger = harder ink edges
    canny_low: int = 40
    canny_high: int = 110
    thickness: int = 1  #: extra dilation radius of the ink, px (0 = as detected)
    ink: float = 5.0  #: L of the ink (0..100)
    blur: float = 0.5  #: anti-aliasing sigma, px (0 = none)


def random_style(rng: np.random.Generator) -> LineStyle:
    """A drawing style with jittered sigma, threshold, thickness and ink darkness."""
    return LineStyle(
        sigma=float(rng.uniform(0.6, 1.2)),
        tau=float(rng.uniform(0.008, 0.02)),
        phi=float(rng.uniform(60, 200)),
        canny_low=int(rng.integers(30, 60)),
        canny_high=int(rng.integers(90, 160)),
        thickness=int(rng.integers(0, 2)),
        ink=float(rng.uniform(0, 15)),
        blur=float(rng.uniform(0.0, 0.7)),
    )


def xdog_ink(L: np.ndarray, style: LineStyle = LineStyle()) -> np.ndarray:
    """Ink coverage 0..1 (1 = black) of an XDoG soft threshold of L (0..100). HxW float32."""
    img = np.asarray(L, np.float32) / 100.0
    g1 = cv2.GaussianBlur(img, (0, 0), style.sigma)
    g2 = cv2.GaussianBlur(img, (0, 0), style.sigma * style.k)
    dog = g1 - g2  # 0 on flat areas, negative on the dark side of an edge
    # XDoG: 1 above the threshold, 1 + tanh(phi (u - eps)) below it; here as ink = 1 - that
    paper = np.where(dog >= -style.tau, 1.0, 1.0 + np.tanh(style.phi * (dog + style.tau)))
    return np.clip(1.0 - paper, 0.0, 1.0).astype(np.float32)


def color_edges(rgb01: np.ndarray, style: LineStyle = LineStyle()) -> np.ndarray:
    """Canny edges of the color image (max gradient over channels). Bool HxW."""
    rgb8 = np.clip(np.asarray(rgb01, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.Canny(rgb8, style.canny_low, style.canny_high, L2gradient=True) > 0


def synthesize_lineart(
    rgb01: np.ndarray,
    rng: np.random.Generator | None = None,
    style: LineStyle | None = None,
) -> np.ndarray:
    """Line-art L (float32 HxW, 100 = paper, ~``style.ink`` = lines) of an sRGB float01 image.

    ``style`` fixes the drawing; otherwise a random one is drawn from ``rng`` (or the
    default style without ``rng``), so training sees varied line weights.
    """
    rgb01 = np.asarray(rgb01, np.float32)
    if rgb01.ndim != 3 or rgb01.shape[2] != 3:
        raise ValueError(f"expected an RGB image HxWx3, got shape {rgb01.shape}")
    if style is None:
        style = random_style(rng) if rng is not None else LineStyle()
    L = rgb_to_lab(rgb01)[..., 0]
    ink = np.maximum(xdog_ink(L, style), color_edges(rgb01, style).astype(np.float32))
    if style.thickness > 0:
        size = 2 * style.thickness + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        ink = cv2.dilate(ink, kernel)
    if style.blur > 0:
        ink = cv2.GaussianBlur(ink, (0, 0), style.blur)
        ink = np.clip(ink * 1.5, 0.0, 1.0)  # keep line cores fully inked after the blur
    out = 100.0 - (100.0 - style.ink) * ink
    return out.astype(np.float32)
