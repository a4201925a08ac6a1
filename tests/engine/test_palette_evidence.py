"""Palette lock decoded from a classification model's color distribution.

A model with a classification color head also outputs ``ab_logits`` (docs/DESIGN.md);
with a palette lock the pipeline picks each region's palette color from that
distribution (palette.palette_evidence, snap_regions_by_evidence) instead of the color
nearest the region's median prediction. A "forced" ONNX model built here outputs a
chosen color and chosen logits, so the decision can be checked exactly.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inkhue_engine import model as M
from inkhue_engine import pipeline as P
from inkhue_engine.color import hex_to_lab, rgb_to_lab, to_float01
from inkhue_engine.errors import InputError, ModelError
from inkhue_engine.palette import palette_evidence, snap_regions_by_evidence
from inkhue_engine.pipeline import ColorizeOptions

sys.path.insert(0, str(Path(__file__).parent))
from forced_models import save_inkhue_graph  # noqa: E402

onnx = pytest.importorskip("onnx")

RED, BLUE, PURPLE = "#e02020", "#2040e0", "#806080"
#: the forced model's classes: the ab of red, of blue, and gray
CLASSES = [*hex_to_lab([RED, BLUE])[:, 1:].tolist(), [0.0, 0.0]]


def _class_graph(path, task, title, consts, nodes, q, classes=CLASSES, meta_classes=True):
    """Save an InkHue model whose ``nodes`` (with ``consts``) read ``s``, the input's
    first channel (L, [N,1,H,W]), and write the task's color output and ``ab_logits``
    [N, H, W, q]; ``classes`` go into the metadata when ``meta_classes``."""
    from onnx import TensorProto, helper

    name, c = M.TASK_OUTPUTS[task]
    first_channel = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["s"]), *nodes],
        title,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", c, "H", "W"]),
            helper.make_tensor_value_info(
                M.CLASS_LOGITS_OUTPUT, TensorProto.FLOAT, ["N", "H", "W", q]
            ),
        ],
        initializer=first_channel + consts,
    )
    extra = {}
    if meta_classes:
        extra[M.AB_CLASSES_KEY] = classes if isinstance(classes, str) else json.dumps(classes)
    return save_inkhue_graph(graph, path, task, title, extra=extra)


def class_model(path, task, color, logits, classes=CLASSES, meta_classes=True):
    """An InkHue model with constant outputs: ``color`` (C values) and ``ab_logits``
    (one logit per class, the same at every pixel)."""
    from onnx import TensorProto, helper

    name, c = M.TASK_OUTPUTS[task]
    q = len(logits)
    consts = [
        helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
        helper.make_tensor("color", TensorProto.FLOAT, [1, c, 1, 1], list(color)),
        helper.make_tensor("logits", TensorProto.FLOAT, [1, 1, 1, q], list(logits)),
    ]
    nodes = [
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["z", "color"], [name]),
        helper.make_node("Transpose", ["z"], ["zt"], perm=[0, 2, 3, 1]),  # [N,H,W,1]
        helper.make_node("Add", ["zt", "logits"], [M.CLASS_LOGITS_OUTPUT]),
    ]
    return _class_graph(path, task, f"classes-{task}", consts, nodes, q, classes, meta_classes)


def cel(h=48, w=64):
    """Line art: white paper, one black vertical line in the middle."""
    img = np.full((h, w), 255, np.uint8)
    img[:, w // 2 - 1 : w // 2 + 1] = 0
    return img


# --------------------------------------------------------------------------- pure functions
def test_evidence_favours_the_likelier_mode_over_the_color_between_them():
    pal = hex_to_lab([RED, BLUE, PURPLE])
    classes = np.array(CLASSES, np.float32)
    logits = np.zeros((2, 3, 3), np.float32)
    logits[..., 0], logits[..., 1] = 2.0, 1.6  # red a bit likelier than blue, gray unlikely
    ev = palette_evidence(logits, classes, pal)
    assert ev.shape == (3, 2, 3)
    assert np.all(ev[0] > ev[1]) and np.all(ev[1] > ev[2])  # red, then blue, purple last
    # the plain mean of this distribution is nearest the purple: what the median rule picks
    prob = np.exp(logits[0, 0]) / np.exp(logits[0, 0]).sum()
    mean_ab = prob @ classes
    assert np.argmin(np.linalg.norm(pal[:, 1:] - mean_ab, axis=1)) == 2


def test_evidence_temperature_and_sigma_are_used():
    pal = hex_to_lab([RED, BLUE])
    classes = np.array(CLASSES[:2], np.float32)
    logits = np.array([[[1.0, 0.0]]], np.float32)
    soft = palette_evidence(logits, classes, pal, temperature=1.0)
    sharp = palette_evidence(logits, classes, pal, temperature=0.25)
    assert sharp[0, 0, 0] > soft[0, 0, 0] and sharp[1, 0, 0] < soft[1, 0, 0]
    wide = palette_evidence(logits, classes, pal, sigma_ab=1000.0)
    np.testing.assert_allclose(wide[:, 0, 0], 1.0, atol=0.02)  # every class counts for all


def test_evidence_in_blocks_equals_evidence_at_once(monkeypatch):
    from inkhue_engine import palette

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (9, 11, 3)).astype(np.float32)
    pal = hex_to_lab([RED, BLUE, PURPLE, "#ffffff"])
    once = palette_evidence(logits, np.array(CLASSES, np.float32), pal)
    monkeypatch.setattr(palette, "_EVIDENCE_BLOCK", 7)  # 99 pixels: 15 blocks, the last short
    np.testing.assert_allclose(
        palette_evidence(logits, np.array(CLASSES, np.float32), pal), once, rtol=1e-6
    )


def test_region_decision_keeps_hints_falls_back_without_evidence_and_weighs_lightness():
    pal = np.array([[50.0, 60.0, 40.0], [90.0, 60.0, 40.0], [50.0, -20.0, -60.0]], np.float32)
    region_lab = np.array(
        [[0, 0, 0], [88, 0, 0], [50, 0, 0], [50, -20, -60], [50, 0, 0]], np.float32
    )
    ev = np.array(
        [[1, 1, 1], [0.9, 0.9, 0.01], [0.9, 0.9, 0.01], [0.9, 0.9, 0.01], [0.9, 0.9, 0.01]]
    )
    has = np.array([False, True, True, False, True])
    hinted = np.array([False, False, False, False, True])
    hint_ab = np.zeros((5, 2), np.float32)
    hint_ab[4] = (-20, -60)
    entry = snap_regions_by_evidence(region_lab, ev, has, pal, False, hint_ab, hinted)
    assert entry[1] == 1  # the reds tie on ab: the region's L (88) picks the light red
    assert entry[2] == 0  # ... and L 50 the dark one
    assert entry[3] == 2  # no evidence: nearest its median color (the blue)
    assert entry[4] == 2  # hinted: the hint's color, whatever the evidence says
    # own lightness (grayscale): no L term, the first of the tied reds
    assert snap_regions_by_evidence(region_lab, ev, has, pal, True)[1] == 0


# --------------------------------------------------------------------------- model contract
def test_model_info_reads_the_classes_and_run_returns_the_logits(tmp_path):
    path = class_model(tmp_path / "m.onnx", "lineart", (70, 10, -5), (2.0, 1.6, 0.0))
    model = M.Model(path, "cpu")
    assert model.info.ab_classes is not None and len(model.info.ab_classes) == 3
    x = np.zeros((2, 4, 16, 24), np.float32)
    color, logits = model.run_with_class_logits(x)
    assert color.shape == (2, 3, 16, 24) and logits.shape == (2, 16, 24, 3)
    np.testing.assert_allclose(logits[1, 5, 7], (2.0, 1.6, 0.0))
    np.testing.assert_array_equal(model.run(x), color)


@pytest.mark.parametrize(
    "classes,meta,why",
    [
        (CLASSES, False, "needs metadata inkhue.ab_classes"),
        ("[1, 2", True, "not a JSON list"),
        (CLASSES[:2], True, "expected [N, H, W, 2]"),
    ],
)
def test_a_broken_class_output_is_refused_with_the_file_named(tmp_path, classes, meta, why):
    path = class_model(tmp_path / "bad.onnx", "lineart", (70, 0, 0), (1, 2, 3), classes, meta)
    with pytest.raises(ModelError, match=rf"bad\.onnx: .*{__import__('re').escape(why)}"):
        M.Model(path, "cpu")


# --------------------------------------------------------------------------- pipeline
def test_line_art_palette_lock_decodes_the_distribution_not_the_muddy_mean(tmp_path):
    """The model's color is the purple between red and blue; its distribution says red.
    The median rule snaps to the palette's purple; the class evidence to the red."""
    mean_ab = hex_to_lab([PURPLE])[0, 1:]
    path = class_model(tmp_path / "m.onnx", "lineart", (45, *mean_ab), (2.0, 1.6, -4.0))
    model = M.Model(path, "cpu")
    opts = ColorizeOptions(palette=(RED, BLUE, PURPLE), output="fill")
    frame = cel()
    p = P.prepare_frame(frame, model.info, None, opts)
    pred = P.run_prepared(model, [p])[0]
    assert pred.shape[0] == 3 + 3  # the color, then one evidence channel per palette color
    out = to_float01(P.finish_frame(p, pred))
    want = hex_to_lab([RED])[0]
    got = rgb_to_lab(out)[5, 5]
    assert np.abs(got - want).max() < 1.0
    # the same prediction without its evidence channels: the old rule, the purple
    old = rgb_to_lab(to_float01(P.finish_frame(p, pred[:3])))[5, 5]
    assert np.abs(old - hex_to_lab([PURPLE])[0]).max() < 1.0
    # no palette: no evidence channels, and the model's own color
    q = P.prepare_frame(frame, model.info, None, ColorizeOptions(output="fill"))
    assert P.run_prepared(model, [q])[0].shape[0] == 3


