"""The EEMBC / MLPerf Tiny benchmark protocol (host side) and edgeprune's extensions, over a :class:`Link`."""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from edgeprune.deploy.mcu.link import Link, LinkError

T = TypeVar("T")
DB_CHUNK = 32  # bytes per `db HEX%` line: 64 hex digits + "db " stays within EEMBC's 80-character commands


@dataclass(frozen=True)
class BoardInfo:
    name: str
    model: str
    sha256: str
    timer: str  # "systick", "dwt" or "micros"
    tick_hz: int
    board_kind: str  # "mps2-qemu" (the emulated board) or "arduino" (PlatformIO build)
    layers: int
    input_bytes: int
    output_bytes: int
    input_format: str = "int8"  # what `db` bytes are: "int8", "uint8-128" (ic01/vww01) or "float32" (ad01)
    kernels: str = "reference"  # "dsp": the Cortex-M4/M7 DSP-extension kernels


@dataclass(frozen=True)
class LayerTicks:
    index: int
    op: str
    component: str
    ticks: int  # summed over ``runs`` timed inferences


@dataclass(frozen=True)
class InferReply:
    runs: int
    lap_us: tuple[int, int]
    results: tuple[float, ...]

    @property
    def elapsed_us(self) -> int:
        return self.lap_us[1] - self.lap_us[0]


@dataclass(frozen=True)
class Timing:
    """One timed ``infer``, cross-checked: ``runs`` as asked, increasing start/end ticks (and ``m-lap-us-``
    stamps), one tick count per layer, per-layer ticks that fit inside the run."""

    runs: int
    laps: tuple[int, int]  # board ticks at the start and end of the timed inferences
    tick_hz: int
    layers: tuple[LayerTicks, ...]

    @property
    def ticks(self) -> int:
        return self.laps[1] - self.laps[0]

    @property
    def seconds_per_run(self) -> float:
        return self.ticks / self.tick_hz / self.runs


FIRST_INFERENCE_S = 60.0  # before any inference was timed: far more than one inference of an MCU model takes
DEADLINE_MARGIN = 10.0  # a reply may take this many times the measured time before it is given up on
AGREE_REL = 0.05  # two timed runs of the same input on the same board agree within this (QEMU: exactly)
TIMING_ATTEMPTS = 3


def _field(lines: list[str], prefix: str) -> str:
    for line in lines:
        if line.startswith(prefix):
            m = re.match(re.escape(prefix) + r"\[(.*)\]$", line)
            return m.group(1) if m else line[len(prefix) :]
    raise LinkError(f"the board's reply lacks '{prefix}...'", fix="reply was: " + " | ".join(lines)[-500:])


