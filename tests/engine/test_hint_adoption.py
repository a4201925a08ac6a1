"""Unhinted regions adopt a hinted region's color (engine/hint_adoption.py), alone and
through the pipeline: line art when the model's class distribution backs it, grayscale
when the gray levels match."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from inkhue_engine import hint_adoption as HA
from inkhue_engine import model as M
from inkhue_engine import pipeline as P
from inkhue_engine.color import hex_to_lab, rgb_to_lab, to_float01
from inkhue_engine.errors import InputError
from inkhue_engine.pipeline import ColorizeOptions

sys.path.insert(0, str(Path(__file__).parent))
from test_palette_evidence import BLUE, CLASSES, RED, cel, class_model  # noqa: E402

pytest.importorskip("onnx")


# --------------------------------------------------------------------------- pure functions
def test_evidence_has_a_channel_per_hint_and_one_for_each_pixels_own_region_color():
    classes = np.array(CLASSES, np.float32)  # red, blue, gray
    logits = np.zeros((2, 4, 3), np.float32)
    logits[..., 0] = 5.0  # every pixel: almost surely red
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    own = np.array([[0, 0], classes[0], classes[1]], np.float32)  # region 1 red, 2 blue
    ev = HA.adoption_evidence(logits, classes, labels, own, classes[[1, 0]])
    assert ev.shape == (3, 2, 4)
    assert np.all(ev[1] > 0.9) and np.all(ev[0] < 0.1)  # hint 2 (red) is backed, hint 1 not
    assert np.all(ev[2, :, :2] > 0.9) and np.all(ev[2, :, 2:] < 0.1)  # own: red yes, blue no
    with pytest.raises(ValueError, match="do not match"):
        HA.adoption_evidence(logits, classes, labels[:, :3], own, classes[:1])


def test_evidence_in_blocks_equals_evidence_at_once(monkeypatch):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (9, 11, 3)).astype(np.float32)
    labels = rng.integers(0, 4, (9, 11))
    own = rng.normal(0, 40, (4, 2)).astype(np.float32)
    hints = rng.normal(0, 40, (2, 2)).astype(np.float32)
    classes = np.array(CLASSES, np.float32)
    once = HA.adoption_evidence(logits, classes, labels, own, hints)
    monkeypatch.setattr(HA, "_BLOCK", 7)
    np.testing.assert_allclose(
        HA.adoption_evidence(logits, classes, labels, own, hints), once, rtol=1e-6
    )
    # only some regions' pixels: the same values there, zeros elsewhere; a crop of a
    # bigger (padded) array gives the same as a contiguous copy
    some = np.array([False, True, False, True])
    part = HA.adoption_evidence(logits, classes, labels, own, hints, some)
    inside = some[labels]
    np.testing.assert_allclose(part[:, inside], once[:, inside], rtol=1e-6)
    assert not part[:, ~inside].any()
    padded = np.zeros((12, 16, 3), np.float32)
    padded[:9, :11] = logits
    np.testing.assert_allclose(
        HA.adoption_evidence(padded[:9, :11], classes, labels, own, hints), once, rtol=1e-6
    )


def _regions():
    """Label 0 (lines), two hinted regions (1, 2) and three unhinted ones (3, 4, 5)."""
    lab = np.array(
        [[0, 0, 0], [60, 50, 40], [40, -10, -50], [70, 0, 0], [70, 5, 5], [70, 1, 1]],
        np.float32,
    )
    hinted = np.array([False, True, True, False, False, False])
    # columns: evidence of hint 1's color, of hint 2's, of the region's own color
    ev = np.array(
        [[1, 1, 0], [1, 0, 1], [0, 1, 1], [0.1, 0.8, 0.5], [0.6, 0.1, 0.5], [0.9, 0, 0.1]],
        np.float32,
    )
    has = np.array([False, True, True, True, True, False])
    return lab, ev, has, hinted


def test_distinct_hint_colors_merge_near_ones_in_label_order():
    ab = np.array([[9, 9], [50, 40], [-10, -50], [52, 41], [0, 0], [-10, -47]], np.float32)
    hinted = np.array([True, True, True, True, False, True])  # label 0 is never a color
    np.testing.assert_array_equal(HA.hint_colors(ab, hinted), [1, 2])
    np.testing.assert_array_equal(HA.hint_colors(ab, hinted, merge=1.0), [1, 2, 3, 5])
    assert HA.hint_colors(ab, np.zeros(6, bool)).size == 0


def test_a_region_adopts_the_best_backed_hint_when_it_beats_its_own_color_enough():
    lab, ev, has, hinted = _regions()
    donors = np.array([1, 2])
    out = HA.adopt_hint_colors(lab, ev, has, hinted, donors, strength=3.0)  # 2 colors: 1.5x
    np.testing.assert_array_equal(out[3], lab[2])  # 0.8 > 1.5 x 0.5: hint 2's color, L too
    np.testing.assert_array_equal(out[4], lab[4])  # 0.6 < 0.75: keeps its own
    np.testing.assert_array_equal(out[5], lab[5])  # no pixel at the working size: kept
    np.testing.assert_array_equal(out[:3], lab[:3])  # lines and hinted regions untouched
    assert out is not lab
    # a lower strength: region 4 adopts hint 1 as well
    np.testing.assert_array_equal(
        HA.adopt_hint_colors(lab, ev, has, hinted, donors, 1.0)[4], lab[1]
    )


def test_with_fewer_hints_a_region_needs_more_backing():
    lab, ev, has, hinted = _regions()
    one = hinted.copy()
    one[2] = False  # hint 1 only: the ratio needed is 3 / 1, region 3's 0.1 / 0.5 is far
    out = HA.adopt_hint_colors(lab, ev[:, [0, 2]], has, one, np.array([1]), strength=3.0)
    np.testing.assert_array_equal(out, lab)
    no_hints = np.zeros_like(hinted)
    empty = np.array([], np.intp)
    assert np.array_equal(HA.adopt_hint_colors(lab, ev[:, 2:], has, no_hints, empty), lab)
    with pytest.raises(ValueError, match="should be"):
        HA.adopt_hint_colors(lab, ev[:, :2], has, hinted, np.array([1, 2]))


# --------------------------------------------------------------------------- pipeline
def _hint_left(frame, hex_color, L=None):
    """An (ab, mask[, L]) hint: a 3x3 patch in the region left of cel()'s line."""
    h, w = frame.shape
    lab = hex_to_lab([hex_color])[0]
    mask = np.zeros((h, w), np.float32)
    mask[10:13, 5:8] = 1
    ab = np.zeros((h, w, 2), np.float32)
    ab[mask > 0] = lab[1:]
    return (ab, mask) if L is None else (ab, mask, mask * L)


