"""Bundled models exported for the deploy tests (onnx2tf + TFLM take ~7-15 s each), once per machine rather than
once per test process: exports live in a cache directory shared by the pytest-xdist workers (and later runs),
one subdirectory per model/pruned and per hash of the code and package versions that produce them, written
under an fcntl lock so two workers never export the same model twice. ``EDGEPRUNE_TEST_EXPORTS`` overrides the
cache directory (default: ``$TMPDIR/edgeprune-test-exports``).

32 calibration samples: the tests compare our kernels with TFLM on the same int8 model, so calibration quality
does not matter, and fewer samples make the conversion faster."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

import edgeprune
from edgeprune.export import export
from edgeprune.models import create_model
from edgeprune.prune import Budget, prune

# what an export depends on: the exporter, the models, the pruner, this file, and the converters' versions
_SOURCES = ("export", "models", "prune")
_PACKAGES = ("torch", "onnx", "onnx2tf", "tensorflow", "tflite-micro", "numpy")


@functools.cache
def _code_hash() -> str:
    h = hashlib.sha256()
    root = Path(edgeprune.__file__).parent
    files = sorted(p for d in _SOURCES for p in (root / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for p in [*files, Path(__file__)]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    for pkg in _PACKAGES:
        h.update(f"{pkg}={version(pkg)}".encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEPRUNE_TEST_EXPORTS") or Path(tempfile.gettempdir()) / "edgeprune-test-exports")


def exported(name: str, pruned: bool = False) -> Path:
    """Directory of an ONNX + TFLM export of bundled model ``name`` (pruned 50 % when ``pruned``)."""
    return _export(name, bool(pruned))  # one cache key however the arguments are passed


@functools.cache
def _export(name: str, pruned: bool) -> Path:
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    out = root / f"{name}{'-pruned50' if pruned else ''}-{_code_hash()}"
    with open(root / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker exporting the same model: wait for it
        if not (out / "tflm" / "model.tflite").is_file():
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=root))
            try:
                _write_export(name, pruned, tmp)
                shutil.rmtree(out, ignore_errors=True)
                tmp.rename(out)  # complete exports only
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_export(name: str, pruned: bool, out: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    inputs = model.example_inputs(1)
    if pruned:
        model = prune(model, inputs, Budget(default=0.5)).model
    torch.manual_seed(1)
    calib = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    export(model, inputs, out, targets=("onnx", "tflm"), calibration=calib, force=True)


def random_inputs(shapes: list[tuple[int, ...]], n: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, s).astype(np.int8) for s in shapes] for _ in range(n)]
