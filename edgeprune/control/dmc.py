"""DeepMind Control Suite tasks as flat gymnasium envs with TD-MPC's action repeat (``dm-control`` via ``shimmy``).

Imported only by :func:`edgeprune.control.env.make_env` for ``dm_control/…`` ids, after the ``control`` extra's
packages are known to be there.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import FlattenObservation, TimeLimit

os.environ.setdefault("MUJOCO_GL", "disable")  # never rendered: no OpenGL context (and no GLFW warning headless)

import shimmy  # registers the dm_control/* ids with gymnasium on import

# TD-MPC's action repeat per DMC domain (Hansen et al. 2022): cartpole 8, i.e. 1000 physics steps -> 125 decisions
ACTION_REPEAT = {"cartpole": 8}
DEFAULT_REPEAT = 1  # other domains: no repeat (only cartpole is set up here)


class ActionRepeat(gym.Wrapper):
    """Apply each action ``repeat`` times and sum the rewards (stops early when the episode ends)."""

    def __init__(self, env: gym.Env, repeat: int):
        if repeat < 1:
            raise ValueError(f"action repeat must be >= 1, got {repeat}")
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def make_dmc(env_id: str, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """``dm_control/<domain>-<task>-v0`` with the observation dict flattened (keys in the suite's order) and
    TD-MPC's action repeat; ``max_episode_steps`` counts repeated (decision) steps."""
    assert shimmy  # imported for its registration
    domain = env_id.removeprefix("dm_control/").split("-")[0]
    env = ActionRepeat(FlattenObservation(gym.make(env_id, **kwargs)), ACTION_REPEAT.get(domain, DEFAULT_REPEAT))
    return TimeLimit(env, max_episode_steps) if max_episode_steps else env
