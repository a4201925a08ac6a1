"""Start the engine (``inkhue serve`` by default) from the panel, and wait until it answers.

The command is a setting: a full path is needed when ``inkhue`` is not on the PATH that
Krita sees (e.g. ``/home/me/.venv/bin/inkhue serve``). ``{host}``, ``{port}`` and
``{token}`` in it are replaced by the panel's server address and token, so that the
engine listens where the panel looks. Output (stdout and stderr merged) is kept, and
its last lines are part of the error when the engine exits or never answers.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections import deque
from urllib.parse import urlsplit

from .client import EngineClient, Result
from .qt import QtCore, Signal

DEFAULT_COMMAND = "inkhue serve"


def split_command(command: str, base_url: str, token: str = "") -> list[str]:
    """The engine command as an argument list, placeholders filled in.

    Raises ValueError with a user-facing line for an empty or unparsable command.
    """
    parts = urlsplit(base_url if "://" in base_url else "http://" + base_url)
    values = {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 8765),
        "token": token or "",
    }
    try:
        args = shlex.split(command, posix=os.name != "nt")
    except ValueError as exc:
        raise ValueError(f"The engine command `{command}` cannot be parsed: {exc}") from None
    if not args:
        raise ValueError("The engine command is empty: set it in the panel (e.g. inkhue serve)")
    out = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


def _descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, their children... (POSIX, via pgrep; [] else)."""
    if os.name != "posix" or pid <= 0:
        return []
    try:
        out = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=2
        ).stdout
    except (OSError, subprocess.SubprocessError):  # no pgrep: only the direct child is stopped
        return []
    found = []
    for word in out.split():
        if word.isdigit():
            found += [int(word)] + _descendants(int(word))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _signal(pids: list[int], sig, only_alive_after_s: float = 0.0) -> None:
    """Send ``sig`` to ``pids``; with ``only_alive_after_s``, to those still alive then."""
    if only_alive_after_s:
        deadline = QtCore.QDeadlineTimer(int(only_alive_after_s * 1000))
        while any(_alive(p) for p in pids) and not deadline.hasExpired():
            QtCore.QThread.msleep(50)
    for pid in pids:
        if only_alive_after_s and not _alive(pid):
            continue  # ended (its number may be reused by now)
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # it ended meanwhile (or its number went to another user's process)


class EngineProcess(QtCore.QObject):
    """A QProcess running the engine, watched until ``GET /health`` answers.

    Signals: ``ready()`` once the engine answers, ``failed(message)`` if it does not start,
    exits before answering or stays silent for ``timeout_s``; ``stopped(message)`` when it
    exits after it was ready; ``output(text)`` for each chunk it prints.

    The engine started here is stopped when the application quits (``aboutToQuit``): it
    would otherwise keep its port and memory after Krita is gone.
    """

    ready = Signal()
    failed = Signal(str)
    stopped = Signal(str)
    output = Signal(str)

    POLL_MS = 500

    def __init__(self, client: EngineClient, timeout_s: float = 90.0, parent=None) -> None:
        super().__init__(parent)
        self.client = client
        self.timeout_s = timeout_s
        self.process: QtCore.QProcess | None = None
        self.lines: deque[str] = deque(maxlen=200)
        self._waiting = False
        self._command = ""
        self._elapsed = QtCore.QElapsedTimer()
        self._poll_timer = QtCore.QTimer(self)
        self._poll_timer.setSingleShot(True)
        self._poll_timer.timeout.connect(self._poll)
        self._ready = False
        app = QtCore.QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(list(self.lines)[-lines:])

    def running(self) -> bool:
        return (
            self.process is not None
            and self.process.state() != QtCore.QProcess.ProcessState.NotRunning
        )

    def start(self, command: str, base_url: str, token: str = "") -> None:
        """Run ``command``; emits ``ready`` or ``failed`` later (never blocks)."""
        if self.running():
            self.failed.emit("The engine started from this panel is still running")
            return
        try:
            args = split_command(command, base_url, token)
        except ValueError as exc:
            self.failed.emit(str(exc))
            return
        self._command = command
        self.lines.clear()
        process = QtCore.QProcess(self)
        process.setProcessChannelMode(QtCore.QProcess.ProcessChannelMode.MergedChannels)
        env = QtCore.QProcessEnvironment.systemEnvironment()
        if token:
            env.insert("INKHUE_TOKEN", token)
        env.insert("PYTHONUNBUFFERED", "1")
        # the engine stops when its stdin closes: when Krita exits, even by a crash (the
        # engine's parent_watch; QProcess keeps the write channel open until then)
        env.insert("INKHUE_STOP_ON_STDIN_EOF", "1")
        process.setProcessEnvironment(env)
        process.readyReadStandardOutput.connect(self._read)
        process.errorOccurred.connect(self._error)
        process.finished.connect(self._finished)
        self.process = process
        self._waiting = True
        self._ready = False
        self._elapsed.start()
        process.start(args[0], args[1:])
        self._poll_timer.start(self.POLL_MS)

    def stop(self) -> None:
        """Terminate the engine started here (kill after 3 s)."""
        self._waiting = False
        self._ready = False  # a stop asked for is not news
        self._poll_timer.stop()
        if self.running():
            # A wrapper command (a shell script, `conda run`...) runs the engine as its
            # child: signal the whole tree, or the engine outlives Krita with its port.
            family = _descendants(int(self.process.processId()))
            self.process.terminate()
            _signal(family, signal.SIGTERM)
            if not self.process.waitForFinished(3000):
                self.process.kill()
                self.process.waitForFinished(3000)
            _signal(family, getattr(signal, "SIGKILL", signal.SIGTERM), only_alive_after_s=3.0)

    # -- internals ---------------------------------------------------------------------------

    def _read(self) -> None:
        text = bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            self.lines.append(line)
        self.output.emit(text)

    def _fail(self, message: str, stop: bool = False) -> None:
        if not self._waiting:
            return
        self._waiting = False
        self._poll_timer.stop()
        if stop:  # before `failed`: the panel offers Start engine only when none runs
            self.stop()
        tail = self.log_tail()
        self.failed.emit(message + (f"\nEngine output:\n{tail}" if tail else ""))

    def _error(self, error) -> None:
        if error == QtCore.QProcess.ProcessError.FailedToStart:
            self._fail(
                f"Could not start the engine command `{self._command}`: is InkHue installed? "
                "Set the full path of `inkhue` in the engine command (e.g. "
                "/path/to/venv/bin/inkhue serve)"
            )

    def _finished(self, code: int, status=None) -> None:
        if self.process is not None:
            self._read()
        if self._ready:
            self._ready = False
            tail = self.log_tail(5)
            self.stopped.emit(
                f"The engine started from this panel exited (code {code}): "
                "click Start engine to run it again" + (f"\nEngine output:\n{tail}" if tail else "")
            )
            return
        self._fail(f"The engine command `{self._command}` exited with code {code}")

    def _poll(self) -> None:
        if not self._waiting:
            return
        if self._elapsed.elapsed() > self.timeout_s * 1000:
            self._fail(
                f"The engine command `{self._command}` did not answer at "
                f"{self.client.base_url} within {self.timeout_s:.0f} s",
                stop=True,
            )
            return
        self.client.health(self._health)

    def _health(self, result: Result) -> None:
        if not self._waiting:
            return
        if result.ok:
            self._waiting = False
            self._ready = True
            self.ready.emit()
        else:
            self._poll_timer.start(self.POLL_MS)
