"""TFLite (LiteRT) float32 and full-integer int8 from a checked ONNX model, through onnx2tf.

onnx2tf runs in a subprocess (argument list, no shell): it takes seconds to import TensorFlow,
prints a lot and keeps global state, so isolating it keeps this process quiet and lets its
output be captured and turned into a clear error. int8 is full-integer (int8 inputs and outputs,
as TFLite Micro wants), per-channel, calibrated on the user's samples with one ``-cind`` per input.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeprune import cache
from edgeprune.export.errors import ExportError
from edgeprune.export.onnx import OnnxExport, eager_outputs, parity_input_sets
from edgeprune.export.opmap import OnnxNode, candidates, describe, onnx_nodes
from edgeprune.export.parity import ParityReport, Tolerance, compare
from edgeprune.export.recurrent import RECURRENT_ONNX_OPS, no_int8_error
from edgeprune.export.samples import CalibrationSource, load_calibration, require_calibration
from edgeprune.extras import MissingExtraError, require_installed
from edgeprune.io import write_atomic

logger = logging.getLogger(__name__)

FLOAT_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)
INT8_TOLERANCE = Tolerance(atol=0.0, rtol=0.1, min_top1=0.9)
_FLOAT_TYPES = (np.float32, np.float16, np.float64)
# onnx2tf fetches sample images from the internet for dummy inference when every input is an
# RGB image; a file of this name in its working directory is used instead.
_ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_CONVERTED = ("model_float32.tflite", "model_full_integer_quant.tflite")  # what is read from onnx2tf's output
_LOG = "onnx2tf.log"
_CONVERTER_PACKAGES = ("onnx2tf", "tensorflow", "tf-keras", "onnx", "onnxruntime", "onnxsim", "numpy")


@dataclass(frozen=True)
class TensorLayout:
    """How an ONNX input/output maps onto the TFLite tensor: ``tflite = onnx.transpose(perm)``."""

    name: str
    onnx_shape: tuple[int, ...]
    tflite_shape: tuple[int, ...]
    perm: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None
    tflite_name: str = ""  # the tensor's name in the .tflite (e.g. serving_default_x:0)


@dataclass(frozen=True)
class FloatOp:
    """A TFLite op computing in floating point inside an int8 model."""

    index: int
    op: str
    onnx_nodes: tuple[OnnxNode, ...]

    def describe(self) -> str:
        return f"#{self.index} {self.op} <- {describe(self.onnx_nodes)}"


def summarize_float_ops(ops: Sequence[FloatOp]) -> str:
    """One line for a user: how many float ops an int8 model keeps, of which kinds, in which components."""
    kinds = Counter(op.op for op in ops)
    components = sorted({n.component for op in ops if op.op not in ("QUANTIZE", "DEQUANTIZE") for n in op.onnx_nodes})
    listed = ", ".join(f"{k} x{n}" for k, n in kinds.most_common())
    where = f" (from components {', '.join(components)})" if components else ""
    return (
        f"the int8 model keeps {len(ops)} float op(s): {listed}{where}; they need an FPU or soft-float on an MCU "
        "(manifest.json lists each)"
    )


@dataclass
class TFLiteExport:
    """onnx2tf outputs with their checks."""

    float32: bytes
    float_parity: ParityReport
    inputs: list[TensorLayout]
    outputs: list[TensorLayout]
    int8: bytes | None = None
    int8_parity: ParityReport | None = None
    int8_inputs: list[TensorLayout] = field(default_factory=list)
    int8_outputs: list[TensorLayout] = field(default_factory=list)
    float_ops: list[FloatOp] = field(default_factory=list)
    seconds: float = 0.0
    log: str = ""


def make_interpreter(data: bytes):
    """A LiteRT interpreter (``ai_edge_litert``, else ``tflite_runtime``) with reference kernels only."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError as exc:
            raise MissingExtraError("ai_edge_litert", "export", "running a TFLite model (LiteRT)") from exc
    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    try:
        it.allocate_tensors()
    except RuntimeError as exc:  # e.g. Select TensorFlow (Flex) ops: the builtin interpreter has no kernel
        flex = sorted(set(re.findall(r"\((Flex\w+)\)", str(exc))))
        raise ExportError(
            f"LiteRT cannot run the converted model: {', '.join(flex) + ' (Select TensorFlow ops)' if flex else exc}.",
            expected="a TFLite model of builtin ops only (what LiteRT's builtin interpreter and TFLite Micro run)",
            do="replace the op(s) in the model (see docs/export.md, unsupported ops).",
            detail=str(exc)[-2000:],
        ) from None
    return it


