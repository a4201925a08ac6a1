"""Test helper: save a hand-built ONNX graph as an InkHue model (opset 17, the required
``inkhue.*`` metadata), for the "forced" models whose output the tests choose exactly."""

from __future__ import annotations

from pathlib import Path


def save_inkhue_graph(
    graph,
    path: str | Path,
    task: str,
    name: str,
    multiple_of: int = 8,
    train_size: int = 32,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``graph`` (an onnx GraphProto) to ``path`` with the model contract's metadata
    (and ``extra`` keys); returns ``path``."""
    import onnx
    from onnx import helper

    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    meta = {
        "inkhue.format": "1",
        "inkhue.task": task,
        "inkhue.multiple_of": str(multiple_of),
        "inkhue.train_size": str(train_size),
        "inkhue.name": name,
        "inkhue.trained_on": "nothing",
        **(extra or {}),
    }
    for k, v in meta.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(proto, str(path))
    return Path(path)
