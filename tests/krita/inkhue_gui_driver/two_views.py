"""GUI scenario "two_views": the artist works in a second view of the same document
(Window > New View) while the first view has another layer selected.

Krita's ``Document.activeNode()`` returns the current layer of the document's FIRST view,
while ``Document.setActiveNode`` and the timeline actions act on the active window's active
view. Steps:

1. in document A's first view, make a layer "Sketch" (with one opaque keyframe at frame 0)
   and leave it selected there;
2. open a second view of A (``Window.addView``), select "Ink" in it (the layer to colorize);
3. click "Colorize animation" and wait until the docker is idle;
4. record the docker's lines, every layer's keyframes and whether Ink and Sketch are
   unchanged, and the result layer's pixels per keyframe.

Everything goes into ``result["two_views"]``; the pytest side decides what is right.
"""

from __future__ import annotations

from krita import Krita

from inkhue.qt import QtWidgets

from .scenario import Scenario


class TwoViews(Scenario):
    name = "two_views"

    def __init__(self, driver) -> None:
        super().__init__(driver)
        self.sketch = None
        self.sketch_pixels = b""

    def start(self) -> None:
        if self.cfg.get("chunk"):
            self.d.model.ANIMATION_CHUNK = int(self.cfg["chunk"])
        doc = self.d.doc
        sketch = doc.createNode("Sketch", "paintlayer")
        doc.rootNode().addChildNode(sketch, None)
        self.sketch = sketch
        doc.setActiveNode(sketch)
        self.d.later(self.key_sketch)

    def key_sketch(self) -> None:
        doc, w, h = self.d.doc, self.cfg["width"], self.cfg["height"]
        doc.setCurrentTime(0)
        doc.waitForDone()
        Krita.instance().action("add_blank_frame").trigger()
        doc.waitForDone()
        self.sketch_pixels = bytes([40, 80, 200, 255]) * (w * h)
        self.sketch.setPixelData(self.sketch_pixels, 0, 0, w, h)
        doc.refreshProjection()
        self.d.later(self.second_view)

    def second_view(self) -> None:
        win = Krita.instance().activeWindow()
        self.out["views_before"] = len(win.views())
        win.addView(self.d.doc)
        self.d.later(self.select_ink)

    def select_ink(self) -> None:
        doc = self.d.doc
        doc.setActiveNode(self.d.ink)
        self.d.later(self.click)

    def click(self) -> None:
        doc = self.d.doc
        win = Krita.instance().activeWindow()
        views = [v for v in win.views() if v.document() == doc]
        active = win.activeView()
        self.out["views_of_doc"] = len(views)
        self.out["active_is_second"] = bool(views) and active == views[-1]
        self.out["doc_active_node"] = doc.activeNode().name() if doc.activeNode() else None
        self.out["view_selected"] = [n.name() for n in active.selectedNodes()]
        mdi = win.qwindow().findChild(QtWidgets.QMdiArea)
        self.out["subwindows"] = len(mdi.subWindowList()) if mdi is not None else None
        self.d.log(f"two views: {self.out}")
        self.d.panel.animation_button.click()
        self.d.wait(lambda: not self.d.model.busy, self.after, "Colorize animation", 150)

    def after(self) -> None:
        doc, cfg = self.d.doc, self.cfg
        w, h = cfg["width"], cfg["height"]
        result = doc.nodeByName("InkHue " + cfg["model"])
        keys = self.d.keys_of(result) if result is not None else []
        self.d.save_frames(result, keys)
        active = doc.activeNode()
        self.out["after"] = {
            "error": self.d.model.error,
            "message": self.d.panel.message_label.text(),
            "layers": [n.name() for n in doc.rootNode().childNodes()],
            "result_keys": keys,
            "ink_keys": self.d.keys_of(self.d.ink),
            "ink_unchanged": self.d.source_unchanged(),
            "sketch_keys": self.d.keys_of(self.sketch),
            "sketch_unchanged": bytes(self.sketch.pixelDataAtTime(0, 0, w, h, 0))
            == self.sketch_pixels,
            "view_selected": [
                n.name() for n in Krita.instance().activeWindow().activeView().selectedNodes()
            ],
            "doc_active_node": active.name() if active else None,
        }
        self.d.log(f"after: {self.out['after']}")
        self.d.quit(0)
