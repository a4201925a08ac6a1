"""krita_io on the stub ``krita`` API (tests/plugin/fake_krita.py); tests/krita runs real Krita."""

from __future__ import annotations

import struct

import fake_krita as fk
import pytest

from inkhue.errors import PluginError
from inkhue.krita_io import KritaHost, active_layer, drawing_times, managed_color_hex
from inkhue.pixels import FrameLayout


def pattern(n: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed * 17) % 256 for i in range(n))


def host_for(doc, gui=True, **kw):
    app = fk.App(doc, gui=gui)
    steps = []

    def later(ms, fn):  # run event-loop steps at once, but record them
        steps.append(ms)
        fn()

    return KritaHost(app, palette_class=fk.Palette, later=later, **kw), app, steps


def test_the_layer_read_is_the_one_selected_in_the_active_view():
    """Window > New View: doc.activeNode() is the FIRST view's layer (docs/FACTS.md); the
    panel reads the active view's selection when several views show the document."""
    doc = fk.Document(2, 2)
    sketch, ink, top = doc.add_layer("Sketch"), doc.add_layer("Ink"), doc.add_layer("Top")
    doc.setActiveNode(sketch)
    host, app, _ = host_for(doc)
    assert active_layer(app, doc) is sketch  # no window (headless): doc.activeNode()
    first = fk.View(doc, [sketch])
    app.window = fk.Window(first)
    first.selected = [ink, sketch]  # one view, several layers: the current one, as before
    assert active_layer(app, doc) is sketch
    second = fk.View(doc)
    app.window = fk.Window(first, second)  # the second view is active
    doc.setActiveNode(ink)  # acts on the active view only
    assert doc.activeNode() is sketch and second.selectedNodes() == [ink]
    assert active_layer(app, doc) is ink
    assert host.read_frame("grayscale").description == "layer 'Ink' of 'scene.kra'"
    second.selected = []  # nothing selected in the view: the document's own
    assert active_layer(app, doc) is sketch
    second.selected = [ink, top]  # several in a second view: cannot tell which
    assert active_layer(app, doc, strict=False) is None
    with pytest.raises(PluginError, match="2 layers are selected in this view of 'scene.kra'"):
        host.read_frame("grayscale")
    app.window.active = fk.View(fk.Document(2, 2), [ink])  # another document in front
    assert active_layer(app, doc) is sketch


def test_colorize_animation_in_a_second_view_keys_the_result_layer_only():
    """The whole insertion with two views: keyframes go to the new layer (the timeline acts
    on the active view's layer), the first view's layer is untouched, and the artist's
    layer in the active view is active again at the end."""
    doc = fk.Document(2, 2)
    sketch, ink = doc.add_layer("Sketch"), doc.add_layer("Ink")
    for t in (0, 3):
        ink.fill(pattern(ink.nbytes, seed=t), time=t)
    sketch.fill(pattern(sketch.nbytes, seed=7), time=0)
    doc.setActiveNode(sketch)
    host, app, _ = host_for(doc)
    first, second = fk.View(doc, [sketch]), fk.View(doc)
    app.window = fk.Window(first, second)
    doc.setActiveNode(ink)
    before = user_layers_snapshot(doc)
    req = host.read_animation("grayscale")
    assert req.times == [0, 3] and req.description.startswith("layer 'Ink'")
    results = [pattern(16, seed=30), pattern(16, seed=40)]
    done = []
    host.insert_animation(
        req, results, req.layout, "toon", "grayscale", lambda n, e: done.append((n, e))
    )
    assert done == [("InkHue toon", "")]
    new = doc.nodeByName("InkHue toon")
    assert sorted(new.frames) == [0, 3]
    assert new.pixelDataAtTime(0, 0, 2, 2, 3) == results[1]
    assert {k: v for k, v in user_layers_snapshot(doc).items() if k != "InkHue toon"} == before
    assert second.selectedNodes() == [ink] and doc.activeNode() is sketch


def test_an_error_inside_a_keyframe_step_ends_the_insertion_and_removes_the_layer():
    """A step runs from a Qt timer, where an exception would reach no one."""
    doc = fk.Document(2, 2)
    ink = doc.add_layer("Ink")
    for t in (0, 1):
        ink.fill(pattern(ink.nbytes, seed=t), time=t)
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    req = host.read_animation("grayscale")
    done = []
    host.insert_animation(
        req, [b"short", b"short"], req.layout, "toon", "grayscale",
        lambda n, e: done.append((n, e)),
    )  # fmt: skip
    [(name, error)] = done
    assert name == "" and error.startswith("Adding keyframe 1 of 2 failed: ")
    assert "was removed" in error and doc.nodeByName("InkHue toon") is None


