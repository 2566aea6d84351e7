"""A fault-injecting serial proxy: a new pseudo-terminal whose bytes are relayed to and from a board's port (the
emulated board's QEMU pty) with faults injected on the way: dropped bytes, flipped bits, delays, truncated chunks
and disconnects. Used by the fault-injection tests and ``benchmarks/faults.py``: the link must turn every fault
into a correct result or a clear ``LinkError`` within its deadline, never a wrong number, a traceback or a hang."""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
import tty
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("drop", "flip", "delay", "truncate", "disconnect")


@dataclass
class FaultProxy:
    """Relay between a new pty (``.port``, for the host) and ``upstream`` (the board's pty path), injecting up to
    ``budget`` faults, each chunk with probability ``rate``. ``injected`` counts them by kind. Context manager."""

    upstream: str
    seed: int
    budget: int = 3
    rate: float = 0.05
    max_delay: float = 1.5
    kinds: tuple[str, ...] = KINDS
    injected: Counter = field(default_factory=Counter)
    relayed: Counter = field(default_factory=Counter)  # bytes read from each side: "host", "board"

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the pty exists until the host opens it
        self._board = os.open(self.upstream, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self._master, self._slave, self._board):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def _fault(self, data: bytes) -> bytes | None:
        """``data`` with at most one fault applied; None for a disconnect."""
        if self.total >= self.budget or self._rng.random() >= self.rate:
            return data
        kind = self._rng.choice(self.kinds)
        self.injected[kind] += 1
        i = self._rng.randrange(len(data))
        if kind == "drop":
            return data[:i] + data[i + 1 :]
        if kind == "flip":
            return data[:i] + bytes([data[i] ^ (1 << self._rng.randrange(8))]) + data[i + 1 :]
        if kind == "delay":
            time.sleep(self._rng.uniform(0.05, self.max_delay))
            return data
        if kind == "truncate":
            return data[:i]
        return None

    def _relay(self) -> None:
        pairs = {self._master: self._board, self._board: self._master}
        side = {self._master: "host", self._board: "board"}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pairs), [], [], 0.05)
                for src in ready:
                    data = os.read(src, 4096)
                    if not data:
                        continue
                    self.relayed[side[src]] += len(data)
                    out = self._fault(data)
                    if out is None:  # disconnect: the host's end goes away (its reads fail with EIO)
                        os.close(self._master)
                        os.close(self._slave)
                        self._master = self._slave = -1
                        return
                    if out:
                        os.write(pairs[src], out)
            except OSError:  # the host closed its end, or the board went away
                time.sleep(0.01)
