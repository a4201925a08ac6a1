"""All Krita document I/O of the plugin, behind the small ``Host`` interface.

Facts this module relies on (measured in Krita 5.1.5; docs/FACTS.md, "Krita", in the
InkHue repository):
- ``node.pixelData(x, y, w, h)`` is little-endian BGRA for U8/U16 RGBA layers and RGBA for
  F16/F32 ones (``node.channels()`` positions); GRAYA is gray, alpha. Bit depth comes from
  ``colorDepth()``, never from values. CMYK, Lab, XYZ, YCbCr documents are refused with a
  line that says how to convert them.
- ``parent.addChildNode(new, above)`` puts ``new`` directly ABOVE ``above`` (None = on top).
- ``node.setColorSpace("RGBA", depth, profile)`` needs a real profile name ("" fails);
  a GRAYA document gets an RGBA result layer (it shows in colour once the image is RGB).
- Keyframes can only be created with the GUI's timeline action ``add_blank_frame`` on the
  active layer of the active view; the layer must be made active and control must go back
  to Qt's event loop before the action sees it. So ``insert_animation`` is a chain of
  ``QTimer.singleShot`` steps (``KeyframeInsertion``). The action acts on the document
  IN FRONT, whichever it is: before each trigger the insertion checks that its own
  document is the active one (and waits while the artist looks at another). We do not use
  ``doc.importAnimation``: it wants image files
  (an 8/16-bit PNG round trip that loses F16/F32 and needs numpy-free encoding), places
  frames at evenly spaced times only, and names the layer after the files; the action route
  writes the exact bytes at exactly the source keyframes' times.
- Undo: Krita's Python API (5.x) has no undo grouping (no begin/end macro). Adding a layer
  through ``addChildNode`` and writing it with ``setPixelData`` are not recorded as one
  undoable step; the user's own layers are never modified, so "undo" = delete the new layer.

Nothing here changes the user's layers: results always go to a NEW layer named
"InkHue <model name>": above the source for grayscale models, under the line art for
line-art models.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from .errors import PluginError
from .host import (
    KEYFRAME_DOCUMENT,
    KEYFRAME_LAYER,
    TRAIN_SOURCE_ANIMATION,
    TRAIN_SOURCE_DOCUMENTS,
    AnimationRequest,
    FrameRequest,
    Host,
    Keyframe,
    TrainingFrame,
)
from .pixels import (
    KRITA_DEPTHS,
    FrameLayout,
    clear_unselected,
    flatten_on_white,
    is_linear_profile,
    krita_rgba_order,
    to_rgba8,
    to_srgb_rgba8,
    transfer_curve,
)

#: Profiles Krita ships and uses by default (sRGB primaries; "g10" = linear light).
SRGB_PROFILE = "sRGB-elle-V2-srgbtrc.icc"
SRGB_LINEAR_PROFILE = "sRGB-elle-V2-g10.icc"
LAYER_PREFIX = "InkHue "
CONVERT_HINT = "Image > Convert Image Color Space to RGB/Alpha (8-bit integer/channel)"


def document_name(doc) -> str:
    """A name for messages: the file's name, the document's title, or "Untitled"."""
    path = doc.fileName() or ""
    return os.path.basename(path) or doc.name() or "Untitled"


def frame_format(doc, node) -> tuple[int, str]:
    """``(channels, depth)`` of ``node``'s pixels, or PluginError naming doc/layer and the fix."""
    name = document_name(doc)
    check_color_space(f"Document '{name}'", doc.colorModel(), doc.colorDepth())
    check_color_space(f"Layer '{node.name()}' of '{name}'", node.colorModel(), node.colorDepth())
    return (4 if node.colorModel() == "RGBA" else 2), KRITA_DEPTHS[node.colorDepth()]


def check_color_space(what: str, model: str, depth: str) -> None:
    """PluginError naming ``what`` unless it is RGBA/GRAYA at U8, U16, F16 or F32."""
    if model not in ("RGBA", "GRAYA"):
        raise PluginError(
            f"{what} is in {model} colours: InkHue reads RGB or grayscale; use {CONVERT_HINT}"
        )
    if depth not in KRITA_DEPTHS:
        raise PluginError(
            f"{what} has {depth} channels: InkHue reads 8/16-bit integer or 16/32-bit "
            f"float; use {CONVERT_HINT}"
        )


def check_training_color(what: str, model: str, depth: str) -> None:
    """Like ``check_color_space``, and refuses grayscale: fine-tuning learns colours."""
    check_color_space(what, model, depth)
    if model != "RGBA":
        raise PluginError(
            f"{what} is grayscale ({model}): fine-tuning learns a production's colours from "
            f"coloured frames; use {CONVERT_HINT} on a coloured version, or leave it out"
        )