def _tflite_name(detail: dict) -> str:
    return detail["name"].split(":")[0].removeprefix("serving_default_")


def _match(details: list[dict], names: list[str], signature: dict[str, int]) -> list[dict]:
    """Order TFLite I/O details like the ONNX ``names``.

    onnx2tf's signature keeps ONNX names in float models and uses ``output_0``... (ONNX order) in
    quantized ones, while the tensor order of the flatbuffer may differ from both.
    """
    by_index = {d["index"]: d for d in details}
    generic = [f"output_{i}" for i in range(len(names))]
    for keys in (names, generic):
        if set(keys) <= set(signature):
            return [by_index[signature[k]] for k in keys]
    by_name = {_tflite_name(d): d for d in details}
    if set(names) <= set(by_name):
        return [by_name[n] for n in names]
    if len(details) != len(names):
        raise ExportError(f"TFLite model has {len(details)} tensors where ONNX has {len(names)} ({names}).")
    return details


def _perm_for(onnx_shape: tuple[int, ...], tflite_shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    rank = len(onnx_shape)
    channel_last = (0, *range(2, rank), 1) if rank >= 3 else tuple(range(rank))
    if tuple(onnx_shape[i] for i in channel_last) == tflite_shape:
        return channel_last
    if onnx_shape == tflite_shape:
        return tuple(range(rank))
    raise ExportError(
        f"cannot map tensor '{name}': ONNX shape {onnx_shape} vs TFLite shape {tflite_shape}.",
        expected="the same shape, or the NCHW->NHWC transpose onnx2tf applies",
    )


def _layouts(
    details: list[dict], onnx_shapes: dict[str, tuple[int, ...]], signature: dict[str, int]
) -> list[tuple[TensorLayout, int]]:
    """Match TFLite I/O details to ONNX names and record each layout, with the tensor index."""
    out = []
    for n, d in zip(onnx_shapes, _match(details, list(onnx_shapes), signature), strict=True):
        tshape = tuple(int(s) for s in d["shape"])
        scale, zp = d["quantization"]
        quantized = np.dtype(d["dtype"]) not in [np.dtype(t) for t in _FLOAT_TYPES]
        lay = TensorLayout(
            n,
            onnx_shapes[n],
            tshape,
            _perm_for(onnx_shapes[n], tshape, n),
            np.dtype(d["dtype"]).name,
            float(scale) if quantized else None,
            int(zp) if quantized else None,
            d["name"],
        )
        out.append((lay, int(d["index"])))
    return out


def to_tflite(x: np.ndarray, lay: TensorLayout) -> np.ndarray:
    """An ONNX-layout float input as the TFLite tensor wants it: transposed, quantized if integer."""
    x = np.transpose(np.asarray(x, dtype=np.float32), lay.perm)
    if lay.scale is not None:
        info = np.iinfo(np.dtype(lay.dtype))
        x = np.clip(np.round(x / lay.scale + lay.zero_point), info.min, info.max)
    return x.astype(lay.dtype)


def from_tflite(y: np.ndarray, lay: TensorLayout) -> np.ndarray:
    """A TFLite output back in the ONNX layout as float: dequantized if integer, transposed back."""
    y = np.asarray(y).astype(np.float32)
    if lay.scale is not None:
        y = (y - lay.zero_point) * lay.scale
    return np.transpose(y, np.argsort(lay.perm))


Runner = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def run_tflite(
    data: bytes, onnx_shapes_in: dict[str, tuple[int, ...]], onnx_shapes_out: dict[str, tuple[int, ...]]
) -> tuple[Runner, list[TensorLayout], list[TensorLayout]]:
    """Return ``(runner, input layouts, output layouts)``; the runner maps ONNX-layout floats to floats.

    Integer inputs are quantized with the model's scale/zero point, integer outputs dequantized.
    """
    it = make_interpreter(data)
    sig_in: dict[str, int] = {}
    sig_out: dict[str, int] = {}
    if it.get_signature_list():
        runner = it.get_signature_runner()
        sig_in = {k: int(v["index"]) for k, v in runner.get_input_details().items()}
        sig_out = {k: int(v["index"]) for k, v in runner.get_output_details().items()}
    ins = _layouts(it.get_input_details(), onnx_shapes_in, sig_in)
    outs = _layouts(it.get_output_details(), onnx_shapes_out, sig_out)

    def runner(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        for (lay, idx), x in zip(ins, arrays, strict=True):
            it.set_tensor(idx, to_tflite(x, lay))
        it.invoke()
        return [from_tflite(it.get_tensor(idx), lay) for lay, idx in outs]

    return runner, [lay for lay, _ in ins], [lay for lay, _ in outs]


def float_ops(data: bytes, nodes: Sequence[OnnxNode]) -> list[FloatOp]:
    """Every op of a quantized model reading or writing a float tensor, with its likely ONNX origin."""
    it = make_interpreter(data)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()  # the public API has no op listing; both interpreters provide this

    def is_float(i: int) -> bool:
        return i >= 0 and np.dtype(tensors[i]["dtype"]) in [np.dtype(t) for t in _FLOAT_TYPES]

    found = {}
    for op in ops:
        if any(is_float(i) for i in [*op["inputs"], *op["outputs"]]):
            names = [tensors[i]["name"] for i in op["outputs"]]
            found[op["index"]] = (op["op_name"], candidates(names, nodes))
    for idx, (name, cands) in list(found.items()):  # (DE)QUANTIZE: borrow the wrapped float op's origin
        if not cands and name in ("QUANTIZE", "DEQUANTIZE"):
            near = [found[j][1] for j in (idx + 1, idx - 1) if j in found and found[j][1]]
            found[idx] = (name, near[0] if near else [])
    return [FloatOp(i, n, tuple(c)) for i, (n, c) in sorted(found.items())]


def int8_parity_sets(
    example: tuple[torch.Tensor, ...], calib: dict[str, np.ndarray], max_samples: int
) -> list[tuple[torch.Tensor, ...]]:
    """The example inputs plus up to ``max_samples`` calibration samples, in batches of the model's batch."""
    batch = example[0].shape[0]
    n = min(next(iter(calib.values())).shape[0], max_samples) // batch * batch
    return [example] + [tuple(torch.from_numpy(a[i : i + batch]) for a in calib.values()) for i in range(0, n, batch)]


def _onnx2tf(
    onnx_export: OnnxExport, workdir: Path, calib: dict[str, np.ndarray] | None, timeout: float
) -> tuple[Path, str]:
    # onnx2tf runs in a child process: a missing stack would otherwise surface as an onnx2tf failure
    require_installed("onnx2tf", "tensorflow", "tf_keras", extra="export", purpose="TFLite conversion (onnx2tf)")
    workdir = workdir.resolve()  # onnx2tf runs in workdir: every path it is given must not be relative
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "model.onnx"
    src.write_bytes(onnx_export.to_bytes())
    inputs = [src]  # every file onnx2tf reads: with its arguments and version, the conversion's cache key
    out = workdir / "tf"
    args = [sys.executable, "-m", "onnx2tf", "-i", str(src), "-o", str(out), "-v", "error"]
    if onnx_export.dynamic_batch:
        args += ["-b", str(next(iter(onnx_export.input_shapes.values()))[0])]
    sample_images = None
    if calib is not None:
        args += ["-oiqt", "-qt", "per-channel", "-iqd", "int8", "-oqd", "int8"]
        for i, (name, arr) in enumerate(calib.items()):
            path = workdir / f"calib_{i}.npy"
            channel_last = (0, *range(2, arr.ndim), 1) if arr.ndim >= 4 else tuple(range(arr.ndim))
            nhwc = np.ascontiguousarray(np.transpose(arr, channel_last))
            np.save(path, nhwc)
            inputs.append(path)
            args += ["-cind", name, str(path), "[0.0]", "[1.0]"]
            if nhwc.ndim == 4 and nhwc.shape[-1] == 3:
                sample_images = nhwc
    shapes = list(onnx_export.input_shapes.values())
    if all(len(s) == 4 and s[1] == 3 for s in shapes):  # onnx2tf would download its sample images
        img = (
            sample_images
            if sample_images is not None
            else np.random.default_rng(0).standard_normal((20, shapes[0][2], shapes[0][3], 3))
        )
        np.save(workdir / _ONNX2TF_SAMPLE_FILE, np.resize(img, (20, *img.shape[1:])).astype(np.float32))
        inputs.append(workdir / _ONNX2TF_SAMPLE_FILE)
    key = cache.content_key("onnx2tf", _converter_versions(), *(a.replace(str(workdir), "<work>") for a in args[1:]),
                            *(part for p in inputs for part in (p.name, p.read_bytes())))  # fmt: skip
    cached = cache.load("onnx2tf", key)
    if cached is not None:
        log = cached.pop(_LOG).decode()
        for name, data in cached.items():
            write_atomic(out / name, data)
        return out, f"edgeprune: onnx2tf's output for these inputs, from the cache ({cache.cache_root()})\n{log}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1", "PYTHONUNBUFFERED": "1"}
    try:
        logger.debug("running %s", shlex.join(map(str, args)))
        proc = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"onnx2tf did not finish within {timeout:.0f} s.", do="raise the timeout.") from exc
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # onnx2tf colours its messages
    if proc.returncode != 0:
        raise _onnx2tf_error(log, proc.returncode, onnx_export)
    # every variant onnx2tf wrote, so that a cache hit leaves the same files as a conversion
    made = {p.name: p.read_bytes() for p in sorted(out.glob("*.tflite"))}
    if any(name in made for name in _CONVERTED):
        cache.store("onnx2tf", key, {**made, _LOG: log.encode()})
    return out, log


