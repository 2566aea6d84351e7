"""The data-free stand-in metric: how far a pruned model's outputs moved from the original's.

One proxy for the whole toolchain: ``sensitivity()`` uses it when no task metric is given, and
``edgeprune optimize --eval fidelity`` and sweeps with ``metric = "fidelity"`` optimise against it. It measures
how much pruning changes the outputs on the inputs given, not task quality: prefer your own metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from edgeprune.prune.errors import PruneError
from edgeprune.prune.tracing import ExampleInputs, as_tuple, eval_mode, flatten_tensors

Metric = Callable[[nn.Module], float]  # evaluate(model) -> float, higher is better


def output_fidelity(reference: nn.Module, inputs: ExampleInputs, skip: Sequence[int] = ()) -> Metric:
    """``evaluate(model)``: minus the mean over outputs of their normalised squared error vs ``reference``.

    Each output's MSE on ``inputs`` (best a batch of real calibration inputs, not noise) is divided by that
    output's mean square on them, so outputs of any scale weigh the same: 0 means unchanged, 1 an error as
    large as the output itself. (The mean square is the output's variance plus its squared mean: unlike the
    variance alone it stays meaningful for a batch of one and for an output that barely varies over the batch,
    as an untrained network's often does.) Outputs at ``skip`` positions (declared state outputs, whose width
    may change) are left out when their shape changed; any other change of shape or output count is an error.
    """
    args = as_tuple(inputs)
    with eval_mode(reference), torch.no_grad():
        ref = [t.detach().clone().float() for t in flatten_tensors(reference(*args))]
    scale = [(r**2).mean().clamp_min(1e-12) for r in ref]

    def evaluate(model: nn.Module) -> float:
        with eval_mode(model), torch.no_grad():
            out = flatten_tensors(model(*args))
        if len(out) != len(ref):
            raise PruneError(
                f"the model returns {len(out)} output tensors, the reference {len(ref)}",
                expected="a pruned copy of the reference model (same outputs)",
            )
        errors = []
        for i, (o, r, s) in enumerate(zip(out, ref, scale, strict=True)):
            if o.shape != r.shape:
                if i in skip:
                    continue
                raise PruneError(f"output {i} changed shape {tuple(r.shape)} -> {tuple(o.shape)}")
            errors.append(float(((o.float() - r) ** 2).mean() / s))
        return -sum(errors) / max(len(errors), 1)

    return evaluate
