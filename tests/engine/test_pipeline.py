"""The frame pipeline: layouts, dtypes, sizes, L fidelity, alpha, regions, hints, palettes.

Besides the tiny exported generators (tests/conftest.py), some tests use "forced"
models built here with onnx.helper: their output is an affine function of chosen input
channels (e.g. ab = hint ab + offset), so what the pipeline does around the model can
be checked exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine import model as M
from inkhue_engine import pipeline as P
from inkhue_engine.color import from_float01, hex_to_lab, lab_to_rgb, rgb_to_lab, to_float01
from inkhue_engine.errors import InputError
from inkhue_engine.pipeline import ColorizeOptions

sys.path.insert(0, str(Path(__file__).parent))
from forced_models import save_inkhue_graph  # noqa: E402

onnx = pytest.importorskip("onnx")


def forced_model(path, task, start, scale, offset, multiple_of=8, train_size=32):
    """An InkHue model whose output = input[:, start:start+C] * scale + offset."""
    from onnx import TensorProto, helper

    name, c = M.TASK_OUTPUTS[task]
    consts = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [start]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [start + c]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("scale", TensorProto.FLOAT, [1, c, 1, 1], list(scale)),
        helper.make_tensor("offset", TensorProto.FLOAT, [1, c, 1, 1], list(offset)),
    ]
    nodes = [
        helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["m"]),
        helper.make_node("Add", ["m", "offset"], [name]),
    ]
    graph = helper.make_graph(
        nodes,
        "forced",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", c, "H", "W"])],
        initializer=consts,
    )
    save_inkhue_graph(graph, path, task, f"forced-{task}", multiple_of, train_size)
    return M.Model(path, "cpu")


@pytest.fixture(scope="module")
def gray_tiny(grayscale_model):
    return M.load_model(grayscale_model, "cpu")


@pytest.fixture(scope="module")
def line_tiny(lineart_model):
    return M.load_model(lineart_model, "cpu")


@pytest.fixture(scope="module")
def hint_echo(tmp_path_factory):
    """Grayscale model: ab = hint ab + (20, -10)."""
    return forced_model(
        tmp_path_factory.mktemp("f") / "echo.onnx", "grayscale", 1, (1, 1), (20, -10)
    )


@pytest.fixture(scope="module")
def l_driven(tmp_path_factory):
    """Grayscale model whose a varies with L: ab = (0.5 L - 25, hint a)."""
    return forced_model(
        tmp_path_factory.mktemp("f") / "ldriven.onnx", "grayscale", 0, (0.5, 1), (-25, 0)
    )


@pytest.fixture(scope="module")
def line_echo(tmp_path_factory):
    """Line-art model: Lab = (0.6 L, hint a + 30, hint b - 20)."""
    return forced_model(
        tmp_path_factory.mktemp("f") / "lecho.onnx", "lineart", 0, (0.6, 1, 1), (0, 30, -20)
    )


def cel(h=60, w=80, gray=True):
    """Line art: white paper, a black frame line splitting left and right, a circle."""
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.line(img, (w // 2, 0), (w // 2, h - 1), (0, 0, 0), 2)
    cv2.circle(img, (w // 4, h // 2), min(h, w) // 6, (0, 0, 0), 1, cv2.LINE_AA)
    return img[..., 0].copy() if gray else img


def shaded(h=60, w=80):
    """A grayscale cartoon frame: four flat tones with a vertical gradient each, split by
    dark lines into quadrants (each region ~1/4 of the frame)."""
    yy, xx = np.mgrid[0:h, 0:w]
    tone = np.where(xx < w // 2, np.where(yy < h // 2, 90, 120), np.where(yy < h // 2, 170, 140))
    img = tone.astype(np.float32) + (yy % (h // 2)) * 1.5
    img[:, w // 2 - 1 : w // 2 + 1] = 10
    img[h // 2 - 1 : h // 2 + 1, :] = 10
    return np.clip(img, 0, 255).astype(np.uint8)


def make_frame(layout, dtype, h=23, w=31, seed=0):
    rng = np.random.default_rng(seed)
    shape = {"HW": (h, w), "HW1": (h, w, 1), "GA": (h, w, 2), "RGB": (h, w, 3), "RGBA": (h, w, 4)}[
        layout
    ]
    f01 = rng.random(shape).astype(np.float32)
    return f01 if dtype == np.float32 else from_float01(f01, dtype)


def out_l(out):
    return rgb_to_lab(to_float01(out[..., :3]))[..., 0]


def in_l(frame):
    f = to_float01(frame)
    if f.ndim == 3 and f.shape[2] in (1, 2):
        f = f[..., 0]
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=2)
    return rgb_to_lab(f[..., :3])[..., 0]


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("layout", ["HW", "HW1", "GA", "RGB", "RGBA"])
def test_layouts_dtypes_alpha_and_l(gray_tiny, layout, dtype):
    frame = make_frame(layout, dtype)
    out = P.colorize_frame(frame, gray_tiny)
    has_alpha = layout in ("GA", "RGBA")
    assert out.dtype == frame.dtype
    assert out.shape == (23, 31, 4 if has_alpha else 3)
    if has_alpha:
        np.testing.assert_array_equal(out[..., 3], frame[..., -1])
    # the frame's own L survives, up to rounding to the dtype and the ~0.23 L precision
    # of OpenCV's float Lab conversion (measured) that this check itself uses
    tol = {np.uint8: 1.0, np.uint16: 0.6, np.float32: 0.6}[dtype]
    assert np.abs(out_l(out) - in_l(frame)).max() <= tol


@pytest.mark.parametrize("task", ["grayscale", "lineart"])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (37, 53), (8, 1), (2, 300)])
def test_any_size(gray_tiny, line_tiny, task, size):
    model = gray_tiny if task == "grayscale" else line_tiny
    frame = make_frame("RGBA", np.uint8, *size)
    out = P.colorize_frame(frame, model)
    assert out.shape == (*size, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], frame[..., 3])


def test_input_is_not_modified(gray_tiny):
    frame = make_frame("RGBA", np.float32)
    copy = frame.copy()
    P.colorize_frame(frame, gray_tiny, hints=make_frame("RGBA", np.uint8, seed=1))
    np.testing.assert_array_equal(frame, copy)


@pytest.mark.parametrize(
    "frame, pattern",
    [
        (np.zeros((4, 4), np.int32), "unsupported pixel type int32"),
        (np.zeros((4, 4), np.float64), "unsupported pixel type float64"),
        (np.zeros((4, 4, 5), np.uint8), r"unsupported frame shape \(4, 4, 5\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), "unsupported frame shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
    ],
)
def test_bad_frames(gray_tiny, frame, pattern):
    with pytest.raises(InputError, match=pattern):
        P.prepare_frame(frame, gray_tiny.info)


def test_bad_hints(gray_tiny):
    frame = make_frame("RGB", np.uint8)
    with pytest.raises(InputError, match="hint image is 30x20 but the frame is 31x23"):
        P.prepare_frame(frame, gray_tiny.info, hints=np.zeros((20, 30, 4), np.uint8))
    with pytest.raises(InputError, match="must be RGBA"):
        P.prepare_frame(frame, gray_tiny.info, hints=np.zeros((23, 31, 3), np.uint8))
    with pytest.raises(InputError, match="hints must be"):
        P.prepare_frame(frame, gray_tiny.info, hints=(np.zeros((23, 31)), np.zeros((23, 31))))
    with pytest.raises(InputError, match="hints must be None"):
        P.prepare_frame(frame, gray_tiny.info, hints="red")


def test_options_validation():
    for bad in (0, -1, float("nan"), "x"):
        with pytest.raises(InputError, match="detail"):
            ColorizeOptions(detail=bad)
    with pytest.raises(InputError, match="output"):
        ColorizeOptions(output="lines")
    with pytest.raises(InputError, match="not a hex color"):
        ColorizeOptions(palette=("#ff0000", "blue"))
    with pytest.raises(InputError, match="empty"):
        ColorizeOptions(palette=())
    assert ColorizeOptions(palette=["#FF0000"]).palette == ("#ff0000",)


# --------------------------------------------------------------------------- sizes


def test_working_size_rules(gray_tiny):
    info = gray_tiny.info  # train_size 64, multiple_of 8
    opts = ColorizeOptions()
    assert P.working_size((1080, 1920), info, opts) == (64, 114)
    assert P.working_size((1080, 1920), info, ColorizeOptions(detail=2)) == (128, 228)
    assert P.working_size((40, 50), info, ColorizeOptions(detail=4)) == (40, 50)  # no upscale
    bounded = P.working_size(
        (1080, 1920), info, ColorizeOptions(detail=10, max_working_pixels=10_000)
    )
    assert bounded[0] * bounded[1] <= 10_000 and bounded[0] > 60
    p = P.prepare_frame(np.zeros((1080, 1920), np.uint8), info)
    assert p.input.shape == (4, 64, 120) and p.input.dtype == np.float32
    assert P.prepare_frame(np.zeros((1, 1), np.uint8), info).input.shape == (4, 8, 8)


@pytest.mark.slow
def test_big_frame_has_a_bounded_working_size(gray_tiny):
    frame = np.random.default_rng(0).integers(0, 65535, (3000, 4000), dtype=np.uint16)
    opts = ColorizeOptions(detail=100, max_working_pixels=300_000)
    p = P.prepare_frame(frame, gray_tiny.info, options=opts)
    assert p.work_size[0] * p.work_size[1] <= 300_000
    out = P.finish_frame(p, P.run_prepared(gray_tiny, [p])[0])
    assert out.shape == (3000, 4000, 3) and out.dtype == np.uint16
    assert np.abs(out_l(out) - in_l(frame)).max() <= 0.6


# --------------------------------------------------------------------------- batching


def test_run_prepared_groups_by_size_and_keeps_order(gray_tiny, monkeypatch):
    frames = [make_frame("HW", np.uint8, 20, 30, seed=i) for i in range(3)]
    frames.insert(1, make_frame("HW", np.uint8, 50, 17, seed=9))
    one_pass = ColorizeOptions(mirror_average=False)
    prepared = [P.prepare_frame(f, gray_tiny.info, options=one_pass) for f in frames]
    single = [gray_tiny.run(p.input[None])[0] for p in prepared]
    calls = []
    real_run = M.Model.run
    monkeypatch.setattr(M.Model, "run", lambda self, b: calls.append(b.shape) or real_run(self, b))
    preds = P.run_prepared(gray_tiny, prepared, batch_size=2)
    assert sorted(calls) == sorted([(2, 4, 24, 32), (1, 4, 24, 32), (1, 4, 56, 24)])
    for got, want in zip(preds, single, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    with pytest.raises(InputError, match="prepared for task 'grayscale'"):
        P.run_prepared(forced_line_model_stub(), prepared)


def test_mirror_average_is_the_mean_of_the_frame_and_its_mirror(gray_tiny, monkeypatch):
    frames = [make_frame("HW", np.uint8, 20, 30, seed=i) for i in range(3)]
    prepared = [P.prepare_frame(f, gray_tiny.info) for f in frames]  # on by default
    assert all(p.options.mirror_average for p in prepared)
    real_run = M.Model.run
    want = []
    for p in prepared:
        x = p.input[None]
        mirrored = real_run(gray_tiny, np.ascontiguousarray(x[..., ::-1]))[0][..., ::-1]
        want.append(0.5 * (real_run(gray_tiny, x)[0] + mirrored))
    calls = []
    monkeypatch.setattr(M.Model, "run", lambda self, b: calls.append(b.shape) or real_run(self, b))
    preds = P.run_prepared(gray_tiny, prepared, batch_size=4)
    # a call of at most batch_size inputs: two frames and their mirrors, then one and its
    assert calls == [(4, 4, 24, 32), (2, 4, 24, 32)]
    for got, w in zip(preds, want, strict=True):
        np.testing.assert_allclose(got, w, atol=1e-4)
    # frames with and without it in one list: each gets its own kind of call
    mixed = [prepared[0], P.prepare_frame(frames[1], gray_tiny.info, options=ColorizeOptions(
        mirror_average=False))]  # fmt: skip
    calls.clear()
    got = P.run_prepared(gray_tiny, mixed, batch_size=1)
    assert sorted(calls) == [(1, 4, 24, 32), (2, 4, 24, 32)]
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)
    np.testing.assert_allclose(got[1], real_run(gray_tiny, mixed[1].input[None])[0], atol=1e-4)


@pytest.mark.parametrize("task", ["grayscale", "lineart"])
def test_mirror_average_colors_a_mirrored_frame_as_the_mirror_of_its_colors(
    task, gray_tiny, line_tiny
):
    model = gray_tiny if task == "grayscale" else line_tiny
    # 40 x 56: multiples of 8 below the tiny model's train size, so no scaling or padding
    frame = make_frame("HW", np.uint8, 40, 56, seed=3) if task == "grayscale" else cel(40, 56)
    for mirror, symmetric in ((True, True), (False, False)):
        opts = ColorizeOptions(regions=False, mirror_average=mirror)
        out = to_float01(P.colorize_frame(frame, model, None, opts))
        flipped = to_float01(P.colorize_frame(np.ascontiguousarray(frame[:, ::-1]), model,
                                              None, opts))  # fmt: skip
        gap = np.abs(flipped - out[:, ::-1]).max()
        # a freshly initialized generator is not symmetric: the test can fail
        assert (gap < 2e-3) if symmetric else (gap > 1e-2), (mirror, gap)


def forced_line_model_stub():
    class Stub:
        info = type("I", (), {"task": "lineart", "name": "stub"})()

    return Stub()


def test_finish_rejects_a_wrong_prediction(gray_tiny):
    p = P.prepare_frame(make_frame("HW", np.uint8), gray_tiny.info)
    with pytest.raises(InputError, match="does not match"):
        P.finish_frame(p, np.zeros((3, *p.input.shape[1:]), np.float32))


# --------------------------------------------------------------------------- hints


def test_hints_spread_over_their_region_before_the_model(hint_echo):
    frame = cel()
    hints = np.zeros((*frame.shape, 4), np.uint8)
    hints[10:12, 60:62] = (200, 30, 30, 255)  # one dot in the right half
    own_region = ColorizeOptions(adopt_hints=False)  # the left half is of the same white
    p = P.prepare_frame(frame, hint_echo.info, hints=hints, options=own_region)
    mask = p.input[3]  # working size == frame size here (short side 60 > 32: scaled)
    h, w = p.work_size
    assert mask[:h, int(w * 0.6) :].mean() > 0.95  # right half hinted
    assert mask[:h, : int(w * 0.4)].max() == 0  # left half not
    # adopting gray levels: the circle's white inside is the hint's too; the left half
    # around it is as white but too large (above CONSOLIDATE_MAX_FRACTION) to adopt
    adopted = P.prepare_frame(frame, hint_echo.info, hints=hints).input[3]
    assert adopted[h // 2 - 2 : h // 2 + 3, w // 4 - 2 : w // 4 + 3].min() == 1
    assert adopted[:h, :3].max() == 0 and adopted[:h, int(w * 0.6) :].mean() > 0.95
    no_regions = P.prepare_frame(
        frame, hint_echo.info, hints=hints, options=ColorizeOptions(regions=False)
    )
    assert 0 < no_regions.input[3].sum() <= 4


def test_the_model_sees_the_region_hint_colors_that_finishing_uses(gray_tiny):
    # (ab, mask) hints may be soft: a region's color is the mask-weighted mean of its
    # hints, the same in the model's input as in finishing (both read _region_hints)
    frame = np.full((40, 56), 128, np.uint8)  # one region; no scaling at this size
    ab = np.zeros((40, 56, 2), np.float32)
    mask = np.zeros((40, 56), np.float32)
    ab[5, 5], mask[5, 5] = (40.0, 0.0), 1.0
    ab[30, 50], mask[30, 50] = (0.0, 40.0), 0.25
    opts = ColorizeOptions(adopt_hints=False)
    p = P.prepare_frame(frame, gray_tiny.info, hints=(ab, mask), options=opts)
    assert p.work_size == (40, 56)
    [region] = np.flatnonzero(p.region_hinted)
    want = np.array([40.0 * 1.0, 40.0 * 0.25]) / 1.25  # weighted, not (20, 20)
    np.testing.assert_allclose(p.region_hint_ab[region], want, atol=1e-4)
    assert (p.input[3] == 1).all()
    np.testing.assert_allclose(p.input[1], want[0], atol=1e-3)
    np.testing.assert_allclose(p.input[2], want[1], atol=1e-3)


def test_hints_change_the_output_in_the_hinted_region(hint_echo):
    frame = shaded()  # mid tones: room for chroma inside the sRGB gamut
    hints = np.zeros((*frame.shape, 4), np.uint8)
    hints[10:12, 60:62] = (200, 30, 30, 255)  # top-right quadrant
    plain = P.colorize_frame(frame, hint_echo)
    # the bottom-right quadrant's gray is near the hinted one's: no adopting here
    own = ColorizeOptions(adopt_hints=False)
    hinted = P.colorize_frame(frame, hint_echo, hints=hints, options=own)
    lab_plain = rgb_to_lab(to_float01(plain))
    lab_hint = rgb_to_lab(to_float01(hinted))
    hinted_q = np.s_[3:27, 44:77]
    other_q = np.s_[33:57, 44:77]
    # the hinted region moved towards the hint's red (a up, as far as the gamut allows at
    # the frame's L); the other regions did not change at all
    assert lab_hint[hinted_q][..., 1].mean() > lab_plain[hinted_q][..., 1].mean() + 8
    np.testing.assert_array_equal(hinted[other_q], plain[other_q])
    np.testing.assert_array_equal(hinted[3:27, 3:37], plain[3:27, 3:37])


def test_small_hints_survive_downscaling(hint_echo):
    frame = np.full((600, 800), 128, np.uint8)  # one region, 18x smaller working size
    hints = np.zeros((600, 800, 4), np.uint8)
    hints[300:303, 400:403] = (255, 0, 0, 255)
    p = P.prepare_frame(frame, hint_echo.info, hints=hints, options=ColorizeOptions(regions=False))
    assert p.input[3].sum() >= 1
    y, x = np.argwhere(p.input[3] > 0)[0]
    assert p.input[1, y, x] > 40  # the hint's full a, not diluted by its neighbours


def test_thin_lines_of_a_big_line_art_frame_reach_the_model_dark(line_tiny, gray_tiny):
    s = line_tiny.info.train_size  # the working size of a square frame
    frame = np.full((8 * s, 8 * s), 255, np.uint8)  # an 8x reduction
    frame[:, 4 * s] = 0  # 1 px ink lines
    frame[6 * s, :] = 0
    p = P.prepare_frame(frame, line_tiny.info, options=ColorizeOptions(regions=False))
    assert p.work_size == (s, s)
    lw = p.input[0, :s, :s]
    # at least half ink where the line is (fully dark where it falls inside one block of
    # the reduction), not the ~88 L that an 8x area average leaves of a 1 px line
    dark = lw < 60
    assert 1 <= (dark.mean(axis=0) > 0.5).sum() <= 2  # the vertical line, ~1 px wide
    assert 1 <= (dark.mean(axis=1) > 0.5).sum() <= 2  # the horizontal one
    assert np.all(lw[: s // 2, : s // 4] > 99)  # paper stays paper
    # grayscale frames keep their plain area average (the shading is the content)
    g = P.prepare_frame(frame, gray_tiny.info, options=ColorizeOptions(regions=False))
    assert g.input[0, :s, :s].min() > 70  # 1/8 ink, 2/8 where the lines cross
    # below a 2x reduction the model sees the frame as it is, area-averaged
    small = np.full((3 * s // 2, 3 * s // 2), 255, np.uint8)
    small[:, s // 2] = 0
    q = P.prepare_frame(small, line_tiny.info, options=ColorizeOptions(regions=False))
    plain = cv2.resize(P._read_frame(small, True)[0], (s, s), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(q.input[0, :s, :s], plain, atol=1e-4)


# --------------------------------------------------------------------------- grayscale


def test_grayscale_regions_get_one_hue_but_keep_shading(l_driven):
    frame = shaded()
    out = P.colorize_frame(frame, l_driven)
    lab = rgb_to_lab(to_float01(out))
    region = lab[3:27, 3:37]
    # without consolidation a would follow L (0.5 L - 25) along the gradient
    assert np.ptp(region[..., 1]) < 1.0
    assert np.ptp(region[..., 0]) > 5  # the shading stays
    off = P.colorize_frame(frame, l_driven, options=ColorizeOptions(regions=False))
    assert np.ptp(rgb_to_lab(to_float01(off))[3:27, 3:37, 1]) > 3


def test_grayscale_line_pixels_are_finished_as_their_nearest_region():
    """An edge band (label 0) takes the label and predicted ab of the nearest pixel off it,
    so it is finished as that region: not left with the model's own value."""
    labels = np.array([[1, 1, 0, 0, 0, 2, 2]], np.int32)
    ab = np.arange(14, dtype=np.float32).reshape(1, 7, 2)
    got_labels, got_ab = P._lines_as_neighbours(labels, ab.copy())
    # the middle pixel is as near to either side
    assert got_labels[0, :3].tolist() == [1, 1, 1] and got_labels[0, 4:].tolist() == [2, 2, 2]
    assert np.array_equal(got_ab[0, 2], ab[0, 1]) and np.array_equal(got_ab[0, 4], ab[0, 5])
    side = {1: ab[0, 1], 2: ab[0, 5]}[int(got_labels[0, 3])]
    assert np.array_equal(got_ab[0, 3], side)
    assert np.array_equal(got_ab[0, [0, 1, 5, 6]], ab[0, [0, 1, 5, 6]])
    # no lines, or nothing but lines: unchanged
    square = ab[0, :4].reshape(2, 2, 2)
    for same in (np.ones((2, 2), np.int32), np.zeros((2, 2), np.int32)):
        got = P._lines_as_neighbours(same, square.copy())
        assert got[0] is same and np.array_equal(got[1], square)


