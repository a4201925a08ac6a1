"""``--init-from``: a new run starts from another run's weights where the shapes allow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from inkhue_engine.cli import main as inkhue
from inkhue_engine.errors import InputError
from inkhue_training.export import load_checkpoint
from inkhue_training.networks import Discriminator, Generator
from inkhue_training.warm_start import adapt_state, generator_source, load_init

SMALL = {"channels": (8, 16, 32), "n_res": 2}
TINY = ["--crop-size", "32", "--batch-size", "2", "--channels", "8", "16", "32", "--n-res", "2",
        "--d-channels", "8", "16", "32", "--no-progress", "--grid-images", "0",
        "--val-every", "0", "--save-every", "0"]  # fmt: skip


def test_shared_tensors_are_copied_new_ones_stay_fresh():
    torch.manual_seed(0)
    old = Generator("grayscale", **SMALL)
    new = Generator("grayscale", global_context=True, color_head="classification", **SMALL)
    fresh_before = {k: v.clone() for k, v in new.state_dict().items()}
    state, report = adapt_state(old.state_dict(), new)
    new.load_state_dict(state)  # a full, strict state dict
    for k, v in old.state_dict().items():
        if k in state and k.startswith(("encoder.", "res.", "decoder.")):
            torch.testing.assert_close(state[k], v)
    assert any(n.startswith("context.") for n in report.fresh)
    assert any(n.startswith("class_head.") for n in report.fresh)
    torch.testing.assert_close(state["class_head.weight"], fresh_before["class_head.weight"])
    assert report.unused == ["head.bias", "head.weight"]  # grayscale classification: no head
    assert "context" in report.line("generator")


def _trained_like(gen: Generator, seed: int = 1) -> Generator:
    """Random BatchNorm affine and running statistics, as a trained network has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in gen.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return gen


def test_a_new_global_context_starts_as_the_identity(tmp_path):
    torch.manual_seed(0)
    old = _checkpoint(tmp_path / "g.pt", "grayscale", **SMALL)
    _trained_like(old)
    torch.save({**torch.load(tmp_path / "g.pt", weights_only=False),
                "generator": old.state_dict()}, tmp_path / "g.pt")  # fmt: skip
    new = Generator("grayscale", global_context=True, **SMALL)
    g_state, _, lines = load_init(
        tmp_path / "g.pt", new, Discriminator("grayscale", (8, 16, 32)), "grayscale"
    )
    new.load_state_dict(g_state)
    assert "started as the identity: context.fuse.0, context.fuse.1" in lines[0]
    x = torch.cat([torch.rand(2, 1, 32, 32) * 100, torch.zeros(2, 3, 32, 32)], dim=1)
    old.eval(), new.eval()
    with torch.no_grad():  # eval mode: the same function as the source network
        torch.testing.assert_close(new(x), old(x), atol=1e-3, rtol=1e-3)
    # training mode: the fusion's BatchNorm measures about the moments it was set to undo
    seen = {}
    new.context.register_forward_hook(lambda m, i, o: seen.update(h=i[0], out=o))
    new.train()
    with torch.no_grad():
        new(torch.cat([torch.rand(8, 1, 32, 32) * 100, torch.zeros(8, 3, 32, 32)], dim=1))
    assert (seen["out"] - seen["h"]).abs().mean() < 0.25 * seen["h"].abs().mean()


def test_line_art_head_gives_its_lightness_row_to_a_classification_run():
    old = Generator("lineart", **SMALL)
    new = Generator("lineart", color_head="classification", **SMALL)
    state, report = adapt_state(old.state_dict(), new)
    assert sorted(report.sliced) == ["head.bias", "head.weight"]
    torch.testing.assert_close(state["head.weight"], old.state_dict()["head.weight"][:1])


def _checkpoint(path, task, **kwargs):
    gen = Generator(task, **kwargs)
    torch.save(
        {
            "generator_kwargs": {"task": task, **kwargs},
            "generator": gen.state_dict(),
            "discriminator": Discriminator(task, (8, 16, 32)).state_dict(),
            "discriminator_kwargs": {"task": task, "channels": (8, 16, 32)},
        },
        path,
    )
    return gen


