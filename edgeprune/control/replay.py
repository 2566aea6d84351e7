"""Replay buffer of whole episodes; samples length-(H+1) sub-trajectories as TD-MPC trains on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Replay:
    """Episodes of equal length: ``obs (E, T+1, o)``, ``action (E, T, a)`` in [-1, 1] (model units), ``reward (E, T)``.

    Rewards are stored as the environment gives them (unscaled).
    """

    obs: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    reward: list[np.ndarray] = field(default_factory=list)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray) -> None:
        """Add a batch of episodes (leading dim E) or one episode (no leading dim)."""
        if obs.ndim == 2:
            obs, action, reward = obs[None], action[None], reward[None]
        self.obs.extend(obs.astype(np.float32))
        self.action.extend(action.astype(np.float32))
        self.reward.extend(reward.astype(np.float32))

    @property
    def episodes(self) -> int:
        return len(self.obs)

    @property
    def transitions(self) -> int:
        return sum(len(r) for r in self.reward)

    def sample(self, batch: int, horizon: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """``obs (H+1, B, o)``, ``action (H, B, a)``, ``reward (H, B)``: time-major, as the losses use them."""
        ep = rng.integers(0, self.episodes, size=batch)
        lengths = np.array([len(self.reward[e]) for e in ep])
        start = (rng.random(batch) * (lengths - horizon + 1)).astype(int)
        obs = np.stack([self.obs[e][s : s + horizon + 1] for e, s in zip(ep, start, strict=True)], 1)
        act = np.stack([self.action[e][s : s + horizon] for e, s in zip(ep, start, strict=True)], 1)
        rew = np.stack([self.reward[e][s : s + horizon] for e, s in zip(ep, start, strict=True)], 1)
        return torch.from_numpy(obs), torch.from_numpy(act), torch.from_numpy(rew)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, obs=np.stack(self.obs), action=np.stack(self.action), reward=np.stack(self.reward))

    @classmethod
    def load(cls, path: str | Path) -> Replay:
        with np.load(path) as d:
            replay = cls()
            replay.add(d["obs"], d["action"], d["reward"])
        return replay
