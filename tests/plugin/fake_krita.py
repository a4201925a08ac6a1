"""A small stub of Krita's Python API (``krita`` module) for unit tests of krita_io.

It mimics what the real API does in the cases the plugin uses (measured in Krita 5.1.5,
docs/FACTS.md): pixelData is a rectangle of the layer's full-size buffer in the layer's byte
layout, ``addChildNode(child, above)`` inserts directly above ``above`` (None = on top),
``setColorSpace`` needs a real profile, keyframes exist only where the ``add_blank_frame``
action put them (or where a test set them up). The real Krita tests (tests/krita) check
the same behaviour against Krita itself.
"""

from __future__ import annotations

import itertools
import struct

DEPTH_BYTES = {"U8": 1, "U16": 2, "F16": 2, "F32": 4}
CHANNELS = {"RGBA": 4, "GRAYA": 2, "CMYKA": 5, "LABA": 4, "XYZA": 4}
_ids = itertools.count(1)


def _linear(profile: str) -> bool:
    return "g10" in profile


def transfer(data: bytes, model: str, depth: str, source: str, target: str) -> bytes:
    """Reference for tests: what Krita's conversion does between an sRGB-curve and a linear
    ("g10") profile of the same primaries (the colour channels through the sRGB curve,
    computed per value; alpha unchanged)."""
    if _linear(source) == _linear(target):
        return data
    fmt = {"U8": "B", "U16": "H", "F16": "e", "F32": "f"}[depth]
    full = {"U8": 255, "U16": 65535}.get(depth, 1.0)
    values = list(struct.unpack(f"<{len(data) // struct.calcsize(fmt)}{fmt}", data))
    n = CHANNELS[model]
    for i, v in enumerate(values):
        if i % n == n - 1:
            continue  # alpha
        x = min(max(v / full, 0.0), 1.0)
        if _linear(source):  # linear -> sRGB-encoded
            y = 12.92 * x if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055
        else:
            y = x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4
        values[i] = round(y * full) if isinstance(full, int) else y
    return struct.pack(f"<{len(values)}{fmt}", *values)


