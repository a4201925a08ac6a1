"""The Train section's logic: fine-tune a base model on a production's coloured frames.

``Trainer`` (a QObject owned by ``PanelModel``) asks the engine whether it can fine-tune
(``GET /train``), collects the coloured frames from the host (``Host.training_frames``),
checks the set BEFORE anything is read or uploaded (count, sizes, colour spaces), reads and
PNG-encodes the frames one per event-loop turn (``FrameReader``: the UI never freezes),
then either uploads them (``client.TrainingJob``: ``POST /train``, polling, ``DELETE``) or
writes them into a folder (``export_frames``: the same files ``inkhue finetune --data``
reads). When a fine-tuning is done the model list is refreshed and the new model selected.

Errors go to the panel's error area (``PanelModel.set_error``) as one line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import Result, TrainingJob
from .errors import PluginError
from .host import TRAIN_SOURCE_ANIMATION, TRAIN_SOURCES, TrainingFrame
from .pixels import encode_png
from .qt import QtCore, Signal

log = logging.getLogger("inkhue")

#: The engine's rule for model names (training/finetune.py check_model_name).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")
#: Used when the engine's GET /train does not say (inkhue finetune's defaults).
DEFAULT_MIN_FRAMES = 4
DEFAULT_CROP = 128
DEFAULT_STEPS = 300
#: Most frames one POST /train may carry (the engine's MAX_TRAIN_FRAMES).
MAX_FRAMES = 2000
#: Files ``inkhue finetune --data`` trains on (training/finetune.py FRAME_EXTENSIONS).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
BASE_LABELS = {"grayscale": "Grayscale", "lineart": "Line art"}
CHECK_LABELS = (
    ("base", "base"),
    ("base+palette", "base + palette"),
    ("finetuned", "fine-tuned"),
    ("finetuned+palette", "fine-tuned + palette"),
)


@dataclass
class EncodedFrame:
    """A coloured frame as a PNG file (what is uploaded or exported)."""

    filename: str
    png: bytes
    width: int
    height: int


def check_model_name(name: str, models: list[dict[str, Any]]) -> str:
    """The stripped name, or PluginError when the engine would refuse it (bad or taken)."""
    name = (name or "").strip()
    if not name:
        raise PluginError("Give the new model a name (Train > Name), e.g. 'studio-colours'")
    if not NAME_RE.match(name):
        raise PluginError(
            f"Model name {name!r}: use 1-64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    for info in models:
        if info.get("name") == name and not info.get("builtin"):
            where = info.get("file") or "the user models folder"
            raise PluginError(
                f"A model named '{name}' is already installed ({where}): choose another name"
            )
    return name


def check_dataset(frames: list[TrainingFrame], min_frames: int, crop: int, base: str) -> None:
    """PluginError (one line) for a set the engine would refuse, before any pixel is read."""
    if len(frames) < min_frames:
        raise PluginError(
            f"{len(frames)} frame(s): fine-tuning needs at least {min_frames} coloured frames "
            "of the production (a few dozen work best): widen the playback range or open "
            "more documents"
        )
    if len(frames) > MAX_FRAMES:
        raise PluginError(
            f"{len(frames)} frames: the engine takes at most {MAX_FRAMES} in one fine-tuning: "
            "narrow the playback range"
        )
    for frame in frames:
        if min(frame.width, frame.height) < crop:
            raise PluginError(
                f"{frame.description or frame.name} is {frame.width}x{frame.height} px, "
                f"smaller than the {crop}-px training crop of the {base} base: use frames of "
                f"at least {crop} px on the short side"
            )


def frame_filename(index: int, frame: TrainingFrame) -> str:
    """``0003_scene_f0012.png``: the index keeps the order (the engine sorts by name)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", frame.name).strip("._")[:40] or "frame"
    return f"{index:04d}_{stem}.png"


