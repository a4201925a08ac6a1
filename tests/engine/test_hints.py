"""Hints from a painted RGBA layer and sampled from ground truth."""

import numpy as np
import pytest

from inkhue_engine import color, hints


def test_hints_from_rgba_reads_painted_pixels_only():
    img = np.zeros((4, 4, 4), np.uint8)
    img[1, 2] = [255, 0, 0, 255]
    img[3, 3] = [0, 0, 255, 10]  # faint but painted: still a hint
    ab, mask = hints.hints_from_rgba(img)
    assert mask.sum() == 2 and mask[1, 2] == 1 and mask[3, 3] == 1
    red = color.hex_to_lab(["#ff0000"])[0, 1:]
    np.testing.assert_allclose(ab[1, 2], red, atol=1e-3)
    assert not ab[0, 0].any()


def test_hints_from_rgba_needs_four_channels():
    with pytest.raises(ValueError, match="RGBA"):
        hints.hints_from_rgba(np.zeros((4, 4, 3), np.uint8))


def test_sample_hints_carries_patch_mean_and_respects_valid():
    rng = np.random.default_rng(0)
    lab = np.zeros((32, 32, 3), np.float32)
    lab[..., 1] = 20
    lab[..., 2] = -30
    valid = np.zeros((32, 32), bool)
    valid[10:20, 10:20] = True
    ab, mask = hints.sample_hints(lab, 5, rng, patch=3, valid=valid)
    ys, xs = np.nonzero(mask)
    assert ys.min() >= 9 and ys.max() <= 20 and xs.min() >= 9 and xs.max() <= 20
    np.testing.assert_allclose(ab[mask > 0], np.tile([20, -30], (int(mask.sum()), 1)))


def test_sample_hints_zero_is_empty_and_seed_is_reproducible():
    lab = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    ab, mask = hints.sample_hints(lab, 0, np.random.default_rng(0))
    assert not mask.any()
    a1 = hints.sample_hints(lab, 7, np.random.default_rng(3))
    a2 = hints.sample_hints(lab, 7, np.random.default_rng(3))
    np.testing.assert_array_equal(a1[0], a2[0])
    np.testing.assert_array_equal(a1[1], a2[1])
