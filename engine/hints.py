"""Color hints: from a painted hint image, or sampled from ground truth.

A hint is an (ab, mask) pair of HxWx2 Lab units and HxW 0/1. Training and
evaluation sample hints with ``sample_hints`` (random points carrying the mean
color of a small patch, the protocol of user-guided colorization work), so the
model sees the same kind of hints that the metrics measure.
"""

from __future__ import annotations

import numpy as np

from inkhue_engine.color import rgb_to_lab, to_float01


def hints_from_rgba(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hints from an RGBA hint image (any dtype): every pixel with alpha > 0 is a hint.

    Returns (ab HxWx2 float32, mask HxW float32). The hint's color is its RGB as
    painted (alpha only decides whether the pixel is a hint).
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"a hint image must be RGBA (HxWx4), got shape {rgba.shape}")
    img = to_float01(rgba)
    mask = (img[..., 3] > 0).astype(np.float32)
    ab = rgb_to_lab(img[..., :3])[..., 1:]
    ab *= mask[..., None]
    return ab.astype(np.float32), mask


def sample_hints(
    lab: np.ndarray,
    n: int,
    rng: np.random.Generator,
    patch: int = 3,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` random point hints from a ground-truth Lab image.

    Each hint is a ``patch`` x ``patch`` square carrying the mean ab of the ground
    truth under it. ``valid`` (bool HxW) restricts where hint centres may fall
    (e.g. off the lines). Returns (ab HxWx2, mask HxW), float32.
    """
    h, w = lab.shape[:2]
    ab = np.zeros((h, w, 2), np.float32)
    mask = np.zeros((h, w), np.float32)
    if n <= 0:
        return ab, mask
    if valid is not None and valid.any():
        ys, xs = np.nonzero(valid)
        pick = rng.integers(0, ys.size, n)
        centres = np.stack([ys[pick], xs[pick]], 1)
    else:
        centres = np.stack([rng.integers(0, h, n), rng.integers(0, w, n)], 1)
    r = patch // 2
    for y, x in centres:
        y0, y1 = max(0, y - r), min(h, y + r + 1)
        x0, x1 = max(0, x - r), min(w, x + r + 1)
        ab[y0:y1, x0:x1] = lab[y0:y1, x0:x1, 1:].reshape(-1, 2).mean(0)
        mask[y0:y1, x0:x1] = 1.0
    return ab, mask
