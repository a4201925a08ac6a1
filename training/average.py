"""Average the weights of training checkpoints of one network (a "model soup").

    python -m inkhue_training.average A.pt B.pt [C.pt ...] [--weights 0.5,0.5] -o SOUP.pt

Checkpoints that continue one model (same architecture, same start) can be averaged
tensor by tensor; the average often lies in a flatter, better part of the loss surface than
either (Wortsman et al., "Model soups", ICML 2022). The shipped grayscale model is such an
average of two CPU continuations (docs/TRAINING.md, "An average of two continuations").

Averaged: every floating-point tensor of the generator, its EMA (what ``inkhue export``
reads) and the discriminator, including BatchNorm's running statistics. Integer tensors
(BatchNorm's batch counts, the EMA's count) and every other field (step, config,
generator_kwargs, class weights) come from the first checkpoint; optimizer states and RNG
states are dropped (an average is a new starting point for ``--init-from`` or an export,
not a run to resume). The output records ``averaged_from`` (path, weight, step of each).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from inkhue_engine.errors import InputError
from inkhue_training.export import load_checkpoint

#: The state dicts an average combines; a checkpoint without one (no EMA) is averaged
#: only when none of the others has it either.
AVERAGED = ("generator", "ema", "discriminator")
#: Fields of a run checkpoint that make no sense for an average (see the module doc).
DROPPED = ("opt_g", "opt_d", "rng", "best", "batch_in_epoch")


def parse_weights(text: str | None, n: int) -> list[float]:
    """Weights of ``n`` checkpoints from "w1,w2,...", normalized to sum to 1 (None: equal)."""
    if text is None:
        return [1.0 / n] * n
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise InputError(f"--weights {text!r}: give {n} numbers separated by commas") from None
    if len(weights) != n:
        raise InputError(f"--weights {text!r}: {len(weights)} weight(s) for {n} checkpoints")
    if any(not (math.isfinite(w) and w >= 0) for w in weights) or sum(weights) <= 0:
        raise InputError(
            f"--weights {text!r}: weights must be finite numbers of 0 or more, not all 0"
        )
    total = sum(weights)
    return [w / total for w in weights]


def _check_same_network(paths: Sequence[Path], ckpts: Sequence[dict[str, Any]]) -> None:
    first = ckpts[0]
    for path, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        if ckpt["generator_kwargs"] != first["generator_kwargs"]:
            raise InputError(
                f"{path}: another network than {paths[0]} ({ckpt['generator_kwargs']} vs "
                f"{first['generator_kwargs']}): only checkpoints of one architecture average"
            )
        for key in AVERAGED:
            a, b = first.get(key), ckpt.get(key)
            if (a is None) != (b is None):
                raise InputError(
                    f"{path}: has {'no ' if b is None else ''}{key} state where {paths[0]} "
                    f"has {'none' if a is None else 'one'}: average checkpoints of one kind "
                    "(run checkpoints, or packed bases)"
                )
            if a is None:
                continue
            if a.keys() != b.keys():
                raise InputError(f"{path}: its {key} tensors are named unlike {paths[0]}'s")
            for name, t in a.items():
                if torch.is_tensor(t) and (
                    not torch.is_tensor(b[name]) or b[name].shape != t.shape
                ):
                    raise InputError(
                        f"{path}: {key} tensor {name} differs in shape from {paths[0]}'s"
                    )


def average_checkpoints(
    paths: Sequence[str | os.PathLike[str]], weights: Sequence[float] | None = None
) -> dict[str, Any]:
    """The weighted average of the checkpoints at ``paths`` (see the module doc);
    ``weights`` default to equal and must sum to 1."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise InputError("give at least two checkpoints to average")
    weights = list(weights) if weights is not None else [1.0 / len(paths)] * len(paths)
    finite = all(math.isfinite(w) and w >= 0 for w in weights)
    if len(weights) != len(paths) or not finite or abs(sum(weights) - 1.0) > 1e-6:
        raise InputError(
            f"{len(paths)} checkpoints need {len(paths)} weights of 0 or more summing to 1"
        )
    ckpts = [load_checkpoint(p) for p in paths]
    _check_same_network(paths, ckpts)
    out = {k: v for k, v in ckpts[0].items() if k not in DROPPED}
    for key in AVERAGED:
        if ckpts[0].get(key) is None:
            continue
        state = {}
        for name, t in ckpts[0][key].items():
            if torch.is_tensor(t) and t.is_floating_point():
                acc = weights[0] * t
                for w, ckpt in zip(weights[1:], ckpts[1:], strict=True):
                    acc = acc + w * ckpt[key][name]
                state[name] = acc.to(t.dtype)
            else:
                state[name] = t
        out[key] = state
    out["averaged_from"] = [
        {"path": str(p), "weight": float(w), "step": c.get("step")}
        for p, w, c in zip(paths, weights, ckpts, strict=True)
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m inkhue_training.average", description=__doc__.splitlines()[0]
    )
    ap.add_argument("checkpoints", nargs="+", type=Path, help="two or more .pt checkpoints")
    ap.add_argument(
        "--weights", help="comma-separated weights, one per checkpoint (default: equal)"
    )
    ap.add_argument("-o", "--output", type=Path, required=True, help="the averaged .pt")
    args = ap.parse_args(argv)
    try:
        if any(args.output.resolve() == p.resolve() for p in args.checkpoints):
            raise InputError(f"{args.output}: is one of the inputs; write the average elsewhere")
        weights = parse_weights(args.weights, len(args.checkpoints))
        soup = average_checkpoints(args.checkpoints, weights)
    except InputError as exc:
        print(f"average: error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=args.output.name + ".", dir=args.output.parent)
    os.close(fd)
    try:
        torch.save(soup, tmp)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    parts = ", ".join(f"{p} x {w:.3g}" for p, w in zip(args.checkpoints, weights, strict=True))
    print(f"wrote {args.output}: {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