def check_export_folder(folder: str) -> None:
    """PluginError unless ``folder`` is a folder without image files in it.

    ``inkhue finetune --data`` trains on every image under its folder: mixing two sets by
    accident would teach the model the wrong production.
    """
    if not folder or not os.path.isdir(folder):
        raise PluginError(f"Export dataset: {folder or 'no folder'} is not a folder: pick one")
    images = []  # recursively, as inkhue finetune --data reads (hidden ones skipped)
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(top, folder)
        images += [
            n if rel == "." else os.path.join(rel, n)
            for n in names
            if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")
        ]
    if images:
        raise PluginError(
            f"Export dataset: {folder} already holds {len(images)} image file(s) "
            f"(e.g. {sorted(images)[0]}): pick an empty folder, since inkhue finetune "
            "--data trains on every image in it"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_frames(frames: list[EncodedFrame], folder: str) -> list[str]:
    """Write the frames as PNG files into ``folder`` (each atomically); returns the paths.

    The files get the usual permissions (0666 less the umask): mkstemp's 0600 would make
    a dataset that others (a render farm user, a colleague) cannot read."""
    paths = []
    mode = 0o666 & ~_umask()
    for frame in frames:
        path = os.path.join(folder, frame.filename)
        fd, tmp = tempfile.mkstemp(prefix=".inkhue-", suffix=".png.tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(frame.png)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        paths.append(path)
    return paths


def held_out_text(check: dict[str, Any] | None) -> str:
    """The held-out check of a finished fine-tuning as one line."""
    if not check:
        return (
            "No held-out check (the engine holds frames out from 10 frames on): compare "
            "the model on a few frames yourself"
        )
    values = [f"{label} {float(check[key]):.1f}" for key, label in CHECK_LABELS if key in check]
    return "Held-out frames, mean \u0394E2000 (lower is better): " + ", ".join(values)


class FrameReader(QtCore.QObject):
    """Reads and PNG-encodes ``TrainingFrame``s, one per event-loop turn.

    Exact duplicates (a held drawing, a still range) are dropped: they teach nothing new.
    Signals: ``progress(done, total, text)``, ``finished(list[EncodedFrame])``,
    ``failed(message)``.
    """

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, frames: list[TrainingFrame], parent=None) -> None:
        super().__init__(parent)
        self.frames = frames
        self.encoded: list[EncodedFrame] = []
        self.duplicates = 0
        self._seen: set[bytes] = set()
        self._index = 0
        self._over = False
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._step)

    def start(self) -> None:
        self._timer.start(0)

    def cancel(self) -> None:
        self._over = True
        self._timer.stop()

    def _step(self) -> None:
        if self._over:
            return
        total = len(self.frames)
        if self._index >= total:
            self._over = True
            self.finished.emit(self.encoded)
            return
        frame = self.frames[self._index]
        self.progress.emit(self._index, total, f"Reading frame {self._index + 1}/{total}")
        try:
            rgba = frame.read()
            key = hashlib.sha1(rgba).digest()
            if key in self._seen:
                self.duplicates += 1
            else:
                self._seen.add(key)
                png = encode_png(rgba, frame.width, frame.height)
                self.encoded.append(
                    EncodedFrame(
                        frame_filename(len(self.encoded), frame), png, frame.width, frame.height
                    )
                )
        except PluginError as exc:
            self._over = True
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # Krita's API is the outside world: report, never crash
            self._over = True
            log.error("reading %s failed:\n%s", frame.description, traceback.format_exc())
            self.failed.emit(
                f"Reading {frame.description or frame.name} failed: "
                f"{type(exc).__name__}: {exc} (details in the log file)"
            )
            return
        self._index += 1
        self._timer.start(0)


