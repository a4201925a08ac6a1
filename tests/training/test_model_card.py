"""The model card writer: protocol rows, card sections, card == JSON, targets and MISSED."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine import evaluation
from inkhue_engine.color import hex_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions
from inkhue_training import model_card as mc


def _cartoon(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """RGB uint8: flat colored shapes with black outlines on white paper."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    for _ in range(3):
        color = tuple(int(v) for v in rng.integers(30, 230, 3))
        c = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        r = int(rng.integers(6, 14))
        cv2.circle(img, c, r, color, -1)
        cv2.circle(img, c, r, (0, 0, 0), 1)
    return img


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    assert cv2.imwrite(str(path), rgb[..., ::-1])


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    dev = tmp_path / "dev"
    dev.mkdir()
    for i in range(3):
        _write_rgb(dev / f"img_{i}.png", _cartoon(i))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "format": 1,
                "corpora": {"grayscale": ["drawing", "photo"], "lineart": ["drawing"]},
                "packages": {
                    "pkg-drawings": {
                        "version": "1.0",
                        "licence": "GPL-2",
                        "source": "deb",
                        "kept_by_content": {"drawing": 30},
                        "splits": {
                            "grayscale": {"train": 27, "dev": 2},
                            "lineart": {"train": 27, "dev": 3},
                        },
                        "dev_kinds": {"img_0.png": "drawing", "img_1.png": "drawing"},
                    },
                    "pkg-photos": {
                        "version": "2.0",
                        "licence": "CC0",
                        "source": "deb",
                        "kept_by_content": {"photo": 6},
                        "splits": {
                            "grayscale": {"train": 5, "dev": 1},
                            "lineart": {"train": 0, "dev": 0},
                        },
                        "dev_kinds": {"img_2.png": "photo"},
                    },
                },
                "totals": {
                    "splits": {
                        "grayscale": {"train": 32, "dev": 3},
                        "lineart": {"train": 27, "dev": 3},
                    }
                },
            }
        )
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps(
            {
                "task": "lineart",
                "channels": [8, 16, 32],
                "n_res": 5,
                "crop_size": 64,
                "batch_size": 4,
                "lr": 2e-4,
                "l1_weight": 100.0,
                "device": "auto",
            }
        )
    )
    # two sessions (resumed: minutes restart at 0): wall time 3 + 2 = 5 minutes
    log = [
        {"kind": "train", "step": 1, "minutes": 0.5, "img_s": 0.1},
        {"kind": "train", "step": 10, "minutes": 1.0, "img_s": 4.0},
        {"kind": "train", "step": 20, "minutes": 3.0, "img_s": 6.0},
        {"kind": "val", "step": 20, "model": {"psnr": 20.0}},
        {"kind": "train", "step": 30, "minutes": 2.0, "img_s": 8.0},
    ]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log) + "{broken\n")
    return {"dev": dev, "manifest": manifest, "run": run, "tmp": tmp_path}


NATURAL_TABLE = "Painted backgrounds and photos (target (d))"


def _table(md: str) -> list[list[str]]:
    """Rows of the card's metrics table (cells stripped), header excluded."""
    metrics = md.split("## Metrics", 1)[1].split("## Targets", 1)[0]
    lines = metrics.split(NATURAL_TABLE, 1)[0].splitlines()
    rows = [ln for ln in lines if re.match(r"^\| \d+ \|", ln)]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]


