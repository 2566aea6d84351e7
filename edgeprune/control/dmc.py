"""DeepMind Control Suite tasks as flat gymnasium envs with TD-MPC's action repeat (``dm-control`` via ``shimmy``).

Used by :func:`edgeprune.control.env.make_env` for ``dm_control/…`` ids, after it has checked that the ``control``
extra's packages are installed; they are imported on first use, so importing this module needs none of them.
"""

from __future__ import annotations

import functools
import os
from typing import Any

# TD-MPC's action repeat per DMC domain (Hansen et al. 2022): cartpole 8, i.e. 1000 physics steps -> 125 decisions
ACTION_REPEAT = {"cartpole": 8}
DEFAULT_REPEAT = 1  # other domains: no repeat (only cartpole is set up here)


@functools.cache
def action_repeat_wrapper() -> type:
    """``ActionRepeat(env, repeat)``: a gymnasium wrapper that applies each action ``repeat`` times and sums the
    rewards (stopping early when the episode ends). Built on first use: gymnasium is an optional dependency."""
    import gymnasium as gym

    class ActionRepeat(gym.Wrapper):
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

    return ActionRepeat


def make_dmc(env_id: str, max_episode_steps: int | None = None, **kwargs: Any) -> Any:
    """``dm_control/<domain>-<task>-v0`` with the observation dict flattened (keys in the suite's order) and
    TD-MPC's action repeat; ``max_episode_steps`` counts repeated (decision) steps."""
    os.environ.setdefault("MUJOCO_GL", "disable")  # never rendered: no OpenGL context (no GLFW warning headless)
    import gymnasium as gym
    import shimmy  # noqa: F401  (registers the dm_control/* ids with gymnasium on import)
    from gymnasium.wrappers import FlattenObservation, TimeLimit

    domain = env_id.removeprefix("dm_control/").split("-")[0]
    repeat = ACTION_REPEAT.get(domain, DEFAULT_REPEAT)
    env = action_repeat_wrapper()(FlattenObservation(gym.make(env_id, **kwargs)), repeat)
    return TimeLimit(env, max_episode_steps) if max_episode_steps else env
