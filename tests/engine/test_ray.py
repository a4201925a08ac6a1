"""colorize --ray: the model work on a local Ray cluster gives the same bytes, resumes,
and keeps carried colors in frame order."""

from __future__ import annotations

import importlib

import cv2
import numpy as np
import pytest

from inkhue_engine import batch, frames_io
from inkhue_engine.errors import InkHueError
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions


def _sequence(folder, n=7, h=40, w=56):
    folder.mkdir()
    for i in range(n):
        img = np.full((h, w), 220, np.uint8)
        cv2.rectangle(img, (4, 4), (20, 30), 90, -1)
        cv2.rectangle(img, (4, 4), (20, 30), 10, 1)
        x = 24 + 3 * i  # a moving block; the rest stays still (carry keeps its colors)
        cv2.rectangle(img, (x, 10), (x + 8, 22), 40, -1)
        frames_io.write_image_atomic(folder / f"f{i:03d}.png", img)
    return frames_io.expand_inputs([folder])


@pytest.mark.slow
def test_ray_outputs_are_the_bytes_of_one_process_and_resume(grayscale_model, tmp_path):
    pytest.importorskip("ray")
    from inkhue_engine.ray_runner import RayRunner

    sources = _sequence(tmp_path / "in")
    model = load_model(grayscale_model, "cpu")
    options = ColorizeOptions()
    local = batch.colorize_many(
        sources, tmp_path / "local", model, options, batch_size=2, progress=False
    )
    runner = RayRunner(model, options, 2, num_cpus=2)  # fewer CPUs than frames in flight
    try:
        res = batch.colorize_many(
            sources, tmp_path / "ray", model, options, batch_size=2, progress=False, remote=runner
        )
        assert res.written == local.written == 7
        names = sorted(p.name for p in (tmp_path / "local").glob("*.png"))
        assert names == sorted(p.name for p in (tmp_path / "ray").glob("*.png"))
        for name in names:
            assert (tmp_path / "ray" / name).read_bytes() == (
                tmp_path / "local" / name
            ).read_bytes(), name
        for name in names[2:5]:  # an interrupted run: resume it on the cluster
            (tmp_path / "ray" / name).unlink()
        res = batch.colorize_many(
            sources, tmp_path / "ray", model, options, batch_size=2, progress=False, remote=runner
        )
        assert (res.written, res.skipped) == (3, 4)
        for name in names:
            assert (tmp_path / "ray" / name).read_bytes() == (
                tmp_path / "local" / name
            ).read_bytes(), name
    finally:
        runner.close()


def test_missing_ray_is_one_clear_line(grayscale_model, monkeypatch):
    from inkhue_engine import ray_runner

    real = importlib.import_module

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ray_runner.importlib, "import_module", no_ray)
    with pytest.raises(InkHueError, match=r"pip install 'inkhue\[ray\]'"):
        ray_runner.RayRunner(load_model(grayscale_model, "cpu"), ColorizeOptions(), 2)


def test_an_unreachable_head_fails_fast(grayscale_model):
    pytest.importorskip("ray")
    import socket

    from inkhue_engine.ray_runner import _check_reachable

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(InkHueError, match=f"127.0.0.1:{port}: no Ray head answers"):
        _check_reachable(f"127.0.0.1:{port}")
    _check_reachable("auto")  # left to Ray