def user_layers_snapshot(doc):
    return {
        n.name(): (bytes(n.still), {t: bytes(b) for t, b in n.frames.items()})
        for n in doc.root.childNodes()
    }


def test_read_and_insert_grayscale_rgba_u8():
    doc = fk.Document(8, 4)
    bg = doc.add_layer("Background")
    ink = doc.add_layer("Ink")
    top = doc.add_layer("Top")
    ink.fill(pattern(ink.nbytes))
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    before = user_layers_snapshot(doc)
    req = host.read_frame("grayscale")
    assert req.layout == FrameLayout(8, 4, 4, "u8", "bgra")
    assert req.frame == bytes(ink.still) and req.hints is None
    assert req.description == "layer 'Ink' of 'scene.kra'"
    result = pattern(req.layout.nbytes, seed=9)
    name = host.insert_frame(req, result, req.layout.result(), "toon", "grayscale")
    assert name == "InkHue toon"
    assert [n.name() for n in doc.root.childNodes()] == [
        "Background",
        "Ink",
        "InkHue toon",
        "Top",
    ]  # directly above the source
    new = doc.nodeByName("InkHue toon")
    assert new.pixelData(0, 0, 8, 4) == result
    assert user_layers_snapshot(doc) == {**before, "InkHue toon": (result, {})}
    assert doc.refreshed == 1 and bg.writes == ink.writes == top.writes == 0


def test_lineart_goes_under_the_lines_and_is_flattened_on_white():
    doc = fk.Document(2, 1)
    doc.add_layer("Background")
    lines = doc.add_layer("Lines")
    lines.fill(bytes([0, 0, 0, 255, 10, 20, 30, 0]))  # a black line pixel, a transparent one
    doc.setActiveNode(lines)
    host, _app, _ = host_for(doc)
    req = host.read_frame("lineart")
    assert req.frame == bytes([0, 0, 0, 255, 255, 255, 255, 255])  # paper is white, opaque
    host.insert_frame(req, bytes(8), req.layout, "inks", "lineart")
    assert [n.name() for n in doc.root.childNodes()] == ["Background", "InkHue inks", "Lines"]
    assert doc.nodeByName("InkHue inks").blending == "normal"


def test_lineart_at_the_bottom_multiplies_above_it():
    doc = fk.Document(2, 1)
    lines = doc.add_layer("Lines")
    doc.setActiveNode(lines)
    host, _app, _ = host_for(doc)
    req = host.read_frame("lineart")
    host.insert_frame(req, bytes(8), req.layout, "inks", "lineart")
    assert [n.name() for n in doc.root.childNodes()] == ["Lines", "InkHue inks"]
    assert doc.nodeByName("InkHue inks").blending == "multiply"


@pytest.mark.parametrize(
    "depth,order,nbytes",
    [("U8", "bgra", 1), ("U16", "bgra", 2), ("F16", "rgba", 2), ("F32", "rgba", 4)],
)
def test_depths(depth, order, nbytes):
    doc = fk.Document(3, 2, depth=depth, profile="sRGB-elle-V2-g10.icc")
    ink = doc.add_layer("Ink")
    ink.fill(pattern(ink.nbytes))
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    req = host.read_frame("grayscale")
    assert req.layout == FrameLayout(3, 2, 4, depth.lower(), order)
    assert len(req.frame) == 3 * 2 * 4 * nbytes
    linear, srgb = "sRGB-elle-V2-g10.icc", "sRGB-elle-V2-srgbtrc.icc"
    # Issue 14 item 11: linear values (Krita's 16-bit/float default) go to the engine
    # sRGB-encoded (as 8-bit documents' do), and its answer comes back linear.
    assert_same_pixels(
        req.frame, fk.transfer(pattern(ink.nbytes), "RGBA", depth, linear, srgb), depth
    )
    host.insert_frame(req, pattern(len(req.frame), 2), req.layout, "m", "grayscale")
    new = doc.nodeByName("InkHue m")
    assert (new.colorModel(), new.colorDepth(), new.colorProfile()) == ("RGBA", depth, linear)
    assert_same_pixels(
        new.pixelData(0, 0, 3, 2),
        fk.transfer(pattern(len(req.frame), 2), "RGBA", depth, srgb, linear),
        depth,
    )


def assert_same_pixels(got: bytes, want: bytes, depth: str) -> None:
    """Integers exactly; floats within what a 16-bit step of the curve table allows."""
    if depth in ("U8", "U16"):
        assert got == want
        return
    fmt = {"F16": "e", "F32": "f"}[depth]
    a = struct.unpack(f"<{len(got) // struct.calcsize(fmt)}{fmt}", got)
    b = struct.unpack(f"<{len(want) // struct.calcsize(fmt)}{fmt}", want)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 2e-3


