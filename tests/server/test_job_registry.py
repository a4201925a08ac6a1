"""The job registry's own rules: limits, memory accounting, expiry, cancel."""

from __future__ import annotations

import threading

import pytest

from inkhue_engine.errors import ResourceError
from inkhue_engine.server_frames import PixelLayout
from inkhue_engine.server_jobs import (
    FRAME_OVERHEAD,
    MAX_JOB_FRAMES,
    ConflictError,
    JobLimits,
    JobRegistry,
    NotFoundError,
)

LAYOUT = PixelLayout(4, 2, 4, "u8")  # 32 bytes in, 32 bytes out
O = FRAME_OVERHEAD  # bookkeeping reserved per frame


def _copy_work(jobs: JobRegistry, gate: threading.Event | None = None):
    """A stand-in for the colorizer: result = input bytes (the registry does not care)."""

    def work(job):
        for i in range(job.total):
            if gate is not None:
                gate.wait(5)
            if job.cancel.is_set():
                return
            data, _hints = jobs.take_input(job, i)
            jobs.store_result(job, i, data)

    return work


def _wait(jobs: JobRegistry, job_id: str, states=("done", "cancelled", "failed")) -> dict:
    """The job's status once its worker thread has ended (an event, not a sleep)."""
    job = jobs.get(job_id)
    assert job.thread is not None
    job.thread.join(30)
    assert not job.thread.is_alive(), f"job stuck: {jobs.status(job_id)}"
    status = jobs.status(job_id)
    assert status["state"] in states, status
    return status


