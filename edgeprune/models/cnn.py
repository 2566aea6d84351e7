"""A small multi-component CNN: residual stages, a depthwise-separable block and two heads."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """Bias-free ``Conv2d`` with "same" padding followed by ``BatchNorm2d``."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(c_out)]


class ResidualBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; 1×1 projection shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, c_out, stride=stride), nn.ReLU(), *conv_bn(c_out, c_out))
        reshape = stride != 1 or c_in != c_out
        self.shortcut = nn.Sequential(*conv_bn(c_in, c_out, 1, stride)) if reshape else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ComplexCNN(nn.Module):
    """Seven components: ``stem → stage1 → stage2 → dsconv`` then two heads.

    ``stem`` (Conv+BN+ReLU, stride 2) → ``stage1`` (two residual blocks) → ``stage2`` (downsampling
    residual block) → ``dsconv`` (depthwise 3×3 + pointwise 1×1). Its features fork into ``pool``
    (1×1 expansion conv + global average pooling) → ``classifier``, and into ``aux_head`` (1×1 conv,
    pooling, linear regression). Input (B, 3, 32, 32); outputs ``(logits (B, 10), aux (B, 2))``.
    """

    def __init__(self, num_classes: int = 10, aux_dim: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 32, stride=2), nn.ReLU())
        self.stage1 = nn.Sequential(ResidualBlock(32, 32), ResidualBlock(32, 32))
        self.stage2 = nn.Sequential(ResidualBlock(32, 64, stride=2))
        self.dsconv = nn.Sequential(*conv_bn(64, 64, groups=64), nn.ReLU(), *conv_bn(64, 64, kernel=1), nn.ReLU())
        self.pool = nn.Sequential(*conv_bn(64, 96, kernel=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, num_classes))
        self.aux_head = nn.Sequential(
            *conv_bn(64, 32, kernel=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, aux_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.dsconv(self.stage2(self.stage1(self.stem(x))))
        return self.classifier(self.pool(f)), self.aux_head(f)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, 3, 32, 32, device=next(self.parameters()).device),)
