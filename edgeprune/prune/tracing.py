"""Run a model once with hooks: forward checks, recorded component inputs, and output-producing layers."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgeprune.prune.errors import PruneError

ExampleInputs = torch.Tensor | tuple[torch.Tensor, ...]

# Layers that map channels to new channels: pruning their outputs changes the width downstream.
# Everything else (norms, activations, depthwise convs, reshapes) passes channels through unchanged.
CHANNEL_MIXERS = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention)


def as_tuple(example_inputs: ExampleInputs) -> tuple[Any, ...]:
    """Example inputs as a tuple of positional arguments."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise PruneError(
        f"example_inputs is a {type(example_inputs).__name__}",
        expected="a tensor or a tuple of tensors (one per forward argument, e.g. (obs, action))",
    )


def flatten_tensors(value: Any) -> list[torch.Tensor]:
    """All tensors in a (nested) output, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in flatten_tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in flatten_tensors(v)]
    return []


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no BatchNorm statistics updates, no dropout); every module's own flag is restored after."""
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, flag in training.items():
            m.train(flag)


@contextlib.contextmanager
def tracing_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and gradients on every parameter while tracing; the model's own flags are restored after."""
    requires_grad = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        with eval_mode(model), torch.enable_grad():
            yield
    finally:
        for p, flag in requires_grad.items():
            p.requires_grad_(flag)


def run_forward(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
    """Call the model, turning a failing forward into a clear error."""
    try:
        return model(*args, **(kwargs or {}))
    except Exception as exc:
        shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args]
        raise PruneError(
            f"{type(model).__name__} forward failed on the example inputs {shapes}: {type(exc).__name__}: {exc}",
            expected="example inputs the model accepts: a tensor or a tuple with one tensor per forward argument",
            fix="call the model on these inputs yourself to check them; pass a tuple for several inputs",
        ) from exc


@dataclass
class RecordedCall:
    """The detached arguments of a module's first call, to trace that module on its own later."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, tuple):
        return tuple(detach(v) for v in value)
    if isinstance(value, list):
        return [detach(v) for v in value]
    if isinstance(value, dict):
        return {k: detach(v) for k, v in value.items()}
    return value


def output_layers(
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    skip: Collection[int] = (),
) -> set[nn.Module]:
    """Layers whose output channels reach ``module``'s outputs unchanged (pruning them changes output shape).

    Walks the autograd graph back from each output through channel-preserving ops (norms, activations,
    reshapes, depthwise convs, element-wise ops) and stops at the first channel-mixing layer on each path.
    ``skip``: positions of flattened outputs left out (a model's declared state outputs).
    """
    produced_by: dict[Any, nn.Module] = {}

    def record(mod: nn.Module, _inputs: Any, output: Any) -> None:
        for t in flatten_tensors(output):
            if t.grad_fn is not None:  # the first layer that made it: an nn.Identity after it returns the same tensor
                produced_by.setdefault(t.grad_fn, mod)

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        with tracing_mode(module):
            outputs = run_forward(module, args, kwargs)
            found: set[nn.Module] = set()
            seen: set[Any] = set()
            flat = flatten_tensors(outputs)
            if any(i >= len(flat) for i in skip):
                raise PruneError(
                    f"state outputs {sorted(skip)} declared, but {type(module).__name__} returns {len(flat)} tensors",
                    expected="positions in the flattened forward output (Constraints(state_outputs=...))",
                )
            stack = [t.grad_fn for i, t in enumerate(flat) if t.grad_fn is not None and i not in skip]
            while stack:
                fn = stack.pop()
                if fn in seen:
                    continue
                seen.add(fn)
                layer = produced_by.get(fn)
                if layer is not None and _mixes_channels(layer):
                    found.add(layer)
                    continue
                stack.extend(nxt for nxt, _ in fn.next_functions if nxt is not None)
    finally:
        for h in handles:
            h.remove()
    return found


def _mixes_channels(layer: nn.Module) -> bool:
    if isinstance(layer, nn.modules.conv._ConvNd):
        depthwise = layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels
        return not depthwise
    return isinstance(layer, CHANNEL_MIXERS)
