"""Models: reading the InkHue ONNX contract, choosing providers, running sessions.

The engine needs ONNX Runtime (the ``onnxruntime`` or ``onnxruntime-gpu`` wheel,
extras ``cpu`` / ``gpu``) but never the ``onnx`` package: metadata is read from
an ONNX Runtime session (``get_modelmeta().custom_metadata_map``) and cached per
file version (path, mtime, size).

Providers: ``get_available_providers()`` lists CUDA and TensorRT even on a machine
without a GPU (docs/FACTS.md), so it only says what the *installed wheel* could
use. What really runs is ``session.get_providers()`` after the session exists;
``Model.providers`` and ``Model.device`` report that.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inkhue_engine.errors import InkHueError, ModelError, ResourceError

log = logging.getLogger(__name__)

TASKS = ("grayscale", "lineart")
#: Output name and channel count of each task (docs/DESIGN.md, the model contract).
TASK_OUTPUTS = {"grayscale": ("ab", 2), "lineart": ("lab", 3)}
#: Optional second output of a model with a classification color head (docs/DESIGN.md):
#: channels-last class logits [N, H, W, Q], and the metadata key that gives the ab of
#: each of the Q classes (a JSON list of [a, b]).
CLASS_LOGITS_OUTPUT = "ab_logits"
AB_CLASSES_KEY = "inkhue.ab_classes"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "inkhue.format",
    "inkhue.task",
    "inkhue.multiple_of",
    "inkhue.train_size",
    "inkhue.name",
    "inkhue.trained_on",
)
DEVICES = ("auto", "cpu", "cuda", "tensorrt", "directml", "coreml")
#: Execution provider of each explicit device.
DEVICE_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
PROVIDER_DEVICES = {v: k for k, v in DEVICE_PROVIDERS.items()}
#: What ``auto`` tries, in order, before the CPU. TensorRT is left out on purpose:
#: it builds an engine per new input shape (minutes), and frames come in many sizes;
#: ask for it with device='tensorrt'.
AUTO_ORDER = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")
#: Wheels that install the ``onnxruntime`` module, most specific first.
ORT_PACKAGES = (
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-silicon",
    "onnxruntime",
)
ORT_MISSING = (
    "ONNX Runtime is not installed: pip install 'inkhue[cpu]' (or 'inkhue[gpu]' for NVIDIA GPUs)"
)
#: Substrings of ONNX Runtime / CUDA error messages that mean "out of memory".
_OOM_MARKERS = (
    "failed to allocate memory",
    "bad_alloc",
    "out of memory",
    "cuda_error_out_of_memory",
    "cudaerrormemoryallocation",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "e_outofmemory",
)
OOM_ADVICE = "out of memory while running the model: lower --detail or --batch-size"


# --------------------------------------------------------------------------- runtime


def import_ort() -> Any:
    """Import ONNX Runtime quietly, or raise InkHueError saying how to install it."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise InkHueError(ORT_MISSING) from exc
    if not hasattr(ort, "InferenceSession"):
        # Both wheels installed (or one uninstalled after the other) leave a broken module.
        raise InkHueError(
            "ONNX Runtime is broken (were both onnxruntime and onnxruntime-gpu installed?): "
            "pip uninstall -y onnxruntime onnxruntime-gpu, then pip install 'inkhue[cpu]' "
            "or 'inkhue[gpu]'"
        )
    # 3 = errors only: hides the two stderr lines of a CUDA wheel without CUDA libraries.
    ort.set_default_logger_severity(3)
    return ort


def ort_package() -> tuple[str, str]:
    """(wheel name, version) of the installed ONNX Runtime, e.g. ('onnxruntime-gpu', '1.31.0')."""
    from importlib import metadata

    ort = import_ort()
    for name in ORT_PACKAGES:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "onnxruntime (unknown wheel)", str(getattr(ort, "__version__", "?"))


def available_providers() -> list[str]:
    """Providers the installed wheel was built with (NOT proof that a GPU works)."""
    return list(import_ort().get_available_providers())


