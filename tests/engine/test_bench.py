"""inkhue bench on a tiny model: the report's shape, JSON, the CLI, and bad options."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from inkhue_engine import bench
from inkhue_engine.cli import main
from inkhue_engine.errors import InputError
from inkhue_engine.model import load_model


def test_run_bench_reports_every_stage_size_and_hint_count(grayscale_model, lineart_model):
    models = [load_model(grayscale_model, "cpu"), load_model(lineart_model, "cpu")]
    config = bench.BenchConfig(
        sizes=((24, 40), (50, 30)),
        hints=(0, 3),
        runs=2,
        warmup=0,
        sequence=3,
        sequence_size=(24, 40),
        torch=False,
    )
    report = bench.run_bench(models, config)
    assert [m["task"] for m in report.models] == ["grayscale", "lineart"]
    for m in report.models:
        assert [(r["size"], r["hints"]) for r in m["rows"]] == [
            ([24, 40], 0),
            ([24, 40], 3),
            ([50, 30], 0),
            ([50, 30], 3),
        ]
        for r in m["rows"]:
            for part in ("prepare", "model", "finish", "total"):
                assert 0 < r[part]["min"] <= r[part]["median"] <= r[part]["max"]
            assert r["total"]["median"] >= r["model"]["median"]
            assert r["model_input"][:2] == [1, 4] and r["peak_rss_mib"] > 0
            assert ("hint_cost" in r) == (r["hints"] > 0)
            assert r.get("hint_cost", 0) > -1
        assert [mo["size"] for mo in m["model_only"]] == [[24, 40], [50, 30]]
        assert "torch" not in m["model_only"][0]
        seq = m["sequence"]
        assert seq["frames"] == 3 and seq["frames_per_s"] > 0 and seq["bound_frames_per_s"] > 0
        assert seq["repeats"] == len(seq["ratios"]) == 2  # sequence and bound alternate
        assert seq["cpu_ms_per_frame"] > 0 and seq["bound_cpu_ms_per_frame"] > 0
        assert seq["cores_for_target"] > 0 and seq["cores"] >= 1
    assert report.settings["providers"] == ["CPUExecutionProvider"]
    assert "--no-torch" in report.settings["torch"]
    text = bench.format_report(report)
    assert "40x24" in text and "frames/s" in text and "intra-op threads" in text
    assert "hints +" in text and "%" in text and "CPU per frame" in text
    svg = bench.plot_svg(report)
    assert svg.startswith("<svg") and svg.count("<rect") >= 1 + 2 * 4 * 3
    import xml.etree.ElementTree as ET

    ET.fromstring(svg)  # well-formed


def test_hint_cost_is_the_median_of_paired_ratios():
    # a burst of load in two runs of one count moves its median, not the paired ratios
    plain = [100.0, 300.0, 300.0, 100.0, 100.0]
    hints = [110.0, 330.0, 330.0, 330.0, 330.0]  # the ratio of the medians would be 3.3
    assert bench.hint_cost(hints, plain) == pytest.approx(0.1)
    assert bench.hint_cost([100.0], [100.0]) == 0.0


def test_hint_counts_are_timed_interleaved(grayscale_model, monkeypatch):
    # the cost of hints is a ratio of two figures: they are measured in the same seconds
    from inkhue_engine import pipeline

    seen = []
    real = pipeline.prepare_frame

    def spy(frame, info, hints=None, options=None):
        seen.append(0 if hints is None else int((hints[..., 3] > 0).sum()))
        return real(frame, info, hints, options)

    monkeypatch.setattr(pipeline, "prepare_frame", spy)
    model = load_model(grayscale_model, "cpu")
    frame = bench.cartoon_frame("grayscale", 40, 60)
    layers = [None, bench.dot_hints(frame, 2)]
    rows = bench.time_hint_layers(model, frame, layers, None, runs=3, warmup=1)
    assert len(rows) == 2 and all(r["total"]["median"] > 0 for r in rows)
    assert [n > 0 for n in seen] == [False, True] * 4  # warm-up, then 3 alternating runs


def test_cli_writes_json_and_refuses_bad_sizes(grayscale_model, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "-m",
            str(grayscale_model),
            "--sizes",
            "40x24",
            "--hints",
            "0",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--sequence",
            "0",
            "--no-torch",
            "-q",
            "--json",
            str(out),
            "--device",
            "cpu",
            "--plot",
            str(tmp_path / "b.svg"),
        ]
    )
    assert code == 0
    assert (tmp_path / "b.svg").read_text().startswith("<svg")
    doc = json.loads(out.read_text())
    assert doc["format"] == 1 and doc["models"][0]["rows"][0]["size"] == [24, 40]
    assert "sequence" not in doc["models"][0]
    assert main(["bench", "-m", str(grayscale_model), "--sizes", "40by24", "-q"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_frames_and_hints_helpers():
    frame = bench.cartoon_frame("grayscale", 60, 90)
    assert frame.shape == (60, 90) and frame.dtype == np.uint8 and frame.std() > 10
    line = bench.cartoon_frame("lineart", 60, 90)
    assert (line == 255).mean() > 0.5 and line.min() < 60
    fitted = bench.fit_frame(frame, 30, 200)
    assert fitted.shape == (30, 200)
    hints = bench.dot_hints(frame, 4)
    assert hints.shape == (60, 90, 4) and 4 <= (hints[..., 3] > 0).sum() <= 100
    assert bench.dot_hints(frame, 0) is None
    with pytest.raises(InputError, match="runs"):
        bench.BenchConfig(runs=0)


def test_no_torch_eager_timing_without_torch(monkeypatch):
    # the training package is in every install; torch only with the 'train' extra: a bench
    # there skips the torch column instead of failing with ModuleNotFoundError mid-run
    monkeypatch.setitem(sys.modules, "torch", None)
    assert bench.eager_timer() is None
