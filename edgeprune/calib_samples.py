"""Int8 calibration samples made by a command (``edgeprune samples``): ``{input name: array}`` for ``--calib``.

Two sources: ``replay``, real ``(obs, action)`` pairs from the replay buffer the shipped TD-MPC model was trained
on (for that model and any model with its inputs), and ``example``, draws of the model's own ``example_inputs()``
(random, so only for untrained models and smoke tests: int8 calibrated on them means little). For your own model,
save real inputs with ``np.savez(path, **{input_name: array})``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.export.onnx import default_input_names

SOURCES = ("replay", "example")


def make_samples(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], source: str, count: int = 256, seed: int = 0
) -> dict[str, np.ndarray]:
    """``{input name: float32 array (count, *sample shape)}`` from ``source`` (one of :data:`SOURCES`)."""
    if count < 1:
        raise EdgepruneError(f"--count {count}", expected="at least one sample")
    names = default_input_names(model, len(inputs))
    shapes = [tuple(t.shape[1:]) for t in inputs]
    if source == "replay":
        from edgeprune.control.pretrained import pretrained_replay

        replay = pretrained_replay()
        obs = np.concatenate([o[:-1] for o in replay.obs]).astype(np.float32)
        action = np.concatenate(replay.action).astype(np.float32)
        if shapes != [obs.shape[1:], action.shape[1:]]:
            raise EdgepruneError(
                f"the shipped replay buffer holds (obs {obs.shape[1:]}, action {action.shape[1:]}) samples; "
                f"this model takes inputs of shapes {shapes}",
                expected="a model with the TD-MPC Pendulum inputs (obs (3,), action (1,)), as tdmpc",
                fix="use --source example (random, smoke tests only), or save real inputs with np.savez",
            )
        if count > len(obs):
            raise EdgepruneError(f"--count {count}", expected=f"at most the {len(obs)} transitions in the buffer")
        picks = np.random.default_rng(seed).choice(len(obs), size=count, replace=False)
        return dict(zip(names, (obs[picks], action[picks]), strict=True))
    if source == "example":
        example = getattr(model, "example_inputs", None)
        if not callable(example):
            raise EdgepruneError("the model has no example_inputs()", fix="save real inputs with np.savez instead")
        torch.manual_seed(seed)
        draws = [tuple(example(1)) for _ in range(count)]
        return {n: torch.cat([d[i] for d in draws]).numpy().astype(np.float32) for i, n in enumerate(names)}
    raise EdgepruneError(f"unknown source {source!r}", expected=f"one of {', '.join(SOURCES)}")
