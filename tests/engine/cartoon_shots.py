"""Test helpers: a small outlined cartoon, its grayscale and line-art inputs, and a
color check inside a fill (shared by the keyframe tests)."""

from __future__ import annotations

import cv2
import numpy as np

from inkhue_engine.color import delta_e_2000, from_float01, rgb_to_gray01, rgb_to_lab, to_float01

# Fill colors (RGB) of the cartoon: skin, shirt, hat, a ball, the background.
SKIN, SHIRT, HAT, BALL, PAPER = (
    (236, 188, 150),
    (40, 90, 200),
    (200, 40, 40),
    (60, 170, 70),
    (245, 240, 225),
)


def cartoon(
    dx: int = 0,
    dy: int = 0,
    ball: int = 0,
    new_star: bool = False,
    size: tuple[int, int] = (120, 160),
) -> np.ndarray:
    """A colored, outlined cartoon (uint8 RGB): a body moved by (dx, dy), a ball moving on
    its own by ``ball`` px, and optionally a star that the keyframe does not have."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = PAPER
    body = [
        ((40 + dx, 30 + dy), (80 + dx, 100 + dy), SHIRT),
        ((48 + dx, 8 + dy), (72 + dx, 30 + dy), SKIN),
        ((44 + dx, 2 + dy), (76 + dx, 10 + dy), HAT),
    ]
    for p0, p1, color in body:
        cv2.rectangle(img, p0, p1, color, -1)
        cv2.rectangle(img, p0, p1, (0, 0, 0), 2)
    cv2.circle(img, (120 + ball, 80), 14, BALL, -1)
    cv2.circle(img, (120 + ball, 80), 14, (0, 0, 0), 2)
    if new_star:
        cv2.circle(img, (20, 100), 12, (250, 220, 30), -1)
        cv2.circle(img, (20, 100), 12, (0, 0, 0), 2)
    return img


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """The grayscale input of a colored frame: the gray of its own Lab L, 8-bit."""
    return from_float01(rgb_to_gray01(to_float01(rgb)), np.uint8)


def lines_of(rgb: np.ndarray) -> np.ndarray:
    """The line-art input of a colored frame: its black outlines on white."""
    dark = rgb.max(axis=2) < 40
    return np.where(dark, 0, 255).astype(np.uint8)


def interior_de(out: np.ndarray, truth: np.ndarray, color: tuple[int, int, int]) -> float:
    """Mean CIEDE2000 of ``out`` vs ``truth`` inside the truth's pixels of ``color`` (eroded)."""
    mask = np.all(truth == np.array(color, np.uint8), axis=-1).astype(np.uint8)
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)
    assert mask.sum() > 20
    a = rgb_to_lab(to_float01(np.ascontiguousarray(out[..., :3])))[mask]
    b = rgb_to_lab(to_float01(truth))[mask]
    return float(delta_e_2000(a, b).mean())
