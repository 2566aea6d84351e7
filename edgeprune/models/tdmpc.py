"""A TD-MPC2-style world model (Linear → LayerNorm → ReLU MLPs, SimNorm latent, Q ensemble).

TD-MPC2 uses Mish, which TFLite Micro cannot run (EXP/LOG); ELU stays a float island in int8 TFLite
(DEQUANTIZE → ELU → QUANTIZE). ReLU keeps the whole model integer, as a Cortex-M0+ without FPU needs.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.models.mlp import SimNorm, mlp
from edgeprune.prune.constraints import Constraints


class TDMPCStyle(nn.Module):
    """World model with components ``encoder``, ``dynamics``, ``reward``, ``policy`` and ``qs``.

    ``z = encoder(obs)`` (SimNorm latent); ``za = cat(z, action)`` feeds ``dynamics`` (next latent,
    SimNorm), ``reward`` and every Q head in ``qs`` (an ensemble of ``num_q`` identical MLPs);
    ``policy(z)`` gives a tanh-squashed action. Defaults fit Pendulum-v1 (obs 3, action 1).

    ``depth`` is the number of hidden layers (each ``hidden_dim`` wide) in every component; ``None`` keeps the
    bundled shape: one in the encoder, two in the others (TD-MPC2's paper shape is ``hidden_dim=512, depth=3``).

    ``forward(obs (B, obs_dim), action (B, action_dim))`` returns
    ``(next_z (B, latent_dim), reward (B, 1), q (B, num_q), pi_action (B, action_dim))``.
    """

    simnorm_group = 8

    def __init__(
        self,
        obs_dim: int = 3,
        action_dim: int = 1,
        latent_dim: int = 32,
        hidden_dim: int = 128,
        num_q: int = 2,
        depth: int | None = None,
    ) -> None:
        super().__init__()
        if latent_dim % self.simnorm_group:
            raise ValueError(f"latent_dim must be a multiple of {self.simnorm_group}, got {latent_dim}")
        if depth is not None and depth < 1:
            raise EdgepruneError(
                f"TDMPCStyle depth {depth}", expected="hidden layers per component >= 1, or None (bundled shape)"
            )
        self.obs_dim, self.action_dim = obs_dim, action_dim
        za_dim = latent_dim + action_dim
        enc_hidden = [hidden_dim] * (1 if depth is None else depth)
        hidden = [hidden_dim] * (2 if depth is None else depth)

        def latent_out() -> list[nn.Module]:
            return [nn.LayerNorm(latent_dim), SimNorm(self.simnorm_group)]

        self.encoder = mlp(obs_dim, enc_hidden, latent_dim, act=nn.ReLU, layer_norm=True, out=latent_out())
        self.dynamics = mlp(za_dim, hidden, latent_dim, act=nn.ReLU, layer_norm=True, out=latent_out())
        self.reward = mlp(za_dim, hidden, 1, act=nn.ReLU, layer_norm=True)
        self.policy = mlp(latent_dim, hidden, action_dim, act=nn.ReLU, layer_norm=True, out=[nn.Tanh()])
        self.qs = nn.ModuleList(mlp(za_dim, hidden, 1, act=nn.ReLU, layer_norm=True) for _ in range(num_q))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Observation → SimNorm latent ``z``."""
        return self.encoder(obs)

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Latent dynamics: ``(z, a)`` → next latent."""
        return self.dynamics(torch.cat([z, a], -1))

    def reward_of(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Predicted reward (B, 1) of taking ``a`` in ``z``."""
        return self.reward(torch.cat([z, a], -1))

    def pi(self, z: torch.Tensor) -> torch.Tensor:
        """Deterministic policy action in [-1, 1]."""
        return self.policy(z)

    def q_values(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Q estimates of every ensemble member side by side, (B, num_q) (2-D: deploys without layout changes)."""
        za = torch.cat([z, a], -1)
        return torch.cat([q(za) for q in self.qs], dim=-1)

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encode(obs)
        return self.next(z, action), self.reward_of(z, action), self.q_values(z, action), self.pi(z)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        device = next(self.parameters()).device
        obs = torch.randn(batch_size, self.obs_dim, device=device)
        action = torch.rand(batch_size, self.action_dim, device=device) * 2 - 1
        return obs, action

    def pruning_constraints(self) -> Constraints:
        """SimNorm groups on both latents, Q heads kept equal, and the latent recurrence.

        ``next_z`` (output 0) is internal state — the planner feeds it back as ``z`` — so it is a state
        output, not an external one, and the tie ``dynamics → encoder`` couples latent in and latent out:
        the latent may be pruned, with the same indices on both sides. Reward, Q and action keep their shapes.
        """
        enc, dyn = self._latent_linear("encoder"), self._latent_linear("dynamics")
        return Constraints(
            blocks={enc: self.simnorm_group, dyn: self.simnorm_group},
            ties=[(dyn, enc)],
            ensembles=[[f"qs.{i}" for i in range(len(self.qs))]],
            state_outputs=(0,),
        )

    def _latent_linear(self, component: str) -> str:
        """Path of the last Linear in ``component`` (the layer producing its latent)."""
        seq = self.get_submodule(component)
        index = max(i for i, m in enumerate(seq) if isinstance(m, nn.Linear))
        return f"{component}.{index}"
