"""torch eager timings for ``inkhue bench`` (the engine imports this module only when it
is installed: the engine itself never needs torch).

``time_eager`` runs the generator of a base checkpoint in torch eager mode (eval,
no_grad, float32, CPU) on the model input shape the bench used, and checks that it has
the same weights as the ONNX model it is compared with: both run one random input and
their outputs must agree (max abs difference, Lab units). A user's own ONNX model has no
checkpoint here unless one is given: then the timing is still reported, flagged as
"not the same weights", and the bench prints no ratio.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Largest output difference (Lab units) for "the same weights" (export parity is ~1e-5).
SAME_WEIGHTS_TOL = 1e-2


def time_eager(
    onnx_path: str | os.PathLike,
    task: str,
    shape: list[int],
    runs: int = 5,
    warmup: int = 1,
    checkpoint: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """ms (median/min/max) of the torch eager generator on an input of ``shape``.

    ``checkpoint``: the .pt the ONNX model was exported from; default the shipped base
    of ``task`` (what the bundled models were exported from). Also returns torch's
    thread count, the checkpoint, the parity difference and ``same_weights``.
    """
    import onnxruntime as ort
    import torch

    from inkhue_engine.finetune_spec import resolve_base
    from inkhue_training.export import generator_from_checkpoint, load_checkpoint

    ckpt_path = Path(checkpoint) if checkpoint is not None else resolve_base(task)
    ckpt = load_checkpoint(ckpt_path)
    gen = generator_from_checkpoint(ckpt).eval()
    rng = np.random.default_rng(0)
    x = np.zeros(tuple(shape), np.float32)
    x[:, 0] = rng.uniform(0, 100, x[:, 0].shape)
    xt = torch.from_numpy(x)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = gen(xt).float().numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        diff = float(np.max(np.abs(ref - got))) if ref.shape == got.shape else float("inf")
        for _ in range(warmup):
            gen(xt)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            gen(xt)
            times.append((time.perf_counter() - t0) * 1000.0)
    same = diff <= SAME_WEIGHTS_TOL
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "checkpoint": str(ckpt_path),
        "parity_max_abs": diff,
        "same_weights": same,
        "note": ""
        if same
        else (
            f"{ckpt_path.name} is not the checkpoint of this ONNX model (outputs differ by "
            f"{diff:.3g}): no ORT/torch ratio"
        ),
    }
