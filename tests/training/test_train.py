"""The training loop end to end on tiny synthetic images: files, resume, Ctrl-C, export."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from inkhue_engine.cli import main as inkhue
from inkhue_training import train as train_mod
from inkhue_training.export import check_parity, generator_from_checkpoint, load_checkpoint
from inkhue_training.options import TrainConfig

TINY = ["--crop-size", "32", "--batch-size", "2", "--channels", "8", "16", "32",
        "--d-channels", "8", "16", "32", "--no-progress", "--grid-images", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Six small synthetic cartoon-like images: flat shapes with dark outlines."""
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(6):
        img = np.full((48, 64, 3), rng.integers(150, 255, 3), np.uint8)
        for _ in range(3):
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            center = (int(rng.integers(8, 56)), int(rng.integers(8, 40)))
            cv2.circle(img, center, int(rng.integers(5, 15)), color, -1)
            cv2.circle(img, center, int(rng.integers(5, 15)), (20, 20, 20), 1)
        cv2.imwrite(str(d / f"img{i}.png"), img)
    return d


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _train(images, run, *extra, task="grayscale"):
    args = ["train", "--data", str(images), "--task", task, "--out", str(run), *TINY, *extra]
    return inkhue(args)


@pytest.mark.slow
def test_three_steps_write_checkpoint_log_grid_and_resume_continues(images, tmp_path):
    run = tmp_path / "run"
    assert _train(images, run, "--max-steps", "3", "--val-every", "2", "--save-every", "2") == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["task"] == "grayscale" and cfg["max_steps"] == 3 and cfg["crop_size"] == 32
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 3
    assert sorted(p.name for p in run.glob("ckpt_*.pt")) == ["ckpt_00000002.pt", "ckpt_00000003.pt"]
    log = _log(run)
    train_steps = [r["step"] for r in log if r["kind"] == "train"]
    assert train_steps[0] == 1 and all(np.isfinite(r["loss_g"]) for r in log if "loss_g" in r)
    vals = [r for r in log if r["kind"] == "val"]
    assert [v["step"] for v in vals] == [2, 3]
    for key in ("psnr", "rmse_ab", "gray_psnr"):
        assert np.isfinite(vals[0]["plain"][key])
    assert np.isfinite(vals[0]["hinted"]["flat_fill_psnr"])
    grid = cv2.imread(str(run / "samples" / "step_00000002.png"))
    assert grid.shape[1] == 4 * 32 and grid.shape[0] % 32 == 0 and grid.shape[0] >= 32

    # resume: continues at step 4 from the saved state, with more allowed steps
    resume = ["train", "--out", str(run), "--resume", "--max-steps", "5", "--no-progress"]
    assert inkhue(resume) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 5
    resumed = [r["step"] for r in _log(run) if r["kind"] == "val"][2:]
    assert resumed == [4, 5]

    # a resumed run may not change what is learned, and a run folder is not reused silently
    assert inkhue(["train", "--out", str(run), "--resume", "--lr", "0.1"]) == 2
    assert _train(images, run, "--max-steps", "1") == 2


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(images, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ("--val-every", "100", "--grid-images", "0")
    assert _train(images, straight, "--max-steps", "4", *common) == 0
    assert _train(images, split, "--max-steps", "2", *common) == 0
    assert inkhue(["train", "--out", str(split), "--resume", "--max-steps", "4"]) == 0
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(split / "last.pt")
    assert a["step"] == b["step"] == 4
    for key in ("generator", "discriminator", "ema"):
        for name, value in a[key].items():
            assert torch.allclose(value.float(), b[key][name].float(), atol=1e-5), (key, name)


def test_bf16_autocast_trains_with_float32_weights_and_resumes_with_amp_changed(images, tmp_path):
    if not train_mod.cpu_bf16_supported():
        pytest.skip("this CPU has no bf16 convolutions")
    run = tmp_path / "bf16"
    assert _train(images, run, "--max-steps", "2", "--amp", "bf16", "--val-every", "2") == 0
    assert json.loads((run / "config.json").read_text())["amp"] == "bf16"
    ckpt = load_checkpoint(run / "last.pt")
    for key in ("generator", "discriminator", "ema"):
        floats = [v for v in ckpt[key].values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float32 for v in floats), key
        assert all(torch.isfinite(v).all() for v in floats), key
    assert all(np.isfinite(r["loss_g"]) for r in _log(run) if "loss_g" in r)
    # how it runs may change on resume: back to full precision
    assert inkhue(["train", "--out", str(run), "--resume", "--max-steps", "3", "--amp", "off"]) == 0
    assert json.loads((run / "config.json").read_text())["amp"] == "off"


def test_bf16_refused_where_the_cpu_cannot_run_it(images, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_mod, "cpu_bf16_supported", lambda: False)
    assert _train(images, tmp_path / "r", "--max-steps", "1", "--amp", "bf16") == 2
    err = capsys.readouterr().err
    assert "--amp bf16" in err and "use --amp off" in err
    with pytest.raises(train_mod.InputError, match="unknown"):
        train_mod.amp_context("fp8", torch.device("cpu"))


@pytest.mark.parametrize("supported", [True, False])
def test_amp_auto_uses_bf16_only_where_the_cpu_runs_it(monkeypatch, supported):
    monkeypatch.setattr(train_mod, "cpu_bf16_supported", lambda: supported)
    with train_mod.amp_context("auto", torch.device("cpu"))():
        assert torch.is_autocast_enabled("cpu") is supported
        if supported:
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with train_mod.amp_context("off", torch.device("cpu"))():
        assert not torch.is_autocast_enabled("cpu")


def test_ctrl_c_saves_and_exits_130(images, tmp_path, monkeypatch):
    calls = []
    real = train_mod.color_l1

    def l1_then_interrupt(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "color_l1", l1_then_interrupt)
    run = tmp_path / "run"
    assert _train(images, run, "--max-steps", "10", "--task", "lineart") == 130
    assert load_checkpoint(run / "last.pt")["step"] == 2
    assert not list(run.glob(".*.tmp"))  # no half-written files


def test_ema_lags_the_raw_generator_and_is_what_export_uses(images, tmp_path):
    run = tmp_path / "run"
    assert _train(images, run, "--max-steps", "2", "--lr", "0.01", "--val-every", "100") == 0
    ckpt = load_checkpoint(run / "last.pt")
    ema = generator_from_checkpoint(ckpt, use_ema=True)
    raw = generator_from_checkpoint(ckpt, use_ema=False)
    diffs = [
        (p - q).abs().max().item()
        for p, q in zip(ema.state_dict().values(), raw.state_dict().values(), strict=True)
        if p.is_floating_point()
    ]
    assert max(diffs) > 1e-4  # the EMA is an average, not a copy


@pytest.mark.slow
def test_export_command_writes_the_ema_generator(images, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(images, run, "--max-steps", "2", "--lr", "0.01", "--val-every", "100") == 0
    out = tmp_path / "m.onnx"
    assert inkhue(["export", str(run), "-o", str(out), "--trained-on", "circles"]) == 0
    assert "max abs diff" in capsys.readouterr().out
    ckpt = load_checkpoint(run / "last.pt")
    assert check_parity(generator_from_checkpoint(ckpt, use_ema=True), out) < 1e-3
    with pytest.raises(Exception, match="differ"):
        check_parity(generator_from_checkpoint(ckpt, use_ema=False), out)


@pytest.mark.slow
def test_torchrun_gloo_two_processes(images, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "inkhue_training.train", "--data", str(images), "--task", "lineart",
           "--out", str(run), *TINY, "--max-steps", "2", "--val-every", "2",
           "--max-minutes", "5"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) on cpu" in proc.stderr
    assert load_checkpoint(run / "last.pt")["step"] == 2
    log = _log(run)
    assert [r["step"] for r in log if r["kind"] == "train"] == [1]  # rank 0 only logs
    assert len([r for r in log if r["kind"] == "val"]) == 1


def test_config_round_trips(tmp_path):
    cfg = TrainConfig(data=["a"], task="lineart", channels=[8, 16, 32], out=str(tmp_path))
    cfg.save(tmp_path)
    assert TrainConfig.load(tmp_path) == cfg


@pytest.mark.slow
def test_sigterm_saves_even_when_started_with_sigint_ignored(images, tmp_path):
    """A run started in the background (SIGINT ignored) and stopped by a scheduler's SIGTERM
    still saves its last steps and exits 130."""
    import signal
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "inkhue_engine.cli", "train", "--data", str(images),
           "--task", "grayscale", "--out", str(run), "--max-steps", "100000",
           "--log-every", "1", *TINY]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            log = run / "log.jsonl"
            if log.exists() and sum(1 for _ in log.open()) >= 3:
                break
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out.decode(errors="replace")[-2000:]
    steps = [e["step"] for e in _log(run) if e.get("kind") == "train"]
    assert load_checkpoint(run / "last.pt")["step"] >= max(steps)


def test_validation_psnr_is_the_engines():
    from inkhue_engine import metrics
    from inkhue_training import train

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (8, 9, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert train._psnr(a, b) == metrics.psnr(a, b)
    assert train._psnr(a, a) == train.PSNR_CAP  # an exact match keeps the mean finite


@pytest.mark.slow
def test_a_run_killed_before_its_first_save_resumes_from_best_and_keeps_its_split(
    images, tmp_path, monkeypatch
):
    data = tmp_path / "data"
    data.mkdir()
    for p in images.iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    monkeypatch.chdir(tmp_path)  # --data given relative: config.json keeps it absolute
    run = tmp_path / "run"
    args = ["--max-steps", "2", "--val-every", "1", "--val-fraction", "0.34", "--grid-images", "0"]
    assert inkhue(["train", "--data", "data", "--task", "grayscale", "--out", str(run),
                   *TINY, *args]) == 0  # fmt: skip
    assert json.loads((run / "config.json").read_text())["data"] == [str(data.resolve())]
    held = (run / "val_files.txt").read_text().splitlines()
    assert len(held) == 2 and all(p.startswith(str(data.resolve())) for p in held)
    # as if killed before its first periodic save: best.pt (a full checkpoint) only
    (run / "last.pt").unlink()
    for p in run.glob("ckpt_*.pt"):
        p.unlink()
    assert _train(images, run, "--max-steps", "1") == 2  # a new run may not overwrite it
    # images added to --data since: the hold-out stays out of training
    for i in range(6):
        (data / f"new{i}.png").write_bytes((images / f"img{i}.png").read_bytes())
    kept, _ = train_mod.split_files(TrainConfig.load(run), held)[1:]
    assert sorted(map(str, kept)) == sorted(held)
    monkeypatch.chdir(images)  # resumed from elsewhere: the same folders
    assert inkhue(["train", "--out", str(run), "--resume", "--max-steps", "3"]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 3
    assert (run / "val_files.txt").read_text().splitlines() == held


@pytest.mark.slow
def test_resume_keeps_a_best_checkpoint_newer_than_the_last_save(images, tmp_path):
    run = tmp_path / "run"
    assert _train(images, run, "--max-steps", "2", "--val-every", "1", "--grid-images", "0") == 0
    # best.pt written after last.pt's save (a kill between them): an unbeatable score
    best = torch.load(run / "best.pt", weights_only=True)
    best["best"] = {**best["best"], "value": -1.0, "step": 2}
    torch.save(best, run / "best.pt")
    last = torch.load(run / "last.pt", weights_only=True)
    last["best"] = {**last["best"], "value": 1e9}
    torch.save(last, run / "last.pt")
    assert inkhue(["train", "--out", str(run), "--resume", "--max-steps", "3"]) == 0
    assert load_checkpoint(run / "best.pt")["best"]["value"] == -1.0


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--log-every", "0", "--log-every 0: use 1 or more"),
        ("--batch-size", "0", "--batch-size 0: use 1 or more"),
        ("--save-every", "-1", "--save-every -1: use 0 or more"),
        ("--crop-size", "60", "--crop-size 60: use a multiple of 8 of at least 16"),
    ],
)
def test_bad_option_values_are_one_line_errors(images, tmp_path, capsys, flag, value, words):
    args = ["train", "--data", str(images), "--task", "grayscale", "--out", str(tmp_path / "r"),
            *TINY, "--max-steps", "1", flag, value]  # fmt: skip
    assert inkhue(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"inkhue: error: {words}"]
