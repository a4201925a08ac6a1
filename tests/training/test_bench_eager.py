"""The torch eager timer of inkhue bench: same weights detected by output parity."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_time_eager_knows_same_and_other_weights(make_tiny_model, tmp_path):
    from inkhue_training.bench_eager import time_eager
    from inkhue_training.export import tiny_generator
    from inkhue_training.finetune import save_base

    onnx_path = make_tiny_model("grayscale", tmp_path / "g.onnx")  # tiny_generator(seed=0)
    same = tmp_path / "same.pt"
    other = tmp_path / "other.pt"
    save_base(same, tiny_generator("grayscale", seed=0), train_size=32, name="s", trained_on="test")
    save_base(
        other, tiny_generator("grayscale", seed=1), train_size=32, name="o", trained_on="test"
    )
    r = time_eager(onnx_path, "grayscale", [1, 4, 32, 48], runs=2, warmup=0, checkpoint=same)
    assert r["same_weights"] and r["parity_max_abs"] < 1e-3
    assert 0 < r["min"] <= r["median"] <= r["max"] and r["threads"] >= 1
    r = time_eager(onnx_path, "grayscale", [1, 4, 32, 48], runs=1, warmup=0, checkpoint=other)
    assert not r["same_weights"] and "not the checkpoint" in r["note"]
