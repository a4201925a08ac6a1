"""GAN label stabilizers (soft, noisy, flipped targets) and the L1 color loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inkhue_training.color_classes import rebalanced_cross_entropy
from inkhue_training.losses import GANLoss, chroma_match, color_l1, unhinted_pixel_weights

SHAPE = (64, 1, 8, 8)  # 4096 targets per call


def test_soft_labels_without_noise_are_exact():
    gan = GANLoss(real_label=0.9, fake_label=0.1, noise=0.0, flip_prob=0.0)
    logits = torch.zeros(SHAPE)
    assert torch.allclose(gan.targets(logits, True), torch.full(SHAPE, 0.9))
    assert torch.allclose(gan.targets(logits, False), torch.full(SHAPE, 0.1))


def test_generator_target_is_plain_one_even_with_noise_and_flips():
    gan = GANLoss(real_label=0.9, noise=0.2, flip_prob=1.0, seed=1)
    logits = torch.randn(SHAPE)
    expected = F.binary_cross_entropy_with_logits(logits, torch.ones(SHAPE))
    assert torch.allclose(gan(logits, True, for_generator=True), expected)


def test_uniform_noise_statistics():
    gan = GANLoss(real_label=0.8, fake_label=0.0, noise=0.1, noise_kind="uniform", seed=0)
    t = gan.targets(torch.zeros(SHAPE), True)
    assert 0.7 - 1e-6 <= t.min() and t.max() <= 0.9 + 1e-6  # within +-0.1 of 0.8
    assert t.mean().item() == pytest.approx(0.8, abs=0.005)
    assert t.std().item() == pytest.approx(0.1 / 3**0.5, rel=0.05)  # U(-a, a): a / sqrt(3)
    # fake targets are clipped at 0: noise only lifts them
    f = gan.targets(torch.zeros(SHAPE), False)
    assert f.min() >= 0 and f.max() <= 0.1 + 1e-6
    assert f.mean().item() == pytest.approx(0.025, abs=0.005)  # E[max(U(-.1,.1), 0)]


def test_gaussian_noise_statistics():
    gan = GANLoss(real_label=0.5, noise=0.05, noise_kind="gaussian", seed=0)
    t = gan.targets(torch.zeros(SHAPE), True)
    assert t.mean().item() == pytest.approx(0.5, abs=0.005)
    assert t.std().item() == pytest.approx(0.05, rel=0.05)


def test_flips_whole_batches_at_the_configured_rate():
    gan = GANLoss(real_label=0.9, fake_label=0.0, noise=0.0, flip_prob=0.25, seed=3)
    logits = torch.zeros(4, 1, 2, 2)
    flipped = 0
    n = 2000
    for _ in range(n):
        t = gan.targets(logits, True)
        assert torch.all(t == t.flatten()[0])  # the whole batch, never a part
        flipped += bool(t.flatten()[0] == 0.0)
    assert flipped / n == pytest.approx(0.25, abs=0.03)
    never = GANLoss(flip_prob=0.0)
    assert all(torch.all(never.targets(logits, True) > 0.8) for _ in range(200))


def test_same_seed_same_targets_and_rng_state_round_trips():
    a = GANLoss(noise=0.1, flip_prob=0.3, seed=42)
    b = GANLoss(noise=0.1, flip_prob=0.3, seed=42)
    c = GANLoss(noise=0.1, flip_prob=0.3, seed=43)
    logits = torch.zeros(SHAPE)
    ta, tb, tc = a.targets(logits, True), b.targets(logits, True), c.targets(logits, True)
    assert torch.equal(ta, tb) and not torch.equal(ta, tc)
    state = a.rng_state()
    first = a.targets(logits, False)
    a.set_rng_state(state)
    assert torch.equal(a.targets(logits, False), first)


def test_loss_value_is_bce_against_the_targets():
    gan = GANLoss(real_label=0.9, noise=0.0)
    logits = torch.randn(SHAPE)
    expected = F.binary_cross_entropy_with_logits(logits, torch.full(SHAPE, 0.9))
    assert torch.allclose(gan(logits, True), expected)


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        GANLoss(noise_kind="pink")
    with pytest.raises(ValueError):
        GANLoss(flip_prob=1.5)


def test_color_l1_is_weighted_on_normalized_colors():
    ab = torch.zeros(2, 2, 4, 4)
    off = ab + 11.0  # 11 Lab units = 0.1 normalized
    assert color_l1(off, ab, weight=100.0).item() == pytest.approx(10.0, rel=1e-5)
    lab = torch.zeros(2, 3, 4, 4)
    lab_off = lab.clone()
    lab_off[:, 0] += 5.0  # 5 L units = 0.1 normalized, only 1 of 3 channels
    assert color_l1(lab_off, lab, weight=100.0).item() == pytest.approx(10.0 / 3, rel=1e-5)


def test_chroma_match_asks_each_image_as_colorful_as_its_truth_overall():
    truth = torch.zeros(2, 2, 4, 4)
    truth[0, 0] = 22.0  # image 0: chroma 22 (0.2 normalized) everywhere; image 1: gray
    assert chroma_match(truth, truth, 10.0).item() == pytest.approx(0.0, abs=1e-3)
    gray = torch.zeros_like(truth)
    # image 0 lacks 0.2, image 1 nothing: mean 0.1, x weight 10
    assert chroma_match(gray, truth, 10.0).item() == pytest.approx(1.0, rel=1e-3)
    # the same overall chroma in other places or hues costs nothing (it is per image)
    moved = torch.zeros_like(truth)
    moved[0, 1, :2] = 44.0  # half the pixels at twice the chroma, in b instead of a
    assert chroma_match(moved, truth, 10.0).item() == pytest.approx(0.0, abs=1e-3)
    # its gradient pushes a too-gray prediction's chroma up
    pred = (truth * 0.5).requires_grad_(True)
    chroma_match(pred, truth, 1.0).backward()
    assert (pred.grad[0, 0] < 0).all()  # descending the loss raises a


def test_unhinted_pixels_weigh_more_only_in_items_with_hints():
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 0, :] = 1.0  # item 0: its top row is a hinted region; item 1: no hints
    assert unhinted_pixel_weights(mask, 1.0) is None  # off: the plain losses
    w = unhinted_pixel_weights(mask, 4.0)
    assert w[0, 0].tolist() == [[1.0, 1.0], [4.0, 4.0]]
    assert w[1].eq(1.0).all()


def test_weighted_losses_are_the_plain_ones_at_weight_1_and_follow_the_weights():
    torch.manual_seed(0)
    pred, tgt = torch.randn(2, 2, 3, 3) * 20, torch.randn(2, 2, 3, 3) * 20
    ones = torch.ones(2, 1, 3, 3)
    torch.testing.assert_close(color_l1(pred, tgt, 100.0, ones), color_l1(pred, tgt, 100.0))
    w = torch.zeros(2, 1, 3, 3)
    w[0, 0, 1, 2] = 1.0  # all the weight on one pixel: its own L1 (over the channels)
    one = color_l1(pred[:1, :, 1:2, 2:3], tgt[:1, :, 1:2, 2:3], 100.0)
    torch.testing.assert_close(color_l1(pred, tgt, 100.0, w), one)
    logits, idx = torch.randn(2, 5, 3, 3), torch.randint(0, 5, (2, 3, 3))
    cls_w = torch.rand(5) + 0.5
    plain = rebalanced_cross_entropy(logits, idx, cls_w)
    torch.testing.assert_close(rebalanced_cross_entropy(logits, idx, cls_w, ones), plain)
    at_one = rebalanced_cross_entropy(logits[:1, :, 1:2, 2:3], idx[:1, 1:2, 2:3], cls_w)
    torch.testing.assert_close(rebalanced_cross_entropy(logits, idx, cls_w, w), at_one)
