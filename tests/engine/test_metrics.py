"""Metrics on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inkhue_engine import metrics
from inkhue_engine.color import delta_e_2000, rgb_to_lab


def _img(seed=0, shape=(24, 32, 3)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_identical_images():
    a = _img()
    assert metrics.psnr(a, a) == math.inf
    assert metrics.rmse(a, a) == 0.0
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    lab = rgb_to_lab(a)
    assert metrics.mean_ciede2000(lab, lab) == 0.0


def test_known_shift():
    a = np.full((8, 8, 3), 0.5, np.float32)
    b = a + 0.1
    assert metrics.rmse(a, b) == pytest.approx(0.1, rel=1e-5)
    assert metrics.psnr(a, b) == pytest.approx(20.0, rel=1e-4)  # 10*log10(1/0.01)
    assert metrics.ssim(a, b) < 1.0


def test_uint8_is_scaled_by_dtype():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 51, np.uint8)  # 0.2
    assert metrics.rmse(a, b) == pytest.approx(0.2)
    assert metrics.psnr(a.astype(np.float32), b.astype(np.float32) / 255) == pytest.approx(
        metrics.psnr(a, b)
    )


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.psnr(_img(shape=(4, 4, 3)), _img(shape=(4, 5, 3)))


def test_ssim_small_and_gray_images():
    a = _img(shape=(5, 9))
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.ssim(a, 1 - a) < 0.5
    with pytest.raises(ValueError, match="3x3"):
        metrics.ssim(_img(shape=(2, 9)), _img(shape=(2, 9)))


def test_mean_ciede2000_known_value_and_mask():
    lab_a = np.zeros((2, 2, 3), np.float32)
    lab_a[..., 0] = 50
    lab_b = lab_a.copy()
    lab_b[0, 0] = [50, 10, 0]
    one = float(delta_e_2000(lab_a[0, 0], lab_b[0, 0]))
    assert one > 5
    assert metrics.mean_ciede2000(lab_a, lab_b) == pytest.approx(one / 4, rel=1e-5)
    mask = np.zeros((2, 2), bool)
    mask[0, 0] = True
    assert metrics.mean_ciede2000(lab_a, lab_b, mask) == pytest.approx(one, rel=1e-5)
    assert math.isnan(metrics.mean_ciede2000(lab_a, lab_b, np.zeros((2, 2), bool)))


def test_colorfulness():
    gray = np.full((10, 10, 3), 0.4, np.float32)
    assert metrics.colorfulness(gray) == pytest.approx(0.0, abs=1e-6)
    red = np.zeros((10, 10, 3), np.float32)
    red[..., 0] = 1.0
    # rg = 255, yb = 127.5, no spread: 0.3 * sqrt(255^2 + 127.5^2)
    assert metrics.colorfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-5)
    assert metrics.colorfulness(_img()) > metrics.colorfulness(gray)


def test_flicker_counts_only_static_input_pixels():
    inputs = [np.zeros((4, 4), np.uint8) for _ in range(3)]
    inputs[1][0, 0] = 200  # changes between frames 0-1 and 1-2
    outs = [np.zeros((4, 4, 3), np.float32) for _ in range(3)]
    for o in outs:
        o[..., 0] = 50
    outs[1][0, 0] = [50, 40, 0]  # a change where the input changed: not flicker
    assert metrics.flicker(outs, inputs, tol=0) == 0.0
    outs[2][3, 3] = [50, 0, 10]  # a change where the input is static: flicker
    de = float(delta_e_2000(np.array([50, 0, 0.0]), np.array([50, 0, 10.0])))
    # static pixels: 15 in pair 0-1, 15 in pair 1-2; one of them changed by de
    assert metrics.flicker(outs, inputs, tol=0) == pytest.approx(de / 30, rel=1e-5)
    # with a tolerance above the input change every pixel counts
    assert metrics.flicker(outs, inputs, tol=255) == pytest.approx(
        (float(delta_e_2000(np.array([50, 0, 0.0]), np.array([50, 40, 0.0]))) * 2 + de) / 32,
        rel=1e-5,
    )


def test_flicker_rgb_inputs_and_no_static_pixels():
    a = np.zeros((3, 3, 3), np.float32)
    b = a.copy()
    b[..., 2] = 1.0  # every pixel changes in one channel
    outs = [np.zeros((3, 3, 3), np.float32)] * 2
    assert math.isnan(metrics.flicker(outs, [a, b], tol=0.5))
    assert math.isnan(metrics.flicker(outs[:1], [a], tol=0))
    with pytest.raises(ValueError):
        metrics.flicker(outs, [a], tol=0)


def _ssim_by_hand(x: np.ndarray, y: np.ndarray, win: int = 7) -> float:
    """SSIM as Wang et al. (2004) define it, window by window: 7 x 7 uniform windows,
    sample (N - 1) variances, C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 1, the mean over
    every window that fits inside the image (no padding)."""
    c1, c2 = 0.01**2, 0.03**2
    n = win * win
    values = []
    for i in range(x.shape[0] - win + 1):
        for j in range(x.shape[1] - win + 1):
            a = x[i : i + win, j : j + win].astype(np.float64).ravel()
            b = y[i : i + win, j : j + win].astype(np.float64).ravel()
            ma, mb = a.mean(), b.mean()
            va = ((a - ma) ** 2).sum() / (n - 1)
            vb = ((b - mb) ** 2).sum() / (n - 1)
            cov = ((a - ma) * (b - mb)).sum() / (n - 1)
            values.append(
                (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
            )
    return float(np.mean(values))


def test_ssim_reference_values():
    # two flat images: only the luminance term is left, worked out by hand
    a, b = np.full((16, 16), 0.2), np.full((16, 16), 0.3)
    expected = (2 * 0.2 * 0.3 + 1e-4) / (0.2**2 + 0.3**2 + 1e-4)  # 0.923136...
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.9231360, abs=1e-7)
    # structure and contrast too: a noisy image against a darker copy with noise added
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (12, 13))
    y = np.clip(0.6 * x + 0.1 + rng.normal(0, 0.05, x.shape), 0, 1)
    assert metrics.ssim(x, y) == pytest.approx(_ssim_by_hand(x, y), abs=1e-9)
    # RGB: the channels' mean
    rgb_x = np.stack([x, 1 - x, x**2], -1)
    rgb_y = np.stack([y, 1 - y, y**2], -1)
    by_channel = np.mean([_ssim_by_hand(rgb_x[..., c], rgb_y[..., c]) for c in range(3)])
    assert metrics.ssim(rgb_x, rgb_y) == pytest.approx(by_channel, abs=1e-9)
