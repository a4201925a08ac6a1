"""The one sRGB <-> CIE L*a*b* conversion of InkHue, and its constants.

Training and the engine both import this module, so a model always sees the same
preprocessing it was trained with. The conversion is OpenCV's float32 path
(D65 white, sRGB transfer curve): ~10 ms for a 1080p frame against ~100 ms for
scikit-image, and within 0.6 Lab units of it (measured, docs/FACTS.md). Never use
OpenCV's uint8 Lab: it is scaled and quantized (errors up to 2.5 in a).
CIEDE2000 comes from scikit-image, the reference implementation we trust.

Conventions: images are numpy arrays in RGB(A) channel order, HxWxC (or HxW for
gray); "float01" means float32 in [0, 1]; Lab is float32 with L in [0, 100].
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000

L_MAX = 100.0
#: Half-range used to normalize a and b: sRGB colors stay within about +-110.
AB_SCALE = 110.0

#: Pixel types the engine accepts, and the scale of their full value.
DTYPE_SCALE: dict[np.dtype, float] = {
    np.dtype(np.uint8): 255.0,
    np.dtype(np.uint16): 65535.0,
    np.dtype(np.float32): 1.0,
}


def to_float01(img: np.ndarray) -> np.ndarray:
    """Convert a uint8 / uint16 / float32 image to float32 in [0, 1].

    The bit depth comes from the dtype, never from the pixel values.
    Raises ValueError for any other dtype.
    """
    scale = DTYPE_SCALE.get(img.dtype)
    if scale is None:
        raise ValueError(f"unsupported pixel type {img.dtype}: use uint8, uint16 or float32")
    out = img.astype(np.float32, copy=True)
    if scale != 1.0:
        out /= scale
    return np.clip(out, 0.0, 1.0, out=out)


def from_float01(img01: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """Convert float [0, 1] back to ``dtype`` (uint8 / uint16 / float32), clipping first."""
    dtype = np.dtype(dtype)
    scale = DTYPE_SCALE.get(dtype)
    if scale is None:
        raise ValueError(f"unsupported pixel type {dtype}: use uint8, uint16 or float32")
    clipped = np.clip(img01, 0.0, 1.0)
    if dtype == np.float32:
        return clipped.astype(np.float32, copy=False)
    if dtype == np.uint8 and clipped.dtype == np.float32 and clipped.ndim >= 2 and clipped.size:
        # the same numbers (float32 product, rounded half to even, tests/engine/test_color.py)
        # in one multi-threaded pass instead of three: ~10x faster on a 1080p frame
        flat = np.ascontiguousarray(clipped).reshape(clipped.shape[0], -1)
        return cv2.convertScaleAbs(flat, alpha=scale).reshape(clipped.shape)
    return np.rint(clipped * scale).astype(dtype)


def on_white(img: np.ndarray) -> np.ndarray:
    """Gray / gray+alpha / RGB / RGBA (uint8, uint16 or float32) -> RGB float01 over white.

    Transparent pixels are paper, whatever color they store. ValueError for other
    channel counts.
    """
    f = to_float01(img if img.ndim == 3 else img[..., None])
    channels = f.shape[2]
    if channels in (2, 4):
        f = f[..., :-1] * f[..., -1:] + (1.0 - f[..., -1:])
    if f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    if f.shape[2] != 3:
        raise ValueError(f"cannot composite an image with {channels} channels")
    return f


def rgb_to_lab(rgb01: np.ndarray) -> np.ndarray:
    """sRGB float01 HxWx3 -> Lab float32 HxWx3 (L 0..100, a/b about -110..110)."""
    rgb = np.ascontiguousarray(rgb01, dtype=np.float32)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Lab float32 HxWx3 -> sRGB float01 HxWx3, clipped to the sRGB gamut [0, 1]."""
    lab = np.ascontiguousarray(lab, dtype=np.float32)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def gray_to_l(gray01: np.ndarray) -> np.ndarray:
    """Lightness L (0..100) of a gray float01 HxW image, as rgb_to_lab gives it."""
    gray = np.ascontiguousarray(gray01, dtype=np.float32)
    return rgb_to_lab(np.repeat(gray[..., None], 3, axis=2))[..., 0]


def rgb_to_gray01(rgb01: np.ndarray) -> np.ndarray:
    """Gray float01 with the same L as the color image (so gray -> L round-trips)."""
    lab = rgb_to_lab(rgb01)
    lab[..., 1:] = 0.0
    return lab_to_rgb(lab)[..., 0]


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 color difference between two Lab arrays (..., 3)."""
    return deltaE_ciede2000(
        np.asarray(lab1, dtype=np.float64), np.asarray(lab2, dtype=np.float64), channel_axis=-1
    ).astype(np.float32)


def hex_to_lab(colors: list[str]) -> np.ndarray:
    """List of sRGB hex strings ('#rrggbb') -> Nx3 Lab float32."""
    rgb = np.array(
        [[int(c.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)] for c in colors], np.float32
    )
    return rgb_to_lab((rgb / 255.0).reshape(-1, 1, 3)).reshape(-1, 3)


def lab_to_hex(lab: np.ndarray) -> list[str]:
    """Nx3 Lab -> list of sRGB hex strings, clipped to the gamut."""
    rgb = lab_to_rgb(np.asarray(lab, np.float32).reshape(-1, 1, 3)).reshape(-1, 3)
    q = np.rint(rgb * 255).astype(int)
    return ["#" + "".join(f"{v:02x}" for v in px) for px in q]
