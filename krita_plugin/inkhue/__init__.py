"""InkHue for Krita: colorize line art and grayscale frames with the InkHue engine.

Inside Krita this registers the InkHue docker and an extension with the actions
``inkhue_colorize_frame`` and ``inkhue_colorize_animation`` (shortcuts in inkhue.action).
Outside Krita importing the package does nothing but define it, so the panel and the
client can be used and tested on their own (see ``docker.standalone_panel``).
"""

from __future__ import annotations

__version__ = "0.1.0"

try:
    import krita  # noqa: F401 - present only inside Krita
except ImportError:
    krita = None

_model = None  # one PanelModel shared by every window's docker and the actions


def shared_model():
    """The PanelModel of this Krita session (created on first use)."""
    global _model
    if _model is None:
        from krita import Krita, Palette

        from . import logs
        from .krita_io import KritaHost
        from .panel_model import PanelModel
        from .settings import KritaStore

        logs.setup_logging()
        app = Krita.instance()
        _model = PanelModel(KritaHost(app, palette_class=Palette), KritaStore(app))
        # The engine started from the docker ends with Krita (aboutToQuit too, as a backup).
        app.notifier().applicationClosing.connect(_model.engine.stop)
    return _model


def _register() -> None:
    from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

    from .docker import InkHuePanel
    from .qt import QtWidgets

    class InkHueDocker(DockWidget):
        """Krita's dock around the panel; follows the active canvas."""

        def __init__(self) -> None:
            super().__init__()
            self.setWindowTitle("InkHue")
            self.panel = InkHuePanel(shared_model())
            # Scrolls when the docker is shorter than the panel (the Train section is tall).
            scroll = QtWidgets.QScrollArea(self)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
            scroll.setWidget(self.panel)
            # Room for the main controls; the folded-out sections scroll.
            scroll.setMinimumHeight(min(self.panel.sizeHint().height(), 420))
            self.setWidget(scroll)

        def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's name
            shared_model().refresh_sources()

    class InkHueExtension(Extension):
        """Menu actions (Tools > Scripts) that run the panel's colorize actions."""

        def setup(self) -> None:
            pass

        def createActions(self, window) -> None:  # noqa: N802 - Krita's name
            frame = window.createAction(
                "inkhue_colorize_frame", "InkHue: Colorize frame", "tools/scripts"
            )
            frame.triggered.connect(lambda: shared_model().colorize_frame())
            animation = window.createAction(
                "inkhue_colorize_animation", "InkHue: Colorize animation", "tools/scripts"
            )
            animation.triggered.connect(lambda: shared_model().colorize_animation())

    # PyQt6 (Krita 6) only knows scoped enums; older sip builds only the flat name.
    position = getattr(DockWidgetFactoryBase, "DockPosition", DockWidgetFactoryBase)
    app = Krita.instance()
    app.addExtension(InkHueExtension(app))
    app.addDockWidgetFactory(DockWidgetFactory("inkhue_docker", position.DockRight, InkHueDocker))


if (
    krita is not None
    and callable(getattr(krita, "qVersion", None))
    and hasattr(krita, "DockWidgetFactory")
):
    _register()