def test_gray_layer_gets_an_rgba_layer():
    """A GRAYA layer in an RGB image: the result is an RGBA layer (its colours show)."""
    doc = fk.Document(3, 2, model="RGBA", depth="U16", profile="sRGB-elle-V2-g10.icc")
    ink = doc.add_layer("Ink", model="GRAYA", profile="Gray-D50-elle-V2-g10.icc")
    ink.fill(pattern(ink.nbytes))
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    req = host.read_frame("grayscale")
    assert req.layout == FrameLayout(3, 2, 2, "u16", "bgra")
    out = req.layout.result()
    assert out == FrameLayout(3, 2, 4, "u16", "bgra")
    # Linear light ("g10") in Krita, sRGB-encoded for the engine, and back.
    assert req.frame == fk.transfer(
        pattern(ink.nbytes),
        "GRAYA",
        "U16",
        "Gray-D50-elle-V2-g10.icc",
        "Gray-D50-elle-V2-srgbtrc.icc",
    )
    host.insert_frame(req, pattern(out.nbytes), out, "m", "grayscale")
    new = doc.nodeByName("InkHue m")
    assert (new.colorModel(), new.colorDepth(), new.colorProfile()) == (
        "RGBA",
        "U16",
        "sRGB-elle-V2-g10.icc",
    )
    assert new.pixelData(0, 0, 3, 2) == fk.transfer(
        pattern(out.nbytes), "RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc", "sRGB-elle-V2-g10.icc"
    )


@pytest.mark.parametrize(
    "depth,profile,rgb_profile",
    [
        ("U8", "Gray-D50-elle-V2-srgbtrc.icc", "sRGB-elle-V2-srgbtrc.icc"),
        ("F32", "Gray-D50-elle-V2-g10.icc", "sRGB-elle-V2-g10.icc"),
    ],
)
def test_gray_document_is_offered_a_conversion_to_rgb(depth, profile, rgb_profile):
    """Issue 14 item 1: in a grayscale image a colour layer shows gray, so Colorize stops
    with a line saying so and offers to convert the image to RGB at its own depth."""
    doc = fk.Document(3, 2, model="GRAYA", depth=depth, profile=profile)
    ink = doc.add_layer("Ink")
    ink.fill(pattern(ink.nbytes))
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    with pytest.raises(
        PluginError,
        match=f"Document 'scene.kra' is grayscale \\(GRAYA "
        f"{depth}\\): Krita would show the colours gray",
    ) as caught:
        host.read_frame("grayscale")
    assert [n.name() for n in doc.root.childNodes()] == ["Ink"]  # nothing added
    label, action = caught.value.fix
    assert label == "Convert to RGB and colorize"
    assert action() == (
        f"Converted 'scene.kra' to RGB/Alpha ({depth}, {rgb_profile}) so "
        "the colours show; Edit > Undo takes it back"
    )
    assert (doc.colorModel(), doc.colorDepth(), doc.colorProfile()) == ("RGBA", depth, rgb_profile)
    req = host.read_frame("grayscale")
    assert req.layout.channels == 4


@pytest.mark.parametrize(
    "model,depth,words",
    [
        ("CMYKA", "U8", "is in CMYKA colours"),
        ("LABA", "U16", "is in LABA colours"),
        ("RGBA", "U32", "has U32 channels"),
    ],
)
def test_unsupported_documents_are_refused_clearly(model, depth, words):
    doc = fk.Document(2, 2, model=model, depth="U8")
    ink = doc.add_layer("Ink")
    doc.depth = depth
    ink._depth = depth
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    with pytest.raises(PluginError) as err:
        host.read_frame("grayscale")
    message = str(err.value)
    assert message.startswith("Document 'scene.kra' ") and words in message
    assert "Image > Convert Image Color Space to RGB" in message


def test_no_document_no_layer_and_masks():
    host, _app, _ = host_for(None)
    with pytest.raises(PluginError, match="No document is open"):
        host.read_frame("grayscale")
    assert host.layer_names() == []
    doc = fk.Document(2, 2)
    host, _app, _ = host_for(doc)
    with pytest.raises(PluginError, match="No layer is selected in 'scene.kra'"):
        host.read_frame("grayscale")
    mask = doc.add_layer("Sel", node_type="selectionmask")
    doc.setActiveNode(mask)
    with pytest.raises(PluginError, match="'Sel' in 'scene.kra' is a mask"):
        host.read_frame("grayscale")
    doc.add_layer("Ink")
    assert host.layer_names() == ["Ink"]


