"""Export a generator to the engine's ONNX model contract (docs/DESIGN.md).

One self-contained ``.onnx`` file (no ``.onnx.data`` sidecar), input ``input``
``[N,4,H,W]``, output ``ab`` (grayscale) or ``lab`` (line art), dynamic N/H/W
(multiples of the generator's ``multiple_of``), and the ``inkhue.*`` metadata the
engine requires. Every export is checked against PyTorch in ONNX Runtime before it
replaces the destination file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inkhue_engine.errors import InputError, ModelError
from inkhue_engine.model import AB_CLASSES_KEY, CLASS_LOGITS_OUTPUT
from inkhue_training.networks import Generator, calibrate_batchnorm

FORMAT_VERSION = "1"
#: ONNX opset of exported models; onnxruntime >= 1.17 runs it (setup.cfg asks >= 1.18).
OPSET = 20
OUTPUT_NAMES = {"grayscale": "ab", "lineart": "lab"}
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def _atomic_target(path: Path) -> Path:
    """A fresh temp file name in ``path``'s folder (so os.replace is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result is a normal file
    return Path(tmp)


def model_metadata(
    gen: Generator,
    *,
    name: str,
    trained_on: str,
    train_size: int,
    palette: Sequence[str] | None = None,
) -> dict[str, str]:
    """The ``inkhue.*`` metadata_props of a generator's ONNX file."""
    meta = {
        "inkhue.format": FORMAT_VERSION,
        "inkhue.task": gen.task,
        "inkhue.multiple_of": str(int(gen.multiple_of)),
        "inkhue.train_size": str(int(train_size)),
        "inkhue.name": str(name),
        "inkhue.trained_on": str(trained_on),
    }
    if getattr(gen, "class_head", None) is not None:  # how to reproduce its colors
        meta["inkhue.color_head"] = f"classification, annealed mean T={gen.temperature:g}" + (
            f", regression prior sigma {gen.ab_prior_sigma:g}"
            if getattr(gen, "ab_prior_sigma", 0.0)
            else ""
        )
        # the ab of each class of the ab_logits output: the engine decodes a palette
        # lock from the class distribution (inkhue_engine.palette.palette_evidence)
        centers = gen.ab_centers.detach().cpu().numpy().astype(float)
        meta[AB_CLASSES_KEY] = json.dumps([[round(a, 3), round(b, 3)] for a, b in centers])
    if palette is not None:
        colors = [str(c) for c in palette]
        bad = [c for c in colors if not _HEX.match(c)]
        if bad:
            raise InputError(f"palette colors must be sRGB hex '#rrggbb', got {bad[:3]}")
        meta["inkhue.palette"] = json.dumps([c.lower() for c in colors])
    return meta


