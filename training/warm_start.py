"""Start a new training run from another run's weights where the shapes allow (``--init-from``).

Base models 2.0 add parts to the seed's generator (a global-context branch, a classification
head). Training those from scratch costs CPU days; starting from the shipped checkpoint keeps
everything the two architectures share (encoder, residual blocks, decoder) and initializes only
the new parts. This is not a resume: optimizers, EMA and the step count start fresh.

Rules, applied tensor by tensor over the new network's state dict:
- same name and shape: copied;
- line art's regression head (L, a, b) into a classification run's head (L only): the L row
  is copied, since the classification head regresses L alone;
- a global-context branch new to the run starts as the identity: its fusion conv passes the
  local features through and gives the image-level vector zero weight, and its BatchNorm
  undoes its own normalization (the statistics of the bottleneck features, computed from the
  encoder's last BatchNorm), so the warm-started network computes what the source did and
  the branch grows from there (as zero-initialized residual branches do) rather than first
  scrambling every feature the residual blocks were trained on;
- anything else (new modules, other shapes): left at the new network's initialization and
  listed in the report, so a run says what it learned from scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inkhue_engine.errors import InputError


@dataclass
class InitReport:
    """What a warm start took from the source checkpoint."""

    copied: list[str] = field(default_factory=list)
    sliced: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    #: fresh tensors set so that their module starts as the identity
    identity: list[str] = field(default_factory=list)

    def line(self, what: str) -> str:
        """One line for the run's log."""

        def short(names: list[str]) -> str:
            prefixes = sorted({n.rsplit(".", 1)[0] for n in names})
            return ", ".join(prefixes) if prefixes else "none"

        total = len(self.copied) + len(self.sliced) + len(self.fresh)
        return (
            f"{what}: {len(self.copied) + len(self.sliced)} of {total} tensors from the "
            f"checkpoint (sliced: {short(self.sliced)}); initialized fresh: {short(self.fresh)}"
            + (f" (started as the identity: {short(self.identity)})" if self.identity else "")
            + f"; not used: {short(self.unused)}"
        )


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.replace("_orig_mod.", ""): v for k, v in state.items()}


def generator_source(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The generator weights a warm start copies: the EMA ones when the checkpoint has them."""
    ema = ckpt.get("ema")
    if ema is not None:
        return _strip({k[len("module.") :]: v for k, v in ema.items() if k.startswith("module.")})
    return _strip(ckpt["generator"])


def adapt_state(
    source: dict[str, torch.Tensor], target: nn.Module
) -> tuple[dict[str, torch.Tensor], InitReport]:
    """A full state dict for ``target``: its own initialization, overwritten from ``source``
    wherever the rules of this module allow; with the report of what was taken."""
    report = InitReport()
    state = {k: v.clone() for k, v in target.state_dict().items()}
    for name, mine in state.items():
        theirs = source.get(name)
        if theirs is None:
            report.fresh.append(name)
        elif theirs.shape == mine.shape:
            state[name] = theirs.to(mine.dtype).clone()
            report.copied.append(name)
        elif (
            name.startswith("head.")
            and theirs.ndim == mine.ndim
            and theirs.shape[1:] == mine.shape[1:]
            and mine.shape[0] == 1
            and theirs.shape[0] == 3
        ):
            state[name] = theirs[:1].to(mine.dtype).clone()  # line art's L row
            report.sliced.append(name)
        else:
            report.fresh.append(name)
    report.unused = sorted(set(source) - set(state))
    return state, report


def rectified_gaussian_moments(
    mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, standard deviation) of ReLU(x) for x ~ N(mean, std**2), elementwise."""
    std = std.abs().clamp_min(1e-6)
    a = mean / std
    pdf = torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(a / math.sqrt(2)))
    m1 = mean * cdf + std * pdf
    m2 = (mean * mean + std * std) * cdf + mean * std * pdf
    return m1, (m2 - m1 * m1).clamp_min(1e-12).sqrt()


def identity_context(state: dict[str, torch.Tensor], report: InitReport) -> None:
    """Set a fresh global-context fusion (1x1 conv over [local, global], BatchNorm, ReLU) in
    ``state`` to pass the local features through unchanged.

    The features entering it are ReLU(BatchNorm(...)) of the encoder's last stage, whose
    affine weight and bias say each channel's pre-activation mean and spread; the
    rectified-Gaussian moments of those are what the fusion's BatchNorm will measure, so
    scaling and shifting by them undoes its normalization (exactly in eval mode, where
    the running statistics are used; up to the batch's deviation from them in training).
    """
    conv = state["context.fuse.0.weight"]  # [ch, 2ch, 1, 1]
    ch = conv.shape[0]
    stages = sorted({int(k.split(".")[1]) for k in state if k.startswith("encoder.")})
    last = f"encoder.{stages[-1]}.1"
    mean, std = rectified_gaussian_moments(state[f"{last}.bias"], state[f"{last}.weight"])
    weight = torch.zeros_like(conv)
    weight[:, :ch, 0, 0] = torch.eye(ch, dtype=conv.dtype)
    updates = {
        "context.fuse.0.weight": weight,
        "context.fuse.1.weight": std,
        "context.fuse.1.bias": mean,
        "context.fuse.1.running_mean": mean,
        "context.fuse.1.running_var": std * std,
    }
    for name, value in updates.items():
        state[name] = value.to(state[name].dtype).reshape(state[name].shape).clone()
        report.identity.append(name)


def load_init(
    path: str | Path, generator: nn.Module, discriminator: nn.Module, task: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """Generator and discriminator state dicts for a run started ``--init-from`` ``path``.

    Refuses a checkpoint of another task (its colors mean something else). Returns the two
    state dicts and the report lines.
    """
    from inkhue_training.export import load_checkpoint

    ckpt = load_checkpoint(path)
    src_task = ckpt["generator_kwargs"].get("task")
    if src_task != task:
        raise InputError(
            f"--init-from {path}: a {src_task} checkpoint cannot start a {task} run; "
            f"use a {task} checkpoint"
        )
    g_state, g_report = adapt_state(generator_source(ckpt), generator)
    if "context.fuse.0.weight" in g_report.fresh:
        identity_context(g_state, g_report)
    if not any(g_state[n].ndim > 1 for n in g_report.copied):  # a conv or linear weight
        raise InputError(
            f"--init-from {path}: no generator tensor has the shape of this run's; "
            f"is it the same --channels and --n-res?"
        )
    d_src = _strip(ckpt.get("discriminator") or {})
    d_state, d_report = adapt_state(d_src, discriminator)
    return g_state, d_state, [g_report.line("generator"), d_report.line("discriminator")]
