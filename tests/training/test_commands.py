"""The training commands in the ``inkhue`` CLI: registered, and cheap to list."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inkhue_engine.cli import build_parser, main


def test_train_and_export_are_registered():
    parser = build_parser()
    args = parser.parse_args(["export", "run", "-o", "m.onnx"])
    assert args.command == "export" and callable(args.func)
    args = parser.parse_args(["train", "--data", "d", "--task", "lineart", "--out", "r"])
    assert args.task == "lineart" and args.data == ["d"] and not args.resume
    assert "lr" not in vars(args)  # unset options stay unset (so --resume can tell)


def test_commands_module_does_not_import_torch():
    code = (
        "import sys, inkhue_training.commands, inkhue_engine.cli as c; c.build_parser(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_without_data_or_task_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--data", str(tmp_path)]) == 2
    assert "--task" in capsys.readouterr().err


def test_export_of_a_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("flag", ["--data", "--val"])
def test_missing_data_folder_is_named(tmp_path, capsys, flag):
    import cv2
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    cv2.imwrite(str(data / "a.png"), np.zeros((8, 8, 3), np.uint8))
    gone = str(tmp_path / "nowhere")
    args = ["train", "--out", str(tmp_path / "r"), "--task", "grayscale"]
    args += ["--data", gone] if flag == "--data" else ["--data", str(data), "--val", gone]
    assert main(args) == 2
    assert f"{gone}: no such image folder" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "export"])
def test_without_the_training_extra_says_what_to_install(command, tmp_path, capsys, monkeypatch):
    # inkhue_training is in every install of inkhue; torch only with the 'train' extra
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch: ModuleNotFoundError
    argv = {
        "train": ["train", "--data", str(tmp_path), "--task", "grayscale", "--out", "r"],
        "export": ["export", str(tmp_path / "last.pt"), "-o", str(tmp_path / "m.onnx")],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"'inkhue {command}' needs the training extra (missing: torch" in err
    assert "pip install 'inkhue[train]'" in err
    assert "Traceback" not in err
