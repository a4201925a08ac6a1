"""The plugin inside a REAL Krita: headless through kritarunner, and the full GUI under Xvfb.

Skipped when Krita is not installed, unless INKHUE_REQUIRE_KRITA=1 (CI), which makes a
missing Krita a failure. Install: see krita_support.INSTALL_HINT. Both tests install the
built zip into a temporary HOME, run a real ``inkhue serve`` with tiny models from
tests/conftest.py (or the models named by INKHUE_KRITA_GRAY_MODEL /
INKHUE_KRITA_LINEART_MODEL), and compare what lands in Krita's layers with the engine's
own answer for the same frames, fetched with direct HTTP requests (and, for the U8
frame, with the engine library run in this process against Krita's PNG export).
Logs, result JSON and the screenshot go to test-artifacts/ (INKHUE_TEST_ARTIFACTS).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
import sys  # noqa: E402

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from krita_support import (  # noqa: E402
    EngineServer,
    artifacts_dir,
    install_plugin,
    krita_env,
    require_krita,
    run_bounded,
)

pytestmark = [pytest.mark.krita, pytest.mark.slow]
W, H = 48, 32


@pytest.fixture(scope="module")
def krita_ready():
    require_krita()


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location(
        "inkhue_build_plugin", ROOT / "packaging" / "build_plugin.py"
    )
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    return builder.build_zip(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def engine(krita_ready, tmp_path_factory, make_tiny_model):
    """(EngineServer, {"gray": name, "lines": name, "gray_path": path, ...})."""
    work = tmp_path_factory.mktemp("engine")
    models = work / "models"
    models.mkdir()
    paths = {}
    for key, task, env in (
        ("gray", "grayscale", "INKHUE_KRITA_GRAY_MODEL"),
        ("lines", "lineart", "INKHUE_KRITA_LINEART_MODEL"),
    ):
        given = os.environ.get(env)
        if given:
            paths[key] = Path(shutil.copy(given, models / Path(given).name))
        else:
            paths[key] = make_tiny_model(task, models / f"tiny-{key}.onnx", name=f"tiny-{key}")
    server = EngineServer(models, work)
    try:
        listed = {Path(m["file"]).name: m["name"] for m in server.get("/models")}
        info = {key: listed[p.name] for key, p in paths.items()}
        info.update({f"{key}_path": p for key, p in paths.items()})
        yield server, info
    finally:
        server.stop()
        shutil.copy(server.log_path, artifacts_dir() / "krita-inkhue-serve.log")


def cartoon_gray(seed: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    gray = (70 + (x * 4 + y * 5 + seed * 50) % 170).astype(np.uint8)
    gray[(x + 2 * seed) % 12 == 0] = 15
    gray[(y + seed) % 10 == 0] = 25
    return gray


def bgra_u8(gray: np.ndarray) -> np.ndarray:
    return np.stack([gray, gray, gray, np.full_like(gray, 255)], axis=-1)


def line_art_u16() -> np.ndarray:
    """BGRA u16: black lines (opaque / half-covered edges), transparent paper holding junk."""
    y, x = np.mgrid[0:H, 0:W]
    out = np.zeros((H, W, 4), np.uint16)
    out[..., 0] = (x * 997) % 65536  # junk colour under alpha 0 (must read as paper)
    out[..., 3] = 0
    line = ((x - 10) % 16 == 0) | ((y - 5) % 12 == 0)
    edge = ((x - 11) % 16 == 0) & ~line
    out[line] = [0, 0, 0, 65535]
    out[edge] = [1000, 1000, 1000, 32768]
    return out


def flatten_white(arr: np.ndarray, full: int) -> np.ndarray:
    """Composite over white with round-half-up (the plugin's documented rule)."""
    a = arr[..., 3:].astype(np.int64)
    c = arr[..., :3].astype(np.int64)
    out = (c * a + full * (full - a) + full // 2) // full
    return np.concatenate([out, np.full_like(a, full)], axis=-1).astype(arr.dtype)


def colour_bgra() -> np.ndarray:
    """A BGRA u8 coloured frame (flat fills, dark lines, a half-transparent corner)."""
    y, x = np.mgrid[0:H, 0:W]
    out = np.zeros((H, W, 4), np.uint8)
    out[...] = [50, 60, 200, 255]
    out[x >= W // 2] = [210, 130, 60, 255]
    out[(x % 9 == 0) | (y % 7 == 0)] = [20, 20, 20, 255]
    out[:4, :4, 3] = 128
    return out


def layer_names(case: dict) -> list[str]:
    return [layer["name"] for layer in case["layers"]]


def test_headless_kritarunner_colorize_frame(engine, plugin_zip, tmp_path):
    """(a) kritarunner: the docker's colorize path on real documents, checked pixel by pixel."""
    server, models = engine
    home = tmp_path / "home"
    pykrita = install_plugin(home, plugin_zip)
    out = tmp_path / "out"
    out.mkdir()
    frames = {
        "u8_frame.bin": bgra_u8(cartoon_gray(0)),
        "lines16_frame.bin": line_art_u16(),
        "graya_frame.bin": np.stack([cartoon_gray(1), np.full((H, W), 255, np.uint8)], -1),
        "train_u8.bin": colour_bgra(),
        "train_f32.bin": (colour_bgra()[..., [2, 1, 0, 3]] / 255.0).astype(np.float32),
    }
    for name, arr in frames.items():
        (out / name).write_bytes(arr.tobytes())
    cfg = {
        "out": str(out),
        "url": server.url,
        "width": W,
        "height": H,
        "gray_model": models["gray"],
        "lines_model": models["lines"],
    }
    if os.environ.get("INKHUE_KRITA_CASES"):  # debugging: only these cases, e.g. case_auto
        cfg["cases"] = os.environ["INKHUE_KRITA_CASES"].split(",")
    (out / "config.json").write_text(json.dumps(cfg))
    env = krita_env(home, PYTHONPATH=f"{pykrita}:{HERE}", QT_QPA_PLATFORM="offscreen")
    log_path = artifacts_dir() / "krita-headless.log"
    run = run_bounded(
        ["kritarunner", "-s", "inkhue_krita_headless", str(out / "config.json")], env, 240, log_path
    )
    print(f"kritarunner: rc {run.returncode}, {run.seconds:.1f} s, log {log_path}")
    assert not run.timed_out, run.output[-3000:]
    result_path = out / "result.json"
    # kritarunner exits 0 whatever happens: the result file is the real verdict.
    assert result_path.is_file(), f"no result.json:\n{run.output[-3000:]}"
    result = json.loads(result_path.read_text())
    shutil.copy(result_path, artifacts_dir() / "krita-headless-result.json")
    for line in result["log"]:
        print(line)
    assert result.get("exception") is None, result["exception"]
    assert result["exit_code"] == 0
    assert result["krita"]["binding"] == (
        "pyqt6" if result["krita"]["qt"].startswith("6") else "pyqt5"
    )
    assert result["krita"]["plugin_file"].startswith(str(pykrita))

    # U8 grayscale: a new layer right above the source, equal to the engine's own answer.
    u8 = result["u8"]
    assert u8["error"] == "" and u8["source_unchanged"]
    assert layer_names(u8) == ["Background", "Gray frame", f"InkHue {models['gray']}"]
    assert u8["layers"][0]["channels"] == ["Blue", "Green", "Red", "Alpha"]  # BGRA in memory
    layout = {"width": W, "height": H, "channels": 4, "depth": "u8", "order": "bgra"}
    got = (out / "u8_result.bin").read_bytes()
    assert got == server.colorize(frames["u8_frame.bin"].tobytes(), layout, models["gray"])
    # Independent of the plugin and the server: the engine library on the same picture in
    # RGB order, against the colours Krita itself exports for the document.
    import cv2

    from inkhue_engine.model import load_model
    from inkhue_engine.pipeline import ColorizeOptions, colorize_frame

    rgba = frames["u8_frame.bin"][..., [2, 1, 0, 3]]
    want_rgb = colorize_frame(rgba, load_model(models["gray_path"]), options=ColorizeOptions())[
        ..., :3
    ]
    assert u8["exported"]
    png = cv2.imread(str(out / "u8_export.png"), cv2.IMREAD_UNCHANGED)
    assert png is not None and png.shape[:2] == (H, W)
    np.testing.assert_array_equal(png[..., 2::-1][..., :3], want_rgb)

    # U16 line art on a transparent layer: under the lines, flattened on white, opaque.
    lines = result["lines16"]
    assert lines["error"] == "" and lines["source_unchanged"]
    assert layer_names(lines) == ["Background", f"InkHue {models['lines']}", "Lines"]
    assert lines["layers"][1]["depth"] == "U16"
    flat = flatten_white(frames["lines16_frame.bin"], 65535)
    layout16 = dict(layout, depth="u16")
    want = server.colorize(flat.tobytes(), layout16, models["lines"])
    got16 = np.frombuffer((out / "lines16_result.bin").read_bytes(), np.uint16)
    np.testing.assert_array_equal(got16, np.frombuffer(want, np.uint16))
    assert (got16.reshape(H, W, 4)[..., 3] == 65535).all()

    # GRAYA document (issue 14 item 1): Colorize stops with an offer to convert the image
    # to RGB; the fix converts it (same depth) and colorizes, and the colours show.
    graya = result["graya"]
    assert graya["first_error"].startswith(
        "Document 'inkhue-graya' is grayscale (GRAYA U8): Krita would show the colours gray"
    )
    assert graya["fix"] == "Convert to RGB and colorize"
    assert graya["layers_before_fix"] == ["Background", "Gray"]
    assert graya["error"] == ""
    assert graya["doc_space"] == ["RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc"]
    assert graya["message"].startswith(
        f"Added layer 'InkHue {models['gray']}'. Converted 'inkhue-graya' to RGB/Alpha (U8"
    )
    new = graya["layers"][-1]
    assert (new["name"], new["model"], new["depth"]) == (f"InkHue {models['gray']}", "RGBA", "U8")
    source = (out / "graya_source_rgb.bin").read_bytes()
    src = np.frombuffer(source, np.uint8).reshape(H, W, 4)
    gray = frames["graya_frame.bin"][..., 0].astype(int)
    assert np.abs(src[..., :3].astype(int) - gray[..., None]).max() <= 1  # still the picture
    got = (out / "graya_result.bin").read_bytes()
    assert got == server.colorize(source, layout, models["gray"])
    projection = np.frombuffer((out / "graya_projection.bin").read_bytes(), np.uint8).reshape(
        H, W, 4
    )
    np.testing.assert_array_equal(projection, np.frombuffer(got, np.uint8).reshape(H, W, 4))

    # Issue 14 item 11: the same picture in U16 and F32 (Krita's linear "g10" default)
    # comes out in the same colours as in U8 (compared in 8-bit sRGB, converted by Krita).
    depths = result["depths"]
    chroma = {}
    for depth in ("U8", "U16", "F32"):
        assert depths[depth]["error"] == "", depths[depth]
        bgra = np.frombuffer((out / f"depth_{depth}_result.bin").read_bytes(), np.uint8).reshape(
            H, W, 4
        )
        lab = cv2.cvtColor(np.ascontiguousarray(bgra[..., :3]), cv2.COLOR_BGR2LAB)
        ab = lab[..., 1:].astype(np.float64) - 128.0
        chroma[depth] = float(np.hypot(ab[..., 0], ab[..., 1]).mean())
        depths[depth]["bgra"] = bgra
    print(f"mean chroma (CIELAB, 8-bit sRGB) U8 / U16 / F32: {chroma}")
    assert "g10" in depths["U16"]["profile"] and "g10" in depths["F32"]["profile"]
    for depth in ("U16", "F32"):
        assert abs(chroma[depth] - chroma["U8"]) < 0.5, chroma
        diff = np.abs(depths[depth]["bgra"].astype(int) - depths["U8"]["bgra"].astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 8, (depth, diff.mean(), diff.max())

    # CMYK: refused with a line naming the document and the fix; nothing added.
    cmyk = result["cmyk"]
    assert cmyk["error"].startswith("Document 'inkhue-cmyk' is in CMYKA colours")
    assert "Image > Convert Image Color Space to RGB" in cmyk["error"]
    assert cmyk["layers"] == ["Background", "Ink"]

    # Train section, "Open documents": each document's projection (the painted layer over
    # the new document's white Background) as an sRGB PNG.
    train = result["train_documents"]
    assert train["names"] == ["inkhue-train-u8", "inkhue-train-f32"]
    assert train["sizes"] == [[W, H], [W, H]]
    u8_png = cv2.imread(str(out / "train_inkhue-train-u8.png"), cv2.IMREAD_UNCHANGED)
    want8 = flatten_white(colour_bgra(), 255)  # cv2 reads BGRA, like the painted bytes
    assert np.abs(u8_png.astype(int) - want8.astype(int)).max() <= 1  # Krita's rounding
    np.testing.assert_array_equal(u8_png[4:, 4:], colour_bgra()[4:, 4:])  # opaque: exact
    f32_png = cv2.imread(str(out / "train_inkhue-train-f32.png"), cv2.IMREAD_UNCHANGED)
    assert "g10" in train["profiles"][1]  # Krita's float default: linear light
    f32 = frames["train_f32.bin"].astype(np.float64)  # RGBA, linear light
    linear = f32[..., :3] * f32[..., 3:] + (1.0 - f32[..., 3:])  # over white, in linear
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    want = np.round(srgb * 255)[..., ::-1]
    assert np.abs(f32_png[..., :3].astype(np.float64) - want).max() <= 1
    assert (f32_png[..., 3] == 255).all()
    assert train["error"].startswith("Document 'inkhue-train-gray' is grayscale (GRAYA)")


def test_gui_colorize_animation_from_the_docker(engine, plugin_zip, tmp_path):
    """(b)+(c) full GUI under Xvfb: 3 keyframes, the docker's Colorize animation, screenshot."""
    server, models = engine
    home = tmp_path / "home"
    install_plugin(home, plugin_zip, {"inkhue_gui_driver": HERE / "inkhue_gui_driver"})
    times = [0, 3, 7]
    out, frames = _source_frames(tmp_path, times)
    shot = artifacts_dir() / "krita-docker.png"
    shot.unlink(missing_ok=True)
    cfg = {
        "out": str(out),
        "url": server.url,
        "width": W,
        "height": H,
        "times": times,
        "end": 10,
        "model": models["gray"],
        "screenshot": str(shot),
        "watchdog_s": 240,
    }
    (out / "config.json").write_text(json.dumps(cfg))
    env = krita_env(home, INKHUE_GUI_CONFIG=str(out / "config.json"))
    log_path = artifacts_dir() / "krita-gui.log"
    run = run_bounded(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "krita", "--nosplash"],
        env,
        300,
        log_path,
    )
    print(f"krita GUI: rc {run.returncode}, {run.seconds:.1f} s, log {log_path}")
    result_path = out / "result.json"
    assert result_path.is_file(), f"no result.json:\n{run.output[-4000:]}"
    result = json.loads(result_path.read_text())
    shutil.copy(result_path, artifacts_dir() / "krita-gui-result.json")
    for line in result["log"]:
        print(line)
    assert not run.timed_out
    assert result.get("exception") is None, result["exception"]
    assert result["exit_code"] == 0
    assert result["actions"] == {
        "add_blank_frame": True,
        "inkhue_colorize_frame": True,
        "inkhue_colorize_animation": True,
    }
    assert result["dockers_inkhue"] == ["inkhue_docker"]
    # a new artist's docker starts on the automatic model; the models follow it
    before = result["model_combo_before"]
    assert before["current"] == "Automatic (detected)", before
    assert before["items"][0] == "Automatic (detected)"
    assert f"{models['gray']} (grayscale)" in before["items"]
    assert result["source_keys"] == times
    assert result["error"] == ""
    assert result["message"] == f"Added animated layer 'InkHue {models['gray']}' (3 keyframes)"
    assert result["layers"] == ["Background", "Ink", f"InkHue {models['gray']}"]
    assert result["animated"] and result["result_keys"] == times
    assert result["source_unchanged"] == [True, True, True]
    assert result["current_time"] == 0  # the user's frame is restored
    layout = {"width": W, "height": H, "channels": 4, "depth": "u8", "order": "bgra"}
    want = server.job([f.tobytes() for f in frames], layout, models["gray"])
    for t, expected in zip(times, want, strict=True):
        assert (out / f"result_{t}.bin").read_bytes() == expected, f"keyframe {t}"
    # Issue 14 item 8: the source stays the active layer, so a second Colorize frame reads
    # the source again and its result gets a name of its own.
    assert result["active_after_animation"] == "Ink"
    again = result["colorize_again"]
    assert again["error"] == "" and again["active"] == "Ink"
    assert again["layers"] == [
        "Background",
        "Ink",
        f"InkHue {models['gray']} 2",
        f"InkHue {models['gray']}",
    ]
    # ... with "Steadier colors" unticked first: one model pass, which the engine's
    # default (frame + mirror average) would not have given
    assert again["mirror_setting"] is False
    one_pass = server.colorize(frames[0].tobytes(), layout, models["gray"], mirror="false")
    assert (out / "again.bin").read_bytes() == one_pass
    assert one_pass != server.colorize(frames[0].tobytes(), layout, models["gray"])
    # Issue 14 item 12: Discard deletes the new layer in one click.
    assert again["result_bar"] == f"New layer 'InkHue {models['gray']} 2'"
    discard = result["after_discard"]
    assert discard["layers"] == ["Background", "Ink", f"InkHue {models['gray']}"]
    assert discard["message"] == f"Removed layer 'InkHue {models['gray']} 2'"
    assert not discard["bar_visible"]
    assert result["screenshot"]["rc"] == 0 and shot.is_file() and shot.stat().st_size > 10_000

    # Train section, "Current animation range": the keyframes of the animated layer, and
    # for a group holding a copy of it every frame of the playback range, as RGBA u8.
    train = result["training_frames"]
    assert "error" not in train, train
    assert train["keys"] == [f"inkhue-gui_f{t:04d}" for t in times]
    rgba = [f[..., [2, 1, 0, 3]].tobytes() for f in frames]
    for t, want in zip(times, rgba, strict=True):
        assert (out / f"train_inkhue-gui_f{t:04d}.bin").read_bytes() == want, f"key {t}"
    assert train["copy_animated"]
    start, end = train["range"]
    assert start == 0 and end >= times[-1]
    assert train["group"] == [f"inkhue-gui_f{t:04d}" for t in range(start, end + 1)]
    for t in range(start, end + 1):
        held = max(i for i, k in enumerate(times) if k <= t)  # the keyframe shown at t
        got = (out / f"train_group_inkhue-gui_f{t:04d}.bin").read_bytes()
        assert got == rgba[held], f"group projection at frame {t}"
    assert train["time_after"] == 2  # the user's frame is put back


def run_gui(engine, plugin_zip, tmp_path, name: str, cfg: dict, timeout_s: int = 300) -> dict:
    """Krita's GUI under Xvfb with the test driver and ``cfg``; returns its result.json."""
    server, _models = engine
    home = tmp_path / "home"
    install_plugin(home, plugin_zip, {"inkhue_gui_driver": HERE / "inkhue_gui_driver"})
    cfg = {
        "out": str(tmp_path / "out"),
        "url": server.url,
        "width": W,
        "height": H,
        "watchdog_s": timeout_s - 60,
        **cfg,
    }
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "out" / "config.json").write_text(json.dumps(cfg))
    env = krita_env(home, INKHUE_GUI_CONFIG=str(tmp_path / "out" / "config.json"))
    log_path = artifacts_dir() / f"krita-{name}.log"
    run = run_bounded(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "krita", "--nosplash"],
        env,
        timeout_s,
        log_path,
    )
    print(f"krita GUI ({name}): rc {run.returncode}, {run.seconds:.1f} s, log {log_path}")
    result_path = tmp_path / "out" / "result.json"
    assert result_path.is_file(), f"no result.json:\n{run.output[-4000:]}"
    result = json.loads(result_path.read_text())
    shutil.copy(result_path, artifacts_dir() / f"krita-{name}-result.json")
    for line in result["log"]:
        print(line)
    assert not run.timed_out
    assert result.get("exception") is None, result["exception"]
    assert result["exit_code"] == 0
    return result


def _source_frames(tmp_path, times: list[int]) -> tuple:
    """The source layer's keyframes for the GUI driver in ``tmp_path/out``: gray cartoons
    (the i-th of seed i) as ``frame_<t>.bin`` at ``times``. Returns (out, frames)."""
    out = tmp_path / "out"
    out.mkdir()
    frames = [bgra_u8(cartoon_gray(seed)) for seed in range(len(times))]
    for t, arr in zip(times, frames, strict=True):
        (out / f"frame_{t}.bin").write_bytes(arr.tobytes())
    return out, frames


def _tab_switch_inputs(tmp_path, count: int) -> tuple:
    """The tab-switch scenarios' inputs in ``tmp_path/out``: ``count`` keyframes of gray
    cartoons and the other document's drawing (every pixel opaque). Returns (out, times,
    frames)."""
    times = list(range(count))
    out, frames = _source_frames(tmp_path, times)
    other = colour_bgra()
    other[..., 3] = 255  # the artist's drawing in the other document: every pixel opaque
    (out / "other.bin").write_bytes(other.tobytes())
    return out, times, frames


def _assert_results_are_the_engines_chunks(server, model, out, times, frames, chunk: int):
    """Each keyframe's result equals a direct /jobs round trip of its chunk of ``chunk``
    keyframes (the docker sends one engine job per chunk)."""
    layout = {"width": W, "height": H, "channels": 4, "depth": "u8", "order": "bgra"}
    want = []
    for start in range(0, len(frames), chunk):
        want += server.job([f.tobytes() for f in frames[start : start + chunk]], layout, model)
    for t, expected in zip(times, want, strict=True):
        assert (out / f"result_{t}.bin").read_bytes() == expected, f"keyframe {t}"


def test_gui_tab_switch_while_adding_keyframes(engine, plugin_zip, tmp_path):
    """Issue 14 item 7 (data loss): clicking another document's tab while the docker adds
    the keyframes of Colorize animation must not touch that document; the insertion waits
    for the artist to come back and then finishes the result layer completely."""
    server, models = engine
    out, times, frames = _tab_switch_inputs(tmp_path, 12)
    shot = artifacts_dir() / "krita-tab-switch.png"
    shot.unlink(missing_ok=True)
    result = run_gui(
        engine,
        plugin_zip,
        tmp_path,
        "tab-switch",
        {
            "times": times,
            "end": 14,
            "model": models["gray"],
            "scenario": "tab_switch",
            "screenshot": str(shot),
            "chunk": 5,
        },
    )
    ts = result["tab_switch"]
    assert ts["before"]["unchanged"] and ts["before"]["opaque"] == W * H
    assert ts["busy_at_switch"] and 2 <= len(ts["keys_at_switch"]) < len(times)
    assert ts["b_active_after_click"]
    # While the other document is in front: its drawing is untouched, no keyframe is added
    # anywhere, and the docker says why it waits.
    during = ts["during"]
    assert during["b_active"]
    assert during["unchanged"] and during["opaque"] == W * H, during
    assert during["keys"] == [0] and during["layers"] == ["Background", "Art"]
    assert during["result_keys"] == ts["keys_at_switch"]
    assert during["error"] == ""
    assert during["message"].startswith("Paused: switch back to 'inkhue-gui'")
    assert not during["busy"]  # the docker shows B's own state: B can be colorized
    # Back on its tab: the result layer is finished, complete and right; B still untouched.
    after = ts["after"]
    assert after["error"] == "", after["error"]
    assert after["unchanged"] and after["keys"] == [0]
    assert after["result_keys"] == times
    assert after["layers"] == ["Background", "Ink", f"InkHue {models['gray']}"]
    assert after["current_time"] == 0
    _assert_results_are_the_engines_chunks(server, models["gray"], out, times, frames, 5)
    assert ts.get("screenshot_rc") == 0 and shot.is_file()


def test_gui_tab_switch_before_the_first_results(engine, plugin_zip, tmp_path):
    """The artist clicks another document's tab right after Colorize animation, before any
    result came back: the results wait for them (nothing is thrown away, nothing lands in
    the other document) and the layer is finished when they come back."""
    server, models = engine
    out, times, frames = _tab_switch_inputs(tmp_path, 6)
    result = run_gui(
        engine,
        plugin_zip,
        tmp_path,
        "tab-switch-early",
        {"times": times, "end": 8, "model": models["gray"], "scenario": "tab_switch",
         "chunk": 3, "early": True},
    )  # fmt: skip
    ts = result["tab_switch"]
    assert ts["keys_at_switch"] == [] and ts["busy_at_switch"] and ts["b_active_after_click"]
    during = ts["during"]
    assert during["b_active"] and during["error"] == "", during
    assert (
        during["unchanged"] and during["keys"] == [0] and during["layers"] == ["Background", "Art"]
    )
    assert during["result_keys"] == []
    after = ts["after"]
    assert after["error"] == "", after["error"]
    assert after["unchanged"] and after["keys"] == [0]
    assert after["result_keys"] == times
    assert after["layers"] == ["Background", "Ink", f"InkHue {models['gray']}"]
    _assert_results_are_the_engines_chunks(server, models["gray"], out, times, frames, 3)


def test_gui_colorize_animation_from_colored_keyframes(engine, plugin_zip, tmp_path):
    """Issue 10 in the real Krita: the artist colors the first frame on a layer of its own,
    picks it in the docker's Keyframes picker and clicks Colorize animation (sent in chunks
    of 2); then a model sheet from another open document with Colorize frame."""
    sys.path.insert(0, str(HERE.parent / "engine"))
    from cartoon_shots import SHIRT, SKIN, cartoon, gray_of, interior_de

    _server, models = engine
    out = tmp_path / "out"
    out.mkdir()
    times = [0, 3, 7]
    truths = [cartoon(dx=3 * i, ball=-4 * i) for i in range(len(times))]
    h, w = truths[0].shape[:2]

    def bgra(rgb: np.ndarray) -> np.ndarray:
        return np.concatenate([rgb[..., ::-1], np.full((*rgb.shape[:2], 1), 255, np.uint8)], 2)

    for t, truth in zip(times, truths, strict=True):
        g = gray_of(truth)
        (out / f"frame_{t}.bin").write_bytes(bgra(np.stack([g, g, g], -1)).tobytes())
    (out / "colour_0.bin").write_bytes(bgra(truths[0]).tobytes())
    sheet = np.repeat(np.repeat(truths[0], 2, axis=0), 2, axis=1)  # twice the frames' size
    (out / "sheet.bin").write_bytes(bgra(sheet).tobytes())
    shot = artifacts_dir() / "krita-keyframes.png"
    shot.unlink(missing_ok=True)
    result = run_gui(
        engine,
        plugin_zip,
        tmp_path,
        "keyframes",
        {
            "width": w,
            "height": h,
            "times": times,
            "end": 10,
            "model": models["gray"],
            "scenario": "keyframes",
            "colour_times": [0],
            "chunk": 2,
            "screenshot": str(shot),
        },
    )
    k = result["keyframes"]
    assert k["colour_keys"] == [0]
    assert ("Layer 'Colour'", "layer:Colour") in [tuple(i) for i in k["items"]]
    assert k["chosen"][0] == "layer:Colour" and k["chosen"][1].startswith("document:")
    anim = k["animation"]
    assert anim["error"] == "", anim
    assert anim["message"] == f"Added animated layer 'InkHue {models['gray']}' (3 keyframes)"
    assert k["result_keys"] == times

    def rgb_of(name: str) -> np.ndarray:
        data = np.frombuffer((out / name).read_bytes(), np.uint8).reshape(h, w, 4)
        return data[..., 2::-1]

    # the frame the artist colored comes out as colored; the others follow its colors
    # (the tiny untrained test model could not give them)
    assert np.abs(rgb_of("keyed_0.bin").astype(int) - truths[0]).max() <= 1
    for t, truth in zip(times[1:], truths[1:], strict=True):
        for color in (SHIRT, SKIN):
            assert interior_de(rgb_of(f"keyed_{t}.bin"), truth, color) < 2.0, (t, color)
    sheet_run = k["sheet"]
    assert sheet_run["error"] == "", sheet_run
    assert sheet_run["message"] == f"Added layer 'InkHue {models['gray']} 2'"
    assert interior_de(rgb_of("sheet_result.bin"), truths[-1], SHIRT) < 3.0
    assert k["screenshot_rc"] == 0 and shot.is_file()


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited (nobody reaped it yet)


def test_gui_engine_killed_and_krita_quit(engine, plugin_zip, tmp_path):
    """Issue 14 item 10: a killed engine shows as not running with Start engine offered,
    and the engine started from the docker ends when Krita quits."""
    import signal
    import time

    from krita_support import free_port

    _server, models = engine
    exe = Path(sys.executable).with_name("inkhue")
    port = free_port()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "frame_0.bin").write_bytes(bgra_u8(cartoon_gray(0)).tobytes())
    command = (
        f"setsid {exe} serve --port {{port}} --no-preload --models-dir {models['gray_path'].parent}"
    )
    result = run_gui(
        engine,
        plugin_zip,
        tmp_path,
        "engine",
        {
            "times": [0],
            "end": 2,
            "model": models["gray"],
            "scenario": "engine",
            "engine_url": f"http://127.0.0.1:{port}",
            "engine_command": command,
        },
    )
    eng = result["engine"]
    second = eng.get("second", {}).get("pid")
    try:
        assert eng["first"]["state"] == "connected" and not eng["first"]["start_enabled"]
        after = eng["after_kill"]
        assert after["state"] == "offline" and after["status"] == "Engine not running"
        assert after["start_enabled"]
        assert after["message"].startswith("The engine started from this panel exited")
        assert eng["second"]["state"] == "connected"
        deadline = time.monotonic() + 10
        while process_alive(second) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not process_alive(second), "the engine outlived Krita"
    finally:
        if second and process_alive(second):
            os.kill(second, signal.SIGKILL)


