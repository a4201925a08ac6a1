"""Fine-tuning over HTTP: POST /train with uploaded frames runs ``inkhue finetune`` in a
subprocess to a model listed by /models; DELETE cancels it; 400/409/501 before anything runs."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

FLAT = [(230, 80, 60), (70, 140, 220), (250, 210, 90)]


def _png(rng: np.random.Generator, h: int = 64, w: int = 80) -> bytes:
    img = np.full((h, w, 3), 255, np.uint8)
    for k, color in enumerate(FLAT):
        r = int(min(h, w) * (0.24 - 0.05 * k))
        center = (int(rng.integers(r + 2, w - r - 2)), int(rng.integers(r + 2, h - r - 2)))
        cv2.circle(img, center, r, color, -1)
        cv2.circle(img, center, r, (20, 20, 20), 1)
    ok, buf = cv2.imencode(".png", img[..., ::-1])
    assert ok
    return buf.tobytes()


def _frames(n: int, **kw) -> list[tuple[str, tuple[str, bytes, str]]]:
    rng = np.random.default_rng(0)
    return [("frames", (f"shot 1/frame{i}.png", _png(rng, **kw), "image/png")) for i in range(n)]


def _options(**kw) -> dict[str, str]:
    return {"options": json.dumps({"name": "studio", "steps": 2, "batch_size": 2,
                                   "hold_out": 0, **kw})}  # fmt: skip


@pytest.fixture
def temp_root(tmp_path, monkeypatch) -> Path:
    """The server's temp folder (uploads and the subprocess's temp files go there)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _wait(client, job_id: str, until=lambda s: s["phase"] == "finished", limit: float = 240):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        status = client.get(f"/train/{job_id}").json()
        if until(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"training job stuck: {status}")


@pytest.mark.slow
def test_uploaded_frames_train_to_a_listed_model(client, bases_env, temp_root, user_models):
    info = client.get("/train").json()
    assert info["available"] and info["error"] is None
    assert {"name": "grayscale", "installed": True, "task": "grayscale", "train_size": 32} \
        in info["bases"]  # fmt: skip
    r = client.post("/train", files=_frames(6), data=_options())
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["state"] == "running" and job["total"] == 2 and job["name"] == "studio"
    status = _wait(client, job["id"])
    assert status["state"] == "done", status
    assert status["model"] == "studio" and status["step"] == 2 and status["error"] is None
    assert status["losses"] and np.isfinite(status["losses"]["l1"])
    models = {m["name"]: m for m in client.get("/models").json()}
    assert "studio" in models and Path(models["studio"]["file"]).parent == user_models
    assert models["studio"]["palette"] == status["palette"] and len(status["palette"]) >= 3
    assert (user_models / "studio.md").is_file()
    assert list(temp_root.iterdir()) == []  # uploads and temp files removed
    assert client.get("/train").json()["jobs"][0]["id"] == job["id"]
    # the name is now taken
    r = client.post("/train", files=_frames(6), data=_options())
    assert r.status_code == 409 and "overwrite" in r.json()["error"]
    # a finished job is forgotten on DELETE
    assert client.delete(f"/train/{job['id']}").json()["forgotten"] is True
    assert client.get(f"/train/{job['id']}").status_code == 404


@pytest.mark.slow
def test_cancel_stops_the_subprocess_and_removes_its_files(client, bases_env, temp_root,
                                                           user_models):  # fmt: skip
    r = client.post("/train", files=_frames(6), data=_options(steps=100_000))
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    _wait(client, job_id, until=lambda s: s["step"] >= 1 or s["phase"] == "finished")
    # one fine-tuning at a time
    r = client.post("/train", files=_frames(6), data=_options(name="other"))
    assert r.status_code == 409 and job_id in r.json()["error"]
    status = client.delete(f"/train/{job_id}").json()
    assert status["state"] == "cancelled" and status["forgotten"] is False
    status = _wait(client, job_id, limit=60)
    assert status["state"] == "cancelled"
    assert not (user_models / "studio.onnx").exists()
    assert "studio" not in [m["name"] for m in client.get("/models").json()]
    assert list(temp_root.iterdir()) == []


def test_without_the_train_extra_it_is_501(client, monkeypatch, bases_env, temp_root):
    import inkhue_engine.finetune_spec as ft

    monkeypatch.setattr(ft, "training_missing",
                        lambda: "fine-tuning needs the training extra (missing: torch): "
                        "pip install 'inkhue[train]'")  # fmt: skip
    r = client.post("/train", files=_frames(6), data=_options())
    assert r.status_code == 501
    assert "pip install 'inkhue[train]'" in r.json()["error"]
    info = client.get("/train").json()
    assert info["available"] is False and "inkhue[train]" in info["error"]
    assert list(temp_root.iterdir()) == []


