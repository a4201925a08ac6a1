"""The panel (docker widget + PanelModel) offscreen, against the fake engine and a stub host."""

from __future__ import annotations

import json
import threading

from fake_engine import fake_colorize

from inkhue.client import not_running_message
from inkhue.qt import QtCore, QtWidgets

Qt = QtCore.Qt
TIMEOUT = 5000


def click(qtbot, button) -> None:
    assert button.isEnabled(), f"{button.objectName()} is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def connect(qtbot, widget, model) -> None:
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        click(qtbot, widget.connect_button)


def combo_items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_connect_shows_status_and_models(qtbot, panel, fake_engine):
    widget, model = panel
    assert not widget.frame_button.isEnabled()  # no models yet
    connect(qtbot, widget, model)
    assert model.state == "connected"
    assert "InkHue 9.9.9 on FakeProvider" in widget.status.text()
    assert combo_items(widget.model_combo) == [
        "Automatic (detected)",
        "toon-gray (grayscale)",
        "toon-lines (lineart)",
    ]
    assert widget.frame_button.isEnabled() and widget.animation_button.isEnabled()
    assert not widget.error_box.isVisibleTo(widget)


def test_new_model_appears_when_the_panel_shows_again(qtbot, panel, fake_engine):
    widget, model = panel
    connect(qtbot, widget, model)
    fake_engine.models.append(dict(fake_engine.models[0], name="studio-v2"))
    widget.hide()
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        widget.show()
    assert "studio-v2 (grayscale)" in combo_items(widget.model_combo)


def test_engine_not_running_is_a_clear_error_with_copy(qtbot, panel, dead_url):
    widget, model = panel
    widget.url_edit.setText(dead_url)
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        click(qtbot, widget.connect_button)
    expected = not_running_message(dead_url)
    assert expected.startswith("The InkHue engine is not running at http://127.0.0.1:")
    assert "click Start engine or run `inkhue serve`" in expected
    assert widget.error_text.toPlainText() == expected
    assert widget.error_box.isVisibleTo(widget)
    assert model.state == "offline"
    QtWidgets.QApplication.clipboard().clear()
    click(qtbot, widget.copy_button)
    assert QtWidgets.QApplication.clipboard().text() == expected
    assert model.settings.server_url == dead_url  # the edited URL was kept


def test_colorize_frame_inserts_a_layer(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("toon-lines"))
    widget.detail_spin.setValue(0.5)  # below 1: faster (the API takes > 0)
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.frame_button)
    assert [i["kind"] for i in stub_host.inserted] == ["frame"]
    inserted = stub_host.inserted[0]
    assert inserted["model"] == "toon-lines" and inserted["task"] == "lineart"
    assert inserted["data"] == fake_colorize(stub_host.frame, 4, "bgra", None)
    assert inserted["layout"] == stub_host.layout  # 4 channels in, 4 out
    assert widget.message_label.text() == "Added layer 'InkHue toon-lines'"
    call = fake_engine.colorize_calls[-1]
    q = call["query"]
    assert (q["width"], q["height"], q["channels"], q["depth"], q["order"]) == (
        "4",
        "3",
        "4",
        "u8",
        "bgra",
    )
    assert (q["model"], q["task"], float(q["detail"]), q["regions"], q["output"]) == (
        "toon-lines",
        "lineart",
        0.5,
        "true",
        "color",
    )
    assert "palette" not in q  # "Model's palette" = no parameter
    assert q["mirror"] == "true"  # "Steadier colors" is on by default
    assert call["parts"]["frame"] == stub_host.frame and "hints" not in call["parts"]
    assert call["content_type"].startswith("multipart/form-data; boundary=")
    assert not widget.error_box.isVisibleTo(widget)


def test_palette_and_hints_are_sent(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    stub_host.hints = bytes([9, 8, 7, 255] + [0] * (stub_host.layout.nbytes - 4))
    model.refresh_sources()
    widget.palette_combo.setCurrentIndex(widget.palette_combo.findData("Tests"))
    widget.hint_combo.setCurrentIndex(widget.hint_combo.findData("Hints"))
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.frame_button)
    call = fake_engine.colorize_calls[-1]
    assert json.loads(call["query"]["palette"]) == ["#112233", "#445566"]
    assert call["parts"]["hints"] == stub_host.hints
    assert stub_host.inserted[-1]["data"][:3] == bytes([9, 8, 7])  # the hint won
    widget.palette_combo.setCurrentIndex(widget.palette_combo.findData("none"))
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.frame_button)
    assert fake_engine.colorize_calls[-1]["query"]["palette"] == "none"


