"""GUI scenario "keyframes": Colorize animation from the artist's colored keyframes (issue 10).

The driver has made the grayscale source layer "Ink" with keyframes at ``times``.
1. the driver has also made a layer "Colour" with ONE keyframe, at the first time: the
   artist's colored frame (``colour_0.bin``, config ``colour_times``);
2. choose "Layer 'Colour'" in the docker's Keyframes picker, click Colorize animation;
   record the result layer's keyframes and pixels (``keyed_{t}.bin``);
3. open a second document holding the colored frame (a model sheet, twice the size),
   choose it in the picker, go to the last time and click Colorize frame; record the
   new layer's pixels (``sheet_result.bin``); quit.
The pytest side compares colors with the truth frames.
"""

from __future__ import annotations

import os
import subprocess

from krita import Krita

from .scenario import Scenario


class KeyframesScenario(Scenario):
    name = "keyframes"

    def path(self, name: str) -> str:
        return os.path.join(self.cfg["out"], name)

    def start(self) -> None:
        if self.cfg.get("chunk"):  # small chunks: keyframes and colors cross chunk borders
            self.d.model.ANIMATION_CHUNK = int(self.cfg["chunk"])
        self.colour = self.d.colour  # made by the driver with the source (colour_times)
        self.d.later(self.choose_layer)

    def choose_layer(self) -> None:
        keys = self.d.keys_of(self.colour)
        self.out["colour_keys"] = keys
        self.pick("layer:Colour")
        self.d.log(f"keyframes picker: {self.out['items']}; chosen {self.d.model.keyframes!r}")
        self.d.panel.animation_button.click()
        self.d.wait(lambda: not self.d.model.busy, self.after_animation, "Colorize animation", 180)

    def pick(self, value: str) -> None:
        panel = self.d.panel
        panel.refresh_button.click()  # the artist's way to list a new layer or document
        combo = panel.keyframe_combo
        self.out["items"] = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
        combo.setCurrentIndex(combo.findData(value))
        self.out.setdefault("chosen", []).append(self.d.model.keyframes)

    def after_animation(self) -> None:
        doc, cfg, model = self.d.doc, self.cfg, self.d.model
        name = "InkHue " + cfg["model"]
        new = doc.nodeByName(name)
        self.out["animation"] = {
            "error": model.error,
            "message": self.d.panel.message_label.text(),
            "layers": [n.name() for n in doc.rootNode().childNodes()],
        }
        self.d.log(f"after Colorize animation from keyframes: {self.out['animation']}")
        if new is None:
            self.d.fail(f"no layer {name!r}: {self.out['animation']}")
            return
        keys = self.d.keys_of(new)
        self.out["result_keys"] = keys
        self.d.save_frames(new, keys, "keyed")
        doc.setCurrentTime(cfg["times"][1])  # a frame colored from the keyframe
        self.d.later(self.screenshot, 1500)

    def screenshot(self) -> None:
        path = self.cfg.get("screenshot")
        if path:
            proc = subprocess.run(
                ["import", "-window", "root", path], capture_output=True, text=True, timeout=60
            )
            self.out["screenshot_rc"] = proc.returncode
        self.d.panel.keep_button.click()
        self.d.later(self.open_sheet)

    def open_sheet(self) -> None:
        app, cfg = Krita.instance(), self.cfg
        w, h = 2 * cfg["width"], 2 * cfg["height"]
        sheet = app.createDocument(w, h, "model-sheet", "RGBA", "U8", "", 72.0)
        paint = sheet.createNode("Paint", "paintlayer")
        sheet.rootNode().addChildNode(paint, None)
        with open(self.path("sheet.bin"), "rb") as f:
            paint.setPixelData(f.read(), 0, 0, w, h)
        sheet.refreshProjection()
        sheet.waitForDone()
        self.sheet = sheet
        self.d.doc.setCurrentTime(cfg["times"][-1])
        self.d.doc.setActiveNode(self.d.ink)
        self.d.later(self.choose_sheet)

    def choose_sheet(self) -> None:
        from inkhue.krita_io import KritaHost

        self.pick("document:" + KritaHost._key(self.sheet))
        self.d.log(f"keyframes picker: {self.out['items']}; chosen {self.d.model.keyframes!r}")
        self.d.panel.frame_button.click()
        self.d.wait(lambda: not self.d.model.busy, self.after_sheet, "Colorize frame", 120)

    def after_sheet(self) -> None:
        doc, cfg, model = self.d.doc, self.cfg, self.d.model
        self.out["sheet"] = {
            "error": model.error,
            "message": self.d.panel.message_label.text(),
            "layers": [n.name() for n in doc.rootNode().childNodes()],
        }
        self.d.log(f"after Colorize frame from the model sheet: {self.out['sheet']}")
        new = doc.nodeByName(f"InkHue {cfg['model']} 2")
        if new is not None:
            with open(self.path("sheet_result.bin"), "wb") as f:
                f.write(bytes(new.pixelData(0, 0, cfg["width"], cfg["height"])))
        self.sheet.setModified(False)
        self.d.quit(0)