def test_selection_reads_its_rectangle_and_clears_outside():
    doc = fk.Document(6, 4)
    ink = doc.add_layer("Ink")
    ink.fill(pattern(ink.nbytes))
    doc.setActiveNode(ink)
    mask = bytes([255, 0, 255, 255, 255, 0])  # 3x2 rect at (2, 1)
    doc.set_selection(fk.Selection(2, 1, 3, 2, mask))
    host, _app, _ = host_for(doc)
    req = host.read_frame("grayscale")
    assert req.layout.width == 3 and req.layout.height == 2
    assert req.frame == ink.pixelData(2, 1, 3, 2)
    result = bytes([200] * 24)
    host.insert_frame(req, result, req.layout, "m", "grayscale")
    new = doc.nodeByName("InkHue m")
    got = new.pixelData(2, 1, 3, 2)
    for i, m in enumerate(mask):
        assert got[i * 4 : (i + 1) * 4] == (bytes([200] * 4) if m else bytes(4))
    assert new.pixelData(0, 0, 2, 1) == bytes(8)  # outside the rectangle: untouched
    doc.set_selection(fk.Selection(2, 1, 3, 2, bytes(6)))
    with pytest.raises(PluginError, match="The selection in 'scene.kra' is empty"):
        host.read_frame("grayscale")


def test_hint_layer_in_u16_becomes_rgba8_in_frame_order():
    doc = fk.Document(2, 1, depth="U16")
    ink = doc.add_layer("Ink")
    hints = doc.add_layer("Hints")
    hints.fill(struct.pack("<8H", 0x1100, 0x2200, 0x3300, 0xFFFF, 0, 0, 0, 0))
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    req = host.read_frame("grayscale", "Hints")
    assert req.hints == bytes([0x11, 0x22, 0x33, 0xFF, 0, 0, 0, 0])  # bgra, like the frame
    with pytest.raises(PluginError, match="Hint layer 'Nope' is not in 'scene.kra'"):
        host.read_frame("grayscale", "Nope")
    with pytest.raises(PluginError, match="is the layer being colorized"):
        host.read_frame("grayscale", "Ink")
    gray = doc.add_layer("GrayHints", model="GRAYA")
    assert gray
    with pytest.raises(PluginError, match="Hint layer 'GrayHints' is GRAYA U16: hints need"):
        host.read_frame("grayscale", "GrayHints")
    # two layers of the hint layer's name (e.g. in two groups): which one is meant?
    group = doc.add_layer("Group", node_type="grouplayer")
    group.addChildNode(fk.Node(doc, "Hints"), None)
    with pytest.raises(PluginError, match="Hint layer 'Hints': 2 layers of 'scene.kra' have"):
        host.read_frame("grayscale", "Hints")


def test_animation_keyframes_in_the_playback_range():
    doc = fk.Document(2, 2)
    doc.start, doc.end = 1, 8
    doc.time = 5
    ink = doc.add_layer("Ink")
    for t in (0, 2, 5, 9):  # 0 and 9 are outside the playback range
        ink.fill(pattern(ink.nbytes, seed=t), time=t)
    doc.setActiveNode(ink)
    host, app, steps = host_for(doc)
    before = user_layers_snapshot(doc)
    req = host.read_animation("grayscale")
    # frame 1 shows keyframe 0's drawing, held into the range: colorized at frame 1
    assert req.times == [1, 2, 5]
    want = [pattern(16, seed=0), pattern(16, seed=2), pattern(16, seed=5)]
    assert [read() for read in req.frames] == want
    results = [pattern(16, seed=30), pattern(16, seed=40), pattern(16, seed=50)]
    done = []
    host.insert_animation(
        req,
        results,
        req.layout,
        "toon",
        "grayscale",
        lambda name, error: done.append((name, error)),
    )
    assert done == [("InkHue toon", "")]
    new = doc.nodeByName("InkHue toon")
    assert sorted(new.frames) == [1, 2, 5] == app.blank_frame.triggered_at
    assert new.pixelDataAtTime(0, 0, 2, 2, 1) == results[0]
    assert new.pixelDataAtTime(0, 0, 2, 2, 2) == results[1]
    assert new.pixelDataAtTime(0, 0, 2, 2, 5) == results[2]
    # a range that starts on a keyframe, or a layer with nothing before it: as they are
    assert drawing_times(ink, 2, 8) == [2, 5]
    assert drawing_times(ink, 0, 3) == [0, 2]
    assert doc.time == 5  # the user's current frame is restored
    assert steps and all(ms > 0 for ms in steps)  # every step went back to the event loop
    assert {k: v for k, v in user_layers_snapshot(doc).items() if k != "InkHue toon"} == before


def test_animation_errors():
    doc = fk.Document(2, 2)
    ink = doc.add_layer("Ink")
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    with pytest.raises(PluginError, match="Layer 'Ink' of 'scene.kra' has no keyframes"):
        host.read_animation("grayscale")
    ink.fill(pattern(ink.nbytes), time=3)
    req = host.read_animation("grayscale")
    headless, _app, _ = host_for(doc, gui=False)
    with pytest.raises(PluginError, match="needs Krita's main window"):
        headless.insert_animation(req, [bytes(16)], req.layout, "m", "grayscale", lambda *a: None)