def test_grayscale_palette_lock_from_evidence_keeps_the_frames_lightness(tmp_path):
    path = class_model(tmp_path / "g.onnx", "grayscale", (0, 0), (2.0, 1.6, -4.0))
    model = M.Model(path, "cpu")
    frame = np.tile(np.linspace(80, 200, 64, dtype=np.float32)[None, :], (48, 1)).astype(np.uint8)
    out = P.colorize_frame(frame, model, None, ColorizeOptions(palette=(RED, BLUE, PURPLE)))
    lab = rgb_to_lab(to_float01(out))
    L_in = rgb_to_lab(np.repeat(to_float01(frame)[..., None], 3, axis=2))[..., 0]
    assert np.abs(lab[..., 0] - L_in).max() < 1.0  # the frame's own shading
    # a red hue everywhere (a and b > 0; chroma reduced where light red leaves sRGB), not
    # the gray of the distribution's mean nor the blue
    assert np.all(lab[..., 1] > 10) and np.all(lab[..., 2] > 5)


def test_a_prediction_with_the_wrong_number_of_channels_is_refused(tmp_path):
    path = class_model(tmp_path / "m.onnx", "lineart", (45, 0, 0), (2.0, 1.6, -4.0))
    model = M.Model(path, "cpu")
    p = P.prepare_frame(cel(), model.info, None, ColorizeOptions(palette=(RED, BLUE)))
    pred = P.run_prepared(model, [p])[0]
    with pytest.raises(InputError, match="does not match the prepared frame"):
        P.finish_frame(p, np.concatenate([pred, pred[:1]]))


