"""Model loading: the metadata contract, providers and their fallback, the session cache,
models folders and ``inkhue info``."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import types

import numpy as np
import pytest

from inkhue_engine import model as M
from inkhue_engine.errors import InkHueError, ModelError, ResourceError

REAL_PROVIDERS = M.available_providers()
NO_CUDA = "CUDAExecutionProvider" not in REAL_PROVIDERS


@pytest.fixture(autouse=True)
def _fresh_cache():
    M.clear_model_cache()
    yield
    M.clear_model_cache()


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """An empty bundled folder and an empty user folder, both under tmp_path."""
    bundled = tmp_path / "bundled"
    user = tmp_path / "user"
    bundled.mkdir()
    user.mkdir()
    monkeypatch.setattr(M, "bundled_models_dir", lambda: bundled)
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(user))
    return bundled, user


# --------------------------------------------------------------------------- metadata


def test_read_model_info_of_a_real_export(grayscale_model, lineart_model):
    info = M.read_model_info(grayscale_model)
    assert (info.task, info.multiple_of, info.train_size) == ("grayscale", 8, 64)
    assert info.name == "tiny-test" and info.format == 1 and info.palette is None
    assert info.builtin is False and info.path == grayscale_model
    assert M.read_model_info(lineart_model).task == "lineart"
    assert info.as_dict()["file"] == str(grayscale_model)


def test_missing_keys_are_all_named_in_one_line(make_tiny_model, tmp_path):
    path = make_tiny_model(
        "grayscale", tmp_path / "nokeys.onnx", **{"inkhue.task": None, "inkhue.multiple_of": None}
    )
    with pytest.raises(ModelError) as err:
        M.read_model_info(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("nokeys.onnx: not an InkHue model")
    assert "inkhue.task, inkhue.multiple_of" in msg and "inkhue export" in msg
    assert "inkhue.name" not in msg


def test_not_onnx_and_missing_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a model")
    with pytest.raises(ModelError, match=r"bad\.onnx: not an ONNX model"):
        M.read_model_info(bad)
    with pytest.raises(ModelError, match="model file not found"):
        M.read_model_info(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="model file not found"):
        M.load_model(tmp_path / "nope.onnx")


def test_output_must_match_task(make_tiny_model, tmp_path):
    # a grayscale graph (output 'ab') that claims to be line art
    path = make_tiny_model("grayscale", tmp_path / "liar.onnx", **{"inkhue.task": "lineart"})
    with pytest.raises(ModelError, match=r"task 'lineart' needs an output named 'lab'.*has ab"):
        M.read_model_info(path)


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        ({"inkhue.task": "sketch"}, "inkhue.task='sketch' is unknown"),
        ({"format": "2"}, "format '2' is not supported"),
        ({"multiple_of": "eight"}, "inkhue.multiple_of='eight' is not a positive integer"),
        ({"train_size": "0"}, "inkhue.train_size='0' is not a positive integer"),
        ({"palette": "red"}, "inkhue.palette is not a JSON list"),
        ({"palette": ["#ff0000", "blue"]}, "inkhue.palette is not a JSON list"),
        # 100000 made numpy ask for 37 GiB (a 31-line traceback)
        ({"multiple_of": "100000"}, r"inkhue.multiple_of=100000 is outside 1..256"),
        ({"multiple_of": "512"}, r"inkhue.multiple_of=512 is outside 1..256"),
        ({"train_size": "8"}, r"inkhue.train_size=8 is outside 16..4096"),
        ({"train_size": "100000"}, r"inkhue.train_size=100000 is outside 16..4096"),
        ({"palette": [f"#{i:06x}" for i in range(257)]}, "257 colors, over the limit of 256"),
    ],
)
def test_bad_metadata_values(make_tiny_model, tmp_path, overrides, pattern):
    path = make_tiny_model("grayscale", tmp_path / "m.onnx", **overrides)
    with pytest.raises(ModelError, match=pattern):
        M.read_model_info(path)


def test_palette_metadata(make_tiny_model, tmp_path):
    path = make_tiny_model("lineart", tmp_path / "pal.onnx", palette=["#FF0000", "#00ff00"])
    assert M.read_model_info(path).palette == ["#ff0000", "#00ff00"]


def test_info_cache_follows_file_changes(make_tiny_model, tmp_path):
    path = make_tiny_model("grayscale", tmp_path / "m.onnx", name="first")
    assert M.read_model_info(path).name == "first"
    make_tiny_model("grayscale", path, name="second-name")  # different size and mtime
    assert M.read_model_info(path).name == "second-name"


# --------------------------------------------------------------------------- providers


def test_choose_providers_cpu_and_unknown():
    assert M.choose_providers("cpu") == ["CPUExecutionProvider"]
    assert M.choose_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(InkHueError, match="unknown device 'gpu'"):
        M.choose_providers("gpu")


def test_explicit_device_missing_from_the_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(M, "available_providers", lambda: ["CPUExecutionProvider"])
    for device in ("cuda", "tensorrt", "directml", "coreml"):
        with pytest.raises(InkHueError, match=rf"device '{device}' is not available") as err:
            M.choose_providers(device)
        assert "--device auto" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InkHueError, match=r"inkhue\[gpu\]"):
        M.choose_providers("cuda")


def test_auto_prefers_gpu_providers_when_the_wheel_has_them(monkeypatch):
    monkeypatch.setattr(
        M,
        "available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    chosen = M.choose_providers("auto")
    assert [p if isinstance(p, str) else p[0] for p in chosen] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    trt = [p if isinstance(p, str) else p[0] for p in M.choose_providers("tensorrt")]
    assert trt == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.skipif(not NO_CUDA, reason="needs a wheel without CUDA")
def test_auto_really_runs_on_cpu_here(grayscale_model):
    model = M.load_model(grayscale_model)
    assert model.providers[0] == "CPUExecutionProvider"
    assert model.device == "cpu"


@pytest.mark.skipif(not NO_CUDA, reason="needs a wheel without CUDA")
def test_listed_but_unusable_cuda_falls_back_for_auto_and_fails_for_explicit(
    grayscale_model, monkeypatch, caplog
):
    # What onnxruntime-gpu does on a machine without a GPU: CUDA is listed, the session
    # silently runs on the CPU. The CPU wheel, asked for CUDA, does the same.
    monkeypatch.setattr(
        M, "available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    with caplog.at_level(logging.WARNING, logger="inkhue_engine.model"), pytest.warns(UserWarning):
        model = M.Model(grayscale_model, "auto")
    assert model.providers == ["CPUExecutionProvider"] and model.device == "cpu"
    assert "CUDAExecutionProvider is not usable here" in caplog.text
    with pytest.warns(UserWarning), pytest.raises(InkHueError, match="fell back to CPU"):
        M.Model(grayscale_model, "cuda")


def test_missing_onnxruntime_message(monkeypatch, grayscale_model):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.raises(InkHueError) as err:
        M.import_ort()
    assert str(err.value) == (
        "ONNX Runtime is not installed: pip install 'inkhue[cpu]' "
        "(or 'inkhue[gpu]' for NVIDIA GPUs)"
    )
    with pytest.raises(InkHueError, match="ONNX Runtime is not installed"):
        M.load_model(grayscale_model)


def test_broken_onnxruntime_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))
    with pytest.raises(InkHueError, match="pip uninstall -y onnxruntime onnxruntime-gpu"):
        M.import_ort()


def test_ort_package_names_the_wheel():
    name, version = M.ort_package()
    assert name.startswith("onnxruntime") and version[0].isdigit()


# --------------------------------------------------------------------------- running


def test_run_shapes_and_input_checks(grayscale_model, lineart_model):
    g = M.load_model(grayscale_model)
    x = np.zeros((2, 4, 16, 24), np.float32)
    x[:, 0] = 50
    assert g.run(x).shape == (2, 2, 16, 24)
    assert M.load_model(lineart_model).run(x).shape == (2, 3, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        g.run(np.zeros((1, 4, 12, 16), np.float32))
    with pytest.raises(ValueError, match=r"\[N, 4, H, W\]"):
        g.run(np.zeros((1, 3, 16, 16), np.float32))


def test_io_binding_path_matches_plain_run(grayscale_model):
    # The CUDA path binds input and output on the device; on this machine the same code
    # runs with device 'cpu', which at least checks the binding calls and the result.
    plain = M.Model(grayscale_model, "cpu")
    bound = M.Model(grayscale_model, "cpu")
    bound._bind_device = "cpu"
    x = np.random.default_rng(0).uniform(0, 100, (2, 4, 16, 16)).astype(np.float32)
    x[:, 1:] = 0
    np.testing.assert_allclose(bound.run(x), plain.run(x), atol=1e-5)


class _FailingSession:
    def __init__(self, message):
        self.message = message

    def run(self, *args, **kwargs):
        raise RuntimeError(self.message)


@pytest.mark.parametrize(
    "message",
    [
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested "
        "buffer of size 123",
        "std::bad_alloc",
        "CUDA failure 2: out of memory ; GPU=0",
    ],
)
def test_out_of_memory_becomes_resource_error(grayscale_model, message):
    model = M.Model(grayscale_model, "cpu")
    model._session = _FailingSession(message)
    with pytest.raises(ResourceError, match=r"lower --detail or --batch-size"):
        model.run(np.zeros((1, 4, 8, 8), np.float32))


def test_other_runtime_errors_become_model_errors(grayscale_model):
    model = M.Model(grayscale_model, "cpu")
    model._session = _FailingSession("Non-zero status code\nsecond line")
    with pytest.raises(ModelError, match=r"running the model failed: Non-zero status code$"):
        model.run(np.zeros((1, 4, 8, 8), np.float32))


class _NanSession:
    def run(self, names, feeds):
        x = feeds["input"]
        out = np.zeros((x.shape[0], 2, *x.shape[2:]), np.float32)
        out[0, 0, 0, 0] = np.nan
        return [out]


def test_non_finite_output_is_a_model_error(grayscale_model):
    model = M.Model(grayscale_model, "cpu")
    model._session = _NanSession()
    with pytest.raises(ModelError, match=r"grayscale.onnx: model 'tiny-test' output NaN"):
        model.run(np.zeros((1, 4, 8, 8), np.float32))


def test_session_cache_reuse_and_invalidation(make_tiny_model, tmp_path):
    path = make_tiny_model("grayscale", tmp_path / "c.onnx")
    a = M.load_model(path)
    assert M.load_model(str(path)) is a
    assert M.load_model(path, "cpu") is not a  # device is part of the key
    assert M.load_model(path, "cpu") is M.load_model(path, "cpu")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file "changed"
    b = M.load_model(path)
    assert b is not a and M.load_model(path) is b


def test_session_cache_is_thread_safe(grayscale_model, monkeypatch):
    created = []
    real = M.Model

    def counting(*args, **kwargs):
        created.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(M, "Model", counting)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(M.load_model(grayscale_model)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1
    assert all(r is results[0] for r in results) and len(results) == 6


# --------------------------------------------------------------------------- folders


def test_user_models_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(tmp_path / "mine"))
    assert M.user_models_dir() == tmp_path / "mine"
    monkeypatch.delenv("INKHUE_MODELS_DIR")
    assert M.user_models_dir().parts[-2:] == ("inkhue", "models")
    if sys.platform.startswith("linux"):  # the XDG rules, through platformdirs
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert M.user_models_dir() == tmp_path / "data" / "inkhue" / "models"
        assert M._cache_dir() == tmp_path / "cache" / "inkhue"
    assert M.bundled_models_dir().name == "models"


def test_list_models_rescans_and_skips_invalid(folders, make_tiny_model, caplog):
    bundled, user = folders
    make_tiny_model("grayscale", bundled / "grayscale.onnx", name="stock-gray")
    (user / "broken.onnx").write_text("not onnx")
    with caplog.at_level(logging.WARNING, logger="inkhue_engine.model"):
        models = M.list_models()
    assert [(m.name, m.builtin) for m in models] == [("stock-gray", True)]
    assert "broken.onnx" in caplog.text
    make_tiny_model("lineart", user / "studio.onnx", name="studio-lines")
    names = [(m.name, m.task, m.builtin) for m in M.list_models()]
    assert names == [("studio-lines", "lineart", False), ("stock-gray", "grayscale", True)]


def test_resolve_model(folders, make_tiny_model, tmp_path):
    bundled, user = folders
    with pytest.raises(ModelError, match="bundled grayscale model is missing"):
        M.resolve_model(None)
    make_tiny_model("grayscale", bundled / "grayscale.onnx", name="stock-gray")
    make_tiny_model("lineart", bundled / "lineart.onnx", name="stock-lines")
    other = make_tiny_model("grayscale", tmp_path / "elsewhere.onnx", name="outside")
    assert M.resolve_model(None) == bundled / "grayscale.onnx"
    assert M.resolve_model(None, task="lineart") == bundled / "lineart.onnx"
    assert M.resolve_model("stock-lines") == bundled / "lineart.onnx"
    assert M.resolve_model("grayscale") == bundled / "grayscale.onnx"  # file stem
    assert M.resolve_model(str(other)) == other
    assert M.resolve_model("elsewhere", extra_dirs=[tmp_path]) == other
    with pytest.raises(ModelError, match=r"no model named 'nope': available: grayscale, "):
        M.resolve_model("nope")
    with pytest.raises(ModelError, match="model file not found"):
        M.resolve_model(str(tmp_path / "missing.onnx"))
    # a model of the same name in the user folder is found first
    shutil.copyfile(bundled / "lineart.onnx", user / "lineart.onnx")
    assert M.resolve_model("stock-lines") == user / "lineart.onnx"


def test_info_command(folders, make_tiny_model, capsys):
    from inkhue_engine.cli import main

    bundled, user = folders
    make_tiny_model("grayscale", bundled / "grayscale.onnx", name="stock-gray")
    make_tiny_model("lineart", user / "mine.onnx", name="my-lines", trained_on="our frames")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime: onnxruntime" in out
    assert "device auto: runs on " in out and "stock-gray" in out
    if NO_CUDA:
        assert "runs on CPUExecutionProvider" in out
    assert "my-lines" in out and "our frames" in out and "lineart" in out
    assert main(["info", "--model", "my-lines", "--device", "cpu"]) == 0
    assert "device cpu: runs on CPUExecutionProvider (model 'my-lines'" in capsys.readouterr().out
    assert main(["info", "--model", "nope"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err


def test_directml_sessions_turn_off_memory_patterns():
    ort = M.import_ort()
    so = M._session_options(ort, ["DmlExecutionProvider", "CPUExecutionProvider"])
    assert so.enable_mem_pattern is False
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert M._session_options(ort, ["CPUExecutionProvider"]).enable_mem_pattern is True


def test_precision_variant_finds_the_file_beside_the_model(tmp_path):
    base = tmp_path / "gray.onnx"
    base.write_bytes(b"x")
    assert M.precision_variant(base, "fp32") == base
    with pytest.raises(M.ModelError, match=r"gray\.int8\.onnx.*inkhue_training\.quantize int8"):
        M.precision_variant(base, "int8")
    (tmp_path / "gray.int8.onnx").write_bytes(b"x")
    assert M.precision_variant(base, "int8") == tmp_path / "gray.int8.onnx"
    assert M.precision_variant(tmp_path / "gray.int8.onnx", "int8") == tmp_path / "gray.int8.onnx"
    with pytest.raises(M.ModelError, match=r"gray\.fp16\.onnx"):
        M.precision_variant(tmp_path / "gray.int8.onnx", "fp16")
    with pytest.raises(InkHueError, match="unknown precision"):
        M.precision_variant(base, "int4")


def test_a_precision_variant_is_listed_after_its_float_model(
    tmp_path, monkeypatch, make_tiny_model
):
    # the Krita docker selects the first listed model: it must stay the float one
    folder = tmp_path / "models"
    folder.mkdir()
    for file, name in (
        ("a.int8.onnx", "a-int8"),
        ("a.onnx", "a"),
        ("a-b.onnx", "a-b"),
        ("a.fp16.onnx", "a-fp16"),
    ):
        make_tiny_model("grayscale", folder / file, name=name)
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(folder))
    names = [m.name for m in M.list_models() if m.path.parent == folder]
    assert names == ["a", "a-int8", "a-fp16", "a-b"]


def test_load_model_threads_are_part_of_the_session_and_the_cache(grayscale_model):
    default = M.load_model(grayscale_model, "cpu")
    one = M.load_model(grayscale_model, "cpu", threads=1)
    assert one is not default and M.load_model(grayscale_model, "cpu", threads=1) is one
    assert one._session.get_session_options().intra_op_num_threads == 1
    assert default._session.get_session_options().intra_op_num_threads == 0
    x = np.zeros((1, 4, 16, 24), np.float32)
    np.testing.assert_array_equal(one.run(x), default.run(x))


def _directml_that_fails(monkeypatch, when: str):
    """onnxruntime's InferenceSession, with a DirectML provider that fails to start
    (``when`` "start") or fails at every run (``when`` "run"), as a broken GPU would."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    real = ort.InferenceSession

    class Failing:  # the C session of a DirectML session whose device was lost
        def __init__(self, inner):
            self._inner = inner

        def run(self, *args, **kwargs):
            raise C.EPFail("[ONNXRuntimeError] : 11 : EP_FAIL : DirectML device removed")

        def __getattr__(self, name):
            return getattr(self._inner, name)

    class FakeDml(real):
        def _create_inference_session(self, providers, provider_options, disabled=None):
            names = [p if isinstance(p, str) else p[0] for p in providers]
            self._dml = "DmlExecutionProvider" in names
            if self._dml and when == "start":
                raise RuntimeError("D3D12 device creation failed")
            super()._create_inference_session(["CPUExecutionProvider"], None, disabled)
            if self._dml:
                self._sess = Failing(self._sess)

        def get_providers(self):
            if self._dml:
                return ["DmlExecutionProvider", "CPUExecutionProvider"]
            return super().get_providers()

    monkeypatch.setattr(ort, "InferenceSession", FakeDml)
    monkeypatch.setattr(
        M, "available_providers", lambda: ["DmlExecutionProvider", "CPUExecutionProvider"]
    )