@pytest.mark.parametrize("fixture", ["grayscale_model", "lineart_model"])
def test_card_sections_and_numbers_equal_the_json(request, setup, fixture):
    model = request.getfixturevalue(fixture)
    out = setup["tmp"] / "card.md"
    argv = [
        "--model",
        str(model),
        "--run",
        str(setup["run"]),
        "--dev",
        str(setup["dev"]),
        "--manifest",
        str(setup["manifest"]),
        "--limit",
        "3",
        "-o",
        str(out),
        "--quiet",
        "--note",
        "early checkpoint",
    ]
    assert mc.main(argv) == 0
    md = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    task = data["task"]
    for section in (
        "# Model card: tiny-test",
        "## Data",
        "## Training",
        "## Hardware",
        "## Metrics",
        "## Targets",
        "> early checkpoint",
    ):
        assert section in md
    assert "python -m inkhue_training.model_card " + " ".join(argv[:2]) in md
    # data: from the manifest; a package with nothing in this task's corpus is left out
    assert "| pkg-drawings | 1.0 | GPL-2 |" in md
    assert ("pkg-photos" in md) == (task == "grayscale")
    assert data["data"]["train"] == (32 if task == "grayscale" else 27)
    # training: both sessions summed, median rate without step 1, no checkpoint here
    assert data["training"]["wall_minutes"] == 5.0
    assert data["training"]["img_s_median"] == 6.0
    assert data["training"]["logged_steps"] == 30
    assert "checkpoint not found" in md
    assert data["hardware"]["cores"] >= 1
    # the protocol: 0/1/10/50 hints; palette rows for line art only (no --palette)
    methods = {"gray", "model", "flat-fill"} | ({"model+palette"} if task == "lineart" else set())
    assert {(r["method"], r["hints"]) for r in data["rows"]} == {
        (m, n) for m in methods for n in (0, 1, 10, 50)
    }
    assert all(r["images"] == 3 for r in data["rows"])
    assert data["evaluated_on"]["images"] == 3
    # every number in the table is the JSON's, at the printed precision
    table = _table(md)
    assert len(table) == len(data["rows"])
    for cells, row in zip(table, data["rows"], strict=True):
        assert cells[0] == str(row["hints"]) and cells[1] == row["method"]
        expect = [format(row[k], f) for _, k, f in mc.COLUMNS]
        assert cells[2:] == expect
    # target (d), grayscale only: the card's one photo (the manifest's dev_kinds), 0 hints
    if task == "grayscale":
        nat = data["natural"]
        assert nat["names"] == ["img_2.png"] and nat["images"] == 1
        assert {(r["method"], r["hints"]) for r in nat["rows"]} == {("gray", 0), ("model", 0)}
        gray = next(r for r in data["rows"] if r["method"] == "gray" and r["hints"] == 0)
        assert next(r for r in nat["rows"] if r["method"] == "gray")["ciede2000"] != pytest.approx(
            gray["ciede2000"]
        )  # one image's score, not the three's mean
        section = md.split(NATURAL_TABLE, 1)[1].split("## Targets", 1)[0]
        for r in nat["rows"]:
            cells = [format(r[k], f) for _, k, f in mc.COLUMNS]
            assert f"| 0 | {r['method']} | " + " | ".join(cells) + " |" in section
    else:
        assert data["natural"] is None and NATURAL_TABLE not in md
    # targets: the card says met / MISSED exactly as the JSON
    assert len(data["targets"]) == (4 if task == "grayscale" else 2)  # line art: 0 and 10
    for t in data["targets"]:
        verdict = "met" if t["met"] else "MISSED"
        assert f"**{t['name']}**: {verdict}." in md


def _rows(table: dict) -> list[dict]:
    """Protocol rows from {(method, hints): (psnr, ciede2000)}."""
    return [
        {"method": m, "hints": n, "psnr": p, "ciede2000": d} for (m, n), (p, d) in table.items()
    ]


def test_targets_met_and_missed():
    # (method, hints): (PSNR, CIEDE2000, colorfulness); the truth's colorfulness is 50
    def rows(table):
        return [
            {"method": m, "hints": n, "psnr": p, "ciede2000": d, "colorfulness": c}
            for (m, n), (p, d, c) in table.items()
        ]

    good = rows(
        {
            ("gray", 0): (10, 20.0, 0.0),
            ("model", 0): (12, 19.5, 30.0),  # 0.5 below gray, 60% of the truth's colorfulness
            ("flat-fill", 10): (15, 12.0, 20.0),
            ("model", 10): (16, 11.0, 40.0),
            ("flat-fill", 50): (18, 9.0, 40.0),
            ("model", 50): (19, 8.5, 45.0),
        }
    )
    assert [t.met for t in mc.check_targets(good, "grayscale", 50.0)] == [True, True, True]
    bad = rows(
        {
            ("gray", 0): (10, 20.0, 0.0),
            ("model", 0): (12, 19.0, 29.0),  # far enough below gray, not colorful enough
            ("flat-fill", 10): (15, 12.0, 20.0),
            ("model", 10): (16, 11.1, 40.0),  # 0.9 below flat fill: not the 1.0 asked for
            ("flat-fill", 50): (18, 9.0, 40.0),
            ("model", 50): (18, 8.6, 45.0),
        }
    )
    assert [t.met for t in mc.check_targets(bad, "grayscale", 50.0)] == [False, False, False]
    # line art: 0 hints need only not be worse than gray, with half the truth's colorfulness;
    # only 10 hints are a target
    line = mc.check_targets(bad, "lineart", 50.0)
    assert [t.name for t in line] == ["(a) 0 hints vs gray", "(b) 10 hints vs flat fill"]
    assert [t.met for t in line] == [True, False]
    missing = mc.check_targets(good[:2], "grayscale", 50.0)
    assert [t.met for t in missing] == [True, None, None]


