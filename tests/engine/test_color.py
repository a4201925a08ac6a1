"""The color module: dtype handling, Lab round trips, CIEDE2000, hex helpers."""

import numpy as np
import pytest
from skimage.color import rgb2lab

from inkhue_engine import color


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)])
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
    assert np.abs(lab - rgb2lab(rgb)).max() < 0.7  # docs/FACTS.md: cv2 vs skimage within 0.6
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


#: The 34 pairs of Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula:
#: implementation notes, supplementary test data, and mathematical observations", Color
#: Research and Application 30(1), 2005, Table 1: L1 a1 b1, L2 a2 b2, published dE00 (4 d.p.).
#: They exercise the hue-angle wrap-arounds, the mean-hue cases and the rotation term.
SHARMA_2005 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def test_delta_e_2000_matches_the_published_table():
    table = np.array(SHARMA_2005)
    assert table.shape == (34, 7)
    got = color.delta_e_2000(table[:, :3], table[:, 3:6])
    # published to 4 decimals: within half a unit of the last one (+ float32 rounding)
    np.testing.assert_allclose(got, table[:, 6], rtol=0, atol=5e-5 + 1e-6)
    # symmetric in its arguments (the table lists pairs 7 and 8 both ways)
    np.testing.assert_allclose(color.delta_e_2000(table[:, 3:6], table[:, :3]), got, atol=1e-5)


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
    values = np.concatenate(
        near + [rng.random(200_000, np.float32), np.float32([0.0, 1.0, -0.5, 1.5, -0.0])]
    )
    values = values[: values.size // 3 * 3].reshape(-1, 1, 3)
    expected = np.rint(np.clip(values, 0.0, 1.0) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(color.from_float01(values, np.uint8), expected)
    np.testing.assert_array_equal(color.from_float01(values[:, 0], np.uint8), expected[:, 0])