def test_missing_base_checkpoint_is_501(client, tmp_path, monkeypatch, temp_root):
    monkeypatch.setenv("INKHUE_BASE_CHECKPOINTS", str(tmp_path / "none"))
    r = client.post("/train", files=_frames(6), data=_options())
    assert r.status_code == 501 and "grayscale" in r.json()["error"]
    assert client.get("/train").json()["available"] is False


@pytest.mark.parametrize(
    ("files", "data", "status", "needle"),
    [
        (_frames(3), _options(), 400, "at least 4"),
        (_frames(5, h=20, w=40), _options(), 400, "smaller than the 32-px"),
        (
            _frames(4) + [("frames", ("x.png", b"hello", "image/png"))],
            _options(),
            400,
            "frames part 4 (x.png): not a PNG",
        ),
        (
            _frames(4) + [("frames", ("x.png", b"\x89PNG\r\n\x1a\nbroken", "image/png"))],
            _options(),
            400,
            "PNG file is truncated",
        ),
        (_frames(4), {}, 400, "'options' is missing"),
        (
            [("options", ("o.json", _options()["options"].encode(), "application/json"))],
            {},
            400,
            "'frames' is missing",
        ),
        (_frames(4), {"options": "{not json"}, 400, "options: not JSON"),
        (_frames(4), _options(steps=0), 400, "options field 'steps'"),
        (_frames(4), _options(stpes=3), 400, "options field 'stpes'"),
        (_frames(4), _options(name="../evil"), 400, "model name"),
        (_frames(4), _options(base="sketch"), 400, "options field 'base'"),
        (_frames(4), _options(hold_out=1), 400, "hold_out 1"),
    ],
)
def test_bad_requests_are_refused_before_training(client, bases_env, temp_root, files, data,
                                                  status, needle):  # fmt: skip
    r = client.post("/train", files=files or None, data=data)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"], r.json()
    assert str(temp_root) not in r.json()["error"]  # no server temp paths in messages
    assert client.get("/train").json()["jobs"] == []  # nothing started
    assert list(temp_root.iterdir()) == []


def test_name_of_an_existing_model_is_409(client, bases_env, temp_root, user_models):
    r = client.post("/train", files=_frames(4), data=_options(name="tiny-gray"))
    assert r.status_code == 409 and "tiny-gray" in r.json()["error"]


def test_server_side_folder_needs_root_and_stays_inside_it(make_client, bases_env, temp_root,
                                                           tmp_path):  # fmt: skip
    client = make_client()
    r = client.post("/train", json={"name": "s", "data": str(tmp_path)})
    assert r.status_code == 403 and "--root" in r.json()["error"]
    root = tmp_path / "root"
    (root / "few").mkdir(parents=True)
    client = make_client(root=root)
    r = client.post("/train", json={"name": "s", "data": "few"})
    assert r.status_code == 400 and "no frames" in r.json()["error"]
    r = client.post("/train", json={"name": "s", "data": "../.."})
    assert r.status_code == 403
    r = client.post("/train", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "Content-Type" in r.json()["error"]


def test_unknown_training_job_is_404(client):
    assert client.get("/train/nope").status_code == 404
    assert client.delete("/train/nope").status_code == 404


def test_openapi_describes_the_training_endpoints(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/train"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(post["requestBody"]["content"])
    assert {"get", "delete"} <= set(spec["paths"]["/train/{job_id}"])
    assert "501" in post["responses"]


@pytest.mark.slow
def test_a_failing_subprocess_ends_failed_with_its_error_line(client, tmp_path, monkeypatch,
                                                              temp_root, user_models):  # fmt: skip
    bad = tmp_path / "badbases"
    bad.mkdir()
    (bad / "grayscale.pt").write_bytes(b"not a checkpoint")  # passes the name check only
    monkeypatch.setenv("INKHUE_BASE_CHECKPOINTS", str(bad))
    r = client.post("/train", files=_frames(4), data=_options(crop_size=32))
    assert r.status_code == 200, r.text
    status = _wait(client, r.json()["id"], limit=120)
    assert status["state"] == "failed"
    assert "grayscale.pt" in status["error"] and "checkpoint" in status["error"]
    assert not (user_models / "studio.onnx").exists()
    assert list(temp_root.iterdir()) == []
