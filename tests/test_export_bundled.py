"""Every bundled model, original and pruned at 50 %, exports to ONNX and a TFLite Micro bundle with parity.

Real onnx2tf, LiteRT and TFLM interpreter runs (about 10 s per export): this is the export issue's
"done means" on the models users start from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgeprune.cli import main
from edgeprune.export import OnnxOptions, export
from edgeprune.models import create_model, list_models
from edgeprune.prune import Budget, prune


def _calibration(model: torch.nn.Module, n: int = 256) -> list[tuple[np.ndarray, ...]]:
    """Representative samples. Enough of them to cover the inputs' tails: with 32, multipath's aux head
    (which reads the raw input through a concat) saw clipped inputs and a 32 % int8 error on outliers."""
    torch.manual_seed(1)
    return [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("pruned", [False, True], ids=["original", "pruned50"])
# rssm (recurrent): its export is checked once, pruned, with the board run (test_deploy_models_pruned.py)
@pytest.mark.parametrize("name", [name for name in list_models() if name != "rssm"])
def test_bundled_model_exports_to_onnx_and_tflm_with_parity(tmp_path: Path, name: str, pruned: bool) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    inputs = model.example_inputs(1)
    plan_hash = None
    if pruned:
        result = prune(model, inputs, Budget(default=0.5))
        model, plan_hash = result.model, result.plan.digest
        assert result.report.achieved > 0.3
    out = export(
        model,
        inputs,
        tmp_path,
        targets=("onnx", "tflm"),
        calibration=_calibration(model),
        onnx_options=OnnxOptions(plan_hash=plan_hash),
    )
    assert out.passed, out.table()
    assert out.onnx.parity.max_abs < 1e-4
    assert out.tflm is not None and out.tflm.arena.minimum > 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    paths = {a["path"] for a in manifest["artifacts"]}
    assert {"model.onnx", "tflm/model.tflite", "tflm/model_data.cc", "tflm/model_data.h"} <= paths
    if plan_hash is not None:
        props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
        assert props["edgeprune.plan_hash"] == plan_hash


def test_cli_exports_a_pruned_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "simple", "--budget", "0.5", "--out", str(tmp_path / "p")]) == 0
    model = create_model("simple")
    calib = tmp_path / "calib.npy"
    np.save(calib, torch.randn(32, *model.example_inputs(1)[0].shape[1:]).numpy())
    plan, weights = str(tmp_path / "p/plan.json"), str(tmp_path / "p/pruned.pt")
    args = ["export", "simple", "--plan", plan, "--pruned-weights", weights,
            "--calib", str(calib), "--to", "onnx,tflm,tensorrt-check", "--out", str(tmp_path / "e")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tflm/model.tflite" in out and "buildable" in out
    assert main(args) == 2  # the directory holds an export now: refused without --force
    assert "--force" in capsys.readouterr().err


def test_cli_refuses_int8_without_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "simple", "--to", "tflm", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "calibration" in err.lower() and "Traceback" not in err
    assert not (tmp_path / "e" / "manifest.json").exists()
