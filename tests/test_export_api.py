"""export(): all targets in one call, one manifest, summary table, refusals before any work."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from export_models import MishMLP, SmallCNN, TwoInputMLP, samples, seeded
from rich.console import Console

from edgeprune.export import ExportError, ExportResult, OnnxOptions, export
from edgeprune.export.artifacts import sha256_file


@pytest.fixture(scope="module")
def cnn_export(tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    messages: list[str] = []
    result = export(
        seeded(SmallCNN()),
        torch.randn(1, 3, 16, 16),
        tmp_path_factory.mktemp("out") / "cnn",
        targets=("onnx", "tflite", "tflm", "tensorrt-check"),
        calibration=samples((3, 16, 16)),
        onnx_options=OnnxOptions(plan_hash="sha256:plan"),
        progress=messages.append,
    )
    assert any("TFLite Micro" in m for m in messages)
    return result


def test_every_artifact_is_in_the_manifest_with_its_hash(cnn_export: ExportResult) -> None:
    out = cnn_export.out_dir
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {a["path"]: a["sha256"] for a in manifest["artifacts"]}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(listed) == on_disk
    assert all(sha256_file(out / path) == digest for path, digest in listed.items())
    assert {"model.onnx", "tflite/model_int8.tflite", "tflm/model_data.cc", "tflm/op_resolver.h"} <= on_disk
    assert manifest["plan_hash"] == "sha256:plan" and manifest["passed"] is True
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging or temp files left


def test_summary_table_and_parity(cnn_export: ExportResult) -> None:
    assert cnn_export.passed
    assert [r.artifact for r in cnn_export.rows][:4] == [
        "model.onnx",
        "tflite/model_float32.tflite",
        "tflite/model_int8.tflite",
        "tflm/model.tflite",
    ]
    assert cnn_export.tflm_parity is not None and cnn_export.tflm_parity.runtime == "TFLite Micro"
    assert cnn_export.tflm_parity.n_samples == 65
    console = Console(record=True, width=140)
    console.print(cnn_export.table())
    text = console.export_text()
    assert "tflm/model.tflite" in text and "max abs" in text
    bundle = json.loads((cnn_export.out_dir / "tflm/manifest.json").read_text())
    assert bundle["source_onnx_sha256"] == sha256_file(cnn_export.out_dir / "model.onnx")


def test_refuses_overwrite_then_force(cnn_export: ExportResult) -> None:
    with pytest.raises(ExportError, match="already holds export artifacts"):
        export(seeded(SmallCNN()), torch.randn(1, 3, 16, 16), cnn_export.out_dir, targets=("onnx",))
    again = export(seeded(SmallCNN()), torch.randn(1, 3, 16, 16), cnn_export.out_dir, targets=("onnx",), force=True)
    assert again.passed
    left = sorted(str(p.relative_to(cnn_export.out_dir)) for p in cnn_export.out_dir.rglob("*"))
    assert left == ["manifest.json", "model.onnx"]  # the earlier run's other artifacts are gone


def test_refusals_happen_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="needs representative calibration samples"):
        export(seeded(SmallCNN()), torch.randn(1, 3, 16, 16), out, targets=("tflm",))
    with pytest.raises(ExportError, match="unknown export target"):
        export(seeded(SmallCNN()), torch.randn(1, 3, 16, 16), out, targets=("coreml",))
    with pytest.raises(ExportError, match=r"shape \(3, 16, 16\)"):
        export(
            seeded(SmallCNN()),
            torch.randn(1, 3, 16, 16),
            out,
            targets=("tflite",),
            calibration=samples((16, 16, 3)),
        )
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(ExportError, match="'tensorrt' is not installed"):
            export(seeded(SmallCNN()), torch.randn(1, 3, 16, 16), out, targets=("tensorrt",))
    assert not out.exists() or not any(out.iterdir())


def test_two_inputs_two_outputs_through_tflm(tmp_path: Path) -> None:
    calib = {"obs": samples((8,)), "act": samples((4,), seed=2)}
    res = export(
        seeded(TwoInputMLP()),
        (torch.randn(1, 8), torch.randn(1, 4)),
        tmp_path / "out",
        targets=("tflm",),
        calibration=calib,
        onnx_options=OnnxOptions(output_names=["q", "value"]),
    )
    assert res.passed, [r.describe() for r in res.parity]
    assert res.tflm_parity is not None and res.tflm_parity.max_rel < 0.1
    assert res.tflm is not None and res.tflm.ops == ["CONCATENATION", "FULLY_CONNECTED"]


def test_failed_target_leaves_no_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="TFLite Micro rejects op EXP"):
        export(seeded(MishMLP()), torch.randn(1, 8), out, targets=("tflm",), calibration=samples((8,)))
    assert list(out.iterdir()) == []


def test_a_relative_output_directory_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's commands (and `edgeprune demo`) pass relative paths; onnx2tf runs in its own working dir."""
    monkeypatch.chdir(tmp_path)
    result = export(seeded(SmallCNN()), torch.randn(1, 3, 16, 16), Path("out/cnn"), targets=("onnx", "tflite"),
                    calibration=samples((3, 16, 16)))  # fmt: skip
    assert result.passed
    assert (tmp_path / "out/cnn/tflite/model_int8.tflite").is_file()
