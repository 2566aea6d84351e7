"""Every bundled model, pruned 50 %, bit-identical to the TFLM host interpreter on the emulated M4 and M7
boards (the check, and why original and pruned are in two files: emulated_models.py); the recurrent world
model on the M4, with its export's parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_exports import exported
from emulated_models import BOARDS, MODELS, check_bit_exact_on_emulated_board, needs_toolchain

pytestmark = needs_toolchain


@pytest.mark.slow
@pytest.mark.parametrize("core", list(BOARDS))
@pytest.mark.parametrize("name", MODELS)
def test_bit_exact_on_the_emulated_board(tmp_path: Path, name: str, core: str) -> None:
    check_bit_exact_on_emulated_board(name, True, core, tmp_path)


def test_pruned_recurrent_world_model_exports_and_runs_bit_exact(tmp_path: Path) -> None:
    """rssm pruned 50 % (GRU hidden size included): its GRU cell unrolled into int8 FULLY_CONNECTED/LOGISTIC/
    TANH/MUL/ADD/SUB ops, ONNX parity <= 1e-4, int8 TFLM within the int8 tolerance, bit-exact on the board."""
    manifest = json.loads((exported("rssm", True) / "manifest.json").read_text())
    parity = {p["artifact"]: p for p in manifest["parity"]}
    assert parity["model.onnx"]["max_abs"] <= 1e-4
    assert parity["tflm/model.tflite"]["passed"]
    ops = set(json.loads((exported("rssm", True) / "tflm" / "manifest.json").read_text())["ops"])
    assert {"FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL", "SUB"} <= ops
    check_bit_exact_on_emulated_board("rssm", True, "m4", tmp_path)
