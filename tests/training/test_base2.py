"""Base models 2.0 training options (issue 12): color classes, global context, geometric
hint counts, learning-rate decay and the checkpoint chosen by a validation metric.

Tiny shapes and a few CPU steps each; the ONNX export of every new head is checked
against PyTorch (the engine contract does not change)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from inkhue_engine.cli import main as inkhue
from inkhue_engine.color import rgb_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.model import load_model
from inkhue_training import color_classes as cc
from inkhue_training import train as train_mod
from inkhue_training.data import DataConfig, draw_hint_count
from inkhue_training.export import export_generator, load_checkpoint, read_metadata
from inkhue_training.networks import Generator, calibrate_batchnorm
from inkhue_training.options import TrainConfig

TINY = ["--crop-size", "32", "--batch-size", "2", "--channels", "8", "16", "32",
        "--d-channels", "8", "16", "32", "--no-progress", "--grid-images", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def quantizer():
    return cc.AbQuantizer()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i in range(6):
        img = np.full((48, 64, 3), rng.integers(150, 255, 3), np.uint8)
        for _ in range(3):
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            center = (int(rng.integers(8, 56)), int(rng.integers(8, 40)))
            cv2.circle(img, center, int(rng.integers(5, 15)), color, -1)
            cv2.circle(img, center, int(rng.integers(5, 15)), (20, 20, 20), 1)
        cv2.imwrite(str(d / f"img{i}.png"), img)
    return d


# --------------------------------------------------------------------------- color classes
def test_bins_cover_the_srgb_gamut_and_nothing_far_outside(quantizer):
    c = quantizer.centers
    assert 200 < quantizer.n_classes < 330  # Zhang et al.: 313 at grid 10
    assert np.all(np.abs(c) <= cc.AB_RANGE)
    rng = np.random.default_rng(0)
    rgb = rng.random((4000, 1, 3)).astype(np.float32)
    ab = rgb_to_lab(rgb)[:, 0, 1:]
    idx = quantizer.encode(ab)
    # every sRGB color lies within half a cell diagonal of its class center
    assert np.max(np.linalg.norm(c[idx] - ab, axis=1)) <= cc.GRID * np.sqrt(0.5) + 1e-3
    # the gray axis and saturated primaries have their own classes
    assert np.allclose(c[quantizer.encode(np.zeros((1, 2), np.float32))], 0)


def test_torch_and_numpy_encodings_agree(quantizer):
    rng = np.random.default_rng(1)
    ab = rng.uniform(-120, 120, (2, 2, 5, 7)).astype(np.float32)  # out of gamut too
    got = quantizer.encode_torch(torch.from_numpy(ab)).numpy()
    want = quantizer.encode(ab.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(got, want)


def test_rebalancing_weighs_rare_classes_up_with_unit_expectation(quantizer):
    ab = np.zeros((1000, 2), np.float32)
    ab[:10] = (60, 60)  # rare saturated orange
    prior = cc.class_histogram(quantizer, ab)
    w = cc.rebalance_weights(quantizer, prior)
    gray, orange = quantizer.encode(np.array([[0, 0], [60, 60]], np.float32))
    assert w[orange] > 5 * w[gray]
    smooth = np.exp(-((quantizer.centers[:, None] - quantizer.centers[None]) ** 2).sum(-1)
                    / (2 * cc.PRIOR_SIGMA**2)) @ prior  # fmt: skip
    assert abs(float((w * smooth / smooth.sum()).sum()) - 1.0) < 1e-4
    # lam = 1: uniform prior, all weights equal
    assert np.allclose(cc.rebalance_weights(quantizer, prior, lam=1.0), 1.0, atol=1e-5)


def test_annealed_mean_between_mode_and_mean():
    centers = torch.tensor([[0.0, 0.0], [60.0, 0.0]])
    logits = torch.tensor([1.0, 1.5])[None, :, None, None]  # the second class a bit likelier
    mean = cc.annealed_mean(logits, centers, temperature=1.0)[0, 0, 0, 0].item()
    annealed = cc.annealed_mean(logits, centers)[0, 0, 0, 0].item()
    assert mean < annealed < 60.0  # sharper than the mean, toward the mode, not at it


def test_rebalanced_cross_entropy_weights_each_pixel_by_its_target_class():
    logits = torch.zeros(1, 3, 1, 2)
    target = torch.tensor([[[0, 2]]])
    w = torch.tensor([1.0, 1.0, 3.0])
    ce = np.log(3.0)
    assert abs(cc.rebalanced_cross_entropy(logits, target, w).item() - ce * (1 + 3) / 2) < 1e-5


# --------------------------------------------------------------------------- networks
@pytest.mark.parametrize("task", ["grayscale", "lineart"])
@pytest.mark.parametrize(
    "head,context", [("classification", False), ("regression", True), ("classification", True)]
)
def test_new_heads_keep_the_contract_and_export_with_parity(task, head, context, tmp_path):
    torch.manual_seed(0)
    gen = Generator(task, channels=(8, 16, 32), global_context=context, color_head=head)
    calibrate_batchnorm(gen, [torch.rand(2, 4, 32, 32) * 100])
    x = torch.rand(2, 4, 24, 40) * 100
    x[:, 1:] = 0
    out, logits = gen(x, with_logits=True)
    assert out.shape == (2, 2 if task == "grayscale" else 3, 24, 40)
    assert (logits is None) == (head == "regression")
    if logits is not None:
        assert logits.shape == (2, cc.AbQuantizer().n_classes, 24, 40)
    torch.testing.assert_close(gen(x), out)
    path = tmp_path / "m.onnx"
    diff = export_generator(gen, path, name="t", trained_on="test", train_size=32)
    assert diff < 1e-3
    meta = read_metadata(path)
    assert meta["inkhue.task"] == task
    # a classification head also exports its class logits (channels-last) and their ab,
    # from which the engine decodes a palette lock
    model = load_model(path, "cpu")
    color, got = model.run_with_class_logits(x.numpy())
    np.testing.assert_allclose(color, out.detach().numpy(), atol=1e-3)
    if head == "regression":
        assert got is None and model.info.ab_classes is None
        assert "inkhue.ab_classes" not in meta
    else:
        np.testing.assert_allclose(np.array(model.info.ab_classes), gen.ab_centers.numpy())
        want = logits.detach().permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_global_context_makes_a_pixel_depend_on_the_far_side_of_the_image():
    """With global context, changing the left edge changes the right edge's color; the
    local generator's receptive field does not reach that far at this width."""
    outs = {}
    for context in (False, True):
        torch.manual_seed(0)
        gen = Generator("grayscale", channels=(8, 16, 32), n_res=1, global_context=context)
        calibrate_batchnorm(gen, [torch.rand(2, 4, 32, 256) * 100])
        x = torch.full((1, 4, 32, 256), 50.0)
        x[:, 1:] = 0
        y = x.clone()
        y[:, 0, :, :16] = 5.0  # darken the far left
        with torch.no_grad():
            outs[context] = (gen(y) - gen(x))[..., -16:].abs().max().item()
    assert outs[False] == 0.0
    assert outs[True] > 1e-4


