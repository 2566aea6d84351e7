"""The device commands of the CLI: bench on the emulated board, flash --dry-run, and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from deploy_exports import exported

from edgeprune.cli import main


def test_bench_on_the_emulated_board(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export_dir = tmp_path / "export"
    shutil.copytree(exported("ad_autoencoder"), export_dir)
    assert main(["bench", "--board", "nucleo-l4r5zi", "--export", str(export_dir), "--emulate"]) == 0
    out = capsys.readouterr().out
    assert "estimate" in out  # emulated latency is always labelled an estimate
    data = json.loads((export_dir / "bench-nucleo-l4r5zi.json").read_text())
    assert data["provenance"]["kind"] == "estimated" and data["latency"]["median_ms"] > 0


def test_bench_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--board", "nucleo-l4r5zi"]) == 2
    assert "--export" in capsys.readouterr().err
    assert main(["bench", "--board", "jetson-orin-nano-8gb", "--export", str(tmp_path)]) == 2
    assert "--host" in capsys.readouterr().err


def test_flash_dry_run_prints_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flash", "fw.elf", "--board", "nucleo-l4r5zi", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would run: openocd" in out and "fw.elf" in out  # the profile says openocd (ST-LINK)
