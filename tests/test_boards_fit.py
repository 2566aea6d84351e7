"""Fit check: verdicts, margins in bytes and percent, estimates marked, rendering."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from edgeprune.boards import BoardError, FitVerdict, check_fit, code_size_estimate, fit_artifact, load_board
from edgeprune.boards.fit import (
    BASE_FIRMWARE_BYTES,
    DEFAULT_RUNTIME_RESERVE_BYTES,
    DEFAULT_STACK_BYTES,
    TFLM_CORE_BYTES,
    TFLM_KERNEL_BYTES,
)
from edgeprune.boards.ops import OpCost, OpKind

L4 = load_board("nucleo-l4r5zi")  # 2 MiB flash, 640 KiB SRAM


def _text(verdict: FitVerdict) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(verdict.table())
    return console.export_text()


def test_code_size_estimate_is_documented_sum() -> None:
    assert code_size_estimate(5) == TFLM_CORE_BYTES + 5 * TFLM_KERNEL_BYTES + BASE_FIRMWARE_BYTES


def test_fits_with_exact_margins() -> None:
    v = check_fit(L4, model_bytes=100_000, arena_bytes=50_000, code_bytes=80_000)
    flash, sram = v.resources
    assert (flash.resource, flash.used, flash.capacity) == ("flash", 180_000, 2_097_152)
    assert flash.margin_bytes == 2_097_152 - 180_000
    assert flash.margin_pct == pytest.approx(100 * (2_097_152 - 180_000) / 2_097_152)
    assert sram.used == 50_000 + DEFAULT_STACK_BYTES + DEFAULT_RUNTIME_RESERVE_BYTES
    assert sram.margin_bytes == 655_360 - sram.used
    assert v.fits and v.verdict.startswith("fits (tightest: ")
    assert not flash.estimated and sram.estimated, "the default reserve is an estimate, measured code is not"


def test_does_not_fit_names_the_resource_and_overrun() -> None:
    v = check_fit(L4, model_bytes=100_000, arena_bytes=700_000, code_bytes=80_000, reserve_bytes=0)
    assert not v.fits
    sram = v.resources[1]
    overrun = 700_000 + DEFAULT_STACK_BYTES - 655_360
    assert sram.margin_bytes == -overrun and not sram.fits
    assert v.resources[0].fits
    assert v.verdict == f"does not fit: sram over by {overrun:,} B ({100 * overrun / 655_360:.1f} %)"
    assert "OVER" in _text(v)


def test_flash_overrun() -> None:
    v = check_fit(L4, model_bytes=2_100_000, arena_bytes=1_000)
    assert not v.fits and v.verdict.startswith("does not fit: flash over by")


def test_exact_fit_is_a_fit_but_tight() -> None:
    sram = 655_360 - DEFAULT_STACK_BYTES - 100
    v = check_fit(L4, model_bytes=1, arena_bytes=sram, code_bytes=1, reserve_bytes=100)
    assert v.fits and v.resources[1].margin_bytes == 0
    assert v.verdict.startswith("fits (tight: sram margin 0 B")


def test_code_estimate_counts_distinct_kinds() -> None:
    ops = [OpCost(f"c{i}", OpKind.CONV2D, 1, 1) for i in range(4)] + [OpCost("fc", OpKind.FULLY_CONNECTED, 1, 1)]
    v = check_fit(L4, model_bytes=0, arena_bytes=0, op_kinds=ops)
    code = v.resources[0].parts[1]
    assert code.estimated and code.bytes == code_size_estimate(2)
    assert "*" in _text(v) and "estimated" in _text(v)


def test_arena_must_fit_the_largest_sram_block() -> None:
    h7 = load_board("nucleo-h743zi2")  # 1056 KiB SRAM, 512 KiB AXI block
    v = check_fit(h7, model_bytes=10_000, arena_bytes=600_000)
    block = {r.resource: r for r in v.resources}["sram block"]
    assert v.resources[1].fits and not block.fits and not v.fits
    assert block.margin_bytes == 524_288 - 600_000


def test_external_ram_is_noted_not_counted() -> None:
    v = check_fit(load_board("stm32f746g-disco"), model_bytes=0, arena_bytes=400_000)
    assert not v.fits and any("external RAM" in n for n in v.notes)


def test_arm64_boards_check_dram() -> None:
    v = check_fit(load_board("jetson-orin-nano-8gb"), model_bytes=50_000_000, arena_bytes=100_000_000, reserve_bytes=0)
    (dram,) = v.resources
    assert dram.resource == "dram" and dram.margin_bytes == 8 * 1024**3 - 150_000_000
    assert v.fits and any("GPU shares" in n for n in v.notes)


def test_fit_artifact_reads_file_size(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\0" * 4 + b"TFL3" + b"\0" * 12_337)  # a flatbuffer's file identifier
    v = fit_artifact(L4, model, arena_bytes=1_000, code_bytes=0)
    assert v.resources[0].parts[0].bytes == 12_345
    with pytest.raises(BoardError, match="does not exist"):
        fit_artifact(L4, tmp_path / "missing.tflite", arena_bytes=1)
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    with pytest.raises(BoardError, match="not a TFLite or ONNX model file"):
        fit_artifact(L4, tmp_path / "garbage.pt", arena_bytes=1)


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(BoardError, match="arena_bytes is negative"):
        check_fit(L4, model_bytes=1, arena_bytes=-1)


def test_to_dict_round_trips_the_numbers() -> None:
    v = check_fit(L4, model_bytes=100_000, arena_bytes=50_000, code_bytes=80_000)
    d = v.to_dict()
    assert d["fits"] is True and d["verdict"] == v.verdict
    assert [r["margin_bytes"] for r in d["resources"]] == [r.margin_bytes for r in v.resources]
