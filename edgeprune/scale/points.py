"""The three steps of a sweep point, each a plain function (a Ray task in a distributed sweep, a call in a
serial one): :func:`prepare` (prune to the budget, evaluate the metric; CPU, any node), :func:`make_export`
(one conversion per content hash; CPU, any node) and :func:`measure` (on the target, holding its resource).
Each returns plain data, so the driver alone writes the run directory."""

from __future__ import annotations

import importlib
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.measure.runner import Subject
from edgeprune.prune import Budget, Components, prune
from edgeprune.prune.counting import macs_per_component
from edgeprune.scale.cache import PackedExport, content_hash
from edgeprune.scale.targets import Target


@dataclass
class Prepared:
    """A model pruned to one budget: the module, its metric, size, and the content hash of each export it needs."""

    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    metric: float
    params: int
    macs: int
    keys: dict[tuple[str, ...], str]  # export targets -> content hash


def prepare(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    budget: float,
    metric: str,
    export_sets: list[tuple[str, ...]],
    calibration: Any,
) -> Prepared:
    """``model`` pruned to ``budget`` (a model-wide fraction of parameters; 0 = the model as it is) and its
    ``metric``: ``"fidelity"`` (:func:`edgeprune.prune.output_fidelity` vs ``model``, a data-free stand-in) or
    ``module:fn`` with ``fn(pruned) -> float``, higher is better (importable on every node)."""
    pruned = prune(model, inputs, Budget(total=budget)).model if budget > 0 else model
    pruned.eval()
    value = float(evaluate(metric, model, inputs)(pruned))
    macs = sum(macs_per_component(pruned, inputs, Components.from_children(pruned)).values())
    params = sum(p.numel() for p in pruned.parameters())
    keys = {s: content_hash(pruned, inputs, s, calibration) for s in export_sets if s}
    return Prepared(pruned, inputs, value, params, macs, keys)


def make_export(prepared: Prepared, targets: tuple[str, ...], calibration: Any) -> PackedExport:
    """Convert the prepared model once for ``targets``, in a scratch directory of this node, packed for any node."""
    from edgeprune.export import export

    with tempfile.TemporaryDirectory(prefix="edgeprune-export-") as tmp:
        result = export(
            prepared.model,
            prepared.inputs,
            Path(tmp) / "export",
            targets=targets,
            calibration=calibration,
            int8=calibration is not None,
            force=True,
        )
        return PackedExport.pack(prepared.keys[targets], result)


def measure(
    label: str,
    prepared: Prepared,
    packed: PackedExport | None,
    target: Target,
    calibration: Any,
) -> dict[str, Any]:
    """Measure the prepared model on ``target`` with its export unpacked here; the point's record (without the
    point's identity, which the driver adds): metric, size, the ``Measurement`` as a dict, the timestamps around
    the measurement, host, Ray node and pid."""
    runner = target.runner(calibration)
    with tempfile.TemporaryDirectory(prefix="edgeprune-point-") as tmp:
        workdir = Path(tmp)
        subject = Subject(label, prepared.model, prepared.inputs, workdir)
        if packed is not None:
            result = packed.unpack(workdir / "export")
            targets = next(t for t, k in prepared.keys.items() if k == packed.key)
            subject = Subject(
                label,
                prepared.model,
                prepared.inputs,
                workdir,
                _export=result,
                _made=(frozenset(targets), runner.calibration),
            )
        started = time.time()
        measurement = runner.measure(subject)
        ended = time.time()
    return {
        "metric": prepared.metric,
        "params": prepared.params,
        "macs": prepared.macs,
        "measurement": measurement.to_dict(),
        "started": started,
        "ended": ended,
        "host": socket.gethostname(),
        "node": _ray_node(),
        "pid": os.getpid(),
        "export": packed.key if packed is not None else None,
    }


def evaluate(metric: str, original: nn.Module, inputs: tuple[torch.Tensor, ...]):
    """The metric function ``metric`` names (see :func:`prepare`)."""
    if metric == "fidelity":
        from edgeprune.prune import output_fidelity

        return output_fidelity(original, inputs)
    module, _, name = metric.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EdgepruneError(
            f"metric {metric!r} cannot be loaded: {exc}",
            expected="'fidelity' or module:function, importable where the sweep runs",
        ) from exc


def _ray_node() -> str | None:
    """The Ray node this runs on (in a Ray worker), else None."""
    ray = sys.modules.get("ray")
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