@functools.cache
def _converter_versions() -> str:
    """Python and the converter stack's versions: part of every conversion's cache key."""
    return sys.version + "".join(f"\n{k}={v}" for k, v in cache.package_versions(_CONVERTER_PACKAGES).items())


def _onnx2tf_error(log: str, returncode: int, onnx_export: OnnxExport) -> ExportError:
    """onnx2tf's own ERROR lines first, with the ONNX nodes/components they name; the log tail as detail."""
    errors = [line.split("ERROR:", 1)[1].strip() for line in log.splitlines() if "ERROR:" in line]
    named = set(re.findall(r"(\w+) OP is not yet implemented", log))
    named |= set(re.findall(r"onnx_op_type: (\w+)", log))
    nodes = [n for n in onnx_nodes(onnx_export.model, onnx_export.components) if n.op_type in named]
    where = f" ONNX node(s): {describe(nodes)}." if nodes else ""
    lines = [line for line in log.splitlines() if line.strip()]
    return ExportError(
        f"onnx2tf failed to convert the ONNX model (exit code {returncode}): "
        f"{'; '.join(e.rstrip('.') for e in errors[:3]) or 'see the log below'}.{where}",
        expected="every ONNX op to have a TFLite equivalent that onnx2tf implements",
        do="replace that op in the model (or its component), or keep the component off TFLite.",
        detail="\n".join(lines[-25:]),
    )


