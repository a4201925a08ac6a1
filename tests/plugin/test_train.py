"""The docker's Train section offscreen, against the fake engine's /train and a stub host."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from conftest import colour_frame

from inkhue.client import TrainingJob
from inkhue.qt import QtCore, QtWidgets

Qt = QtCore.Qt
TIMEOUT = 5000


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch):
    monkeypatch.setattr(TrainingJob, "POLL_MS", 20)


def click(qtbot, button) -> None:
    assert button.isEnabled(), f"{button.objectName()} is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def connect(qtbot, widget, model) -> None:
    """Connect, and wait for both /models and /train answers."""
    with qtbot.waitSignals([model.models_changed, model.trainer.changed], timeout=TIMEOUT):
        click(qtbot, widget.connect_button)


def open_train(qtbot, widget) -> None:
    widget.show()
    if not widget.train_box.isVisible():
        click(qtbot, widget.train_button)
    assert widget.train_box.isVisible()


def posts(engine) -> list:
    return [r for r in engine.requests if r[:2] == ("POST", "/train")]


def decode_png(data: bytes) -> bytes:
    """RGBA bytes of a PNG file, decoded by OpenCV (not by the Qt that encoded it)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.shape[2] == 4
    return img[..., [2, 1, 0, 3]].tobytes()


def wait_idle(qtbot, model) -> None:
    qtbot.waitUntil(lambda: model.trainer.state == "idle", timeout=TIMEOUT)


def test_section_explains_why_when_training_is_unavailable(qtbot, panel, fake_engine):
    widget, model = panel
    open_train(qtbot, widget)
    assert widget.train_reason.isVisible() and not widget.train_form.isVisible()
    assert "Connect to the engine" in widget.train_reason.text()
    fake_engine.train_available = False
    fake_engine.train_error = (
        "fine-tuning needs the training extra (missing: torch): pip install 'inkhue[train]'"
    )
    connect(qtbot, widget, model)
    assert widget.train_reason.isVisible() and not widget.train_form.isVisible()
    assert widget.train_reason.text() == fake_engine.train_error
    assert not widget.error_box.isVisibleTo(widget)  # not an error: an explanation
    # An engine from before /train: says to update it.
    fake_engine.has_train = False
    with qtbot.waitSignal(model.trainer.changed, timeout=TIMEOUT):
        model.trainer.refresh_info()
    assert "cannot fine-tune (no /train): update it" in widget.train_reason.text()
    # Available: the form shows, with the installed bases and the engine's default steps.
    fake_engine.has_train, fake_engine.train_available = True, True
    fake_engine.train_defaults["steps"] = 250
    with qtbot.waitSignal(model.trainer.changed, timeout=TIMEOUT):
        model.trainer.refresh_info()
    assert widget.train_form.isVisible() and not widget.train_reason.isVisible()
    assert [widget.train_base.itemText(i) for i in range(widget.train_base.count())] == [
        "Grayscale"
    ]  # line art is not installed
    assert widget.train_steps.value() == 250
    assert widget.train_start.isEnabled() and widget.train_export.isEnabled()
    assert not widget.train_cancel.isEnabled() and not widget.train_progress.isVisible()


