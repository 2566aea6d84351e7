"""C source for a full-int8 ``.tflite``: constant weights, precomputed TFLM parameters, a planned activation
arena and one kernel call per layer (``ep_run_layer``). The kernels live in ``firmware/ep_kernels.c``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeprune.deploy.mcu.aot import quant
from edgeprune.deploy.mcu.aot.graph import Graph, Op, Tensor, read_graph
from edgeprune.errors import EdgepruneError

ALIGN = 16
SUPPORTED = (
    "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MEAN", "ADD", "SUB", "MUL",
    "QUANTIZE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "PAD", "SOFTMAX", "TANH", "LOGISTIC",
    "SQUARED_DIFFERENCE", "RSQRT",
)  # fmt: skip


class UnsupportedOpError(EdgepruneError):
    """The model uses ops the ahead-of-time kernels do not implement."""


@dataclass(frozen=True)
class Layer:
    index: int
    op: str
    output: str  # output tensor name
    component: str


@dataclass(frozen=True)
class IOTensor:
    name: str
    offset: int
    size: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int


@dataclass(frozen=True)
class GeneratedModel:
    """``model.c`` text and what the firmware and host need to know about it."""

    source: str
    layers: tuple[Layer, ...]
    inputs: tuple[IOTensor, ...]
    outputs: tuple[IOTensor, ...]
    arena_bytes: int
    weight_bytes: int
    sha256: str


def _c_array(name: str, ctype: str, values: np.ndarray) -> str:
    flat = np.asarray(values).ravel()
    body = ",".join(str(int(v)) for v in flat) if flat.size else "0"
    return f"static const {ctype} {name}[{max(flat.size, 1)}] __attribute__((aligned(4))) = {{{body}}};\n"


def _shape6(shape: Sequence[int]) -> list[int]:
    return [1] * (6 - len(shape)) + list(shape)


def _strides6(shape: Sequence[int], out: Sequence[int]) -> list[int]:
    """Element strides of ``shape`` (right-aligned to 6 dims) for broadcasting to ``out`` (0 where broadcast)."""
    s6, o6 = _shape6(shape), _shape6(out)
    strides, acc = [0] * 6, 1
    for j in range(5, -1, -1):
        strides[j] = 0 if s6[j] == 1 and o6[j] != 1 else acc
        acc *= s6[j]
    return strides


def _padding(padding: int, stride: int, dilation: int, in_size: int, k: int, out_size: int) -> int:
    """``ComputePadding`` (SAME = 0, VALID = 1 in the schema)."""
    if padding == 1:
        return 0
    eff = (k - 1) * dilation + 1
    return max(((out_size - 1) * stride + eff - in_size) // 2, 0)


class _Emitter:
    def __init__(self, graph: Graph, offsets: dict[int, int]) -> None:
        self.g, self.off, self.consts, self.n = graph, offsets, [], 0

    def ptr(self, t: int) -> str:
        if self.g.tensors[t].data is not None:
            return self.const(self.g.tensors[t].data, "int8_t")
        return f"(ep_arena + {self.off[t]})"

    def const(self, values: np.ndarray, ctype: str) -> str:
        name = f"k{self.n}"
        self.n += 1
        self.consts.append(_c_array(name, ctype, values))
        return name

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(values, dtype=np.int64), "int32_t")


def _t(g: Graph, i: int) -> Tensor:
    return g.tensors[i]


def _act(op: Op) -> int:
    return int(getattr(op.options, "fusedActivationFunction", 0) or 0)


def _fc(e: _Emitter, op: Op) -> str:
    g = e.g
    x, w, out = _t(g, op.inputs[0]), _t(g, op.inputs[1]), _t(g, op.outputs[0])
    bias = op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] >= 0 else -1
    units, depth = w.shape[0], w.shape[-1]
    if len(w.scales) > 1:
        ms = quant.per_channel_multipliers(x.scale, w.scales, out.scale)
    else:  # GetQuantizedConvolutionMultipler: float product, then double division
        ms = [quant.quantize_multiplier(float(quant.f32(x.scale) * quant.f32(w.scale)) / float(quant.f32(out.scale)))]
    lo, hi = quant.activation_range(_act(op), out.scale, out.zero_point)
    b = e.const(g.constant(bias), "int32_t") if bias >= 0 else "0"
    return (f"ep_fc({e.ptr(x.index)}, {e.ptr(out.index)}, {e.ptr(w.index)}, {b}, {e.ints([m for m, _ in ms])}, "
            f"{e.ints([s for _, s in ms])}, {int(len(ms) > 1)}, {x.size // depth}, {depth}, {units}, "
            f"{-x.zero_point}, {out.zero_point}, {lo}, {hi});")  # fmt: skip


def _conv_like(e: _Emitter, op: Op) -> str:
    g = e.g
    x, w, out = _t(g, op.inputs[0]), _t(g, op.inputs[1]), _t(g, op.outputs[0])
    bias = op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] >= 0 else -1
    o = op.options
    nb, ih, iw, ic = x.shape
    _, oh, ow, oc = out.shape
    kh, kw = w.shape[1], w.shape[2]
    sh, sw, dh, dw = o.strideH, o.strideW, o.dilationHFactor or 1, o.dilationWFactor or 1
    ph, pw = _padding(o.padding, sh, dh, ih, kh, oh), _padding(o.padding, sw, dw, iw, kw, ow)
    scales = w.scales if len(w.scales) > 1 else w.scales * oc
    ms = quant.per_channel_multipliers(x.scale, scales, out.scale)
    lo, hi = quant.activation_range(_act(op), out.scale, out.zero_point)
    geo = e.ints([nb, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, ph, pw, w.shape[3]])
    b = e.const(g.constant(bias), "int32_t") if bias >= 0 else "0"
    common = (f"{e.ptr(x.index)}, {e.ptr(out.index)}, {e.ptr(w.index)}, {b}, {e.ints([m for m, _ in ms])}, "
              f"{e.ints([s for _, s in ms])}, {geo}")  # fmt: skip
    if op.name == "CONV_2D":
        return f"ep_conv({common}, {-x.zero_point}, {out.zero_point}, {lo}, {hi});"
    return f"ep_dwconv({common}, {oc // ic}, {-x.zero_point}, {out.zero_point}, {lo}, {hi});"


def _avgpool(e: _Emitter, op: Op) -> str:
    g = e.g
    x, out, o = _t(g, op.inputs[0]), _t(g, op.outputs[0]), op.options
    nb, ih, iw, c = x.shape
    _, oh, ow, _ = out.shape
    ph = _padding(o.padding, o.strideH, 1, ih, o.filterHeight, oh)
    pw = _padding(o.padding, o.strideW, 1, iw, o.filterWidth, ow)
    lo, hi = quant.activation_range(_act(op), out.scale, out.zero_point)
    geo = e.ints([nb, ih, iw, c, oh, ow, o.filterHeight, o.filterWidth, o.strideH, o.strideW, ph, pw])
    return f"ep_avgpool({e.ptr(x.index)}, {e.ptr(out.index)}, {geo}, {lo}, {hi});"


def _bshape(a: Tensor, b: Tensor, out: Tensor) -> list[int]:
    return _shape6(out.shape) + _strides6(a.shape, out.shape) + _strides6(b.shape, out.shape)


def _add_sub(e: _Emitter, op: Op) -> str:
    """ADD / SUB (left shift 20) and SQUARED_DIFFERENCE (left shift 7, squared output multiplier)."""
    g = e.g
    a, b, out = _t(g, op.inputs[0]), _t(g, op.inputs[1]), _t(g, op.outputs[0])
    kind = {"ADD": 0, "SUB": 1, "SQUARED_DIFFERENCE": 2}[op.name]
    left = 7 if kind == 2 else 20
    twice_max = 2 * max(float(quant.f32(a.scale)), float(quant.f32(b.scale)))
    am, ash = quant.quantize_multiplier(float(quant.f32(a.scale)) / twice_max)
    bm, bsh = quant.quantize_multiplier(float(quant.f32(b.scale)) / twice_max)
    if kind == 2:  # (1 << 14) * out_scale is a float product in TFLM
        om, osh = quant.quantize_multiplier(twice_max * twice_max / float(quant.f32(1 << 14) * quant.f32(out.scale)))
        lo, hi = -128, 127
    else:
        om, osh = quant.quantize_multiplier(twice_max / ((1 << left) * float(quant.f32(out.scale))))
        lo, hi = quant.activation_range(_act(op), out.scale, out.zero_point)
    p = e.ints([-a.zero_point, am, ash, -b.zero_point, bm, bsh, left, om, osh, out.zero_point, lo, hi])
    return f"ep_add({e.ptr(a.index)}, {e.ptr(b.index)}, {e.ptr(out.index)}, {e.ints(_bshape(a, b, out))}, {p}, {kind});"


def _rsqrt(e: _Emitter, op: Op) -> str:
    """RSQRT is a function of the int8 input alone: a 256-entry table computed as TFLM computes each value."""
    x, out = _t(e.g, op.inputs[0]), _t(e.g, op.outputs[0])
    table = e.const(np.asarray(quant.rsqrt_table(x.scale, x.zero_point, out.scale, out.zero_point)), "int8_t")
    return f"ep_lut({e.ptr(x.index)}, {e.ptr(out.index)}, {out.size}, {table});"


def _mul(e: _Emitter, op: Op) -> str:
    g = e.g
    a, b, out = _t(g, op.inputs[0]), _t(g, op.inputs[1]), _t(g, op.outputs[0])
    m, s = quant.quantize_multiplier(
        float(quant.f32(a.scale)) * float(quant.f32(b.scale)) / float(quant.f32(out.scale))
    )
    lo, hi = quant.activation_range(_act(op), out.scale, out.zero_point)
    p = e.ints([-a.zero_point, -b.zero_point, out.zero_point, m, s, lo, hi])
    return f"ep_mul({e.ptr(a.index)}, {e.ptr(b.index)}, {e.ptr(out.index)}, {e.ints(_bshape(a, b, out))}, {p});"


def _quantize(e: _Emitter, op: Op) -> str:
    x, out = _t(e.g, op.inputs[0]), _t(e.g, op.outputs[0])
    m, s = quant.quantize_multiplier(float(quant.f32(x.scale)) / float(quant.f32(out.scale)))
    return (f"ep_requantize({e.ptr(x.index)}, {e.ptr(out.index)}, {out.size}, {x.zero_point}, {out.zero_point}, "
            f"{m}, {s});")  # fmt: skip


def _copy(e: _Emitter, op: Op) -> str:
    x, out = _t(e.g, op.inputs[0]), _t(e.g, op.outputs[0])
    return f"ep_copy({e.ptr(x.index)}, {e.ptr(out.index)}, {out.size});"


def _concat(e: _Emitter, op: Op) -> str:
    g = e.g
    out = _t(g, op.outputs[0])
    axis = op.options.axis % len(out.shape)
    outer = int(np.prod(out.shape[:axis]))
    inner = [int(np.prod(_t(g, i).shape[axis:])) for i in op.inputs]
    ptrs = ", ".join(e.ptr(i) for i in op.inputs)
    return (f"{{ static const int8_t *const ins[] = {{{ptrs}}}; "
            f"ep_concat({e.ptr(out.index)}, {len(inner)}, ins, {e.ints(inner)}, {outer}); }}")  # fmt: skip


def _pad(e: _Emitter, op: Op) -> str:
    g = e.g
    x, out = _t(g, op.inputs[0]), _t(g, op.outputs[0])
    pads = g.constant(op.inputs[1]).reshape(-1, 2)
    before = [0] * (6 - len(pads)) + [int(p) for p in pads[:, 0]]
    after = [0] * (6 - len(pads)) + [int(p) for p in pads[:, 1]]
    return (f"ep_pad({e.ptr(x.index)}, {e.ptr(out.index)}, {e.ints(_shape6(x.shape))}, {e.ints(before)}, "
            f"{e.ints(after)}, {out.zero_point});")  # fmt: skip


def _mean(e: _Emitter, op: Op) -> str:
    """int8 MEAN as TFLM's QuantizedMeanOrSum: the sum of (input - zero point) times the in/out multiplier
    readapted to include 1/count (``quant.mean_multiplier``)."""
    g = e.g
    x, out = _t(g, op.inputs[0]), _t(g, op.outputs[0])
    axes = {int(a) % len(x.shape) for a in np.atleast_1d(g.constant(op.inputs[1]))}
    reduce = [0] * (6 - len(x.shape)) + [int(j in axes) for j in range(len(x.shape))]
    count = int(np.prod([x.shape[j] for j in axes]))
    m, s = quant.mean_multiplier(x.scale, out.scale, count)
    return (f"ep_mean({e.ptr(x.index)}, {e.ptr(out.index)}, {e.ints(_shape6(x.shape))}, {e.ints(reduce)}, "
            f"{x.zero_point}, {out.zero_point}, {m}, {s});")  # fmt: skip


def _softmax(e: _Emitter, op: Op) -> str:
    x, out = _t(e.g, op.inputs[0]), _t(e.g, op.outputs[0])
    m, s, diff_min = quant.softmax_params(float(op.options.beta), x.scale)
    depth = x.shape[-1]
    return f"ep_softmax({e.ptr(x.index)}, {e.ptr(out.index)}, {x.size // depth}, {depth}, {m}, {s}, {diff_min});"


def _tanh_logistic(e: _Emitter, op: Op) -> str:
    x, out = _t(e.g, op.inputs[0]), _t(e.g, op.outputs[0])
    m, s, radius = quant.tanh_logistic_params(x.scale)
    fn = "ep_tanh" if op.name == "TANH" else "ep_logistic"
    return f"{fn}({e.ptr(x.index)}, {e.ptr(out.index)}, {x.size}, {x.zero_point}, {radius}, {m}, {s});"


_EMIT: dict[str, Callable[[_Emitter, Op], str]] = {
    "FULLY_CONNECTED": _fc,
    "CONV_2D": _conv_like,
    "DEPTHWISE_CONV_2D": _conv_like,
    "AVERAGE_POOL_2D": _avgpool,
    "MEAN": _mean,
    "ADD": _add_sub,
    "SUB": _add_sub,
    "SQUARED_DIFFERENCE": _add_sub,
    "RSQRT": _rsqrt,
    "MUL": _mul,
    "QUANTIZE": _quantize,
    "RESHAPE": _copy,
    "SQUEEZE": _copy,
    "EXPAND_DIMS": _copy,
    "CONCATENATION": _concat,
    "PAD": _pad,
    "SOFTMAX": _softmax,
    "TANH": _tanh_logistic,
    "LOGISTIC": _tanh_logistic,
}


def check_supported(graph: Graph) -> None:
    """Raise :class:`UnsupportedOpError` naming every op (and its first use) the kernels lack."""
    bad: dict[str, int] = {}
    for op in graph.ops:
        if op.name not in _EMIT:
            bad.setdefault(op.name, op.index)
    typed = [op for op in graph.ops if op.name in _EMIT and any(
        graph.tensors[i].dtype != "int8" for i in (*op.inputs[:1], *op.outputs))]  # fmt: skip
    for op in typed:
        bad.setdefault(f"{op.name} on non-int8 tensors", op.index)
    if bad:
        listed = ", ".join(f"{name} (first at op #{i})" for name, i in bad.items())
        raise UnsupportedOpError(
            f"the ahead-of-time int8 kernels do not implement: {listed}",
            expected=f"a full-int8 model using only {', '.join(SUPPORTED)}",
            fix="replace the layers that produce these ops, or run the model with TFLite Micro (PlatformIO project)",
        )


def plan_arena(graph: Graph) -> tuple[dict[int, int], int]:
    """Greedy-by-size offsets for every non-constant tensor, sharing memory between tensors whose lifetimes
    do not overlap (inputs live from the start, outputs to the end). Returns (offsets, arena bytes)."""
    n = len(graph.ops)
    first: dict[int, int] = {i: -1 for i in graph.inputs}
    last: dict[int, int] = {i: n for i in graph.outputs}
    for op in graph.ops:
        for t in op.outputs:
            first.setdefault(t, op.index)
        for t in op.inputs:
            if t >= 0 and graph.tensors[t].data is None:
                first.setdefault(t, op.index)
                last[t] = max(last.get(t, op.index), op.index)
    for t in first:
        last.setdefault(t, first[t])
    order = sorted(first, key=lambda t: (-graph.tensors[t].size, t))
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict[int, int] = {}
    for t in order:
        size = -(-graph.tensors[t].size // ALIGN) * ALIGN
        live = sorted((o, e) for o, e, f, l_ in placed if not (l_ < first[t] or last[t] < f))
        offset = 0
        for o, e in live:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[t] = offset
        placed.append((offset, offset + size, first[t], last[t]))
    return offsets, max((e for _, e, _, _ in placed), default=0)


def scratch_elements(graph: Graph) -> int:
    """int16 elements of ``ep_scratch`` the DSP-extension kernels need (ep_kernels_dsp.c): the widened input row of
    a FULLY_CONNECTED, two im2col columns (filter height x width x input channels) of an ungrouped CONV_2D."""
    need = [4]
    for op in graph.ops:
        w = graph.tensors[op.inputs[1]] if op.name in ("FULLY_CONNECTED", "CONV_2D") else None
        if op.name == "FULLY_CONNECTED":
            need.append(int(np.prod(w.shape[1:])))
        elif w is not None and w.shape[3] == graph.tensors[op.inputs[0]].shape[3]:
            need.append(2 * int(np.prod(w.shape[1:])))
    return -(-max(need) // 2) * 2


def _io(graph: Graph, t: int, offsets: dict[int, int]) -> IOTensor:
    x = graph.tensors[t]
    return IOTensor(x.name, offsets[t], x.size, x.shape, x.scale, x.zero_point)


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def generate(tflite: bytes, *, components: Sequence[str] | None = None, name: str = "model") -> GeneratedModel:
    """C source for ``tflite`` (full int8). ``components[i]`` tags layer ``i`` (default ``?``).

    Raises :class:`UnsupportedOpError` naming the ops the kernels do not implement.
    """
    graph = read_graph(tflite)
    check_supported(graph)
    offsets, arena = plan_arena(graph)
    e = _Emitter(graph, offsets)
    comps = list(components) if components is not None else ["?"] * len(graph.ops)
    cases, layers = [], []
    for op in graph.ops:
        cases.append(f"    case {op.index}: {_EMIT[op.name](e, op)} break;")
        layers.append(Layer(op.index, op.name, graph.tensors[op.outputs[0]].name, comps[op.index]))
    sha = hashlib.sha256(tflite).hexdigest()
    inputs = tuple(_io(graph, t, offsets) for t in graph.inputs)
    outputs = tuple(_io(graph, t, offsets) for t in graph.outputs)

    def io_table(name_: str, items: Sequence[IOTensor]) -> str:
        rows = ", ".join(f"{{{x.offset}u, {x.size}u, {x.scale!r}f, {x.zero_point}}}" for x in items)
        return f"const ep_tensor_io {name_}[] = {{{rows}}};\nconst int {name_[:-1]}_count = {len(items)};\n"

    layer_rows = ",\n".join(f"  {{{_c_string(lay.op)}, {_c_string(lay.component)}}}" for lay in layers)
    weight_bytes = sum(t.data.nbytes for t in graph.tensors if t.data is not None)
    source = (
        "/* Generated by edgeprune.deploy.mcu.aot from a full-int8 .tflite. Do not edit. */\n"
        '#include "ep_model.h"\n#include "ep_kernels.h"\n\n'
        f"int8_t ep_arena[{max(arena, ALIGN)}] __attribute__((aligned({ALIGN})));\n"
        f"#ifdef EP_DSP\nint16_t ep_scratch[{scratch_elements(graph)}] __attribute__((aligned(4)));\n#endif\n"
        f"const unsigned ep_arena_bytes = {arena}u;\n"
        f"const char ep_model_name[] = {_c_string(name)};\n"
        f'const char ep_model_sha256[] = "{sha}";\n'
        "const char ep_kernel_set[] = EP_KERNEL_SET;\n"
        f"const int ep_layer_count = {len(layers)};\n"
        f"const ep_layer_info ep_layers[] = {{\n{layer_rows}\n}};\n"
        + io_table("ep_inputs", inputs)
        + io_table("ep_outputs", outputs)
        + "\n"
        + "".join(e.consts)
        + "\nvoid ep_run_layer(int i) {\n  switch (i) {\n"
        + "\n".join(cases)
        + "\n    default: break;\n  }\n}\n"
    )
    return GeneratedModel(source, tuple(layers), inputs, outputs, arena, weight_bytes, sha)