# ONNX ops onnx2tf turns into Select TensorFlow ("Flex") ops, which LiteRT's builtin interpreter and TFLite Micro
# cannot run, with the way out.
FLEX_ONNX_OPS = {
    "Erf": "exact GELU (nn.GELU(), F.gelu) lowers to Erf: use nn.GELU(approximate='tanh'), which converts to "
    "TANH, MUL and ADD (int8 TFLite, TFLite Micro and the emulated board)",
}


def _refuse_flex_ops(onnx_export: OnnxExport) -> None:
    """Refused before the conversion (about a minute) that would give a model no interpreter here runs."""
    nodes = [n for n in onnx_nodes(onnx_export.model, onnx_export.components) if n.op_type in FLEX_ONNX_OPS]
    if nodes:
        raise ExportError(
            f"the ONNX model has op(s) {describe(nodes)} that onnx2tf converts to Select TensorFlow (Flex) ops, "
            "which LiteRT's builtin interpreter and TFLite Micro cannot run.",
            expected="ops with a TFLite builtin kernel",
            do="; ".join(FLEX_ONNX_OPS[t] for t in sorted({n.op_type for n in nodes}))
            + "; or keep that component off TFLite.",
        )


def _refuse_recurrent_ops(onnx_export: OnnxExport) -> None:
    """ONNX GRU/LSTM/RNN/Loop/Scan nodes: onnx2tf gives no full-integer model TFLite Micro can run."""
    nodes = [n for n in onnx_nodes(onnx_export.model, onnx_export.components) if n.op_type in RECURRENT_ONNX_OPS]
    if nodes:
        raise ExportError(
            f"the ONNX model has recurrent op(s) {describe(nodes)}: onnx2tf makes no full-integer TFLite of them.",
            expected="recurrent layers unrolled over a fixed number of steps (per-gate MatMul, Sigmoid, Tanh, Mul)",
            do="export with onnx_from_torch (it unrolls nn.GRU/nn.LSTM/nn.RNN and their cells), or unroll the loop "
            "in forward() yourself.",
        )


