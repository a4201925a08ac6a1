"""Frame I/O: input expansion, exact image round trips, clear errors, atomic writes, video."""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine import frames_io as fio
from inkhue_engine.errors import InputError, OutputError

sys.path.insert(0, str(Path(__file__).parent))
from video_files import cut_with_edit_list, video_with_audio  # noqa: E402


def _rgb(h: int = 12, w: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _touch_png(path: Path, seed: int = 0) -> Path:
    fio.write_image_atomic(path, _rgb(seed=seed))
    return path


# --------------------------------------------------------------------------- expansion
def test_folder_is_sorted_naturally_and_skips_hidden_and_other_files(tmp_path):
    for n in (10, 2, 1, 33):
        _touch_png(tmp_path / f"frame{n}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".frame5.png.abc.inkhue-tmp").write_bytes(b"partial")
    fio.write_video(tmp_path / "preview.mp4", [_rgb(16, 16)], 24)
    sources = fio.expand_inputs([tmp_path])
    assert [s.path.name for s in sources] == [
        "frame1.png",
        "frame2.png",
        "frame10.png",
        "frame33.png",
    ]
    assert all(s.kind == "image" for s in sources)
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("shot10.mov", "shot9.mp4"):
        fio.write_video(videos / name, [_rgb(16, 16)], 24)
    assert [(s.path.name, s.kind) for s in fio.expand_inputs([videos])] == [
        ("shot9.mp4", "video"),
        ("shot10.mov", "video"),
    ]


def test_glob_files_and_videos_keep_argument_order_and_dedupe(tmp_path):
    for n in (3, 20, 100):
        _touch_png(tmp_path / f"a_{n}.png")
    single = _touch_png(tmp_path / "z.png")
    video = tmp_path / "clip.mp4"
    fio.write_video(video, [_rgb(16, 16, s) for s in range(3)], 24)
    sources = fio.expand_inputs([str(single), str(tmp_path / "a_*.png"), str(video), str(single)])
    assert [s.path.name for s in sources] == [
        "z.png",
        "a_3.png",
        "a_20.png",
        "a_100.png",
        "clip.mp4",
    ]
    assert [s.kind for s in sources][-1] == "video"


@pytest.mark.parametrize("arg", ["missing.png", "nothing_*.png", "emptydir"])
def test_missing_inputs_raise_one_line_naming_the_argument(tmp_path, arg):
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(InputError) as err:
        fio.expand_inputs([str(tmp_path / arg)])
    msg = str(err.value)
    assert arg in msg and "\n" not in msg


# --------------------------------------------------------------------------- images
@pytest.mark.parametrize(
    ("ext", "dtype", "channels"),
    [
        (".png", np.uint16, 3),
        (".png", np.uint16, 4),
        (".png", np.uint8, 1),
        (".tif", np.float32, 3),
        (".tif", np.float32, 4),
        (".tif", np.uint16, 1),
        (".exr", np.float32, 3),
        (".webp", np.uint8, 4),
    ],
)
def test_lossless_round_trip_is_exact(tmp_path, ext, dtype, channels):
    rng = np.random.default_rng(1)
    shape = (9, 14) if channels == 1 else (9, 14, channels)
    if dtype == np.float32:
        img = rng.random(shape, dtype=np.float32)
    else:
        img = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    path = tmp_path / f"img{ext}"
    fio.write_image_atomic(path, img)
    back = fio.read_image(path)
    assert back.dtype == img.dtype and back.shape == img.shape
    np.testing.assert_array_equal(back, img)
    np.testing.assert_array_equal(fio.stored_pixels(img, ext), back)


def test_channel_order_is_rgb(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 200  # red
    path = tmp_path / "red.png"
    fio.write_image_atomic(path, img)
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr[0, 0].tolist() == [0, 0, 200]
    assert fio.read_image(path)[0, 0].tolist() == [200, 0, 0]


def test_non_ascii_path_round_trips(tmp_path):
    path = tmp_path / "Kadr_ß_猫.png"
    img = _rgb()
    fio.write_image_atomic(path, img)
    np.testing.assert_array_equal(fio.read_image(path), img)


def test_formats_that_cannot_hold_the_dtype_convert_by_scale():
    f = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    assert fio.conform_for_format(f, ".png").dtype == np.uint16
    assert fio.conform_for_format(f, ".png")[0, 0].tolist() == [0, 32768, 65535]
    assert fio.conform_for_format(f, ".jpg")[0, 0].tolist() == [0, 128, 255]
    u8 = np.array([[[0, 255, 51, 255]]], np.uint8)
    np.testing.assert_allclose(fio.conform_for_format(u8, ".exr")[0, 0], [0, 1, 0.2, 1])
    assert fio.conform_for_format(u8, ".jpg").shape == (1, 1, 3)  # JPEG has no alpha
    with pytest.raises(OutputError, match="cannot write '.xyz'"):
        fio.conform_for_format(u8, ".xyz")


def test_float64_and_float16_become_float32(tmp_path):
    import tifffile

    img = np.random.default_rng(2).random((5, 6, 3))
    tifffile.imwrite(tmp_path / "f64.tif", img, photometric="rgb")
    back = fio.read_image(tmp_path / "f64.tif")
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, img, atol=1e-6)


def _write_bad(tmp_path: Path, kind: str) -> Path:
    import tifffile

    if kind == "empty":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
    elif kind == "corrupt":
        path = tmp_path / "corrupt.png"
        data = fio.encode_image(_rgb(), ".png")
        path.write_bytes(data[:40])  # a truncated PNG
    elif kind.startswith("cut"):  # cut at a point where libpng used to print its own lines
        path = tmp_path / f"{kind}.png"
        data = fio.encode_image(_rgb(), ".png")
        path.write_bytes(
            data[: {"cut20": 20, "cut_half": len(data) // 2, "cut_end": len(data) - 1}[kind]]
        )
    elif kind == "zero":  # a header that says 0 x 0 pixels (libpng: "Invalid IHDR data")
        import struct
        import zlib

        def chunk(tag: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + tag
                + body
                + struct.pack(">I", zlib.crc32(tag + body))
            )

        path = tmp_path / "zero.png"
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b"")
        )
    elif kind == "crc":
        path = tmp_path / "crc.png"
        data = bytearray(fio.encode_image(_rgb(), ".png"))
        data[60] ^= 0xFF  # inside the first IDAT
        path.write_bytes(bytes(data))
    elif kind == "garbage":
        path = tmp_path / "garbage.jpg"
        path.write_bytes(b"this is not an image at all" * 20)
    elif kind == "int16":
        path = tmp_path / "signed.tif"
        tifffile.imwrite(path, np.zeros((4, 5), np.int16))
    elif kind == "2ch":
        path = tmp_path / "gray_alpha.tif"
        tifffile.imwrite(
            path, np.zeros((4, 5, 2), np.uint8), photometric="minisblack", planarconfig="contig"
        )
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("empty", "empty"),
        ("corrupt", "truncated"),
        ("garbage", "not a readable"),
        ("int16", "int16"),
        ("2ch", "2 channels"),
        ("cut20", "truncated"),
        ("cut_half", "truncated"),
        ("cut_end", "truncated"),
        ("zero", "0 x 0 pixels"),
        ("crc", "damaged"),
    ],
)
def test_bad_images_raise_one_clear_line(tmp_path, capfd, kind, words):
    path = _write_bad(tmp_path, kind)
    with pytest.raises(InputError) as err:
        fio.read_image(path)
    msg = str(err.value)
    assert path.name in msg and words in msg and "\n" not in msg
    assert capfd.readouterr().err == ""  # no libpng / OpenCV lines beside ours


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    img = _rgb()  # 17 x 12
    h, w = img.shape[:2]
    for ext in (".png", ".jpg", ".tif"):
        path = tmp_path / f"f{ext}"
        path.write_bytes(fio.encode_image(img, ext))
        assert fio.read_image(path, max_pixels=w * h).shape[:2] == (h, w)
        with pytest.raises(
            InputError,
            match=rf"{w} x {h} = {w * h} pixels is over the limit "
            rf"of {w * h - 1} pixels.*--max-pixels",
        ):
            fio.read_image(path, max_pixels=w * h - 1)
    # PNG and JPEG are refused from their headers: the decoder never runs
    monkeypatch.setattr(fio.cv2, "imdecode", lambda *a: pytest.fail("decoded"))
    for ext in (".png", ".jpg"):
        with pytest.raises(InputError, match="over the limit"):
            fio.read_image(tmp_path / f"f{ext}", max_pixels=w * h - 1)


