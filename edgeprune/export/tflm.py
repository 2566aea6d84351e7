"""TFLite Micro bundle from a full-int8 ``.tflite``: gate, exact arena, C sources, resolver, manifest.

Everything is checked in the real TFLM interpreter (PyPI ``tflite-micro``, the reference kernels
compiled for the host): the model must load, prepare and invoke. The minimal tensor arena is
found by bisection over ``arena_size``; ``print_allocations`` (written by C code to fd 2) gives
the head/tail breakdown.

Recommended arena = round_up_16(1.10 x (host minimum + CMSIS-NN scratch estimate)):
- the host build is 64-bit, so the tail (pointer-holding structs) measured here is larger than
  on a 32-bit Cortex-M: that part is already a safety margin; the head (activations) is exact;
- CMSIS-NN kernels request scratch buffers that the host's reference kernels do not; they are
  estimated per op from CMSIS-NN's buffer-size formulas (im2col of int16, kernel sums) and the
  largest is added, since scratch buffers are planned per op like activations;
- +10 % covers allocation differences between TFLM versions and kernels, and 16-byte alignment
  keeps the arena start aligned for SIMD loads.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from edgeprune.export.artifacts import sha256_bytes
from edgeprune.export.errors import ExportError
from edgeprune.export.opmap import OnnxNode, candidates, describe
from edgeprune.extras import require, require_installed

_PROBE = Path(__file__).with_name("_tflm_probe.py")
ARENA_MARGIN = 0.10
MAX_ARENA = 16 << 20
# MicroMutableOpResolver::AddXxx names that the CamelCase rule (CONV_2D -> Conv2D) gets wrong.
_RESOLVER_EXCEPTIONS = {
    "PADV2": "PadV2",
    "BATCH_MATMUL": "BatchMatMul",
    "CUMSUM": "CumSum",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
}
_WAY_OUT = {
    "EXP": "Mish/Softplus/SiLU-like activations lower to EXP/LOG",
    "LOG": "Mish/Softplus-like activations lower to EXP/LOG",
}


@dataclass(frozen=True)
class QuantParams:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True)
class ArenaReport:
    """Tensor arena sizes in bytes; ``minimum`` is exact on the host interpreter."""

    minimum: int
    recommended: int
    head: int | None
    tail: int | None
    cmsis_nn_scratch_estimate: int
    margin: float
    allocations: str


@dataclass
class TFLMBundle:
    """The files of a TFLM bundle (relative name -> content) and what they were derived from."""

    files: dict[str, bytes | str]
    ops: list[str]
    arena: ArenaReport
    inputs: list[QuantParams]
    outputs: list[QuantParams]
    float_ops: list[str] = field(default_factory=list)


def _schema():
    return require("tflite_micro.tensorflow.lite.micro.python.schema_py_generated", "export", "the TFLite Micro bundle")


def _names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class _Op:
    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _parse(data: bytes):
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ExportError("the data is not a TFLite flatbuffer (no TFL3 identifier).", do="pass .tflite bytes.")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    op_names = _names(schema.BuiltinOperator)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    sub = model.subgraphs[0]
    ops = [
        _Op(i, op_names.get(codes[op.opcodeIndex], "CUSTOM"), tuple(op.inputs), tuple(op.outputs))
        for i, op in enumerate(sub.operators)
    ]
    return sub, ops, _names(schema.TensorType)


def _quant(sub, idx: int, type_names: dict[int, str]) -> QuantParams:
    t = sub.tensors[idx]
    q = t.quantization
    has_q = q is not None and q.scale is not None and len(q.scale) > 0
    return QuantParams(
        t.name.decode() if isinstance(t.name, bytes) else str(t.name),
        tuple(int(s) for s in t.shape),
        type_names[t.type].lower(),
        float(q.scale[0]) if has_q else None,
        int(q.zeroPoint[0]) if has_q else None,
    )


def resolver_method(op: str) -> str:
    """``CONV_2D`` -> ``AddConv2D`` (the MicroMutableOpResolver method registering that op)."""
    words = op.split("_")
    camel = "".join(w if w[:1].isdigit() else w[:1] + w[1:].lower() for w in words)  # 2D stays 2D
    return "Add" + _RESOLVER_EXCEPTIONS.get(op, camel)


def _cmsis_scratch(sub, ops: Sequence[_Op]) -> int:
    """Largest per-op CMSIS-NN scratch buffer (bytes), from its get_buffer_size formulas."""
    best = 0
    for op in ops:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            in_c = int(sub.tensors[op.inputs[0]].shape[-1])
            kh, kw = (int(s) for s in sub.tensors[op.inputs[1]].shape[1:3])
            best = max(best, 2 * in_c * kh * kw * 2)  # im2col, int16
        elif op.name == "FULLY_CONNECTED":
            best = max(best, 4 * int(sub.tensors[op.inputs[1]].shape[0]))  # kernel sums, int32
    return best


def _child(mode: str, data: bytes, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the ``_tflm_probe.py`` script (numpy + tflite_micro only) on ``data`` in a child process."""
    require_installed("tflite_micro", extra="export", purpose="sizing the TFLite Micro arena")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        cmd = [sys.executable, str(_PROBE), mode, str(path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def minimal_arena(data: bytes, n_inputs: int, hi: int) -> int:
    """Smallest ``arena_size`` (bytes) with which TFLM loads and invokes the model; ``hi`` must fit.

    Bisection runs in a child process (see ``_tflm_probe``): a crash while probing size N counts
    as "N does not fit" and the search resumes on the narrowed interval.
    """
    lo = 0
    for _ in range(64):  # each restart narrows the interval; 64 is far beyond any real need
        proc = _child("bisect", data, str(lo), str(hi), str(n_inputs))
        trying = None
        for line in proc.stdout.splitlines():
            word, _, num = line.partition(" ")
            if word == "try":
                trying = int(num)
            elif word == "ok":
                hi, trying = int(num), None
            elif word == "fail":
                lo, trying = int(num), None
            elif word == "min":
                return int(num)
        if trying is None:
            raise ExportError("the TFLM arena probe stopped unexpectedly.", detail=proc.stderr[-2000:])
        lo = trying  # crashed while probing this size: it does not fit
        if hi - lo <= 1:
            return hi
    raise ExportError("the TFLM arena bisection did not converge.")


def run_tflm(data: bytes, input_sets: Sequence[Sequence[np.ndarray]], arena: int) -> list[list[np.ndarray]]:
    """Invoke the TFLM interpreter once per input set (TFLite-ready tensors in model input order)."""
    feeds = {f"s{k}_i{i}": np.asarray(x) for k, xs in enumerate(input_sets) for i, x in enumerate(xs)}
    n_inputs = len(input_sets[0]) if input_sets else 0
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **feeds)
        proc = _child("run", data, str(arena), str(n_inputs), str(src), str(dst))
        if proc.returncode != 0:
            raise ExportError("TFLite Micro failed to run the parity inputs.", detail=proc.stderr[-3000:])
        with np.load(dst) as z:
            outs = {k: z[k] for k in z.files}
    n_out = sum(1 for key in outs if key.startswith("s0_o"))
    return [[outs[f"s{k}_o{j}"] for j in range(n_out)] for k in range(len(input_sets))]


def time_tflm(data: bytes, arena: int, n_inputs: int, runs: int, warmup: int) -> list[float]:
    """Host wall-clock of ``runs`` TFLM invokes (ms each) after ``warmup``, in a child process."""
    proc = _child("time", data, str(arena), str(n_inputs), str(runs), str(warmup))
    if proc.returncode != 0:
        raise ExportError("TFLite Micro failed to run the model for timing.", detail=proc.stderr[-3000:])
    return [int(line.split()[1]) / 1e6 for line in proc.stdout.splitlines() if line.startswith("ns ")]


def io_names(data: bytes) -> tuple[list[str], list[str]]:
    """Input and output tensor names in the order TFLM numbers them (``get_input_details(i)``)."""
    sub, _, type_names = _parse(data)
    return [_quant(sub, i, type_names).name for i in sub.inputs], [_quant(sub, i, type_names).name for i in sub.outputs]


def _rejection(log: str, ops: Sequence[_Op], sub, nodes: Sequence[OnnxNode]) -> ExportError:
    m = re.search(r"Node (\w+) \(number (\d+)\) failed to (?:prepare|invoke)", log) or re.search(
        r"Didn't find op for builtin opcode '(\w+)'", log
    )
    if m is None:
        return ExportError(
            "TFLite Micro could not load or run the model.",
            expected="a full-int8 model whose ops all have TFLM kernels",
            do="see the interpreter log below.",
            detail=log.strip(),
        )
    op_name = m.group(1)
    idx = int(m.group(2)) if m.lastindex and m.lastindex >= 2 else next(o.index for o in ops if o.name == op_name)
    names = [
        sub.tensors[i].name.decode() if isinstance(sub.tensors[i].name, bytes) else str(sub.tensors[i].name)
        for i in ops[idx].outputs
    ]
    cands = candidates(names, nodes)
    comps = sorted({c.component for c in cands})
    reason = next(iter(log.strip().splitlines()), "").rstrip(".")
    origin = f" It comes from ONNX node {describe(cands)}." if cands else ""
    where = f"in component(s) {', '.join(comps)}" if comps else "in the model"
    if "Hybrid" in log:
        do = "export a full-integer int8 model (calibrated, int8 inputs and outputs), not a hybrid one."
    else:
        why = _WAY_OUT.get(op_name, f"{op_name} has no TFLM kernel for these tensor types")
        do = (
            f"{why}: replace that activation {where} (ReLU/ReLU6/HardSwish quantize to int8 kernels), "
            "or keep that component off the MCU."
        )
    return ExportError(
        f"TFLite Micro rejects op {op_name} (#{idx}): {reason}.{origin}",
        expected="every op of the int8 model to have an int8 TFLM kernel",
        do=do,
        detail=log.strip(),
    )


def c_array_sources(
    data: bytes, arena: ArenaReport, inputs: Sequence[QuantParams], outputs: Sequence[QuantParams]
) -> tuple[str, str]:
    """``model_data.h`` / ``model_data.cc``: 16-byte aligned const array, length, arena, quant params."""
    lines = []
    for kind, params in (("Input", inputs), ("Output", outputs)):
        for i, q in enumerate(params):
            lines.append(f"// {kind.lower()} {i}: '{q.name}' {q.dtype} {list(q.shape)}")
            if q.scale is not None:
                lines.append(f"constexpr float k{kind}{i}Scale = {q.scale!r}f;")
                lines.append(f"constexpr int k{kind}{i}ZeroPoint = {q.zero_point};")
    header = "\n".join(
        [
            "// Generated by edgeprune.export.tflm: the int8 model as a C array. Do not edit.",
            "#ifndef EDGEPRUNE_MODEL_DATA_H_",
            "#define EDGEPRUNE_MODEL_DATA_H_",
            "",
            "#include <cstddef>",
            "",
            "extern const unsigned char g_model_data[];",
            "extern const unsigned int g_model_data_len;",
            "",
            f"// Exact minimum on the host TFLM interpreter: {arena.minimum} bytes; recommended adds the",
            "// CMSIS-NN scratch estimate and a 10 % margin, rounded up to 16 bytes (see manifest.json).",
            f"constexpr std::size_t kTensorArenaMinSize = {arena.minimum};",
            f"constexpr std::size_t kTensorArenaSize = {arena.recommended};",
            "",
            *lines,
            "",
            "#endif  // EDGEPRUNE_MODEL_DATA_H_",
            "",
        ]
    )
    body = ",\n".join("  " + ", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12))
    source = (
        "// Generated by edgeprune.export.tflm. Do not edit.\n"
        '#include "model_data.h"\n\n'
        "alignas(16) const unsigned char g_model_data[] = {\n"
        f"{body}\n}};\n"
        f"const unsigned int g_model_data_len = {len(data)};\n"
    )
    return header, source


def resolver_source(ops: Sequence[str]) -> str:
    """A header registering exactly ``ops`` in a ``MicroMutableOpResolver<len(ops)>``."""
    adds = "\n".join(f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return kTfLiteError;" for op in ops)
    return (
        f"// Generated by edgeprune.export.tflm: registers exactly the {len(ops)} ops the model uses.\n"
        "#ifndef EDGEPRUNE_OP_RESOLVER_H_\n#define EDGEPRUNE_OP_RESOLVER_H_\n\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        "namespace edgeprune {\n\n"
        f"using OpResolver = tflite::MicroMutableOpResolver<{len(ops)}>;\n\n"
        "inline TfLiteStatus RegisterOps(OpResolver& resolver) {\n"
        f"{adds}\n  return kTfLiteOk;\n}}\n\n}}  // namespace edgeprune\n\n"
        "#endif  // EDGEPRUNE_OP_RESOLVER_H_\n"
    )


def _breakdown(text: str) -> tuple[int | None, int | None]:
    def grab(key: str) -> int | None:
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        return int(m.group(1)) if m else None

    return grab("head"), grab("tail")


def tflm_bundle(
    int8_tflite: bytes,
    *,
    onnx_nodes: Sequence[OnnxNode] = (),
    source_onnx_sha256: str | None = None,
    layouts: Sequence[dict] = (),
    max_arena: int = MAX_ARENA,
) -> TFLMBundle:
    """Gate ``int8_tflite`` through the TFLM interpreter and build the bundle files.

    Raises :class:`ExportError` naming the rejected op, its likely ONNX node and component, and
    the way out, when TFLM cannot prepare or invoke the model; or when it needs more than
    ``max_arena`` bytes. ``layouts`` (NCHW -> NHWC mappings) are copied into the manifest.
    """
    sub, ops, type_names = _parse(int8_tflite)
    n_inputs = len(sub.inputs)
    io = [_quant(sub, i, type_names) for i in (*sub.inputs, *sub.outputs)]
    if any(q.dtype not in ("int8", "int16") for q in io):
        raise ExportError(
            f"the model's inputs/outputs are {sorted({q.dtype for q in io})}, not integer.",
            expected="a full-integer model (int8 inputs and outputs), as TFLite Micro on an MCU wants",
            do="use the full-integer .tflite (tflite_from_onnx with calibration samples).",
        )
    gate = _child("run", int8_tflite, str(max_arena), str(n_inputs), "-", "-")
    if gate.returncode != 0:
        log = gate.stderr if gate.returncode > 0 else f"{gate.stderr}\n(TFLM crashed: signal {-gate.returncode})"
        if re.search(r"(?i)failed to allocate|missing: \d+", log) and "failed to prepare" not in log:
            raise ExportError(
                f"the model needs more than {max_arena} bytes of tensor arena.",
                do="prune further or raise max_arena.",
                detail=log.strip(),
            )
        raise _rejection(log, ops, sub, onnx_nodes)
    hi = minimal_arena(int8_tflite, n_inputs, max_arena)
    allocations = _child("run", int8_tflite, str(hi), str(n_inputs), "-", "-").stderr
    head, tail = _breakdown(allocations)
    scratch = _cmsis_scratch(sub, ops)
    recommended = 16 * math.ceil((hi + scratch) * (1 + ARENA_MARGIN) / 16)
    arena = ArenaReport(hi, recommended, head, tail, scratch, ARENA_MARGIN, allocations.strip())

    used = sorted({op.name for op in ops})
    inputs = [_quant(sub, i, type_names) for i in sub.inputs]
    outputs = [_quant(sub, i, type_names) for i in sub.outputs]
    float_types = {"float32", "float16", "float64"}
    float_ops = [
        f"#{op.index} {op.name}"
        for op in ops
        if any(type_names[sub.tensors[i].type].lower() in float_types for i in (*op.inputs, *op.outputs) if i >= 0)
    ]
    header, source = c_array_sources(int8_tflite, arena, inputs, outputs)
    manifest = {
        "model": {"file": "model.tflite", "bytes": len(int8_tflite), "sha256": sha256_bytes(int8_tflite)},
        "source_onnx_sha256": source_onnx_sha256,
        "ops": used,
        "op_counts": dict(sorted(Counter(op.name for op in ops).items())),
        "float_ops": float_ops,
        "resolver": {
            "class": f"tflite::MicroMutableOpResolver<{len(used)}>",
            "methods": [resolver_method(o) for o in used],
        },
        "arena": {k: v for k, v in asdict(arena).items() if k != "allocations"},
        "arena_note": "minimum is exact on the 64-bit host TFLM interpreter (reference kernels); "
        "recommended = round_up_16((minimum + cmsis_nn_scratch_estimate) * (1 + margin))",
        "inputs": [asdict(q) for q in inputs],
        "outputs": [asdict(q) for q in outputs],
        "layouts": list(layouts),
        "tflite_micro_version": metadata.version("tflite-micro"),
    }
    files: dict[str, bytes | str] = {
        "model.tflite": int8_tflite,
        "model_data.h": header,
        "model_data.cc": source,
        "op_resolver.h": resolver_source(used),
        "arena_allocations.txt": arena.allocations + "\n",
        "manifest.json": json.dumps(manifest, indent=2, sort_keys=True) + "\n",
    }
    return TFLMBundle(files, used, arena, inputs, outputs, float_ops)
