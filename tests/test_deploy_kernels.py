"""Every kernel, including variants the bundled models do not exercise (strides, dilation, depth multiplier,
groups, VALID/SAME, fused RELU/RELU6, broadcasting, batches, per-tensor FC, LOGISTIC), each as a single-op
int8 model built without TensorFlow, bit-exact against the TFLM host interpreter. The FC/conv/depthwise cases
also run the Cortex-M4/M7 DSP-extension kernels (ep_kernels_dsp.c, instructions emulated in C on the host; the
emulated-board tests run them with the real instructions): aligned and unaligned channel counts, tails, padding."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from deploy_exports import random_inputs
from tflite_builder import act, bias, const_i32, model, weights
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl

from edgeprune.deploy.mcu.aot import generate, run_on_host
from edgeprune.deploy.mcu.bench import OutputMismatchError, check_outputs
from edgeprune.export.tflm import run_tflm

OP, OPT = tfl.BuiltinOperator, tfl.BuiltinOptions
RELU, RELU6 = 1, 3


def _conv() -> bytes:
    x, y = act((1, 8, 8, 3), 0.04, -5, "x"), act((1, 8, 8, 5), 0.3, -20, "y")
    ws = [0.01 + 0.002 * i for i in range(5)]
    o = tfl.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor = 0, 1, 1, 2, 2
    o.fusedActivationFunction = RELU
    return model(OP.CONV_2D, [x, weights((5, 3, 3, 3), ws, 0, "w"), bias(5, [0.04 * s for s in ws], "b")], y,
                 OPT.Conv2DOptions, o)  # fmt: skip


def _depthwise() -> bytes:
    x, y = act((1, 9, 9, 4), 0.05, 7, "x"), act((1, 4, 4, 8), 0.08, -30, "y")
    ws = [0.02 + 0.001 * i for i in range(8)]
    o = tfl.DepthwiseConv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.depthMultiplier, o.dilationHFactor, o.dilationWFactor = 1, 2, 2, 2, 1, 1
    o.fusedActivationFunction = RELU6
    return model(OP.DEPTHWISE_CONV_2D, [x, weights((1, 3, 3, 8), ws, 3, "w"), bias(8, [0.05 * s for s in ws], "b")],
                 y, OPT.DepthwiseConv2DOptions, o)  # fmt: skip


def _depthwise_m1() -> bytes:
    x, y = act((1, 7, 6, 6), 0.05, -9, "x"), act((1, 4, 3, 6), 0.1, 12, "y")
    ws = [0.02 + 0.003 * i for i in range(6)]
    o = tfl.DepthwiseConv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.depthMultiplier, o.dilationHFactor, o.dilationWFactor = 0, 2, 2, 1, 2, 1
    return model(OP.DEPTHWISE_CONV_2D, [x, weights((1, 3, 3, 6), ws, 3, "w"), bias(6, [0.05 * s for s in ws], "b")],
                 y, OPT.DepthwiseConv2DOptions, o)  # fmt: skip


def _conv_c4_stride2() -> bytes:
    x, y = act((1, 7, 7, 4), 0.04, 17, "x"), act((1, 4, 4, 7), 0.25, -3, "y")
    ws = [0.01 + 0.002 * i for i in range(7)]
    o = tfl.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor = 0, 2, 2, 1, 1
    return model(OP.CONV_2D, [x, weights((7, 3, 3, 4), ws, 0, "w"), bias(7, [0.04 * s for s in ws], "b")], y,
                 OPT.Conv2DOptions, o)  # fmt: skip


def _fc_per_channel_odd() -> bytes:
    x, y = act((1, 18), 0.03, -4, "x"), act((1, 5), 0.2, 6, "y")
    ws = [0.01 + 0.002 * i for i in range(5)]
    return model(OP.FULLY_CONNECTED, [x, weights((5, 18), ws, 0, "w"), bias(5, [0.03 * s for s in ws], "b")], y,
                 OPT.FullyConnectedOptions, tfl.FullyConnectedOptionsT())  # fmt: skip


def _fc_per_tensor_batched() -> bytes:
    x, y = act((3, 16), 0.03, 2, "x"), act((3, 6), 0.2, 10, "y")
    o = tfl.FullyConnectedOptionsT()
    return model(OP.FULLY_CONNECTED, [x, weights((6, 16), [0.015], 0, "w"), bias(6, [0.03 * 0.015], "b")], y,
                 OPT.FullyConnectedOptions, o)  # fmt: skip


def _binary(opcode: int, opt_type: int, opt: object, a_shape: tuple, b_shape: tuple, out_shape: tuple) -> bytes:
    a, b, y = act(a_shape, 0.07, -3, "a"), act(b_shape, 0.02, 11, "b"), act(out_shape, 0.09, 4, "y")
    return model(opcode, [a, b], y, opt_type, opt)


def _add() -> bytes:
    o = tfl.AddOptionsT()
    o.fusedActivationFunction = RELU
    return _binary(OP.ADD, OPT.AddOptions, o, (1, 4, 4, 3), (1, 1, 1, 3), (1, 4, 4, 3))


def _sub() -> bytes:
    return _binary(OP.SUB, OPT.SubOptions, tfl.SubOptionsT(), (1, 5, 3), (1, 1, 3), (1, 5, 3))


def _mul() -> bytes:
    return _binary(OP.MUL, OPT.MulOptions, tfl.MulOptionsT(), (2, 1, 3), (1, 4, 3), (2, 4, 3))


def _avgpool() -> bytes:
    x, y = act((1, 7, 7, 2), 0.1, -1, "x"), act((1, 4, 4, 2), 0.1, -1, "y")
    o = tfl.Pool2DOptionsT()
    o.padding, o.strideH, o.strideW, o.filterHeight, o.filterWidth = 0, 2, 2, 3, 3
    return model(OP.AVERAGE_POOL_2D, [x], y, OPT.Pool2DOptions, o)


def _softmax() -> bytes:
    o = tfl.SoftmaxOptionsT()
    o.beta = 1.0
    return model(OP.SOFTMAX, [act((2, 10), 0.15, 5, "x")], act((2, 10), 1 / 256, -128, "y"), OPT.SoftmaxOptions, o)


def _mean() -> bytes:
    o = tfl.ReducerOptionsT()
    o.keepDims = False
    x, axis, y = act((1, 6, 5), 0.05, 9, "x"), const_i32([1], "axis"), act((1, 5), 0.02, -7, "y")
    return model(OP.MEAN, [x, axis], y, OPT.ReducerOptions, o, graph_inputs=[x])


def _grouped_conv() -> bytes:
    x, y = act((1, 6, 6, 8), 0.04, 0, "x"), act((1, 6, 6, 4), 0.2, 3, "y")
    ws = [0.02] * 4
    o = tfl.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor = 0, 1, 1, 1, 1
    return model(OP.CONV_2D, [x, weights((4, 3, 3, 4), ws, 0, "w"), bias(4, [0.04 * s for s in ws], "b")], y,
                 OPT.Conv2DOptions, o)  # fmt: skip


def _mean_hw() -> bytes:
    o = tfl.ReducerOptionsT()
    o.keepDims = True
    x, axis, y = act((1, 5, 7, 3), 0.05, -128, "x"), const_i32([1, 2], "axis"), act((1, 1, 1, 3), 0.03, -100, "y")
    return model(OP.MEAN, [x, axis], y, OPT.ReducerOptions, o, graph_inputs=[x])


def _pad() -> bytes:
    x, y = act((1, 3, 4, 2), 0.1, -7, "x"), act((1, 6, 5, 2), 0.1, -7, "y")
    pads = const_i32([[0, 0], [1, 2], [0, 1], [0, 0]], "p")
    return model(OP.PAD, [x, pads], y, OPT.PadOptions, tfl.PadOptionsT(), graph_inputs=[x])


def _concat() -> bytes:
    o = tfl.ConcatenationOptionsT()
    o.axis = 1
    a, b, y = act((2, 3), 0.1, 1, "a"), act((2, 5), 0.1, 1, "b"), act((2, 8), 0.1, 1, "y")
    return model(OP.CONCATENATION, [a, b], y, OPT.ConcatenationOptions, o)


def _requantize() -> bytes:
    return model(OP.QUANTIZE, [act((1, 40), 0.013, -20, "x")], act((1, 40), 0.05, 6, "y"))


def _squared_difference() -> bytes:
    return _binary(OP.SQUARED_DIFFERENCE, OPT.SquaredDifferenceOptions, tfl.SquaredDifferenceOptionsT(),
                   (1, 16), (1, 1), (1, 16))  # fmt: skip


def _rsqrt() -> bytes:
    return model(OP.RSQRT, [act((1, 256), 0.004, -128, "x")], act((1, 256), 0.2, -128, "y"))


def _logistic() -> bytes:
    return model(OP.LOGISTIC, [act((1, 64), 0.06, 3, "x")], act((1, 64), 1 / 256, -128, "y"))


def _tanh() -> bytes:
    return model(OP.TANH, [act((1, 64), 0.04, -9, "x")], act((1, 64), 1 / 128, 0, "y"))


CASES: dict[str, Callable[[], bytes]] = {
    "conv-dilation2-same-relu": _conv,
    "depthwise-mult2-stride2-valid-relu6": _depthwise,
    "depthwise-6-channels-stride2-dilation2-same": _depthwise_m1,
    "conv-4-channels-stride2-same": _conv_c4_stride2,
    "fc-per-tensor-3-batches": _fc_per_tensor_batched,
    "fc-per-channel-depth18-5-units": _fc_per_channel_odd,
    "add-broadcast-relu": _add,
    "sub-broadcast": _sub,
    "mul-broadcast-both": _mul,
    "avgpool-same-stride2": _avgpool,
    "softmax-2-rows": _softmax,
    "mean-6-of-30": _mean,
    "conv-grouped": _grouped_conv,
    "mean-4d-hw-keepdims": _mean_hw,
    "pad": _pad,
    "concat": _concat,
    "requantize": _requantize,
    "squared-difference-broadcast": _squared_difference,
    "rsqrt-every-input": _rsqrt,
    "logistic": _logistic,
    "tanh": _tanh,
}


def _check(case: str, dsp: bool) -> None:
    data = CASES[case]()
    gm = generate(data)
    sets = random_inputs([x.shape for x in gm.inputs], 30, seed=3)
    want = run_tflm(data, sets, 1 << 16)
    got = run_on_host(gm, sets, dsp=dsp)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g[0], np.asarray(w[0]).ravel())


@pytest.mark.parametrize("case", list(CASES))
def test_single_op_matches_tflm(case: str) -> None:
    _check(case, dsp=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith(("conv", "depthwise", "fc"))])
def test_dsp_extension_kernels_match_tflm(case: str) -> None:
    _check(case, dsp=True)


class _LyingDut:
    """A board whose outputs are off by one in the first byte."""

    def __init__(self, data: bytes) -> None:
        self.data, self.loaded = data, b""

    def load(self, data: bytes) -> None:
        self.loaded = data

    def infer(self, runs: int, warmup: int) -> None:
        pass

    def raw(self) -> bytes:
        (out,) = run_tflm(self.data, [[np.frombuffer(self.loaded, np.int8).reshape(1, 64)]], 1 << 16)[0]
        wrong = np.asarray(out, dtype=np.int8).ravel().copy()
        wrong[0] ^= 1
        return wrong.tobytes()


def test_a_board_that_disagrees_with_tflm_is_an_error() -> None:
    data = _tanh()
    with pytest.raises(OutputMismatchError, match="1 of 64 output bytes differ"):
        check_outputs(_LyingDut(data), data, random_inputs([(1, 64)], 1))
