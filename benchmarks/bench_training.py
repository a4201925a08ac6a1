"""Training throughput (issue 11's target: at least 25 crops/s at 128 px with L1 + GAN).

Runs the real training loop (``inkhue_training.train.train``: data loading, augmentation,
hints, generator and discriminator steps, EMA) on synthetic cartoons for a few dozen steps,
once per ``--amp`` setting, and reports the median crops/s of the logged steps after the
first ones (warm-up). The machine's load average is printed beside each figure: on a shared
2-core VM it moves the result more than anything else.

    python benchmarks/bench_training.py [--steps 60] [--amp off bf16] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine.color import from_float01
from inkhue_training.options import TrainConfig
from inkhue_training.quantize import cartoon_truths
from inkhue_training.train import train

TARGET = 25.0  # crops/s at 128 px, L1 + GAN (issue 11)


def measure(data: Path, work: Path, amp: str, steps: int, batch: int, crop: int) -> dict:
    """Median crops/s of one short run, skipping the first logged steps."""
    run = work / f"run-{amp}"
    config = TrainConfig(
        data=[str(data)], task="grayscale", out=str(run), crop_size=crop, batch_size=batch,
        amp=amp, max_steps=steps, log_every=5, save_every=0, val_every=0, val_fraction=0.0,
        grid_images=0, progress=False,
    )  # fmt: skip
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    code = train(config)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"bench_training: the {amp} run stopped with code {code}")
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    rates = [r["img_s"] for r in rows if r.get("kind") == "train"][2:]
    return {
        "amp": amp,
        "crops_per_s": round(statistics.median(rates), 2),
        "steps": steps,
        "batch": batch,
        "crop": crop,
        "wall_s": round(wall, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--amp", nargs="+", default=["off", "bf16"], choices=["off", "bf16"])
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inkhue-bench-train-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for i, img in enumerate(cartoon_truths(64, size=256, seed=7)):
            rgb = from_float01(img, np.uint8)
            cv2.imwrite(str(data / f"c{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        results = [
            measure(data, Path(tmp), amp, args.steps, args.batch, args.crop) for amp in args.amp
        ]
    print(f"\ntraining throughput, {args.crop} px crops, batch {args.batch}, L1 + GAN "
          f"(target >= {TARGET:g} crops/s), {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'amp':6} {'crops/s':>8} {'load before':>12} {'load after':>11}  target")
    for r in results:
        met = "met" if r["crops_per_s"] >= TARGET else "MISSED"
        print(f"{r['amp']:6} {r['crops_per_s']:8.2f} {r['load_before']:12.2f} "
              f"{r['load_after']:11.2f}  {met}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"target": TARGET, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