def random_inputs(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Plausible raw-Lab model inputs: random L, a few hinted pixels. float32 [n,4,h,w]."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 4, h, w), np.float32)
    x[:, 0] = rng.uniform(0, 100, (n, h, w))
    mask = rng.random((n, h, w)) < 0.05
    x[:, 1] = np.where(mask, rng.uniform(-80, 80, (n, h, w)), 0)
    x[:, 2] = np.where(mask, rng.uniform(-80, 80, (n, h, w)), 0)
    x[:, 3] = mask
    return x


class _WithClassLogits(torch.nn.Module):
    """Export view of a classification generator: (color, channels-last class logits)."""

    def __init__(self, gen: Generator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        color, last = self.gen.forward_with_class_logits(x)
        return color, last


def check_parity(
    gen: Generator,
    onnx_path: str | os.PathLike,
    *,
    sizes: Sequence[tuple[int, int, int]] | None = None,
    tolerance: float = 1e-3,
) -> float:
    """Run the ONNX file (ONNX Runtime, CPU) and ``gen`` (eval mode) on random inputs.

    ``sizes`` are (N, H, W) triples; by default two different ones, so a graph that
    lost its dynamic shapes fails too. Returns the max abs difference (Lab units) and
    raises ModelError when it is above ``tolerance`` or the shapes differ.
    """
    import onnxruntime as ort

    m = int(gen.multiple_of)
    if sizes is None:
        sizes = [(1, 4 * m, 6 * m), (2, 7 * m, 3 * m)]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    was_training = gen.training
    gen.eval()
    worst = 0.0
    try:
        for i, (n, h, w) in enumerate(sizes):
            x = random_inputs(n, h, w, seed=i)
            got = sess.run(None, {in_name: x})
            with torch.no_grad():
                color, last = gen.forward_with_class_logits(torch.from_numpy(x))
            refs = [color] + ([last] if last is not None else [])
            if len(got) != len(refs):
                raise ModelError(
                    f"{onnx_path}: the ONNX graph has {len(got)} outputs, PyTorch {len(refs)}"
                )
            for g, r in zip(got, refs, strict=True):
                r = r.float().cpu().numpy()
                if g.shape != r.shape:
                    raise ModelError(
                        f"{onnx_path}: ONNX output shape {g.shape} != PyTorch {r.shape} "
                        f"for input {x.shape}"
                    )
                worst = max(worst, float(np.max(np.abs(g - r))))
    finally:
        gen.train(was_training)
    if not worst <= tolerance:  # also catches NaN
        raise ModelError(
            f"{onnx_path}: ONNX and PyTorch outputs differ by {worst:.3g} "
            f"(tolerance {tolerance:g}): the export is wrong, do not ship it"
        )
    return worst


def export_generator(
    gen: Generator,
    path: str | os.PathLike,
    *,
    name: str,
    trained_on: str,
    train_size: int,
    palette: Sequence[str] | None = None,
    check: bool = True,
    tolerance: float = 1e-3,
    verbose: bool = False,
) -> float:
    """Export ``gen`` to one self-contained ONNX file at ``path``, atomically.

    Returns the max abs difference between ONNX Runtime and PyTorch (0.0 when
    ``check`` is False); raises ModelError above ``tolerance`` and leaves ``path``
    untouched then. The generator is exported in eval mode on the CPU (a copy).
    """
    import copy

    import onnx

    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: its folder does not exist; create it first")
    meta = model_metadata(
        gen, name=name, trained_on=trained_on, train_size=train_size, palette=palette
    )
    model = copy.deepcopy(gen).cpu().float().eval()
    model = model.to(memory_format=torch.contiguous_format)
    classify = getattr(model, "class_head", None) is not None
    outputs = [OUTPUT_NAMES[model.task]] + ([CLASS_LOGITS_OUTPUT] if classify else [])
    m = int(model.multiple_of)
    hb, wb = torch.export.Dim("hb", min=1), torch.export.Dim("wb", min=1)
    dynamic = {"x": {0: torch.export.Dim("batch", min=1), 2: m * hb, 3: m * wb}}
    example = torch.from_numpy(random_inputs(2, 4 * m, 5 * m))

    raw = _atomic_target(path)
    final = _atomic_target(path)
    try:
        with warnings.catch_warnings():  # torch-internal deprecation noise of the exporter
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                _WithClassLogits(model).eval() if classify else model,
                (example,),
                str(raw),
                dynamo=True,
                external_data=False,
                input_names=["input"],
                output_names=outputs,
                dynamic_shapes=dynamic,
                opset_version=OPSET,
                verbose=verbose,
            )
        proto = onnx.load(str(raw))
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(final))
        diff = check_parity(model, final, tolerance=tolerance) if check else 0.0
        os.replace(final, path)
    finally:
        for tmp in (raw, final):
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".data").unlink(missing_ok=True)
    return diff


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def write_metadata(path: str | os.PathLike, updates: dict[str, str | None]) -> None:
    """Set (or, for a None value, delete) metadata_props of an ONNX file, atomically."""
    import onnx

    path = Path(path)
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    for key, value in updates.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = str(value)
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = _atomic_target(path)
    try:
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def tiny_generator(
    task: str, seed: int = 0, channels: tuple[int, ...] = (8, 16, 32), n_res: int = 5
) -> Generator:
    """A small, seeded, freshly initialized generator with calibrated BatchNorm (tests)."""
    torch.manual_seed(seed)
    gen = Generator(task, channels=channels, n_res=n_res)
    batches = [torch.from_numpy(random_inputs(4, 64, 64, seed=seed + i)) for i in range(2)]
    calibrate_batchnorm(gen, batches)
    return gen