def test_empty_palette_and_host_errors_show_in_the_panel(qtbot, panel, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    model.refresh_sources()
    widget.palette_combo.setCurrentIndex(widget.palette_combo.findData("Empty"))
    click(qtbot, widget.frame_button)
    assert widget.error_text.toPlainText() == (
        "Palette 'Empty' has no colours: pick another palette"
    )
    widget.palette_combo.setCurrentIndex(0)
    stub_host.read_error = "Document 'x.kra' is in CMYKA colours: convert it"
    click(qtbot, widget.frame_button)
    assert widget.error_text.toPlainText() == stub_host.read_error
    assert not model.busy and stub_host.inserted == []


def test_server_error_is_shown_verbatim(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    fake_engine.fail = (422, "model 'toon-gray': the file is not an InkHue model; re-export it")
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        click(qtbot, widget.frame_button)
    assert widget.error_text.toPlainText() == fake_engine.fail[1]
    assert stub_host.inserted == []
    assert widget.frame_button.isEnabled()  # not busy any more
    QtWidgets.QApplication.clipboard().clear()
    click(qtbot, widget.copy_button)
    assert QtWidgets.QApplication.clipboard().text() == fake_engine.fail[1]


def test_cancel_a_slow_frame(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    fake_engine.hold = threading.Event()  # the engine answers only when the test says so
    click(qtbot, widget.frame_button)
    qtbot.waitUntil(lambda: len(fake_engine.colorize_calls) == 1, timeout=TIMEOUT)
    assert widget.cancel_button.isEnabled() and not widget.frame_button.isEnabled()
    try:
        with qtbot.waitSignal(model.busy_changed, timeout=TIMEOUT):
            click(qtbot, widget.cancel_button)
        # the panel is idle while the engine still holds the request: it did not wait
        assert not fake_engine.hold.is_set()
        assert widget.message_label.text() == "Cancelled"
        assert stub_host.inserted == [] and not model.error
    finally:
        fake_engine.hold.set()


def test_colorize_animation(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    widget.mirror_check.setChecked(False)  # one model pass per frame: faster
    seen = []
    model.progress.connect(lambda done, total, text: seen.append((done, total, text)))
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.animation_button)
    assert model.error == ""
    [inserted] = stub_host.inserted
    assert inserted["kind"] == "animation" and inserted["times"] == [0, 4, 9]
    assert inserted["data"] == [fake_colorize(f, 4, "bgra", None) for f in stub_host.anim_frames]
    job = fake_engine.jobs["job1"]
    assert job["spec"]["frame_count"] == 3 and job["spec"]["model"] == "toon-gray"
    assert (job["spec"]["width"], job["spec"]["order"]) == (4, "bgra")
    assert job["spec"]["mirror"] is False
    qtbot.waitUntil(lambda: fake_engine.deleted == ["job1"], timeout=TIMEOUT)  # forgotten
    assert (3, 3, "Fetching results") in seen and any(s[2] == "Colorizing 1/3" for s in seen)
    assert "3 keyframes" in widget.message_label.text()


def test_cancel_an_animation(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    fake_engine.stall_jobs = True
    click(qtbot, widget.animation_button)
    qtbot.waitUntil(
        lambda: fake_engine.jobs.get("job1", {}).get("state") == "running", timeout=TIMEOUT
    )
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.cancel_button)
    assert fake_engine.deleted == ["job1"]
    assert fake_engine.jobs["job1"]["state"] == "cancelled"
    assert stub_host.inserted == [] and widget.message_label.text() == "Cancelled"


def test_job_failure_is_shown(qtbot, panel, fake_engine, stub_host):
    widget, model = panel
    connect(qtbot, widget, model)
    fake_engine.fail = (507, "out of memory at 4096x4096: lower the detail")
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        click(qtbot, widget.animation_button)
    assert widget.error_text.toPlainText() == fake_engine.fail[1]
    assert not model.busy and stub_host.inserted == []


def test_settings_persist(qtbot, tmp_path, stub_host, fake_engine):
    from inkhue.docker import InkHuePanel
    from inkhue.panel_model import PanelModel
    from inkhue.settings import QSettingsStore

    path = str(tmp_path / "s.ini")
    model = PanelModel(stub_host, QSettingsStore(path))
    widget = InkHuePanel(model)
    qtbot.addWidget(widget)
    widget.url_edit.setText(fake_engine.url + "/")
    widget.token_edit.setText("s3cret")
    widget.command_edit.setText("inkhue serve --port {port}")
    widget._server_edited()
    widget.detail_spin.setValue(2.0)
    widget.mirror_check.setChecked(False)
    model.set_hint_layer("Hints")
    again = PanelModel(stub_host, QSettingsStore(path))
    s = again.settings
    assert (s.server_url, s.token, s.engine_command, s.detail, s.mirror, s.hint_layer) == (
        fake_engine.url,
        "s3cret",
        "inkhue serve --port {port}",
        2.0,
        False,
        "Hints",
    )
    assert again.client.token == "s3cret"


def test_token_is_sent(qtbot, panel, fake_engine):
    widget, model = panel
    fake_engine.token = "t0k"
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        click(qtbot, widget.connect_button)
    assert "wrong token" in widget.error_text.toPlainText()
    widget.token_edit.setText("t0k")
    connect(qtbot, widget, model)
    assert model.state == "connected"


def test_engine_settings_fold_out(qtbot, panel):
    widget, _model = panel
    widget.show()
    assert not widget.engine_box.isVisible()
    click(qtbot, widget.settings_button)
    assert widget.engine_box.isVisible() and widget.url_edit.isEnabled()
    click(qtbot, widget.settings_button)
    assert not widget.engine_box.isVisible()


def colorize_frame(qtbot, widget, model) -> None:
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.frame_button)


def switch_document(model, stub_host, key: str, layers: list[str]) -> None:
    """What Krita's canvasChanged does when the artist clicks another document's tab."""
    stub_host.doc_key, stub_host.layers = key, layers
    model.refresh_sources()


def test_choices_are_per_document(qtbot, panel, stub_host):
    """Issue 14 item 9: a hint layer chosen in one document does not follow the artist to a
    document without it (the combo said "(no hints)" but Colorize failed); each document
    keeps its own hint layer, model and palette."""
    widget, model = panel
    connect(qtbot, widget, model)
    switch_document(model, stub_host, "doc-a", ["Ink", "hints"])
    widget.hint_combo.setCurrentIndex(widget.hint_combo.findData("hints"))
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("toon-lines"))
    widget.palette_combo.setCurrentIndex(widget.palette_combo.findData("Tests"))
    assert model.hint_layer == "hints"
    switch_document(model, stub_host, "doc-b", ["Ink"])
    assert widget.hint_combo.currentText() == "(no hints)" and model.hint_layer == ""
    colorize_frame(qtbot, widget, model)
    assert model.error == ""
    assert stub_host.inserted[-1]["request"].context["hint_layer"] == ""
    # doc-b starts from the last choices, and changing them there leaves doc-a's alone.
    assert widget.model_combo.currentData() == "toon-lines"
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("toon-gray"))
    widget.palette_combo.setCurrentIndex(widget.palette_combo.findData("none"))
    switch_document(model, stub_host, "doc-a", ["Ink", "hints"])
    assert widget.hint_combo.currentData() == "hints"
    assert widget.model_combo.currentData() == "toon-lines"
    assert widget.palette_combo.currentData() == "Tests"
    colorize_frame(qtbot, widget, model)
    assert stub_host.inserted[-1]["request"].context["hint_layer"] == "hints"
    assert stub_host.inserted[-1]["model"] == "toon-lines"
    switch_document(model, stub_host, "doc-b", ["Ink"])
    assert widget.model_combo.currentData() == "toon-gray"
    assert widget.palette_combo.currentData() == "none"


