"""Generator / discriminator shapes, the seed's residual block, normalization inside."""

from __future__ import annotations

import pytest
import torch

from inkhue_engine.color import AB_SCALE
from inkhue_training.networks import (
    Discriminator,
    Generator,
    ResidualBlock,
    calibrate_batchnorm,
    count_params,
)


def _zero_body(block: ResidualBlock) -> None:
    """Make the residual branch output exactly zero (last BatchNorm's weight and bias 0)."""
    bn = block.body[-1]
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()


def test_residual_block_shaves_2px_each_side():
    block = ResidualBlock(4).eval()
    x = torch.randn(2, 4, 13, 17)
    assert block(x).shape == (2, 4, 9, 13)


def test_residual_block_identity_path_is_the_centre_crop():
    torch.manual_seed(0)
    block = ResidualBlock(3).eval()
    _zero_body(block)
    x = torch.randn(1, 3, 10, 12)
    y = block(x)
    assert torch.equal(y, x[:, :, 2:-2, 2:-2])
    # and any other alignment of the crop would differ
    assert not torch.allclose(y, x[:, :, 1:-3, 2:-2])
    assert not torch.allclose(y, x[:, :, 2:-2, 3:-1])


def test_residual_block_adds_its_branch():
    torch.manual_seed(0)
    block = ResidualBlock(3).eval()
    x = torch.randn(1, 3, 10, 12)
    branch = block.body(x)
    assert branch.abs().max() > 0
    assert torch.allclose(block(x), x[:, :, 2:-2, 2:-2] + branch)
    # the convolutions themselves are unpadded
    convs = [m for m in block.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.padding for c in convs] == [(0, 0), (0, 0)]


@pytest.mark.parametrize(("task", "ch"), [("grayscale", 2), ("lineart", 3)])
@pytest.mark.parametrize(("h", "w"), [(8, 8), (16, 40), (64, 48)])
def test_generator_keeps_size_for_multiples(task, ch, h, w):
    torch.manual_seed(0)
    gen = Generator(task, channels=(8, 16, 32)).eval()
    assert gen.multiple_of == 8 and gen.task == task
    x = torch.rand(2, 4, h, w) * 100
    y = gen(x)
    assert y.shape == (2, ch, h, w)
    assert y[:, -2:].abs().max() <= AB_SCALE
    if ch == 3:
        assert y[:, 0].min() >= 0 and y[:, 0].max() <= 100


def test_generator_channels_last_matches_contiguous():
    torch.manual_seed(0)
    gen = Generator("grayscale", channels=(8, 16, 32)).eval()
    x = torch.rand(1, 4, 32, 24) * 100
    ref = gen(x)
    gcl = gen.to(memory_format=torch.channels_last)
    got = gcl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, got, atol=1e-4)


def test_generator_uses_hints_and_normalizes_inside():
    torch.manual_seed(0)
    gen = Generator("grayscale", channels=(8, 16, 32))
    calibrate_batchnorm(gen, [torch.rand(4, 4, 32, 32) * 100])
    x = torch.zeros(1, 4, 32, 32)
    x[:, 0] = 50.0
    base = gen(x)
    x2 = x.clone()
    x2[:, 1:3, 8:16, 8:16] = 60.0
    x2[:, 3, 8:16, 8:16] = 1.0
    assert (gen(x2) - base).abs().max() > 1e-3  # hint channels reach the output


def test_default_sizes_match_the_notes():
    g = Generator("grayscale")
    d = Discriminator("grayscale")
    assert 1.5e6 <= count_params(g) <= 2.0e6
    assert 0.3e6 <= count_params(d) <= 0.5e6
    assert count_params(d) < count_params(g) / 3  # deliberately weaker
    # five residual blocks of 128 channels at the bottleneck
    blocks = [m for m in g.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 5 and blocks[0].body[0].in_channels == 128


@pytest.mark.parametrize(("task", "ch"), [("grayscale", 2), ("lineart", 3)])
def test_discriminator_patch_logits_conditioned_on_L(task, ch):
    torch.manual_seed(0)
    d = Discriminator(task, channels=(8, 16, 32)).eval()
    L = torch.rand(2, 1, 64, 48) * 100
    color = torch.rand(2, ch, 64, 48) * 40
    out = d(L, color)
    assert out.shape == (2, 1, 4, 3)
    assert not torch.allclose(out, d(100 - L, color))  # depends on L


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        Generator("sketch")


def test_bottleneck_padding_gives_2_n_res_px_for_any_size():
    from inkhue_training.networks import EdgePad1, _staged_pads

    pad = torch.nn.Sequential(*_staged_pads(10))
    for d in (1, 2, 3, 11, 40):
        x = torch.randn(1, 2, d, d + 1)
        y = pad(x)
        assert y.shape == (1, 2, d + 20, d + 21)
        # the original sits in the middle
        assert torch.equal(y[:, :, 10:-10, 10:-10], x)
    x = torch.randn(2, 3, 5, 7)
    assert torch.equal(EdgePad1()(x), torch.nn.ReplicationPad2d(1)(x))