def test_palettes():
    doc = fk.Document(2, 2)
    host, app, _ = host_for(doc)
    app.palettes = {
        "Inks": [
            fk.ManagedColor("RGBA", "U8", [1.0, 0.5, 0.0, 1.0]),
            None,
            fk.ManagedColor("CMYKA", "U8", [0.2, 0.4, 0.6, 1.0]),
        ],
        "A": [],
    }
    assert host.palette_names() == ["A", "Inks"]
    assert host.palette_colors("Inks") == ["#ff8000", "#336699"]
    with pytest.raises(PluginError, match="Palette 'Gone' is not in Krita's resources"):
        host.palette_colors("Gone")
    assert managed_color_hex(fk.ManagedColor("RGBA", "F32", [1.2, -0.1, 0.2, 1])) == "#ff0033"


# -- coloured frames for the Train section ----------------------------------------------------


def bgra_to_rgba(data: bytes) -> bytes:
    out = bytearray(data)
    out[0::4], out[2::4] = out[2::4], out[0::4]
    return bytes(out)


def test_training_frames_are_the_keyframes_of_the_active_layer():
    doc = fk.Document(3, 2)
    doc.start, doc.end = 1, 8
    doc.time = 5
    colour = doc.add_layer("Colour")
    for t in (0, 2, 5, 9):  # 0 and 9 are outside the playback range
        colour.fill(pattern(colour.nbytes, seed=t), time=t)
    doc.setActiveNode(colour)
    host, _app, _ = host_for(doc)
    frames = host.training_frames("animation")
    # frame 1 shows keyframe 0's colours, held into the range: a frame of its own
    assert [(f.name, f.width, f.height) for f in frames] == [
        ("scene_f0001", 3, 2),
        ("scene_f0002", 3, 2),
        ("scene_f0005", 3, 2),
    ]
    assert frames[1].description == "frame 2 of layer 'Colour' of 'scene.kra'"
    want = [bgra_to_rgba(pattern(24, seed=t)) for t in (0, 2, 5)]
    assert [f.read() for f in frames] == want
    assert doc.time == 5 and colour.writes == 0


def test_training_frames_are_read_in_the_layers_own_depth():
    """A layer converted to another depth than its document's (Layer > Convert > Layer
    Color Space) is decoded as what it is, not as the document's depth."""
    import numpy as np

    doc = fk.Document(2, 1)  # RGBA U8
    doc.start, doc.end = 0, 0
    colour = doc.add_layer("Colour", depth="F16", profile="sRGB-elle-V2-srgbtrc.icc")
    rgba = np.array([[1.0, 0.5, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]], np.float16)
    colour.fill(rgba.tobytes(), time=0)
    doc.setActiveNode(colour)
    host, _app, _ = host_for(doc)
    [frame] = host.training_frames("animation")
    assert frame.read() == bytes([255, 128, 0, 255, 0, 0, 255, 255])


def test_training_frames_of_a_group_step_through_the_range():
    doc = fk.Document(2, 2)
    doc.start, doc.end = 0, 3
    doc.time = 2
    scene = doc.add_layer("Scene", node_type="grouplayer")
    colour = fk.Node(doc, "Colour")
    scene.addChildNode(colour, None)
    colour.fill(pattern(16, seed=1), time=0)
    colour.fill(pattern(16, seed=2), time=2)
    doc.setActiveNode(scene)
    host, _app, _ = host_for(doc)
    frames = host.training_frames("animation")
    assert [f.name for f in frames] == [f"scene_f{t:04d}" for t in range(4)]
    got = [f.read() for f in frames]
    assert got == [bgra_to_rgba(pattern(16, seed=s)) for s in (1, 1, 2, 2)]  # the projection
    assert doc.time == 2  # put back after every read
    still = doc.add_layer("Still")
    doc.setActiveNode(still)
    with pytest.raises(PluginError, match="Layer 'Still' of 'scene.kra' is not animated"):
        host.training_frames("animation")


def test_training_frames_of_open_documents_in_srgb():
    a = fk.Document(2, 1, name="a.kra")
    a.add_layer("Paint").fill(bytes([10, 20, 30, 255, 1, 2, 3, 0]))
    f = fk.Document(2, 1, depth="F32", profile="sRGB-elle-V2-g10.icc", name="f.kra")
    f.add_layer("Paint").fill(struct.pack("<8f", 0.5, 0.0, 1.0, 1.0, 0.2, 0.2, 0.2, 0.5))
    host, app, _ = host_for(a)
    app.open_documents = [a, f]
    frames = host.training_frames("documents")
    assert [(fr.name, fr.description) for fr in frames] == [
        ("a", "document 'a.kra'"),
        ("f", "document 'f.kra'"),
    ]
    assert frames[0].read() == bytes([30, 20, 10, 255, 3, 2, 1, 0])  # BGRA -> RGBA
    # F32 linear light -> sRGB-encoded u8 (0.5 -> 188, 0.2 -> 124), alpha stays linear.
    assert frames[1].read() == bytes([188, 0, 255, 255, 124, 124, 124, 128])
    app.open_documents = []
    with pytest.raises(PluginError, match="No document is open"):
        host.training_frames("documents")


