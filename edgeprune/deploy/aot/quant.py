"""TFLM's Prepare()-time quantization arithmetic, reproduced exactly (float32 scales, double math)."""

from __future__ import annotations

import math

import numpy as np

ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


def tflite_round(x: float) -> int:
    """``TfLiteRound`` / ``std::round``: half away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``tflite::QuantizeMultiplier`` (double-rounding build): (Q31 significand, shift)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def f32(x: float) -> np.float32:
    return np.float32(x)


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` for int8 outputs."""

    def q(v: float) -> int:
        return zero_point + tflite_round(float(f32(v) / f32(scale)))

    lo, hi = -128, 127
    if act == ACT_RELU:
        lo = max(lo, q(0.0))
    elif act == ACT_RELU6:
        lo, hi = max(lo, q(0.0)), min(hi, q(6.0))
    elif act == ACT_RELU_N1_TO_1:
        lo, hi = max(lo, q(-1.0)), min(hi, q(1.0))
    elif act != ACT_NONE:
        raise ValueError(f"fused activation {act} is not supported")
    return lo, hi


def per_channel_multipliers(in_scale: float, filter_scales: tuple[float, ...], out_scale: float):
    """``PopulateConvolutionQuantizationParams``: double(in) * double(filter[c]) / double(out) per channel."""
    return [quantize_multiplier(float(f32(in_scale)) * float(f32(s)) / float(f32(out_scale))) for s in filter_scales]


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """``CalculateInputRadius``."""
    return math.floor(((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift))


def softmax_params(beta: float, in_scale: float) -> tuple[int, int, int]:
    """``PreprocessSoftmaxScaling`` + diff_min for int8: (multiplier, left shift, diff_min)."""
    real = min(beta * float(f32(in_scale)) * (1 << (31 - 5)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    return mult, shift, -input_radius(5, shift)


def tanh_logistic_params(in_scale: float) -> tuple[int, int, int]:
    """TFLM tanh/logistic int8 Prepare: (multiplier, shift, input range radius), 4 integer bits."""
    real = float(f32(in_scale)) * (1 << (31 - 4))
    q, shift = math.frexp(real)
    return tflite_round(q * (1 << 31)), shift, input_radius(4, shift)
