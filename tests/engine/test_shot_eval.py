"""Scores of a keyframe shot (engine/shot_eval.py) and ``inkhue evaluate --truth``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from inkhue_engine import frames_io
from inkhue_engine import shot_eval as se
from inkhue_engine.cli import main
from inkhue_engine.color import delta_e_2000, rgb_to_lab, to_float01
from inkhue_engine.errors import InputError
from inkhue_engine.shot_eval import evaluate_shot

sys.path.insert(0, str(Path(__file__).parent))
from cartoon_shots import SHIRT, cartoon, gray_of  # noqa: E402


def write(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for i, img in enumerate(frames):
        frames_io.write_image_atomic(folder / f"f{i}.png", img)


@pytest.fixture
def shot_dirs(tmp_path):
    truth = [cartoon(dx=2 * i, ball=-3 * i) for i in range(4)]
    write(tmp_path / "truth", truth)
    write(tmp_path / "in", [gray_of(t) for t in truth])
    return tmp_path, truth


def test_perfect_output_scores_zero_and_steady(shot_dirs):
    tmp, truth = shot_dirs
    s = evaluate_shot(tmp / "truth", tmp / "truth", tmp / "in", "grayscale", ["f0"])
    assert s.frames == 3  # the keyframe is left out
    assert s.mean_de == 0.0 and s.moving_de == 0.0
    assert s.segment_accuracy == 1.0 and s.regions > 0
    assert s.temporal_consistency == pytest.approx(1.0)
    assert 0 < s.moving_share < 0.5


def test_one_wrong_region_costs_exactly_its_share(shot_dirs):
    tmp, truth = shot_dirs
    wrong = [t.copy() for t in truth]
    for t in wrong[1:]:
        t[np.all(t == np.array(SHIRT, np.uint8), axis=-1)] = (200, 200, 40)
    write(tmp / "out", wrong)
    s = evaluate_shot(tmp / "out", tmp / "truth", tmp / "in", "grayscale", ["f0"])
    good = evaluate_shot(tmp / "truth", tmp / "truth", tmp / "in", "grayscale", ["f0"])
    per_frame = good.regions // 3
    assert s.segment_accuracy == pytest.approx(1 - 1 / per_frame)  # the shirt, in each frame
    shirt = np.all(truth[1] == np.array(SHIRT, np.uint8), axis=-1)
    de = delta_e_2000(
        rgb_to_lab(to_float01(np.array([[[200, 200, 40]]], np.uint8))),
        rgb_to_lab(to_float01(np.array([[SHIRT]], np.uint8))),
    )[0, 0]
    assert s.mean_de == pytest.approx(de * shirt.mean(), rel=0.05)
    assert s.temporal_consistency > 1.0  # the wrong shirt is the same in every frame but moves


def test_cli_reports_shot_scores_and_needs_keyframes(shot_dirs, capsys):
    tmp, _ = shot_dirs
    rc = main(
        [
            "evaluate",
            "--sequence",
            str(tmp / "truth"),
            "--inputs",
            str(tmp / "in"),
            "--truth",
            str(tmp / "truth"),
            "--keyframes",
            "f0",
            "--json",
            str(tmp / "s.json"),
        ]
    )
    assert rc == 0
    assert "segment accuracy 100.0%" in capsys.readouterr().out
    assert (tmp / "s.json").is_file()
    with pytest.raises(InputError, match="name the keyframe"):
        evaluate_shot(tmp / "truth", tmp / "truth", tmp / "in", "grayscale", [])


def _fills_frame(offset: int) -> np.ndarray:
    img = np.full((60, 80, 3), 255, np.uint8)
    img[10:40, 5 + offset : 35 + offset] = (200, 40, 40)  # red fill, moving right
    img[35:58, 45:78] = (40, 90, 200)  # blue fill, still
    img[2:6, 2:6] = (0, 200, 0)  # a small green fill: below FILL_MIN_PX, not compared
    return img


def test_fill_consistency_compares_each_true_fill_across_frames():
    ta, tb = _fills_frame(0), _fills_frame(8)
    de, n = se.fill_consistency(ta, tb, ta, tb)
    assert n == 3 and de == pytest.approx(0.0, abs=1e-3)  # red, blue and the paper
    # the output repaints the red fill in frame b: only that fill differs
    out_b = tb.copy()
    out_b[10:40, 13:43] = (200, 120, 40)
    de_changed, _ = se.fill_consistency(ta, out_b, ta, tb)
    red = rgb_to_lab(np.array([[[200, 40, 40]]], np.float32) / 255)
    orange = rgb_to_lab(np.array([[[200, 120, 40]]], np.float32) / 255)
    one = float(delta_e_2000(red, orange)[0, 0])
    assert de_changed == pytest.approx(one / 3, rel=0.05)  # one of three fills changed
    with pytest.raises(InputError, match="no true fill color is in both frames"):
        se.fill_consistency(ta, tb, ta, np.zeros_like(tb))


def test_the_shot_consistency_benchmark_measures_both_ways(tmp_path, capsys, grayscale_model):
    """benchmarks/shot_consistency.py: far and near pairs, one pass and mirror average."""
    import importlib.util
    import json

    import cv2

    src = Path(__file__).parents[2] / "benchmarks" / "shot_consistency.py"
    spec = importlib.util.spec_from_file_location("bench_shot_consistency", src)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shot = tmp_path / "shot"
    for sub in ("color", "gray"):
        (shot / sub).mkdir(parents=True)
    for i in range(9):  # a red box and a blue one drifting right on paper
        img = np.full((64, 80, 3), 240, np.uint8)
        cv2.rectangle(img, (4 + i, 6), (34 + i, 40), (200, 40, 40), -1)
        cv2.rectangle(img, (44, 20 + i), (74, 58), (40, 60, 200), -1)
        cv2.imwrite(str(shot / "color" / f"{i:04d}.png"), img[..., ::-1])
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        cv2.imwrite(str(shot / "gray" / f"{i:04d}.png"), gray)
    out = tmp_path / "c.json"
    argv = [str(grayscale_model), "--shot", str(shot), "--gap", "4", "--step", "2"]
    assert bench.main([*argv, "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["far"] == [[0, 4], [2, 6], [4, 8]] and r["near"] == [[0, 1]]
    for key in ("one pass", "mirror"):
        values = r[key]["far"] + r[key]["near"]
        assert all(np.isfinite(v) and v >= 0 for v in values)
    assert r["one pass"]["far"] != r["mirror"]["far"]  # two different colorings
    assert "far pairs" in capsys.readouterr().out
    assert bench.main([*argv[:3], "--gap", "20"]) == 2  # too few frames: one clear line
    assert "too few" in capsys.readouterr().err
