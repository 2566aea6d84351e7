"""Fault injection between the host and the real emulated board (QEMU firmware): a corrupting pty proxy drops
bytes, flips bits, delays, truncates and disconnects. Every session must end within its deadline in the same
numbers as a clean session or in a clear ``LinkError``: 0 wrong values accepted, 0 tracebacks, 0 hangs. The
long run (>= 1,000 faults) is ``benchmarks/faults.py``."""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter

import pytest
from deploy_exports import exported
from fault_proxy import FaultProxy

from edgeprune.boards import load_board
from edgeprune.deploy.mcu import Dut, Link, LinkError, bench, emulate, prepare
from edgeprune.measure.record import Measurement

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc (make setup)",
)
BOARD = "nucleo-l4r5zi"
MODEL = "ad_autoencoder"
TICK_SLACK = 3 * 40  # instructions (or fewer cycles): three SysTick ticks of the emulated board
SESSION_DEADLINE_S = 45.0  # link timeout 1 s, 2 retries, bounded re-runs: far below this unless something hangs


def numbers(m: Measurement) -> list[float]:
    """Every number a session reports: instructions, per-layer cycles and instructions, latency, memory, shares."""
    layers = [x for lay in m.layers for x in (lay.cycles, lay.instructions or 0.0)]
    memory = [m.memory.arena_bytes or 0, m.memory.stack_bytes or 0]
    shares = [v.share or 0.0 for _, v in sorted(m.components.items())]
    return [m.instructions or 0.0, *layers, m.latency.mean_ms if m.latency else 0.0, *memory, *shares]


def same(got: list[float], want: list[float]) -> bool:
    """Equal up to the board timer's resolution (QEMU's SysTick ticks at 25 MHz: 40 instructions per tick, a
    few ticks of phase between sessions); a corrupted digit or a wrong field is far outside this."""
    if len(got) != len(want):
        return False
    return all(abs(g - w) <= max(TICK_SLACK, 1e-4 * abs(w)) for g, w in zip(got, want, strict=True))


def session(port: str, model, tflite: bytes, seed: int) -> Measurement:
    link = Link.open(port, timeout=1.0, retries=2)
    try:
        return bench(link, model, tflite, load_board(BOARD), emulated=True, runs=1, warmup=0, check_sets=1, seed=seed)
    finally:
        link.close()


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    with emulate(BOARD, exported(MODEL), tmp_path_factory.mktemp("fw")) as emu:
        yield emu


@pytest.mark.slow
def test_injected_faults_never_give_a_wrong_number_a_traceback_or_a_hang(board) -> None:
    model, tflite = prepare(exported(MODEL))
    with FaultProxy(board.port, seed=0, budget=0) as clean:
        want = numbers(session(clean.port, model, tflite, seed=0))
    outcomes: Counter = Counter()
    faults: Counter = Counter()
    for seed in range(1, 16):
        t0 = time.monotonic()
        with FaultProxy(board.port, seed=seed, budget=3, rate=0.08) as proxy:
            try:
                got = numbers(session(proxy.port, model, tflite, seed=0))
                outcomes["correct" if same(got, want) else "WRONG"] += 1
            except LinkError:
                outcomes["clear error"] += 1
            faults.update(proxy.injected)
        assert time.monotonic() - t0 < SESSION_DEADLINE_S, f"session {seed} ran {time.monotonic() - t0:.0f} s"
    assert outcomes["WRONG"] == 0, outcomes
    assert sum(faults.values()) >= 20 and len(faults) == 5, faults  # every kind of fault was exercised
    # each session ends in a correct result or a clear error (the contract). How many recover is not
    # asserted: it varies run to run (12 of 15 sessions ended in a clear error in one CI run, fewer in others);
    # recovery from one corrupted field is tested deterministically below.
    assert outcomes["correct"] + outcomes["clear error"] == 15, outcomes


class _CorruptLines:
    """A serial port wrapper that changes one digit in the first ``count`` reply lines starting with ``prefix``
    (the issue's case: one corrupted digit in a lap timestamp), then relays the rest unchanged."""

    def __init__(self, port, prefix: bytes, count: int = 1) -> None:
        self.port, self.prefix, self.left, self.buf, self.out = port, prefix, count, b"", b""

    def read(self, n: int) -> bytes:
        if not self.out:
            self.buf += self.port.read(max(n, 1))
            while b"\n" in self.buf:
                line, _, self.buf = self.buf.partition(b"\n")
                if self.left and line.startswith(self.prefix):
                    self.left -= 1
                    digit = re.search(rb"\d", line[len(self.prefix) :])
                    assert digit, line
                    i = len(self.prefix) + digit.start()
                    line = line[:i] + (b"1" if line[i : i + 1] != b"1" else b"2") + line[i + 1 :]
                self.out += line + b"\n"
        data, self.out = self.out[:n], self.out[n:]
        return data

    def __getattr__(self, name: str):
        return getattr(self.port, name)


def _bench_through(port: str, prefix: bytes, count: int) -> Measurement:
    model, tflite = prepare(exported(MODEL))
    link = Link.open(port, timeout=1.0, retries=2)
    link.port = _CorruptLines(link.port, prefix, count)
    try:
        return bench(link, model, tflite, load_board(BOARD), emulated=True, runs=1, warmup=0, check_sets=1)
    finally:
        link.close()


