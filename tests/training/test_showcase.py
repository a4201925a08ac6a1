"""The showcase sheets: files written, their size, and what the panels hold."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine.model import load_model
from inkhue_training import showcase as sc


def _cartoon(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 250, np.uint8)
    for _ in range(4):
        color = tuple(int(v) for v in rng.integers(30, 230, 3))
        c = (int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8)))
        r = int(rng.integers(5, min(h, w) // 4))
        cv2.circle(img, c, r, color, -1)
        cv2.circle(img, c, r, (0, 0, 0), 2)
    return img


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    dev = tmp_path / "dev"
    dev.mkdir()
    for i in range(4):
        assert cv2.imwrite(str(dev / f"pkg__a__pic{i}.png"), _cartoon(i, 48, 64)[..., ::-1])
    pro = tmp_path / "prologue"
    for kind in ("color", "gray", "lineart"):
        (pro / kind).mkdir(parents=True)
    for f in (0, 5):
        color = _cartoon(10 + f, 96, 56)
        gray = cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)
        line = np.where(np.all(color == 0, axis=-1), 0, 255).astype(np.uint8)
        for kind, img in (("color", color[..., ::-1]), ("gray", gray), ("lineart", line)):
            assert cv2.imwrite(str(pro / kind / f"{f:04d}.png"), img)
    return {"dev": dev, "prologue": pro, "out": tmp_path / "out"}


@pytest.mark.parametrize(
    ("fixture", "task"), [("grayscale_model", "grayscale"), ("lineart_model", "lineart")]
)
def test_sheets_are_written_at_the_asked_width(request, data, fixture, task):
    model = request.getfixturevalue(fixture)
    written = sc.make_showcase(
        model,
        data["dev"],
        data["prologue"],
        data["out"],
        dev_count=2,
        frames=(0, 5),
        n_hints=10,
        width=400,
        max_bytes=300_000,
    )
    names = sorted(p.name for p, _ in written)
    assert names == sorted(
        [
            f"showcase_{task}_dev.png",
            f"showcase_{task}_prologue_0000.png",
            f"showcase_{task}_prologue_0005.png",
        ]
    )
    for path, how in written:
        assert path.is_file() and 0 < path.stat().st_size <= 300_000
        img = cv2.imread(str(path))
        assert img.shape[1] == 400 and how in ("full color", "256-color palette")
    # dev sheet: title bar + 2 rows of captioned panels (64x48 images at cell width 97)
    dev = cv2.imread(str(data["out"] / f"showcase_{task}_dev.png"))
    cell_w = (400 - sc.GAP * 5) // 4
    row_h = round(cell_w * 48 / 64)
    assert dev.shape[0] == sc.TITLE_H + 2 * (sc.CAPTION_H + row_h + sc.GAP) + sc.GAP


def test_panels_hold_the_images_and_hint_dots(lineart_model, data):
    model = load_model(lineart_model, "cpu")
    examples = sc.dev_examples(model, data["dev"], 2, n_hints=10)
    assert [e.name for e in examples] == ["pic0", "pic3"]  # first and last, evenly
    ex = examples[0]
    assert ex.truth.shape == ex.input_rgb.shape == ex.out0.shape == ex.out_hints.shape
    assert 1 <= len(ex.dots) <= 10
    sheet = sc.compose_sheet(examples, "t", width=600, n_hints=10)
    x, y, w, h = sheet.boxes[0][3]  # ground truth panel of the first row
    want = cv2.resize(ex.truth, (w, h), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(sheet.image[y : y + h, x : x + w].astype(int) - want).mean() < 1.0
    # the hints panel is the hinted output with a dot of the hint's color at each hint
    x, y, w, h = sheet.boxes[0][2]
    panel = sheet.image[y : y + h, x : x + w].astype(int)
    plain = cv2.resize(ex.out_hints, (w, h), interpolation=cv2.INTER_LINEAR).astype(int)
    scale = w / ex.truth.shape[1]
    centres = [(cy * scale, cx * scale, rgb) for cy, cx, rgb in ex.dots]
    checked = 0
    for i, (cy, cx, rgb) in enumerate(centres):
        others = [np.hypot(cy - oy, cx - ox) for j, (oy, ox, _) in enumerate(centres) if j != i]
        if others and min(others) < 2 * sc.HINT_DOT_RADIUS + 6:
            continue  # overlapping dots: the later one covers this one
        py, px = int(round(cy)), int(round(cx))
        assert np.abs(panel[py, px] - np.array(rgb)).max() <= 12
        checked += 1
    assert checked >= 1
    assert np.abs(panel - plain).max() > 100  # the dots are drawn over the output


def test_big_sheets_are_shrunk_under_the_byte_budget():
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    data, how = sc.encode_png(noise, max_bytes=60_000)
    assert len(data) <= 60_000 and "scaled" in how
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] < 400


def test_missing_prologue_frame_is_a_clear_error(grayscale_model, data, capsys):
    code = sc.main(
        [
            "--grayscale-model",
            str(grayscale_model),
            "--prologue",
            str(data["prologue"]),
            "--prologue-frames",
            "7",
            "-o",
            str(data["out"]),
        ]
    )
    assert code == 2
    assert "0007.png: prologue frame not found" in capsys.readouterr().err