def test_a_region_covering_most_of_the_frame_is_not_flattened(l_driven):
    yy = np.linspace(40, 220, 80)[:, None]
    frame = np.repeat(yy, 100, axis=1).astype(np.uint8)  # a smooth photo-like gradient
    out = P.colorize_frame(frame, l_driven)
    a = rgb_to_lab(to_float01(out))[..., 1]
    assert np.ptp(a) > 10


def test_a_hinted_large_region_is_anchored_to_its_hint_and_keeps_its_shading(l_driven):
    yy = np.linspace(40, 220, 80)[:, None]
    frame = np.repeat(yy, 100, axis=1).astype(np.uint8)  # one region: the whole frame
    hints = np.zeros((80, 100, 4), np.uint8)
    hints[38:41, 48:51] = (170, 120, 120, 255)  # a muted red: in gamut at every L
    want_a = rgb_to_lab(np.array([[[170, 120, 120]]], np.float32) / 255)[0, 0, 1]
    on = rgb_to_lab(to_float01(P.colorize_frame(frame, l_driven, hints)))[..., 1]
    off = rgb_to_lab(
        to_float01(P.colorize_frame(frame, l_driven, hints, ColorizeOptions(anchor_hints=False)))
    )[..., 1]
    # the model's a ignores the hint (0.5 L - 25): only anchoring brings the mean to it
    assert abs(on[5:-5, 5:-5].mean() - want_a) < 4 < abs(off[5:-5, 5:-5].mean() - want_a)
    assert np.ptp(on) > 10  # the per-pixel variation stays


