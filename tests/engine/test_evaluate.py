"""``inkhue evaluate``: model vs gray vs flat-fill on ground truth, and sequence flicker."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine import evaluation, frames_io
from inkhue_engine.cli import main
from inkhue_engine.errors import InputError
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions


def _cartoon(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A flat-colored, outlined cartoon: a few random colored shapes on a colored paper."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(120, 255, 3)
    for _ in range(3):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8))
        r = int(rng.integers(5, 12))
        cv2.circle(img, (x, y), r, color, -1)
        cv2.circle(img, (x, y), r, (15, 15, 15), 1)
    return img


@pytest.fixture()
def truth_dir(tmp_path: Path) -> Path:
    d = tmp_path / "truth"
    d.mkdir()
    for i in range(3):
        frames_io.write_image_atomic(d / f"img{i}.png", _cartoon(i))
    return d


def test_evaluate_prints_the_table_and_writes_valid_json(
    tmp_path, capfd, truth_dir, grayscale_model
):
    out_json = tmp_path / "report.json"
    code = main(
        [
            "evaluate",
            "--model",
            str(grayscale_model),
            "--data",
            str(truth_dir),
            "--hints",
            "0,10",
            "--json",
            str(out_json),
            "--per-image",
            str(tmp_path / "per_image.csv"),
            "--device",
            "cpu",
        ]
    )
    out, err = capfd.readouterr()
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    assert [(r[0], r[1]) for r in rows] == [
        ("0", "model"),
        ("0", "gray"),
        ("0", "flat-fill"),
        ("10", "model"),
        ("10", "gray"),
        ("10", "flat-fill"),
    ]
    report = json.loads(out_json.read_text())
    assert report["images"] == 3 and report["hint_counts"] == [0, 10]
    by = {(r["method"], r["hints"]): r for r in report["rows"]}
    assert set(by) == {(m, n) for m in ("model", "gray", "flat-fill") for n in (0, 10)}
    for r in report["rows"]:
        assert r["images"] == 3
        assert 0 < r["psnr"] < 100 and 0 <= r["rmse"] <= 1 and -1 <= r["ssim"] <= 1
    # the gray baseline has no color; hints carry the truth's colors into the flat fill
    assert by[("gray", 0)]["colorfulness"] < 1.0
    assert by[("flat-fill", 10)]["ciede2000"] < by[("gray", 10)]["ciede2000"]
    assert by[("flat-fill", 10)]["psnr"] > by[("gray", 10)]["psnr"]
    # printed numbers are the JSON's
    model10 = next(r for r in rows if r[:2] == ["10", "model"])
    assert float(model10[2]) == pytest.approx(by[("model", 10)]["psnr"], abs=0.01)
    # each image's scores: 3 images x 2 hint counts x 3 methods, their means the report's
    with open(tmp_path / "per_image.csv", newline="") as f:
        per = list(csv.DictReader(f))
    assert len(per) == 18 and list(per[0]) == list(evaluation.PER_IMAGE_COLUMNS)
    assert sorted({r["image"] for r in per}) == ["img0.png", "img1.png", "img2.png"]
    for (method, n), r in by.items():
        mine = [float(p["ciede2000"]) for p in per if (p["method"], p["hints"]) == (method, str(n))]
        assert len(mine) == 3 and np.mean(mine) == pytest.approx(r["ciede2000"], rel=1e-9)
    truth_c = {p["image"]: float(p["truth_colorfulness"]) for p in per}
    assert np.mean(list(truth_c.values())) == pytest.approx(report["truth_colorfulness"])


def test_evaluate_no_mirror_scores_one_model_pass(tmp_path, capfd, truth_dir, grayscale_model):
    reports = {}
    for extra in ([], ["--no-mirror"]):
        out_json = tmp_path / f"r{len(extra)}.json"
        argv = ["evaluate", "--model", str(grayscale_model), "--data", str(truth_dir)]
        code = main([*argv, "--hints", "0", "--json", str(out_json), "--device", "cpu", *extra])
        out, err = capfd.readouterr()
        assert code == 0, err
        assert ("one model pass" in out) == bool(extra)
        reports[bool(extra)] = json.loads(out_json.read_text())
    assert reports[False]["mirror_average"] and not reports[True]["mirror_average"]
    model = load_model(grayscale_model, "cpu")
    once = evaluation.evaluate_model(
        model, truth_dir, [0], options=ColorizeOptions(mirror_average=False)
    )
    by = {r["method"]: r["ciede2000"] for r in reports[True]["rows"]}
    assert by["model"] == pytest.approx(once.row("model", 0).ciede2000, abs=1e-6)
    mirrored = {r["method"]: r["ciede2000"] for r in reports[False]["rows"]}
    assert mirrored["model"] != pytest.approx(by["model"], abs=1e-6)
    assert mirrored["gray"] == pytest.approx(by["gray"], abs=1e-9)  # baselines: no model


def test_hints_are_seeded_and_shared(truth_dir, grayscale_model):
    model = load_model(grayscale_model, "cpu")
    a = evaluation.evaluate_model(model, truth_dir, [10], seed=3, limit=2)
    b = evaluation.evaluate_model(model, truth_dir, [0, 10], seed=3, limit=2)
    c = evaluation.evaluate_model(model, truth_dir, [10], seed=4, limit=2)
    assert a.images == 2
    assert a.row("flat-fill", 10) == b.row("flat-fill", 10)  # same hints, whatever else runs
    assert a.row("model", 10) == b.row("model", 10)
    assert a.row("flat-fill", 10) != c.row("flat-fill", 10)


def test_methods_chosen_score_only_those_rows_with_the_same_hints(truth_dir, grayscale_model):
    model = load_model(grayscale_model, "cpu")
    full = evaluation.evaluate_model(model, truth_dir, [0, 10], seed=3, limit=2)
    only = evaluation.evaluate_model(model, truth_dir, [0, 10], seed=3, limit=2, methods=("model",))
    assert [(r.method, r.hints) for r in only.rows] == [("model", 0), ("model", 10)]
    assert only.row("model", 10) == full.row("model", 10)
    assert {r["method"] for r in only.per_image} == {"model"}
    two = evaluation.evaluate_model(model, truth_dir, [10], limit=1, methods=("gray", "model"))
    assert [r.method for r in two.rows] == ["model", "gray"]  # table order
    with pytest.raises(InputError, match="choose from model, gray, flat-fill"):
        evaluation.evaluate_model(model, truth_dir, [0], methods=("bucket",))


def test_lineart_evaluation_with_paired_inputs_and_synthesized(tmp_path, truth_dir, lineart_model):
    model = load_model(lineart_model, "cpu")
    inputs = tmp_path / "lines"
    inputs.mkdir()
    for p in truth_dir.iterdir():
        gray = cv2.cvtColor(frames_io.read_image(p), cv2.COLOR_RGB2GRAY)
        lines = np.where(cv2.Canny(gray, 50, 150) > 0, 0, 255).astype(np.uint8)
        frames_io.write_image_atomic(inputs / p.name, lines)
    rep = evaluation.evaluate_model(model, truth_dir, [0, 10], inputs=inputs)
    assert rep.images == 3 and "inputs from" in rep.inputs
    assert rep.row("flat-fill", 10).ciede2000 < rep.row("gray", 10).ciede2000
    synth = evaluation.evaluate_model(model, truth_dir, [10], limit=1)
    assert "synthesized" in synth.inputs and synth.images == 1
    (inputs / "img1.png").unlink()
    with pytest.raises(InputError, match="no input frame named like img1.png"):
        evaluation.evaluate_model(model, truth_dir, [0], inputs=inputs)


def test_sequence_flicker_command(tmp_path, capfd):
    ins, outs = tmp_path / "in", tmp_path / "out"
    ins.mkdir()
    outs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        frame = np.full((20, 30), 128, np.uint8)
        frame[:, 20:] = 10 * i  # the right part changes, the left stays
        out = np.zeros((20, 30, 3), np.uint8)
        out[:] = (100, 50, 50)
        out[:, :10] += rng.integers(0, 30, (20, 10, 3), dtype=np.uint8)  # flicker on the left
        frames_io.write_image_atomic(ins / f"f{i}.png", frame)
        frames_io.write_image_atomic(outs / f"f{i}.png", out)
    out_json = tmp_path / "flicker.json"
    code = main(
        ["evaluate", "--sequence", str(outs), "--inputs", str(ins), "--json", str(out_json)]
    )
    text, err = capfd.readouterr()
    assert code == 0, err
    assert "flicker of" in text
    rep = json.loads(out_json.read_text())
    assert rep["frames"] == 4
    assert rep["static_fraction"] == pytest.approx(20 / 30)
    assert rep["flicker"] > 1.0
    # only the static left two thirds count: a third of them flickers
    steady = evaluation.sequence_flicker(outs, ins)
    assert steady.flicker == pytest.approx(rep["flicker"])


def test_evaluate_errors_are_one_line(tmp_path, capfd, grayscale_model):
    code = main(["evaluate", "--model", str(grayscale_model), "--data", str(tmp_path / "no")])
    err = capfd.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "not found" in err[0]
    code = main(["evaluate", "--sequence", str(tmp_path)])
    err = capfd.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--inputs" in err[0]
    code = main(
        ["evaluate", "--model", str(grayscale_model), "--data", str(tmp_path), "--hints", "a,b"]
    )
    err = capfd.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--hints" in err[0]


def test_evaluate_shows_progress(monkeypatch, capfd, truth_dir, grayscale_model):
    import tqdm

    bars = []

    class Bar(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": False})
            bars.append((kwargs, self))

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    code = main(
        [
            "evaluate",
            "--model",
            str(grayscale_model),
            "--data",
            str(truth_dir),
            "--hints",
            "0",
            "--limit",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    ((kwargs, bar),) = bars
    assert kwargs["total"] == 2 and bar.n == 2  # one step per image
    assert kwargs["disable"] is None  # shown on a terminal only
    assert "evaluate" in capfd.readouterr().err
    bars.clear()
    main(
        [
            "evaluate",
            "--model",
            str(grayscale_model),
            "--data",
            str(truth_dir),
            "--hints",
            "0",
            "--limit",
            "1",
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert bars[0][0]["disable"] is True