def file_stem(text: str) -> str:
    """A safe file-name stem from a document or layer name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(text)[0]).strip("._")
    return stem[:40] or "frame"


def all_nodes(node) -> list:
    """Every node under ``node`` (depth first, bottom to top)."""
    out = []
    for child in node.childNodes():
        out.append(child)
        out.extend(all_nodes(child))
    return out


def unique_layer_name(doc, name: str) -> str:
    """``name``, or ``name 2``, ``name 3``... when the document already has a layer of it."""
    taken = {n.name() for n in all_nodes(doc.rootNode())}
    if name not in taken:
        return name
    return next(f"{name} {k}" for k in range(2, len(taken) + 3) if f"{name} {k}" not in taken)


def same_node(a, b) -> bool:
    return a is not None and b is not None and a.uniqueId() == b.uniqueId()


def shown_keyframe(node, t: int) -> int | None:
    """The time of the keyframe an animated ``node`` shows at frame ``t``: the last one at
    or before ``t`` (None: none is). Krita's ``pixelDataAtTime`` reads only a keyframe's
    own time: at a held frame it returns empty bytes (docs/FACTS.md)."""
    return next((k for k in range(t, -1, -1) if node.hasKeyframeAtTime(k)), None)


def drawing_times(node, start: int, end: int) -> list[int]:
    """The frames of the playback range where the layer's picture begins: its keyframes
    in the range, and the range's first frame when a keyframe before the range is held
    into it (else the result would be empty there while the drawing shows)."""
    times = [t for t in range(start, end + 1) if node.hasKeyframeAtTime(t)]
    held = any(node.hasKeyframeAtTime(t) for t in range(0, start))
    if held and (not times or times[0] != start):
        times.insert(0, start)
    return times


def layer_named(doc, name: str, what: str):
    """The document's one layer called ``name`` (None if none). Two or more of that name
    (common across groups: "Layer 2") are refused: Krita's ``nodeByName`` returns the first,
    which may not be the one the artist picked in the list. ``what``: e.g. "Hint layer"."""
    found = [n for n in all_nodes(doc.rootNode()) if n.name() == name]
    if len(found) > 1:
        raise PluginError(
            f"{what} '{name}': {len(found)} layers of '{document_name(doc)}' have that name; "
            "rename the one you mean so the panel can tell them apart"
        )
    return found[0] if found else None


def active_layer(app, doc, strict: bool = True):
    """The layer the artist has selected in ``doc``, as the Layers docker shows it.

    Krita's ``Document.activeNode()`` returns the current layer of the document's FIRST
    view, while the Layers docker, ``Document.setActiveNode`` and the timeline actions
    follow the active window's active view: with a second view of the document (Window >
    New View) they differ, and the panel colorized the first view's layer
    (docs/FACTS.md). So with several views of ``doc`` the active view's selection is read
    when that view shows ``doc``; with one view (or another document in front, or nothing
    selected) ``doc.activeNode()``, as before. Several layers selected in one of several
    views cannot be told apart: PluginError, or None when not ``strict``.
    """
    current = doc.activeNode()
    root = doc.rootNode()
    views = [v for v in app.views() if v.document() is not None]
    if sum(1 for v in views if same_node(v.document().rootNode(), root)) < 2:
        return current
    window = app.activeWindow()
    view = window.activeView() if window is not None else None
    if view is None or view.document() is None or not same_node(view.document().rootNode(), root):
        return current
    selected = list(view.selectedNodes() or [])
    if len(selected) == 1:
        return selected[0]
    if not selected:
        return current
    if not strict:
        return None
    raise PluginError(
        f"{len(selected)} layers are selected in this view of '{document_name(doc)}': "
        "select the one layer to colorize"
    )


def artists_layer(app, doc, source):
    """The layer to leave active after a result is added: the one the artist has active
    now (they may have picked another while the engine worked), else ``source``, so that
    the next Colorize reads the source again when nothing else was picked (or several
    layers are selected in a second view)."""
    active = active_layer(app, doc, strict=False)
    return active if active is not None else source


def managed_color_hex(color) -> str:
    """``#rrggbb`` of a Krita ManagedColor (converted to 8-bit sRGB first)."""
    if color.colorModel() != "RGBA" or color.colorDepth() != "U8":
        color.setColorSpace("RGBA", "U8", SRGB_PROFILE)
    comps = list(color.componentsOrdered())[:3]
    return "#" + "".join(f"{max(0, min(255, round(float(c) * 255))):02x}" for c in comps)