def test_write_refuses_to_overwrite_an_input(tmp_path):
    src = _touch_png(tmp_path / "in.png")
    before = src.read_bytes()
    with pytest.raises(OutputError, match="overwrite the input"):
        fio.write_image_atomic(tmp_path / "." / "in.png", _rgb(seed=9), inputs=[src])
    link = tmp_path / "link.png"
    os.symlink(src, link)
    with pytest.raises(OutputError, match="overwrite the input"):
        fio.write_image_atomic(link, _rgb(seed=9), inputs=[src])
    assert src.read_bytes() == before


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.png"

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fio.os, "replace", boom)
    with pytest.raises(OutputError, match="No space left"):
        fio.write_image_atomic(path, _rgb())
    assert list(tmp_path.iterdir()) == []


def test_stale_temps_are_found_for_their_target_only(tmp_path):
    target = tmp_path / "f1.png"
    t1 = fio.temp_path_for(target)
    other = fio.temp_path_for(tmp_path / "f10.png")
    assert fio.stale_temps(target) == [t1]
    assert other.exists()


# --------------------------------------------------------------------------- video
def test_video_round_trip_keeps_count_size_and_fps(tmp_path):
    frames = []
    for i in range(9):
        img = np.full((30, 46, 3), 40, np.uint8)
        img[5:20, 3 + 4 * i : 13 + 4 * i] = (220, 60, 30)  # a moving red box
        frames.append(img)
    path = tmp_path / "clip.mp4"
    assert fio.write_video(path, frames, fps=12) == 9
    info = fio.video_info(path)
    assert (info.width, info.height, info.fps) == (46, 30, 12)
    back = list(fio.read_video(path))
    assert len(back) == 9 and fio.count_video_frames(path) == 9
    assert back[0].shape == (30, 46, 3) and back[0].dtype == np.uint8
    # lossy, but the picture is the same: the box is where it was
    assert np.abs(back[4].astype(int) - frames[4].astype(int)).mean() < 6
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_video_odd_size_and_16bit_frames_are_padded_and_converted(tmp_path):
    frames = [np.full((15, 21, 4), 30000, np.uint16) for _ in range(3)]
    path = tmp_path / "odd.mkv"
    fio.write_video(path, frames, fps=25)
    back = list(fio.read_video(path))
    assert len(back) == 3 and back[0].shape == (16, 22, 3)
    assert abs(int(back[1][7, 10, 0]) - round(30000 / 65535 * 255)) <= 3


