"""Batch jobs over HTTP: uploaded frames (with carry) and server-side files under --root."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from inkhue_engine.batch import CarrySettings, SequenceCarry
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions, colorize_frame

H, W = 24, 32
LAYOUT = {"width": W, "height": H, "channels": 4, "depth": "u8", "order": "bgra"}


def _frames(n: int) -> list[np.ndarray]:
    """RGBA frames: a box that moves right by 2 px per frame over a still background."""
    frames = []
    for i in range(n):
        img = np.full((H, W, 4), 230, np.uint8)
        img[..., 3] = 255
        img[2:6, 2:30, :3] = (120, 60, 30)  # still stripe
        img[8:20, 4 + 2 * i : 14 + 2 * i, :3] = (20, 20, 20)
        frames.append(img)
    return frames


def _bgra(img: np.ndarray) -> bytes:
    return img[..., [2, 1, 0, 3]].tobytes()


def _rgba(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).reshape(H, W, 4)[..., [2, 1, 0, 3]]


def _wait(client, job_id: str, states=("done", "cancelled", "failed")) -> dict:
    for _ in range(1000):
        status = client.get(f"/jobs/{job_id}").json()
        if status["state"] in states:
            return status
        time.sleep(0.01)
    raise AssertionError(f"job stuck: {status}")


def _expected_sequence(frames, hints, model, carry=True):
    """What the job must produce: the pipeline per frame, colors carried as batch does."""
    state = SequenceCarry(CarrySettings(enabled=carry))
    previous, out = None, []
    for frame, hint in zip(frames, hints, strict=True):
        static = state.observe(frame)
        fresh = colorize_frame(frame, model, hints=hint, options=ColorizeOptions())
        previous = state.apply(fresh, static, previous)
        out.append(previous)
    return out


def test_frames_job_create_upload_progress_results(client, named_models):
    frames = _frames(3)
    hints = [None, np.zeros((H, W, 4), np.uint8), None]
    hints[1][10:12, 6:8] = (0, 0, 255, 255)
    r = client.post("/jobs", json={**LAYOUT, "frame_count": 3, "model": "tiny-line"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["state"] == "uploading" and job["total"] == 3 and job["done"] == 0
    job_id = job["id"]
    assert client.get(f"/jobs/{job_id}/frames/0").status_code == 404  # not done yet
    r = client.put(f"/jobs/{job_id}/hints/1", content=_bgra(hints[1]))
    assert r.status_code == 200, r.text
    for i in (2, 0, 1):  # any order; the last upload starts the job
        r = client.put(f"/jobs/{job_id}/frames/{i}", content=_bgra(frames[i]))
        assert r.status_code == 200, r.text
    assert r.json()["state"] in ("running", "done")
    status = _wait(client, job_id)
    assert status == {"id": job_id, "state": "done", "done": 3, "total": 3, "error": None}
    expected = _expected_sequence(frames, hints, load_model(named_models["tiny-line"], "cpu"))
    for i in range(3):
        r = client.get(f"/jobs/{job_id}/frames/{i}")
        assert r.status_code == 200
        assert r.headers["X-InkHue-Model"] == "tiny-line"
        assert r.headers["X-InkHue-Order"] == "bgra"
        np.testing.assert_array_equal(_rgba(r.content), expected[i])
    # finished and fetched: DELETE forgets it
    assert client.delete(f"/jobs/{job_id}").json()["forgotten"] is True
    assert client.get(f"/jobs/{job_id}").status_code == 404


def test_job_carry_can_be_switched_off(client, named_models):
    frames = _frames(2)
    r = client.post(
        "/jobs", json={**LAYOUT, "frame_count": 2, "model": "tiny-gray", "carry": False}
    )
    job_id = r.json()["id"]
    for i, f in enumerate(frames):
        client.put(f"/jobs/{job_id}/frames/{i}", content=_bgra(f))
    _wait(client, job_id)
    model = load_model(named_models["tiny-gray"], "cpu")
    for i, f in enumerate(frames):
        got = _rgba(client.get(f"/jobs/{job_id}/frames/{i}").content)
        np.testing.assert_array_equal(got, colorize_frame(f, model))


def test_job_errors(client):
    r = client.post("/jobs", json={**LAYOUT, "frame_count": 0, "model": "tiny-gray"})
    assert r.status_code == 400 and "frame_count" in r.json()["error"]
    # a 100-byte request may not make the server allocate gigabytes (nor answer 500)
    for count in (50_000_000, 10**30):
        r = client.post(
            "/jobs",
            json={
                "width": 1,
                "height": 1,
                "channels": 1,
                "depth": "u8",
                "frame_count": count,
                "model": "tiny-gray",
            },
        )
        assert r.status_code == 400 and "frame_count" in r.json()["error"], r.text
    r = client.post("/jobs", json={**LAYOUT, "frame_count": 1, "model": "nope"})
    assert r.status_code == 404
    job_id = client.post("/jobs", json={**LAYOUT, "frame_count": 1, "model": "tiny-gray"}).json()[
        "id"
    ]
    r = client.put(f"/jobs/{job_id}/frames/0", content=b"\0" * 5)
    assert r.status_code == 400 and r.json()["error"].startswith("frame 0: expected")
    r = client.put(f"/jobs/{job_id}/hints/0", content=b"\0" * 5)
    assert r.status_code == 400 and r.json()["error"].startswith("hints 0: expected")
    r = client.put(f"/jobs/{job_id}/frames/1", content=b"\0" * (W * H * 4))
    assert r.status_code == 404 and "out of range" in r.json()["error"]
    assert client.get("/jobs/unknown").status_code == 404
    r = client.delete(f"/jobs/{job_id}")  # still uploading: cancelled and forgotten
    assert r.json()["state"] == "cancelled" and r.json()["forgotten"] is True


def test_job_cancel_stops_between_frames(client, monkeypatch):
    from inkhue_engine import server

    gate, entered = threading.Event(), threading.Event()
    real = server.colorize_frame

    def slow(*args, **kwargs):
        entered.set()
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(server, "colorize_frame", slow)
    frames = _frames(4)
    job_id = client.post("/jobs", json={**LAYOUT, "frame_count": 4, "model": "tiny-gray"}).json()[
        "id"
    ]
    for i, f in enumerate(frames):
        client.put(f"/jobs/{job_id}/frames/{i}", content=_bgra(f))
    assert entered.wait(10)
    r = client.delete(f"/jobs/{job_id}")
    assert r.json()["state"] == "cancelled" and r.json()["forgotten"] is False
    gate.set()
    worker = client.app.state.jobs.get(job_id).thread
    worker.join(30)  # the worker ends: wait for that, not for a guessed time
    assert not worker.is_alive()
    status = client.get(f"/jobs/{job_id}").json()
    assert status["state"] == "cancelled"
    assert status["done"] == 1  # the frame in flight finished; no other one started
    assert client.get(f"/jobs/{job_id}/frames/0").status_code == 200
    assert client.get(f"/jobs/{job_id}/frames/1").status_code == 404
    r = client.put(f"/jobs/{job_id}/frames/0", content=_bgra(frames[0]))
    assert r.status_code == 409


def test_job_memory_limits_are_413_and_429(make_client):
    # client errors, not server errors (5xx): a job too large for this server ever (413),
    # or one that must wait until other jobs free their memory (429)
    from inkhue_engine.server_jobs import FRAME_OVERHEAD

    client = make_client(max_job_bytes=(W * H * 8 + FRAME_OVERHEAD) * 2, max_jobs=2)
    r = client.post("/jobs", json={**LAYOUT, "frame_count": 3, "model": "tiny-gray"})
    assert r.status_code == 413 and "split the sequence" in r.json()["error"]
    first = client.post("/jobs", json={**LAYOUT, "frame_count": 1, "model": "tiny-gray"})
    assert first.status_code == 200
    r = client.post("/jobs", json={**LAYOUT, "frame_count": 2, "model": "tiny-gray"})
    assert r.status_code == 429 and "DELETE finished jobs" in r.json()["error"]
    assert (
        client.post("/jobs", json={**LAYOUT, "frame_count": 1, "model": "tiny-gray"}).status_code
        == 200
    )
    r = client.post("/jobs", json={**LAYOUT, "frame_count": 1, "model": "tiny-gray"})
    assert r.status_code == 429 and "holds 2 jobs" in r.json()["error"]
    client.delete(f"/jobs/{first.json()['id']}")
    assert (
        client.post("/jobs", json={**LAYOUT, "frame_count": 1, "model": "tiny-gray"}).status_code
        == 200
    )


# --------------------------------------------------------------------------- files jobs


def _write_frames(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(_frames(n)):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGBA2BGRA))


def test_files_job_under_root(make_client, tmp_path):
    root = tmp_path / "root"
    _write_frames(root / "in")
    client = make_client(root=root)
    r = client.post(
        "/jobs/files", json={"inputs": ["in/*.png"], "out": "out", "model": "tiny-gray"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 3
    status = _wait(client, r.json()["id"])
    assert status["state"] == "done" and status["done"] == 3, status
    assert sorted(p.name for p in (root / "out").glob("*.png")) == ["f0.png", "f1.png", "f2.png"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": ["/etc/passwd"], "out": "out"},
        {"inputs": ["in/../../outside"], "out": "out"},
        {"inputs": ["in"], "out": "../out"},
        {"inputs": ["in/*/../../*"], "out": "out"},
        {"inputs": ["in"], "out": "out", "hints": "/tmp"},
        {"inputs": ["link/*.png"], "out": "out"},  # a symlink inside root pointing out
        {"inputs": ["in2"], "out": "out"},  # a folder holding a symlink to a file outside
        # a hints folder inside root holding a symlink to a hint image outside
        {"inputs": ["in"], "out": "out", "hints": "hints"},
    ],
)
def test_files_job_outside_root_is_403(make_client, tmp_path, body):
    root = tmp_path / "root"
    _write_frames(root / "in", 1)
    _write_frames(tmp_path / "outside", 1)
    (root / "link").symlink_to(tmp_path / "outside")
    (root / "in2").mkdir()
    (root / "in2" / "evil.png").symlink_to(tmp_path / "outside" / "f0.png")
    (root / "hints").mkdir()
    (root / "hints" / "f0.png").symlink_to(tmp_path / "outside" / "f0.png")
    client = make_client(root=root)
    r = client.post("/jobs/files", json={**body, "model": "tiny-gray"})
    assert r.status_code == 403, r.text
    assert "root" in r.json()["error"]
    assert not (root / "out").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "body, field",
    [
        (
            {"inputs": ["in/f0.png\x00.txt"], "out": "out"},
            "inputs: 'in/f0.png\\x00.txt' holds a NUL",
        ),
        ({"inputs": ["in"], "out": "o\x00ut"}, "out: 'o\\x00ut' holds a NUL byte"),
        ({"inputs": ["in"], "out": "out", "hints": "\x00"}, "hints: '\\x00' holds a NUL byte"),
        ({"inputs": ["in", "in/*\x00"], "out": "out"}, "inputs: 'in/*\\x00' holds a NUL byte"),
        ({"inputs": ["in"], "out": ""}, "out"),  # valid by the schema before, refused anyway
        ({"inputs": [""], "out": "out"}, "inputs.0"),
        ({"inputs": ["x" * 300], "out": "out"}, "x" * 50),  # a name too long: a 500 before
    ],
)
def test_bad_paths_are_400(make_client, tmp_path, body, field):
    root = tmp_path / "root"
    _write_frames(root / "in", 1)
    client = make_client(root=root, raise_server_exceptions=False)
    r = client.post("/jobs/files", json={**body, "model": "tiny-gray"})
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]


def test_nul_byte_reaches_no_file_call(tmp_path):
    from inkhue_engine.errors import InputError
    from inkhue_engine.server import resolve_under_root

    with pytest.raises(InputError, match="hints: .* holds a NUL byte"):
        resolve_under_root("a\x00b", tmp_path, "hints")


def test_files_job_refused_without_root(client, tmp_path):
    _write_frames(tmp_path / "in", 1)
    r = client.post(
        "/jobs/files",
        json={"inputs": [str(tmp_path / "in")], "out": str(tmp_path / "out"), "model": "tiny-gray"},
    )
    assert r.status_code == 403 and "--root" in r.json()["error"]


def test_hint_link_swapped_in_after_planning_is_refused(tmp_path):
    # the folder is checked when the job is planned, and each file again when it is read
    from inkhue_engine.batch import HintSource
    from inkhue_engine.errors import ForbiddenError

    root = tmp_path / "root"
    _write_frames(root / "hints", 1)
    _write_frames(tmp_path / "outside", 1)
    source = HintSource(root / "hints", ["f0.png"], root=root)
    (root / "hints" / "f0.png").unlink()
    (root / "hints" / "f0.png").symlink_to(tmp_path / "outside" / "f0.png")
    with pytest.raises(ForbiddenError, match="f0.png.*outside the server's --root"):
        source.for_frame("f0.png", (H, W))
    # without a root (the CLI) the same folder is fine
    assert HintSource(root / "hints", ["f0.png"]).for_frame("f0.png", (H, W)) is not None


def test_files_job_output_linked_out_of_root_is_403(make_client, tmp_path):
    # an output file (or a video's frame folder) inside ``out`` may itself be a link
    root = tmp_path / "root"
    _write_frames(root / "in", 2)
    (tmp_path / "outside").mkdir()
    (root / "out").mkdir()
    (root / "out" / "f1.png").symlink_to(tmp_path / "outside" / "f1.png")
    client = make_client(root=root)
    r = client.post("/jobs/files", json={"inputs": ["in"], "out": "out", "model": "tiny-gray"})
    assert r.status_code == 403 and "'f1.png' links outside" in r.json()["error"], r.text
    assert not any((tmp_path / "outside").iterdir())


def test_input_link_swapped_in_after_planning_is_refused(tmp_path, named_models):
    from inkhue_engine import batch, frames_io
    from inkhue_engine.model import load_model

    root = tmp_path / "root"
    _write_frames(root / "in", 2)
    _write_frames(tmp_path / "outside", 2)
    sources = frames_io.expand_inputs([root / "in"])  # planned: both files under root
    (root / "in" / "f1.png").unlink()
    (root / "in" / "f1.png").symlink_to(tmp_path / "outside" / "f1.png")
    from inkhue_engine.errors import ForbiddenError

    model = load_model(named_models["tiny-gray"], device="cpu")
    with pytest.raises(ForbiddenError, match="'f1.png' links outside the server's --root"):
        batch.colorize_many(sources, root / "out", model, root=root, progress=False)
    assert not (root / "out" / "f1.png").exists()
    # a shot from keyframes reads its frames the same way
    from inkhue_engine import shot

    _write_shot(root / "shot")
    frames = frames_io.expand_inputs([root / "shot" / "in"])
    (root / "shot" / "in" / "f002.png").unlink()
    (root / "shot" / "in" / "f002.png").symlink_to(tmp_path / "outside" / "f1.png")
    keys = shot.load_keyframes([root / "shot" / "keys"])
    with pytest.raises(ForbiddenError, match="'f002.png' links outside the server's --root"):
        shot.colorize_shot(frames, root / "shot_out", model, keys, progress=False, root=root)
    assert not (root / "shot_out" / "f002.png").exists()


def test_two_files_jobs_writing_the_same_outputs_do_not_run_at_once(
    make_client, tmp_path, monkeypatch
):
    import threading

    from inkhue_engine import server

    root = tmp_path / "root"
    _write_frames(root / "in", 2)
    _write_frames(root / "in2", 2)
    release = threading.Event()
    real = server.colorize_many

    def held(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(server, "colorize_many", held)
    client = make_client(root=root)
    body = {"inputs": ["in"], "out": "out", "model": "tiny-gray"}
    first = client.post("/jobs/files", json=body)
    assert first.status_code == 200, first.text
    # the same outputs: refused while the first job runs (they would overwrite its frames)
    r = client.post("/jobs/files", json={**body, "model": "tiny-line"})
    assert r.status_code == 409 and "'f0.png' in 'out' is being written" in r.json()["error"]
    # other outputs in the same folder go on
    other = client.post(
        "/jobs/files", json={"inputs": ["in2/f0.png"], "out": "out/g0.png", "model": "tiny-gray"}
    )
    assert other.status_code == 200, other.text
    release.set()
    assert _wait(client, first.json()["id"])["state"] == "done"
    assert _wait(client, other.json()["id"])["state"] == "done"
    again = client.post("/jobs/files", json={**body, "overwrite": True})  # free again
    assert again.status_code == 200, again.text
    assert _wait(client, again.json()["id"])["state"] == "done"


def test_job_palette_length_is_bounded(client):
    body = {**LAYOUT, "frame_count": 1, "model": "tiny-gray"}
    for count in (257, 4000):
        r = client.post("/jobs", json={**body, "palette": [f"#{i:06x}" for i in range(count)]})
        assert r.status_code == 400 and "palette" in r.json()["error"], r.text
    r = client.post("/jobs", json={**body, "palette": [f"#{i:06x}" for i in range(256)]})
    assert r.status_code == 200, r.text


def test_files_job_writes_the_good_frames_and_names_the_bad_one(make_client, tmp_path):
    root = tmp_path / "root"
    _write_frames(root / "in", 4)
    (root / "in" / "f2.png").write_bytes(b"not a png")
    client = make_client(root=root)
    r = client.post("/jobs/files", json={"inputs": ["in"], "out": "out", "model": "tiny-gray"})
    assert r.status_code == 200, r.text
    status = _wait(client, r.json()["id"])
    assert status["state"] == "failed", status
    assert status["error"].startswith("1 of 4 frames failed, the others are written: ")
    assert "f2.png" in status["error"]
    assert sorted(p.name for p in (root / "out").glob("*.png")) == ["f0.png", "f1.png", "f3.png"]


def _write_shot(root, n=3):
    """A grayscale shot of the keyframe tests' cartoon under ``root/in``, frame 0 colored
    by hand in ``root/keys``; returns the true colors."""
    import sys
    from pathlib import Path

    from inkhue_engine import frames_io

    sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
    from cartoon_shots import cartoon, gray_of

    truths = [cartoon(dx=2 * i, ball=-3 * i) for i in range(n)]
    (root / "in").mkdir(parents=True)
    (root / "keys").mkdir()
    for i, t in enumerate(truths):
        frames_io.write_image_atomic(root / "in" / f"f{i:03d}.png", gray_of(t))
    frames_io.write_image_atomic(root / "keys" / "f000.png", truths[0])
    return truths


def test_files_job_with_references_colors_the_shot_from_its_keyframe(make_client, tmp_path):
    import sys
    from pathlib import Path

    from inkhue_engine import frames_io

    sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
    from cartoon_shots import SHIRT, interior_de

    root = tmp_path / "root"
    truths = _write_shot(root)
    client = make_client(root=root)
    body = {"inputs": ["in"], "out": "out", "references": ["keys"], "model": "tiny-gray"}
    r = client.post("/jobs/files", json=body)
    assert r.status_code == 200, r.text
    status = _wait(client, r.json()["id"])
    assert status["state"] == "done" and status["done"] == 3, status
    assert np.array_equal(frames_io.read_image(root / "out" / "f000.png"), truths[0])
    for i in (1, 2):  # the tiny untrained model could not give these colors
        assert (
            interior_de(frames_io.read_image(root / "out" / f"f{i:03d}.png"), truths[i], SHIRT)
            < 2.0
        )


@pytest.mark.parametrize(
    "extra, code, message",
    [
        ({"references": ["/etc"]}, 403, "root"),
        ({"references": ["keys"], "hints": "keys"}, 400, "hints and references do not combine"),
        ({"references": ["in"]}, 400, "has no color"),  # gray frames are no keyframes
    ],
)
def test_files_job_refuses_bad_references_before_any_output(
    make_client, tmp_path, extra, code, message
):
    root = tmp_path / "root"
    _write_shot(root)
    client = make_client(root=root)
    r = client.post(
        "/jobs/files", json={"inputs": ["in"], "out": "out", "model": "tiny-gray", **extra}
    )
    if r.status_code == 200:  # a keyframe is checked by the job, before its first output
        status = _wait(client, r.json()["id"])
        assert status["state"] == "failed" and message in status["error"], status
    else:
        assert r.status_code == code and message in r.json()["error"], r.text
    assert not (root / "out").exists() or not any((root / "out").glob("*.png"))
