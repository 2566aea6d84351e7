"""Exports keyed by content, and moved between tasks as bytes.

A point's export is identified by :func:`content_hash` (the pruned model's class and state, its example inputs,
the export targets and the calibration samples), so points whose models come out identical (two boards measuring
one model, two budgets that round to the same widths) share one conversion. :class:`PackedExport` carries an
export from the task that made it to the tasks that measure it (a tarball of its directory plus its
``ExportResult``), through Ray's object store or in one process alike; :meth:`PackedExport.unpack` gives each
measuring task its own copy, since runners write next to the artifacts (firmware, generated C).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

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


@dataclasses.dataclass
class PackedExport:
    """One export: its ``ExportResult`` (paths under ``root``) and its directory as a tarball."""

    key: str
    root: str
    result: ExportResult
    tarball: bytes

    @classmethod
    def pack(cls, key: str, result: ExportResult) -> PackedExport:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(result.out_dir, arcname=".")
        return cls(key, str(result.out_dir), result, buf.getvalue())

    def unpack(self, dest: Path) -> ExportResult:
        """A copy of the export in ``dest`` (made once; a later call reuses it) and its result, paths moved there."""
        dest = Path(dest)
        if not (dest / ".unpacked").exists():
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(self.tarball), mode="r:gz") as tar:
                tar.extractall(dest, filter="data")  # no absolute paths, links out or devices
            (dest / ".unpacked").write_text(self.key)
        return relocate(self.result, Path(self.root), dest)


def relocate(value: Any, old: Path, new: Path) -> Any:
    """``value`` with every path under ``old`` moved under ``new`` (dataclasses, lists, tuples, dicts)."""
    if isinstance(value, Path):
        return new / value.relative_to(old) if value.is_relative_to(old) else value
    if isinstance(value, str) and value.startswith(str(old) + "/"):
        return str(new / Path(value).relative_to(old))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: relocate(getattr(value, f.name), old, new) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, (list, tuple)):
        return type(value)(relocate(v, old, new) for v in value)
    if isinstance(value, dict):
        return {k: relocate(v, old, new) for k, v in value.items()}
    return value
