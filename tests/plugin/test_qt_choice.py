"""The binding choice: Krita's Qt major version inside Krita, INKHUE_QT_API outside."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from inkhue import qt

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "krita_plugin"


@pytest.fixture
def fake_krita_module(monkeypatch):
    def install(version: str | None):
        mod = types.ModuleType("krita")
        if version is not None:
            mod.qVersion = lambda: version
        monkeypatch.setitem(sys.modules, "krita", mod)

    return install


@pytest.mark.parametrize("version,binding", [("5.15.8", "pyqt5"), ("6.8.1", "pyqt6")])
def test_inside_krita_the_qt_major_version_decides(fake_krita_module, version, binding):
    fake_krita_module(version)
    # The environment cannot override Krita: PySide6 would crash the host process.
    assert qt.choose_binding({"INKHUE_QT_API": "pyside6"}) == binding


def test_unknown_krita_qt_is_refused(fake_krita_module):
    fake_krita_module("7.0.0")
    with pytest.raises(ImportError, match="Krita's Qt 7"):
        qt.choose_binding({})


def test_outside_krita(fake_krita_module):
    fake_krita_module(None)  # a "krita" stub without qVersion is not Krita
    assert qt.choose_binding({}) == "pyside6"
    assert qt.choose_binding({"INKHUE_QT_API": "PyQt6"}) == "pyqt6"
    with pytest.raises(ImportError, match="INKHUE_QT_API='tk'"):
        qt.choose_binding({"INKHUE_QT_API": "tk"})


def test_the_loaded_binding_is_the_one_asked_for():
    assert qt.API == (__import__("os").environ.get("INKHUE_QT_API") or "pyside6").lower()
    assert (
        qt.QAction.__module__.split(".")[0]
        == {"pyside6": "PySide6", "pyqt5": "PyQt5", "pyqt6": "PyQt6"}[qt.API]
    )


def test_no_pyside6_inside_a_krita_5():
    """In a fresh process that looks like Krita 5, the plugin loads PyQt5 and never PySide6."""
    code = (
        "import sys, types; k = types.ModuleType('krita'); k.qVersion = lambda: '5.15.8'; "
        "sys.modules['krita'] = k; "
        "import inkhue.client, inkhue.docker, inkhue.krita_io, inkhue.panel_model; "
        "from inkhue import qt; "
        "print(qt.API, 'PySide6' in sys.modules, 'PyQt6' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PLUGIN_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env={"INKHUE_QT_API": "pyside6", "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["pyqt5", "False", "False"]


def test_signals_keep_python_refcounts_intact():
    """A binding whose emit() drops references to True crashes long sessions (PySide6 6.12.0)."""
    assert not qt.emit_drops_true_reference()
