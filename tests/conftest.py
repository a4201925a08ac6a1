"""Shared fixtures: tiny ONNX models exported from freshly initialized generators.

Engine, server and plugin tests run against real exports that follow the model
contract (docs/DESIGN.md), made here once per session by the real exporter
(``inkhue_training.export``), so a change in the exporter is seen everywhere.
torch is imported only when a model fixture is used; the test environment always
has torch, so a missing torch is a failure with a clear message, never a skip.

    def test_x(grayscale_model, lineart_model, make_tiny_model, tmp_path):
        path = make_tiny_model("grayscale", tmp_path / "m.onnx", **{"inkhue.name": None})
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

#: Metadata of the tiny test models (train_size is what the engine uses as working size).
TINY_METADATA = {"name": "tiny-test", "trained_on": "random init (tests)", "train_size": 64}


def _import_export():
    try:
        from inkhue_training import export
    except ImportError as exc:  # pragma: no cover - the test environment has torch
        pytest.fail(
            f"the tiny-model fixtures need torch, onnx, onnxscript and onnxruntime "
            f"(pip install -e '.[train,cpu]'): {exc}",
            pytrace=False,
        )
    return export


@pytest.fixture(scope="session")
def _tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


def _cache_key(task: str) -> str:
    """Key of a tiny export: the exporter's and network's source, and the library versions."""
    import hashlib

    import onnx
    import torch

    from inkhue_training import export, networks

    h = hashlib.sha256()
    for mod in (export, networks):
        h.update(Path(mod.__file__).read_bytes())
    h.update(f"{task}|{TINY_METADATA}|{torch.__version__}|{onnx.__version__}".encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def make_tiny_model(_tiny_model_dir: Path, pytestconfig: pytest.Config) -> Callable[..., Path]:
    """Factory ``make_tiny_model(task, path, **metadata_overrides) -> path``.

    Writes a tiny (channels 8-16-32, 5 residual blocks), seeded, freshly initialized
    generator for ``task`` to ``path`` with all required metadata. Overrides are
    metadata keys, either full (``**{"inkhue.task": "lineart"}``) or short
    (``name="x"``, ``palette=["#ff0000"]``); a value of None removes that key (to
    test models that break the contract). Each task is exported once per session
    and copied, so calls are cheap. An export takes ~8 s, so the result is also kept in
    pytest's cache folder keyed by the hash of the exporter and network source
    (``pytest --cache-clear`` drops it).
    """
    cache: dict[str, Path] = {}

    def make(task: str, path: str | Path, **overrides) -> Path:
        export = _import_export()
        if task not in cache:
            base = _tiny_model_dir / f"base_{task}.onnx"
            stored = pytestconfig.cache.mkdir("inkhue_tiny_models") / f"{_cache_key(task)}.onnx"
            if not stored.is_file():
                export.export_generator(
                    export.tiny_generator(task, seed=0), stored, **TINY_METADATA
                )
            shutil.copyfile(stored, base)
            cache[task] = base
        path = Path(path)
        shutil.copyfile(cache[task], path)
        if overrides:
            updates = {}
            for key, value in overrides.items():
                full = key if key.startswith("inkhue.") else f"inkhue.{key}"
                if key == "palette" and value is not None and not isinstance(value, str):
                    import json

                    value = json.dumps(list(value))
                updates[full] = value
            export.write_metadata(path, updates)
        return path

    return make


@pytest.fixture(scope="session")
def grayscale_model(make_tiny_model: Callable[..., Path], _tiny_model_dir: Path) -> Path:
    """Path to a tiny grayscale-task ONNX model (output ``ab``), session-scoped."""
    return make_tiny_model("grayscale", _tiny_model_dir / "grayscale.onnx")


@pytest.fixture(scope="session")
def lineart_model(make_tiny_model: Callable[..., Path], _tiny_model_dir: Path) -> Path:
    """Path to a tiny line-art-task ONNX model (output ``lab``), session-scoped."""
    return make_tiny_model("lineart", _tiny_model_dir / "lineart.onnx")


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``grayscale.pt``: a tiny generator in the shipped base-checkpoint
    format (train size 32), for fine-tuning tests (point INKHUE_BASE_CHECKPOINTS at it)."""
    _import_export()
    from inkhue_training.export import tiny_generator
    from inkhue_training.finetune import save_base

    folder = tmp_path_factory.mktemp("bases")
    save_base(folder / "grayscale.pt", tiny_generator("grayscale", seed=1), train_size=32,
              name="tiny-base", trained_on="random init (tests)")  # fmt: skip
    return folder


@pytest.fixture
def bases_env(tiny_base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tiny_base_dir``, found by ``--base grayscale`` through INKHUE_BASE_CHECKPOINTS."""
    monkeypatch.setenv("INKHUE_BASE_CHECKPOINTS", str(tiny_base_dir))
    return tiny_base_dir
