"""Raw frames on the wire: decode/encode of every depth, channel count and order."""

from __future__ import annotations

import numpy as np
import pytest

from inkhue_engine.errors import InputError
from inkhue_engine.server_frames import PixelLayout, TooLargeError, parse_palette


def _rgba_u8(h: int = 3, w: int = 5) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 4), dtype=np.uint8)


def test_bgra_u8_decodes_to_rgba_and_encodes_back():
    rgba = _rgba_u8()
    bgra_bytes = rgba[..., [2, 1, 0, 3]].tobytes()
    layout = PixelLayout(5, 3, 4, "u8", "bgra")
    decoded = layout.decode(bgra_bytes)
    np.testing.assert_array_equal(decoded, rgba)
    assert decoded.flags.writeable
    assert layout.encode(decoded) == bgra_bytes


def test_rgb_order_and_gray_shapes():
    rgb = _rgba_u8()[..., :3]
    layout = PixelLayout(5, 3, 3, "u8", "bgra")
    np.testing.assert_array_equal(layout.decode(rgb[..., ::-1].tobytes()), rgb)
    gray = PixelLayout(5, 3, 1, "u8", "bgra")  # order means nothing for gray
    g = rgb[..., 0].copy()
    assert gray.decode(g.tobytes()).shape == (3, 5)
    assert gray.out_channels == 3 and PixelLayout(5, 3, 2, "u8").out_channels == 4
    ga = PixelLayout(5, 3, 2, "u16")
    assert ga.decode(np.zeros((3, 5, 2), "<u2").tobytes()).shape == (3, 5, 2)


def test_u16_is_little_endian_on_the_wire():
    layout = PixelLayout(1, 1, 1, "u16")
    assert layout.decode(b"\x01\x02")[0, 0] == 0x0201
    out = layout.encode(np.array([[[0x0201, 0, 0xFFFF]]], np.uint16))
    assert out == b"\x01\x02\x00\x00\xff\xff"


def test_f16_widens_to_float32_and_narrows_back():
    values = np.array([[[0.0, 0.25, 1.0, 0.5]]], np.float16)
    layout = PixelLayout(1, 1, 4, "f16", "rgba")
    decoded = layout.decode(values.astype("<f2").tobytes())
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, values.astype(np.float32))
    assert layout.encode(decoded) == values.astype("<f2").tobytes()
    f32 = PixelLayout(1, 1, 3, "f32", "bgra")
    rgb = np.array([[[0.1, 0.2, 0.3]]], np.float32)
    assert f32.decode(rgb[..., ::-1].astype("<f4").tobytes()).tolist() == rgb.tolist()


def test_wrong_size_names_the_part_and_the_fields():
    layout = PixelLayout(4, 2, 4, "u16")
    with pytest.raises(InputError, match=r"frame: expected 64 bytes .*got 63.*width, height"):
        layout.decode(b"\0" * 63)
    with pytest.raises(InputError, match=r"^hints 3: expected 32 bytes"):
        layout.hints_layout().check_size(31, "hints 3")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"width": 0}, "width"),
        ({"height": -1}, "height"),
        ({"channels": 5}, "channels"),
        ({"depth": "u32"}, "depth"),
        ({"order": "argb"}, "order"),
    ],
)
def test_layout_fields_are_validated(kwargs, field):
    base = {"width": 2, "height": 2, "channels": 4, "depth": "u8", "order": "rgba"}
    with pytest.raises(InputError, match=f"^{field}:"):
        PixelLayout(**{**base, **kwargs})


def test_pixel_limit_is_413():
    with pytest.raises(TooLargeError) as info:
        PixelLayout(100, 100, 4, "u8").check_pixels(9999)
    assert info.value.http_status == 413


def test_encode_refuses_a_wrong_shape():
    with pytest.raises(RuntimeError):
        PixelLayout(2, 2, 4, "u8").encode(np.zeros((2, 2, 3), np.uint8))


def test_parse_palette():
    assert parse_palette(None) is None
    assert parse_palette("none") == ()
    assert parse_palette("[]") == ()
    assert parse_palette('["#FF0000", "00ff00"]') == ("#ff0000", "#00ff00")
    assert parse_palette(["#0000ff"]) == ("#0000ff",)
    with pytest.raises(InputError, match="palette"):
        parse_palette("red")
    with pytest.raises(InputError, match="palette"):
        parse_palette('["#12"]')
    with pytest.raises(InputError, match="palette"):
        parse_palette('{"a": 1}')