class KritaHost(Host):
    """Reads frames from and writes new layers into Krita documents.

    ``app`` is ``Krita.instance()``; ``document``/``source`` pin a document and source
    layer (scripts, tests); by default the active document and its active layer are used.
    ``later(ms, fn)`` schedules a step on the event loop (``QTimer.singleShot``).
    """

    STEP_MS = 50

    def __init__(
        self,
        app,
        document=None,
        source=None,
        palette_class=None,
        later: Callable[[int, Callable[[], None]], None] | None = None,
    ) -> None:
        self.app = app
        self._document = document
        self._source = source
        self._palette_class = palette_class
        if later is None:
            from .qt import QtCore

            def later(ms, fn):
                QtCore.QTimer.singleShot(ms, fn)

        self._later = later

    # -- what to read ------------------------------------------------------------------------

    def document(self):
        doc = self._document or self.app.activeDocument()
        if doc is None:
            raise PluginError("No document is open: open or create one first")
        return doc

    def source_node(self, doc):
        node = self._source or active_layer(self.app, doc)
        if node is None:
            raise PluginError(
                f"No layer is selected in '{document_name(doc)}': select the layer to colorize"
            )
        if node.type().endswith("mask"):
            raise PluginError(
                f"'{node.name()}' in '{document_name(doc)}' is a mask: select the layer to colorize"
            )
        if node.name().startswith(LAYER_PREFIX):
            # Colorizing a result again would stack a second result on the first.
            raise PluginError(
                f"'{node.name()}' in '{document_name(doc)}' is an InkHue result: select the "
                "line-art or grayscale layer to colorize"
            )
        return node

    def document_key(self) -> str:
        doc = self._document or self.app.activeDocument()
        return self._key(doc) if doc is not None else ""

    def document_key_of(self, context: dict[str, Any]) -> str:
        return self._key(context["doc"])

    @staticmethod
    def _key(doc) -> str:
        uid = doc.rootNode().uniqueId()  # a QUuid in Krita
        return str(uid.toString() if hasattr(uid, "toString") else uid)

    def layer_names(self) -> list[str]:
        try:
            doc = self.document()
        except PluginError:
            return []
        return [n.name() for n in all_nodes(doc.rootNode()) if not n.type().endswith("mask")]

    def palette_names(self) -> list[str]:
        return sorted(self.app.resources("palette").keys())

    def palette_colors(self, name: str) -> list[str]:
        resource = self.app.resources("palette").get(name)
        if resource is None:
            raise PluginError(f"Palette '{name}' is not in Krita's resources: pick another")
        palette_class = self._palette_class
        if palette_class is None:
            from krita import Palette as palette_class
        palette = palette_class(resource)
        entry = getattr(palette, "colorSetEntryByIndex", None) or palette.entryByIndex
        colors = []
        for i in range(palette.colorsCountTotal()):
            swatch = entry(i)
            if swatch is not None and swatch.isValid():
                colors.append(managed_color_hex(swatch.color()))
        return colors

    def _area(self, doc) -> tuple[int, int, int, int, bytes | None]:
        """The rectangle to read (selection's bounds or the whole image) and selection mask."""
        width, height = doc.width(), doc.height()
        selection = doc.selection()
        if selection is None:
            return 0, 0, width, height, None
        x0, y0 = max(0, selection.x()), max(0, selection.y())
        x1 = min(width, selection.x() + selection.width())
        y1 = min(height, selection.y() + selection.height())
        if x1 <= x0 or y1 <= y0:
            raise PluginError(
                f"The selection in '{document_name(doc)}' is empty: select an area, or "
                "Select > Deselect to colorize the whole frame"
            )
        mask = bytes(selection.pixelData(x0, y0, x1 - x0, y1 - y0))
        if not any(mask):
            raise PluginError(
                f"The selection in '{document_name(doc)}' is empty: select an area, or "
                "Select > Deselect to colorize the whole frame"
            )
        return x0, y0, x1 - x0, y1 - y0, mask

    def _pixels(self, node, x: int, y: int, w: int, h: int, time: int | None) -> bytes:
        if time is not None:
            key = shown_keyframe(node, time)
            return b"" if key is None else bytes(node.pixelDataAtTime(x, y, w, h, key))
        if node.type() == "paintlayer":
            return bytes(node.pixelData(x, y, w, h))
        return bytes(node.projectionPixelData(x, y, w, h))  # groups, file/fill layers...

    def _hint_node(self, doc, source, hint_layer: str):
        if not hint_layer:
            return None
        node = layer_named(doc, hint_layer, "Hint layer")
        if node is None:
            raise PluginError(
                f"Hint layer '{hint_layer}' is not in '{document_name(doc)}': pick another "
                "hint layer or (no hints)"
            )
        if same_node(node, source):
            raise PluginError(
                f"The hint layer '{hint_layer}' is the layer being colorized: paint hints "
                "on a layer of their own"
            )
        if node.colorModel() != "RGBA" or node.colorDepth() not in KRITA_DEPTHS:
            raise PluginError(
                f"Hint layer '{hint_layer}' is {node.colorModel()} {node.colorDepth()}: hints "
                "need colour; use Layer > Convert > Convert Layer Color Space to RGB/Alpha"
            )
        return node

    def _hints(self, node, order: str, area, time: int | None) -> bytes | None:
        if node is None:
            return None
        x, y, w, h, _mask = area
        depth = KRITA_DEPTHS[node.colorDepth()]
        key = None  # a still hint layer: its pixels as they are
        if time is not None and node.animated():
            key = shown_keyframe(node, time)
            if key is None:
                return None  # an animated hint layer whose first hints come later
        data = self._pixels(node, x, y, w, h, key)  # _pixels finds the keyframe at once
        data = self._to_engine(
            data, w, h, node.colorModel(), node.colorDepth(), node.colorProfile()
        )
        return to_rgba8(data, FrameLayout(w, h, 4, depth, krita_rgba_order(depth)), order)

    def _to_engine(
        self, data: bytes, w: int, h: int, model: str, depth: str, profile: str
    ) -> bytes:
        """Pixels as the engine reads them: sRGB-encoded. A linear-light layer (Krita's
        default for 16-bit and float) read as sRGB gives darker, duller colours."""
        if not is_linear_profile(profile):
            return data
        wire = KRITA_DEPTHS[depth]
        layout = FrameLayout(w, h, 4 if model == "RGBA" else 2, wire, krita_rgba_order(wire))
        return transfer_curve(data, layout, to_srgb=True)

    def _prepare(self, task: str, hint_layer: str):
        doc = self.document()
        node = self.source_node(doc)
        if doc.colorModel() == "GRAYA":
            # A colour layer in a grayscale image is shown gray: the colours would be there
            # but the artist could not see them.
            check_color_space(
                f"Document '{document_name(doc)}'", doc.colorModel(), doc.colorDepth()
            )
            depth = doc.colorDepth()
            raise PluginError(
                f"Document '{document_name(doc)}' is grayscale (GRAYA {depth}): Krita would "
                f"show the colours gray. Click 'Convert to RGB and colorize' (converts the "
                f"image to RGB/Alpha {depth}, one Edit > Undo takes it back), or use "
                "Image > Convert Image Color Space",
                fix=("Convert to RGB and colorize", lambda: self.convert_to_rgb(doc)),
            )
        channels, depth = frame_format(doc, node)
        area = self._area(doc)
        x, y, w, h, _mask = area
        layout = FrameLayout(w, h, channels, depth, krita_rgba_order(depth))
        hint_node = self._hint_node(doc, node, hint_layer)
        context = {
            "doc": doc,
            "node": node,
            "area": area,
            "task": task,
            "doc_name": document_name(doc),
        }
        description = f"layer '{node.name()}' of '{document_name(doc)}'"
        return doc, node, layout, hint_node, context, description

    def _source_pixels(self, node, context: dict[str, Any], time: int | None) -> bytes:
        x, y, w, h, _mask = context["area"]
        return self._to_engine(
            self._pixels(node, x, y, w, h, time),
            w,
            h,
            node.colorModel(),
            node.colorDepth(),
            node.colorProfile(),
        )

    def _engine_frame_at(self, node, context: dict[str, Any], time: int | None) -> bytes:
        """The source's pixels at ``time`` as the engine gets them (see _engine_frame)."""
        x, y, w, h, _mask = context["area"]
        channels, depth = frame_format(context["doc"], node)
        layout = FrameLayout(w, h, channels, depth, krita_rgba_order(depth))
        return self._engine_frame(self._source_pixels(node, context, time), layout, context["task"])

    def _engine_frame(self, data: bytes, layout: FrameLayout, task: str) -> bytes:
        # Line art on a transparent layer is lines on paper: the engine sees white paper
        # and gives back an opaque colour layer to go under the lines.
        return flatten_on_white(data, layout) if task == "lineart" else data

    # -- colored keyframes ----------------------------------------------------------------

    def keyframe_sources(self) -> list[tuple[str, str]]:
        try:
            doc = self.document()
        except PluginError:
            return []
        out = [
            (KEYFRAME_LAYER + n.name(), f"Layer '{n.name()}'")
            for n in all_nodes(doc.rootNode())
            if n.type() == "paintlayer"
        ]
        key = self._key(doc)
        out += [
            (KEYFRAME_DOCUMENT + self._key(d), f"Document '{document_name(d)}' (model sheet)")
            for d in self.app.documents()
            if self._key(d) != key
        ]
        return out

    def _keyframes(
        self, doc, node, context: dict[str, Any], choice: str, times: list[int]
    ) -> list[Keyframe]:
        """The colored keyframes of ``choice`` for frames at document ``times``.

        A layer: its keyframes in the playback range (an unanimated layer: the current
        frame), each the colored version of the source at that time, over the same area.
        Another document: its whole image, a model sheet. Pixels are read on upload.
        """
        if not choice:
            return []
        if choice.startswith(KEYFRAME_DOCUMENT):
            return [self._model_sheet(choice[len(KEYFRAME_DOCUMENT) :], context)]
        name = choice[len(KEYFRAME_LAYER) :]
        where = f"'{document_name(doc)}'"
        key_node = layer_named(doc, name, "Keyframe layer")
        if key_node is None:
            raise PluginError(
                f"Keyframe layer '{name}' is not in {where}: pick another in Keyframes, or (none)"
            )
        if same_node(key_node, node):
            raise PluginError(
                f"The keyframe layer '{name}' is the layer being colorized: choose the layer "
                "with your colours in Keyframes"
            )
        if key_node.colorModel() != "RGBA" or key_node.colorDepth() not in KRITA_DEPTHS:
            raise PluginError(
                f"Keyframe layer '{name}' of {where} is {key_node.colorModel()} "
                f"{key_node.colorDepth()}: keyframes need colour; use Layer > Convert > "
                "Convert Layer Color Space to RGB/Alpha"
            )
        animated = key_node.animated()
        if animated:
            start, end = doc.playBackStartTime(), doc.playBackEndTime()
            key_times = [t for t in range(start, end + 1) if key_node.hasKeyframeAtTime(t)]
            if not key_times:
                raise PluginError(
                    f"Keyframe layer '{name}' of {where} has no keyframes between frames "
                    f"{start} and {end}: colour a frame of the shot on it, or set the "
                    "playback range"
                )
        else:
            key_times = [doc.currentTime()]
        x, y, w, h, _mask = context["area"]
        depth = KRITA_DEPTHS[key_node.colorDepth()]
        key_layout = FrameLayout(w, h, 4, depth, krita_rgba_order(depth))
        task = context["task"]
        source_time = node.animated()
        keys = []
        for t in key_times:
            frame = times.index(t) if t in times else None
            # the frame it colors, sent with it when it is not one of the frames
            structure = (
                None
                if frame is not None
                else partial(self._engine_frame_at, node, context, t if source_time else None)
            )
            keys.append(
                Keyframe(
                    lambda t=t: self._source_pixels(key_node, context, t if animated else None),
                    key_layout,
                    frame,
                    structure,
                    under_lines=task == "lineart",  # a fill layer under the lines, or lines too
                    name=f"frame {t} of layer '{name}'",
                )
            )
        return keys

    def _model_sheet(self, key: str, context: dict[str, Any]) -> Keyframe:
        """Another open document's image as a model sheet (the frames' shape, any size)."""
        other = next((d for d in self.app.documents() if self._key(d) == key), None)
        if other is None:
            raise PluginError(
                "The model sheet's document is no longer open: pick another in Keyframes"
            )
        name = document_name(other)
        if other.colorModel() != "RGBA" or other.colorDepth() not in KRITA_DEPTHS:
            raise PluginError(
                f"Model sheet '{name}' is {other.colorModel()} {other.colorDepth()}: a model "
                f"sheet needs colour; use {CONVERT_HINT} on it"
            )
        _x, _y, w, h, _mask = context["area"]
        ow, oh = other.width(), other.height()
        if abs(math.log((ow / oh) / (w / h))) > 0.01:
            raise PluginError(
                f"Model sheet '{name}' is {ow}x{oh} but the frames are {w}x{h}: InkHue "
                "scales a sheet but does not crop it; give it the frames' shape (Image > "
                "Canvas Size), or colorize without a selection"
            )
        depth = KRITA_DEPTHS[other.colorDepth()]
        layout = FrameLayout(ow, oh, 4, depth, krita_rgba_order(depth))

        def read() -> bytes:
            data = bytes(other.pixelData(0, 0, ow, oh))
            return self._to_engine(data, ow, oh, "RGBA", other.colorDepth(), other.colorProfile())

        return Keyframe(read, layout, name=f"model sheet '{name}'")

    # -- reading frames ----------------------------------------------------------------------

    def read_frame(self, task: str, hint_layer: str = "", keyframes: str = "") -> FrameRequest:
        doc, node, layout, hint_node, context, description = self._prepare(task, hint_layer)
        x, y, w, h, _mask = context["area"]
        frame = self._engine_frame(self._source_pixels(node, context, None), layout, task)
        hints = self._hints(hint_node, layout.order, context["area"], None)
        keys = self._keyframes(doc, node, context, keyframes, [doc.currentTime()])
        return FrameRequest(frame, layout, hints, description, context, keys)

    def read_animation(
        self, task: str, hint_layer: str = "", keyframes: str = ""
    ) -> AnimationRequest:
        doc, node, layout, hint_node, context, description = self._prepare(task, hint_layer)
        start, end = doc.playBackStartTime(), doc.playBackEndTime()
        times = drawing_times(node, start, end)
        if not node.animated() or not times:
            raise PluginError(
                f"Layer '{node.name()}' of '{document_name(doc)}' has no keyframes between "
                f"frames {start} and {end}: use Colorize frame, or set the playback range"
            )
        x, y, w, h, _mask = context["area"]
        # Read when each frame is uploaded (AnimationJob), not all at once here.
        frames = [
            lambda t=t: self._engine_frame(self._source_pixels(node, context, t), layout, task)
            for t in times
        ]
        hints = None
        if hint_node is not None:
            if hint_node.animated():
                hints = [
                    lambda t=t: self._hints(hint_node, layout.order, context["area"], t)
                    for t in times
                ]
            else:
                same = self._hints(hint_node, layout.order, context["area"], None)
                hints = [same] * len(times)
        keys = self._keyframes(doc, node, context, keyframes, times)
        return AnimationRequest(frames, times, layout, hints, description, context, keyframes=keys)

    def remove_result(self, context: dict[str, Any]) -> None:
        doc, layer = context["doc"], context.get("layer")
        if layer is None or not self._is_open(doc.rootNode().uniqueId()):
            raise PluginError("The result's document is not open any more")
        if not any(same_node(n, layer) for n in all_nodes(doc.rootNode())):
            raise PluginError(
                f"The layer '{layer.name()}' is not in "
                f"'{document_name(doc)}' any more (deleted already?)"
            )
        layer.remove()
        doc.refreshProjection()

    def convert_to_rgb(self, doc) -> str:
        """Convert a grayscale image to RGB/Alpha at its own depth (sRGB primaries, the same
        transfer curve: linear stays linear); returns a line saying what was done."""
        depth = doc.colorDepth()
        profile = SRGB_LINEAR_PROFILE if is_linear_profile(doc.colorProfile()) else SRGB_PROFILE
        doc.setColorSpace("RGBA", depth, profile)
        doc.waitForDone()
        if doc.colorModel() != "RGBA":
            raise PluginError(
                f"Krita could not convert '{document_name(doc)}' to RGB/Alpha "
                f"{depth}: use Image > Convert Image Color Space"
            )
        doc.refreshProjection()
        return (
            f"Converted '{document_name(doc)}' to RGB/Alpha ({depth}, {profile}) so the "
            "colours show; Edit > Undo takes it back"
        )

    # -- what to write -----------------------------------------------------------------------

    def _new_layer(
        self, context: dict[str, Any], layout: FrameLayout, model_name: str, task: str
    ) -> tuple[Any, str]:
        """Create the result layer, in the right colour space, at the right place."""
        doc, source = context["doc"], context["node"]
        if not any(same_node(n, source) for n in all_nodes(doc.rootNode())):
            # Krita 5.1.5: a removed layer's parentNode() is None and addChildNode(new,
            # removed) answers True but adds nothing: the result would be lost unseen.
            raise PluginError(
                f"The layer '{source.name()}' was deleted from '{document_name(doc)}' while "
                "the engine colorized it, so the result was not added: Edit > Undo brings "
                "the layer back; select it and colorize again"
            )
        name = unique_layer_name(doc, LAYER_PREFIX + model_name)
        layer = doc.createNode(name, "paintlayer")
        depth = {v: k for k, v in KRITA_DEPTHS.items()}[layout.depth]
        if source.colorModel() == "RGBA":
            profile = source.colorProfile()
        else:  # a gray source: same transfer curve, sRGB primaries
            profile = SRGB_LINEAR_PROFILE if "g10" in source.colorProfile() else SRGB_PROFILE
        if (layer.colorModel(), layer.colorDepth(), layer.colorProfile()) != (
            "RGBA",
            depth,
            profile,
        ) and not layer.setColorSpace("RGBA", depth, profile):
            raise PluginError(
                f"Krita could not make an RGBA {depth} layer with profile {profile} in "
                f"'{document_name(doc)}': use {CONVERT_HINT}"
            )
        parent = source.parentNode() or doc.rootNode()
        note = ""
        if task == "lineart":
            siblings = parent.childNodes()
            index = next(i for i, n in enumerate(siblings) if same_node(n, source))
            if index > 0:
                parent.addChildNode(layer, siblings[index - 1])  # above the one below = under
            else:
                # Nothing below the line art to insert above: multiply keeps the lines visible.
                parent.addChildNode(layer, source)
                layer.setBlendingMode("multiply")
                note = "multiply"
        else:
            parent.addChildNode(layer, source)
        context["note"] = note
        context["result_space"] = ("RGBA", depth, profile)
        return layer, name

    def _result_bytes(self, context: dict[str, Any], data: bytes, layout: FrameLayout) -> bytes:
        """The engine's (sRGB-encoded) answer in the result layer's profile, the pixels
        outside the selection cleared."""
        if is_linear_profile(context["result_space"][2]):
            data = transfer_curve(data, layout, to_srgb=False)
        mask = context["area"][4]
        return clear_unselected(data, layout, mask) if mask is not None else data

    def _check_open(self, context: dict[str, Any]) -> None:
        """PluginError when the result's document was closed while the engine worked (a
        closed document's wrapper answers None for rootNode() and createNode())."""
        if context["doc"].rootNode() is None:
            raise PluginError(
                f"'{context.get('doc_name', 'The document')}' was closed before its result "
                "arrived: nothing was added; open it again and colorize again"
            )

    def insert_frame(
        self, request: FrameRequest, result: bytes, layout: FrameLayout, model_name: str, task: str
    ) -> str:
        context = request.context
        self._check_open(context)
        doc = context["doc"]
        keep = artists_layer(self.app, doc, context["node"])  # before the new layer takes the focus
        layer, name = self._new_layer(context, layout, model_name, task)
        x, y, w, h, _mask = context["area"]
        layer.setPixelData(self._result_bytes(context, result, layout), x, y, w, h)
        doc.refreshProjection()
        context["layer"] = layer
        # Krita makes a new layer active from its event loop (after this returns), so the
        # artist's layer is made active again after that.
        root_id = doc.rootNode().uniqueId()

        def activate() -> None:
            if self._is_open(root_id):  # a closed document's wrapper must not be touched
                doc.setActiveNode(keep)

        self._later(self.STEP_MS, activate)
        return name

    def insert_animation(
        self,
        request: AnimationRequest,
        results: list[bytes],
        layout: FrameLayout,
        model_name: str,
        task: str,
        done: Callable[[str, str], None],
        progress: Callable[[int, int, str], None] | None = None,
    ) -> KeyframeInsertion:
        if len(results) > len(request.times):
            raise PluginError(
                f"The engine gave {len(results)} frames for {len(request.times)} keyframes"
            )
        self._check_open(request.context)
        action = self.app.action("add_blank_frame")
        if action is None:
            raise PluginError(
                "Krita's timeline action add_blank_frame is missing: Colorize animation "
                "needs Krita's main window (it cannot run headless)"
            )
        # Another document may be in front when the first results arrive (the artist went on
        # working): the insertion then waits for them to come back, as it does mid-way,
        # instead of throwing the engine's work away.
        insertion = KeyframeInsertion(
            self, request, results, layout, model_name, task, action, done, progress
        )
        insertion.start()
        return insertion

    def _in_front(self, doc) -> bool:
        """Whether ``doc`` is the document of the active window's active view: the one
        Krita's timeline actions act on."""
        active = self.app.activeDocument()
        return active is not None and same_node(active.rootNode(), doc.rootNode())

    def _is_open(self, root_id) -> bool:
        return any(d.rootNode().uniqueId() == root_id for d in self.app.documents())

    # -- coloured frames for fine-tuning -----------------------------------------------------

    def training_frames(self, source: str) -> list[TrainingFrame]:
        if source == TRAIN_SOURCE_ANIMATION:
            return self._animation_training_frames()
        if source == TRAIN_SOURCE_DOCUMENTS:
            return self._document_training_frames()
        raise PluginError(f"Unknown frame source {source!r}: pick one in the Train section")

    def _rgba8_reader(self, doc, source, read_raw: Callable[[], bytes]):
        """A ``read()`` for TrainingFrame: raw RGBA pixels of ``source`` (the layer or the
        document read, whose own depth and profile they are in) -> sRGB RGBA u8."""
        depth = KRITA_DEPTHS[source.colorDepth()]
        profile = source.colorProfile()
        layout = FrameLayout(doc.width(), doc.height(), 4, depth, krita_rgba_order(depth))
        linear = is_linear_profile(profile)

        def read() -> bytes:
            data = read_raw()
            if len(data) != layout.nbytes:
                raise PluginError(
                    f"Krita gave {len(data)} bytes for a {layout.describe()} frame of "
                    f"'{document_name(doc)}': is the document still open?"
                )
            return to_srgb_rgba8(data, layout, linear)

        return read

    def _animation_training_frames(self) -> list[TrainingFrame]:
        """Every keyframe of the active layer in the playback range; for a layer without
        keyframes (e.g. a group of animated layers), every frame of the range."""
        doc = self.document()
        node = self.source_node(doc)
        name = document_name(doc)
        check_training_color(f"Document '{name}'", doc.colorModel(), doc.colorDepth())
        check_training_color(
            f"Layer '{node.name()}' of '{name}'", node.colorModel(), node.colorDepth()
        )
        start, end = doc.playBackStartTime(), doc.playBackEndTime()
        stem = file_stem(name)
        w, h = doc.width(), doc.height()
        frames = []
        if node.animated():
            times = drawing_times(node, start, end)
            if not times:
                raise PluginError(
                    f"Layer '{node.name()}' of '{name}' has no keyframes between frames "
                    f"{start} and {end}: set the playback range over the coloured frames"
                )
            for t in times:
                read = self._rgba8_reader(doc, node, lambda t=t: self._pixels(node, 0, 0, w, h, t))
                frames.append(
                    TrainingFrame(
                        f"{stem}_f{t:04d}",
                        w,
                        h,
                        read,
                        f"frame {t} of layer '{node.name()}' of '{name}'",
                    )
                )
            return frames
        if not any(n.animated() for n in all_nodes(node)):
            raise PluginError(
                f"Layer '{node.name()}' of '{name}' is not animated (nor is anything in it): "
                "select the animated layer (or the group) holding the coloured frames, or "
                "use Frames: open documents"
            )
        for t in range(start, end + 1):
            read = self._rgba8_reader(doc, node, lambda t=t: self._pixels_at(doc, node, t))
            frames.append(
                TrainingFrame(
                    f"{stem}_f{t:04d}",
                    w,
                    h,
                    read,
                    f"frame {t} of layer '{node.name()}' of '{name}'",
                )
            )
        return frames

    def _pixels_at(self, doc, node, t: int) -> bytes:
        """The node's projection at time ``t`` (the document's time is put back after)."""
        doc.waitForDone()  # a time switch still under way would give a stale currentTime()
        current = doc.currentTime()
        try:
            doc.setCurrentTime(t)
            doc.waitForDone()
            return self._pixels(node, 0, 0, doc.width(), doc.height(), None)
        finally:
            doc.setCurrentTime(current)
            doc.waitForDone()

    def _document_training_frames(self) -> list[TrainingFrame]:
        """The current frame of every open document (the whole image, all visible layers)."""
        docs = list(self.app.documents())
        if not docs:
            raise PluginError("No document is open: open the coloured frames as documents")
        frames = []
        for doc in docs:
            name = document_name(doc)
            check_training_color(f"Document '{name}'", doc.colorModel(), doc.colorDepth())
            read = self._rgba8_reader(
                doc, doc, lambda doc=doc: bytes(doc.pixelData(0, 0, doc.width(), doc.height()))
            )
            frames.append(
                TrainingFrame(
                    file_stem(name), doc.width(), doc.height(), read, f"document '{name}'"
                )
            )
        return frames


