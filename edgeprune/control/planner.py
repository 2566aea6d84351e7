"""TD-MPC's latent planner: MPPI over action sequences, scored by the world model, policy samples mixed in.

For each of E environments at once: encode the observation, sample ``num_samples`` Gaussian action
sequences of length ``horizon`` (plus ``num_pi`` sequences from the policy), roll them through the latent
dynamics, score ``sum_t γ^t r̂(z_t, a_t) + γ^H min_i Q_i(z_H, π(z_H))``, refit mean and std to the
``num_elites`` best weighted by ``exp(temperature · (value − best))``, repeat ``iterations`` times, then
execute the first action of one elite drawn by its weight (TD-MPC, Hansen et al. 2022, Alg. 1). The mean
is shifted by one step and reused as the next step's initial mean (warm start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class PlannerConfig:
    horizon: int = 5
    iterations: int = 4
    num_samples: int = 64
    num_pi: int = 8
    num_elites: int = 16
    temperature: float = 0.5
    min_std: float = 0.05
    max_std: float = 2.0
    discount: float = 0.975

    def to_dict(self) -> dict:
        return asdict(self)


class Planner:
    """MPPI in the latent space of a ``TDMPCStyle``-like model
    (``encode``, ``next``, ``reward_of``, ``pi``, ``q_values``).

    The model works in normalised actions [-1, 1]; :meth:`act` returns env actions (× ``action_high``).
    """

    def __init__(self, model: nn.Module, config: PlannerConfig | None = None, action_high: float = 2.0):
        self.model = model.eval()
        self.cfg = config or PlannerConfig()
        self.action_high = action_high
        self.action_dim = model.action_dim
        self.generator = torch.Generator().manual_seed(0)
        self._prev_mean: torch.Tensor | None = None

    def reset(self, seed: int) -> None:
        """Start new episodes: reseed the sampler and forget the warm start."""
        self.generator.manual_seed(seed)
        self._prev_mean = None

    @torch.no_grad()
    def plan(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalised actions (E, action_dim) in [-1, 1] for observations (E, obs_dim)."""
        cfg, m, g = self.cfg, self.model, self.generator
        E, H, A, N, P = obs.shape[0], cfg.horizon, self.action_dim, cfg.num_samples, cfg.num_pi
        z0 = m.encode(obs.float())  # (E, L)

        pi_actions = torch.empty(E, P, H, A)
        if P:
            z = z0.repeat_interleave(P, 0)
            for t in range(H):
                a = m.pi(z) + cfg.min_std * torch.randn(E * P, A, generator=g)
                pi_actions[:, :, t] = a.clamp(-1, 1).view(E, P, A)
                z = m.next(z, pi_actions[:, :, t].reshape(E * P, A))

        mean = torch.zeros(E, H, A)
        if self._prev_mean is not None and self._prev_mean.shape[0] == E:
            mean[:, :-1] = self._prev_mean[:, 1:]
        std = torch.full((E, H, A), cfg.max_std)
        z_all = z0.repeat_interleave(N + P, 0)  # (E*(N+P), L)
        for _ in range(cfg.iterations):
            noise = torch.randn(E, N, H, A, generator=g)
            samples = (mean[:, None] + std[:, None] * noise).clamp(-1, 1)
            actions = torch.cat([samples, pi_actions], 1)  # (E, N+P, H, A)
            value = self._value(z_all, actions.view(E * (N + P), H, A)).view(E, N + P)
            elite_value, idx = value.topk(cfg.num_elites, dim=1)  # (E, K)
            elites = torch.gather(actions, 1, idx[:, :, None, None].expand(-1, -1, H, A))  # (E, K, H, A)
            score = torch.exp(cfg.temperature * (elite_value - elite_value[:, :1]))
            score = score / score.sum(1, keepdim=True)
            w = score[:, :, None, None]
            mean = (w * elites).sum(1)
            std = ((w * (elites - mean[:, None]) ** 2).sum(1)).sqrt().clamp(cfg.min_std, cfg.max_std)
        self._prev_mean = mean
        pick = torch.multinomial(score, 1, generator=g).squeeze(1)  # one elite per env, by weight
        return elites[torch.arange(E), pick, 0].clamp(-1, 1)

    def _value(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Discounted predicted return of each action sequence plus the terminal min-Q, (B,)."""
        m, cfg = self.model, self.cfg
        value = torch.zeros(z.shape[0])
        discount = 1.0
        for t in range(actions.shape[1]):
            a = actions[:, t]
            value += discount * m.reward_of(z, a).squeeze(-1)
            z = m.next(z, a)
            discount *= cfg.discount
        return value + discount * m.q_values(z, m.pi(z)).min(-1).values

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Env actions (E, action_dim) for env observations (E, obs_dim)."""
        return (self.plan(torch.as_tensor(obs, dtype=torch.float32)) * self.action_high).numpy()

    def act_fn(self, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        """A fresh episode batch: reset with ``seed`` and return :meth:`act` for :func:`~edgeprune.control.rollout`."""
        self.reset(seed)
        return self.act


def policy_act_fn(
    model: nn.Module, action_high: float = 2.0, noise: float = 0.0, rng: np.random.Generator | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The learned policy alone (``pi(encode(obs))``), optionally with Gaussian exploration noise (model units)."""

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        a = model.pi(model.encode(torch.as_tensor(obs, dtype=torch.float32))).numpy()
        if noise:
            a = np.clip(a + noise * (rng or np.random.default_rng()).standard_normal(a.shape), -1, 1)
        return (a * action_high).astype(np.float32)

    return act
