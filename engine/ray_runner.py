"""``inkhue colorize --ray [ADDRESS]``: the model work of a batch on a Ray cluster.

``batch.colorize_many`` keeps everything that makes a run safe and reproducible in the
calling process: the plan, reading, the resume check, color carrying in frame order,
the manifest and the atomic writes. With a ``RayRunner`` only the frame work moves:
each group of ``batch_size`` frames (the same groups as in one process, done frames
included) is prepared, run through the model and finished by one Ray actor call, as
``pipeline`` does it locally, so the outputs are the same bytes. The frames travel
through Ray's object store; the workers need inkhue installed and the model file at the
same path (a shared folder, or the same install on every node).

Ray is an optional extra (``pip install 'inkhue[ray]'``). The work runs in Ray *actors*,
one per CPU of the cluster, each asking for one CPU and running ONNX Runtime and OpenCV
on one thread. An actor imports the engine and loads the model once, when the runner
starts (about 1.5-2 s per process on a 2-core machine): with plain tasks every worker
process paid that inside the run, which a short batch never amortized and which hid
the second worker's gain (docs/PERFORMANCE.md). The stack notes warn that actors taking
every CPU hung a Ray Data job whose read tasks then got none; here nothing else runs on
the cluster (reading and writing stay in the calling process), so the actors may take
every CPU. A local cluster started here gets every core.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from inkhue_engine.errors import InkHueError

RAY_MISSING = "--ray needs Ray: pip install 'inkhue[ray]'"
#: CPUs (and threads) each Ray actor asks for.
TASK_CPUS = 1


def _colorize_group(
    model_path: str,
    device: str,
    options: Any,
    frames: Sequence[np.ndarray],
    hints: Sequence[Any],
    todo: Sequence[bool],
    batch_size: int,
    threads: int = 0,
) -> list[np.ndarray | None]:
    """One group, as colorize_many does it in one process: prepare every frame (done
    ones too: the batch composition is part of the numbers), run, finish the todo ones.
    ``threads``: ONNX Runtime and OpenCV threads of this task (0: their defaults)."""
    import cv2

    from inkhue_engine import pipeline
    from inkhue_engine.model import load_model

    if threads > 0:
        cv2.setNumThreads(threads)
    model = load_model(model_path, device, threads=threads)  # cached per worker process
    prepared = [
        pipeline.prepare_frame(f, model.info, h, options)
        for f, h in zip(frames, hints, strict=True)
    ]
    preds = pipeline.run_prepared(model, prepared, batch_size=batch_size)
    return [
        pipeline.finish_frame(p, pr) if t else None
        for p, pr, t in zip(prepared, preds, todo, strict=True)
    ]


class _Colorizer:
    """A Ray actor: the model loaded once, one group of frames per call."""

    def __init__(self, model_path: str, device: str, threads: int) -> None:
        import cv2

        from inkhue_engine.model import load_model

        if threads > 0:
            cv2.setNumThreads(threads)
        self._args = (model_path, device, threads)
        load_model(model_path, device, threads=threads)  # imports and the session, now

    def ready(self) -> bool:
        return True

    def cpu_seconds(self) -> float:
        """CPU time this actor's process has used (all its threads)."""
        import time

        return time.process_time()

    def group(
        self,
        options: Any,
        frames: Sequence[np.ndarray],
        hints: Sequence[Any],
        todo: Sequence[bool],
        batch_size: int,
    ) -> list[np.ndarray | None]:
        model_path, device, threads = self._args
        return _colorize_group(
            model_path, device, options, frames, hints, todo, batch_size, threads
        )


