"""Every bundled model, unpruned, bit-identical to the TFLM host interpreter on the emulated M4 and M7
boards (the check, and why original and pruned are in two files: emulated_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from emulated_models import BOARDS, MODELS, check_bit_exact_on_emulated_board, needs_toolchain

pytestmark = needs_toolchain


@pytest.mark.slow
@pytest.mark.parametrize("core", list(BOARDS))
@pytest.mark.parametrize("name", MODELS)
def test_bit_exact_on_the_emulated_board(tmp_path: Path, name: str, core: str) -> None:
    check_bit_exact_on_emulated_board(name, False, core, tmp_path)