@pytest.fixture(scope="module")
def clean_numbers(board) -> list[float]:
    model, tflite = prepare(exported(MODEL))
    with FaultProxy(board.port, seed=0, budget=0) as clean:
        return numbers(session(clean.port, model, tflite, seed=0))


@pytest.mark.parametrize("prefix", [b"m-lap-us-", b"m-ep-laps-[", b"m-ep-layer-[3,", b"m-ep-raw-[", b"m-ep-timer-["])
def test_one_corrupted_field_is_caught_and_asked_again(board, clean_numbers: list[float], prefix: bytes) -> None:
    assert same(numbers(_bench_through(board.port, prefix, 1)), clean_numbers)


@pytest.mark.parametrize("prefix", [b"m-ep-laps-[", b"m-ep-raw-["])
def test_a_field_corrupted_every_time_is_a_link_error_never_a_number_or_a_kernel_bug(board, prefix: bytes) -> None:
    with pytest.raises(LinkError) as err:
        _bench_through(board.port, prefix, 1000)
    assert "OutputMismatch" not in type(err.value).__name__ and err.value.fix


class _LostReady:
    """Drops the ``m-ready`` that ends the first ``infer`` reply (the line after ``m-infer-done`` and the results)."""

    def __init__(self, port) -> None:
        self.port, self.buf, self.out, self.armed, self.dropped = port, b"", b"", False, 0

    def read(self, n: int) -> bytes:
        if not self.out:
            self.buf += self.port.read(max(n, 1))
            while b"\n" in self.buf:
                line, _, self.buf = self.buf.partition(b"\n")
                if line.startswith(b"m-infer-done"):
                    self.armed = not self.dropped
                elif self.armed and line.startswith(b"m-ready"):
                    self.armed, self.dropped = False, 1
                    continue
                self.out += line + b"\n"
        data, self.out = self.out[:n], self.out[n:]
        return data

    def __getattr__(self, name: str):
        return getattr(self.port, name)


def test_a_lost_m_ready_after_the_work_costs_the_link_timeout_not_the_inference_deadline(board, clean_numbers) -> None:
    """Before any inference was timed an ``infer`` may work for ``FIRST_INFERENCE_S`` (60 s); once the board said
    ``m-infer-done`` only the link's timeout is left for the rest (a session used to wait the whole minute)."""
    model, tflite = prepare(exported(MODEL))
    link = Link.open(board.port, timeout=1.0, retries=2)
    link.port = _LostReady(link.port)
    t0 = time.monotonic()
    try:
        m = bench(link, model, tflite, load_board(BOARD), emulated=True, runs=1, warmup=0, check_sets=1)
    finally:
        link.close()
    assert link.port.dropped and same(numbers(m), clean_numbers) and time.monotonic() - t0 < 20


class _HalfCommands:
    """A serial port wrapper that cuts the ``%`` off the ``db HEX`` chunk commands numbered in ``cut``: the board
    keeps a half command in its line buffer, and the next command the host sends is appended to it."""

    def __init__(self, port, cut: set[int]) -> None:
        self.port, self.cut, self.chunks = port, cut, 0

    def write(self, data: bytes) -> int:
        if data.startswith(b"db ") and not data.startswith(b"db load"):
            self.chunks += 1
            if self.chunks in self.cut:
                data = data[:-1]
        return self.port.write(data)

    def __getattr__(self, name: str):
        return getattr(self.port, name)


def test_half_received_commands_are_resynchronised_and_the_load_resumes(board, clean_numbers: list[float]) -> None:
    """Two input chunks lost their terminator: each time the host ends the half command (a bare ``%``), asks the
    board how much it holds (``ep-db``) and goes on from there. Restarting the whole load instead, with the next
    ``db load`` appended to the half chunk (read as more hex bytes), failed all three load attempts."""
    model, tflite = prepare(exported(MODEL))
    link = Link.open(board.port, timeout=1.0, retries=2)
    link.port = _HalfCommands(link.port, {3, 12})
    try:
        m = bench(link, model, tflite, load_board(BOARD), emulated=True, runs=1, warmup=0, check_sets=1)
    finally:
        link.close()
    assert same(numbers(m), clean_numbers) and link.port.chunks == 20  # 640 B in 20 chunks, each sent once


class _SlowLines:
    """A correct but slow board: each reply line arrives ``delay`` seconds after the previous one."""

    def __init__(self, port, delay: float) -> None:
        self.port, self.delay, self.buf = port, delay, b""

    def read(self, n: int) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.port.read(max(n, 1))
            if not chunk:
                return b""
            self.buf += chunk
        time.sleep(self.delay)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def __getattr__(self, name: str):
        return getattr(self.port, name)


def test_a_slow_but_steady_board_is_not_cut_off(board) -> None:
    link = Link.open(board.port)  # the default 5 s: the 8 lines of ep-info take 5.6 s in all
    link.drain()
    link.port = _SlowLines(link.port, 0.7)
    try:
        t0 = time.monotonic()
        info = Dut(link).info()
        assert time.monotonic() - t0 > link.timeout and info.layers > 0 and info.tick_hz == 25_000_000
    finally:
        link.close()