def test_grayscale_palette_lock(l_driven):
    palette = ("#d02020", "#2040d0")
    frame = shaded()
    out = P.colorize_frame(frame, l_driven, options=ColorizeOptions(palette=palette))
    lab = rgb_to_lab(to_float01(out))
    pal = hex_to_lab(list(palette))
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    pal_hue = np.degrees(np.arctan2(pal[:, 2], pal[:, 1]))
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    # pixels of L < 10 (the drawn lines) carry too little color in 8 bits to measure a hue
    colored = (chroma > 5) & (lab[..., 0] > 10)
    assert colored.mean() > 0.5
    diff = np.abs((hue[colored][:, None] - pal_hue[None, :] + 180) % 360 - 180).min(axis=1)
    assert diff.max() < 3.0  # every colored pixel carries a palette hue
    assert np.abs(lab[..., 0] - in_l(frame)).max() <= 1.0  # and the frame's L


def _palette_entry_per_pixel(out, palette):
    """Index of the palette color whose hue each pixel carries (-1: too gray to tell)."""
    lab = rgb_to_lab(to_float01(out))
    pal = hex_to_lab(list(palette))
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    pal_hue = np.degrees(np.arctan2(pal[:, 2], pal[:, 1]))
    diff = np.abs((hue[..., None] - pal_hue + 180) % 360 - 180)
    idx = diff.argmin(axis=-1)
    idx[np.hypot(lab[..., 1], lab[..., 2]) < 5] = -1
    return idx


