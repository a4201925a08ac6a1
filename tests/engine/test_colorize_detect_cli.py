"""``inkhue colorize`` without --model / --task takes the model of the task detected once
from the run's first frames; --task and --model override it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine.cli import main
from inkhue_engine.frames_io import write_image_atomic
from inkhue_engine.model import read_model_info, resolve_model


def _lines() -> np.ndarray:
    img = np.full((96, 128), 255, np.uint8)
    cv2.circle(img, (40, 48), 30, 0, 2, cv2.LINE_AA)
    cv2.rectangle(img, (70, 15), (120, 80), 0, 2, cv2.LINE_AA)
    return img


def _shaded() -> np.ndarray:
    yy, xx = np.mgrid[:96, :128].astype(np.float32)
    return (90 + 120 * np.clip(1 - np.hypot(xx - 50, yy - 40) / 90, 0, 1)).astype(np.uint8)


def _write(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        write_image_atomic(folder / f"f{i:02d}.png", f)
    return folder


def _models(out: Path) -> set[str]:
    manifest = json.loads((out / ".inkhue-batch.json").read_text())
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("model"), str):
                found.add(node["model"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(manifest)
    return found


def _name(task: str) -> str:
    return read_model_info(resolve_model(None, task)).name


def test_line_art_run_takes_the_line_art_model_once(tmp_path, capfd):
    # three line-art frames, then a shaded one: one task for the whole run
    src = _write(tmp_path / "in", [_lines(), _lines(), _lines(), _shaded()])
    code = main(["colorize", str(src), "-o", str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "line art" in err and f"'{_name('lineart')}'" in err and "--task" in err
    assert _models(tmp_path / "out") == {_name("lineart")}


def test_grayscale_run_and_the_overrides(tmp_path, capfd):
    src = _write(tmp_path / "in", [_shaded(), _shaded()])
    assert main(["colorize", str(src), "-o", str(tmp_path / "a")]) == 0
    err = capfd.readouterr().err
    assert "grayscale" in err and _models(tmp_path / "a") == {_name("grayscale")}
    # --task overrides the detection (and says nothing about it)
    assert main(["colorize", str(src), "-o", str(tmp_path / "b"), "--task", "lineart"]) == 0
    assert capfd.readouterr().err == ""
    assert _models(tmp_path / "b") == {_name("lineart")}
    # so does --model
    model = str(resolve_model(None, "lineart"))
    assert main(["colorize", str(src), "-o", str(tmp_path / "c"), "--model", model, "-q"]) == 0
    assert _models(tmp_path / "c") == {_name("lineart")}


def test_quiet_run_says_nothing_and_unreadable_frames_are_reported_by_the_batch(tmp_path, capfd):
    src = _write(tmp_path / "in", [_lines()])
    assert main(["colorize", str(src), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert capfd.readouterr().err == ""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code = main(["colorize", str(bad), "-o", str(tmp_path / "out2"), "-q"])
    err = capfd.readouterr().err
    assert code != 0 and "broken.png" in err and "detect" not in err


def test_a_video_is_detected_from_its_first_frames(tmp_path, capfd):
    from inkhue_engine.frames_io import write_video

    video = tmp_path / "lines.mp4"
    write_video(video, [_lines()] * 5, 24)
    code = main(["colorize", str(video), "-o", str(tmp_path / "out")])
    err = capfd.readouterr().err
    assert code == 0, err
    assert "line art" in err and "first 3 frames" in err
    assert _models(tmp_path / "out") == {_name("lineart")}
