"""The color module: dtype handling, Lab round trips, CIEDE2000, hex helpers."""

import numpy as np
import pytest
from skimage.color import rgb2lab

from inkhue_engine import color


@pytest.mark.parametrize(
    "dtype,top", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)]
)
def test_float01_round_trip_keeps_values(dtype, top):
    rng = np.random.default_rng(0)
    img = (rng.random((7, 5, 3)) * top).astype(dtype)
    back = color.from_float01(color.to_float01(img), dtype)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, img)


def test_bit_depth_comes_from_dtype_not_values():
    # a dark uint16 image whose values all fit in 0..255 is still 16-bit
    img = np.full((2, 2), 200, np.uint16)
    assert color.to_float01(img).max() == pytest.approx(200 / 65535)


def test_unsupported_dtype_is_refused():
    with pytest.raises(ValueError, match="int32"):
        color.to_float01(np.zeros((2, 2), np.int32))


def test_lab_matches_scikit_image_and_round_trips():
    rng = np.random.default_rng(1)
    rgb = rng.random((16, 16, 3)).astype(np.float32)
    lab = color.rgb_to_lab(rgb)
    assert np.abs(lab - rgb2lab(rgb)).max() < 0.7  # STACK.md: cv2 vs skimage within 0.6
    np.testing.assert_allclose(color.lab_to_rgb(lab), rgb, atol=2e-3)


def test_gray_l_round_trip():
    gray = np.linspace(0, 1, 50, dtype=np.float32).reshape(5, 10)
    L = color.gray_to_l(gray)
    assert L.min() == pytest.approx(0, abs=1e-3) and L.max() == pytest.approx(100, abs=1e-2)
    rgb = np.repeat(gray[..., None], 3, 2)
    np.testing.assert_allclose(color.rgb_to_gray01(rgb), gray, atol=2e-3)


def test_lab_to_rgb_clips_out_of_gamut():
    lab = np.array([[[50, 127, -127]]], np.float32)
    rgb = color.lab_to_rgb(lab)
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_delta_e_2000_reference_pair():
    # Sharma, Wu & Dalal (2005) test data, pair 1: dE00 = 2.0425
    a = np.array([50.0, 2.6772, -79.7751])
    b = np.array([50.0, 0.0, -82.7485])
    assert float(color.delta_e_2000(a, b)) == pytest.approx(2.0425, abs=1e-3)


def test_hex_round_trip():
    hexes = ["#ff0000", "#00ff00", "#123456", "#000000", "#ffffff"]
    assert color.lab_to_hex(color.hex_to_lab(hexes)) == hexes


def test_on_white_composites_alpha_and_expands_gray():
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = [255, 0, 0, 255]  # opaque red stays red
    rgba[0, 1] = [0, 0, 0, 0]  # transparent black is paper
    np.testing.assert_allclose(color.on_white(rgba), [[[1, 0, 0], [1, 1, 1]]])
    gray_alpha = np.array([[[0.0, 0.5]]], np.float32)
    np.testing.assert_allclose(color.on_white(gray_alpha), [[[0.5, 0.5, 0.5]]])
    with pytest.raises(ValueError, match="5 channels"):
        color.on_white(np.zeros((1, 1, 5), np.uint8))


def test_from_float01_uint8_is_float32_product_rounded_half_to_even():
    # the fast uint8 path (one OpenCV pass) must give numpy's numbers, also next to the
    # rounding boundaries (k + 0.5) / 255 where float32 products round either way
    k = np.arange(256, dtype=np.float64)
    centres = ((k + 0.5) / 255).astype(np.float32)
    near = [centres]
    up, down = centres.copy(), centres.copy()
    for _ in range(40):
        up = np.nextafter(up, np.float32(2))
        down = np.nextafter(down, np.float32(-1))
        near += [up, down]
    rng = np.random.default_rng(0)
    values = np.concatenate(near + [rng.random(200_000, np.float32),
                                    np.float32([0.0, 1.0, -0.5, 1.5, -0.0])])
    values = values[: values.size // 3 * 3].reshape(-1, 1, 3)
    expected = np.rint(np.clip(values, 0.0, 1.0) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(color.from_float01(values, np.uint8), expected)
    np.testing.assert_array_equal(color.from_float01(values[:, 0], np.uint8), expected[:, 0])
