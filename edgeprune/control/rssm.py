"""World-model losses for the bundled recurrent model (``RSSMStyle``): reward prediction and prior/posterior KL
along open-loop rollouts of the GRU state, as the PlaNet-style planner uses them.

Per sampled sub-trajectory ``(s_0..s_L, a_0..a_{L-1}, r_0..r_{L-1})``:

- posterior latents ``q_t = posterior(encoder(s_t))`` (categorical probabilities);
- the filter ``h_0 = 0``, ``h_{t+1} = dynamics(q_t, a_t, h_t)`` — the recurrent state the planner carries;
- from every start ``t ≤ L − D`` an open-loop rollout of ``D`` steps, exactly as the planner imagines:
  ``h' = dynamics(z, a_{t+k}, h)``, ``z' = prior(h')`` (``h = h_t``, ``z = q_t`` at ``k = 0``), with
  reward ``(reward(h', z') − c·r_{t+k})²``, the KL ``KL(sg(q_{t+k+1}) ‖ z')`` (prior learns the posterior,
  DreamerV3's dynamics loss), ``KL(q_{t+k+1} ‖ sg(z'))`` (representation loss, small) and the continue head's
  binary cross-entropy against "not terminated" (Pendulum never terminates);
- when the model has a ``decoder``, the filter runs to ``t = L`` and every filtered state ``(h_t, q_t)`` decodes
  its observation: ``‖decoder(h_t, q_t) − s_t‖²`` (PlaNet/Dreamer's reconstruction; without it nothing but the
  reward shapes the latent, and on Pendulum it collapses to a few classes).

The policy head is not trained: the planner scores action sequences with the reward head alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.control.env import ActFn
from edgeprune.control.planner import RECURRENT_PLANNER, PlannerConfig, RecurrentPlanner
from edgeprune.control.replay import Replay
from edgeprune.control.train import LoopConfig
from edgeprune.errors import EdgepruneError
from edgeprune.models.rssm import RSSMStyle


@dataclass(frozen=True)
class RSSMTrainConfig(LoopConfig):
    """The recurrent model's losses on sub-trajectories; exploration and the training curve use the planner."""

    batch_size: int = 32  # sub-trajectories; each gives seq_len − rollout + 1 rollouts
    seq_len: int = 24  # actions per sampled sub-trajectory (the filter's length)
    rollout: int = RECURRENT_PLANNER.horizon  # open-loop depth D: the planner's horizon
    planner: PlannerConfig = RECURRENT_PLANNER  # exploration and the training curve's evaluation
    eval_every: int = 5  # the planner on 3 seeds
    reward_coef: float = 1.0
    dyn_coef: float = 1.0
    rep_coef: float = 0.1
    cont_coef: float = 0.1
    decoder_coef: float = 1.0  # observation reconstruction, when the model has a decoder
    unimix: float = 0.01  # DreamerV3: categoricals mixed with 1 % uniform before the KL
    model: dict = field(
        default_factory=lambda: {
            "obs_dim": 3,
            "action_dim": 1,
            "deter_dim": 64,
            "classes": 32,
            "hidden_dim": 128,
            "decoder": True,
        }
    )

    def make_model(self) -> nn.Module:
        return RSSMStyle(**self.model)

    def make_learner(self, model: nn.Module, lr: float | None = None) -> RSSMLearner:
        return RSSMLearner(model, self, lr)

    def explore_act(self, model: nn.Module, std: float, rng: np.random.Generator, seed: int) -> ActFn:
        plan = RecurrentPlanner(model, self.planner, self.action_high).act_fn(seed)
        high = self.action_high

        def act(obs: np.ndarray) -> np.ndarray:
            a = plan(obs) + high * std * rng.standard_normal((len(obs), model.action_dim))
            return np.clip(a, -high, high).astype(np.float32)

        return act

    def eval_act(self, model: nn.Module) -> ActFn:
        return RecurrentPlanner(model, self.planner, self.action_high).act_fn(0)


