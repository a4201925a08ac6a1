"""properties.py: declared observable state and two-way widget binding (issue 14 item 6)."""

from __future__ import annotations

from inkhue.properties import Property, bind, notify, properties_of
from inkhue.qt import QtCore, QtWidgets, Signal


class State(QtCore.QObject):
    property_changed = Signal(str, object)

    name = Property("")
    size = Property(1.0)
    steady = Property(True)
    stored = Property(
        get=lambda self: self.store["x"], set=lambda self, v: self.store.__setitem__("x", v.upper())
    )

    def __init__(self) -> None:
        super().__init__()
        self.store = {"x": "A"}
        self.sets = 0


def changes(state) -> list:
    seen: list = []
    state.property_changed.connect(lambda name, value: seen.append((name, value)))
    return seen


def test_a_property_announces_each_change_once():
    state = State()
    seen = changes(state)
    assert (state.name, state.size, state.stored) == ("", 1.0, "A")
    state.name = "ink"
    state.name = "ink"  # the same value: no news
    state.size = 2.0
    state.stored = "b"  # a setter that stores elsewhere: the stored value is announced
    assert seen == [("name", "ink"), ("size", 2.0), ("stored", "B")]
    assert sorted(properties_of(state)) == ["name", "size", "steady", "stored"]
    notify(state, "name")
    assert seen[-1] == ("name", "ink")
    assert State().name == ""  # per instance


def test_bind_combo_both_ways_without_echo(qtbot):
    state = State()
    combo = QtWidgets.QComboBox()
    qtbot.addWidget(combo)
    for label, data in (("(none)", ""), ("Ink", "ink"), ("Hints", "hints")):
        combo.addItem(label, data)
    redraws = []
    bind(combo, state, "name", on_change=redraws.append)
    seen = changes(state)
    combo.setCurrentIndex(2)  # the artist picks "Hints"
    assert state.name == "hints" and seen == [("name", "hints")]
    state.name = "ink"  # the model changes: the widget follows, no edit comes back
    assert combo.currentData() == "ink" and seen == [("name", "hints"), ("name", "ink")]
    assert redraws == ["hints", "ink"]


def test_bind_spin_and_line_edit(qtbot):
    state = State()
    spin = QtWidgets.QDoubleSpinBox()
    edit = QtWidgets.QLineEdit()
    qtbot.addWidget(spin)
    qtbot.addWidget(edit)
    bind(spin, state, "size")
    bind(edit, state, "stored")
    assert spin.value() == 1.0 and edit.text() == "A"  # shows the value at once
    spin.setValue(2.5)
    assert state.size == 2.5
    state.size = 0.5
    assert spin.value() == 0.5
    edit.setText("new")
    edit.editingFinished.emit()
    assert state.stored == "NEW" and edit.text() == "NEW"  # the setter's value shown back


def test_bind_check_box_both_ways_without_echo(qtbot):
    state = State()
    check = QtWidgets.QCheckBox()
    qtbot.addWidget(check)
    bind(check, state, "steady")
    seen = changes(state)
    assert check.isChecked()  # shows the value at once
    check.setChecked(False)  # the artist unticks it
    assert state.steady is False and seen == [("steady", False)]
    state.steady = True  # the model changes: the box follows, no edit comes back
    assert check.isChecked() and seen == [("steady", False), ("steady", True)]


def test_live_line_edit_and_a_widget_gone_before_its_model(qtbot):
    state = State()
    edit = QtWidgets.QLineEdit()
    bind(edit, state, "name", live=True)
    edit.setText("typed")  # no editingFinished: a button clicked now must see it
    assert state.name == "typed"
    state.name = "model"
    assert edit.text() == "model"
    # The model outlives the view (a network answer still arrives): no error, no update.
    edit.deleteLater()
    qtbot.waitUntil(lambda: not _alive(edit), timeout=2000)
    state.name = "after"  # reaches the deleted widget's binding, which drops itself
    assert state.name == "after"
    state.name = "again"  # nothing bound any more
    assert state.name == "again"


def _alive(widget) -> bool:
    try:
        widget.objectName()
        return True
    except RuntimeError:
        return False
