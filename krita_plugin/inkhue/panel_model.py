"""The panel's state and actions, as a QObject with signals (the docker is a thin view).

``PanelModel`` holds the engine status, the model list, the choices (model, hint layer,
palette, detail), drives the ``EngineClient`` and the ``Host`` (Krita document I/O), and
reports through signals. Every error is a line in ``error`` (shown by the panel with a
Copy button); tracebacks go to the rotating log file, never to the user.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, replace
from typing import Any

from . import settings as settings_mod
from .client import AnimationJob, Call, ColorizeOptions, EngineClient, Result
from .engine_process import EngineProcess
from .errors import PluginError
from .host import NO_KEYFRAMES, AnimationRequest, FrameRequest, Host, Keyframe
from .properties import Property, notify
from .qt import QtCore, Signal
from .training import Trainer

log = logging.getLogger("inkhue")

#: Values of ``Settings.palette`` with a meaning of their own.
PALETTE_MODEL = ""  # the model's own palette, if it has one
PALETTE_NONE = "none"
#: ``chosen_model`` value "Automatic (detected)": the engine detects line art or grayscale
#: from the frame (an animation: its first keyframes) and the panel takes that task's model.
AUTO_MODEL = ""
#: Keyframes of an animation the task is detected from (the engine takes up to 3).
DETECT_FRAMES = 3
#: Smallest detail the panel offers (the API takes any detail > 0).
MIN_DETAIL = 0.25


@dataclass
class DocumentChoices:
    """What the artist chose for one document (the panel shows the active document's)."""

    model: str
    hint_layer: str
    palette: str
    keyframes: str = ""  #: a Host.keyframe_sources value ("" = none); not a default for others


@dataclass
class RunningJob:
    """A colorize running for one document: whichever of its stages is in flight."""

    key: str  # Host.document_key of its document
    description: str  # e.g. "layer 'Ink' of 'scene.kra'"
    call: Call | None = None  # POST /colorize (a frame)
    job: AnimationJob | None = None  # an engine job (an animation)
    last_result: bytes | None = None  # the last chunk's last frame (colors follow on from it)
    insertion: Any = None  # the host's keyframe insertion (cancel())
    progress: tuple[int, int, str] = (0, 0, "")


def chunk_keyframes(
    request: AnimationRequest, start: int, end: int, last_result: bytes | None
) -> list[Keyframe]:
    """The keyframes of the engine job for frames ``start:end`` of ``request``: a keyframe
    of a frame in the chunk as that frame of the job, one of a frame outside it with that
    frame as its structure, model sheets as they are; and ``last_result`` (frame
    ``start - 1``'s result) as the previous frame."""
    if not request.keyframes:
        return []
    out = []
    for key in request.keyframes:
        if key.frame is None:
            out.append(key)
        elif start <= key.frame < end:
            out.append(replace(key, frame=key.frame - start))
        else:
            out.append(replace(key, frame=None, structure=request.frames[key.frame]))
    if last_result is not None and start > 0:
        out.append(
            Keyframe(
                last_result,
                request.layout.result(),
                structure=request.frames[start - 1],
                previous=True,
                name=f"the result of frame {start}",
            )
        )
    return out


class PanelModel(QtCore.QObject):
    """State + actions of the InkHue panel (see module docstring).

    Signals:
      property_changed(name, value): a Property (chosen_model, hint_layer, palette,
        detail) has a new value
      status_changed(state, text): state is "offline", "connecting", "starting", "connected"
      models_changed(): ``models`` was refreshed
      sources_changed(): ``layer_names`` / ``palette_names`` were refreshed, or another
        document became the active one (its choices are shown)
      busy_changed(bool), progress(done, total, text) (total 0 = unknown)
      error_changed(text) ("" = no error), message(text): an info line
      engine_output(text): output of an engine started from the panel
    """

    #: Keyframes per engine job in Colorize animation (bounded memory on both sides).
    ANIMATION_CHUNK = 16
    #: How often a connected panel checks that the engine still answers.
    HEALTH_WATCH_MS = 4000

    property_changed = Signal(str, object)  # (name, value) of a Property
    status_changed = Signal(str, str)
    models_changed = Signal()
    sources_changed = Signal()
    busy_changed = Signal(bool)
    progress = Signal(int, int, str)
    error_changed = Signal(str)
    message = Signal(str)
    engine_output = Signal(str)
    result_changed = Signal()

    def __init__(self, host: Host, store, client: EngineClient | None = None, parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.store = store
        self.settings = settings_mod.load(store)
        self.client = client or EngineClient(self.settings.server_url, self.settings.token, self)
        self.client.set_server(self.settings.server_url, self.settings.token)
        self.engine = EngineProcess(self.client, parent=self)
        self.engine.ready.connect(self._engine_ready)
        self.engine.failed.connect(self._engine_failed)
        self.engine.stopped.connect(self._engine_stopped)
        # While connected the engine is asked for /health now and then: one that was
        # stopped or killed shows as "Engine not running" (and Start engine is offered).
        self._watch = QtCore.QTimer(self)
        self._watch.setInterval(self.HEALTH_WATCH_MS)
        self._watch.timeout.connect(self.check_engine)
        self._watch_call: Call | None = None
        self.engine.output.connect(self.engine_output.emit)
        self.state = "offline"
        self.status_text = "Not connected"
        self.engine_info: dict[str, Any] = {}
        self.models: list[dict[str, Any]] = []
        self.layer_names: list[str] = []
        self.palette_names: list[str] = []
        #: (value, label) of what can give colored keyframes (Host.keyframe_sources).
        self.keyframe_sources: list[tuple[str, str]] = []
        self.error = ""
        self.fix: tuple | None = None  # (label, action, retry) offered with the error
        self._note = ""  # what a fix did, said again with the next result
        #: The last result of each document, until the artist keeps or discards it:
        #: document key -> (host context, layer name).
        self.results: dict[str, tuple[Any, str]] = {}
        self.message_text = ""
        #: Choices per open document (``Host.document_key``); settings hold the defaults.
        self.documents: dict[str, DocumentChoices] = {}
        self.document_key = host.document_key()
        self.progress.connect(lambda _done, _total, text: self.say(text))
        self.last_layer = ""
        #: The colorize running in each document (document key -> RunningJob).
        self.jobs: dict[str, RunningJob] = {}
        self._models_call: Call | None = None
        self._models_again = False
        #: Automatic model: the model detected for the document's next colorize (key ->
        #: its /models entry).
        self._detected: dict[str, dict[str, Any]] = {}
        #: The Train section (fine-tuning on the document's coloured frames).
        self._train_steps: int | None = None
        self.trainer = Trainer(self)
        self.trainer.changed.connect(self._trainer_changed)

    # -- settings ----------------------------------------------------------------------------

    def _save(self) -> None:
        settings_mod.save(self.store, self.settings)

    def set_server(self, url: str, token: str, command: str) -> None:
        """Change the engine address, token and start command (persisted)."""
        self.settings.server_url = url.strip() or self.settings.server_url
        self.settings.token = token.strip()
        self.settings.engine_command = command.strip() or self.settings.engine_command
        self.client.set_server(self.settings.server_url, self.settings.token)
        self.settings.server_url = self.client.base_url
        self._save()

    @property
    def choices(self) -> DocumentChoices:
        """The active document's choices (new documents start from the last ones made)."""
        choices = self.documents.get(self.document_key)
        if choices is None:
            s = self.settings
            hint = s.hint_layer if s.hint_layer in self.layer_names else ""
            choices = self.documents[self.document_key] = DocumentChoices(
                s.last_model, hint, s.palette
            )
        return choices

    # -- the choices, declared once (properties.bind ties the docker's widgets to them) --

    def _choose(self, field: str, setting: str, value) -> None:
        setattr(self.choices, field, value)
        setattr(self.settings, setting, value)  # the default of documents opened later
        self._save()

    chosen_model = Property(
        get=lambda self: self.choices.model,
        set=lambda self, v: self._choose("model", "last_model", v),
        doc="The model chosen for the active document (a name from /models), or AUTO_MODEL.",
    )
    hint_layer = Property(
        get=lambda self: (
            self.choices.hint_layer if self.choices.hint_layer in self.layer_names else ""
        ),
        set=lambda self, v: self._choose("hint_layer", "hint_layer", v),
        doc='The active document\'s hint layer ("" = none): the one chosen for it, if '
        "it still has a layer of that name.",
    )
    palette = Property(
        get=lambda self: self.choices.palette,
        set=lambda self, v: self._choose("palette", "palette", v),
        doc="The active document's palette: PALETTE_MODEL, PALETTE_NONE or a name.",
    )
    keyframes = Property(
        get=lambda self: (
            self.choices.keyframes
            if any(v == self.choices.keyframes for v, _ in self.keyframe_sources)
            else NO_KEYFRAMES
        ),
        set=lambda self, v: setattr(self.choices, "keyframes", v),
        doc="Where the active document's colored keyframes come from (a Host."
        'keyframe_sources value; "" = none: each frame is colorized on its own). Only '
        "for this document: a layer of that name may mean something else in another.",
    )
    detail = Property(
        get=lambda self: self.settings.detail,
        set=lambda self, v: (
            setattr(self.settings, "detail", max(MIN_DETAIL, float(v))),
            self._save(),
        ),
        doc="The detail factor (> 0; the docker offers MIN_DETAIL and up).",
    )
    mirror = Property(
        get=lambda self: self.settings.mirror,
        set=lambda self, v: self._set_setting("mirror", bool(v)),
        doc="Steadier colors: the engine colors each frame and its mirror image and averages "
        "the two (about a third slower on a CPU; persisted).",
    )

    # The Train section's choices (the defaults of the next fine-tuning).
    train_name = Property(
        get=lambda self: self.settings.train_name,
        set=lambda self, v: self._set_setting("train_name", str(v).strip()),
        doc="The name of the model the next fine-tuning makes (persisted).",
    )
    train_base = Property(
        get=lambda self: self._installed_base(self.settings.train_base),
        set=lambda self, v: self._set_setting("train_base", str(v)),
        doc="The base model to fine-tune: the one chosen if it is installed on the engine, "
        "else the first installed one (persisted).",
    )
    train_source = Property(
        get=lambda self: self.settings.train_source,
        set=lambda self, v: self._set_setting("train_source", str(v)),
        doc="Where the training frames come from: one of host.TRAIN_SOURCES (persisted).",
    )
    train_steps = Property(
        get=lambda self: (
            self._train_steps if self._train_steps is not None else self.trainer.default_steps
        ),
        set=lambda self, v: setattr(self, "_train_steps", int(v)),
        doc="Training steps: the engine's default until the artist sets a number.",
    )

    def _set_setting(self, name: str, value) -> None:
        setattr(self.settings, name, value)
        self._save()

    def _installed_base(self, base: str) -> str:
        names = [b.get("name") for b in self.trainer.installed_bases]
        return base if base in names or not names else str(names[0])

    def _trainer_changed(self) -> None:
        # the engine's bases and default steps arrived: the bound widgets show them
        notify(self, "train_base", "train_steps")

    def set_model(self, name: str) -> None:
        self.chosen_model = name

    def set_hint_layer(self, name: str) -> None:
        self.hint_layer = name

    def set_palette(self, name: str) -> None:
        self.palette = name

    def set_detail(self, value: float) -> None:
        self.detail = value

    def set_train_choices(self, name: str, base: str, source: str) -> None:
        """Remember the Train section's name, base and frame source (persisted)."""
        self.train_name, self.train_base, self.train_source = name, base, source

    def selected_model(self) -> dict[str, Any] | None:
        """The chosen model's description from ``/models``; None for AUTO_MODEL (the task
        is detected when colorizing); the first model when the chosen one is gone."""
        if self.choices.model == AUTO_MODEL:
            return None
        for info in self.models:
            if info.get("name") == self.choices.model:
                return info
        return self.models[0] if self.models else None

    # -- status, errors, busy ----------------------------------------------------------------

    def _set_status(self, state: str, text: str) -> None:
        self.state, self.status_text = state, text
        if state == "connected":
            self._watch.start()
        else:
            self._watch.stop()
        self.status_changed.emit(state, text)

    def check_engine(self) -> None:
        """Ask ``/health`` quietly; an engine that does not answer any more is shown as
        not running (the status line only: the error area keeps what it says)."""
        if self._watch_call is not None and not self._watch_call.done:
            return
        self._watch_call = self.client.health(self._watched)

    def _watched(self, result: Result) -> None:
        if result.ok or result.cancelled or self.state != "connected":
            return
        self._set_status("offline", "Engine not running" if result.status == 0 else "Not connected")
        self.trainer.set_offline()

    def set_error(self, text: str, fix=None, retry=None) -> None:
        """Show ``text`` in the panel's error area ("" clears it); an error replaces the
        message line (it would describe an earlier action). ``fix`` (a ``PluginError.fix``)
        is offered as a button; after it ``retry()`` runs (the action that failed)."""
        self.error = text
        self.fix = (fix[0], fix[1], retry) if fix and text else None
        if text:
            log.error(text)
            self.say("")
        self.error_changed.emit(text)

    def apply_fix(self) -> None:
        """Run the fix offered with the error (e.g. convert the image to RGB), then the
        action that failed."""
        if self.fix is None or self.busy:
            return
        _label, action, retry = self.fix
        self.set_error("")
        try:
            done = action()
        except PluginError as exc:
            self.set_error(str(exc))
            return
        except Exception as exc:
            self._unexpected("Fixing the document", exc)
            return
        log.info(done)
        self.say(done)
        self._note = done  # repeated with the result's line, which replaces this one
        if retry is not None:
            retry()

    def _take_note(self) -> str:
        note, self._note = self._note, ""
        return f". {note}" if note else ""

    def say(self, text: str) -> None:
        """Show ``text`` on the message line ("" clears it)."""
        self.message_text = text
        self.message.emit(text)

    def clear_error(self) -> None:
        if self.error:
            self.set_error("")

    @property
    def busy(self) -> bool:
        """Whether the active document has a colorize running (each document its own)."""
        return self.document_key in self.jobs

    def _unexpected(self, what: str, exc: BaseException) -> None:
        log.error("%s failed:\n%s", what, traceback.format_exc())
        self.set_error(f"{what} failed: {type(exc).__name__}: {exc} (details in the log file)")

    # -- engine ------------------------------------------------------------------------------

    def connect_engine(self, quiet: bool = False) -> None:
        """Ask the engine for ``/health``, then refresh the model list.

        ``quiet``: a failure only shows in the status line (used when the panel appears).
        """
        self._set_status("connecting", f"Connecting to {self.client.base_url}...")
        self.client.health(lambda result: self._health(result, quiet))

    def refresh(self) -> None:
        """What the panel does when it shows: layers, palettes, and the engine's models."""
        self.refresh_sources()
        if self.state == "connected":
            self.refresh_models()
            self.trainer.refresh_info()
        elif self.state == "offline":
            self.connect_engine(quiet=True)

    def _health(self, result: Result, quiet: bool = False) -> None:
        if not result.ok or not isinstance(result.value, dict):
            self.engine_info = {}
            message = result.error or "The InkHue engine's /health answer is not an object"
            if quiet:
                self._set_status(
                    "offline", "Engine not running" if result.status == 0 else "Not connected"
                )
            else:
                self._set_status("offline", "Not connected")
                self.set_error(message)
            self.trainer.set_offline()
            return
        self.engine_info = result.value
        version = result.value.get("version", "?")
        provider = result.value.get("provider")  # null until the engine loaded a model
        where = f" on {provider}" if provider else ""
        self._set_status("connected", f"Connected: InkHue {version}{where}")
        if self.error and not self.busy:
            self.clear_error()
        self.refresh_models()
        self.trainer.refresh_info()

    def start_engine(self) -> None:
        """Run the engine command; connects once ``/health`` answers. An engine that
        already answers at the address is used instead (a second one could not bind the
        port, and its exit would show the working engine as not running)."""
        self.clear_error()
        self._set_status("starting", f"Starting `{self.settings.engine_command}`...")

        def checked(result: Result) -> None:
            if result.ok and isinstance(result.value, dict):
                self.say(
                    f"An InkHue engine already answers at {self.client.base_url}: connected to it"
                )
                self._health(result)
                return
            self.engine.start(
                self.settings.engine_command, self.client.base_url, self.settings.token
            )

        self.client.health(checked)

    def _engine_ready(self) -> None:
        self.say("The engine is running")
        self.connect_engine()

    def _engine_stopped(self, text: str) -> None:
        self._set_status("offline", "Engine not running")
        self.trainer.set_offline()
        self.say(text)

    def _engine_failed(self, text: str) -> None:
        self._set_status("offline", "Not connected")
        self.set_error(text)

    def refresh_models(self, force: bool = False) -> None:
        """Re-read ``/models`` (the server re-scans its folders, so new models appear).

        ``force``: when a request is already in flight (it may predate a new model), ask
        once more after it.
        """
        if self._models_call is not None and not self._models_call.done:
            self._models_again = self._models_again or force
            return
        self._models_call = self.client.models(self._models)

    def _models(self, result: Result) -> None:
        if self._models_again:
            self._models_again = False
            self._models_call = self.client.models(self._models)
            return
        if not result.ok:
            if self.state == "connected":
                self._set_status("offline", "Not connected")
            self.set_error(result.error)
            return
        models = result.value if isinstance(result.value, list) else []
        self.models = [m for m in models if isinstance(m, dict) and m.get("name")]
        self.models_changed.emit()

    def refresh_sources(self) -> None:
        """Re-read the active document's layers and the palettes (hint-layer and palette
        pickers); on a switch to another document the panel shows that document's choices
        and drops the message line (it was about the other document)."""
        try:
            key = self.host.document_key()
            self.layer_names = list(self.host.layer_names())
            self.palette_names = list(self.host.palette_names())
            self.keyframe_sources = list(self.host.keyframe_sources())
        except PluginError:
            key, self.layer_names, self.palette_names = "", [], []
            self.keyframe_sources = []
        except Exception as exc:  # the host is the outside world: report, never crash Krita
            key = self.document_key
            self._unexpected("Reading the document's layers", exc)
        if key != self.document_key:
            self.document_key = key
            job = self.jobs.get(key)
            if job is None:
                self.say("")
            self.result_changed.emit()
            self.busy_changed.emit(job is not None)  # this document's own job, if any
            if job is not None:
                self.progress.emit(*job.progress)
        self.sources_changed.emit()
        # This document's choices (or its hint layer's presence) may differ from the last.
        notify(self, "chosen_model", "hint_layer", "palette", "keyframes")

    # -- colorize ----------------------------------------------------------------------------

    def _options(self) -> tuple[ColorizeOptions, dict[str, Any]]:
        info = self._detected.pop(self.document_key, None) or self.selected_model()
        if info is None:
            raise PluginError(
                "No model: click Connect (or Start engine) so the panel can list the "
                "engine's models"
            )
        palette: list[str] | str | None
        chosen = self.palette
        if chosen == PALETTE_MODEL:
            palette = None
        elif chosen == PALETTE_NONE:
            palette = "none"
        else:
            palette = self.host.palette_colors(chosen)
            if not palette:
                raise PluginError(f"Palette '{chosen}' has no colours: pick another palette")
        options = ColorizeOptions(
            model=info["name"],
            task=info.get("task"),
            detail=self.settings.detail,
            mirror=self.settings.mirror,
            palette=palette,
        )
        return options, info

    def _begin(self, request) -> RunningJob:
        job = RunningJob(self.host.document_key_of(request.context), request.description)
        self.jobs[job.key] = job
        if job.key == self.document_key:
            self.busy_changed.emit(True)
        return job

    def _end(self, job: RunningJob) -> None:
        if self.jobs.get(job.key) is job:
            del self.jobs[job.key]
        if job.key == self.document_key:
            self.busy_changed.emit(False)

    def _job_progress(self, job: RunningJob, done: int, total: int, text: str) -> None:
        job.progress = (done, total, text)
        if job.key == self.document_key:
            self.progress.emit(done, total, text)
        elif text.startswith("Paused"):  # it needs the artist: say it wherever they are
            self.say(text)

    def _job_says(self, job: RunningJob, text: str) -> None:
        """A job's closing line: as is in its own document, naming it elsewhere."""
        self.say(text if job.key == self.document_key else f"{text} ({job.description})")

    def _read(self, read, retry):
        """``(options, info, request)`` or None after showing why not."""
        if self.host.document_key() != self.document_key:
            self.refresh_sources()  # e.g. an action used before the docker ever showed
        if self.busy:
            return None
        self.clear_error()
        try:
            options, info = self._options()
            if self.keyframes and self.hint_layer:
                raise PluginError(
                    "Hints and keyframes do not combine: paint the colours into a keyframe, "
                    "or choose (no hints)"
                )
            return options, info, read(info.get("task") or "", self.hint_layer, self.keyframes)
        except PluginError as exc:
            self.set_error(str(exc), exc.fix, retry)
        except Exception as exc:
            self._unexpected("Reading the document", exc)
        return None

    def colorize_frame(self) -> None:
        """Colorize the current frame into a new layer."""
        if self._detect_first(self.colorize_frame, animation=False):
            return
        got = self._read(self.host.read_frame, self.colorize_frame)
        if got is None:
            return
        options, info, request = got
        job = self._begin(request)
        self._job_progress(job, 0, 0, f"Colorizing {request.description} with {options.model}")
        log.info(
            "colorize frame: %s, %s, model %s",
            request.description,
            request.layout.describe(),
            options.model,
        )
        if request.keyframes:  # a shot of one frame: an engine job with the keyframes
            engine_job = AnimationJob(
                self.client,
                [request.frame],
                request.layout,
                options,
                parent=self,
                keyframes=request.keyframes,
            )
            engine_job.progress.connect(lambda _d, _t, text: self._job_progress(job, 0, 0, text))
            engine_job.finished.connect(
                lambda results: self._frame_done(
                    job, Result(ok=True, data=results[0]), request, info
                )
            )
            engine_job.failed.connect(lambda text: self._job_failed(job, text))
            engine_job.cancelled.connect(lambda: self._job_cancelled(job))
            job.job = engine_job
            engine_job.start()
            return
        job.call = self.client.colorize(
            request.frame,
            request.layout,
            options,
            lambda result: self._frame_done(job, result, request, info),
            hints=request.hints,
        )

    def _frame_done(
        self, job: RunningJob, result: Result, request: FrameRequest, info: dict
    ) -> None:
        job.call = job.job = None
        try:
            if result.cancelled:
                self._job_says(job, "Cancelled")
                return
            if not result.ok:
                self.set_error(result.error)
                self.check_engine()
                return
            try:
                name = self.host.insert_frame(
                    request,
                    result.data,
                    request.layout.result(),
                    info["name"],
                    info.get("task") or "",
                )
            except PluginError as exc:
                self.set_error(str(exc))
                return
            except Exception as exc:
                self._unexpected("Adding the colorized layer", exc)
                return
            self.last_layer = name
            self._set_result(request.context, name)
            self._job_says(job, f"Added layer '{name}'" + self._take_note())
            log.info("added layer %s", name)
        finally:
            self._end(job)

    def colorize_animation(self) -> None:
        """Colorize every keyframe of the source layer into a new animated layer.

        The keyframes go to the engine in chunks of ``ANIMATION_CHUNK`` frames, one engine
        job each: the first chunk's keyframes are added while the engine colorizes the
        next, and neither side holds the whole animation (the engine reserves memory per
        job). Colours are carried from frame to frame inside a chunk. With colored
        keyframes chosen (``keyframes``), every chunk gets them all (those outside it
        with the frame they color), and the previous chunk's last result, so the colours
        follow on across chunks as they do inside one.
        """
        if self._detect_first(self.colorize_animation, animation=True):
            return
        got = self._read(self.host.read_animation, self.colorize_animation)
        if got is None:
            return
        options, info, request = got
        job = self._begin(request)
        log.info(
            "colorize animation: %s, %d frames, model %s, chunks of %d",
            request.description,
            len(request.frames),
            options.model,
            self.ANIMATION_CHUNK,
        )
        self._animation_chunk(job, request, options, info, 0)

    def _animation_chunk(
        self,
        job: RunningJob,
        request: AnimationRequest,
        options: ColorizeOptions,
        info: dict,
        start: int,
    ) -> None:
        total = len(request.frames)
        end = min(start + self.ANIMATION_CHUNK, total)
        where = f" (frames {start + 1}-{end} of {total})" if end - start < total else ""
        hints = request.hints[start:end] if request.hints else None
        engine_job = AnimationJob(
            self.client,
            request.frames[start:end],
            request.layout,
            options,
            hints=hints,
            parent=self,
            keyframes=chunk_keyframes(request, start, end, job.last_result),
        )
        engine_job.progress.connect(
            lambda d, t, text: self._job_progress(job, start + d, total, text + where)
        )
        engine_job.finished.connect(
            lambda results: self._chunk_done(job, request, options, info, end, results)
        )
        engine_job.failed.connect(lambda text: self._job_failed(job, text))
        engine_job.cancelled.connect(lambda: self._job_cancelled(job))
        job.job = engine_job
        engine_job.start()

    def _job_failed(self, job: RunningJob, text: str) -> None:
        job.job = None
        if job.insertion is not None:  # it removes its unfinished layer, then ends the job
            job.insertion.fail(text)
            self.check_engine()
            return
        self.set_error(text)
        self._end(job)
        self.check_engine()

    def _job_cancelled(self, job: RunningJob) -> None:
        job.job = None
        if job.insertion is not None:  # it removes its unfinished layer, then ends the job
            job.insertion.cancel()
            return
        self._job_says(job, "Cancelled")
        self._end(job)

    def _chunk_done(
        self,
        job: RunningJob,
        request: AnimationRequest,
        options: ColorizeOptions,
        info: dict,
        end: int,
        results: list[bytes],
    ) -> None:
        job.job = None
        total = len(request.frames)
        if request.keyframes and results:
            job.last_result = results[-1]
        if job.insertion is not None:
            job.insertion.feed(results)
        else:
            self._start_insertion(job, request, info, results)
        if end < total and self.jobs.get(job.key) is job and job.insertion is not None:
            self._animation_chunk(job, request, options, info, end)

    def _start_insertion(
        self, job: RunningJob, request: AnimationRequest, info: dict, results: list[bytes]
    ) -> None:
        total = len(request.frames)
        self._job_progress(job, 0, total, "Adding keyframes")

        def done(name: str, error: str) -> None:
            job.insertion = None
            if job.job is not None:  # a chunk still on the engine: drop it
                engine_job, job.job = job.job, None
                engine_job.cancelled.disconnect()
                engine_job.failed.disconnect()
                engine_job.finished.disconnect()
                engine_job.cancel()
            if error:
                self.set_error(error)
            elif not name:
                self._job_says(job, "Cancelled: no layer was added")
            else:
                self.last_layer = name
                self._set_result(request.context, name)
                self._job_says(
                    job, f"Added animated layer '{name}' ({total} keyframes)" + self._take_note()
                )
                log.info("added animated layer %s", name)
            self._end(job)

        try:
            job.insertion = self.host.insert_animation(
                request,
                results,
                request.layout.result(),
                info["name"],
                info.get("task") or "",
                done,
                progress=lambda d, t, text: self._job_progress(
                    job, d, t, f"{text} {d}/{t}" if text == "Adding keyframes" else text
                ),
            )
        except PluginError as exc:
            done("", str(exc))
        except Exception as exc:
            job.insertion = None
            self._unexpected("Adding the animated layer", exc)
            self._end(job)

    # -- automatic model: detect the task first ------------------------------------------

    def _detect_first(self, action, animation: bool) -> bool:
        """With AUTO_MODEL chosen: ask the engine which task the source is (``/detect``)
        and run ``action`` again once it answered, with that task's model; True when the
        action has to wait for it. An animation is detected once, from its first
        keyframes, so one layer never switches models half-way."""
        key = self.document_key
        if self.choices.model != AUTO_MODEL or key in self._detected or self.busy:
            return False
        if self.host.document_key() != key:
            self.refresh_sources()
            key = self.document_key
            if self.busy:
                return False
        self.clear_error()
        try:
            if animation:
                request = self.host.read_animation("", "")
                frames = [f() if callable(f) else f for f in request.frames[:DETECT_FRAMES]]
            else:
                request = self.host.read_frame("", "")
                frames = [request.frame]
        except PluginError as exc:
            self.set_error(str(exc), exc.fix, action)
            return True
        except Exception as exc:
            self._unexpected("Reading the document", exc)
            return True
        # a running job of its own: busy, and Cancel aborts the request
        job = RunningJob(key, request.description)
        self.jobs[key] = job
        self.busy_changed.emit(True)
        self._job_progress(job, 0, 0, "Detecting line art or grayscale...")
        job.call = self.client.detect(
            frames, request.layout, lambda result: self._detected_task(job, result, action)
        )
        return True

    def _detected_task(self, job: RunningJob, result: Result, action) -> None:
        job.call = None
        if result.cancelled or not result.ok:
            if result.cancelled:
                self._job_says(job, "Cancelled")
            else:
                self.set_error(result.error)
                self.check_engine()
            self._end(job)
            return
        # Colorize from the event loop, not inside the network reply's slot: reading the
        # document spins nested event loops (Document.waitForDone), and Krita 5.1.5's
        # kritarunner segfaulted in processEvents when that ran inside this callback. The
        # job stays registered meanwhile, so the panel stays busy and Cancel still works.
        QtCore.QTimer.singleShot(0, lambda: self._after_detect(job, result, action))

    def _after_detect(self, job: RunningJob, result: Result, action) -> None:
        key = job.key
        if self.jobs.get(key) is not job:  # cancelled (or replaced) meanwhile
            return
        # the colorize that follows takes over the busy state without it flickering off
        del self.jobs[key]
        try:
            self._run_detected(key, result, action)
        finally:
            if key not in self.jobs and key == self.document_key:
                self.busy_changed.emit(False)  # nothing started (an error says why)

    def _run_detected(self, key: str, result: Result, action) -> None:
        value = result.value if isinstance(result.value, dict) else {}
        task, name = value.get("task"), value.get("model")
        info = next((m for m in self.models if m.get("name") == name), None)
        if info is None:  # the engine's default is not listed: the first model of the task
            info = next((m for m in self.models if m.get("task") == task), None)
        if info is None:
            self.set_error(
                f"The engine detected {task or 'no task'} but has no {task} model: choose a "
                "model in the Model list"
            )
            return
        what = "Detected line art" if task == "lineart" else "Detected grayscale"
        if value.get("colored"):  # e.g. the colour layer chosen instead of the drawing
            what += " (the layer is already in colour: only its lightness was used)"
        log.info("detected %s (%s): model %s", task, value.get("reason"), info["name"])
        if key != self.document_key:  # the artist switched documents meanwhile
            self.say(f"{what}; switch back to that document and colorize again")
            return
        self._note = f"{self._note}. {what}" if self._note else what
        self._detected[key] = info
        try:
            action()
        finally:
            self._detected.pop(key, None)

    # -- the last result: keep or discard -------------------------------------------------

    def _set_result(self, context: Any, name: str) -> None:
        # Keyed by the result's own document (the artist may have switched since).
        self.results[self.host.document_key_of(context)] = (context, name)
        self.result_changed.emit()

    @property
    def result_name(self) -> str:
        """The active document's result waiting for Keep / Discard ("" = none)."""
        entry = self.results.get(self.document_key)
        return entry[1] if entry else ""

    def keep_result(self) -> None:
        """Keep the active document's last result (the Keep / Discard bar goes)."""
        if self.results.pop(self.document_key, None) is not None:
            self.result_changed.emit()

    def discard_result(self) -> None:
        """Delete the active document's last result layer (all its keyframes at once; in
        Krita 5 a Colorize is many undo steps, this is one click)."""
        entry = self.results.pop(self.document_key, None)
        if entry is None:
            return
        self.result_changed.emit()
        context, name = entry
        try:
            self.host.remove_result(context)
        except PluginError as exc:
            self.set_error(str(exc))
            return
        except Exception as exc:
            self._unexpected("Removing the result", exc)
            return
        self.say(f"Removed layer '{name}'")

    def cancel(self) -> None:
        """Stop the active document's colorize (frame or animation, at any stage)."""
        job = self.jobs.get(self.document_key)
        if job is None:
            return
        if job.call is not None:
            job.call.abort()
        if job.job is not None:
            self._job_progress(job, 0, 0, "Cancelling...")
            job.job.cancel()
        if job.insertion is not None:
            self._job_progress(job, 0, 0, "Cancelling: removing the unfinished layer...")
            job.insertion.cancel()
        if job.call is None and job.job is None and job.insertion is None:
            # between a detection's answer and the colorize it starts (_after_detect)
            self._job_says(job, "Cancelled")
            self._end(job)
