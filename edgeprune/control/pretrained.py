"""The TD-MPC-style model trained on Pendulum-v1 that ships with edgeprune (``benchmarks/control.py`` trained it),
its replay buffer, and its task metric: the latent planner's closed-loop return.

```python
model = pretrained_tdmpc()                  # TDMPCStyle, 116,420 parameters, weights_only loading
evaluate = planner_return(episodes=5)       # evaluate(model) -> mean return over seeded episodes (higher is better)
```
The metric needs gymnasium (``pip install 'edgeprune[control]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
from torch import nn

from edgeprune.control.env import rollout
from edgeprune.control.planner import Planner, PlannerConfig
from edgeprune.control.replay import Replay
from edgeprune.control.train import load_model
from edgeprune.models.tdmpc import TDMPCStyle

STEM = "tdmpc_pendulum"
EVAL_SEED0 = 2_000  # evaluation episodes use env seeds EVAL_SEED0 … (unseen in training)
PLANNER_SEED = 0


def pretrained_dir() -> Path:
    """The folder holding ``tdmpc_pendulum.pt`` (state dict) and ``tdmpc_pendulum_replay.npz``."""
    return Path(str(resources.files("edgeprune.control").joinpath("pretrained")))


def pretrained_tdmpc() -> TDMPCStyle:
    """The trained model (eval mode); usable as a model spec: ``edgeprune.control.pretrained:pretrained_tdmpc``."""
    return load_model(pretrained_dir() / f"{STEM}.pt")


def pretrained_replay() -> Replay:
    """The replay buffer the model was trained on (30 episodes of 200 steps)."""
    return Replay.load(pretrained_dir() / f"{STEM}_replay.npz")


def calibration_samples(n: int = 64, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` real ``(obs, action)`` pairs from the replay buffer, batch 1, for int8 calibration."""
    replay = pretrained_replay()
    obs = np.concatenate([o[:-1] for o in replay.obs])
    action = np.concatenate(replay.action)
    picks = np.random.default_rng(seed).choice(len(obs), size=n, replace=False)
    return [(obs[i : i + 1].astype(np.float32), action[i : i + 1].astype(np.float32)) for i in picks]


def planner_return(
    episodes: int = 5, config: PlannerConfig | None = None, seed0: int = EVAL_SEED0
) -> Callable[[nn.Module], float]:
    """``evaluate(model)``: the latent MPPI planner's mean closed-loop return on ``episodes`` seeded
    Pendulum-v1 episodes (deterministic: fixed env seeds and planner seed)."""
    seeds = list(range(seed0, seed0 + episodes))

    def evaluate(model: nn.Module) -> float:
        return float(np.mean(rollout(Planner(model, config).act_fn(PLANNER_SEED), seeds)))

    return evaluate


def pendulum_return(model: nn.Module) -> float:
    """``planner_return()`` with its defaults, for the command line:
    ``edgeprune optimize ... --eval edgeprune.control.pretrained:pendulum_return``."""
    return planner_return()(model)
