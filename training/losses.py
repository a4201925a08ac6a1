"""Losses: adversarial BCE with the seed's label stabilizers, L1 on the colors, and an
optional per-image chroma match (against L1's hedging toward gray).

The discriminator's targets are softened (real 0.9), noised and occasionally
flipped; all randomness comes from one ``torch.Generator`` so a run (and a test)
is reproducible. The generator's adversarial target is a plain 1.0: smoothing is
one-sided, for the discriminator only (Salimans et al. 2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inkhue_engine.color import AB_SCALE
from inkhue_training.networks import normalize_color

NOISE_KINDS = ("uniform", "gaussian")


class GANLoss(nn.Module):
    """BCE-with-logits against soft, noisy, sometimes flipped targets.

    ``real_label`` / ``fake_label``: the targets before noise. ``noise``: the
    uniform half-width (targets + U(-noise, noise)) or the gaussian sigma, per
    element; targets are clipped to [0, 1]. ``flip_prob``: the chance that a call
    for the discriminator swaps the real and fake targets for the whole batch.
    ``seed`` fixes the CPU ``torch.Generator`` that draws the noise and the flips.
    """

    def __init__(
        self,
        real_label: float = 0.9,
        fake_label: float = 0.0,
        noise: float = 0.0,
        noise_kind: str = "uniform",
        flip_prob: float = 0.0,
        generator_target: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if noise_kind not in NOISE_KINDS:
            raise ValueError(f"unknown label noise {noise_kind!r}: use {NOISE_KINDS}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)
        self.noise = float(noise)
        self.noise_kind = noise_kind
        self.flip_prob = float(flip_prob)
        self.generator_target = float(generator_target)
        self.rng = torch.Generator().manual_seed(int(seed))

    def targets(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        """Discriminator targets shaped like ``logits`` for a batch of real or fake pairs."""
        if self.flip_prob > 0 and torch.rand((), generator=self.rng).item() < self.flip_prob:
            real = not real
        base = self.real_label if real else self.fake_label
        t = torch.full(logits.shape, base, dtype=torch.float32)
        if self.noise > 0:
            if self.noise_kind == "uniform":
                t += (torch.rand(logits.shape, generator=self.rng) * 2 - 1) * self.noise
            else:
                t += torch.randn(logits.shape, generator=self.rng) * self.noise
            t.clamp_(0.0, 1.0)
        return t.to(device=logits.device, dtype=logits.dtype)

    def forward(
        self, logits: torch.Tensor, real: bool, for_generator: bool = False
    ) -> torch.Tensor:
        """Mean BCE of ``logits``. ``for_generator``: target a plain 1.0 (no noise/flip)."""
        if for_generator:
            target = torch.full_like(logits, self.generator_target)
        else:
            target = self.targets(logits, real)
        return F.binary_cross_entropy_with_logits(logits, target)

    def rng_state(self) -> torch.Tensor:
        """State of the label RNG (saved in checkpoints)."""
        return self.rng.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore the label RNG from ``rng_state``."""
        self.rng.set_state(state)


def color_l1(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: float = 100.0,
    pixel_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``weight`` x mean |pred - target| on normalized colors.

    ``pred`` / ``target`` are ab [N,2,H,W] or Lab [N,3,H,W] (line art: L counts too)
    in Lab units; they are compared normalized (ab / AB_SCALE, L / 50 - 1) so the
    weight of ~100 means what it means in pix2pix / arXiv 1803.05400. ``pixel_weight``
    [N,1,H,W] (``unhinted_pixel_weights``): a weighted mean instead (the same when all 1).
    """
    if pixel_weight is None:
        return weight * F.l1_loss(normalize_color(pred), normalize_color(target))
    diff = (normalize_color(pred) - normalize_color(target)).abs()
    w = pixel_weight.to(diff.dtype)
    return weight * (diff * w).sum() / (w.sum() * diff.shape[1])


def unhinted_pixel_weights(hint_mask: torch.Tensor, weight: float) -> torch.Tensor | None:
    """Per-pixel loss weights [N,1,H,W] that make the network carry hints beyond the regions
    that hold them: in an item with hints, a pixel outside the hinted regions (``hint_mask``
    [N,1,H,W], the model input's spread mask) counts ``weight`` times, a hinted one once
    (it only has to copy its hint). Items without hints: all 1. None when ``weight`` is 1."""
    if weight == 1.0:
        return None
    m = (hint_mask > 0).to(torch.float32)
    has_hints = m.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return 1.0 + (weight - 1.0) * (1.0 - m) * has_hints


def chroma_match(pred: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight`` x mean over the batch of |mean chroma of pred - mean chroma of target|
    per image (chroma = |ab|, normalized by AB_SCALE as L1's colors are).

    L1 returns the conditional median, which for a gray level of uncertain hue is near
    gray; this term asks only that each picture be as colorful as its truth overall, so the
    network may spend chroma where it is sure instead of hedging everywhere. ``pred`` /
    ``target``: [N, C, H, W] in Lab units with ab in the last two channels.
    """

    def mean_chroma(x: torch.Tensor) -> torch.Tensor:
        ab = x[:, -2:].float() / AB_SCALE
        return torch.sqrt((ab * ab).sum(1) + 1e-8).mean((1, 2))

    return weight * (mean_chroma(pred) - mean_chroma(target)).abs().mean()
