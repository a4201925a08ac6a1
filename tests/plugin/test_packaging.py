"""The plugin zip: members at the root as Krita's importer expects, no caches, version stamped."""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_builder():
    spec = importlib.util.spec_from_file_location(
        "inkhue_build_plugin", ROOT / "packaging" / "build_plugin.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_plugin_zip(tmp_path):
    # A stray cache inside the package must not end up in the zip.
    cache = ROOT / "krita_plugin" / "inkhue" / "__pycache__"
    made_cache = not cache.exists()
    cache.mkdir(exist_ok=True)
    stray = cache / "stray.cpython-311.pyc"
    stray.write_bytes(b"junk")
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "packaging" / "build_plugin.py"), "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stray.unlink()
        if made_cache:
            cache.rmdir()
    assert out.returncode == 0, out.stderr
    version = re.search(
        r'__version__ = "([^"]+)"', (ROOT / "engine" / "__init__.py").read_text()
    ).group(1)
    path = tmp_path / f"inkhue-krita-{version}.zip"
    assert out.stdout.startswith(str(path))
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        sources = sorted(
            p.relative_to(ROOT / "krita_plugin").as_posix()
            for p in (ROOT / "krita_plugin" / "inkhue").glob("*.py")
        )
        # Krita's importer finds the package by its directory entry ("inkhue/"), not by
        # the files in it: without one, Import Python Plugin says "No plugins found".
        assert names == ["inkhue.desktop", "inkhue.action", "inkhue/"] + sources
        assert zf.getinfo("inkhue/").is_dir()
        assert "inkhue/__init__.py" in names and "inkhue/qt.py" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        init = zf.read("inkhue/__init__.py").decode()
        assert f'__version__ = "{version}"' in init
        desktop = configparser.ConfigParser()
        desktop.read_string(zf.read("inkhue.desktop").decode())
        entry = desktop["Desktop Entry"]
        assert (
            entry["Type"],
            entry["ServiceTypes"],
            entry["X-KDE-Library"],
            entry["X-Python-2-Compatible"],
            entry["Name"],
        ) == ("Service", "Krita/PythonPlugin", "inkhue", "false", "InkHue")
        action = zf.read("inkhue.action").decode()
        assert 'name="inkhue_colorize_frame"' in action
        assert 'name="inkhue_colorize_animation"' in action
    first = path.read_bytes()
    load_builder().build_zip(tmp_path)
    assert path.read_bytes() == first  # reproducible
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


#: Krita's own "Import Python Plugin from File..." (Debian's krita package ships it).
KRITA_IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")


def test_krita_importer_installs_the_zip(tmp_path):
    """The documented install, Tools > Scripts > Import Python Plugin from File..., run
    with Krita's own importer: the desktop file, the package and the action file land."""
    if not KRITA_IMPORTER.is_file():
        if os.environ.get("INKHUE_REQUIRE_KRITA") == "1":
            pytest.fail(f"INKHUE_REQUIRE_KRITA=1 but {KRITA_IMPORTER} is missing")
        pytest.skip(f"Krita's plugin importer is not installed ({KRITA_IMPORTER})")
    zip_path = load_builder().build_zip(tmp_path / "dist")
    resources = tmp_path / "resources"
    resources.mkdir()
    out = subprocess.run(
        [sys.executable, str(KRITA_IMPORTER), str(zip_path), str(resources)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Imported plugin: InkHue" in out.stdout
    assert (resources / "pykrita" / "inkhue.desktop").is_file()
    assert (resources / "pykrita" / "inkhue" / "__init__.py").is_file()
    assert (resources / "actions" / "inkhue.action").is_file()


def test_plugin_needs_no_numpy_or_requests():
    """The plugin runs in Krita's Python: stdlib + Qt only."""
    banned = re.compile(
        r"^\s*(import|from)\s+(numpy|requests|PySide6|cv2|onnxruntime)\b", re.MULTILINE
    )
    for path in (ROOT / "krita_plugin" / "inkhue").glob("*.py"):
        assert not banned.search(path.read_text()), path.name
