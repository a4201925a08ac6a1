"""Throughput of colorize --ray with 1 and 2 local Ray CPUs against one process (not a test).

    python benchmarks/bench_ray.py [--frames 16] [--size 1008x576] [--batch-size 2]

Writes a synthetic cartoon sequence (inkhue_engine.bench.cartoon_frame with a moving band)
to a temporary folder, colorizes it with batch.colorize_many in one process, then through
a RayRunner on a local cluster of 1 and of 2 CPUs (each started fresh), checks that the
outputs are the same bytes, and prints frames/s with the load average. Ray must be installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="1008x576", help="WIDTHxHEIGHT")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)

    from inkhue_engine import batch, bench, frames_io
    from inkhue_engine.model import load_model, resolve_model
    from inkhue_engine.pipeline import ColorizeOptions
    from inkhue_engine.ray_runner import RayRunner

    w, h = (int(v) for v in args.size.lower().split("x"))
    model = load_model(resolve_model(args.model), "cpu")
    options = ColorizeOptions()
    with tempfile.TemporaryDirectory(prefix="inkhue-bench-ray-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        first = bench.cartoon_frame(model.info.task, h, w)
        for i, f in enumerate(bench.moving_sequence(first, args.frames)):
            frames_io.write_image_atomic(src / f"f{i:04d}.png", f)
        sources = frames_io.expand_inputs([src])
        rates = {}
        ref = batch.colorize_many(
            sources, Path(tmp) / "local", model, options, batch_size=args.batch_size, progress=False
        )
        rates["one process"] = ref.fps
        for cpus in (1, 2):
            runner = RayRunner(model, options, args.batch_size, num_cpus=cpus)
            try:
                out = Path(tmp) / f"ray{cpus}"
                res = batch.colorize_many(
                    sources,
                    out,
                    model,
                    options,
                    batch_size=args.batch_size,
                    progress=False,
                    remote=runner,
                )
            finally:
                runner.close()
            rates[f"ray, {cpus} CPU(s)"] = res.fps
            same = all(
                (out / p.name).read_bytes() == p.read_bytes()
                for p in (Path(tmp) / "local").iterdir()
            )
            print(f"ray {cpus} CPU(s): outputs {'identical' if same else 'DIFFERENT'}")
        load = os.getloadavg()
        print(
            f"{args.frames} frames {w}x{h}, batch {args.batch_size}, load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, {os.cpu_count()} cores"
        )
        for k, v in rates.items():
            print(f"  {k:<18} {v:6.2f} frames/s")
        if rates["ray, 1 CPU(s)"] > 0:
            print(
                f"  2 CPUs / 1 CPU: {rates['ray, 2 CPU(s)'] / rates['ray, 1 CPU(s)']:.2f}x "
                "(target >= 1.6x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
