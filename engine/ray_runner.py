"""``inkhue colorize --ray [ADDRESS]``: the model work of a batch on a Ray cluster.

``batch.colorize_many`` keeps everything that makes a run safe and reproducible in the
calling process: the plan, reading, the resume check, color carrying in frame order,
the manifest and the atomic writes. With a ``RayRunner`` only the frame work moves:
each group of ``batch_size`` frames (the same groups as in one process, done frames
included) is prepared, run through the model and finished by one Ray task, exactly as
``pipeline`` does it locally, so the outputs are the same bytes. The frames travel
through Ray's object store; the workers need inkhue installed and the model file at the
same path (a shared folder, or the same install on every node).

Ray is an optional extra (``pip install 'inkhue[ray]'``). Per the stack notes, work
must leave CPUs free for the rest of the pipeline (a job whose actors took every CPU
hung): each task asks for one CPU and runs ONNX Runtime and OpenCV on one thread, and a
local cluster started here gets every core.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from inkhue_engine.errors import InkHueError

RAY_MISSING = "--ray needs Ray: pip install 'inkhue[ray]'"
#: CPUs (and threads) each Ray task asks for.
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


class RayRunner:
    """Submits colorize_many's groups to Ray; ``submit`` returns one Future per frame."""

    def __init__(
        self,
        model: Any,
        options: Any,
        batch_size: int,
        address: str | None = None,
        num_cpus: int | None = None,
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
        self._task = ray.remote(num_cpus=TASK_CPUS)(_colorize_group)
        self._model_path = str(model.info.path)
        self._device = model.requested_device
        self._options = options
        self._batch_size = batch_size
        # a task asks for TASK_CPUS CPUs: it uses that many threads on a CPU device (two
        # tasks with the default threads each would fight over the same cores)
        self._threads = TASK_CPUS if model.providers[0] == "CPUExecutionProvider" else 0
        cpus = int(ray.cluster_resources().get("CPU", 1))
        #: groups worth keeping in flight: one per CPU of the cluster, and one more
        self.in_flight = max(2, cpus + 1)

    def submit(
        self, frames: Sequence[np.ndarray], hints: Sequence[Any], todo: Sequence[bool]
    ) -> list[Future | None]:
        """Start one group; Futures of the finished frames (None for done ones)."""
        ref = self._task.remote(
            self._model_path,
            self._device,
            self._options,
            list(frames),
            list(hints),
            list(todo),
            self._batch_size,
            self._threads,
        )
        futures: list[Future | None] = [Future() if t else None for t in todo]

        def settle(group: Future) -> None:
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
        """Shut down a local cluster this runner started (a cluster it joined stays up)."""
        if self.started and self._ray.is_initialized():
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
