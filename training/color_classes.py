"""Colors as classes: quantized ab, class rebalancing and annealed-mean decoding.

After Zhang, Isola, Efros, "Colorful Image Colorization" (ECCV 2016): a regression loss
(L1 / L2) on ab converges to the conditional mean (median) of the plausible colors, a
desaturated brown when the colors are ambiguous. Predicting a distribution over quantized
ab instead, with rare (saturated) classes weighted up, keeps vivid colors; a point estimate
is read back as the annealed mean (softmax of logits / T, T = 0.38), between the mode (vivid,
but noisy) and the mean (smooth, but dull).

- ``ab_bins(grid)``: the centers of the ab grid cells (``grid`` Lab units wide) that hold
  at least one sRGB color: 313 at grid 10 in the paper; the count here depends on OpenCV's
  Lab and the sampling of the sRGB cube (see ``gamut_bins``).
- ``AbQuantizer``: ab -> nearest in-gamut class (a lookup table over the grid, no distance
  matrix: cheap on the CPU; Zhang soft-encoded over 5 neighbours instead).
- ``rebalance_weights``: per-class weights ((1 - lam) * p_smoothed + lam / Q) ** -1,
  normalized so that their expectation under p is 1 (the paper's lam = 0.5, sigma = 5).
- ``annealed_mean``: differentiable and exportable (softmax + a 1x1 product), so the ONNX
  graph still outputs ab in Lab units and the engine contract does not change.

Pure numpy except the two torch functions at the end.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from inkhue_engine.color import rgb_to_lab

#: Width of an ab class, Lab units (Zhang et al.).
GRID = 10.0
#: The ab grid spans [-AB_RANGE, AB_RANGE] on both axes (sRGB a, b lie within about -87..99).
AB_RANGE = 110.0
#: Annealed-mean temperature (Zhang et al.: 0.38).
TEMPERATURE = 0.38
#: Rebalancing: mix of the smoothed empirical prior and the uniform one, and the
#: Gaussian smoothing of the prior (in grid cells: sigma 5 Lab units).
REBALANCE_LAMBDA = 0.5
PRIOR_SIGMA = 5.0


def _grid_axis(grid: float) -> np.ndarray:
    n = int(round(2 * AB_RANGE / grid)) + 1
    return (np.arange(n) * grid - AB_RANGE).astype(np.float32)


def gamut_bins(grid: float = GRID, steps: int = 64) -> np.ndarray:
    """Bool [n, n] over the ab grid: True where some sRGB color (``steps``^3 samples of
    the cube) falls into the cell."""
    axis = _grid_axis(grid)
    v = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 1, 3)
    lab = rgb_to_lab(rgb).reshape(-1, 3)
    ia = np.clip(np.rint((lab[:, 1] + AB_RANGE) / grid).astype(int), 0, len(axis) - 1)
    ib = np.clip(np.rint((lab[:, 2] + AB_RANGE) / grid).astype(int), 0, len(axis) - 1)
    occupied = np.zeros((len(axis), len(axis)), bool)
    occupied[ia, ib] = True
    return occupied


def ab_bins(grid: float = GRID) -> np.ndarray:
    """Centers [Q, 2] (a, b in Lab units) of the in-gamut ab classes, row-major over (a, b)."""
    axis = _grid_axis(grid)
    ia, ib = np.nonzero(gamut_bins(grid))
    return np.stack([axis[ia], axis[ib]], 1).astype(np.float32)


class AbQuantizer:
    """ab -> index of the nearest in-gamut class, through a lookup table over the grid.

    A grid cell outside the gamut (only reachable by a predicted or clipped color) maps
    to the nearest in-gamut center.
    """

    def __init__(self, grid: float = GRID) -> None:
        self.grid = float(grid)
        self.centers = ab_bins(grid)
        axis = _grid_axis(grid)
        cells = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
        d = ((cells[:, None, :] - self.centers[None, :, :]) ** 2).sum(-1)
        self.lut = np.argmin(d, axis=1).reshape(len(axis), len(axis)).astype(np.int64)
        self._lut_t: torch.Tensor | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes Q."""
        return int(self.centers.shape[0])

    def _cells(self, a, b, n: int, lib):
        ia = lib.clip(lib.round((a + AB_RANGE) / self.grid), 0, n - 1)
        ib = lib.clip(lib.round((b + AB_RANGE) / self.grid), 0, n - 1)
        return ia, ib

    def encode(self, ab: np.ndarray) -> np.ndarray:
        """Class index per ab pair: ``ab`` [..., 2] -> int64 [...]."""
        ab = np.asarray(ab, np.float32)
        n = self.lut.shape[0]
        ia, ib = self._cells(ab[..., 0], ab[..., 1], n, np)
        return self.lut[ia.astype(np.int64), ib.astype(np.int64)]

    def encode_torch(self, ab: torch.Tensor) -> torch.Tensor:
        """Class index per pixel: ``ab`` [N, 2, H, W] (Lab units) -> int64 [N, H, W]."""
        if self._lut_t is None or self._lut_t.device != ab.device:
            self._lut_t = torch.from_numpy(self.lut).to(ab.device)
        n = self.lut.shape[0]
        ia, ib = self._cells(ab[:, 0].float(), ab[:, 1].float(), n, torch)
        return self._lut_t[ia.long(), ib.long()]


