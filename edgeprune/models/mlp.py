"""Shared building blocks: an MLP builder and TD-MPC2's SimNorm."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


class SimNorm(nn.Module):
    """Simplicial normalisation (TD-MPC2): softmax over consecutive groups of ``group`` features."""

    def __init__(self, group: int = 8) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape
        return x.view(*s[:-1], -1, self.group).softmax(-1).view(*s)

    def extra_repr(self) -> str:
        return f"group={self.group}"


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    act: type[nn.Module] = nn.ReLU,
    layer_norm: bool = False,
    out: Sequence[nn.Module] = (),
) -> nn.Sequential:
    """``Linear → [LayerNorm] → act`` per hidden width, then ``Linear(…, out_dim)`` followed by ``out``.

    Modules are flat in one ``nn.Sequential``, so layer paths are ``<component>.<index>``.
    """
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for d_in, d_out in pairwise(dims):
        layers.append(nn.Linear(d_in, d_out))
        if layer_norm:
            layers.append(nn.LayerNorm(d_out))
        layers.append(act())
    layers.append(nn.Linear(dims[-1], out_dim))
    layers.extend(out)
    return nn.Sequential(*layers)
