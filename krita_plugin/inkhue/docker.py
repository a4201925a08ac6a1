"""The InkHue panel: a thin QWidget view over ``PanelModel``.

It works without Krita (tests build it offscreen with a stub host); inside Krita
``__init__.py`` wraps it in a DockWidget. Every action goes to the model; the view only
mirrors the model's signals. Widgets have object names so tests (and Krita scripts) can
find them: ``inkhue_colorize_frame``, ``inkhue_error_text``, ``inkhue_copy_error``,
``inkhue_train_toggle``, ``inkhue_train_start``... The collapsible Train section is a view
over ``PanelModel.trainer`` (``training.Trainer``).
"""

from __future__ import annotations

from .host import NO_KEYFRAMES, TRAIN_SOURCE_ANIMATION, TRAIN_SOURCE_DOCUMENTS
from .panel_model import AUTO_MODEL, MIN_DETAIL, PALETTE_MODEL, PALETTE_NONE, PanelModel
from .properties import bind, show_value
from .qt import QtCore, QtGui, QtWidgets
from .training import BASE_LABELS, held_out_text

Qt = QtCore.Qt
NO_HINTS = ""
TRAIN_SOURCE_LABELS = (
    (TRAIN_SOURCE_ANIMATION, "Current animation range"),
    (TRAIN_SOURCE_DOCUMENTS, "Open documents"),
)


def swatch_pixmap(colors: list[str], size: int = 12, most: int = 16):
    """A strip of ``size`` px squares, one per ``#rrggbb`` colour (the first ``most``)."""
    colors = list(colors)[:most]
    pixmap = QtGui.QPixmap(max(1, len(colors)) * size, size)
    pixmap.fill(QtGui.QColor(0, 0, 0, 0))
    painter = QtGui.QPainter(pixmap)
    for i, color in enumerate(colors):
        painter.fillRect(i * size, 0, size, size, QtGui.QColor(color))
    painter.end()
    return pixmap


def palette_tooltip(info: dict) -> str:
    """What the model picker says about a model's own palette."""
    palette = info.get("palette") or []
    if not palette:
        return f"{info.get('name')}: no palette of its own"
    return (
        f"{info.get('name')}: palette of {len(palette)} colours ({' '.join(palette)}); "
        "the palette lock uses it unless Palette is set to another or No palette"
    )