def test_the_unhinted_region_takes_the_hint_the_model_backs(tmp_path):
    """The model predicts gray everywhere but its distribution says red; the left region
    is hinted red: the right one adopts the red (hint L included), unless turned off."""
    path = class_model(tmp_path / "m.onnx", "lineart", (80, 0, 0), (5.0, 0.0, 0.0))
    model = M.Model(path, "cpu")
    frame = cel()
    hints = _hint_left(frame, RED, L=45.0)
    p = P.prepare_frame(frame, model.info, hints, ColorizeOptions(output="fill"))
    pred = P.run_prepared(model, [p])[0]
    assert pred.shape[0] == 3 + 1 + 1  # color, one hinted region, the own-color channel
    right = rgb_to_lab(to_float01(P.finish_frame(p, pred)))[20, 50]
    red = hex_to_lab([RED])[0]
    assert abs(right[0] - 45.0) < 1.0 and np.abs(right[1:] - red[1:]).max() < 1.5
    # without the evidence channels (a model without classes): the model's own gray
    own = rgb_to_lab(to_float01(P.finish_frame(p, pred[:3])))[20, 50]
    assert abs(own[0] - 80.0) < 1.0 and np.abs(own[1:]).max() < 1.0
    # turned off: no evidence asked, the model's gray
    off = ColorizeOptions(output="fill", adopt_hints=False)
    q = P.prepare_frame(frame, model.info, hints, off)
    assert P.run_prepared(model, [q])[0].shape[0] == 3
    out = rgb_to_lab(to_float01(P.colorize_frame(frame, model, hints, off)))[20, 50]
    assert np.abs(out[1:]).max() < 1.0


def test_a_region_keeps_its_own_color_when_the_model_backs_it(tmp_path):
    """The model says blue, surely; the hint is red: the right region stays blue."""
    blue_ab = hex_to_lab([BLUE])[0, 1:]
    path = class_model(tmp_path / "m.onnx", "lineart", (50, *blue_ab), (0.0, 5.0, 0.0))
    model = M.Model(path, "cpu")
    frame = cel()
    hints = _hint_left(frame, RED)
    out = P.colorize_frame(frame, model, hints, ColorizeOptions(output="fill"))
    off = P.colorize_frame(frame, model, hints, ColorizeOptions(output="fill", adopt_hints=False))
    np.testing.assert_array_equal(out, off)  # nothing adopted
    lab = rgb_to_lab(to_float01(out))
    assert lab[20, 50, 2] < -60  # blue (its chroma cut to sRGB's), not the hint's red
    assert np.abs(lab[20, 10, 1:] - hex_to_lab([RED])[0, 1:]).max() < 1.5  # the hint's own


