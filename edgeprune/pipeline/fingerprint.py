"""What an optimize run depends on, as short digests: the model and its weights, the example inputs, the
metric, the target and its settings (calibration samples included), the code version. ``--resume`` compares
them with the run's ``config.json`` and refuses to continue a run with anything different."""

from __future__ import annotations

import enum
import functools
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

import edgeprune

_DEPTH = 6  # how deep objects are followed (targets hold boards, samples, settings)


def digest(value: Any) -> str:
    """A stable 16-hex-digit digest of ``value``: tensors and arrays by content, files named by a path by
    content, containers and plain objects by their parts, callables by module, name, code and closure."""
    h = hashlib.sha256()
    _feed(h, value, _DEPTH)
    return h.hexdigest()[:16]


def callable_name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def run_fingerprint(model: nn.Module, inputs: Any, evaluate: Callable, target: Any, finetune: Callable | None
                    ) -> dict[str, str]:  # fmt: skip
    """The entries of ``config.json`` that identify what a run measures and how."""
    return {
        "model": callable_name(type(model)),
        "model_sha256": digest(model),
        "inputs_sha256": digest(inputs),
        "evaluate": f"{callable_name(evaluate)} ({digest(evaluate)})",
        "finetune": "none" if finetune is None else f"{callable_name(finetune)} ({digest(finetune)})",
        "target_settings": digest(target),
        "code": f"edgeprune {edgeprune.__version__} ({code_digest()})",
    }


@functools.cache
def code_digest() -> str:
    """Digest of edgeprune's own source files: a run is resumed only by the code that started it."""
    root = Path(edgeprune.__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _feed(h: Any, v: Any, depth: int) -> None:
    h.update(type(v).__qualname__.encode() + b":")
    if depth <= 0:
        return
    if isinstance(v, nn.Module):
        _feed(h, {k: t for k, t in v.state_dict().items()}, depth - 1)
    elif isinstance(v, torch.Tensor):
        _feed(h, v.detach().cpu().numpy(), depth)
    elif isinstance(v, np.ndarray):
        h.update(f"{v.dtype}{v.shape}".encode() + np.ascontiguousarray(v).tobytes())
    elif isinstance(v, (str, os.PathLike)) and Path(v).is_file():
        h.update(str(v).encode() + Path(v).read_bytes())
    elif isinstance(v, (str, bytes, int, float, bool, type(None), enum.Enum)):
        h.update(repr(v).encode())
    elif isinstance(v, BaseModel):
        h.update(v.model_dump_json().encode())
    elif isinstance(v, Mapping):
        for k in sorted(v, key=repr):
            h.update(repr(k).encode())
            _feed(h, v[k], depth - 1)
    elif isinstance(v, (list, tuple, set, frozenset)):
        for x in sorted(v, key=repr) if isinstance(v, (set, frozenset)) else v:
            _feed(h, x, depth - 1)
    elif isinstance(v, functools.partial):
        _feed(h, (v.func, v.args, v.keywords), depth - 1)
    elif callable(v) and hasattr(v, "__code__"):
        h.update(callable_name(v).encode() + v.__code__.co_code)
        _feed(h, [c.cell_contents for c in v.__closure__ or ()], depth - 1)
    elif hasattr(v, "__dict__"):
        _feed(h, {k: x for k, x in vars(v).items() if not k.startswith("_")}, depth - 1)
    # anything else (sockets, locks, ...): its type name only, never a repr with a memory address
