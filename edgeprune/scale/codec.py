"""An ``ExportResult`` as JSON plus files, and back, without pickle.

:class:`Encoder` turns the result's tree of dataclasses into JSON: bytes, ONNX models and long texts become
references to files (a file of the export directory with the same content when there is one, else a
``blobs/<sha256>`` entry added to the files), paths become paths relative to the export directory, tuples are
tagged, and dataclasses are stored by name. :func:`decode` rebuilds the tree under any directory, creating only
the dataclasses of :func:`types` (the ones an ``ExportResult`` is made of).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

LONG_TEXT = 1024  # characters: a text this long is referenced when a file holds it (generated C sources)


@functools.cache
def types() -> dict[str, type]:
    """The dataclasses an ``ExportResult`` is made of, by name: the only classes :func:`decode` creates."""
    from edgeprune.export.api import ExportResult, SummaryRow
    from edgeprune.export.artifacts import Artifact
    from edgeprune.export.onnx import OnnxExport
    from edgeprune.export.opmap import OnnxNode
    from edgeprune.export.parity import ParityReport, Tolerance
    from edgeprune.export.tensorrt import TensorRTCheck
    from edgeprune.export.tflite import FloatOp, TensorLayout, TFLiteExport
    from edgeprune.export.tflm import ArenaReport, QuantParams, TFLMBundle

    classes = (ExportResult, SummaryRow, Artifact, OnnxExport, OnnxNode, ParityReport, Tolerance, TensorRTCheck,
               FloatOp, TensorLayout, TFLiteExport, ArenaReport, QuantParams, TFLMBundle)  # fmt: skip
    return {c.__name__: c for c in classes}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(name: str) -> str:
    """``name`` if it is a relative path inside its directory (no absolute path, no ``..``), else ValueError."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(p in ("..", ".", "") for p in parts) or "\\" in name:
        raise ValueError(f"{name!r} is not a relative path inside the export")
    return name


class Encoder:
    """Encodes values of an export made in ``root``; ``files`` (name -> content) holds the export's files and
    receives the blobs the encoding refers to."""

    def __init__(self, root: Path, files: dict[str, bytes]):
        self.root = Path(root)
        self.files = files
        self.names = {sha256(data): name for name, data in files.items()}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            name = self.names.get(sha256(value.encode())) if len(value) >= LONG_TEXT else None
            return {"$text": name} if name else value
        if isinstance(value, bytes):
            return {"$bytes": self._file(value)}
        if isinstance(value, Path):
            return {"$path": value.relative_to(self.root).as_posix()} if value.is_relative_to(self.root) else {
                "$abspath": str(value)}  # fmt: skip
        if type(value).__name__ == "ModelProto":
            return {"$onnx": self._file(value.SerializeToString())}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = type(value).__name__
            if types().get(name) is not type(value):
                raise TypeError(f"{type(value).__qualname__} is not part of an ExportResult (codec.types)")
            fields = {f.name: self(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
            return {"$type": name, "fields": fields}
        if isinstance(value, tuple):
            return {"$tuple": [self(v) for v in value]}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str) or k.startswith("$")]
            if bad:
                raise TypeError(f"dictionary keys {bad!r} cannot be stored (strings not starting with $ only)")
            return {k: self(v) for k, v in value.items()}
        raise TypeError(f"a {type(value).__qualname__} cannot be stored in an export's JSON")

    def _file(self, data: bytes) -> str:
        """The name of a file holding ``data`` (one of the export's, else a new blob)."""
        digest = sha256(data)
        if digest not in self.names:
            self.names[digest] = f"blobs/{digest}"
            self.files[self.names[digest]] = data
        return self.names[digest]


def decode(value: Any, root: Path, files: Mapping[str, bytes]) -> Any:
    """The value :class:`Encoder` encoded, its paths under ``root`` and its references read from ``files``;
    ValueError/KeyError on anything it did not write."""
    if isinstance(value, list):
        return [decode(v, root, files) for v in value]
    if not isinstance(value, dict):
        return value
    if "$type" in value:
        cls = types().get(value["$type"])
        if cls is None:
            raise ValueError(f"unknown type {value['$type']!r}")
        return cls(**{k: decode(v, root, files) for k, v in value["fields"].items()})
    if "$tuple" in value:
        return tuple(decode(v, root, files) for v in value["$tuple"])
    if "$bytes" in value:
        return files[value["$bytes"]]
    if "$text" in value:
        return files[value["$text"]].decode()
    if "$onnx" in value:
        import onnx

        return onnx.load_from_string(files[value["$onnx"]])
    if "$path" in value:
        return root if value["$path"] == "." else root / safe_name(value["$path"])
    if "$abspath" in value:
        return Path(value["$abspath"])
    return {k: decode(v, root, files) for k, v in value.items()}