@pytest.mark.parametrize(
    "case", ["too few", "too small", "duplicates", "cmyk", "no name", "bad name", "name taken"]
)
def test_bad_sets_are_refused_before_anything_is_uploaded(
    qtbot, panel, fake_engine, stub_host, case
):
    widget, model = panel
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    widget.train_name.setText("studio")
    expected = {
        "too few": "3 frame(s): fine-tuning needs at least 4 coloured frames",
        "too small": "frame 0 of layer 'Colour' of 'stub.kra' is 15x20 px, smaller than the "
        "16-px training crop of the grayscale base",
        "duplicates": "Only 2 different frame(s) (3 repeated the same picture): fine-tuning "
        "needs at least 4 different coloured frames",
        "cmyk": "Document 'x.kra' is in CMYKA colours: InkHue reads RGB or grayscale",
        "no name": "Give the new model a name",
        "bad name": "Model name '../evil': use 1-64 letters",
        "name taken": "A model named 'toon-lines' is already installed (toon-lines.onnx)",
    }[case]
    if case == "too few":
        stub_host.set_training_frames(3, 24, 20)
    elif case == "too small":
        stub_host.set_training_frames(5, 15, 20)
    elif case == "duplicates":
        stub_host.set_training_frames(5, 24, 20, seeds=[0, 1, 1, 0, 1])
    elif case == "cmyk":
        stub_host.train_error = expected
    elif case == "no name":
        widget.train_name.setText("  ")
    elif case == "bad name":
        widget.train_name.setText("../evil")
    elif case == "name taken":
        widget.train_name.setText("toon-lines")
    click(qtbot, widget.train_start)
    qtbot.waitUntil(lambda: bool(model.error), timeout=TIMEOUT)
    assert widget.error_text.toPlainText().startswith(expected)
    assert widget.error_box.isVisibleTo(widget)
    assert posts(fake_engine) == [] and fake_engine.train_posts == []
    wait_idle(qtbot, model)
    assert widget.train_start.isEnabled()
    if case != "duplicates":  # refused on the list alone: no pixel was even read
        assert stub_host.train_reads == 0


def test_training_flow_selects_the_new_model_with_its_palette(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    widget.train_name.setText("studio")
    widget.train_steps.setValue(4)
    widget.train_source.setCurrentIndex(widget.train_source.findData("documents"))
    seen = []
    model.trainer.progress.connect(lambda done, total, text: seen.append((done, total, text)))
    click(qtbot, widget.train_start)
    assert not widget.train_start.isEnabled() and widget.train_cancel.isEnabled()
    assert widget.train_progress.isVisible()
    qtbot.waitUntil(lambda: model.trainer.result is not None, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: widget.model_combo.currentData() == "studio", timeout=TIMEOUT)
    assert model.error == "" and stub_host.train_sources == ["documents"]
    # What was uploaded: 5 PNG file parts in order (decoding to the frames) + the options.
    [post] = fake_engine.train_posts
    assert post["content_type"].startswith("multipart/form-data; boundary=")
    assert post["options"] == {"name": "studio", "base": "grayscale", "steps": 4}
    assert [name for name, _ in post["frames"]] == [f"{k:04d}_stub_f{k:04d}.png" for k in range(5)]
    for k, (_name, png) in enumerate(post["frames"]):
        assert decode_png(png) == colour_frame(24, 20, k)
    # Progress: reading, uploading, step / total, the later phases, done.
    texts = [text for _d, _t, text in seen]
    assert seen[:5] == [(k, 5, f"Reading frame {k + 1}/5") for k in range(5)]
    size = sum(len(png) for _name, png in post["frames"])
    assert size < 100_000 and texts[5] == f"Uploading 5 frames ({max(1, round(size / 1e3))} kB)"
    assert seen[6:] == [
        (0, 0, "Starting the fine-tuning"),
        (0, 4, "Training step 0/4"),
        (2, 4, "Training step 2/4"),
        (4, 4, "Exporting the model"),
        (4, 4, "Checking on held-out frames"),
        (4, 4, "Done"),
    ]
    assert not widget.train_progress.isVisible() and widget.train_start.isEnabled()
    # Done: the list was refreshed, the new model is selected, its palette shown.
    assert [m["name"] for m in model.models][-1] == "studio"
    assert model.settings.last_model == "studio"
    assert "Fine-tuned model 'studio' is ready" in widget.message_label.text()
    result = widget.train_result.text()
    assert "Model 'studio' is ready" in result
    assert "base 21.5, base + palette 19.0, fine-tuned 8.2, fine-tuned + palette 7.5" in result
    assert widget.train_swatches.isVisible()
    image = widget.train_swatches.pixmap().toImage()
    assert [image.pixelColor(8 + 16 * i, 8).name() for i in range(3)] == fake_engine.train_palette
    index = widget.model_combo.currentIndex()
    tooltip = widget.model_combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert "#e65037 #468cdc #fad25a" in tooltip
    assert not widget.model_combo.itemIcon(index).isNull()
    assert widget.model_combo.itemIcon(0).isNull()  # toon-gray has no palette
    assert widget.palette_combo.currentText() == "Model's palette (3 colours)"
    # The model's palette is the default (no palette parameter), and can be switched off.
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.frame_button)
    call = fake_engine.colorize_calls[-1]
    assert call["query"]["model"] == "studio" and "palette" not in call["query"]
    widget.palette_combo.setCurrentIndex(widget.palette_combo.findData("none"))
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.frame_button)
    assert fake_engine.colorize_calls[-1]["query"]["palette"] == "none"
    # The choices are remembered.
    s = model.settings
    assert (s.train_name, s.train_base, s.train_source) == ("studio", "grayscale", "documents")