def test_message_line_is_about_the_last_thing_done(qtbot, panel, stub_host, dead_url):
    """Issue 14 item 13: the message line never shows an earlier document's (or action's)
    line next to a new error."""
    widget, model = panel
    connect(qtbot, widget, model)
    colorize_frame(qtbot, widget, model)
    assert widget.message_label.text() == "Added layer 'InkHue toon-gray'"
    switch_document(model, stub_host, "doc-2", ["Ink"])
    assert widget.message_label.text() == ""
    colorize_frame(qtbot, widget, model)
    stub_host.read_error = "Layer 'Ink' of 'stub.kra' is in CMYKA colours"
    click(qtbot, widget.frame_button)
    assert widget.error_text.toPlainText() == stub_host.read_error
    assert widget.message_label.text() == ""
    # An engine that went away: "Colorizing ..." does not stay next to the error.
    stub_host.read_error = ""
    model.client.set_server(dead_url)
    with qtbot.waitSignal(model.error_changed, timeout=TIMEOUT, check_params_cb=bool):
        click(qtbot, widget.frame_button)
    qtbot.waitUntil(lambda: not model.busy, timeout=TIMEOUT)
    assert widget.message_label.text() == ""


def test_an_offered_fix_runs_and_colorizes(qtbot, panel, stub_host):
    """Issue 14 item 1 (panel side): the host's offered fix is a button next to the error;
    clicking it fixes the document and runs Colorize again."""
    widget, model = panel
    connect(qtbot, widget, model)
    stub_host.gray = True
    click(qtbot, widget.frame_button)
    assert widget.error_text.toPlainText() == "Document 'stub.kra' is grayscale"
    assert widget.fix_button.isVisibleTo(widget) and widget.fix_button.text() == "Convert"
    assert not stub_host.inserted
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.fix_button)
    assert not stub_host.gray and [i["kind"] for i in stub_host.inserted] == ["frame"]
    assert not widget.error_box.isVisibleTo(widget)
    assert widget.message_label.text() == (
        "Added layer 'InkHue toon-gray'. Converted 'stub.kra' to RGB/Alpha"
    )
    stub_host.read_error = "Layer 'Ink' is a mask"  # an error without a fix: no button
    click(qtbot, widget.frame_button)
    assert not widget.fix_button.isVisibleTo(widget)


