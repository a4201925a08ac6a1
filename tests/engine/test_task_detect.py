"""The task detector: line art (lines on paper, opaque or on transparency) vs grayscale."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine import task_detect as td
from inkhue_engine.color import on_white
from inkhue_engine.errors import InputError
from inkhue_engine.frames_io import read_image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def line_art(h: int = 240, w: int = 320, width: int = 2) -> np.ndarray:
    """Gray uint8 drawing: black outlines on white paper."""
    img = np.full((h, w), 255, np.uint8)
    cv2.circle(img, (w // 3, h // 2), h // 4, 0, width, cv2.LINE_AA)
    cv2.rectangle(img, (w // 2, h // 5), (w - 20, h - 30), 0, width, cv2.LINE_AA)
    cv2.line(img, (10, h - 10), (w - 10, 10), 0, width, cv2.LINE_AA)
    cv2.ellipse(img, (w // 2, h // 2), (w // 5, h // 8), 30, 0, 300, 0, width, cv2.LINE_AA)
    return img


def shaded(h: int = 240, w: int = 320) -> np.ndarray:
    """Gray uint8 picture: a lit sphere over a gradient floor, dark outline (grayscale task)."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    img = 120 + 80 * (yy / h)  # floor gradient
    r = np.hypot(xx - w / 2, yy - h / 2)
    ball = r < h / 3
    img[ball] = 60 + 150 * np.clip(1 - np.hypot(xx - w / 2.4, yy - h / 2.6) / (h / 2.5), 0, 1)[ball]
    out = np.clip(img, 0, 255).astype(np.uint8)
    cv2.circle(out, (w // 2, h // 2), h // 3, 0, 2, cv2.LINE_AA)
    return out


def on_transparency(gray: np.ndarray, rgb_value: int = 0) -> np.ndarray:
    """Lines on a transparent layer: black lines, alpha = ink coverage, RGB ``rgb_value``
    in the empty pixels (Krita often stores black there)."""
    out = np.zeros((*gray.shape, 4), gray.dtype)
    top = np.iinfo(gray.dtype).max if gray.dtype != np.float32 else 1.0
    out[..., 3] = top - gray
    out[..., :3][out[..., 3] == 0] = rgb_value
    return out


def test_line_art_is_lineart_and_shading_is_grayscale():
    lines = td.detect_task(line_art())
    assert lines.task == "lineart" and not lines.blank and lines.confidence > 0.5
    assert "line art" in lines.reason
    gray = td.detect_task(shaded())
    assert gray.task == "grayscale" and gray.confidence > 0.5


def test_thick_lines_and_solid_black_fills_stay_line_art():
    img = line_art(width=5)
    cv2.circle(img, (60, 60), 30, 0, -1)  # a filled black area (hair, a shadow)
    assert td.detect_task(img).task == "lineart"


@pytest.mark.parametrize("rgb_value", [0, 255])
def test_lines_on_a_transparent_layer_are_line_art(rgb_value):
    """Krita's line layers: lines on transparency, whatever RGB the empty pixels hold."""
    rgba = on_transparency(line_art(), rgb_value)
    det = td.detect_task(rgba)
    assert det.task == "lineart" and not det.blank
    # the same as gray + alpha
    ga = np.stack([rgba[..., 0], rgba[..., 3]], axis=2)
    assert td.detect_task(ga).task == "lineart"


def test_a_shaded_layer_on_transparency_is_grayscale():
    img = shaded()
    alpha = np.zeros(img.shape, np.uint8)
    cv2.circle(alpha, (160, 120), 100, 255, -1)
    rgba = np.dstack([img, img, img, alpha])
    assert td.detect_task(rgba).task == "grayscale"


def test_16_bit_and_float_frames_decide_by_their_dtype():
    lines8, gray8 = line_art(), shaded()
    for conv in (lambda a: a.astype(np.uint16) * 257, lambda a: a.astype(np.float32) / 255):
        assert td.detect_task(conv(lines8)).task == "lineart"
        assert td.detect_task(conv(gray8)).task == "grayscale"
        assert td.detect_task(on_transparency(conv(lines8))).task == "lineart"
    # 16-bit values that would be white line art if read as 8-bit are almost black in
    # 16-bit: the bit depth comes from the dtype, never from the values
    dark = line_art().astype(np.uint16)
    f8 = td.features(line_art())
    f16 = td.features(dark)
    assert f8["paper_L"] > 90 and f16["paper_L"] < 10
    assert td.detect_task(dark).task == "grayscale"  # no light paper: not line art


def test_float_frames_with_nan_read_as_the_pipeline_reads_them():
    img = line_art().astype(np.float32) / 255
    img[:40, :40] = np.nan  # NaN is 0 (ink) in the pipeline: a black corner, still line art
    f = td.features(img)
    assert all(np.isfinite(v) for v in f.values())
    assert td.detect_task(img).task == "lineart"
    assert td.detect_task(np.full((30, 30), np.nan, np.float32)).blank


def test_blank_frames_are_blank_with_no_confidence():
    for frame in (
        np.full((50, 60), 255, np.uint8),
        np.zeros((50, 60), np.uint16),
        np.full((50, 60, 3), 0.5, np.float32),
        np.zeros((50, 60, 4), np.uint8),  # an empty transparent layer
    ):
        det = td.detect_task(frame)
        assert det.blank and det.confidence == 0.0 and det.task == td.DEFAULT_TASK
        assert "blank" in det.reason


def test_colored_frames_are_reported_as_colored():
    gray = shaded()
    color = cv2.applyColorMap(gray, cv2.COLORMAP_JET)[..., ::-1].copy()
    det = td.detect_task(color)
    assert det.colored and "already in color" in det.reason
    assert not td.detect_task(gray).colored
    assert not td.detect_task(np.dstack([gray] * 3)).colored  # gray stored as RGB
    blue_lines = np.dstack([line_art()] * 3)
    blue_lines[line_art() < 128] = (30, 60, 200)  # colored thin lines are still line art
    det = td.detect_task(blue_lines)
    assert det.task == "lineart"


def test_the_repository_examples():
    for path in sorted((EXAMPLES / "lineart").glob("*.png")):
        assert td.detect_task(read_image(path)).task == "lineart", path
    for path in sorted((EXAMPLES / "grayscale").glob("*.png")):
        assert td.detect_task(read_image(path)).task == "grayscale", path


def test_large_frames_are_scaled_down_composited_first():
    big = on_transparency(cv2.resize(line_art(), (2400, 1800), interpolation=cv2.INTER_NEAREST))
    small = td._small_on_white(big, td.MAX_PIXELS)
    assert small.shape[0] * small.shape[1] <= td.MAX_PIXELS
    k = big.shape[0] // small.shape[0]
    want = cv2.resize(
        on_white(big[: small.shape[0] * k, : small.shape[1] * k]),
        (small.shape[1], small.shape[0]),
        interpolation=cv2.INTER_AREA,
    )
    np.testing.assert_allclose(small, want, atol=1e-5)
    assert td.detect_task(big).task == "lineart"


def test_sequence_skips_blank_frames_and_reads_only_what_it_needs():
    read: list[int] = []

    def frames():
        for i in range(100):
            read.append(i)
            yield np.zeros((40, 40), np.uint8) if i < 2 else line_art()

    det = td.detect_sequence(frames())
    assert det.task == "lineart" and "first 3 frames" in det.reason
    assert read == [0, 1, 2, 3, 4]  # 2 blank + SEQUENCE_FRAMES, not 100
    assert td.detect_sequence([np.zeros((8, 8), np.uint8)]).blank
    # one odd frame does not flip a sequence (tone shares are averaged)
    seq = [shaded(), shaded(), line_art()]
    assert td.detect_sequence(seq).task == "grayscale"
    with pytest.raises(InputError):
        td.detect_sequence([])


@pytest.mark.parametrize(
    "frame",
    [np.zeros((4, 4), np.int32), np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4), np.uint8), []],
)
def test_unreadable_frames_raise_input_error(frame):
    with pytest.raises(InputError):
        td.detect_task(frame)
