"""Batch jobs of the HTTP server: an in-memory registry with bounded count and memory.

A *frames* job receives its frames (and optional hints) one ``PUT`` at a time, starts
in a background thread once every frame is there, and keeps each result until it is
fetched. A *files* job works on server-side files and only reports progress.

Limits (``JobLimits``, set from ``ServerConfig``):
- at most ``max_jobs`` jobs are known at once (any state); creating one more is refused
  (429: try again later) until a client deletes or fetches finished ones;
- a frames job has at most ``MAX_JOB_FRAMES`` frames, and reserves ``frame_count x
  (input frame + result frame + FRAME_OVERHEAD)`` bytes when it is created, before
  anything per frame is allocated, plus each hint image when it arrives; the sum over
  all jobs stays under ``max_bytes`` (429 while other jobs hold the memory; 413 for a
  job that could never fit: split the sequence into smaller jobs);
- a frames job may take colored keyframes (``KeyframeSlot``, each in its own layout, with
  the uncolored frame it colors when that frame is not in the job); their bytes are
  reserved when the job is created and freed when the worker has taken them;
- an input frame's bytes are dropped as soon as its result exists;
- a finished job whose results have all been fetched is forgotten ``fetched_grace_s``
  after the last fetch (so a retried download still works); any other job that is not
  running is forgotten after ``ttl_s`` without activity. ``DELETE`` forgets a finished
  job at once and cancels a running one (it stops between frames).

Training jobs (``TrainRegistry``) run ``inkhue finetune`` in a subprocess, one at a time:
the engine never imports torch. Their progress comes as JSON lines on its stdout.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from inkhue_engine.errors import InkHueError, InputError, ResourceError
from inkhue_engine.server_frames import PixelLayout

log = logging.getLogger("inkhue_engine.server")

MiB = 1024 * 1024
#: Most frames one frames job may have (over an hour of animation at 24 fps).
MAX_JOB_FRAMES = 100_000
#: Bytes reserved per frame for the job's own bookkeeping (its slots in the input,
#: hint and result lists, its entry in ``fetched``), so that a job of many tiny frames
#: cannot allocate memory outside the reservation.
FRAME_OVERHEAD = 256

UPLOADING, RUNNING, DONE, CANCELLED, FAILED = "uploading", "running", "done", "cancelled", "failed"
FINISHED = (DONE, CANCELLED, FAILED)


class NotFoundError(InkHueError):
    """A job, frame or model that the request names does not exist (404)."""

    http_status = 404


class BusyError(ResourceError):
    """The server holds too many jobs, or their memory, right now (429: retry later)."""

    http_status = 429


class JobTooLargeError(ResourceError):
    """A job that needs more memory than the server ever grants (413: split it)."""

    http_status = 413


class ConflictError(InputError):
    """The request does not fit the job's state (409), e.g. a frame for a running job."""

    http_status = 409


@dataclass(frozen=True)
class JobLimits:
    """Bounds of the registry (see the module docstring)."""

    max_jobs: int = 16
    max_bytes: int = 4096 * MiB
    ttl_s: float = 3600.0
    fetched_grace_s: float = 60.0


@dataclass(eq=False)
class KeyframeSlot:
    """A colored keyframe of a frames job (``PUT /jobs/{id}/keyframes/{k}``)."""

    layout: PixelLayout  #: its own layout (a model sheet may have any size)
    frame: int | None = None  #: index of the job's frame it colors (its structure)
    wants_structure: bool = False  #: the frame it colors comes as a separate upload
    under_lines: bool = False  #: line art: color under the lines (the engine adds them)
    previous: bool = False  #: the result of the frame before the job's first
    name: str = ""  #: what messages call it
    data: bytes | None = None
    structure: bytes | None = None
    reserved: int = 0  #: bytes of the job's reservation held for it

    @property
    def uploads(self) -> int:
        return 1 + int(self.wants_structure)