# --------------------------------------------------------------------------- data and schedule
def test_geometric_hint_counts_favour_few_hints_and_respect_the_cap():
    rng = np.random.default_rng(0)
    geo = DataConfig(max_hints=30, hint_count="geometric", hint_geometric_p=0.125)
    uni = DataConfig(max_hints=30)
    g = np.array([draw_hint_count(geo, rng) for _ in range(4000)])
    u = np.array([draw_hint_count(uni, rng) for _ in range(4000)])
    assert g.min() >= 1 and g.max() <= 30 and u.min() >= 1 and u.max() <= 30
    assert np.median(g) < 8 < np.median(u)  # geometric(1/8): median 5-6; uniform: 15-16
    assert (g == 30).mean() > 0.005  # the capped tail is still drawn
    with pytest.raises(ValueError, match="unknown hint count"):
        draw_hint_count(DataConfig(hint_count="poisson"), rng)


def test_lr_factor_linear_and_cosine():
    cfg = TrainConfig(max_steps=100, lr_decay="linear", lr_decay_start=0.5)
    assert train_mod.lr_factor(cfg, 0) == 1.0 and train_mod.lr_factor(cfg, 50) == 1.0
    assert train_mod.lr_factor(cfg, 75) == pytest.approx(0.5)
    assert train_mod.lr_factor(cfg, 100) == 0.0
    cos = TrainConfig(max_steps=100, lr_decay="cosine", lr_decay_start=0.0)
    assert cos_values_decrease(cos)
    assert train_mod.lr_factor(TrainConfig(max_steps=100), 99) == 1.0  # none


