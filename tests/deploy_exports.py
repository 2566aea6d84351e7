"""Bundled models exported once per test session (onnx2tf + TFLM take ~15 s each) for the deploy tests.
32 calibration samples: the tests compare our kernels with TFLM on the same int8 model, so calibration
quality does not matter, and fewer samples make the conversion faster."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgeprune.export import export
from edgeprune.models import create_model
from edgeprune.prune import Budget, prune


def exported(name: str, pruned: bool = False) -> Path:
    """Directory of an ONNX + TFLM export of bundled model ``name`` (pruned 50 % when ``pruned``)."""
    return _export(name, bool(pruned))  # one cache key however the arguments are passed


@functools.cache
def _export(name: str, pruned: bool) -> Path:
    torch.manual_seed(0)
    model = create_model(name).eval()
    inputs = model.example_inputs(1)
    if pruned:
        model = prune(model, inputs, Budget(default=0.5)).model
    torch.manual_seed(1)
    calib = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    out = Path(tempfile.mkdtemp(prefix=f"ep-{name}-"))
    export(model, inputs, out, targets=("onnx", "tflm"), calibration=calib, force=True)
    return out


def random_inputs(shapes: list[tuple[int, ...]], n: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, s).astype(np.int8) for s in shapes] for _ in range(n)]
