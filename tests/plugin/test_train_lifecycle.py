"""The Train section's edges: Cancel right after the whole upload reached the engine (which
starts the job only once it has saved and checked the frames), and a dataset export into a
folder whose subfolders hold images (`inkhue finetune --data` reads them recursively)."""

from __future__ import annotations

import os
import threading
import time

import fake_engine as fe
import pytest

from inkhue.client import TrainingJob
from inkhue.qt import QtCore
from inkhue_engine.finetune_spec import list_frames

TIMEOUT = 5000


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch):
    monkeypatch.setattr(TrainingJob, "POLL_MS", 20)


def test_cancel_after_the_whole_upload_stops_the_fine_tuning_the_engine_starts(
    qtbot, panel, fake_engine, stub_host, monkeypatch
):
    widget, model = panel
    received = threading.Event()
    original = fe._Handler._post_train

    def slow_post_train(self, rest, query, body):
        # the whole body is here; the real server now writes and checks the frames first
        received.set()
        time.sleep(1.0)
        original(self, rest, query, body)

    monkeypatch.setattr(fe._Handler, "_post_train", slow_post_train)
    with qtbot.waitSignals([model.models_changed, model.trainer.changed], timeout=TIMEOUT):
        widget._connect_clicked()
    widget.show()
    widget.train_button.setChecked(True)
    widget.train_name.setText("studio")
    fake_engine.train_stall = True
    qtbot.mouseClick(widget.train_start, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(received.is_set, timeout=TIMEOUT)
    qtbot.mouseClick(widget.train_cancel, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: model.trainer.state == "idle", timeout=TIMEOUT)
    assert widget.message_label.text() == "Cancelled"
    qtbot.waitUntil(lambda: "train1" in fake_engine.train_jobs, timeout=TIMEOUT)
    qtbot.waitUntil(
        lambda: fake_engine.train_jobs["train1"]["state"] == "cancelled", timeout=TIMEOUT
    )
    assert fake_engine.train_deleted == ["train1"]


def test_export_refuses_a_folder_whose_subfolders_hold_images(
    qtbot, panel, fake_engine, stub_host, tmp_path, monkeypatch
):
    widget, model = panel
    with qtbot.waitSignals([model.models_changed, model.trainer.changed], timeout=TIMEOUT):
        widget._connect_clicked()
    folder = tmp_path / "dataset"
    (folder / "other_production").mkdir(parents=True)
    for k in range(30):  # another show's frames, kept in a subfolder
        (folder / "other_production" / f"shot_{k:03d}.png").write_bytes(b"\x89PNG...")
    monkeypatch.setattr(widget, "ask_export_folder", lambda: str(folder))
    widget.show()
    widget.train_button.setChecked(True)
    widget._train_export_clicked()
    qtbot.waitUntil(lambda: model.trainer.state == "idle", timeout=TIMEOUT)
    assert model.error.startswith("Export dataset:") and "30 image file(s)" in model.error
    assert not [n for n in os.listdir(folder) if n.endswith(".png")]
    assert len(list_frames(folder)) == 30  # what `finetune --data` would have mixed in