def test_gui_two_views_of_one_document(engine, plugin_zip, tmp_path):
    """Window > New View: the artist selects "Ink" in the second (active) view while the
    first view still has "Sketch" selected. Krita's doc.activeNode() reads the first view
    (docs/FACTS.md); the panel must colorize the layer the artist sees selected, finish the
    result layer, and touch neither layer."""
    server, models = engine
    out, times, frames = _tab_switch_inputs(tmp_path, 4)
    result = run_gui(
        engine, plugin_zip, tmp_path, "two-views",
        {"times": times, "end": 5, "model": models["gray"], "scenario": "two_views", "chunk": 2},
    )  # fmt: skip
    tv = result["two_views"]
    # the Krita behaviour this guards against, as measured (if Krita changes it, say so)
    assert tv["views_of_doc"] == 2 and tv["active_is_second"]
    assert tv["doc_active_node"] == "Sketch" and tv["view_selected"] == ["Ink"]
    after = tv["after"]
    assert after["error"] == "", after["error"]
    assert after["result_keys"] == times
    assert after["ink_unchanged"] == [True] * len(times) and after["ink_keys"] == times
    assert after["sketch_unchanged"] and after["sketch_keys"] == [0]
    layers = after["layers"]
    assert layers.index(f"InkHue {models['gray']}") == layers.index("Ink") + 1, layers
    assert after["view_selected"] == ["Ink"]  # the artist's layer is active again
    _assert_results_are_the_engines_chunks(server, models["gray"], out, times, frames, 2)