@pytest.mark.parametrize("regions", [True, False])
def test_grayscale_palette_lock_snaps_a_mottled_region_as_one(l_driven, regions):
    """A large, softly mottled background (one region, no L edges) whose predicted a
    wanders across the border between two palette colors: the lock gives it ONE color
    (the region's), not blotches of both with specks. Per pixel it would take both."""
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (90, 120)).astype(np.float32), (0, 0), 6)
    L = 50 + 6 * noise / np.abs(noise).max()  # L 44..56: the model's a = 0.5 L - 25 = -3..3
    lab = np.zeros((90, 120, 3), np.float32)
    lab[..., 0] = L
    frame = from_float01(lab_to_rgb(lab)[..., 0], np.uint8)
    palette = ("#c86464", "#50a050")  # a muted red (a > 0) and a green (a < 0)
    p = P.prepare_frame(frame, l_driven.info, options=ColorizeOptions(regions=True))
    assert p.labels.max() == 1 and (p.labels == 1).all()  # one region, no lines
    out = P.colorize_frame(
        frame, l_driven, options=ColorizeOptions(palette=palette, regions=regions)
    )
    entries = _palette_entry_per_pixel(out, palette)
    assert (entries >= 0).all()
    assert len(np.unique(entries)) == 1
    assert np.abs(rgb_to_lab(to_float01(out))[..., 0] - in_l(frame)).max() <= 1.0


