"""Metrics for tests/test_scale.py, imported by name in Ray workers and subprocesses (``scale_metrics:NAME``).
Their state is files in ``$EDGEPRUNE_TEST_SCALE_DIR``, shared by every process of a test."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from torch import nn


def _calls(name: str) -> int:
    """Count this call of ``name`` (per process group of the test: a file per call)."""
    folder = Path(os.environ["EDGEPRUNE_TEST_SCALE_DIR"]) / name
    folder.mkdir(parents=True, exist_ok=True)
    n = len(list(folder.iterdir())) + 1
    (folder / f"{n}-{os.getpid()}").touch()
    return n


def size(model: nn.Module) -> float:
    """A stand-in metric: the parameter count (higher is better)."""
    return float(sum(p.numel() for p in model.parameters()))


def flaky(model: nn.Module) -> float:
    """Fails the first time it is called for a model of this size (a worker crash, a flaky resource)."""
    n = size(model)
    marker = Path(os.environ["EDGEPRUNE_TEST_SCALE_DIR"]) / f"flaky-{int(n)}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("flaky: fails once")
    return n


def broken(model: nn.Module) -> float:
    """Always fails."""
    raise RuntimeError("broken metric")


def dies_second(model: nn.Module) -> float:
    """Kills its own process on the second call (a sweep killed mid-way)."""
    if _calls("dies_second") == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return size(model)


def recording(evaluate):
    """``evaluate``, each call counted with its process id in ``evaluated/`` (where did the evaluations run)."""

    def recorded(model: nn.Module) -> float:
        _calls("evaluated")
        return evaluate(model)

    return recorded
