"""litert-torch (Google's PyTorch -> LiteRT converter) against onnx2tf on every bundled model: time, int8 parity, ops.

litert-torch cannot be installed beside the pinned stack (docs/export.md has the resolver's verdict), so each
converter runs in its own environment and writes its own JSON; run both, then read the two files side by side:

    PYTHONPATH=. .venv/bin/python benchmarks/converters.py onnx2tf          # the project's venv
    PYTHONPATH=. /tmp/lrt-venv/bin/python benchmarks/converters.py litert-torch   # a venv with litert-torch
    (a model name or more after the converter: only those)

Per model: conversion CPU seconds (process time of the whole conversion, subprocesses included), float32 and
int8 parity against eager PyTorch on 32 example-input draws (largest error relative to each output's range,
as ``edgeprune.export.parity``), whether the int8 model has int8 inputs/outputs (what TFLite Micro and our
firmware need), and its op set. Calibration: 32 draws of ``example_inputs(1)`` (random weights, random inputs:
this compares converters, not deployable accuracy).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from edgeprune.export.onnx import default_input_names
from edgeprune.models import create_model, list_models

OUT = Path(__file__).parent / "results"
KNOWN_PARITY: dict[str, float] = {}  # set by a converter whose own check measured parity


def cpu_seconds() -> float:
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime


def rel_error(refs: list[list[np.ndarray]], gots: list[list[np.ndarray]]) -> float:
    worst = 0.0
    for j in range(len(refs[0])):
        scale = max(float(np.max(np.abs(r[j]))) for r in refs) or 1.0
        for r, g in zip(refs, gots, strict=True):
            worst = max(worst, float(np.max(np.abs(np.asarray(g[j], np.float64).reshape(r[j].shape) - r[j]))) / scale)
    return worst


def interpreter(data: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def run_tflite(data: bytes, inputs: tuple[np.ndarray, ...], input_names: list[str]) -> list[np.ndarray]:
    """Inputs by name where the signature keeps the model's names (onnx2tf), else in signature order (litert-torch:
    ``args_0``...); int8 I/O quantized/dequantized with the model's own parameters."""
    it = interpreter(data)
    runner = it.get_signature_runner()
    details = runner.get_input_details()
    names = input_names if set(details) == set(input_names) else sorted(details, key=lambda n: details[n]["index"])
    feeds = {}
    for name, x in zip(names, inputs, strict=True):
        d = details[name]
        if d["dtype"] == np.int8:
            scale, zero = d["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        feeds[name] = x.reshape(d["shape"]) if x.size == np.prod(d["shape"]) else np.transpose(x, (0, 2, 3, 1))
    out = runner(**feeds)
    res = []
    odet = runner.get_output_details()
    for name in sorted(out, key=lambda n: odet[n]["index"]):
        y = out[name]
        if y.dtype == np.int8:
            scale, zero = odet[name]["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        res.append(y)
    return res


def ops_and_io(data: bytes) -> tuple[list[str], str]:
    it = interpreter(data)
    ops = sorted({d["op_name"] for d in it._get_ops_details()})
    io = "int8" if all(d["dtype"] == np.int8 for d in it.get_input_details() + it.get_output_details()) else "float"
    return ops, io


def convert_litert_torch(model: torch.nn.Module, example: tuple, calib: list[tuple]) -> dict[str, bytes]:
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    out = {"float": litert_torch.convert(model, example).model_content()}
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    )
    m = quantize_pt2e.prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    for sample in calib:
        m(*sample)
    m = quantize_pt2e.convert_pt2e(m, fold_quantize=False)
    cfg = quant_config.QuantConfig(pt2e_quantizer=quantizer)
    out["int8"] = litert_torch.convert(m, example, quant_config=cfg).model_content()
    return out


def convert_onnx2tf(model: torch.nn.Module, example: tuple, calib: list[tuple]) -> dict[str, bytes]:
    from edgeprune.export.onnx import onnx_from_torch
    from edgeprune.export.tflite import tflite_from_onnx

    onnx_export = onnx_from_torch(model, example, simplify=True)
    calib_np = [tuple(t.numpy() for t in s) for s in calib]
    with tempfile.TemporaryDirectory() as tmp:
        t = tflite_from_onnx(onnx_export, model, example, Path(tmp), calibration=calib_np)
    # edgeprune's own parity (same metric, on the calibration draws + the example) matches onnx2tf's renamed,
    # reordered and NHWC outputs to the eager ones; this harness's positional feeding cannot
    KNOWN_PARITY.update(float=t.float_parity.max_rel, int8=t.int8_parity.max_rel)
    return {"float": t.float32, "int8": t.int8}


def main(converter: str, only: list[str]) -> None:
    convert = {"litert-torch": convert_litert_torch, "onnx2tf": convert_onnx2tf}[converter]
    rows = []
    for name in only or list_models():
        torch.manual_seed(0)
        model = create_model(name).eval()
        example = tuple(model.example_inputs(1))
        torch.manual_seed(1)
        calib = [tuple(model.example_inputs(1)) for _ in range(32)]
        row: dict = {"model": name}
        names = default_input_names(model, len(example))
        c0, w0 = cpu_seconds(), time.perf_counter()
        try:
            models = convert(model, example, calib)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            traceback.print_exc()
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        row["cpu_s"], row["wall_s"] = round(cpu_seconds() - c0, 2), round(time.perf_counter() - w0, 2)
        with torch.no_grad():
            refs = [[o.numpy() for o in _as_list(model(*s))] for s in calib]
        for kind, data in models.items():
            try:
                if kind in KNOWN_PARITY:
                    row[f"{kind}_rel_err"] = round(KNOWN_PARITY.pop(kind), 4)
                else:
                    gots = [run_tflite(data, tuple(t.numpy() for t in s), names) for s in calib]
                    row[f"{kind}_rel_err"] = round(rel_error(refs, gots), 4)
            except Exception as exc:
                row[f"{kind}_rel_err"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            ops, io = ops_and_io(data)
            row[f"{kind}_io"], row[f"{kind}_ops"] = io, ops
        rows.append(row)
        print(json.dumps(row), flush=True)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"converters_{converter}{'_' + '_'.join(only) if only else ''}.json"
    meta = {"converter": converter, "torch": torch.__version__, "python": sys.version.split()[0],
            "cpus": os.cpu_count()}  # fmt: skip
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {path}")


def _as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "litert-torch", sys.argv[2:])
