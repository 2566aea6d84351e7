"""Exports keyed by content, and moved between tasks and to disk as plain data.

A point's export is identified by :func:`content_hash` (the pruned model's class and state, its example inputs,
the export targets and the calibration samples), so points whose models come out identical (two boards measuring
one model, two budgets that round to the same widths) share one conversion. :class:`PackedExport` carries an
export from the task that made it to the tasks that measure it (its files and its ``ExportResult`` as JSON,
:mod:`edgeprune.scale.codec`; no pickle), through Ray's object store or in one process alike, and is what
:class:`~edgeprune.scale.store.ExportStore` keeps in a run directory; :meth:`PackedExport.unpack` gives each
measuring task its own copy, since runners write next to the artifacts (firmware, generated C).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from edgeprune.cache import package_versions
from edgeprune.scale.codec import Encoder, decode, safe_name

if TYPE_CHECKING:
    from edgeprune.export.api import ExportResult


def content_hash(model: nn.Module, inputs: Sequence[torch.Tensor], targets: Sequence[str], calibration: Any) -> str:
    """sha256 of everything an export depends on: model class, every tensor of its state, the example inputs,
    the targets and the calibration samples (a path is read; arrays and nested sequences hashed by value)."""
    h = hashlib.sha256()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}\0".encode())
    for name, tensor in model.state_dict().items():
        _tensor(h, name, tensor)
    for i, tensor in enumerate(inputs):
        _tensor(h, f"input{i}", tensor)
    h.update(("targets:" + ",".join(sorted(set(targets))) + "\0").encode())
    _value(h, calibration)
    return h.hexdigest()


def _tensor(h: Any, name: str, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\0".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _value(h: Any, value: Any) -> None:
    if value is None:
        h.update(b"none\0")
    elif isinstance(value, (str, Path)):
        h.update(b"file\0" + Path(value).read_bytes())
    elif isinstance(value, torch.Tensor):
        _tensor(h, "calibration", value)
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"{a.dtype}:{a.shape}\0".encode() + a.tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            h.update(f"key:{key}\0".encode())
            _value(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"seq:{len(value)}\0".encode())
        for item in value:
            _value(h, item)
    else:
        _value(h, np.asarray(value))


# what a conversion depends on besides its inputs: an entry made with other versions is converted again
CONVERTERS = ("edgeprune", "torch", "onnx", "onnx2tf", "tensorflow", "tflite-micro", "numpy")


@functools.cache
def converter_versions() -> dict[str, str]:
    """The installed version of each package in :data:`CONVERTERS` (``"-"``: not installed)."""
    return package_versions(CONVERTERS)


@dataclasses.dataclass(frozen=True)
class PackedExport:
    """One export as plain data: its content hash, its ``ExportResult`` as JSON (:class:`codec.Encoder`), the
    files that JSON and the export directory consist of (``files/<path in the export directory>`` and
    ``blobs/<sha256>``) and the versions of the packages that converted it."""

    key: str
    result: dict[str, Any]
    files: dict[str, bytes]
    versions: dict[str, str]

    @classmethod
    def pack(cls, key: str, result: ExportResult) -> PackedExport:
        root = Path(result.out_dir)
        paths = sorted(p for p in root.rglob("*") if p.is_file())
        files = {f"files/{p.relative_to(root).as_posix()}": p.read_bytes() for p in paths}
        encoded = Encoder(root, files)(result)
        return cls(key, encoded, files, converter_versions())

    def unpack(self, dest: Path) -> ExportResult:
        """The export's files written under ``dest`` and its result, with its paths there."""
        dest = Path(dest)
        for name, data in self.files.items():
            if name.startswith("files/"):
                path = dest / safe_name(name.removeprefix("files/"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        dest.mkdir(parents=True, exist_ok=True)
        return decode(self.result, dest, self.files)