def _kl(p: torch.Tensor, q: torch.Tensor, unimix: float) -> torch.Tensor:
    """KL(p ‖ q) of categorical probabilities over the last dim, both mixed with ``unimix`` uniform."""
    c = p.shape[-1]
    p = (1 - unimix) * p + unimix / c
    q = (1 - unimix) * q + unimix / c
    return (p * (p.log() - q.log())).sum(-1)


def rssm_losses(
    model: nn.Module, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, cfg: RSSMTrainConfig
) -> dict[str, torch.Tensor]:
    """The losses on a time-major batch (``obs (L+1, B, o)``, ``action (L, B, a)``, ``reward (L, B)``).

    Returns ``total`` (to backpropagate), ``reward``, ``dyn``, ``rep`` and ``cont`` (means over rollout steps), and
    ``decoder`` (mean over filtered states) when the model has one.
    """
    L, B = action.shape[:2]
    D = cfg.rollout
    if L < D:
        raise EdgepruneError(
            f"sub-trajectories of {L} actions are shorter than the rollout depth {D}",
            expected="seq_len >= rollout",
            fix="raise RSSMTrainConfig.seq_len or lower its rollout",
        )
    post = model.posterior(model.encoder(obs))  # (L+1, B, C)
    decoder = model.decoder
    h = post.new_zeros(B, model.dynamics.cell.hidden_size)  # the pruned width, not deter_dim
    filtered = [h]
    for t in range(L if decoder is not None else L - D):
        h = model.dynamics(post[t], action[t], h)
        filtered.append(h)
    S = L - D + 1  # rollouts start at t = 0 … L − D, batched as (S·B)
    h = torch.cat(filtered[:S])
    z = post[:S].reshape(S * B, -1)
    idx = torch.arange(S)
    sums = dict.fromkeys(("reward", "dyn", "rep", "cont"), 0.0)
    for k in range(D):
        a = action[idx + k].reshape(S * B, -1)
        h = model.dynamics(z, a, h)
        z = model.prior(h)
        target = post[idx + k + 1].reshape(S * B, -1)
        r_hat = model.reward(h, z).squeeze(-1)
        sums["reward"] = sums["reward"] + (r_hat - cfg.reward_scale * reward[idx + k].reshape(-1)).pow(2).mean()
        sums["dyn"] = sums["dyn"] + _kl(target.detach(), z, cfg.unimix).mean()
        sums["rep"] = sums["rep"] + _kl(target, z.detach(), cfg.unimix).mean()
        c = model.cont(h, z).squeeze(-1).clamp(1e-6, 1 - 1e-6)
        sums["cont"] = sums["cont"] + F.binary_cross_entropy(c, torch.ones_like(c))
    losses = {k: v / D for k, v in sums.items()}
    if decoder is not None:  # the filter's states (h_t, q_t), t = 0 … L, decode o_t
        recon = decoder(torch.cat(filtered), post.reshape((L + 1) * B, -1))
        losses["decoder"] = (recon - obs.reshape((L + 1) * B, -1)).pow(2).sum(-1).mean()
    losses["total"] = (
        cfg.reward_coef * losses["reward"]
        + cfg.dyn_coef * losses["dyn"]
        + cfg.rep_coef * losses["rep"]
        + cfg.cont_coef * losses["cont"]
        + cfg.decoder_coef * losses.get("decoder", 0.0)
    )
    return losses


class RSSMLearner:
    """Model and optimiser; :meth:`update` is one gradient step of :func:`rssm_losses`."""

    def __init__(self, model: nn.Module, cfg: RSSMTrainConfig, lr: float | None = None):
        self.model, self.cfg = model, cfg
        self.optim = torch.optim.Adam(model.parameters(), lr=lr or cfg.lr)

    def sample(self, replay: Replay, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        return replay.sample(self.cfg.batch_size, self.cfg.seq_len, rng)

    def update(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        self.model.train()
        losses = rssm_losses(self.model, *batch, self.cfg)
        self.optim.zero_grad(set_to_none=True)
        losses["total"].backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optim.step()
        return {k: float(v.detach()) for k, v in losses.items()}
