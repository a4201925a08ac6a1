"""Reduced-precision variants of an InkHue ONNX model: int8 (CPU) and fp16 (GPU).

    python -m inkhue_training.quantize int8 MODEL.onnx -o MODEL.int8.onnx [--calib DIR ...]
    python -m inkhue_training.quantize fp16 MODEL.onnx -o MODEL.fp16.onnx

int8: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8
activations), calibrated on model inputs made the way the engine makes them
(``pipeline.prepare_frame``) from calibration images: by default synthetic colored
cartoons drawn here and the photos bundled with scikit-image, half of them with
sampled hints. Dynamic quantization was measured too and left out: ONNX Runtime runs
its ConvInteger about 7x slower than the float model here (docs/PERFORMANCE.md).

fp16: weights and activations in float16 with float32 input and output
(``onnxruntime.transformers.float16``), for CUDA / TensorRT. Untested on a GPU (none
was available where it was written); it is not offered by the engine's options until
measured there.

The variant keeps the ``inkhue.*`` metadata, with ``inkhue.name`` suffixed
("grayscale-int8") and ``inkhue.precision`` set, so model lists tell it apart and a
name lookup of the float model never picks it. The engine's ``--precision int8``
loads ``NAME.int8.onnx`` next to ``NAME.onnx``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine.errors import InputError

PRECISIONS = ("int8", "fp16")
#: Calibration inputs per run (each image with and without hints).
DEFAULT_CALIB_IMAGES = 24


def cartoon_truths(n: int, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """``n`` synthetic colored cartoons (sRGB float01): flat colored shapes with soft
    shading and dark outlines on light paper."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.full((size, size, 3), rng.uniform(0.85, 1.0, 3), np.float32)
        for _ in range(int(rng.integers(4, 12))):
            c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            lo, hi = size // 16, size // 3
            axes = (int(rng.integers(lo, hi)), int(rng.integers(lo, hi)))
            color = tuple(float(v) for v in rng.uniform(0.05, 0.95, 3))
            ang = float(rng.uniform(0, 180))
            cv2.ellipse(img, c, axes, ang, 0, 360, color, -1, cv2.LINE_AA)
            cv2.ellipse(img, c, axes, ang, 0, 360, (0.05, 0.05, 0.05), 2, cv2.LINE_AA)
        shade = np.linspace(0.92, 1.04, size, dtype=np.float32)[:, None, None]
        out.append(np.clip(img * shade, 0, 1))
    return out


def bundled_photos(size: int = 256) -> list[np.ndarray]:
    """The color photos shipped in scikit-image's data folder, scaled to ``size``."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    out = []
    for name in (
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "retina.jpg",
        "ihc.png",
        "color.png",
    ):
        path = folder / name
        if not path.is_file():
            continue
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        s = size / max(rgb.shape[:2])
        out.append(
            cv2.resize(
                rgb,
                (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
                interpolation=cv2.INTER_AREA,
            )
        )
    return out


def folder_truths(folders: Sequence[Path], size: int = 256) -> list[np.ndarray]:
    """Color images of the given folders (sRGB float01, long side ``size``)."""
    from inkhue_engine import frames_io
    from inkhue_engine.color import on_white

    out = []
    for folder in folders:
        files = sorted(
            p
            for p in Path(folder).iterdir()
            if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff")
        )
        if not files:
            raise InputError(f"--calib {folder}: no images")
        for p in files:
            rgb = on_white(frames_io.read_image(p))
            s = size / max(rgb.shape[:2])
            if s < 1:
                rgb = cv2.resize(
                    rgb,
                    (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
                    interpolation=cv2.INTER_AREA,
                )
            out.append(rgb)
    return out


def calibration_inputs(
    model_path: Path, truths: Sequence[np.ndarray], seed: int = 0
) -> Iterator[np.ndarray]:
    """Model inputs [1, 4, H, W] as the engine prepares them from each truth image: the
    task's input (gray = the truth's L; line art synthesized), without and with hints."""
    from inkhue_engine import pipeline
    from inkhue_engine.color import from_float01, rgb_to_lab
    from inkhue_engine.hints import sample_hints
    from inkhue_engine.lineart import synthesize_lineart
    from inkhue_engine.model import read_model_info

    info = read_model_info(model_path)
    rng = np.random.default_rng(seed)
    for truth in truths:
        lab = rgb_to_lab(truth)
        L = synthesize_lineart(truth, rng) if info.task == "lineart" else lab[..., 0]
        gray = from_float01(np.clip(L / 100.0, 0, 1), np.uint8)  # a gray frame of that L
        for n_hints in (0, int(rng.integers(1, 30))):
            ab, mask = sample_hints(lab, n_hints, rng)
            p = pipeline.prepare_frame(gray, info, (ab, mask) if n_hints else None)
            yield p.input[None]


def _copy_metadata(src: Path, dst: Path, precision: str) -> None:
    import onnx

    from inkhue_training.export import read_metadata, write_metadata

    meta = read_metadata(src)
    meta["inkhue.name"] = f"{meta.get('inkhue.name', src.stem)}-{precision}"
    meta["inkhue.precision"] = precision
    onnx.checker.check_model(str(dst))
    write_metadata(dst, meta)


def end_convs(model: Path) -> list[str]:
    """Names of the first and the last Conv node: the layer that reads raw Lab units and
    sparse hints, and the head that writes the colors."""
    import onnx

    convs = [n.name for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"]
    return sorted({convs[0], convs[-1]}) if convs else []


def quantize_int8(
    model: Path, out: Path, truths: Sequence[np.ndarray], keep_ends: bool = True
) -> Path:
    """Static QDQ int8 variant of ``model`` calibrated on ``truths``; written atomically.

    ``keep_ends``: leave the first and last Conv in float (end_convs): on held-out frames
    it cut the output error against fp32 by a fifth (docs/PERFORMANCE.md)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = list(calibration_inputs(model, truths))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter({"input": x} for x in inputs)

        def get_next(self):  # noqa: ANN201 - ORT's interface
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="inkhue-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
        part = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre),
            str(part),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=end_convs(model) if keep_ends else [],
        )
        _copy_metadata(model, part, "int8")
        _replace(part, out)
    return out


