"""Image-quality metrics of InkHue (pure numpy functions).

Which space each metric takes:

- ``psnr``, ``rmse``, ``ssim``, ``colorfulness``: sRGB. Float arrays are taken as
  float01 (peak 1); uint8 / uint16 arrays are converted by their dtype first
  (inkhue_engine.color.to_float01), so a uint8 and a float01 image compare alike.
- ``mean_ciede2000`` and ``flicker``: Lab float (L 0..100), as color.rgb_to_lab gives.

The seed's metrics were PSNR and RMSE; SSIM, CIEDE2000, colorfulness and flicker
come from docs/DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inkhue_engine.color import delta_e_2000, to_float01


def _as01(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype in (np.uint8, np.uint16):
        return to_float01(img).astype(np.float64)
    return img.astype(np.float64)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as01(a), _as01(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def rmse(rgb_a: np.ndarray, rgb_b: np.ndarray) -> float:
    """Root mean squared error over all pixels and channels, on sRGB float01."""
    a, b = _pair(rgb_a, rgb_b)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def psnr(rgb_a: np.ndarray, rgb_b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB on sRGB float01 (peak 1). Identical images: inf."""
    a, b = _pair(rgb_a, rgb_b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(1.0 / mse))


def ssim(rgb_a: np.ndarray, rgb_b: np.ndarray) -> float:
    """Structural similarity (scikit-image) on sRGB float01, channels averaged.

    HxW or HxWxC. Images smaller than the default 7 px window use the largest odd
    window that fits (at least 3 px; a smaller image raises ValueError).
    """
    from skimage.metrics import structural_similarity

    a, b = _pair(rgb_a, rgb_b)
    side = min(a.shape[0], a.shape[1])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {a.shape[:2]}")
    channel_axis = -1 if a.ndim == 3 else None
    return float(
        structural_similarity(a, b, data_range=1.0, channel_axis=channel_axis, win_size=win)
    )


def mean_ciede2000(lab_a: np.ndarray, lab_b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean CIEDE2000 difference between two Lab images (HxWx3), optionally over a mask.

    ``mask`` (bool HxW) selects the pixels; returns nan when it selects none.
    """
    lab_a = np.asarray(lab_a, np.float32)
    lab_b = np.asarray(lab_b, np.float32)
    if lab_a.shape != lab_b.shape:
        raise ValueError(f"images differ in shape: {lab_a.shape} vs {lab_b.shape}")
    if mask is not None:
        mask = np.asarray(mask, bool)
        if not mask.any():
            return float("nan")
        lab_a, lab_b = lab_a[mask], lab_b[mask]
    return float(np.mean(delta_e_2000(lab_a, lab_b), dtype=np.float64))


def colorfulness(rgb01: np.ndarray) -> float:
    """Colorfulness of Hasler & Suesstrunk (2003), on sRGB scaled to 0..255.

    M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2) with
    rg = R - G and yb = (R + G) / 2 - B. On the 0..255 scale of the paper: a gray
    image is 0, ~15 'slightly', ~33 'moderately', ~59 'quite', ~82+ 'highly' colorful.
    """
    rgb = _as01(rgb01)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"colorfulness needs an HxWx3 RGB image, got shape {rgb.shape}")
    rgb = rgb[..., :3] * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    sd = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mu = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(sd + 0.3 * mu)


def flicker(
    outputs_lab: Sequence[np.ndarray], inputs: Sequence[np.ndarray], tol: float = 0.0
) -> float:
    """Temporal flicker of a colorized sequence: mean CIEDE2000 between consecutive
    outputs (Lab HxWx3), over the pixels whose INPUT did not change.

    A pixel is static between frames t and t+1 when every channel of the input
    differs by at most ``tol`` (in the inputs' own units: e.g. 0..255 for uint8, or
    L units when the inputs are L arrays). The mean pools all static pixels of all
    consecutive pairs. Returns nan when there are no static pixels (or < 2 frames).
    """
    if len(outputs_lab) != len(inputs):
        raise ValueError(f"{len(outputs_lab)} outputs but {len(inputs)} inputs")
    total, count = 0.0, 0
    for t in range(len(inputs) - 1):
        a_in = np.asarray(inputs[t], np.float64)
        b_in = np.asarray(inputs[t + 1], np.float64)
        if a_in.shape != b_in.shape:
            raise ValueError(f"inputs {t} and {t + 1} differ in shape")
        diff = np.abs(a_in - b_in)
        static = diff <= tol if diff.ndim == 2 else np.all(diff <= tol, axis=-1)
        n = int(static.sum())
        if n == 0:
            continue
        de = delta_e_2000(
            np.asarray(outputs_lab[t], np.float32)[static],
            np.asarray(outputs_lab[t + 1], np.float32)[static],
        )
        total += float(de.sum(dtype=np.float64))
        count += n
    return total / count if count else float("nan")
