"""The pipeline's bytes do not change when it is made faster.

``pipeline_digests()`` runs prepare_frame and finish_frame on a set of cases (both
tasks; the bundled example frame at its own size and fitted to 1920x1080, as
``inkhue bench`` does; a synthetic cartoon; 0, 1, 10 and 40 painted hint dots; a
palette; regions off; an RGBA frame) and returns the SHA-256 of every model input and
every output frame. The "model" is a fixed function of the model input made of float32
additions and multiplications only (bit-exact on every platform), so the digests test
the engine's own work, not ONNX Runtime's kernels.

``tests/engine/data/pipeline_digests.json`` holds the digests of the code before a
speed change. Regenerate it from the commit whose bytes are the reference:

    git checkout REFERENCE -- engine && python tests/engine/test_pipeline_digests.py --write
    git checkout HEAD -- engine

The file records the numpy and OpenCV versions and the CPU it was made with, its name and
its vector-instruction flags (the libraries choose SIMD code by CPU); on another set the
test is skipped with a line saying so, as the digests of another build are not expected
to match.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DIGESTS = Path(__file__).with_name("data") / "pipeline_digests.json"
HINT_COUNTS = (0, 1, 10, 40)


def _fake_prediction(task: str, x: np.ndarray) -> np.ndarray:
    """A deterministic "model": float32 + and x only (bit-exact everywhere), using every
    input channel so that any change of the model input changes the output."""
    L, a, b, m = (x[i].astype(np.float32) for i in range(4))
    ka, kb = np.float32(0.7), np.float32(0.45)
    pa = (L - np.float32(50.0)) * np.float32(0.6) + a * ka + m * np.float32(3.0)
    pb = (np.float32(55.0) - L) * np.float32(0.35) + b * kb - m * np.float32(2.0)
    if task == "grayscale":
        return np.stack([pa, pb])
    pl = L * np.float32(0.8) + np.float32(12.0) + m * np.float32(4.0)
    return np.stack([pl, pa, pb])


def _simd_flags() -> str:
    """The CPU's vector-instruction flags (/proc/cpuinfo), by which the libraries pick
    their kernels. Two machines named "AMD EPYC" with the same numpy and OpenCV, one with
    AVX-512 and one without, gave other 1080p grayscale model inputs from the same engine
    (2026-12-02; turning off OpenCV's AVX-512 dispatch did not bring the bytes back, so
    which kernel differs was not pinned down): the name alone does not tell them apart."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                simd = (f for f in flags if f.startswith(("sse", "ssse", "avx", "fma", "f16c")))
                return " ".join(sorted(simd))
    except OSError:
        pass
    return "unknown"


def _env() -> dict[str, str]:
    from inkhue_engine.bench import cpu_name

    return {
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "cpu": cpu_name(),
        "cpu_simd": _simd_flags(),
    }


def _cases():
    """(name, task, frame, hints, options) of every case."""
    from inkhue_engine import bench, frames_io
    from inkhue_engine.pipeline import ColorizeOptions

    default = ColorizeOptions()
    for task in ("grayscale", "lineart"):
        example = frames_io.read_image(ROOT / "examples" / task / "prologue_000.png")
        frames = {
            "example": example,
            "1080p": bench.fit_frame(example, 1080, 1920),
            "cartoon": bench.cartoon_frame(task, 300, 420, seed=3),
        }
        for fname, frame in frames.items():
            for n in HINT_COUNTS:
                yield f"{task}/{fname}/{n}", task, frame, bench.dot_hints(frame, n, seed=n), default
        frame = frames["cartoon"]
        hints = bench.dot_hints(frame, 10, seed=7)
        palette = ColorizeOptions(palette=("#d04040", "#40a040", "#4060d0", "#e0d0a0"))
        yield f"{task}/cartoon/palette", task, frame, hints, palette
        yield f"{task}/cartoon/no-regions", task, frame, hints, ColorizeOptions(regions=False)
        rgba = np.dstack([np.repeat(frame[..., None], 3, 2), np.full(frame.shape, 200, np.uint8)])
        yield f"{task}/cartoon/rgba", task, rgba, hints, default
    frame = bench.cartoon_frame("grayscale", 300, 420, seed=3)
    hints = bench.dot_hints(frame, 10, seed=7)
    yield (
        "grayscale/cartoon/no-anchor",
        "grayscale",
        frame,
        hints,
        ColorizeOptions(anchor_hints=False),
    )


def pipeline_digests() -> dict[str, dict[str, str]]:
    """{case: {"input": sha256 of the model input, "output": sha256 of the output}}."""
    from inkhue_engine.model import load_model, resolve_model
    from inkhue_engine.pipeline import finish_frame, prepare_frame

    infos = {t: load_model(resolve_model(t), "cpu").info for t in ("grayscale", "lineart")}
    out = {}
    for name, task, frame, hints, options in _cases():
        p = prepare_frame(frame, infos[task], hints, options)
        result = finish_frame(p, _fake_prediction(task, p.input))
        out[name] = {
            "input": hashlib.sha256(np.ascontiguousarray(p.input).tobytes()).hexdigest(),
            "output": hashlib.sha256(
                repr((result.shape, result.dtype.str)).encode() + result.tobytes()
            ).hexdigest(),
        }
    return out


def write(path: Path = DIGESTS) -> None:
    """Write the digests of the code as it is now (the reference for later changes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"env": _env(), "digests": pipeline_digests()}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_pipeline_bytes_are_the_reference_bytes():
    doc = json.loads(DIGESTS.read_text(encoding="utf-8"))
    if doc["env"] != _env():
        pytest.skip(
            f"digests made with {doc['env']}, this is {_env()}: regenerate them at the "
            "reference commit (see the module docstring) to compare here"
        )
    now = pipeline_digests()
    assert sorted(now) == sorted(doc["digests"])
    changed = [k for k in now if now[k] != doc["digests"][k]]
    assert not changed, f"bytes changed in {changed}"


def test_the_fake_prediction_sees_every_input_channel():
    x = np.zeros((4, 8, 8), np.float32)
    for task in ("grayscale", "lineart"):
        base = _fake_prediction(task, x)
        for c in range(4):
            y = x.copy()
            y[c, 3, 3] = 1.0
            assert not np.array_equal(_fake_prediction(task, y), base), (task, c)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/engine/test_pipeline_digests.py --write")
    write()
    print(f"wrote {DIGESTS}")