class InkHuePanel(QtWidgets.QWidget):
    """The panel's widgets, bound to a ``PanelModel``."""

    def __init__(self, model: PanelModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.setObjectName("inkhue_panel")
        self._build()
        self._bind()
        self._on_status(model.state, model.status_text)
        self._on_models()
        self._on_sources()
        self._on_busy(False)
        self._on_error(model.error)
        self._on_result()

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
        self.settings_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
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
        self.keyframe_combo = self._named(QtWidgets.QComboBox(), "inkhue_keyframes")
        self.keyframe_combo.setToolTip(
            "Colour a shot from the frames you coloured: a layer with your colours at some "
            "frames (its keyframes), or another open document as a model sheet. Each frame "
            "takes their colours region by region; the model fills only what they lack."
        )
        form.addRow("Keyframes", self.keyframe_combo)
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
        self.mirror_check = self._named(
            QtWidgets.QCheckBox("Steadier colors (slower)"), "inkhue_mirror"
        )
        self.mirror_check.setToolTip(
            "The engine colors each frame and its mirror image and averages the two: a "
            "character keeps its colors better across a shot, at about a third more time "
            "on a CPU. Off: one pass, faster."
        )
        form.addRow("", self.mirror_check)
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

        self.result_box = self._named(QtWidgets.QWidget(), "inkhue_result_box")
        result_row = QtWidgets.QHBoxLayout(self.result_box)
        result_row.setContentsMargins(0, 0, 0, 0)
        self.result_label = self._named(QtWidgets.QLabel(), "inkhue_result_label")
        self.result_label.setWordWrap(True)
        self.keep_button = self._named(QtWidgets.QPushButton("Keep"), "inkhue_keep")
        self.keep_button.setToolTip("Keep the new layer (this bar goes away)")
        self.discard_button = self._named(QtWidgets.QPushButton("Discard"), "inkhue_discard")
        self.discard_button.setToolTip("Delete the new layer with all its keyframes")
        result_row.addWidget(self.result_label, 1)
        result_row.addWidget(self.keep_button)
        result_row.addWidget(self.discard_button)
        root.addWidget(self.result_box)

        self._build_train(root)

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
        self.fix_button = self._named(QtWidgets.QPushButton(), "inkhue_fix")
        error_buttons = QtWidgets.QHBoxLayout()
        error_buttons.addWidget(self.fix_button)
        error_buttons.addStretch(1)
        error_buttons.addWidget(self.copy_button)
        error_layout.addLayout(error_buttons)
        root.addWidget(self.error_box)
        root.addStretch(1)

    def _build_train(self, root) -> None:
        """The collapsible Train section (fine-tuning on the document's coloured frames)."""
        self.train_button = self._named(QtWidgets.QToolButton(), "inkhue_train_toggle")
        self.train_button.setText("Train")
        self.train_button.setCheckable(True)
        self.train_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.train_button.setArrowType(Qt.ArrowType.RightArrow)
        self.train_button.setToolTip("Fine-tune a model on this production's coloured frames")
        root.addWidget(self.train_button)
        self.train_box = self._named(QtWidgets.QWidget(), "inkhue_train_box")
        self.train_box.setVisible(False)
        box = QtWidgets.QVBoxLayout(self.train_box)
        box.setContentsMargins(12, 0, 0, 0)
        self.train_reason = self._named(QtWidgets.QLabel(), "inkhue_train_reason")
        self.train_reason.setWordWrap(True)
        self.train_reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.train_reason)
        self.train_form = self._named(QtWidgets.QWidget(), "inkhue_train_form")
        box.addWidget(self.train_form)
        layout = QtWidgets.QVBoxLayout(self.train_form)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QtWidgets.QFormLayout()
        self.train_name = self._named(QtWidgets.QLineEdit(), "inkhue_train_name")
        self.train_name.setPlaceholderText("name of the new model, e.g. studio-colours")
        form.addRow("Name", self.train_name)
        self.train_base = self._named(QtWidgets.QComboBox(), "inkhue_train_base")
        self.train_base.setToolTip("The shipped model to start from: grayscale frames or line art")
        form.addRow("Base", self.train_base)
        self.train_source = self._named(QtWidgets.QComboBox(), "inkhue_train_source")
        for source, label in TRAIN_SOURCE_LABELS:
            self.train_source.addItem(label, source)
        self.train_source.setToolTip(
            "Current animation range: every keyframe of the active layer in the playback "
            "range (every frame of the range for a layer without keyframes, e.g. a group).\n"
            "Open documents: the current frame of each open document (all visible layers)."
        )
        form.addRow("Frames", self.train_source)
        self.train_steps = self._named(QtWidgets.QSpinBox(), "inkhue_train_steps")
        self.train_steps.setRange(1, 100_000)
        self.train_steps.setToolTip(
            "Training steps: more learns more of the frames and takes longer"
        )
        form.addRow("Steps", self.train_steps)
        layout.addLayout(form)
        buttons = QtWidgets.QHBoxLayout()
        self.train_export = self._named(
            QtWidgets.QPushButton("Export dataset\u2026"), "inkhue_train_export"
        )
        self.train_export.setToolTip(
            "Write the frames as PNG files into a folder, for `inkhue finetune --data FOLDER`"
        )
        self.train_start = self._named(
            QtWidgets.QPushButton("Start training"), "inkhue_train_start"
        )
        buttons.addWidget(self.train_export)
        buttons.addWidget(self.train_start)
        layout.addLayout(buttons)
        progress_row = QtWidgets.QHBoxLayout()
        self.train_progress = self._named(QtWidgets.QProgressBar(), "inkhue_train_progress")
        self.train_progress.setTextVisible(True)
        self.train_cancel = self._named(QtWidgets.QPushButton("Cancel"), "inkhue_train_cancel")
        progress_row.addWidget(self.train_progress, 1)
        progress_row.addWidget(self.train_cancel)
        layout.addLayout(progress_row)
        self.train_result = self._named(QtWidgets.QLabel(), "inkhue_train_result")
        self.train_result.setWordWrap(True)
        self.train_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.train_result)
        self.train_swatches = self._named(QtWidgets.QLabel(), "inkhue_train_swatches")
        layout.addWidget(self.train_swatches)
        root.addWidget(self.train_box)

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
        self.fix_button.clicked.connect(m.apply_fix)
        m.result_changed.connect(self._on_result)
        self.keep_button.clicked.connect(m.keep_result)
        self.discard_button.clicked.connect(m.discard_result)
        self.settings_button.toggled.connect(self._toggle_settings)
        # The choices: two-way bindings to the model's declared properties.
        bind(
            self.model_combo, m, "chosen_model", on_change=lambda _name: self._show_model_palette()
        )
        bind(self.hint_combo, m, "hint_layer")
        bind(self.keyframe_combo, m, "keyframes")
        bind(self.palette_combo, m, "palette")
        bind(self.detail_spin, m, "detail")
        bind(self.mirror_check, m, "mirror")
        for edit in (self.url_edit, self.token_edit, self.command_edit):
            edit.editingFinished.connect(self._server_edited)

        t = m.trainer
        t.changed.connect(self._on_train)
        t.progress.connect(self._on_train_progress)
        self.train_button.toggled.connect(self._toggle_train)
        self.train_start.clicked.connect(self._train_start_clicked)
        self.train_export.clicked.connect(self._train_export_clicked)
        self.train_cancel.clicked.connect(t.cancel)
        # The Train section's choices: bound to the model's properties like the rest.
        bind(self.train_name, m, "train_name", live=True)
        bind(self.train_base, m, "train_base")
        bind(self.train_source, m, "train_source")
        bind(self.train_steps, m, "train_steps")
        self._on_train()

    # -- user actions ------------------------------------------------------------------------

    def _server_edited(self) -> None:
        self.model.set_server(
            self.url_edit.text(), self.token_edit.text(), self.command_edit.text()
        )

    def _connect_clicked(self) -> None:
        self._server_edited()
        self.model.connect_engine()

    def _start_clicked(self) -> None:
        self._server_edited()
        self.model.start_engine()

    def _refresh_clicked(self) -> None:
        self.model.refresh_sources()
        self.model.connect_engine()

    def _toggle_settings(self, shown: bool) -> None:
        self.engine_box.setVisible(shown)
        self.settings_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )

    def _toggle_train(self, shown: bool) -> None:
        self.train_box.setVisible(shown)
        self.train_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _train_start_clicked(self) -> None:
        m = self.model
        m.trainer.start_training(m.train_name, m.train_base, m.train_source, m.train_steps)

    def ask_export_folder(self) -> str:
        """The folder the user picks for Export dataset ("" = cancelled)."""
        return QtWidgets.QFileDialog.getExistingDirectory(
            self, "Export the training frames into a folder"
        )

    def _train_export_clicked(self) -> None:
        folder = self.ask_export_folder()
        if folder:
            m = self.model
            m.trainer.export_dataset(folder, m.train_source, m.train_base)

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

    def _fill(self, combo, items: list[tuple], current: str) -> None:
        """Refill ``combo`` with ``(label, data[, icon or None, tooltip])`` items."""
        blocked = combo.blockSignals(True)  # a refill is not the artist's choice
        try:
            combo.clear()
            for label, data, *extra in items:
                icon = extra[0] if extra else None
                if icon is not None:
                    combo.addItem(QtGui.QIcon(icon), label, data)
                else:
                    combo.addItem(label, data)
                if len(extra) > 1 and extra[1]:
                    combo.setItemData(combo.count() - 1, extra[1], Qt.ItemDataRole.ToolTipRole)
            index = combo.findData(current)
            combo.setCurrentIndex(index if index >= 0 else 0)
        finally:
            combo.blockSignals(blocked)

    def _on_models(self) -> None:
        items = [
            (
                f"{m['name']} ({m.get('task', '?')})",
                m["name"],
                swatch_pixmap(m["palette"]) if m.get("palette") else None,
                palette_tooltip(m),
            )
            for m in self.model.models
        ]
        if items:
            items.insert(
                0,
                (
                    "Automatic (detected)",
                    AUTO_MODEL,
                    None,
                    "The engine tells line art from grayscale (an animation: from its first "
                    "keyframes) and takes that task's model",
                ),
            )
        else:
            items = [("(no models: connect to the engine)", "")]
        chosen = self.model.selected_model()
        self._fill(self.model_combo, items, chosen["name"] if chosen else "")
        self._on_busy(self.model.busy)
        self._show_model_palette()

    def _show_model_palette(self) -> None:
        """The palette picker's "Model's palette" item shows the chosen model's palette."""
        index = self.palette_combo.findData(PALETTE_MODEL)
        if index < 0:
            return
        info = self.model.selected_model() or {}
        palette = info.get("palette") or []
        self.palette_combo.setItemIcon(
            index, QtGui.QIcon(swatch_pixmap(palette)) if palette else QtGui.QIcon()
        )
        self.palette_combo.setItemText(
            index, f"Model's palette ({len(palette)} colours)" if palette else "Model's palette"
        )
        self.palette_combo.setItemData(
            index,
            palette_tooltip(info) if info else "The model's own palette, if it has one",
            Qt.ItemDataRole.ToolTipRole,
        )

    def _on_sources(self) -> None:
        m = self.model
        self._fill(
            self.hint_combo,
            [("(no hints)", NO_HINTS)] + [(n, n) for n in m.layer_names],
            m.hint_layer,
        )
        self._fill(
            self.keyframe_combo,
            [("(none: each frame on its own)", NO_KEYFRAMES)]
            + [(label, value) for value, label in m.keyframe_sources],
            m.keyframes,
        )
        self._fill(
            self.palette_combo,
            [("Model's palette", PALETTE_MODEL), ("No palette", PALETTE_NONE)]
            + [(n, n) for n in m.palette_names],
            m.palette,
        )
        chosen = m.selected_model()  # the active document's model (None: automatic)
        show_value(self.model_combo, chosen["name"] if chosen else AUTO_MODEL)
        self._show_model_palette()

    def _on_busy(self, busy: bool) -> None:
        ready = not busy and bool(self.model.models)
        self.frame_button.setEnabled(ready)
        self.animation_button.setEnabled(ready)
        self.cancel_button.setEnabled(busy)
        self.keep_button.setEnabled(not busy)
        self.discard_button.setEnabled(not busy)
        self.progress_bar.setVisible(busy)
        if not busy:
            self.progress_bar.reset()

    def _on_progress(self, done: int, total: int, text: str) -> None:
        # Never Qt's animated busy indicator (range 0..0): in Krita it kept the main thread
        # busy and a 1080p upload took 10.4 s instead of 0.2 s (issue 14 item 14).
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done if total else 0)
        self.progress_bar.setFormat(text + (" (%p%)" if total else ""))

    def _on_train(self) -> None:
        t = self.model.trainer
        running = t.state != "idle"
        self.train_reason.setText(t.reason if not t.available else "")
        self.train_reason.setVisible(not t.available)
        self.train_form.setVisible(bool(t.available) or running)
        bases = [
            (
                BASE_LABELS.get(b["name"], b["name"]),
                b["name"],
                None,
                f"{b['name']} base, training crop {t.crop_size(b['name'])} px",
            )
            for b in t.installed_bases
        ]
        if [self.train_base.itemData(i) for i in range(self.train_base.count())] != [
            b[1] for b in bases
        ]:
            self._fill(self.train_base, bases, self.model.train_base)
        ready = bool(t.available) and not running
        self.train_start.setEnabled(ready and self.train_base.count() > 0)
        self.train_export.setEnabled(ready)
        self.train_cancel.setEnabled(running)
        self.train_progress.setVisible(running)
        if not running:
            self.train_progress.reset()
        result = t.result
        self.train_result.setVisible(result is not None)
        self.train_swatches.setVisible(bool(result and result.get("palette")))
        if result is not None:
            palette = result.get("palette") or []
            check = held_out_text(result.get("held_out_check"))
            self.train_result.setText(
                f"Model '{result.get('model')}' is ready. {check}."
                + (f" Studio palette ({len(palette)} colours):" if palette else "")
            )
            if palette:
                self.train_swatches.setPixmap(swatch_pixmap(palette, size=16))
                self.train_swatches.setToolTip(" ".join(palette))

    def _on_train_progress(self, done: int, total: int, text: str) -> None:
        self.train_progress.setRange(0, max(total, 1))  # no animated busy indicator
        self.train_progress.setValue(done if total else 0)
        self.train_progress.setFormat(text + (" (%p%)" if total else ""))

    def _on_result(self) -> None:
        name = self.model.result_name
        self.result_box.setVisible(bool(name))
        self.result_label.setText(f"New layer '{name}'" if name else "")

    def _on_error(self, text: str) -> None:
        self.error_text.setPlainText(text)
        self.error_box.setVisible(bool(text))
        fix = self.model.fix
        self.fix_button.setVisible(fix is not None)
        self.fix_button.setText(fix[0] if fix else "")


def standalone_panel(host, settings_path: str | None = None, log_path: str | None = None):
    """A panel outside Krita (tests, a quick look): model + widget, nothing Krita-specific."""
    from . import logs
    from .settings import QSettingsStore

    logs.setup_logging(log_path)
    model = PanelModel(host, QSettingsStore(settings_path))
    return InkHuePanel(model), model


__all__ = ["InkHuePanel", "standalone_panel"]
