"""The docker's "Automatic (detected)" model (issue 14 item 2): the default for a new
artist; the engine's /detect picks the task, the panel takes that task's model; a chosen
model still wins; an animation is detected once, from its first keyframes."""

from __future__ import annotations

import threading

from fake_engine import fake_colorize

from inkhue.panel_model import AUTO_MODEL
from inkhue.settings import QSettingsStore

TIMEOUT = 5000


def _auto_panel(qtbot, panel, fake_engine):
    widget, model = panel
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        widget.connect_button.click()
    widget.model_combo.setCurrentIndex(widget.model_combo.findData(AUTO_MODEL))
    assert model.chosen_model == AUTO_MODEL
    return widget, model


def _run(qtbot, model, button) -> None:
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        button.click()


def test_a_new_artist_starts_on_automatic(qtbot, tmp_path, stub_host, fake_engine):
    from inkhue.docker import InkHuePanel
    from inkhue.panel_model import PanelModel

    store = QSettingsStore(str(tmp_path / "fresh.ini"))
    store.write("server_url", fake_engine.url)
    model = PanelModel(stub_host, store)
    widget = InkHuePanel(model)
    qtbot.addWidget(widget)
    with qtbot.waitSignal(model.models_changed, timeout=TIMEOUT):
        widget.connect_button.click()
    assert widget.model_combo.itemText(0) == "Automatic (detected)"
    assert widget.model_combo.currentData() == AUTO_MODEL and model.selected_model() is None
    qtbot.waitUntil(lambda: model.client.pending() == 0, timeout=5000)


def test_frame_takes_the_model_of_the_detected_task(qtbot, panel, fake_engine, stub_host):
    widget, model = _auto_panel(qtbot, panel, fake_engine)
    fake_engine.detect_task = "lineart"
    _run(qtbot, model, widget.frame_button)
    assert fake_engine.detect_calls == [1]
    inserted = stub_host.inserted[-1]
    assert inserted["model"] == "toon-lines" and inserted["task"] == "lineart"
    # the frame was read for the detected task (line art: flattened on white by a host)
    assert inserted["request"].context["task"] == "lineart"
    assert inserted["data"] == fake_colorize(stub_host.frame, 4, "bgra", None)
    q = fake_engine.colorize_calls[-1]["query"]
    assert (q["model"], q["task"]) == ("toon-lines", "lineart")
    assert widget.message_label.text() == "Added layer 'InkHue toon-lines'. Detected line art"
    # grayscale next time: detected again for every Colorize frame
    fake_engine.detect_task = "grayscale"
    _run(qtbot, model, widget.frame_button)
    assert fake_engine.detect_calls == [1, 1]
    assert stub_host.inserted[-1]["model"] == "toon-gray"
    assert model.chosen_model == AUTO_MODEL  # the choice stays automatic
    # an already coloured layer is said to be one
    fake_engine.detect_colored = True
    _run(qtbot, model, widget.frame_button)
    assert widget.message_label.text() == (
        "Added layer 'InkHue toon-gray'. Detected grayscale (the layer is already in "
        "colour: only its lightness was used)"
    )


def test_a_chosen_model_is_not_overridden(qtbot, panel, fake_engine, stub_host):
    widget, model = _auto_panel(qtbot, panel, fake_engine)
    fake_engine.detect_task = "lineart"
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("toon-gray"))
    _run(qtbot, model, widget.frame_button)
    assert fake_engine.detect_calls == []
    assert stub_host.inserted[-1]["model"] == "toon-gray"


def test_animation_is_detected_once_from_its_first_keyframes(qtbot, panel, fake_engine, stub_host):
    widget, model = _auto_panel(qtbot, panel, fake_engine)
    fake_engine.detect_task = "lineart"
    stub_host.anim_frames = stub_host.anim_frames * 3  # 9 keyframes
    stub_host.times = list(range(9))
    model.ANIMATION_CHUNK = 4  # three engine jobs
    _run(qtbot, model, widget.animation_button)
    assert model.error == ""
    assert fake_engine.detect_calls == [3]  # one request, the first three keyframes
    specs = [job["spec"] for job in fake_engine.jobs.values()]
    assert len(specs) == 3
    assert {(s.get("model"), s.get("task")) for s in specs} == {("toon-lines", "lineart")}
    assert stub_host.inserted[-1]["kind"] == "animation"
    assert stub_host.inserted[-1]["model"] == "toon-lines"


def test_detection_errors_and_cancel(qtbot, panel, fake_engine, stub_host):
    widget, model = _auto_panel(qtbot, panel, fake_engine)
    fake_engine.fail = (500, "detect: boom")
    _run(qtbot, model, widget.frame_button)
    assert widget.error_text.toPlainText() == "detect: boom" and not stub_host.inserted
    assert widget.frame_button.isEnabled()
    fake_engine.fail = None
    # Cancel while the engine detects: nothing is colorized
    fake_engine.hold = threading.Event()
    widget.frame_button.click()
    assert model.busy and not widget.frame_button.isEnabled()
    qtbot.waitUntil(lambda: fake_engine.detect_calls == [1, 1], timeout=TIMEOUT)
    with qtbot.waitSignal(
        model.busy_changed, timeout=TIMEOUT, check_params_cb=lambda busy: not busy
    ):
        widget.cancel_button.click()
    fake_engine.hold.set()
    assert widget.message_label.text() == "Cancelled" and not stub_host.inserted
    assert not fake_engine.colorize_calls


def test_colorize_starts_from_the_event_loop_after_detection_and_can_be_cancelled_there(
    qtbot, panel, fake_engine, stub_host
):
    # The detection's answer does not read the document inside the network callback
    # (Krita's Document.waitForDone spins a nested event loop there): the colorize runs
    # from the event loop right after, and a Cancel in between stops it.
    widget, model = _auto_panel(qtbot, panel, fake_engine)
    fake_engine.detect_task = "lineart"
    started = []
    real = model._after_detect

    def spy(job, result, action):
        started.append(model.busy)  # still busy: the detect job is kept until now
        if len(started) == 1:
            widget.cancel_button.click()  # Cancel before the colorize starts
        real(job, result, action)

    model._after_detect = spy
    _run(qtbot, model, widget.frame_button)
    assert started == [True] and widget.message_label.text() == "Cancelled"
    assert not stub_host.inserted and not fake_engine.colorize_calls
    assert not model.busy and widget.frame_button.isEnabled()
    _run(qtbot, model, widget.frame_button)  # the next one goes through
    assert started == [True, True] and stub_host.inserted[-1]["model"] == "toon-lines"
