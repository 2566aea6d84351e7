"""The MLPerf Tiny v1.0 reference models for keyword spotting and anomaly detection, in PyTorch.

Rebuilt from the architectures in the MLPerf Tiny paper (Banbury et al., "MLPerf Tiny Benchmark",
NeurIPS 2021 Datasets and Benchmarks, §4 / Table 1) and the reference Keras training code
(github.com/mlcommons/tiny, benchmark/training/keyword_spotting/keras_model.py and
benchmark/training/anomaly_detection/keras_model.py). They calibrate the board cost model
(``edgeprune.boards.cost_model``), so their MAC counts must match the published models exactly:

- ``DSCNNKWS``: 2,656,768 MACs per inference (conv 320,000; 4 × (depthwise 72,000 + pointwise 512,000);
  FC 768); 22,604 weights and biases in conv/FC layers (+ 9 BatchNorms that TFLite folds into the convs).
- ``FCAutoencoderAD``: 264,192 MACs; 265,864 weights and biases in FC layers (+ 9 BatchNorms).

Both export to ONNX (opset 17, eval mode) with only Conv, Gemm, BatchNormalization (AD: BN after Gemm is
not folded by the exporter), Relu, AveragePool, Flatten and Softmax nodes, all of which onnx2tf maps to
int8 TFLite builtins that TFLite Micro has kernels for.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def _ds_block(channels: int) -> nn.Sequential:
    """Depthwise 3×3 + BN + ReLU, then pointwise 1×1 + BN + ReLU (Keras ``padding="same"``, stride 1)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    )


class DSCNNKWS(nn.Module):
    """MLPerf Tiny keyword spotting DS-CNN (Speech Commands, 12 classes).

    Three components: ``stem`` (conv 64 × 10×4, stride 2, + BN + ReLU) → ``blocks`` (four depthwise-separable
    blocks of 64 channels) → ``head`` (average pool over the 25×5 map, flatten, FC 12, softmax).
    Input (B, 1, 49, 10): 49 frames × 10 MFCC features; output class probabilities (B, 12).

    Keras ``padding="same"`` with stride 2 pads the 49×10 input by 4/5 rows and 1/1 columns; PyTorch has no
    asymmetric padding in ``Conv2d``, so the stem pads 5 rows on both sides. The output map (25×5), the
    parameter count and the MACs are the same; only the alignment of the receptive fields differs.
    """

    input_shape = (1, 49, 10)

    def __init__(self, num_classes: int = 12, channels: int = 64, num_blocks: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels, (10, 4), stride=2, padding=(5, 1)),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(*(_ds_block(channels) for _ in range(num_blocks)))
        self.head = nn.Sequential(
            nn.AvgPool2d((25, 5)),
            nn.Flatten(),
            nn.Linear(channels, num_classes),
            nn.Softmax(dim=-1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, *self.input_shape, device=next(self.parameters()).device),)


def _fc_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Linear(c_in, c_out), nn.BatchNorm1d(c_out), nn.ReLU()]


class FCAutoencoderAD(nn.Module):
    """MLPerf Tiny anomaly detection fully connected autoencoder (ToyADMOS, 640 = 5 frames × 128 mel bins).

    Two components: ``encoder`` (FC 128 + BN + ReLU × 4, then the bottleneck FC 8 + BN + ReLU) and
    ``decoder`` (FC 128 + BN + ReLU × 4, then FC 640, linear). Input (B, 640); output the reconstruction
    (B, 640), whose error is the anomaly score.
    """

    in_dim = 640

    def __init__(self, hidden: int = 128, bottleneck: int = 8, depth: int = 4) -> None:
        super().__init__()
        enc: list[nn.Module] = []
        dims = [self.in_dim] + [hidden] * depth
        for c_in, c_out in itertools.pairwise(dims):
            enc += _fc_bn_relu(c_in, c_out)
        enc += _fc_bn_relu(hidden, bottleneck)
        dec: list[nn.Module] = []
        dims = [bottleneck] + [hidden] * depth
        for c_in, c_out in itertools.pairwise(dims):
            dec += _fc_bn_relu(c_in, c_out)
        dec.append(nn.Linear(hidden, self.in_dim))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_dim, device=next(self.parameters()).device),)