def test_keep_or_discard_the_result(qtbot, panel, stub_host):
    """Issue 14 item 12: a Colorize is many undo steps in Krita 5; the docker offers to
    discard the new layer in one click (or keep it), per document."""
    widget, model = panel
    connect(qtbot, widget, model)
    switch_document(model, stub_host, "doc-1", ["Ink"])  # what the docker does on show
    assert not widget.result_box.isVisibleTo(widget)
    colorize_frame(qtbot, widget, model)
    assert widget.result_box.isVisibleTo(widget)
    assert widget.result_label.text() == "New layer 'InkHue toon-gray'"
    switch_document(model, stub_host, "doc-2", ["Ink"])  # another document: its own bar
    assert not widget.result_box.isVisibleTo(widget)
    switch_document(model, stub_host, "doc-1", ["Ink"])
    click(qtbot, widget.discard_button)
    assert stub_host.removed == [stub_host.inserted[0]["request"].context]
    assert widget.message_label.text() == "Removed layer 'InkHue toon-gray'"
    assert not widget.result_box.isVisibleTo(widget)
    colorize_frame(qtbot, widget, model)
    click(qtbot, widget.keep_button)
    assert not widget.result_box.isVisibleTo(widget) and len(stub_host.removed) == 1


def test_each_document_has_its_own_running_job(qtbot, panel, stub_host, fake_engine):
    """Issue 14 item 4: a colorize running in one document does not make the docker busy
    in another; Cancel stops the active document's job only."""
    widget, model = panel
    connect(qtbot, widget, model)
    fake_engine.delay_s = 1.5
    click(qtbot, widget.frame_button)  # doc-1, slow
    assert model.busy and not widget.frame_button.isEnabled()
    switch_document(model, stub_host, "doc-2", ["Ink"])
    assert not model.busy and widget.frame_button.isEnabled()
    assert not widget.progress_bar.isVisibleTo(widget)
    click(qtbot, widget.frame_button)  # doc-2, concurrently
    assert model.busy
    click(qtbot, widget.cancel_button)  # cancels doc-2's only
    qtbot.waitUntil(lambda: not model.busy, timeout=TIMEOUT)
    assert widget.message_label.text() == "Cancelled"
    assert set(model.jobs) == {"doc-1"}
    switch_document(model, stub_host, "doc-1", ["Ink"])
    assert model.busy and widget.progress_bar.isVisibleTo(widget)
    assert "Colorizing layer 'Ink' of 'stub.kra'" in widget.progress_bar.format()
    qtbot.waitUntil(lambda: not model.busy, timeout=TIMEOUT)
    assert [(i["kind"], i["request"].context["doc_key"]) for i in stub_host.inserted] == [
        ("frame", "doc-1")
    ]
    assert widget.message_label.text() == "Added layer 'InkHue toon-gray'"