@dataclass(eq=False)
class Job:
    """One batch job. Mutable fields are guarded by the registry's lock."""

    id: str
    kind: str  # "frames" or "files"
    total: int
    layout: PixelLayout | None = None  # frames jobs only
    model_name: str = ""
    state: str = UPLOADING
    done: int = 0
    error: str | None = None
    reserved: int = 0
    touched: float = field(default_factory=time.monotonic)
    inputs: list[bytes | None] = field(default_factory=list)
    hints: list[bytes | None] = field(default_factory=list)
    results: list[bytes | None] = field(default_factory=list)
    fetched: set[int] = field(default_factory=set)
    keyframes: list[KeyframeSlot] = field(default_factory=list)
    missing: int = 0  #: frames and keyframes not uploaded yet (frames jobs)
    cancel: threading.Event = field(default_factory=threading.Event)
    #: What the worker thread runs, ``work(job)``; frames jobs start it after the last upload.
    work: Callable[[Job], None] | None = None
    thread: threading.Thread | None = None

    def status(self) -> dict:
        """The job's JSON status (``GET /jobs/{id}``)."""
        return {
            "id": self.id,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "error": self.error,
        }

    @property
    def finished(self) -> bool:
        return self.state in FINISHED and (self.thread is None or not self.thread.is_alive())