def test_another_task_or_another_width_is_refused_with_the_flag_named(tmp_path):
    _checkpoint(tmp_path / "g.pt", "grayscale", **SMALL)
    with pytest.raises(InputError, match="--init-from .*grayscale checkpoint cannot start a"):
        load_init(tmp_path / "g.pt", Generator("lineart", **SMALL),
                  Discriminator("lineart", (8, 16, 32)), "lineart")  # fmt: skip
    with pytest.raises(InputError, match="no generator tensor has the shape"):
        load_init(tmp_path / "g.pt", Generator("grayscale", channels=(4, 8, 8), n_res=1),
                  Discriminator("grayscale", (8, 16, 32)), "grayscale")  # fmt: skip


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):
        img = np.full((40, 40, 3), rng.integers(120, 255, 3), np.uint8)
        cv2.circle(img, (20, 20), 9, tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        cv2.imwrite(str(d / f"i{i}.png"), img)
    return d


def test_a_run_started_from_a_checkpoint_records_it_and_starts_from_its_weights(images, tmp_path):
    src = _checkpoint(tmp_path / "base.pt", "grayscale", **SMALL)
    run = tmp_path / "run"
    # lr 0: the weights stay the initial ones, so the run's checkpoint shows where it started
    args = ["train", "--data", str(images), "--task", "grayscale", "--out", str(run), *TINY,
            "--global-context", "--max-steps", "1", "--lr", "0",
            "--init-from", str(tmp_path / "base.pt")]  # fmt: skip
    assert inkhue(args) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["config"]["init_from"] == str(tmp_path / "base.pt")
    got = generator_source({"generator": ckpt["generator"]})
    torch.testing.assert_close(got["encoder.0.0.weight"], src.state_dict()["encoder.0.0.weight"])
    assert "context.fc.0.weight" in got
    # resuming does not warm-start again (the resumed run keeps its own weights)
    resume = ["train", "--out", str(run), "--resume", "--max-steps", "2", "--no-progress"]
    assert inkhue(resume) == 0


def test_export_sets_the_decoding_temperature_of_a_classification_head_only(tmp_path):
    from inkhue_training.export import export_checkpoint, read_metadata

    gen = Generator("grayscale", color_head="classification", **SMALL)
    with torch.no_grad():  # every pixel: one saturated class a little above the rest
        gen.class_head.weight.zero_()
        gen.class_head.bias.zero_()
        gen.class_head.bias[int(np.argmax(np.hypot(*gen.ab_centers.T.numpy())))] = 1.0
    kwargs = {"task": "grayscale", "color_head": "classification", **SMALL}
    torch.save({"generator_kwargs": kwargs, "generator": gen.state_dict()}, tmp_path / "c.pt")
    _checkpoint(tmp_path / "r.pt", "grayscale", **SMALL)
    x = torch.zeros(1, 4, 32, 32)
    x[:, 0] = torch.linspace(0, 100, 32)
    outs = {}
    for t in (0.2, 1.0):
        out = tmp_path / f"t{t}.onnx"
        export_checkpoint(tmp_path / "c.pt", out, temperature=t)
        assert read_metadata(out)["inkhue.color_head"] == f"classification, annealed mean T={t:g}"
        from inkhue_engine.model import load_model

        outs[t] = load_model(out, "cpu").run(x.numpy())
    # a lower temperature decodes nearer the mode (the saturated class): more chroma
    chroma = {t: float(np.hypot(y[:, 0], y[:, 1]).mean()) for t, y in outs.items()}
    assert chroma[0.2] > 2 * chroma[1.0]
    with pytest.raises(InputError, match="--temperature: .*regression color head"):
        export_checkpoint(tmp_path / "r.pt", tmp_path / "r.onnx", temperature=0.3)


def test_a_packed_classification_base_keeps_its_head_and_temperature(tmp_path):
    from inkhue_training.color_classes import TEMPERATURE
    from inkhue_training.finetune import load_base, pack_base
    from inkhue_training.options import TrainConfig

    assert TrainConfig.temperature == TEMPERATURE  # one default, written twice (no torch)
    gen = Generator("lineart", global_context=True, color_head="classification", **SMALL)
    kwargs = {"task": "lineart", "global_context": True, "color_head": "classification",
              **SMALL}  # fmt: skip
    torch.save({"generator_kwargs": kwargs, "generator": gen.state_dict()}, tmp_path / "r.pt")
    pack_base(tmp_path / "r.pt", tmp_path / "base.pt", name="b", temperature=0.25)
    base = load_base(tmp_path / "base.pt")
    assert base.generator_kwargs["color_head"] == "classification"
    assert base.generator_kwargs["global_context"] is True
    assert base.generator_kwargs["temperature"] == 0.25
    again = Generator(**base.generator_kwargs)
    again.load_state_dict(base.generator)  # strict: the head and the context branch are there
    assert again.temperature == 0.25
    with pytest.raises(InputError, match="regression color head"):
        _checkpoint(tmp_path / "g.pt", "grayscale", **SMALL)
        pack_base(tmp_path / "g.pt", tmp_path / "g_base.pt", name="g", temperature=0.3)


@pytest.mark.parametrize("task", ["grayscale", "lineart"])
def test_a_class_head_with_a_regression_prior_starts_from_the_regression_colors(tmp_path, task):
    torch.manual_seed(0)
    old = _checkpoint(tmp_path / "r.pt", task, **SMALL)
    with torch.no_grad():  # colors well away from gray, as a trained head gives
        old.head.weight.mul_(30)
    torch.save({**torch.load(tmp_path / "r.pt", weights_only=False),
                "generator": old.state_dict()}, tmp_path / "r.pt")  # fmt: skip
    x = torch.zeros(2, 4, 32, 32)
    x[:, 0] = torch.rand(2, 32, 32) * 100
    old.eval()
    with torch.no_grad():
        want = old(x)
    assert want[:, -2:].abs().amax() > 20  # the test has colors to lose
    got = {}
    for sigma in (10.0, 0.0):
        new = Generator(task, color_head="classification", ab_prior_sigma=sigma, **SMALL)
        g_state, _, lines = load_init(
            tmp_path / "r.pt", new, Discriminator(task, (8, 16, 32)), task
        )
        new.load_state_dict(g_state)
        new.eval()
        with torch.no_grad():
            got[sigma] = new(x)
        assert "initialized fresh: class_head" in lines[0]
    # with the prior the whole head is copied and the class head adds nothing yet: the
    # annealed mean (T 0.38) of a Gaussian of std 10 around the regression's ab is that ab
    torch.testing.assert_close(got[10.0], want, atol=0.1, rtol=0)
    # without it the fresh class head starts far from the source's colors
    assert (got[0.0][:, -2:] - want[:, -2:]).abs().mean() > 5


def test_a_regression_prior_needs_the_classification_head_and_is_kept_when_packed(tmp_path):
    from inkhue_engine.model import load_model
    from inkhue_training import train as train_mod
    from inkhue_training.export import export_checkpoint, read_metadata
    from inkhue_training.finetune import load_base, pack_base
    from inkhue_training.options import TrainConfig

    with pytest.raises(ValueError, match="ab_prior_sigma"):
        Generator("grayscale", ab_prior_sigma=10.0, **SMALL)
    for bad in (TrainConfig(ab_prior_sigma=10.0), TrainConfig(color_head="classification",
                                                              ab_prior_sigma=-1.0)):  # fmt: skip
        with pytest.raises(InputError, match="--ab-prior-sigma"):
            train_mod.check_options(bad)
    kwargs = {"task": "grayscale", "color_head": "classification", "ab_prior_sigma": 10.0,
              **SMALL}  # fmt: skip
    gen = Generator(**kwargs)
    torch.save({"generator_kwargs": kwargs, "generator": gen.state_dict()}, tmp_path / "p.pt")
    pack_base(tmp_path / "p.pt", tmp_path / "base.pt", name="b", temperature=0.3)
    base = load_base(tmp_path / "base.pt")
    assert base.generator_kwargs["ab_prior_sigma"] == 10.0
    Generator(**base.generator_kwargs).load_state_dict(base.generator)  # strict
    export_checkpoint(tmp_path / "p.pt", tmp_path / "p.onnx", temperature=0.3)
    meta = read_metadata(tmp_path / "p.onnx")["inkhue.color_head"]
    assert meta == "classification, annealed mean T=0.3, regression prior sigma 10"
    # the exported graph computes what the network does
    x = torch.zeros(1, 4, 32, 32)
    x[:, 0] = torch.linspace(0, 100, 32)
    gen.temperature = 0.3
    gen.eval()
    with torch.no_grad():
        want = gen(x).numpy()
    np.testing.assert_allclose(load_model(tmp_path / "p.onnx", "cpu").run(x.numpy()), want,
                               atol=1e-3)  # fmt: skip
