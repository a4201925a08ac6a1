"""GUI scenario "held_range": the playback range starts on a frame where the source layer
holds an earlier keyframe (the shot begins mid-hold).

Krita's ``Node.pixelDataAtTime`` at a held frame returns empty bytes (docs/FACTS.md), while
the timeline shows the held drawing there, and Colorize animation colorizes the range's
first frame too. Steps:

1. record what ``pixelDataAtTime`` gives at the source's first keyframe and at the held
   frame where the range will start (the Krita fact);
2. set the playback range to start at ``cfg["range_start"]``, click "Colorize animation"
   and wait until the docker is idle;
3. record the docker's lines, the result layer's keyframes and pixels, and whether the
   source is unchanged.

Everything goes into ``result["held_range"]``; the pytest side decides what is right.
"""

from __future__ import annotations

from .scenario import Scenario


class HeldRange(Scenario):
    name = "held_range"

    def start(self) -> None:
        doc, ink = self.d.doc, self.d.ink
        w, h, start = self.cfg["width"], self.cfg["height"], self.cfg["range_start"]
        first = self.cfg["times"][0]
        self.out["bytes_at_key"] = len(bytes(ink.pixelDataAtTime(0, 0, w, h, first)))
        self.out["bytes_at_held"] = len(bytes(ink.pixelDataAtTime(0, 0, w, h, start)))
        doc.setPlayBackRange(start, self.cfg["end"])
        self.d.later(self.click)

    def click(self) -> None:
        doc = self.d.doc
        self.out["range"] = [doc.playBackStartTime(), doc.playBackEndTime()]
        self.d.log(f"held range: {self.out}")
        self.d.panel.animation_button.click()
        self.d.wait(lambda: not self.d.model.busy, self.after, "Colorize animation", 150)

    def after(self) -> None:
        doc = self.d.doc
        result = doc.nodeByName("InkHue " + self.cfg["model"])
        keys = self.d.keys_of(result) if result is not None else []
        self.d.save_frames(result, keys)
        self.out["after"] = {
            "error": self.d.model.error,
            "message": self.d.panel.message_label.text(),
            "result_keys": keys,
            "ink_keys": self.d.keys_of(self.d.ink),
            "ink_unchanged": self.d.source_unchanged(),
        }
        self.d.log(f"after: {self.out['after']}")
        self.d.quit(0)