@pytest.mark.parametrize(
    "model,depth,words",
    [
        ("CMYKA", "U8", "Document 'scene.kra' is in CMYKA colours"),
        ("RGBA", "U32", "Document 'scene.kra' has U32 channels"),
        ("GRAYA", "U8", "Document 'scene.kra' is grayscale (GRAYA): fine-tuning learns"),
    ],
)
@pytest.mark.parametrize("source", ["animation", "documents"])
def test_training_frames_refuse_unsupported_documents(model, depth, words, source):
    doc = fk.Document(2, 2, model=model, depth="U8")
    ink = doc.add_layer("Ink")
    ink.fill(pattern(ink.nbytes), time=0)
    doc.depth = ink._depth = depth
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    with pytest.raises(PluginError) as err:
        host.training_frames(source)
    assert str(err.value).startswith(words)
    assert "Image > Convert Image Color Space to RGB" in str(err.value)


def queued_host(doc, other):
    """A host whose event-loop steps wait in a queue (run them with ``run(n)``)."""
    app = fk.App(doc)
    app.open_documents.append(other)
    queue = []
    host = KritaHost(app, palette_class=fk.Palette, later=lambda ms, fn: queue.append(fn))

    def run(n=1):
        for _ in range(n):
            if queue:
                queue.pop(0)()

    return host, app, queue, run


def animated_doc():
    doc = fk.Document(2, 2)
    ink = doc.add_layer("Ink")
    for t in (1, 2, 3):
        ink.fill(pattern(ink.nbytes, seed=t), time=t)
    doc.setActiveNode(ink)
    return doc


def docs_with_other():
    """The animated scene and another document whose layer 'Art' holds the artist's own
    keyframe at frame 0: (doc, other, art)."""
    doc, other = animated_doc(), fk.Document(2, 2, name="other.kra")
    art = other.add_layer("Art")
    art.fill(pattern(art.nbytes, seed=9), time=0)
    other.setActiveNode(art)
    return doc, other, art


def test_animation_results_arriving_while_another_document_is_in_front_wait_for_it():
    """The artist switched documents before the first results came back: nothing is lost,
    nothing is added to the other document, and the layer is finished once back."""
    doc, other, art = docs_with_other()
    host, app, _queue, run = queued_host(doc, other)
    req = host.read_animation("grayscale")
    app.active_document = other
    results = [pattern(16, seed=40 + k) for k in range(3)]
    done, progress = [], []
    host.insert_animation(
        req, results, req.layout, "toon", "grayscale", lambda *a: done.append(a),
        progress=lambda *a: progress.append(a),
    )  # fmt: skip
    run(10)
    assert not done and progress[-1][2].startswith("Paused: switch back to 'scene.kra'")
    assert sorted(art.frames) == [0] and art.frames[0] == pattern(art.nbytes, seed=9)
    app.active_document = doc
    run(10)
    assert done == [("InkHue toon", "")]
    new = doc.nodeByName("InkHue toon")
    assert [new.pixelDataAtTime(0, 0, 2, 2, t) for t in (1, 2, 3)] == results


def test_animation_waits_while_another_document_is_in_front():
    """Issue 14 item 7: the timeline action acts on the document in front; while another
    one is there no keyframe is added (anywhere), and the insertion goes on when back."""
    doc, other, art = docs_with_other()
    host, app, queue, run = queued_host(doc, other)
    req = host.read_animation("grayscale")
    results = [pattern(16, seed=40 + k) for k in range(3)]
    done, progress = [], []
    host.insert_animation(
        req,
        results,
        req.layout,
        "toon",
        "grayscale",
        lambda *a: done.append(a),
        progress=lambda *a: progress.append(a),
    )
    run(1)  # the first keyframe
    new = doc.nodeByName("InkHue toon")
    assert sorted(new.frames) == [1]
    app.active_document = other  # the artist clicks the other document's tab
    run(10)
    assert art.frames[0] == pattern(art.nbytes, seed=9) and sorted(art.frames) == [0]
    assert sorted(new.frames) == [1] and not done
    assert progress[-1][2].startswith("Paused: switch back to 'scene.kra'")
    app.active_document = doc
    run(10)
    assert done == [("InkHue toon", "")]
    assert sorted(new.frames) == [1, 2, 3]
    assert [new.pixelDataAtTime(0, 0, 2, 2, t) for t in (1, 2, 3)] == results
    assert not queue