def test_video_writer_abort_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with fio.VideoWriter(path, 24) as writer:
            writer.write(_rgb(16, 16))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_video_frames_must_keep_their_size(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="one size"):
        fio.write_video(path, [_rgb(16, 16), _rgb(18, 16)], 24)
    assert list(tmp_path.iterdir()) == []


def test_bad_video_raises_input_error(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 50)
    with pytest.raises(InputError, match="broken.mp4"):
        list(fio.read_video(path))
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        fio.video_info(empty)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    import struct

    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an APP1 Exif segment holding only the Orientation tag."""
    import struct

    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_jpeg_exif_orientation_is_applied(tmp_path):
    # a phone photo stored landscape with "rotate 90 clockwise to display": read upright
    img = np.full((24, 40, 3), 200, np.uint8)
    img[:6, :10] = (20, 20, 20)  # a dark block at the stored top left
    ok, enc = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    path = tmp_path / "phone.jpg"
    path.write_bytes(_with_exif_orientation(enc.tobytes(), 6))
    back = fio.read_image(path)
    assert back.shape == (40, 24, 3)
    assert back[2, 21].max() < 60 and back[2, 2].min() > 150  # the block is now top right
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(enc.tobytes())
    assert fio.read_image(plain).shape == (24, 40, 3)


def test_files_with_several_frames_are_refused_not_cut_to_the_first(tmp_path):
    import tifffile

    pages = np.stack([np.full((16, 16), v, np.uint8) for v in (10, 120, 240)])
    tifffile.imwrite(tmp_path / "pages.tif", pages, photometric="minisblack")
    with pytest.raises(InputError, match="pages.tif: holds more than one frame"):
        fio.read_image(tmp_path / "pages.tif")
    tifffile.imwrite(tmp_path / "one.tif", pages[1])
    assert fio.read_image(tmp_path / "one.tif").shape == (16, 16)
    # an animated PNG: the acTL chunk (4 frames) before the image data
    png = _touch_png(tmp_path / "still.png").read_bytes()
    actl = _png_chunk(b"acTL", (4).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    ihdr_end = 8 + 8 + 13 + 4
    (tmp_path / "anim.png").write_bytes(png[:ihdr_end] + actl + png[ihdr_end:])
    with pytest.raises(InputError, match="anim.png: holds more than one frame"):
        fio.read_image(tmp_path / "anim.png")
    assert fio.read_image(tmp_path / "still.png").shape == (12, 17, 3)


def test_ogv_output_is_written_in_a_codec_ogg_holds(tmp_path):
    path = tmp_path / "clip.ogv"
    assert fio.write_video(path, [_rgb(16, 16, seed=i) for i in range(3)], fps=12) == 3
    assert fio.count_video_frames(path) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["clip.ogv"]


def test_frames_are_counted_as_they_decode_and_lost_tracks_are_named(tmp_path):
    full = video_with_audio(tmp_path / "full.mp4", [_rgb(32, 32, seed=i) for i in range(12)])
    cut_with_edit_list(full, tmp_path / "cut.mp4", 4)
    decoded = sum(1 for _ in fio.read_video(tmp_path / "cut.mp4"))
    assert decoded < 12  # the edit list hides the cut frames from decoding
    assert fio.count_video_frames(tmp_path / "cut.mp4") == decoded
    assert fio.video_losses(full) == ["its audio track(s)"]
    assert fio.video_losses(tmp_path / "cut.mp4") == []


def test_exclusive_write_never_replaces_a_file(tmp_path):
    path = tmp_path / "model.onnx"
    fio.write_bytes_atomic(path, b"first", exclusive=True)
    with pytest.raises(OutputError, match="model.onnx: appeared while this was being made"):
        fio.write_bytes_atomic(path, b"second", exclusive=True)
    assert path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    fio.write_bytes_atomic(path, b"third")  # not exclusive: replaced
    assert path.read_bytes() == b"third"