def load_checkpoint(ckpt_path: str | os.PathLike) -> dict[str, Any]:
    """Load a training checkpoint (CPU tensors); InputError if it is not one.

    ``weights_only=True``: a checkpoint holds tensors, dicts, lists and plain values only,
    and a .pt given to ``inkhue finetune --base`` may come from anywhere; torch's full
    unpickler would run any code the file names.
    """
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise InputError(f"{ckpt_path}: no such checkpoint file")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused an object
        raise InputError(
            f"{ckpt_path}: not a readable training checkpoint: it holds Python objects other "
            f"than tensors and plain values, and loading it could run code; use a checkpoint "
            f"written by inkhue"
        ) from exc
    except Exception as exc:  # torch raises many kinds for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{ckpt_path}: not a readable training checkpoint ({first})") from exc
    if not isinstance(ckpt, dict) or "generator_kwargs" not in ckpt:
        raise InputError(f"{ckpt_path}: not an InkHue training checkpoint (no generator_kwargs)")
    return ckpt


def generator_from_checkpoint(ckpt: dict[str, Any], use_ema: bool = True) -> Generator:
    """Rebuild the generator of a checkpoint: its EMA weights (default) or the raw ones."""
    gen = Generator(**ckpt["generator_kwargs"])
    if use_ema and ckpt.get("ema") is not None:
        # AveragedModel's state: "module.<name>" for the model, plus "n_averaged"
        state = {k[len("module.") :]: v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    else:
        state = ckpt["generator"]
    # a torch.compile'd model's keys carry "_orig_mod."
    state = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
    gen.load_state_dict(state)
    return gen.eval()


def set_temperature(gen: Generator, temperature: float, source: str | os.PathLike) -> None:
    """Decode ``gen``'s classification head at annealed-mean ``temperature`` (``--temperature``
    of export and pack-base); InputError for a regression head or a value out of (0, 10]."""
    if gen.class_head is None:
        raise InputError(
            f"--temperature: {source} has a regression color head; the temperature "
            f"only decodes a classification head (--color-head classification)"
        )
    if not 0.0 < temperature <= 10.0:
        raise InputError(f"--temperature {temperature:g}: use a value in (0, 10]")
    gen.temperature = float(temperature)


def export_checkpoint(
    ckpt_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    name: str | None = None,
    trained_on: str | None = None,
    palette: Sequence[str] | None = None,
    use_ema: bool = True,
    temperature: float | None = None,
    check: bool = True,
    tolerance: float = 1e-3,
) -> float:
    """Export the (EMA) generator of a training checkpoint; returns the parity max abs diff.

    ``name`` defaults to the run folder's name, ``trained_on`` to the checkpoint's
    record of its data; ``train_size`` is the crop size it was trained at. ``temperature``
    sets a classification head's annealed-mean temperature (refused for regression).
    """
    ckpt = load_checkpoint(ckpt_path)
    cfg = ckpt.get("config") or {}
    gen = generator_from_checkpoint(ckpt, use_ema=use_ema)
    if temperature is not None:
        set_temperature(gen, temperature, ckpt_path)
    default_trained_on = cfg.get("trained_on") or ", ".join(
        Path(p).name for p in cfg.get("data", []) or []
    )
    return export_generator(
        gen,
        out_path,
        name=name or Path(ckpt_path).resolve().parent.name,
        trained_on=trained_on or default_trained_on or "unknown",
        train_size=int(cfg.get("crop_size", 128)),
        palette=palette,
        check=check,
        tolerance=tolerance,
    )