def test_gui_colorize_animation_of_a_range_that_starts_mid_hold(engine, plugin_zip, tmp_path):
    """The playback range starts at frame 2 while keyframe 0 is held: Krita reads nothing
    at a held frame (docs/FACTS.md), but the range's first frame shows keyframe 0's drawing
    and is colorized from it."""
    server, models = engine
    times = [0, 3, 5]
    out, frames = _source_frames(tmp_path, times)
    result = run_gui(
        engine, plugin_zip, tmp_path, "held-range",
        {"times": times, "end": 7, "range_start": 2, "model": models["gray"],
         "scenario": "held_range"},
    )  # fmt: skip
    held = result["held_range"]
    # the Krita behaviour this guards against, as measured (if Krita changes it, say so)
    assert held["bytes_at_key"] == W * H * 4 and held["bytes_at_held"] == 0
    assert held["range"][0] == 2
    after = held["after"]
    assert after["error"] == "", after["error"]
    # Krita gives a layer whose first keyframe comes after frame 0 an empty one at 0
    assert after["result_keys"] == [0, 2, 3, 5]
    assert not any((out / "result_0.bin").read_bytes()[3::4])  # fully transparent
    assert after["ink_keys"] == times and all(after["ink_unchanged"])
    layout = {"width": W, "height": H, "channels": 4, "depth": "u8", "order": "bgra"}
    want = server.job([f.tobytes() for f in frames], layout, models["gray"])
    for t, expected in zip([2, 3, 5], want, strict=True):
        assert (out / f"result_{t}.bin").read_bytes() == expected, f"frame {t}"
