"""Settings stores (kritarc through Krita's API, QSettings outside) and the rotating log."""

from __future__ import annotations

import logging

import fake_krita as fk

from inkhue import logs
from inkhue.settings import KritaStore, QSettingsStore, Settings, load, save


def test_krita_store_round_trip():
    app = fk.App()
    store = KritaStore(app)
    assert load(store) == Settings()  # defaults on a fresh kritarc
    wanted = Settings(
        server_url="http://127.0.0.1:9999",
        token="t",
        engine_command="x serve",
        last_model="m",
        detail=2.5,
        mirror=False,
        palette="none",
        hint_layer="Hints",
    )
    save(store, wanted)
    assert app.settings[("inkhue", "detail")] == "2.5"  # kritarc holds strings
    assert load(KritaStore(app)) == wanted


def test_bad_number_falls_back_to_default(tmp_path):
    store = QSettingsStore(str(tmp_path / "s.ini"))
    store.write("detail", "lots")
    assert load(store).detail == Settings().detail


def test_switches_round_trip_and_bad_ones_fall_back(tmp_path):
    store = QSettingsStore(str(tmp_path / "s.ini"))
    save(store, Settings(mirror=False))
    assert load(QSettingsStore(str(tmp_path / "s.ini"))).mirror is False
    store.write("mirror", "sometimes")
    assert load(store).mirror is Settings().mirror


def test_errors_go_to_the_rotating_log(tmp_path, stub_host):
    from inkhue.panel_model import PanelModel

    path = tmp_path / "logs" / "inkhue.log"
    logger = logs.setup_logging(str(path), max_bytes=2000, backups=2)
    try:
        assert logs.setup_logging(str(path)) is logger
        assert len([h for h in logger.handlers if getattr(h, "baseFilename", "") == str(path)]) == 1
        model = PanelModel(stub_host, QSettingsStore(str(tmp_path / "s.ini")))
        model.set_error("Layer 'Ink' of 'a.kra' has no keyframes")
        for i in range(60):
            model.set_error(f"error number {i} " + "x" * 40)
        for handler in logger.handlers:
            handler.flush()
        assert path.is_file() and path.with_name("inkhue.log.1").is_file()
        assert not path.with_name("inkhue.log.3").exists()  # 2 backups kept
        assert "error number 59" in path.read_text()
    finally:
        for handler in list(logger.handlers):
            if getattr(handler, "baseFilename", "") == str(path):
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(logging.NOTSET)
