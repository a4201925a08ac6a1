"""The files the package ships: every bundled ONNX model keeps the model contract, every
base checkpoint loads (torch's safe loader) and matches its JSON sidecar, and each base
and the bundled model of the same name compute the same thing (ONNX Runtime vs torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inkhue_engine import model as M

MODELS = sorted(M.bundled_models_dir().glob("*.onnx"))
CHECKPOINTS = Path(__file__).resolve().parents[2] / "training" / "checkpoints"
BASES = sorted(CHECKPOINTS.glob("*.pt"))


def test_something_is_shipped():
    assert {p.stem for p in MODELS} >= {"grayscale", "lineart"}
    assert {p.stem for p in BASES} >= {"grayscale", "lineart"}


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_bundled_model_keeps_the_contract(path):
    info = M.read_model_info(path)  # metadata, bounds, input/output names and shapes
    # NAME.onnx, or a precision variant NAME.int8.onnx beside it: the task is NAME
    assert info.builtin and info.task == path.name.split(".")[0] and info.name
    model = M.Model(path, "cpu")
    m = info.multiple_of
    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 4 * m, 6 * m)).astype(np.float32)
    x[:, 0] *= 100  # L in 0..100, hints (ab, mask) as the pipeline sends them
    x[:, 1:3] = 0
    x[:, 3] = 0
    out = model.run(x)  # raises on NaN / inf
    channels = M.TASK_OUTPUTS[info.task][1]
    assert out.shape == (2, channels, 4 * m, 6 * m)
    card = path.with_suffix(".json")
    if card.is_file():  # the model card's facts are this file's
        facts = json.loads(card.read_text())["model_info"]
        assert facts["train_size"] == info.train_size
        assert facts["multiple_of"] == info.multiple_of
        assert facts["task"] == info.task


@pytest.mark.parametrize("path", BASES, ids=lambda p: p.name)
def test_base_checkpoint_loads_and_matches_its_sidecar(path):
    from inkhue_training.finetune import load_base
    from inkhue_training.networks import Generator

    base = load_base(path)  # weights_only: a file holding more than tensors is refused
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["task"] == base.task == path.stem
    assert side["train_size"] == base.train_size
    assert side["generator_kwargs"]["channels"] == list(base.generator_kwargs["channels"])
    gen = Generator(**base.generator_kwargs)
    gen.load_state_dict(base.generator)  # strict: every weight present, none left over


@pytest.mark.parametrize("stem", sorted({p.stem for p in BASES} & {p.stem for p in MODELS}))
def test_base_and_bundled_model_agree(stem):
    # the bundled ONNX model is the export of the shipped base: fine-tuning starts from
    # the model users already have
    from inkhue_training.export import check_parity
    from inkhue_training.finetune import load_base
    from inkhue_training.networks import Generator

    base = load_base(CHECKPOINTS / f"{stem}.pt")
    gen = Generator(**base.generator_kwargs)
    gen.load_state_dict(base.generator)
    onnx_path = M.bundled_models_dir() / f"{stem}.onnx"
    assert M.read_model_info(onnx_path).train_size == base.train_size
    worst = check_parity(gen, onnx_path, tolerance=1e-3)
    assert worst <= 1e-3
