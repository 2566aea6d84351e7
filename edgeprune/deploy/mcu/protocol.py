"""The EEMBC / MLPerf Tiny benchmark protocol (host side) and edgeprune's extensions, over a :class:`Link`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeprune.deploy.mcu.link import Link, LinkError

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


def _field(lines: list[str], prefix: str) -> str:
    for line in lines:
        if line.startswith(prefix):
            m = re.match(re.escape(prefix) + r"\[(.*)\]$", line)
            return m.group(1) if m else line[len(prefix) :]
    raise LinkError(f"the board's reply lacks '{prefix}...'", fix="reply was: " + " | ".join(lines)[-500:])


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise LinkError(f"malformed {what}: {text!r}") from None


class Dut:
    """A device under test speaking the protocol (our firmware or any EEMBC-compliant one for the basics)."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def name(self) -> str:
        return _field(self.link.command("name"), "m-name-")

    def info(self) -> BoardInfo:
        name = self.name()
        lines = self.link.command("ep-info")
        timer, hz = _field(lines, "m-ep-timer-").split(",")
        ins, outs = _ints(_field(lines, "m-ep-io-"), "m-ep-io")
        has = {k for k in ("input", "kernels") if any(x.startswith(f"m-ep-{k}-") for x in lines)}  # since fw 0.2
        opt = {k: _field(lines, f"m-ep-{k}-") for k in has}
        return BoardInfo(name, _field(lines, "m-ep-model-"), _field(lines, "m-ep-sha256-"), timer, int(hz),
                         _field(lines, "m-ep-board-"), int(_field(lines, "m-ep-layers-")), ins, outs,
                         opt.get("input", "int8"), opt.get("kernels", "reference"))  # fmt: skip

    def load(self, data: bytes, *, attempts: int = 3) -> None:
        """``db load N%`` then ``db HEX%`` chunks; restarts the whole load (bounded) when a chunk is lost."""
        for _ in range(attempts):
            self.link.command(f"db load {len(data)}")
            lines: list[str] = []
            try:
                for i in range(0, len(data), DB_CHUNK):
                    lines = self.link.command("db " + data[i : i + DB_CHUNK].hex(), retry=False)
                    if any(x.startswith("e-") for x in lines):
                        break
            except LinkError:  # a chunk got no m-ready: start the load over
                self.link.drain()
                continue
            if "m-load-done" in lines:
                return
        raise LinkError(f"loading {len(data)} input bytes failed {attempts} times", fix="check the link quality")

    def infer(self, runs: int, warmup: int, *, timeout: float = 120) -> InferReply:
        lines = self.link.command(f"infer {runs} {warmup}", timeout=timeout)
        laps = [int(x[len("m-lap-us-") :]) for x in lines if x.startswith("m-lap-us-")]
        if len(laps) != 2:
            raise LinkError("infer reply lacks two m-lap-us- timestamps", fix=" | ".join(lines)[-500:])
        results = _field(lines, "m-results-")
        try:
            values = tuple(float(v) for v in results.split(",")) if results else ()
        except ValueError:
            raise LinkError(f"malformed m-results: {results[:80]!r}") from None
        return InferReply(runs, (laps[0], laps[1]), values)

    def raw(self) -> bytes:
        text = _field(self.link.command("ep-raw"), "m-ep-raw-")
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise LinkError(f"malformed m-ep-raw: {text[:80]!r}") from None

    def layers(self) -> tuple[int, list[LayerTicks]]:
        lines = self.link.command("ep-layers")
        runs = int(_field(lines, "m-ep-runs-"))
        out = []
        for line in lines:
            m = re.match(r"m-ep-layer-\[(\d+),([^,]*),(.*),(\d+)\]$", line)
            if m:
                out.append(LayerTicks(int(m.group(1)), m.group(2), m.group(3), int(m.group(4))))
        return runs, out

    def memory(self) -> dict[str, int]:
        text = _field(self.link.command("ep-mem"), "m-ep-mem-")
        try:
            return {k: int(v) for k, v in (kv.split("=") for kv in text.split(","))}
        except ValueError:
            raise LinkError(f"malformed m-ep-mem: {text!r}") from None
