"""A Krita plugin used only by the tests: drives the full Krita GUI (under Xvfb) step by step.

Installed by tests/krita/test_real_krita.py next to the InkHue plugin in a temporary HOME
and enabled in its kritarc. When Krita's window appears it runs a chain of
``QTimer.singleShot`` steps (Krita applies active-layer changes and actions only once
control is back in its event loop, docs/FACTS.md):

1. create an RGBA U8 document, show it, add a layer "Ink" with keyframes at the configured
   times (``add_blank_frame`` + ``setPixelData``), each frame's pixels from a .bin file;
2. show the InkHue docker, point its model at the test engine, pick the model;
3. click "Colorize animation" on the docker and wait until the model is idle;
4. record the new layer's keyframes and pixels, take a screenshot (``import -window root``)
   while the docker is visible, try one undo (a measurement), write ``result.json``, quit.

A watchdog ends Krita (``os._exit``) if anything hangs; the test kills it too.
Configuration: the JSON file named by ``INKHUE_GUI_CONFIG``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import time
import traceback

from krita import Extension, Krita

from inkhue.qt import QtCore, QtWidgets

T0 = time.monotonic()
#: cfg["scenario"] -> (module, class) of the scenarios other than the default animation run
SCENARIOS = {
    "tab_switch": ("tab_switch", "TabSwitch"),
    "keyframes": ("keyframes", "KeyframesScenario"),
    "two_views": ("two_views", "TwoViews"),
    "held_range": ("held_range", "HeldRange"),
    "engine": ("engine_life", "EngineLife"),
}
STEP_MS = 300


class GuiDriver(Extension):
    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.cfg: dict = {}
        self.result: dict = {"log": [], "steps": []}
        self.doc = None
        self.ink = None
        self.colour = None  # the keyframes scenario's colour layer
        self.panel = None
        self.model = None
        self.started = False
        self.finished = False

    # -- plumbing ----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        line = f"[gui {time.monotonic() - T0:6.2f}s] {message}"
        self.result["log"].append(line)
        print(line, flush=True)

    def later(self, fn, ms: int = STEP_MS) -> None:
        def run():
            if self.finished:
                return
            try:
                fn()
            except BaseException:
                self.fail(traceback.format_exc())

        QtCore.QTimer.singleShot(ms, run)

    def wait(self, predicate, then, what: str, timeout_s: float = 60.0, start=None) -> None:
        start = time.monotonic() if start is None else start
        if predicate():
            self.later(then, 10)
        elif time.monotonic() - start > timeout_s:
            self.fail(f"timed out after {timeout_s} s waiting for {what}")
        else:
            self.later(lambda: self.wait(predicate, then, what, timeout_s, start), 100)

    def keys_of(self, node) -> list[int]:
        """The frames 0..end where ``node`` has a keyframe."""
        return [t for t in range(self.cfg["end"] + 1) if node.hasKeyframeAtTime(t)]

    def save_frames(self, node, times, prefix: str = "result") -> None:
        """``node``'s pixels at each of ``times`` into out/<prefix>_<t>.bin, for pytest."""
        w, h = self.cfg["width"], self.cfg["height"]
        for t in times:
            with open(os.path.join(self.cfg["out"], f"{prefix}_{t}.bin"), "wb") as f:
                f.write(bytes(node.pixelDataAtTime(0, 0, w, h, t)))

    def source_unchanged(self) -> list[bool]:
        """Per configured time: whether "Ink" still holds the frame it was given."""
        w, h = self.cfg["width"], self.cfg["height"]
        same = []
        for t in self.cfg["times"]:
            with open(os.path.join(self.cfg["out"], f"frame_{t}.bin"), "rb") as f:
                same.append(bytes(self.ink.pixelDataAtTime(0, 0, w, h, t)) == f.read())
        return same

    def write_result(self) -> None:
        path = os.path.join(self.cfg.get("out", "."), "result.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.result, f, indent=1)
        os.replace(path + ".tmp", path)

    def fail(self, text: str) -> None:
        self.log("FAILED: " + text)
        self.result["exception"] = text
        self.quit(1)

    def quit(self, code: int) -> None:
        if self.finished:
            return
        self.finished = True
        self.result["exit_code"] = code
        self.write_result()
        app = Krita.instance()
        for doc in app.documents():
            doc.setModified(False)
        QtCore.QTimer.singleShot(8000, lambda: os._exit(code))  # if quitting hangs
        action = app.action("file_quit")
        if action is not None:
            action.trigger()
        else:
            os._exit(code)

    # -- steps ---------------------------------------------------------------------------------

    def setup(self) -> None:
        try:
            with open(os.environ["INKHUE_GUI_CONFIG"]) as f:
                self.cfg = json.load(f)
        except (KeyError, OSError, ValueError) as exc:
            print(f"inkhue_gui_driver: no config ({exc}); not driving Krita", flush=True)
            return
        watchdog = float(self.cfg.get("watchdog_s", 240))
        QtCore.QTimer.singleShot(int(watchdog * 1000), lambda: self.fail("watchdog"))
        Krita.instance().notifier().windowCreated.connect(self.window_created)
        self.log("driver set up")

    def createActions(self, window) -> None:  # noqa: N802 - Krita's name
        pass

    def window_created(self) -> None:
        if self.started or not self.cfg:
            return
        self.started = True
        self.log("window created")
        self.later(self.create_document, 1000)

    def create_document(self) -> None:
        app = Krita.instance()
        w, h = self.cfg["width"], self.cfg["height"]
        doc = app.createDocument(w, h, "inkhue-gui", "RGBA", "U8", "", 72.0)
        window = app.activeWindow()
        window.qwindow().setGeometry(
            0, 0, self.cfg.get("screen_w", 1600), self.cfg.get("screen_h", 1000)
        )  # Xvfb has no WM
        window.addView(doc)
        self.doc = doc
        self.log(
            f"document {w}x{h} shown; actions: add_blank_frame="
            f"{app.action('add_blank_frame') is not None}, inkhue_colorize_frame="
            f"{app.action('inkhue_colorize_frame') is not None}, "
            f"inkhue_colorize_animation={app.action('inkhue_colorize_animation') is not None}"
        )
        self.result["actions"] = {
            name: app.action(name) is not None
            for name in ("add_blank_frame", "inkhue_colorize_frame", "inkhue_colorize_animation")
        }
        # The view must be up (back in the event loop) before layers and keyframes.
        self.later(self.add_layer)

    def add_layer(self) -> None:
        doc = self.doc
        doc.setPlayBackRange(0, self.cfg["end"])
        if self.cfg.get("colour_times"):
            # The artist's colour layer (keyframes scenario), made with the source layer:
            # adding a layer once the timeline has keyframes can crash Krita 5.1's
            # animation curves docker (ASSERT "row >= 0").
            self.colour = doc.createNode("Colour", "paintlayer")
            doc.rootNode().addChildNode(self.colour, None)
        ink = doc.createNode("Ink", "paintlayer")
        doc.rootNode().addChildNode(ink, None)
        self.ink = ink
        doc.setActiveNode(ink)
        if self.cfg.get("colour_times"):  # the colour layer's keyframes first
            # (a later step: Krita makes the node just added active once back in its loop)
            self.later(self.select_colour)
            return
        self.later(lambda: self.add_keyframe(0))

    def select_colour(self) -> None:
        self.doc.setActiveNode(self.colour)
        self.later(lambda: self.add_colour_keyframe(0))

    def add_colour_keyframe(self, i: int) -> None:
        """The colour layer's keyframes (``colour_times``, pixels ``colour_{t}.bin``)."""
        times, doc = self.cfg["colour_times"], self.doc
        if i == len(times):
            doc.setActiveNode(self.ink)
            self.later(lambda: self.add_keyframe(0))
            return
        t = times[i]
        doc.setCurrentTime(t)
        doc.waitForDone()
        Krita.instance().action("add_blank_frame").trigger()
        doc.waitForDone()
        with open(os.path.join(self.cfg["out"], f"colour_{t}.bin"), "rb") as f:
            self.colour.setPixelData(f.read(), 0, 0, self.cfg["width"], self.cfg["height"])
        doc.refreshProjection()
        active = doc.activeNode()
        self.log(
            f"colour keyframe at {t}: active {active.name() if active else None!r}, "
            f"animated {self.colour.animated()}"
        )
        self.later(lambda: self.add_colour_keyframe(i + 1))

    def add_keyframe(self, i: int) -> None:
        times = self.cfg["times"]
        if i == len(times):
            self.doc.setCurrentTime(0)
            keys = self.keys_of(self.ink)
            self.log(f"source keyframes {keys}")
            self.result["source_keys"] = keys
            self.later(self.show_docker)
            return
        t = times[i]
        doc = self.doc
        doc.setCurrentTime(t)
        doc.waitForDone()
        Krita.instance().action("add_blank_frame").trigger()
        doc.waitForDone()
        with open(os.path.join(self.cfg["out"], f"frame_{t}.bin"), "rb") as f:
            self.ink.setPixelData(f.read(), 0, 0, self.cfg["width"], self.cfg["height"])
        doc.refreshProjection()
        self.later(lambda: self.add_keyframe(i + 1))

    def show_docker(self) -> None:
        app = Krita.instance()
        names = [d.objectName() for d in app.dockers()]
        docks = [d for d in app.dockers() if d.objectName().startswith("inkhue")]
        self.result["dockers_inkhue"] = [d.objectName() for d in docks]
        self.log(f"{len(names)} dockers; InkHue: {self.result['dockers_inkhue']}")
        if not docks:
            self.fail("the InkHue docker is not registered")
            return
        for other in app.dockers():  # room for the docker in the screenshot
            if other.objectName() not in ("KisLayerBox",) and other not in docks:
                other.hide()
        dock = docks[0]
        dock.setFloating(False)
        dock.show()
        dock.raise_()
        self.panel = dock.findChild(QtWidgets.QWidget, "inkhue_panel")
        if self.panel is None:
            self.fail("the docker has no inkhue_panel widget")
            return
        self.model = self.panel.model
        self.panel.url_edit.setText(self.cfg["url"])
        self.panel.command_edit.setText("inkhue serve --port {port}")
        self.panel.connect_button.click()  # the user's way: edits are applied, then /health
        self.wait(
            lambda: bool(self.model.models) or bool(self.model.error),
            self.pick_model,
            "the docker's model list",
        )

    def pick_model(self) -> None:
        if self.model.error:
            self.fail(f"connect: {self.model.error}")
            return
        combo = self.panel.model_combo
        # what a new artist's docker shows before anything is picked
        self.result["model_combo_before"] = {
            "items": [combo.itemText(i) for i in range(combo.count())],
            "current": combo.currentText(),
        }
        combo.setCurrentIndex(combo.findData(self.cfg["model"]))
        self.log(
            f"docker status: {self.model.status_text!r}; models "
            f"{[combo.itemText(i) for i in range(combo.count())]}; chosen "
            f"{self.model.settings.last_model}"
        )
        self.doc.setActiveNode(self.ink)
        scenario = SCENARIOS.get(self.cfg.get("scenario", ""))
        if scenario is not None:  # its module imported only when it runs
            module, cls = scenario
            getattr(importlib.import_module(f".{module}", __package__), cls)(self).start()
            return
        self.later(self.click_colorize)

    def click_colorize(self) -> None:
        button = self.panel.animation_button
        self.log(
            f"active layer {self.doc.activeNode().name()!r}; clicking "
            f"{button.text()!r} (enabled={button.isEnabled()})"
        )
        self.progress_seen: list = []
        self.model.progress.connect(lambda d, t, text: self.progress_seen.append((d, t, text)))
        button.click()
        self.wait(lambda: not self.model.busy, self.verify, "Colorize animation", 180)

    def verify(self) -> None:
        doc, cfg = self.doc, self.cfg
        name = "InkHue " + cfg["model"]
        new = doc.nodeByName(name)
        self.result["error"] = self.model.error
        self.result["message"] = self.panel.message_label.text()
        self.result["progress"] = [list(p) for p in self.progress_seen[-4:]]
        self.result["layers"] = [n.name() for n in doc.rootNode().childNodes()]
        self.log(
            f"after colorize: message {self.result['message']!r}, error "
            f"{self.model.error!r}, layers {self.result['layers']}"
        )
        if new is None:
            self.fail(f"no layer {name!r}")
            return
        keys = self.keys_of(new)
        self.result["result_keys"] = keys
        self.result["animated"] = bool(new.animated())
        self.save_frames(new, keys)
        unchanged = self.source_unchanged()
        self.result["source_unchanged"] = unchanged
        self.result["current_time"] = doc.currentTime()
        self.log(f"result keyframes {keys}; source unchanged {unchanged}")
        self.later(self.colorize_again)

    def colorize_again(self) -> None:
        """Issue 14 item 8: after Colorize the source is still the active layer, so a
        second Colorize frame reads the source again (not the result)."""
        active = self.doc.activeNode()
        self.result["active_after_animation"] = active.name() if active else None
        self.log(
            f"active layer after Colorize animation: "
            f"{self.result['active_after_animation']!r}; clicking Colorize frame"
        )
        self.panel.mirror_check.setChecked(False)  # "Steadier colors" off: one pass
        self.panel.frame_button.click()
        # As an artist would click again: some time after the result appeared.
        self.wait(
            lambda: not self.model.busy,
            lambda: self.later(self.after_again, 500),
            "Colorize frame",
            60,
        )

    def after_again(self) -> None:
        doc, cfg = self.doc, self.cfg
        active = doc.activeNode()
        again = {
            "layers": [n.name() for n in doc.rootNode().childNodes()],
            "active": active.name() if active else None,
            "error": self.model.error,
            "message": self.panel.message_label.text(),
            "mirror_setting": self.model.settings.mirror,
        }
        new = doc.nodeByName(f"InkHue {cfg['model']} 2")
        if new is not None:
            with open(os.path.join(cfg["out"], "again.bin"), "wb") as f:
                f.write(bytes(new.pixelData(0, 0, cfg["width"], cfg["height"])))
        self.result["colorize_again"] = again
        again["result_bar"] = self.panel.result_label.text()
        self.log(f"after a second Colorize frame: {again}")
        doc.setCurrentTime(cfg["times"][1])  # show a colorized frame in the screenshot
        self.later(self.screenshot, 1500)

    def discard(self) -> None:
        self.panel.discard_button.click()  # issue 14 item 12: one click takes it back
        self.later(self.after_discard)

    def after_discard(self) -> None:
        doc = self.doc
        self.result["after_discard"] = {
            "layers": [n.name() for n in doc.rootNode().childNodes()],
            "message": self.panel.message_label.text(),
            "bar_visible": self.panel.result_box.isVisible(),
        }
        self.log(f"after Discard: {self.result['after_discard']}")
        self.later(self.undo_once)

    def screenshot(self) -> None:
        path = self.cfg.get("screenshot")
        if path:
            proc = subprocess.run(
                ["import", "-window", "root", path], capture_output=True, text=True, timeout=60
            )
            self.result["screenshot"] = {"rc": proc.returncode, "stderr": proc.stderr[-500:]}
            self.log(f"screenshot {path}: rc {proc.returncode}")
        self.later(self.discard)

    def undo_once(self) -> None:
        """Measure what one Edit > Undo takes back (Krita has no undo grouping for scripts)."""
        Krita.instance().action("edit_undo").trigger()
        self.later(self.after_undo, 500)

    def after_undo(self) -> None:
        name = "InkHue " + self.cfg["model"]
        new = self.doc.nodeByName(name)
        keys = self.keys_of(new) if new is not None else None
        w, h = self.cfg["width"], self.cfg["height"]
        same = []
        for t in keys or []:
            with open(os.path.join(self.cfg["out"], f"result_{t}.bin"), "rb") as f:
                same.append(bytes(new.pixelDataAtTime(0, 0, w, h, t)) == f.read())
        self.result["after_one_undo"] = {
            "layers": [n.name() for n in self.doc.rootNode().childNodes()],
            "keys": keys,
            "pixels_unchanged": same,
        }
        self.log(f"after one undo: {self.result['after_one_undo']}")
        self.later(self.training_frames)

    def training_frames(self) -> None:
        """The Train section's "Current animation range" frames: the keyframes of the animated
        layer, and every frame of the range of a group holding a copy of it (its projection
        at each time). Written as RGBA u8 files for the test to compare."""
        from inkhue.errors import PluginError
        from inkhue.krita_io import KritaHost

        app, doc = Krita.instance(), self.doc
        out: dict = {}
        try:
            keys = KritaHost(app, document=doc, source=self.ink).training_frames("animation")
            out["keys"] = [f.name for f in keys]
            for f in keys:
                with open(os.path.join(self.cfg["out"], f"train_{f.name}.bin"), "wb") as fh:
                    fh.write(f.read())
            group = doc.createNode("Scene", "grouplayer")
            doc.rootNode().addChildNode(group, None)
            copy = self.ink.duplicate()
            group.addChildNode(copy, None)
            doc.waitForDone()
            out["copy_animated"] = bool(copy.animated())
            doc.setCurrentTime(2)  # no waitForDone: the switch may still be under way
            frames = KritaHost(app, document=doc, source=group).training_frames("animation")
            out["group"] = [f.name for f in frames]
            out["range"] = [doc.playBackStartTime(), doc.playBackEndTime()]
            for f in frames:
                with open(os.path.join(self.cfg["out"], f"train_group_{f.name}.bin"), "wb") as fh:
                    fh.write(f.read())
            doc.waitForDone()
            out["time_after"] = doc.currentTime()
        except PluginError as exc:
            out["error"] = str(exc)
        self.result["training_frames"] = out
        self.log(f"training frames: {out}")
        self.quit(0)


Krita.instance().addExtension(GuiDriver(Krita.instance()))
