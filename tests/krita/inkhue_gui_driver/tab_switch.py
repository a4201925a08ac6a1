"""GUI scenario "tab_switch": the artist switches to another document's tab while the docker
is adding the keyframes of a Colorize animation (issue 14, item 7: data loss).

Run by ``GuiDriver.pick_model`` when the config says ``"scenario": "tab_switch"``; the
driver has already made document A ("inkhue-gui", layer "Ink" with keyframes) and pointed the
docker at the test engine. Steps:

1. make document B ("inkhue-other") in a second tab, with a layer "Art" holding an opaque
   keyframe at frame 0 (the artist's own drawing), then go back to A's tab;
2. click "Colorize animation" on A's "Ink"; as soon as the result layer has two keyframes
   (with ``"early"``: at once, before any result came back), click B's tab
   (``QMdiArea.setActiveSubWindow``, what a tab click does);
3. two seconds later record B's "Art" (pixels, keyframes), the result layer and the docker's
   lines, take a screenshot, and go back to A's tab;
4. wait until the docker is idle and record the result layer's keyframes and pixels, and
   B's "Art" once more.

Everything goes into ``result["tab_switch"]``; the pytest side decides what is right.
"""

from __future__ import annotations

import os
import subprocess
import time

from krita import Krita

from inkhue.qt import QtWidgets

from .scenario import Scenario


def opaque_count(data: bytes) -> int:
    return sum(1 for a in data[3::4] if a)


class TabSwitch(Scenario):
    name = "tab_switch"

    def __init__(self, driver) -> None:
        super().__init__(driver)
        self.other = None
        self.art = None
        self.mdi = None
        self.sub_a = None
        self.sub_b = None
        self.original = b""

    # -- helpers -------------------------------------------------------------------------------

    def active_is(self, doc) -> bool:
        active = Krita.instance().activeDocument()
        return active is not None and active.rootNode().uniqueId() == doc.rootNode().uniqueId()

    def result_layer(self):
        return self.d.doc.nodeByName("InkHue " + self.cfg["model"])

    def result_keys(self) -> list[int]:
        layer = self.result_layer()
        if layer is None:
            return []
        return self.d.keys_of(layer)

    def art_state(self) -> dict:
        w, h = self.cfg["width"], self.cfg["height"]
        data = bytes(self.art.pixelDataAtTime(0, 0, w, h, 0))
        return {
            "unchanged": data == self.original,
            "opaque": opaque_count(data),
            "keys": self.d.keys_of(self.art),
            "layers": [n.name() for n in self.other.rootNode().childNodes()],
        }

    def panel_lines(self) -> dict:
        p = self.d.panel
        return {
            "message": p.message_label.text(),
            "progress": p.progress_bar.format(),
            "error": self.d.model.error,
            "busy": self.d.model.busy,
        }

    # -- steps -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.cfg.get("chunk"):  # several engine jobs, keyframes added chunk by chunk
            self.d.model.ANIMATION_CHUNK = int(self.cfg["chunk"])
        win = Krita.instance().activeWindow()
        self.mdi = win.qwindow().findChild(QtWidgets.QMdiArea)
        self.sub_a = self.mdi.activeSubWindow()
        w, h = self.cfg["width"], self.cfg["height"]
        self.other = Krita.instance().createDocument(w, h, "inkhue-other", "RGBA", "U8", "", 72.0)
        self.other.setPlayBackRange(0, self.cfg["end"])
        win.addView(self.other)
        self.d.later(self.add_art)

    def add_art(self) -> None:
        self.sub_b = self.mdi.activeSubWindow()
        art = self.other.createNode("Art", "paintlayer")
        self.other.rootNode().addChildNode(art, None)
        self.art = art
        self.other.setActiveNode(art)
        self.d.later(self.key_art)

    def key_art(self) -> None:
        if not self.active_is(self.other):
            self.d.fail("document B is not the active one after addView")
            return
        doc, w, h = self.other, self.cfg["width"], self.cfg["height"]
        doc.setCurrentTime(0)
        doc.waitForDone()
        Krita.instance().action("add_blank_frame").trigger()
        doc.waitForDone()
        with open(os.path.join(self.cfg["out"], "other.bin"), "rb") as f:
            self.original = f.read()
        self.art.setPixelData(self.original, 0, 0, w, h)
        doc.refreshProjection()
        self.d.later(self.back_to_a)

    def back_to_a(self) -> None:
        self.out["before"] = self.art_state()
        self.d.log(f"document B's Art before: {self.out['before']}")
        self.mdi.setActiveSubWindow(self.sub_a)
        self.d.wait(lambda: self.active_is(self.d.doc), self.select_ink, "A's tab")

    def select_ink(self) -> None:
        self.d.doc.setActiveNode(self.d.ink)
        self.d.later(self.click)

    def click(self) -> None:
        self.d.log(f"active layer {self.d.doc.activeNode().name()!r}: Colorize animation")
        self.d.panel.animation_button.click()
        if self.cfg.get("early"):  # B's tab at once, before any result can come back
            self.switch_to_b()
            return
        self.d.wait(
            lambda: len(self.result_keys()) >= 2 or not self.d.model.busy,
            self.switch_to_b,
            "two result keyframes",
            120,
        )

    def switch_to_b(self) -> None:
        self.out["keys_at_switch"] = self.result_keys()
        self.out["busy_at_switch"] = self.d.model.busy
        self.d.log(f"clicking B's tab with result keyframes {self.out['keys_at_switch']}")
        self.mdi.setActiveSubWindow(self.sub_b)
        self.out["b_active_after_click"] = self.active_is(self.other)
        self.d.later(self.during, 2000)

    def during(self) -> None:
        self.out["during"] = dict(
            self.art_state(),
            result_keys=self.result_keys(),
            b_active=self.active_is(self.other),
            **self.panel_lines(),
        )
        self.d.log(f"2 s on B's tab: {self.out['during']}")
        path = self.cfg.get("screenshot")
        if path:
            proc = subprocess.run(
                ["import", "-window", "root", path], capture_output=True, text=True, timeout=60
            )
            self.out["screenshot_rc"] = proc.returncode
        self.mdi.setActiveSubWindow(self.sub_a)
        self.back_at = time.monotonic()
        self.d.wait(lambda: not self.d.model.busy, self.after, "the docker idle", 120)

    def after(self) -> None:
        doc = self.d.doc
        keys = self.result_keys()
        self.d.save_frames(self.result_layer(), keys)
        self.out["after"] = dict(
            self.art_state(),
            result_keys=keys,
            **self.panel_lines(),
            layers=[n.name() for n in doc.rootNode().childNodes()],
            current_time=doc.currentTime(),
        )
        self.d.log(f"after: {self.out['after']}")
        self.d.quit(0)
