"""int8 and fp16 variants of an InkHue model: valid models the engine loads, close to fp32."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")


def test_int8_and_fp16_variants_load_and_stay_close(make_tiny_model, tmp_path):
    from inkhue_engine import model as M
    from inkhue_training import quantize as Q

    src = make_tiny_model("grayscale", tmp_path / "g.onnx")
    truths = Q.cartoon_truths(3, size=64)
    q8 = Q.quantize_int8(src, tmp_path / "g.int8.onnx", truths)
    f16 = Q.convert_fp16(src, tmp_path / "g.fp16.onnx")
    assert M.precision_variant(src, "int8") == q8 and M.precision_variant(src, "fp16") == f16
    x = np.zeros((1, 4, 32, 48), np.float32)
    x[:, 0] = np.random.default_rng(0).uniform(0, 100, (32, 48))
    ref = M.Model(src, "cpu").run(x)
    for path, precision, tol in ((q8, "int8", 5.0), (f16, "fp16", 0.5)):
        m = M.Model(path, "cpu")
        info = M.read_model_info(path)
        assert info.task == "grayscale" and info.name.endswith(f"-{precision}")
        out = m.run(x)
        assert out.shape == ref.shape
        assert np.abs(out - ref).mean() < tol  # Lab units
    with pytest.raises(SystemExit):
        Q.main(["int4", str(src), "-o", str(tmp_path / "x.onnx")])
    assert Q.main(["int8", str(src), "-o", str(src)]) == 2  # never overwrites the input