class JobRegistry:
    """Thread-safe registry of batch jobs (see the module docstring for its limits)."""

    def __init__(self, limits: JobLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        #: Seconds of a monotonic clock (expiry); tests pass one they can move.
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    # -- bookkeeping -----------------------------------------------------------------
    def _purge(self, now: float) -> None:
        """Forget expired jobs (called with the lock held)."""
        for job in list(self._jobs.values()):
            if job.thread is not None and job.thread.is_alive():
                continue
            all_fetched = (
                job.kind == "frames" and job.state == DONE and len(job.fetched) == job.total
            )
            age = now - job.touched
            if (all_fetched and age > self.limits.fetched_grace_s) or age > self.limits.ttl_s:
                log.info("forgetting job %s (%s)", job.id, job.state)
                del self._jobs[job.id]

    def bytes_in_use(self) -> int:
        """Memory reserved by all known jobs, in bytes."""
        with self._lock:
            return sum(j.reserved for j in self._jobs.values())

    def _reserve(self, job: Job, nbytes: int) -> None:
        used = sum(j.reserved for j in self._jobs.values())
        if nbytes > self.limits.max_bytes:
            raise JobTooLargeError(
                f"this needs {nbytes / MiB:.0f} MiB of server memory, over the server's "
                f"limit of {self.limits.max_bytes / MiB:.0f} MiB for all jobs; split the "
                f"sequence into smaller jobs"
            )
        if used + nbytes > self.limits.max_bytes:
            raise BusyError(
                f"this needs {nbytes / MiB:.0f} MiB of server memory but only "
                f"{(self.limits.max_bytes - used) / MiB:.0f} MiB of "
                f"{self.limits.max_bytes / MiB:.0f} MiB are free; split the sequence into "
                f"smaller jobs, or fetch and DELETE finished jobs"
            )
        job.reserved += nbytes

    def _add(self, job: Job, reserve: int) -> Job:
        with self._lock:
            now = self.clock()
            self._purge(now)
            job.touched = now
            if len(self._jobs) >= self.limits.max_jobs:
                raise BusyError(
                    f"the server already holds {len(self._jobs)} jobs (its limit); "
                    f"fetch or DELETE finished jobs first"
                )
            self._reserve(job, reserve)
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job:
        """The job ``job_id``; NotFoundError if it is unknown or forgotten."""
        with self._lock:
            self._purge(self.clock())
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"job {job_id!r} not found (unknown, deleted or expired)")
        return job

    def status(self, job_id: str) -> dict:
        job = self.get(job_id)
        with self._lock:
            return job.status()

    # -- frames jobs -----------------------------------------------------------------
    def create_frames_job(
        self,
        layout: PixelLayout,
        total: int,
        model_name: str,
        work: Callable[[Job], None],
        keyframes: list[KeyframeSlot] | None = None,
    ) -> Job:
        """A new frames job waiting for ``total`` frames of ``layout`` (and the uploads of
        ``keyframes``); ``work(job)`` runs it.

        ``work`` takes the keyframes with ``take_keyframes``, each input with
        ``take_input`` and stores each result with ``store_result``, in order, and
        returns early when ``job.cancel`` is set.
        """
        if not 1 <= total <= MAX_JOB_FRAMES:
            raise InputError(
                f"frame_count: must be 1..{MAX_JOB_FRAMES}, got {total}; split a longer "
                f"sequence into several jobs"
            )
        job = Job(
            id=uuid.uuid4().hex,
            kind="frames",
            total=total,
            layout=layout,
            model_name=model_name,
            work=work,
            keyframes=list(keyframes or []),
        )
        job.missing = total + sum(k.uploads for k in job.keyframes)
        for k in job.keyframes:
            k.reserved = k.layout.nbytes + (layout.nbytes if k.wants_structure else 0)
        key_bytes = sum(k.reserved for k in job.keyframes)
        # reserve first: the per-frame lists are allocated only once the memory is granted
        self._add(job, total * (layout.nbytes + layout.out_nbytes + FRAME_OVERHEAD) + key_bytes)
        job.inputs = [None] * total
        job.hints = [None] * total
        job.results = [None] * total
        return job

    def _frame_index(self, job: Job, index: int) -> None:
        if job.kind != "frames":
            raise ConflictError(f"job {job.id} works on server-side files; it has no frames")
        if not 0 <= index < job.total:
            raise NotFoundError(
                f"frame index {index} is out of range: job {job.id} has frames 0..{job.total - 1}"
            )

    def put_hints(self, job_id: str, index: int, data: bytes) -> dict:
        """Store the hint image (RGBA u8) of frame ``index``; before that frame is uploaded."""
        job = self.get(job_id)
        self._frame_index(job, index)
        if job.keyframes:
            raise ConflictError(
                f"job {job.id} colors from keyframes; it takes no hints: paint the colors "
                "into a keyframe instead"
            )
        job.layout.hints_layout().check_size(len(data), f"hints {index}")
        with self._lock:
            if job.state != UPLOADING:
                raise ConflictError(
                    f"job {job.id} is {job.state}: upload hints {index} before the last frame"
                )
            if job.hints[index] is None:
                self._reserve(job, len(data))
            job.hints[index] = data
            job.touched = self.clock()
            return job.status()

    def put_frame(self, job_id: str, index: int, data: bytes) -> dict:
        """Store frame ``index``; when it was the last one missing, the job starts."""
        job = self.get(job_id)
        self._frame_index(job, index)
        job.layout.check_size(len(data), f"frame {index}")

        def store() -> bool:
            new = job.inputs[index] is None
            job.inputs[index] = data
            return new

        return self._accept(job, store, "it takes no more frames")

    def _accept(self, job: Job, store: Callable[[], bool], refused: str) -> dict:
        """Store one upload of an uploading job under the lock (``store()`` says whether it
        filled an empty slot); the job starts when nothing is missing any more."""
        with self._lock:
            if job.state != UPLOADING:
                raise ConflictError(f"job {job.id} is {job.state}; {refused}")
            if store():
                job.missing -= 1
            job.touched = self.clock()
            ready = job.missing == 0
            if ready:
                job.state = RUNNING
            status = job.status()
        if ready:
            self.start(job)
        return status

    def keyframe_upload(self, job_id: str, index: int, structure: bool) -> PixelLayout:
        """The layout an upload of keyframe ``index`` (``structure``: of the frame it
        colors) must have; NotFoundError / ConflictError when the job takes no such upload."""
        job = self.get(job_id)
        if job.kind != "frames":
            raise ConflictError(f"job {job.id} works on server-side files; it takes no keyframes")
        if not 0 <= index < len(job.keyframes):
            have = f"keyframes 0..{len(job.keyframes) - 1}" if job.keyframes else "no keyframes"
            raise NotFoundError(f"keyframe index {index} is out of range: job {job.id} has {have}")
        slot = job.keyframes[index]
        if not structure:
            return slot.layout
        if not slot.wants_structure:
            raise ConflictError(
                f"keyframe {index} structure: the job was created without 'structure' for "
                f"keyframe {index}"
            )
        return job.layout

    def put_keyframe(self, job_id: str, index: int, data: bytes, structure: bool) -> dict:
        """Store keyframe ``index`` (its colored pixels, or with ``structure`` the
        uncolored frame it colors); the job starts when nothing else is missing."""
        layout = self.keyframe_upload(job_id, index, structure)
        layout.check_size(len(data), f"keyframe {index}" + (" structure" if structure else ""))
        job = self.get(job_id)
        slot = job.keyframes[index]
        attr = "structure" if structure else "data"

        def store() -> bool:
            new = getattr(slot, attr) is None
            setattr(slot, attr, data)
            return new

        return self._accept(job, store, "it takes no more uploads")

    def take_keyframes(self, job: Job) -> list[KeyframeSlot]:
        """The worker takes the keyframes' uploads (the job's copies and their memory
        reservation go: the worker holds what it built from them)."""
        with self._lock:
            taken = [replace(k, reserved=0) for k in job.keyframes]
            self._release_keyframes(job)
        return taken

    def _release_keyframes(self, job: Job) -> None:
        """Drop the keyframes' bytes and their reservation (lock held)."""
        for k in job.keyframes:
            job.reserved -= k.reserved
            k.reserved = 0
            k.data = k.structure = None

    def peek_input(self, job: Job, index: int) -> bytes:
        """Frame ``index``'s input, left in place (a keyframe's structure, before that
        frame's turn)."""
        with self._lock:
            data = job.inputs[index]
        if data is None:
            raise InputError(f"frame {index} of job {job.id} was already colorized")
        return data

    def take_input(self, job: Job, index: int) -> tuple[bytes, bytes | None]:
        """The worker takes frame ``index`` and its hints (freeing the hints' memory)."""
        with self._lock:
            data, hints = job.inputs[index], job.hints[index]
            if hints is not None:
                job.hints[index] = None
                job.reserved -= len(hints)
        assert data is not None
        return data, hints

    def store_result(self, job: Job, index: int, data: bytes) -> None:
        """The worker stores result ``index`` (and drops its input frame)."""
        with self._lock:
            job.results[index] = data
            job.inputs[index] = None
            job.reserved -= job.layout.nbytes  # the input's bytes are gone
            job.done += 1
            job.touched = self.clock()

    def result(self, job_id: str, index: int) -> tuple[Job, bytes]:
        """Result frame ``index`` of a frames job (NotFoundError until it is done)."""
        job = self.get(job_id)
        self._frame_index(job, index)
        with self._lock:
            data = job.results[index]
            if data is None:
                detail = f"; the job {job.state}: {job.error}" if job.error else ""
                raise NotFoundError(
                    f"frame {index} of job {job.id} is not done (job is {job.state}){detail}"
                )
            job.fetched.add(index)
            job.touched = self.clock()
        return job, data

    # -- any job ---------------------------------------------------------------------
    def create_files_job(self, total: int, model_name: str, work: Callable[[Job], None]) -> Job:
        """A new files job (server-side paths), started at once: ``work(job)`` runs it."""
        job = Job(
            id=uuid.uuid4().hex,
            kind="files",
            total=total,
            model_name=model_name,
            work=work,
            state=RUNNING,
        )
        self._add(job, 0)
        self.start(job)
        return job

    def progress(self, job: Job, done: int) -> None:
        """A files job reports how many items are done."""
        with self._lock:
            job.done = done
            job.touched = self.clock()

    def start(self, job: Job) -> None:
        """Run ``job.work(job)`` in a background thread, then record how it ended."""
        assert job.work is not None

        def run() -> None:
            error = None
            try:
                job.work(job)
            except InkHueError as exc:
                error = str(exc)
            except Exception as exc:  # the job fails, the server lives on
                log.exception("job %s failed", job.id)
                first = str(exc).splitlines()[0] if str(exc) else ""
                error = f"internal error: {type(exc).__name__}: {first}"
            with self._lock:
                if job.state == RUNNING:
                    if error is not None:
                        job.state, job.error = FAILED, error
                    elif job.cancel.is_set():
                        job.state = CANCELLED
                    else:
                        job.state = DONE
                if job.layout is not None:
                    # inputs never processed (cancel / failure) free their memory
                    self._release_keyframes(job)
                    job.inputs = [None] * job.total
                    job.reserved -= sum(len(h) for h in job.hints if h is not None)
                    job.hints = [None] * job.total
                    # a result slot that was never filled needs no reservation
                    missing = sum(r is None for r in job.results)
                    job.reserved -= missing * (job.layout.nbytes + job.layout.out_nbytes)
                    # (the per-frame lists live until the job is forgotten: their
                    # FRAME_OVERHEAD stays reserved)
                job.touched = self.clock()
            log.info("job %s %s (%d/%d)", job.id, job.state, job.done, job.total)

        job.thread = threading.Thread(target=run, name=f"inkhue-job-{job.id[:8]}", daemon=True)
        job.thread.start()

    def cancel_all(self) -> None:
        """Ask every job's worker to stop before its next frame (server shutdown)."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()

    def delete(self, job_id: str) -> dict:
        """Cancel a job that is not finished; forget it when it is.

        An uploading job is forgotten at once (nothing to fetch). A running job is
        marked cancelled and its thread stops before the next frame; its finished
        results stay fetchable until a second DELETE or the expiry.
        """
        job = self.get(job_id)
        with self._lock:
            status = job.status()
            if job.state == RUNNING:
                job.cancel.set()
                job.state = status["state"] = CANCELLED
                job.touched = self.clock()
                status["forgotten"] = False
            elif job.thread is not None and job.thread.is_alive():
                # cancelled, the worker still finishing its current frame
                status["forgotten"] = False
            else:
                job.cancel.set()
                del self._jobs[job.id]
                if job.state == UPLOADING:
                    status["state"] = CANCELLED
                status["forgotten"] = True
        return status


# --------------------------------------------------------------------------- training jobs
class UnavailableError(InkHueError):
    """Fine-tuning cannot run on this server (no training extra, no base model): 501."""

    http_status = 501


#: Phases of a training job, in order (``phase`` of its status).
TRAIN_PHASES = ("starting", "training", "export", "check", "finished")


@dataclass(eq=False)
class TrainJob:
    """One fine-tuning: an ``inkhue finetune`` subprocess and what it last reported."""

    id: str
    name: str
    total: int
    workdir: Path
    state: str = RUNNING
    phase: str = "starting"
    step: int = 0
    losses: dict[str, float] | None = None
    error: str | None = None
    model: str | None = None
    palette: list[str] | None = None
    held_out_check: dict[str, float] | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    touched: float = field(default_factory=time.monotonic)
    proc: subprocess.Popen | None = None
    reader: threading.Thread | None = None
    cancel_requested: bool = False

    def status(self) -> dict:
        """The job's JSON status (``GET /train/{id}``)."""
        end = self.ended if self.ended is not None else time.monotonic()
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "phase": self.phase,
            "step": self.step,
            "total": self.total,
            "losses": dict(self.losses) if self.losses else None,
            "error": self.error,
            "model": self.model,
            "palette": list(self.palette) if self.palette else None,
            "held_out_check": dict(self.held_out_check) if self.held_out_check else None,
            "seconds": round(end - self.started, 1),
        }

    @property
    def alive(self) -> bool:
        return self.reader is not None and self.reader.is_alive()