def test_grayscale_palette_lock_takes_the_regions_hint(l_driven):
    """A hinted region snaps its hint's color, whatever the model predicts there."""
    frame = shaded()
    palette = ("#d02020", "#2040d0")
    hints = np.zeros((*frame.shape, 4), np.uint8)
    hints[10:12, 60:62] = (60, 80, 200, 255)  # blue, in the top-right region
    # without adopting: the bottom-right quadrant's gray is near the hinted one's
    opts = ColorizeOptions(palette=palette, anchor_hints=False, adopt_hints=False)
    plain = _palette_entry_per_pixel(P.colorize_frame(frame, l_driven, options=opts), palette)
    hinted = _palette_entry_per_pixel(P.colorize_frame(frame, l_driven, hints, opts), palette)
    top_right = (slice(3, 27), slice(44, 77))
    assert (plain[top_right] == 0).all()  # the model's a there is > 0: red
    assert (hinted[top_right] == 1).all()
    np.testing.assert_array_equal(hinted[33:57, 44:77], plain[33:57, 44:77])  # others stay


# --------------------------------------------------------------------------- line art


def test_lineart_one_color_per_region_lines_on_top(line_tiny):
    frame = cel()
    out = P.colorize_frame(frame, line_tiny)
    fill = P.colorize_frame(frame, line_tiny, options=ColorizeOptions(output="fill"))
    lines = frame < 60
    # the lines stay as dark as drawn (multiply)
    assert out[lines].max() <= frame[lines].max() + 1
    # the fill has no lines: every line pixel takes the color of a region
    region_colors = {tuple(px) for px in fill[~lines].tolist()}
    assert {tuple(px) for px in fill[lines].tolist()} <= region_colors
    assert len(region_colors) <= P.prepare_frame(frame, line_tiny.info).labels.max()
    paper = ~cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    np.testing.assert_array_equal(out[paper], fill[paper])
    right = fill[5:55, 45:75].reshape(-1, 3)
    assert len(np.unique(right, axis=0)) == 1  # one color per region


