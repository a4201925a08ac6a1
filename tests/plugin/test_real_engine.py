"""The panel against the REAL engine server (FastAPI app under uvicorn in a thread) and tiny
ONNX models from tests/conftest.py; results are compared with the engine run in-process."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

TIMEOUT = 60000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def real_engine(tmp_path, make_tiny_model, monkeypatch):
    """(url, {name: model path}) of a real ``inkhue serve`` app with two tiny models."""
    uvicorn = pytest.importorskip("uvicorn")
    from inkhue_engine.server import ServerConfig, create_app

    monkeypatch.setenv("INKHUE_MODELS_DIR", str(tmp_path / "user-models"))  # keep it empty
    models = tmp_path / "models"
    models.mkdir()
    paths = {
        "tiny-gray": make_tiny_model("grayscale", models / "tiny-gray.onnx", name="tiny-gray"),
        "tiny-lines": make_tiny_model("lineart", models / "tiny-lines.onnx", name="tiny-lines"),
    }
    port = free_port()
    config = ServerConfig(port=port, models_dirs=(models,))
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", paths, config
    server.should_exit = True
    thread.join(10)


def cartoon_frame(width: int, height: int, seed: int) -> bytes:
    """A BGRA u8 cartoon-ish frame: gray regions split by dark lines, opaque."""
    y, x = np.mgrid[0:height, 0:width]
    gray = (60 + (x * 5 + y * 3 + seed * 40) % 180).astype(np.uint8)
    gray[(x + seed) % 9 == 0] = 20
    gray[(y * 2 + seed) % 11 == 0] = 25
    bgra = np.stack([gray, gray, gray, np.full_like(gray, 255)], axis=-1)
    return bgra.tobytes()


def reference(frame: bytes, layout, model_path, hints: bytes | None = None) -> bytes:
    """The same frame through the engine library in this process."""
    from inkhue_engine.model import load_model
    from inkhue_engine.pipeline import ColorizeOptions, colorize_frame
    from inkhue_engine.server_frames import PixelLayout

    wire = PixelLayout(layout.width, layout.height, layout.channels, layout.depth, layout.order)
    arr = wire.decode(frame)
    hint_arr = wire.hints_layout().decode(hints) if hints is not None else None
    out = colorize_frame(arr, load_model(model_path), hints=hint_arr, options=ColorizeOptions())
    return wire.encode(out)


def make_panel(qtbot, tmp_path, host, url):
    from inkhue.docker import InkHuePanel
    from inkhue.panel_model import PanelModel
    from inkhue.settings import QSettingsStore

    store = QSettingsStore(str(tmp_path / "settings.ini"))
    store.write("server_url", url)
    model = PanelModel(host, store)
    widget = InkHuePanel(model)
    qtbot.addWidget(widget)
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        model.connect_engine()
    return widget, model


def test_frame_and_animation_through_the_real_server(qtbot, tmp_path, real_engine, stub_host):
    from inkhue.pixels import FrameLayout

    url, paths, config = real_engine
    stub_host.layout = FrameLayout(40, 24, 4, "u8", "bgra")
    stub_host.frame = cartoon_frame(40, 24, 0)
    stub_host.anim_frames = [cartoon_frame(40, 24, k) for k in range(3)]
    widget, model = make_panel(qtbot, tmp_path, stub_host, url)
    try:
        names = [m["name"] for m in model.models]
        assert {"tiny-gray", "tiny-lines"} <= set(names)  # (+ the models shipped in engine/)
        assert model.engine_info["status"] == "ok"
        model.set_model("tiny-gray")
        with qtbot.waitSignal(
            model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
        ):
            model.colorize_frame()
        assert model.error == ""
        [frame] = stub_host.inserted
        assert frame["model"] == "tiny-gray" and frame["task"] == "grayscale"
        want = reference(stub_host.frame, stub_host.layout, paths["tiny-gray"])
        assert frame["data"] == want

        with qtbot.waitSignal(
            model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
        ):
            model.colorize_animation()
        assert model.error == ""
        anim = stub_host.inserted[1]
        assert anim["kind"] == "animation" and len(anim["data"]) == 3
        # The first frame of a sequence has nothing to carry colours from: it must be
        # exactly the single-frame result; the others must be the server's own sequence.
        assert anim["data"][0] == reference(
            stub_host.anim_frames[0], stub_host.layout, paths["tiny-gray"]
        )
        from inkhue_engine.model import load_model
        from inkhue_engine.pipeline import ColorizeOptions
        from inkhue_engine.server import Engine
        from inkhue_engine.server_frames import PixelLayout

        wire = PixelLayout(40, 24, 4, "u8", "bgra")
        seq = Engine(config).sequence(
            load_model(paths["tiny-gray"]),
            ColorizeOptions(),
            True,
            ((wire.decode(f), None) for f in stub_host.anim_frames),
        )
        assert anim["data"] == [wire.encode(r) for r in seq]
    finally:
        qtbot.waitUntil(lambda: model.client.pending() == 0, timeout=TIMEOUT)


def test_real_server_errors_reach_the_panel(qtbot, tmp_path, real_engine, stub_host):
    url, _paths, _config = real_engine
    widget, model = make_panel(qtbot, tmp_path, stub_host, url)
    model.models.append({"name": "gone-model", "task": "grayscale"})
    model.set_model("gone-model")
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        model.colorize_frame()
    assert widget.error_text.toPlainText().startswith("model: no model named 'gone-model'")
    assert stub_host.inserted == []
    qtbot.waitUntil(lambda: model.client.pending() == 0, timeout=TIMEOUT)


def gray_frame(width: int, height: int, seed: int) -> bytes:
    """``colour_frame`` without its colour (each pixel's green as gray)."""
    from conftest import colour_frame

    out = bytearray(colour_frame(width, height, seed))
    out[0::4] = out[2::4] = out[1::4]
    return bytes(out)


@pytest.mark.slow
def test_fine_tuning_from_the_train_section(
    qtbot, tmp_path, real_engine, stub_host, tiny_base_dir, monkeypatch
):
    """The Train section against the real server: a real ``inkhue finetune`` subprocess
    (2 steps on a tiny base) turns the host's frames into a listed, selected model."""
    from inkhue.client import TrainingJob

    monkeypatch.setenv("INKHUE_BASE_CHECKPOINTS", str(tiny_base_dir))
    monkeypatch.setattr(TrainingJob, "POLL_MS", 200)
    url, _paths, _config = real_engine
    stub_host.set_training_frames(4, 40, 36)
    widget, model = make_panel(qtbot, tmp_path, stub_host, url)
    try:
        qtbot.waitUntil(lambda: model.trainer.available is not None, timeout=TIMEOUT)
        assert model.trainer.available, model.trainer.reason
        assert model.trainer.crop_size("grayscale") == 32
        assert model.trainer.min_frames == 4
        # The crop size comes from the real GET /train: smaller frames never leave Krita.
        stub_host.set_training_frames(4, 40, 30)
        model.trainer.start_training("studio", "grayscale", "animation", 2)
        assert "smaller than the 32-px training crop" in model.error
        stub_host.set_training_frames(4, 40, 36, make=gray_frame)
        model.trainer.start_training("studio", "grayscale", "animation", 2)
        qtbot.waitUntil(lambda: model.trainer.state == "idle", timeout=TIMEOUT)
        assert "none of the 4 frames has color" in model.error  # the server's 400
        assert widget.error_text.toPlainText() == model.error

        stub_host.set_training_frames(4, 40, 36)
        model.clear_error()
        model.trainer.start_training("studio", "grayscale", "animation", 2)
        qtbot.waitUntil(lambda: model.trainer.state == "idle", timeout=240_000)
        assert model.error == ""
        status = model.trainer.result
        assert status["state"] == "done" and status["model"] == "studio"
        assert status["step"] == status["total"] == 2
        qtbot.waitUntil(lambda: widget.model_combo.currentData() == "studio", timeout=TIMEOUT)
        listed = {m["name"]: m for m in model.models}["studio"]
        assert listed["palette"] == status["palette"] and len(status["palette"]) >= 2
        assert status["held_out_check"] is None  # 4 frames: nothing held out
        assert "No held-out check" in widget.train_result.text()
        # The new model colorizes, with its studio palette by default.
        with qtbot.waitSignal(
            model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
        ):
            model.colorize_frame()
        assert model.error == "" and stub_host.inserted[-1]["model"] == "studio"
    finally:
        qtbot.waitUntil(lambda: model.client.pending() == 0, timeout=TIMEOUT)


def _shot(n: int):
    """A small outlined cartoon shot (tests/engine/cartoon_shots.py): colored truths and
    their grayscale frames as Krita gives them (BGRA u8, opaque)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
    from cartoon_shots import cartoon, gray_of

    truths = [cartoon(dx=2 * i, ball=-3 * i) for i in range(n)]
    opaque = np.full(truths[0].shape[:2] + (1,), 255, np.uint8)
    frames = []
    for t in truths:
        g = gray_of(t)
        frames.append(np.concatenate([g[..., None]] * 3 + [opaque], axis=2).tobytes())
    return truths, frames


def _bgra(rgb: np.ndarray) -> bytes:
    opaque = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    return np.concatenate([rgb[..., ::-1], opaque], axis=2).tobytes()


def _rgb(bgra: bytes, h: int, w: int) -> np.ndarray:
    return np.frombuffer(bgra, np.uint8).reshape(h, w, 4)[..., 2::-1]


def test_animation_from_colored_keyframes_in_chunks(qtbot, tmp_path, real_engine, stub_host):
    """Colorize animation with a colored keyframe at the first frame, sent in chunks of 2:
    every chunk carries the keyframe (with its frame when that is not in the chunk) and
    the previous chunk's last result; the frames take the keyframe's colours."""
    import sys
    from pathlib import Path

    from inkhue.host import Keyframe
    from inkhue.pixels import FrameLayout

    sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
    from cartoon_shots import SHIRT, interior_de

    url, _paths, _config = real_engine
    truths, frames = _shot(5)
    h, w = truths[0].shape[:2]
    stub_host.layout = FrameLayout(w, h, 4, "u8", "bgra")
    stub_host.anim_frames = frames
    stub_host.times = [0, 2, 4, 6, 8]
    key = Keyframe(_bgra(truths[0]), stub_host.layout, frame=0, name="frame 0 of layer 'Colour'")
    stub_host.keyframe_choices = {"layer:Colour": ("Layer 'Colour'", [key])}
    widget, model = make_panel(qtbot, tmp_path, stub_host, url)
    model.ANIMATION_CHUNK = 2
    try:
        model.set_model("tiny-gray")
        model.refresh_sources()
        assert widget.keyframe_combo.findData("layer:Colour") >= 0
        widget.keyframe_combo.setCurrentIndex(widget.keyframe_combo.findData("layer:Colour"))
        assert model.keyframes == "layer:Colour"
        with qtbot.waitSignal(
            model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
        ):
            model.colorize_animation()
        assert model.error == ""
        [anim] = stub_host.inserted
        assert anim["feeds"] == 3 and len(anim["data"]) == 5
        out = [_rgb(d, h, w) for d in anim["data"]]
        assert np.array_equal(out[0], truths[0])  # the artist's keyframe, as colored
        # the tiny untrained model could not give these: they follow the keyframe
        for i in range(1, 5):
            assert interior_de(out[i], truths[i], SHIRT) < 2.0, i

        # Colorize frame with the same keyframes: the current frame is another one, so the
        # keyframe travels with the frame it colors.
        stub_host.frame = frames[3]
        stub_host.keyframe_choices["layer:Colour"] = (
            "Layer 'Colour'",
            [Keyframe(_bgra(truths[0]), stub_host.layout, structure=frames[0], name="k")],
        )
        with qtbot.waitSignal(
            model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
        ):
            model.colorize_frame()
        assert model.error == ""
        single = stub_host.inserted[1]
        assert single["kind"] == "frame"
        assert interior_de(_rgb(single["data"], h, w), truths[3], SHIRT) < 2.0
    finally:
        qtbot.waitUntil(lambda: model.client.pending() == 0, timeout=TIMEOUT)


def test_keyframes_and_hints_do_not_combine(qtbot, tmp_path, real_engine, stub_host):
    from inkhue.host import Keyframe

    url, _paths, _config = real_engine
    key = Keyframe(b"", stub_host.layout, frame=0)
    stub_host.keyframe_choices = {"layer:Colour": ("Layer 'Colour'", [key])}
    widget, model = make_panel(qtbot, tmp_path, stub_host, url)
    model.set_model("tiny-gray")
    model.refresh_sources()
    model.keyframes = "layer:Colour"
    model.hint_layer = "Hints"
    model.colorize_animation()
    assert "Hints and keyframes do not combine" in model.error
    assert stub_host.inserted == [] and not model.busy
