"""The InkHue panel: a thin QWidget view over ``PanelModel``.

It works without Krita (tests build it offscreen with a stub host); inside Krita
``__init__.py`` wraps it in a DockWidget. Every action goes to the model; the view only
mirrors the model's signals. Widgets have object names so tests (and Krita scripts) can
find them: ``inkhue_colorize_frame``, ``inkhue_error_text``, ``inkhue_copy_error``...
"""

from __future__ import annotations

from .panel_model import MIN_DETAIL, PALETTE_MODEL, PALETTE_NONE, PanelModel
from .qt import QtCore, QtWidgets

Qt = QtCore.Qt
NO_HINTS = ""


class InkHuePanel(QtWidgets.QWidget):
    """The panel's widgets, bound to a ``PanelModel``."""

    def __init__(self, model: PanelModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setObjectName("inkhue_panel")
        self._updating = False
        self._build()
        self._bind()
        self._on_status(model.state, model.status_text)
        self._on_models()
        self._on_sources()
        self._on_busy(False)
        self._on_error(model.error)

    # -- layout ------------------------------------------------------------------------------

    def _named(self, widget, name: str):
        widget.setObjectName(name)
        return widget

    def _build(self) -> None:
        root = QtWidgets.QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)

        status_row = QtWidgets.QHBoxLayout()
        self.status = self._named(QtWidgets.QLabel(), "inkhue_status")
        self.status.setWordWrap(True)
        self.connect_button = self._named(QtWidgets.QPushButton("Connect"), "inkhue_connect")
        self.start_button = self._named(QtWidgets.QPushButton("Start engine"), "inkhue_start")
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.connect_button)
        status_row.addWidget(self.start_button)
        root.addLayout(status_row)

        self.settings_button = self._named(QtWidgets.QToolButton(), "inkhue_engine_settings")
        self.settings_button.setText("Engine settings")
        self.settings_button.setCheckable(True)
        self.settings_button.setToolButtonStyle(
            Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        )
        self.settings_button.setArrowType(Qt.ArrowType.RightArrow)
        root.addWidget(self.settings_button)
        self.engine_box = QtWidgets.QWidget()
        self.engine_box.setVisible(False)
        engine_form = QtWidgets.QFormLayout(self.engine_box)
        engine_form.setContentsMargins(12, 0, 0, 0)
        s = self.model.settings
        self.url_edit = self._named(QtWidgets.QLineEdit(s.server_url), "inkhue_url")
        self.token_edit = self._named(QtWidgets.QLineEdit(s.token), "inkhue_token")
        self.token_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.command_edit = self._named(QtWidgets.QLineEdit(s.engine_command), "inkhue_command")
        engine_form.addRow("Server URL", self.url_edit)
        engine_form.addRow("Token", self.token_edit)
        engine_form.addRow("Start command", self.command_edit)
        root.addWidget(self.engine_box)

        form = QtWidgets.QFormLayout()
        model_row = QtWidgets.QHBoxLayout()
        self.model_combo = self._named(QtWidgets.QComboBox(), "inkhue_model")
        self.model_combo.setSizeAdjustPolicy(
            QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.refresh_button = self._named(QtWidgets.QToolButton(), "inkhue_refresh")
        self.refresh_button.setText("\u21bb")
        self.refresh_button.setToolTip("Refresh the models, layers and palettes")
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_button)
        form.addRow("Model", model_row)
        self.hint_combo = self._named(QtWidgets.QComboBox(), "inkhue_hint_layer")
        form.addRow("Hint layer", self.hint_combo)
        self.palette_combo = self._named(QtWidgets.QComboBox(), "inkhue_palette")
        form.addRow("Palette", self.palette_combo)
        self.detail_spin = self._named(QtWidgets.QDoubleSpinBox(), "inkhue_detail")
        self.detail_spin.setRange(MIN_DETAIL, 4.0)
        self.detail_spin.setSingleStep(0.25)
        self.detail_spin.setValue(self.model.settings.detail)
        self.detail_spin.setToolTip(
            "The model's working size x detail: above 1 finer and slower, below 1 faster "
            "and lighter on memory"
        )
        form.addRow("Detail", self.detail_spin)
        root.addLayout(form)

        buttons = QtWidgets.QHBoxLayout()
        self.frame_button = self._named(
            QtWidgets.QPushButton("Colorize frame"), "inkhue_colorize_frame"
        )
        self.animation_button = self._named(
            QtWidgets.QPushButton("Colorize animation"), "inkhue_colorize_animation"
        )
        buttons.addWidget(self.frame_button)
        buttons.addWidget(self.animation_button)
        root.addLayout(buttons)

        progress_row = QtWidgets.QHBoxLayout()
        self.progress_bar = self._named(QtWidgets.QProgressBar(), "inkhue_progress")
        self.progress_bar.setTextVisible(True)
        self.cancel_button = self._named(QtWidgets.QPushButton("Cancel"), "inkhue_cancel")
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        root.addLayout(progress_row)

        self.message_label = self._named(QtWidgets.QLabel(), "inkhue_message")
        self.message_label.setWordWrap(True)
        root.addWidget(self.message_label)

        self.error_box = QtWidgets.QWidget()
        error_layout = QtWidgets.QVBoxLayout(self.error_box)
        error_layout.setContentsMargins(0, 0, 0, 0)
        self.error_text = self._named(QtWidgets.QPlainTextEdit(), "inkhue_error_text")
        self.error_text.setReadOnly(True)
        self.error_text.setMaximumHeight(120)
        self.error_text.setStyleSheet("color: #c0392b;")
        self.copy_button = self._named(QtWidgets.QPushButton("Copy error"), "inkhue_copy_error")
        error_layout.addWidget(self.error_text)
        error_layout.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignRight)
        root.addWidget(self.error_box)
        root.addStretch(1)

    def _bind(self) -> None:
        m = self.model
        m.status_changed.connect(self._on_status)
        m.models_changed.connect(self._on_models)
        m.sources_changed.connect(self._on_sources)
        m.busy_changed.connect(self._on_busy)
        m.progress.connect(self._on_progress)
        m.error_changed.connect(self._on_error)
        m.message.connect(self.message_label.setText)

        self.connect_button.clicked.connect(self._connect_clicked)
        self.start_button.clicked.connect(self._start_clicked)
        self.refresh_button.clicked.connect(self._refresh_clicked)
        self.frame_button.clicked.connect(m.colorize_frame)
        self.animation_button.clicked.connect(m.colorize_animation)
        self.cancel_button.clicked.connect(m.cancel)
        self.copy_button.clicked.connect(self.copy_error)
        self.settings_button.toggled.connect(self._toggle_settings)
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        self.hint_combo.currentIndexChanged.connect(self._hint_chosen)
        self.palette_combo.currentIndexChanged.connect(self._palette_chosen)
        self.detail_spin.valueChanged.connect(m.set_detail)
        for edit in (self.url_edit, self.token_edit, self.command_edit):
            edit.editingFinished.connect(self._server_edited)

    # -- user actions ------------------------------------------------------------------------

    def _server_edited(self) -> None:
        self.model.set_server(self.url_edit.text(), self.token_edit.text(),
                              self.command_edit.text())

    def _connect_clicked(self) -> None:
        self._server_edited()
        self.model.connect_engine()

    def _start_clicked(self) -> None:
        self._server_edited()
        self.model.start_engine()

    def _refresh_clicked(self) -> None:
        self.model.refresh_sources()
        self.model.connect_engine()

    def _model_chosen(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.model.set_model(self.model_combo.itemData(index) or "")

    def _hint_chosen(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.model.set_hint_layer(self.hint_combo.itemData(index) or NO_HINTS)

    def _palette_chosen(self, index: int) -> None:
        if not self._updating and index >= 0:
            self.model.set_palette(self.palette_combo.itemData(index) or PALETTE_MODEL)

    def _toggle_settings(self, shown: bool) -> None:
        self.engine_box.setVisible(shown)
        self.settings_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )

    def copy_error(self) -> None:
        """Put the error text on the clipboard (for a bug report)."""
        QtWidgets.QApplication.clipboard().setText(self.error_text.toPlainText())

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        # A model added to the engine's folders appears without restarting Krita.
        self.model.refresh()

    # -- model -> view -----------------------------------------------------------------------

    def _on_status(self, state: str, text: str) -> None:
        colors = {"connected": "#27ae60", "offline": "#c0392b"}
        dot = f"<span style='color:{colors.get(state, '#e67e22')}'>\u25cf</span> "
        self.status.setText(dot + text.replace("&", "&amp;").replace("<", "&lt;"))
        self.start_button.setEnabled(state in ("offline",) and not self.model.engine.running())

    def _fill(self, combo, items: list[tuple[str, str]], current: str) -> None:
        self._updating = True
        try:
            combo.clear()
            for label, data in items:
                combo.addItem(label, data)
            index = combo.findData(current)
            combo.setCurrentIndex(index if index >= 0 else 0)
        finally:
            self._updating = False

    def _on_models(self) -> None:
        items = [(f"{m['name']} ({m.get('task', '?')})", m["name"]) for m in self.model.models]
        if not items:
            items = [("(no models: connect to the engine)", "")]
        chosen = self.model.selected_model()
        self._fill(self.model_combo, items, chosen["name"] if chosen else "")
        self._on_busy(self.model.busy)

    def _on_sources(self) -> None:
        s = self.model.settings
        self._fill(self.hint_combo, [("(no hints)", NO_HINTS)]
                   + [(n, n) for n in self.model.layer_names], s.hint_layer)
        self._fill(self.palette_combo, [("Model's palette", PALETTE_MODEL),
                                        ("No palette", PALETTE_NONE)]
                   + [(n, n) for n in self.model.palette_names], s.palette)

    def _on_busy(self, busy: bool) -> None:
        ready = not busy and bool(self.model.models)
        self.frame_button.setEnabled(ready)
        self.animation_button.setEnabled(ready)
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        if not busy:
            self.progress_bar.reset()

    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.progress_bar.setRange(0, total)  # 0..0 = busy indicator
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(text + (" (%p%)" if total else ""))
        self.message_label.setText(text)

    def _on_error(self, text: str) -> None:
        self.error_text.setPlainText(text)
        self.error_box.setVisible(bool(text))


def standalone_panel(host, settings_path: str | None = None, log_path: str | None = None):
    """A panel outside Krita (tests, a quick look): model + widget, nothing Krita-specific."""
    from . import logs
    from .settings import QSettingsStore

    logs.setup_logging(log_path)
    model = PanelModel(host, QSettingsStore(settings_path))
    return InkHuePanel(model), model


__all__ = ["InkHuePanel", "standalone_panel"]