def test_lineart_antialiased_lines_are_kept(line_echo):
    frame = cel()
    out = P.colorize_frame(frame, line_echo)
    fill = P.colorize_frame(frame, line_echo, options=ColorizeOptions(output="fill"))
    expect = np.rint(to_float01(fill) * (to_float01(frame)[..., None]) * 255)
    assert np.abs(out.astype(int) - expect.astype(int)).max() <= 1


def test_lineart_hint_color_fills_its_region(line_echo):
    frame = cel(gray=False)
    hints = np.zeros((*frame.shape[:2], 4), np.uint8)
    hints[20:22, 60:62] = (30, 160, 60, 255)
    fill = P.colorize_frame(frame, line_echo, hints=hints, options=ColorizeOptions(output="fill"))
    right = fill[5:55, 45:75].reshape(-1, 3)
    assert np.abs(right.astype(int) - [30, 160, 60]).max() <= 2
    assert np.abs(fill[30, 5].astype(int) - [30, 160, 60]).max() > 40  # left side not


def test_a_lineart_frames_hint_colors_are_chosen_once_when_prepared(line_echo, hint_echo):
    frame = cel(gray=False)
    hints = np.zeros((*frame.shape[:2], 4), np.uint8)
    hints[20:22, 60:62] = (30, 160, 60, 255)  # right half
    hints[29:31, 19:21] = (31, 161, 61, 255)  # inside the circle: the same color within merge
    hints[4:6, 2:4] = (200, 40, 40, 255)  # left half outside the circle: another color
    p = P.prepare_frame(frame, line_echo.info, hints)
    assert p.region_hinted.sum() == 3
    assert p.hint_donors is not None and p.hint_donors.size == 2
    assert set(p.hint_donors.tolist()) < set(p.region_hinted.nonzero()[0].tolist())
    # none without hints, and none for grayscale (only line-art regions adopt hint colors)
    assert P.prepare_frame(frame, line_echo.info).hint_donors is None
    assert P.prepare_frame(frame, hint_echo.info, hints).hint_donors is None