class RayRunner:
    """Submits colorize_many's groups to Ray actors; ``submit`` returns one Future per frame.

    ``actors``: how many (default: one per CPU of the cluster, ``TASK_CPUS`` each);
    ``start_timeout``: seconds to wait for them to start (an actor the cluster cannot
    place in time is dropped; none at all is an InkHueError).
    """

    def __init__(
        self,
        model: Any,
        options: Any,
        batch_size: int,
        address: str | None = None,
        num_cpus: int | None = None,
        actors: int | None = None,
        start_timeout: float = 300.0,
    ) -> None:
        try:
            ray = importlib.import_module("ray")
        except ImportError as exc:
            raise InkHueError(RAY_MISSING) from exc
        self._ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                _check_reachable(address)
                kwargs["address"] = address
            else:  # a local cluster: every core of this machine
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a local cluster"
                raise InkHueError(f"--ray {where}: cannot start or reach Ray ({exc})") from exc
            self.started = True
        self._options = options
        self._batch_size = batch_size
        # an actor asks for TASK_CPUS CPUs: it uses that many threads on a CPU device (two
        # actors with the default threads each would fight over the same cores)
        threads = TASK_CPUS if model.providers[0] == "CPUExecutionProvider" else 0
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = actors or max(1, cpus // TASK_CPUS)
        actor_class = ray.remote(num_cpus=TASK_CPUS)(_Colorizer)
        started = [
            actor_class.remote(str(model.info.path), model.requested_device, threads)
            for _ in range(count)
        ]
        pings = {a.ready.remote(): a for a in started}
        done, _ = ray.wait(list(pings), num_returns=len(pings), timeout=start_timeout)
        self._actors = []
        try:
            for ref in done:
                ray.get(ref)  # an actor that failed to start (model, import) raises here
                self._actors.append(pings[ref])
        except ray.exceptions.RayError as exc:
            self._actors = started
            self.close()
            raise InkHueError(f"--ray: a worker could not start: {_plain(exc)}") from None
        for a in started:
            if a not in self._actors:  # not placed in time: the cluster is busy
                ray.kill(a)
        if not self._actors:
            self.close()
            raise InkHueError(
                f"--ray: no worker started within {start_timeout:.0f} s: the cluster has "
                "no free CPU"
            )
        self._busy = [0] * len(self._actors)  # groups in flight per actor
        self._lock = threading.Lock()
        #: groups worth keeping in flight: one per actor, and one more
        self.in_flight = max(2, len(self._actors) + 1)

    @property
    def workers(self) -> int:
        """How many actors run the groups."""
        return len(self._actors)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the actors' processes, together."""
        return float(sum(self._ray.get([a.cpu_seconds.remote() for a in self._actors])))

    def submit(
        self, frames: Sequence[np.ndarray], hints: Sequence[Any], todo: Sequence[bool]
    ) -> list[Future | None]:
        """Start one group on the least busy actor; Futures of the finished frames (None
        for done ones)."""
        with self._lock:
            k = min(range(len(self._actors)), key=self._busy.__getitem__)
            self._busy[k] += 1
        ref = self._actors[k].group.remote(
            self._options, list(frames), list(hints), list(todo), self._batch_size
        )
        futures: list[Future | None] = [Future() if t else None for t in todo]

        def settle(group: Future) -> None:
            with self._lock:
                self._busy[k] -= 1
            try:
                outs = group.result()
            except BaseException as exc:  # noqa: BLE001 - handed to every frame's Future
                for f in futures:
                    if f is not None:
                        f.set_exception(_plain(exc))
                return
            for f, out in zip(futures, outs, strict=True):
                if f is not None:
                    f.set_result(out)

        ref.future().add_done_callback(settle)
        return futures

    def close(self) -> None:
        """Stop the actors; shut down a local cluster this runner started (a cluster it
        joined stays up)."""
        if self._ray.is_initialized():
            for a in getattr(self, "_actors", []):
                self._ray.kill(a)
            self._actors = []
            if self.started:
                self._ray.shutdown()
                self.started = False


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A host:port address (also ray://host:port) must accept a TCP connection: Ray itself
    retries an unreachable head for minutes before it gives up."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # 'auto', 'local' and the like: Ray resolves them
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InkHueError(
            f"--ray {address}: no Ray head answers there ({exc.strerror or exc}): start one "
            "with 'ray start --head' or check the address"
        ) from None


def _plain(exc: BaseException) -> BaseException:
    """The engine error inside a Ray task error, so the CLI prints its one line."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
