"""Panel state declared once: observable properties and two-way widget binding.

A ``Property`` on a QObject subclass with a ``property_changed(name, value)`` signal is
read like an attribute and announces every change of value; ``bind`` ties a widget to
one property in both directions. The view then holds no state of its own and needs no
"updating" guard: a value the model sets is put into the widget with the widget's
signals blocked, so it does not come back as a user edit. (The idea follows
krita-ai-diffusion's ObservableProperties / bind; this is a small version that works the
same on PyQt5, PyQt6 and PySide6: one generic signal instead of one signal per property.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .qt import QtWidgets


class Property:
    """A declared, observable piece of state.

    ``default``: the value before anything is set (plain properties keep their value in
    the instance). ``get`` / ``set``: functions ``get(obj)`` / ``set(obj, value)`` when the
    value lives elsewhere (e.g. per document, or in the settings).
    """

    def __init__(
        self,
        default: Any = None,
        get: Callable[[Any], Any] | None = None,
        set: Callable[[Any, Any], None] | None = None,
        doc: str = "",
    ) -> None:  # noqa: A002
        self.default = default
        self.fget = get
        self.fset = set
        self.name = ""
        self.__doc__ = doc

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        if self.fget is not None:
            return self.fget(obj)
        return obj.__dict__.get("_prop_" + self.name, self.default)

    def __set__(self, obj, value) -> None:
        old = self.__get__(obj)
        if self.fset is not None:
            self.fset(obj, value)
        else:
            obj.__dict__["_prop_" + self.name] = value
        new = self.__get__(obj)
        if new != old:
            obj.property_changed.emit(self.name, new)


def properties_of(obj) -> list[str]:
    """The names of the Properties declared on ``obj``'s class."""
    return [
        name
        for cls in type(obj).__mro__
        for name, attr in vars(cls).items()
        if isinstance(attr, Property)
    ]


def notify(obj, *names: str) -> None:
    """Announce the current values of ``names`` (their source changed behind them, e.g.
    another document became the active one)."""
    for name in names:
        obj.property_changed.emit(name, getattr(obj, name))


def _set_quietly(widget, setter: Callable[[], None]) -> None:
    blocked = widget.blockSignals(True)
    try:
        setter()
    finally:
        widget.blockSignals(blocked)


def show_value(widget, value) -> None:
    """Put ``value`` into ``widget`` without it reporting an edit."""
    if isinstance(widget, QtWidgets.QComboBox):
        index = widget.findData(value)
        _set_quietly(widget, lambda: widget.setCurrentIndex(index if index >= 0 else 0))
    elif isinstance(widget, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
        _set_quietly(widget, lambda: widget.setValue(value))
    elif isinstance(widget, QtWidgets.QLineEdit):
        _set_quietly(widget, lambda: widget.setText(value))
    elif isinstance(widget, QtWidgets.QCheckBox):
        _set_quietly(widget, lambda: widget.setChecked(bool(value)))
    else:
        raise TypeError(f"cannot show a value in a {type(widget).__name__}")


def bind(
    widget,
    obj,
    name: str,
    on_change: Callable[[Any], None] | None = None,
    live: bool = False,
) -> None:
    """Two-way binding of ``widget`` to ``obj.name``.

    Combo boxes bind their current item's data, spin boxes their value, check boxes whether
    they are checked, line edits their
    text (on editingFinished; with ``live``, on every change of the text, so a button
    clicked right after typing sees it). ``on_change(value)`` also runs after each
    change from either side (e.g. to redraw something that depends on it).
    """

    def to_model(value) -> None:
        setattr(obj, name, value)

    if isinstance(widget, QtWidgets.QComboBox):
        widget.currentIndexChanged.connect(
            lambda index: to_model(widget.itemData(index) or "") if index >= 0 else None
        )
    elif isinstance(widget, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
        widget.valueChanged.connect(to_model)
    elif isinstance(widget, QtWidgets.QCheckBox):
        widget.toggled.connect(to_model)
    elif isinstance(widget, QtWidgets.QLineEdit):
        if live:
            widget.textChanged.connect(to_model)
        else:
            widget.editingFinished.connect(lambda: to_model(widget.text()))
    else:
        raise TypeError(f"cannot bind a {type(widget).__name__}")

    # A model may outlive its view (its network answers still arrive): a change after the
    # widget is gone must not reach it. No slot on the widget's ``destroyed``: one that
    # disconnected from the model segfaulted under PyQt6 when both were torn down together.
    # The binding drops itself on the model's next change, from inside the model's own
    # signal (the model is surely alive then), once the widget's wrapper says it is deleted.
    def to_view(changed: str, value) -> None:
        try:
            widget.objectName()
        except RuntimeError:  # wrapped C/C++ object deleted (PyQt / PySide say so alike)
            try:
                obj.property_changed.disconnect(to_view)
            except (RuntimeError, TypeError):  # already dropped
                pass
            return
        if changed == name:
            show_value(widget, value)
            if on_change is not None:
                on_change(value)

    obj.property_changed.connect(to_view)
    show_value(widget, getattr(obj, name))
