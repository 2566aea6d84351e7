"""Gymnasium environments and a batched closed-loop rollout (several seeded episodes stepped in lockstep).

Two tasks are used: gymnasium's ``Pendulum-v1`` and DeepMind Control's cart-pole swing-up
(``dm_control/cartpole-swingup-v0``: flat observation of 5, action repeat 8, 125 decisions per episode).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeprune.extras import require, require_installed

ENV_ID = "Pendulum-v1"

ActFn = Callable[[np.ndarray], np.ndarray]  # (E, obs_dim) observations -> (E, action_dim) env actions


def make_env(env_id: str = ENV_ID, max_episode_steps: int | None = None, **kwargs: Any) -> Any:
    """A gymnasium environment (gymnasium is imported here, so the rest of edgeprune does not need it).

    ``dm_control/…`` ids (DeepMind Control Suite through shimmy) come with a flat observation and TD-MPC's action
    repeat (:mod:`edgeprune.control.dmc`); ``max_episode_steps`` then counts decisions, not physics steps.
    """
    gym = require("gymnasium", "control", "the control benchmark (closed-loop return on Pendulum-v1)")
    if env_id.startswith("dm_control/"):
        purpose = f"the control benchmark on {env_id} (DeepMind Control Suite through shimmy)"
        # imported by dmc after its setup; imageio by gymnasium's MuJoCo renderer
        require_installed("dm_control", "shimmy", "imageio", extra="control", purpose=purpose)
        from edgeprune.control.dmc import make_dmc

        return make_dmc(env_id, max_episode_steps, **kwargs)
    if max_episode_steps:
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(env_id, **kwargs)


def rollout(
    act: ActFn,
    seeds: Sequence[int],
    env_id: str = ENV_ID,
    max_steps: int | None = None,
    record: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run one episode per seed, all envs stepped together so ``act`` sees a batch; returns the returns.

    An env that terminates early stops accumulating reward (Pendulum only truncates, at 200 steps).
    With ``record=True`` also returns the transitions as arrays ``obs (E, T+1, o)``, ``action (E, T, a)``,
    ``reward (E, T)`` (valid only when no env terminated early, as on Pendulum).
    """
    envs = [make_env(env_id, max_episode_steps=max_steps) for _ in seeds]
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=True)]).astype(np.float32)
    low, high = envs[0].action_space.low, envs[0].action_space.high
    returns = np.zeros(len(envs))
    alive = np.ones(len(envs), dtype=bool)
    trace: dict[str, list] = {"obs": [obs], "action": [], "reward": []}
    while alive.any():
        action = np.clip(np.asarray(act(obs), dtype=np.float32), low, high)
        step_rewards = np.zeros(len(envs), dtype=np.float32)
        next_obs = obs.copy()
        for i, env in enumerate(envs):
            if not alive[i]:
                continue
            o, r, terminated, truncated, _ = env.step(action[i])
            next_obs[i], step_rewards[i] = o, r
            returns[i] += r
            alive[i] = not (terminated or truncated)
        obs = next_obs
        if record:
            trace["obs"].append(obs)
            trace["action"].append(action)
            trace["reward"].append(step_rewards)
    for env in envs:
        env.close()
    if not record:
        return returns
    return returns, {k: np.stack(v, axis=1) for k, v in trace.items()}


def random_act_fn(seed: int, action_dim: int = 1, action_high: float = 2.0) -> ActFn:
    """Uniform random actions (the baseline a trained controller must beat)."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-action_high, action_high, size=(len(obs), action_dim)).astype(np.float32)