def pointwise_class_model(path):
    """Line art: every output a function of the pixel's own input L only (Lab = (0.6 L,
    40 - 0.8 L, 0.5 L - 25), logits = (L - 95) x (-1, 1, 0): pixels below L 95 red, paper
    blue), so that the mirror average must give exactly the one-pass output."""
    from onnx import TensorProto, helper

    name, c = M.TASK_OUTPUTS["lineart"]
    consts = [
        helper.make_tensor("cs", TensorProto.FLOAT, [1, c, 1, 1], [0.6, -0.8, 0.5]),
        helper.make_tensor("co", TensorProto.FLOAT, [1, c, 1, 1], [0.0, 40.0, -25.0]),
        helper.make_tensor("ls", TensorProto.FLOAT, [1, 1, 1, 3], [-1.0, 1.0, 0.0]),
        helper.make_tensor("lo", TensorProto.FLOAT, [1, 1, 1, 3], [95.0, -95.0, 0.0]),
    ]
    nodes = [
        helper.make_node("Mul", ["s", "cs"], ["m"]),
        helper.make_node("Add", ["m", "co"], [name]),
        helper.make_node("Transpose", ["s"], ["st"], perm=[0, 2, 3, 1]),  # [N,H,W,1]
        helper.make_node("Mul", ["st", "ls"], ["lm"]),
        helper.make_node("Add", ["lm", "lo"], [M.CLASS_LOGITS_OUTPUT]),
    ]
    return _class_graph(path, "lineart", "pointwise-classes", consts, nodes, 3)


def test_mirror_average_flips_the_prediction_and_the_logits_back(tmp_path):
    model = M.Model(pointwise_class_model(tmp_path / "p.onnx"), "cpu")
    # line art: a light gray region (L ~91, not ink: red evidence) left of a line, paper
    # (blue) right of it; and a hint in the right part (adoption reads the logits too).
    # Nothing is symmetric, so a prediction or logits flipped back wrongly would not match
    frame = np.full((48, 64), 255, np.uint8)
    frame[:, :20] = 228
    frame[:, 20:22] = 0
    frame[:, 40:42] = 0
    hints = np.zeros((48, 64, 4), np.uint8)
    hints[20:23, 50:53] = (30, 60, 220, 255)
    for opts in (
        ColorizeOptions(output="fill"),
        ColorizeOptions(palette=(RED, BLUE), output="fill"),
    ):
        for h in (None, hints):
            p_once = P.prepare_frame(frame, model.info, h, replace(opts, mirror_average=False))
            p_mirror = P.prepare_frame(frame, model.info, h, opts)
            once, mirror = P.run_prepared(model, [p_once, p_mirror])
            np.testing.assert_allclose(mirror, once, atol=1e-4)
            out = P.finish_frame(p_mirror, mirror)
            np.testing.assert_array_equal(out, P.finish_frame(p_once, once))
            if opts.palette is not None:
                lab = rgb_to_lab(to_float01(out))
                assert np.abs(lab[24, 5] - hex_to_lab([RED])[0]).max() < 1.0
                assert np.abs(lab[24, 30] - hex_to_lab([BLUE])[0]).max() < 1.0
