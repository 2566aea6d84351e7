"""The emulated board end to end: firmware built for Cortex-M4 (mps2-an386) and M7 (mps2-an500), the EEMBC
protocol over the QEMU UART pty, bit-exact outputs, estimated latency, memory limits, a link that never hangs."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from deploy_exports import exported, random_inputs
from rich.console import Console

from edgeprune.boards import _toml, load_board
from edgeprune.boards.calibration import calibration_path, load_calibration
from edgeprune.boards.cycle_model import LayerMix, cycle_model, trm_cycles
from edgeprune.boards.schema import Core
from edgeprune.deploy.mcu import FirmwareBuildError, Link, LinkError, bench_export, build, emulate, fit_export
from edgeprune.deploy.mcu.bench import OutputMismatchError, check_outputs
from edgeprune.deploy.mcu.build import build_firmware
from edgeprune.deploy.mcu.model import prepare
from edgeprune.deploy.mcu.protocol import Dut
from edgeprune.deploy.mcu.report import component_table, layer_table

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc (make setup)",
)
BOARDS = {"m4": "nucleo-l4r5zi", "m7": "nucleo-h743zi2"}
EMULATOR = _toml.loads(calibration_path().read_text(encoding="utf-8"))["emulator"]
PUBLISHED_MS = {m: ms for m, _, _, ms in load_calibration()["cortex-m4/tflm-reference"].points}


@pytest.fixture(scope="module")
def kws_m4(tmp_path_factory: pytest.TempPathFactory):
    # the protocol and link tests need no cycle estimate: no traced run (estimate=False), a few seconds less
    with emulate("nucleo-l4r5zi", exported("kws_dscnn"), tmp_path_factory.mktemp("fw"), estimate=False) as emu:
        yield emu


@pytest.mark.parametrize("model", ["kws_dscnn", "ad_autoencoder"])
@pytest.mark.parametrize("core", ["m4", "m7"])
def test_bench_is_bit_exact_and_reproduces_the_calibration(tmp_path: Path, core: str, model: str) -> None:
    board = load_board(BOARDS[core])
    with emulate(board, exported(model), tmp_path) as emu:
        m = bench_export(exported(model), board, emu.port, emulated=True, runs=2, firmware=emu.firmware)
        mixes = emu.firmware.layer_mixes
    assert m.provenance.kind == "estimated" and "instruction mix x Cortex-M4 TRM cycles" in m.provenance.how
    assert m.notes[0].startswith("outputs bit-identical to the TFLM host interpreter")
    insns = m.instructions
    assert insns is not None
    refit = "kernels or firmware changed: python -m edgeprune.deploy.mcu.calibrate"
    table = EMULATOR[board.core.value]
    assert insns == pytest.approx(table["insns"][model], rel=0.01), refit
    total = LayerMix()
    for mix in mixes:
        total += mix
    # the traced inference executes what QEMU's instruction counter counts, layer by layer
    assert len(mixes) == len(m.layers) and total.instructions == pytest.approx(insns, rel=1e-3)
    for mix, lay in zip(mixes, m.layers, strict=True):
        assert mix.instructions == pytest.approx(lay.instructions, rel=0.02, abs=200)
    assert m.latency is not None
    expected_ms = 1e3 * cycle_model(board.core).cycles(total, board) / board.clock_hz
    assert m.latency.mean_ms == pytest.approx(expected_ms, rel=2e-3)
    assert trm_cycles(total, board.core) >= total.instructions  # CPI >= 1 by construction
    if core == "m4":  # the calibration: within 10 % of the published NUCLEO-L4R5ZI result
        assert trm_cycles(total, board.core) == pytest.approx(table["trm_cycles"][model], rel=0.01), refit
        assert total.loads == pytest.approx(table["loads"][model], rel=0.01), refit
        assert m.latency.mean_ms == pytest.approx(PUBLISHED_MS[model], rel=0.10)
    want = {"kws_dscnn": {"stem", "blocks", "head"}, "ad_autoencoder": {"encoder", "decoder"}}[model]
    assert set(m.components) == want
    assert sum(c.share for c in m.components.values()) == pytest.approx(1.0)
    assert all(lay.cycles > 0 for lay in m.layers if lay.op != "RESHAPE")
    assert m.memory.arena_bytes > 0 and 0 < m.memory.stack_bytes < 8192
    assert m.memory.ram_bytes > m.memory.arena_bytes and m.memory.flash_bytes == emu.firmware.flash_bytes
    console = Console(width=200, record=True)
    console.print(component_table(m), layer_table(m))
    text = console.export_text()
    assert "ms per inference" in text and "estimate: instruction mix" in text
    assert all(c in text for c in want) and m.layers[-1].op in text


def test_cortex_m0plus_runs_bit_exact_without_a_latency_estimate(tmp_path: Path) -> None:
    with emulate("raspberry-pi-pico", exported("ad_autoencoder"), tmp_path) as emu:
        # not told it is emulated: bench reads it from the firmware (m-ep-board-[mps2-qemu])
        m = bench_export(exported("ad_autoencoder"), "raspberry-pi-pico", emu.port, runs=1)
    assert m.notes[0].startswith("outputs bit-identical") and m.latency is None
    assert "no cycle model for cortex-m0plus" in m.provenance.how
    assert all(lay.instructions and lay.instructions > 0 for lay in m.layers)
    assert sum(c.share for c in m.components.values()) == pytest.approx(1.0)


class _Slow:
    """A serial port wrapper that answers at most 7 bytes per read, 5 ms apart (a slow, chatty link)."""

    def __init__(self, port) -> None:
        self.port = port

    def read(self, n: int) -> bytes:
        time.sleep(0.005)
        return self.port.read(min(n, 7))

    def __getattr__(self, name: str):
        return getattr(self.port, name)


def test_slow_link_still_completes(kws_m4) -> None:
    link = Link.open(kws_m4.port)
    link.drain()
    link.port = _Slow(link.port)
    assert Dut(link).memory()["arena"] == 16000
    link.close()


def test_eembc_protocol_basics(kws_m4) -> None:
    link = Link.open(kws_m4.port)
    link.drain()
    dut = Dut(link)
    name = link.command("name")
    assert re.match(r"^m-(name)-dut-\[([^]]+)]$", name[0])  # the MLPerf Tiny runner's regex
    assert re.match(r"^m-(model|profile)-\[([^]]+)]$", link.command("profile")[1])
    assert dut.name().startswith("dut-[edgeprune-")
    assert link.command("help") == []  # EEMBC help text has no m- prefix: the link sets it aside
    assert any(g.startswith("infer N") for g in link.garbage)
    assert link.command("profile")[0].startswith("m-profile-[")
    assert link.command("bogus", retry=False) == ["e-[Unknown command: bogus]"]
    assert link.command("timestamp")[0].startswith("m-lap-us-")
    assert link.command("db load 3") == ["m-[Expecting 3 bytes]"]
    assert link.command("db 0a0b0c") == ["m-load-done"]
    assert link.command("db print") == ["m-buffer-0a-0b-0c"]
    link.close()


class _Faulty:
    """A serial port wrapper that corrupts the first ``drop`` writes and injects garbage before replies."""

    def __init__(self, port, drop: int = 1, garbage: bytes = b"\x00\xffnoise!!\r\n") -> None:
        self.port, self.drop, self.garbage, self.pending = port, drop, garbage, b""

    def write(self, data: bytes) -> int:
        if self.drop > 0:
            self.drop -= 1
            data = data[: len(data) // 2] + b"\x01" + data[len(data) // 2 + 1 :]  # a corrupted byte
        self.pending = self.garbage
        return self.port.write(data)

    def read(self, n: int) -> bytes:
        if self.pending:
            out, self.pending = self.pending, b""
            return out
        return self.port.read(n)

    def __getattr__(self, name: str):
        return getattr(self.port, name)


def test_link_resyncs_after_corruption_and_garbage(kws_m4) -> None:
    link = Link.open(kws_m4.port)
    link.drain()
    link.port = _Faulty(link.port, drop=2)
    info = Dut(link).info()
    assert "kws_dscnn" in info.model and info.layers == 13 and info.timer == "systick"
    assert info.board_kind == "mps2-qemu" and info.tick_hz == 25_000_000
    assert any("noise" in g for g in link.garbage)
    link.close()


def test_link_gives_up_with_a_clear_error_instead_of_hanging(kws_m4) -> None:
    link = Link.open(kws_m4.port, timeout=0.3, retries=1)
    link.drain()
    link.port = _Faulty(link.port, drop=10)  # every command arrives corrupted
    t0 = time.monotonic()
    with pytest.raises(LinkError, match="failed after 2 attempt"):
        link.command("ep-info")
    assert time.monotonic() - t0 < 5
    link.close()


def test_disconnect_mid_session_is_an_error(tmp_path: Path) -> None:
    emu = emulate("nucleo-l4r5zi", exported("ad_autoencoder"), tmp_path, estimate=False)
    link = Link.open(emu.port, timeout=0.5, retries=1)
    link.drain()
    assert Dut(link).name()
    emu.stop()
    assert not emu.running
    t0 = time.monotonic()
    with pytest.raises(LinkError):
        Dut(link).info()
    assert time.monotonic() - t0 < 5
    link.close()


def test_a_model_that_does_not_fit_fails_to_link_with_numbers(tmp_path: Path) -> None:
    small = load_board("nucleo-l4r5zi").model_copy(update={"sram_bytes": 20_000, "flash_bytes": 40_000})
    with pytest.raises(FirmwareBuildError) as err:
        build(exported("kws_dscnn"), small, tmp_path)
    text = str(err.value)
    assert "does not fit nucleo-l4r5zi" in text and "sram over by" in text and "flash over by" in text
    assert "20,000 B" in text and "arena 16,000 B" in text and "as linked" in text
    verdict = fit_export(exported("kws_dscnn"), small)  # `boards fit --export`: the same basis, the same figures
    assert not verdict.fits and verdict.verdict.removeprefix("does not fit: ") in text


def test_cycle_model_fit_is_one_wait_state_fraction_within_10_percent() -> None:
    m4 = cycle_model(Core.CORTEX_M4)
    assert m4 is not None and 0 < m4.load_wait_fraction <= 1  # a fraction of the wait states, per load
    assert [p.model for p in m4.fit] == ["kws_dscnn", "ad_autoencoder"]
    assert all(abs(p.error_pct) < 10 for p in m4.fit)
    assert "fit error kws_dscnn" in m4.label
    m7 = cycle_model(Core.CORTEX_M7)
    assert m7 is not None and m7.load_wait_fraction == 0 and not m7.fit and "not validated" in m7.label
    assert cycle_model(Core.CORTEX_M0PLUS) is None


def test_uart_over_a_socket_url(tmp_path: Path) -> None:
    with emulate("nucleo-h743zi2", exported("ad_autoencoder"), tmp_path, tcp=True, estimate=False) as emu:
        assert emu.port.startswith("socket://127.0.0.1:")
        link = Link.open(emu.port)
        link.drain()
        assert Dut(link).info().board_kind == "mps2-qemu"
        link.close()


class _DropOnce:
    """Swallows the Nth write entirely (a lost `db` line), then behaves."""

    def __init__(self, port, n: int) -> None:
        self.port, self.n = port, n

    def write(self, data: bytes) -> int:
        self.n -= 1
        return len(data) if self.n == 0 else self.port.write(data)

    def __getattr__(self, name: str):
        return getattr(self.port, name)


def test_a_lost_db_line_restarts_the_load(kws_m4) -> None:
    link = Link.open(kws_m4.port, timeout=1.0)
    link.drain()
    link.port = _DropOnce(link.port, 3)  # db load, first chunk, *second chunk lost*
    data = bytes(range(256)) * 2
    Dut(link).load(data[:490])
    dump = "".join(x[len("m-buffer-") :].replace("-", "") for x in link.command("db print"))
    assert bytes.fromhex(dump) == data[:490]
    link.close()


class _FlipBit(Dut):
    """A board whose raw outputs come back with one bit flipped (one output computed wrong)."""

    def raw(self) -> bytes:
        got = bytearray(super().raw())
        got[-1] ^= 1
        return bytes(got)


def test_a_single_flipped_output_bit_is_a_mismatch(kws_m4) -> None:
    model, tflite = prepare(exported("kws_dscnn"))
    sets = random_inputs([x.shape for x in model.inputs], 1, seed=7)
    link = Link.open(kws_m4.port)
    link.drain()
    assert check_outputs(Dut(link), tflite, sets) == 1
    with pytest.raises(OutputMismatchError, match="input set 0: 1 of 12 output bytes differ"):
        check_outputs(_FlipBit(link), tflite, sets)
    link.close()


def test_flash_size_does_not_depend_on_the_cycles_per_instruction(tmp_path: Path) -> None:
    # the traced CPI moves a little from run to run; a constant divisor made the same model's firmware 64-192 B
    # larger or smaller depending on it
    model, _ = prepare(exported("kws_dscnn"))
    board = load_board("nucleo-h743zi2")
    sizes = {build_firmware(model, board, tmp_path / str(cpi), cycles_per_insn=cpi).flash_bytes for cpi in (1.2, 1.5)}
    assert len(sizes) == 1, sizes


def test_mlperf_model_id_is_checked_before_building(tmp_path: Path) -> None:
    with pytest.raises(FirmwareBuildError, match="cannot be reported as m-model"):
        build(exported("ad_autoencoder"), "nucleo-l4r5zi", tmp_path, mlperf_model="ad01]")