class Trainer(QtCore.QObject):
    """State + actions of the Train section (see module docstring).

    ``available``: None until the engine answered GET /train, then True/False (``reason``
    says why not). ``state``: "idle", "reading" (frames being read for training),
    "exporting" (frames being read for an export), "training" (upload + fine-tuning).
    Signals: ``changed()`` (re-read everything), ``progress(done, total, text)``.
    """

    changed = Signal()
    progress = Signal(int, int, str)

    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.panel = panel
        self.available: bool | None = None
        self.reason = "Connect to the engine to fine-tune a model on your frames"
        self.bases: list[dict[str, Any]] = []
        self.defaults: dict[str, Any] = {}
        self.state = "idle"
        self.result: dict[str, Any] | None = None
        self.job: TrainingJob | None = None
        self.reader: FrameReader | None = None
        self._info_call = None

    # -- what the engine offers --------------------------------------------------------------

    @property
    def installed_bases(self) -> list[dict[str, Any]]:
        return [b for b in self.bases if b.get("installed")]

    @property
    def min_frames(self) -> int:
        return int(self.defaults.get("min_frames") or DEFAULT_MIN_FRAMES)

    @property
    def default_steps(self) -> int:
        return int(self.defaults.get("steps") or DEFAULT_STEPS)

    def crop_size(self, base: str) -> int:
        """The training crop of ``base`` (its train size): frames must be at least this."""
        for info in self.bases:
            if info.get("name") == base and info.get("train_size"):
                return int(info["train_size"])
        return DEFAULT_CROP

    def refresh_info(self) -> None:
        """Ask the engine (GET /train) whether it can fine-tune, and with which bases."""
        if self._info_call is not None and not self._info_call.done:
            return
        self._info_call = self.panel.client.train_info(self._info)

    def set_offline(self) -> None:
        """The engine is not reachable: nothing to offer (a running job keeps its state)."""
        self.available = None
        self.reason = "Connect to the engine to fine-tune a model on your frames"
        self.changed.emit()

    def _info(self, result: Result) -> None:
        self._info_call = None
        info = result.value if result.ok and isinstance(result.value, dict) else None
        if info is None:
            self.available = False
            if result.status == 404:
                self.reason = (
                    "This InkHue engine cannot fine-tune (no /train): update it to "
                    "the plugin's version"
                )
            else:
                self.reason = f"Could not ask the engine about fine-tuning: {result.error}"
        else:
            self.bases = [b for b in info.get("bases") or [] if isinstance(b, dict)]
            self.defaults = info.get("defaults") or {}
            self.available = bool(info.get("available")) and bool(self.installed_bases)
            self.reason = (
                ""
                if self.available
                else (str(info.get("error") or "The engine cannot fine-tune (no reason given)"))
            )
            self._attach_running(info.get("jobs") or [])
        self.changed.emit()

    def _attach_running(self, jobs: list) -> None:
        """Follow a fine-tuning that runs on the engine (started before Krita restarted)."""
        if self.state != "idle":
            return
        for status in jobs:
            if isinstance(status, dict) and status.get("state") == "running" and status.get("id"):
                log.info("following the running fine-tuning %s", status["id"])
                job = self._new_job(str(status.get("name") or ""))
                self.state = "training"
                job.attach(str(status["id"]))
                return

    # -- actions -----------------------------------------------------------------------------

    def _frames(self, source: str, base: str) -> list[TrainingFrame]:
        if source not in TRAIN_SOURCES:
            source = TRAIN_SOURCE_ANIMATION
        frames = list(self.panel.host.training_frames(source))
        check_dataset(
            frames, self.min_frames, self.crop_size(base), BASE_LABELS.get(base, base).lower()
        )
        return frames

    def _collect(
        self, doing: str, collect: Callable[[], list[TrainingFrame]]
    ) -> list[TrainingFrame] | None:
        """Run ``collect`` when idle; its PluginError goes to the panel as it is, anything
        else as an unexpected error of ``doing``. None: nothing to go on with."""
        if self.state != "idle":
            return None
        self.panel.clear_error()
        try:
            return collect()
        except PluginError as exc:
            self.panel.set_error(str(exc))
        except Exception as exc:
            self.panel._unexpected(doing, exc)
        return None

    def _read(self, frames: list[TrainingFrame], state: str, then) -> None:
        self.state = state
        self.result = None
        reader = FrameReader(frames, self)
        reader.progress.connect(self.progress.emit)
        reader.failed.connect(self._failed)
        reader.finished.connect(then)
        self.reader = reader
        self.changed.emit()
        reader.start()

    def start_training(self, name: str, base: str, source: str, steps: int) -> None:
        """Check the set, read the frames, upload them and follow the fine-tuning."""

        def collect() -> list[TrainingFrame]:
            nonlocal name  # checked (and normalized) before any frame is read
            if not self.available:
                raise PluginError(self.reason or "The engine cannot fine-tune")
            name = check_model_name(name, self.panel.models)
            return self._frames(source, base)

        frames = self._collect("Collecting the frames to train on", collect)
        if frames is None:
            return
        options = {"name": name, "base": base, "steps": int(steps)}
        log.info("fine-tuning %s: %d frames from %s, %s", name, len(frames), source, options)
        self._read(frames, "reading", lambda encoded: self._upload(encoded, options))

    def _take_reader(self) -> int:
        """Forget the finished reader; returns how many duplicate frames it dropped."""
        reader, self.reader = self.reader, None
        if reader is None:
            return 0
        reader.deleteLater()
        return reader.duplicates

    def _enough(self, encoded: list[EncodedFrame], dropped: int) -> bool:
        if len(encoded) >= self.min_frames:
            return True
        self._failed(
            f"Only {len(encoded)} different frame(s) ({dropped} repeated the same picture): "
            f"fine-tuning needs at least {self.min_frames} different coloured frames"
        )
        return False

    def _new_job(self, name: str) -> TrainingJob:
        job = TrainingJob(self.panel.client, name, self)
        job.progress.connect(self.progress.emit)
        job.finished.connect(self._done)
        job.failed.connect(self._failed)
        job.cancelled.connect(self._cancelled)
        self.job = job
        return job

    def _upload(self, encoded: list[EncodedFrame], options: dict[str, Any]) -> None:
        dropped = self._take_reader()
        if self.state != "reading" or not self._enough(encoded, dropped):
            return
        self.state = "training"
        self.changed.emit()
        job = self._new_job(options["name"])
        job.start([(f.filename, f.png) for f in encoded], options)

    def export_dataset(self, folder: str, source: str, base: str) -> None:
        """Write the frames as PNG files into ``folder`` (for ``inkhue finetune --data``)."""

        def collect() -> list[TrainingFrame]:
            check_export_folder(folder)
            return self._frames(source, base)

        frames = self._collect("Collecting the frames to export", collect)
        if frames is None:
            return
        self._read(frames, "exporting", lambda encoded: self._write(encoded, folder, base))

    def _write(self, encoded: list[EncodedFrame], folder: str, base: str) -> None:
        dropped = self._take_reader()
        if self.state != "exporting" or not self._enough(encoded, dropped):
            return
        try:
            export_frames(encoded, folder)
        except OSError as exc:
            self._failed(f"Export dataset: could not write into {folder}: {exc}")
            return
        self._idle()
        self.panel.message.emit(
            f"Exported {len(encoded)} frames to {folder} (train with: inkhue finetune "
            f'--data "{folder}" --base {base} --name NAME)'
        )

    def cancel(self) -> None:
        """Stop reading frames, the upload or the fine-tuning."""
        if self.reader is not None:
            self.reader.cancel()
            self._cancelled()
        elif self.job is not None:
            self.job.cancel()

    # -- outcomes ----------------------------------------------------------------------------

    def _idle(self) -> None:
        self._take_reader()
        if self.job is not None:
            self.job.deleteLater()  # later: this may run inside one of its signals
            self.job = None
        self.state = "idle"
        self.changed.emit()

    def _failed(self, message: str) -> None:
        self._idle()
        self.panel.set_error(message)

    def _cancelled(self) -> None:
        self._idle()
        self.panel.message.emit("Cancelled")

    def _done(self, status: dict[str, Any]) -> None:
        self.result = status
        self._idle()
        model = status.get("model")
        seconds = float(status.get("seconds") or 0.0)
        log.info("fine-tuning done: %s", status)
        if model:
            self.panel.set_model(str(model))  # selected once the refreshed list is in
            self.panel.refresh_models(force=True)
            self.panel.message.emit(
                f"Fine-tuned model '{model}' is ready ({seconds / 60:.1f} min) and selected"
            )
