"""Start engine: a real child process (the fake engine script), watched until /health answers."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from inkhue.engine_process import split_command
from inkhue.qt import QtCore

FAKE = Path(__file__).resolve().parent / "fake_engine.py"
TIMEOUT = 20000


def fake_command(extra: str = "") -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} --port {{port}} {extra}"


def test_split_command_fills_placeholders():
    args = split_command(
        "inkhue serve --host {host} --port {port} --token {token}", "http://127.0.0.1:9001", "abc"
    )
    assert args == ["inkhue", "serve", "--host", "127.0.0.1", "--port", "9001", "--token", "abc"]
    assert split_command("inkhue serve", "localhost")[0] == "inkhue"


def test_start_engine_then_connected(qtbot, panel, dead_url):
    widget, model = panel
    widget.url_edit.setText(dead_url)
    widget.command_edit.setText(fake_command("--delay 0.5"))
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        qtbot.mouseClick(widget.start_button, QtCore.Qt.MouseButton.LeftButton)
    try:
        assert model.state == "connected"
        assert "fake engine listening on" in model.engine.log_tail()
        assert model.models and not model.error
    finally:
        model.engine.stop()
    assert not model.engine.running()


def test_engine_that_exits_shows_its_output(qtbot, panel, dead_url):
    widget, model = panel
    widget.url_edit.setText(dead_url)
    widget.command_edit.setText(fake_command("--no-such-flag"))
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        widget._start_clicked()
    text = widget.error_text.toPlainText()
    assert text.startswith("The engine command `") and "exited with code 2" in text
    assert "unrecognized arguments: --no-such-flag" in text  # the engine's own output
    assert model.state == "offline"


def test_missing_program_is_explained(qtbot, panel, dead_url):
    widget, model = panel
    widget.url_edit.setText(dead_url)
    widget.command_edit.setText("/nonexistent/inkhue serve")
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        widget._start_clicked()
    assert "Could not start the engine command `/nonexistent/inkhue serve`" in (
        widget.error_text.toPlainText()
    )
    assert "full path of `inkhue`" in widget.error_text.toPlainText()


def test_engine_killed_shows_not_running_and_offers_start(qtbot, panel, dead_url):
    """Issue 14 item 10: an engine started from the panel that dies is no longer shown as
    a green "Connected" with Start engine disabled."""
    widget, model = panel
    widget.url_edit.setText(dead_url)
    widget.command_edit.setText(fake_command())
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        widget._start_clicked()
    assert model.state == "connected" and not widget.start_button.isEnabled()
    model.engine.process.kill()
    qtbot.waitUntil(lambda: model.state == "offline", timeout=TIMEOUT)
    assert model.status_text == "Engine not running"
    assert widget.start_button.isEnabled()
    assert widget.message_label.text().startswith("The engine started from this panel exited (code")
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):  # and it starts again
        widget._start_clicked()
    assert model.state == "connected"
    process = model.engine.process
    QtCore.QCoreApplication.instance().aboutToQuit.emit()  # what quitting Krita does
    assert process.state() == QtCore.QProcess.ProcessState.NotRunning


def test_external_engine_that_stops_is_noticed(qtbot, panel, fake_engine):
    widget, model = panel
    model._watch.setInterval(100)
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        widget._connect_clicked()
    assert model.state == "connected"
    fake_engine.kill()
    qtbot.waitUntil(lambda: model.state == "offline", timeout=TIMEOUT)
    assert model.status_text == "Engine not running"
    assert widget.start_button.isEnabled()