def tflite_from_onnx(
    onnx_export: OnnxExport,
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    workdir: Path,
    *,
    int8: bool = True,
    calibration: CalibrationSource | None = None,
    float_tolerance: Tolerance = FLOAT_TOLERANCE,
    int8_tolerance: Tolerance = INT8_TOLERANCE,
    n_random: int = 4,
    max_parity_samples: int = 64,
    timeout: float = 900.0,
) -> TFLiteExport:
    """Convert with onnx2tf and check float32 (and int8) TFLite against eager PyTorch.

    ``int8`` needs ``calibration`` samples (see :func:`edgeprune.export.samples.load_calibration`);
    without them it raises :class:`ExportError` rather than calibrating on noise. The int8 parity
    runs on (up to ``max_parity_samples`` of) the calibration samples plus the example inputs.
    """
    example = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    calib = None
    if int8:
        calib = load_calibration(require_calibration(calibration, "full-integer int8 TFLite"), onnx_export.input_shapes)
    _refuse_recurrent_ops(onnx_export)
    _refuse_flex_ops(onnx_export)
    t0 = time.perf_counter()
    out, log = _onnx2tf(onnx_export, workdir, calib, timeout)
    seconds = time.perf_counter() - t0
    float_path = out / "model_float32.tflite"
    if not float_path.is_file():
        raise ExportError("onnx2tf reported success but wrote no float32 .tflite.", detail=log[-3000:])
    model = model.eval()
    out_shapes = {
        n: tuple(a.shape) for n, a in zip(onnx_export.output_names, eager_outputs(model, example), strict=True)
    }
    ins = onnx_export.input_shapes

    float_bytes = float_path.read_bytes()
    run_f, f_in, f_out = run_tflite(float_bytes, ins, out_shapes)
    sets = parity_input_sets(example, n_random, seed=0)
    refs = [eager_outputs(model, s) for s in sets]
    gots = [run_f([t.numpy() for t in s]) for s in sets]
    result = TFLiteExport(
        float32=float_bytes,
        float_parity=compare("model_float32.tflite", "LiteRT", refs, gots, float_tolerance),
        inputs=f_in,
        outputs=f_out,
        seconds=seconds,
        log=log,
    )
    if calib is None:
        return result
    int8_path = out / "model_full_integer_quant.tflite"
    if not int8_path.is_file():
        raise no_int8_error(model, log)
    result.int8 = int8_path.read_bytes()
    run_q, result.int8_inputs, result.int8_outputs = run_tflite(result.int8, ins, out_shapes)
    qsets = int8_parity_sets(example, calib, max_parity_samples)
    qrefs = [eager_outputs(model, s) for s in qsets]
    qgots = [run_q([t.numpy() for t in s]) for s in qsets]
    steps = [lay.scale for lay in result.int8_outputs]
    result.int8_parity = compare("model_int8.tflite", "LiteRT", qrefs, qgots, int8_tolerance, steps)
    result.float_ops = float_ops(result.int8, onnx_nodes(onnx_export.model, onnx_export.components))
    return result