def test_progress_bar_is_never_the_animated_busy_indicator(qtbot, panel, fake_engine):
    """Issue 14 item 14: Qt's busy indicator (range 0..0) animates on Krita's main thread,
    which made a 1080p upload take 10.4 s instead of 0.2 s."""
    widget, model = panel
    connect(qtbot, widget, model)
    fake_engine.delay_s = 0.5
    ranges = []
    model.progress.connect(lambda *_: ranges.append(widget.progress_bar.maximum()))
    colorize_frame(qtbot, widget, model)
    assert ranges and min(ranges) >= 1


def test_animation_frames_are_read_one_by_one_and_cancel_stops_reading(qtbot, panel, stub_host):
    """Issue 14 item 3 (part): keyframes are read when each is uploaded, not all at once
    before the job; Cancel while reading stops before the next frame is read."""
    widget, model = panel
    connect(qtbot, widget, model)
    stub_host.lazy = True
    seen = []

    def on_progress(done, total, text):
        seen.append(text)
        if text.startswith("Reading and sending frame 2/"):
            model.cancel()

    model.progress.connect(on_progress)
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.animation_button)
    assert stub_host.anim_reads == [0]
    assert widget.message_label.text() == "Cancelled" and not stub_host.inserted
    # Uncancelled: every frame read once, in order, and the result inserted.
    model.progress.disconnect(on_progress)
    stub_host.anim_reads.clear()
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.animation_button)
    assert stub_host.anim_reads == [0, 1, 2]
    assert [i["kind"] for i in stub_host.inserted] == ["animation"]


def test_animation_goes_to_the_engine_in_chunks(qtbot, panel, stub_host, fake_engine):
    """Issue 14 item 3: one engine job per ANIMATION_CHUNK keyframes; the keyframes of a
    chunk are handed to the host as soon as it is done; a failure in a later chunk ends
    it without a partial result."""
    widget, model = panel
    connect(qtbot, widget, model)
    model.ANIMATION_CHUNK = 2
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.animation_button)
    assert model.error == ""
    entry = stub_host.inserted[-1]
    assert entry["feeds"] == 2  # chunks [0, 1] and [2]
    counts = [int(job["spec"]["frame_count"]) for job in fake_engine.jobs.values()]
    assert counts == [2, 1]
    want = [fake_colorize(f, 4, "bgra", None) for f in stub_host.anim_frames]
    assert entry["data"] == want
    assert widget.message_label.text() == ("Added animated layer 'InkHue toon-gray' (3 keyframes)")


def test_a_failing_later_chunk_leaves_no_partial_result(qtbot, panel, stub_host, fake_engine):
    widget, model = panel
    connect(qtbot, widget, model)
    model.ANIMATION_CHUNK = 2

    def on_progress(done, total, text):
        if "(frames 3-3 of 3)" in text:  # the second chunk: the engine breaks down
            fake_engine.fail = (500, "the engine broke down")

    model.progress.connect(on_progress)
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        click(qtbot, widget.animation_button)
    assert model.error == "the engine broke down"
    assert stub_host.inserted == []  # the first chunk's keyframes went with the layer


def test_chunk_keyframes_gives_each_chunk_its_keyframes_and_the_previous_result():
    from inkhue.host import AnimationRequest, Keyframe
    from inkhue.panel_model import chunk_keyframes
    from inkhue.pixels import FrameLayout

    layout = FrameLayout(4, 2, 4, "u8", "bgra")
    frames = [bytes([k]) * layout.nbytes for k in range(6)]
    key = Keyframe(b"key", layout, frame=1, name="frame 1")
    sheet = Keyframe(b"sheet", FrameLayout(8, 4, 4, "u8", "bgra"), name="sheet")
    request = AnimationRequest(frames, list(range(6)), layout, keyframes=[key, sheet])

    first = chunk_keyframes(request, 0, 3, None)
    assert [(k.frame, k.structure, k.previous) for k in first] == [
        (1, None, False),
        (None, None, False),
    ]
    second = chunk_keyframes(request, 3, 6, b"last")
    assert [k.name for k in second] == ["frame 1", "sheet", "the result of frame 3"]
    moved, _sheet, previous = second
    assert moved.frame is None and moved.structure == frames[1]  # its frame goes with it
    assert moved.spec()["structure"] is True and "frame" not in moved.spec()
    assert previous.previous and previous.read == b"last" and previous.structure == frames[2]
    assert previous.layout == layout.result()
    assert chunk_keyframes(AnimationRequest(frames, [], layout), 3, 6, b"last") == []
