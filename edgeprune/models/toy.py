"""Small multi-component MLPs of increasing structural complexity (Table 1: Simple … Recursive)."""

from __future__ import annotations

import torch
from torch import nn

from edgeprune.models.mlp import mlp


class SimpleMLP(nn.Module):
    """Three chained components: ``encoder → core → head``.

    Input ``x`` (B, 16); output logits (B, 4).
    """

    in_dim = 16

    def __init__(self, out_dim: int = 4) -> None:
        super().__init__()
        self.encoder = mlp(self.in_dim, [64], 32, out=[nn.ReLU()])
        self.core = mlp(32, [64], 32, out=[nn.ReLU()])
        self.head = mlp(32, [32], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.core(self.encoder(x)))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_dim, device=next(self.parameters()).device),)


class BranchedMLP(nn.Module):
    """Six components: a trunk fanning out to three branches that merge into two heads.

    ``t = trunk(x)``; ``a, b, c = branch_a(t), branch_b(t), branch_c(t)``;
    ``head_cls(cat(a + b, c))`` (add + concat merge) and ``head_value(cat(c, t))`` (concat with a
    trunk skip). Input ``x`` (B, 16); outputs ``(logits (B, 5), value (B, 1))``.
    """

    in_dim = 16

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.trunk = mlp(self.in_dim, [64], 64, out=[nn.ReLU()])
        self.branch_a = mlp(64, [64], 32, out=[nn.ReLU()])
        self.branch_b = mlp(64, [64], 32, out=[nn.ReLU()])
        self.branch_c = mlp(64, [32], 32, out=[nn.ReLU()])
        self.head_cls = mlp(64, [64], num_classes)
        self.head_value = mlp(96, [32], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trunk(x)
        a, b, c = self.branch_a(t), self.branch_b(t), self.branch_c(t)
        return self.head_cls(torch.cat([a + b, c], -1)), self.head_value(torch.cat([c, t], -1))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_dim, device=next(self.parameters()).device),)


class MultiPathMLP(nn.Module):
    """Seven components: three parallel input paths, a mixer, a refiner and two heads.

    ``a, b, c = path_a(x), path_b(x), path_c(x)``; ``m = mixer(cat(a, b))``;
    ``s = refine(cat(m, c)) + m`` (skip around ``refine``); ``head(cat(s, a))`` (skip from ``path_a``);
    ``aux_head(cat(c, x))`` (skip from the input). Input ``x`` (B, 24); outputs ``(y (B, 8), aux (B, 2))``.
    """

    in_dim = 24

    def __init__(self, out_dim: int = 8, aux_dim: int = 2) -> None:
        super().__init__()
        self.path_a = mlp(self.in_dim, [64], 32, out=[nn.ReLU()])
        self.path_b = mlp(self.in_dim, [48], 32, out=[nn.ReLU()])
        self.path_c = mlp(self.in_dim, [32], 32, out=[nn.ReLU()])
        self.mixer = mlp(64, [64], 64, out=[nn.ReLU()])
        self.refine = mlp(96, [64], 64)
        self.head = mlp(96, [64], out_dim)
        self.aux_head = mlp(32 + self.in_dim, [32], aux_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b, c = self.path_a(x), self.path_b(x), self.path_c(x)
        m = self.mixer(torch.cat([a, b], -1))
        s = self.refine(torch.cat([m, c], -1)) + m
        return self.head(torch.cat([s, a], -1)), self.aux_head(torch.cat([c, x], -1))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_dim, device=next(self.parameters()).device),)


class RecursiveMLP(nn.Module):
    """Four components with a rolled-out recurrence and a feedback loop.

    ``h = encoder(x)``; then ``steps`` times ``h = cell(cat(h, feedback(h)))`` — ``cell`` consumes its
    own previous output, and the later ``feedback`` component feeds back into ``cell``'s input;
    finally ``head(h)``. Input ``x`` (B, 16); output (B, 4).
    """

    in_dim = 16

    def __init__(self, steps: int = 3, out_dim: int = 4) -> None:
        super().__init__()
        self.steps = steps
        self.encoder = mlp(self.in_dim, [64], 32, out=[nn.Tanh()])
        self.cell = mlp(32 + 8, [64], 32, out=[nn.Tanh()])
        self.feedback = mlp(32, [32], 8, out=[nn.Tanh()])
        self.head = mlp(32, [32], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        for _ in range(self.steps):
            h = self.cell(torch.cat([h, self.feedback(h)], -1))
        return self.head(h)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_dim, device=next(self.parameters()).device),)
