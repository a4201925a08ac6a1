"""Starting and stopping the engine from the panel: an engine already answering at the
address is used (a second one could not bind the port), a start that times out offers Start
engine again, and stopping ends the whole process tree of a wrapper command."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from inkhue.qt import QtCore

FAKE = Path(__file__).parent / "fake_engine.py"
TIMEOUT = 20000


def _command(port_delay: str = "") -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} --port {{port}}{port_delay}"


def test_start_engine_uses_an_engine_already_answering_at_the_address(qtbot, panel, fake_engine):
    widget, model = panel
    assert model.state == "offline"  # the panel has not connected yet
    # this command's engine would bind after 1 s and exit: the port is taken
    widget.command_edit.setText(_command(" --delay 1.0"))
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        widget._start_clicked()
    assert model.state == "connected"
    assert "already answers" in model.message_text
    qtbot.wait(1500)
    assert model.state == "connected" and not model.engine.running()


def test_start_engine_is_offered_again_after_a_start_timeout(qtbot, panel, dead_url):
    widget, model = panel
    widget.url_edit.setText(dead_url)
    widget.command_edit.setText(_command(" --delay 60"))  # never answers within the timeout
    model.engine.timeout_s = 1.5
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        widget._start_clicked()
    assert "did not answer" in model.error
    qtbot.waitUntil(lambda: not model.engine.running(), timeout=TIMEOUT)
    qtbot.wait(200)
    assert model.state == "offline" and widget.start_button.isEnabled()


def test_quitting_stops_the_engine_a_wrapper_command_started(qtbot, panel, dead_url):
    # a shell script activating a venv, `conda run`...: the engine is the wrapper's child
    widget, model = panel
    widget.url_edit.setText(dead_url)
    widget.command_edit.setText(f"sh -c {shlex.quote(_command() + '; echo engine ended')}")
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        widget._start_clicked()
    QtCore.QCoreApplication.instance().aboutToQuit.emit()  # what quitting Krita does
    assert not model.engine.running()
    try:
        with urllib.request.urlopen(dead_url + "/health", timeout=2) as reply:
            still = reply.status
    except OSError:
        still = None
    port = dead_url.rsplit(":", 1)[1]
    orphans = subprocess.run(
        ["pgrep", "-f", f"fake_engine.py --port {port}"], capture_output=True, text=True
    ).stdout.split()
    for pid in orphans:  # clean up what this test started, before asserting
        os.kill(int(pid), signal.SIGTERM)
    assert still is None and not orphans, f"the engine outlived Krita (pids {orphans})"