def cos_values_decrease(cfg) -> bool:
    v = [train_mod.lr_factor(cfg, s) for s in range(0, 101, 10)]
    return v[0] == 1.0 and abs(v[-1]) < 1e-12 and all(a > b for a, b in zip(v, v[1:], strict=False))


def test_bad_option_values_are_refused_with_the_flag_named():
    with pytest.raises(InputError, match="--lr-decay linear decays to 0 at --max-steps"):
        train_mod.check_options(TrainConfig(lr_decay="linear"))
    with pytest.raises(InputError, match="--color-head"):
        train_mod.check_options(TrainConfig(color_head="softmax"))
    with pytest.raises(InputError, match="--chroma-weight -1: use 0"):
        train_mod.check_options(TrainConfig(chroma_weight=-1.0))
    for bad in (0.5, float("nan")):
        with pytest.raises(InputError, match="--unhinted-weight .*: use 1 \\(off\\) or more"):
            train_mod.check_options(TrainConfig(unhinted_weight=bad))


# --------------------------------------------------------------------------- smoke runs
def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_smoke_run_with_every_new_option_trains_resumes_and_ships_the_best(images, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", str(images), "--task", "lineart", "--out", str(run), *TINY,
            "--color-head", "classification", "--global-context", "--hint-count", "geometric",
            "--lr-decay", "linear", "--lr-decay-start", "0", "--max-steps", "6",
            "--val-every", "2", "--save-every", "3", "--class-prior-images", "4",
            "--log-every", "1"]  # fmt: skip
    assert inkhue(args) == 0
    log = _log(run)
    train_rows = [r for r in log if r["kind"] == "train"]
    assert all(np.isfinite(r["ce"]) and r["ce"] > 0 for r in train_rows)
    assert train_rows[0]["lr"] == pytest.approx(2e-4)  # step 0 of the decay
    assert train_rows[-1]["lr"] == pytest.approx(2e-4 * (1 - 5 / 6))
    vals = [r for r in log if r["kind"] == "val"]
    assert [v["step"] for v in vals] == [2, 4, 6]
    scores = [np.mean([v[k]["ciede2000"] for k in ("plain", "hinted")]) for v in vals]
    bests = [r for r in log if r["kind"] == "best"]
    assert bests[0]["step"] == 2 and bests[-1]["value"] == pytest.approx(min(scores))
    best = load_checkpoint(run / "best.pt")
    assert best["step"] == bests[-1]["step"] and best["best"]["value"] == pytest.approx(min(scores))
    last = load_checkpoint(run / "last.pt")
    assert last["step"] == 6 and last["class_weights"].shape == (cc.AbQuantizer().n_classes,)
    assert last["generator_kwargs"]["color_head"] == "classification"

    # resume: the class weights and the best score carry over
    resume = ["train", "--out", str(run), "--resume", "--max-steps", "8", "--no-progress"]
    assert inkhue(resume) == 0
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["step"] == 8
    torch.testing.assert_close(resumed["class_weights"], last["class_weights"])
    assert resumed["best"]["value"] <= best["best"]["value"]
    lrs = [r["lr"] for r in _log(run) if r["kind"] == "train"]
    assert lrs[-1] == pytest.approx(2e-4 * (1 - 7 / 8))  # the schedule of the new --max-steps

    # export of the run folder ships best.pt, with parity, under the unchanged contract
    out = tmp_path / "m.onnx"
    assert inkhue(["export", str(run), "-o", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["inkhue.task"] == "lineart"
    from inkhue_engine.model import load_model

    m = load_model(out, "cpu")
    x = np.zeros((1, 4, 32, 48), np.float32)
    x[:, 0] = 60.0
    y = m.run(x)
    assert y.shape == (1, 3, 32, 48) and np.isfinite(y).all()
