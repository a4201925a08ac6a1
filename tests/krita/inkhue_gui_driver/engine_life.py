"""GUI scenario "engine": the engine started from the docker, killed, started again, and
Krita quit (issue 14 item 10).

1. Start engine (the docker's button) with the configured command; wait for "Connected";
2. kill the engine (SIGKILL, as a crash or the OOM killer would); the docker must show it
   is not running and offer Start engine again;
3. Start engine again; record its process id; quit Krita. The pytest side checks that
   this process is gone once Krita has exited.

The command starts the engine under ``setsid`` so that it is not in Krita's process group:
the test harness kills that group after Krita exits, which would hide an engine left
running.
"""

from __future__ import annotations

import os
import signal

from .scenario import Scenario


class EngineLife(Scenario):
    name = "engine"

    def status(self) -> dict:
        p, m = self.d.panel, self.d.model
        return {
            "state": m.state,
            "status": m.status_text,
            "start_enabled": p.start_button.isEnabled(),
            "message": p.message_label.text(),
            "error": m.error,
        }

    def start(self) -> None:
        # The docker is connected to the test's engine: point it at a free port first.
        p = self.d.panel
        p.url_edit.setText(self.cfg["engine_url"])
        p.command_edit.setText(self.cfg["engine_command"])
        p.connect_button.click()
        self.d.wait(
            lambda: self.d.model.state == "offline",
            self.click_start,
            "'not connected' on a free port",
            30,
        )

    def click_start(self) -> None:
        p = self.d.panel
        if not p.start_button.isEnabled():
            self.d.fail("Start engine is disabled while nothing runs")
            return
        p.start_button.click()
        self.d.wait(
            lambda: self.d.model.state == "connected" or bool(self.d.model.error),
            self.kill,
            "the started engine",
            120,
        )

    def kill(self) -> None:
        m = self.d.model
        self.out["first"] = dict(self.status(), pid=int(m.engine.process.processId()))
        self.d.log(f"engine started: {self.out['first']}")
        if m.state != "connected":
            self.d.fail(f"Start engine: {m.error}")
            return
        os.kill(self.out["first"]["pid"], signal.SIGKILL)
        self.d.wait(lambda: m.state == "offline", self.killed, "'not running' after a kill", 20)

    def killed(self) -> None:
        self.out["after_kill"] = self.status()
        self.d.log(f"after the kill: {self.out['after_kill']}")
        self.d.panel.start_button.click()
        self.d.wait(
            lambda: self.d.model.state == "connected" or bool(self.d.model.error),
            self.restarted,
            "the engine started again",
            120,
        )

    def restarted(self) -> None:
        m = self.d.model
        self.out["second"] = dict(self.status(), pid=int(m.engine.process.processId()))
        self.d.log(f"engine started again: {self.out['second']}; quitting Krita")
        self.d.quit(0)
