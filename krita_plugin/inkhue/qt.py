"""The one place that picks the Qt binding of the plugin.

Inside Krita the binding is the one Krita itself loaded, told by Krita's Qt major
version (``krita.qVersion()``): "5" -> PyQt5 (Krita 5.x), "6" -> PyQt6 (Krita 6.x).
We never "try PyQt6 first" (a machine with Krita 5 may have PyQt6 installed, and the
wrong PyQt refuses to load or crashes), and never import PySide6 inside Krita: it
segfaults the process (measured, docs/FACTS.md in the InkHue repository).

Outside Krita (the standalone panel, the tests) the default is PySide6; the
environment variable ``INKHUE_QT_API`` (``pyside6``, ``pyqt5`` or ``pyqt6``) overrides
it so that the same tests run under all three bindings.

Everything else imports Qt from here::

    from .qt import QtCore, QtGui, QtWidgets, QtNetwork, Signal, Slot, QAction

and writes fully scoped enums (``Qt.AlignmentFlag.AlignRight``), which PyQt5,
PyQt6 and PySide6 all accept.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

BINDINGS = ("pyside6", "pyqt5", "pyqt6")
_MODULE_OF = {"pyside6": "PySide6", "pyqt5": "PyQt5", "pyqt6": "PyQt6"}


def krita_qt_major() -> str | None:
    """Krita's Qt major version ("5", "6") when running inside Krita, else None.

    A ``krita`` module without ``qVersion`` (e.g. an autocompletion stub from PyPI)
    does not count as Krita.
    """
    mod = sys.modules.get("krita")
    if mod is None:
        try:
            mod = importlib.import_module("krita")
        except ImportError:
            return None
    q_version = getattr(mod, "qVersion", None)
    if not callable(q_version):
        return None
    return str(q_version()).split(".", 1)[0]


def choose_binding(env: dict[str, str] | None = None) -> str:
    """Name of the binding to use: ``pyqt5``, ``pyqt6`` or ``pyside6``.

    Raises ImportError with a one-line message for a Krita whose Qt major version
    has no known binding, or an unknown ``INKHUE_QT_API`` value.
    """
    major = krita_qt_major()
    if major is not None:
        if major == "5":
            return "pyqt5"
        if major == "6":
            return "pyqt6"
        raise ImportError(f"InkHue does not know which PyQt goes with Krita's Qt {major}")
    env = os.environ if env is None else env
    wanted = env.get("INKHUE_QT_API", "pyside6").strip().lower() or "pyside6"
    if wanted not in BINDINGS:
        raise ImportError(
            f"INKHUE_QT_API={wanted!r} is not a Qt binding InkHue supports: "
            f"use one of {', '.join(BINDINGS)}"
        )
    return wanted


API = choose_binding()
_pkg = _MODULE_OF[API]

QtCore: ModuleType = importlib.import_module(f"{_pkg}.QtCore")
QtGui: ModuleType = importlib.import_module(f"{_pkg}.QtGui")
QtWidgets: ModuleType = importlib.import_module(f"{_pkg}.QtWidgets")
QtNetwork: ModuleType = importlib.import_module(f"{_pkg}.QtNetwork")

if API == "pyside6":
    Signal = QtCore.Signal
    Slot = QtCore.Slot
else:
    Signal = QtCore.pyqtSignal
    Slot = QtCore.pyqtSlot


def emit_drops_true_reference() -> bool:
    """Whether ``Signal.emit()`` loses a reference to ``True`` on every call.

    PySide6 6.12.0 does (measured: ``emit`` returns ``True`` without a new reference),
    and CPython aborts with "bool_dealloc: deallocating True or False" after about a
    thousand signals. PyQt and other PySide6 releases do not.
    """

    class _Probe(QtCore.QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(100):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    if lost > 0:  # give back what the probe took, so that the error below stays clean
        import ctypes

        for _ in range(lost):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    return lost >= 90


if API == "pyside6" and emit_drops_true_reference():
    raise ImportError(
        f"PySide6 {QtCore.qVersion()} loses a reference to True on every Signal.emit and "
        "crashes Python after about a thousand signals: install another version "
        "(pip install 'PySide6-Essentials!=6.12.0') or set INKHUE_QT_API=pyqt6"
    )

# QAction moved from QtWidgets (Qt 5) to QtGui (Qt 6).
QAction = getattr(QtGui, "QAction", None) or QtWidgets.QAction

QT_VERSION: str = QtCore.qVersion()


def exec_(obj) -> int:
    """Run ``obj.exec()`` (a QEventLoop, QDialog...) on every binding (PyQt5 names it exec_)."""
    run = getattr(obj, "exec", None) or obj.exec_
    return run()


def to_bytes(data) -> bytes:
    """Plain bytes from a QByteArray (any binding), bytes or bytearray."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    return bytes(data.data())