class TrainRegistry:
    """Fine-tuning jobs: one subprocess at a time (training takes every core).

    The subprocess writes progress as JSON lines on its stdout (``inkhue finetune
    --progress-jsonl -``); a reader thread applies them to the job. Cancelling sends
    SIGTERM (the subprocess stops and removes its temp files) and kills it after
    ``kill_after_s``; the job's ``workdir`` (uploaded frames, temp files, stderr log) is
    removed when the subprocess has ended, however it ended. Finished jobs are
    forgotten after ``ttl_s`` without activity, or by DELETE.
    """

    def __init__(self, ttl_s: float = 3600.0, kill_after_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self.kill_after_s = kill_after_s
        self._jobs: dict[str, TrainJob] = {}
        self._lock = threading.Lock()

    def _purge(self, now: float) -> None:
        for job in list(self._jobs.values()):
            if not job.alive and job.state != RUNNING and now - job.touched > self.ttl_s:
                del self._jobs[job.id]

    def running(self) -> TrainJob | None:
        """The job whose subprocess still runs (cancelled ones included until they end)."""
        with self._lock:
            return next((j for j in self._jobs.values() if j.alive), None)

    def start(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        total: int,
        env: dict[str, str] | None = None,
    ) -> TrainJob:
        """Start ``argv`` (an ``inkhue finetune`` command line) as a new job.

        ConflictError (409) while another fine-tuning runs. ``workdir`` belongs to the
        job from here on: it is removed when the subprocess ends.
        """
        with self._lock:
            self._purge(time.monotonic())
            busy = next((j for j in self._jobs.values() if j.alive), None)
            if busy is not None:
                raise ConflictError(
                    f"a fine-tuning is already running (job {busy.id}, model {busy.name!r}): "
                    f"wait for it, or cancel it with DELETE /train/{busy.id}"
                )
            job = TrainJob(id=uuid.uuid4().hex, name=name, total=total, workdir=workdir)
            stderr = open(workdir / "stderr.log", "wb")  # noqa: SIM115 - the child owns it
            try:
                job.proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                    cwd=workdir, env=env,
                    # not in the server's process group: Ctrl-C on the server's terminal
                    # reaches the server, which then stops the job itself
                    start_new_session=os.name == "posix",
                )  # fmt: skip
            finally:
                stderr.close()
            job.reader = threading.Thread(
                target=self._follow, args=(job,), name=f"inkhue-train-{job.id[:8]}", daemon=True
            )
            self._jobs[job.id] = job
            job.reader.start()
        log.info("training job %s started: %s", job.id, " ".join(argv))
        return job

    def _event(self, job: TrainJob, event: dict) -> None:
        kind = event.get("event")
        with self._lock:
            job.touched = time.monotonic()
            if kind == "start":
                job.total = int(event.get("total", job.total))
                job.palette = event.get("palette")
                job.phase = "training"
            elif kind == "step":
                job.phase = "training"
                job.step = int(event.get("step", job.step))
                job.total = int(event.get("total", job.total))
                if event.get("losses"):
                    job.losses = event["losses"]
            elif kind == "phase" and event.get("phase") in TRAIN_PHASES:
                job.phase = event["phase"]
            elif kind == "done":
                job.model = event.get("model")
                job.palette = event.get("palette")
                job.held_out_check = event.get("held_out_check")
            elif kind == "error":
                job.error = str(event.get("error") or "")

    def _follow(self, job: TrainJob) -> None:
        """Reader thread: apply the progress lines, then settle the job and clean up."""
        proc = job.proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            try:
                event = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue  # not a progress line
            if isinstance(event, dict):
                self._event(job, event)
        code = proc.wait()
        tail = _last_line(job.workdir / "stderr.log")
        shutil.rmtree(job.workdir, ignore_errors=True)
        with self._lock:
            job.ended = time.monotonic()
            job.touched = job.ended
            job.phase = "finished"
            if code == 0 and job.model:
                job.state = DONE  # finished before a cancel could stop it: the model exists
            elif job.cancel_requested:
                job.state = CANCELLED
            else:
                job.state = FAILED
                if not job.error:
                    job.error = tail or f"inkhue finetune ended with exit code {code}"
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        log.info("training job %s %s", job.id, job.state)

    def get(self, job_id: str) -> TrainJob:
        with self._lock:
            self._purge(time.monotonic())
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"training job {job_id!r} not found (unknown, deleted or expired)")
        return job

    def status(self, job_id: str) -> dict:
        job = self.get(job_id)
        with self._lock:
            return job.status()

    def statuses(self) -> list[dict]:
        with self._lock:
            self._purge(time.monotonic())
            return [j.status() for j in self._jobs.values()]

    def _terminate(self, job: TrainJob) -> None:
        """SIGTERM now, SIGKILL after ``kill_after_s`` if the subprocess still runs."""
        proc = job.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()

        def kill() -> None:
            if proc.poll() is None:
                log.warning("training job %s did not stop on SIGTERM: killing it", job.id)
                proc.kill()

        timer = threading.Timer(self.kill_after_s, kill)
        timer.daemon = True
        timer.start()

    def delete(self, job_id: str) -> dict:
        """Cancel a running job (its subprocess is stopped, its temp files removed), or
        forget a finished one. Returns the status with ``forgotten``."""
        job = self.get(job_id)
        with self._lock:
            if job.alive:
                if job.state == RUNNING:
                    job.cancel_requested = True
                    job.state = CANCELLED
                    job.touched = time.monotonic()
                status = job.status()
                status["forgotten"] = False
                terminate = True
            else:
                status = job.status()
                status["forgotten"] = True
                del self._jobs[job.id]
                terminate = False
        if terminate:
            self._terminate(job)
        return status

    def cancel_all(self, wait_s: float = 15.0) -> None:
        """Stop every running fine-tuning and wait (up to ``wait_s``) for them to end."""
        with self._lock:
            alive = [j for j in self._jobs.values() if j.alive]
            for job in alive:
                if job.state == RUNNING:
                    job.cancel_requested = True
                    job.state = CANCELLED
        for job in alive:
            self._terminate(job)
        deadline = time.monotonic() + wait_s
        for job in alive:
            assert job.reader is not None
            job.reader.join(max(0.0, deadline - time.monotonic()))


def _last_line(path: Path) -> str:
    """The last non-empty line of a text file ('' if none), without a CLI prefix."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    if not lines:
        return ""
    last = lines[-1]
    for prefix in ("inkhue: error: ",):
        if last.startswith(prefix):
            last = last[len(prefix) :]
    return last[:500]
