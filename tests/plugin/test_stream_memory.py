"""The docker's chunked Colorize animation against a REAL ``inkhue serve`` process, at a
small scale (benchmarks/stream_animation.py runs 1,000 frames of 1080p): the plugin holds
at most a chunk or two of frames, each engine job is one chunk, and a finished chunk's
results are not kept (issue 14 item 3)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location(
        "inkhue_stream_bench", ROOT / "benchmarks" / "stream_animation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_long_animation_streams_in_chunks_with_bounded_memory(qapp, tmp_path, make_tiny_model):
    bench = _bench()
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_model("grayscale", models / "tiny-gray.onnx", name="tiny-gray")
    proc, url = bench.start_server(models, tmp_path / "serve.log")
    try:
        report = bench.run(url, 40, 96, 64, 8, "tiny-gray", server_pid=proc.pid, timeout_s=300)
    finally:
        proc.terminate()
        proc.wait(30)
    assert report["error"] == "", report["error"]
    assert report["inserted"] == 40 and report["bad_results"] == 0
    assert report["job_sizes"] == [8] * 5  # one engine job per chunk, never the whole range
    assert report["max_outstanding_frames"] <= 2 * 8
    # a finished chunk's results are handed to the insertion, not kept by its job object
    assert report["retained_result_frames"] == 0
    assert report["message"] == "Added animated layer 'InkHue tiny-gray' (40 keyframes)"
    assert any("server_kib" in s for s in report["samples"])
    rows = bench.by_tenths(report)
    assert len(rows) == 10 and rows[-1]["server_mib"] > 0
