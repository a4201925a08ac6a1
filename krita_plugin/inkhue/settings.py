"""The panel's persisted settings.

Inside Krita they live in kritarc (``Krita.instance().writeSetting("inkhue", key, value)``),
so they travel with Krita's own configuration; outside Krita in a QSettings store
(an INI file that tests point at a temporary folder). Values are stored as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .client import DEFAULT_URL
from .engine_process import DEFAULT_COMMAND
from .qt import QtCore

GROUP = "inkhue"
_SWITCH = {"true": True, "false": False}


@dataclass
class Settings:
    """Everything the panel remembers between sessions."""

    server_url: str = DEFAULT_URL
    token: str = ""
    engine_command: str = DEFAULT_COMMAND
    last_model: str = ""
    detail: float = 1.0
    mirror: bool = True  # steadier colors: the engine also runs the mirror image (~35% slower)
    palette: str = ""  # "" = the model's own palette, "none", or a palette's name
    hint_layer: str = ""
    train_name: str = ""  # the Train section's model name
    train_base: str = "grayscale"
    train_source: str = "animation"  # host.TRAIN_SOURCES


class KritaStore:
    """Settings in kritarc through Krita's readSetting/writeSetting."""

    def __init__(self, krita_app) -> None:
        self.app = krita_app

    def read(self, key: str, default: str) -> str:
        return str(self.app.readSetting(GROUP, key, default))

    def write(self, key: str, value: str) -> None:
        self.app.writeSetting(GROUP, key, value)


class QSettingsStore:
    """Settings in a QSettings INI file (``path``), or Qt's default user location."""

    def __init__(self, path: str | None = None) -> None:
        if path:
            self.qs = QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
        else:
            self.qs = QtCore.QSettings(
                QtCore.QSettings.Format.IniFormat,
                QtCore.QSettings.Scope.UserScope,
                "InkHue",
                "inkhue-panel",
            )

    def read(self, key: str, default: str) -> str:
        value = self.qs.value(f"{GROUP}/{key}", default)
        return default if value is None else str(value)

    def write(self, key: str, value: str) -> None:
        self.qs.setValue(f"{GROUP}/{key}", value)
        self.qs.sync()


def load(store) -> Settings:
    """Read every setting from ``store`` (bad numbers or switches fall back to the default)."""
    settings = Settings()
    for f in fields(Settings):
        default = getattr(settings, f.name)
        raw = store.read(f.name, str(default))
        value: object
        if isinstance(default, bool):  # stored as "True" / "False" (str of a bool)
            value = _SWITCH.get(raw.strip().lower(), default)
        elif isinstance(default, float):
            try:
                value = float(raw)
            except ValueError:
                value = default
        else:
            value = raw
        setattr(settings, f.name, value)
    return settings


def save(store, settings: Settings) -> None:
    """Write every setting to ``store``."""
    for f in fields(Settings):
        store.write(f.name, str(getattr(settings, f.name)))