def test_animation_cancel_and_failure_leave_no_partial_layer():
    doc, other = animated_doc(), fk.Document(2, 2, name="other.kra")
    host, app, _queue, run = queued_host(doc, other)
    req = host.read_animation("grayscale")
    results = [pattern(16, seed=40 + k) for k in range(3)]
    done = []
    insertion = host.insert_animation(
        req, results, req.layout, "toon", "grayscale", lambda *a: done.append(a)
    )
    run(1)
    assert sorted(doc.nodeByName("InkHue toon").frames) == [1]
    insertion.cancel()
    run(2)
    assert done == [("", "")]
    assert doc.nodeByName("InkHue toon") is None
    assert [n.name() for n in doc.root.childNodes()] == ["Ink"]
    # Krita refusing a keyframe: the partial layer goes too, and the error says so.
    done.clear()
    host.insert_animation(req, results, req.layout, "toon", "grayscale", lambda *a: done.append(a))
    run(1)
    app.blank_frame.trigger = lambda: None
    run(3)
    assert done and done[0][0] == ""
    assert "did not add a keyframe at frame 2" in done[0][1]
    assert "the unfinished layer 'InkHue toon' was removed" in done[0][1]
    assert doc.nodeByName("InkHue toon") is None


def test_a_result_layer_is_not_colorized_again_and_results_get_their_own_names():
    """Issue 14 item 8: the source is made active again after Colorize; a result layer
    selected by hand is refused; a second result of the same model gets a name of its own."""
    doc = fk.Document(2, 2)
    ink = doc.add_layer("Ink")
    ink.fill(pattern(ink.nbytes))
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    req = host.read_frame("grayscale")
    assert (
        host.insert_frame(req, pattern(16, seed=3), req.layout, "toon", "grayscale")
        == "InkHue toon"
    )
    assert doc.activeNode() is ink
    req = host.read_frame("grayscale")
    assert (
        host.insert_frame(req, pattern(16, seed=4), req.layout, "toon", "grayscale")
        == "InkHue toon 2"
    )
    assert [n.name() for n in doc.root.childNodes()] == ["Ink", "InkHue toon 2", "InkHue toon"]
    doc.setActiveNode(doc.nodeByName("InkHue toon"))
    with pytest.raises(
        PluginError,
        match="'InkHue toon' in 'scene.kra' is an InkHue result: "
        "select the line-art or grayscale layer",
    ):
        host.read_frame("grayscale")


def test_the_layer_the_artist_picked_while_the_engine_worked_stays_active():
    """A result arriving minutes after the click must not move the artist's next strokes
    to the line art: the layer active when it arrives is active again afterwards."""
    doc = fk.Document(2, 2)
    ink = doc.add_layer("Ink")
    ink.fill(pattern(ink.nbytes))
    shadows = doc.add_layer("Shadows")
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    req = host.read_frame("grayscale")
    doc.setActiveNode(shadows)  # the artist paints on while the engine colorizes
    host.insert_frame(req, pattern(16, seed=3), req.layout, "toon", "grayscale")
    assert doc.activeNode() is shadows


# -- colored keyframes (Colorize animation from the artist's colours) ------------------------


def _animated_doc():
    doc = fk.Document(8, 4)
    ink = doc.add_layer("Ink")
    for t in (0, 3, 6):
        ink.fill(pattern(ink.nbytes, seed=t), time=t)
    colour = doc.add_layer("Colour")
    colour.fill(pattern(colour.nbytes, seed=40), time=0)
    colour.fill(pattern(colour.nbytes, seed=41), time=4)  # a held frame of the source
    doc.setActiveNode(ink)
    return doc, ink, colour


def test_keyframe_sources_list_layers_and_other_documents():
    doc, _ink, _colour = _animated_doc()
    host, app, _ = host_for(doc)
    sheet = app.createDocument(16, 8, "sheet.kra", "RGBA", "U8", "", 72.0)
    sources = dict(host.keyframe_sources())
    assert sources["layer:Colour"] == "Layer 'Colour'"
    assert sources["layer:Ink"] == "Layer 'Ink'"
    assert sources[f"document:{host._key(sheet)}"] == "Document 'sheet.kra' (model sheet)"
    assert f"document:{host._key(doc)}" not in sources  # not itself


