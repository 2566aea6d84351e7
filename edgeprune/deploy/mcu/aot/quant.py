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


def _i32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm(a: int, b: int) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` (int32)."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    q = abs(v) >> 31  # C division truncates toward zero
    return _i32(q if v >= 0 else -q)


def rdbypot(x: int, e: int) -> int:
    """gemmlowp ``RoundingDivideByPOT``."""
    mask = (1 << e) - 1
    rem, thr = x & mask, (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def mbqm(x: int, m: int, shift: int) -> int:
    """``MultiplyByQuantizedMultiplier`` (double rounding), int32 semantics."""
    left, right = max(shift, 0), max(-shift, 0)
    return rdbypot(srdhm(_i32(x << left), m), right)


def _sat_shl(x: int, e: int) -> int:
    thr = (1 << (31 - e)) - 1
    return (1 << 31) - 1 if x > thr else -(1 << 31) if x < -thr else _i32(x << e)


def inv_sqrt_multiplier(value: int) -> tuple[int, int]:
    """``GetInvSqrtQuantizedMultiplierExp(value, kReverseShift)``."""
    if value <= 1:
        return (1 << 31) - 1, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = ((32 - value.bit_length()) - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    x_in = value >> 1
    half_in = rdbypot(x_in, 1)
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28
    for _ in range(5):
        x3 = _sat_shl(srdhm(srdhm(x, x), x), 6)
        x = _sat_shl(_i32(srdhm(half_three, x) - srdhm(half_in, x3)), 3)
    x = srdhm(x, 1518500250)
    if shift < 0:
        x, shift = _i32(x << -shift), 0
    return x, -shift


def rsqrt_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> list[int]:
    """TFLM's int8 RSQRT for every input value -128..127 (``RsqrtEvalQuantized``)."""
    scale = 1.0 / float(np.sqrt(f32(in_scale)) * f32(out_scale))
    m, s = quantize_multiplier(scale)
    table = []
    for q in range(-128, 128):
        value = q - in_zp
        if value <= 0:  # TFLM: 0 -> max; negative inputs are rejected at invoke
            table.append(127)
            continue
        inv, inv_shift = inv_sqrt_multiplier(value)
        data = mbqm(1, inv, inv_shift + 20)
        table.append(min(max(mbqm(data, m, s - 20) + out_zp, -128), 127))
    return table


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum's "readapt output rescaling": fold 1/count into the in/out multiplier by an
    integer division after shifting left by floor(log2(count)) (clamped to 32 and to 31 + shift)."""
    m, s = quantize_multiplier(float(f32(in_scale)) / float(f32(out_scale)))
    shift = min(count.bit_length() - 1, 32, 31 + s)
    return (m << shift) // count, s - shift