def convert_fp16(model: Path, out: Path) -> Path:
    """fp16 variant (float32 input/output kept) for GPU providers; written atomically.
    UNTESTED on a GPU: see the module doc."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(model))
    half = convert_float_to_float16(proto, keep_io_types=True)
    _toposort(half.graph)  # the converter appends its input casts after their users
    with tempfile.TemporaryDirectory(prefix="inkhue-fp16-") as tmp:
        part = Path(tmp) / "fp16.onnx"
        onnx.save(half, str(part))
        _copy_metadata(model, part, "fp16")
        _replace(part, out)
    return out


def _toposort(graph) -> None:  # noqa: ANN001 - an onnx GraphProto
    """Order ``graph``'s nodes so that every input is produced before it is used."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise InputError("the fp16 graph has a cycle or an undefined input")
        for n in ready:
            known.update(n.output)
        ordered += ready
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def _replace(part: Path, out: Path) -> None:
    from inkhue_engine.frames_io import write_bytes_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, part.read_bytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m inkhue_training.quantize", description=__doc__.splitlines()[0]
    )
    ap.add_argument("precision", choices=PRECISIONS)
    ap.add_argument("model", type=Path, help="float32 InkHue ONNX model")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument(
        "--calib",
        type=Path,
        action="append",
        default=[],
        help="folder of color images to calibrate on (int8; default: synthetic "
        "cartoons and scikit-image's photos)",
    )
    ap.add_argument(
        "--all-int8",
        action="store_true",
        help="quantize the first and last Conv too (default: kept in float)",
    )
    ap.add_argument(
        "--calib-images",
        type=int,
        default=DEFAULT_CALIB_IMAGES,
        help=f"synthetic cartoons when no --calib (default {DEFAULT_CALIB_IMAGES})",
    )
    args = ap.parse_args(argv)
    if not args.model.is_file():
        print(f"quantize: error: {args.model}: model file not found", file=sys.stderr)
        return 2
    if args.output.resolve() == args.model.resolve():
        print(
            "quantize: error: -o must differ from the model (inputs are never overwritten)",
            file=sys.stderr,
        )
        return 2
    try:
        if args.precision == "int8":
            truths = (
                folder_truths(args.calib)
                if args.calib
                else cartoon_truths(args.calib_images) + bundled_photos()
            )
            quantize_int8(args.model, args.output, truths, keep_ends=not args.all_int8)
        else:
            convert_fp16(args.model, args.output)
    except InputError as exc:
        print(f"quantize: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.precision}: {args.output} ({os.path.getsize(args.output) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