def test_layer_keyframes_pair_with_their_frames():
    doc, ink, colour = _animated_doc()
    host, _app, _ = host_for(doc)
    req = host.read_animation("grayscale", keyframes="layer:Colour")
    assert req.times == [0, 3, 6]
    first, held = req.keyframes
    # at a source keyframe: that frame of the request, no structure to send
    assert (first.frame, first.structure, first.name) == (0, None, "frame 0 of layer 'Colour'")
    assert first.read() == colour.pixelDataAtTime(0, 0, 8, 4, 0)
    assert first.layout == FrameLayout(8, 4, 4, "u8", "bgra") and not first.under_lines
    # at time 4 the source shows its frame 3: sent along as the keyframe's structure
    assert held.frame is None and held.structure() == ink.pixelDataAtTime(0, 0, 8, 4, 3)
    assert held.read() == colour.pixelDataAtTime(0, 0, 8, 4, 4)
    # line art: the colours may be a fill layer under the lines
    assert all(k.under_lines for k in host.read_animation("lineart", "", "layer:Colour").keyframes)


def test_unanimated_keyframe_layer_colors_the_current_frame():
    doc, _ink, _colour = _animated_doc()
    still = doc.add_layer("Still")
    still.fill(pattern(still.nbytes, seed=9))
    doc.setActiveNode(doc.nodeByName("Ink"))
    doc.setCurrentTime(3)
    host, _app, _ = host_for(doc)
    [key] = host.read_animation("grayscale", keyframes="layer:Still").keyframes
    assert key.frame == 1 and key.name == "frame 3 of layer 'Still'"
    [key] = host.read_frame("grayscale", keyframes="layer:Still").keyframes
    assert key.frame == 0  # the frame being colorized is the one it colors


def test_model_sheet_from_another_document():
    doc, _ink, _colour = _animated_doc()
    host, app, _ = host_for(doc)
    sheet = app.createDocument(16, 8, "sheet.kra", "RGBA", "U8", "", 72.0)
    sheet.add_layer("Paint").fill(pattern(16 * 8 * 4, seed=5))
    [key] = host.read_animation("grayscale", keyframes=f"document:{host._key(sheet)}").keyframes
    assert key.frame is None and key.structure is None
    assert key.layout == FrameLayout(16, 8, 4, "u8", "bgra")
    assert key.read() == pattern(16 * 8 * 4, seed=5)
    assert key.name == "model sheet 'sheet.kra'"
    wide = app.createDocument(20, 8, "wide.kra", "RGBA", "U8", "", 72.0)
    with pytest.raises(PluginError, match="Model sheet 'wide.kra' is 20x8 but the frames are 8x4"):
        host.read_animation("grayscale", keyframes=f"document:{host._key(wide)}")


@pytest.mark.parametrize(
    "choice, message",
    [
        ("layer:Gone", "Keyframe layer 'Gone' is not in 'scene.kra'"),
        ("layer:Ink", "The keyframe layer 'Ink' is the layer being colorized"),
        ("layer:Gray", "Keyframe layer 'Gray' of 'scene.kra' is GRAYA U8: keyframes need colour"),
        ("layer:Late", "has no keyframes between frames 0 and 10"),
        ("layer:Twice", "Keyframe layer 'Twice': 2 layers of 'scene.kra' have that name"),
        ("document:closed", "no longer open"),
    ],
)
def test_bad_keyframe_choices_say_what_to_do(choice, message):
    doc, _ink, _colour = _animated_doc()
    doc.add_layer("Gray", model="GRAYA")
    late = doc.add_layer("Late")
    late.fill(pattern(late.nbytes), time=20)
    doc.add_layer("Twice")
    doc.add_layer("Twice")
    doc.setActiveNode(doc.nodeByName("Ink"))
    host, _app, _ = host_for(doc)
    with pytest.raises(PluginError, match=message):
        host.read_animation("grayscale", keyframes=choice)


def test_after_colorize_animation_the_artists_layer_is_active_again():
    doc = fk.Document(2, 2)
    doc.start, doc.end = 0, 4
    ink = doc.add_layer("Ink")
    for t in (0, 3):
        ink.fill(pattern(ink.nbytes, seed=t), time=t)
    shadows = doc.add_layer("Shadows")
    doc.setActiveNode(ink)
    host, _app, _ = host_for(doc)
    req = host.read_animation("grayscale")
    doc.setActiveNode(shadows)  # picked while the engine worked
    done = []
    results = [pattern(16, seed=5), pattern(16, seed=6)]
    host.insert_animation(req, results, req.layout, "toon", "grayscale", lambda *a: done.append(a))
    assert done == [("InkHue toon", "")]
    assert doc.activeNode() is shadows
    # a layer deleted meanwhile: the source is active instead
    doc.setActiveNode(ink)
    req = host.read_animation("grayscale")
    doc.setActiveNode(shadows)
    shadows.remove()
    host.insert_animation(req, results, req.layout, "toon", "grayscale", lambda *a: done.append(a))
    assert done[-1] == ("InkHue toon 2", "") and doc.activeNode() is ink