def test_missed_target_is_printed_as_missed(setup, grayscale_model):
    out = setup["tmp"] / "g.md"
    assert (
        mc.main(
            [
                "--model",
                str(grayscale_model),
                "--run",
                str(setup["run"]),
                "--dev",
                str(setup["dev"]),
                "--manifest",
                str(setup["manifest"]),
                "-o",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    data = json.loads(out.with_suffix(".json").read_text())
    # make the model worse than gray at 0 hints and better than flat fill at 10 and 50
    for r in data["rows"]:
        if r["method"] == "model":
            r["ciede2000"], r["psnr"] = (99.0, 1.0) if r["hints"] == 0 else (0.1, 60.0)
    truth = data["settings"]["truth_colorfulness"]
    for r in data["rows"]:
        if r["method"] == "model":
            r["colorfulness"] = truth
    data["targets"] = [vars(t) for t in mc.check_targets(data["rows"], "grayscale", truth)]
    md = mc.render_card(data)
    assert "**(a) 0 hints vs gray**: MISSED." in md
    assert "**(b) 10 hints vs flat fill**: met." in md
    assert "**(b) 50 hints vs flat fill**: met." in md
    assert md.count("MISSED") == 1


def test_palette_loop_without_palettes_is_evaluate_models_model_rows(setup, grayscale_model):
    """The palette-lock rows use exactly the evaluation's hints: with no palette they
    must reproduce evaluate_model's 'model' rows."""
    model = load_model(grayscale_model, "cpu")
    opts = ColorizeOptions()
    report = evaluation.evaluate_model(model, setup["dev"], mc.HINT_COUNTS, opts, seed=3)
    pairs, _ = evaluation.load_pairs(setup["dev"], "grayscale", 256)
    rows = mc.evaluate_palette_lock(model, pairs, mc.HINT_COUNTS, [None] * len(pairs), opts, seed=3)
    for r in rows:
        ref = report.row("model", r.hints)
        assert r.ciede2000 == pytest.approx(ref.ciede2000, abs=1e-9)
        assert r.psnr == pytest.approx(ref.psnr, abs=1e-9)
    # and a palette lock does change the result
    locked = mc.evaluate_palette_lock(model, pairs, (0,), [["#ff0000", "#00ff00"]] * 3, opts)
    assert locked[0].ciede2000 != pytest.approx(report.row("model", 0).ciede2000, abs=1e-6)


def test_image_palette_extracts_flat_colors_else_kmeans():
    flat = np.full((60, 90, 3), 255, np.uint8)
    colors = {"#d02020": (0, 30), "#2040c0": (30, 60), "#30a040": (60, 90)}
    for hx, (x0, x1) in colors.items():
        flat[10:50, x0 + 2 : x1 - 2] = [int(hx[i : i + 2], 16) for i in (1, 3, 5)]
    palette, how = mc.image_palette(flat.astype(np.float32) / 255)
    assert how == "extract"
    got = hex_to_lab(palette)
    for hx in colors:  # each flat color is in the palette (within 2 Lab units)
        assert np.min(np.linalg.norm(got - hex_to_lab([hx]), axis=1)) < 2.0
    noise = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    palette, how = mc.image_palette(noise)
    assert how == "kmeans" and len(palette) == mc.KMEANS_COLORS


def test_missing_manifest_is_a_one_line_error(setup, grayscale_model, capsys):
    code = mc.main(
        [
            "--model",
            str(grayscale_model),
            "--run",
            str(setup["run"]),
            "--dev",
            str(setup["dev"]),
            "--manifest",
            str(setup["tmp"] / "nope.json"),
            "-o",
            str(setup["tmp"] / "x.md"),
            "--quiet",
            "--limit",
            "1",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "nope.json: corpus manifest not found" in err and "\n" not in err
    assert not (setup["tmp"] / "x.md").exists()


def test_limit_takes_an_even_spread_of_the_dev_folder(setup, grayscale_model):
    """--limit spreads over the sorted folder (the first N would all be one package)."""
    out = setup["tmp"] / "s.md"
    assert (
        mc.main(
            [
                "--model",
                str(grayscale_model),
                "--run",
                str(setup["run"]),
                "--dev",
                str(setup["dev"]),
                "--manifest",
                str(setup["manifest"]),
                "--limit",
                "2",
                "-o",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["settings"]["image_names"] == ["img_0.png", "img_2.png"]
    assert data["settings"]["data"] == str(setup["dev"])  # not the temporary folder
    assert all(r["images"] == 2 for r in data["rows"])
    assert "(2 of 3, evenly spread over the sorted folder; names in the JSON)" in out.read_text()
    assert mc.pick_evenly(list(range(10)), 4) == [0, 3, 6, 9]


def test_consistency_target_colors_frames_0_and_60_and_compares_their_true_fills(
    tmp_path, grayscale_model
):
    shot = tmp_path / "shot"
    for sub in ("color", "gray"):
        (shot / sub).mkdir(parents=True)
    for i in range(61):
        img = np.full((48, 64, 3), 250, np.uint8)
        img[8:40, 4 + i % 20 : 28 + i % 20] = (210, 60, 50)  # one red fill, moving
        _write_rgb(shot / "color" / f"{i:04d}.png", img)
        gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        _write_rgb(shot / "gray" / f"{i:04d}.png", gray)
    got = mc.measure_consistency(grayscale_model, shot)
    assert got["frames"] == [0, 60] and got["fills"] == 2  # the red fill and the paper
    assert 0.0 <= got["mean_de"] < 100.0
    met = mc.consistency_target({**got, "mean_de": 2.9})
    assert met.met and "2.90 over 2 fills of shot" in met.detail
    assert mc.consistency_target({**got, "mean_de": 3.0}).met is False
    (shot / "gray" / "0060.png").unlink()
    with pytest.raises(InputError, match="need at least 61 frames"):
        mc.measure_consistency(grayscale_model, shot)


def test_training_facts_carried_from_an_earlier_card_when_the_run_is_gone(setup, grayscale_model):
    """--training-from: a card re-measured after its run folder was deleted keeps the
    earlier card's training facts and says where they come from; a file that is no card
    is a one-line error."""
    common = ["--model", str(grayscale_model), "--dev", str(setup["dev"]), "--manifest",
              str(setup["manifest"]), "--quiet", "--limit", "1"]  # fmt: skip
    first = setup["tmp"] / "first.md"
    assert mc.main([*common, "--run", str(setup["run"]), "-o", str(first)]) == 0
    earlier = json.loads(first.with_suffix(".json").read_text())
    again = setup["tmp"] / "again.md"
    code = mc.main([*common, "--training-from", str(first.with_suffix(".json")), "-o", str(again)])
    assert code == 0
    data = json.loads(again.with_suffix(".json").read_text())
    assert data["training"]["carried_from"] == str(first.with_suffix(".json"))
    for key in ("folder", "wall_minutes", "sessions", "checkpoint_step", "config"):
        assert data["training"][key] == earlier["training"][key]
    # the corpus section too: what the model saw, not today's manifest
    assert data["data"]["carried_from"] == str(first.with_suffix(".json"))
    assert data["data"]["packages"] == earlier["data"]["packages"]
    md = again.read_text()
    assert f"carried from `{first.with_suffix('.json')}`" in md and "5.0 min in 2 session" in md
    assert "These data facts were carried from" in md
    # a continuation's card: training facts from its run, the corpus section carried from
    # its base's card, with what the run saw besides
    cont = setup["tmp"] / "cont.md"
    argv = [*common, "--run", str(setup["run"]), "--data-from", str(first.with_suffix(".json")),
            "--data-note", "continued on 3,932 images", "-o", str(cont)]  # fmt: skip
    assert mc.main(argv) == 0
    cdata = json.loads(cont.with_suffix(".json").read_text())
    assert cdata["data"]["carried_from"] == str(first.with_suffix(".json"))
    assert cdata["data"]["packages"] == earlier["data"]["packages"]
    assert "carried_from" not in cdata["training"]
    assert "(continued on 3,932 images)." in cont.read_text()
    grown = json.loads(first.with_suffix(".json").read_text())
    del grown["data"]  # an earlier card without a data section: the manifest's
    old = setup["tmp"] / "old.json"
    old.write_text(json.dumps(grown))
    assert mc.main([*common, "--training-from", str(old), "-o", str(setup["tmp"] / "o.md")]) == 0
    assert "carried_from" not in json.loads((setup["tmp"] / "o.json").read_text())["data"]
    bad = setup["tmp"] / "bad.json"
    bad.write_text("{}")
    assert mc.main([*common, "--training-from", str(bad), "-o", str(setup["tmp"] / "b.md")]) == 2
    with pytest.raises(SystemExit):  # --run and --training-from are one or the other
        mc.parse_args([*common, "--run", "r", "--training-from", "c.json", "-o", "x.md"])


def test_natural_target_measures_only_painted_and_photo_images(setup, grayscale_model):
    kinds = mc.dev_kinds(setup["manifest"])
    assert kinds == {"img_0.png": "drawing", "img_1.png": "drawing", "img_2.png": "photo"}
    model = load_model(grayscale_model, "cpu")
    protocol = evaluation.evaluate_model(
        model, setup["dev"], (0, 10), ColorizeOptions(), size=256, seed=0
    )
    assert [r["image"] for r in protocol.per_image][::6] == ["img_0.png", "img_1.png", "img_2.png"]
    nat = mc.measure_natural(protocol.per_image, kinds)
    assert nat["names"] == ["img_2.png"] and nat["images"] == 1
    # the same numbers as evaluating a folder holding only that image
    alone = setup["tmp"] / "alone"
    alone.mkdir()
    (alone / "img_2.png").symlink_to(setup["dev"] / "img_2.png")
    report = evaluation.evaluate_model(model, alone, (0,), ColorizeOptions(), size=256, seed=0)
    assert [r["method"] for r in nat["rows"]] == ["model", "gray"]
    for r in nat["rows"]:
        assert r == dataclasses.asdict(report.row(r["method"], 0))
    assert nat["truth_colorfulness"] == report.truth_colorfulness
    # none of the card's images of those kinds, or a manifest without per-image kinds
    two = [r for r in protocol.per_image if r["image"] != "img_2.png"]
    none = mc.measure_natural(two, kinds)
    assert none["images"] == 0 and "no card image" in none["why"]
    assert mc.natural_target(none).met is None
    old = json.loads(setup["manifest"].read_text())
    del old["packages"]["pkg-photos"]["dev_kinds"]
    setup["manifest"].write_text(json.dumps(old))
    assert mc.dev_kinds(setup["manifest"]) is None
    unknown = mc.measure_natural(protocol.per_image, None)
    assert "rebuild the corpus" in mc.natural_target(unknown).detail


def test_natural_target_met_when_no_worse_than_gray():
    def result(model_de: float) -> dict:
        rows = [
            {"method": "gray", "hints": 0, "ciede2000": 10.0},
            {"method": "model", "hints": 0, "ciede2000": model_de},
        ]
        return {"images": 4, "rows": rows}

    assert mc.natural_target(result(10.0)).met is True
    assert mc.natural_target(result(9.2)).met is True
    t = mc.natural_target(result(10.3))
    assert t.met is False and "gray - model = -0.30" in t.detail and "4 image(s)" in t.detail


def test_ablation_table_scores_each_arm_on_the_cards_own_images(setup, grayscale_model, tmp_path):
    """--ablation NAME=MODEL: each arm is measured on the card's images with the card's
    protocol; the same model as an arm gives the card's own model rows."""
    other = tmp_path / "other.onnx"
    other.write_bytes(Path(grayscale_model).read_bytes())
    out = tmp_path / "card.md"
    argv = ["--model", str(grayscale_model), "--dev", str(setup["dev"]), "--manifest",
            str(setup["manifest"]), "--quiet", "--limit", "2", "--run", str(setup["run"]),
            "--ablation", "L1 only=" + str(grayscale_model), "--ablation", "+ GAN=" + str(other),
            "--ablation-note", "Continued 400 steps each.", "-o", str(out)]  # fmt: skip
    assert mc.main(argv) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    ab = data["ablation"]
    assert [a["name"] for a in ab["arms"]] == ["L1 only", "+ GAN"] and ab["hints"] == [0, 10, 50]
    mine = {r["hints"]: r for r in data["rows"] if r["method"] == "model"}
    for arm in ab["arms"]:
        assert [r["hints"] for r in arm["rows"]] == [0, 10, 50]
        assert all(r["images"] == 2 for r in arm["rows"])
        for r in arm["rows"]:
            if r["hints"] in mine:  # the card measures 0, 1, 10 and 50 hints
                assert r == mine[r["hints"]]
    md = out.read_text()
    assert "## Ablation" in md and "Continued 400 steps each." in md
    row = next(line for line in md.splitlines() if line.startswith("| L1 only |"))
    assert f"{mine[0]['ciede2000']:.2f} ({mine[0]['colorfulness']:.1f})" in row
    # a malformed or missing arm is a one-line error before anything is measured
    bad = [*argv[:-2], "--ablation", "no-equals-sign", "-o", str(out)]
    assert mc.main(bad) == 2
    with pytest.raises(InputError, match="no model file"):
        mc.parse_arm("x=" + str(tmp_path / "missing.onnx"))
