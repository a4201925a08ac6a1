"""``inkhue colorize``: every bad input gives one clear line, a non-zero exit, no output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inkhue_engine import frames_io
from inkhue_engine.cli import main
from inkhue_engine.color import rgb_to_lab, to_float01


def _frame(path: Path, value: int = 0) -> Path:
    img = np.full((40, 56), 200, np.uint8)
    img[8:30, 6:26] = 90
    img[8:30, 6] = 10
    img[20:34, 30 + value : 44 + value] = 60
    path.parent.mkdir(parents=True, exist_ok=True)
    frames_io.write_image_atomic(path, img)
    return path


def _run(capfd, *argv: str) -> tuple[int, str, str]:
    code = main(["colorize", *argv])
    out, err = capfd.readouterr()
    return code, out, err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("inkhue: error: ")
    for w in words:
        assert w in lines[0], lines[0]


def _bad_input(tmp_path: Path, kind: str) -> Path:
    import tifffile

    path = (
        tmp_path
        / {
            "corrupt": "corrupt.png",
            "empty": "empty.png",
            "int16": "signed.tif",
            "2ch": "gray_alpha.tif",
        }[kind]
    )
    if kind == "corrupt":
        path.write_bytes(frames_io.encode_image(np.zeros((20, 20), np.uint8), ".png")[:50])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "int16":
        tifffile.imwrite(path, np.zeros((8, 8), np.int16))
    else:
        tifffile.imwrite(
            path, np.zeros((8, 8, 2), np.uint8), photometric="minisblack", planarconfig="contig"
        )
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("corrupt", ["corrupt.png", "truncated"]),
        ("empty", ["empty.png", "empty"]),
        ("int16", ["signed.tif", "int16"]),
        ("2ch", ["gray_alpha.tif", "2 channels"]),
    ],
)
@pytest.mark.parametrize("as_folder", [False, True])
def test_bad_input_files(tmp_path, capfd, grayscale_model, kind, words, as_folder):
    src = tmp_path / "in"
    src.mkdir()
    bad = _bad_input(src, kind)
    before = _snapshot(tmp_path)
    args = [
        str(src) if as_folder else str(bad),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(grayscale_model),
        "--device",
        "cpu",
    ]
    code, _, err = _run(capfd, *args)
    _assert_one_line_error(code, err, *words)
    assert _snapshot(tmp_path) == before  # nothing written, no temp file, no folder
    assert not (tmp_path / "out").exists()


def _nan_model(make_tiny_model, path: Path) -> Path:
    """The tiny grayscale model with its output multiplied by NaN (a diverged model)."""
    import onnx
    from onnx import TensorProto, helper

    src = make_tiny_model("grayscale", path)
    graph_model = onnx.load(str(src))
    graph = graph_model.graph
    for node in graph.node:
        node.output[:] = ["ab_raw" if o == "ab" else o for o in node.output]
    graph.initializer.append(helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]))
    graph.node.append(helper.make_node("Mul", ["ab_raw", "nan"], ["ab"]))
    onnx.save(graph_model, str(path))
    return path


def test_model_that_outputs_nan(tmp_path, capfd, make_tiny_model):
    # it used to give exit 0 and an all-white image
    model = _nan_model(make_tiny_model, tmp_path / "nan.onnx")
    src = _frame(tmp_path / "a.png")
    code, _, err = _run(
        capfd, str(src), "-o", str(tmp_path / "out.png"), "--model", str(model), "--device", "cpu"
    )
    _assert_one_line_error(code, err, "nan.onnx", "'tiny-test'", "NaN")
    assert not (tmp_path / "out.png").exists()


def test_model_with_absurd_multiple_of(tmp_path, capfd, make_tiny_model):
    # it used to give a 31-line traceback (numpy asked for 37 GiB)
    model = make_tiny_model("grayscale", tmp_path / "big.onnx", multiple_of="100000")
    src = _frame(tmp_path / "a.png")
    code, _, err = _run(
        capfd, str(src), "-o", str(tmp_path / "out.png"), "--model", str(model), "--device", "cpu"
    )
    _assert_one_line_error(code, err, "big.onnx", "inkhue.multiple_of=100000")


@pytest.mark.parametrize("kind", ["text", "no-metadata", "wrong-task"])
def test_wrong_model_file(tmp_path, capfd, make_tiny_model, kind):
    src = _frame(tmp_path / "a.png")
    if kind == "text":
        model = tmp_path / "model.onnx"
        model.write_text("not a model")
        words = ["model.onnx", "not an ONNX model"]
        extra: list[str] = []
    elif kind == "no-metadata":
        model = make_tiny_model("grayscale", tmp_path / "nometa.onnx", **{"inkhue.task": None})
        words = ["nometa.onnx", "inkhue.task"]
        extra = []
    else:
        model = make_tiny_model("lineart", tmp_path / "la.onnx")
        words = ["la.onnx", "lineart model", "--task grayscale"]
        extra = ["--task", "grayscale"]
    before = _snapshot(tmp_path)
    code, _, err = _run(
        capfd,
        str(src),
        "-o",
        str(tmp_path / "out.png"),
        "--model",
        str(model),
        "--device",
        "cpu",
        *extra,
    )
    _assert_one_line_error(code, err, *words)
    assert _snapshot(tmp_path) == before


def test_output_equal_to_input_is_refused(tmp_path, capfd, grayscale_model):
    (tmp_path / "in").mkdir()
    src = _frame(tmp_path / "in" / "a.png")
    before = _snapshot(tmp_path)
    for out in (str(src), str(tmp_path / "in"), str(tmp_path / "in" / ".." / "in")):
        code, _, err = _run(capfd, str(src), "-o", out, "--model", str(grayscale_model))
        _assert_one_line_error(code, err, "overwrite the input", "a.png")
    assert _snapshot(tmp_path) == before


def test_missing_input_and_missing_hint_file(tmp_path, capfd, grayscale_model):
    src = _frame(tmp_path / "a.png")
    before = _snapshot(tmp_path)
    code, _, err = _run(
        capfd,
        str(tmp_path / "nope.png"),
        "-o",
        str(tmp_path / "o"),
        "--model",
        str(grayscale_model),
    )
    _assert_one_line_error(code, err, "nope.png", "no such file")
    code, _, err = _run(
        capfd,
        str(src),
        "-o",
        str(tmp_path / "o"),
        "--model",
        str(grayscale_model),
        "--hints",
        str(tmp_path / "hint.png"),
    )
    _assert_one_line_error(code, err, "hint.png", "not found")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("GIMP Palette\nName: x\n255 0 zero red\n", ["bad.gpl", "line 3"]),
        ("just some text\n", ["bad.gpl", "not a palette"]),
    ],
)
def test_palette_that_does_not_parse(tmp_path, capfd, grayscale_model, content, words):
    src = _frame(tmp_path / "a.png")
    pal = tmp_path / "bad.gpl"
    pal.write_text(content)
    before = _snapshot(tmp_path)
    code, _, err = _run(
        capfd,
        str(src),
        "-o",
        str(tmp_path / "o"),
        "--model",
        str(grayscale_model),
        "--palette",
        str(pal),
    )
    _assert_one_line_error(code, err, *words)
    assert _snapshot(tmp_path) == before


def test_bad_options(tmp_path, capfd, grayscale_model):
    src = _frame(tmp_path / "a.png")
    code, _, err = _run(
        capfd, str(src), "-o", str(tmp_path / "o"), "--model", str(grayscale_model), "--detail", "0"
    )
    _assert_one_line_error(code, err, "detail")
    code, _, err = _run(capfd, str(src), "-o", str(tmp_path / "o"), "--batch-size", "0")
    _assert_one_line_error(code, err, "--batch-size")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- success
def test_colorize_a_folder_then_resume(tmp_path, capfd, grayscale_model):
    for i in range(3):
        _frame(tmp_path / "in" / f"f{i}.png", value=2 * i)
    argv = [
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(grayscale_model),
        "--device",
        "cpu",
        "--batch-size",
        "2",
    ]
    code, out, err = _run(capfd, *argv)
    assert code == 0 and err == ""
    assert "3 frame(s) written" in out and "frames/s" in out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "f0.png",
        "f1.png",
        "f2.png",
    ]
    (tmp_path / "out" / "f1.png").unlink()
    code, out, _ = _run(capfd, *argv)
    assert code == 0 and "1 frame(s) written, 2 already done" in out


def _mean_ab(path: Path) -> np.ndarray:
    lab = rgb_to_lab(to_float01(frames_io.read_image(path)))
    return lab[..., 1:].reshape(-1, 2)


def test_model_palette_is_used_unless_turned_off(tmp_path, capfd, make_tiny_model):
    model = make_tiny_model("grayscale", tmp_path / "pal.onnx", palette=["#ff0000"])
    src = _frame(tmp_path / "a.png")
    base = [str(src), "--model", str(model), "--device", "cpu", "-q"]
    assert _run(capfd, *base, "-o", str(tmp_path / "locked.png"))[0] == 0
    assert _run(capfd, *base, "-o", str(tmp_path / "free.png"), "--palette", "none")[0] == 0
    gpl = tmp_path / "blue.gpl"
    gpl.write_text("GIMP Palette\nName: blue\n0 0 255 blue\n")
    assert _run(capfd, *base, "-o", str(tmp_path / "blue.png"), "--palette", str(gpl))[0] == 0
    locked, free, blue = (_mean_ab(tmp_path / n) for n in ("locked.png", "free.png", "blue.png"))
    red_hue = np.arctan2(locked[:, 1], locked[:, 0])  # a > 0, b > 0 side: red's hue
    chroma = np.hypot(locked[:, 0], locked[:, 1])
    assert np.median(red_hue[chroma > 5]) == pytest.approx(np.arctan2(67.2, 80.1), abs=0.15)
    assert not np.allclose(locked, free)
    assert np.median(blue[np.hypot(*blue.T) > 5][:, 1]) < -20  # blue: b well below 0


def test_video_to_video(tmp_path, capfd, grayscale_model):
    frames = [
        np.repeat(frames_io.read_image(_frame(tmp_path / f"f{i}.png", i))[..., None], 3, 2)
        for i in range(4)
    ]
    clip = tmp_path / "in.mp4"
    frames_io.write_video(clip, frames, fps=8)
    code, out, err = _run(
        capfd,
        str(clip),
        "-o",
        str(tmp_path / "out.mov"),
        "--model",
        str(grayscale_model),
        "--device",
        "cpu",
    )
    assert code == 0, err
    info = frames_io.video_info(tmp_path / "out.mov")
    assert (info.width, info.height, info.fps) == (56, 40, 8)
    assert frames_io.count_video_frames(tmp_path / "out.mov") == 4


def _sequence(folder: Path, n: int) -> list[Path]:
    return [_frame(folder / f"f{i:02d}.png", value=i % 5) for i in range(n)]


def test_a_bad_frame_does_not_cost_the_good_ones(tmp_path, capfd, grayscale_model):
    # 12 frames with a corrupt 9th: the batch used to stop and write nothing at all
    frames = _sequence(tmp_path / "in", 12)
    frames[8].write_bytes(frames[8].read_bytes()[:60])
    out = tmp_path / "out"
    args = [
        str(tmp_path / "in"),
        "-o",
        str(out),
        "--model",
        str(grayscale_model),
        "--device",
        "cpu",
        "--batch-size",
        "1",
    ]
    code, stdout, err = _run(capfd, *args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("inkhue: error: ") and "f08.png" in lines[0]
    assert "truncated" in lines[0]
    assert "1 frame(s) failed" in lines[1] and "other 11" in lines[1]
    assert "11 frame(s) written" in stdout
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == [p.name for p in frames if p.name != "f08.png"]
    # carry starts afresh after the bad frame: frames 9-11 are what a run of them alone gives
    alone = tmp_path / "alone"
    assert (
        _run(
            capfd,
            *[str(p) for p in frames[9:]],
            "-o",
            str(alone),
            "--model",
            str(grayscale_model),
            "--device",
            "cpu",
            "--batch-size",
            "1",
        )[0]
        == 0
    )
    for p in frames[9:]:
        assert (out / p.name).read_bytes() == (alone / p.name).read_bytes(), p.name
    # a re-run skips the written frames and lists the bad one again
    code, stdout, err = _run(capfd, *args)
    assert code == 1 and "f08.png" in err and "11 already done" in stdout
    # fixed, the re-run writes only it
    _frame(frames[8], value=8 % 5)
    code, stdout, err = _run(capfd, *args)
    assert code == 0 and err == "" and "1 frame(s) written" in stdout


def test_fail_fast_stops_at_the_bad_frame(tmp_path, capfd, grayscale_model):
    frames = _sequence(tmp_path / "in", 6)
    frames[0].write_bytes(b"")
    code, _, err = _run(
        capfd,
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(grayscale_model),
        "--device",
        "cpu",
        "--fail-fast",
    )
    _assert_one_line_error(code, err, "f00.png", "empty")
    assert not (tmp_path / "out").exists()


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG structure whose header claims width x height (its data is tiny)."""
    import struct
    import zlib

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_pixel_limit_like_the_server(tmp_path, capfd, grayscale_model):
    from inkhue_engine.commands.colorize import DEFAULT_MAX_PIXELS
    from inkhue_engine.server import ServerConfig

    assert DEFAULT_MAX_PIXELS == frames_io.DEFAULT_MAX_PIXELS == ServerConfig().max_pixels
    # a 20000 x 20000 PNG took 14.7 GB: refused from its header, before decoding
    big = _huge_png(tmp_path / "big.png", 20000, 20000)
    code, _, err = _run(
        capfd,
        str(big),
        "-o",
        str(tmp_path / "o.png"),
        "--model",
        str(grayscale_model),
        "--device",
        "cpu",
    )
    _assert_one_line_error(code, err, "big.png", "20000 x 20000", "--max-pixels")
    # the option lowers and raises it
    src = _frame(tmp_path / "a.png")  # 56 x 40
    base = [str(src), "--model", str(grayscale_model), "--device", "cpu"]
    code, _, err = _run(capfd, *base, "-o", str(tmp_path / "b.png"), "--max-pixels", "2239")
    _assert_one_line_error(code, err, "a.png", "56 x 40 = 2240 pixels")
    assert _run(capfd, *base, "-o", str(tmp_path / "c.png"), "--max-pixels", "2240")[0] == 0


