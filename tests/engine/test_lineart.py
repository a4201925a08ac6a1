"""Synthetic line art: paper where the picture is flat, ink on its outlines."""

from __future__ import annotations

import numpy as np
import pytest

from inkhue_engine.color import lab_to_rgb
from inkhue_engine.lineart import LineStyle, synthesize_lineart
from inkhue_engine.regions import lineart_lines, regions_of


def _two_hues_same_L(h=64, w=64) -> np.ndarray:
    """Left half red-ish, right half green-ish, both with L = 60 (no lightness edge)."""
    lab = np.zeros((h, w, 3), np.float32)
    lab[..., 0] = 60
    lab[:, : w // 2, 1:] = (50, 30)
    lab[:, w // 2 :, 1:] = (-50, 30)
    return lab_to_rgb(lab)


def _disc(h=64, w=64) -> np.ndarray:
    rgb = np.ones((h, w, 3), np.float32)
    yy, xx = np.mgrid[:h, :w]
    inside = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 4) ** 2
    rgb[inside] = (0.2, 0.3, 0.9)
    return rgb


def test_flat_image_is_blank_paper():
    L = synthesize_lineart(np.full((32, 48, 3), 0.4, np.float32))
    assert L.shape == (32, 48) and L.dtype == np.float32
    assert np.all(L == 100.0)


def test_outline_of_a_disc_is_inked_and_splits_regions():
    L = synthesize_lineart(_disc())
    lines = lineart_lines(L)
    assert 0.02 < lines.mean() < 0.3
    assert L.min() < 20  # real ink, not a gray smudge
    assert L[32, 32] == 100.0 and L[2, 2] == 100.0  # inside and outside stay paper
    labels = regions_of(L, "lineart")
    assert labels[32, 32] > 0 and labels[2, 2] > 0
    assert labels[32, 32] != labels[2, 2]  # the outline separates the two regions


def test_hue_only_boundary_gets_a_line():
    L = synthesize_lineart(_two_hues_same_L())
    assert lineart_lines(L)[:, 28:36].any(axis=1).all()  # a line down the middle
    assert np.all(L[:, :20] == 100.0) and np.all(L[:, -20:] == 100.0)


def test_thickness_and_randomness():
    thin = synthesize_lineart(_disc(), style=LineStyle(thickness=0, blur=0))
    thick = synthesize_lineart(_disc(), style=LineStyle(thickness=2, blur=0))
    assert lineart_lines(thick).sum() > lineart_lines(thin).sum() * 1.3
    a = synthesize_lineart(_disc(), rng=np.random.default_rng(1))
    b = synthesize_lineart(_disc(), rng=np.random.default_rng(1))
    assert np.array_equal(a, b)
    others = [synthesize_lineart(_disc(), rng=np.random.default_rng(s)) for s in range(2, 6)]
    assert any(not np.array_equal(a, o) for o in others)


def test_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB"):
        synthesize_lineart(np.zeros((8, 8), np.float32))
