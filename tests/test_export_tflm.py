"""TFLite Micro bundle: real TFLM interpreter gate, exact arena, C sources compiled with host g++."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from export_models import MishMLP, SmallCNN, samples, seeded

from edgeprune.export import tflm
from edgeprune.export.artifacts import sha256_bytes
from edgeprune.export.errors import ExportError
from edgeprune.export.onnx import OnnxExport, onnx_from_torch
from edgeprune.export.opmap import onnx_nodes
from edgeprune.export.tflite import TFLiteExport, tflite_from_onnx
from edgeprune.export.tflm import TFLMBundle, resolver_method, tflm_bundle

# AddXxx methods copied from tensorflow/lite/micro/micro_mutable_op_resolver.h (TFLM main).
_REAL_METHODS = ["AddConv2D", "AddFullyConnected", "AddMean", "AddPad", "AddConcatenation", "AddReshape"]
_STUB_RESOLVER = """#pragma once
enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };
namespace tflite {
template <unsigned int N> class MicroMutableOpResolver {
 public:
%s
};
}  // namespace tflite
"""
_MAIN = """#include <cstdint>
#include <cstdio>
#include <cstring>
#include "model_data.h"
#include "op_resolver.h"
int main() {
  if (reinterpret_cast<std::uintptr_t>(g_model_data) %% 16 != 0) return 1;
  if (g_model_data_len != %du) return 2;
  if (std::memcmp(g_model_data + 4, "TFL3", 4) != 0) return 3;
  if (kTensorArenaSize < kTensorArenaMinSize || kTensorArenaSize %% 16 != 0) return 4;
  edgeprune::OpResolver resolver;
  if (edgeprune::RegisterOps(resolver) != kTfLiteOk) return 5;
  std::printf("%%u %%f\\n", g_model_data_len, static_cast<double>(kInput0Scale));
  return 0;
}
"""


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxExport, TFLiteExport]:
    model, example = seeded(SmallCNN()), (torch.randn(1, 3, 16, 16),)
    onnx_export = onnx_from_torch(model, example)
    work = tmp_path_factory.mktemp("cnn")
    return onnx_export, tflite_from_onnx(onnx_export, model, example, work, calibration=samples((3, 16, 16)))


@pytest.fixture(scope="module")
def bundle(cnn: tuple[OnnxExport, TFLiteExport]) -> TFLMBundle:
    onnx_export, tfl = cnn
    assert tfl.int8 is not None
    layouts = [lay.__dict__ for lay in tfl.int8_inputs]
    nodes = onnx_nodes(onnx_export.model, onnx_export.components)
    return tflm_bundle(tfl.int8, onnx_nodes=nodes, source_onnx_sha256="f" * 64, layouts=layouts)


def test_arena_is_exact_minimum_with_margin(bundle: TFLMBundle, tmp_path: Path) -> None:
    arena = bundle.arena
    assert 0 < arena.minimum < 64 * 1024
    probe = [sys.executable, str(Path(tflm.__file__).with_name("_tflm_probe.py")), "bisect"]
    model = tmp_path / "m.tflite"
    model.write_bytes(bundle.files["model.tflite"])  # type: ignore[arg-type]
    out = subprocess.run(
        [*probe, str(model), str(arena.minimum - 2), str(arena.minimum), "1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"min {arena.minimum}" in out  # minimum - 1 does not fit
    assert arena.recommended % 16 == 0
    assert arena.recommended >= (arena.minimum + arena.cmsis_nn_scratch_estimate) * 1.1
    assert arena.head and arena.tail and arena.head + arena.tail <= arena.minimum
    assert "Arena allocation total" in arena.allocations


def test_ops_resolver_and_manifest(bundle: TFLMBundle) -> None:
    assert bundle.ops == ["CONV_2D", "FULLY_CONNECTED", "MEAN", "PAD"]
    assert bundle.float_ops == []
    resolver = str(bundle.files["op_resolver.h"])
    assert f"MicroMutableOpResolver<{len(bundle.ops)}>" in resolver
    assert [resolver_method(op) for op in bundle.ops] == [
        "AddConv2D",
        "AddFullyConnected",
        "AddMean",
        "AddPad",
    ]
    manifest = json.loads(str(bundle.files["manifest.json"]))
    assert manifest["model"]["sha256"] == sha256_bytes(bundle.files["model.tflite"])  # type: ignore[arg-type]
    assert manifest["source_onnx_sha256"] == "f" * 64
    assert manifest["arena"]["minimum"] == bundle.arena.minimum
    assert manifest["inputs"][0]["dtype"] == "int8" and manifest["inputs"][0]["scale"] > 0
    assert manifest["layouts"][0]["perm"] == [0, 2, 3, 1]


@pytest.mark.skipif(shutil.which("g++") is None, reason="host g++ not installed")
def test_generated_sources_compile_and_check_alignment(bundle: TFLMBundle, tmp_path: Path) -> None:
    for name in ("model_data.h", "model_data.cc", "op_resolver.h"):
        (tmp_path / name).write_text(str(bundle.files[name]))
    stub = tmp_path / "tensorflow/lite/micro/micro_mutable_op_resolver.h"
    stub.parent.mkdir(parents=True)
    stub.write_text(_STUB_RESOLVER % "\n".join(f"  TfLiteStatus {m}() {{ return kTfLiteOk; }}" for m in _REAL_METHODS))
    size = len(bundle.files["model.tflite"])
    (tmp_path / "main.cc").write_text(_MAIN % size)
    exe = tmp_path / "check"
    subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(tmp_path),
            "-o",
            str(exe),
            str(tmp_path / "main.cc"),
            str(tmp_path / "model_data.cc"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.returncode
    assert run.stdout.split()[0] == str(size)


def test_mish_is_rejected_naming_op_node_and_component(tmp_path: Path) -> None:
    model, example = seeded(MishMLP()), (torch.randn(1, 8),)
    onnx_export = onnx_from_torch(model, example)
    tfl = tflite_from_onnx(onnx_export, model, example, tmp_path, calibration=samples((8,)))
    assert tfl.int8 is not None
    with pytest.raises(ExportError) as info:
        tflm_bundle(tfl.int8, onnx_nodes=onnx_nodes(onnx_export.model, onnx_export.components))
    msg = str(info.value)
    assert "TFLite Micro rejects op EXP" in msg
    assert "/body/body.1/Softplus" in msg and "component 'body'" in msg
    assert "keep that component off the MCU" in msg
    hybrid = (tmp_path / "tf" / "model_dynamic_range_quant.tflite").read_bytes()
    with pytest.raises(ExportError, match="not integer"):
        tflm_bundle(hybrid)
