"""Frames jobs colored from uploaded keyframes (POST /jobs with ``keyframes``): the
Krita docker's Colorize animation from the artist's colored frames, sent in chunks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from cartoon_shots import PAPER, SHIRT, cartoon, gray_of, interior_de, lines_of  # noqa: E402

from inkhue_engine.color import from_float01  # noqa: E402
from inkhue_engine.shot import lines_over  # noqa: E402

H, W = 120, 160


def _layout(channels: int, w: int = W, h: int = H) -> dict:
    return {"width": w, "height": h, "channels": channels, "depth": "u8", "order": "rgba"}


def _wait(client, job_id: str) -> dict:
    for _ in range(3000):
        status = client.get(f"/jobs/{job_id}").json()
        if status["state"] in ("done", "cancelled", "failed"):
            return status
        time.sleep(0.01)
    raise AssertionError(f"job stuck: {status}")


def _put(client, url: str, data: bytes) -> dict:
    r = client.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    return r.json()


def _results(client, job_id: str, n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        r = client.get(f"/jobs/{job_id}/frames/{i}")
        assert r.status_code == 200, r.text
        out.append(np.frombuffer(r.content, np.uint8).reshape(H, W, -1))
    return out


def _run(client, frames, keyframes, uploads, model="tiny-gray", channels=1):
    """Create a job, upload keyframes (``uploads``: (index, bytes, structure?)) and
    frames, wait, and return (status, results)."""
    body = {**_layout(channels), "frame_count": len(frames), "model": model}
    body["keyframes"] = keyframes
    r = client.post("/jobs", json=body)
    assert r.status_code == 200, r.text
    job = r.json()["id"]
    for k, data, structure in uploads:
        _put(client, f"/jobs/{job}/keyframes/{k}" + ("/structure" if structure else ""), data)
    for i, f in enumerate(frames):
        _put(client, f"/jobs/{job}/frames/{i}", f.tobytes())
    status = _wait(client, job)
    results = _results(client, job, len(frames)) if status["state"] == "done" else []
    return status, results


def test_keyframe_job_in_two_chunks_follows_the_artists_colors(make_client):
    """A shot of 5 grayscale frames sent as two jobs, as the docker does: the first with
    the keyframe as its frame 0, the second with that keyframe's frame uploaded as its
    structure and the first job's last result as the previous frame."""
    client = make_client()
    truths = [cartoon(dx=2 * i, ball=-3 * i) for i in range(5)]
    grays = [gray_of(t) for t in truths]
    key = {**_layout(3), "frame": 0}
    status, first = _run(client, grays[:3], [key], [(0, truths[0].tobytes(), False)])
    assert status["state"] == "done", status
    assert np.array_equal(first[0], truths[0])  # the artist's keyframe comes out as given
    specs = [
        {**_layout(3), "structure": True},
        {**_layout(3), "structure": True, "previous": True},
    ]
    uploads = [
        (0, truths[0].tobytes(), False),
        (0, grays[0].tobytes(), True),
        (1, first[2].tobytes(), False),
        (1, grays[2].tobytes(), True),
    ]
    status, second = _run(client, grays[3:], specs, uploads)
    assert status["state"] == "done", status
    # the tiny untrained model could not give these colors: they come from the keyframe
    for out, truth in zip(first[1:] + second, truths[1:], strict=True):
        assert interior_de(out, truth, SHIRT) < 2.0


def test_line_art_keyframe_painted_under_the_lines(make_client):
    """A fill layer (color without lines) with under_lines: the engine draws the frame's
    lines over it, and the next frames take its colors."""
    client = make_client()
    truths = [cartoon(dx=2 * i) for i in range(3)]
    lines = [lines_of(t) for t in truths]
    fill = truths[0].copy()
    fill[lines[0] == 0] = PAPER  # what is under the lines is the artist's business
    key = {**_layout(3), "frame": 0, "under_lines": True}
    status, out = _run(client, lines, [key], [(0, fill.tobytes(), False)], model="tiny-line")
    assert status["state"] == "done", status
    expected = from_float01(lines_over(fill, lines[0]), np.uint8)
    assert np.abs(out[0][..., :3].astype(int) - expected.astype(int)).max() <= 1
    assert interior_de(out[2], truths[2], SHIRT) < 2.0