def _provider_entry(name: str) -> str | tuple[str, dict[str, str]]:
    if name == "CUDAExecutionProvider":
        # Heuristic conv search: frames come in many sizes; EXHAUSTIVE re-benchmarks each.
        return (name, {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"})
    if name == "TensorrtExecutionProvider":
        cache = _cache_dir() / "tensorrt"
        return (
            name,
            {
                "device_id": "0",
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(cache),
            },
        )
    return name


def choose_providers(device: str = "auto") -> list[str | tuple[str, dict[str, str]]]:
    """Providers to ask ONNX Runtime for, in priority order, ending with the CPU.

    ``device``: auto | cpu | cuda | tensorrt | directml | coreml. ``auto`` takes
    CUDA, DirectML or CoreML when the installed wheel has them (the session may
    still fall back to the CPU: see Model.providers). An explicit device that the
    installed wheel lacks raises InkHueError naming the wheel to install.
    Entries are provider names or (name, options) pairs, as InferenceSession takes.
    """
    device = (device or "auto").lower()
    if device not in DEVICES:
        raise InkHueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    available = available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        chosen = [p for p in AUTO_ORDER if p in available]
    else:
        wanted = DEVICE_PROVIDERS[device]
        if wanted not in available:
            pkg, ver = ort_package()
            have = ", ".join(PROVIDER_DEVICES[p] for p in available if p in PROVIDER_DEVICES)
            swap = f"pip uninstall -y {pkg}, then "  # two ORT wheels break each other
            hint = {
                "cuda": swap + "pip install 'inkhue[gpu]'",
                "tensorrt": swap + "pip install 'inkhue[gpu]', and install NVIDIA TensorRT",
                "directml": swap + "pip install onnxruntime-directml (Windows)",
                "coreml": "use the onnxruntime wheel for macOS",
            }[device]
            raise InkHueError(
                f"device {device!r} is not available in {pkg} {ver} (it has: {have}): "
                f"{hint}, or use --device auto"
            )
        chosen = [wanted]
        if device == "tensorrt" and "CUDAExecutionProvider" in available:
            chosen.append("CUDAExecutionProvider")  # TensorRT hands unsupported nodes to CUDA
    return [_provider_entry(p) for p in chosen] + ["CPUExecutionProvider"]


def _session_options(ort: Any, providers: list, light: bool = False, threads: int = 0) -> Any:
    so = ort.SessionOptions()
    if threads > 0:  # 0: ONNX Runtime's default (one per physical core)
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    # No busy-waiting threads: kinder inside a host application (Krita), costs ~nothing.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if light:  # metadata only: skip graph optimization
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if "DmlExecutionProvider" in providers:
        # DirectML supports neither memory patterns nor parallel execution (ORT docs)
        so.enable_mem_pattern = False
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return so


def _create_session(
    ort: Any, path: Path, providers: list, light: bool = False, threads: int = 0
) -> Any:
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    names = [p if isinstance(p, str) else p[0] for p in providers]
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=_session_options(ort, names, light, threads),
            providers=providers,
            # ORT's own fallbacks print to stdout, and the one inside run() moves the
            # session to the CPU behind Model.providers: the CPU retry is made here, logged
            enable_fallback=0,
        )
    except Exception as exc:  # ORT raises its own pybind exception types
        msg = _first_line(exc)
        if _is_oom(msg):
            raise ResourceError(f"{path.name}: {OOM_ADVICE} ({msg})") from exc
        low = msg.lower()
        if "protobuf" in low or "no graph" in low or "load model" in low:
            why = msg.rsplit("failed:", 1)[-1].strip() if "failed:" in msg else msg
            raise ModelError(
                f"{path}: not an ONNX model ({why}); export one with 'inkhue export'"
            ) from exc
        if len(providers) > 1:  # a GPU provider that failed to start: the next one
            log.warning(
                "%s: %s failed to start (%s); trying %s", path.name, names[0], msg, names[1]
            )
            return _create_session(ort, path, providers[1:], light, threads)
        raise ModelError(f"{path}: ONNX Runtime cannot load this model: {msg}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _is_oom(msg: str) -> bool:
    low = msg.lower()
    return any(m in low for m in _OOM_MARKERS)


def _cache_dir() -> Path:
    """The platform's cache folder for InkHue (platformdirs: ~/.cache/inkhue on Linux,
    ~/Library/Caches/inkhue on macOS, %LOCALAPPDATA%/inkhue/Cache on Windows)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("inkhue", appauthor=False))


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class ModelInfo:
    """What an InkHue ONNX file says about itself (its ``inkhue.*`` metadata)."""

    path: Path
    name: str
    task: str  # 'grayscale' | 'lineart'
    multiple_of: int
    train_size: int
    trained_on: str
    palette: list[str] | None
    format: int
    builtin: bool = False
    #: ab (Lab units) of each color class of the ``ab_logits`` output, [Q, 2]; None for a
    #: model without one (a regression color head)
    ab_classes: tuple[tuple[float, float], ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the server's /models entries use these keys)."""
        return {
            "name": self.name,
            "task": self.task,
            "file": str(self.path),
            "train_size": self.train_size,
            "multiple_of": self.multiple_of,
            "trained_on": self.trained_on,
            "palette": list(self.palette) if self.palette is not None else None,
            "builtin": self.builtin,
        }


#: Sane bounds of the size metadata. A frame is padded up to a multiple of
#: ``multiple_of`` (a U-Net with 8 halvings needs 256; 100000 asked numpy for 37 GiB), and
#: the working short side is ``train_size`` x detail (16 px is too small to colorize,
#: 4096 beyond any frame the pipeline works at).
MULTIPLE_OF_RANGE = (1, 256)
TRAIN_SIZE_RANGE = (16, 4096)


def _positive_int(path: Path, meta: dict[str, str], key: str, bounds: tuple[int, int]) -> int:
    raw = meta[key]
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ModelError(
            f"{path.name}: metadata {key}={raw!r} is not a positive integer; "
            "re-export the model with 'inkhue export'"
        )
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ModelError(
            f"{path.name}: metadata {key}={value} is outside {lo}..{hi}: the file is broken "
            "or not meant for InkHue; re-export the model with 'inkhue export'"
        )
    return value


def _info_from_session(path: Path, session: Any, builtin: bool = False) -> ModelInfo:
    """Validate the model contract on a loaded session and return its ModelInfo."""
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(
            f"{path.name}: not an InkHue model: missing metadata {', '.join(missing)}; "
            "export it with 'inkhue export'"
        )
    if meta["inkhue.format"].strip() != str(FORMAT_VERSION):
        raise ModelError(
            f"{path.name}: model format {meta['inkhue.format']!r} is not supported by this "
            f"engine (format {FORMAT_VERSION}): update inkhue or re-export the model"
        )
    task = meta["inkhue.task"].strip()
    if task not in TASKS:
        raise ModelError(
            f"{path.name}: metadata inkhue.task={task!r} is unknown: use 'grayscale' or 'lineart'"
        )
    multiple_of = _positive_int(path, meta, "inkhue.multiple_of", MULTIPLE_OF_RANGE)
    train_size = _positive_int(path, meta, "inkhue.train_size", TRAIN_SIZE_RANGE)
    palette = None
    if "inkhue.palette" in meta:
        palette = _parse_palette_meta(path, meta["inkhue.palette"])
    _check_graph(path, session, task)
    ab_classes = _check_class_logits(path, session, meta)
    return ModelInfo(
        path=path,
        name=meta["inkhue.name"],
        task=task,
        multiple_of=multiple_of,
        train_size=train_size,
        trained_on=meta["inkhue.trained_on"],
        palette=palette,
        format=FORMAT_VERSION,
        builtin=builtin,
        ab_classes=ab_classes,
    )


def _check_class_logits(
    path: Path, session: Any, meta: dict[str, str]
) -> tuple[tuple[float, float], ...] | None:
    """The ab of each class of an ``ab_logits`` output (None when the graph has none)."""
    outputs = {o.name: o for o in session.get_outputs()}
    out = outputs.get(CLASS_LOGITS_OUTPUT)
    if out is None:
        return None
    redo = "re-export the model with 'inkhue export'"
    if AB_CLASSES_KEY not in meta:
        raise ModelError(
            f"{path.name}: output {CLASS_LOGITS_OUTPUT!r} needs metadata {AB_CLASSES_KEY}; {redo}"
        )
    try:
        classes = json.loads(meta[AB_CLASSES_KEY])
        pairs = tuple((float(a), float(b)) for a, b in classes)
        if not pairs or not np.isfinite(np.asarray(pairs)).all():
            raise ValueError
    except (ValueError, TypeError) as exc:
        raise ModelError(
            f"{path.name}: metadata {AB_CLASSES_KEY} is not a JSON list of [a, b] pairs; {redo}"
        ) from exc
    q = out.shape[-1] if len(out.shape) == 4 else None
    if len(out.shape) != 4 or (isinstance(q, int) and q != len(pairs)):
        raise ModelError(
            f"{path.name}: output {CLASS_LOGITS_OUTPUT!r} has shape {out.shape}, expected "
            f"[N, H, W, {len(pairs)}] (one logit per class of {AB_CLASSES_KEY}); {redo}"
        )
    return pairs


def _parse_palette_meta(path: Path, raw: str) -> list[str]:
    from inkhue_engine.palette import MAX_PALETTE_COLORS, normalize_hex

    try:
        colors = json.loads(raw)
        if not isinstance(colors, list) or not colors:
            raise ValueError
        colors = [normalize_hex(c) for c in colors]
    except (ValueError, InkHueError) as exc:
        raise ModelError(
            f"{path.name}: metadata inkhue.palette is not a JSON list of '#rrggbb' colors: "
            f"{raw[:60]!r}"
        ) from exc
    if len(colors) > MAX_PALETTE_COLORS:
        raise ModelError(
            f"{path.name}: metadata inkhue.palette holds {len(colors)} colors, over the "
            f"limit of {MAX_PALETTE_COLORS}; re-export the model with a smaller palette"
        )
    return colors


def _check_graph(path: Path, session: Any, task: str) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    inp = inputs.get("input")
    if inp is None:
        raise ModelError(
            f"{path.name}: the graph has no input named 'input' (it has "
            f"{', '.join(inputs) or 'none'}); re-export it with 'inkhue export'"
        )
    if len(inp.shape) != 4 or (isinstance(inp.shape[1], int) and inp.shape[1] != 4):
        raise ModelError(f"{path.name}: input 'input' has shape {inp.shape}, expected [N, 4, H, W]")
    name, channels = TASK_OUTPUTS[task]
    out = outputs.get(name)
    if out is None:
        raise ModelError(
            f"{path.name}: task {task!r} needs an output named {name!r} ({channels} channels), "
            f"the graph has {', '.join(outputs) or 'none'}; re-export it with 'inkhue export'"
        )
    if len(out.shape) != 4 or (isinstance(out.shape[1], int) and out.shape[1] != channels):
        raise ModelError(
            f"{path.name}: output {name!r} has shape {out.shape}, expected "
            f"[N, {channels}, H, W] for task {task!r}"
        )


_INFO_CACHE: dict[tuple[str, int, int], ModelInfo | ModelError] = {}
_INFO_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelError(f"{path}: model file not found") from exc
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def read_model_info(path: str | os.PathLike, builtin: bool | None = None) -> ModelInfo:
    """Read and validate an InkHue model's metadata (no inference session is kept).

    Raises ModelError (one line naming the file and what is wrong) for a missing
    file, a file that is not ONNX, missing ``inkhue.*`` keys, or a graph whose
    input/output do not match the task. ``builtin`` defaults to "lies in the
    bundled models folder". Cached per (path, mtime, size).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    key = _file_key(path)
    if builtin is None:
        builtin = path.resolve().parent == bundled_models_dir().resolve()
    with _INFO_LOCK:
        info = _INFO_CACHE.get(key)
    if info is None:
        ort = import_ort()
        try:
            session = _create_session(ort, path, ["CPUExecutionProvider"], light=True)
            info = _info_from_session(path, session)
        except ModelError as exc:
            info = exc  # a broken file is not re-opened on every scan (until it changes)
        with _INFO_LOCK:
            _INFO_CACHE[key] = info
    if isinstance(info, ModelError):
        raise ModelError(str(info))
    if info.builtin != builtin or info.path != path:
        info = _replace(info, path=path, builtin=builtin)
    return info


def _replace(info: ModelInfo, **changes: Any) -> ModelInfo:
    from dataclasses import replace

    return replace(info, **changes)


# --------------------------------------------------------------------------- running


class Model:
    """A loaded model: its info, and an ONNX Runtime session on the chosen device.

    ``providers`` is what ONNX Runtime really uses (session.get_providers());
    ``device`` is the short name of the first of them ('cuda', 'cpu', ...).
    ``run`` is thread-safe (ONNX Runtime sessions are; no per-call state is kept).
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto", threads: int = 0) -> None:
        ort = import_ort()
        self._ort = ort
        path = Path(path)
        requested = choose_providers(device)
        session = _create_session(ort, path, requested, threads=threads)
        self.threads = threads  #: ONNX Runtime intra-op threads asked for (0: its default)
        builtin = path.resolve().parent == bundled_models_dir().resolve()
        self.info: ModelInfo = _info_from_session(path, session, builtin=builtin)
        self.providers: list[str] = list(session.get_providers())
        self.device: str = PROVIDER_DEVICES.get(self.providers[0], self.providers[0])
        self.requested_device: str = (device or "auto").lower()
        self._session = session
        wanted = requested[0] if isinstance(requested[0], str) else requested[0][0]
        if self.providers[0] != wanted:
            if self.requested_device != "auto":
                raise InkHueError(
                    f"device {self.requested_device!r} was requested but ONNX Runtime fell back "
                    f"to {self.providers[0]} (no usable GPU, or its runtime libraries such as "
                    "CUDA/cuDNN are missing; the log says why): use --device auto or --device cpu"
                )
            log.warning(
                "%s: %s is not usable here; running on %s", path.name, wanted, self.providers[0]
            )
        # IO binding pays off only where memory is not the host's.
        self._bind_device = {
            "CUDAExecutionProvider": "cuda",
            "TensorrtExecutionProvider": "cuda",
        }.get(self.providers[0])
        self._out_name = TASK_OUTPUTS[self.info.task][0]

    def __repr__(self) -> str:
        return f"Model({self.info.name!r}, task={self.info.task}, device={self.device})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on float32 ``[N, 4, H, W]`` (H, W multiples of multiple_of).

        Returns float32 ``[N, C, H, W]`` (C = 2 for grayscale, 3 for line art).
        Out-of-memory errors become ResourceError; other runtime errors ModelError.
        """
        return self._run(batch, with_logits=False)[0]

    def run_with_class_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``run`` plus the class logits float32 ``[N, H, W, Q]`` of a model with a
        classification head (``info.ab_classes``), else None."""
        return self._run(batch, with_logits=self.info.ab_classes is not None)

    def _run(self, batch: np.ndarray, with_logits: bool) -> tuple[np.ndarray, np.ndarray | None]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        m = self.info.multiple_of
        if batch.ndim != 4 or batch.shape[1] != 4:
            raise ValueError(f"model input must be [N, 4, H, W], got {batch.shape}")
        if batch.shape[2] % m or batch.shape[3] % m:
            raise ValueError(f"model input H, W must be multiples of {m}, got {batch.shape}")
        names = [self._out_name] + ([CLASS_LOGITS_OUTPUT] if with_logits else [])
        try:
            if self._bind_device is not None:
                outs = self._run_bound(batch, names)
            else:
                outs = self._session.run(names, {"input": batch})
        except MemoryError as exc:
            raise ResourceError(OOM_ADVICE) from exc
        except Exception as exc:
            msg = _first_line(exc)
            if _is_oom(msg):
                raise ResourceError(f"{OOM_ADVICE} ({msg})") from exc
            raise ModelError(f"{self.info.path.name}: running the model failed: {msg}") from exc
        outs = [np.asarray(o, dtype=np.float32) for o in outs]
        if not all(np.isfinite(o).all() for o in outs):  # else NaN becomes a white frame
            raise ModelError(
                f"{self.info.path.name}: model {self.info.name!r} output NaN or infinite "
                f"values: the model is broken (e.g. a diverged training); use another model"
            )
        return outs[0], (outs[1] if with_logits else None)

    def _run_bound(self, batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """GPU run with IO binding: one upload, outputs left on the device, one download."""
        ort = self._ort
        binding = self._session.io_binding()  # per call: run() stays thread-safe
        x = ort.OrtValue.ortvalue_from_numpy(batch, self._bind_device, 0)
        binding.bind_ortvalue_input("input", x)
        for name in names:
            binding.bind_output(name, self._bind_device, 0)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


_MODEL_CACHE: dict[tuple[str, int, int, str, int], Model] = {}
_MODEL_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[str, int, int, str, int], threading.Lock] = {}


def load_model(path: str | os.PathLike, device: str = "auto", threads: int = 0) -> Model:
    """Load (or reuse) a model session. Cached per (resolved path, mtime, size, device,
    threads). ``threads``: ONNX Runtime intra-op threads (0: its default, one per physical
    core); a Ray task that asks for one CPU uses 1.

    Thread-safe: two threads asking for the same model wait for one load. A changed
    file (new mtime or size) loads anew and drops the stale session.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    device = (device or "auto").lower()
    key = (*_file_key(path), device, int(threads))
    with _MODEL_LOCK:
        model = _MODEL_CACHE.get(key)
        if model is not None:
            return model
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:
        with _MODEL_LOCK:
            model = _MODEL_CACHE.get(key)
        if model is None:
            model = Model(path, device, threads=int(threads))
            with _MODEL_LOCK:
                for old in [k for k in _MODEL_CACHE if k[0] == key[0] and k[3:] == key[3:]]:
                    del _MODEL_CACHE[old]  # an older version of the same file
                _MODEL_CACHE[key] = model
    with _MODEL_LOCK:
        _KEY_LOCKS.pop(key, None)
    return model


def clear_model_cache() -> None:
    """Forget every cached session and model info (frees their memory)."""
    with _MODEL_LOCK:
        _MODEL_CACHE.clear()
    with _INFO_LOCK:
        _INFO_CACHE.clear()


# --------------------------------------------------------------------------- folders


def bundled_models_dir() -> Path:
    """The models shipped with the package (engine/models: grayscale.onnx, lineart.onnx)."""
    return Path(__file__).resolve().parent / "models"


def user_models_dir() -> Path:
    """Where a user's own models go: $INKHUE_MODELS_DIR, else the platform's data folder.

    The data folder is platformdirs' (Linux: $XDG_DATA_HOME/inkhue/models, i.e.
    ~/.local/share/inkhue/models; macOS: ~/Library/Application Support/inkhue/models;
    Windows: %LOCALAPPDATA%/inkhue/models).
    """
    env = os.environ.get("INKHUE_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("inkhue", appauthor=False)) / "models"


def _listing_order(path: Path) -> tuple[str, int, str]:
    """Files by name, a precision variant right after its float model (NAME.onnx before
    NAME.int8.onnx): a client that takes the first model of a list gets the float one."""
    stem = path.name[: -len(".onnx")]
    for rank, suffix in enumerate(PRECISIONS[1:], start=1):
        if stem.endswith(f".{suffix}"):
            return stem[: -len(suffix) - 1], rank, path.name
    return stem, 0, path.name


def list_models(extra_dirs: tuple | list = ()) -> list[ModelInfo]:
    """Every valid model in the user folder, ``extra_dirs`` and the bundled folder.

    Rescans on each call (a file dropped in appears without a restart). Invalid
    files are skipped with a logged warning. Order: user folder, extra folders,
    bundled; files by name within a folder, a precision variant right after its float
    model; a file found twice is listed once.
    """
    bundled = bundled_models_dir()
    folders = [user_models_dir(), *(Path(d) for d in extra_dirs), bundled]
    seen: set[Path] = set()
    found: list[ModelInfo] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for file in sorted(folder.glob("*.onnx"), key=_listing_order):
            real = file.resolve()
            if real in seen or not file.is_file():
                continue
            seen.add(real)
            try:
                found.append(read_model_info(file, builtin=folder == bundled))
            except ModelError as exc:
                log.warning("skipping %s", exc)
    return found


#: Model precisions: the float model, and variants made by inkhue_training.quantize (the
#: int8 ones of the bundled models ship beside them; docs/PERFORMANCE.md has the
#: speed and the quality change that decided it).
PRECISIONS = ("fp32", "int8", "fp16")


def precision_variant(path: str | os.PathLike, precision: str = "fp32") -> Path:
    """The file of ``path``'s model at ``precision``: ``NAME.onnx`` itself for fp32,
    ``NAME.int8.onnx`` / ``NAME.fp16.onnx`` beside it otherwise.

    ModelError when the variant is missing, saying how to make it. fp16 is for GPU
    providers (CUDA / TensorRT) and untested on a GPU so far.
    """
    path = Path(path)
    precision = (precision or "fp32").lower()
    if precision not in PRECISIONS:
        raise InkHueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return path
    stem = path.name[: -len(".onnx")] if path.name.lower().endswith(".onnx") else path.stem
    for suffix in PRECISIONS[1:]:  # a variant given directly: NAME.int8.onnx
        if stem.endswith(f".{suffix}"):
            if suffix == precision:
                return path
            stem = stem[: -len(suffix) - 1]
    variant = path.with_name(f"{stem}.{precision}.onnx")
    if not variant.is_file():
        raise ModelError(
            f"{variant}: no {precision} variant of {path.name}: make it with "
            f"'python -m inkhue_training.quantize {precision} {path} -o {variant}' "
            "(training extra), or use --precision fp32"
        )
    # The variant must be one of this model (quantize names it NAME-PRECISION): a model
    # replaced since (finetune --overwrite, a copy) leaves the variant of another one.
    try:
        base, var = read_model_info(path), read_model_info(variant)
    except ModelError:
        return variant  # a broken file: loading it says what is wrong
    if var.task != base.task or var.name != f"{base.name}-{precision}":
        raise ModelError(
            f"{variant}: is not the {precision} variant of {path.name} (it is {var.name!r}, "
            f"{var.task}; expected {base.name + '-' + precision!r}, {base.task}): remake it with "
            f"'python -m inkhue_training.quantize {precision} {path} -o {variant}', "
            "or use --precision fp32"
        )
    return variant


def resolve_model(
    name_or_path: str | os.PathLike | None,
    task: str | None = None,
    extra_dirs: tuple | list = (),
) -> Path:
    """A model file from a path, a model name, or (None) the bundled default of ``task``.

    A name matches a model's ``inkhue.name`` or its file name without '.onnx'; when
    several match, one of ``task`` is preferred, then the first in list_models order
    (user folder before bundled). Unknown names raise ModelError listing the names
    available. ``task`` defaults to 'grayscale'.
    """
    if task is not None and task not in TASKS:
        raise InkHueError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")
    if name_or_path is None or str(name_or_path) == "":
        want = task or "grayscale"
        path = bundled_models_dir() / f"{want}.onnx"
        if not path.is_file():
            raise ModelError(
                f"the bundled {want} model is missing ({path}): reinstall inkhue, "
                "or pass a model file with --model"
            )
        return path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    looks_like_path = path.suffix.lower() == ".onnx" or os.sep in text or "/" in text
    if looks_like_path:
        raise ModelError(f"{path}: model file not found")
    models = list_models(extra_dirs)
    matches = [m for m in models if text in (m.name, m.path.stem)]
    if task is not None:
        matches.sort(key=lambda m: m.task != task)  # stable: keeps folder order otherwise
    if matches:
        return matches[0].path
    names = sorted({m.name for m in models} | {m.path.stem for m in models})
    raise ModelError(
        f"no model named {text!r}: available: {', '.join(names) or 'none'} "
        f"(or put a model file in {user_models_dir()})"
    )
