"""Latent MPPI planners: TD-MPC's (value-bootstrapped, policy samples mixed in) and a PlaNet-style one for
recurrent world models (reward only, the GRU state carried between real steps).

For each of E environments at once: encode the observation into a planning state, sample ``num_samples``
Gaussian action sequences of length ``horizon`` (plus ``num_pi`` sequences from the model's policy), roll them
through the latent dynamics, score ``sum_t γ^t r̂_t + γ^H V(s_H)``, refit mean and std to the ``num_elites``
best weighted by ``exp(temperature · (value − best))``, repeat ``iterations`` times, then execute the first
action of one elite drawn by its weight (TD-MPC, Hansen et al. 2022, Alg. 1). The mean is shifted by one
step and reused as the next step's initial mean (warm start). The model-specific parts are four methods
(:meth:`Planner._start`, :meth:`Planner._step`, :meth:`Planner._terminal`, :meth:`Planner._pi`);
:class:`RecurrentPlanner` overrides them for :class:`~edgeprune.models.rssm.RSSMStyle`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from edgeprune.errors import EdgepruneError


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


# PlaNet-style settings for the recurrent model: no value to bootstrap from, so a longer horizon (0.6 s of
# Pendulum); 64 samples × 3 iterations keep 30 batched episodes at about a CPU-minute
RECURRENT_PLANNER = PlannerConfig(horizon=12, iterations=3, num_samples=64, num_pi=0, num_elites=8, discount=0.99)


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
        cfg, g = self.cfg, self.generator
        E, H, A, N, P = obs.shape[0], cfg.horizon, self.action_dim, cfg.num_samples, cfg.num_pi
        s0 = self._start(obs.float())  # (E, S)

        pi_actions = torch.empty(E, P, H, A)
        if P:
            s = s0.repeat_interleave(P, 0)
            for t in range(H):
                a = self._pi(s) + cfg.min_std * torch.randn(E * P, A, generator=g)
                pi_actions[:, :, t] = a.clamp(-1, 1).view(E, P, A)
                s = self._step(s, pi_actions[:, :, t].reshape(E * P, A))[0]

        mean = torch.zeros(E, H, A)
        if self._prev_mean is not None and self._prev_mean.shape[0] == E:
            mean[:, :-1] = self._prev_mean[:, 1:]
        std = torch.full((E, H, A), cfg.max_std)
        s_all = s0.repeat_interleave(N + P, 0)  # (E*(N+P), S)
        for _ in range(cfg.iterations):
            noise = torch.randn(E, N, H, A, generator=g)
            samples = (mean[:, None] + std[:, None] * noise).clamp(-1, 1)
            actions = torch.cat([samples, pi_actions], 1)  # (E, N+P, H, A)
            value = self._value(s_all, actions.view(E * (N + P), H, A)).view(E, N + P)
            elite_value, idx = value.topk(cfg.num_elites, dim=1)  # (E, K)
            elites = torch.gather(actions, 1, idx[:, :, None, None].expand(-1, -1, H, A))  # (E, K, H, A)
            score = torch.exp(cfg.temperature * (elite_value - elite_value[:, :1]))
            score = score / score.sum(1, keepdim=True)
            w = score[:, :, None, None]
            mean = (w * elites).sum(1)
            std = ((w * (elites - mean[:, None]) ** 2).sum(1)).sqrt().clamp(cfg.min_std, cfg.max_std)
        self._prev_mean = mean
        pick = torch.multinomial(score, 1, generator=g).squeeze(1)  # one elite per env, by weight
        action = elites[torch.arange(E), pick, 0].clamp(-1, 1)
        self._executed(s0, action)
        return action

    def _value(self, s: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Discounted predicted return of each action sequence plus the discounted terminal value, (B,)."""
        value = torch.zeros(s.shape[0])
        discount = 1.0
        for t in range(actions.shape[1]):
            s, r = self._step(s, actions[:, t])
            value += discount * r
            discount *= self.cfg.discount
        return value + discount * self._terminal(s)

    # ---- the model-specific part (TD-MPC's latent z is the whole planning state)

    def _start(self, obs: torch.Tensor) -> torch.Tensor:
        """The planning state (E, S) of the current observations."""
        return self.model.encode(obs)

    def _step(self, s: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next planning state and the predicted reward (B,) of taking ``a`` in ``s``."""
        return self.model.next(s, a), self.model.reward_of(s, a).squeeze(-1)

    def _terminal(self, s: torch.Tensor) -> torch.Tensor:
        """The value (B,) bootstrapped at the end of the horizon."""
        return self.model.q_values(s, self.model.pi(s)).min(-1).values

    def _pi(self, s: torch.Tensor) -> torch.Tensor:
        return self.model.pi(s)

    def _executed(self, s: torch.Tensor, action: torch.Tensor) -> None:
        """Called with the start states and the actions sent to the envs (stateless here)."""

    # ----

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Env actions (E, action_dim) for env observations (E, obs_dim)."""
        return (self.plan(torch.as_tensor(obs, dtype=torch.float32)) * self.action_high).numpy()

    def act_fn(self, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        """A fresh episode batch: reset with ``seed`` and return :meth:`act` for :func:`~edgeprune.control.rollout`."""
        self.reset(seed)
        return self.act


class RecurrentPlanner(Planner):
    """PlaNet-style MPPI for an ``RSSMStyle`` model: reward only, no value bootstrap, no policy samples.

    The planning state is ``cat(h, z)``: ``z = posterior(encoder(obs))`` and the GRU state ``h`` carried from the
    previous real step, ``h_t = dynamics(z_{t-1}, a_{t-1}, h_{t-1})`` (zero at an episode's start). A step of the
    plan is ``h' = dynamics(z, a, h)``, ``z' = prior(h')``, reward ``reward(h', z')`` (the reward of taking ``a``).
    """

    def __init__(self, model: nn.Module, config: PlannerConfig | None = None, action_high: float = 2.0):
        super().__init__(model, config or RECURRENT_PLANNER, action_high)
        if self.cfg.num_pi:
            raise EdgepruneError(
                f"RecurrentPlanner got num_pi={self.cfg.num_pi}",
                expected="num_pi=0: it plans with the reward head alone, without policy samples",
                fix="use a PlannerConfig with num_pi=0 (RECURRENT_PLANNER is one)",
            )
        self._h: torch.Tensor | None = None

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._h = None

    def _start(self, obs: torch.Tensor) -> torch.Tensor:
        m = self.model
        z = m.posterior(m.encoder(obs))
        fresh = self._h is None or self._h.shape[0] != len(obs)
        h = z.new_zeros(len(obs), self._width()) if fresh else self._h
        return torch.cat([h, z], -1)

    def _width(self) -> int:
        """The GRU state's width: the cell's hidden size (pruning changes it; ``deter_dim`` stays the original)."""
        return self.model.dynamics.cell.hidden_size

    def _split(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return s[:, : self._width()], s[:, self._width() :]

    def _step(self, s: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        h, z = self._split(s)
        h = m.dynamics(z, a, h)
        z = m.prior(h)
        return torch.cat([h, z], -1), m.reward(h, z).squeeze(-1)

    def _terminal(self, s: torch.Tensor) -> torch.Tensor:
        return torch.zeros(s.shape[0])

    def _executed(self, s: torch.Tensor, action: torch.Tensor) -> None:
        h, z = self._split(s)
        self._h = self.model.dynamics(z, action, h)


def planner_for(model: nn.Module, config: PlannerConfig | None = None, action_high: float = 2.0) -> Planner:
    """The planner that fits ``model``: :class:`RecurrentPlanner` for a model with a GRU ``dynamics``, else TD-MPC's."""
    cls = RecurrentPlanner if hasattr(model, "deter_dim") else Planner
    return cls(model, config, action_high)


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