def test_a_gpu_failing_at_run_is_an_error_not_a_silent_move_to_the_cpu(
    grayscale_model, monkeypatch, capfd
):
    _directml_that_fails(monkeypatch, "run")
    model = M.Model(grayscale_model, "directml")
    x = np.zeros((1, 4, 32, 32), np.float32)
    with pytest.raises(M.ModelError, match="EP_FAIL : DirectML device removed"):
        model.run(x)
    assert model.device == "directml" and capfd.readouterr().out == ""  # ORT printed nothing


def test_a_gpu_failing_to_start_is_logged_and_the_cpu_used_for_auto_only(
    grayscale_model, monkeypatch, capfd, caplog
):
    _directml_that_fails(monkeypatch, "start")
    with caplog.at_level(logging.WARNING, logger="inkhue_engine.model"):
        model = M.Model(grayscale_model, "auto")
    assert model.device == "cpu"
    assert (
        "DmlExecutionProvider failed to start (D3D12 device creation failed); trying CPU"
        in caplog.text
    )
    with pytest.raises(InkHueError, match="'directml' was requested but ONNX Runtime fell back"):
        M.Model(grayscale_model, "directml")
    assert capfd.readouterr().out == ""  # no ORT banner in the command's output


def test_a_precision_variant_of_another_model_is_refused(tmp_path, make_tiny_model):
    gray = make_tiny_model("grayscale", tmp_path / "studio.onnx", name="studio")
    make_tiny_model("grayscale", tmp_path / "studio.int8.onnx", name="studio-int8")
    assert M.precision_variant(gray, "int8") == tmp_path / "studio.int8.onnx"
    # studio.onnx replaced by another model (finetune --overwrite): its old variant stays
    make_tiny_model("lineart", tmp_path / "studio.onnx", name="studio")
    with pytest.raises(M.ModelError, match="is not the int8 variant of studio.onnx"):
        M.precision_variant(tmp_path / "studio.onnx", "int8")