class KeyframeInsertion:
    """Writes an animation's results into a new layer, one keyframe per step on Qt's loop.

    Krita's ``add_blank_frame`` acts on whatever document is in front. So before EVERY
    trigger (in the same event-loop turn, so nothing can switch in between) it checks that
    the result's own document is the active one and its new layer the active layer; while
    the artist looks at another document it waits (``progress`` says so) and goes on when
    they come back. On failure or ``cancel()`` the unfinished layer is removed, so the
    document holds either the complete result layer or none.

    ``results`` may be the first part only (an animation colorized in chunks): ``feed()``
    gives the next results as they arrive, ``fail(error)`` ends it with an error. Each
    result is dropped once written, so memory holds only what is not inserted yet.
    """

    POLL_MS = 250
    #: Event-loop turns to wait for Krita to make the new layer active before giving up.
    ACTIVATE_TRIES = 8

    def __init__(
        self,
        host: KritaHost,
        request: AnimationRequest,
        results: list[bytes],
        layout: FrameLayout,
        model_name: str,
        task: str,
        action,
        done: Callable[[str, str], None],
        progress: Callable[[int, int, str], None] | None,
    ) -> None:
        self.host = host
        self.request = request
        self.results = list(results)
        self.total = len(request.times)
        self.error = ""  # set by fail(): the next step ends with it
        self.layout = layout
        self.model_name = model_name
        self.task = task
        self.action = action
        self._done = done
        self._progress = progress or (lambda done, total, text: None)
        self.context = request.context
        self.doc = self.context["doc"]
        self.doc_name = document_name(self.doc)
        self.root_id = self.doc.rootNode().uniqueId()
        self.layer = None
        self.name = ""
        self.cancelled = False
        self.finished = False
        self.paused = False
        self._tries = 0

    def start(self) -> None:
        doc = self.doc
        self.keep = artists_layer(
            self.host.app, doc, self.context["node"]
        )  # made active again at the end
        self.layer, self.name = self.host._new_layer(
            self.context, self.layout, self.model_name, self.task
        )
        self.context["layer"] = self.layer
        self.start_time = doc.currentTime()
        doc.setActiveNode(self.layer)  # takes effect once control is back in the event loop
        self._later(lambda: self._step(0))

    def cancel(self) -> None:
        """Stop before the next keyframe; the unfinished layer is removed."""
        self.cancelled = True

    def feed(self, results: list[bytes]) -> None:
        """The next results (for the keyframes after those given so far)."""
        if len(self.results) + len(results) > self.total:
            self.fail(
                f"The engine gave {len(self.results) + len(results)} frames for "
                f"{self.total} keyframes"
            )
            return
        self.results.extend(results)

    def fail(self, error: str) -> None:
        """End with ``error`` before the next keyframe (the unfinished layer is removed)."""
        self.error = self.error or error

    def _later(self, fn, ms: int | None = None) -> None:
        self.host._later(self.host.STEP_MS if ms is None else ms, fn)

    def _layer_present(self) -> bool:
        return any(same_node(n, self.layer) for n in all_nodes(self.doc.rootNode()))

    def _finish(self, error: str) -> None:
        self.finished = True
        if not self.host._is_open(self.root_id):
            self._done(
                "", error or f"'{self.doc_name}' was closed before its keyframes were all added"
            )
            return
        doc = self.doc
        removed = False
        if (error or self.cancelled) and self._layer_present():
            self.layer.remove()  # never leave a partial result behind
            removed = True
        doc.setCurrentTime(self.start_time)
        present = any(same_node(n, self.keep) for n in all_nodes(doc.rootNode()))
        doc.setActiveNode(self.keep if present else self.context["node"])
        doc.refreshProjection()
        if self.cancelled and not error:
            self._done("", "")
            return
        if error and removed:
            error += f" (the unfinished layer '{self.name}' was removed)"
        self._done("" if error else self.name, error)

    def _step(self, i: int) -> None:
        """One event-loop step of the insertion. It runs from a Qt timer, where an escaping
        exception would reach no one: the partial layer would stay and the panel stay busy.
        So any error ends the insertion like the known ones (the layer removed)."""
        try:
            self._advance(i)
        except Exception as exc:
            if self.finished:
                raise
            self._finish(f"Adding keyframe {i + 1} of {self.total} failed: {exc}")

    def _advance(self, i: int) -> None:
        if self.finished:
            return
        total = self.total
        if self.cancelled:
            self._finish("")
            return
        if self.error:
            self._finish(self.error)
            return
        if not self.host._is_open(self.root_id):
            self._finish("")
            return
        if not self._layer_present():
            self._finish(
                f"The new layer '{self.name}' was deleted while its keyframes were "
                "being added: colorize again"
            )
            return
        if i == total:
            self._finish("")
            return
        if i >= len(self.results):  # the engine is still colorizing the next chunk
            self._later(lambda: self._step(i), self.POLL_MS)
            return
        doc = self.doc
        if not self.host._in_front(doc):
            # Another document is in front: the timeline action would act on IT.
            self.paused = True
            self._progress(
                i,
                total,
                f"Paused: switch back to '{self.doc_name}' to finish "
                f"adding keyframes ({i}/{total})",
            )
            self._later(lambda: self._step(i), self.POLL_MS)
            return
        if self.paused:
            self.paused = False
            self._tries = 0
            self._progress(i, total, "Adding keyframes")
        if not same_node(active_layer(self.host.app, doc, strict=False), self.layer):
            self._tries += 1
            if self._tries > self.ACTIVATE_TRIES:
                self._finish(
                    f"Could not make the new layer '{self.name}' active to add "
                    "keyframes: keep it selected while Colorize animation runs"
                )
                return
            doc.setActiveNode(self.layer)
            self._later(lambda: self._step(i))
            return
        self._tries = 0
        t = self.request.times[i]
        doc.setCurrentTime(t)
        doc.waitForDone()
        # Checked again right before the trigger, in this same event-loop turn.
        if not (
            self.host._in_front(doc)
            and same_node(active_layer(self.host.app, doc, strict=False), self.layer)
        ):
            self._later(lambda: self._step(i))
            return
        self.action.trigger()
        doc.waitForDone()
        if not self.layer.hasKeyframeAtTime(t):
            self._finish(
                f"Krita did not add a keyframe at frame {t} to '{self.name}' in '{self.doc_name}'"
            )
            return
        x, y, w, h, _mask = self.context["area"]
        self.layer.setPixelData(
            self.host._result_bytes(self.context, self.results[i], self.layout), x, y, w, h
        )
        self.results[i] = b""  # written: let it go
        self._progress(i + 1, total, "Adding keyframes")
        self._later(lambda: self._step(i + 1))
