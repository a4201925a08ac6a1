"""Throughput of colorize --ray with 1 and 2 local Ray workers against one process (not a test).

    python benchmarks/bench_ray.py [--frames 32] [--size 1008x576] [--batch-size 2] [--repeats 2]

Writes a synthetic cartoon sequence (inkhue_engine.bench.cartoon_frame with a moving band)
to a temporary folder and colorizes it with batch.colorize_many in one process, then
through a RayRunner on a local cluster of 1 and of 2 CPUs (each cluster started fresh,
its start-up timed apart). The runs alternate ``--repeats`` times (1 CPU, 2 CPUs, 1 CPU, ...), so
the ratio compares runs made in the same minutes; frames/s are medians. Checks that the
outputs are the same bytes as one process.

It also measures the CPU time per frame of the calling process during the Ray runs
(reading, carry, encoding, writing) and of the frame work of a Ray task (one thread, run
here on the same frames). One worker cannot go faster than
the slower of the two; two workers not faster than 2 / work, 1 / caller, nor C cores /
(work + caller): the ratio of those bounds is printed, which says whether a missed 1.6x
is the code's or the machine's.
Ray must be installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", default="1008x576", help="WIDTHxHEIGHT")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)

    from inkhue_engine import batch, bench, frames_io
    from inkhue_engine.model import load_model, resolve_model
    from inkhue_engine.pipeline import ColorizeOptions
    from inkhue_engine.ray_runner import RayRunner

    w, h = (int(v) for v in args.size.lower().split("x"))
    model = load_model(resolve_model(args.model), "cpu")
    options = ColorizeOptions()
    loads = [os.getloadavg()]
    rates: dict[str, list[float]] = {"one process": [], "ray, 1 CPU": [], "ray, 2 CPUs": []}
    starts: dict[int, list[float]] = {1: [], 2: []}
    caller_ms: list[float] = []
    worker_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="inkhue-bench-ray-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        first = bench.cartoon_frame(model.info.task, h, w)
        for i, f in enumerate(bench.moving_sequence(first, args.frames)):
            frames_io.write_image_atomic(src / f"f{i:04d}.png", f)
        sources = frames_io.expand_inputs([src])
        for r in range(args.repeats):
            ref = batch.colorize_many(
                sources, Path(tmp) / f"local{r}", model, options, batch_size=args.batch_size,
                progress=False,
            )  # fmt: skip
            rates["one process"].append(ref.fps)
            for cpus in (1, 2):
                t0 = time.perf_counter()
                runner = RayRunner(model, options, args.batch_size, num_cpus=cpus)
                starts[cpus].append(time.perf_counter() - t0)
                try:
                    out = Path(tmp) / f"ray{cpus}_{r}"
                    c0 = time.process_time()
                    res = batch.colorize_many(
                        sources, out, model, options, batch_size=args.batch_size,
                        progress=False, remote=runner,
                    )  # fmt: skip
                    caller_ms.append((time.process_time() - c0) / args.frames * 1000)
                finally:
                    runner.close()
                rates["ray, 1 CPU" if cpus == 1 else "ray, 2 CPUs"].append(res.fps)
                same = all(
                    (out / p.name).read_bytes() == p.read_bytes()
                    for p in (Path(tmp) / f"local{r}").iterdir()
                )
                print(f"repeat {r + 1}, ray {cpus} CPU(s): {res.fps:.2f} frames/s, outputs "
                      f"{'identical' if same else 'DIFFERENT'}", flush=True)  # fmt: skip
            worker_ms.append(_task_cpu_ms(model, options, sources, args.batch_size))
            loads.append(os.getloadavg())
    cores = os.cpu_count() or 1
    print(
        f"{args.frames} frames {w}x{h}, batch {args.batch_size}, {args.repeats} repeats, "
        f"{cores} cores; load average before / after each repeat: "
        + ", ".join(f"{la[0]:.2f}" for la in loads)
    )
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        print(f"  {k:<14} {v:6.2f} frames/s (runs: {', '.join(f'{x:.2f}' for x in rates[k])})")
    for cpus in (1, 2):
        took = statistics.median(starts[cpus])
        print(f"  start-up of {cpus} worker(s): {took:.1f} s (not in frames/s)")
    if med["ray, 1 CPU"] > 0:
        print(f"  2 CPUs / 1 CPU: {med['ray, 2 CPUs'] / med['ray, 1 CPU']:.2f}x (target >= 1.6x)")
    work, caller = statistics.median(worker_ms), statistics.median(caller_ms)
    one = 1000 / max(work, caller)  # one worker: the slower of it and the caller
    two = min(2000 / work, 1000 / caller, cores * 1000 / (work + caller))
    print(
        f"  CPU per frame: workers {work:.0f} ms, calling process {caller:.0f} ms; on "
        f"{cores} idle cores two workers can give at most {two / one:.2f}x one worker"
    )
    return 0


def _task_cpu_ms(model, options, sources, batch_size: int) -> float:
    """CPU ms per frame of the Ray tasks' work (ray_runner._colorize_group with the
    task's one thread), run in this process on the first frames."""
    import cv2

    from inkhue_engine import frames_io
    from inkhue_engine.ray_runner import TASK_CPUS, _colorize_group

    frames = [frames_io.read_image(s.path) for s in sources[: 4 * batch_size]]
    before = cv2.getNumThreads()
    try:
        run = [(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)]
        path = str(model.info.path)
        for group in run[:1]:  # warm: the one-thread session is loaded and cached
            _colorize_group(path, "cpu", options, group, [None] * len(group),
                            [True] * len(group), batch_size, TASK_CPUS)  # fmt: skip
        c0 = time.process_time()
        for group in run:
            _colorize_group(path, "cpu", options, group, [None] * len(group),
                            [True] * len(group), batch_size, TASK_CPUS)  # fmt: skip
        return (time.process_time() - c0) / len(frames) * 1000
    finally:
        cv2.setNumThreads(before)


if __name__ == "__main__":
    sys.exit(main())
