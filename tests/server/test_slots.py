"""Inference slots: by default one per usable core (up to 4), so a long frame does not
hold up the rest."""

from __future__ import annotations

import threading

import numpy as np

from inkhue_engine import server
from inkhue_engine.server import Engine, ServerConfig, auto_inference_slots


def test_auto_slots_follow_the_usable_cores(monkeypatch):
    for cores, slots in ((1, 1), (2, 2), (3, 3), (16, server.MAX_AUTO_SLOTS)):
        monkeypatch.setattr(
            server.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)), raising=False
        )
        assert auto_inference_slots() == slots


def test_a_second_frame_runs_while_a_long_one_holds_a_slot(monkeypatch, named_models):
    monkeypatch.setattr(server.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    engine = Engine(ServerConfig())  # default: auto slots
    model = engine.load(named_models["tiny-gray"])
    options = server.ColorizeOptions()
    gate, entered = threading.Event(), threading.Event()
    real = server.colorize_frame

    def colorize(frame, m, hints=None, options=None):
        if frame[0, 0] == 1:  # the long one
            entered.set()
            assert gate.wait(20)
        return real(frame, m, hints=hints, options=options)

    monkeypatch.setattr(server, "colorize_frame", colorize)
    long_frame = np.full((16, 16), 1, np.uint8)
    short_frame = np.full((16, 16), 200, np.uint8)
    done = {}
    first = threading.Thread(
        target=lambda: done.setdefault("long", engine.colorize(long_frame, model, None, options))
    )
    second = threading.Thread(
        target=lambda: done.setdefault("short", engine.colorize(short_frame, model, None, options))
    )
    first.start()
    try:
        assert entered.wait(20)
        second.start()
        second.join(20)
        assert "short" in done and "long" not in done  # not queued behind the long frame
    finally:
        gate.set()
        first.join(20)
        second.join(20)
    assert done["long"].shape == (16, 16, 3)