@pytest.mark.parametrize(
    "keyframes, message",
    [
        ([{**_layout(3), "frame": 5}], "keyframes[0].frame: 5 is not a frame of this job"),
        ([{**_layout(3), "frame": 0, "structure": True}], "frame and structure"),
        ([{**_layout(3), "frame": 0, "under_lines": True}], "only line art"),
        ([{**_layout(3), "previous": True}], "previous: needs structure"),
        ([{**_layout(3), "structure": True, "previous": True}], "previous frame alone"),
        ([{**_layout(3), "frame": 0}, {**_layout(3), "frame": 0}], "same frame"),
    ],
)
def test_bad_keyframe_specs_are_400(make_client, keyframes, message):
    client = make_client()
    body = {**_layout(1), "frame_count": 2, "model": "tiny-gray", "keyframes": keyframes}
    r = client.post("/jobs", json=body)
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_keyframe_uploads_are_checked(make_client):
    client = make_client()
    body = {**_layout(1), "frame_count": 1, "model": "tiny-gray"}
    body["keyframes"] = [{**_layout(3, 80, 60)}]  # a model sheet of its own size
    job = client.post("/jobs", json=body).json()["id"]
    r = client.put(f"/jobs/{job}/keyframes/0", content=b"x" * 10)
    assert r.status_code == 400 and "keyframe 0" in r.json()["error"], r.text
    r = client.put(f"/jobs/{job}/keyframes/0/structure", content=b"x" * (W * H))
    assert r.status_code == 409 and "without 'structure'" in r.json()["error"], r.text
    r = client.put(f"/jobs/{job}/keyframes/3", content=b"x")
    assert r.status_code == 404 and "keyframes 0..0" in r.json()["error"], r.text
    r = client.put(f"/jobs/{job}/hints/0", content=bytes(W * H * 4))
    assert r.status_code == 409 and "takes no hints" in r.json()["error"], r.text
    # the job waits for its keyframe: one frame uploaded is not enough to start
    assert _put(client, f"/jobs/{job}/frames/0", bytes(W * H))["state"] == "uploading"


def test_uncolored_keyframe_fails_the_job_before_any_result(make_client):
    client = make_client()
    grays = [gray_of(cartoon(dx=2 * i)) for i in range(2)]
    key = {**_layout(1), "frame": 0, "name": "frame 0 of layer 'Colour'"}
    status, results = _run(client, grays, [key], [(0, grays[0].tobytes(), False)])
    assert status["state"] == "failed", status
    assert status["error"].startswith("frame 0 of layer 'Colour': the keyframe has no color")
    assert status["done"] == 0 and results == []


def test_keyframe_memory_is_reserved_and_given_back(make_client):
    client = make_client()
    jobs = client.app.state.jobs
    truths = [cartoon(dx=2 * i) for i in range(2)]
    grays = [gray_of(t) for t in truths]
    before = jobs.bytes_in_use()
    body = {**_layout(1), "frame_count": 2, "model": "tiny-gray"}
    body["keyframes"] = [{**_layout(3), "structure": True}]
    job = client.post("/jobs", json=body).json()["id"]
    reserved = jobs.bytes_in_use() - before
    assert reserved >= W * H * 3 + W * H + 2 * W * H  # keyframe + structure + frames
    _put(client, f"/jobs/{job}/keyframes/0", truths[0].tobytes())
    _put(client, f"/jobs/{job}/keyframes/0/structure", grays[0].tobytes())
    for i, g in enumerate(grays):
        _put(client, f"/jobs/{job}/frames/{i}", g.tobytes())
    assert _wait(client, job)["state"] == "done"
    # what stays reserved is the results (and bookkeeping), not the keyframe's uploads
    assert jobs.bytes_in_use() - before < reserved - W * H * 3


def test_keyframes_need_a_task_or_a_model(make_client):
    """Without model and task a job detects its task from its frames, after creation; a
    job with keyframes needs it at creation (to check them), so it says how to get it."""
    client = make_client()
    body = {**_layout(1), "frame_count": 1, "keyframes": [{**_layout(3), "frame": 0}]}
    r = client.post("/jobs", json=body)
    assert r.status_code == 400 and "give 'task' or 'model'" in r.json()["error"], r.text
