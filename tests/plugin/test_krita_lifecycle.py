"""What happens to a job's document and layers between reading and the result: held
frames (Krita reads only a keyframe's own time), a source layer deleted and a document
closed while the engine works, and a reader that fails with an unexpected error. The fake
behaves as Krita 5.1.5 was measured to (docs/FACTS.md)."""

from __future__ import annotations

import fake_krita as fk
import pytest

from inkhue.errors import PluginError
from inkhue.krita_io import KritaHost, shown_keyframe

TIMEOUT = 5000


def pattern(n: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed * 17) % 256 for i in range(n))


def host_for(doc) -> KritaHost:
    return KritaHost(fk.App(doc), palette_class=fk.Palette, later=lambda ms, fn: fn())


def animated(keys, name: str = "Ink", size=(2, 2)):
    doc = fk.Document(*size)
    ink = doc.add_layer(name)
    for t in keys:
        ink.fill(pattern(ink.nbytes, seed=t), time=t)
    doc.setActiveNode(ink)
    return doc, ink


def test_the_fake_reads_held_frames_as_krita_does():
    _doc, ink = animated((0, 6))
    assert ink.pixelDataAtTime(0, 0, 2, 2, 3) == b""  # Krita 5.1.5: empty at a held frame
    assert [shown_keyframe(ink, t) for t in (0, 3, 6, 9)] == [0, 0, 6, 6]
    _doc, late = animated((4,))
    assert shown_keyframe(late, 2) is None


def test_a_range_starting_in_a_held_frame_sends_the_held_drawing():
    doc, ink = animated((0, 6))
    doc.start, doc.end = 3, 8  # the shot starts while keyframe 0 is held
    for task in ("grayscale", "lineart"):
        req = host_for(doc).read_animation(task)
        assert req.times == [3, 6]
        assert len(req.frames[0]()) == req.layout.nbytes
    gray = host_for(doc).read_animation("grayscale")
    assert gray.frames[0]() == pattern(ink.nbytes, seed=0)


def test_a_colour_keyframe_at_a_held_source_frame_sends_the_held_drawing():
    doc, ink = animated((0, 3, 6), size=(8, 4))
    colour = doc.add_layer("Colour")
    colour.fill(pattern(colour.nbytes, seed=40), time=0)
    colour.fill(pattern(colour.nbytes, seed=41), time=4)  # the source holds frame 3 at 4
    doc.setActiveNode(ink)
    _first, held = host_for(doc).read_animation("grayscale", keyframes="layer:Colour").keyframes
    assert held.structure() == ink.pixelDataAtTime(0, 0, 8, 4, 3)


def test_an_animated_hint_layer_is_read_where_it_holds_and_not_before_its_first_hints():
    doc, ink = animated((0, 3, 6))
    hints = doc.add_layer("Hints")
    hints.fill(pattern(hints.nbytes, seed=9), time=3)  # dabs painted once, at frame 3
    doc.setActiveNode(ink)
    req = host_for(doc).read_animation("grayscale", hint_layer="Hints")
    assert req.hints[0]() is None  # frame 0: no hints painted yet
    assert req.hints[1]() is not None and req.hints[2]() == req.hints[1]()


def test_training_from_a_range_starting_in_a_held_frame():
    doc, _colour = animated((0, 6), name="Colour")
    doc.start, doc.end = 3, 8
    frames = host_for(doc).training_frames("animation")
    assert frames[0].name.endswith("f0003")
    assert frames[0].read() == frames[0].read() and len(frames[0].read()) == 2 * 2 * 4


def _doc_with_paper():
    doc = fk.Document(2, 2)
    doc.add_layer("Paper")
    ink = doc.add_layer("Ink")
    ink.fill(pattern(ink.nbytes))
    doc.setActiveNode(ink)
    return doc, ink


@pytest.mark.parametrize("task", ["grayscale", "lineart"])
def test_a_result_for_a_deleted_source_layer_is_refused_not_lost_unseen(task):
    doc, ink = _doc_with_paper()
    host = host_for(doc)
    req = host.read_frame(task)
    ink.remove()  # the artist deletes the source while the engine works
    doc.setActiveNode(doc.nodeByName("Paper"))
    with pytest.raises(PluginError, match="layer 'Ink' was deleted .*Edit > Undo"):
        host.insert_frame(req, pattern(16, seed=3), req.layout.result(), "toon", task)
    assert [n.name() for n in doc.rootNode().childNodes()] == ["Paper"]


def test_a_result_for_a_closed_document_says_it_was_closed():
    doc, _ink = _doc_with_paper()
    host = host_for(doc)
    req = host.read_frame("grayscale")
    doc.close()
    with pytest.raises(PluginError, match="'scene.kra' was closed before its result arrived"):
        host.insert_frame(req, pattern(16, seed=3), req.layout.result(), "toon", "grayscale")
    doc, _ink = animated((1, 2))
    host = host_for(doc)
    req = host.read_animation("grayscale")
    doc.close()
    with pytest.raises(PluginError, match="was closed before its result arrived"):
        host.insert_animation(
            req, [pattern(16, 5), pattern(16, 6)], req.layout, "toon", "grayscale", print
        )


def test_an_unexpected_read_error_ends_the_job_with_a_message(
    qtbot, tmp_path, fake_engine, monkeypatch
):
    # an error that is not a PluginError, raised inside a network reply's slot, must end
    # the job (before: the panel stayed busy on "Reading and sending" until Cancel)
    from inkhue.panel_model import PanelModel
    from inkhue.settings import QSettingsStore

    doc, _ink = animated((0, 6))
    host = KritaHost(fk.App(doc), palette_class=fk.Palette)
    store = QSettingsStore(str(tmp_path / "settings.ini"))
    store.write("server_url", fake_engine.url)
    store.write("last_model", "toon-gray")
    model = PanelModel(host, store)
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        model.connect_engine()

    def broken(*args, **kwargs):
        raise ValueError("frame has 0 bytes")

    monkeypatch.setattr(KritaHost, "_source_pixels", broken)
    model.colorize_animation()
    qtbot.waitUntil(lambda: not model.busy, timeout=TIMEOUT)
    assert "Reading frame 1/2 failed: ValueError: frame has 0 bytes" in model.error
    qtbot.waitUntil(lambda: model.client.pending() == 0, timeout=TIMEOUT)
