"""What the panel needs from its host application (Krita, or a stub in tests).

``krita_io.KritaHost`` implements it on Krita's document API; tests use small stubs.
A host raises ``PluginError`` with a user-facing line for anything it cannot do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .pixels import FrameLayout


@dataclass
class FrameRequest:
    """One frame read from the document, ready to send to the engine."""

    frame: bytes
    layout: FrameLayout
    hints: bytes | None = None  # RGBA u8 in layout.order (or bgra for gray frames)
    description: str = ""  # e.g. "layer 'Ink' of 'scene.kra'"
    context: Any = None  # host-private: document, node, rectangle, selection mask...


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

    def read_frame(self, task: str, hint_layer: str = "") -> FrameRequest:
        """The current frame of the source layer (selection only, if any) and its hints."""
        raise NotImplementedError

    def insert_frame(
        self, request: FrameRequest, result: bytes, layout: FrameLayout, model_name: str, task: str
    ) -> str:
        """Put a colorized frame into a NEW layer; returns the new layer's name."""
        raise NotImplementedError

    def read_animation(self, task: str, hint_layer: str = "") -> AnimationRequest:
        """Every keyframe of the source layer within the playback range."""
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
