"""Model specs on the command line: a bundled model name, or ``package.module:factory`` plus weights."""

from __future__ import annotations

import importlib
import os
import shlex
from collections.abc import Sequence

import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.models import SEED, create_model


def load_model(
    spec: str, weights: str | os.PathLike | None = None, input_shapes: Sequence[str] = ()
) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Build the model named by ``spec`` and its example inputs.

    ``spec`` is a bundled model name (``edgeprune models`` lists them) or ``package.module:factory``
    where ``factory()`` returns an ``nn.Module``. ``weights`` is a ``state_dict`` file, loaded with
    ``weights_only=True``. Example inputs come from the model's ``example_inputs()`` when it has one (batch 1
    for a bundled model), else from ``input_shapes`` such as ``"1x3x32x32"`` (random float32, one per forward
    argument). Model and inputs are built from a fixed seed: the same arguments give the same model and inputs.
    """
    with torch.random.fork_rng(devices=[]):  # the same command line gives the same model and inputs every time
        torch.manual_seed(SEED)
        model = _build(spec)
        if weights is not None:
            _load_weights(model, weights)
        model.eval()
        return model, _example_inputs(spec, model, input_shapes)


def _example_inputs(spec: str, model: nn.Module, input_shapes: Sequence[str]) -> tuple[torch.Tensor, ...]:
    if input_shapes:
        return tuple(torch.randn(*_parse_shape(s)) for s in input_shapes)
    if callable(getattr(model, "example_inputs", None)):
        bundled = ":" not in spec  # ours take a batch size: one example, so an export runs one inference per call
        return _as_inputs(spec, model.example_inputs(1) if bundled else model.example_inputs())
    raise EdgepruneError(
        f"{spec}: no example inputs",
        expected="a model with an example_inputs() method, or input shapes",
        fix="pass --input-shape 1x3x32x32 (once per forward argument)",
    )


def _as_inputs(spec: str, example: object) -> tuple[torch.Tensor, ...]:
    """``example_inputs()``'s result as one tensor per forward argument: a single tensor is one argument
    (never split along its batch axis), a tuple or list is one argument per element."""
    inputs = (example,) if isinstance(example, torch.Tensor) else example
    if not isinstance(inputs, (tuple, list)) or not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise EdgepruneError(
            f"{spec}: example_inputs() returned {type(example).__name__}",
            expected="a torch.Tensor, or a tuple of tensors (one per forward argument)",
            fix="return e.g. torch.randn(1, 8) or (torch.randn(1, 8), torch.randn(1, 4)) from example_inputs()",
        )
    return tuple(inputs)


def _build(spec: str) -> nn.Module:
    if ":" not in spec:
        return create_model(spec)
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EdgepruneError(
            f"cannot load {spec!r}: {exc}",
            expected="package.module:factory importable from the current environment (check PYTHONPATH)",
        ) from exc
    try:
        model = factory()
    except Exception as exc:  # the user's code: say where it failed, not a traceback from inside it
        raise EdgepruneError(
            f"{spec}() raised {type(exc).__name__}: {exc}",
            expected="a factory that builds the model without arguments",
            fix=f"fix {spec} (try: {shlex.join(['python', '-c', f'import {module_name}; {module_name}.{attr}()'])})",
        ) from exc
    if not isinstance(model, nn.Module):
        raise EdgepruneError(f"{spec} returned {type(model).__name__}", expected="a torch.nn.Module")
    return model


def _load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EdgepruneError(f"weights file {path} does not exist") from None
    except Exception as exc:
        raise EdgepruneError(
            f"cannot read weights {path}: {type(exc).__name__}: {exc}",
            expected="a state_dict saved with torch.save(model.state_dict(), path) (pickled modules are refused)",
        ) from exc
    if not isinstance(state, dict):
        raise EdgepruneError(f"weights {path} hold a {type(state).__name__}", expected="a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise EdgepruneError(f"weights {path} do not fit the model: {exc}") from exc


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise EdgepruneError(f"bad input shape {text!r}", expected="dimensions joined by x, e.g. 1x3x32x32")
    return shape