def test_lineart_palette_lock_outputs_only_palette_colors(line_tiny, line_echo):
    palette = ("#ff8800", "#3366cc", "#ffffff", "#224422")
    rgb = {tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in palette}
    frame = cel(gray=False)
    hints = np.zeros((*frame.shape[:2], 4), np.uint8)
    hints[20:22, 60:62] = (30, 160, 60, 255)
    for model in (line_tiny, line_echo):
        for regions in (True, False):
            opts = ColorizeOptions(palette=palette, output="fill", regions=regions)
            fill = P.colorize_frame(frame, model, hints=hints, options=opts)
            assert {tuple(px) for px in fill.reshape(-1, 3).tolist()} <= rgb
            # by region even without the regions option: one color per region
            assert len(np.unique(fill[5:55, 45:75].reshape(-1, 3), axis=0)) == 1
            out = P.colorize_frame(
                frame, model, hints=hints, options=ColorizeOptions(palette=palette, regions=regions)
            )
            paper = frame[..., 0] == 255
            assert {tuple(px) for px in out[paper].tolist()} <= rgb


def test_transparent_line_layer_is_read_over_white(line_echo):
    lines = cel()
    rgba = np.zeros((*lines.shape, 4), np.uint8)  # Krita's empty pixels: (0, 0, 0, 0)
    rgba[..., 3] = 255 - lines  # black strokes on a transparent layer
    p = P.prepare_frame(rgba, line_echo.info)
    assert p.L[5, 5] > 99  # paper, not black
    assert p.labels.max() >= 3  # the regions between the strokes


# --------------------------------------------------------------------------- baseline


def test_flat_fill_frame_grayscale_and_lineart():
    frame = shaded()
    hints = np.zeros((*frame.shape, 4), np.uint8)
    hints[10:12, 60:62] = (40, 90, 220, 255)
    out = P.flat_fill_frame(frame, "grayscale", hints)
    lab = rgb_to_lab(to_float01(out))
    assert lab[3:27, 44:77, 2].mean() < -20  # the hinted region is blue
    assert np.abs(lab[33:57, 44:77, 1:]).max() < 1  # unhinted regions stay gray
    assert np.abs(lab[..., 0] - in_l(frame)).max() <= 1.0

    line = cel(gray=False)
    out = P.flat_fill_frame(line, "lineart", hints)
    assert np.abs(out[30, 70].astype(int) - [40, 90, 220]).max() <= 2
    assert (out[30, 5] >= 253).all()  # unhinted paper stays white
    assert out[line[..., 0] == 0].max() == 0  # lines on top
    with pytest.raises(InputError, match="unknown task"):
        P.flat_fill_frame(line, "photo", None)


def test_sampled_region_medians_on_huge_frames(monkeypatch):
    from inkhue_engine import regions as rg

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(1, 41, dtype=np.int32), 250).reshape(100, 100)
    labels[3, 3] = 41  # a one-pixel region the stride will miss
    values = rng.normal(0, 1, (100, 100, 2)).astype(np.float32)
    values += labels[..., None].astype(np.float32)  # region k has median ~k
    exact = rg.region_medians(labels, values)
    monkeypatch.setattr(P, "MEDIAN_MAX_SAMPLES", 1000)
    approx = P._region_medians(labels, values)
    assert approx.shape == exact.shape
    np.testing.assert_allclose(approx[1:41], exact[1:41], atol=1.0)  # 25 samples each
    np.testing.assert_array_equal(approx[41], values[3, 3])


