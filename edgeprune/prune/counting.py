"""Parameters and multiply-accumulates per component, measured on a real forward."""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn

from edgeprune.prune import recurrent
from edgeprune.prune.components import Components
from edgeprune.prune.tracing import ExampleInputs, as_tuple, eval_mode, run_forward


def params_per_component(model: nn.Module, components: Components) -> dict[str, int]:
    """Parameter count per component (``None`` key: parameters outside every component)."""
    out: dict[str, int] = defaultdict(int)
    for name, p in model.named_parameters():
        out[components.owner(name)] += p.numel()
    return dict(out)


def macs_per_component(model: nn.Module, example_inputs: ExampleInputs, components: Components) -> dict[str, int]:
    """Multiply-accumulates per example (one forward on the inputs, divided by their batch size).

    Counts Linear, ConvNd, ConvTranspose and recurrent layers (every time step) on every call (a component
    called three times in a rollout counts three times); element-wise ops and norms are not MACs.
    """
    args = as_tuple(example_inputs)
    batch = args[0].shape[0] if args and isinstance(args[0], torch.Tensor) and args[0].dim() > 0 else 1
    names = {m: n for n, m in model.named_modules()}
    totals: dict[str, float] = defaultdict(float)

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        totals[components.owner(names[module])] += _macs(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _COUNTED)]
    try:
        with eval_mode(model), torch.no_grad():
            run_forward(model, args)
    finally:
        for h in handles:
            h.remove()
    return {k: round(v / batch) for k, v in totals.items()}


_COUNTED = (nn.Linear, nn.modules.conv._ConvNd, *recurrent.RECURRENT_TYPES)


def _macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> float:
    if recurrent.is_recurrent(module):
        return recurrent.macs(module, inputs, output)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        x = inputs[0]
        return x.numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return output.numel() * per_output
