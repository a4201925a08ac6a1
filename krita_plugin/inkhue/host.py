"""What the panel needs from its host application (Krita, or a stub in tests).

``krita_io.KritaHost`` implements it on Krita's document API; tests use small stubs.
A host raises ``PluginError`` with a user-facing line for anything it cannot do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .pixels import FrameLayout

#: Values of the keyframes choice: "" = none, else ``"layer:NAME"`` or ``"document:KEY"``.
NO_KEYFRAMES = ""
KEYFRAME_LAYER = "layer:"
KEYFRAME_DOCUMENT = "document:"


@dataclass
class Keyframe:
    """A colored keyframe (or model sheet) for an engine job (``POST /jobs`` keyframes).

    ``read`` gives its pixels (bytes, or a function called when it is uploaded) in
    ``layout``. ``frame``: index of the request's frame it colors (that frame comes out as
    the artist colored it); else ``structure`` gives the uncolored frame it colors (in
    the request's frame layout); neither: a model sheet. ``under_lines``: line art whose
    color was painted under the lines (the engine draws the lines over it).
    ``previous``: the result of the frame before a chunk of a longer animation.
    """

    read: bytes | Callable[[], bytes]
    layout: FrameLayout
    frame: int | None = None
    structure: bytes | Callable[[], bytes] | None = None
    under_lines: bool = False
    previous: bool = False
    name: str = ""  # for messages, e.g. "frame 12 of layer 'Colour'"

    def spec(self) -> dict[str, Any]:
        """Its entry of the ``keyframes`` field of ``POST /jobs``."""
        out: dict[str, Any] = {
            "width": self.layout.width,
            "height": self.layout.height,
            "channels": self.layout.channels,
            "depth": self.layout.depth,
            "order": self.layout.order,
            "structure": self.structure is not None,
            "under_lines": self.under_lines,
            "previous": self.previous,
        }
        if self.frame is not None:
            out["frame"] = self.frame
        if self.name:
            out["name"] = self.name[:200]
        return out


@dataclass
class FrameRequest:
    """One frame read from the document, ready to send to the engine."""

    frame: bytes
    layout: FrameLayout
    hints: bytes | None = None  # RGBA u8 in layout.order (or bgra for gray frames)
    description: str = ""  # e.g. "layer 'Ink' of 'scene.kra'"
    context: Any = None  # host-private: document, node, rectangle, selection mask...
    keyframes: list[Keyframe] = field(default_factory=list)  # colors to follow


@dataclass
class AnimationRequest:
    """The keyframes of a layer (one frame per keyframe).

    ``frames`` / ``hints`` items are bytes or a function returning them: a host may read the
    pixels only when the frame is uploaded (one per event-loop turn, cancellable), so the
    plugin never holds every input frame at once. Such a function may raise PluginError.
    """

    frames: list[bytes | Callable[[], bytes]]
    times: list[int]
    layout: FrameLayout
    hints: list[bytes | None | Callable[[], bytes | None]] | None = None
    description: str = ""
    context: Any = None
    extra: dict = field(default_factory=dict)
    keyframes: list[Keyframe] = field(default_factory=list)  # colors to follow


#: Where the Train section takes its coloured frames from (``Host.training_frames``).
TRAIN_SOURCE_ANIMATION = "animation"  # the active layer over the playback range
TRAIN_SOURCE_DOCUMENTS = "documents"  # the current frame of every open document
TRAIN_SOURCES = (TRAIN_SOURCE_ANIMATION, TRAIN_SOURCE_DOCUMENTS)


@dataclass
class TrainingFrame:
    """One coloured frame for fine-tuning; its pixels are read only when ``read()`` is called.

    ``read()`` returns RGBA u8 bytes in ``rgba`` order (``width * height * 4``), sRGB-encoded,
    and may raise ``PluginError`` (e.g. the document was closed meanwhile). Reading lazily
    lets the panel check the set (count, sizes) first and read one frame per event-loop turn.
    """

    name: str  # a file-name stem, e.g. "scene_f0012"
    width: int
    height: int
    read: Callable[[], bytes]
    description: str = ""  # for messages, e.g. "frame 12 of layer 'Colour' of 'scene.kra'"


class Host:
    """Interface of the host application (every method may raise ``PluginError``)."""

    def document_key(self) -> str:
        """An id of the active document, stable while it is open ("" = none)."""
        return ""

    def document_key_of(self, context: Any) -> str:
        """``document_key`` of the document a request (its ``context``) was read from."""
        return self.document_key()

    def layer_names(self) -> list[str]:
        """Names of the layers that can serve as a hint layer (current document)."""
        raise NotImplementedError

    def palette_names(self) -> list[str]:
        """Names of the palettes the user can lock colours to."""
        raise NotImplementedError

    def palette_colors(self, name: str) -> list[str]:
        """The colours of palette ``name`` as sRGB hex strings (``#rrggbb``)."""
        raise NotImplementedError

    def keyframe_sources(self) -> list[tuple[str, str]]:
        """``(value, label)`` of what can give colored keyframes: the active document's
        layers (``KEYFRAME_LAYER + name``) and the other open documents as model sheets
        (``KEYFRAME_DOCUMENT + document_key``)."""
        return []

    def read_frame(self, task: str, hint_layer: str = "", keyframes: str = "") -> FrameRequest:
        """The current frame of the source layer (selection only, if any), its hints, and
        the colored keyframes of ``keyframes`` (a ``keyframe_sources`` value)."""
        raise NotImplementedError

    def insert_frame(
        self, request: FrameRequest, result: bytes, layout: FrameLayout, model_name: str, task: str
    ) -> str:
        """Put a colorized frame into a NEW layer; returns the new layer's name."""
        raise NotImplementedError

    def read_animation(
        self, task: str, hint_layer: str = "", keyframes: str = ""
    ) -> AnimationRequest:
        """Every keyframe of the source layer within the playback range, and the colored
        keyframes of ``keyframes`` (a ``keyframe_sources`` value)."""
        raise NotImplementedError

    def insert_animation(
        self,
        request: AnimationRequest,
        results: list[bytes],
        layout: FrameLayout,
        model_name: str,
        task: str,
        done: Callable[[str, str], None],
        progress: Callable[[int, int, str], None] | None = None,
    ) -> Any:
        """Write results into a NEW animated layer, one keyframe per source keyframe.

        May work asynchronously; calls ``done(layer_name, error)`` once: ``(name, "")`` on
        success, ``("", error)`` on failure, ``("", "")`` when cancelled (a failed or
        cancelled insertion leaves no layer behind). ``progress(done, total, text)`` reports
        each keyframe and pauses. Returns a handle whose ``cancel()`` stops it.
        """
        raise NotImplementedError

    def remove_result(self, context: Any) -> None:
        """Delete the result layer that an insert wrote (``context`` is the request's)."""
        raise NotImplementedError

    def training_frames(self, source: str) -> list[TrainingFrame]:
        """The coloured frames of ``source`` (one of ``TRAIN_SOURCES``), not read yet.

        Checks what can be checked without reading pixels (documents open, colour model
        and depth, something animated) and raises ``PluginError`` naming the document.
        """
        raise NotImplementedError
