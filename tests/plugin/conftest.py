"""Fixtures of the plugin tests: the plugin on sys.path, offscreen Qt, a fake engine, a stub host.

The same tests run under PySide6 (default), PyQt5 and PyQt6: set both
``PYTEST_QT_API`` (pytest-qt) and ``INKHUE_QT_API`` (the plugin), e.g.
``PYTEST_QT_API=pyqt5 INKHUE_QT_API=pyqt5 pytest tests/plugin``. Setting only one of
them sets the other; two different bindings in one process would crash.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN_DIR = ROOT / "krita_plugin"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_pytest_api = os.environ.get("PYTEST_QT_API", "").lower()
_inkhue_api = os.environ.get("INKHUE_QT_API", "").lower()
if _pytest_api and not _inkhue_api:
    os.environ["INKHUE_QT_API"] = _pytest_api
elif _inkhue_api and _pytest_api and _inkhue_api != _pytest_api:
    raise pytest.UsageError(
        f"PYTEST_QT_API={_pytest_api} and INKHUE_QT_API={_inkhue_api} differ: set both to "
        "the same binding"
    )
elif _inkhue_api and not _pytest_api and _inkhue_api != "pyside6":
    raise pytest.UsageError(
        f"INKHUE_QT_API={_inkhue_api}: also set PYTEST_QT_API={_inkhue_api} (pytest-qt "
        "picks its binding before the tests load)"
    )
for path in (str(PLUGIN_DIR), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from fake_engine import FakeEngine  # noqa: E402

from inkhue.errors import PluginError  # noqa: E402
from inkhue.host import AnimationRequest, FrameRequest, Host, TrainingFrame  # noqa: E402
from inkhue.pixels import FrameLayout  # noqa: E402


@pytest.fixture
def fake_engine():
    """A running fake engine (``.url``, ``.requests``, ``.fail``, ``.hold``...)."""
    engine = FakeEngine().start()
    yield engine
    engine.stop()


@pytest.fixture
def dead_url():
    """An address where nothing listens (a port that was free a moment ago)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def colour_frame(width: int, height: int, seed: int) -> bytes:
    """An RGBA u8 (rgba order) cartoon-ish coloured frame: two flat fills split by dark lines,
    a half-transparent bottom row; different for every ``seed``."""
    out = bytearray()
    for y in range(height):
        for x in range(width):
            if (x + seed) % 7 == 0 or (y + seed) % 9 == 0:
                px = (20, 20, 20, 255)
            elif x < width // 2:
                px = ((200 + seed * 5) % 256, 60, 50, 255)
            else:
                px = (60, 130, (210 + seed * 3) % 256, 255)
            if y == height - 1:
                px = px[:3] + (128,)
            out += bytes(px)
    return bytes(out)