def test_no_mirror_runs_the_model_once_per_frame(tmp_path, capfd, grayscale_model):
    from inkhue_engine.model import load_model
    from inkhue_engine.pipeline import ColorizeOptions, colorize_frame

    src = _frame(tmp_path / "a.png")
    base = [str(src), "--model", str(grayscale_model), "--device", "cpu", "-q"]
    assert _run(capfd, *base, "-o", str(tmp_path / "mirror.png"))[0] == 0
    assert _run(capfd, *base, "-o", str(tmp_path / "once.png"), "--no-mirror")[0] == 0
    model, frame = load_model(grayscale_model, "cpu"), frames_io.read_image(src)
    for name, mirror in (("mirror.png", True), ("once.png", False)):
        want = colorize_frame(frame, model, None, ColorizeOptions(mirror_average=mirror))
        got = frames_io.read_image(tmp_path / name)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, name
    once, mirrored = (frames_io.read_image(tmp_path / n) for n in ("once.png", "mirror.png"))
    assert not np.array_equal(once, mirrored)


def test_video_out_of_a_video_with_audio_says_the_audio_is_not_kept(
    tmp_path, capfd, grayscale_model
):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from video_files import video_with_audio

    frames = [
        np.repeat(frames_io.read_image(_frame(tmp_path / f"f{i}.png", i))[..., None], 3, 2)
        for i in range(3)
    ]
    clip = video_with_audio(tmp_path / "talk.mp4", frames)
    base = [str(clip), "--model", str(grayscale_model), "--device", "cpu", "-q"]
    code, _, err = _run(capfd, *base, "-o", str(tmp_path / "out.mp4"))
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"inkhue: warning: {clip}: the output video keeps the frames only, not its audio "
        "track(s): mux them back from the input if you need them"
    ]
    assert frames_io.count_video_frames(tmp_path / "out.mp4") == 3
    code, _, err = _run(capfd, *base, "-o", str(tmp_path / "frames"))  # frames: nothing to say
    assert code == 0 and err == ""


def test_pixel_limit_holds_for_a_shot_from_keyframes(tmp_path, capfd, grayscale_model):
    src = _frame(tmp_path / "in" / "a.png")  # 56 x 40
    key = tmp_path / "keys" / "a.png"
    key.parent.mkdir()
    frames_io.write_image_atomic(key, np.full((40, 56, 3), (200, 60, 40), np.uint8))
    base = [str(src.parent), "--model", str(grayscale_model), "--device", "cpu", "-q"]
    code, _, err = _run(
        capfd, *base, "-r", str(key), "-o", str(tmp_path / "o"), "--max-pixels", "2239"
    )
    _assert_one_line_error(code, err, "a.png", "56 x 40 = 2240 pixels")
    assert not (tmp_path / "o").exists()