def test_cancel_sends_delete(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    widget.train_name.setText("studio")
    fake_engine.train_stall = True
    click(qtbot, widget.train_start)
    qtbot.waitUntil(
        lambda: fake_engine.train_jobs.get("train1", {}).get("step") == 1, timeout=TIMEOUT
    )
    assert widget.train_cancel.isEnabled()
    click(qtbot, widget.train_cancel)
    wait_idle(qtbot, model)
    assert fake_engine.train_deleted == ["train1"]
    assert ("DELETE", "/train/train1", {}) in fake_engine.requests
    assert fake_engine.train_jobs["train1"]["state"] == "cancelled"
    assert widget.message_label.text() == "Cancelled" and model.error == ""
    assert "studio" not in [m["name"] for m in model.models]
    assert model.trainer.result is None and widget.train_start.isEnabled()


def test_cancel_while_reading_uploads_nothing(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    widget.train_name.setText("studio")
    stub_host.set_training_frames(300, 24, 20)
    click(qtbot, widget.train_start)
    qtbot.waitUntil(lambda: stub_host.train_reads >= 2, timeout=TIMEOUT)
    click(qtbot, widget.train_cancel)
    wait_idle(qtbot, model)
    reads = stub_host.train_reads
    qtbot.wait(100)
    assert stub_host.train_reads == reads < 300  # stopped reading
    assert fake_engine.train_posts == [] and widget.message_label.text() == "Cancelled"


def test_cancel_while_the_upload_is_answered_stops_the_started_job(
    qtbot, panel, fake_engine, stub_host
):
    widget, model = panel
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    widget.train_name.setText("studio")
    fake_engine.train_answer_delay_s = 2.0  # the job runs before the answer comes
    click(qtbot, widget.train_start)
    qtbot.waitUntil(lambda: "train1" in fake_engine.train_jobs, timeout=TIMEOUT)
    click(qtbot, widget.train_cancel)
    wait_idle(qtbot, model)
    assert widget.message_label.text() == "Cancelled"
    qtbot.waitUntil(lambda: fake_engine.train_deleted == ["train1"], timeout=TIMEOUT)
    assert fake_engine.train_jobs["train1"]["state"] == "cancelled"


def test_server_errors_show_in_the_error_area(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    widget.train_name.setText("studio")
    fake_engine.train_fail = (
        400,
        "uploaded frames: none of the 5 frames has color: "
        "fine-tuning learns a production's colors from its colored "
        "frames",
    )
    click(qtbot, widget.train_start)
    qtbot.waitUntil(lambda: bool(model.error), timeout=TIMEOUT)
    wait_idle(qtbot, model)
    assert widget.error_text.toPlainText() == fake_engine.train_fail[1]
    assert len(fake_engine.train_posts) == 1
    QtWidgets.QApplication.clipboard().clear()
    click(qtbot, widget.copy_button)
    assert QtWidgets.QApplication.clipboard().text() == fake_engine.train_fail[1]
    # A failure during training (the subprocess's error line) lands there too.
    fake_engine.train_fail = None
    fake_engine.train_fail_at = 2
    model.clear_error()
    click(qtbot, widget.train_start)
    qtbot.waitUntil(lambda: bool(model.error), timeout=TIMEOUT)
    assert widget.error_text.toPlainText() == "out of memory: lower batch_size"
    wait_idle(qtbot, model)
    assert widget.train_start.isEnabled() and model.trainer.result is None


def test_a_running_fine_tuning_is_followed_after_a_reconnect(qtbot, panel, fake_engine):
    widget, model = panel
    fake_engine.train_jobs["train7"] = {
        "id": "train7",
        "name": "night-shift",
        "state": "running",
        "phase": "training",
        "step": 0,
        "total": 4,
        "losses": None,
        "error": None,
        "model": None,
        "palette": None,
        "held_out_check": None,
        "seconds": 0.0,
    }
    connect(qtbot, widget, model)
    assert model.trainer.state == "training"
    qtbot.waitUntil(lambda: widget.model_combo.currentData() == "night-shift", timeout=TIMEOUT)
    assert model.trainer.result["model"] == "night-shift" and model.error == ""


def test_export_dataset_writes_pngs_of_the_frames(
    qtbot, panel, fake_engine, stub_host, tmp_path, monkeypatch
):
    widget, model = panel
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image: allowed")
    monkeypatch.setattr(widget, "ask_export_folder", lambda: str(folder))
    stub_host.set_training_frames(6, 24, 20, seeds=[0, 1, 2, 2, 3, 4])  # one repeat
    click(qtbot, widget.train_export)
    wait_idle(qtbot, model)
    qtbot.waitUntil(lambda: "Exported" in widget.message_label.text(), timeout=TIMEOUT)
    assert model.error == ""
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    assert names == [
        "0000_stub_f0000.png",
        "0001_stub_f0001.png",
        "0002_stub_f0002.png",
        "0003_stub_f0004.png",
        "0004_stub_f0005.png",
    ]
    assert not [n for n in os.listdir(folder) if n.startswith(".")]  # no temp files left
    mask = os.umask(0)
    os.umask(mask)
    for name in names:  # issue 14 item 15: readable like any file the artist saves
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~mask
    for name, seed in zip(names, [0, 1, 2, 3, 4], strict=True):
        img = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
        assert img.shape == (20, 24, 4)
        assert img[..., [2, 1, 0, 3]].tobytes() == colour_frame(24, 20, seed)
    assert f'inkhue finetune --data "{folder}" --base grayscale' in widget.message_label.text()
    assert fake_engine.train_posts == []  # exporting uploads nothing
    # A folder that already holds images is refused (finetune would train on them too).
    stub_host.train_reads = 0
    click(qtbot, widget.train_export)
    assert widget.error_text.toPlainText().startswith(
        f"Export dataset: {folder} already holds 5 image file(s)"
    )
    assert stub_host.train_reads == 0


def test_train_choices_are_bound_properties(qtbot, panel, fake_engine, stub_host):
    """Issue 14 item 6 for the Train section: its widgets are bound to the panel model's
    declared properties, like the rest of the panel (no hand-written setters)."""
    widget, model = panel
    fake_engine.train_defaults["steps"] = 250
    connect(qtbot, widget, model)
    open_train(qtbot, widget)
    # the engine's default steps show until the artist sets a number
    assert model.train_steps == 250 and widget.train_steps.value() == 250
    widget.train_steps.setValue(40)
    assert model.train_steps == 40
    fake_engine.train_defaults["steps"] = 900
    with qtbot.waitSignal(model.trainer.changed, timeout=TIMEOUT):
        model.trainer.refresh_info()
    assert widget.train_steps.value() == 40  # the artist's number stays
    # widget -> model (and settings) at once; model -> widget without an echo
    widget.train_name.setText("night-shift")
    assert model.train_name == "night-shift" and model.settings.train_name == "night-shift"
    model.train_source = "documents"
    assert widget.train_source.currentData() == "documents"
    # a saved base the engine does not have: the first installed base is shown and used
    model.train_base = "lineart"  # not installed on the fake engine
    assert model.settings.train_base == "lineart"
    assert model.train_base == "grayscale" and widget.train_base.currentData() == "grayscale"
