"""Op records for the cost model: what a model executes, one record per kernel call, per inference.

``OpCost`` is deliberately runtime-neutral: ``ops_from_module`` builds it from a PyTorch module through
forward hooks, and a TFLite reader (``ops_from_tflite``, planned) can build the same records from a
flatbuffer's operator list. The records follow what the TFLite converter produces: a BatchNorm and a
ReLU/ReLU6 that directly consume a conv's or fully connected layer's output are folded into it
(listed in ``fused``) instead of becoming ops of their own.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


class OpKind(str, Enum):
    """Kernel families with distinct cost per unit of work (see ``edgeprune.boards.cost_model``)."""

    CONV2D = "conv2d"
    DEPTHWISE_CONV2D = "depthwise_conv2d"
    FULLY_CONNECTED = "fully_connected"
    ADD = "add"
    MUL = "mul"
    ACTIVATION = "activation"
    ELEMENTWISE = "elementwise"
    QUANTIZE = "quantize"
    POOLING = "pooling"
    MEAN = "mean"
    SOFTMAX = "softmax"
    RESHAPE = "reshape"
    DATA_MOVEMENT = "data_movement"
    OTHER = "other"


MAC_KINDS = frozenset({OpKind.CONV2D, OpKind.DEPTHWISE_CONV2D, OpKind.FULLY_CONNECTED})
"""Kinds whose ``macs`` are multiply-accumulates with weights (the fused-into targets)."""


@dataclass(frozen=True)
class OpCost:
    """One kernel call of one inference (batch 1).

    ``macs``: multiply-accumulates for conv/depthwise/fully connected; accumulations (output elements ×
    window) for pooling and mean; 0 for everything else. ``input_elements``/``output_elements``: elements
    of the (first) input and of the output tensor. ``weights``: weight + bias elements the op reads
    (≈ int8 bytes in flash). ``fused``: names of the ops folded into this one. ``module``: the PyTorch class
    (``LayerNorm``, ``Tanh``...): kinds whose cost differs by class are costed per class where a set has one.
    """

    name: str
    kind: OpKind
    macs: int
    output_elements: int
    input_elements: int = 0
    weights: int = 0
    fused: tuple[str, ...] = ()
    module: str = ""


def total_macs(ops: Sequence[OpCost], kinds: frozenset[OpKind] = MAC_KINDS) -> int:
    """Sum of ``macs`` over the ops of ``kinds`` (default: conv, depthwise and fully connected)."""
    return sum(op.macs for op in ops if op.kind in kinds)


_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.SiLU,
    nn.GELU,
    nn.Mish,
)
_FUSABLE_ACTIVATIONS = (nn.ReLU, nn.ReLU6)
_SKIPPED = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


# Functional calls between modules that become int8 kernels of their own (x + y, torch.cat, ...): recorded too.
_FUNCTIONAL: dict[str, OpKind] = {
    "add": OpKind.ADD, "__add__": OpKind.ADD, "__radd__": OpKind.ADD, "sub": OpKind.ADD, "__sub__": OpKind.ADD,
    "__rsub__": OpKind.ADD, "mul": OpKind.MUL, "__mul__": OpKind.MUL, "__rmul__": OpKind.MUL,
    "cat": OpKind.DATA_MOVEMENT, "concat": OpKind.DATA_MOVEMENT, "concatenate": OpKind.DATA_MOVEMENT,
}  # fmt: skip


class _Functional(TorchFunctionMode):
    """Records the :data:`_FUNCTIONAL` calls made outside every leaf module through ``record(name, kind, output)``;
    ``stack`` holds the modules running (forward hooks push and pop), ``leaves`` the leaf modules."""

    def __init__(self, record, leaves: set[nn.Module]) -> None:
        super().__init__()
        self.stack: list[nn.Module] = []
        self.leaves = leaves
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        kind = _FUNCTIONAL.get(name)
        if kind is not None and isinstance(out, torch.Tensor) and not (self.stack and self.stack[-1] in self.leaves):
            self.record(self.stack[-1] if self.stack else None, name.strip("_").removeprefix("r"), kind, out)
        return out


def _numel(t: object) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _classify(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[OpKind, int]:
    """(kind, MACs of this call over the whole batch) for one leaf module call."""
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            return OpKind.CONV2D, x.numel() * (module.out_channels // module.groups) * kernel
        macs = y.numel() * (module.in_channels // module.groups) * kernel
        depthwise = module.groups > 1 and module.groups == module.in_channels
        return (OpKind.DEPTHWISE_CONV2D if depthwise else OpKind.CONV2D), macs
    if isinstance(module, nn.Linear):
        return OpKind.FULLY_CONNECTED, y.numel() * module.in_features
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd) and math.prod(y.shape[2:]) == 1:
        return OpKind.MEAN, x.numel()
    if isinstance(module, nn.modules.pooling._AvgPoolNd | nn.modules.pooling._MaxPoolNd):
        kernel = module.kernel_size
        window = math.prod(kernel) if isinstance(kernel, tuple) else kernel ** (x.dim() - 2)
        return OpKind.POOLING, y.numel() * window
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
        return OpKind.POOLING, x.numel()
    if isinstance(module, nn.Softmax | nn.LogSoftmax):
        return OpKind.SOFTMAX, 0
    if isinstance(module, nn.Flatten | nn.Unflatten):
        return OpKind.RESHAPE, 0
    if isinstance(module, nn.modules.padding._ConstantPadNd | nn.modules.padding._ReflectionPadNd):
        return OpKind.DATA_MOVEMENT, 0
    if isinstance(module, _ACTIVATIONS):
        return OpKind.ACTIVATION, 0
    if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
        return OpKind.ELEMENTWISE, 0
    return OpKind.OTHER, 0


def ops_from_module(model: nn.Module, example_inputs: Sequence[torch.Tensor], *, fuse: bool = True) -> list[OpCost]:
    """The ops one forward pass of ``model`` executes, in execution order, per example.

    Forward hooks on every leaf module record one ``OpCost`` per call (a module called three times gives
    three records, named ``path``, ``path#2``, ``path#3``); counts are divided by the batch size (the
    first dimension of ``example_inputs[0]``). With ``fuse`` (the TFLite converter's behaviour), a
    BatchNorm or ReLU/ReLU6 whose input is the output of the previous conv/depthwise/fully connected op
    is folded into it. Dropout and Identity are skipped.

    Limitation: hooks see modules only. Functional calls in ``forward`` (``F.relu``, ``x + y``,
    ``torch.flatten``) are not recorded; for such models the estimate misses their (usually small) cost.
    """
    batch = int(example_inputs[0].shape[0]) if example_inputs and example_inputs[0].dim() > 0 else 1
    names = {m: n for n, m in model.named_modules()}
    calls: Counter[str] = Counter()
    records: list[OpCost] = []
    last: dict[str, object] = {"output": None}

    def functional(within: nn.Module | None, op: str, kind: OpKind, y: torch.Tensor) -> None:
        path = ".".join(p for p in (names.get(within, "") if within is not None else "", op) if p)
        calls[path] += 1
        name = path if calls[path] == 1 else f"{path}#{calls[path]}"
        records.append(OpCost(name, kind, 0, y.numel() // batch, _numel(y) // batch, module=op))
        last["output"] = y

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    mode = _Functional(functional, set(leaves))

    def push(module: nn.Module, args: tuple[object, ...]) -> None:
        mode.stack.append(module)

    def pop(module: nn.Module, args: tuple[object, ...], output: object) -> None:
        mode.stack.pop()

    def hook(module: nn.Module, args: tuple[object, ...], output: object) -> None:
        if isinstance(module, _SKIPPED):
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        y = output if isinstance(output, torch.Tensor) else None
        if x is None or y is None:
            return
        path = names.get(module, type(module).__name__) or type(module).__name__
        calls[path] += 1
        name = path if calls[path] == 1 else f"{path}#{calls[path]}"
        foldable = isinstance(module, (nn.modules.batchnorm._BatchNorm, *_FUSABLE_ACTIVATIONS))
        if fuse and foldable and records and records[-1].kind in MAC_KINDS and x is last["output"]:
            records[-1] = dataclasses.replace(records[-1], fused=(*records[-1].fused, name))
            last["output"] = y
            return
        kind, macs = _classify(module, x, y)
        records.append(
            OpCost(
                name=name,
                kind=kind,
                macs=macs // batch,
                output_elements=y.numel() // batch,
                input_elements=_numel(x) // batch,
                weights=_weights(module),
                module=type(module).__name__,
            )
        )
        last["output"] = y

    handles = [m.register_forward_pre_hook(push) for m in model.modules()]
    handles += [m.register_forward_hook(pop) for m in model.modules()]
    handles += [m.register_forward_hook(hook) for m in leaves]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), mode:
            model(*example_inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return records