def three_cels(h=256, w=384):
    """Big line art (the test model sees it reduced): three regions between two lines."""
    img = np.full((h, w), 255, np.uint8)
    for x in (w // 3, 2 * w // 3):
        img[:, x - 2 : x + 2] = 0
    return img


def _hints_at(frame, spots):
    """(ab, mask, L) hints: a 3x3 patch of each (x, hex color) at mid height."""
    h, w = frame.shape
    ab = np.zeros((h, w, 2), np.float32)
    mask = np.zeros((h, w), np.float32)
    L = np.zeros((h, w), np.float32)
    for x, color in spots:
        lab = hex_to_lab([color])[0]
        mask[h // 2 - 1 : h // 2 + 2, x - 1 : x + 2] = 1
        ab[h // 2 - 1 : h // 2 + 2, x - 1 : x + 2] = lab[1:]
        L[h // 2 - 1 : h // 2 + 2, x - 1 : x + 2] = lab[0]
    return ab, mask, L


def test_the_backed_color_of_two_is_adopted_on_a_reduced_frame_and_in_a_mixed_batch(tmp_path):
    """Left hinted red, middle blue, right unhinted; the model backs blue: the right region
    turns blue (not red) on a frame the model sees at half size. In one batch with a frame
    without hints and one with a single hint, each frame gets its own channels."""
    path = class_model(tmp_path / "m.onnx", "lineart", (80, 0, 0), (0.0, 5.0, 0.0))
    model = M.Model(path, "cpu")
    frame = three_cels()
    opts = ColorizeOptions(output="fill")
    two = P.prepare_frame(frame, model.info, _hints_at(frame, [(60, RED), (190, BLUE)]), opts)
    assert two.work_size[0] < frame.shape[0] // 4  # reduced: labels sampled at the working size
    one = P.prepare_frame(frame, model.info, _hints_at(frame, [(60, RED)]), opts)
    bare = P.prepare_frame(frame, model.info, None, opts)
    preds = P.run_prepared(model, [two, bare, one])
    assert [q.shape[0] for q in preds] == [3 + 2 + 1, 3, 3 + 1 + 1]
    out = rgb_to_lab(to_float01(P.finish_frame(two, preds[0])))
    blue = hex_to_lab([BLUE])[0]
    assert np.abs(out[128, 320] - blue).max() < 1.5  # adopted: the blue hint's Lab
    assert np.abs(out[128, 60, 1:] - hex_to_lab([RED])[0, 1:]).max() < 1.5
    # one red hint: the model backs blue, not red, so the right region keeps the model's gray
    solo = rgb_to_lab(to_float01(P.finish_frame(one, preds[2])))[128, 320]
    assert np.abs(solo[1:]).max() < 1.0
    # the same red twice is one color: two channels, not three
    same = P.prepare_frame(frame, model.info, _hints_at(frame, [(60, RED), (190, RED)]), opts)
    assert P.run_prepared(model, [same])[0].shape[0] == 3 + 1 + 1


def test_no_hints_or_a_palette_ask_no_adoption_evidence(tmp_path):
    path = class_model(tmp_path / "m.onnx", "lineart", (80, 0, 0), (5.0, 0.0, 0.0))
    model = M.Model(path, "cpu")
    frame = cel()
    bare = P.prepare_frame(frame, model.info, None, ColorizeOptions())
    assert P.run_prepared(model, [bare])[0].shape[0] == 3
    locked = P.prepare_frame(
        frame, model.info, _hint_left(frame, RED), ColorizeOptions(palette=(RED, BLUE))
    )
    assert P.run_prepared(model, [locked])[0].shape[0] == 3 + 2  # palette evidence only
    hinted = P.prepare_frame(frame, model.info, _hint_left(frame, RED), ColorizeOptions())
    pred = P.run_prepared(model, [hinted])[0]
    with pytest.raises(InputError, match="does not match the prepared frame"):
        P.finish_frame(hinted, pred[:4])


def test_the_benchmark_compares_adoption_off_and_on(tmp_path, capsys):
    """benchmarks/hint_adoption.py runs the evaluation protocol once per setting."""
    import importlib.util

    import cv2

    src = Path(__file__).parents[2] / "benchmarks" / "hint_adoption.py"
    spec = importlib.util.spec_from_file_location("bench_hint_adoption", src)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = tmp_path / "dev"
    data.mkdir()
    for i, color in enumerate([(40, 40, 220), (220, 60, 40)]):
        img = np.full((40, 56, 3), 255, np.uint8)
        cv2.rectangle(img, (8, 8), (30, 30), color, -1)
        cv2.rectangle(img, (8, 8), (30, 30), (0, 0, 0), 2)
        cv2.imwrite(str(data / f"{i}.png"), img)
    path = class_model(tmp_path / "m.onnx", "lineart", (80, 0, 0), (5.0, 0.0, 0.0))
    out = tmp_path / "t.json"
    assert (
        bench.main(
            [
                str(path),
                "--data",
                str(data),
                "--hints",
                "0,3",
                "--strengths",
                "1,3",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    table = __import__("json").loads(out.read_text())
    assert set(table["rows"]) == {"off", "strength 1", "strength 3"}
    assert table["rows"]["off"]["0"] == table["rows"]["strength 3"]["0"]  # no hints: same
    assert "flat fill" in capsys.readouterr().out
    frame = tmp_path / "f.png"
    cv2.imwrite(str(frame), cel())
    assert bench.main([str(path), "--speed", str(frame), "--size", "64x48", "--runs", "2"]) == 0
    assert "paired ratio" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # neither --data nor --speed
        bench.main([str(path)])
    from test_pipeline import forced_model

    forced_model(tmp_path / "plain.onnx", "lineart", 0, (1, 0, 0), (0, 0, 0))
    with pytest.raises(SystemExit):  # line art without color classes: nothing to adopt by
        bench.main([str(tmp_path / "plain.onnx"), "--data", str(data)])
    # grayscale: tolerances, and the flat fill with the same rule beside the plain one
    forced_model(tmp_path / "g.onnx", "grayscale", 1, (0, 0), (0, 0))
    args = [str(tmp_path / "g.onnx"), "--data", str(data), "--hints", "0,3"]
    assert bench.main([*args, "--tolerances", "5,10", "--json", str(out)]) == 0
    table = __import__("json").loads(out.read_text())
    assert set(table["rows"]) == {"off", "tolerance 5", "tolerance 10"}
    assert set(table["flat_fill"]) == {"flat fill", "flat fill + tolerance 5"}
    flat = table["flat_fill"]
    assert flat["flat fill"]["0"] == flat["flat fill + tolerance 5"]["0"]  # no hints: same


def test_the_bar_counts_hinted_regions_not_colors():
    """Two regions hinted the same red: one evidence channel, but m = 2 (a color hinted in
    two places lowers the bar as two hints do: measured better than counting colors)."""
    lab = np.array([[0, 0, 0], [50, 60, 40], [50, 60, 40], [80, 0, 0]], np.float32)
    hinted = np.array([False, True, True, False])
    ev = np.array([[0, 0], [1, 1], [1, 1], [0.8, 0.4]], np.float32)
    has = np.array([False, True, True, True])
    donors = HA.hint_colors(lab[:, 1:], hinted)
    np.testing.assert_array_equal(donors, [1])
    out = HA.adopt_hint_colors(lab, ev, has, hinted, donors, strength=3.0)  # bar 1.5 x 0.4
    np.testing.assert_array_equal(out[3], lab[1])
    alone = np.array([False, True, False, False])  # one hinted region: bar 3 x 0.4 > 0.8
    np.testing.assert_array_equal(HA.adopt_hint_colors(lab, ev, has, alone, donors)[3], lab[3])


# --------------------------------------------------------------------------- grayscale


def test_a_region_of_a_hinted_gray_level_adopts_the_nearest_hint():
    L = np.array([0, 40, 42, 70, 58, 41, 95], np.float32)  # label 0: lines
    hinted = np.array([False, True, False, True, False, False, False])
    ab = np.zeros((7, 2), np.float32)
    ab[1], ab[3] = (30, 20), (-20, 40)
    eligible = np.array([True, True, True, True, True, False, True])
    got_hinted, got_ab = HA.adopt_by_lightness(L, hinted, ab, eligible, tolerance=10.0)
    # 2 (L 42) is 2 from donor 1; 4 (L 58) is 12 from either: too far; 5 is not eligible;
    # 6 (L 95) is 25 from the nearest; the lines never adopt
    assert got_hinted.tolist() == [False, True, True, True, False, False, False]
    assert got_ab[2].tolist() == [30, 20] and got_ab[4].tolist() == [0, 0]
    assert ab[2].tolist() == [0, 0]  # the inputs are not changed
    # a wider tolerance reaches region 4: nearer to donor 3 (12) than to donor 1 (18)
    _, wide = HA.adopt_by_lightness(L, hinted, ab, eligible, tolerance=15.0)
    assert wide[4].tolist() == [-20, 40]


def test_of_two_equally_near_gray_levels_the_darker_hint_wins_and_no_hint_changes_nothing():
    L = np.array([0, 40, 60, 50], np.float32)
    ab = np.array([[0, 0], [10, 0], [0, 10], [0, 0]], np.float32)
    for order in ([1, 2], [2, 1]):  # the same whichever label holds which hint
        hinted = np.zeros(4, bool)
        hinted[order] = True
        a = ab.copy()
        a[order] = ab[[1, 2]]
        got = HA.adopt_by_lightness(L[[0, *order, 3]], hinted, a, np.ones(4, bool))[1]
        assert got[3].tolist() == [10, 0]
    none = HA.adopt_by_lightness(L, np.zeros(4, bool), ab, np.ones(4, bool))
    assert not none[0].any() and np.array_equal(none[1], ab)


def _boxes() -> np.ndarray:
    """A gray cel: three boxes outlined in black on a light background, two of one gray."""
    frame = np.full((60, 120), 230, np.uint8)
    for x0, gray in ((5, 100), (45, 100), (85, 170)):
        frame[8:52, x0 - 2 : x0 + 32] = 0
        frame[10:50, x0 : x0 + 30] = gray
    return frame


def test_a_grayscale_box_of_the_hinted_gray_takes_the_hint_and_another_gray_does_not(tmp_path):
    from test_pipeline import forced_model

    zero = forced_model(tmp_path / "zero.onnx", "grayscale", 1, (0, 0), (0, 0))  # ab = 0
    frame = _boxes()
    ab = np.zeros((60, 120, 2), np.float32)
    mask = np.zeros((60, 120), np.float32)
    mask[29:32, 19:22], ab[29:32, 19:22] = 1, (30, 20)  # the left box, hinted
    on = rgb_to_lab(to_float01(P.colorize_frame(frame, zero, (ab, mask))))
    assert np.abs(on[30, 60, 1:] - (30, 20)).max() < 1.5  # the other box of that gray
    assert np.abs(on[30, 100, 1:]).max() < 1.0  # the lighter box keeps the model's gray
    assert np.abs(on[4, 60, 1:]).max() < 1.0  # the background (half the frame) too
    off = P.colorize_frame(frame, zero, (ab, mask), ColorizeOptions(adopt_hints=False))
    assert np.abs(rgb_to_lab(to_float01(off))[30, 60, 1:]).max() < 1.0
    # the palette lock sees the adopted hint as a hint: a model that says blue, and the
    # box of the hinted gray takes the red entry all the same (blue when not adopting)
    blue = forced_model(tmp_path / "blue.onnx", "grayscale", 1, (0, 0), (10, -40))
    for adopt, want in ((True, 1), (False, -1)):
        opts = ColorizeOptions(palette=("#b04040", "#4040b0"), adopt_hints=adopt)
        locked = rgb_to_lab(to_float01(P.colorize_frame(frame, blue, (ab, mask), opts)))
        assert locked[30, 20, 1] > 20 and np.sign(locked[30, 60, 2]) == want
        assert locked[30, 100, 2] < -20  # the lighter box: blue either way


def test_the_flat_fill_can_apply_the_gray_level_rule_alone():
    frame = _boxes()
    ab = np.zeros((60, 120, 2), np.float32)
    mask = np.zeros((60, 120), np.float32)
    mask[29:32, 19:22], ab[29:32, 19:22] = 1, (30, 20)
    plain = rgb_to_lab(to_float01(P.flat_fill_frame(frame, "grayscale", (ab, mask))))
    rule = rgb_to_lab(
        to_float01(P.flat_fill_frame(frame, "grayscale", (ab, mask), adopt_gray_levels=True))
    )
    assert np.abs(plain[30, 60, 1:]).max() < 1.0
    assert np.abs(rule[30, 60, 1:] - (30, 20)).max() < 1.5
    assert np.abs(rule[30, 100, 1:]).max() < 1.0 and np.abs(rule[4, 60, 1:]).max() < 1.0
    assert np.array_equal(rule[:, :40], plain[:, :40])  # the hinted box as before
    with pytest.raises(InputError, match="grayscale"):
        P.flat_fill_frame(frame, "lineart", (ab, mask), adopt_gray_levels=True)