@pytest.mark.parametrize("palette", [None, ("#d02020", "#2040d0", "#ffffff")])
def test_strips_give_the_same_frame(gray_tiny, line_tiny, monkeypatch, palette):
    frames = {"grayscale": make_frame("GA", np.uint16, 45, 38), "lineart": cel(45, 38)}
    for model in (gray_tiny, line_tiny):
        frame = frames[model.info.task]
        for regions in (True, False):
            opts = ColorizeOptions(palette=palette, regions=regions)
            whole = P.colorize_frame(frame, model, options=opts)
            with monkeypatch.context() as mp:
                mp.setattr(P, "STRIP_PIXELS", 100)  # 2 rows a strip
                strips = P.colorize_frame(frame, model, options=opts)
            np.testing.assert_array_equal(strips, whole)
    base = P.flat_fill_frame(cel(45, 38), "lineart", None)
    monkeypatch.setattr(P, "STRIP_PIXELS", 100)
    np.testing.assert_array_equal(P.flat_fill_frame(cel(45, 38), "lineart", None), base)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_tables_give_the_full_frame_conversion(dtype):
    # prepare_frame looks L (and line art's base) up per gray value instead of converting
    # the frame: the numbers must be the full conversion's, for every value
    from inkhue_engine.color import gray_to_l

    top = np.iinfo(dtype).max
    frame = np.arange(top + 1, dtype=dtype)
    frame = np.resize(frame, (max(1, frame.size // 256), 256))
    L, base01, alpha, channels = P._read_frame(frame, lineart=True)
    np.testing.assert_array_equal(L, gray_to_l(to_float01(frame)))
    np.testing.assert_array_equal(base01, to_float01(frame))
    assert alpha is None and channels == 1
    ga = np.dstack([frame, frame[::-1]])
    L2, base2, alpha2, channels2 = P._read_frame(ga, lineart=False)
    np.testing.assert_array_equal(L2, L)
    assert base2 is None and channels2 == 2 and np.array_equal(alpha2, frame[::-1])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_sparse_hints_are_hints_from_rgba(dtype):
    from inkhue_engine.hints import hints_from_rgba

    rng = np.random.default_rng(5)
    rgba = np.zeros((30, 40, 4), np.float32)
    pick = rng.random((30, 40)) < 0.05
    rgba[pick] = rng.random((int(pick.sum()), 4)) * 0.9 + 0.1
    img = rgba if dtype == np.float32 else from_float01(rgba, dtype)
    ab, mask = hints_from_rgba(img)
    h = P._read_hints(img, (30, 40), want_l=True)
    np.testing.assert_array_equal(h.idx, np.flatnonzero(mask))
    np.testing.assert_array_equal(h.ab, ab.reshape(-1, 2)[h.idx])
    np.testing.assert_array_equal(h.weight, 1.0)
    lab = rgb_to_lab(to_float01(img[..., :3]))
    np.testing.assert_array_equal(h.L, lab[..., 0].ravel()[h.idx])
    dense = h.dense((30, 40))
    np.testing.assert_array_equal(dense[..., 0], mask)
    np.testing.assert_array_equal(dense[..., 1:], ab * mask[..., None])
    assert P._read_hints(np.zeros((30, 40, 4), dtype), (30, 40), want_l=False) is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_hint_pixels_are_the_pixels_with_alpha_above_zero(dtype):
    # 8/16-bit images are read one little-endian word per pixel: alpha is its top part
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    rgba = np.zeros((7, 9, 4), dtype)
    rgba[..., :3] = top  # full color, no alpha: not a hint
    rgba[1, 2, 3] = 1 if dtype != np.float32 else 1e-6  # the smallest alpha is a hint
    rgba[3, 4] = (0, 0, 0, top)
    if dtype == np.uint16:
        rgba[5, 6, 3] = 256  # only the high byte of the alpha set
    if dtype == np.float32:
        rgba[6, 0, 3] = -0.5  # negative and NaN alpha are no hint
        rgba[6, 1, 3] = np.nan
    want = np.flatnonzero(rgba[..., 3] > 0)
    assert want.size >= 2
    np.testing.assert_array_equal(P._hint_pixels(rgba), want)
    wide = np.zeros((7, 18, 4), dtype)
    wide[:, ::2] = rgba  # not C-contiguous: the strided rule
    np.testing.assert_array_equal(P._hint_pixels(wide[:, ::2]), want)


def test_gamut_edges_are_the_clipped_pixels():
    # _lab_to_rgb_keep_l finds the pixels to check with cv2.inRange: exactly those with
    # a channel at or beyond 0 or 1 before clipping
    rng = np.random.default_rng(6)
    lab = (
        np.stack(
            [
                rng.uniform(0, 100, 20000),
                rng.uniform(-120, 120, 20000),
                rng.uniform(-120, 120, 20000),
            ],
            -1,
        )
        .astype(np.float32)
        .reshape(100, 200, 3)
    )
    lab[0, :3] = [[100, 0, 0], [0, 0, 0], [50, 0, 0]]
    raw = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    inside = cv2.inRange(raw, (P._INSIDE_LO,) * 3, (P._INSIDE_HI,) * 3) > 0
    np.testing.assert_array_equal(inside, ((raw > 0) & (raw < 1)).all(axis=-1))
    out = P._lab_to_rgb_keep_l(lab)
    assert out.min() >= 0 and out.max() <= 1
    back = rgb_to_lab(out)[..., 0]
    assert np.abs(back - lab[..., 0]).max() <= 0.5  # L kept (up to OpenCV's round trip)


def test_big_region_means_are_the_region_means():
    # anchoring takes the means of large regions from cv2.mean (float64 accumulation)
    from inkhue_engine import regions as rg

    rng = np.random.default_rng(7)
    L = np.where(rng.random((120, 160)) < 0.02, 5.0, 95.0).astype(np.float32)
    labels = rg.regions_of(L, "lineart")
    values = rng.normal(0, 30, (120, 160, 2)).astype(np.float32)
    n = int(labels.max()) + 1
    which = np.bincount(labels.ravel(), minlength=n) > 0.01 * labels.size
    which[0] = False
    assert which.any()
    ref, _ = rg.region_means(labels, values, np.ones(labels.shape, np.float32))
    got = P._big_region_means(labels.astype(np.intp), values, which)
    np.testing.assert_allclose(got[which], ref[which], rtol=0, atol=1e-5)
    assert not got[~which].any()


def test_with_palette_settles_the_palette_once_for_cli_and_server():
    from types import SimpleNamespace

    from inkhue_engine.pipeline import ColorizeOptions, with_palette

    own = SimpleNamespace(palette=["#ff0000", "#00ff00"])
    none = SimpleNamespace(palette=None)
    base = ColorizeOptions(detail=0.5)
    assert with_palette(base, None, own).palette == ("#ff0000", "#00ff00")  # the model's
    assert with_palette(base, (), own).palette is None  # 'none' turns it off
    assert with_palette(base, ("#0000FF",), own).palette == ("#0000ff",)  # asked for
    assert with_palette(base, None, none).palette is None
    assert with_palette(base, None, own).detail == 0.5  # the rest is kept