class StubHost(Host):
    """A host without Krita: one RGBA u8 frame (BGRA bytes), records what is inserted."""

    def __init__(self, width: int = 4, height: int = 3) -> None:
        self.layout = FrameLayout(width, height, 4, "u8", "bgra")
        self.frame = bytes((i * 7) % 256 if i % 4 != 3 else 255 for i in range(self.layout.nbytes))
        self.anim_frames = [
            bytes((i * (k + 3)) % 256 for i in range(self.layout.nbytes)) for k in range(3)
        ]
        self.times = [0, 4, 9]
        self.layers = ["Ink", "Hints"]
        self.palettes = {"Tests": ["#112233", "#445566"], "Empty": []}
        self.hints: bytes | None = None
        self.inserted: list[dict] = []
        self.read_error = ""
        self.train_error = ""  # training_frames raises it (e.g. a CMYK document)
        self.train_sources: list[str] = []
        self.train_reads = 0  # how many training frames were read (pixels)
        self.set_training_frames(5, 24, 20)
        self.doc_key = "doc-1"  # which document is active (tests switch it)
        self.gray = False  # a grayscale image: read_frame offers a conversion
        self.removed: list = []  # contexts of the results removed
        self.lazy = False  # read_animation gives readers (as KritaHost), not bytes
        self.anim_reads: list[int] = []
        #: Colored keyframes by keyframes choice (value -> (label, [Keyframe])).
        self.keyframe_choices: dict[str, tuple[str, list]] = {}

    def keyframe_sources(self):
        return [(value, label) for value, (label, _keys) in self.keyframe_choices.items()]

    def _keyframes(self, choice):
        if not choice:
            return []
        if choice not in self.keyframe_choices:  # as KritaHost
            raise PluginError(f"Keyframe layer '{choice}' is not in 'stub.kra': pick another")
        return list(self.keyframe_choices[choice][1])

    def document_key(self):
        return self.doc_key

    def set_training_frames(
        self, n: int, width: int, height: int, seeds=None, make=colour_frame
    ) -> None:
        """``n`` frames ``make(width, height, seed)`` (default: coloured; ``seeds``: one per
        frame, equal seeds = equal pixels)."""
        seeds = list(range(n)) if seeds is None else list(seeds)

        def reader(seed):
            def read():
                self.train_reads += 1
                return make(width, height, seed)

            return read

        self.train_frames = [
            TrainingFrame(
                f"stub_f{k:04d}",
                width,
                height,
                reader(seed),
                f"frame {k} of layer 'Colour' of 'stub.kra'",
            )
            for k, seed in enumerate(seeds)
        ]

    def layer_names(self):
        return list(self.layers)

    def palette_names(self):
        return sorted(self.palettes)

    def palette_colors(self, name):
        return list(self.palettes[name])

    def read_frame(self, task, hint_layer="", keyframes=""):
        if self.read_error:
            raise PluginError(self.read_error)
        if self.gray:  # as KritaHost for a GRAYA image: an offer to convert it

            def convert():
                self.gray = False
                return "Converted 'stub.kra' to RGB/Alpha"

            raise PluginError("Document 'stub.kra' is grayscale", fix=("Convert", convert))
        if hint_layer and hint_layer not in self.layers:  # as KritaHost
            raise PluginError(
                f"Hint layer '{hint_layer}' is not in 'stub.kra': pick another "
                "hint layer or (no hints)"
            )
        hints = self.hints if hint_layer else None
        return FrameRequest(
            self.frame,
            self.layout,
            hints,
            "layer 'Ink' of 'stub.kra'",
            {"task": task, "hint_layer": hint_layer, "doc_key": self.doc_key},
            self._keyframes(keyframes),
        )

    def insert_frame(self, request, result, layout, model_name, task):
        self.inserted.append(
            {
                "kind": "frame",
                "data": result,
                "layout": layout,
                "model": model_name,
                "task": task,
                "request": request,
            }
        )
        return "InkHue " + model_name

    def read_animation(self, task, hint_layer="", keyframes=""):
        if self.read_error:
            raise PluginError(self.read_error)

        def reader(k):
            def read():
                self.anim_reads.append(k)
                return self.anim_frames[k]

            return read

        frames = (
            [reader(k) for k in range(len(self.anim_frames))]
            if self.lazy
            else list(self.anim_frames)
        )
        return AnimationRequest(
            frames,
            list(self.times),
            self.layout,
            None,
            "layer 'Ink' of 'stub.kra'",
            {"task": task, "doc_key": self.doc_key},
            keyframes=self._keyframes(keyframes),
        )

    def insert_animation(self, request, results, layout, model_name, task, done, progress=None):
        entry = {
            "kind": "animation",
            "data": [],
            "layout": layout,
            "model": model_name,
            "task": task,
            "times": request.times,
            "feeds": 0,
        }
        self.inserted.append(entry)
        host = self

        class Insertion:  # like KeyframeInsertion: results may come in chunks
            over = False

            def feed(self, more):
                entry["data"].extend(more)
                entry["feeds"] += 1
                if len(entry["data"]) == len(request.times):
                    self.over = True
                    done("InkHue " + model_name, "")

            def cancel(self):
                self.end("")

            def fail(self, error):
                self.end(error)

            def end(self, error):
                if not self.over:
                    self.over = True
                    host.inserted.remove(entry)
                    done("", error)

        insertion = Insertion()
        insertion.feed(results)
        return insertion

    def document_key_of(self, context):
        return context["doc_key"]

    def remove_result(self, context):
        self.removed.append(context)

    def training_frames(self, source):
        self.train_sources.append(source)
        if self.train_error:
            raise PluginError(self.train_error)
        return list(self.train_frames)


@pytest.fixture
def stub_host():
    return StubHost()


@pytest.fixture
def panel(qtbot, tmp_path, stub_host, fake_engine):
    """(widget, model) of a standalone panel pointed at the fake engine."""
    from inkhue.docker import InkHuePanel
    from inkhue.panel_model import PanelModel
    from inkhue.settings import QSettingsStore

    store = QSettingsStore(str(tmp_path / "settings.ini"))
    store.write("server_url", fake_engine.url)
    # A model chosen, as these tests were written before "Automatic (detected)" became the
    # default; the automatic model's own tests choose it (test_panel_auto_model.py).
    store.write("last_model", "toon-gray")
    model = PanelModel(stub_host, store)
    widget = InkHuePanel(model)
    qtbot.addWidget(widget)
    yield widget, model
    # Let requests still in flight (e.g. a job's final DELETE) end before Qt objects go.
    qtbot.waitUntil(lambda: model.client.pending() == 0, timeout=5000)
