"""``python -m inkhue_training.average``: weight averages of checkpoints of one network."""

from __future__ import annotations

import pytest
import torch

from inkhue_engine.errors import InputError
from inkhue_training.average import average_checkpoints, main, parse_weights
from inkhue_training.export import generator_from_checkpoint, load_checkpoint
from inkhue_training.networks import Discriminator, Generator

SMALL = {"task": "grayscale", "channels": (8, 16, 32), "n_res": 2}


def _run_checkpoint(path, seed, step, **kwargs):
    """A checkpoint shaped like train.py's: generator, EMA, discriminator, optimizer."""
    kw = {**SMALL, **kwargs}
    torch.manual_seed(seed)
    gen = Generator(**kw)
    for buf in gen.buffers():  # non-trivial running stats to average
        if buf.is_floating_point():
            buf.uniform_(0.5, 1.5)
    state = gen.state_dict()
    ema = {"n_averaged": torch.tensor(step)} | {f"module.{k}": v * 0.9 for k, v in state.items()}
    torch.save(
        {
            "format": 1,
            "generator_kwargs": kw,
            "generator": state,
            "ema": ema,
            "discriminator": Discriminator("grayscale", (8, 16, 32)).state_dict(),
            "discriminator_kwargs": {"task": "grayscale", "channels": (8, 16, 32)},
            "opt_g": {"state": {}, "param_groups": []},
            "step": step,
        },
        path,
    )
    return state


def test_the_average_is_the_weighted_mean_of_every_float_tensor(tmp_path):
    a = _run_checkpoint(tmp_path / "a.pt", 0, 10)
    b = _run_checkpoint(tmp_path / "b.pt", 1, 20)
    out = tmp_path / "soup" / "avg.pt"
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "3,1",
                 "-o", str(out)]) == 0  # fmt: skip
    soup = load_checkpoint(out)
    for name, t in a.items():
        if t.is_floating_point():
            torch.testing.assert_close(soup["generator"][name], 0.75 * t + 0.25 * b[name])
            torch.testing.assert_close(
                soup["ema"][f"module.{name}"], 0.9 * (0.75 * t + 0.25 * b[name])
            )
        else:  # BatchNorm's batch counts: the first checkpoint's
            assert torch.equal(soup["generator"][name], t)
    assert int(soup["ema"]["n_averaged"]) == 10
    assert "opt_g" not in soup and soup["step"] == 10
    assert [(f["weight"], f["step"]) for f in soup["averaged_from"]] == [(0.75, 10), (0.25, 20)]
    # it exports as any checkpoint does: the EMA weights
    gen = generator_from_checkpoint(soup)
    torch.testing.assert_close(
        gen.state_dict()[next(iter(a))], soup["ema"][f"module.{next(iter(a))}"]
    )


def test_checkpoints_of_other_networks_or_kinds_are_refused_by_name(tmp_path):
    _run_checkpoint(tmp_path / "a.pt", 0, 10)
    _run_checkpoint(tmp_path / "wide.pt", 0, 10, channels=(8, 16, 16))
    with pytest.raises(InputError, match=r"wide\.pt: another network than .*a\.pt"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "wide.pt"])
    packed = load_checkpoint(tmp_path / "a.pt")
    del packed["ema"]
    torch.save(packed, tmp_path / "packed.pt")
    with pytest.raises(InputError, match=r"packed\.pt: has no ema state"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "packed.pt"])
    with pytest.raises(InputError, match="at least two"):
        average_checkpoints([tmp_path / "a.pt"])


def test_weights_and_output_are_checked_before_anything_is_written(tmp_path, capsys):
    _run_checkpoint(tmp_path / "a.pt", 0, 10)
    _run_checkpoint(tmp_path / "b.pt", 1, 20)
    assert parse_weights(None, 4) == [0.25] * 4
    assert parse_weights("1,1,2", 3) == [0.25, 0.25, 0.5]
    for bad, says in (
        ("1", "1 weight"),
        ("a,b", "numbers"),
        ("-1,2", "0 or more"),
        ("0,0", "0 or more"),
        ("inf,1", "finite"),
    ):
        with pytest.raises(InputError, match=says):
            parse_weights(bad, 2)
    before = (tmp_path / "a.pt").read_bytes()
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "-o", str(tmp_path / "a.pt")]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert (tmp_path / "a.pt").read_bytes() == before
    assert (
        main([str(tmp_path / "a.pt"), str(tmp_path / "nope.pt"), "-o", str(tmp_path / "o.pt")]) == 2
    )
    assert "nope.pt: no such checkpoint file" in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()