def _ints(text: str, what: str, n: int | None = None, minimum: int = 0) -> list[int]:
    """Comma-separated decimal integers, each >= ``minimum`` (``n`` of them when given), or a LinkError."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or (n is not None and len(values) != n) or any(v < minimum for v in values):
        raise LinkError(f"malformed {what}: {text[:80]!r}", expected=f"{n or 'some'} integers >= {minimum}")
    return values


def _checked(lines: list[str], command: str) -> list[str]:
    """The lines of an extension reply whose ``m-ep-crc-`` trailer matches them (else a LinkError)."""
    if not lines or not (m := re.fullmatch(r"m-ep-crc-\[([0-9a-f]{8})\]", lines[-1])):
        raise LinkError(f"{command} reply has no m-ep-crc- trailer: the reply was cut or mixed with another")
    body = lines[:-1]
    if zlib.crc32("".join(x + "\n" for x in body).encode()) != int(m.group(1), 16):
        raise LinkError(f"{command} reply fails its CRC-32: the link corrupted it")
    return body


def _infer_reply(lines: list[str], runs: int) -> InferReply:
    laps = [x[len("m-lap-us-") :] for x in lines if x.startswith("m-lap-us-")]
    if len(laps) != 2:
        raise LinkError("infer reply lacks two m-lap-us- timestamps", fix=" | ".join(lines)[-500:])
    lap_us = _ints(",".join(laps), "m-lap-us", 2)
    results = _field(lines, "m-results-")
    try:
        values = tuple(float(v) for v in results.split(",")) if results else ()
    except ValueError:
        raise LinkError(f"malformed m-results: {results[:80]!r}") from None
    return InferReply(runs, (lap_us[0], lap_us[1]), values)


class Dut:
    """A device under test speaking the protocol (our firmware or any EEMBC-compliant one for the basics).

    Every field parsed is validated; extension replies (``ep-...``) are checked against their CRC-32 and asked
    again (bounded) when corrupted; an ``infer`` deadline is derived from the time the last inference took."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.seconds_per_inference: float | None = None  # host-side wall time of the last inference

    def _ask(
        self, command: str, parse: Callable[[list[str]], T], timeout: float | None = None, work_done: str | None = None
    ) -> T:
        """``parse(reply)``; the command is sent again (after a drain, bounded by the link's retries) when the
        reply is missing, cut, corrupted or fails ``parse``'s checks."""
        problem = ""
        for attempt in range(1 + self.link.retries):
            if attempt:
                self.link.resync()
            try:
                return parse(self.link.command(command, timeout=timeout, work_done=work_done))
            except LinkError as exc:
                problem = exc.problem
        raise LinkError(
            f"{command.split()[0]} failed {1 + self.link.retries} times: {problem}",
            expected="edgeprune benchmark firmware answering over a clean serial link",
            fix="check the cable / baud rate; a link that keeps corrupting replies cannot give trustworthy numbers",
        )

    def _ext(self, command: str) -> list[str]:
        return self._ask(command, lambda lines: _checked(lines, command))

    def name(self) -> str:
        return self._ask("name", lambda lines: _field(lines, "m-name-"))

    def info(self) -> BoardInfo:
        name = self.name()
        lines = self._ext("ep-info")
        timer, _, hz = _field(lines, "m-ep-timer-").partition(",")
        (tick_hz,) = _ints(hz, "m-ep-timer tick rate", 1, minimum=1)
        ins, outs = _ints(_field(lines, "m-ep-io-"), "m-ep-io", 2, minimum=1)
        (layers,) = _ints(_field(lines, "m-ep-layers-"), "m-ep-layers", 1, minimum=1)
        sha = _field(lines, "m-ep-sha256-")
        if not re.fullmatch(r"[0-9a-f]{64}", sha) or not timer:
            raise LinkError(f"malformed ep-info: {' | '.join(lines)[:200]!r}")
        fmt = _field(lines, "m-ep-input-") if any(x.startswith("m-ep-input-") for x in lines) else "int8"
        if fmt not in ("int8", "uint8-128", "float32"):
            raise LinkError(f"malformed m-ep-input: {fmt[:40]!r}")
        kernels = _field(lines, "m-ep-kernels-") if any(x.startswith("m-ep-kernels-") for x in lines) else "reference"
        if kernels not in ("reference", "dsp", "tflm"):
            raise LinkError(f"malformed m-ep-kernels: {kernels[:40]!r}")
        return BoardInfo(name, _field(lines, "m-ep-model-"), sha, timer, tick_hz, _field(lines, "m-ep-board-"),
                         layers, ins, outs, fmt, kernels)  # fmt: skip

    def loaded(self) -> tuple[int, int, int]:
        """``(size, bytes loaded, CRC-32 of them)`` of the board's input buffer (``ep-db``)."""
        text = _field(self._ext("ep-db"), "m-ep-db-")
        size, pos, crc = [*text.split(","), "", "", ""][:3]
        if not re.fullmatch(r"[0-9a-f]{8}", crc):
            raise LinkError(f"malformed m-ep-db: {text[:80]!r}")
        return *_ints(f"{size},{pos}", "m-ep-db", 2), int(crc, 16)

    def load(self, data: bytes, *, attempts: int = 3) -> None:
        """``db load N%`` then ``db HEX%`` chunks; then checks (``ep-db``) that the board holds exactly ``data``.
        After a lost or corrupted chunk the link is resynchronised and the load goes on from the bytes the board
        verifiably holds (their CRC-32 matches), or starts over; it gives up after ``attempts`` failures in a row
        that made no progress (bounded: each other failure moved on by at least one byte)."""
        want = (len(data), len(data), zlib.crc32(data))
        pos: int | None = None  # bytes of ``data`` the board holds; None: start with ``db load``
        stalled = 0
        while stalled < attempts:
            before = pos or 0
            try:
                if pos is None:
                    if f"m-[Expecting {len(data)} bytes]" not in self.link.command(f"db load {len(data)}"):
                        raise LinkError(f"db load {len(data)} was not acknowledged")
                    pos = 0
                for i in range(pos, len(data), DB_CHUNK):
                    lines = self.link.command("db " + data[i : i + DB_CHUNK].hex(), retry=False)
                    if any(x.startswith("e-") for x in lines):
                        raise LinkError(f"db chunk at byte {i} refused: {lines}")
                if self.loaded() == want:
                    return
            except LinkError:
                pass
            self.link.resync()
            pos = self._held(data)
            stalled = 0 if (pos or 0) > before else stalled + 1
        raise LinkError(
            f"loading {len(data)} input bytes failed {attempts} times in a row", fix="check the link quality"
        )

    def _held(self, data: bytes) -> int | None:
        """How many leading bytes of ``data`` the board's buffer verifiably holds (None: unknown or wrong)."""
        try:
            size, pos, crc = self.loaded()
        except LinkError:
            return None
        return pos if size == len(data) and pos <= size and crc == zlib.crc32(data[:pos]) else None

    def deadline(self, runs: int, warmup: int) -> float:
        """Seconds ``infer runs warmup`` may work once the board acknowledged it: ``DEADLINE_MARGIN`` times the
        last inference's wall time per inference (``FIRST_INFERENCE_S`` before any), at least the link's
        timeout."""
        known = self.seconds_per_inference
        per = DEADLINE_MARGIN * known if known is not None else FIRST_INFERENCE_S
        return max(self.link.timeout, per * (runs + warmup))

    def infer(self, runs: int, warmup: int, *, timeout: float | None = None) -> InferReply:
        """``infer runs warmup``; ``timeout`` defaults to :meth:`deadline`. The wall time it took sets the next
        deadline."""
        t0 = time.monotonic()
        reply = self._ask(f"infer {runs} {warmup}", lambda lines: _infer_reply(lines, runs),
                          timeout or self.deadline(runs, warmup), work_done="m-infer-done")  # fmt: skip
        self.seconds_per_inference = (time.monotonic() - t0) / (runs + warmup)
        return reply

    def raw(self) -> bytes:
        text = _field(self._ext("ep-raw"), "m-ep-raw-")
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise LinkError(f"malformed m-ep-raw: {text[:80]!r}") from None

    def layers(self) -> tuple[int, list[LayerTicks]]:
        """``(timed runs, per-layer ticks summed over them)`` of the last ``infer``."""
        runs, _, layers = self._layers()
        return runs, layers

    def _layers(self) -> tuple[int, tuple[int, int], list[LayerTicks]]:
        lines = self._ext("ep-layers")
        (runs,) = _ints(_field(lines, "m-ep-runs-"), "m-ep-runs", 1)
        t0, t1 = _ints(_field(lines, "m-ep-laps-"), "m-ep-laps", 2)
        out = []
        for line in lines:
            if line.startswith("m-ep-layer-"):
                m = re.fullmatch(r"m-ep-layer-\[(\d+),([^,]*),(.*),(\d+)\]", line)
                if not m:
                    raise LinkError(f"malformed m-ep-layer: {line[:80]!r}")
                out.append(LayerTicks(int(m.group(1)), m.group(2), m.group(3), int(m.group(4))))
        return runs, (t0, t1), out

    def timed(self, runs: int, warmup: int, info: BoardInfo) -> Timing:
        """Time ``runs`` inferences after ``warmup`` until two runs pass every check and agree within
        ``AGREE_REL`` (at most ``TIMING_ATTEMPTS`` + 1 runs); a LinkError saying what disagreed otherwise."""
        kept: list[Timing] = []
        problem = ""
        for _ in range(TIMING_ATTEMPTS + 1):
            try:
                timing = self._timed_once(runs, warmup, info)
            except LinkError as exc:
                problem = exc.problem
                self.link.resync()
                continue
            if kept and abs(timing.ticks - kept[-1].ticks) <= AGREE_REL * kept[-1].ticks:
                return timing
            if kept:
                problem = f"two timed runs disagree: {kept[-1].ticks} vs {timing.ticks} ticks"
            kept.append(timing)
        raise LinkError(
            f"no two timed runs of {runs} inferences agreed: {problem}",
            expected=f"repeated runs within {AGREE_REL:.0%} of each other, every reply intact",
            fix="check the link quality, and that nothing else runs on the board",
        )

    def _timed_once(self, runs: int, warmup: int, info: BoardInfo) -> Timing:
        reply = self.infer(runs, warmup)
        got_runs, laps, layers = self._layers()
        if got_runs != runs:
            raise LinkError(f"the board timed {got_runs} inferences, not the {runs} asked (command corrupted)")
        if not laps[0] < laps[1]:
            raise LinkError(f"timed-run laps are not increasing: {laps}")
        if not reply.lap_us[0] <= reply.lap_us[1]:  # m-lap-us may be an estimate (emulated board): scale unknown
            raise LinkError(f"m-lap-us stamps are not increasing: {reply.lap_us}")
        if [t.index for t in layers] != list(range(info.layers)):
            raise LinkError(f"ep-layers lists {len(layers)} layers, the board has {info.layers}")
        if sum(t.ticks for t in layers) > laps[1] - laps[0]:
            raise LinkError(f"per-layer ticks add up to more than the timed run: {laps}")
        return Timing(runs, laps, info.tick_hz, tuple(layers))

    def memory(self) -> dict[str, int]:
        text = _field(self._ext("ep-mem"), "m-ep-mem-")
        try:
            mem = {k: int(v) for k, v in (kv.split("=") for kv in text.split(","))}
        except ValueError:
            raise LinkError(f"malformed m-ep-mem: {text!r}") from None
        if "arena" not in mem or any(v < 0 for v in mem.values()):
            raise LinkError(f"malformed m-ep-mem: {text!r}")
        return mem