def class_histogram(quantizer: AbQuantizer, ab_samples: np.ndarray) -> np.ndarray:
    """Empirical class distribution (sums to 1) of ab samples [..., 2]."""
    idx = quantizer.encode(ab_samples).ravel()
    counts = np.bincount(idx, minlength=quantizer.n_classes).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.full(quantizer.n_classes, 1.0 / quantizer.n_classes)


def rebalance_weights(
    quantizer: AbQuantizer,
    prior: np.ndarray,
    lam: float = REBALANCE_LAMBDA,
    sigma: float = PRIOR_SIGMA,
) -> np.ndarray:
    """Per-class loss weights float32 [Q] (Zhang et al. eq. 4), E_prior[w] = 1.

    The prior is smoothed with a Gaussian of ``sigma`` Lab units over the class centers,
    mixed with the uniform distribution (``lam``) and inverted: a class seen rarely
    (saturated colors) weighs more, a frequent one (grays, browns) less.
    """
    p = np.asarray(prior, np.float64)
    c = quantizer.centers.astype(np.float64)
    d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * sigma**2))
    smooth = kernel @ p
    smooth /= smooth.sum()
    w = 1.0 / ((1.0 - lam) * smooth + lam / len(p))
    w /= float((w * smooth).sum())
    return w.astype(np.float32)


def class_logits_last(logits: torch.Tensor) -> torch.Tensor:
    """Class logits [N, Q, H, W] -> float32 channels-last [N, H, W, Q]: the layout of the
    exported ``ab_logits`` output and of the annealed mean's softmax."""
    return logits.float().permute(0, 2, 3, 1)


def annealed_mean_last(
    logits_last: torch.Tensor, centers: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """ab [N, 2, H, W] (Lab units) from channels-last logits [N, H, W, Q] and centers
    [Q, 2]: sum_q softmax(logits / T)_q * center_q.

    Channels-last (softmax over the last axis, then a matmul): exported to ONNX, a
    Softmax over axis 1 of NCHW ran 13x slower in ONNX Runtime on the CPU (324 vs 49 ms
    for the whole line-art model at 136x240, against 25 ms for the regression head).
    """
    prob = F.softmax(logits_last / temperature, dim=-1)
    return (prob @ centers.to(prob.dtype)).permute(0, 3, 1, 2)


def annealed_mean(
    logits: torch.Tensor, centers: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """``annealed_mean_last`` of NCHW class logits [N, Q, H, W]."""
    return annealed_mean_last(class_logits_last(logits), centers, temperature)


def rebalanced_cross_entropy(
    logits: torch.Tensor,
    target_idx: torch.Tensor,
    weights: torch.Tensor,
    pixel_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over pixels of w[target] * CE(logits, target) (Zhang et al. eq. 2); with
    ``pixel_weight`` [N,1,H,W] (losses.unhinted_pixel_weights) a weighted mean."""
    ce = F.cross_entropy(logits.float(), target_idx, reduction="none")
    ce = ce * weights.to(ce.device)[target_idx]
    if pixel_weight is None:
        return ce.mean()
    w = pixel_weight[:, 0].to(ce.dtype)
    return (ce * w).sum() / w.sum()
