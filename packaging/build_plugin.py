#!/usr/bin/env python3
"""Build the Krita plugin zip: ``python packaging/build_plugin.py`` -> dist/inkhue-krita-<v>.zip.

The zip holds ``inkhue.desktop``, ``inkhue.action`` and ``inkhue/`` at its root, which
is what Krita's Tools > Scripts > Import Python Plugin from File... expects; ``inkhue/``
has a directory entry of its own, since that importer finds a plugin's package only by
one (a zip of files alone is "No plugins found in archive"). The version
is the engine's (``__version__`` in engine/__init__.py, read as text: the engine is not
imported, so this runs with any Python 3.8+ and no dependencies) and is stamped into the
zipped ``inkhue/__init__.py``. Entries have a fixed date, so the same sources give the
same bytes. ``--engine`` also builds the engine's wheel and sdist (packaging/build_engine.sh).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "krita_plugin"
TOP_FILES = ("inkhue.desktop", "inkhue.action")
PACKAGE = "inkhue"
_VERSION_LINE = re.compile(r'^__version__\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def engine_version(root: Path = ROOT) -> str:
    """``__version__`` of engine/__init__.py, read without importing the engine."""
    path = root / "engine" / "__init__.py"
    match = _VERSION_LINE.search(path.read_text(encoding="utf-8"))
    if not match:
        raise SystemExit(f'error: no __version__ = "..." line in {path}')
    return match.group(1)


def plugin_files(plugin_dir: Path = PLUGIN) -> list[tuple[Path, str]]:
    """(source, name in the zip) of everything the plugin ships, sorted: files, and each
    folder of the package as a directory entry (name ending in "/") before its files."""
    files = [(plugin_dir / name, name) for name in TOP_FILES]
    package = plugin_dir / PACKAGE
    if package.is_dir():
        files.append((package, f"{PACKAGE}/"))
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(plugin_dir)
        if "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((path, rel.as_posix() + "/" if path.is_dir() else rel.as_posix()))
    for path, name in files:
        if not (path.is_dir() if name.endswith("/") else path.is_file()):
            raise SystemExit(f"error: {path} is missing")
    return files


def build_zip(out_dir: Path, root: Path = ROOT) -> Path:
    """Write ``out_dir/inkhue-krita-<version>.zip`` atomically; returns its path."""
    version = engine_version(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"inkhue-krita-{version}.zip"
    fd, tmp = tempfile.mkstemp(prefix=".inkhue-krita-", suffix=".zip", dir=out_dir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, name in plugin_files(root / "krita_plugin"):
                if name.endswith("/"):
                    info = zipfile.ZipInfo(name, ZIP_DATE)
                    info.external_attr = (0o40755 << 16) | 0x10  # a folder (unix + MS-DOS)
                    zf.writestr(info, b"")
                    continue
                data = path.read_bytes()
                if name == f"{PACKAGE}/__init__.py":
                    text, n = _VERSION_LINE.subn(
                        f'__version__ = "{version}"', data.decode("utf-8"), count=1
                    )
                    if n != 1:
                        raise SystemExit(f"error: no __version__ line in {path}")
                    data = text.encode("utf-8")
                info = zipfile.ZipInfo(name, ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a zip to hand out is a normal file
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)"
    )
    parser.add_argument(
        "--engine",
        action="store_true",
        help="also build the engine's wheel and sdist into the same folder",
    )
    args = parser.parse_args(argv)
    path = build_zip(args.out)
    print(f"{path} ({path.stat().st_size} bytes)")
    if args.engine:
        script = Path(__file__).with_name("build_engine.sh")
        env = dict(os.environ, PYTHON=os.environ.get("PYTHON", sys.executable))
        return subprocess.call(["bash", str(script), str(args.out)], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
