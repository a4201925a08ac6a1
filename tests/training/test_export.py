"""The ONNX export: contract (names, shapes, metadata), parity with PyTorch, atomicity."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from inkhue_engine.errors import ModelError
from inkhue_training.export import (
    check_parity,
    export_generator,
    random_inputs,
    read_metadata,
    tiny_generator,
)

REQUIRED = [
    "inkhue.format",
    "inkhue.task",
    "inkhue.multiple_of",
    "inkhue.train_size",
    "inkhue.name",
    "inkhue.trained_on",
]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("fixture", "task", "out_name", "out_ch"),
    [("grayscale_model", "grayscale", "ab", 2), ("lineart_model", "lineart", "lab", 3)],
)
def test_fixture_models_follow_the_contract(request, fixture, task, out_name, out_ch):
    path = request.getfixturevalue(fixture)
    meta = read_metadata(path)
    for key in REQUIRED:
        assert meta.get(key), f"missing {key}"
    assert meta["inkhue.format"] == "1"
    assert meta["inkhue.task"] == task
    assert meta["inkhue.multiple_of"] == "8"
    assert int(meta["inkhue.train_size"]) > 0
    # one self-contained file: no external-data sidecar, all weights inside
    assert not path.with_name(path.name + ".data").exists()
    proto = onnx.load(str(path), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == [out_name]
    # dynamic N, H and W: two different sizes and batch sizes run
    for n, h, w in [(1, 16, 24), (3, 40, 32)]:
        y = sess.run(None, {"input": random_inputs(n, h, w)})[0]
        assert y.shape == (n, out_ch, h, w)
        assert np.isfinite(y).all()
        assert np.abs(y[:, -2:]).max() <= 110.0 + 1e-3  # tanh * AB_SCALE
        if out_ch == 3:
            assert 0.0 <= y[:, 0].min() and y[:, 0].max() <= 100.0 + 1e-3


def test_make_tiny_model_overrides_and_removes_metadata(make_tiny_model, tmp_path):
    p = make_tiny_model(
        "lineart", tmp_path / "m.onnx", name="x", palette=["#ff0000"], **{"inkhue.format": None}
    )
    meta = read_metadata(p)
    assert meta["inkhue.name"] == "x"
    assert json.loads(meta["inkhue.palette"]) == ["#ff0000"]
    assert "inkhue.format" not in meta
    assert meta["inkhue.task"] == "lineart"


@pytest.mark.slow
def test_export_after_training_step_passes_parity_and_writes_palette(tmp_path):
    # a trained step moves BatchNorm running stats away from the init: eval mode is exported
    gen = tiny_generator("grayscale", seed=3)
    gen.train()
    opt = torch.optim.SGD(gen.parameters(), lr=0.1)
    gen(torch.from_numpy(random_inputs(2, 32, 32))).mean().backward()
    opt.step()
    out = tmp_path / "g.onnx"
    diff = export_generator(
        gen, out, name="n", trained_on="t", train_size=96, palette=["#00FF00", "#123abc"]
    )
    assert 0.0 <= diff <= 1e-3
    meta = read_metadata(out)
    assert json.loads(meta["inkhue.palette"]) == ["#00ff00", "#123abc"]
    assert meta["inkhue.train_size"] == "96"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]  # no temp files left
    assert gen.training  # the caller's model is not switched to eval


def test_parity_check_catches_wrong_weights_and_perturbed_graph(grayscale_model, tmp_path):
    # the fixture was exported from tiny_generator("grayscale", seed=0)
    same = tiny_generator("grayscale", seed=0)
    assert check_parity(same, grayscale_model) <= 1e-3
    other = tiny_generator("grayscale", seed=1)
    with pytest.raises(ModelError, match="differ"):
        check_parity(other, grayscale_model)
    # perturb one weight of the graph by a small amount
    proto = onnx.load(str(grayscale_model))
    init = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 0.05
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ModelError, match="differ"):
        check_parity(same, bad)


@pytest.mark.slow
def test_failed_parity_leaves_destination_untouched(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    with pytest.raises(ModelError, match="differ"):  # no real diff is below -1
        export_generator(
            tiny_generator("lineart"), out, name="n", trained_on="t", train_size=8, tolerance=-1
        )
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
