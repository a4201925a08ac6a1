"""scripts/gpu_train.py on the CPU: pack within a budget, a run, and a resumed run from the
portable checkpoint (the GPU-only defaults overridden after ``--``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from inkhue_engine.errors import InputError
from inkhue_engine.model import load_model

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_train.py"
CPU = ["--device", "cpu", "--amp", "off", "--no-channels-last", "--workers", "0",
       "--val-every", "3", "--grid-images", "0", "--log-every", "1"]  # fmt: skip
TINY = ["--crop-size", "32", "--batch-size", "2", "--channels", "8", "16", "32",
        "--d-channels", "8", "16", "32", "--val-max-images", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def gpu_train():
    spec = importlib.util.spec_from_file_location("gpu_train", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("dev", 2)):
        (root / "grayscale" / split).mkdir(parents=True)
        for i in range(n):
            img = np.full((96, 128, 3), rng.integers(150, 255, 3), np.uint8)
            cv2.circle(img, (64, 48), 30, tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
            cv2.imwrite(str(root / "grayscale" / split / f"im{i}.png"), img)
    return root


def test_pack_shrinks_to_webp_and_refuses_over_budget(gpu_train, corpus, tmp_path, capsys):
    out = tmp_path / "pack"
    assert gpu_train.main(["pack", "--corpus", str(corpus), "--task", "grayscale",
                           "--out", str(out), "--side", "64"]) == 0  # fmt: skip
    files = sorted(p.name for p in (out / "train").iterdir())
    assert len(files) == 6 and files[0].endswith(".webp")
    assert max(cv2.imread(str(out / "train" / files[0])).shape[:2]) == 64
    assert len(list((out / "dev").iterdir())) == 2
    small = tmp_path / "small"
    assert gpu_train.main(["pack", "--corpus", str(corpus), "--task", "grayscale",
                           "--out", str(small), "--budget-mib", "0.0001"]) == 1  # fmt: skip
    assert "over the" in capsys.readouterr().err and not small.exists()
    assert not list(tmp_path.glob(".pack.*"))  # the refused pack is removed
    assert gpu_train.main(["pack", "--corpus", str(tmp_path), "--task", "lineart",
                           "--out", str(small)]) == 2  # fmt: skip


def test_a_shard_packs_every_nth_training_image_and_all_dev(gpu_train, corpus, tmp_path):
    out = tmp_path / "shard"
    assert gpu_train.main(["pack", "--corpus", str(corpus), "--task", "grayscale",
                           "--out", str(out), "--side", "64", "--shard", "1/3"]) == 0  # fmt: skip
    assert sorted(p.name for p in (out / "train").iterdir()) == ["im1.webp", "im4.webp"]
    assert len(list((out / "dev").iterdir())) == 2
    for bad in ("3/3", "-1/2", "1", "a/b"):
        with pytest.raises(SystemExit):  # argparse: a usage error naming --shard
            gpu_train.main(["pack", "--corpus", str(corpus), "--task", "grayscale",
                            "--out", str(out), "--shard", bad])  # fmt: skip


def test_the_default_budget_is_what_the_repo_leaves_of_the_travel_limit(gpu_train, tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("ignored.bin\n")
    for name, mib in (("tracked.bin", 5), ("untracked.bin", 7), ("ignored.bin", 9)):
        (repo / name).write_bytes(b"x" * (2**20 * mib))
    subprocess.run(["git", "-C", str(repo), "add", "tracked.bin"], check=True)
    # what travels: tracked and untracked-but-not-ignored files (and the pack, a checkpoint)
    assert gpu_train.default_budget_mib(repo) == pytest.approx(64 - 5 - 7 - 12 - 1, abs=0.01)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match="git ls-files failed.*--budget-mib"):
        gpu_train.default_budget_mib(plain)


@pytest.mark.slow
def test_run_then_resume_from_the_portable_checkpoint(gpu_train, corpus, tmp_path):
    # as docs/TRAINING.md runs it: the first run on one shard, the resumed run on the other
    pack, other = tmp_path / "pack-0", tmp_path / "pack-1"
    for shard, out in (("0/2", pack), ("1/2", other)):
        args = ["--out", str(out), "--side", "64", "--shard", shard]
        assert gpu_train.main(["pack", "--corpus", str(corpus), "--task", "grayscale", *args]) == 0
    first = tmp_path / "out1"
    assert gpu_train.main(["run", "--task", "grayscale", "--pack", str(pack), "--out", str(first),
                           "--minutes", "5", "--", *CPU, *TINY, "--max-steps", "3",
                           "--color-head", "classification", "--class-prior-images", "3",
                           "--lr-decay", "linear"]) == 0  # fmt: skip
    assert sorted(p.name for p in first.iterdir()) == [
        "config.json",
        "grayscale-portable.pt",
        "grayscale.onnx",
        "log.jsonl",
    ]
    portable = torch.load(first / "grayscale-portable.pt", weights_only=False)
    assert portable["step"] == 3
    assert portable["generator"]["class_head.weight"].dtype == torch.float16
    assert portable["best"]["step"] == 3 and portable["best_ema"] is not None
    assert load_model(first / "grayscale.onnx", "cpu").info.task == "grayscale"

    second = tmp_path / "out2"
    assert gpu_train.main(["run", "--task", "grayscale", "--pack", str(other), "--out", str(second),
                           "--resume-from", str(first / "grayscale-portable.pt"), "--",
                           *CPU, "--max-steps", "6"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (second / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps[0] == 4 and steps[-1] == 6  # continued, not restarted
    cfg = json.loads((second / "config.json").read_text())
    assert cfg["color_head"] == "classification" and cfg["crop_size"] == 32  # first run's options
    assert cfg["data"] == [str(other / "train")]  # but this run's shard
    # the decay follows the new --max-steps: at step 5 of 6, decaying from step 3
    assert [r for r in rows if r["kind"] == "train"][-1]["lr"] == pytest.approx(2e-4 / 3)
    again = torch.load(second / "grayscale-portable.pt", weights_only=False)
    assert again["step"] == 6
    torch.testing.assert_close(again["class_weights"], portable["class_weights"])
    # a lineart run cannot resume a grayscale file
    assert gpu_train.main(["run", "--task", "lineart", "--pack", str(pack), "--out",
                           str(tmp_path / "x"), "--resume-from",
                           str(first / "grayscale-portable.pt")]) == 2  # fmt: skip
