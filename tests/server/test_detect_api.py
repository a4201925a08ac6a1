"""No model and no task: the server takes the model of the detected task (task_detect),
per /colorize frame and once per job; POST /detect says what it would choose."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np

from inkhue_engine.frames_io import write_image_atomic
from inkhue_engine.model import read_model_info, resolve_model

H, W = 96, 128


def _lines() -> np.ndarray:
    img = np.full((H, W), 255, np.uint8)
    cv2.circle(img, (40, 48), 30, 0, 2, cv2.LINE_AA)
    cv2.rectangle(img, (70, 15), (120, 80), 0, 2, cv2.LINE_AA)
    cv2.line(img, (5, 90), (125, 5), 0, 2, cv2.LINE_AA)
    return img


def _shaded() -> np.ndarray:
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    img = 90 + 120 * np.clip(1 - np.hypot(xx - 50, yy - 40) / 90, 0, 1)
    return img.astype(np.uint8)


def _on_transparency_bgra(gray: np.ndarray) -> bytes:
    """Black lines on a transparent layer, in Krita's BGRA order."""
    out = np.zeros((H, W, 4), np.uint8)
    out[..., 3] = 255 - gray
    return out.tobytes()


def _default(task: str) -> str:
    return read_model_info(resolve_model(None, task)).name


def _raw(client, path: str, data: bytes, **params):
    return client.post(
        path,
        params={"width": W, "height": H, **params},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def test_detect_endpoint(client):
    r = _raw(client, "/detect", _lines().tobytes(), channels=1, depth="u8")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "lineart" and body["model"] == _default("lineart")
    assert not body["blank"] and not body["colored"] and body["reason"]
    r = _raw(
        client, "/detect", _on_transparency_bgra(_lines()), channels=4, depth="u8", order="bgra"
    )
    assert r.json()["task"] == "lineart"
    shaded16 = (_shaded().astype(np.uint16) * 257).astype("<u2").tobytes()
    r = _raw(client, "/detect", shaded16, channels=1, depth="u16")
    assert r.json()["task"] == "grayscale" and r.json()["model"] == _default("grayscale")
    r = _raw(client, "/detect", np.zeros((H, W), np.uint8).tobytes(), channels=1, depth="u8")
    assert r.json()["blank"] and r.json()["confidence"] == 0


def test_detect_takes_up_to_three_frames_of_a_sequence(client):
    params = {"width": W, "height": H, "channels": 1, "depth": "u8"}
    blank = np.zeros((H, W), np.uint8).tobytes()
    files = [
        ("frame", (f"f{i}.raw", d, "application/octet-stream"))
        for i, d in enumerate([blank, _lines().tobytes()])
    ]
    r = client.post("/detect", params=params, files=files)
    assert r.status_code == 200, r.text
    assert r.json()["task"] == "lineart"  # the blank first frame is skipped
    r = client.post("/detect", params=params, files=files * 2)
    assert r.status_code == 400, r.text
    r = _raw(client, "/detect", b"\0" * 10, channels=1, depth="u8")
    assert r.status_code == 400 and "body" in r.json()["error"]


def test_colorize_without_model_or_task_uses_the_detected_task(client):
    params = {"width": W, "height": H, "channels": 1, "depth": "u8"}
    r = _raw(client, "/colorize", _lines().tobytes(), **params)
    assert r.status_code == 200, r.text
    assert r.headers["X-InkHue-Task"] == "lineart"
    assert r.headers["X-InkHue-Model"] == _default("lineart")
    assert "line art" in r.headers["X-InkHue-Detected"]
    r = _raw(client, "/colorize", _shaded().tobytes(), **params)
    assert r.headers["X-InkHue-Task"] == "grayscale"
    assert r.headers["X-InkHue-Model"] == _default("grayscale")
    # task or model given: no detection
    r = _raw(client, "/colorize", _lines().tobytes(), task="grayscale", **params)
    assert r.headers["X-InkHue-Task"] == "grayscale" and "X-InkHue-Detected" not in r.headers
    r = _raw(client, "/colorize", _lines().tobytes(), model="tiny-gray", **params)
    assert r.headers["X-InkHue-Model"] == "tiny-gray"


def _wait(client, job_id: str) -> dict:
    for _ in range(2000):
        status = client.get(f"/jobs/{job_id}").json()
        if status["state"] in ("done", "cancelled", "failed"):
            return status
        time.sleep(0.01)
    raise AssertionError(f"job stuck: {status}")


def test_frames_job_detects_once_from_its_first_frames(client):
    layout = {"width": W, "height": H, "channels": 1, "depth": "u8"}
    # line art, then a shaded frame: the job stays on the line-art model for every frame
    frames = [_lines(), _lines(), _lines(), _shaded()]
    r = client.post("/jobs", json={**layout, "frame_count": len(frames)})
    assert r.status_code == 200, r.text
    job = r.json()["id"]
    for i, f in enumerate(frames):
        assert client.put(f"/jobs/{job}/frames/{i}", content=f.tobytes()).status_code == 200
    assert _wait(client, job)["state"] == "done"
    models = {client.get(f"/jobs/{job}/frames/{i}").headers["X-InkHue-Model"] for i in range(4)}
    assert models == {_default("lineart")}


def test_files_job_detects_once(make_client, tmp_path):
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    for i in range(3):
        write_image_atomic(root / "in" / f"f{i}.png", _lines())
    client = make_client(root=root)
    r = client.post("/jobs/files", json={"inputs": ["in"], "out": "out"})
    assert r.status_code == 200, r.text
    assert _wait(client, r.json()["id"])["state"] == "done"
    manifest = json.loads((root / "out" / ".inkhue-batch.json").read_text())
    assert json.dumps(manifest).count(f'"model": "{_default("lineart")}"') >= 1
    assert f'"model": "{_default("grayscale")}"' not in json.dumps(manifest)
