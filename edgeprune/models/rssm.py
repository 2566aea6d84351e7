"""An RSSM-style recurrent world model (DreamerV3's structure, small): a GRU deterministic state, a
categorical stochastic latent, and an imagination rollout of the policy over a fixed horizon.

Components (top-level children): ``encoder`` (obs → embedding), ``posterior`` (embedding → latent),
``dynamics`` (:class:`GRUDynamics`: ``(z, a)`` → Linear → ``nn.GRUCell``), ``prior`` (h → latent),
``reward`` and ``cont`` (continue probability), both reading the state ``(h, z)``, ``policy``
(z → action) and optionally ``decoder`` (``(h, z)`` → observation; the trained benchmark model has it).
The latent is one categorical of ``classes`` classes, as class probabilities (the rollout uses the
probabilities, no sampling, so the model is deterministic and exports). DreamerV3 has 32 categoricals
of 32 classes, a softmax over groups (``view(..., -1, 32)``); Torch-Pruning's reshape index mapping
does not terminate on such a view repeated over a rollout, so this model keeps one group. ReLU, tanh
and sigmoid only: the whole model stays int8.

The GRU state ``h`` is read by ``prior``, ``reward``, ``cont``, ``decoder`` and the cell itself at the
next step; no layer reads the constant ``h0`` (Torch-Pruning misplaces the channels of a ``cat`` with a
constant). Its hidden size is the ``dynamics`` component's own dimension: the pruner cuts it there,
and the readers lose the matching input columns.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeprune.models.mlp import mlp
from edgeprune.prune.constraints import Constraints


class PairLinear(nn.Module):
    """``Linear(cat(a, b))`` written as ``Linear(a) + Linear(b)``: the same function, without a concatenation
    of differently scaled int8 tensors (which the TFLite converter refuses to quantize)."""

    def __init__(self, a_dim: int, b_dim: int, out_dim: int) -> None:
        super().__init__()
        self.a = nn.Linear(a_dim, out_dim)
        self.b = nn.Linear(b_dim, out_dim, bias=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.a(a) + self.b(b)


class GRUDynamics(nn.Module):
    """``h' = GRUCell(ReLU(Linear(cat(z, a))), h)``: the deterministic path."""

    def __init__(self, latent_dim: int, action_dim: int, hidden_dim: int, deter_dim: int) -> None:
        super().__init__()
        self.inp = PairLinear(latent_dim, action_dim, hidden_dim)
        self.act = nn.ReLU()
        self.cell = nn.GRUCell(hidden_dim, deter_dim)

    def forward(self, z: torch.Tensor, a: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Next deterministic state; ``h=None`` is the zero initial state."""
        return self.cell(self.act(self.inp(z, a)), h)


class StateHead(nn.Module):
    """An MLP head on the model state ``cat(h, z)``: ``Linear → ReLU → Linear → [out]``."""

    def __init__(self, deter_dim: int, latent_dim: int, hidden_dim: int, out_dim: int, out: nn.Module | None = None):
        super().__init__()
        self.inp = PairLinear(deter_dim, latent_dim, hidden_dim)
        self.act = nn.ReLU()
        self.out = nn.Linear(hidden_dim, out_dim)
        self.squash = out or nn.Identity()

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.squash(self.out(self.act(self.inp(h, z))))


class RSSMStyle(nn.Module):
    """Recurrent state-space world model with components ``encoder``, ``posterior``, ``dynamics``,
    ``prior``, ``reward``, ``cont``, ``policy`` and, with ``decoder=True``, ``decoder``.

    ``forward(obs (B, obs_dim))`` imagines ``horizon`` steps from the observation: ``z0`` from the
    posterior, ``h0 = 0``; each step takes ``a = policy(z)``, ``h = dynamics(z, a, h)``,
    ``z = prior(h)`` and predicts reward ``r_t`` and continue probability ``c_t`` of the new state.
    Returns ``(imagined return Σ_t r_t·Π_{k≤t} c_k (B, 1), probability of continuing through the
    horizon Π_t c_t (B, 1), first action (B, action_dim))``, and with ``decoder=True`` a fourth output, the
    observation decoded from the last imagined state (B, obs_dim). The ``decoder`` component (an
    observation head on ``(h, z)``, PlaNet/Dreamer's reconstruction target; off by default, the bundled shape)
    keeps a trained latent from collapsing to what the reward alone needs. Per-step outputs would be
    concatenations of differently scaled int8 tensors, which the TFLite converter refuses; for the same
    reason layers reading two tensors are :class:`PairLinear`.
    """

    def __init__(
        self,
        obs_dim: int = 8,
        action_dim: int = 1,
        deter_dim: int = 64,
        classes: int = 32,
        hidden_dim: int = 64,
        horizon: int = 3,
        decoder: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.deter_dim, self.classes = obs_dim, action_dim, deter_dim, classes
        self.horizon = horizon
        latent = classes
        self.encoder = mlp(obs_dim, [hidden_dim], hidden_dim, act=nn.ReLU)
        self.posterior = mlp(hidden_dim, [hidden_dim], latent, act=nn.ReLU, out=[nn.Softmax(-1)])
        self.dynamics = GRUDynamics(latent, action_dim, hidden_dim, deter_dim)
        self.prior = mlp(deter_dim, [hidden_dim], latent, act=nn.ReLU, out=[nn.Softmax(-1)])
        self.reward = StateHead(deter_dim, latent, hidden_dim, 1)
        self.cont = StateHead(deter_dim, latent, hidden_dim, 1, nn.Sigmoid())
        self.policy = mlp(latent, [hidden_dim], action_dim, act=nn.ReLU, out=[nn.Tanh()])
        self.decoder = StateHead(deter_dim, latent, hidden_dim, obs_dim) if decoder else None

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = self.posterior(self.encoder(obs))  # h0 = 0: the first posterior reads the embedding only
        h, ret, alive, first = None, None, None, None
        for _ in range(self.horizon):
            a = self.policy(z)
            first = a if first is None else first
            h = self.dynamics(z, a, h)
            z = self.prior(h)
            c = self.cont(h, z)
            alive = c if alive is None else alive * c
            gain = alive * self.reward(h, z)
            ret = gain if ret is None else ret + gain
        if self.decoder is None:
            return ret, alive, first
        return ret, alive, first, self.decoder(h, z)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor]:
        return (torch.randn(batch_size, self.obs_dim, device=next(self.parameters()).device),)

    def pruning_constraints(self) -> Constraints:
        """Prior and posterior latents stay equal (the rollout swaps one for the other)."""
        return Constraints(ties=[(f"prior.{len(self.prior) - 2}", f"posterior.{len(self.posterior) - 2}")])