class Node:
    def __init__(
        self,
        doc: Document,
        name: str,
        node_type: str = "paintlayer",
        model: str | None = None,
        depth: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.doc = doc
        self._name = name
        self._type = node_type
        self._model = model or doc.model
        self._depth = depth or doc.depth
        self._profile = profile or doc.profile
        self._children: list[Node] = []
        self._parent: Node | None = None
        self._id = next(_ids)
        self.frames: dict[int, bytearray] = {}  # keyframe time -> pixels (animated layers)
        self.still = bytearray(self.nbytes)
        self.blending = "normal"
        self.writes = 0

    # layout
    @property
    def bpp(self) -> int:
        return CHANNELS[self._model] * DEPTH_BYTES[self._depth]

    @property
    def nbytes(self) -> int:
        return self.doc.width() * self.doc.height() * self.bpp

    def name(self):
        return self._name

    def type(self):
        return self._type

    def uniqueId(self):  # noqa: N802
        return f"{{{self._id}}}"

    def colorModel(self):  # noqa: N802
        return self._model

    def colorDepth(self):  # noqa: N802
        return self._depth

    def colorProfile(self):  # noqa: N802
        return self._profile

    def setColorSpace(self, model, depth, profile):  # noqa: N802
        if not profile:
            return False
        self._model, self._depth, self._profile = model, depth, profile
        self.still = bytearray(self.nbytes)
        return True

    def setBlendingMode(self, mode):  # noqa: N802
        self.blending = mode

    # tree
    def childNodes(self):  # noqa: N802
        return list(self._children)

    def parentNode(self):  # noqa: N802
        return self._parent

    def addChildNode(self, child, above):  # noqa: N802
        if above is None:
            self._children.append(child)
        else:
            index = next((i for i, n in enumerate(self._children) if n is above), None)
            if index is None:
                return True  # as Krita 5.1.5 above a removed layer: True, nothing added
            self._children.insert(index + 1, child)
        child._parent = self
        return True

    def remove(self):
        self._parent._children.remove(self)
        self._parent = None
        return True

    # animation
    def animated(self):
        return bool(self.frames)

    def hasKeyframeAtTime(self, t):  # noqa: N802
        return t in self.frames

    def _buffer_at(self, t: int) -> bytearray:
        if not self.frames:
            return self.still
        keys = [k for k in sorted(self.frames) if k <= t]
        return self.frames[keys[-1] if keys else min(self.frames)]

    # pixels
    def _rect(self, buf: bytearray, x, y, w, h) -> bytes:
        row, bpp = self.doc.width() * self.bpp, self.bpp
        return b"".join(
            bytes(buf[(y + j) * row + x * bpp : (y + j) * row + (x + w) * bpp]) for j in range(h)
        )

    def pixelData(self, x, y, w, h):  # noqa: N802
        return self._rect(self._buffer_at(self.doc.currentTime()), x, y, w, h)

    def projectionPixelData(self, x, y, w, h):  # noqa: N802
        # A group's projection here is its top child's (enough for the plugin's reads).
        if self._type == "grouplayer" and self._children:
            return self._children[-1].projectionPixelData(x, y, w, h)
        return self.pixelData(x, y, w, h)

    def pixelDataAtTime(self, x, y, w, h, t):  # noqa: N802
        # As Krita 5.1.5: only at a keyframe's own time; a held frame gives empty bytes.
        if t not in self.frames:
            return b""
        return self._rect(self.frames[t], x, y, w, h)

    def setPixelData(self, data, x, y, w, h):  # noqa: N802
        assert len(data) == w * h * self.bpp, "setPixelData: wrong byte count"
        buf = self._buffer_at(self.doc.currentTime())
        row, bpp = self.doc.width() * self.bpp, self.bpp
        for j in range(h):
            start = (y + j) * row + x * bpp
            buf[start : start + w * bpp] = data[j * w * bpp : (j + 1) * w * bpp]
        self.writes += 1
        return True

    # test helpers
    def fill(self, data: bytes, time: int | None = None) -> None:
        assert len(data) == self.nbytes
        if time is None:
            self.still[:] = data
        else:
            self.frames[time] = bytearray(data)


class Selection:
    def __init__(self, x, y, w, h, mask: bytes) -> None:
        self._rect = (x, y, w, h)
        self.mask = mask

    def x(self):
        return self._rect[0]

    def y(self):
        return self._rect[1]

    def width(self):
        return self._rect[2]

    def height(self):
        return self._rect[3]

    def pixelData(self, x, y, w, h):  # noqa: N802
        assert (x, y, w, h) == self._rect, "the plugin reads the selection's own rectangle"
        return self.mask


class Document:
    def __init__(
        self,
        width=8,
        height=4,
        model="RGBA",
        depth="U8",
        profile="sRGB-elle-V2-srgbtrc.icc",
        name="scene.kra",
    ) -> None:
        self._w, self._h = width, height
        self.model, self.depth, self.profile = model, depth, profile
        self._file = f"/tmp/{name}"
        self.root = Node(self, "root", "grouplayer")
        self.active: Node | None = None
        self.time = 0
        self.start, self.end = 0, 10
        self._selection: Selection | None = None
        self.refreshed = 0
        self.closed = False

    def width(self):
        return self._w

    def height(self):
        return self._h

    def colorModel(self):  # noqa: N802
        return self.model

    def colorDepth(self):  # noqa: N802
        return self.depth

    def colorProfile(self):  # noqa: N802
        return self.profile

    def pixelData(self, x, y, w, h):  # noqa: N802
        """The image's projection at the current time (here: the top layer's)."""
        return self.root.projectionPixelData(x, y, w, h)

    def fileName(self):  # noqa: N802
        return "" if self.closed else self._file  # a closed document's wrapper, as Krita's

    def name(self):
        return "scene"

    def rootNode(self):  # noqa: N802
        return None if self.closed else self.root

    def activeNode(self):  # noqa: N802
        return self.active

    def setActiveNode(self, node):  # noqa: N802
        view = _active_view_of(self)
        if view is not None:
            view.selected = [node]
            if view is not _first_view_of(self):
                return  # activeNode() keeps reading the first view's layer
        self.active = node

    def createNode(self, name, node_type):  # noqa: N802
        return None if self.closed else Node(self, name, node_type)

    def add_layer(self, name: str, **kw) -> Node:
        node = Node(self, name, **kw)
        self.root.addChildNode(node, None)
        return node

    def nodeByName(self, name):  # noqa: N802
        def walk(node):
            for child in node.childNodes():
                if child.name() == name:
                    return child
                found = walk(child)
                if found is not None:
                    return found
            return None

        return walk(self.root)

    def selection(self):
        return self._selection

    def set_selection(self, selection: Selection | None) -> None:
        self._selection = selection

    def currentTime(self):  # noqa: N802
        return self.time

    def setCurrentTime(self, t):  # noqa: N802
        self.time = t

    def playBackStartTime(self):  # noqa: N802
        return self.start

    def playBackEndTime(self):  # noqa: N802
        return self.end

    def waitForDone(self):  # noqa: N802
        pass

    def refreshProjection(self):  # noqa: N802
        self.refreshed += 1

    def setColorSpace(self, model, depth, profile):  # noqa: N802
        """Image > Convert Image Color Space (here only GRAYA -> RGBA at the same depth)."""
        assert (self.model, model, depth == self.depth) == ("GRAYA", "RGBA", True)
        size = DEPTH_BYTES[depth]

        def rgba(buf: bytes) -> bytearray:
            out = bytearray()
            for i in range(0, len(buf), 2 * size):
                gray, alpha = buf[i : i + size], buf[i + size : i + 2 * size]
                out += gray * 3 + alpha
            return out

        for node in [n for n in self.all() if n._model == "GRAYA"]:
            node.still = rgba(bytes(node.still))
            node.frames = {t: rgba(bytes(b)) for t, b in node.frames.items()}
            node._model, node._profile = model, profile
        self.model, self.profile = model, profile
        return True

    def all(self) -> list:
        def walk(node):
            for child in node.childNodes():
                yield child
                yield from walk(child)

        return list(walk(self.root))

    def setBatchmode(self, value):  # noqa: N802
        self.batch = value

    def setModified(self, value):  # noqa: N802
        self.modified = value

    def close(self):
        app = getattr(self, "app", None)
        if app is not None and self in app.open_documents:
            app.open_documents.remove(self)
        self.closed = True
        return True


def _views_of(doc) -> list:
    app = getattr(doc, "app", None)
    window = getattr(app, "window", None)
    return [v for v in window.views if v.doc is doc] if window is not None else []


def _first_view_of(doc):
    views = _views_of(doc)
    return views[0] if views else None


def _active_view_of(doc):
    """The active window's active view when it shows ``doc`` (else None)."""
    window = getattr(getattr(doc, "app", None), "window", None)
    view = window.activeView() if window is not None else None
    return view if view is not None and view.doc is doc else None


class Action:
    """``add_blank_frame``: a blank keyframe on the active layer at the current time."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.triggered_at: list[int] = []

    def trigger(self):
        doc = self.app.active_document
        view = _active_view_of(doc)  # the timeline acts on the active view's layer
        node = view.selected[0] if view is not None and view.selected else doc.activeNode()
        node.frames[doc.currentTime()] = bytearray(node.nbytes)
        self.triggered_at.append(doc.currentTime())


class ManagedColor:
    def __init__(self, model, depth, comps) -> None:
        self.model, self.depth, self.comps = model, depth, comps

    def colorModel(self):  # noqa: N802
        return self.model

    def colorDepth(self):  # noqa: N802
        return self.depth

    def setColorSpace(self, model, depth, profile):  # noqa: N802
        assert (model, depth) == ("RGBA", "U8")
        self.model, self.depth = model, depth
        return True

    def componentsOrdered(self):  # noqa: N802
        return self.comps


class Swatch:
    def __init__(self, color: ManagedColor | None) -> None:
        self._color = color

    def isValid(self):  # noqa: N802
        return self._color is not None

    def color(self):
        return self._color


class Palette:
    """``krita.Palette(resource)``: the resource here is a list of ManagedColor/None."""

    def __init__(self, resource) -> None:
        self.entries = resource

    def colorsCountTotal(self):  # noqa: N802
        return len(self.entries)

    def colorSetEntryByIndex(self, i):  # noqa: N802
        return Swatch(self.entries[i])


class View:
    """A view of a document with its own layer selection (Window > New View makes a second
    one). As in Krita 5.1 (docs/FACTS.md): Document.activeNode() reads the document's FIRST
    view, setActiveNode and add_blank_frame act on the active window's active view."""

    def __init__(self, document: Document, selected: list | None = None) -> None:
        self.doc = document
        self.selected = list(selected or [])

    def document(self):
        return self.doc

    def selectedNodes(self):  # noqa: N802
        return list(self.selected)


class Window:
    """A main window holding ``views``; the last one is active (as after addView)."""

    def __init__(self, *views: View) -> None:
        self.views = list(views)
        self.active = self.views[-1] if self.views else None

    def activeView(self):  # noqa: N802
        return self.active


class App:
    def __init__(self, document: Document | None = None, gui: bool = True) -> None:
        self.active_document = document
        self.open_documents: list[Document] = [document] if document is not None else []
        self.gui = gui
        self.created: list[Document] = []  # documents made with createDocument
        self.blank_frame = Action(self)
        self.palettes: dict[str, list] = {}
        self.settings: dict[tuple[str, str], str] = {}
        self.window: Window | None = None  # None: headless, as kritarunner
        if document is not None:
            document.app = self

    def activeDocument(self):  # noqa: N802
        return self.active_document

    def activeWindow(self):  # noqa: N802
        return self.window

    def views(self):
        return list(self.window.views) if self.window is not None else []

    def createDocument(self, w, h, name, model, depth, profile, res):  # noqa: N802
        doc = Document(w, h, model, depth, profile, name)
        doc.app = self
        self.open_documents.append(doc)
        self.created.append(doc)
        return doc

    def documents(self):
        return list(self.open_documents)

    def action(self, name):
        return self.blank_frame if (self.gui and name == "add_blank_frame") else None

    def resources(self, kind):
        assert kind == "palette"
        return dict(self.palettes)

    def readSetting(self, group, key, default):  # noqa: N802
        return self.settings.get((group, key), default)

    def writeSetting(self, group, key, value):  # noqa: N802
        self.settings[(group, key)] = value
