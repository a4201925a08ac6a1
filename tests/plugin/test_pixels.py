"""Pure pixel helpers of the plugin (no numpy inside the plugin; numpy checks them here)."""

from __future__ import annotations

import numpy as np
import pytest

from inkhue.pixels import (
    FrameLayout,
    clear_unselected,
    flatten_on_white,
    flatten_on_white_py,
    is_linear_profile,
    krita_rgba_order,
    to_rgba8,
    to_srgb_rgba8,
)

DTYPES = {"u8": np.uint8, "u16": np.uint16, "f16": np.float16, "f32": np.float32}
FULL = {"u8": 255, "u16": 65535, "f16": 1.0, "f32": 1.0}


def random_frame(depth: str, channels: int, w=7, h=5, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if depth in ("u8", "u16"):
        arr = rng.integers(0, FULL[depth] + 1, size=(h, w, channels))
    else:
        arr = rng.random((h, w, channels))
    arr = arr.astype(DTYPES[depth])
    arr[0, 0, -1] = FULL[depth]  # some opaque and fully transparent pixels
    arr[0, 1, -1] = 0
    return arr


def reference_flatten(arr: np.ndarray, depth: str) -> np.ndarray:
    full = FULL[depth]
    a = arr[..., -1:].astype(np.float64) / full
    color = arr[..., :-1].astype(np.float64)
    out = color * a + full * (1 - a)
    result = np.concatenate([out, np.full_like(a, full)], axis=-1)
    if depth in ("u8", "u16"):
        return np.floor(result + 0.5).astype(arr.dtype)
    return result.astype(arr.dtype)


@pytest.mark.parametrize("depth", ["u8", "u16", "f16", "f32"])
@pytest.mark.parametrize("channels", [2, 4])
def test_flatten_on_white_matches_numpy(depth, channels):
    arr = random_frame(depth, channels)
    layout = FrameLayout(arr.shape[1], arr.shape[0], channels, depth, "bgra")
    got = np.frombuffer(flatten_on_white_py(arr.tobytes(), layout), dtype=arr.dtype)
    want = reference_flatten(arr, depth).reshape(-1)
    tol = 1e-3 if depth == "f16" else 1e-6 if depth == "f32" else 0
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=tol)
    assert got.reshape(arr.shape)[0, 1, :-1].tolist() == [FULL[depth]] * (channels - 1)


def test_flatten_u8_rgba_uses_qt_and_agrees_with_python():
    arr = random_frame("u8", 4, w=33, h=9, seed=3)  # odd width: QImage rows are padded
    layout = FrameLayout(33, 9, 4, "u8", "bgra")
    fast = np.frombuffer(flatten_on_white(arr.tobytes(), layout), np.uint8).astype(int)
    slow = np.frombuffer(flatten_on_white_py(arr.tobytes(), layout), np.uint8).astype(int)
    assert np.abs(fast - slow).max() <= 1  # QPainter rounds through premultiplied alpha
    assert (fast.reshape(-1, 4)[:, 3] == 255).all()


def test_flatten_leaves_frames_without_alpha():
    data = bytes(range(18))
    assert flatten_on_white(data, FrameLayout(3, 2, 3, "u8", "rgba")) == data


def test_clear_unselected():
    layout = FrameLayout(4, 2, 2, "u16", "bgra")
    data = bytes(range(1, 33))
    mask = bytes([255, 0, 127, 128, 0, 0, 200, 255])
    out = clear_unselected(data, layout, mask)
    px = [out[i * 4 : (i + 1) * 4] for i in range(8)]
    for i, m in enumerate(mask):
        assert px[i] == (data[i * 4 : (i + 1) * 4] if m >= 128 else bytes(4))
    with pytest.raises(ValueError, match="one per pixel"):
        clear_unselected(data, layout, mask[:-1])


@pytest.mark.parametrize("depth", ["u8", "u16", "f16", "f32"])
def test_to_rgba8(depth):
    arr = random_frame(depth, 4, seed=5)
    layout = FrameLayout(arr.shape[1], arr.shape[0], 4, depth, krita_rgba_order(depth))
    out = np.frombuffer(to_rgba8(arr.tobytes(), layout, "rgba"), np.uint8).reshape(arr.shape)
    if depth == "u8":
        want = arr
    elif depth == "u16":
        want = (arr >> 8).astype(np.uint8)
    else:
        want = np.floor(np.clip(arr.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
    if layout.order == "bgra":
        want = want[..., [2, 1, 0, 3]]
    np.testing.assert_array_equal(out, want)


def test_krita_orders():
    assert [krita_rgba_order(d) for d in ("u8", "u16", "f16", "f32")] == [
        "bgra",
        "bgra",
        "rgba",
        "rgba",
    ]


def srgb_reference(linear01: np.ndarray) -> np.ndarray:
    """The sRGB curve in float64 (IEC 61966-2-1), rounded to u8."""
    v = np.clip(linear01.astype(np.float64), 0.0, 1.0)
    enc = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.round(enc * 255.0).astype(np.int64)


@pytest.mark.parametrize("depth", ["u8", "u16", "f16", "f32"])
@pytest.mark.parametrize("order", ["rgba", "bgra"])
def test_srgb_rgba8_encodes_linear_light(depth, order):
    arr = random_frame(depth, 4, seed=3)
    if depth in ("f16", "f32"):
        arr[1, 0, :3] = [1.5, -0.2, 0.5]  # out of range floats are clipped
    layout = FrameLayout(7, 5, 4, depth, order)
    data = arr.tobytes()
    assert to_srgb_rgba8(data, layout, linear=False) == to_rgba8(data, layout, "rgba")
    got = np.frombuffer(to_srgb_rgba8(data, layout, linear=True), np.uint8).reshape(5, 7, 4)
    rgba = arr[..., [2, 1, 0, 3]] if order == "bgra" else arr
    linear = rgba[..., :3].astype(np.float64) / FULL[depth]
    # 16-bit steps before the curve: at most one u8 step off the exact curve.
    assert np.abs(got[..., :3].astype(np.int64) - srgb_reference(linear)).max() <= 1
    want_alpha = np.frombuffer(to_rgba8(data, layout, "rgba"), np.uint8).reshape(5, 7, 4)
    want_alpha = want_alpha[..., 3]
    np.testing.assert_array_equal(got[..., 3], want_alpha)  # alpha is not a colour
    if depth in ("f16", "f32"):
        # linear 0.5 is sRGB 188 (stored as r, g, b = 1.5, -0.2, 0.5 in memory order)
        assert list(got[1, 0, :3]) == ([255, 0, 188] if order == "rgba" else [188, 0, 255])


def test_linear_profiles():
    assert is_linear_profile("sRGB-elle-V2-g10.icc")
    assert is_linear_profile("scRGB (linear)")
    assert not is_linear_profile("sRGB-elle-V2-srgbtrc.icc")
    assert not is_linear_profile("")