class _Clock:
    """A monotonic clock the test moves by hand (expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_frames_job_runs_after_the_last_upload_and_frees_inputs():
    jobs = JobRegistry(JobLimits())
    job = jobs.create_frames_job(LAYOUT, 2, "m", _copy_work(jobs))
    assert jobs.bytes_in_use() == 2 * (64 + O)
    assert jobs.put_frame(job.id, 1, b"\1" * 32)["state"] == "uploading"
    with pytest.raises(NotFoundError):
        jobs.result(job.id, 1)
    jobs.put_hints(job.id, 0, b"\0" * 32)
    assert jobs.bytes_in_use() == 2 * (64 + O) + 32
    assert jobs.put_frame(job.id, 0, b"\2" * 32)["state"] == "running"
    status = _wait(jobs, job.id)
    assert status == {"id": job.id, "state": "done", "done": 2, "total": 2, "error": None}
    assert jobs.result(job.id, 0)[1] == b"\2" * 32
    assert jobs.bytes_in_use() == 2 * (32 + O)  # only the results are left
    with pytest.raises(ConflictError):
        jobs.put_frame(job.id, 0, b"\2" * 32)
    with pytest.raises(ConflictError):
        jobs.put_hints(job.id, 0, b"\2" * 32)


def test_wrong_sizes_and_indexes():
    jobs = JobRegistry(JobLimits())
    job = jobs.create_frames_job(LAYOUT, 1, "m", _copy_work(jobs))
    with pytest.raises(Exception, match=r"frame 0: expected 32 bytes"):
        jobs.put_frame(job.id, 0, b"\0" * 31)
    with pytest.raises(NotFoundError, match="out of range"):
        jobs.put_frame(job.id, 1, b"\0" * 32)
    with pytest.raises(NotFoundError):
        jobs.get("nope")


def test_count_and_memory_limits():
    jobs = JobRegistry(JobLimits(max_jobs=2, max_bytes=3 * (64 + O)))
    jobs.create_frames_job(LAYOUT, 1, "m", _copy_work(jobs))
    with pytest.raises(ResourceError, match="MiB"):
        jobs.create_frames_job(LAYOUT, 3, "m", _copy_work(jobs))  # 3 more frames
    second = jobs.create_frames_job(LAYOUT, 1, "m", _copy_work(jobs))
    with pytest.raises(ResourceError, match="limit"):
        jobs.create_frames_job(LAYOUT, 1, "m", _copy_work(jobs))
    jobs.delete(second.id)  # an uploading job is forgotten at once
    jobs.create_frames_job(LAYOUT, 1, "m", _copy_work(jobs))


def test_cancel_stops_between_frames_and_keeps_finished_results():
    jobs = JobRegistry(JobLimits())
    gate = threading.Event()
    job = jobs.create_frames_job(LAYOUT, 3, "m", _copy_work(jobs, gate))
    for i in range(3):
        jobs.put_frame(job.id, i, bytes([i]) * 32)
    status = jobs.delete(job.id)
    assert status["state"] == "cancelled" and status["forgotten"] is False
    gate.set()
    status = _wait(jobs, job.id)
    assert status["state"] == "cancelled" and status["done"] < 3
    assert jobs.bytes_in_use() == status["done"] * 32 + 3 * O
    assert jobs.delete(job.id)["forgotten"] is True
    with pytest.raises(NotFoundError):
        jobs.status(job.id)


def test_failed_work_reports_the_error_line():
    jobs = JobRegistry(JobLimits())

    def work(job):
        raise ValueError("boom\nsecond line")

    job = jobs.create_frames_job(LAYOUT, 1, "m", work)
    jobs.put_frame(job.id, 0, b"\0" * 32)
    status = _wait(jobs, job.id)
    assert status["state"] == "failed"
    assert status["error"] == "internal error: ValueError: boom"
    assert jobs.bytes_in_use() == O


def test_expiry_after_fetching_everything_and_after_ttl():
    clock = _Clock()
    jobs = JobRegistry(JobLimits(fetched_grace_s=60.0, ttl_s=3600.0), clock=clock)
    job = jobs.create_frames_job(LAYOUT, 1, "m", _copy_work(jobs))
    jobs.put_frame(job.id, 0, b"\0" * 32)
    _wait(jobs, job.id)
    jobs.result(job.id, 0)
    clock.now += 59.0
    assert jobs.result(job.id, 0)[1] == b"\0" * 32  # a retried download within the grace
    clock.now += 60.5
    with pytest.raises(NotFoundError):
        jobs.status(job.id)  # all results fetched: gone after the grace
    idle = jobs.create_frames_job(LAYOUT, 1, "m", _copy_work(jobs))
    clock.now += 3599.0
    assert jobs.status(idle.id)["state"] == "uploading"
    clock.now += 1.5
    with pytest.raises(NotFoundError):
        jobs.status(idle.id)  # an abandoned upload expires after the TTL


def test_many_tiny_frames_are_reserved_before_anything_is_allocated():
    # 50 million 1x1 frames: the per-frame lists alone would take over a gigabyte, and
    # were allocated before (and outside) the reservation
    import tracemalloc

    tiny = PixelLayout(1, 1, 1, "u8")
    jobs = JobRegistry(JobLimits(max_bytes=64 * 1024 * 1024))
    tracemalloc.start()
    try:
        with pytest.raises(Exception, match=f"frame_count: must be 1..{MAX_JOB_FRAMES}"):
            jobs.create_frames_job(tiny, 50_000_000, "m", _copy_work(jobs))
        with pytest.raises(ResourceError, match="MiB"):  # within the count, over the memory
            JobRegistry(JobLimits(max_bytes=1024 * 1024)).create_frames_job(
                tiny, MAX_JOB_FRAMES, "m", _copy_work(jobs)
            )
        assert tracemalloc.get_traced_memory()[1] < 1024 * 1024
        # a granted job allocates no more than it reserved
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        job = jobs.create_frames_job(tiny, MAX_JOB_FRAMES, "m", _copy_work(jobs))
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert job.reserved == MAX_JOB_FRAMES * (1 + 3 + O)
    assert grown <= MAX_JOB_FRAMES * O, grown
    jobs.delete(job.id)


def test_a_frame_sent_twice_counts_once():
    jobs = JobRegistry(JobLimits())
    job = jobs.create_frames_job(LAYOUT, 2, "m", _copy_work(jobs))
    assert jobs.put_frame(job.id, 0, b"\1" * 32)["state"] == "uploading"
    assert jobs.put_frame(job.id, 0, b"\1" * 32)["state"] == "uploading"
    assert jobs.put_frame(job.id, 1, b"\1" * 32)["state"] == "running"
    assert _wait(jobs, job.id)["state"] == "done"
