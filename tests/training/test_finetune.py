"""Fine-tuning on a studio's frames: palette extraction, dataset checks, base checkpoints,
and ``inkhue finetune`` end to end on a tiny base (its ONNX metadata, card and /models)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine.cli import main as inkhue
from inkhue_engine.color import delta_e_2000, hex_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.palette import extract_palette, palette_colors

#: The flat colors the synthetic frames are painted with (sRGB), biggest shapes first.
FLAT = [(230, 80, 60), (70, 140, 220), (250, 210, 90)]
PAPER, INK = (255, 255, 255), (20, 20, 20)


def draw_frame(rng: np.random.Generator, h: int = 64, w: int = 80, line: int = 1) -> np.ndarray:
    """An RGB uint8 frame: white paper, three flat shapes (decreasing size) with dark outlines."""
    img = np.full((h, w, 3), PAPER, np.uint8)
    for k, color in enumerate(FLAT):
        r = int(min(h, w) * (0.24 - 0.05 * k))
        center = (int(rng.integers(r + 2, w - r - 2)), int(rng.integers(r + 2, h - r - 2)))
        cv2.circle(img, center, r, color, -1)
        cv2.circle(img, center, r, INK, line)
    return img


def write_frames(folder: Path, n: int, seed: int = 0, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"frame{i}.png"), draw_frame(rng, **kw)[..., ::-1])
    return folder


def _de(hex_color: str, rgb: tuple[int, int, int]) -> float:
    ref = hex_to_lab(["#" + "".join(f"{v:02x}" for v in rgb)])[0]
    return float(delta_e_2000(hex_to_lab([hex_color])[0], ref))


def _nearest(palette: list[str], rgb) -> float:
    return min(_de(c, rgb) for c in palette)


# ----------------------------------------------------------------------------- palette
def test_palette_holds_the_flat_colors_not_paper_or_lines():
    rng = np.random.default_rng(0)
    frames = [draw_frame(rng, 128, 160, line=3) for _ in range(4)]
    palette = extract_palette(frames)
    assert len(palette) == len(FLAT), palette
    for color in FLAT:
        assert _nearest(palette, color) < 1.5, (color, palette)
    assert _nearest(palette, PAPER) > 10 and _nearest(palette, INK) > 10
    # sorted by coverage: the biggest shape's color first
    assert _de(palette[0], FLAT[0]) < 1.5
    # with neutrals: paper and ink follow the fills (the palette lock needs them)
    full = palette_colors(frames)
    assert [c.role for c in full] == ["fill"] * 3 + ["paper", "ink"]
    assert extract_palette(frames, neutrals=True)[3:] == [full[3].hex, full[4].hex]
    assert _de(full[3].hex, PAPER) < 1.5 and _de(full[4].hex, INK) < 3


def test_palette_merges_near_colors_ignores_transparency_and_caps_the_count():
    img = np.full((100, 100, 4), 255, np.uint8)
    img[:, :50, :3] = (200, 40, 40)
    img[:, 50:, :3] = (202, 42, 41)  # a shade no eye tells apart: one color
    alpha = img.copy()
    alpha[:30, :, :3] = (0, 200, 0)
    alpha[:30, :, 3] = 0  # transparent green: not used
    palette = extract_palette([img, alpha])
    assert len(palette) == 1 and _de(palette[0], (201, 41, 40)) < 1.5
    assert extract_palette([draw_frame(np.random.default_rng(3), 128, 128)], max_colors=2) \
        == extract_palette([draw_frame(np.random.default_rng(3), 128, 128)])[:2]  # fmt: skip
    with pytest.raises(InputError):
        extract_palette([])


# ----------------------------------------------------------------------------- checks
def test_finetune_module_and_server_do_not_import_torch():
    code = (
        "import sys, inkhue_training.finetune, inkhue_engine.server; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_frame_extensions_match_the_training_loader():
    from inkhue_training.data import IMAGE_EXTENSIONS
    from inkhue_training.finetune import FRAME_EXTENSIONS

    assert tuple(FRAME_EXTENSIONS) == tuple(IMAGE_EXTENSIONS)


def _broken(folder: Path) -> Path:
    write_frames(folder, 5)
    (folder / "frame9.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return folder


def _gray(folder: Path) -> Path:
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"g{i}.png"), np.full((64, 64), 40 * i, np.uint8))
    return folder


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "nowhere", "no such folder of colored frames"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no frames"),
        (lambda d: write_frames(d / "few", 3), "3 frame(s); fine-tuning needs at least 4"),
        (lambda d: _broken(d / "broken"), "frame frame9.png: the PNG file is truncated"),
        (lambda d: write_frames(d / "small", 5, h=24, w=40), "smaller than the 32-px"),
        (lambda d: _gray(d / "gray"), "none of the 5 frames has color"),
    ],
)
def test_bad_datasets_are_refused_before_training(tmp_path, capsys, monkeypatch, bases_env,
                                                  make, needle):  # fmt: skip
    import inkhue_training.train as train_mod

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(train_mod, "train", no_training)
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(tmp_path / "models"))
    data = make(tmp_path)
    assert inkhue(["finetune", "--data", str(data), "--name", "x", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1  # one clear line
    assert not (tmp_path / "models" / "x.onnx").exists()


def test_base_resolution_errors(tmp_path, monkeypatch):
    from inkhue_training.finetune import MissingBaseError, resolve_base

    monkeypatch.setenv("INKHUE_BASE_CHECKPOINTS", str(tmp_path))
    with pytest.raises(MissingBaseError, match="pack-base"):
        resolve_base("lineart")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(InputError, match="ONNX model cannot be fine-tuned"):
        resolve_base(str(tmp_path / "m.onnx"))
    with pytest.raises(InputError, match="no last.pt"):
        resolve_base(str(tmp_path))
    with pytest.raises(InputError, match="no such checkpoint"):
        resolve_base(str(tmp_path / "nope.pt"))


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65, "é"])
def test_bad_model_names_are_refused(name):
    from inkhue_training.finetune import check_model_name

    with pytest.raises(InputError, match="model name"):
        check_model_name(name)


def test_existing_model_is_not_overwritten(tmp_path, capsys, monkeypatch, bases_env):
    models = tmp_path / "models"
    models.mkdir()
    (models / "studio.onnx").write_bytes(b"keep me")
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(models))
    data = write_frames(tmp_path / "frames", 4)
    assert inkhue(["finetune", "--data", str(data), "--name", "studio", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (models / "studio.onnx").read_bytes() == b"keep me"


def test_a_model_of_the_same_name_made_meanwhile_is_kept_and_no_card_is_left(
    tmp_path, capsys, monkeypatch, bases_env
):
    # two fine-tunings of one name at once: the name was free when this one started, but
    # another run wrote its model while this one trained
    from inkhue_training import finetune as ft

    models = tmp_path / "models"
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(models))
    real = ft.model_card

    def meanwhile(*args, **kwargs):
        models.mkdir(exist_ok=True)
        (models / "studio.onnx").write_bytes(b"the other run's model")
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "model_card", meanwhile)
    data = write_frames(tmp_path / "frames", 4)
    code = inkhue(["finetune", "--data", str(data), "--name", "studio", "--base", "grayscale",
                   "--steps", "2", "--batch-size", "2", "--quiet"])  # fmt: skip
    assert code == 2
    assert "studio.onnx: appeared while this was being made" in capsys.readouterr().err
    assert (models / "studio.onnx").read_bytes() == b"the other run's model"
    assert sorted(p.name for p in models.iterdir()) == ["studio.onnx"]  # no card of ours


# ----------------------------------------------------------------------------- base checkpoints
def test_shipped_base_round_trip_and_pack_from_a_run_checkpoint(tmp_path):
    import torch
    from torch.optim.swa_utils import AveragedModel

    from inkhue_training.export import tiny_generator
    from inkhue_training.finetune import load_base, pack_base
    from inkhue_training.networks import Discriminator, Generator

    gen = tiny_generator("lineart", seed=2)
    ema = AveragedModel(gen, use_buffers=True)
    with torch.no_grad():  # the EMA differs from the raw weights: pack must take the EMA
        for p in ema.module.parameters():
            p.add_(0.5)
    disc = Discriminator("lineart", channels=(8, 16, 32))
    run = tmp_path / "myrun"
    run.mkdir()
    torch.save({
        "generator_kwargs": {"task": "lineart", "channels": (8, 16, 32), "n_res": 5},
        "discriminator_kwargs": {"task": "lineart", "channels": (8, 16, 32)},
        "generator": gen.state_dict(), "ema": ema.state_dict(),
        "discriminator": disc.state_dict(), "step": 42,
        "config": {"crop_size": 96, "trained_on": "corpus X"},
    }, run / "last.pt")  # fmt: skip
    out = pack_base(run, tmp_path / "lineart.pt", with_discriminator=True)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["task"] == "lineart" and side["train_size"] == 96 and side["name"] == "myrun"
    base = load_base(out)
    assert base.trained_on == "corpus X" and base.discriminator_kwargs["channels"] == (8, 16, 32)
    rebuilt = Generator(**base.generator_kwargs)
    rebuilt.load_state_dict(base.generator)
    for (k, v), ref in zip(rebuilt.state_dict().items(), ema.module.state_dict().values(),
                           strict=True):  # fmt: skip
        assert torch.equal(v, ref), k
    small = pack_base(out, tmp_path / "small.pt")  # re-pack without the discriminator
    assert load_base(small).discriminator is None
    assert small.stat().st_size < out.stat().st_size


class _RunsCode:
    """Unpickling this calls ``Path.touch(marker)``: what a hostile .pt could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_base_checkpoint_cannot_run_code(tmp_path):
    # a .pt handed to `inkhue finetune --base` may come from anywhere: torch's full
    # unpickler would run what it names; weights_only refuses it
    import torch

    from inkhue_training.finetune import load_base

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save(
        {"format": "inkhue-base-checkpoint", "generator_kwargs": {}, "payload": _RunsCode(marker)},
        evil,
    )
    with pytest.raises(InputError, match="evil.pt: not a readable training checkpoint"):
        load_base(evil)
    assert not marker.exists()


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_finetune_writes_model_palette_card_and_is_listed(tmp_path, monkeypatch, bases_env):
    from fastapi.testclient import TestClient

    from inkhue_engine.model import read_model_info
    from inkhue_engine.server import ServerConfig, create_app

    models = tmp_path / "models"
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(models))
    data = write_frames(tmp_path / "studio", 10)  # 10 frames: one is held out for the check
    progress = tmp_path / "progress.jsonl"
    work = tmp_path / "work"
    work.mkdir()
    code = inkhue(["finetune", "--data", str(data), "--base", "grayscale", "--steps", "3",
                   "--batch-size", "2", "--quiet", "--progress-jsonl", str(progress),
                   "--work-dir", str(work)])  # fmt: skip
    assert code == 0
    assert list(work.iterdir()) == []  # temp files removed
    onnx, card = models / "studio.onnx", models / "studio.md"
    info = read_model_info(onnx)
    assert info.name == "studio" and info.task == "grayscale" and info.train_size == 32
    assert "tiny-base" in info.trained_on and "9 frames" in info.trained_on
    fills, neutrals = info.palette[:3], info.palette[3:]
    for color in FLAT:
        assert _nearest(fills, color) < 1.5, (color, info.palette)
    assert neutrals and all(min(_de(c, PAPER), _de(c, INK)) < 3 for c in neutrals)

    events = [json.loads(line) for line in progress.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3]
    assert events[0]["held_out"] == ["frame4.png"] and events[0]["frames"] == 9
    done = events[-1]
    assert done["palette"] == info.palette and set(done["held_out_check"]) == {
        "base", "base+palette", "finetuned", "finetuned+palette"}  # fmt: skip
    assert all(np.isfinite(v) for v in done["held_out_check"].values())

    text = card.read_text()
    for needle in ("tiny-base", str(data.resolve()), "10 frames", "3 steps", "wall time",
                   "hardware", info.palette[0], "frame4.png", "finetuned+palette",
                   "lr 0.001"):  # fmt: skip
        assert needle in text, needle  # lr: no --lr, the grayscale base's default

    with TestClient(create_app(ServerConfig(device="cpu")),
                    base_url="http://127.0.0.1:8765") as client:  # fmt: skip
        listed = {m["name"]: m for m in client.get("/models").json()}
    assert listed["studio"]["palette"] == info.palette
    assert listed["studio"]["trained_on"] == info.trained_on
